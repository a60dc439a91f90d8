"""backup:/path/%u destinations and restore, verify, compact, reindex,
against a real Dovecot on 127.0.0.1 and real store files."""

import base64
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time

import pytest

from mmtest import DOVEADM, clean_env, db_query, imap_utf7, make_message, \
    remount_size, small_disk
from test_migrate import make_spool

STORE = "backup:%s/backup/%%u"


def store(d):
    """The backup root, made writable for the mail user as an
    administrator would."""
    root = os.path.join(d.root, "backup")
    if not os.path.exists(root):
        os.mkdir(root)
        d.chown_to_mail_user(root)
    return STORE % d.root


def store_dir(d, user="alice"):
    return os.path.join(d.root, "backup", user)


def data_file(d, user="alice"):
    names = [n for n in os.listdir(store_dir(d, user))
             if n.startswith("data-") and not n.endswith(".tmp")]
    assert len(names) == 1, names
    return os.path.join(store_dir(d, user), names[0])


def index(d, user="alice"):
    return os.path.join(store_dir(d, user), "index.db")


def backup(d, user="alice", *options, check=True):
    return d.migrate(user, store(d), *options, check=check)


def rows(proc):
    return {r["mailbox"]: r for r in json.loads(proc.stdout)}


def restore(d, user="alice", *options, check=True):
    return d.doveadm("mailbox-migrate", "restore", "-u", user, *options,
                     store(d), check=check, fmt="json")


def tool(d, cmd, user="alice", *options, check=True):
    return d.doveadm("mailbox-migrate", cmd, "-u", user, *options, store(d),
                     check=check, fmt="json")


def contents(d, user="alice"):
    """Every mailbox with its GUID and UIDVALIDITY, every message with
    UID, GUID, flags and keywords, dates, POP3 UIDL and a hash of its
    text."""
    out = {}
    for st in d.doveadm_json("mailbox", "status", "-u", user,
                             "guid uidvalidity messages", "*"):
        mails = d.doveadm_json("fetch", "-u", user,
                               "uid guid flags date.received pop3.uidl "
                               "text", "mailbox", st["mailbox"])
        for m in mails:
            m["flags"] = " ".join(sorted(
                f for f in m["flags"].split() if f != "\\Recent"))
            m["text"] = hashlib.sha256(m["text"].encode()).hexdigest()
        out[st["mailbox"]] = (st, mails)
    return out


