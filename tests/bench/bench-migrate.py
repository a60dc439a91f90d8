#!/usr/bin/python3
"""doveadm mailbox-migrate against dsync (doveadm backup, one process per
user) and rsync -a, on the same generated spool in the same run: a first
pass (twice, the second time in the reverse order: each tool's faster run
counts), a no-change pass (five times, alternating: the median of the last
four counts), and a pass after 1% of the messages changed (new, flagged,
expunged; three rounds, each tool first in one: the median counts). Prints
a table; not a test.

The spool: USERS users x MESSAGES maildir messages, sizes skewed the way
real spools are (most a few KB, a few of hundreds of KB), in INBOX and
three folders, written straight into Maildir/cur and indexed by Dovecot.
Both Dovecot-side tools write sdbox (a format change, so neither gets
maildir hard links); rsync copies the maildir as it is.

Usage (as root, after scripts/build.sh):
  tests/bench/bench-migrate.py [--users 50] [--messages 2000] [--workers N]
                               [--keep] [--config-file]

doveadm (ours and dsync) reads its configuration from the running
Dovecot's config socket, as doveadm run by root does by default;
--config-file makes every run parse dovecot.conf (exec doveconf) instead.
"""

import argparse
import json
import os
import random
import resource
import shutil
import stat
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mmtest import DOVEADM, Dovecot, clean_env, make_message  # noqa: E402

FOLDERS = [("INBOX", 0.6), ("Archive", 0.2), ("Sent", 0.1),
           ("Lists/dev", 0.1)]


def message_size(rnd):
    # lognormal: median 6 KB, mean about 20 KB, capped at 2 MB
    return int(min(2_000_000, rnd.lognormvariate(8.7, 1.6)))


WORDS = ("the of and to in is for on that with as was by it at from this "
         "meeting report invoice project please thanks regards attached "
         "review deadline budget release server migration backup mail "
         "customer order shipping schedule agenda minutes draft final "
         "question answer update status").split()


def text_corpus(rnd, size):
    """Plain text of common words: compresses like mail text (about
    3:1 with gzip -1)."""
    out, n = [], 0
    while n < size:
        line = " ".join(rnd.choice(WORDS) for _ in range(12)) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out)


def realistic_body(rnd, size, corpus, blob):
    """A text part, and for bigger messages a base64 attachment (random
    bytes: barely compressible), cut from pre-made pools so that making
    gigabytes stays fast."""
    text = min(size, rnd.randint(1000, 8000))
    start = rnd.randrange(len(corpus) - text)
    body = corpus[start:start + text]
    if size > text:
        n = size - text
        start = rnd.randrange(len(blob) - n) if n < len(blob) else 0
        att = blob[start:start + n]
        body += ("\n--b\nContent-Type: application/octet-stream\n"
                 "Content-Transfer-Encoding: base64\n\n" +
                 "\n".join(att[i:i + 76] for i in range(0, len(att), 76)))
    return body


def generate(d, users, per_user, seed, realistic=False):
    """realistic: bodies of text and base64 attachments instead of
    repeated lines (for benchmarks where compression matters)."""
    rnd = random.Random(seed)
    if realistic:
        import base64
        corpus = text_corpus(rnd, 1 << 22)
        blob = base64.b64encode(rnd.randbytes(3 << 21)).decode()
    total = 0
    uid, gid = d.pw.pw_uid, d.pw.pw_gid
    for u in users:
        home = d.home(u)
        for folder, share in FOLDERS:
            if folder == "INBOX":
                path = os.path.join(home, "Maildir")
            else:
                path = os.path.join(home, "Maildir",
                                    "." + folder.replace("/", "."))
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(path, sub), exist_ok=True)
            count = int(per_user * share)
            now = int(time.time()) - 86400 * 30
            for i in range(count):
                size = message_size(rnd)
                if realistic:
                    body = make_message("%s %s %d" % (u, folder, i),
                                        body=realistic_body(rnd, size,
                                                            corpus, blob))
                else:
                    body = make_message("%s %s %d" % (u, folder, i),
                                        size=size)
                name = "%d.M%dP%d.bench,S=%d:2,%s" % (
                    now + i, i, os.getpid(), len(body),
                    "S" if rnd.random() < 0.7 else "")
                with open(os.path.join(path, "cur", name), "wb") as f:
                    f.write(body)
                total += len(body)
        subprocess.run(["chown", "-R", "%d:%d" % (uid, gid), home],
                       check=True)
        with open(os.path.join(home, "Maildir", "subscriptions"), "w") as f:
            f.write("Archive\nSent\nLists/dev\n")
        os.chown(os.path.join(home, "Maildir", "subscriptions"), uid, gid)
        # let Dovecot index the spool (reads directories, not files)
        d.doveadm("mailbox", "status", "-u", u, "messages", "*")
    return total


