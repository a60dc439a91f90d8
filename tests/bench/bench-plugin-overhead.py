#!/usr/bin/python3
"""What the mailbox_migrate plugin costs on the hot paths: LMTP delivery and
an IMAP APPEND/STORE/SELECT load, against the same Dovecot without the
plugin, both started side by side and measured in alternating rounds in the
same run. Prints a table; not a test.

Usage (as root, after scripts/build.sh):
  tests/bench/bench-plugin-overhead.py [--messages 5000] [--rounds 5]
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mmtest import Dovecot, make_message  # noqa: E402


def lmtp_one_per_connection(d, user, n, tag):
    for i in range(n):
        assert d.deliver(user, make_message("%s %d" % (tag, i),
                                            size=2000 + (i % 7) * 3000)) == 250


def lmtp_batched(d, user, n, tag, batch=50):
    i = 0
    while i < n:
        with d.lmtp() as lmtp:
            for _ in range(min(batch, n - i)):
                refused = lmtp.sendmail("sender@example.com", [user],
                                        make_message("%s %d" % (tag, i),
                                                     size=2000))
                assert not refused
                i += 1


def imap_load(d, user, n, tag):
    """n APPENDs, n STOREs on them, n/10 SELECTs of two mailboxes."""
    c = d.imap(user)
    c.create("Bench")
    for i in range(n):
        typ, _ = c.append("Bench", None, None,
                          make_message("%s %d" % (tag, i), size=3000))
        assert typ == "OK"
    c.select("Bench")
    typ, data = c.uid("SEARCH", "ALL")
    uids = data[0].split()[-n:]
    for i, uid in enumerate(uids):
        typ, _ = c.uid("STORE", uid, "+FLAGS",
                       r"(\Seen)" if i % 2 else r"(\Flagged)")
        assert typ == "OK"
    for i in range(max(1, n // 10)):
        c.select("INBOX" if i % 2 else "Bench")
    c.logout()


WORKLOADS = [
    ("LMTP delivery, 1 message/connection", "msgs", lmtp_one_per_connection),
    ("LMTP delivery, 50 messages/connection", "msgs", lmtp_batched),
    ("IMAP APPEND+STORE+SELECT", "ops", imap_load),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000,
                    help="messages per workload and configuration")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fsync", default="optimized",
                    help="Dovecot mail_fsync for both instances")
    args = ap.parse_args()
    per_round = args.messages // args.rounds

    with_plugin = Dovecot(users=["u%d" % i for i in range(args.rounds * 4)],
                          name="bench-with", mail_fsync=args.fsync)
    without = Dovecot(users=["u%d" % i for i in range(args.rounds * 4)],
                      plugin=False, name="bench-without",
                      mail_fsync=args.fsync)
    results = {}
    try:
        with_plugin.start()
        without.start()
        for r in range(args.rounds):
            for w, (name, unit, fn) in enumerate(WORKLOADS):
                # alternate which configuration goes first
                order = [("without", without), ("with", with_plugin)]
                if (r + w) % 2:
                    order.reverse()
                for label, d in order:
                    user = "u%d" % (r * 4 + w)
                    n = per_round if unit == "msgs" else per_round // 5
                    ops = n if unit == "msgs" else n * 2 + max(1, n // 10)
                    start = time.monotonic()
                    fn(d, user, n, "%s-%d" % (label, r))
                    elapsed = time.monotonic() - start
                    results.setdefault((name, label), []).append(
                        ops / elapsed)
        state = with_plugin.db_path("u0")
        journal_rows = with_plugin.journal("u0")
    finally:
        with_plugin.cleanup()
        without.cleanup()

    print()
    print("mailbox_migrate plugin overhead (%d messages per workload and "
          "configuration, %d alternating rounds, mail_fsync=%s, maildir)" %
          (args.messages, args.rounds, args.fsync))
    print()
    print("| workload | without plugin (ops/s) | with plugin (ops/s) | "
          "overhead |")
    print("|---|---:|---:|---:|")
    for name, unit, _ in WORKLOADS:
        a = statistics.median(results[(name, "without")])
        b = statistics.median(results[(name, "with")])
        print("| %s | %.0f | %.0f | %+.1f%% |" % (name, a, b,
                                                  (a - b) / a * 100))
    print()
    print("median of the per-round rates; overhead = (without - with) / "
          "without. Journal of u0 complete: %s"
          % journal_rows[-1]["complete"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
