#!/usr/bin/env bash
# The managed edition's test suite (suite name "managed").
#
#     PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config bash managed/test/run.sh
#
# Started from the root of a scratch copy of the tree, as root or as a user
# with sudo.  Installs what it needs (Debian's postgresql-N-cron,
# postgresql-contrib, pgbouncer), then runs managed/test/tests.sh as the
# server user against a throwaway cluster with pg_cron and
# pg_stat_statements preloaded and pg_lambdaguard NOT loaded.  Skips (exit 0)
# where the PostgreSQL under test has no pg_cron.
set -uo pipefail
src=$(pwd)
. "$src/tools/common.sh"

suite=managed
lib=$("$LG_PG_CONFIG" --pkglibdir)
sharedir=$("$LG_PG_CONFIG" --sharedir)

# Debian's pg_cron package, only for a PostgreSQL that Debian's packages
# installed (never over one built from source into the same directory)
# (lg_install_debian runs apt-get update first: a fresh machine has no lists)
if [ ! -f "$lib/pg_cron.so" ] && dpkg -S "$LG_PG_BIN/postgres" >/dev/null 2>&1; then
	lg_install_debian "postgresql-$LG_PG_MAJOR-cron" || echo "managed: no package postgresql-$LG_PG_MAJOR-cron"
fi
if [ ! -f "$lib/pg_cron.so" ]; then
	echo "managed: skipped: no pg_cron for PostgreSQL $LG_PG_MAJOR ($lib/pg_cron.so; Debian packages it for $LG_DEBIAN_MAJOR)"
	echo "$suite: 0 passed, 0 failed"
	exit 0
fi
dpkg -S "$LG_PG_BIN/postgres" >/dev/null 2>&1 && lg_install_debian postgresql-contrib
lg_install_debian pgbouncer
if [ ! -f "$lib/pg_stat_statements.so" ]; then
	echo "managed: skipped: no pg_stat_statements for PostgreSQL $LG_PG_MAJOR ($lib/pg_stat_statements.so)"
	echo "$suite: 0 passed, 0 failed"
	exit 0
fi

# A working copy owned by the server user: the SQL files, the end-to-end
# suite's Node.js package and Lambda handlers, and ours beside them.
work=$(mktemp -d /tmp/lg-managed.XXXXXX)
ext_files=()
cleanup() {
	for f in "${ext_files[@]}"; do lg_root rm -f "$f"; done
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/src" "$work/node"
cp -a "$src/managed" "$work/src/managed"
cp "$src/pg_lambdaguard--1.0.sql" "$work/src/"
tar -C "$src/test/e2e" --exclude=./node_modules -cf - package.json package-lock.json lambdas lib |
	tar -C "$work/node" -xf -
cp "$src/managed/test/lambdas/"*.js "$work/node/lambdas/"
cp "$src/managed/test/workload.js" "$work/node/"
[ -d "$src/test/e2e/node_modules" ] && cp -a "$src/test/e2e/node_modules" "$work/node/"

# The pg_tle package, and its content installed as a plain extension
# (superuser = false: it runs as the user who creates it, as pg_tle's do)
# so that the test can CREATE EXTENSION it as the admin role.
bash "$work/src/managed/build_tle.sh" "$work/src/managed/pg_lambdaguard_managed.sql" \
	>"$work/pgtle-generated.sql"
# Its 1.0 too (the release's file, kept in managed/test) and the package's
# update path (its second block), so that ALTER EXTENSION ... UPDATE runs it.
ext=pg_lambdaguard_managed_test
pkg=$work/src/managed/pg_lambdaguard_managed--pgtle.sql
awk '/^\$_pgtle_\$$/ { n++; next } n == 1' "$pkg" >"$work/ext.sql"
awk '/^\$_pgtle_\$$/ { n++; next } n == 3' "$pkg" >"$work/ext-update.sql"
printf "comment = 'pg_lambdaguard_managed, its pg_tle content (test copy)'\ndefault_version = '1.1'\nrelocatable = false\nsuperuser = false\n" \
	>"$work/ext.control"
for f in "$ext.control:$work/ext.control" "$ext--1.1.sql:$work/ext.sql" \
	"$ext--1.0.sql:$work/src/managed/test/pg_lambdaguard_managed-1.0.sql" "$ext--1.0--1.1.sql:$work/ext-update.sql"; do
	lg_root install -m 644 "${f#*:}" "$sharedir/extension/${f%%:*}" &&
		ext_files+=("$sharedir/extension/${f%%:*}")
done

[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work"
chmod 755 "$work"

rc=0
cd "$work" || exit 1
lg_as_server_user env LG_PG_BIN="$LG_PG_BIN" LG_PG_MAJOR="$LG_PG_MAJOR" WORK="$work" \
	HOME="$work" EXT_NAME="$ext" bash "$work/src/managed/test/tests.sh" || rc=$?
passed=$(cat "$work/passed" 2>/dev/null || echo 0)
failed=$(cat "$work/failed" 2>/dev/null || echo 1)
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	echo "# tests.sh exited with $rc"
	failed=1
fi
echo "$suite: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
