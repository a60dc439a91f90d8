"""A private Dovecot on 127.0.0.1 for mailbox-migrate's integration tests.

Each Dovecot instance has its own directory (base_dir, state, homes, log),
its own ports, passwd-file users and the non-root mail user nobody. Every
wait is bounded; stop() always stops what start() started.
"""

import contextlib
import email.utils
import imaplib
import json
import os
import poplib
import pwd
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

DOVECOT = "/usr/sbin/dovecot"
SWITCH_USERDB = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "switch-userdb.py")
DOVEADM = "/usr/bin/doveadm"
HOST = "127.0.0.1"
PASSWORD = "secret"
MAIL_USER = "nobody"
MAIL_GROUP = "nogroup"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


def free_ports(count):
    """count distinct free ports on HOST: all bound at once, since the
    kernel may hand the same ephemeral port to one bind after another
    (once two of an instance's listeners got the same port and Dovecot
    refused the configuration: "duplicate listener")."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(
                socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind((HOST, 0))
            ports.append(s.getsockname()[1])
        return ports


def clean_env():
    # A Dovecot binary started from one of ours would otherwise inherit its
    # configuration through the environment.
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}


def make_message(subject, body="hello\n", size=0, sender="alice@example.com",
                 to="user@example.com", msgid=None):
    msgid = msgid or email.utils.make_msgid(domain="mmtest.example")
    if size > len(body):
        line = "x" * 72 + "\n"
        body = body + line * ((size - len(body)) // len(line) + 1)
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\n"
            "Message-ID: %s\r\n\r\n%s" % (
                sender, to, subject, email.utils.formatdate(), msgid,
                body.replace("\n", "\r\n"))).encode()


# The service the logout hook (mailbox_migrate_on_logout) hands users to:
# Dovecot's script runner execs doveadm as root (doveadm drops to the mail
# user itself); only the mail user may connect. For extra_config.
LOGOUT_SERVICE = """
service mailbox-migrate-logout {{
  executable = script %s -c {config} mailbox-migrate
  user = root
  process_limit = 2
  unix_listener mailbox-migrate-logout {{
    user = {mail_user}
    mode = 0600
  }}
}}
""" % DOVEADM


class DoveadmError(Exception):
    def __init__(self, args, proc):
        super().__init__("doveadm %s failed (%d): %s" % (
            " ".join(args), proc.returncode, proc.stderr.strip()))
        self.proc = proc


class Dovecot:
    def __init__(self, users=("alice", "bob"), mail_location=None,
                 plugin_settings=None, plugin=True, name="mmtest",
                 mail_fsync="never", user_mail=None, extra_config="",
                 user_uids=None, user_fields=None):
        # MMTEST_DIR: where benchmarks put it (e.g. a tmpfs, to leave the
        # disk's own costs out)
        self.root = tempfile.mkdtemp(prefix="%s-" % name,
                                     dir=os.environ.get("MMTEST_DIR", "/tmp"))
        os.chmod(self.root, 0o755)
        self.users = list(users)
        self.mail_location = mail_location or "maildir:~/Maildir"
        self.plugin = plugin
        self.plugin_settings = dict(plugin_settings or {})
        self.mail_fsync = mail_fsync
        # per-user mail location in the userdb (what a cutover switches)
        self.user_mail = dict(user_mail or {})
        # per-user UID (default: the mail user's), home mode 0700 then
        self.user_uids = dict(user_uids or {})
        # more userdb fields per user, e.g. "userdb_mail_plugins="
        self.user_fields = dict(user_fields or {})
        # more configuration; {root}, {config} and {mail_user} are filled in
        self.extra_config = extra_config
        self.imap_port, self.pop3_port, self.lmtp_port = free_ports(3)
        self.config = os.path.join(self.root, "dovecot.conf")
        self.log_path = os.path.join(self.root, "dovecot.log")
        self.passwd = os.path.join(self.root, "passwd")
        self.pw = pwd.getpwnam(MAIL_USER)
        self.started = False
        for d in ("run", "state", "home"):
            os.mkdir(os.path.join(self.root, d))
        self.write_passwd()
        self.write_config()

    # --- configuration -------------------------------------------------
    def home(self, user):
        return os.path.join(self.root, "home", user)

    def write_passwd(self):
        with open(self.passwd, "w") as f:
            for user in self.users:
                extra = []
                if user in self.user_mail:
                    extra.append("userdb_mail=%s" % self.user_mail[user])
                if user in self.user_fields:
                    extra.append(self.user_fields[user])
                extra = " ".join(extra)
                uid = self.user_uids.get(user, self.pw.pw_uid)
                f.write("%s:{PLAIN}%s:%d:%d::%s::%s\n" % (
                    user, PASSWORD, uid, self.pw.pw_gid,
                    self.home(user), extra))
                os.makedirs(self.home(user), exist_ok=True)
                os.chown(self.home(user), uid, self.pw.pw_gid)
                if user in self.user_uids:
                    os.chmod(self.home(user), 0o700)

    def write_config(self):
        plugins = "notify mailbox_migrate" if self.plugin else ""
        settings = "\n".join("  %s = %s" % kv
                             for kv in sorted(self.plugin_settings.items()))
        conf = """
