#!/bin/sh
# Builds mailbox-migrate against Debian's Dovecot and installs the two
# modules into Dovecot's module directories (as root).
set -eu
cd "$(dirname "$0")/.."

[ -x configure ] || ./autogen.sh
[ -f Makefile ] || ./configure --with-dovecot=/usr/lib/dovecot
make -j"$(nproc)"
make install >/dev/null
