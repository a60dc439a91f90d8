"""The logout hook (mailbox_migrate_on_logout): an IMAP or POP3 logout of a
user with changes a configured destination has not taken hands the user to
an incremental pass run by a Dovecot service, against a real Dovecot on
127.0.0.1."""

import os
import time

from mmtest import LOGOUT_SERVICE, make_message

WAIT_SECS = 20


def dest_of(d, user):
    return os.path.join(d.root, "dest", user, "Maildir")


def make(make_dovecot, service=True, **settings):
    def setup(d):
        os.mkdir(os.path.join(d.root, "dest"))
        d.chown_to_mail_user(os.path.join(d.root, "dest"))
        # the destination names the instance's own directory
        d.plugin_settings.update({
            "mailbox_migrate_destination":
                "maildir:%s/dest/%%u/Maildir" % d.root,
            "mailbox_migrate_on_logout": "yes"})
        # {root} in a setting: the instance's directory
        d.plugin_settings.update({k: v.format(root=d.root)
                                  for k, v in settings.items()})
        d.write_config()
    return make_dovecot(setup=setup,
                        extra_config=LOGOUT_SERVICE if service else "")


def wait_for(pred, what, secs=WAIT_SECS, log=lambda: ""):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what + "\n" + log())


def dest_guids(d, user, mailbox="INBOX"):
    loc = "maildir:" + dest_of(d, user)
    rows = d.doveadm_json("-o", "mail_location=" + loc, "fetch", "-u", user,
                          "guid flags", "mailbox", mailbox)
    return {r["guid"]: flags_of(r) for r in rows}


def flags_of(row):
    # \Recent is per session
    return " ".join(sorted(f for f in row["flags"].split() if f != "\\Recent"))


def src_guids(d, user, mailbox="INBOX"):
    rows = d.doveadm_json("fetch", "-u", user, "guid flags",
                          "mailbox", mailbox)
    return {r["guid"]: flags_of(r) for r in rows}


def test_logout_keeps_destination_current(make_dovecot):
    d = make(make_dovecot)
    for i in range(3):
        assert d.deliver("alice", make_message("first %d" % i)) == 250
    d.migrate("alice", "maildir:" + dest_of(d, "alice"))
    assert set(dest_guids(d, "alice")) == set(src_guids(d, "alice"))

    # changes in an IMAP session, then LOGOUT
    c = d.imap("alice")
    c.select("INBOX")
    c.append("INBOX", "(\\Flagged)", None, make_message("from imap"))
    c.store("1", "+FLAGS", "(\\Seen)")
    assert c.logout()[0] == "BYE"
    wait_for(lambda: dest_guids(d, "alice") == src_guids(d, "alice"),
             "the logout pass to bring the IMAP session's changes",
             log=lambda: "%s\n%s\n%s" % (dest_guids(d, "alice"),
                                         src_guids(d, "alice"), d.log()))
    assert "\\Seen" in dest_guids(d, "alice")[
        d.doveadm_json("fetch", "-u", "alice", "guid", "mailbox", "INBOX",
                       "uid", "1")[0]["guid"]]

    # mail delivered over LMTP, then a POP3 session ends: its logout
    # hands the delivery over too
    assert d.deliver("alice", make_message("by lmtp")) == 250
    p = d.pop3("alice")
    p.stat()
    p.quit()
    wait_for(lambda: dest_guids(d, "alice") == src_guids(d, "alice"),
             "the POP3 logout pass to bring the LMTP delivery")
    log = d.log()
    assert "Logout hook: can't hand" not in log, log
    # the passes ran as journal passes, not full comparisons
    assert "journal pass to maildir:%s" % dest_of(d, "alice") in log, log

    # a session that changes nothing hands nothing over
    runs = log.count("pass to maildir:%s" % dest_of(d, "alice"))
    c = d.imap("alice")
    c.select("INBOX")
    c.logout()
    time.sleep(1.5)
    assert d.log().count("pass to maildir:%s" % dest_of(d, "alice")) == runs


