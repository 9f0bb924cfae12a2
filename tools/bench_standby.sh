#!/usr/bin/env bash
# Reaction time on a hot standby against the same timeout on its primary:
# N orphans (BEGIN; SELECT 1; then silence) opened at once on each server,
# lambdaguard.idle_in_transaction_timeout = 2 s, naptime 1 s, fsync = on on
# both; prints the median and the maximum of (at - state_since) from
# lambdaguard.history on the primary and lambdaguard.standby_history on the
# standby (each record durable before its signal: a commit there, an fsynced
# file here).
#
#     bash tools/bench_standby.sh [N]      # default 20; as root or postgres
#
# Needs pg_lambdaguard installed for PG_CONFIG (default Debian's 15).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/tools/common.sh"
N=${1:-20}
if [ "$(id -u)" -eq 0 ]; then
	exec runuser -u postgres -- env PG_CONFIG="$LG_PG_CONFIG" bash "$0" "$@"
fi
bin=$LG_PG_BIN
tmp=$(mktemp -d /tmp/lg-bench-standby.XXXXXX)
pport=$((20000 + RANDOM % 20000))
sport=$((pport + 1))
cleanup() {
	"$bin/pg_ctl" -D "$tmp/standby" -m immediate stop >/dev/null 2>&1 || true
	"$bin/pg_ctl" -D "$tmp/primary" -m immediate stop >/dev/null 2>&1 || true
	jobs -p | xargs -r kill 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

"$bin/initdb" -D "$tmp/primary" -U postgres -A trust --no-sync >/dev/null
cat >>"$tmp/primary/postgresql.conf" <<CONF
port = $pport
listen_addresses = ''
unix_socket_directories = '$tmp'
fsync = on
max_connections = 100
shared_preload_libraries = 'pg_lambdaguard'
lambdaguard.roles = 'app'
lambdaguard.naptime = 1000
lambdaguard.idle_in_transaction_timeout = 2000
lambdaguard.blocking_timeout = 0
lambdaguard.max_terminations = 100
CONF
echo "local replication postgres trust" >>"$tmp/primary/pg_hba.conf"
"$bin/pg_ctl" -D "$tmp/primary" -l "$tmp/primary.log" -w start >/dev/null
psql() { "$bin/psql" -X -q -At -h "$tmp" -U postgres -d postgres "$@"; }
psql -p "$pport" -c "CREATE ROLE app LOGIN" -c "CREATE EXTENSION pg_lambdaguard"
"$bin/pg_basebackup" -D "$tmp/standby" -h "$tmp" -p "$pport" -U postgres -R -X stream >/dev/null
echo "port = $sport" >>"$tmp/standby/postgresql.conf"
"$bin/pg_ctl" -D "$tmp/standby" -l "$tmp/standby.log" -w start >/dev/null
for _ in $(seq 1 100); do
	[ "$(psql -p "$sport" -c 'SELECT pid IS NOT NULL FROM lambdaguard.worker')" = t ] && break
	sleep 0.1
done

# N orphans on one server, then the reaction times of their records
run() {
	local port=$1 view=$2 i
	for i in $(seq 1 "$N"); do
		(
			echo "BEGIN; SELECT 1;"
			sleep 8
		) | "$bin/psql" -X -q -h "$tmp" -p "$port" -U app -d postgres -v application_name=bench >/dev/null 2>&1 &
	done
	for _ in $(seq 1 100); do
		[ "$(psql -p "$port" -c "SELECT count(*) FROM $view WHERE usename = 'app'")" -ge "$N" ] && break
		sleep 0.1
	done
	psql -p "$port" -c "
SELECT count(*) || ' orphans, terminated after: median ' ||
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY e)::numeric, 3) || ' s, max ' ||
       round(max(e)::numeric, 3) || ' s'
  FROM (SELECT extract(epoch FROM at - state_since)::float8 AS e
          FROM $view WHERE usename = 'app' AND action = 'terminate') x"
	wait
}
echo "primary (lambdaguard.history):         $(run "$pport" lambdaguard.history)"
echo "standby (lambdaguard.standby_history): $(run "$sport" lambdaguard.standby_history)"
