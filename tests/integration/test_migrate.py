"""doveadm mailbox-migrate: passes between mail locations, against a real
Dovecot on 127.0.0.1 (real LMTP, IMAP, POP3 and doveadm)."""

import fcntl
import json
import os
import re
import sqlite3
import subprocess
import time

import pytest

from mmtest import (DOVEADM, clean_env, imap_utf7, make_message, remount_size,
                    small_disk)

# mailboxes with awkward names: deep hierarchy, spaces, non-ASCII (UTF-7
# over IMAP), characters IMAP quotes
AWKWARD = ["Work", "Work/Deep", "Work/Deep/Deeper", "Sp ace", "Ünïcödé Box",
           "Q\"uote", "Amp & Co"]

FORMAT_PAIRS = [
    ("maildir:~/Maildir", "sdbox:~/dest-sdbox"),
    ("maildir:~/Maildir", "mdbox:~/dest-mdbox"),
    ("sdbox:~/sdbox", "maildir:~/dest-Maildir"),
]


def make_spool(d, user="alice"):
    """A small spool: small and big messages, flags, keywords, POP3-read
    mail, awkward mailbox names, subscriptions."""
    for i in range(6):
        d.deliver(user, make_message("small %d" % i))
    d.deliver(user, make_message("big", size=3 * 1024 * 1024))
    c = d.imap(user)
    for name in AWKWARD:
        assert c.create(imap_utf7(name))[0] == "OK", name
    c.subscribe(imap_utf7("Work/Deep"))
    c.subscribe(imap_utf7("Ünïcödé Box"))
    c.select("INBOX")
    c.store("1:2", "+FLAGS", "(\\Seen \\Answered $Label1 custom_kw)")
    c.store("3", "+FLAGS", "(\\Flagged \\Draft)")
    c.copy("1:3", imap_utf7("Work/Deep/Deeper"))
    c.copy("4", imap_utf7("Ünïcödé Box"))
    c.append(imap_utf7("Sp ace"), "(\\Seen $Junk)", None,
             make_message("appended"))
    c.logout()
    # POP3 reads mail (sets \Seen through the POP3 session)
    p = d.pop3(user)
    p.retr(5)
    p.quit()


def traced_migrate(d, tmp_path, syscalls, *args):
    """doveadm mailbox-migrate ARGS under strace -f (file descriptors
    shown as paths), which must succeed; returns the process and the
    trace."""
    trace = tmp_path / "strace"
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-y", "-e", "trace=" + syscalls, "-o",
         str(trace), "/usr/bin/doveadm", "-c", d.config,
         "mailbox-migrate"] + list(args),
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc, trace.read_text()


def assert_same(d, user, src, dst, save_date=True):
    """Both locations hold the same mailboxes and messages. Without
    save_date the save dates are not compared: maildir derives them from
    the file's ctime when uncached, which a rename (new/ to cur/, a flag
    change) or an unlink of another hard link (an expunge of a copy)
    moves."""
    a, b = d.snapshot(user, src), d.snapshot(user, dst)
    if not save_date:
        for snap in (a, b):
            for _, mails in snap.values():
                for m in mails:
                    m.pop("date.saved")
    assert sorted(a) == sorted(b)
    for box in a:
        sa, ma = a[box]
        sb, mb = b[box]
        for key in ("guid", "uidvalidity", "uidnext", "messages"):
            assert sa[key] == sb[key], (box, key, sa, sb)
        assert ma == mb, box


def subscriptions(d, user, location):
    out = d.doveadm("-o", "mail_location=%s" % location, "mailbox", "list",
                    "-s", "-u", user).stdout.split("\n")
    return sorted(x for x in out if x)


def summary(proc):
    return re.search(r"(full|journal) pass to", proc.stderr).group(1)


@pytest.mark.parametrize("src,dst", FORMAT_PAIRS,
                         ids=["maildir-sdbox", "maildir-mdbox",
                              "sdbox-maildir"])
def test_round_trip(make_dovecot, src, dst):
    d = make_dovecot(mail_location=src, user_mail={"alice": src})
    make_spool(d)
    p = d.migrate("alice", dst)
    assert summary(p) == "full"
    assert_same(d, "alice", src, dst)
    assert subscriptions(d, "alice", src) == subscriptions(d, "alice", dst)
    # HIGHESTMODSEQ never below the source's
    for loc_rows in [(d.doveadm_json("mailbox", "status", "-u", "alice",
                                     "highestmodseq", "*"),
                      d.doveadm_json("-o", "mail_location=%s" % dst,
                                     "mailbox", "status", "-u", "alice",
                                     "highestmodseq", "*"))]:
        a = {r["mailbox"]: int(r["highestmodseq"]) for r in loc_rows[0]}
        b = {r["mailbox"]: int(r["highestmodseq"]) for r in loc_rows[1]}
        for box in a:
            assert b[box] >= a[box], box
    # the big message's body is intact
    a = d.doveadm("fetch", "-u", "alice", "body", "mailbox", "INBOX",
                  "uid", "7", fmt="tab").stdout
    b = d.doveadm("-o", "mail_location=%s" % dst, "fetch", "-u", "alice",
                  "body", "mailbox", "INBOX", "uid", "7", fmt="tab").stdout
    assert len(a) > 3 * 1024 * 1024 and a == b
    # POP3 and IMAP clients see the same UIDLs, order and UIDs after the
    # userdb points at the destination
    p3 = d.pop3("alice")
    uidl_before = p3.uidl()[1]
    p3.quit()
    c = d.imap("alice")
    c.select("INBOX")
    uids_before = c.uid("SEARCH", "ALL")[1]
    c.logout()
    subprocess.run(d.switch_command(dst).split() + ["alice"], check=True)
    p3 = d.pop3("alice")
    assert p3.uidl()[1] == uidl_before
    p3.quit()
    c = d.imap("alice")
    c.select("INBOX")
    assert c.uid("SEARCH", "ALL")[1] == uids_before
    c.logout()


