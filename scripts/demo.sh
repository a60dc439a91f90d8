#!/bin/sh
# The README's first command: installs what is needed, builds and installs
# mailbox-migrate, then runs the demo against a private Dovecot on
# 127.0.0.1 with a sample spool it makes. Run as root on Debian 12.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
sh scripts/build.sh
exec /usr/bin/python3 scripts/demo.py
