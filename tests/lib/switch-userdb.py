"""The administrator's userdb flip, as a test's --switch-command:
switch-userdb.py PASSWD-FILE LOCATION USER sets USER's userdb_mail in the
passwd-file to LOCATION (atomically, by rename), and returns once the
userdb answers with it (passwd-file notices a change at most once a
second), as a switch command should."""

import os
import subprocess
import sys
import time


def main():
    passwd, location, user = sys.argv[1:4]
    lines = []
    found = False
    with open(passwd) as f:
        for line in f:
            fields = line.rstrip("\n").split(":", 7)
            if fields[0] == user:
                found = True
                extra = [x for x in fields[7].split()
                         if not x.startswith("userdb_mail=")]
                extra.append("userdb_mail=%s" % location)
                fields[7] = " ".join(extra)
                line = ":".join(fields) + "\n"
            lines.append(line)
    if not found:
        sys.exit("no such user: %s" % user)
    tmp = passwd + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(lines)
    os.chmod(tmp, os.stat(passwd).st_mode)
    os.rename(tmp, passwd)
    config = os.path.join(os.path.dirname(passwd), "dovecot.conf")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["/usr/bin/doveadm", "-c", config, "user", "-f",
                              "mail", user], capture_output=True, text=True)
        if out.stdout.strip() == location:
            return
        time.sleep(0.1)
    sys.exit("userdb still doesn't answer %s for %s" % (location, user))


if __name__ == "__main__":
    main()
