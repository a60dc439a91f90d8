"""The change journal under real IMAP, LMTP and doveadm traffic."""

import json
import os
import socket
import subprocess
import time

from mmtest import (DOVEADM, HOST, PASSWORD, clean_env, db_query, imap_utf7,
                    make_message)


def by_type(entries, type_):
    return [e for e in entries if e["type"] == type_]


def guid_of(d, user, mailbox, uid):
    rows = d.fetch(user, mailbox)
    return {r["uid"]: r["guid"] for r in rows}[uid]


def inbox_session(d, count):
    """Deliver count messages to alice's INBOX; returns the path of her
    journal log and an IMAP session with INBOX selected."""
    for i in range(count):
        d.deliver("alice", make_message("m%d" % i))
    c = d.imap("alice")
    c.select("INBOX")
    return d.db_path("alice") + ".log", c


def test_every_entry_kind_with_uid_and_guid(dovecot):
    d = dovecot
    assert d.deliver("alice", make_message("first")) == 250
    assert d.deliver("alice", make_message("second")) == 250
    c = d.imap("alice")
    c.create("Work")
    typ, data = c.append("Work", r"(\Seen $label1)", None,
                         make_message("appended"))
    assert typ == "OK"
    append_uid = int(data[0].split()[2].decode().rstrip("]"))
    c.select("INBOX")
    typ, data = c.uid("COPY", "1", "Work")
    assert typ == "OK"
    c.uid("MOVE", "2", "Work")
    c.select("Work")
    # Work: the appended message, then the copy, then the moved one
    c.uid("STORE", "2", "+FLAGS", r"(\Flagged)")
    c.uid("STORE", "2", "+FLAGS", "(project-x)")
    c.uid("STORE", str(append_uid), "+FLAGS", r"(\Deleted)")
    c.expunge()
    c.subscribe("Work")
    c.unsubscribe("Work")
    c.create("Trash")
    c.logout()

    entries = d.journal_entries("alice")
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    inbox_saves = [e for e in by_type(entries, "save")
                   if e["mailbox"] == "INBOX"]
    assert [e["uid"] for e in inbox_saves] == [1, 2]
    assert all(e["service"] == "lmtp" for e in inbox_saves)

    work_status = d.mailbox_status("alice", "Work")
    work_rows = {r["uid"]: r for r in d.fetch("alice", "Work")}
    work = [e for e in entries if e["mailbox_guid"] == work_status["guid"]]
    saves = by_type(work, "save")
    assert len(saves) == 1 and saves[0]["uid"] == append_uid
    assert saves[0]["flags"] == r"\Seen" and saves[0]["keywords"] == "$label1"
    assert saves[0]["service"] == "imap"
    copies = by_type(work, "copy")
    assert len(copies) == 2
    # COPY and MOVE keep the message GUID; the journal has the final UIDs
    inbox_guids = {e["uid"]: e["guid"] for e in inbox_saves}
    assert [c_["guid"] for c_ in copies] == [inbox_guids[1], inbox_guids[2]]
    for copy in copies:
        if copy["uid"] in work_rows:
            assert work_rows[copy["uid"]]["guid"] == copy["guid"]
    # MOVE expunged the source
    inbox_expunges = [e for e in by_type(entries, "expunge")
                      if e["mailbox"] == "INBOX"]
    assert [(e["uid"], e["guid"]) for e in inbox_expunges] == \
        [(2, inbox_guids[2])]
    # flags and keywords carry the state after the change
    assert [c_["uid"] for c_ in copies] == [2, 3]
    flags = [e for e in by_type(work, "flags") if e["uid"] == 2]
    assert flags[0]["flags"] == r"\Flagged"
    assert flags[0]["guid"] == inbox_guids[1]
    kws = by_type(work, "keywords")
    assert kws[0]["uid"] == 2 and kws[0]["keywords"] == "project-x"
    # EXPUNGE of the appended message, with its GUID
    expunged = by_type(work, "expunge")
    assert [(e["uid"], e["guid"]) for e in expunged] == \
        [(append_uid, saves[0]["guid"])]
    assert [e["type"] for e in work
            if e["type"] in ("subscribe", "unsubscribe")] == \
        ["subscribe", "unsubscribe"]
    creates = by_type(entries, "create")
    assert {e["name"] for e in creates} >= {"INBOX", "Work", "Trash"}

    # the journal agrees with the mailboxes
    for row in d.journal("alice"):
        assert row["complete"] == "yes", (row["mailbox"], row["reason"])


