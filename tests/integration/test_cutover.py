"""The cutover (SPEC "The cutover"): the mailing-list scenarios, a live
cutover under load with G1-G4 checked from the clients' side, and G5 (kill
-9 at random points, rerun, same end state)."""

import email
import imaplib
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

import pytest

from mmtest import HOST, PASSWORD, make_message

SRC = "maildir:~/Maildir"
DST = "sdbox:~/sdbox"
LIB = os.path.join(os.path.dirname(__file__), "..", "lib")

# what a --switch-command script can use: the instance's ports and files
SCRIPT_HEAD = """
import imaplib, json, os, smtplib, subprocess, sys, time
sys.path.insert(0, {lib!r})
from mmtest import make_message
CFG = {cfg!r}
USER = sys.argv[-1]

def deliver(subject):
    with smtplib.LMTP("127.0.0.1", CFG["lmtp"], timeout=30) as l:
        l.sendmail("s@example.com", [USER], make_message(subject))

def imap():
    c = imaplib.IMAP4("127.0.0.1", CFG["imap"], timeout=60)
    c.login(USER, CFG["password"])
    return c

def note(key, value):
    with open(CFG["notes"], "a") as f:
        f.write(json.dumps([key, value]) + "\\n")

def flip():
    subprocess.run([sys.executable, CFG["switch"], CFG["passwd"],
                    CFG["dest"], USER], check=True)

def doveadm(*args):
    subprocess.run(["/usr/bin/doveadm", "-c", CFG["config"], *args],
                   check=True)
"""


def switch_script(d, tmp_path, body, dest=DST):
    """Write a --switch-command script: SCRIPT_HEAD, then body (which must
    call flip()). Returns (command, notes path)."""
    from mmtest import SWITCH_USERDB
    notes = str(tmp_path / "notes")
    cfg = {"lmtp": d.lmtp_port, "imap": d.imap_port, "password": PASSWORD,
           "notes": notes, "switch": SWITCH_USERDB, "passwd": d.passwd,
           "dest": dest, "config": d.config}
    path = tmp_path / "switch.py"
    path.write_text(SCRIPT_HEAD.format(lib=os.path.abspath(LIB), cfg=cfg) +
                    body)
    return "%s %s" % (sys.executable, path), notes


def read_notes(path):
    notes = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                k, v = json.loads(line)
                notes[k] = v
    return notes


def dovecot_for_cutover(make_dovecot, **settings):
    plugin = {"mailbox_migrate_cutover_wait": "3s"}
    plugin.update(settings)
    return make_dovecot(mail_location=SRC, user_mail={"alice": SRC},
                        plugin_settings=plugin)


def migrated_dovecot(make_dovecot, messages):
    """A Dovecot whose alice has `messages` in INBOX, already brought to
    DST by a first pass."""
    d = dovecot_for_cutover(make_dovecot)
    for i in range(messages):
        d.deliver("alice", make_message("m%d" % i))
    d.migrate("alice", DST)
    return d


def inbox(d, location=None):
    """[(uid, guid, message-id)] of INBOX, by doveadm."""
    opts = ["-o", "mail_location=%s" % location] if location else []
    rows = d.doveadm_json(*opts, "fetch", "-u", "alice",
                          "uid guid hdr.message-id", "mailbox", "INBOX")
    return [(int(r["uid"]), r["guid"], r["hdr.message-id"].strip())
            for r in rows]


def select_uidnext(conn):
    typ, _ = conn.select("INBOX")
    assert typ == "OK"
    return int(conn.response("UIDNEXT")[1][0])


def userdb_mail(d):
    with open(d.passwd) as f:
        for line in f:
            if line.startswith("alice:"):
                return line.rstrip("\n").split(":", 7)[7].split("=", 1)[1]
    return None


def cutover(d, switch, check=True):
    return d.migrate("alice", DST, "--cutover", "--switch-command", switch,
                     check=check)


def phase(d):
    rows = d.doveadm_json("-o", "mail_location=%s" % SRC, "mailbox-migrate",
                          "status", "-u", "alice")
    return rows[0]["phase"] if rows else None


