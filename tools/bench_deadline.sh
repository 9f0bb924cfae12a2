#!/usr/bin/env bash
# Reaction time to declared deadlines (lambdaguard_deadline in a sqlcommenter
# comment): N sessions each declare a deadline, then stay idle in transaction.
# For each, reaction = (history.at, or the moment its backend was gone) -
# (deadline + lambdaguard.deadline_grace).  Four runs:
#
#   deadline, staggered   deadlines STEP ms apart (all sessions open at once)
#   deadline, burst       the N deadlines fall due together
#   no comment, staggered the same sessions without a comment, opened STEP ms
#                         apart, ended by idle_in_transaction_timeout (3 s);
#                         there due = state_since + that timeout
#   no comment, burst     N such sessions, idle in transaction at the same
#                         moment (released together from an advisory lock)
#
# A benchmark, not a test: it prints figures, never fails because the machine
# is slow.  The per-statement cost of reading the comment is measured
# elsewhere (callgrind).
#
#     bash tools/bench_deadline.sh [N] [STEP_MS]   # default 20 300; as root or postgres
#
# A throwaway cluster on a free loopback port, fsync = on and
# synchronous_commit = on (each history row is committed before its signal),
# lambdaguard.naptime = 1 s, deadline_grace = 1 s, max_terminations = 100,
# idle_in_transaction_timeout = 60 s during the deadline runs.  Deadlines are
# computed from the server's clock_timestamp().  "gone" is the timestamp of
# the backend's disconnection line in the server log (log_disconnections,
# millisecond resolution); BENCH_VERBOSE=1 prints each session too.  Needs pg_lambdaguard installed for PG_CONFIG
# (default Debian's 15); it builds nothing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/tools/common.sh"
N=${1:-20}
STEP=${2:-300}
case "$N$STEP" in '' | *[!0-9]*) echo "usage: bash tools/bench_deadline.sh [N] [STEP_MS]" >&2; exit 2 ;; esac
if [ "$(id -u)" -eq 0 ]; then
	exec runuser -u postgres -- env PG_CONFIG="$LG_PG_CONFIG" bash "$0" "$@"
fi
cmdline="bash tools/bench_deadline.sh $N $STEP"
bin=$LG_PG_BIN
GRACE=1000
NAPTIME=1000
IDLE_TIMEOUT=3000 # the runs without a comment
LEAD=3000         # from "now" to the first deadline: time for N sessions to open
tmp=$(mktemp -d /tmp/lg-bench-deadline.XXXXXX)
port=
for p in $(seq 55700 55899); do
	if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "no free port in 55700..55899" >&2; exit 1; }