def test_saved_guids_match_the_index(dovecot):
    d = dovecot
    for i in range(5):
        assert d.deliver("bob", make_message("m%d" % i)) == 250
    c = d.imap("bob")
    c.append("INBOX", None, None, make_message("appended", size=200000))
    c.logout()
    journal = {e["uid"]: e["guid"] for e in d.journal_entries("bob", "INBOX")
               if e["type"] == "save"}
    index = {r["uid"]: r["guid"] for r in d.fetch("bob", "INBOX")}
    assert journal == index and len(index) == 6


def imap_process_pids(d):
    """The imap processes of this test's Dovecot (children of its
    master)."""
    master = d.master_pid()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open("/proc/%s/comm" % name) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if int(fields[1]) == master and comm == "imap":
            pids.append(int(name))
    return pids


def test_sdbox_flag_change_opens_no_mail_file(make_dovecot):
    """sdbox keeps a mail's GUID in the mail's file only: the plugin caches
    the GUID it gave a save, so a later flag change's journal entry (which
    carries the GUID) doesn't open the file for it."""
    d = make_dovecot(mail_location="sdbox:~/sdbox")
    assert d.deliver("alice", make_message("delivered")) == 250
    c = d.imap("alice")
    c.append("INBOX", None, None, make_message("appended"))
    c.logout()
    # the session's process is gone before the traced one starts
    deadline = time.monotonic() + 10
    while imap_process_pids(d) and time.monotonic() < deadline:
        time.sleep(0.01)

    c = d.imap("alice")
    c.select("INBOX")
    pids = imap_process_pids(d)
    assert len(pids) == 1, pids
    trace = os.path.join(d.root, "store.strace")
    tracer = subprocess.Popen(["strace", "-qq", "-e", "trace=open,openat",
                               "-o", trace, "-p", str(pids[0])])
    try:
        deadline = time.monotonic() + 10
        # strace is attached once the process shows a tracer
        while time.monotonic() < deadline:
            with open("/proc/%d/status" % pids[0]) as f:
                if any(line.startswith("TracerPid:") and
                       line.split()[1] != "0" for line in f):
                    break
            time.sleep(0.01)
        c.store("1:2", "+FLAGS", r"(\Flagged)")
        c.noop()
    finally:
        tracer.terminate()
        tracer.wait(timeout=10)
    c.logout()
    with open(trace) as f:
        opened = f.read()
    assert "mailbox-migrate.db.log" in opened, opened
    assert "/u." not in opened, opened

    entries = d.journal_entries("alice", "INBOX")
    flags = {e["uid"]: e["guid"] for e in by_type(entries, "flags")}
    assert flags == {1: guid_of(d, "alice", "INBOX", 1),
                     2: guid_of(d, "alice", "INBOX", 2)}, entries


def test_doveadm_changes_are_journaled(dovecot):
    d = dovecot
    d.deliver("alice", make_message("one"))
    d.deliver("alice", make_message("two"))
    d.doveadm("flags", "add", "-u", "alice", r"\Answered", "mailbox", "INBOX",
              "uid", "1")
    d.doveadm("expunge", "-u", "alice", "mailbox", "INBOX", "uid", "2")
    d.doveadm("mailbox", "create", "-u", "alice", "From doveadm")
    entries = d.journal_entries("alice")
    mine = [e for e in entries if e["service"] == "doveadm"]
    assert [(e["type"], e["uid"]) for e in mine] == \
        [("flags", 1), ("expunge", 2), ("create", 0)]
    assert mine[0]["flags"] == r"\Answered"
    assert mine[2]["name"] == "From doveadm"


def test_rolled_back_transaction_leaves_nothing(maildir_dovecot):
    d = maildir_dovecot
    d.deliver("alice", make_message("one"))
    before = d.journal_entries("alice")
    # MULTIAPPEND whose second message has a bad date: the server saves
    # the first one inside the transaction, then rolls it back.
    s = socket.create_connection((HOST, d.imap_port), timeout=30)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b'a LOGIN alice %s\r\n' % PASSWORD.encode())
    while not f.readline().startswith(b"a "):
        pass
    msg = make_message("never")
    s.sendall(b"b APPEND INBOX {%d}\r\n" % len(msg))
    assert f.readline().startswith(b"+")
    s.sendall(msg + b' "not a date" {%d}\r\n' % len(msg))
    line = f.readline()
    while not line.startswith(b"b "):
        if line.startswith(b"+"):
            s.sendall(msg + b"\r\n")
        line = f.readline()
    assert not line.startswith(b"b OK"), line
    s.sendall(b"c LOGOUT\r\n")
    s.close()
    after = d.journal_entries("alice")
    assert after == before
    assert len(d.fetch("alice", "INBOX")) == 1