def test_a_client_never_sees_uidnext_go_back(make_dovecot, tmp_path):
    """A client sees UIDNEXT=N+1 on the source while the destination has
    mail up to N-1: after the cutover it never sees less, and sees every
    message."""
    d = migrated_dovecot(make_dovecot, 5)
    d.deliver("alice", make_message("after pass 1"))
    switch, notes = switch_script(d, tmp_path, """
deliver("between pass and switch")
c = imap()
typ, _ = c.select("INBOX")
note("uidnext", int(c.response("UIDNEXT")[1][0]))
c.logout()
flip()
""")
    c = d.imap("alice")
    seen_before = select_uidnext(c)
    c.logout()
    cutover(d, switch)
    seen = read_notes(notes)["uidnext"]
    assert seen >= seen_before == 7 and seen == 8
    c = d.imap("alice")  # on the destination now
    uidnext = select_uidnext(c)
    ids = {m[2] for m in inbox(d)}
    c.logout()
    assert uidnext >= seen
    assert len(ids) == 7
    assert {m[2] for m in inbox(d, SRC)} == ids
    assert phase(d) == "done"


def test_b_deleted_on_destination_stays_deleted(make_dovecot, tmp_path):
    d = migrated_dovecot(make_dovecot, 4)
    victim = inbox(d)[1]
    switch, _ = switch_script(d, tmp_path, """
c = imap()
c.select("INBOX")
c.uid("STORE", "2", "+FLAGS", "(\\\\Flagged)")  # journaled on the source
c.logout()
flip()
doveadm("expunge", "-u", USER, "mailbox", "INBOX", "uid", "2")
""")
    cutover(d, switch)
    after = inbox(d)
    assert victim[1] not in {m[1] for m in after}
    assert len(after) == 3


def test_c_both_new_messages_survive(make_dovecot, tmp_path):
    """Different new messages at one UID on both sides: both survive, the
    one a client was shown keeps the UID; sessions are held meanwhile."""
    d = migrated_dovecot(make_dovecot, 3)
    switch, notes = switch_script(d, tmp_path, """
deliver("to the source, never shown")
flip()
deliver("to the destination, shown")
t0 = time.monotonic()
c = imap()
c.select("INBOX")  # held by the cutover, then let through by cutover_wait
note("held", time.monotonic() - t0)
typ, data = c.uid("FETCH", "4", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
note("uid4", data[0][1].decode())
c.logout()
""")
    p = cutover(d, switch)
    n = read_notes(notes)
    assert n["held"] >= 2.5, d.log()[-3000:]
    assert "to the destination, shown" in n["uid4"]
    rows = d.doveadm_json("fetch", "-u", "alice", "uid hdr.subject",
                          "mailbox", "INBOX")
    by_subject = {r["hdr.subject"].strip(): int(r["uid"]) for r in rows}
    assert by_subject["to the destination, shown"] == 4
    assert by_subject["to the source, never shown"] > 4
    assert len(rows) == 5
    rows = json.loads(p.stdout)
    assert sum(r["reassigned"] for r in rows
               if r["mailbox"] == "(total)") == 1
    assert "the source's message gets a new UID" in p.stderr


def test_d_deleted_on_source_never_reappears(make_dovecot, tmp_path):
    d = migrated_dovecot(make_dovecot, 4)
    victim = inbox(d)[0]
    c = d.imap("alice")
    c.select("INBOX")
    c.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()
    d.migrate("alice", DST)
    assert victim[1] not in {m[1] for m in inbox(d, DST)}
    switch, _ = switch_script(d, tmp_path, "flip()\n")
    cutover(d, switch)
    assert victim[1] not in {m[1] for m in inbox(d)}
    assert len(inbox(d)) == 3


def test_failed_switch_leaves_user_on_source(make_dovecot, tmp_path):
    d = dovecot_for_cutover(make_dovecot)
    d.deliver("alice", make_message("m"))
    p = cutover(d, "/bin/false", check=False)
    assert p.returncode != 0 and "stays on the source" in p.stderr
    assert phase(d) == "copying"
    assert not os.path.exists(os.path.join(d.home("alice"), "sdbox",
                                           "mailbox-migrate.hold"))
    assert userdb_mail(d) == SRC
    # not held: a login on the source is immediate
    t0 = time.monotonic()
    d.imap("alice").logout()
    assert time.monotonic() - t0 < 2


