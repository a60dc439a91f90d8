"""Many processes of one user writing at once: the journal stays complete
and agrees with the mailboxes, and no client sees an error."""

import os
import random
import threading
import time

from mmtest import make_message

SESSIONS = 8
ITERATIONS = 40
DELIVERIES = 40
DEADLINE = 120.0
MAILBOXES = ("INBOX", "Work", "Copies")


def failed(typ, data):
    """A NO [EXPUNGEISSUED] is the server telling of another session's
    expunge, not an error."""
    return typ != "OK" and not any(b"EXPUNGEISSUED" in (x or b"")
                                   for x in data)


def imap_worker(d, n, errors, deadline):
    rnd = random.Random(n)
    try:
        c = d.imap("alice")
        for i in range(ITERATIONS):
            if time.monotonic() > deadline:
                break
            box = rnd.choice(("INBOX", "Work"))
            typ, data = c.append(box, rnd.choice((None, r"(\Seen)")), None,
                                 make_message("s%d-%d" % (n, i)))
            if typ != "OK":
                errors.append(("APPEND", data))
            typ, data = c.select(box)
            if typ != "OK":
                errors.append(("SELECT", data))
                continue
            typ, data = c.uid("SEARCH", "ALL")
            uids = data[0].split() if typ == "OK" and data[0] else []
            if not uids:
                continue
            for uid in rnd.sample(uids, min(3, len(uids))):
                flag = rnd.choice((r"\Flagged", r"\Answered", "$work",
                                   r"\Seen"))
                op = rnd.choice(("+FLAGS", "-FLAGS"))
                typ, data = c.uid("STORE", uid, op, "(%s)" % flag)
                if failed(typ, data):
                    errors.append(("STORE", data))
            typ, data = c.uid("COPY", rnd.choice(uids), "Copies")
            if failed(typ, data):
                errors.append(("COPY", data))
            if i % 3 == 2:
                uid = rnd.choice(uids)
                c.uid("STORE", uid, "+FLAGS", r"(\Deleted)")
                typ, data = c.uid("EXPUNGE", uid)
                if failed(typ, data):
                    errors.append(("EXPUNGE", data))
        c.logout()
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(("session %d" % n, repr(e)))


def lmtp_worker(d, errors, deadline):
    for i in range(DELIVERIES):
        if time.monotonic() > deadline:
            break
        try:
            code = d.deliver("alice", make_message("lmtp %d" % i))
            if code != 250:
                errors.append(("LMTP", code))
        except Exception as e:  # noqa: BLE001
            errors.append(("LMTP", repr(e)))


def fold_worker(d, errors, deadline, done, inodes):
    """A reader folding the journal log while the sessions write, as a
    pass or the journal command does: a log past 64 KB is sealed and
    replaced under the writers. inodes collects the log's inode numbers
    seen."""
    log = d.db_path("alice") + ".log"
    for _ in range(400):
        if done.is_set() or time.monotonic() > deadline:
            break
        try:
            d.journal("alice")
            inodes.add(os.stat(log).st_ino)
        except FileNotFoundError:
            pass
        except Exception as e:  # noqa: BLE001
            errors.append(("fold", repr(e)))
        time.sleep(0.05)


def journal_state(entries, mailbox_guid):
    """UID -> GUID from the saves and copies, less the expunges (a UID is
    never reused, so an expunge is final whatever its position), and the
    UIDs each flag/keyword entry names."""
    saved, expunged, changed = {}, set(), set()
    for e in entries:
        if e["mailbox_guid"] != mailbox_guid:
            continue
        if e["type"] in ("save", "copy"):
            saved[e["uid"]] = e["guid"]
        elif e["type"] == "expunge":
            expunged.add(e["uid"])
        elif e["type"] in ("flags", "keywords"):
            changed.add(e["uid"])
    return ({uid: g for uid, g in saved.items() if uid not in expunged},
            changed, saved)


def test_parallel_sessions_and_delivery(maildir_dovecot):
    d = maildir_dovecot
    c = d.imap("alice")
    for box in ("Work", "Copies"):
        c.create(box)
    c.logout()
    d.deliver("alice", make_message("seed"))
    errors = []
    deadline = time.monotonic() + DEADLINE
    threads = [threading.Thread(target=imap_worker,
                                args=(d, n, errors, deadline))
               for n in range(SESSIONS)]
    threads.append(threading.Thread(target=lmtp_worker,
                                    args=(d, errors, deadline)))
    done, inodes = threading.Event(), set()
    folder = threading.Thread(target=fold_worker,
                              args=(d, errors, deadline, done, inodes))
    folder.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE + 30)
        assert not t.is_alive()
    done.set()
    folder.join(60)
    assert not folder.is_alive()
    assert errors == []
    # the reader's folds replaced the log under the writers at least once
    assert len(inodes) >= 2, inodes

    rows = {r["mailbox"]: r for r in d.journal("alice")}
    for box in MAILBOXES:
        assert rows[box]["complete"] == "yes", (box, rows[box]["reason"])
    assert rows["(total)"]["complete"] == "yes"

    entries = d.journal_entries("alice")
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(set(seqs))
    for box in MAILBOXES:
        guid = d.mailbox_status("alice", box)["guid"]
        live, changed, saved = journal_state(entries, guid)
        index = {r["uid"]: r for r in d.fetch("alice", box)}
        assert {u: r["guid"] for u, r in index.items()} == live, box
        for uid, row in index.items():
            flags = set(row["flags"].split()) - {r"\Recent"}
            if flags != initial_flags(entries, guid, uid):
                # a message whose flags differ from when it was saved has
                # an entry saying it changed
                assert uid in changed, (box, uid, flags)
    assert len(entries) > SESSIONS * ITERATIONS
    assert "Error" not in "".join(
        line for line in d.log().splitlines() if "mailbox-migrate" in line)


def initial_flags(entries, guid, uid):
    for e in entries:
        if e["mailbox_guid"] == guid and e["uid"] == uid and \
                e["type"] in ("save", "copy"):
            return set((e["flags"] + " " + e["keywords"]).split())
    return set()
