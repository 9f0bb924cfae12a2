#!/usr/bin/env bash
# The managed edition's tests, run by managed/test/run.sh as the server user.
# TAP-style output ("ok N - ..."); the counts go to $WORK/passed and
# $WORK/failed.  Environment: LG_PG_BIN, LG_PG_MAJOR, WORK (a directory of
# ours: src/ holds managed/ and the C edition's 1.0 script, node/ the
# end-to-end suite's package and handlers), EXT_NAME (the pg_tle content
# installed as a plain extension by run.sh).
set -uo pipefail
export PATH="$LG_PG_BIN:$PATH"
cd "$WORK" || exit 1
trap '' PIPE # a session that died makes send() fail, not the suite
T=$WORK/t
mkdir -p "$T"
M=$WORK/src/managed
pass=0
fail=0
echo 0 >"$WORK/passed"
echo 0 >"$WORK/failed"

ok() {
	pass=$((pass + 1))
	echo "ok $((pass + fail)) - $1"
	echo $pass >"$WORK/passed"
}
not_ok() {
	fail=$((fail + 1))
	echo "not ok $((pass + fail)) - $1"
	[ -n "${2:-}" ] && printf '#   %s\n' "$2" | head -40
	echo $fail >"$WORK/failed"
}
# is NAME GOT EXPECTED
is() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got: [$2] expected: [$3]"; fi
}
# like NAME GOT REGEX
like() {
	if printf '%s' "$2" | tr '\n' ' ' | grep -Eq -- "$3"; then ok "$1"; else not_ok "$1" "got: [$2] expected to match: [$3]"; fi
}

# --- a throwaway cluster: pg_cron and pg_stat_statements, no pg_lambdaguard --
PORT=
for p in $(seq 56300 56999); do
	if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
		PORT=$p
		break
	fi
done
BPORT=
for p in $(seq $((PORT + 1)) 57999); do
	if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
		BPORT=$p
		break
	fi
done
DATA=$T/data
LOG=$T/postgres.log
BOUNCER_PID=
NODE_PID=
declare -A FD

cleanup() {
	set +e
	for n in "${!FD[@]}"; do eval "exec ${FD[$n]}>&-" 2>/dev/null; done
	[ -n "$NODE_PID" ] && kill -TERM "$NODE_PID" 2>/dev/null
	[ -n "$BOUNCER_PID" ] && kill -TERM "$BOUNCER_PID" 2>/dev/null && wait "$BOUNCER_PID" 2>/dev/null
	pg_ctl -D "$DATA" -m fast -w -t 30 stop >/dev/null 2>&1 || pg_ctl -D "$DATA" -m immediate -w stop >/dev/null 2>&1
	wait 2>/dev/null
	if [ "$fail" -gt 0 ] && [ -f "$LOG" ]; then
		echo "# last lines of the server log:"
		tail -n 30 "$LOG" | sed 's/^/#   /'
	fi
}
trap cleanup EXIT

initdb -D "$DATA" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$T/initdb.log" 2>&1 || {
	cat "$T/initdb.log"
	not_ok "initdb"
	exit 1
}
cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$T'
max_connections = 60
fsync = off
shared_preload_libraries = 'pg_cron,pg_stat_statements'
cron.database_name = 'postgres'
cron.host = '$T'
pg_stat_statements.track = 'all'
track_commit_timestamp = on
log_line_prefix = '%m [%p] %u@%d/%a '
EOF
cat >"$DATA/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 trust
EOF
pg_ctl -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null || {
	not_ok "the server starts" "$(tail -20 "$LOG")"
	exit 1
}

S() { psql -X -qAt -v ON_ERROR_STOP=1 -h "$T" -p "$PORT" -U postgres -d postgres "$@"; }
A() { psql -X -qAt -v ON_ERROR_STOP=1 -h "$T" -p "$PORT" -U admin -d postgres "$@"; }
setting() { A -c "UPDATE lambdaguard.settings SET value = '$2' WHERE name = '$1'"; }