def test_rename_keeps_history_by_guid(dovecot):
    d = dovecot
    c = d.imap("alice")
    c.create("Projects")
    c.create("Projects/2026")
    c.append("Projects", None, None, make_message("before rename"))
    status = d.mailbox_status("alice", "Projects")
    assert c.rename("Projects", imap_utf7("Archive/Old projects"))[0] == "OK"
    c.append(imap_utf7("Archive/Old projects"), None, None,
             make_message("after"))
    c.logout()
    after = d.mailbox_status("alice", "Archive/Old projects")
    assert after["guid"] == status["guid"]
    entries = d.journal_entries("alice", "Archive/Old projects")
    types = [e["type"] for e in entries]
    assert types == ["create", "save", "rename", "save"]
    rename = entries[2]
    assert rename["name"] == "Archive/Old projects"
    assert rename["old_name"] == "Projects"
    assert {e["mailbox_guid"] for e in entries} == {status["guid"]}
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert int(rows["Archive/Old projects"]["entries"]) == 4
    assert rows["Archive/Old projects"]["complete"] == "yes"
    # the child moved with its parent
    assert "Archive/Old projects/2026" in rows


def test_delete_and_odd_names(dovecot):
    d = dovecot
    c = d.imap("alice")
    names = ["Ünïcødé & more", "with space", "Über/tiefe/Ebene"]
    if d.mail_location.startswith("sdbox"):
        # maildir++ keeps '.' for its own hierarchy
        names += ["dotted.name", "a..b"]
    for name in names:
        typ, _ = c.create(imap_utf7(name))
        assert typ == "OK", name
    c.append(imap_utf7(names[0]), None, None, make_message("unicode"))
    c.logout()
    listed = {r["mailbox"]: r for r in d.journal("alice")}
    for name in names:
        assert listed[name]["complete"] == "yes"
    assert int(listed[names[0]]["entries"]) == 2
    seen = d.seen("alice", names[0])
    assert int(seen[names[0]]["seen_uidnext"]) == 2
    creates = [e["name"] for e in d.journal_entries("alice")
               if e["type"] == "create"]
    assert "with space" in creates
    d.doveadm("mailbox", "delete", "-u", "alice", "with space")
    deletes = [e for e in d.journal_entries("alice") if e["type"] == "delete"]
    assert [e["name"] for e in deletes] == ["with space"]


def test_uidvalidity_change(maildir_dovecot):
    d = maildir_dovecot
    d.deliver("alice", make_message("one"))
    old = d.mailbox_status("alice", "INBOX")
    new_uv = int(old["uidvalidity"]) + 1000
    d.doveadm("mailbox", "update", "-u", "alice", "--uid-validity",
              str(new_uv), "INBOX")
    updates = [e for e in d.journal_entries("alice") if e["type"] == "update"]
    assert updates and updates[-1]["uidvalidity"] == new_uv
    row = {r["mailbox"]: r for r in d.journal("alice")}["INBOX"]
    assert row["complete"] == "yes", row["reason"]


def test_size_bound_makes_journal_incomplete(make_dovecot):
    d = make_dovecot(plugin_settings={
        "mailbox_migrate_journal_max_entries": "8"})
    for i in range(20):
        d.deliver("alice", make_message("m%d" % i))
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    total = rows["(total)"]
    assert int(total["entries"]) <= 8
    assert total["complete"] == "no"
    assert int(total["incomplete_since"]) == int(total["first_seq"]) - 1
    assert "size bound" in total["reason"]
    # sequence numbers went on increasing
    assert int(total["last_seq"]) == 21