# incremental passes into maildir as well: there flag changes, expunges
# and moves must reach the file names, not only the index
INCREMENTAL_DESTS = pytest.mark.parametrize(
    "dst", ["sdbox:~/dest", "maildir:~/dest-Maildir"],
    ids=["to-sdbox", "to-maildir"])


@INCREMENTAL_DESTS
def test_later_passes_take_only_changes(maildir_dovecot, dst):
    d = maildir_dovecot
    make_spool(d)
    d.migrate("alice", dst)
    # a no-change pass reads the journal only
    p = d.migrate("alice", dst)
    assert summary(p) == "journal"
    rows = [r for r in json.loads(p.stdout)
            if r["mailbox"] != "(total)"]
    assert rows == []

    c = d.imap("alice")
    c.select("INBOX")
    c.store("1", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.store("2", "-FLAGS", "(\\Seen custom_kw)")
    c.store("3", "+FLAGS", "($Important)")
    c.create(imap_utf7("New/Box"))
    c.copy("3", imap_utf7("New/Box"))
    c.rename(imap_utf7("Sp ace"), imap_utf7("Renamed Space"))
    c.rename(imap_utf7("Work"), imap_utf7("Job"))
    c.delete(imap_utf7("Amp & Co"))
    c.subscribe(imap_utf7("New/Box"))
    c.unsubscribe(imap_utf7("Work/Deep"))
    c.logout()
    d.deliver("alice", make_message("after the first pass"))

    p = d.migrate("alice", dst)
    assert summary(p) == "journal"
    assert_same(d, "alice", "maildir:~/Maildir", dst, save_date=False)
    assert subscriptions(d, "alice", "maildir:~/Maildir") == \
        subscriptions(d, "alice", dst)
    st = d.doveadm_json("mailbox-migrate", "status", "-u", "alice")
    assert st[0]["destination"] == dst and st[0]["phase"] == "copying"
    assert int(st[0]["pending"]) == 0


@INCREMENTAL_DESTS
def test_pass_merges_destination_changes(maildir_dovecot, dst):
    """Mail, flags and mailboxes made on the destination are kept."""
    d = maildir_dovecot
    for i in range(3):
        d.deliver("alice", make_message("m%d" % i))
    d.migrate("alice", dst)
    o = ["-o", "mail_location=%s" % dst]
    d.doveadm(*o, "flags", "add", "-u", "alice", "\\Flagged", "mailbox",
              "INBOX", "uid", "1")
    d.doveadm(*o, "mailbox", "create", "-u", "alice", "Made There")
    d.deliver("alice", make_message("on the source"))
    subprocess.run(["/usr/bin/doveadm", "-c", d.config, *o, "save", "-u",
                    "alice", "-m", "INBOX"], input=make_message("there"),
                   check=True)
    for args in (["--full"], []):
        d.migrate("alice", dst, *args)
        mails = d.fetch("alice", "INBOX")
        dmails = d.doveadm_json(*o, "fetch", "-u", "alice", "uid guid flags",
                                "mailbox", "INBOX")
        guids = {m["guid"] for m in dmails}
        assert {m["guid"] for m in mails} <= guids
        assert len(dmails) == 5 and len(guids) == 5
        assert "\\Flagged" in [m for m in dmails if m["uid"] == "1"][0][
            "flags"]
        names = d.doveadm(*o, "mailbox", "list", "-u", "alice").stdout
        assert "Made There" in names


def test_full_is_the_fallback_when_the_journal_is_incomplete(maildir_dovecot):
    d = maildir_dovecot
    dst = "sdbox:~/dest"
    d.deliver("alice", make_message("one"))
    d.migrate("alice", dst)
    # mail added while the plugin is not loaded: the journal can't know
    subprocess.run(["/usr/bin/doveadm", "-c", d.config, "-o",
                    "mail_plugins=", "save", "-u", "alice", "-m", "INBOX"],
                   input=make_message("unjournaled"), check=True)
    p = d.migrate("alice", dst)
    assert "comparing in full" in p.stderr or summary(p) == "full"
    assert_same(d, "alice", "maildir:~/Maildir", dst)
    p = d.migrate("alice", dst, "--full")
    assert summary(p) == "full"
    rows = [r for r in json.loads(p.stdout)
            if r["mailbox"] == "(total)"]
    assert rows[0]["copied"] == 0


def test_dry_run_writes_nothing(maildir_dovecot):
    d = maildir_dovecot
    for i in range(4):
        d.deliver("alice", make_message("m%d" % i))
    before = os.listdir(d.home("alice"))
    p = d.migrate("alice", "sdbox:~/dest", "--dry-run")
    rows = json.loads(p.stdout)
    assert [r for r in rows if r["mailbox"] == "INBOX"][0]["copied"] == 4
    assert os.listdir(d.home("alice")) == before
    st = d.doveadm_json("mailbox-migrate", "status", "-u", "alice")
    assert st == []


def test_only_some_mailboxes(maildir_dovecot):
    d = maildir_dovecot
    d.deliver("alice", make_message("inbox"))
    c = d.imap("alice")
    c.create("Other")
    c.append("Other", None, None, make_message("other"))
    c.logout()
    p = d.migrate("alice", "sdbox:~/dest", "-m", "Other")
    rows = json.loads(p.stdout)
    assert {r["mailbox"] for r in rows} == {"Other", "(total)"}
    # a partial pass moves no checkpoint: the next pass is still the first
    p = d.migrate("alice", "sdbox:~/dest")
    assert summary(p) == "full"


def test_no_change_pass_opens_no_message_file(maildir_dovecot, tmp_path):
    d = maildir_dovecot
    dst = "maildir:~/dest"
    for i in range(20):
        d.deliver("alice", make_message("m%d" % i))
    c = d.imap("alice")
    c.create("Sub")
    c.select("INBOX")
    c.copy("1:5", "Sub")
    c.logout()
    d.migrate("alice", dst)
    # maildir's directories count as settled a second after their last
    # change (Dovecot's MAILDIR_SYNC_SECS); one pass then records that
    time.sleep(2.1)
    d.migrate("alice", dst)
    proc, trace = traced_migrate(d, tmp_path, "%file,%desc", "-u", "alice",
                                 dst)
    assert "journal pass" in proc.stderr
    home = d.home("alice")
    touched = []
    for line in trace.splitlines():
        for path in re.findall(r'"(%s[^"]*)"' % re.escape(home), line):
            # a message file, not the cur/new/tmp directories
            if re.search(r"/(cur|new|tmp)/[^/]", path[len(home):]):
                touched.append(line)
    assert touched == []
    # nor a source mailbox's own index, nor a listing of its directories:
    # the mailbox list index's STATUS cache shows both mailboxes
    # unchanged (Dovecot only stats cur/ and new/ to trust it)
    maildir = os.path.join(home, "Maildir")
    opened = [line for line in trace.splitlines()
              if "open" in line and maildir + "/" in line and
              re.search(r'/(dovecot\.index(\.log)?|cur|new)"', line)]
    assert opened == []
    # the traced pass did open the state file and the list index (the
    # test can fail)
    assert "mailbox-migrate.db" in trace
    assert "dovecot.list.index" in trace


def test_journal_pass_opens_no_sdbox_destination_file(maildir_dovecot,
                                                      tmp_path):
    """sdbox keeps a mail's GUID in the mail's file only: a pass caches the
    GUIDs of the mail it saves, so that a later pass that checks the
    destination's UIDs by GUID before a flag change or an expunge opens
    none of the destination's message files."""
    d = maildir_dovecot
    dst = "sdbox:~/dest"
    for i in range(10):
        d.deliver("alice", make_message("m%d" % i))
    d.migrate("alice", dst)
    c = d.imap("alice")
    c.select("INBOX")
    c.store("2,4", "+FLAGS", r"(\Flagged)")
    c.store("6", "+FLAGS", r"(\Deleted)")
    c.expunge()
    c.logout()
    proc, trace = traced_migrate(d, tmp_path, "%file,%desc", "-u", "alice",
                                 dst)
    assert "journal pass" in proc.stderr and \
        "1 expunged, 2 flag changes" in proc.stderr, proc.stderr
    mails = os.path.join(d.home("alice"), "dest", "mailboxes", "INBOX",
                         "dbox-Mails")
    opened = [line for line in trace.splitlines()
              if re.search(re.escape(mails) + r"/u\.\d+", line) and
              "unlink" not in line]
    assert opened == []
    # the session moved the mail to cur/ after the first pass (see
    # assert_same())
    assert_same(d, "alice", "maildir:~/Maildir", dst, save_date=False)


def test_copy_reads_each_message_file_through_one_open(maildir_dovecot,
                                                      tmp_path):
    """A pass that copies maildir mail opens each message file once and
    takes its dates from the open file: no stat() of the file's path as
    well (a lookup in a directory of thousands of entries, per date)."""
    d = maildir_dovecot
    dst = "sdbox:~/dest"
    for i in range(10):
        d.deliver("alice", make_message("m%d" % i))
    c = d.imap("alice")
    c.select("INBOX")  # moves them from new/ to cur/
    c.logout()
    proc, trace = traced_migrate(d, tmp_path, "%file", "-u", "alice", dst)
    maildir = re.escape(os.path.join(d.home("alice"), "Maildir"))
    opened, statted = [], []
    for line in trace.splitlines():
        m = re.search(r'"(%s/(cur|new)/[^"]+)"' % maildir, line)
        if m is None or "ENOENT" in line:
            continue
        (opened if "open" in line.split("(")[0] else statted).append(
            m.group(1))
    assert sorted(set(opened)) == sorted(opened) and len(opened) == 10, \
        opened
    assert statted == [], statted
    assert_same(d, "alice", "maildir:~/Maildir", dst)


def wal_frames(path):
    """The frames of a WAL file that SQLite takes as current: those from
    the start that carry the header's salts (a WAL started over keeps its
    size, and its old frames after the new ones)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 32:
        return 0
    page_size = int.from_bytes(data[8:12], "big")
    salts = data[16:24]
    n, off = 0, 32
    while off + 24 + page_size <= len(data) and \
            data[off + 8:off + 16] == salts:
        n += 1
        off += 24 + page_size
    return n


def test_pass_starts_the_state_file_wal_over(maildir_dovecot):
    """Writers leave their commits in the state file's WAL (they don't
    checkpoint when they close); the process that next opens the file
    first reads all of it. A pass copies the WAL into the file when it
    opens it, so that its own writes start the WAL over, never truncating
    it (a truncation is a journal commit, and on a filesystem with online
    discard a synchronous discard), and never waiting: with another
    process in the file at that moment the WAL goes on growing."""
    d = maildir_dovecot
    dst = "maildir:~/dest"
    wal = d.db_path("alice") + "-wal"

    def inbox_flags(d, location=None):
        return [(m["uid"], m["guid"], m["flags"])
                for m in d.snapshot("alice", location)["INBOX"][1]]

    def flag_each(flag):
        # a session each, and a reader after each that folds its journal
        # log into the state file with one write transaction
        for i in range(1, 21):
            c = d.imap("alice")
            c.select("INBOX")
            c.store(str(i), flag, "(\\Flagged)")
            c.logout()
            d.journal("alice")

    for i in range(40):
        d.deliver("alice", make_message("m%d" % i))
    d.migrate("alice", dst)
    flag_each("+FLAGS")
    before = wal_frames(wal)
    size = os.path.getsize(wal)
    # under the 100 frames at which a session's commit checkpoints
    assert 20 <= before < 100, before
    p = d.migrate("alice", dst)
    assert summary(p) == "journal"
    # started over (the pass's own record is in it), not truncated
    assert 0 < wal_frames(wal) < 10, (before, wal_frames(wal))
    assert os.path.getsize(wal) == size
    assert inbox_flags(d) == inbox_flags(d, dst)
    st = d.doveadm_json("mailbox-migrate", "status", "-u", "alice")
    assert int(st[0]["pending"]) == 0
    # what the sessions wrote is in the file
    conn = sqlite3.connect(d.db_path("alice"), timeout=1)
    try:
        flagged = conn.execute("SELECT COUNT(*) FROM journal WHERE "
                               "type = 'flags'").fetchone()[0]
    finally:
        conn.close()
    assert flagged >= 20

    # a reader in the file: the pass neither waits for it nor fails, and
    # the WAL can't start over under it
    flag_each("-FLAGS")
    d.deliver("alice", make_message("while a reader is in"))
    before = wal_frames(wal)
    conn = sqlite3.connect(d.db_path("alice"), timeout=1)
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT COUNT(*) FROM journal").fetchall()
        t0 = time.monotonic()
        d.migrate("alice", dst)
        # the state file's lock timeout is 5 s: waiting for the reader
        # would take at least that
        assert time.monotonic() - t0 < 4
        assert wal_frames(wal) > before
    finally:
        conn.close()
    st = d.doveadm_json("mailbox-migrate", "status", "-u", "alice")
    assert int(st[0]["pending"]) == 0
    assert d.mailbox_status("alice", "INBOX")["messages"] == "41"
    assert inbox_flags(d) == inbox_flags(d, dst)

    # with mailbox_migrate_db_fsync the pass leaves the WAL to the
    # autocheckpoint (a checkpoint there costs two fsyncs)
    flag_each("+FLAGS")
    before = wal_frames(wal)
    assert before >= 20, before
    d.doveadm("-o", "plugin/mailbox_migrate_db_fsync=yes", "mailbox-migrate",
              "-u", "alice", dst)
    assert wal_frames(wal) > before
    assert inbox_flags(d) == inbox_flags(d, dst)
    assert inbox_flags(d) == inbox_flags(d, dst)


def test_pass_leaves_the_source_index_to_its_sessions(maildir_dovecot):
    """The source's dovecot.index is the users' sessions' to rewrite: a
    pass that reads more of its log than Dovecot's rewrite minimum leaves
    it as it is (the rewrite would cost the pass an fsync per mailbox)."""
    d = maildir_dovecot
    dst = "sdbox:~/dest"
    for i in range(60):
        d.deliver("alice", make_message("m%d" % i))
    d.migrate("alice", dst)
    index = os.path.join(d.home("alice"), "Maildir", "dovecot.index")
    # one session's flag changes: more than 8 KB of log beyond the index
    # it read at SELECT, which its own commits don't rewrite (a process
    # rewrites an index it found that far behind when it opened it)
    c = d.imap("alice")
    c.select("INBOX")
    for rnd in range(12):
        c.store(",".join(str(u) for u in range(1 + rnd % 2, 61, 2)),
                "+FLAGS" if rnd % 4 < 2 else "-FLAGS", "(\\Flagged)")
    c.logout()
    before = os.stat(index).st_ino
    # a second later a reader rescans cur/ (the session changed it within
    # the second of its last look) and commits what it found
    time.sleep(2.1)
    p = d.migrate("alice", dst)
    assert summary(p) == "journal"
    assert os.stat(index).st_ino == before
    # the renames moved the files' ctimes, from which maildir takes an
    # uncached save date
    assert_same(d, "alice", None, dst, save_date=False)
    # the next reader without the pass's settings does rewrite it
    d.doveadm("mailbox", "status", "-u", "alice", "messages", "INBOX")
    d.doveadm("fetch", "-u", "alice", "uid", "mailbox", "INBOX", "1")
    assert os.stat(index).st_ino != before


def test_pass_rewrites_the_destination_index_as_configured(maildir_dovecot):
    """The destination's indexes keep the configured rewrite minimum (here
    1 KB, given to doveadm): a pass that finds more than that of a
    destination mailbox's log beyond its dovecot.index, and writes to the
    mailbox, rewrites it."""
    d = maildir_dovecot
    dst = "maildir:~/dest"

    def migrate():
        p = d.doveadm("-o", "mail_index_rewrite_min_log_bytes=1k",
                      "mailbox-migrate", "-u", "alice", dst, fmt="json")
        assert summary(p) in ("full", "journal")

    for i in range(100):
        d.deliver("alice", make_message("m%d" % i))
    migrate()
    index = os.path.join(d.home("alice"), "dest", "dovecot.index")
    # the first pass's log (its appends take more than 1 KB) is beyond
    # any index: the next pass that writes there rewrites it
    assert os.path.getsize(index + ".log") > 1024
    before = os.stat(index).st_ino if os.path.exists(index) else None
    c = d.imap("alice")
    c.select("INBOX")
    c.store("1:100", "+FLAGS", "(\\Flagged)")
    c.logout()
    migrate()
    assert os.path.exists(index)
    assert os.stat(index).st_ino != before
    assert_same(d, "alice", None, dst, save_date=False)


def test_mail_put_in_by_hand_is_found(maildir_dovecot):
    """A message file put into a maildir behind Dovecot's back: the list
    index no longer vouches for the mailbox, so the journal pass opens and
    syncs it, finds a change the journal lacks, and compares in full."""
    d = maildir_dovecot
    dst = "sdbox:~/dest"
    for i in range(5):
        d.deliver("alice", make_message("m%d" % i))
    d.migrate("alice", dst)
    # settled directories, recorded by one pass: the next needs no open
    time.sleep(2.1)
    d.migrate("alice", dst)
    p = d.migrate("alice", dst)
    assert "unchanged per the mailbox list index" in p.stderr, p.stderr
    name = "%d.M1P1.byhand:2,S" % int(time.time())
    path = os.path.join(d.home("alice"), "Maildir", "cur", name)
    with open(path, "wb") as f:
        f.write(make_message("put in by hand"))
    d.chown_to_mail_user(path)
    p = d.migrate("alice", dst)
    assert "comparing in full" in p.stderr, p.stderr
    subjects = [r["hdr.subject"].strip() for r in d.doveadm_json(
        "-o", "mail_location=%s" % dst, "fetch", "-u", "alice",
        "hdr.subject", "mailbox", "INBOX")]
    assert "put in by hand" in subjects


def test_change_without_the_plugin_found_after_a_journaled_one(
        maildir_dovecot):
    """A flag change made without the plugin, then a journaled change of
    another message and a flag store that changes nothing: the pass proves
    the mailbox against its own checkpoint, not against what the journal
    holds of later commits, so it still finds the first change and
    compares in full; so does the journal command, against the
    destination's checkpoint."""
    d = maildir_dovecot
    dst = "sdbox:~/dest"
    for i in range(3):
        d.deliver("alice", make_message("m%d" % i))
    d.migrate("alice", dst)
    subprocess.run([DOVEADM, "-c", d.config, "-o", "mail_plugins=", "flags",
                    "add", "-u", "alice", r"\Seen", "mailbox", "INBOX",
                    "uid", "2"], check=True, env=clean_env())
    c = d.imap("alice")
    c.select("INBOX")
    c.uid("STORE", "3", "+FLAGS", r"(\Flagged)")
    c.uid("STORE", "3", "+FLAGS", r"(\Flagged)")
    c.logout()
    # the journal command proves against the destination's checkpoint too
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "no", rows["INBOX"]
    assert "UID 2 changed" in rows["INBOX"]["reason"], rows["INBOX"]
    assert "since the last pass to" in rows["INBOX"]["reason"]
    p = d.migrate("alice", dst)
    assert "comparing in full: UID 2 changed" in p.stderr, p.stderr
    # the session's SELECT moved the mail from new/ to cur/ after the
    # first pass: an uncached save date moves with the ctime whenever a
    # second has passed in between
    assert_same(d, "alice", "maildir:~/Maildir", dst, save_date=False)
    # the pass took it all: nothing is missing since its checkpoint
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "yes", rows["INBOX"]


