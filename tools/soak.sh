#!/usr/bin/env bash
# Soak test of pg_lambdaguard's worker:
#
#     bash tools/soak.sh [seconds]          # default 600
#
# pgbench traffic from the watched role (BEGIN; UPDATE a random row; COMMIT,
# and single SELECTs) while orphans are injected at random intervals
# (sessions of the same role, application_name orphan_N, that BEGIN, run one
# statement and stay idle in transaction: some hold a row lock pgbench
# wants, some are aborted).  At the end it prints
#
#     orphans injected, orphans terminated, non-orphans terminated
#
# and fails unless 100% were caught and 0 other sessions were touched.
#
# From a fresh Debian 12 machine, as root or as a user with sudo: installs
# the Debian packages that are missing (apt-get update first), builds the
# extension in a scratch copy and installs it, and runs t/015_soak.pl with
# SOAK_SECONDS=seconds on a throwaway cluster, as the postgres OS user when
# invoked as root.  The scratch copy (with the server log) is kept when the
# soak fails.
set -euo pipefail

secs=${1:-600}
case $secs in
'' | *[!0-9]*)
	echo "usage: bash tools/soak.sh [seconds]   (default 600)" >&2
	exit 2
	;;
esac
if [ "$secs" -lt 5 ]; then
	echo "tools/soak.sh: at least 5 seconds" >&2
	exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/tools/common.sh"
PG_MAJOR=$LG_PG_MAJOR
PG_BIN=$LG_PG_BIN
PACKAGES="postgresql-$LG_DEBIAN_MAJOR postgresql-client-$LG_DEBIAN_MAJOR postgresql-server-dev-$LG_DEBIAN_MAJOR \
libipc-run-perl perl make gcc util-linux"
say() { lg_say "$@"; }
as_root() { lg_root "$@"; }
as_server_user() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- env PATH="$PG_BIN:$PATH" "$@"
	else
		env PATH="$PG_BIN:$PATH" "$@"
	fi
}

# 1. the Debian packages that are missing
lg_install_debian $PACKAGES

# 2. a scratch copy, built and installed
work=$(mktemp -d /tmp/pg_lambdaguard_soak.XXXXXX)
tar -C "$here" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
	--exclude=tmp_check --exclude=tmp_check_iso --exclude=results --exclude=node_modules \
	-cf - . | tar -C "$work" -xf -
say "building and installing pg_lambdaguard (in $work)"
make -C "$work" -s PG_CONFIG="$PG_BIN/pg_config"
as_root make -C "$work" -s PG_CONFIG="$PG_BIN/pg_config" install
if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$work"; fi
chmod 755 "$work"

# 3. the soak
pgxs_src=$(dirname "$(dirname "$("$PG_BIN/pg_config" --pgxs)")")
say "soak for $secs s (t/015_soak.pl, SOAK_SECONDS=$secs)"
status=0
(cd "$work" && as_server_user env PG_REGRESS="$pgxs_src/test/regress/pg_regress" \
	SOAK_SECONDS="$secs" prove -v -I "$pgxs_src/test/perl" -I . t/015_soak.pl) \
	>"$work/soak.out" 2>&1 || status=$?
cat "$work/soak.out"

say "result"
grep '^# soak:' "$work/soak.out" | sed 's/^# //' || true
if [ "$status" -eq 0 ]; then
	echo "PASS: 100% of the orphans caught, no other session touched"
	rm -rf "$work"
else
	echo "FAIL (exit $status); the scratch copy and the logs are kept in $work:"
	ls "$work"/tmp_check/log/ 2>/dev/null || true
	for f in "$work"/tmp_check/log/*.log; do
		[ -f "$f" ] && { echo "--- $f (last lines)"; tail -40 "$f"; }
	done
fi
exit $status