def test_journal_file_is_private(maildir_dovecot):
    d = maildir_dovecot
    d.deliver("alice", make_message("one"))
    assert os.stat(d.db_path("alice") + ".log").st_mode & 0o777 == 0o600
    d.journal("alice")  # folds the journal log: makes the state file
    st = os.stat(d.db_path("alice"))
    assert st.st_mode & 0o777 == 0o600
    assert st.st_uid == d.pw.pw_uid
    # the WAL is as private as the file
    st = os.stat(d.db_path("alice") + "-wal")
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == d.pw.pw_uid
    # schema 4: destination_mailbox (2), no AUTOINCREMENT (3),
    # mailbox_proof (4)
    assert db_query(d.db_path("alice"), "PRAGMA user_version")[0][0] == 4


def test_modseqs_stay_internal(maildir_dovecot):
    """The plugin turns on per-message modseqs in the storage. A client that
    did not enable CONDSTORE gets no MODSEQ data; SELECT's OK
    [HIGHESTMODSEQ] response code (which clients that don't know it
    ignore) is what Dovecot sends for any mailbox a CONDSTORE client has
    used."""
    d = maildir_dovecot
    d.deliver("alice", make_message("one"))
    c = d.imap("alice")
    typ, _ = c.select("INBOX")
    assert typ == "OK"
    typ, data = c.fetch("1", "(FLAGS)")
    assert b"MODSEQ" not in data[0]
    typ, data = c.store("1", "+FLAGS", r"(\Seen)")
    assert b"MODSEQ" not in data[0]
    typ, data = c.fetch("1", "(FLAGS)")
    assert b"MODSEQ" not in data[0]
    c.logout()
    # while a client that asks gets them
    c = d.imap("alice")
    c._simple_command("ENABLE", "CONDSTORE")
    c.select("INBOX")
    typ, data = c.fetch("1", "(FLAGS MODSEQ)")
    assert typ == "OK" and b"MODSEQ (" in data[0]
    c.logout()


OLD_JOURNAL_TABLE = """CREATE TABLE journal (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time INTEGER NOT NULL,
  type TEXT NOT NULL,
  mailbox_guid TEXT NOT NULL,
  uidvalidity INTEGER NOT NULL DEFAULT 0,
  uid INTEGER NOT NULL DEFAULT 0,
  message_guid TEXT,
  flags INTEGER,
  keywords TEXT,
  name TEXT,
  old_name TEXT,
  service TEXT,
  modseq INTEGER NOT NULL DEFAULT 0
)"""


def make_old_schema(path, version, sequence=None):
    """Turn a state file back into one of schema 1 or 2 as released: the
    journal with AUTOINCREMENT (sequence: what its sqlite_sequence says,
    as after pruning) and its one index; schema 1 without the migration's
    table."""
    import sqlite3
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE journal RENAME TO journal_new")
    conn.execute(OLD_JOURNAL_TABLE)
    conn.execute("INSERT INTO journal SELECT * FROM journal_new")
    conn.execute("DROP TABLE journal_new")
    conn.execute("CREATE INDEX journal_mailbox_uid ON journal "
                 "(mailbox_guid, uid)")
    if sequence is not None:
        conn.execute("UPDATE sqlite_sequence SET seq = ? "
                     "WHERE name = 'journal'", (sequence,))
    conn.execute("DROP TABLE mailbox_proof")
    if version < 2:
        conn.execute("DROP TABLE destination_mailbox")
    conn.execute("PRAGMA user_version = %d" % version)
    conn.commit()
    conn.close()


def test_schema_upgrade_keeps_the_journal(maildir_dovecot):
    """A state file of schema 1 (the first release) is upgraded in place by
    the next process that writes it (here the reader that folds a
    delivery's journal log into it): same journal_id (destination
    checkpoints stay valid), entries and their seqs kept, the migration's
    table added, the journal
    table rebuilt without AUTOINCREMENT and with its partial indexes."""
    d = maildir_dovecot
    d.deliver("alice", make_message("one"))
    d.deliver("alice", make_message("two"))
    path = d.db_path("alice")
    before = d.journal_entries("alice")
    journal_id = db_query(path, "SELECT value FROM meta WHERE key = "
                          "'journal_id'")[0][0]
    make_old_schema(path, 1)
    # as after a package upgrade: new processes (an LMTP process keeps
    # its users' state files open)
    d.stop()
    d.start()
    d.deliver("alice", make_message("three"))
    d.journal("alice")
    assert db_query(path, "PRAGMA user_version")[0][0] == 4
    assert db_query(path, "SELECT value FROM meta WHERE key = "
                    "'journal_id'")[0][0] == journal_id
    assert db_query(path, "SELECT COUNT(*) FROM destination_mailbox")[0][0] \
        == 0
    sql = db_query(path, "SELECT sql FROM sqlite_master WHERE "
                   "name = 'journal'")[0][0]
    assert "AUTOINCREMENT" not in sql
    assert sorted(r[0] for r in db_query(
        path, "SELECT name FROM sqlite_master WHERE type = 'index' AND "
        "tbl_name = 'journal'")) == ["journal_expunge", "journal_gap"]
    assert db_query(path, "SELECT name FROM sqlite_master WHERE "
                    "type = 'trigger'") == [("journal_keep_newest",)]
    # what a process of the previous version reads as the last seq: the
    # one of the upgrade, not 0
    assert db_query(path, "SELECT seq FROM sqlite_sequence WHERE "
                    "name = 'journal'") == [(before[-1]["seq"],)]
    after = d.journal_entries("alice")
    assert [(e["seq"], e["type"], e["guid"]) for e in after[:-1]] \
        == [(e["seq"], e["type"], e["guid"]) for e in before]
    assert after[-1]["type"] == "save" and \
        after[-1]["seq"] == before[-1]["seq"] + 1