def tar_list(path):
    cat = "zstdcat" if path.endswith(".zst") else "zcat"
    p = subprocess.run("%s %s | tar tf -" % (cat, path), shell=True,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stderr == "", p.stderr
    return p.stdout.split()


def wipe(d, user="alice"):
    """The user's mail and state are lost."""
    home = d.home(user)
    for name in os.listdir(home):
        path = os.path.join(home, name)
        if os.path.isdir(path):
            shutil.rmtree(path)


def expunge(d, seqs, user="alice"):
    """Expunge INBOX messages seqs over IMAP, as a user does."""
    c = d.imap(user)
    c.select("INBOX")
    c.store(seqs, "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()


def store_rows(d, user="alice"):
    """The index as queries see it (row ids and file places aside)."""
    path = index(d, user)
    return {
        "pass": db_query(path, "SELECT id, time FROM pass ORDER BY id"),
        "body": db_query(path, "SELECT hash, size FROM body ORDER BY hash"),
        "mailbox": db_query(path, "SELECT guid, uidvalidity, name, "
                            "from_pass, until_pass FROM mailbox "
                            "ORDER BY guid, from_pass"),
        "message": db_query(path, "SELECT mailbox_guid, uid, guid, hash, "
                            "size, flags, keywords, received, saved, "
                            "pop3_uidl, pop3_order, from_pass, until_pass "
                            "FROM message ORDER BY mailbox_guid, uid, "
                            "from_pass"),
        "list_state": db_query(path, "SELECT kind, key, value, from_pass, "
                               "until_pass FROM list_state "
                               "ORDER BY kind, key, from_pass"),
    }


def imap_utf7_decode(name):
    def part(m):
        if m.group(1) == "":
            return "&"
        b64 = m.group(1).replace(",", "/")
        return base64.b64decode(b64 + "=" * (-len(b64) % 4)) \
            .decode("utf-16-be")
    return re.sub(r"&([^-]*)-", part, name)


def subscribed(d, user="alice"):
    """The names subscribed, as LSUB shows them (also names of no
    mailbox)."""
    c = d.imap(user)
    typ, data = c.lsub()
    c.logout()
    assert typ == "OK"
    names = []
    for line in data:
        if line is None:
            continue
        m = re.match(rb'\(.*?\) (?:"."|NIL) (.*)$', line)
        name = m.group(1).decode()
        if name.startswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        names.append(imap_utf7_decode(name))
    return sorted(names)


@pytest.mark.parametrize("compression", ["gz", "zstd"])
def test_round_trip(make_dovecot, compression):
    d = make_dovecot(plugin_settings={
        "mailbox_migrate_backup_compression": compression})
    make_spool(d)
    before = contents(d)
    subs = subscribed(d)
    assert len(subs) == 2
    p = backup(d)
    assert "full pass" in p.stderr
    assert rows(p)["(total)"]["copied"] == 12
    # standard tools read the data file
    names = tar_list(data_file(d))
    assert data_file(d).endswith(".gz" if compression == "gz" else ".zst")
    assert "p/1.txt" in names
    # copies of one message are one body
    bodies = [n for n in names if n.startswith("b/")]
    assert len(bodies) == len(set(bodies)) == len(
        db_query(index(d), "SELECT hash FROM body"))

    wipe(d)
    assert subscribed(d) == []
    p = restore(d)
    assert rows(p)["(total)"]["restored"] == 12
    assert rows(p)["(total)"]["failed"] == 0
    assert subscribed(d) == subs
    after = contents(d)
    assert sorted(after) == sorted(before)
    for box in before:
        sa, ma = before[box]
        sb, mb = after[box]
        for key in ("guid", "uidvalidity", "messages"):
            assert sa[key] == sb[key], (box, key)
        assert ma == mb, box
    # restoring again duplicates nothing
    p = restore(d)
    assert rows(p)["(total)"]["restored"] == 0
    assert rows(p)["(total)"]["present"] == 12
    assert contents(d) == after


def test_incremental_passes(maildir_dovecot):
    d = maildir_dovecot
    make_spool(d)
    backup(d)
    size = os.path.getsize(data_file(d))
    # a no-change pass writes nothing
    p = backup(d)
    assert "journal pass" in p.stderr
    assert list(rows(p)) == ["(total)"]
    assert os.path.getsize(data_file(d)) == size
    # a change costs its own bytes only
    c = d.imap("alice")
    c.select("INBOX")
    c.store("1", "+FLAGS", "(\\Flagged)")
    c.store("2", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()
    d.deliver("alice", make_message("new"))
    p = backup(d)
    r = rows(p)["INBOX"]
    assert (r["copied"], r["expunged"], r["flag_changes"]) == (1, 1, 1)
    assert os.path.getsize(data_file(d)) - size < 4096
    assert len(db_query(index(d), "SELECT id FROM pass")) == 2
    # status shows when the user was last backed up
    st = d.doveadm_json("mailbox-migrate", "status", "-u", "alice",
                        store(d))
    assert st[0]["destination"] == store(d).replace("%u", "alice")
    assert int(st[0]["age_secs"]) < 60 and int(st[0]["pending"]) == 0
    # the store lost (or replaced by an empty one): the next pass takes
    # everything again, whatever the state file remembers
    shutil.rmtree(store_dir(d))
    p = backup(d)
    assert "store has no pass yet" in p.stderr
    assert backed_up_guids(d) == sorted(
        m["guid"] for box in contents(d).values() for m in box[1])


def store_files_opened(d, *args):
    """Run a backup pass under strace; the store's files it opened."""
    trace = os.path.join(d.root, "strace.out")
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", trace,
         DOVEADM, "-c", d.config, "-f", "json", "mailbox-migrate", "-u",
         "alice"] +
        list(args) + [store(d)], capture_output=True, text=True,
        timeout=120, env=clean_env())
    assert proc.returncode == 0, proc.stderr
    with open(trace) as f:
        return proc, [line for line in f if store_dir(d) + "/" in line]


def test_no_change_pass_leaves_the_store_alone(maildir_dovecot):
    """A pass with nothing to bring doesn't open the store (its lock, index
    or data file) when the store's files are as the last pass left them;
    once anything else has written to the store, the next pass opens it
    (and so checks it against the state file) again."""
    d = maildir_dovecot
    for i in range(5):
        d.deliver("alice", make_message("m %d" % i))
    backup(d)
    # and the mailbox list index has settled (see test_migrate)
    time.sleep(2.1)
    backup(d)
    before = d.doveadm_json("mailbox-migrate", "status", "-u", "alice",
                            store(d))[0]
    time.sleep(1.1)
    p, opened = store_files_opened(d)
    assert "journal pass" in p.stderr
    assert opened == []
    after = d.doveadm_json("mailbox-migrate", "status", "-u", "alice",
                           store(d))[0]
    # the pass counts as a backup of the user all the same
    assert after["last_pass"] > before["last_pass"]
    # the trace can see the store being opened: --full always opens it
    p, opened = store_files_opened(d, "--full")
    assert any("index.db" in line for line in opened)
    # reindex rewrites the index: the next pass opens the store
    tool(d, "reindex")
    p, opened = store_files_opened(d)
    assert any("index.db" in line for line in opened)
    p, opened = store_files_opened(d)
    assert opened == []
    # a change is brought into the store as always
    d.deliver("alice", make_message("new"))
    p, opened = store_files_opened(d)
    assert rows(p)["INBOX"]["copied"] == 1 and opened != []
    assert backed_up_guids(d) == live_guids(d)


def test_point_in_time(maildir_dovecot):
    d = maildir_dovecot
    for i in range(5):
        d.deliver("alice", make_message("pit %d" % i))
    c = d.imap("alice")
    c.select("INBOX")
    c.store("1", "+FLAGS", "(\\Seen)")
    c.logout()
    backup(d)
    t1 = int(db_query(index(d), "SELECT max(time) FROM pass")[0][0])
    before = contents(d)["INBOX"][1]
    time.sleep(1.1)
    c = d.imap("alice")
    c.select("INBOX")
    c.store("2:3", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.store("1", "-FLAGS", "(\\Seen)")
    c.logout()
    backup(d)
    # as of now: nothing to bring back
    p = restore(d)
    assert rows(p)["(total)"]["restored"] == 0
    # as of the first pass: exactly the two expunged messages
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t1))
    p = restore(d, "alice", "--at", iso)
    assert rows(p)["INBOX"]["restored"] == 2
    after = contents(d)["INBOX"][1]
    assert sorted(m["guid"] for m in after) == \
        sorted(m["guid"] for m in before)
    # they come back at new UIDs (below UIDNEXT is taken), with what
    # they had then
    gone = {m["guid"]: m for m in before if m["uid"] in ("2", "3")}
    back = {m["guid"]: m for m in after if m["guid"] in gone}
    assert sorted(int(m["uid"]) for m in back.values()) == [6, 7]
    for guid, m in back.items():
        del m["uid"], gone[guid]["uid"]
    assert back == gone
    # --to: the mailbox as it was, into a new one, flags of that time
    p = restore(d, "alice", "--at", str(t1), "-m", "INBOX", "--to",
                "Restored")
    assert rows(p)["INBOX (into Restored)"]["restored"] == 5
    copy = contents(d)["Restored"][1]
    assert sorted((m["guid"], m["flags"]) for m in copy) == \
        sorted((m["guid"], m["flags"]) for m in before)
    # before the first backup: nothing to restore
    p = restore(d, "alice", "--at", "2001-01-01", check=False)
    assert p.returncode != 0 and "no backup at or before" in p.stderr
    p = restore(d, "alice", "--at", "yesterday-ish", check=False)
    assert p.returncode == 64


