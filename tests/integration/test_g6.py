"""G6: when the state file can't be written, IMAP, POP3 and LMTP behave as
without the plugin, the failure is logged once per session, and the
journal reports itself incomplete afterwards."""

import contextlib
import glob
import os
import re
import sqlite3
import subprocess
import time

import pytest

from mmtest import corrupt_state_file, make_message


def state_dir_dovecot(make_dovecot, **settings):
    """A Dovecot whose state files live on their own small filesystem (or
    at least in their own directory), so that it can be made read-only or
    full without touching the mail."""
    def setup(d):
        d.plugin_settings.update(settings)
        d.plugin_settings["mailbox_migrate_db"] = \
            "%s/statedb/%%u/state.db" % d.root
        d.write_config()
        mnt = os.path.join(d.root, "statedb")
        os.makedirs(mnt)
        d.state_tmpfs = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs",
             mnt], capture_output=True).returncode == 0
        d.chown_to_mail_user(mnt)
        for user in d.users:
            path = os.path.join(mnt, user)
            os.makedirs(path)
            d.chown_to_mail_user(path)
    return make_dovecot(setup=setup)


def unmount_state(d):
    d.stop()
    if d.state_tmpfs:
        subprocess.run(["umount", "-l", os.path.join(d.root, "statedb")],
                       capture_output=True)


@contextlib.contextmanager
def state_read_only(d):
    """A read-only filesystem under the state file, or if no filesystem can
    be mounted here, a read-only file in a read-only directory. Dovecot is
    restarted around it: its processes keep state files open between
    sessions, and a filesystem with files open for writing can't be made
    read-only by a remount (one that fails does that by itself)."""
    mnt = os.path.join(d.root, "statedb")
    state = os.path.join(mnt, "alice")
    files = glob.glob(os.path.join(state, "*"))
    d.stop()
    if d.state_tmpfs:
        subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
    else:
        for path in files:
            os.chmod(path, 0o400)
        os.chmod(state, 0o500)
    d.start()
    try:
        yield
    finally:
        d.stop()
        if d.state_tmpfs:
            subprocess.run(["mount", "-o", "remount,rw", mnt], check=True)
        else:
            os.chmod(state, 0o700)
            for path in files:
                os.chmod(path, 0o600)
        d.start()