def test_interrupted_cutover_resumes(make_dovecot, tmp_path):
    d = dovecot_for_cutover(make_dovecot)
    for i in range(3):
        d.deliver("alice", make_message("m%d" % i))
    # the switch command kills the cutover (kill -9 of doveadm) the
    # first time it runs
    switch, notes = switch_script(d, tmp_path, """
import signal
if not os.path.exists(CFG["notes"] + ".killed"):
    open(CFG["notes"] + ".killed", "w").close()
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(5)
flip()
""")
    p = cutover(d, switch, check=False)
    assert p.returncode != 0
    assert phase(d) == "cutover:switch"
    p = d.migrate("alice", DST, check=False)
    assert p.returncode != 0 and "interrupted" in p.stderr
    p = cutover(d, switch)
    assert "Resuming the interrupted cutover at cutover:switch" in p.stderr
    assert phase(d) == "done"
    assert len(inbox(d)) == 3
    assert userdb_mail(d) == DST
    # status run through the userdb (now the destination) knows too
    rows = d.doveadm_json("mailbox-migrate", "status", "-u", "alice")
    assert rows[0]["phase"] == "done" and "from" in rows[0]["destination"]


# --- the live cutover ---------------------------------------------------

class Client(threading.Thread):
    """An IMAP client looping over SELECT/NOOP/FETCH/STORE until told to
    stop, reconnecting whenever its connection drops; records every
    UIDNEXT and every UID->GUID it is shown."""

    def __init__(self, port, number, stop):
        super().__init__(daemon=True)
        self.port, self.number, self.stop = port, number, stop
        self.uidnexts = []
        self.uid_guid = {}
        self.conflicts = []
        self.errors = []
        self.rounds = 0

    def seen(self, uid, guid):
        old = self.uid_guid.setdefault(uid, guid)
        if old != guid:
            self.conflicts.append((uid, old, guid))

    def run(self):
        rnd = random.Random(self.number)
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                c = imaplib.IMAP4(HOST, self.port, timeout=60)
                c.login("alice", PASSWORD)
                typ, _ = c.select("INBOX")
                self.uidnexts.append(int(c.response("UIDNEXT")[1][0]))
                for _ in range(5):
                    if self.stop.is_set():
                        break
                    c.noop()
                    typ, data = c.uid("FETCH", "1:*", "(UID X-GUID)")
                    for item in data:
                        if not isinstance(item, bytes):
                            continue
                        m = re.search(rb"UID (\d+) X-GUID (\S+)\)", item)
                        if m:
                            self.seen(int(m.group(1)),
                                      m.group(2).decode())
                    typ, _ = c.status("INBOX", "(UIDNEXT)")
                    m = re.search(rb"UIDNEXT (\d+)", _[0])
                    self.uidnexts.append(int(m.group(1)))
                    uid = rnd.choice(list(self.uid_guid) or [1])
                    c.uid("STORE", str(uid), "+FLAGS",
                          "($client%d)" % self.number)
                    time.sleep(0.02)
                c.logout()
                self.rounds += 1
            except (imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError,
                    AttributeError, TypeError) as e:
                self.errors.append(repr(e))
                time.sleep(0.05)


