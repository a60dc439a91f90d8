#!/usr/bin/python3
"""End-to-end demo: a private Dovecot on 127.0.0.1 with the plugin loaded,
a sample spool made by real LMTP deliveries and IMAP/POP3 clients, and what
the plugin recorded, shown with doveadm mailbox-migrate."""

import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "lib"))
from mmtest import Dovecot, imap_utf7, make_message  # noqa: E402

USERS = ("alice", "bob", "carol")
FOLDERS = ("Work", "Work/Projects 2026", "Archiv/Ünïcødé", "Lists")


def show(d, title, *args):
    print("\n$ doveadm mailbox-migrate %s" % " ".join(args))
    print("  (%s)" % title)
    proc = d.doveadm("mailbox-migrate", *args)
    print(proc.stdout.rstrip())


def main():
    rnd = random.Random(2026)
    d = Dovecot(users=USERS, name="mailbox-migrate-demo")
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
        return 0
    finally:
        d.cleanup()


if __name__ == "__main__":
    sys.exit(main())