SPECIAL_USE = """
namespace inbox {{
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox Old {{
    special_use = \\Archive
  }}
}}
"""


def test_subscriptions_and_special_use(make_dovecot):
    """Subscriptions (names, which may name no mailbox) and special-use
    flags are kept by every pass, as of each pass, and restored."""
    d = make_dovecot(mail_location="maildir:~/Maildir",
                     extra_config=SPECIAL_USE)
    d.deliver("alice", make_message("one"))
    c = d.imap("alice")
    for name in ("Sent", "Work", imap_utf7("Ünï"), "Old"):
        c.create(name)
        c.subscribe(name)
    c.create("Nowhere")
    c.subscribe("Nowhere")
    c.delete("Nowhere")
    c.logout()
    p = backup(d)
    assert "full pass" in p.stderr
    t1 = db_query(index(d), "SELECT time FROM pass WHERE id = 1")[0][0]
    subs1 = subscribed(d)
    assert subs1 == ["Nowhere", "Old", "Sent", "Work", "Ünï"]
    state = db_query(index(d), "SELECT kind, key, value FROM list_state "
                     "WHERE until_pass IS NULL ORDER BY kind, key")
    guids = {r["mailbox"]: r["guid"] for r in d.doveadm_json(
        "mailbox", "status", "-u", "alice", "guid", "*")}
    assert sorted(state) == sorted(
        [("special_use", guids["Old"], "\\Archive"),
         ("special_use", guids["Sent"], "\\Sent")] +
        [("subscribed", n, "") for n in subs1])
    # a no-change pass writes nothing
    size = os.path.getsize(data_file(d))
    backup(d)
    assert os.path.getsize(data_file(d)) == size

    # changes between passes come from the journal
    time.sleep(1.1)
    c = d.imap("alice")
    c.unsubscribe("Work")
    c.unsubscribe("Nowhere")
    c.subscribe("Later")
    c.rename("Old", "Older")
    c.logout()
    p = backup(d)
    assert "journal pass" in p.stderr
    subs2 = subscribed(d)
    assert db_query(index(d), "SELECT key FROM list_state WHERE kind = "
                    "'subscribed' AND until_pass IS NULL ORDER BY key") == \
        [(n,) for n in subs2]
    # the renamed mailbox has no special use under its new name
    assert db_query(index(d), "SELECT key FROM list_state WHERE kind = "
                    "'special_use' AND until_pass IS NULL") == \
        [(guids["Sent"],)]

    # the store and index agree (reindex gives the same rows)
    want = store_rows(d)
    os.unlink(index(d))
    tool(d, "reindex")
    assert store_rows(d) == want

    # disaster: everything lost; restore as of the first pass
    wipe(d)
    restore(d, "alice", "--at", str(t1))
    assert subscribed(d) == subs1
    # restore adds subscriptions, never removes one
    c = d.imap("alice")
    c.create("Mine")
    c.subscribe("Mine")
    c.logout()
    restore(d)
    assert subscribed(d) == sorted(set(subs1) | set(subs2) | {"Mine"})

    # -m restores the subscriptions of the names it selects; --to
    # subscribes the copy if the mailbox was subscribed
    wipe(d)
    restore(d, "alice", "-m", "Work", "--at", str(t1))
    assert subscribed(d) == ["Work"]
    restore(d, "alice", "-m", "Sent", "--to", "Sent copy")
    assert subscribed(d) == ["Sent copy", "Work"]

    # a configuration that gives Sent no special use: restore says so
    wipe(d)
    d.extra_config = ""
    d.write_config()
    p = restore(d)
    assert re.search(r"Sent had the special-use flags \\Sent when backed "
                     r"up; the namespace configuration gives it none",
                     p.stderr), p.stderr
    assert "Older" not in p.stderr


