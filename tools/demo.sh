#!/usr/bin/env bash
# The main job of pg_lambdaguard, shown on a throwaway cluster:
#
#     bash tools/demo.sh
#
# From a fresh Debian 12 machine, as root or as a user with sudo: installs
# what is missing, builds and installs the extension, starts PostgreSQL 15
# with it preloaded on a free loopback port, then
#   1. the cascade: a "function" begins a transaction, updates a row and
#      goes silent; the requests behind its lock miss their deadlines;
#   2. the same with the guard on: the orphan is terminated after
#      blocking_timeout and the requests go through; history and the LOG
#      line say who, what and why;
#   3. pinning: statements that pin a proxy or leak through a transaction
#      pooler, including one hidden inside a function, reported as they run.
# The server is stopped and its files removed at the end.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/tools/common.sh"

lg_install_packages
work=$(lg_scratch_copy "$here")
lg_build_install "$work"

dir=$(mktemp -d /tmp/lambdaguard-demo.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" -eq 0 ] && chown "$(lg_server_user)": "$dir"
port=
for p in $(seq 54321 54421); do
	if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "no free port" >&2; exit 1; }

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	lg_as_server_user pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	rm -rf "$dir" "$work"
}
trap cleanup EXIT

lg_say "starting PostgreSQL $LG_PG_MAJOR on 127.0.0.1:$port with pg_lambdaguard preloaded"
lg_as_server_user initdb -D "$dir/data" -A trust -U postgres >/dev/null
cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_preload_libraries = 'pg_lambdaguard'
lambdaguard.roles = 'lambda'                  # the proxy's login role
lambdaguard.idle_in_transaction_timeout = 4s
lambdaguard.blocking_timeout = 1s             # shorter when others wait on its locks
lambdaguard.naptime = 30s                     # the worker wakes when a session falls due
EOF
chown -R "$(lg_server_user)": "$dir" 2>/dev/null || true
lg_as_server_user pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null

psql_admin() { psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"; }
psql_app() { psql -X -q -h 127.0.0.1 -p "$port" -U lambda -d postgres "$@"; }

psql_admin <<'EOF'
CREATE EXTENSION pg_lambdaguard;
CREATE ROLE lambda LOGIN;
CREATE TABLE accounts (id int PRIMARY KEY, balance int);
INSERT INTO accounts VALUES (1, 100), (2, 100);
GRANT SELECT, UPDATE ON accounts TO lambda;
EOF

# An orphan: a function begins a transaction, updates a row, then times out
# and goes silent; five more invocations, each with a 3 s deadline (as a
# Lambda's), update the same row.  Prints how many failed.
cascade() {
	local label=$1 i failed=0
	mkfifo "$dir/$label.in"
	psql_app -v VERBOSITY=verbose <"$dir/$label.in" >"$dir/$label.out" 2>&1 &
	pids+=($!)
	exec 3>"$dir/$label.in"
	echo "SET application_name = 'checkout-fn'; BEGIN; UPDATE accounts SET balance = balance - 10 WHERE id = 1;" >&3
	sleep 0.3
	local start=$(date +%s%N)
	for i in 1 2 3 4 5; do
		psql_app -c "SET application_name = 'checkout-fn'" -c "SET statement_timeout = '3s'" \
			-c "UPDATE accounts SET balance = balance - 1 WHERE id = 1" >"$dir/$label.$i.out" 2>&1 &
		waiters[$i]=$!
		sleep 0.2
		if [ "$i" = 1 ] && [ "$label" = guard ]; then
			psql_admin -c "SELECT pid, usename, application_name AS app, client_addr, state,
			       date_trunc('second', state_duration) AS for, blocking, watched, verdict,
			       to_char(action_at, 'HH24:MI:SS.MS') AS guard_acts_at
			  FROM lambdaguard.sessions WHERE usename = 'lambda' ORDER BY pid"
		fi
		sleep 0.2
	done
	for i in 1 2 3 4 5; do wait "${waiters[$i]}" || failed=$((failed + 1)); done
	local ms=$(( ($(date +%s%N) - start) / 1000000 ))
	printf '   5 invocations behind the orphan, each with a 3 s deadline: %d failed, %d succeeded (%d.%03d s)\n' \
		"$failed" $((5 - failed)) $((ms / 1000)) $((ms % 1000))
	grep -h "ERROR" "$dir/$label".[1-5].out | sort | uniq -c | sed 's/^/     /' || true
	echo "SELECT 'still here';" >&3 || true
	exec 3>&- || true
	sleep 0.3
	echo "   what the orphan's client saw when it came back:"
	grep -E "FATAL|57P01" "$dir/$label.out" | head -2 | sed 's/^/     /' || echo "     nothing: its transaction was still open"
}
declare -a waiters

lg_say "1. the cascade without the guard (lambdaguard.enabled = off)"
psql_admin -c "ALTER SYSTEM SET lambdaguard.enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
cascade noguard

lg_say "2. the same with the guard on: the orphan is terminated, the invocations go through"
psql_admin -c "ALTER SYSTEM RESET lambdaguard.enabled" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
cascade guard

echo "   lambdaguard.history:"
psql_admin -x -c "SELECT id, pid, usename, application_name, client_addr, state, verdict, action,
       round(extract(epoch FROM at - state_since)::numeric, 3) AS after_seconds,
       locks_held, blocked_pids, query
  FROM lambdaguard.history ORDER BY id"
echo "   the server log:"
grep "pg_lambdaguard: terminated" "$dir/server.log" | sed 's/^/     /'

lg_say "3. pinning: what a function's statements do to its pooled connection"
mkfifo "$dir/pinned.in"
psql_app <"$dir/pinned.in" >/dev/null 2>&1 &
pids+=($!)
exec 4>"$dir/pinned.in"
cat >&4 <<'EOF'
SET application_name = 'report-fn';
SET search_path = public;
PREPARE by_id AS SELECT balance FROM accounts WHERE id = $1;
EXECUTE by_id(1);
CREATE TEMP TABLE scratch AS SELECT * FROM accounts;
SELECT pg_advisory_lock(42);
BEGIN; SET LOCAL work_mem = '64MB'; SELECT pg_advisory_xact_lock(43); COMMIT;
CREATE FUNCTION pg_temp.quiet() RETURNS void LANGUAGE plpgsql AS
  $f$ BEGIN PERFORM set_config('statement_timeout', '0', false); END $f$;
SELECT pg_temp.quiet();
DEALLOCATE by_id;
EOF
sleep 1
psql_admin -c "SELECT pid, application_name AS app, state, pinned, pin_reasons, dirty_reasons, pinned_by
  FROM lambdaguard.sessions WHERE application_name = 'report-fn'"
exec 4>&-
psql_admin -c "SELECT to_char(event_time, 'HH24:MI:SS.MS') AS at, usename, application_name AS app,
       reason, hidden, statement
  FROM lambdaguard.pinning_events ORDER BY event_time"
psql_admin -c "SELECT e.reason, r.pins_rds_proxy AS pins_rds, r.breaks_pgbouncer_transaction_mode AS breaks_pgbouncer, r.hint
  FROM (SELECT DISTINCT reason FROM lambdaguard.pinning_events) e
  JOIN lambdaguard.reasons r USING (reason) ORDER BY 1"
echo "   SET LOCAL and pg_advisory_xact_lock, the safe variants, were not reported."

lg_say "4. the worker"
psql_admin -c "SELECT pid, scans, sessions_seen, last_scan_us, orphans_found, terminated, errors FROM lambdaguard.worker"

lg_say "done: the server is stopped and its files removed"