def test_bad_destinations(maildir_dovecot):
    d = maildir_dovecot
    d.deliver("alice", make_message("m"))
    cases = [
        ("maildir:~/Maildir", "the same as"),
        ("maildir:~/Maildir/inside", "inside"),
        ("sdbox:~", "parent of"),
    ]
    for dest, text in cases:
        p = d.migrate("alice", dest, check=False)
        assert p.returncode != 0 and text in p.stderr, (dest, p.stderr)
        assert "Panic" not in p.stderr
    p = d.migrate("nosuchuser", "sdbox:~/dest", check=False)
    assert p.returncode == 67
    p = d.migrate("alice", "nonsense", check=False)
    assert p.returncode == 64 and "Invalid destination" in p.stderr
    p = d.migrate("alice", "nosuchdriver:~/x", check=False)
    assert p.returncode != 0
    # nothing was recorded by any of them
    assert d.doveadm_json("mailbox-migrate", "status", "-u", "alice") == []


def test_destination_mailbox_with_another_guid(maildir_dovecot):
    d = maildir_dovecot
    dst = "sdbox:~/dest"
    c = d.imap("alice")
    c.create("Clash")
    c.append("Clash", None, None, make_message("source"))
    c.logout()
    o = ["-o", "mail_location=%s" % dst]
    d.doveadm(*o, "mailbox", "create", "-u", "alice", "Clash")
    subprocess.run(["/usr/bin/doveadm", "-c", d.config, *o, "save", "-u",
                    "alice", "-m", "Clash"], input=make_message("dest"),
                   check=True)
    p = d.migrate("alice", dst, check=False)
    assert p.returncode != 0
    assert "Clash exists with another GUID" in p.stderr
    # nothing claims to be complete
    st = d.doveadm_json("mailbox-migrate", "status", "-u", "alice")
    assert st == [] or st[0]["last_pass"] == ""
    # once the administrator moves it away, a rerun converges
    d.doveadm(*o, "mailbox", "rename", "-u", "alice", "Clash", "Clash-old")
    d.migrate("alice", dst)
    src = d.snapshot("alice")
    dest = d.snapshot("alice", dst)
    assert src["Clash"][1] == dest["Clash"][1]
    assert "Clash-old" in dest