def test_schema_upgrade_of_a_pruned_journal(maildir_dovecot):
    """A schema 2 journal that every destination had taken in full was
    empty, its sequence kept only by AUTOINCREMENT. After the upgrade the
    next entry still comes after every seq given before, and a reader at
    that sequence reads just the new entry."""
    import sqlite3
    d = maildir_dovecot
    d.deliver("alice", make_message("one"))
    path = d.db_path("alice")
    last = d.journal_entries("alice")[-1]["seq"]
    make_old_schema(path, 2, sequence=last + 40)
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM journal")
    conn.commit()
    conn.close()
    d.stop()
    d.start()
    d.deliver("alice", make_message("two"))
    d.journal("alice")
    assert db_query(path, "PRAGMA user_version")[0][0] == 4
    entries = d.journal_entries("alice")
    assert [(e["seq"], e["type"]) for e in entries] == \
        [(last + 40, "gap"), (last + 41, "save")]
    assert "pruned" in entries[0]["name"]
    since = d.journal_entries("alice", since=last + 40)
    assert [e["type"] for e in since] == ["save"]


def test_witness_recorded_after_a_concurrent_entry(maildir_dovecot):
    """A mailbox record (a create, rename or update; before 723e17d also a
    commit without entries) carries the mailbox's witness as (its
    modseq, the journal's last seq). Another process's commit can have
    made a higher modseq and journaled it just before: its entry lies at
    or below the witness' seq. The journal is complete all the same, and
    says so."""
    d = maildir_dovecot
    d.deliver("alice", make_message("m1"))
    d.deliver("alice", make_message("m2"))
    c = d.imap("alice")
    c.select("INBOX")
    c.uid("STORE", "1", "+FLAGS", r"(\Flagged)")
    c.logout()
    d.journal("alice")  # folds the journal log into the state file
    path = d.db_path("alice")
    (seq, modseq, guid), = db_query(
        path, "SELECT seq, modseq, mailbox_guid FROM journal "
        "WHERE type = 'flags'")
    # the witness such a commit (index modseq one below) leaves behind
    import sqlite3
    conn = sqlite3.connect(path)
    conn.execute("UPDATE mailbox SET witness_modseq = ?, witness_seq = ? "
                 "WHERE guid = ?", (modseq - 1, seq, guid))
    conn.commit()
    conn.close()
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "yes", rows["INBOX"]["reason"]
    # while a change without any entry is still found
    subprocess.run(["/usr/bin/doveadm", "-c", d.config, "-o",
                    "mail_plugins=", "flags", "add", "-u", "alice", r"\Seen",
                    "mailbox", "INBOX", "uid", "2"], check=True)
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "no"
    assert "UID 2 changed" in rows["INBOX"]["reason"]


def test_store_that_changes_nothing_writes_nothing(maildir_dovecot):
    """A flag store that changes nothing (the flags were set already)
    leaves the index where the session's journal records reached: the
    session appends nothing to the journal log for it. One that changes a
    flag appends its entry, and the journal stays complete."""
    d = maildir_dovecot
    log, c = inbox_session(d, 3)
    c.uid("STORE", "1", "+FLAGS", r"(\Seen)")
    size = os.path.getsize(log)
    for _ in range(3):
        c.uid("STORE", "1", "+FLAGS", r"(\Seen)")
        c.uid("STORE", "2", "-FLAGS", r"(\Flagged)")
        c.noop()
    assert os.path.getsize(log) == size
    c.uid("STORE", "2", "+FLAGS", r"(\Flagged)")
    assert os.path.getsize(log) > size
    c.logout()
    entries = by_type(d.journal_entries("alice", "INBOX"), "flags")
    assert [e["uid"] for e in entries] == [1, 2], entries
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "yes", rows["INBOX"]["reason"]


