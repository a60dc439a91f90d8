#!/usr/bin/python3
"""doveadm mailbox-migrate backup:... against tar | gzip -1, tar | zstd -1
and rsync -a, on the migration benchmark's spool, in one run: a full
backup (gz and zstd stores), a no-change pass, a pass after 1% of the
messages changed, and a restore of every user into an empty location.
Prints a table; not a test. The spool has the migration benchmark's shape
(users, messages, sizes, folders) with realistic bodies (text, base64
attachments), since compression is what this measures.

Usage (as root, after scripts/build.sh):
  tests/bench/bench-backup.py [--users 50] [--messages 2000] [--workers N]
                              [--keep] [--config-file]

doveadm reads its configuration from the running Dovecot's config socket
(see bench-migrate.py); --config-file makes it parse dovecot.conf.
"""

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from mmtest import DOVEADM, Dovecot  # noqa: E402

spec = importlib.util.spec_from_file_location(
    "bench_migrate", os.path.join(HERE, "bench-migrate.py"))
bm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bm)

# no-change runs timed after the first (which warms up), each tool's
# alternating with the other's; the table gives their median
NO_CHANGE_RUNS = 4


def du(path):
    out = subprocess.run(["du", "-sb", path], capture_output=True,
                         text=True, check=True).stdout
    return int(out.split()[0])


def ours(d, store, workers, compression="gz"):
    return bm.run_timed([DOVEADM, "-c", bm.doveadm_config(d), "-o",
                         "plugin/mailbox_migrate_workers=%d" % workers,
                         "-o", "plugin/mailbox_migrate_backup_compression=%s"
                         % compression, "mailbox-migrate", "-A", store])


def tar_compress(src, out, compressor):
    return bm.run_timed(["sh", "-c", "tar -C %s -cf - . | %s > %s" %
                         (src, compressor, out)])


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
    bm.CONFIG_FILE = args.config_file

    users = ["user%03d" % i for i in range(args.users)]
    d = Dovecot(users=users, mail_location="maildir:~/Maildir",
                name="mmbench", mail_fsync="optimized")
    d.start()
    out = os.path.join(d.root, "out")
    os.makedirs(out)
    os.chown(out, d.pw.pw_uid, d.pw.pw_gid)
    try:
        t0 = time.perf_counter()
        size = bm.generate(d, users, args.messages, args.seed,
                          realistic=True)
        print("spool: %d users x %d messages, %.2f GB, generated in "
              "%.0f s" % (args.users, args.messages, size / 1e9,
                          time.perf_counter() - t0), flush=True)
        homes = os.path.join(d.root, "home")
        gz_store = "backup:%s/gz/%%u" % out
        zst_store = "backup:%s/zst/%%u" % out
        res = {}

        def record(name, r):
            res.setdefault(name, []).append(r)
            print("  %-22s %8.3f s  cpu %7.3f s" % (name, r[0], r[1]),
                  flush=True)

        record("ours gz full", ours(d, gz_store, args.workers))
        record("ours zstd full", ours(d, zst_store, args.workers, "zstd"))
        record("tar|gzip -1", tar_compress(homes, out + "/spool.tar.gz",
                                           "gzip -1"))
        record("tar|zstd -1", tar_compress(homes, out + "/spool.tar.zst",
                                           "zstd -1 -q"))
        record("rsync first", bm.rsync(homes, out + "/rsync"))
        # the first no-change runs warm up; the table gives the median
        # of the runs after them, ours and rsync's alternating
        for rep in range(NO_CHANGE_RUNS + 1):
            record("ours no-change", ours(d, gz_store, args.workers))
            record("rsync no-change", bm.rsync(homes, out + "/rsync"))
        changed = bm.change_one_percent(d, users, args.messages, args.seed)
        record("ours 1%-change", ours(d, gz_store, args.workers))
        record("rsync 1%-change", bm.rsync(homes, out + "/rsync"))
        # restore every user into an empty location (disaster recovery;
        # -o mail_location isn't expanded per user: a process each, as
        # many at once as the workers)
        script = ("%s -c %s -o mail_location=maildir:%s/restored/\"$1\""
                  "/Maildir mailbox-migrate restore -u \"$1\" %s" %
                  (DOVEADM, bm.doveadm_config(d), out, gz_store))
        record("ours restore", bm.run_timed(
            ["sh", "-c", "printf '%%s\\n' %s | xargs -P %d -n 1 "
             "sh -c '%s' sh" % (" ".join(users), args.workers, script)]))
        # sanity: a restored user has what the source has
        for u in users[:3]:
            a = d.doveadm_json("mailbox", "status", "-u", u,
                               "messages guid", "*")
            b = d.doveadm_json("-o", "mail_location=maildir:%s/restored/"
                               "%s/Maildir" % (out, u), "mailbox",
                               "status", "-u", u, "messages guid", "*")
            key = lambda r: r["mailbox"]  # noqa: E731
            if sorted(a, key=key) != sorted(b, key=key):
                sys.exit("restore of %s differs from its source" % u)
        verify = bm.run_timed([DOVEADM, "-c", bm.doveadm_config(d),
                               "mailbox-migrate",
                               "verify", "-A", gz_store])
        record("ours verify", verify)

        gz_bytes = du(out + "/gz")
        zst_bytes = du(out + "/zst")
        tgz = os.path.getsize(out + "/spool.tar.gz")
        tzst = os.path.getsize(out + "/spool.tar.zst")
        print()
        print("%d users, %d messages each (%.2f GB), %d changed per user "
              "in the 1%% stage, %d workers, warm cache" % (
                  args.users, args.messages, size / 1e9, changed,
                  args.workers))
        print("%-44s %10s %12s %10s" % ("", "seconds", "MB/s", "vs ours"))

        def line(name, secs, ref=None, mb=True):
            print("%-44s %10.3f %12s %10s" % (
                name, secs, "%.0f" % (size / 1e6 / secs) if mb else "",
                "" if ref is None else "%.1fx" % (secs / ref)))

        def secs(name):
            return res[name][0][0]

        def median_after_first(name):
            return statistics.median(r[0] for r in res[name][1:])

        og, oz = secs("ours gz full"), secs("ours zstd full")
        line("full: ours, gz store", og)
        line("full: tar | gzip -1", secs("tar|gzip -1"), og)
        line("full: ours, zstd store", oz)
        line("full: tar | zstd -1", secs("tar|zstd -1"), oz)
        nc = median_after_first("ours no-change")
        label = "(median of runs 2-%d)" % (NO_CHANGE_RUNS + 1)
        line("no-change: ours " + label, nc, mb=False)
        line("no-change: rsync -a " + label,
             median_after_first("rsync no-change"), nc, mb=False)
        c1 = secs("ours 1%-change")
        line("1%-change: ours", c1, mb=False)
        line("1%-change: rsync -a", secs("rsync 1%-change"), c1, mb=False)
        line("restore, all users: ours", secs("ours restore"))
        line("verify, all users: ours", secs("ours verify"))
        print()
        print("store sizes: ours gz %.1f MB, tar.gz %.1f MB (%.2fx); "
              "ours zstd %.1f MB, tar.zst %.1f MB (%.2fx)" % (
                  gz_bytes / 1e6, tgz / 1e6, gz_bytes / tgz,
                  zst_bytes / 1e6, tzst / 1e6, zst_bytes / tzst))
        print("1%%-change pass: %.0f users/hour" % (args.users / c1 * 3600))
        print("max RSS of any child: %d MB" % (
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024))
    finally:
        if args.keep:
            d.stop()
            print("kept in", d.root)
        else:
            d.cleanup()


if __name__ == "__main__":
    main()
