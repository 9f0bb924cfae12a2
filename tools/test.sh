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

status=0
lg_say "pg_regress, isolation and TAP tests (make installcheck)"
if ! lg_as_server_user make -C "$work" -s PG_CONFIG="$LG_PG_BIN/pg_config" installcheck; then
	status=1
	for f in "$work"/regression.diffs "$work"/output_iso/regression.diffs; do
		[ -f "$f" ] && { echo "--- $f"; head -200 "$f"; }
	done
	for f in "$work"/tmp_check/log/*; do
		[ -f "$f" ] && { echo "--- $f (last lines)"; tail -40 "$f"; }
	done
fi

if [ -x "$work/test/e2e/run.sh" ] || [ -f "$work/test/e2e/run.sh" ]; then
	lg_say "end-to-end: PgBouncer in transaction mode and Node.js clients"
	bash "$work/test/e2e/run.sh" || status=1
fi

if [ "$status" -eq 0 ]; then
	lg_say "all test suites passed"
else
	lg_say "some test suite FAILED"
fi
exit $status
