#!/usr/bin/python3
"""CPU cost of the mailbox_migrate plugin, counted in instructions by
valgrind's callgrind, which (unlike wall-clock time on a shared VM) gives
the same figure run after run. One LMTP session (doveadm exec lmtp) delivers
N messages, one IMAP session (doveadm exec imap) runs N APPENDs, N STOREs or
N SELECTs; each is run with and without the plugin, and also with 0
operations, so that the table shows the instructions one operation costs.
Sessions append their journal entries to the journal log; the next reader
folds them into the state file. That reader (here `doveadm mailbox-migrate
seen`, run after each session: its own work doesn't grow with the journal)
is counted apart: the last column is what the fold adds per operation,
outside the session: the reader after N operations against the reader
after one, divided by N - 1 (a reader that has anything to fold first
reopens the state file to write it, which costs the same for one entry as
for many).

Usage (as root, after scripts/build.sh):
  tests/bench/bench-plugin-cpu.py [N] [--location maildir:~/Maildir]
                                  [--condstore]
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mmtest import (DOVEADM, Dovecot, clean_env,  # noqa: E402
                    imap_enable_condstore, make_message)

MAIL_UID = "65534"


def lmtp_script(n):
    out = [b"LHLO bench\r\n"]
    for i in range(n):
        msg = make_message("cpu %d" % i, size=3000).replace(b"\r\n.", b"\r\n..")
        out += [b"MAIL FROM:<s@example.com>\r\n", b"RCPT TO:<alice>\r\n",
                b"DATA\r\n", msg, b"\r\n.\r\n"]
    return b"".join(out) + b"QUIT\r\n"


def imap_script(kind, n):
    out = [b"a SELECT Bench\r\n"]
    for i in range(n):
        if kind == "APPEND":
            msg = make_message("cpu %d" % i, size=3000)
            out.append(b"p%d APPEND Bench {%d+}\r\n%s\r\n" % (i, len(msg),
                                                           msg))
        elif kind == "STORE":
            out.append(b"s%d UID STORE %d %sFLAGS (\\Flagged)\r\n" % (
                i, i % 50 + 1, b"+" if (i // 50) % 2 == 0 else b"-"))
        else:
            out.append(b"x%d SELECT %s\r\n" % (
                i, b"INBOX" if i % 2 else b"Bench"))
    return b"".join(out) + b"z LOGOUT\r\n"


def instructions(d, service, script, args=None):
    """Instructions of doveadm exec SERVICE with SCRIPT as its input, or
    (args) of doveadm ARGS."""
    out = tempfile.mkdtemp()
    os.chmod(out, 0o777)
    try:
        cmd = ["setpriv", "--reuid=" + MAIL_UID, "--regid=" + MAIL_UID,
               "--clear-groups", "valgrind", "--tool=callgrind",
               "--trace-children=yes",
               "--callgrind-out-file=%s/cg.%%p" % out,
               DOVEADM, "-c", d.config, "-o", "log_path=/dev/null",
               "-o", "stats_writer_socket_path=", "exec", service, "-u",
               "alice"]
        if service == "lmtp":
            cmd[-2:] = []
        if args is not None:
            cmd[cmd.index("exec"):] = args
        proc = subprocess.run(cmd, input=script, capture_output=True,
                              env=clean_env(), timeout=1200)
        total = 0
        for path in glob.glob(out + "/cg.*"):
            with open(path, errors="replace") as f:
                for line in f:
                    if line.startswith(("summary:", "totals:")):
                        total += int(line.split()[1])
                        break
        if total == 0:
            raise RuntimeError(proc.stderr.decode(errors="replace")[-2000:])
        return total
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int, nargs="?", default=100,
                    help="operations per session")
    ap.add_argument("--location", default="maildir:~/Maildir",
                    help="mail_location")
    ap.add_argument("--condstore", action="store_true",
                    help="per-message modseqs on without the plugin too "
                    "(as a CONDSTORE client leaves a mailbox, and as "
                    "every mailbox is after a pass)")
    args = ap.parse_args()
    n = args.n
    if n < 2:
        sys.exit("N must be at least 2")
    rows = []
    results = {}
    workloads = (
        ("LMTP delivery", "lmtp", lambda k: lmtp_script(k)),
        ("IMAP APPEND", "imap", lambda k: imap_script("APPEND", k)),
        ("IMAP STORE", "imap", lambda k: imap_script("STORE", k)),
        ("IMAP SELECT", "imap", lambda k: imap_script("SELECT", k)))
    for name, service, make in workloads:
        rows.append(name)
        for plugin in (False, True):
            # a fresh instance for each workload and side: what one
            # workload leaves behind must not change the next one's count
            d = Dovecot(plugin=plugin, name="bench-cpu",
                        mail_location=args.location)
            try:
                d.start()
                c = d.imap("alice")
                c.create("Bench")
                for i in range(50):
                    c.append("Bench", None, None,
                             make_message("seed %d" % i))
                if args.condstore:
                    imap_enable_condstore(c, ("INBOX", "Bench"))
                c.logout()
                d.deliver("alice", make_message("seed"))
                fold = ["mailbox-migrate", "seen", "-u", "alice"]
                if plugin:
                    # the steady state: a state file that readers keep
                    # folded (the seeding left a journal log only)
                    d.journal("alice")
                base = instructions(d, service, make(0))
                full = instructions(d, service, make(n))
                results[(name, plugin)] = (full - base) / n
                if plugin:
                    full_fold = instructions(d, None, None, fold)
                    instructions(d, service, make(1))
                    one_fold = instructions(d, None, None, fold)
                    results[(name, "fold")] = \
                        (full_fold - one_fold) / (n - 1)
            finally:
                d.cleanup()
    print()
    print("Instructions per operation (callgrind), %d operations per session,"
          " %s%s" % (n, args.location,
                     "; per-message modseqs on for both" if args.condstore
                     else ""))
    print()
    print("| operation | without plugin | with plugin | overhead | "
          "reader's fold |")
    print("|---|---:|---:|---:|---:|")
    for name in rows:
        a, b = results[(name, False)], results[(name, True)]
        f = results[(name, "fold")]
        print("| %s | %.0f | %.0f | %+.1f%% | %.0f (%+.1f%%) |" % (
            name, a, b, (b - a) / a * 100, f, f / a * 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