def test_index_shows_changes_the_journal_missed(maildir_dovecot):
    """Flag changes and expunges made by a process without the plugin move
    the mailbox index but write no entry: the journal says it is
    incomplete and names the UID, while changes it did record leave it
    complete."""
    d = maildir_dovecot
    for i in range(3):
        d.deliver("alice", make_message("m%d" % i))
    c = d.imap("alice")
    c.create("Other")
    for i in range(2):
        c.append("Other", None, None, make_message("o%d" % i))
    c.select("INBOX")
    c.uid("STORE", "1", "+FLAGS", r"(\Flagged)")
    c.logout()
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "yes", rows["INBOX"]["reason"]
    assert rows["Other"]["complete"] == "yes", rows["Other"]["reason"]

    no_plugin = ["/usr/bin/doveadm", "-c", d.config, "-o", "mail_plugins="]
    subprocess.run(no_plugin + ["flags", "add", "-u", "alice", r"\Seen",
                                "mailbox", "INBOX", "uid", "2"], check=True)
    subprocess.run(no_plugin + ["expunge", "-u", "alice", "mailbox", "Other",
                                "uid", "1"], check=True)
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "no"
    assert "UID 2 changed" in rows["INBOX"]["reason"]
    assert rows["Other"]["complete"] == "no"
    assert "UID 1 was expunged without a journal entry" in \
        rows["Other"]["reason"]


