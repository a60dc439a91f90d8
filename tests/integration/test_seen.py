"""The seen UIDNEXT: raised by what IMAP and POP3 clients are shown, and by
nothing else."""

import os
import socket
import time

from mmtest import HOST, PASSWORD, db_query, imap_uidnext_from_select, \
    make_message, read_bytes


def seen_uidnext(d, user, mailbox):
    return int(d.seen(user, mailbox)[mailbox]["seen_uidnext"])


def seen_row(d, user, mailbox):
    return d.seen(user, mailbox)[mailbox]


def test_select_noop_and_lmtp(dovecot):
    d = dovecot
    for i in range(3):
        d.deliver("alice", make_message("m%d" % i))
    # delivery shows nothing to any client
    assert seen_uidnext(d, "alice", "INBOX") == 0
    c = d.imap("alice")
    assert imap_uidnext_from_select(c, "INBOX") == 4
    row = seen_row(d, "alice", "INBOX")
    assert int(row["seen_uidnext"]) == 4 and row["seen_by"] == "imap"
    assert int(row["uidnext"]) == 4
    d.deliver("alice", make_message("new"))
    assert seen_uidnext(d, "alice", "INBOX") == 4
    # NOOP announces the new mail
    c.untagged_responses.pop("EXISTS", None)
    typ, _ = c.noop()
    assert c.response("EXISTS")[1][-1] == b"4"
    assert seen_uidnext(d, "alice", "INBOX") == 5
    c.logout()


def test_idle_announces_new_mail(dovecot):
    d = dovecot
    d.deliver("alice", make_message("first"))
    s = socket.create_connection((HOST, d.imap_port), timeout=30)
    f = s.makefile("rb")
    try:
        f.readline()
        s.sendall(b"a LOGIN alice %s\r\nb SELECT INBOX\r\n" %
                  PASSWORD.encode())
        while not f.readline().startswith(b"b OK"):
            pass
        assert seen_uidnext(d, "alice", "INBOX") == 2
        s.sendall(b"c IDLE\r\n")
        assert f.readline().startswith(b"+")
        d.deliver("alice", make_message("while idling"))
        deadline = time.monotonic() + 20
        line = b""
        while b"EXISTS" not in line and time.monotonic() < deadline:
            line = f.readline()
        assert line.strip() == b"* 2 EXISTS"
        s.sendall(b"DONE\r\n")
        while not f.readline().startswith(b"c OK"):
            pass
        assert seen_uidnext(d, "alice", "INBOX") == 3
        s.sendall(b"d LOGOUT\r\n")
    finally:
        s.close()


def test_status_appenduid_copyuid(dovecot):
    d = dovecot
    d.deliver("alice", make_message("m"))
    c = d.imap("alice")
    for name in ("Status", "Sent", "Copies"):
        c.create(name)
    c.append("Status", None, None, make_message("s1"))
    c.append("Status", None, None, make_message("s2"))
    # STATUS on a mailbox that is not selected
    typ, data = c.status("Status", "(UIDNEXT MESSAGES)")
    assert typ == "OK"
    assert seen_uidnext(d, "alice", "Status") == 3
    # APPENDUID tells the client the new UID
    typ, data = c.append("Sent", None, None, make_message("sent"))
    assert b"APPENDUID" in data[0]
    assert seen_uidnext(d, "alice", "Sent") == 2
    # COPYUID in the target mailbox
    c.select("INBOX")
    typ, data = c.uid("COPY", "1", "Copies")
    assert typ == "OK"
    assert seen_uidnext(d, "alice", "Copies") == 2
    c.logout()


def test_pop3_login(dovecot):
    d = dovecot
    for i in range(2):
        d.deliver("bob", make_message("m%d" % i))
    p = d.pop3("bob")
    resp, listing, _ = p.uidl()
    assert len(listing) == 2
    p.quit()
    row = seen_row(d, "bob", "INBOX")
    assert int(row["seen_uidnext"]) == 3 and row["seen_by"] == "pop3"


def test_not_raised_by_doveadm_or_indexer(dovecot):
    d = dovecot
    d.deliver("alice", make_message("m1"))
    c = d.imap("alice")
    c.select("INBOX")
    c.logout()
    assert seen_uidnext(d, "alice", "INBOX") == 2
    for i in range(3):
        d.deliver("alice", make_message("later %d" % i))
    d.fetch("alice", "INBOX", "uid guid flags date.received")
    d.doveadm("search", "-u", "alice", "mailbox", "INBOX", "ALL")
    d.doveadm("mailbox", "status", "-u", "alice", "all", "INBOX")
    d.doveadm("index", "-u", "alice", "INBOX")
    # and through the indexer service
    d.doveadm("index", "-u", "alice", "-q", "INBOX")
    time.sleep(1.0)
    assert seen_uidnext(d, "alice", "INBOX") == 2
    assert int(seen_row(d, "alice", "INBOX")["uidnext"]) == 5


