#!/bin/sh
# Installs, from Debian's packages, everything mailbox-migrate needs to build,
# test and benchmark.  Idempotent; run as root on Debian 12.
set -eu

PACKAGES="dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-dev
	libsqlite3-dev zlib1g-dev libzstd-dev libssl-dev zstd sqlite3 autoconf automake libtool pkg-config
	make gcc valgrind python3 python3-pytest strace rsync"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install)" >&2
	exit 1
fi

# Keep the package's own Dovecot service from starting on the system ports:
# our tests and demo run private instances on loopback only.
policy_created=no
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	policy_created=yes
fi
trap '[ "$policy_created" = yes ] && rm -f /usr/sbin/policy-rc.d' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