base_dir = {root}/run
state_dir = {root}/state
instance_name = mmtest-{port}
log_path = {log}
listen = {host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
protocols = imap pop3 lmtp
first_valid_uid = 1
mail_location = {location}
mail_plugins = $mail_plugins {plugins}
mail_fsync = {fsync}
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {host}
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {host}
    port = {lmtp}
  }}
}}
service anvil {{
  chroot =
}}
lmtp_save_to_detail_mailbox = no
pop3_uidl_format = %08Xu%08Xv
plugin {{
{settings}
}}
{extra}
""".format(root=self.root, port=self.imap_port, log=self.log_path,
           host=HOST, location=self.mail_location, plugins=plugins,
           passwd=self.passwd, imap=self.imap_port, pop3=self.pop3_port,
           lmtp=self.lmtp_port, settings=settings, fsync=self.mail_fsync,
           extra=self.extra_config.format(root=self.root, config=self.config,
                                          mail_user=MAIL_USER))
        with open(self.config, "w") as f:
            f.write(conf)

    # --- lifecycle ------------------------------------------------------
    def start(self):
        subprocess.run([DOVECOT, "-c", self.config], check=True,
                       env=clean_env(), timeout=30)
        self.started = True
        deadline = time.monotonic() + START_TIMEOUT
        for port in (self.imap_port, self.pop3_port, self.lmtp_port):
            while True:
                try:
                    socket.create_connection((HOST, port), 1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("dovecot did not listen on %d:\n%s"
                                           % (port, self.log()))
                    time.sleep(0.05)

    def master_pid(self):
        try:
            with open(os.path.join(self.root, "run", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        if not self.started:
            return
        pid = self.master_pid()
        subprocess.run([DOVEADM, "-c", self.config, "stop"], env=clean_env(),
                       timeout=30, capture_output=True)
        deadline = time.monotonic() + STOP_TIMEOUT
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.started = False

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # --- clients --------------------------------------------------------
    def imap(self, user):
        conn = imaplib.IMAP4(HOST, self.imap_port, timeout=30)
        conn.login(user, PASSWORD)
        return conn

    def imap_pid(self, user):
        """The pid of the user's one IMAP session process."""
        out = subprocess.run([DOVEADM, "-c", self.config, "who", "-1",
                              user], capture_output=True, text=True,
                             env=clean_env(), check=True).stdout
        pids = [int(f[2]) for f in (line.split() for line in
                                    out.splitlines()[1:])
                if len(f) > 2 and f[0] == user and f[1] == "imap"]
        assert len(pids) == 1, out
        return pids[0]

    def pop3(self, user):
        conn = poplib.POP3(HOST, self.pop3_port, timeout=30)
        conn.user(user)
        conn.pass_(PASSWORD)
        return conn

    def deliver(self, user, message):
        """LMTP delivery; returns the server's reply code for the user."""
        with smtplib.LMTP(HOST, self.lmtp_port, timeout=30) as lmtp:
            refused = lmtp.sendmail("sender@example.com", [user], message)
            return refused.get(user, (250,))[0]

    def lmtp(self):
        """An LMTP connection for several deliveries."""
        return smtplib.LMTP(HOST, self.lmtp_port, timeout=30)

    def doveadm(self, *args, check=True, fmt=None):
        cmd = [DOVEADM, "-c", self.config]
        if fmt:
            cmd += ["-f", fmt]
        cmd += list(args)
        proc = subprocess.run(cmd, env=clean_env(), capture_output=True,
                              text=True, timeout=120)
        if check and proc.returncode != 0:
            raise DoveadmError(args, proc)
        return proc

    def doveadm_json(self, *args):
        proc = self.doveadm(*args, fmt="json")
        return json.loads(proc.stdout) if proc.stdout.strip() else []

    # --- what the plugin recorded -----------------------------------------
    def journal(self, user, *mailboxes):
        return self.doveadm_json("mailbox-migrate", "journal", "-u", user,
                                 *mailboxes)

    def journal_entries(self, user, *mailboxes, since=None):
        args = ["mailbox-migrate", "journal", "-u", user, "--list"]
        if since is not None:
            args += ["--since", str(since)]
        rows = self.doveadm_json(*args, *mailboxes)
        for row in rows:
            for key in ("seq", "uid", "uidvalidity"):
                row[key] = int(row[key])
        return rows

    def seen(self, user, *masks):
        rows = self.doveadm_json("mailbox-migrate", "seen", "-u", user,
                                 *masks)
        return {r["mailbox"]: r for r in rows}

    def fetch(self, user, mailbox, fields="uid guid flags"):
        rows = self.doveadm_json("fetch", "-u", user, fields,
                                 "mailbox", mailbox)
        for row in rows:
            if "uid" in row:
                row["uid"] = int(row["uid"])
        return rows

    def mailbox_status(self, user, mailbox,
                       fields="guid uidvalidity uidnext messages"):
        rows = self.doveadm_json("mailbox", "status", "-u", user, fields,
                                 mailbox)
        return rows[0]

    def db_path(self, user):
        override = self.plugin_settings.get("mailbox_migrate_db")
        if override:
            return override.replace("%u", user).replace("~", self.home(user))
        return os.path.join(self.home(user), "Maildir",
                            "mailbox-migrate.db")

    def switch_command(self, location):
        """A --switch-command that points the user's userdb entry at
        location (the user name is appended by mailbox-migrate)."""
        return "%s %s %s %s" % (
            sys.executable, SWITCH_USERDB, self.passwd, location)

    def migrate(self, user, destination, *options, check=True):
        """doveadm mailbox-migrate; returns the process (rows in json)."""
        return self.doveadm("mailbox-migrate", "-u", user, *options,
                            destination, check=check, fmt="json")

    def snapshot(self, user, location=None):
        """What clients and POP3 see of every mailbox of the user, through
        doveadm: {mailbox: (status, [messages])}; \\Recent left out (it
        is per session)."""
        opts = ["-o", "mail_location=%s" % location] if location else []
        boxes = {}
        for row in self.doveadm_json(
                *opts, "mailbox", "status", "-u", user,
                "guid uidvalidity uidnext messages", "*"):
            mails = self.doveadm_json(
                *opts, "fetch", "-u", user,
                "uid guid flags date.received date.saved pop3.uidl",
                "mailbox", row["mailbox"])
            for m in mails:
                m["flags"] = " ".join(sorted(
                    f for f in m["flags"].split() if f != "\\Recent"))
            boxes[row["mailbox"]] = (row, mails)
        return boxes

    def chown_to_mail_user(self, path):
        os.chown(path, self.pw.pw_uid, self.pw.pw_gid)


