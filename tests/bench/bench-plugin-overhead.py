#!/usr/bin/python3
"""What the mailbox_migrate plugin costs on the hot paths: LMTP delivery and
an IMAP APPEND/STORE/SELECT load, for a user with the plugin (its userdb
mail_plugins) against a user without it, of the same Dovecot instance.
The operations alternate between the two users one by one, so that both
see the same machine (this VM's speed drifts by 2x within a minute) and
the same server processes and configuration. Then the users swap roles
(the userdb is re-read) and everything runs again: the overhead is the
geometric mean of the two phases, so that what differs between the two
homes (where ext4 placed them, what an earlier run freed near them: on
this VM that alone made one user's maildir STORE 2.7 times slower than
the other's) weighs on both sides alike. --control takes the plugin from
both users: the table then shows the benchmark's own bias. Between
workloads (untimed) a reader folds the journal log into the state file,
as the passes of a deployment do (each doveadm mailbox-migrate command
folds); --no-reader leaves all folding to the sessions, which fold once
their log passes 1 MB. --condstore gives the user without the plugin
per-message modseqs too: the plugin switches them on for its user's
mailboxes, Dovecot keeps them for any mailbox a CONDSTORE client (most
current ones) has opened, and every mailbox a pass has read has them; the
table then shows the plugin's own cost apart from Dovecot's modseq upkeep.
The CPU column is the CPU time of the IMAP session's process (its
schedstat, kernel included), what the server spends apart from the
client's round trip; the next what that process read (its rchar) per
operation in each phase: a SELECT of a maildir that Dovecot rescans
reads the maildir's whole dovecot-uidlist, on either side; the last its
minor page faults per operation: the pages it touched anew, mostly
memory glibc's malloc took from the kernel again after giving it back (a
SELECT of a big maildir frees more than malloc's trim threshold, and
whether the heap's top is free then depends on where each process's
longer-lived allocations happen to lie). --malloc-keep fixes those
thresholds. --cpu N runs all of Dovecot's processes on CPU N: on this
VM's two vCPUs, whole phases otherwise came out up to 45% slower (STORE)
or 34% faster (SELECT) on one side, with the same bytes read and the
same page faults. Prints a table; not a test.

Usage (as root, after scripts/build.sh):
  tests/bench/bench-plugin-overhead.py [--messages 5000] [--fsync optimized]
                                       [--location maildir:~/Maildir]
                                       [--control] [--no-reader]
                                       [--condstore] [--rounds 1]
                                       [--malloc-keep] [--cpu N]

--rounds R runs the two phases R times (the users swapping roles each
time, Dovecot restarted): the overhead is then the geometric mean of all
2R phases, and the table also gives each round's, whose spread says how
far one round can be trusted on this machine. The row "IMAP load" is the
issue's IMAP load as a whole: the APPEND, STORE and SELECT operations of
each side, their times added up.
"""

import argparse
import glob
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mmtest import (Dovecot, imap_enable_condstore,  # noqa: E402
                    make_message, minor_faults, read_bytes)


# Dovecot's default import_environment, and glibc's malloc thresholds
# fixed (setting them also stops glibc from raising the mmap threshold as
# big blocks are freed)
MALLOC_KEEP = ("import_environment = TZ CORE_OUTOFMEM CORE_ERROR LISTEN_PID "
               "LISTEN_FDS MALLOC_TRIM_THRESHOLD_=268435456 "
               "MALLOC_MMAP_THRESHOLD_=33554432\n")


def start(d, cpu):
    """Start Dovecot; with cpu, its master (and so every process it starts
    from then on) runs on that CPU only."""
    d.start()
    if cpu is not None:
        os.sched_setaffinity(d.master_pid(), {cpu})