def test_unwritable_destination_then_rerun(maildir_dovecot):
    d = maildir_dovecot
    for i in range(3):
        d.deliver("alice", make_message("m%d" % i))
    locked = os.path.join(d.root, "locked")
    os.mkdir(locked, 0o755)  # root's: the mail user can't write there
    dst = "sdbox:%s/%%u" % locked
    p = d.migrate("alice", dst, check=False)
    assert p.returncode != 0 and "Panic" not in p.stderr, p.stderr
    assert "Permission denied" in p.stderr
    assert d.doveadm_json("mailbox-migrate", "status", "-u", "alice") == []
    d.chown_to_mail_user(locked)
    d.migrate("alice", dst)
    assert_same(d, "alice", "maildir:~/Maildir", "sdbox:%s/alice" % locked)


def test_pass_waits_for_another_pass_of_the_user(maildir_dovecot):
    """A pass of a user whose pass lock another process holds waits for it
    (up to a minute) and then runs."""
    import fcntl
    import threading
    d = maildir_dovecot
    d.deliver("alice", make_message("m"))
    d.migrate("alice", "sdbox:~/dest")  # makes the state file
    d.deliver("alice", make_message("n"))
    lock = open(d.db_path("alice") + ".pass-lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    release = threading.Timer(1.5, lock.close)
    release.start()
    try:
        t0 = time.monotonic()
        p = d.migrate("alice", "sdbox:~/dest", check=False)
        waited = time.monotonic() - t0
    finally:
        release.cancel()
        lock.close()
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert waited >= 1.0, waited
    assert_same(d, "alice", "maildir:~/Maildir", "sdbox:~/dest")


def test_disk_full_mid_pass_then_rerun(maildir_dovecot):
    d = maildir_dovecot
    for i in range(8):
        d.deliver("alice", make_message("m%d" % i, size=200 * 1024))
    with small_disk(d, os.path.join(d.root, "full"), "600k") as mnt:
        dst = "sdbox:%s/%%u" % mnt
        p = d.migrate("alice", dst, check=False)
        assert p.returncode != 0 and "Panic" not in p.stderr, p.stderr
        assert "space" in p.stderr.lower() or "quota" in p.stderr.lower()
        st = d.doveadm_json("mailbox-migrate", "status", "-u", "alice")
        assert st == [] or st[0]["last_pass"] == ""
        remount_size(mnt, "8m")
        d.migrate("alice", dst)
        assert_same(d, "alice", "maildir:~/Maildir",
                    "sdbox:%s/alice" % mnt)


def test_workers_record_passes_after_one_syncfs(make_dovecot, tmp_path):
    """-A workers make several users' destinations durable with one
    syncfs() (per filesystem), not one per user, and record each user's
    pass (its checkpoint) in the user's state file only after it."""
    users = ["w%d" % i for i in range(4)]
    d = make_dovecot(users=users, mail_location="maildir:~/Maildir",
                     plugin_settings={"mailbox_migrate_workers": "2"})
    dst = "sdbox:~/dest"
    for u in users:
        d.deliver(u, make_message(u))
    d.doveadm("mailbox-migrate", "-A", dst)
    for u in users:
        d.deliver(u, make_message(u + " again"))
        d.journal(u)  # folded now: the traced pass writes only its record
    proc, trace = traced_migrate(d, tmp_path, "syncfs,pwrite64", "-A", dst)
    synced, recorded = {}, {}
    for n, line in enumerate(trace.splitlines()):
        pid = line.split()[0]
        if "syncfs(" in line:
            synced.setdefault(pid, n)
        elif "mailbox-migrate.db-wal>" in line:
            recorded.setdefault(pid, n)
    # each worker that got users (one or two of them) recorded them all
    # after its one syncfs(): fewer syncfs() calls than users
    assert 1 <= len(recorded) <= 2, recorded
    assert sum(1 for line in trace.splitlines()
               if "syncfs(" in line) == len(recorded)
    for pid, first_write in recorded.items():
        assert synced[pid] < first_write, (pid, synced, recorded)
    for u in users:
        assert_same(d, u, "maildir:~/Maildir", dst)
    st = d.doveadm_json("mailbox-migrate", "status", "-A")
    assert sorted(r["username"] for r in st) == users
    assert all(int(r["pending"]) == 0 for r in st), st


@pytest.mark.parametrize("workers", ["1", "2"])
def test_users_from_a_file(make_dovecot, tmp_path, workers):
    """-F FILE runs the users named there, one per line, and only those
    (in the workers, or in doveadm itself with one). A name the userdb
    doesn't know is skipped with a line saying so, as doveadm's own -A and
    -F do (the user may have been deleted since the list was made)."""
    users = ["f%d" % i for i in range(4)]
    d = make_dovecot(users=users, mail_location="maildir:~/Maildir",
                     plugin_settings={"mailbox_migrate_workers": workers})
    for u in users:
        d.deliver(u, make_message(u))
    listed = tmp_path / "users"
    listed.write_text("f0\nnosuchuser\nf2\n")
    dst = "sdbox:~/dest"
    p = d.doveadm("-f", "json", "mailbox-migrate", "-F", str(listed), dst,
                  check=False)
    assert p.returncode == 0, p
    assert re.search(r"nosuchuser.*no longer exists, skipping", p.stderr), \
        p.stderr
    rows = json.loads(p.stdout)
    assert {r["username"] for r in rows
            if r["mailbox"] == "(total)"} == {"f0", "f2"}
    for u in ("f0", "f2"):
        assert_same(d, u, "maildir:~/Maildir", dst)
    st = d.doveadm_json("mailbox-migrate", "status", "-A")
    assert sorted(r["username"] for r in st) == ["f0", "f2"]


def test_workers_with_users_of_different_uids(make_dovecot):
    """A worker's users may each have their own UID and a home only they
    can enter: the one sync for several users' destinations still reaches
    every one of them, and every pass is recorded."""
    users = ["p%d" % i for i in range(6)]
    uids = {u: 65534 - (i % 2) for i, u in enumerate(users)}
    d = make_dovecot(users=users, mail_location="maildir:~/Maildir",
                     user_uids=uids,
                     plugin_settings={"mailbox_migrate_workers": "2"})
    dst = "sdbox:~/dest"
    for u in users:
        d.deliver(u, make_message(u))
    for round_ in range(2):
        p = d.doveadm("mailbox-migrate", "-A", dst, check=False)
        assert p.returncode == 0, p.stderr
        assert "failed" not in p.stderr, p.stderr
        st = d.doveadm_json("mailbox-migrate", "status", "-A")
        assert sorted(r["username"] for r in st) == users, st
        assert all(r["last_pass"] != "" and int(r["pending"]) == 0
                   for r in st), st
        for u in users:
            d.deliver(u, make_message(u + " again"))
    p = d.doveadm("mailbox-migrate", "-A", dst)
    # recorded checkpoints: the passes after the first are journal passes
    assert "first pass to this destination" not in p.stderr, p.stderr
    for u in users:
        assert os.stat(d.home(u)).st_uid == uids[u]
        assert_same(d, u, "maildir:~/Maildir", dst)


def test_workers_with_a_user_listed_twice(make_dovecot, tmp_path):
    """-F may name a user more than once; with two workers at least two of
    four mentions reach the same worker, whose first pass of the user
    still holds the user's pass lock (waiting for the batch's sync): the
    worker records it first instead of waiting for itself."""
    d = make_dovecot(users=["alice", "bob"],
                     mail_location="maildir:~/Maildir",
                     plugin_settings={"mailbox_migrate_workers": "2"})
    d.deliver("alice", make_message("once"))
    listed = tmp_path / "users"
    listed.write_text("alice\n" * 4)
    dst = "sdbox:~/dest"
    p = d.doveadm("mailbox-migrate", "-F", str(listed), dst, check=False)
    assert p.returncode == 0, p.stderr
    assert "locked" not in p.stderr and "failed" not in p.stderr, p.stderr
    assert_same(d, "alice", "maildir:~/Maildir", dst)
    st = d.doveadm_json("mailbox-migrate", "status", "-u", "alice")
    assert st[0]["last_pass"] != "" and int(st[0]["pending"]) == 0, st


def test_change_during_a_journal_pass(maildir_dovecot):
    """A session that changes a mailbox while a journal pass runs (after
    the pass folded the journal log) leaves its entry in the log: when the
    pass meets the mailbox, the index is ahead of what it folded, and the
    pass folds again instead of comparing the mailbox in full; the next
    pass takes the change. The pass is held at its first mailbox by a lock
    on that mailbox's destination index while the session appends."""
    d = maildir_dovecot
    c = d.imap("alice")
    for name in ("Alpha", "Zulu"):
        c.create(name)
        c.append(name, None, None, make_message(name + " 1"))
    dst = "sdbox:~/dest"
    d.doveadm("mailbox-migrate", "-u", "alice", dst)
    # the pass meets the mailboxes in the order doveadm lists them
    names = d.doveadm("mailbox", "list", "-u", "alice").stdout.split()
    held, late = sorted(["Alpha", "Zulu"], key=names.index)
    c.append(held, None, None, make_message(held + " 2"))

    log = os.path.join(d.home("alice"), "dest", "mailboxes", held,
                       "dbox-Mails", "dovecot.index.log")
    fd = os.open(log, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    proc = subprocess.Popen([DOVEADM, "-c", d.config, "mailbox-migrate",
                             "-u", "alice", dst], env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        waiting = False
        deadline = time.monotonic() + 30
        while not waiting and time.monotonic() < deadline and \
                proc.poll() is None:
            with open("/proc/locks") as f:
                waiting = any("->" in line and
                              " %d " % proc.pid in line for line in f)
            time.sleep(0.01)
        assert waiting, "the pass never waited for the index lock"
        c.append(late, None, None, make_message(late + " 2"))
    finally:
        os.close(fd)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "comparing in full" not in err, err
    # the change was journaled after the pass's checkpoint: the next one
    p = d.doveadm("mailbox-migrate", "-u", "alice", dst)
    assert "comparing in full" not in p.stderr, p.stderr
    assert "1 copied" in p.stderr, p.stderr
    c.logout()
    assert_same(d, "alice", "maildir:~/Maildir", dst)


def test_progress_of_a_long_pass(maildir_dovecot):
    """A pass running longer than mailbox_migrate_progress_interval says
    on stderr how far it got, again at each interval and also within a
    mailbox; a shorter pass, or the interval 0, says nothing."""
    d = maildir_dovecot
    # big enough that even the backup pass (no fsync per message) takes
    # many milliseconds
    for i in range(40):
        d.deliver("alice", make_message("m%d" % i, size=100000))

    def progress(interval, dst):
        p = d.doveadm("-o", "plugin/mailbox_migrate_progress_interval=%s"
                      % interval, "mailbox-migrate", "-u", "alice", dst)
        return [int(m.group(1)) for m in re.finditer(
            r"^mailbox-migrate\(alice\): \d+(?:/\d+)? mailboxes, "
            r"(\d+) messages copied, \d+ expunged, \d+ s$",
            p.stderr, re.M)]

    copied = progress("1ms", "sdbox:~/dest1")
    assert len(copied) >= 2, copied
    assert copied == sorted(copied) and copied[-1] <= 40, copied
    # within INBOX, not only between mailboxes
    assert any(0 < n < 40 for n in copied), copied
    # a backup pass too
    copied = progress("1ms", "backup:~/backup")
    assert len(copied) >= 2 and any(0 < n < 40 for n in copied), copied
    assert progress("5s", "sdbox:~/dest2") == []
    assert progress("0", "sdbox:~/dest3") == []
    p = d.doveadm("-o", "plugin/mailbox_migrate_progress_interval=soon",
                  "mailbox-migrate", "-u", "alice", "sdbox:~/dest4",
                  check=False)
    assert p.returncode != 0
    assert "mailbox_migrate_progress_interval" in p.stderr, p.stderr
    assert_same(d, "alice", "maildir:~/Maildir", "sdbox:~/dest1")


def test_all_users_in_parallel_workers(make_dovecot):
    """-A runs users in worker processes; one failing user doesn't stop the
    others, and the exit code says something failed."""
    users = ["u%d" % i for i in range(5)]
    d = make_dovecot(users=users, mail_location="maildir:~/Maildir",
                     plugin_settings={"mailbox_migrate_workers": "2"})
    for u in users:
        for i in range(3):
            d.deliver(u, make_message("%s %d" % (u, i)))
    # u3's destination has a mailbox INBOX of its own, with mail
    dst = "sdbox:~/dest"
    subprocess.run(["/usr/bin/doveadm", "-c", d.config, "-o",
                    "mail_location=%s" % dst, "save", "-u", "u3", "-m",
                    "INBOX"], input=make_message("in the way"), check=True)
    p = d.doveadm("-f", "json", "mailbox-migrate", "-A", dst, check=False)
    assert p.returncode != 0
    assert "u3" in p.stderr and "another GUID" in p.stderr
    rows = json.loads(p.stdout)
    totals = {r["username"]: r for r in rows if r["mailbox"] == "(total)"}
    for u in users:
        assert totals[u]["copied"] == (3 if u != "u3" else 0), totals
    for u in users:
        if u == "u3":
            continue
        assert_same(d, u, "maildir:~/Maildir", dst)
    # status of everyone, with the age histogram on stderr
    p = d.doveadm("-f", "json", "mailbox-migrate", "status", "-A")
    st = json.loads(p.stdout)
    assert {r["username"] for r in st} == set(users) - {"u3"}
    assert "age of last pass" in p.stderr