cleanup() {
	jobs -p | xargs -r kill 2>/dev/null || true
	"$bin/pg_ctl" -D "$tmp/data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

"$bin/initdb" -D "$tmp/data" -U postgres -A trust --no-sync >/dev/null
cat >>"$tmp/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$tmp'
max_connections = $((N + 20))
fsync = on
synchronous_commit = on
log_line_prefix = '%m [%p] '
log_timezone = 'UTC'
log_disconnections = on
shared_preload_libraries = 'pg_lambdaguard'
lambdaguard.roles = 'app'
lambdaguard.naptime = $NAPTIME
lambdaguard.deadline_grace = $GRACE
lambdaguard.idle_in_transaction_timeout = 60000
lambdaguard.aborted_transaction_timeout = 60000
lambdaguard.blocking_timeout = 0
lambdaguard.max_terminations = 100
CONF
"$bin/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w start >/dev/null
# the library this server loaded (other builds may be installed meanwhile)
lib_md5=$(md5sum "$("$LG_PG_CONFIG" --pkglibdir)/pg_lambdaguard.so" | cut -c1-12)
sql() { "$bin/psql" -X -q -At -h "$tmp" -p "$port" -U postgres -d postgres "$@"; }
sql -c "CREATE ROLE app LOGIN" -c "CREATE EXTENSION pg_lambdaguard"
for _ in $(seq 1 100); do
	[ "$(sql -c 'SELECT scans > 0 FROM lambdaguard.worker')" = t ] && break
	sleep 0.1
done
scans() { sql -c 'SELECT scans FROM lambdaguard.worker'; }
# ALTER SYSTEM + reload, then two more scans (the worker has the new value)
set_timeout() {
	local s0
	sql -c "ALTER SYSTEM SET lambdaguard.idle_in_transaction_timeout = $1" -c "SELECT pg_reload_conf()" >/dev/null
	s0=$(scans)
	for _ in $(seq 1 100); do [ "$(scans)" -ge $((s0 + 2)) ] && break; sleep 0.1; done
}

# One session: its statements, then silence for $2 seconds, as application $3
session() {
	{
		printf '%s\n' "$1"
		sleep "$2"
	} | PGAPPNAME=$3 "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U app -d postgres >/dev/null 2>&1 &
}

# run LABEL MODE(deadline|plain) SPREAD_MS -> one table row
run() {
	local label=$1 mode=$2 spread=$3 app="bench_$RANDOM$RANDOM" i base hold logpos declared due_sql
	logpos=$(($(stat -c %s "$tmp/server.log") + 1))
	if [ "$mode" = deadline ]; then
		base=$(sql -c "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $LEAD")
		hold=$(((LEAD + (N - 1) * spread + GRACE + 5000) / 1000 + 1))
		for i in $(seq 0 $((N - 1))); do
			session "BEGIN; SELECT 1 /*lambdaguard_deadline='$((base + i * spread))',request_id='$app-$i'*/;" "$hold" "$app"
		done
		# every session has declared its deadline before the first one is due?
		declared=0
		while [ "$(sql -c "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint < $base")" = t ]; do
			declared=$(sql -c "SELECT count(*) FROM lambdaguard.sessions WHERE application_name = '$app' AND deadline IS NOT NULL")
			[ "$declared" -ge "$N" ] && break
			sleep 0.05
		done
		due_sql="(h.client_context->>'lambdaguard_deadline')::bigint + $GRACE"
	elif [ "$spread" -gt 0 ]; then
		hold=$((((N - 1) * spread + IDLE_TIMEOUT + 5000) / 1000 + 1))
		for i in $(seq 0 $((N - 1))); do
			session "BEGIN; SELECT 1;" "$hold" "$app"
			sleep "$(printf '%d.%03d' $((spread / 1000)) $((spread % 1000)))"
		done
		declared=$N
	else
		# a burst: the sessions wait behind an advisory lock that a superuser
		# session (never watched) holds, and become idle in transaction
		# together when it is released
		hold=$(((IDLE_TIMEOUT + 8000) / 1000 + 1))
		rm -f "$tmp/release"
		{
			echo "SELECT pg_advisory_lock(42);"
			while [ ! -e "$tmp/release" ]; do sleep 0.02; done
			echo "SELECT pg_advisory_unlock(42);"
		} | "$bin/psql" -X -q -h "$tmp" -p "$port" -U postgres -d postgres >/dev/null 2>&1 &
		until [ "$(sql -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42 AND granted")" = 1 ]; do sleep 0.05; done
		for i in $(seq 0 $((N - 1))); do
			session "BEGIN; SELECT pg_advisory_xact_lock_shared(42);" "$hold" "$app"
		done
		until [ "$(sql -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42 AND NOT granted")" -ge "$N" ]; do sleep 0.05; done
		touch "$tmp/release"
		declared=$N
	fi
	[ "$mode" = deadline ] || due_sql="extract(epoch FROM h.state_since) * 1000 + $IDLE_TIMEOUT"
	for _ in $(seq 1 $((hold * 10 + 50))); do
		[ "$(sql -c "SELECT count(*) FROM lambdaguard.history WHERE application_name = '$app'")" -ge "$N" ] && break
		sleep 0.1
	done
	wait
	{
		echo "CREATE TEMP TABLE gone (pid int, t timestamptz);"
		echo "COPY gone FROM STDIN;"
		tail -c "+$logpos" "$tmp/server.log" |
			sed -n 's/^\([0-9-]* [0-9:.]*\) UTC \[\([0-9]*\)\] LOG:  disconnection: .* user=app .*/\2\t\1+00/p'
		echo '\.'
		# the worker's LOG line of each decision, written after its signal
		echo "CREATE TEMP TABLE signalled (pid int, t timestamptz);"
		echo "COPY signalled FROM STDIN;"
		tail -c "+$logpos" "$tmp/server.log" |
			sed -n 's/^\([0-9-]* [0-9:.]*\) UTC \[[0-9]*\] LOG:  pg_lambdaguard: terminated pid \([0-9]*\) .*/\2\t\1+00/p'
		echo '\.'
		cat <<SQL
CREATE TEMP VIEW r AS
  SELECT extract(epoch FROM h.at) * 1000 - ($due_sql) AS at_ms,
         extract(epoch FROM s.t) * 1000 - ($due_sql) AS sig_ms,
         extract(epoch FROM g.t) * 1000 - ($due_sql) AS gone_ms,
         h.action, h.verdict, h.pid, h.at
    FROM lambdaguard.history h LEFT JOIN gone g USING (pid) LEFT JOIN signalled s USING (pid)
   WHERE h.application_name = '$app';
SELECT format('  %s pid %s at %s due+%s ms gone due+%s ms', '$label', pid, at, round(at_ms::numeric, 3), round(gone_ms::numeric, 1))
  FROM r WHERE ${BENCH_VERBOSE:-0} = 1 ORDER BY at;
SELECT format('%-34s %4s %8s %10s %9s %10s %9s %10s %9s  %s', '$label', $N,
              count(*) FILTER (WHERE action = 'terminate'),
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY at_ms)::numeric, 1),
              round(max(at_ms)::numeric, 1),
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY sig_ms)::numeric, 1),
              round(max(sig_ms)::numeric, 1),
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY gone_ms)::numeric, 1),
              round(max(gone_ms)::numeric, 1),
              coalesce(string_agg(DISTINCT verdict, ','), '-') ||
              CASE WHEN $declared < $N THEN ' (only $declared declared before the first deadline)' ELSE '' END)
  FROM r;
SQL
	} | sql
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), PostgreSQL $("$bin/postgres" --version | awk '{print $3}'), $(sql -c "SELECT 'pg_lambdaguard ' || extversion FROM pg_extension WHERE extname = 'pg_lambdaguard'") (pg_lambdaguard.so md5 $lib_md5...)"
echo "settings: fsync = on, synchronous_commit = on, naptime = ${NAPTIME} ms, deadline_grace = ${GRACE} ms, max_terminations = 100"
echo "reaction (ms) = history.at, the worker's LOG line (after the signal: signalled), or backend gone - due; due = deadline + grace, or, without a comment, state_since + idle_in_transaction_timeout (${IDLE_TIMEOUT} ms)"
echo
printf '%-34s %4s %8s %10s %9s %10s %9s %10s %9s  %s\n' run sessions acted "at median" "at max" "sig med" "sig max" "gone med" "gone max" verdict
run "deadline, staggered ${STEP} ms" deadline "$STEP"
run "deadline, burst" deadline 0
set_timeout "$IDLE_TIMEOUT"
run "no comment, staggered ${STEP} ms" plain "$STEP"
run "no comment, burst" plain 0
set_timeout 60000
echo
echo "command: $cmdline"
