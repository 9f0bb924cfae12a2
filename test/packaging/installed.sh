#!/usr/bin/env bash
# Does the extension installed in the PostgreSQL directories work?  Run by
# test/packaging/run.sh as the server user after each way of installing it:
#
#     installed.sh HOW VERSION     e.g. installed.sh "pgxn install" 1.1
#
# A throwaway cluster with pg_lambdaguard preloaded: the library loads (built
# for this server), CREATE EXTENSION gives VERSION, a view reads shared
# memory, the worker scans.  Environment: LG_PG_BIN, SRC, WORK.  Prints
# "installed (HOW): N passed, N failed".
set -uo pipefail
how=$1
want=$2
export PATH="$LG_PG_BIN:$PATH"
. "$SRC/test/packaging/lib.sh"

dir=$WORK/installed-$(printf '%s' "$how" | tr -c 'A-Za-z0-9' '_')
port=$(free_port 57300 57999) || { not_ok "a free port"; summary "installed ($how)"; exit; }
trap 'cluster_stop "$dir"; if [ "$fail" -gt 0 ] && [ -f "$dir/server.log" ]; then tail -n 20 "$dir/server.log" | sed "s/^/#   /"; fi' EXIT
S() { psql -X -qAt -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres "$@"; }

if cluster_start "$dir" "$port" "shared_preload_libraries = 'pg_lambdaguard'" "lambdaguard.naptime = 100"; then
	ok "$how: a server with shared_preload_libraries = 'pg_lambdaguard' starts"
else
	not_ok "$how: a server with shared_preload_libraries = 'pg_lambdaguard' starts" "$(tail -20 "$dir/server.log")"
	summary "installed ($how)"
	exit
fi
out=$(S -c "CREATE EXTENSION pg_lambdaguard" 2>&1)
is "$how: CREATE EXTENSION pg_lambdaguard" "$out" ""
is "$how: the extension's version is $want, in schema lambdaguard" \
	"$(S -c "SELECT extversion, extnamespace::regnamespace FROM pg_extension WHERE extname = 'pg_lambdaguard'")" \
	"$want|lambdaguard"
is "$how: sessions (from shared memory) shows this session" \
	"$(S -c "SELECT count(*) FROM lambdaguard.sessions WHERE pid = pg_backend_pid()")" 1
if wait_for "the worker's first scan" 15 S -c "SELECT scans > 0 FROM lambdaguard.worker"; then
	ok "$how: the background worker scans"
else
	not_ok "$how: the background worker scans" "$(S -c "TABLE lambdaguard.worker" 2>&1)"
fi
summary "installed ($how)"