def test_dedup_and_rename(maildir_dovecot):
    d = maildir_dovecot
    d.deliver("alice", make_message("shared", size=200 * 1024))
    c = d.imap("alice")
    c.create("One")
    c.create("Two")
    c.select("INBOX")
    c.copy("1", "One")
    c.copy("1", "Two")
    c.logout()
    backup(d)
    names = tar_list(data_file(d))
    assert len([n for n in names if n.startswith("b/")]) == 1
    assert len(db_query(index(d), "SELECT hash FROM message")) == 3
    # a rename is one small record, no body again
    size = os.path.getsize(data_file(d))
    time.sleep(1.1)
    c = d.imap("alice")
    c.rename("Two", "Renamed")
    c.logout()
    p = backup(d)
    assert rows(p)["Renamed"]["copied"] == 0
    assert os.path.getsize(data_file(d)) - size < 1024
    names = tar_list(data_file(d))
    assert len([n for n in names if n.startswith("b/")]) == 1
    assert db_query(index(d), "SELECT name FROM mailbox WHERE until_pass "
                    "IS NULL ORDER BY name") == [("INBOX",), ("One",),
                                                 ("Renamed",)]
    # the old name is history: restore --at the first pass knows it
    wipe(d)
    t1 = db_query(index(d), "SELECT time FROM pass WHERE id = 1")[0][0]
    restore(d, "alice", "--at", str(t1))
    boxes = {r["mailbox"] for r in d.doveadm_json(
        "mailbox", "status", "-u", "alice", "messages", "*")}
    assert boxes == {"INBOX", "One", "Two"}


