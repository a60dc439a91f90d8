"""The administrator's userdb flip, as a test's --switch-command:
switch-userdb.py PASSWD-FILE LOCATION USER sets USER's userdb_mail in the
passwd-file to LOCATION (atomically, by rename)."""

import os
import sys


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


if __name__ == "__main__":
    main()