def test_live_cutover(make_dovecot, tmp_path):
    d = dovecot_for_cutover(make_dovecot)
    for i in range(30):
        d.deliver("alice", make_message("before %d" % i))
    d.migrate("alice", DST)
    stop = threading.Event()
    delivered = []

    def deliver_loop():
        deadline = time.monotonic() + 120
        i = 0
        while not stop.is_set() and time.monotonic() < deadline:
            msgid = "<live-%d@mmtest.example>" % i
            try:
                d.deliver("alice", make_message("live %d" % i, msgid=msgid))
                delivered.append(msgid)
            except OSError:
                pass
            i += 1
            time.sleep(0.05)

    clients = [Client(d.imap_port, n, stop) for n in range(3)]
    deliverer = threading.Thread(target=deliver_loop, daemon=True)
    for t in clients + [deliverer]:
        t.start()
    time.sleep(1.5)
    d.migrate("alice", DST)  # an incremental pass under load
    time.sleep(0.5)
    p = d.migrate("alice", DST, "--cutover", "--switch-command",
                  d.switch_command(DST))
    time.sleep(1.5)
    stop.set()
    for t in clients + [deliverer]:
        t.join(timeout=150)
    assert "done" in p.stderr

    final = inbox(d)
    ids = [m[2] for m in final]
    # G1: nothing lost, nothing duplicated
    assert len(ids) == len(set(ids))
    for msgid in delivered:
        assert msgid in ids, msgid
    assert len(ids) == 30 + len(delivered)
    # G3: every client's UIDNEXT never went down
    for c in clients:
        assert c.rounds >= 3, c.errors
        assert c.uidnexts == sorted(c.uidnexts), c.uidnexts
    # G4: no UID ever named two messages, to any client
    for c in clients:
        assert c.conflicts == []
    # G2: flags converged: each client flag set on the source is there
    src = {r["guid"]: r["flags"] for r in d.doveadm_json(
        "-o", "mail_location=%s" % SRC, "fetch", "-u", "alice",
        "guid flags", "mailbox", "INBOX")}
    dst = {r["guid"]: r["flags"] for r in d.doveadm_json(
        "fetch", "-u", "alice", "guid flags", "mailbox", "INBOX")}
    for guid, flags in src.items():
        for f in flags.split():
            if f.startswith("$client"):
                assert f in dst.get(guid, ""), (guid, f)


# --- G5 -----------------------------------------------------------------

def g5_trials():
    return int(os.environ.get("MM_G5_TRIALS", "6"))


def end_state(d, location):
    snap = d.snapshot("alice", location)
    out = {}
    for box, (status, mails) in snap.items():
        out[box] = (status["guid"], status["uidvalidity"],
                    sorted((m["uid"], m["guid"], m["flags"]) for m in mails))
    return out


@pytest.mark.parametrize("trial", range(g5_trials()))
def test_g5_kill_and_rerun(make_dovecot, tmp_path, trial):
    """kill -9 the command at a random point of a first pass, a later pass
    or a cutover; rerunning converges to the uninterrupted end state."""
    rnd = random.Random(trial)
    d = dovecot_for_cutover(make_dovecot)
    conn = d.lmtp()
    for i in range(120):
        conn.sendmail("s@example.com", ["alice"],
                      make_message("m%d" % i, size=rnd.choice([200, 20000])))
    conn.quit()
    c = d.imap("alice")
    c.create("Folder")
    c.select("INBOX")
    c.copy("1:40", "Folder")
    c.store("1:30", "+FLAGS", "(\\Seen)")
    c.logout()
    stage = ["first", "later", "cutover"][trial % 3]
    if stage != "first":
        d.migrate("alice", DST)
        c = d.imap("alice")
        c.select("INBOX")
        c.store("31:60", "+FLAGS", "(\\Answered $kw)")
        c.store("1:10", "+FLAGS", "(\\Deleted)")
        c.expunge()
        c.logout()
        for i in range(20):
            d.deliver("alice", make_message("later %d" % i))
    args = ["/usr/bin/doveadm", "-c", d.config, "mailbox-migrate", "-u",
            "alice"]
    if stage == "cutover":
        args += ["--cutover", "--switch-command", d.switch_command(DST)]
    args.append(DST)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(rnd.uniform(0.0, 0.6))
    proc.kill()
    proc.wait(timeout=30)
    # rerun until it succeeds (bounded)
    for _ in range(3):
        rerun = subprocess.run(args, capture_output=True, text=True,
                               timeout=300)
        if rerun.returncode == 0:
            break
    assert rerun.returncode == 0, rerun.stderr
    if stage == "cutover":
        assert phase(d) == "done"
    assert end_state(d, SRC) == end_state(d, DST)
