#!/usr/bin/python3
"""What the mailbox_migrate plugin costs on the hot paths: LMTP delivery and
an IMAP APPEND/STORE/SELECT load, for a user with the plugin (its userdb
mail_plugins) against a user without it, of the same Dovecot instance.
The operations alternate between the two users one by one, so that both
see the same machine (this VM's speed drifts by 2x within a minute) and
the same server processes and configuration. --control takes the plugin
from both users: the table then shows the benchmark's own bias. Between
workloads (untimed) a reader folds the journal log into the state file,
as the passes of a deployment do (each doveadm mailbox-migrate command
folds); --no-reader leaves all folding to the sessions, which fold once
their log passes 1 MB. Prints a table; not a test.

Usage (as root, after scripts/build.sh):
  tests/bench/bench-plugin-overhead.py [--messages 5000] [--fsync optimized]
                                       [--location maildir:~/Maildir]
                                       [--control] [--no-reader]
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mmtest import Dovecot, make_message  # noqa: E402


class Side:
    def __init__(self, label, dovecot, user):
        self.label = label
        self.d = dovecot
        self.user = user
        self.times = {}
        self.imap = None
        self.lmtp = None

    def timed(self, workload, fn, *args):
        start = time.perf_counter()
        fn(*args)
        self.times.setdefault(workload, []).append(time.perf_counter() -
                                                   start)


def deliver_own_connection(side, i):
    assert side.d.deliver(side.user, make_message(
        "msg %d" % i, size=2000 + (i % 7) * 3000)) == 250


def deliver_shared_connection(side, i):
    refused = side.lmtp.sendmail("sender@example.com", [side.user],
                                 make_message("batched %d" % i, size=2000))
    assert not refused


def imap_append(side, i):
    typ, _ = side.imap.append("Bench", None, None,
                              make_message("appended %d" % i, size=3000))
    assert typ == "OK"


def imap_store(side, i):
    typ, _ = side.imap.uid("STORE", str(i + 1), "+FLAGS",
                           r"(\Seen)" if i % 2 else r"(\Flagged $work)")
    assert typ == "OK"


def imap_select(side, i):
    typ, _ = side.imap.select("INBOX" if i % 2 else "Bench")
    assert typ == "OK"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000,
                    help="LMTP deliveries per workload and configuration")
    ap.add_argument("--imap-ops", type=int, default=1000,
                    help="IMAP operations per kind and configuration")
    ap.add_argument("--fsync", default="optimized",
                    help="Dovecot mail_fsync")
    ap.add_argument("--location", default="maildir:~/Maildir",
                    help="mail_location")
    ap.add_argument("--control", action="store_true",
                    help="both users without the plugin: what the "
                    "table shows then is the benchmark's own noise")
    ap.add_argument("--no-reader", action="store_true",
                    help="no reader folds the journal log between "
                    "workloads")
    args = ap.parse_args()

    # no mail plugins but what the userdb gives "mm"
    d = Dovecot(users=["plain", "mm"], name="bench-overhead", plugin=False,
                mail_fsync=args.fsync, mail_location=args.location,
                user_fields={} if args.control else
                {"mm": "userdb_mail_plugins=notify,mailbox_migrate"})
    sides = [Side("without", d, "plain"), Side("with", d, "mm")]
    workloads = [
        ("LMTP delivery, one connection each", "msg",
         deliver_own_connection, args.messages),
        ("LMTP delivery, one connection for all", "msg",
         deliver_shared_connection, args.messages),
        ("IMAP APPEND", "op", imap_append, args.imap_ops),
        ("IMAP STORE", "op", imap_store, args.imap_ops),
        ("IMAP SELECT", "op", imap_select, args.imap_ops),
    ]
    wall = time.monotonic()
    try:
        d.start()
        for side in sides:
            side.d.deliver(side.user, make_message("warm up"))
            side.lmtp = side.d.lmtp()
            side.imap = side.d.imap(side.user)
            side.imap.create("Bench")
        for name, _, fn, count in workloads:
            if not args.control and not args.no_reader:
                d.journal("mm")
            if fn is imap_store or fn is imap_select:
                for side in sides:
                    side.imap.select("Bench")
            for i in range(count):
                order = sides if i % 2 == 0 else sides[::-1]
                for side in order:
                    side.timed(name, fn, side, i)
        journal = None if args.control else d.journal("mm")
        # the userdb field really took the plugin away
        for side in sides:
            has_state = os.path.exists(d.db_path(side.user) + ".log")
            assert has_state == (side.label == "with" and
                                 not args.control), side.user
        for side in sides:
            side.imap.logout()
            side.lmtp.quit()
    finally:
        d.cleanup()

    print()
    print("mailbox_migrate plugin overhead: %s, mail_fsync=%s, operations "
          "alternating between a user with and one without it (%.0f s in "
          "all)%s" %
          (args.location.split(":")[0], args.fsync,
           time.monotonic() - wall,
           "; CONTROL RUN: neither user has the plugin"
           if args.control else
           "; no reader: the sessions fold" if args.no_reader else
           "; a reader folds between workloads"))
    print()
    print("| workload | count | without plugin (/s) | with plugin (/s) | "
          "overhead (total time) | overhead (median latency) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, unit, _, count in workloads:
        a, b = sides[0].times[name], sides[1].times[name]
        total = (sum(b) - sum(a)) / sum(a) * 100
        med = (statistics.median(b) - statistics.median(a)) / \
            statistics.median(a) * 100
        print("| %s | %d %ss | %.0f | %.0f | %+.1f%% | %+.1f%% |" % (
            name, count, unit, len(a) / sum(a), len(b) / sum(b), total, med))
    if journal is not None:
        print()
        print("Journal of the user with the plugin: %s entries, "
              "complete=%s" % (journal[-1]["entries"],
                               journal[-1]["complete"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