def test_no_write_when_not_rising(maildir_dovecot):
    d = maildir_dovecot
    d.deliver("alice", make_message("m1"))
    c = d.imap("alice")
    c.select("INBOX")
    c.logout()
    before = seen_row(d, "alice", "INBOX")
    rows_before = db_query(d.db_path("alice"),
                           "SELECT seen_uidnext, seen_at FROM seen")
    time.sleep(1.2)
    for _ in range(2):
        c = d.imap("alice")
        c.select("INBOX")
        c.status("INBOX", "(UIDNEXT)")
        c.noop()
        c.logout()
    after = seen_row(d, "alice", "INBOX")
    assert before["seen_at"] == after["seen_at"]
    assert db_query(d.db_path("alice"),
                    "SELECT seen_uidnext, seen_at FROM seen") == rows_before


def test_new_uidvalidity_starts_over(maildir_dovecot):
    d = maildir_dovecot
    d.deliver("alice", make_message("m1"))
    d.deliver("alice", make_message("m2"))
    c = d.imap("alice")
    c.select("INBOX")
    c.logout()
    old = seen_row(d, "alice", "INBOX")
    assert int(old["seen_uidnext"]) == 3
    new_uv = int(old["uidvalidity"]) + 7
    d.doveadm("mailbox", "update", "-u", "alice", "--uid-validity",
              str(new_uv), "INBOX")
    row = seen_row(d, "alice", "INBOX")
    assert int(row["uidvalidity"]) == new_uv
    assert int(row["seen_uidnext"]) == 0
    c = d.imap("alice")
    c.select("INBOX")
    c.logout()
    assert int(seen_row(d, "alice", "INBOX")["seen_uidnext"]) == \
        int(seen_row(d, "alice", "INBOX")["uidnext"])
    # the old UIDVALIDITY's record is kept
    rows = db_query(d.db_path("alice"),
                    "SELECT uidvalidity, seen_uidnext FROM seen")
    assert (int(old["uidvalidity"]), 3) in rows


def test_select_of_a_big_maildir_reads_no_more_with_the_plugin(make_dovecot):
    """The seen UIDNEXT is keyed by the mailbox GUID. Asked for it, Dovecot
    reads a maildir's whole dovecot-uidlist, a line per mail, once per
    opened mailbox: for every SELECT. The plugin reads the GUID from the
    uidlist's header line: alice (with the plugin) reads what bob (without
    it) reads, less than one uidlist more in ten SELECTs (the state file's
    pages it reads once a session)."""
    d = make_dovecot(plugin=False, mail_location="maildir:~/Maildir",
                     user_fields={"alice": "userdb_mail_plugins="
                                  "notify,mailbox_migrate"})
    msg = make_message("many", size=500)
    for user in ("alice", "bob"):
        c = d.imap(user)
        c.create("Other")
        c.logout()
        # written as a delivery would, without 5000 deliveries' time
        cur = os.path.join(d.home(user), "Maildir", "cur")
        for i in range(5000):
            path = os.path.join(cur, "1700000000.M%dP1.mmtest,S=%d:2," %
                                (i, len(msg)))
            with open(path, "wb") as f:
                f.write(msg)
            d.chown_to_mail_user(path)
        c = d.imap(user)
        assert c.select("INBOX") == ("OK", [b"5000"])
        c.logout()
    uidlist = os.path.join(d.home("alice"), "Maildir", "dovecot-uidlist")
    assert os.path.getsize(uidlist) > 150000
    # Dovecot rescans a maildir (and reads its uidlist) while the mtimes of
    # its directories are too recent to be trusted; then one session of its
    # own syncs each. (Without it, the measured session's SELECTs read the
    # whole uidlist for both users alike.)
    time.sleep(4)
    for user in ("alice", "bob"):
        c = d.imap(user)
        c.select("INBOX")
        c.select("Other")
        c.logout()
    read = {}
    for user in ("alice", "bob"):
        c = d.imap(user)
        pid = d.imap_pid(user)
        before = read_bytes(pid)
        for i in range(10):
            typ, _ = c.select("INBOX" if i % 2 == 0 else "Other")
            assert typ == "OK"
        read[user] = read_bytes(pid) - before
        c.logout()
    assert read["alice"] < read["bob"] + os.path.getsize(uidlist), read
    # and the GUID the header gave is the mailbox's
    row = seen_row(d, "alice", "INBOX")
    assert int(row["seen_uidnext"]) == 5001
    assert row["mailbox_guid"] == d.mailbox_status("alice", "INBOX")["guid"]
    # bob's SELECTs were not recorded: he has no plugin
    assert d.seen("bob")["INBOX"]["seen_at"] == ""