def test_corruption(make_dovecot):
    d = make_dovecot()
    for user in ("alice", "bob"):
        for i in range(40):
            # random bodies: members of about 1 MB, several of them
            d.deliver(user, make_message("c%d" % i, size=100 * 1024))
        backup(d, user)
    assert tool(d, "verify", "bob")
    # flip a byte in the middle of alice's data file
    path = data_file(d)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0x55]))
    p = tool(d, "verify", "alice", check=False)
    assert p.returncode != 0
    row = json.loads(p.stdout)[0]
    assert int(row["problems"]) > 0 and "offset" in row["first_problem"]
    offset = int(row["first_problem"].split()[1].rstrip(":"))
    assert 0 <= offset <= size // 2
    # bob is not affected
    assert json.loads(tool(d, "verify", "bob").stdout)[0]["problems"] == 0
    # every intact message comes back
    wipe(d)
    p = restore(d, check=False)
    assert p.returncode != 0
    total = rows(p)["(total)"]
    assert total["failed"] > 0 and total["restored"] > 0
    assert total["restored"] + total["failed"] == 40
    assert len(d.fetch("alice", "INBOX")) == total["restored"]
    # reindex keeps what it can read, and says by its exit code that
    # something could not be
    p = tool(d, "reindex", "alice", check=False)
    assert p.returncode == 65, p.stderr
    assert int(json.loads(p.stdout)[0]["bad_members"]) > 0

    # a truncated file: verify names the place
    os.truncate(data_file(d, "bob"), os.path.getsize(data_file(d, "bob"))
                - 1000)
    p = tool(d, "verify", "bob", check=False)
    assert p.returncode != 0
    assert "offset" in json.loads(p.stdout)[0]["first_problem"]
    p = tool(d, "verify", "bob", "--quick", check=False)
    assert p.returncode != 0