def test_logout_leaves_first_pass_and_other_users(make_dovecot):
    d = make(make_dovecot)
    # no pass to the destination yet: a logout does not start a first pass
    c = d.imap("alice")
    c.append("INBOX", None, None, make_message("before any pass"))
    c.logout()
    time.sleep(1.5)
    assert not os.path.exists(dest_of(d, "alice"))
    # bob's destination is current after his first pass; alice's logout
    # doesn't touch it
    d.deliver("bob", make_message("for bob"))
    d.migrate("bob", "maildir:" + dest_of(d, "bob"))
    c = d.imap("alice")
    c.append("INBOX", None, None, make_message("alice again"))
    c.logout()
    time.sleep(1.5)
    assert not os.path.exists(dest_of(d, "alice"))
    assert set(dest_guids(d, "bob")) == set(src_guids(d, "bob"))


def test_logout_without_service_never_fails_the_client(make_dovecot):
    """on_logout set but the service missing: the client's commands and
    logout succeed, the failure is logged, the next admin pass catches
    up."""
    d = make(make_dovecot, service=False)
    d.deliver("alice", make_message("one"))
    d.migrate("alice", "maildir:" + dest_of(d, "alice"))
    c = d.imap("alice")
    assert c.append("INBOX", None, None, make_message("two"))[0] == "OK"
    assert c.logout()[0] == "BYE"
    wait_for(lambda: "Logout hook: can't hand the user" in d.log(),
             "the hook to log its failure", secs=10)
    assert len(dest_guids(d, "alice")) == 1
    d.migrate("alice", "maildir:" + dest_of(d, "alice"))
    assert set(dest_guids(d, "alice")) == set(src_guids(d, "alice"))


def test_logout_pass_skips_while_another_pass_runs(make_dovecot):
    """--logout doesn't wait for the user's pass lock; a normal pass
    does."""
    d = make(make_dovecot)
    d.deliver("alice", make_message("one"))
    d.migrate("alice", "maildir:" + dest_of(d, "alice"))
    d.deliver("alice", make_message("two"))
    lock = d.db_path("alice") + ".pass-lock"
    import fcntl
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        proc = d.doveadm("mailbox-migrate", "-u", "alice", "--logout")
        assert proc.returncode == 0
        assert "another pass of the user is running" in proc.stderr
        assert len(dest_guids(d, "alice")) == 1
    proc = d.doveadm("mailbox-migrate", "-u", "alice", "--logout")
    assert "journal pass to" in proc.stderr, proc.stderr
    assert set(dest_guids(d, "alice")) == set(src_guids(d, "alice"))
    # --logout takes no destination of its own
    proc = d.doveadm("mailbox-migrate", "-u", "alice", "--logout",
                     "maildir:/tmp/x", check=False)
    assert proc.returncode == 64


def test_logout_keeps_backup_store_current(make_dovecot):
    """A backup store as the destination, next to a mail location: one
    logout brings the change to both."""
    store = "backup:{root}/dest/%u-backup"
    d = make(make_dovecot, mailbox_migrate_destination2=store)
    store = store.format(root=d.root)
    d.deliver("alice", make_message("one"))
    d.migrate("alice", "maildir:" + dest_of(d, "alice"))
    d.migrate("alice", store)
    c = d.imap("alice")
    c.append("INBOX", None, None, make_message("two"))
    c.logout()
    wait_for(lambda: d.log().count("journal pass to ") >= 2,
             "the logout passes to both destinations", log=d.log)
    assert set(dest_guids(d, "alice")) == set(src_guids(d, "alice"))
    rows = d.doveadm_json("mailbox-migrate", "status", "-u", "alice")
    pending = {r["destination"]: int(r["pending"]) for r in rows}
    assert pending == {"maildir:" + dest_of(d, "alice"): 0,
                       "backup:%s/dest/alice-backup" % d.root: 0}, rows
