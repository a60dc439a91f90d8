#!/bin/bash
# The whole test suite: installs what is missing, builds and installs the
# modules, runs the unit tests (under valgrind) and the integration tests
# against private Dovecot instances on 127.0.0.1. Run as root.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh || exit 1
bash scripts/build.sh || exit 1

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== unit tests (lib-test, under valgrind)"
make check 2>&1 | tee "$log" | grep -E ' : (ok|FAILED)|tests failed|valgrind|Failed'
unit_rc=${PIPESTATUS[0]}
unit_failed=$(awk '/tests failed/ { s += $1 } END { print s + 0 }' "$log")
unit_total=$(awk '/tests failed/ { s += $3 } END { print s + 0 }' "$log")
if [ "$unit_rc" -ne 0 ] && [ "$unit_failed" -eq 0 ]; then
	# a crash or a valgrind finding: count the run as one failure
	unit_failed=1
fi

echo "== integration tests (private Dovecot on 127.0.0.1)"
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration "$@" \
	2>&1 | tee "$log"
it_rc=${PIPESTATUS[0]}
it_passed=$(grep -Eo '[0-9]+ passed' "$log" | tail -1 | awk '{print $1}')
it_failed=$(grep -Eo '[0-9]+ (failed|error)' "$log" | awk '{ s += $1 } END { print s + 0 }')
it_passed=${it_passed:-0}
if [ "$it_rc" -ne 0 ] && [ "$it_failed" -eq 0 ]; then
	it_failed=1
fi

passed=$((unit_total - unit_failed + it_passed))
failed=$((unit_failed + it_failed))
echo
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