@contextlib.contextmanager
def state_file_locked(d, user="alice"):
    """Another process holds the user's state file's write lock."""
    # a reader folds the journal log, making the state file (as the mail
    # user: sqlite3 here would make an empty one, as root)
    d.journal(user)
    assert os.path.exists(d.db_path(user))
    locker = sqlite3.connect(d.db_path(user), timeout=5,
                             isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        locker.execute("ROLLBACK")
        locker.close()


def mm_errors(d, service, user="alice"):
    # what a delivery's mail user logs at its end is logged by LMTP
    # under the recipient ("rcpt alice") rather than the user's prefix
    return [line for line in d.log().splitlines()
            if re.search(r"%s\((%s|\d+)\).*Error: .*(rcpt %s: )?"
                         r"mailbox-migrate: " % (service, user, user), line)
            and ("%s(%s)" % (service, user) in line or
                 "rcpt %s:" % user in line)]


def clients_still_work(d, tag, user="alice"):
    """LMTP 250, IMAP APPEND and STORE OK, POP3 lists the mail."""
    assert d.deliver(user, make_message("lmtp " + tag)) == 250
    c = d.imap(user)
    typ, data = c.append("INBOX", r"(\Flagged)", None,
                         make_message("imap " + tag))
    assert typ == "OK", data
    typ, data = c.append("INBOX", None, None, make_message("imap2 " + tag))
    assert typ == "OK", data
    c.select("INBOX")
    typ, data = c.store("1", "+FLAGS", r"(\Seen)")
    assert typ == "OK", data
    c.logout()
    p = d.pop3(user)
    assert len(p.uidl()[1]) >= 3
    p.quit()


def inbox_row(d, user="alice"):
    return {r["mailbox"]: r for r in d.journal(user)}["INBOX"]


def test_read_only_state_file(make_dovecot):
    d = state_dir_dovecot(make_dovecot)
    try:
        assert d.deliver("alice", make_message("before")) == 250
        assert inbox_row(d)["complete"] == "yes"
        with state_read_only(d):
            clients_still_work(d, "read-only")
            # the reader says why it can't read, and changes nothing
            proc = d.doveadm("mailbox-migrate", "journal", "-u", "alice",
                             check=False)
            assert proc.returncode != 0 or "no" in proc.stdout
        row = inbox_row(d)
        assert row["complete"] == "no"
        assert "could not be journaled" in row["reason"]
        # logged, once per session
        imap_errors = mm_errors(d, "imap")
        assert len(imap_errors) == 1, imap_errors
        assert "journal marked incomplete" in imap_errors[0]
        assert len(mm_errors(d, "lmtp")) == 1
        # writable again: new changes are journaled, the loss stays known
        assert d.deliver("alice", make_message("after")) == 250
        row = inbox_row(d)
        assert row["complete"] == "no"
        assert int(row["last_seq"]) == 3
    finally:
        unmount_state(d)


def test_corrupt_state_file(make_dovecot):
    d = make_dovecot(mail_location="maildir:~/Maildir")
    assert d.deliver("alice", make_message("before")) == 250
    d.journal("alice")  # folds the delivery: the state file exists
    path = d.db_path("alice")
    corrupt_state_file(path)
    clients_still_work(d, "corrupt")
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["(total)"]["complete"] == "no"
    assert "corrupt" in rows["INBOX"]["reason"]
    moved = glob.glob(path + ".corrupt-*")
    assert len(moved) == 1
    # found by the first session that opened the state file (deliveries
    # only append to the journal log)
    errors = mm_errors(d, "lmtp") + mm_errors(d, "imap") + \
        mm_errors(d, "pop3")
    assert any("is corrupt" in line for line in errors), d.log()
    # the new journal works again for what follows
    entries = d.journal_entries("alice")
    assert entries[0]["type"] == "gap"
    assert "corrupt" in entries[0]["name"]
    # after it, what the journal log still held (the mailbox's creation
    # and the first delivery, folded again) and the clients' saves
    types = [e["type"] for e in entries[1:]]
    assert types.count("save") >= 3, types


def test_locked_past_timeout(make_dovecot):
    d = make_dovecot(plugin_settings={
        "mailbox_migrate_db_lock_timeout": "300 ms"})
    assert d.deliver("alice", make_message("before")) == 250
    with state_file_locked(d):
        start = time.monotonic()
        clients_still_work(d, "locked")
        # the clients waited for the lock timeout, not for the lock
        assert time.monotonic() - start < 20
    row = inbox_row(d)
    assert row["complete"] == "no", row
    # the seen UIDNEXT of the POP3 login is written to the state file:
    # that write failed, and said why
    assert any("locked" in line
               for svc in ("imap", "pop3", "lmtp")
               for line in mm_errors(d, svc)), d.log()
    # the saves went to the journal log and were folded since: nothing
    # of them is lost
    types = [e["type"] for e in d.journal_entries("alice")]
    assert types.count("save") >= 3, types


def test_session_end_does_not_wait_for_the_state_file(make_dovecot):
    """A delivery's journal entries go to the journal log; folding them
    into a state file another process holds is left to that process or the
    next reader, so the delivery doesn't wait for the lock."""
    d = make_dovecot(plugin_settings={
        "mailbox_migrate_db_lock_timeout": "4 s"})
    assert d.deliver("alice", make_message("before")) == 250
    with state_file_locked(d):
        for i in range(3):
            start = time.monotonic()
            assert d.deliver("alice", make_message("held %d" % i)) == 250
            assert time.monotonic() - start < 2, "waited for the lock"
    # nothing lost, nothing marked lost: the reader folded the log
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "yes", rows
    types = [e["type"] for e in d.journal_entries("alice")]
    assert types.count("save") == 4, types
    assert mm_errors(d, "lmtp") == [], d.log()


def test_disk_full(make_dovecot):
    d = state_dir_dovecot(make_dovecot)
    if not d.state_tmpfs:
        unmount_state(d)
        pytest.skip("can't mount a small filesystem here")
    try:
        # bob's state file doesn't exist yet: it can't be made on a full
        # disk (a file that exists may still have room for a while)
        filler = os.path.join(d.root, "statedb", "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        with contextlib.suppress(OSError):
            for _ in range(1024):
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        clients_still_work(d, "full", user="bob")
        assert any("full" in line or "disk" in line
                   for line in mm_errors(d, "lmtp", "bob")), d.log()
        os.unlink(filler)
        assert inbox_row(d, "bob")["complete"] == "no"
        # with room again, new changes are journaled; the loss stays known
        assert d.deliver("bob", make_message("after")) == 250
        row = inbox_row(d, "bob")
        assert row["complete"] == "no", row
        assert int(row["entries"]) >= 1
    finally:
        unmount_state(d)


def test_bad_setting_disables_but_never_fails(make_dovecot):
    d = make_dovecot(plugin_settings={
        "mailbox_migrate_db_lock_timeout": "soon"})
    clients_still_work(d, "bad setting")
    assert any("mailbox_migrate_db_lock_timeout" in line
               for line in d.log().splitlines())