# wait_for DESCRIPTION SQL [SECONDS]: poll (as the superuser) until SQL says t
wait_for() {
	local i n=$((${3:-15} * 10))
	for ((i = 0; i < n; i++)); do
		[ "$(S -c "$2" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	echo "# timed out waiting for $1"
	return 1
}

# open NAME ROLE [HOST]: a session whose input we write, application_name NAME
open() {
	local name=$1 role=$2 host=${3:-127.0.0.1} fd
	mkfifo "$T/$name.in"
	# the new psql must not hold the other sessions' pipes open (or they
	# would never see their end)
	(
		for f in "${FD[@]}"; do eval "exec $f>&-"; done
		PGAPPNAME=$name exec psql -X -q -h "$host" -p "$PORT" -U "$role" -d postgres \
			<"$T/$name.in" >"$T/$name.out" 2>&1
	) &
	exec {fd}>"$T/$name.in"
	FD[$name]=$fd
	wait_for "session $name" "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = '$name'" || true
}
send() { echo "$2" >&"${FD[$1]}"; }
close() {
	[ -n "${FD[$1]:-}" ] && eval "exec ${FD[$1]}>&-"
	unset "FD[$1]"
}
pid_of() { S -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$1'"; }
alive() { [ "$(S -c "SELECT count(*) FROM pg_stat_activity WHERE pid = $1")" = 1 ]; }
gone() { wait_for "pid $1 to end" "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1" 10; }
# orphan NAME [ROLE [HOST [ROW]]]: a session idle in transaction after an UPDATE
orphan() {
	open "$1" "${2:-app}" "${3:-127.0.0.1}"
	send "$1" "BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = ${4:-1}; SELECT 1;"
	wait_for "$1 idle in transaction" "SELECT state = 'idle in transaction' FROM pg_stat_activity WHERE application_name = '$1'"
}
hist() { A -c "SELECT $2 FROM lambdaguard.history WHERE pid = $1 ORDER BY id"; }

# --- the roles, as a managed service has them -------------------------------
S <<'EOF' || not_ok "set-up by the superuser"
CREATE ROLE admin LOGIN;
GRANT pg_signal_backend, pg_monitor, pg_read_all_stats TO admin;
GRANT CREATE ON DATABASE postgres TO admin;
CREATE EXTENSION pg_cron;
CREATE EXTENSION pg_stat_statements;
GRANT USAGE ON SCHEMA cron TO admin;
CREATE ROLE app LOGIN;
CREATE ROLE other LOGIN;
CREATE ROLE boss LOGIN SUPERUSER;
CREATE SCHEMA app AUTHORIZATION admin;
CREATE TABLE app.accounts (id int PRIMARY KEY, balance bigint NOT NULL DEFAULT 0);
INSERT INTO app.accounts SELECT g, 0 FROM generate_series(1, 10) g;
CREATE SEQUENCE app.lg_seq;
ALTER TABLE app.accounts OWNER TO admin;
ALTER SEQUENCE app.lg_seq OWNER TO admin;
GRANT USAGE ON SCHEMA app TO app, other, boss;
GRANT SELECT, UPDATE ON app.accounts TO app, other, boss;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE app.lg_seq TO app;
ALTER ROLE app SET search_path = app;
ALTER ROLE other SET search_path = app;
ALTER ROLE boss SET search_path = app;
ALTER ROLE postgres SET search_path = app, public;
EOF
is "the admin role is not a superuser and holds exactly pg_signal_backend, pg_monitor, pg_read_all_stats" \
	"$(S -c "SELECT r.rolsuper, string_agg(g.rolname, ',' ORDER BY g.rolname)
	           FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid JOIN pg_roles g ON g.oid = m.roleid
	          WHERE r.rolname = 'admin' GROUP BY r.rolsuper")" \
	"f|pg_monitor,pg_read_all_stats,pg_signal_backend"
is "pg_lambdaguard is not loaded" "$(S -c "SELECT current_setting('shared_preload_libraries')")" \
	"pg_cron,pg_stat_statements"

# --- install ------------------------------------------------------------------
out=$(A -1 -f "$M/pg_lambdaguard_managed.sql" 2>&1)
is "the admin role installs the SQL file with psql -1 -f" "$?" 0
[ -n "$out" ] && echo "# $out"
is "version() is 1.0" "$(A -c "SELECT lambdaguard.version()")" "1.0"
is "every object in schema lambdaguard belongs to the admin role" \
	"$(A -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	         WHERE n.nspname = 'lambdaguard' AND c.relowner <> 'admin'::regrole
	         UNION ALL
	         SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	         WHERE n.nspname = 'lambdaguard' AND p.proowner <> 'admin'::regrole" | tr '\n' ' ')" "0 0 "
out=$(A -1 -f "$M/pg_lambdaguard_managed.sql" 2>&1)
like "a second install is refused with a clear error" "$out" \
	'schema "lambdaguard" already exists.*HINT:  To upgrade, run the upgrade script'
is "PUBLIC has no privilege on the schema" \
	"$(A -c "SELECT has_schema_privilege('other', 'lambdaguard', 'USAGE')")" f

# The C edition's 1.0 script is the oracle for history's columns and the
# reasons table: load those two definitions into a scratch schema.
{
	echo "CREATE SCHEMA c_edition;"
	sed -n '/^CREATE TABLE lambdaguard.history/,/^);/p; /^CREATE TABLE lambdaguard.reasons/,/^);/p; /^INSERT INTO lambdaguard.reasons/,/;$/p' \
		"$WORK/src/pg_lambdaguard--1.0.sql" | sed 's/lambdaguard\./c_edition./g'
} >"$T/c_edition.sql"
S -f "$T/c_edition.sql" >/dev/null
is "history has the C edition's columns, types and order" \
	"$(S -c "SELECT count(*) FROM (
	           (SELECT attnum, attname, format_type(atttypid, atttypmod) FROM pg_attribute
	             WHERE attrelid = 'lambdaguard.history'::regclass AND attnum > 0
	            EXCEPT
	            SELECT attnum, attname, format_type(atttypid, atttypmod) FROM pg_attribute
	             WHERE attrelid = 'c_edition.history'::regclass AND attnum > 0)
	           UNION ALL
	           (SELECT attnum, attname, format_type(atttypid, atttypmod) FROM pg_attribute
	             WHERE attrelid = 'c_edition.history'::regclass AND attnum > 0
	            EXCEPT
	            SELECT attnum, attname, format_type(atttypid, atttypmod) FROM pg_attribute
	             WHERE attrelid = 'lambdaguard.history'::regclass AND attnum > 0)) d")" 0
is "reasons has the C edition's rows" \
	"$(S -c "SELECT (SELECT count(*) FROM ((TABLE lambdaguard.reasons EXCEPT TABLE c_edition.reasons)
	                  UNION ALL (TABLE c_edition.reasons EXCEPT TABLE lambdaguard.reasons)) d),
	                (SELECT count(*) FROM lambdaguard.reasons)")" "0|18"
out=$(A -c "DELETE FROM lambdaguard.reasons" 2>&1)
like "reasons is read-only" "$out" "lambdaguard.reasons is read-only"

# --- settings -----------------------------------------------------------------
is "settings hold the C edition's names and defaults" \
	"$(A -c "SELECT string_agg(name || '=' || value, ' ' ORDER BY name) FROM lambdaguard.settings")" \
	"lambdaguard.aborted_transaction_timeout=10000 lambdaguard.active_timeout=0 lambdaguard.application_names= lambdaguard.blocking_timeout=5000 lambdaguard.client_addresses= lambdaguard.dry_run=off lambdaguard.enabled=on lambdaguard.history_retention=10080 lambdaguard.idle_in_transaction_timeout=60000 lambdaguard.ignored_parameters=application_name, client_encoding, DateStyle, TimeZone, standard_conforming_strings lambdaguard.max_terminations=10 lambdaguard.naptime=1000 lambdaguard.roles="
bad() { # bad DESCRIPTION NAME VALUE EXPECTED-ERROR
	local before after out
	before=$(A -c "SELECT value FROM lambdaguard.settings WHERE name = '$2'")
	out=$(A -c "UPDATE lambdaguard.settings SET value = '$3' WHERE name = '$2'" 2>&1)
	after=$(A -c "SELECT value FROM lambdaguard.settings WHERE name = '$2'")
	if printf '%s' "$out" | tr '\n' ' ' | grep -Eq -- "$4" && [ "$before" = "$after" ]; then
		ok "bad setting refused, old value kept: $1"
	else
		not_ok "bad setting refused, old value kept: $1" "error: [$out] before [$before] after [$after]"
	fi
}
bad "bad CIDR" lambdaguard.client_addresses "127.0.0.1/32, 10.0.0.1/8" \
	'invalid value for setting "lambdaguard.client_addresses".*Element 2 \("10.0.0.1/8"\) is not a CIDR'
bad "not an address" lambdaguard.client_addresses "proxy.example.com" 'Element 1 \("proxy.example.com"\) is not a CIDR'
bad "bad number" lambdaguard.idle_in_transaction_timeout "10 seconds" \
	'invalid value for setting "lambdaguard.idle_in_transaction_timeout": "10 seconds".*"seconds" is not a unit'
bad "not a number" lambdaguard.max_terminations "ten" '"ten" is not a whole number'
bad "out of range" lambdaguard.naptime "5ms" 'setting "lambdaguard.naptime".*5 ms is outside the valid range for lambdaguard.naptime \(10 ms .. 3600000 ms\)'
bad "out of range (int)" lambdaguard.max_terminations "0" '0 is outside the valid range for lambdaguard.max_terminations \(1 .. 10000\)'
bad "empty list element" lambdaguard.roles "app,,other" 'setting "lambdaguard.roles".*Element 2 is empty'
bad "bad boolean" lambdaguard.dry_run "maybe" 'setting "lambdaguard.dry_run": "maybe".*A boolean is on or off'
bad "bad pattern" lambdaguard.application_names 'lambda-\' 'ends with the escape character'
out=$(A -c "INSERT INTO lambdaguard.settings VALUES ('idle_timeout', '1s')" 2>&1)
like "an unknown setting is refused by name" "$out" 'unknown setting "idle_timeout".*HINT:  The settings are: lambdaguard.aborted_transaction_timeout'
# the names carry the C edition's prefix: a short name is refused, with a
# hint that names the setting meant, and nothing changes
before=$(A -c "SELECT string_agg(name || '=' || value, ' ' ORDER BY name) FROM lambdaguard.settings")
out=$(A -c "INSERT INTO lambdaguard.settings VALUES ('roles', 'app')" 2>&1)
like "a short name is refused on INSERT, with the full name as hint" "$out" \
	'unknown setting "roles".*DETAIL:  Setting names carry the prefix "lambdaguard.".*HINT:  Did you mean "lambdaguard.roles"\?'
out=$(A -c "UPDATE lambdaguard.settings SET value = 'app' WHERE name = 'roles'" 2>&1)
like "an UPDATE of a short name is refused, with the full name as hint" "$out" \
	'UPDATE of lambdaguard.settings matched no setting.*HINT:  Did you mean "lambdaguard.roles"\?'
out=$(A -c "UPDATE lambdaguard.settings SET value = '1s' WHERE name = 'idle_timeout'" 2>&1)
like "an UPDATE that matches no setting is refused, with the list as hint" "$out" \
	'UPDATE of lambdaguard.settings matched no setting.*HINT:  The settings are: lambdaguard.aborted_transaction_timeout'
out=$(A -c "UPDATE lambdaguard.settings SET name = 'roles' WHERE name = 'lambdaguard.roles'" 2>&1)
like "a setting cannot be renamed" "$out" 'the name of setting "lambdaguard.roles" cannot change'
is "... and the settings are unchanged" \
	"$(A -c "SELECT string_agg(name || '=' || value, ' ' ORDER BY name) FROM lambdaguard.settings")" "$before"
out=$(A -c "DELETE FROM lambdaguard.settings WHERE name = 'lambdaguard.roles'" 2>&1)
like "settings cannot be deleted" "$out" 'cannot be deleted.*SET value = NULL'
A -c "UPDATE lambdaguard.settings SET value = '2min' WHERE name = 'lambdaguard.idle_in_transaction_timeout'"
is "a duration with a unit is stored in milliseconds" \
	"$(A -c "SELECT value FROM lambdaguard.settings WHERE name = 'lambdaguard.idle_in_transaction_timeout'")" 120000
A -c "UPDATE lambdaguard.settings SET value = NULL WHERE name = 'lambdaguard.idle_in_transaction_timeout'"
is "NULL restores the default" \
	"$(A -c "SELECT value FROM lambdaguard.settings WHERE name = 'lambdaguard.idle_in_transaction_timeout'")" 60000

# the guard's settings for the tests below
A <<'EOF'
UPDATE lambdaguard.settings SET value = 'app' WHERE name = 'lambdaguard.roles';
UPDATE lambdaguard.settings SET value = '127.0.0.1/32' WHERE name = 'lambdaguard.client_addresses';
UPDATE lambdaguard.settings SET value = '1s' WHERE name = 'lambdaguard.idle_in_transaction_timeout';
UPDATE lambdaguard.settings SET value = '1s' WHERE name = 'lambdaguard.aborted_transaction_timeout';
UPDATE lambdaguard.settings SET value = '0' WHERE name = 'lambdaguard.blocking_timeout';
EOF

# --- verdicts -----------------------------------------------------------------
orphan o1
p1=$(pid_of o1)
wait_for "o1 due" "SELECT now() - state_change > interval '1.2 s' FROM pg_stat_activity WHERE pid = $p1"
is "sessions shows the orphan watched, verdict orphan" \
	"$(A -c "SELECT watched, verdict FROM lambdaguard.sessions WHERE pid = $p1")" "t|orphan"
# (two reads: a session may come or go between them, so look up to 5 times)
same=f
for _ in 1 2 3 4 5; do
	same=$(A -c "SELECT (SELECT array_agg(pid ORDER BY pid) FROM lambdaguard.sessions)
	                  = (SELECT array_agg(pid ORDER BY pid) FROM pg_stat_activity WHERE backend_type = 'client backend')")
	[ "$same" = t ] && break
	sleep 0.2
done
is "sessions lists exactly pg_stat_activity's client backends (no walsender, autovacuum or pg_cron launcher)" "$same" t
n0=$(A -c "SELECT count(*) FROM lambdaguard.history")
is "scan(true) previews the orphan (action dry_run)" \
	"$(A -c "SELECT verdict, action, usename, host(client_addr), application_name FROM lambdaguard.scan(true) WHERE pid = $p1")" \
	"orphan|dry_run|app|127.0.0.1|o1"
is "scan(true) writes nothing" "$(A -c "SELECT count(*) FROM lambdaguard.history")" "$n0"
alive "$p1" && ok "scan(true) signals nobody" || not_ok "scan(true) signals nobody"
out=$(A -c "BEGIN" -c "SELECT count(*) FROM lambdaguard.scan(false)" -c "ROLLBACK" 2>&1)
like "scan(false) inside a transaction block refuses" "$out" \
	"lambdaguard.scan\(false\) cannot run inside a transaction block"
alive "$p1" && ok "... and signals nobody" || not_ok "... and signals nobody"
out=$(A -c "BEGIN" -c "CALL lambdaguard.run(once => true)" 2>&1)
like "CALL lambdaguard.run() inside a transaction block fails before any signal" "$out" "invalid transaction termination"
alive "$p1" && ok "... and the orphan is still there" || not_ok "... and the orphan is still there"
is "... and nothing was recorded" "$(A -c "SELECT count(*) FROM lambdaguard.history")" "$n0"

is "scan(false) terminates the orphan and returns its row" \
	"$(A -c "SELECT verdict, action, locks_held >= 1 FROM lambdaguard.scan(false) WHERE pid = $p1")" "orphan|terminate|t"
gone "$p1" && ok "the orphan's session ends" || not_ok "the orphan's session ends"
is "its history row is there, committed" \
	"$(hist "$p1" "verdict, action, usename, datname, host(client_addr), state, state_since IS NOT NULL, query")" \
	"orphan|terminate|app|postgres|127.0.0.1|idle in transaction|t|SELECT 1;"
like "one LOG line names pid, role, database, application, client, verdict, duration, locks, blocked" \
	"$(grep "pg_lambdaguard: terminated pid $p1 " "$LOG")" \
	"terminated pid $p1 \(role app, database postgres, application \"o1\", client 127.0.0.1\): verdict orphan, idle in transaction for [0-9.]+ s, [1-9][0-9]* locks held, 0 sessions blocked"
close o1

# orphan_aborted
open o2 app
send o2 "BEGIN; SELECT 1/0;"
p2=$(pid_of o2)
wait_for "o2 aborted" "SELECT state = 'idle in transaction (aborted)' AND now() - state_change > interval '1.2 s' FROM pg_stat_activity WHERE pid = $p2"
A -c "CALL lambdaguard.run(once => true)"
gone "$p2" && ok "run() terminates an aborted transaction" || not_ok "run() terminates an aborted transaction"
is "verdict orphan_aborted" "$(hist "$p2" "verdict, action, state")" "orphan_aborted|terminate|idle in transaction (aborted)"
close o2

# orphan_blocking: the same one pg_locks look finds who waits on whom;
# PostgreSQL's pg_blocking_pids() is the oracle
A -c "UPDATE lambdaguard.settings SET value = '1h' WHERE name = 'lambdaguard.idle_in_transaction_timeout';
      UPDATE lambdaguard.settings SET value = '1s' WHERE name = 'lambdaguard.blocking_timeout'"
orphan o3
p3=$(pid_of o3)
open w3 other
send w3 "UPDATE accounts SET balance = 0 WHERE id = 1;"
w3=$(pid_of w3)
wait_for "w3 waiting" "SELECT $p3 = ANY (pg_blocking_pids($w3))"
wait_for "o3 due" "SELECT now() - state_change > interval '1.2 s' FROM pg_stat_activity WHERE pid = $p3"
is "sessions counts the waiter (blocking = 1), as pg_blocking_pids() does" \
	"$(A -c "SELECT blocking, verdict FROM lambdaguard.sessions WHERE pid = $p3")" "1|orphan_blocking"
A -c "CALL lambdaguard.run(once => true)"
gone "$p3" && ok "run() terminates the blocking orphan" || not_ok "run() terminates the blocking orphan"
is "verdict orphan_blocking, blocked_pids names the waiter" \
	"$(hist "$p3" "verdict, action, blocked_pids")" "orphan_blocking|terminate|{$w3}"
wait_for "the waiter goes on" "SELECT state = 'idle' FROM pg_stat_activity WHERE pid = $w3" &&
	ok "the waiter gets its lock" || not_ok "the waiter gets its lock"
close o3
close w3
A -c "UPDATE lambdaguard.settings SET value = '1s' WHERE name = 'lambdaguard.idle_in_transaction_timeout';
      UPDATE lambdaguard.settings SET value = '0' WHERE name = 'lambdaguard.blocking_timeout'"

# overdue_query: cancel, then terminate one active_timeout later if it still runs
A -c "UPDATE lambdaguard.settings SET value = '1s' WHERE name = 'lambdaguard.active_timeout'"
open q1 app
send q1 "SELECT pg_sleep(30);"
q1=$(pid_of q1)
wait_for "q1 overdue" "SELECT state = 'active' AND now() - query_start > interval '1.2 s' FROM pg_stat_activity WHERE pid = $q1"
A -c "CALL lambdaguard.run(once => true)"
wait_for "q1 cancelled" "SELECT state = 'idle' FROM pg_stat_activity WHERE pid = $q1" &&
	ok "an overdue query is cancelled; its session stays" || not_ok "an overdue query is cancelled; its session stays"
is "verdict overdue_query, action cancel" "$(hist "$q1" "verdict, action")" "overdue_query|cancel"
like "the client saw the cancel" "$(cat "$T/q1.out")" "canceling statement due to user request"
close q1
A -c "UPDATE lambdaguard.settings SET value = '2s' WHERE name = 'lambdaguard.active_timeout'"
open q2 app
# a statement that swallows the cancel keeps running: terminated one period later
send q2 "DO \$\$ BEGIN LOOP BEGIN PERFORM pg_sleep(30); EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END \$\$;"
q2=$(pid_of q2)
wait_for "q2 overdue" "SELECT now() - query_start > interval '2.2 s' FROM pg_stat_activity WHERE pid = $q2"
A -c "CALL lambdaguard.run(once => true)"
is "first the cancel" "$(hist "$q2" "action")" "cancel"
A -c "CALL lambdaguard.run(once => true)"
alive "$q2" && ok "a second scan before 2 x active_timeout does not act again" ||
	not_ok "a second scan before 2 x active_timeout does not act again"
is "... and records nothing new" "$(A -c "SELECT count(*) FROM lambdaguard.history WHERE pid = $q2")" 1
wait_for "q2 twice overdue" "SELECT now() - query_start > interval '4.2 s' FROM pg_stat_activity WHERE pid = $q2"
A -c "CALL lambdaguard.run(once => true)"
gone "$q2" && ok "still running one active_timeout later: terminated" || not_ok "still running one active_timeout later: terminated"
is "history: cancel, then terminate" "$(hist "$q2" "verdict || ':' || action" | tr '\n' ' ')" \
	"overdue_query:cancel overdue_query:terminate "
close q2
A -c "UPDATE lambdaguard.settings SET value = '0' WHERE name = 'lambdaguard.active_timeout'"

# --- safety rules ---------------------------------------------------------------
A -c "UPDATE lambdaguard.settings SET value = '*' WHERE name = 'lambdaguard.roles'"
orphan s1 boss
orphan s2 other "127.0.0.1" 2
open s3 app "$T" # a Unix-socket session: outside client_addresses
send s3 "BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = 3; SELECT 1;"
open s4 app
send s4 "SET application_name = 'pg_cron'; BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = 4; SELECT 1;"
ps1=$(pid_of s1)
ps2=$(pid_of s2)
ps3=$(pid_of s3)
ps4=$(S -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_cron' AND usename = 'app'")
wait_for "s1-s4 due" "SELECT count(*) = 4 FROM pg_stat_activity WHERE pid IN ($ps1, $ps2, $ps3, $ps4)
                       AND state = 'idle in transaction' AND now() - state_change > interval '1.2 s'"
is "roles = '*': a superuser's session is not watched" "$(A -c "SELECT watched FROM lambdaguard.sessions WHERE pid = $ps1")" f
is "roles = '*': another role's session is watched" "$(A -c "SELECT watched, verdict FROM lambdaguard.sessions WHERE pid = $ps2")" "t|orphan"
is "a session outside client_addresses is not watched" "$(A -c "SELECT watched FROM lambdaguard.sessions WHERE pid = $ps3")" f
is "a session named pg_cron (pg_cron's own) is not watched" "$(A -c "SELECT watched FROM lambdaguard.sessions WHERE pid = $ps4")" f
A -c "SELECT count(*) FROM lambdaguard.scan(false)" >/dev/null
alive "$ps1" && ok "the superuser's orphan is never touched" || not_ok "the superuser's orphan is never touched"
alive "$ps3" && ok "the unwatched orphan is never touched" || not_ok "the unwatched orphan is never touched"
alive "$ps4" && ok "pg_cron's session is never touched" || not_ok "pg_cron's session is never touched"
gone "$ps2" && ok "the watched one is terminated" || not_ok "the watched one is terminated"
is "no history row for the sessions never touched" \
	"$(A -c "SELECT count(*) FROM lambdaguard.history WHERE pid IN ($ps1, $ps3, $ps4)")" 0
A -c "UPDATE lambdaguard.settings SET value = '127.0.0.1/32, local' WHERE name = 'lambdaguard.client_addresses'"
is "client_addresses 'local' watches Unix-socket sessions" "$(A -c "SELECT watched FROM lambdaguard.sessions WHERE pid = $ps3")" t
A -c "UPDATE lambdaguard.settings SET value = 'lambda-%' WHERE name = 'lambdaguard.application_names'"
is "application_names: a name that matches no pattern is not watched" \
	"$(A -c "SELECT watched FROM lambdaguard.sessions WHERE pid = $ps3")" f
A -c "UPDATE lambdaguard.settings SET value = 's%' WHERE name = 'lambdaguard.application_names'"
is "application_names: a matching name is watched" "$(A -c "SELECT watched FROM lambdaguard.sessions WHERE pid = $ps3")" t
A -c "UPDATE lambdaguard.settings SET value = '' WHERE name = 'lambdaguard.application_names';
      UPDATE lambdaguard.settings SET value = '127.0.0.1/32' WHERE name = 'lambdaguard.client_addresses'"
for s in s1 s2 s3 s4; do close $s; done

# the caller is never touched, even when it is watched and due
A -c "UPDATE lambdaguard.settings SET value = '1s' WHERE name = 'lambdaguard.active_timeout'"
open c2 admin "$T"
send c2 "SELECT pg_sleep(30);"
pc2=$(pid_of c2)
A -c "UPDATE lambdaguard.settings SET value = 'local' WHERE name = 'lambdaguard.client_addresses'"
out=$(A -c "DO \$\$ BEGIN PERFORM pg_sleep(1.5);
	  IF EXISTS (SELECT FROM lambdaguard.scan(true) WHERE pid = pg_backend_pid()) THEN RAISE EXCEPTION 'listed'; END IF;
	  IF NOT EXISTS (SELECT FROM lambdaguard.scan(true) WHERE pid = $pc2) THEN RAISE EXCEPTION 'not listed'; END IF;
	  END \$\$" 2>&1)
is "the caller's own overdue statement is never a target (another session of its role is)" "$out" ""
S -c "SELECT pg_cancel_backend($pc2)" >/dev/null
close c2
A -c "UPDATE lambdaguard.settings SET value = '127.0.0.1/32' WHERE name = 'lambdaguard.client_addresses';
      UPDATE lambdaguard.settings SET value = '0' WHERE name = 'lambdaguard.active_timeout';
      UPDATE lambdaguard.settings SET value = 'app' WHERE name = 'lambdaguard.roles'"

# dry run: decide, record, log, signal nobody; once per episode
A -c "UPDATE lambdaguard.settings SET value = 'on' WHERE name = 'lambdaguard.dry_run'"
orphan d1
pd1=$(pid_of d1)
wait_for "d1 due" "SELECT now() - state_change > interval '1.2 s' FROM pg_stat_activity WHERE pid = $pd1"
is "dry_run: scan(false) records action dry_run" "$(A -c "SELECT verdict, action FROM lambdaguard.scan(false) WHERE pid = $pd1")" "orphan|dry_run"
A -c "CALL lambdaguard.run(once => true)"
alive "$pd1" && ok "dry_run signals nobody" || not_ok "dry_run signals nobody"
is "dry_run records the episode once" "$(A -c "SELECT count(*) FROM lambdaguard.history WHERE pid = $pd1")" 1
grep -q "would signal (dry run) pid $pd1 " "$LOG" && ok "dry_run logs the would-be action" || not_ok "dry_run logs the would-be action"
A -c "UPDATE lambdaguard.settings SET value = 'off' WHERE name = 'lambdaguard.dry_run'"
A -c "CALL lambdaguard.run(once => true)"
gone "$pd1" && ok "dry_run off: the same orphan is terminated" || not_ok "dry_run off: the same orphan is terminated"
close d1

# a signal the caller may not send is recorded as failed, and not tried again
# (a role that reads all sessions but lacks pg_signal_backend)
S -c "CREATE ROLE weak LOGIN; GRANT pg_read_all_stats TO weak"
A -c "GRANT USAGE ON SCHEMA lambdaguard TO weak;
      GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA lambdaguard TO weak;
      GRANT SELECT ON lambdaguard.history, lambdaguard.settings TO weak"
orphan f1
pf1=$(pid_of f1)
wait_for "f1 due" "SELECT now() - state_change > interval '1.2 s' FROM pg_stat_activity WHERE pid = $pf1"
W() { psql -X -qAt -v ON_ERROR_STOP=1 -h "$T" -p "$PORT" -U weak -d postgres "$@"; }
is "without pg_signal_backend, scan(false) records action failed, with why" \
	"$(W -c "SELECT action, detail FROM lambdaguard.scan(false) WHERE pid = $pf1")" \
	"failed|permission denied: signalling this process needs the privileges of its role or of pg_signal_backend"
alive "$pf1" && ok "... and the session lives" || not_ok "... and the session lives"
W -c "SELECT count(*) FROM lambdaguard.scan(false)" >/dev/null
is "... and a failed signal is not tried again in the same episode" \
	"$(A -c "SELECT count(*) FROM lambdaguard.history WHERE pid = $pf1")" 1
A -c "CALL lambdaguard.run(once => true)"
is "the admin role's run does not retry it either (one row per episode)" \
	"$(A -c "SELECT count(*) FROM lambdaguard.history WHERE pid = $pf1")" 1
S -c "SELECT pg_terminate_backend($pf1)" >/dev/null
close f1
A -c "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA lambdaguard FROM weak;
      REVOKE ALL ON lambdaguard.history, lambdaguard.settings FROM weak;
      REVOKE USAGE ON SCHEMA lambdaguard FROM weak"

# history_retention: run() deletes older rows
A -c "INSERT INTO lambdaguard.history (at, pid, verdict, action) VALUES
        (now() - interval '8 days', 1, 'orphan', 'terminate'), (now() - interval '6 days', 2, 'orphan', 'terminate')"
A -c "CALL lambdaguard.run(once => true)"
is "run() deletes history older than history_retention (7 days), keeps the rest" \
	"$(A -c "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM lambdaguard.history WHERE pid IN (1, 2)")" 2
A -c "UPDATE lambdaguard.settings SET value = '1d' WHERE name = 'lambdaguard.history_retention'"
A -c "CALL lambdaguard.run(once => true)"
is "history_retention = 1d deletes the 6-day-old row" "$(A -c "SELECT count(*) FROM lambdaguard.history WHERE pid = 2")" 0
A -c "DELETE FROM lambdaguard.history WHERE pid IN (1, 2)"
A -c "UPDATE lambdaguard.settings SET value = NULL WHERE name = 'lambdaguard.history_retention'"

# the live re-check: a session that changed state since the scan is skipped
orphan r1
pr1=$(pid_of r1)
wait_for "r1 due" "SELECT now() - state_change > interval '1.2 s' FROM pg_stat_activity WHERE pid = $pr1"
A -c "CREATE TABLE app.plan AS SELECT * FROM lambdaguard.plan(false) WHERE pid = $pr1"
send r1 "COMMIT;"
wait_for "r1 idle" "SELECT state = 'idle' FROM pg_stat_activity WHERE pid = $pr1"
is "re-check before recording: the decision becomes skipped" \
	"$(A -c "SELECT (lambdaguard.record_decision(ROW(p.*)::lambdaguard.history)).action FROM app.plan p")" "skipped"
is "... with the reason" "$(hist "$pr1" "action, detail")" "skipped|the session changed state since the scan"
alive "$pr1" && ok "... and the session lives" || not_ok "... and the session lives"
A -c "DROP TABLE app.plan"
send r1 "BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = 1; SELECT 2;"
wait_for "r1 due again" "SELECT state = 'idle in transaction' AND now() - state_change > interval '1.2 s' FROM pg_stat_activity WHERE pid = $pr1"
A -c "CREATE TABLE app.plan AS SELECT r.* FROM lambdaguard.plan(false) p, LATERAL lambdaguard.record_decision(p) r WHERE p.pid = $pr1"
is "recorded as terminate before the signal" "$(A -c "SELECT action FROM app.plan")" terminate
send r1 "SELECT 3;"
wait_for "r1 changed" "SELECT query = 'SELECT 3;' AND state = 'idle in transaction' FROM pg_stat_activity WHERE pid = $pr1"
is "re-check before the signal: the row is corrected to skipped" \
	"$(A -c "SELECT (lambdaguard.signal_decision(ROW(p.*)::lambdaguard.history)).action FROM app.plan p")" "skipped"
alive "$pr1" && ok "... and no signal is sent" || not_ok "... and no signal is sent"
A -c "DROP TABLE app.plan"
close r1

# the storm brake: at most max_terminations signals within any naptime,
# counted from history (so across scans and runs)
A -c "UPDATE lambdaguard.settings SET value = '2' WHERE name = 'lambdaguard.max_terminations';
      UPDATE lambdaguard.settings SET value = '10min' WHERE name = 'lambdaguard.naptime'"
for i in 1 2 3 4; do orphan "b$i" app 127.0.0.1 "$((i + 4))"; done
pb=$(S -c "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE application_name LIKE 'b_'")
wait_for "b1-b4 due" "SELECT count(*) = 4 FROM pg_stat_activity WHERE pid IN ($pb) AND now() - state_change > interval '1.2 s'"
# signals sent before this test count too: start with an empty window
A -c "UPDATE lambdaguard.settings SET value = '4s' WHERE name = 'lambdaguard.naptime'"
wait_for "an empty brake window" "SELECT count(*) = 0 FROM lambdaguard.history WHERE action IN ('terminate', 'cancel')
                                   AND at > clock_timestamp() - interval '4 s'"
A -c "CALL lambdaguard.run(once => true)"
A -c "CALL lambdaguard.run(once => true)"
is "the brake: 2 signals within naptime, however many scans" \
	"$(A -c "SELECT count(*) FROM lambdaguard.history WHERE pid IN ($pb) AND action = 'terminate'")" 2
is "the braked sessions live and have no row" \
	"$(S -c "SELECT count(*) FROM pg_stat_activity WHERE pid IN ($pb)"),$(A -c "SELECT count(*) FROM lambdaguard.history WHERE pid IN ($pb)")" "2,2"
grep -q "storm brake: 2 decisions deferred" "$LOG" && ok "the brake says so in the log" || not_ok "the brake says so in the log"
wait_for "the brake window to pass" "SELECT count(*) = 0 FROM lambdaguard.history WHERE action IN ('terminate', 'cancel')
                                       AND at > clock_timestamp() - interval '4 s'"
A -c "CALL lambdaguard.run(once => true)"
wait_for "all b gone" "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid IN ($pb)" &&
	ok "once the window has passed, the rest are terminated" || not_ok "once the window has passed, the rest are terminated"
A -c "UPDATE lambdaguard.settings SET value = '10' WHERE name = 'lambdaguard.max_terminations';
      UPDATE lambdaguard.settings SET value = '1s' WHERE name = 'lambdaguard.naptime'"
for i in 1 2 3 4; do close "b$i"; done

# the row is committed before the signal: while run()'s COMMIT cannot
# complete (a synchronous standby that does not exist), nobody is signalled
orphan c1
pc1=$(pid_of c1)
wait_for "c1 due" "SELECT now() - state_change > interval '1.2 s' FROM pg_stat_activity WHERE pid = $pc1"
S -c "ALTER SYSTEM SET synchronous_standby_names = 'nobody'" -c "SELECT pg_reload_conf()" >/dev/null
PGAPPNAME=lg-run A -c "CALL lambdaguard.run(once => true)" &
runner=$!
wait_for "run() waiting for its commit" "SELECT wait_event = 'SyncRep' FROM pg_stat_activity WHERE application_name = 'lg-run'"
alive "$pc1" && ok "while the history row is not committed, the orphan is not signalled" ||
	not_ok "while the history row is not committed, the orphan is not signalled"
S -c "ALTER SYSTEM RESET synchronous_standby_names" -c "SELECT pg_reload_conf()" >/dev/null
wait "$runner"
gone "$pc1" && ok "once committed, it is terminated" || not_ok "once committed, it is terminated"
is "its row, committed before the signal" "$(hist "$pc1" "verdict, action")" "orphan|terminate"
close c1

# one runner at a time: a run that finds another running leaves
open lk admin "$T"
send lk "SELECT pg_advisory_lock(lambdaguard.lock_key() + 1);"
orphan l1
pl1=$(pid_of l1)
wait_for "l1 due" "SELECT now() - state_change > interval '1.2 s' FROM pg_stat_activity WHERE pid = $pl1"
A -c "CALL lambdaguard.run()"
alive "$pl1" && ok "run() leaves when another run holds the lock (no overlap)" ||
	not_ok "run() leaves when another run holds the lock (no overlap)"
grep -q "another lambdaguard.run() is still running" "$LOG" && ok "... and says so in the log" || not_ok "... and says so in the log"
close lk
wait_for "lk gone" "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'lk'"

# enabled = off: run() does nothing, scan() still works
A -c "UPDATE lambdaguard.settings SET value = 'off' WHERE name = 'lambdaguard.enabled'"
A -c "CALL lambdaguard.run(once => true)"
alive "$pl1" && ok "enabled = off: run() signals nobody" || not_ok "enabled = off: run() signals nobody"
is "enabled = off: scan(true) still previews" "$(A -c "SELECT verdict FROM lambdaguard.scan(true) WHERE pid = $pl1")" orphan
A -c "UPDATE lambdaguard.settings SET value = 'on' WHERE name = 'lambdaguard.enabled'"

# --- scheduled by pg_cron -------------------------------------------------------
cron_version=$(S -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'")
echo "# pg_cron $cron_version"
# watch every role, Unix sockets too, and cancel statements after 2 s: the
# job's own session (active for the rest of the minute) would be a target
A -c "UPDATE lambdaguard.settings SET value = '*' WHERE name = 'lambdaguard.roles';
      UPDATE lambdaguard.settings SET value = '127.0.0.1/32, local' WHERE name = 'lambdaguard.client_addresses';
      UPDATE lambdaguard.settings SET value = '2s' WHERE name = 'lambdaguard.active_timeout'"
A -c "SELECT cron.schedule('lambdaguard', '* * * * *', 'CALL lambdaguard.run()')" >/dev/null
is "the admin role schedules the job" "$(S -c "SELECT username, schedule, command FROM cron.job WHERE jobname = 'lambdaguard'")" \
	"admin|* * * * *|CALL lambdaguard.run()"
if wait_for "the scheduled run to terminate the orphan" "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pl1" 75; then
	ok "a run started by pg_cron terminates the orphan"
else
	not_ok "a run started by pg_cron terminates the orphan" "$(S -c "SELECT * FROM cron.job_run_details"; grep -E 'lambdaguard|pg_cron' "$LOG" | tail -20)"
fi
is "... with its history row" "$(hist "$pl1" "verdict, action")" "orphan|terminate"
like "... logged by the pg_cron session" "$(grep "terminated pid $pl1 " "$LOG")" "admin@postgres/pg_cron .*LOG:  pg_lambdaguard: terminated pid $pl1 "
runpid=$(S -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_cron' AND query = 'CALL lambdaguard.run()'")
is "the job's session is pg_cron's, and it is never watched" \
	"$(A -c "SELECT count(*), bool_or(watched) FROM lambdaguard.sessions WHERE pid = ${runpid:-0}")" "1|f"
if wait_for "the run to end with its minute" "SELECT count(*) = 1 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
	WHERE j.jobname = 'lambdaguard' AND d.status = 'succeeded'
	  AND d.end_time - d.start_time > interval '45 s'
	  AND d.end_time <= date_trunc('minute', d.start_time) + interval '1 minute'" 70; then
	ok "the run scans until its minute is over, and ends before the next run starts (succeeded)"
else
	not_ok "the run scans until its minute is over, and ends before the next run starts (succeeded)" "$(S -c "SELECT status, start_time, end_time, return_message FROM cron.job_run_details")"
fi
A -c "SELECT cron.unschedule('lambdaguard')" >/dev/null
A -c "UPDATE lambdaguard.settings SET value = 'app' WHERE name = 'lambdaguard.roles';
      UPDATE lambdaguard.settings SET value = '127.0.0.1/32' WHERE name = 'lambdaguard.client_addresses';
      UPDATE lambdaguard.settings SET value = '0' WHERE name = 'lambdaguard.active_timeout'"
S -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_cron' AND query LIKE 'CALL lambdaguard.run%'" >/dev/null
close l1

# --- pinning without hooks ------------------------------------------------------
cat >"$T/pgbouncer.ini" <<EOF
[databases]
postgres = host=127.0.0.1 port=$PORT dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BPORT
unix_socket_dir =
auth_type = trust
auth_file = $T/userlist.txt
pool_mode = transaction
default_pool_size = 3
max_client_conn = 100
admin_users = postgres
ignore_startup_parameters = extra_float_digits
logfile = $T/pgbouncer.log
pidfile = $T/pgbouncer.pid
EOF
printf '"app" ""\n"postgres" ""\n' >"$T/userlist.txt"
/usr/sbin/pgbouncer "$T/pgbouncer.ini" >"$T/pgbouncer.out" 2>&1 &
BOUNCER_PID=$!
for _ in $(seq 1 100); do
	psql -X -qAt -h 127.0.0.1 -p "$BPORT" -U app -d postgres -c "SELECT 1" >/dev/null 2>&1 && break
	sleep 0.1
done
S -c "SELECT pg_stat_statements_reset()" >/dev/null
# functions that do and do not change state, called through PgBouncer too
A <<'EOF'
CREATE FUNCTION app.set_timeout_hidden() RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    -- SET work_mem = '1MB' (a comment: not a reason)
    SET statement_timeout = '7s';
    PERFORM set_config('work_mem', '8MB', false);
    PERFORM set_config('work_mem', '9MB', true);
    SET LOCAL lock_timeout = '1s';
    IF true THEN PERFORM pg_advisory_lock(99); END IF;
    PERFORM pg_advisory_xact_lock(98);
    CREATE TEMP TABLE IF NOT EXISTS hidden_temp (id int);
    CREATE TEMP TABLE IF NOT EXISTS scratch (id int) ON COMMIT DROP;
    EXECUTE 'LISTEN hidden_channel';
    EXECUTE format('SET %I = %L', 'work_mem', '2MB');
    UPDATE app.accounts
       SET balance = balance WHERE id = 10;
END
$f$;
CREATE FUNCTION app.next_id() RETURNS bigint LANGUAGE sql AS $f$ SELECT nextval('app.lg_seq') $f$;
CREATE FUNCTION app.clean(n int) RETURNS int LANGUAGE plpgsql AS $f$
BEGIN
    SET LOCAL work_mem = '4MB';
    PERFORM pg_try_advisory_xact_lock(n);
    RETURN n + 1;
END
$f$;
CREATE PROCEDURE app.clean_proc() LANGUAGE sql AS $f$ UPDATE app.accounts SET balance = balance WHERE id = 9 $f$;
GRANT EXECUTE ON FUNCTION app.set_timeout_hidden(), app.next_id(), app.clean(int) TO app;
GRANT EXECUTE ON PROCEDURE app.clean_proc() TO app;
EOF
psql -X -qAt -h 127.0.0.1 -p "$BPORT" -U app -d postgres -c "SELECT app.set_timeout_hidden()" -c "SELECT app.clean(1)" >/dev/null 2>&1

export E2E_PGHOST=127.0.0.1 E2E_BOUNCER_PORT=$BPORT E2E_APP_USER=app E2E_APP_PASSWORD="" E2E_DATABASE=postgres \
	E2E_SUPERUSER=postgres
node_ok=1
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	not_ok "Node.js and npm are installed (the workload's clients)"
	node_ok=0
elif [ ! -d "$WORK/node/node_modules" ]; then
	(cd "$WORK/node" && npm_config_cache="$T/npm-cache" npm ci --no-audit --no-fund >"$T/npm.log" 2>&1) ||
		{ not_ok "npm ci of test/e2e's lockfile" "$(tail -20 "$T/npm.log")"; node_ok=0; }
fi
if [ "$node_ok" = 1 ]; then
	(cd "$WORK/node" && timeout 120 node workload.js . >"$T/workload.out" 2>&1)
	rc=$?
	is "the Lambda handlers send their workload through PgBouncer (transaction mode)" "$rc" 0
	[ "$rc" = 0 ] || grep -v '"ok":true' "$T/workload.out" | sed 's/^/#   /' | tail -20
fi
remote=$(psql -X -h 127.0.0.1 -p "$BPORT" -U postgres -d pgbouncer -c "SHOW SERVERS" 2>/dev/null | tr -d ' ' |
	awk -F'|' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "remote_pid") c = i; next } c && $c ~ /^[0-9]+$/ { print $c }' | paste -sd, -)
is "the workload went through PgBouncer: its server connections are sessions from 127.0.0.1" \
	"$(S -c "SELECT count(*) > 0 AND bool_and(client_addr = '127.0.0.1') FROM pg_stat_activity WHERE pid IN (${remote:-0})")" t
for r in set set_config prepared_statement discard temp_table temp_sequence temp_view cursor cursor_with_hold \
	listen sequence_function advisory_lock statement_too_large; do
	is "pinning_audit names reason $r for role app, with calls and the hint" \
		"$(A -c "SELECT count(*) > 0 AND bool_and(a.calls > 0 AND a.hint = r.hint)
		           FROM lambdaguard.pinning_audit a JOIN lambdaguard.reasons r USING (reason)
		          WHERE a.reason = '$r' AND a.usename = 'app' AND a.datname = 'postgres'")" t
done
is "pinning_audit names reason load (run by a superuser through PgBouncer)" \
	"$(A -c "SELECT count(*) > 0 FROM lambdaguard.pinning_audit WHERE reason = 'load' AND usename = 'postgres'")" t
is "the statements it names are pg_stat_statements' own (oracle)" \
	"$(S -c "SELECT count(*) FROM lambdaguard.pinning_audit a
	          WHERE NOT EXISTS (SELECT FROM pg_stat_statements s WHERE s.queryid = a.queryid AND s.query = a.statement)")" 0
is "the e2e handlers' statements are named: knex's SET, the temp table, the session advisory lock" \
	"$(A -c "SELECT string_agg(DISTINCT reason || ':' || statement, ' | ' ORDER BY reason || ':' || statement)
	           FROM lambdaguard.pinning_audit
	          WHERE statement IN ('SET statement_timeout = ''5s''', 'CREATE TEMP TABLE IF NOT EXISTS import_batch (id int)',
	                              'SELECT pg_try_advisory_lock(\$1) AS got')")" \
	"advisory_lock:SELECT pg_try_advisory_lock(\$1) AS got | set:SET statement_timeout = '5s' | temp_table:CREATE TEMP TABLE IF NOT EXISTS import_batch (id int)"
is "safe variants are in pg_stat_statements (SET LOCAL, pg_advisory_xact_lock, ON COMMIT DROP)" \
	"$(S -c "SELECT count(DISTINCT query) FROM pg_stat_statements WHERE query IN ('SET LOCAL work_mem = ''2MB''',
	          'SELECT pg_advisory_xact_lock(\$1)', 'CREATE TEMP TABLE lg_scratch (id int) ON COMMIT DROP')")" 3
is "... and not in pinning_audit" \
	"$(A -c "SELECT count(*) FROM lambdaguard.pinning_audit WHERE statement ~* 'set local|advisory_xact|on commit drop'")" 0
is "statements run inside a function are marked hidden" \
	"$(A -c "SELECT reason FROM lambdaguard.pinning_audit WHERE hidden AND statement = 'SET statement_timeout = ''7s'''")" set
is "PgBouncer's own SET of an ignored parameter is no reason" \
	"$(A -c "SELECT count(*) FROM lambdaguard.pinning_audit WHERE statement ~* '^set (application_name|client_encoding|datestyle|timezone)'")" 0

# the function audit
is "function_audit: every state change in set_timeout_hidden(), with its line" \
	"$(A -c "SELECT string_agg(reason || '@' || line || ':' || line_text, ' | ' ORDER BY line, reason)
	           FROM lambdaguard.function_audit WHERE function = 'app.set_timeout_hidden()'::regprocedure")" \
	"set@4:SET statement_timeout = '7s'; | set_config@5:PERFORM set_config('work_mem', '8MB', false); | advisory_lock@8:IF true THEN PERFORM pg_advisory_lock(99); END IF; | temp_table@10:CREATE TEMP TABLE IF NOT EXISTS hidden_temp (id int); | listen@12:EXECUTE 'LISTEN hidden_channel'; | set@13:EXECUTE format('SET %I = %L', 'work_mem', '2MB');"
is "function_audit: a SQL function's nextval" \
	"$(A -c "SELECT reason, kind, language, hidden FROM lambdaguard.function_audit WHERE function = 'app.next_id()'::regprocedure")" \
	"sequence_function|function|sql|t"
is "function_audit: functions and procedures that change no session state are not listed" \
	"$(A -c "SELECT count(*) FROM lambdaguard.function_audit WHERE function IN ('app.clean(int)'::regprocedure, 'app.clean_proc()'::regprocedure)")" 0
is "function_audit: hints come from reasons" \
	"$(A -c "SELECT count(*) FROM lambdaguard.function_audit f JOIN lambdaguard.reasons r USING (reason) WHERE f.hint IS DISTINCT FROM r.hint")" 0
is "function_audit skips extensions' functions (pg_cron, pg_stat_statements)" \
	"$(A -c "SELECT count(*) FROM lambdaguard.function_audit WHERE function::text ~ '^(cron\\.|pg_stat_statements)'")" 0

# the sessions holding state now, against pg_locks and pg_class (oracles)
open ss1 app
send ss1 "SELECT pg_advisory_lock(31337);"
open ss2 app
# committed (other sessions see no uncommitted catalog rows), then in a
# transaction: before PostgreSQL 16 the owner of pg_temp_N shows only
# through the locks it holds
send ss2 "CREATE TEMP TABLE st1 (id int); CREATE TEMP SEQUENCE st2; BEGIN; SELECT 1;"
pss1=$(pid_of ss1)
pss2=$(pid_of ss2)
wait_for "ss1, ss2 ready" "SELECT count(*) = 2 FROM pg_stat_activity WHERE pid IN ($pss1, $pss2) AND state LIKE 'idle%'"
is "session_state: a session-level advisory lock of an idle session, as pg_locks shows it" \
	"$(A -c "SELECT reason, objects, detail FROM lambdaguard.session_state WHERE pid = $pss1")" \
	"advisory_lock|$(S -c "SELECT count(*) FROM pg_locks WHERE pid = $pss1 AND locktype = 'advisory'")|session-level (no transaction open)"
is "session_state: temporary objects of a session, as its pg_temp schema holds them" \
	"$(A -c "SELECT string_agg(reason || '=' || objects, ',' ORDER BY reason) FROM lambdaguard.session_state WHERE pid = $pss2")" \
	"temp_sequence=1,temp_table=1"
close ss1
close ss2

# --- the pg_tle package ---------------------------------------------------------------
if cmp -s "$M/pg_lambdaguard_managed--pgtle.sql" "$WORK/pgtle-generated.sql"; then
	ok "the committed pg_tle package is what build_tle.sh generates now"
else
	not_ok "the committed pg_tle package is what build_tle.sh generates now" "run: bash managed/build_tle.sh > managed/pg_lambdaguard_managed--pgtle.sql"
fi
sed -n '/^\$_pgtle_\$$/,/^\$_pgtle_\$$/p' "$M/pg_lambdaguard_managed--pgtle.sql" | sed '1d;$d' >"$T/content.sql"
cmp -s "$T/content.sql" "$M/pg_lambdaguard_managed.sql" &&
	ok "the pg_tle package's content is the SQL file, byte for byte" ||
	not_ok "the pg_tle package's content is the SQL file, byte for byte"
like "the package calls pgtle.install_extension('pg_lambdaguard_managed', '1.0', ...)" \
	"$(tr '\n' ' ' <"$M/pg_lambdaguard_managed--pgtle.sql")" \
	"SELECT pgtle.install_extension\(     'pg_lambdaguard_managed',     '1.0',"

# an upgrade script becomes pgtle.install_update_path(), its content unchanged
mkdir -p "$T/up"
cp "$M/pg_lambdaguard_managed.sql" "$M/build_tle.sh" "$T/up/"
printf "CREATE OR REPLACE FUNCTION lambdaguard.version() RETURNS text LANGUAGE sql IMMUTABLE AS \$\$ SELECT '1.1'::text \$\$;\n" \
	>"$T/up/pg_lambdaguard_managed--1.0--1.1.sql"
bash "$T/up/build_tle.sh" "$T/up/pg_lambdaguard_managed.sql" >"$T/up/pkg.sql"
like "build_tle.sh packages an upgrade script as pgtle.install_update_path('pg_lambdaguard_managed', '1.0', '1.1', ...) and sets 1.1 as default" \
	"$(tr '\n' ' ' <"$T/up/pkg.sql")" \
	"SELECT pgtle.install_update_path\(     'pg_lambdaguard_managed',     '1.0',     '1.1', .*SELECT pgtle.set_default_version\('pg_lambdaguard_managed', '1.1'\);"
sed -n '/^SELECT pgtle.install_update_path/,$p' "$T/up/pkg.sql" | sed -n '/^\$_pgtle_\$$/,/^\$_pgtle_\$$/p' | sed '1d;$d' >"$T/up/content.sql"
cmp -s "$T/up/content.sql" "$T/up/pg_lambdaguard_managed--1.0--1.1.sql" &&
	ok "... its content is the upgrade script, byte for byte" ||
	not_ok "... its content is the upgrade script, byte for byte"

# --- uninstall, keeping the history; reinstall; the content as an extension -----------
nh=$(A -c "SELECT count(*) FROM lambdaguard.history")
A -c "SELECT cron.schedule('lambdaguard', '* * * * *', 'CALL lambdaguard.run()')" >/dev/null
out=$(A -v keep_history=on -f "$M/uninstall.sql" 2>&1)
is "uninstall.sql (keep_history=on) runs as the admin role" "$?|$out" "0|"
gone_all() {
	S -c "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'lambdaguard'),
	             (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	               WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'cron', 'public', 'app')),
	             (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
	               WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'cron', 'public', 'app', 'pg_toast', 'lambdaguard_archive', 'c_edition')
	                 AND n.nspname !~ '^pg_(toast_)?temp_'),
	             (SELECT count(*) FROM cron.job WHERE command LIKE '%lambdaguard%')"
}
is "... nothing is left of it (schema, functions, types, the cron job)" "$(gone_all)" "0|0|0|0"
is "... but its history, in lambdaguard_archive.history, every row" \
	"$(S -c "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	          WHERE n.nspname = 'lambdaguard_archive'")|$(S -c "SELECT count(*) FROM lambdaguard_archive.history")" \
	"history,history_at_idx,history_id_seq,history_pid_idx,history_pkey|$nh"
out=$(A -1 -f "$M/pg_lambdaguard_managed.sql" 2>&1)
is "reinstall after uninstall" "$?|$out" "0|"
is "... works: a preview scan runs" "$(A -c "SELECT count(*) >= 0 FROM lambdaguard.scan(true)")" t
out=$(A -1 -f "$T/up/pg_lambdaguard_managed--1.0--1.1.sql" 2>&1)
is "an upgrade script applied with psql -1 -f upgrades in place" "$?|$(A -c "SELECT lambdaguard.version()")" "0|1.1"
out=$(A -f "$M/uninstall.sql" 2>&1)
is "uninstall.sql (history not kept) leaves nothing" "$(gone_all)|$(S -c "SELECT count(*) FROM lambdaguard_archive.history")" "0|0|0|0|$nh"
S -c "DROP SCHEMA lambdaguard_archive CASCADE" 2>/dev/null

# the pg_tle content as a real extension script (run.sh installed it with
# superuser = false, as pg_tle's extensions run: as the user who creates them)
out=$(A -c "CREATE EXTENSION $EXT_NAME" 2>&1)
is "the pg_tle content installs with CREATE EXTENSION as the admin role" "$out" ""
is "... its objects belong to the extension" \
	"$(A -c "SELECT count(*) > 30 FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	           AND refobjid = (SELECT oid FROM pg_extension WHERE extname = '$EXT_NAME')")" t
is "... history and settings are kept by pg_dump (extension configuration tables)" \
	"$(A -c "SELECT array_agg(c::regclass::text ORDER BY c::regclass::text) FROM pg_extension, unnest(extconfig) c WHERE extname = '$EXT_NAME'")" \
	"{lambdaguard.history,lambdaguard.history_id_seq,lambdaguard.settings}"
is "... and the guard works there" "$(A -c "SELECT lambdaguard.version(), count(*) >= 0 FROM lambdaguard.scan(true)")" "1.0|t"
A -c "DROP EXTENSION $EXT_NAME"
is "DROP EXTENSION removes it all" "$(S -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'lambdaguard'")" 0

echo "# managed: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
