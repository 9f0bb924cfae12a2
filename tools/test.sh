#!/usr/bin/env bash
# Runs every test of pg_lambdaguard: pg_regress, isolation, TAP and the
# end-to-end suite (PgBouncer + Node.js clients).  From a fresh Debian 12
# machine, as root or as a user with sudo:
#
#     bash tools/test.sh
#
# Servers run as the postgres OS user when invoked as root.  Each suite
# starts its own throwaway cluster on a free loopback port and stops it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/tools/common.sh"

lg_install_packages
work=$(lg_scratch_copy "$here")
trap 'rm -rf "$work"' EXIT
lg_build_install "$work"
if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$work"; fi

passed=0
failed=0
suite_done() { if [ "$1" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi; }

lg_say "pg_regress, isolation and TAP tests (make installcheck)"
rc=0
lg_as_server_user make -C "$work" -s PG_CONFIG="$LG_PG_BIN/pg_config" installcheck || rc=$?
if [ "$rc" -ne 0 ]; then
	for f in "$work"/regression.diffs "$work"/output_iso/regression.diffs; do
		[ -f "$f" ] && { echo "--- $f"; head -200 "$f"; }
	done
	for f in "$work"/tmp_check/log/*; do
		[ -f "$f" ] && { echo "--- $f (last lines)"; tail -40 "$f"; }
	done
fi
suite_done "$rc"

lg_say "end-to-end: PgBouncer in transaction mode and Node.js clients"
rc=0
bash "$work/test/e2e/run.sh" || rc=$?
suite_done "$rc"

lg_say "test suites (installcheck, end-to-end)"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
