"""doveadm mailbox-migrate seen / journal: output formats, user selection,
and bad input (a clear line on stderr, a nonzero exit, nothing written)."""

import hashlib
import os
import sqlite3
import time

from mmtest import corrupt_state_file, db_query, imap_uidnext_from_select, \
    make_message


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_formats_and_all_users(maildir_dovecot):
    d = maildir_dovecot
    d.deliver("alice", make_message("a"))
    d.deliver("bob", make_message("b"))
    c = d.imap("bob")
    imap_uidnext_from_select(c, "INBOX")
    c.logout()
    rows = d.doveadm_json("mailbox-migrate", "seen", "-A")
    by_user = {(r["username"], r["mailbox"]): r for r in rows}
    assert int(by_user[("bob", "INBOX")]["seen_uidnext"]) == 2
    assert int(by_user[("alice", "INBOX")]["seen_uidnext"]) == 0
    assert set(rows[0]) == {"username", "mailbox", "mailbox_guid",
                            "uidvalidity", "uidnext", "seen_uidnext",
                            "seen_at", "seen_by"}
    tab = d.doveadm("mailbox-migrate", "journal", "-u", "alice",
                    fmt="tab").stdout.splitlines()
    assert tab[0].split("\t") == ["mailbox", "mailbox_guid", "first_seq",
                                  "last_seq", "entries", "complete",
                                  "incomplete_since", "reason"]
    assert tab[-1].startswith("(total)\t")
    table = d.doveadm("mailbox-migrate", "seen", "-u", "bob").stdout
    assert "seen_uidnext" in table.splitlines()[0]
    listed = d.journal_entries("alice", since=1)
    assert [e["seq"] for e in listed] == [2]
    flow = d.doveadm("mailbox-migrate", "journal", "-u", "alice", "--list",
                     fmt="flow").stdout
    assert "type=save" in flow


def test_journal_mailbox_filter(maildir_dovecot):
    d = maildir_dovecot
    c = d.imap("alice")
    c.create("Work")
    c.append("Work", None, None, make_message("w"))
    c.logout()
    d.deliver("alice", make_message("i"))
    rows = d.journal("alice", "Work")
    assert [r["mailbox"] for r in rows] == ["Work", "(total)"]
    entries = d.journal_entries("alice", "Work")
    assert {e["mailbox"] for e in entries} == {"Work"}
    assert [e["type"] for e in entries] == ["create", "save"]
    # masks
    assert set(d.seen("alice", "W*")) == {"Work"}


def test_unknown_user(maildir_dovecot):
    d = maildir_dovecot
    for verb in ("seen", "journal"):
        proc = d.doveadm("mailbox-migrate", verb, "-u", "nosuchuser",
                         check=False)
        assert proc.returncode == 67, proc
        assert "nosuchuser" in proc.stderr
        assert proc.stdout.strip() == "" or \
            len(proc.stdout.strip().splitlines()) <= 1
    assert not os.path.exists(d.home("nosuchuser"))


def test_all_users_without_auth_is_one_clear_line(maildir_dovecot,
                                                  tmp_path):
    """-A lists the users through the auth service of the running Dovecot
    (and -F looks each one up there). When that can't be reached, every
    command says so in one line and exits 75 (EX_TEMPFAIL), writing
    nothing; doveadm's own -A and -F panic there (Dovecot 2.3's
    auth-master asserts) and leave a core dump."""
    d = maildir_dovecot
    d.deliver("alice", make_message("before"))
    journal_before = d.journal("alice")
    nowhere = tmp_path / "run"
    nowhere.mkdir()
    dest = tmp_path / "dest"
    users = tmp_path / "users"
    users.write_text("alice\nbob\n")
    for args in (["mailbox-migrate", "-A", "maildir:%s/%%u" % dest],
                 ["mailbox-migrate", "-F", str(users),
                  "maildir:%s/%%u" % dest],
                 ["mailbox-migrate", "-A", "backup:%s/%%u" % dest],
                 ["mailbox-migrate", "seen", "-A"],
                 ["mailbox-migrate", "journal", "-A"],
                 ["mailbox-migrate", "status", "-A"],
                 ["mailbox-migrate", "verify", "-A", "backup:%s/%%u" % dest]):
        proc = d.doveadm("-o", "base_dir=%s" % nowhere, *args, check=False)
        assert proc.returncode == 75, proc
        assert "Can't reach the auth service" in proc.stderr, proc.stderr
        assert str(nowhere) in proc.stderr
        assert "Panic" not in proc.stderr and "backtrace" not in \
            proc.stderr, proc.stderr
        assert proc.stdout.strip() == "", proc.stdout
    assert not dest.exists()
    assert d.journal("alice") == journal_before
    # with the auth service reachable, the same -A works
    assert d.doveadm("mailbox-migrate", "journal", "-A").returncode == 0


def test_unknown_and_odd_mailboxes(maildir_dovecot):
    d = maildir_dovecot
    d.deliver("alice", make_message("a"))
    d.journal("alice")  # folds the delivery's journal log: state file made
    before = file_digest(d.db_path("alice"))
    for name in ("NoSuch", "..", "a/../b", "with space"):
        for verb in ("seen", "journal"):
            proc = d.doveadm("mailbox-migrate", verb, "-u", "alice", name,
                             check=False)
            assert proc.returncode != 0, (verb, name, proc)
            errors = [line for line in proc.stderr.splitlines() if line]
            assert len(errors) == 1, errors
            assert "doesn't exist" in errors[0] or "nvalid" in errors[0]
    assert file_digest(d.db_path("alice")) == before


def test_corrupt_state_file_is_reported_not_touched(maildir_dovecot):
    d = maildir_dovecot
    d.deliver("alice", make_message("a"))
    d.journal("alice")  # folds the delivery's journal log: state file made
    path = d.db_path("alice")
    corrupt_state_file(path)
    digest = file_digest(path)
    for verb in ("seen", "journal"):
        proc = d.doveadm("mailbox-migrate", verb, "-u", "alice",
                         check=False)
        assert proc.returncode != 0
        assert "state file" in proc.stderr and "corrupt" in proc.stderr, \
            proc.stderr
    assert file_digest(path) == digest
    assert not [f for f in os.listdir(os.path.dirname(path))
                if ".corrupt-" in f]


def test_no_state_yet(maildir_dovecot):
    d = maildir_dovecot
    c = d.imap("bob")
    c.create("Empty")
    c.logout()
    # the session left its journal log (and a state file, if a SELECT or
    # STATUS wrote a seen UIDNEXT): both lost
    path = d.db_path("bob")
    assert os.path.exists(path + ".log")
    for suffix in ("", "-wal", "-shm", ".log"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    rows = {r["mailbox"]: r for r in d.journal("bob")}
    assert rows["Empty"]["complete"] == "yes"
    assert int(rows["(total)"]["entries"]) == 0
    seen = d.seen("bob")
    assert int(seen["Empty"]["seen_uidnext"]) == 0
    assert not os.path.exists(d.db_path("bob"))


def test_usage_lists_subcommands(maildir_dovecot):
    d = maildir_dovecot
    proc = d.doveadm("mailbox-migrate", check=False)
    assert proc.returncode == 64
    text = proc.stdout + proc.stderr
    assert "<destination>" in text and "mailbox-migrate <command>" in text
    assert "status, seen, journal" in text
    proc = d.doveadm("mailbox-migrate", "journal", "-u", "alice", "--since",
                     "x", check=False)
    assert proc.returncode != 0