def test_reindex_gives_the_same_index(maildir_dovecot):
    d = maildir_dovecot
    make_spool(d)
    backup(d)
    c = d.imap("alice")
    c.select("INBOX")
    c.store("1:3", "+FLAGS", "(\\Flagged work)")
    c.store("4", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.rename(imap_utf7("Sp ace"), "Elsewhere")
    c.delete(imap_utf7("Amp & Co"))
    c.logout()
    d.deliver("alice", make_message("after"))
    backup(d)
    want = store_rows(d)
    os.unlink(index(d))
    for suffix in ("-wal", "-shm"):
        if os.path.exists(index(d) + suffix):
            os.unlink(index(d) + suffix)
    p = tool(d, "verify", "alice", check=False)
    assert p.returncode != 0 and "reindex" in p.stderr
    r = json.loads(tool(d, "reindex").stdout)[0]
    assert r["passes"] == 2 and r["bad_members"] == 0
    assert store_rows(d) == want
    assert json.loads(tool(d, "verify").stdout)[0]["problems"] == 0
    # a later pass goes on from the rebuilt index
    p = backup(d)
    assert rows(p)["(total)"]["copied"] == 0


def test_compact(maildir_dovecot):
    d = maildir_dovecot
    for i in range(30):
        d.deliver("alice", make_message("k%d" % i, size=20 * 1024))
    backup(d)
    expunge(d, "1:20")
    backup(d)
    old = os.path.getsize(data_file(d))
    # with all history kept nothing is dead
    r = json.loads(tool(d, "compact").stdout)[0]
    assert r["compacted"] == "no"
    # history older than 0 days goes: 20 of 30 bodies dead
    r = json.loads(tool(d, "compact", "alice", "--keep", "0").stdout)[0]
    assert r["compacted"] == "yes" and int(r["dirty_percent"]) >= 60
    assert int(r["new_bytes"]) < old * 0.6
    assert data_file(d).endswith("data-2.tar.gz")
    assert json.loads(tool(d, "verify").stdout)[0]["problems"] == 0
    assert len([n for n in tar_list(data_file(d))
                if n.startswith("b/")]) == 10
    # history before the compaction can't be restored, the rest can
    p = restore(d, "alice", "--at", "1", check=False)
    assert p.returncode != 0
    wipe(d)
    assert rows(restore(d))["(total)"]["restored"] == 10
    # the compacted store reindexes to the same index
    want = store_rows(d)
    os.unlink(index(d))
    tool(d, "reindex")
    assert store_rows(d) == want
    # and takes further passes
    backup(d, "alice", "--full")
    assert json.loads(tool(d, "verify").stdout)[0]["problems"] == 0


def test_compact_long_history(maildir_dovecot):
    """A history of many messages (a snapshot record far larger than one
    buffer), then a second compaction with a longer --keep: the store
    stays valid and the last pass restores whole."""
    d = maildir_dovecot
    lmtp = d.lmtp()
    for i in range(150):
        lmtp.sendmail("s@example.com", ["alice"],
                      make_message("h%d" % i, size=2048))
    lmtp.quit()
    c = d.imap("alice")
    c.create(imap_utf7("Archive/Ünïcödé"))
    c.select("INBOX")
    c.copy("1:50", imap_utf7("Archive/Ünïcödé"))
    c.store("51:150", "+FLAGS", "(\\Seen $Label1)")
    c.logout()
    backup(d)
    expunge(d, "1:120")
    backup(d)
    r = json.loads(tool(d, "compact", "alice", "--keep", "0").stdout)[0]
    assert r["compacted"] == "yes"
    assert json.loads(tool(d, "verify").stdout)[0]["problems"] == 0
    want = contents(d)
    # more expunged, then a compaction keeping 10 years
    expunge(d, "1:10")
    backup(d)
    tool(d, "compact", "alice", "--keep", "3650")
    assert restore(d, "alice", "--at", "1", check=False).returncode != 0
    assert json.loads(tool(d, "verify").stdout)[0]["problems"] == 0
    # the last pass comes back whole
    wipe(d)
    restore(d)
    now = contents(d)
    assert len(now["INBOX"][1]) == 20
    assert now["Archive/Ünïcödé"] == want["Archive/Ünïcödé"]


def test_store_behind_the_state_file(maildir_dovecot):
    """A store put back from an older copy (or reindexed after losing its
    last passes): the next pass notices and compares in full, so nothing
    the lost passes held stays missing."""
    d = maildir_dovecot
    for i in range(5):
        d.deliver("alice", make_message("first %d" % i))
    backup(d)
    old_copy = os.path.join(d.root, "old-store")
    shutil.copytree(store_dir(d), old_copy)
    for i in range(3):
        d.deliver("alice", make_message("second %d" % i))
    backup(d)
    shutil.rmtree(store_dir(d))
    shutil.copytree(old_copy, store_dir(d))
    for root, dirs, files in os.walk(store_dir(d)):
        for name in dirs + files:
            d.chown_to_mail_user(os.path.join(root, name))
    d.chown_to_mail_user(store_dir(d))
    p = backup(d)
    assert "full pass" in p.stderr and "state file remembers" in p.stderr
    assert backed_up_guids(d) == live_guids(d)
    # and the one after is a journal pass again
    assert "journal pass" in backup(d).stderr


def run_killed(d, args, delay):
    """Start doveadm, kill -9 it after delay seconds (if still running)."""
    proc = subprocess.Popen([DOVEADM, "-c", d.config] + args,
                            env=clean_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return proc.returncode


def backed_up_guids(d, user="alice"):
    return sorted(g for (g,) in db_query(
        index(d, user), "SELECT guid FROM message WHERE until_pass IS NULL"))


def live_guids(d, user="alice"):
    return sorted(m["guid"] for m in d.fetch(user, "INBOX", "guid"))


@pytest.mark.parametrize("trial", range(3))
def test_kill_during_pass_and_compact(maildir_dovecot, trial):
    d = maildir_dovecot
    rnd = random.Random(trial)
    for i in range(60):
        d.deliver("alice", make_message("kill%d %d" % (trial, i),
                                        size=rnd.randint(1, 300) * 1024))
    run_killed(d, ["mailbox-migrate", "-u", "alice", store(d)],
               rnd.uniform(0.05, 0.6))
    if os.path.exists(index(d)):
        assert json.loads(tool(d, "verify").stdout)[0]["problems"] == 0
    backup(d)
    assert backed_up_guids(d) == live_guids(d)
    assert json.loads(tool(d, "verify").stdout)[0]["problems"] == 0

    expunge(d, "1:40")
    backup(d)
    want = backed_up_guids(d)
    run_killed(d, ["mailbox-migrate", "compact", "-u", "alice", "--keep",
                   "0", store(d)], rnd.uniform(0.01, 0.3))
    assert json.loads(tool(d, "verify").stdout)[0]["problems"] == 0
    assert backed_up_guids(d) == want
    tool(d, "compact", "alice", "--keep", "0")
    assert json.loads(tool(d, "verify").stdout)[0]["problems"] == 0
    assert backed_up_guids(d) == want == live_guids(d)
    tar_list(data_file(d))


def random_body(rnd, size):
    """Text that compression can't shrink (base64 of random bytes)."""
    raw = bytes(rnd.getrandbits(8) for _ in range(size * 3 // 4))
    b64 = base64.b64encode(raw).decode()
    return "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76)) + "\n"


def test_disk_full_mid_pass_then_rerun(maildir_dovecot):
    """The store's disk fills during a pass: the pass fails saying so and
    claims nothing, the store stays what the last good pass left (valid,
    restorable), and the next pass with room left brings the rest."""
    d = maildir_dovecot
    rnd = random.Random(7)
    for i in range(3):
        d.deliver("alice", make_message("early %d" % i,
                                        body=random_body(rnd, 20 * 1024)))
    with small_disk(d, os.path.join(d.root, "backup"), "1m") as root:
        backup(d)
        first = backed_up_guids(d)
        assert first == live_guids(d) and len(first) == 3
        good_size = os.path.getsize(data_file(d))
        for i in range(8):
            d.deliver("alice", make_message("late %d" % i,
                                            body=random_body(rnd, 200 * 1024)))
        p = backup(d, check=False)
        assert p.returncode != 0 and "Panic" not in p.stderr, p.stderr
        assert "space" in p.stderr.lower(), p.stderr
        # nothing of the failed pass counts: no row claims a copy, the
        # summary says 0, the data file is cut back; the store is what
        # the first pass left, valid and restorable
        assert [r for r in json.loads(p.stdout)
                if r["mailbox"] != "(total)"] == [], p.stdout
        assert rows(p)["(total)"]["copied"] == 0
        assert re.search(r"pass to backup:.*: 0 mailboxes, 0 copied",
                         p.stderr), p.stderr
        assert os.path.getsize(data_file(d)) == good_size
        assert backed_up_guids(d) == first
        assert json.loads(tool(d, "verify").stdout)[0]["problems"] == 0
        r = restore(d, "alice", "-m", "INBOX", "--to", "Early")
        assert r.returncode == 0
        assert sorted(m["guid"] for m in d.fetch("alice", "Early",
                                                  "guid")) == first
        c = d.imap("alice")
        c.delete("Early")
        c.logout()
        remount_size(root, "16m")
        backup(d)
        assert backed_up_guids(d) == live_guids(d)
        assert len(live_guids(d)) == 11
        assert json.loads(tool(d, "verify").stdout)[0]["problems"] == 0
        tar_list(data_file(d))


def test_bad_input(maildir_dovecot):
    d = maildir_dovecot
    d.deliver("alice", make_message("x"))
    # relative path, inside the user's mail
    p = d.migrate("alice", "backup:relative/%u", check=False)
    assert p.returncode != 0 and "absolute" in p.stderr
    p = d.migrate("alice", "backup:~/Maildir/backup", check=False)
    assert p.returncode != 0 and "inside" in p.stderr
    assert not os.path.exists(os.path.join(d.home("alice"), "Maildir",
                                           "backup"))
    # cutover is for mail locations
    p = d.migrate("alice", store(d), "--cutover", check=False)
    assert p.returncode == 64
    # unknown user, no store yet
    p = restore(d, "nosuchuser", check=False)
    assert p.returncode != 0
    p = restore(d, check=False)
    assert p.returncode != 0 and "doesn't exist" in p.stderr
    # a dry run makes no store
    p = d.migrate("alice", store(d), "--dry-run")
    assert not os.path.exists(store_dir(d))
    backup(d)
    # --to needs one mailbox
    p = restore(d, "alice", "--to", "X", check=False)
    assert p.returncode == 64
    # another process holds the store: a pass with nothing to bring
    # doesn't need it; one with mail to bring says so and fails
    import fcntl
    with open(os.path.join(store_dir(d), "lock")) as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        p = backup(d, check=False)
        assert p.returncode == 0 and "0 copied" in p.stderr
        d.deliver("alice", make_message("y"))
        c = d.imap("alice")
        c.create("Other")
        c.append("Other", None, None, make_message("z"))
        c.logout()
        t0 = time.monotonic()
        p = backup(d, check=False)
        assert p.returncode != 0 and "locked" in p.stderr
        # one wait for the lock (5 s), not one per mailbox to bring
        assert time.monotonic() - t0 < 9
    p = backup(d)
    assert "2 copied" in p.stderr


def test_all_users_bounded_per_device(make_dovecot):
    users = ("alice", "bob", "carol", "dave")
    d = make_dovecot(users=users)
    for u in users:
        lmtp = d.lmtp()
        for i in range(30):
            lmtp.sendmail("s@example.com", [u],
                          make_message("%s %d" % (u, i), size=64 * 1024))
        lmtp.quit()
    # all the users' mail is on one device: with one worker allowed on
    # it, the other workers wait for it
    p = d.doveadm("-o", "plugin/mailbox_migrate_workers=4",
                  "-o", "plugin/mailbox_migrate_device_workers=1",
                  "mailbox-migrate", "-A", store(d), fmt="json")
    assert "Waited" in p.stderr and "workers allowed on device" in p.stderr
    for u in users:
        assert len(backed_up_guids(d, u)) == 30
    # unbounded, nobody waits
    for u in users:
        d.deliver(u, make_message("more"))
    p = d.doveadm("-o", "plugin/mailbox_migrate_workers=4",
                  "-o", "plugin/mailbox_migrate_device_workers=4",
                  "mailbox-migrate", "-A", store(d), fmt="json")
    assert "Waited" not in p.stderr
    assert sum(r["copied"] for r in json.loads(p.stdout)
               if r["mailbox"] == "(total)") == 4
    # the morning report: users per hour of age of their last backup
    p = d.doveadm("mailbox-migrate", "status", "-A", store(d))
    assert "age of last pass (hours)" in p.stderr
    assert [l.split() for l in p.stderr.splitlines()][1] == ["0", "4"]