# --config-file: the timed doveadm runs parse dovecot.conf themselves
CONFIG_FILE = False

# no-change runs timed after the first (which warms up), the tools
# alternating; the table gives their median
NO_CHANGE_RUNS = 4
ONE_PERCENT_ROUNDS = 4


def doveadm_config(d):
    """What the timed doveadm runs (ours and dsync alike) read their
    configuration from: the running Dovecot's config socket, as doveadm
    run by root does by default; with a file instead every doveadm process
    first execs doveconf to parse it (about 10 ms here)."""
    sock = os.path.join(d.root, "run", "config")
    if CONFIG_FILE or not os.path.exists(sock) or \
            not stat.S_ISSOCK(os.stat(sock).st_mode):
        return d.config
    return sock


def run_timed(cmd, env=None):
    # every tool starts with no dirty pages of the one before (whose
    # writeback would otherwise throttle the next one's writes)
    subprocess.run(["sync"], check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=env or clean_env())
    secs = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit("%s failed (%d): %s" % (" ".join(cmd[:6]), proc.returncode,
                                         proc.stderr[-2000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime -
                                                 before.ru_stime)
    return secs, cpu, after.ru_maxrss


def ours(d, dest, workers):
    return run_timed([DOVEADM, "-c", doveadm_config(d), "-o",
                      "plugin/mailbox_migrate_workers=%d" % workers,
                      "mailbox-migrate", "-A", dest])


def dsync(d, users, root, workers):
    # dsync doesn't expand %u in a destination: one process per user,
    # as many at once as our workers
    script = ("%s -c %s backup -u \"$1\" sdbox:%s/\"$1\"" %
              (DOVEADM, doveadm_config(d), root))
    return run_timed(["sh", "-c", "printf '%%s\\n' %s | xargs -P %d -n 1 "
                      "sh -c '%s' sh" % (" ".join(users), workers, script)])


def rsync(src_root, dest_root):
    return run_timed(["rsync", "-a", src_root + "/", dest_root + "/"])


def change_one_percent(d, users, per_user, seed):
    """1% of each user's messages: a third new (LMTP), a third flagged,
    a third expunged (IMAP), all through Dovecot so the journal sees
    them."""
    rnd = random.Random(seed)
    n = max(3, per_user // 100)
    lmtp = d.lmtp()
    for u in users:
        for i in range(n // 3):
            lmtp.sendmail("s@example.com", [u],
                          make_message("new %d" % i, size=message_size(rnd)))
        c = d.imap(u)
        count = int(c.select("INBOX")[1][0])
        seqs = rnd.sample(range(1, count + 1), 2 * (n // 3))
        flag = ",".join(str(s) for s in seqs[:n // 3])
        gone = ",".join(str(s) for s in seqs[n // 3:])
        c.store(flag, "+FLAGS", "(\\Flagged)")
        c.store(gone, "+FLAGS", "(\\Deleted)")
        c.expunge()
        c.logout()
    lmtp.quit()
    return n // 3 * 3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--config-file", action="store_true",
                    help="doveadm parses dovecot.conf in every run "
                    "instead of asking the config socket")
    args = ap.parse_args()
    global CONFIG_FILE
    CONFIG_FILE = args.config_file

    users = ["user%03d" % i for i in range(args.users)]
    d = Dovecot(users=users, mail_location="maildir:~/Maildir",
                name="mmbench", mail_fsync="optimized")
    d.start()
    out = os.path.join(d.root, "out")
    os.makedirs(out)
    os.chown(out, d.pw.pw_uid, d.pw.pw_gid)
    try:
        t0 = time.perf_counter()
        size = generate(d, users, args.messages, args.seed)
        print("spool: %d users x %d messages, %.2f GB, generated in "
              "%.0f s" % (args.users, args.messages, size / 1e9,
                          time.perf_counter() - t0), flush=True)
        homes = os.path.join(d.root, "home")
        results = {}

        def record(tool, stage, r):
            results.setdefault((tool, stage), []).append(r)
            print("  %-8s %-10s %8.3f s  cpu %7.3f s" % (tool, stage, r[0],
                                                         r[1]), flush=True)

        subprocess.run(["sync"])
        # the first pass twice, the second time in the reverse order
        # (into other directories: the later stages use the first ones),
        # the table giving each tool's faster run. Creating files costs
        # ext4 more for a few minutes after many were deleted (its inode
        # allocator skips recently freed inodes), which would otherwise
        # weigh on whichever tool goes first after an earlier run's
        # cleanup.
        for suffix in ("", "2"):
            firsts = [
                ("ours", lambda: ours(d, "sdbox:%s/ours%s/%%u" %
                                      (out, suffix), args.workers)),
                ("dsync", lambda: dsync(d, users, out + "/dsync" + suffix,
                                        args.workers)),
                ("rsync", lambda: rsync(homes, out + "/rsync" + suffix))]
            for tool, run in (firsts if suffix == "" else firsts[::-1]):
                record(tool, "first", run())
        # the first no-change runs warm up; the table gives the median
        # of the runs after them, the tools alternating
        for rep in range(NO_CHANGE_RUNS + 1):
            record("ours", "no-change", ours(d, "sdbox:%s/ours/%%u" % out,
                                             args.workers))
            record("dsync", "no-change", dsync(d, users, out + "/dsync",
                                               args.workers))
            record("rsync", "no-change", rsync(homes, out + "/rsync"))
        # each round changes another 1%; ours and dsync take turns at
        # going first, rsync goes last: the first process to read a
        # changed maildir folder pays Dovecot's catching up (a rescan of
        # cur/: the folder was changed within the second its session
        # last looked at it, and a new message moved from new/ to cur/
        # is still in dovecot-uidlist under its old name), which the ones
        # after it don't, so each of the two pays it in half the rounds
        # (rsync reads no Dovecot index)
        one_percent = [
            ("ours", lambda: ours(d, "sdbox:%s/ours/%%u" % out,
                                  args.workers)),
            ("dsync", lambda: dsync(d, users, out + "/dsync",
                                    args.workers))]
        for rnd in range(ONE_PERCENT_ROUNDS):
            changed = change_one_percent(d, users, args.messages,
                                         args.seed + rnd)
            for tool, run in (one_percent if rnd % 2 == 0 else
                              one_percent[::-1]):
                record(tool, "1%-change", run())
            record("rsync", "1%-change", rsync(homes, out + "/rsync"))

        # sanity: the destination holds what the source holds
        for u in users[:3]:
            a = d.doveadm_json("mailbox", "status", "-u", u,
                               "messages uidnext guid", "*")
            b = d.doveadm_json("-o", "mail_location=sdbox:%s/ours/%s" %
                               (out, u), "mailbox", "status", "-u", u,
                               "messages uidnext guid", "*")
            key = lambda r: r["mailbox"]  # noqa: E731
            if sorted(a, key=key) != sorted(b, key=key):
                sys.exit("destination of %s differs from its source" % u)
        print()
        print("%d users, %d messages each (%.2f GB), %d changed per user "
              "in each 1%% round, %d workers/parallel processes, warm "
              "cache" % (args.users, args.messages, size / 1e9, changed,
                         args.workers))
        print("%-10s %12s %12s %12s %14s %14s" % (
            "stage", "ours (s)", "dsync (s)", "rsync (s)", "dsync/ours",
            "rsync/ours"))
        def secs(tool, stage):
            runs = [r[0] for r in results[(tool, stage)]]
            if stage == "first":
                return min(runs)
            if stage == "1%-change":
                return statistics.median(runs)
            return statistics.median(runs[1:]) if len(runs) > 1 \
                else runs[0]

        for stage in ("first", "no-change", "1%-change"):
            o = secs("ours", stage)
            ds = secs("dsync", stage)
            rs = secs("rsync", stage)
            print("%-10s %12.3f %12.3f %12.3f %13.1fx %13.1fx" % (
                stage, o, ds, rs, ds / o, rs / o))
        print("(first: the faster of two runs, the second in reverse "
              "order; no-change: the median of runs 2 to %d; 1%%-change: "
              "the median of %d rounds, ours and dsync first in turn; "
              "max RSS of any child: %d MB)" % (
                  NO_CHANGE_RUNS + 1, ONE_PERCENT_ROUNDS,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                  // 1024))
    finally:
        if args.keep:
            d.stop()
            print("kept in", d.root)
        else:
            d.cleanup()


if __name__ == "__main__":
    main()
