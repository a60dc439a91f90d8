#!/usr/bin/python3
"""End-to-end demo: a private Dovecot on 127.0.0.1 with the plugin loaded,
a sample spool made by real LMTP deliveries and IMAP/POP3 clients, what the
plugin recorded, then a real migration from maildir to sdbox: a first pass,
an incremental pass and a cutover of two users while mail keeps arriving
and an IMAP client keeps looking, checked afterwards (nothing lost, the
client never saw UIDNEXT go back); then a backup of every user, the logout
hook keeping it current, and a point-in-time restore."""

import imaplib
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "lib"))
from mmtest import (HOST, LOGOUT_SERVICE, PASSWORD, Dovecot,  # noqa
                    imap_utf7, make_message)

USERS = ("alice", "bob", "carol")
SOURCE = "maildir:~/Maildir"
DEST = "sdbox:~/sdbox"
FOLDERS = ("Work", "Work/Projects 2026", "Archiv/Ünïcødé", "Lists")


def show(d, title, *args):
    print("\n$ doveadm mailbox-migrate %s" % " ".join(args))
    print("  (%s)" % title)
    proc = d.doveadm("mailbox-migrate", *args)
    print(proc.stdout.rstrip())


def main():
    rnd = random.Random(2026)
    d = Dovecot(users=USERS, name="mailbox-migrate-demo",
                user_mail={u: SOURCE for u in USERS},
                plugin_settings={"mailbox_migrate_cutover_wait": "10s"})
    try:
        d.start()
        print("Private Dovecot on 127.0.0.1: imap %d, pop3 %d, lmtp %d "
              "(%s)" % (d.imap_port, d.pop3_port, d.lmtp_port, d.root))
        delivered = 0
        for user in USERS:
            c = d.imap(user)
            for folder in FOLDERS:
                c.create(imap_utf7(folder))
                c.subscribe(imap_utf7(folder))
            for i in range(40):
                size = rnd.choice((800, 2000, 6000, 40000, 300000))
                assert d.deliver(user, make_message(
                    "%s message %d" % (user, i), size=size)) == 250
                delivered += 1
            c.select("INBOX")
            c.store("1:10", "+FLAGS", r"(\Seen)")
            c.store("3,5,7", "+FLAGS", r"(\Flagged $label1)")
            c.uid("MOVE", "11:20", imap_utf7(FOLDERS[0]))
            c.uid("COPY", "21:25", imap_utf7(FOLDERS[2]))
            c.store("26:28", "+FLAGS", r"(\Deleted)")
            c.expunge()
            for folder in FOLDERS[1:]:
                c.append(imap_utf7(folder), r"(\Seen)", None,
                         make_message("saved by %s" % user))
            c.status(imap_utf7(FOLDERS[3]), "(UIDNEXT MESSAGES)")
            c.rename(imap_utf7("Lists"), imap_utf7("Mailing lists"))
            c.logout()
            # a POP3 client sees the INBOX too
            p = d.pop3(user)
            p.uidl()
            p.quit()
            # mail that arrived after the clients looked
            for i in range(3):
                d.deliver(user, make_message("late %d" % i))
        print("Delivered %d messages over LMTP to %d users; IMAP clients "
              "flagged, moved, copied, expunged, renamed; POP3 listed."
              % (delivered, len(USERS)))

        show(d, "per mailbox: journal range and whether it is complete",
             "journal", "-u", "alice")
        print("\n$ doveadm mailbox-migrate journal -u alice --list "
              "(first 12 entries)")
        out = d.doveadm("mailbox-migrate", "journal", "-u", "alice",
                        "--list").stdout.splitlines()
        print("\n".join(out[:13]))
        show(d, "the highest UIDNEXT each client was shown; mail delivered "
             "after the clients looked is above it", "seen", "-A")
        state = d.db_path("alice")
        print("\nState file of alice: %s (%d bytes)" % (
            state, os.path.getsize(state)))
        ok = migrate(d)
        return backup(d) if ok == 0 else ok
    finally:
        d.cleanup()


def run(d, *args):
    print("\n$ doveadm mailbox-migrate %s" % " ".join(args))
    proc = d.doveadm("mailbox-migrate", *args)
    print(proc.stdout.rstrip())
    for line in proc.stderr.splitlines():
        if "Info:" in line and ("pass to" in line or "Cutover" in line):
            print("  " + line.replace(" Info:", ""))
    return proc