@contextlib.contextmanager
def small_disk(d, path, size):
    """A tmpfs of size (mount's syntax) at path, made and owned by the mail
    user, unmounted at the end; resize with remount_size()."""
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" %
                    size, "tmpfs", path], check=True)
    try:
        d.chown_to_mail_user(path)
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)


def remount_size(path, size):
    subprocess.run(["mount", "-o", "remount,size=%s" % size, path],
                   check=True)


def db_query(path, sql, *params):
    """Read the state file directly (for assertions only)."""
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def imap_uidnext_from_select(conn, mailbox):
    typ, _ = conn.select('"%s"' % mailbox)
    assert typ == "OK"
    code, data = conn.response("UIDNEXT")
    return int(data[0])


def read_bytes(pid):
    """Bytes the process has read with read() and its kind (its rchar): a
    maildir's whole dovecot-uidlist, which Dovecot reads at a SELECT while
    it rescans a maildir that changed, shows here."""
    with open("/proc/%d/io" % pid) as f:
        return int(next(line for line in f
                        if line.startswith("rchar:")).split()[1])


def minor_faults(pid):
    """Minor page faults of a process so far (/proc/PID/stat minflt): pages
    it touched for the first time, such as memory that malloc got anew
    from the kernel."""
    with open("/proc/%d/stat" % pid) as f:
        # the fields after the command name, which may hold spaces
        return int(f.read().rsplit(")", 1)[1].split()[7])


def imap_enable_condstore(conn, mailboxes=("INBOX",)):
    """Make Dovecot keep per-message modseqs in each mailbox (it does from
    then on, for every session), as the plugin does for its user's."""
    typ, _ = conn._simple_command("ENABLE", "CONDSTORE")
    assert typ == "OK", typ
    for box in mailboxes:
        typ, _ = conn.select(box)
        assert typ == "OK", (box, typ)


def imap_utf7(name):
    """Mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3), quoted."""
    import base64
    out, run = [], []

    def flush():
        if run:
            data = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode()
                       .rstrip("=").replace("/", ",") + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return '"%s"' % "".join(out).replace("\\", "\\\\").replace('"', '\\"')


def corrupt_state_file(path):
    """Make a state file unreadable: garbage over its header and no WAL
    or journal to repair it from."""
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)
    with open(path, "r+b") as f:
        f.write(b"garbage!" * 512)