def cpu_nsecs(pid):
    """Time the process has spent on a CPU, kernel included (schedstat)."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])



class Side:
    def __init__(self, label, dovecot, user):
        self.label = label
        self.d = dovecot
        self.user = user
        self.times = {}
        # IMAP workload -> CPU nanoseconds of the session's imap process
        self.cpu = {}
        # IMAP workload -> bytes the session's imap process read
        self.read = {}
        # IMAP workload -> minor page faults of the session's imap process
        self.faults = {}
        self.imap = None
        self.imap_pid = None
        self.lmtp = None
        self.store_base = 0

    def timed(self, workload, fn, *args):
        cpu_pid = self.imap_pid if workload.startswith("IMAP") else None
        cpu = cpu_nsecs(cpu_pid) if cpu_pid is not None else 0
        read = read_bytes(cpu_pid) if cpu_pid is not None else 0
        faults = minor_faults(cpu_pid) if cpu_pid is not None else 0
        start = time.perf_counter()
        fn(*args)
        self.times.setdefault(workload, []).append(time.perf_counter() -
                                                   start)
        if cpu_pid is not None:
            self.cpu[workload] = self.cpu.get(workload, 0) + \
                cpu_nsecs(cpu_pid) - cpu
            self.read[workload] = self.read.get(workload, 0) + \
                read_bytes(cpu_pid) - read
            self.faults[workload] = self.faults.get(workload, 0) + \
                minor_faults(cpu_pid) - faults


def log_size(d, user):
    """Size of the user's journal log (found by name: its place depends on
    the mail location), 0 if there is none."""
    paths = glob.glob(os.path.join(d.home(user), "**",
                                   "mailbox-migrate.db.log"), recursive=True)
    return sum(os.path.getsize(p) for p in paths)


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
    # the mail this phase appended: its flags are not set yet
    typ, _ = side.imap.uid("STORE", str(side.store_base + i + 1), "+FLAGS",
                           r"(\Seen)" if i % 2 else r"(\Flagged $work)")
    assert typ == "OK"


def imap_store_unchanged(side, i):
    # the same again: flags set already, a store that changes nothing (as
    # clients send for mail they have read)
    imap_store(side, i)


def imap_select(side, i):
    typ, _ = side.imap.select("INBOX" if i % 2 else "Bench")
    assert typ == "OK"


def geomean(ratios):
    """The overhead a list of with/without ratios gives: their geometric
    mean, less one."""
    return statistics.geometric_mean(ratios) - 1


def report_row(name, unit, count, parts, phases, rounds):
    """One table row: the workloads in parts, their times added up per
    side and phase."""
    totals, medians, rates_a, rates_b, cpus = [], [], [], [], []
    # microseconds of imap process CPU per operation, without and with
    cpu_us = [[], []]
    # per phase: kilobytes the imap processes read, and their minor page
    # faults, per operation
    reads, faults = [], []
    for sides in phases:
        a = [t for part in parts for t in sides["without"].times[part]]
        b = [t for part in parts for t in sides["with"].times[part]]
        totals.append(sum(b) / sum(a))
        medians.append(statistics.median(b) / statistics.median(a))
        rates_a.append(len(a) / sum(a))
        rates_b.append(len(b) / sum(b))
        if all(part in sides["with"].cpu for part in parts):
            cpu_a = sum(sides["without"].cpu[part] for part in parts)
            cpu_b = sum(sides["with"].cpu[part] for part in parts)
            cpus.append(cpu_b / cpu_a)
            cpu_us[0].append(cpu_a / len(a) / 1000)
            cpu_us[1].append(cpu_b / len(b) / 1000)
            reads.append("%.1f/%.1f" % tuple(
                sum(sides[side].read[part] for part in parts) / n / 1000
                for side, n in (("without", len(a)), ("with", len(b)))))
            faults.append("%.1f/%.1f" % tuple(
                sum(sides[side].faults[part] for part in parts) / n
                for side, n in (("without", len(a)), ("with", len(b)))))
    # each round has each user once on each side
    per_round = ", ".join("%+.1f%%" % (geomean(totals[2 * r:2 * r + 2]) *
                                       100) for r in range(rounds))
    cpu = "-" if not cpus else "%+.1f%% (%s); %.0f against %.0f us" % (
        geomean(cpus) * 100,
        ", ".join("%+.1f%%" % ((c - 1) * 100) for c in cpus),
        statistics.mean(cpu_us[1]), statistics.mean(cpu_us[0]))
    return "| %s | %d %ss x%d | %.0f | %.0f | %+.1f%% | %s%s | %s | " \
        "%s | %s | %s |" % (name, count, unit, len(phases),
                  statistics.mean(rates_a), statistics.mean(rates_b),
                  geomean(totals) * 100,
                  per_round + " | " if rounds > 1 else "",
                  # a median of mixed operations says nothing
                  "%+.1f%%" % (geomean(medians) * 100)
                  if len(parts) == 1 else "-",
                  ", ".join("%+.1f%%" % ((t - 1) * 100) for t in totals),
                  cpu, ", ".join(reads) or "-", ", ".join(faults) or "-")


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
    ap.add_argument("--condstore", action="store_true",
                    help="per-message modseqs on for the user without the "
                    "plugin too (as a CONDSTORE client leaves a mailbox, "
                    "and as every mailbox is after a pass): the table then "
                    "shows the plugin's own cost")
    ap.add_argument("--no-reader", action="store_true",
                    help="no reader folds the journal log between "
                    "workloads")
    ap.add_argument("--notify", action="store_true",
                    help="give the user without the plugin Dovecot's "
                    "notify plugin, which the plugin loads, as servers "
                    "running mail_log or push notifications have it: the "
                    "table then shows the plugin's own cost apart from "
                    "notify's")
    ap.add_argument("--malloc-keep", action="store_true",
                    help="fixed glibc malloc thresholds for Dovecot's "
                    "processes (trim 256 MB, mmap 32 MB): memory they "
                    "free stays in the process, so that the table shows "
                    "the plugin's cost apart from the page faults of "
                    "glibc giving memory back to the kernel and taking it "
                    "again")
    ap.add_argument("--cpu", type=int, default=None,
                    help="run Dovecot's processes on this CPU only, so "
                    "that both sides' imap processes run on the same one "
                    "(each phase starts new ones, which the scheduler may "
                    "otherwise keep on different CPUs)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run both phases this many times")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    # no mail plugins but what the userdb gives a user; the two users swap
    # roles halfway (the userdb is re-read), so that what differs between
    # their homes (where ext4 put them, what an earlier run freed there)
    # weighs on both sides alike
    users = ["u1", "u2"]
    plugin_field = "userdb_mail_plugins=notify,mailbox_migrate"
    d = Dovecot(users=users, name="bench-overhead", plugin=False,
                mail_fsync=args.fsync, mail_location=args.location,
                extra_config=MALLOC_KEEP if args.malloc_keep else "")
    workloads = [
        ("LMTP delivery, one connection each", "msg",
         deliver_own_connection, args.messages),
        ("LMTP delivery, one connection for all", "msg",
         deliver_shared_connection, args.messages),
        ("IMAP APPEND", "op", imap_append, args.imap_ops),
        ("IMAP STORE", "op", imap_store, args.imap_ops),
        ("IMAP STORE, flags set already", "op", imap_store_unchanged,
         args.imap_ops),
        ("IMAP SELECT", "op", imap_select, args.imap_ops),
    ]
    # phase -> side label -> Side
    phases = []
    wall = time.monotonic()
    journal = None
    try:
        start(d, args.cpu)
        for phase in range(2 * args.rounds):
            with_user = users[(phase + 1) % 2]
            without_user = users[phase % 2]
            d.user_fields = {} if args.control else \
                {with_user: plugin_field}
            if args.notify:
                d.user_fields[without_user] = \
                    "userdb_mail_plugins=notify"
            d.write_passwd()
            if phase > 0:
                # fresh processes: an LMTP process that delivered for a
                # user with the plugin kept journaling that user's mail
                d.stop()
                start(d, args.cpu)
            sides = [Side("without", d, without_user),
                     Side("with", d, with_user)]
            logs_before = {u: log_size(d, u) for u in users}
            # (a reader's fold may replace the log: its size can shrink)
            seq_before = 0 if args.control else \
                int(d.journal(with_user)[-1]["last_seq"] or 0)
            if phase == 0 and args.condstore:
                for user in users:
                    c = d.imap(user)
                    c.create("Bench")
                    imap_enable_condstore(c, ("INBOX", "Bench"))
                    c.logout()
            for side in sides:
                # each phase appends imap_ops mails to Bench before its
                # stores
                side.store_base = phase * args.imap_ops
                side.d.deliver(side.user, make_message("warm up"))
                side.imap = side.d.imap(side.user)
                side.imap_pid = d.imap_pid(side.user)
                if phase == 0:
                    side.imap.create("Bench")
            for name, _, fn, count in workloads:
                if not args.control and not args.no_reader:
                    d.journal(with_user)
                if fn in (imap_store, imap_store_unchanged, imap_select):
                    for side in sides:
                        side.imap.select("Bench")
                if fn is deliver_shared_connection:
                    # not earlier: the workload before may outlast LMTP's
                    # idle timeout
                    for side in sides:
                        side.lmtp = side.d.lmtp()
                for i in range(count):
                    order = sides if i % 2 == 0 else sides[::-1]
                    for side in order:
                        side.timed(name, fn, side, i)
            for side in sides:
                side.imap.logout()
                if side.lmtp is not None:
                    side.lmtp.quit()
            # the userdb field really gave (and took) the plugin: only the
            # user with it journaled anything in this phase
            if not args.control:
                journal = d.journal(with_user)
            logs_after = {u: log_size(d, u) for u in users}
            assert logs_after[without_user] == logs_before[without_user], \
                without_user
            if args.control:
                assert logs_after[with_user] == logs_before[with_user], \
                    with_user
            else:
                assert int(journal[-1]["last_seq"]) > seq_before, with_user
            phases.append({side.label: side for side in sides})
    finally:
        if os.environ.get("KEEP"):
            d.stop()
            print("kept", d.root, file=sys.stderr)
        else:
            d.cleanup()

    print()
    print("mailbox_migrate plugin overhead: %s, mail_fsync=%s, operations "
          "alternating between a user with and one without it (%.0f s in "
          "all)%s" %
          (args.location.split(":")[0], args.fsync,
           time.monotonic() - wall,
           ("; per-message modseqs on for both" if args.condstore else "") +
           ("; notify loaded for both" if args.notify else "") +
           ("; CONTROL RUN: neither user has the plugin"
            if args.control else
            "; no reader: the sessions fold" if args.no_reader else
            "; a reader folds between workloads")))
    print()
    rows = [(name, unit, count, [name]) for name, unit, _, count
            in workloads]
    load = ["IMAP APPEND", "IMAP STORE", "IMAP SELECT"]
    rows.append(("IMAP load (APPEND, STORE, SELECT)", "op",
                 args.imap_ops * len(load), load))
    print("| workload | count | without plugin (/s) | with plugin (/s) | "
          "overhead (total time) | %soverhead (median latency) | "
          "phases (total time) | overhead (imap process CPU; "
          "per operation with and without) | imap process reads per "
          "operation, KB without/with (phases) | imap process minor page "
          "faults per operation, without/with (phases) |" %
          ("rounds (total time) | " if args.rounds > 1 else ""))
    print("|---|---:|---:|---:|---:|%s---:|---|---:|---|---|" %
          ("---|" if args.rounds > 1 else ""))
    for name, unit, count, parts in rows:
        print(report_row(name, unit, count, parts, phases, args.rounds))
    if journal is not None:
        print()
        print("Journal of the user with the plugin in the last phase: %s "
              "entries, complete=%s%s" % (
                  journal[-1]["entries"], journal[-1]["complete"],
                  " (as it should be: that user's mail changed without "
                  "the plugin in an earlier phase)"
                  if args.rounds > 1 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