class Load:
    """LMTP deliveries to every user and an IMAP client on alice's INBOX
    that records each UIDNEXT it is shown, until stopped."""

    def __init__(self, d):
        self.d = d
        self.stop = threading.Event()
        self.delivered = {u: [] for u in USERS}
        self.uidnexts = []
        self.threads = [threading.Thread(target=self.deliver, daemon=True),
                        threading.Thread(target=self.watch, daemon=True)]

    def deliver(self):
        i = 0
        deadline = time.monotonic() + 300
        while not self.stop.is_set() and time.monotonic() < deadline:
            user = USERS[i % len(USERS)]
            msgid = "<demo-live-%d@example.org>" % i
            try:
                if self.d.deliver(user, make_message(
                        "live %d" % i, msgid=msgid)) == 250:
                    self.delivered[user].append(msgid)
            except OSError:
                pass
            i += 1
            time.sleep(0.05)

    def watch(self):
        deadline = time.monotonic() + 300
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                c = imaplib.IMAP4(HOST, self.d.imap_port, timeout=60)
                c.login("alice", PASSWORD)
                c.select("INBOX")
                self.uidnexts.append(int(c.response("UIDNEXT")[1][0]))
                for _ in range(10):
                    c.noop()
                    typ, data = c.status("INBOX", "(UIDNEXT)")
                    self.uidnexts.append(int(data[0].split(b"UIDNEXT ")[1]
                                             .rstrip(b")")))
                    time.sleep(0.05)
                c.logout()
            except (imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError):
                time.sleep(0.05)  # kicked at the cutover: reconnect

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def migrate(d):
    print("\n=== Migration of all users from %s to %s ===" % (SOURCE, DEST))
    run(d, "-A", DEST)
    load = Load(d)
    load.start()
    print("\nMail is now delivered to every user continuously, and an IMAP "
          "client keeps looking at alice's INBOX.")
    time.sleep(2)
    run(d, "-A", DEST)
    for user in ("alice", "bob"):
        run(d, "-u", user, "--cutover", "--switch-command",
            d.switch_command(DEST), DEST)
    time.sleep(2)
    load.finish()
    run(d, "status", "-A")
    print("\n$ doveadm user -f mail alice  (the userdb now points at the "
          "destination)")
    print(d.doveadm("user", "-f", "mail", "alice").stdout.strip())

    ok = True
    for user in USERS:
        rows = d.doveadm_json("fetch", "-u", user, "hdr.message-id",
                              "mailbox", "INBOX")
        ids = [r["hdr.message-id"].strip() for r in rows]
        missing = [m for m in load.delivered[user] if m not in ids]
        dups = len(ids) - len(set(ids))
        where = d.doveadm("user", "-f", "mail", user).stdout.strip()
        print("%s on %s: %d live deliveries, %d missing, %d duplicated" % (
            user, where, len(load.delivered[user]), len(missing), dups))
        ok = ok and not missing and dups == 0
    rising = load.uidnexts == sorted(load.uidnexts)
    print("alice's IMAP client was shown %d UIDNEXTs, from %d to %d: %s" % (
        len(load.uidnexts), load.uidnexts[0], load.uidnexts[-1],
        "never going back" if rising else "WENT BACK"))
    ok = ok and rising and len(load.uidnexts) > 0
    print("\nMigration %s." % ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


def backup(d):
    store = "backup:%s/backup/%%u" % d.root
    print("\n=== Backup of all users to %s ===" % store)
    os.mkdir(os.path.join(d.root, "backup"))
    d.chown_to_mail_user(os.path.join(d.root, "backup"))
    run(d, "-A", store)
    first = int(time.time())
    print("\nFrom now on the logout hook keeps the store current: "
          "mailbox_migrate_destination = %s, mailbox_migrate_on_logout = "
          "yes, and the service mailbox-migrate-logout (conf.d has it); "
          "Dovecot restarted with them." % store)
    d.plugin_settings.update({"mailbox_migrate_destination": store,
                              "mailbox_migrate_on_logout": "yes"})
    d.extra_config = LOGOUT_SERVICE
    d.stop()
    d.write_config()
    d.start()
    time.sleep(1.1)
    passes = d.log().count("journal pass to backup:")
    c = d.imap("bob")
    c.select("INBOX")
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    gone = data[0][1].decode().split(":", 1)[1].strip()
    c.store("1", "+FLAGS", r"(\Deleted)")
    c.expunge()
    c.logout()
    print("\nbob expunged %s over IMAP and logged out; the hook hands him "
          "to a pass that takes just that:" % gone)
    deadline = time.monotonic() + 30
    while d.log().count("journal pass to backup:") == passes:
        if time.monotonic() > deadline:
            print("the logout pass did not run within 30 s")
            return 1
        time.sleep(0.1)
    for line in d.log().splitlines():
        if "journal pass to backup:" in line and "(bob)" in line:
            print("  " + line)
    run(d, "verify", "-A", store)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first))
    run(d, "restore", "-u", "bob", "--at", at, "-m", "INBOX", store)
    rows = d.doveadm_json("fetch", "-u", "bob", "hdr.message-id",
                          "mailbox", "INBOX")
    back = any(r["hdr.message-id"].strip() == gone for r in rows)
    dups = len(rows) - len({r["hdr.message-id"] for r in rows})
    print("bob's expunged message is back: %s; duplicates: %d" % (
        "yes" if back else "NO", dups))
    ok = back and dups == 0
    print("\nDemo %s." % ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
