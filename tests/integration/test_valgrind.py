"""The plugin and the doveadm commands under valgrind: IMAP, POP3 and LDA
sessions run as standalone processes (doveadm exec / dovecot-lda) so that
valgrind sees every line of the plugin that a session runs."""

import glob
import shutil
import subprocess

import pytest

from mmtest import DOVEADM, clean_env, corrupt_state_file, make_message

VALGRIND = ["valgrind", "-q", "--vgdb=no", "--trace-children=yes",
            "--child-silent-after-fork=yes", "--error-exitcode=99",
            "--leak-check=full", "--errors-for-leak-kinds=definite"]

IMAP_SESSION = (b"a CREATE Work\r\n"
                b"b APPEND Work (\\Seen $label1) {5}\r\nhello\r\n"
                b"c SELECT INBOX\r\n"
                b"d COPY 1 Work\r\n"
                b"e STORE 1 +FLAGS (\\Deleted \\Answered)\r\n"
                b"f EXPUNGE\r\n"
                b"g STATUS Work (UIDNEXT MESSAGES)\r\n"
                b"h RENAME Work Old\r\n"
                b"i SUBSCRIBE Old\r\n"
                b"j DELETE Old\r\n"
                b"k NOOP\r\n"
                b"l LOGOUT\r\n")

pytestmark = pytest.mark.skipif(shutil.which("valgrind") is None,
                                reason="valgrind not installed")


def run(cmd, stdin=b""):
    proc = subprocess.run(VALGRIND + cmd, input=stdin, capture_output=True,
                          env=clean_env(), timeout=300)
    errors = [line for line in proc.stderr.decode(errors="replace")
              .splitlines() if line.startswith("==")]
    assert proc.returncode == 0 and not errors, \
        (cmd, proc.returncode, "\n".join(errors))
    return proc.stdout.decode(errors="replace")


def test_sessions_and_commands_under_valgrind(maildir_dovecot):
    d = maildir_dovecot
    d.deliver("alice", make_message("first"))
    run(["/usr/lib/dovecot/dovecot-lda", "-c", d.config, "-d", "alice"],
        make_message("second"))
    out = run([DOVEADM, "-c", d.config, "exec", "imap", "-u", "alice"],
              IMAP_SESSION)
    assert "l OK" in out
    out = run([DOVEADM, "-c", d.config, "exec", "pop3", "-u", "alice"],
              b"UIDL\r\nQUIT\r\n")
    assert out.count("+OK") >= 2
    out = run([DOVEADM, "-c", d.config, "mailbox-migrate", "journal",
               "-u", "alice"])
    assert "(total)" in out
    out = run([DOVEADM, "-c", d.config, "mailbox-migrate", "journal",
               "-u", "alice", "--list"])
    assert "rename" in out and "delete" in out
    out = run([DOVEADM, "-c", d.config, "mailbox-migrate", "seen", "-A"])
    assert "alice" in out
    # and a failure path: the state file corrupt. A delivery only appends
    # to the journal log; the IMAP session's seen UIDNEXT write finds the
    # file corrupt, moves it aside and starts a new journal with a gap
    corrupt_state_file(d.db_path("alice"))
    run(["/usr/lib/dovecot/dovecot-lda", "-c", d.config, "-d", "alice"],
        make_message("third"))
    out = run([DOVEADM, "-c", d.config, "exec", "imap", "-u", "alice"],
              b"s SELECT INBOX\r\nl LOGOUT\r\n")
    assert "s OK" in out
    assert glob.glob(d.db_path("alice") + ".corrupt-*")
    rows = {r["mailbox"]: r for r in d.journal("alice")}
    assert rows["INBOX"]["complete"] == "no"