def test_session_keeps_journaling_when_a_fold_replaces_the_log(
        maildir_dovecot):
    """A reader's fold replaces a journal log grown past 64 KB by an empty
    one while an IMAP session has the old one open: the fold seals the old
    log, and the session's next changes, made at once, land in the new
    one. None is lost and the journal stays complete."""
    d = maildir_dovecot
    log, c = inbox_session(d, 20)
    # flag changes until the log reaches the size a fold replaces
    stores, deadline = 0, time.monotonic() + 120
    while os.path.getsize(log) < 64 * 1024 and stores < 3000 and \
            time.monotonic() < deadline:
        typ, _ = c.uid("STORE", str(stores % 20 + 1),
                       "-FLAGS" if (stores // 20) % 2 else "+FLAGS",
                       r"(\Flagged)")
        assert typ == "OK"
        stores += 1
    assert os.path.getsize(log) >= 64 * 1024, stores
    old_inode = os.stat(log).st_ino
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "yes", rows["INBOX"]["reason"]
    assert os.stat(log).st_ino != old_inode
    empty_size = os.path.getsize(log)
    assert empty_size < 1024
    last_seq = int(rows["INBOX"]["last_seq"])

    typ, _ = c.uid("STORE", "1:5", "+FLAGS", r"(\Seen)")
    assert typ == "OK"
    # appended to the log now at the path, not to the replaced one
    assert os.path.getsize(log) > empty_size
    c.logout()
    entries = by_type(d.journal_entries("alice", "INBOX", since=last_seq),
                      "flags")
    assert sorted(e["uid"] for e in entries) == [1, 2, 3, 4, 5], entries
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "yes", rows["INBOX"]["reason"]


def store_flag(d, user, uid, flag):
    """Add flag to INBOX's uid in an IMAP session (journaled)."""
    c = d.imap(user)
    c.select("INBOX")
    c.uid("STORE", str(uid), "+FLAGS", "(%s)" % flag)
    c.logout()


def inbox_row(d, user):
    """The journal command's row of INBOX."""
    return {r["mailbox"]: r for r in d.journal(user)}["INBOX"]


def flag_without_the_plugin(d, user, uid, flag=r"\Seen"):
    subprocess.run([DOVEADM, "-c", d.config, "-o", "mail_plugins=", "flags",
                    "add", "-u", user, flag, "mailbox", "INBOX", "uid",
                    str(uid)], check=True, env=clean_env())


def test_change_without_the_plugin_found_with_no_destination(maildir_dovecot):
    """With no destination registered, the journal command proves a
    mailbox from its own last proof of it, not from the witness that the
    next journaled commit raises: a flag change made without the plugin
    and followed by a journaled change of another message is found."""
    d = maildir_dovecot
    for i in range(3):
        d.deliver("alice", make_message("m%d" % i))
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "yes", rows["INBOX"]
    proof = db_query(d.db_path("alice"), "SELECT modseq, seq FROM "
                     "mailbox_proof")
    assert len(proof) == 1 and proof[0][1] == int(rows["INBOX"]["last_seq"])
    flag_without_the_plugin(d, "alice", 2)
    store_flag(d, "alice", 3, r"\Flagged")
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "no", rows["INBOX"]
    assert "UID 2 changed" in rows["INBOX"]["reason"], rows["INBOX"]
    assert "since the journal command's last proof" in \
        rows["INBOX"]["reason"]
    # it stays found: a failed proof isn't recorded
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "no", rows["INBOX"]
    assert db_query(d.db_path("alice"), "SELECT modseq, seq FROM "
                    "mailbox_proof") == proof


def test_change_after_a_journaled_one_of_the_same_mail(maildir_dovecot):
    """A journaled change of a message, then one made without the plugin
    to the same message: the entry is there, but from before the mail's
    modseq, so the journal command finds the second change."""
    d = maildir_dovecot
    for i in range(2):
        d.deliver("alice", make_message("m%d" % i))
    assert inbox_row(d, "alice")["complete"] == "yes"
    store_flag(d, "alice", 2, r"\Flagged")
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "yes", rows["INBOX"]
    store_flag(d, "alice", 2, r"\Answered")
    flag_without_the_plugin(d, "alice", 2)
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "no", rows["INBOX"]
    assert "UID 2 changed" in rows["INBOX"]["reason"] and \
        "after its last journal entry" in rows["INBOX"]["reason"], \
        rows["INBOX"]


def test_journal_command_on_a_schema_3_file(maildir_dovecot):
    """A state file of schema 3 (no proofs yet) that no writer has upgraded
    yet: the command reads it read-only as before, then upgrades it to
    record its proof."""
    import sqlite3
    d = maildir_dovecot
    d.deliver("alice", make_message("one"))
    d.deliver("alice", make_message("two"))
    path = d.db_path("alice")
    d.journal("alice")
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE mailbox_proof")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "yes", rows["INBOX"]
    assert db_query(path, "PRAGMA user_version")[0][0] == 4
    assert len(db_query(path, "SELECT * FROM mailbox_proof")) == 1


def rotate_index_log(d, user):
    """Three journaled flag changes of INBOX's UID 1 (doveadm with the
    plugin), each rotating its dovecot.index.log: what the log told
    before them is gone."""
    # (0 would keep Dovecot's default of 5 minutes)
    rotate = ["-o", "mail_index_log_rotate_min_size=1",
              "-o", "mail_index_log_rotate_min_age=1s"]
    log = os.path.join(d.home(user), "Maildir", "dovecot.index.log")
    inodes = {os.stat(log).st_ino}
    for flag in (r"\Flagged", r"\Answered", r"\Draft"):
        # older than 1 s in whole seconds of its create stamp
        time.sleep(2.1)
        d.doveadm(*rotate, "flags", "add", "-u", user, flag,
                  "mailbox", "INBOX", "uid", "1")
        inodes.add(os.stat(log).st_ino)
    assert len(inodes) >= 3, inodes


def expunge_without_the_plugin(d, user, uid):
    subprocess.run([DOVEADM, "-c", d.config, "-o", "mail_plugins=",
                    "expunge", "-u", user, "mailbox", "INBOX", "uid",
                    str(uid)], check=True, env=clean_env())


def store_then_find_the_expunge(d, user):
    """Store a flag of INBOX's UID 3 through the plugin; the journal
    command must find that UID 2 was expunged without it. Returns its
    reason."""
    store_flag(d, user, 3, r"\Flagged")
    rows = {r["mailbox"]: r for r in d.journal(user)}
    assert rows["INBOX"]["complete"] == "no", rows["INBOX"]
    assert "UID 2 was expunged without a journal entry" in \
        rows["INBOX"]["reason"], rows["INBOX"]
    return rows["INBOX"]["reason"]


def test_expunge_without_the_plugin_found_after_the_index_log_rotated(
        maildir_dovecot):
    """The journal command keeps the UIDs a mailbox had at its last proof:
    an expunge made without the plugin after the index's log has rotated
    past the proof (the index no longer tells what was expunged since),
    followed by a journaled change, is still found."""
    d = maildir_dovecot
    for i in range(3):
        d.deliver("alice", make_message("m%d" % i))
    assert inbox_row(d, "alice")["complete"] == "yes"
    rotate_index_log(d, "alice")
    expunge_without_the_plugin(d, "alice", 2)
    reason = store_then_find_the_expunge(d, "alice")
    assert "since the journal command's last proof" in reason


def test_first_proof_after_the_index_log_rotated(maildir_dovecot):
    """The journal command's first proof of a mailbox whose index log has
    rotated past the journal's first commit of it: the mails' modseqs
    still tell every change, the log the expunges it still holds. An
    expunge made without the plugin within the log's reach, followed by a
    journaled change, is found."""
    d = maildir_dovecot
    for i in range(3):
        d.deliver("alice", make_message("m%d" % i))
    rotate_index_log(d, "alice")
    expunge_without_the_plugin(d, "alice", 2)
    reason = store_then_find_the_expunge(d, "alice")
    assert "since the journal's first commit" in reason


def test_first_proof_finds_an_expunge_the_index_log_forgot(maildir_dovecot):
    """The journal command's first proof of a mailbox, where the index's
    log has rotated past an expunge made without the plugin: the log no
    longer tells it, but the journal saw the mail saved, so the UID it no
    longer has must have its expunge entry."""
    d = maildir_dovecot
    for i in range(3):
        d.deliver("alice", make_message("m%d" % i))
    expunge_without_the_plugin(d, "alice", 2)
    rotate_index_log(d, "alice")
    reason = store_then_find_the_expunge(d, "alice")
    assert "since the journal's first commit" in reason


def test_commit_while_the_journal_command_runs_is_no_false_no(
        maildir_dovecot):
    """The journal command folds the sessions' journal log when it opens
    the state file, then syncs and proves each mailbox. A session's commit
    in between shows in the index while its entry is still in the log:
    the command folds again and proves the mailbox anew, rather than
    answer "no". strace holds the command's first open of the mailbox's
    index files for 3 s, and the APPEND commits inside that hold."""
    d = maildir_dovecot
    c = d.imap("alice")
    c.create("Late")
    c.append("Late", None, None, make_message("before"))
    c.select("Late")
    rows = {r["mailbox"]: r for r in d.journal("alice", "Late")}
    assert rows["Late"]["complete"] == "yes", rows["Late"]["reason"]

    box_dir = os.path.join(d.home("alice"), "Maildir", ".Late")
    trace = os.path.join(d.root, "journal.strace")
    cmd = ["strace", "-f", "-qq", "-o", trace,
           "-P", os.path.join(box_dir, "dovecot.index"),
           "-P", os.path.join(box_dir, "dovecot.index.log"),
           "-e", "trace=open,openat",
           "-e", "inject=open,openat:delay_enter=3000000:when=1",
           DOVEADM, "-c", d.config, "-f", "json", "mailbox-migrate",
           "journal", "-u", "alice", "Late"]
    proc = subprocess.Popen(cmd, env=clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # strace writes a call's line up to its arguments at its entry,
        # and ends it at its exit: the hold has begun when the line is
        # there, and not yet ended while it lacks its result
        deadline = time.monotonic() + 30
        held = ""
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(trace):
                with open(trace) as f:
                    held = f.read()
                if box_dir in held:
                    break
            time.sleep(0.01)
        assert box_dir in held, held
        typ, _ = c.append("Late", None, None, make_message("during"))
        assert typ == "OK"
        with open(trace) as f:
            first = f.read().split("\n")[0]
        assert box_dir in first and "DELAYED" not in first, \
            "the APPEND did not commit inside the hold: %s" % first
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    c.logout()
    assert proc.returncode == 0, err
    with open(trace) as f:
        assert "DELAYED" in f.read()
    rows = {r["mailbox"]: r for r in json.loads(out)}
    assert rows["Late"]["complete"] == "yes", rows["Late"]["reason"]
    # the appended mail's entry is in the state file, and the row counts
    # it
    saves = [e for e in d.journal_entries("alice", "Late")
             if e["type"] == "save"]
    assert len(saves) == 2, saves
    assert int(rows["Late"]["last_seq"]) == saves[-1]["seq"]