def test_migration_and_cutover_under_valgrind(make_dovecot):
    src, dst = "maildir:~/Maildir", "sdbox:~/sdbox"
    d = make_dovecot(mail_location=src, user_mail={"alice": src},
                     plugin_settings={"mailbox_migrate_workers": "2"})
    for i in range(5):
        d.deliver("alice", make_message("m%d" % i))
        d.deliver("bob", make_message("m%d" % i))
    run(["/usr/lib/dovecot/dovecot-lda", "-c", d.config, "-d", "alice"],
        make_message("lda"))
    base = [DOVEADM, "-c", d.config, "mailbox-migrate"]
    out = run(base + ["-u", "alice", dst])
    assert "(total)" in out
    run([DOVEADM, "-c", d.config, "exec", "imap", "-u", "alice"],
        IMAP_SESSION)
    out = run(base + ["-u", "alice", "--full", dst])
    out = run(base + ["-u", "alice", dst])
    out = run(base + ["-A", "--dry-run", dst])
    # bob's first pass, recorded by its worker after the syncfs()
    d.deliver("alice", make_message("for the workers"))
    out = run(base + ["-A", dst])
    out = run(base + ["status", "-A"])
    assert "alice" in out and "bob" in out
    out = run(base + ["-u", "alice", "--cutover", "--switch-command",
                      d.switch_command(dst), dst])
    assert d.snapshot("alice")["INBOX"][0]["messages"] == \
        d.snapshot("alice", src)["INBOX"][0]["messages"]
    # the user's sessions now run on sdbox, whose saves the plugin gives
    # a GUID and caches it
    out = run([DOVEADM, "-c", d.config, "exec", "imap", "-u", "alice"],
              IMAP_SESSION)
    assert "l OK" in out


def test_backup_commands_under_valgrind(make_dovecot):
    import os
    d = make_dovecot(plugin_settings={"mailbox_migrate_workers": "2",
                                      "mailbox_migrate_device_workers": "1"})
    root = os.path.join(d.root, "backup")
    os.mkdir(root)
    d.chown_to_mail_user(root)
    store = "backup:%s/%%u" % root
    for i in range(5):
        d.deliver("alice", make_message("m%d" % i, size=i * 40000))
        d.deliver("bob", make_message("m%d" % i))
    base = [DOVEADM, "-c", d.config, "mailbox-migrate"]
    assert "(total)" in run(base + ["-A", store])
    run([DOVEADM, "-c", d.config, "exec", "imap", "-u", "alice"],
        IMAP_SESSION)
    # the store opened once the pass has something to bring; then a pass
    # with nothing to bring, which leaves it closed
    run(base + ["-u", "alice", store])
    run(base + ["-u", "alice", store])
    run([DOVEADM, "-c", d.config, "-o",
         "plugin/mailbox_migrate_backup_compression=zstd",
         "mailbox-migrate", "-u", "bob", "backup:%s/zst-%%u" % root])
    run(base + ["verify", "-A", store])
    run(base + ["verify", "-u", "alice", "--quick", store])
    run(base + ["compact", "-u", "alice", "--keep", "0", store])
    run(base + ["reindex", "-u", "alice", store])
    out = run(base + ["restore", "-u", "alice", "--at", "2030-01-01T00:00:00Z",
                      "-m", "INBOX", "--to", "Copy", store])
    assert "(total)" in out
    run(base + ["restore", "-u", "bob", "backup:%s/zst-%%u" % root])
    run(base + ["status", "-A", store])


def test_logout_hook_under_valgrind(make_dovecot):
    """The hook's hand-over in an IMAP session (to a running service, and
    to none) and the --logout pass it asks for."""
    import time
    from test_logout import dest_guids, make, src_guids

    d = make(make_dovecot)
    dest = "maildir:%s/dest/alice/Maildir" % d.root
    d.deliver("alice", make_message("first"))
    base = [DOVEADM, "-c", d.config, "mailbox-migrate"]
    run(base + ["-u", "alice", dest])
    run([DOVEADM, "-c", d.config, "exec", "imap", "-u", "alice"],
        IMAP_SESSION)
    deadline = time.monotonic() + 20
    while dest_guids(d, "alice") != src_guids(d, "alice"):
        assert time.monotonic() < deadline, d.log()[-2000:]
        time.sleep(0.1)
    d.deliver("alice", make_message("second"))
    run(base + ["-u", "alice", "--logout"])
    assert dest_guids(d, "alice") == src_guids(d, "alice")
    # no service at the socket: logged, the session still ends well
    d.deliver("alice", make_message("third"))
    out = run([DOVEADM, "-c", d.config, "-o",
               "plugin/mailbox_migrate_logout_socket=nowhere",
               "exec", "imap", "-u", "alice"], b"a NOOP\r\nb LOGOUT\r\n")
    assert "b OK" in out
