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
is "version() is 1.1" "$(A -c "SELECT lambdaguard.version()")" "1.1"
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
# (1.0's columns, then client_context, which the C edition adds in 1.2)
is "history has the C edition's columns, types and order" \
	"$(S -c "SELECT count(*) FROM (
	           (SELECT attnum, attname, format_type(atttypid, atttypmod) FROM pg_attribute
	             WHERE attrelid = 'lambdaguard.history'::regclass AND attnum > 0 AND attnum <= 18
	            EXCEPT
	            SELECT attnum, attname, format_type(atttypid, atttypmod) FROM pg_attribute
	             WHERE attrelid = 'c_edition.history'::regclass AND attnum > 0)
	           UNION ALL
	           (SELECT attnum, attname, format_type(atttypid, atttypmod) FROM pg_attribute
	             WHERE attrelid = 'c_edition.history'::regclass AND attnum > 0
	            EXCEPT
	            SELECT attnum, attname, format_type(atttypid, atttypmod) FROM pg_attribute
	             WHERE attrelid = 'lambdaguard.history'::regclass AND attnum > 0)) d")" 0
is "... and client_context jsonb at their end" \
	"$(S -c "SELECT string_agg(attnum || ':' || attname || ':' || format_type(atttypid, atttypmod), ',') FROM pg_attribute
	          WHERE attrelid = 'lambdaguard.history'::regclass AND attnum > 18 AND NOT attisdropped")" "19:client_context:jsonb"
is "reasons has the C edition's rows" \
	"$(S -c "SELECT (SELECT count(*) FROM ((TABLE lambdaguard.reasons EXCEPT TABLE c_edition.reasons)
	                  UNION ALL (TABLE c_edition.reasons EXCEPT TABLE lambdaguard.reasons)) d),
	                (SELECT count(*) FROM lambdaguard.reasons)")" "0|18"
out=$(A -c "DELETE FROM lambdaguard.reasons" 2>&1)
like "reasons is read-only" "$out" "lambdaguard.reasons is read-only"

# --- settings -----------------------------------------------------------------
is "settings hold the C edition's names and defaults" \
	"$(A -c "SELECT string_agg(name || '=' || value, ' ' ORDER BY name) FROM lambdaguard.settings")" \
	"lambdaguard.aborted_transaction_timeout=10000 lambdaguard.active_timeout=0 lambdaguard.application_names= lambdaguard.blocking_timeout=5000 lambdaguard.client_addresses= lambdaguard.deadline_grace=1000 lambdaguard.dry_run=off lambdaguard.enabled=on lambdaguard.history_retention=10080 lambdaguard.idle_in_transaction_timeout=60000 lambdaguard.ignored_parameters=application_name, client_encoding, DateStyle, TimeZone, standard_conforming_strings lambdaguard.max_terminations=10 lambdaguard.naptime=1000 lambdaguard.roles="
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

# --- the invocation context: the comment parser ----------------------------------
# lambdaguard.comment_context(text, complete, seen) on statements as
# pg_stat_activity shows them; each case: name, text, whole?, the context
# expected (its pairs, decoded) or NULL when the comment must be ignored
cat >"$T/parser.sql" <<'EOF'
WITH cases(name, stmt, complete, expected) AS (VALUES
 ('well-formed trailing comment, pairs sorted as sqlcommenter writes them',
  $q$SELECT * FROM accounts WHERE id = $1 /*request_id='req-1',traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/$q$,
  true, '{"request_id": "req-1", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}'),
 ('leading comment with spaces around the pairs (knex .comment()), values URL-decoded',
  $q$/* request_id='req-2',route='%2Fcheckout%3Fa%3D1' */ SELECT 1$q$, true, '{"route": "/checkout?a=1", "request_id": "req-2"}'),
 ('trailing comment before the final semicolon', $q$SELECT 1 /*a='b'*/;$q$, true, '{"a": "b"}'),
 ('a comment after the final semicolon counts as trailing', E'SELECT 1; /*a=''b''*/ \n', true, '{"a": "b"}'),
 ('trailing blanks and semicolons are skipped', E'SELECT 1 /*a=''b''*/ ;; \t', true, '{"a": "b"}'),
 ('a trailing comment that holds a nested one is ignored', $q$SELECT 1 /* x /*a='b'*/ */$q$, true, NULL),
 ('a leading comment that holds a nested one is ignored', $q$/* a='b' /* c */ */ SELECT 1$q$, true, NULL),
 ('truncated text: the trailing comment is not read, the leading one is',
  $q$/*lead='1'*/ SELECT 1 /*trail='2'*/$q$, false, '{"lead": "1"}'),
 ('whole text: the trailing comment is read first', $q$/*lead='1'*/ SELECT 1 /*trail='2'*/$q$, true, '{"trail": "2"}'),
 ('a comment over 4096 bytes is ignored', 'SELECT 1 /*a=''' || repeat('x', 4100) || '''*/', true, NULL),
 ('bad percent-encoding (%G1) is ignored', $q$SELECT 1 /*a='%G1',b='c'*/$q$, true, NULL),
 ('a cut percent-encoding (%4) is ignored', $q$SELECT 1 /*a='x%4'*/$q$, true, NULL),
 ('a value that decodes to bytes that are not UTF-8 (%FF) is ignored', $q$SELECT 1 /*a='%FF',b='c'*/$q$, true, NULL),
 ('a value that decodes to a NUL (%00) is ignored', $q$SELECT 1 /*a='x%00y'*/$q$, true, NULL),
 ('UTF-8 encoded as %C3%A9 decodes', $q$SELECT 1 /*a='caf%C3%A9'*/$q$, true, '{"a": "café"}'),
 ('a quote escaped with a backslash', $q$SELECT 1 /*a='it\'s',b='x'*/$q$, true, '{"a": "it''s", "b": "x"}'),
 ('a malformed pair (no quotes) is ignored', $q$SELECT 1 /*a=b*/$q$, true, NULL),
 ('a pair without a key is ignored', $q$SELECT 1 /*='b'*/$q$, true, NULL),
 ('a plain comment is no context', $q$SELECT 1 /* just a note */$q$, true, NULL),
 ('a comment inside a string literal is never context', $q$SELECT '/*a=''b''*/'$q$, true, NULL),
 ('a comment inside a line comment is never context', $q$SELECT 1 -- /*a='b'*/$q$, true, NULL),
 ('a comment inside a dollar-quoted string is never context', $q$SELECT $x$ /*a='b'*/ $x$$q$, true, NULL),
 ('a -- inside a string does not hide the comment after it', $q$SELECT '-- ' /*a='b'*/$q$, true, '{"a": "b"}'),
 ('a quote inside a dollar-quoted string does not hide the comment', $q$SELECT $x$ it's $x$ /*a='b'*/$q$, true, '{"a": "b"}'),
 ('an escaped quote in an E'''' string does not hide the comment', $q$SELECT E'it\'s' /*a='b'*/$q$, true, '{"a": "b"}'),
 ('a line comment ends at its line', E'SELECT 1 -- note\n/*a=''b''*/', true, '{"a": "b"}'),
 ('a comment in a quoted identifier is never context', $q$SELECT 1 AS "/*a='b'*/"$q$, true, NULL),
 ('the first 8 pairs are kept',
  'SELECT 1 /*' || (SELECT string_agg(format('k%s=''v%s''', g, g), ',' ORDER BY g) FROM generate_series(1, 10) g) || '*/', true,
  (SELECT jsonb_object_agg('k' || g, 'v' || g) FROM generate_series(1, 8) g)::text),
 ('at most 256 bytes of keys and values: the pairs beyond are dropped',
  'SELECT 1 /*a=''' || repeat('x', 100) || ''',b=''' || repeat('y', 100) || ''',c=''' || repeat('z', 100) || '''*/', true,
  jsonb_build_object('a', repeat('x', 100), 'b', repeat('y', 100))::text)
)
SELECT name, coalesce((SELECT c.client_context::text FROM lambdaguard.comment_context(stmt, complete) c), 'NULL'),
       coalesce(expected::jsonb::text, 'NULL')
  FROM cases;
EOF
while IFS=$'\t' read -r name got expected; do
	is "parser: $name" "$got" "$expected"
done < <(A -F $'\t' -f "$T/parser.sql")
# the deadline: epoch milliseconds or RFC 3339 (offsets allowed), read
# from any pair, further than 15 minutes ignored, past = when it was seen
dl() { A -c "SELECT coalesce(to_char((SELECT deadline FROM lambdaguard.comment_context(\$q\$$1\$q\$, true, '2026-12-05 01:00:00+00')) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS'), 'NULL')"; }
is "deadline: epoch milliseconds" "$(dl "SELECT 1 /*lambdaguard_deadline='1796432410500'*/")" "2026-12-05 01:00:10.500"
is "deadline: RFC 3339 in UTC, URL-encoded" "$(dl "SELECT 1 /*lambdaguard_deadline='2026-12-05T01%3A02%3A03.456Z'*/")" "2026-12-05 01:02:03.456"
is "deadline: RFC 3339 with an offset" "$(dl "SELECT 1 /*lambdaguard_deadline='2026-12-05T02:05:00%2B01:00'*/")" "2026-12-05 01:05:00.000"
is "deadline: further than 15 minutes away is ignored" "$(dl "SELECT 1 /*lambdaguard_deadline='2026-12-05T01:15:00.001Z'*/")" "NULL"
is "deadline: 15 minutes away is kept" "$(dl "SELECT 1 /*lambdaguard_deadline='2026-12-05T01:15:00Z'*/")" "2026-12-05 01:15:00.000"
is "deadline: already past counts as the moment it was seen" "$(dl "SELECT 1 /*lambdaguard_deadline='1000'*/")" "2026-12-05 01:00:00.000"
is "deadline: not a time is ignored" "$(dl "SELECT 1 /*lambdaguard_deadline='soon'*/")" "NULL"
is "deadline: read from a pair beyond the 8 kept" \
	"$(dl "SELECT 1 /*k1='1',k2='2',k3='3',k4='4',k5='5',k6='6',k7='7',k8='8',lambdaguard_deadline='1796432410500'*/")" "2026-12-05 01:00:10.500"
is "deadline: the earliest of two pairs" \
	"$(dl "SELECT 1 /*lambdaguard_deadline='1796432420000',lambdaguard_deadline='1796432410000'*/")" "2026-12-05 01:00:10.000"
is "deadline: none in an ignored comment" "$(dl "SELECT 1 /*lambdaguard_deadline='1796432410500',x='%FF'*/")" "NULL"

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
      GRANT SELECT ON lambdaguard.history, lambdaguard.settings, lambdaguard.transaction_context TO weak"
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
      REVOKE ALL ON lambdaguard.history, lambdaguard.settings, lambdaguard.transaction_context FROM weak;
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

# --- the invocation context: declared deadlines, through PgBouncer, run by pg_cron ----
is "sessions ends with client_context jsonb and deadline timestamptz, as the C edition's" \
	"$(A -c "SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY attnum)
	           FROM pg_attribute WHERE attrelid = 'lambdaguard.sessions'::regclass AND attnum > 20")" \
	"client_context:jsonb,deadline:timestamp with time zone"
A -c "UPDATE lambdaguard.settings SET value = '60s' WHERE name = 'lambdaguard.idle_in_transaction_timeout';
      UPDATE lambdaguard.settings SET value = '60s' WHERE name = 'lambdaguard.aborted_transaction_timeout';
      UPDATE lambdaguard.settings SET value = '0' WHERE name = 'lambdaguard.blocking_timeout';
      UPDATE lambdaguard.settings SET value = '0' WHERE name = 'lambdaguard.active_timeout';
      UPDATE lambdaguard.settings SET value = 'app' WHERE name = 'lambdaguard.roles';
      UPDATE lambdaguard.settings SET value = '127.0.0.1/32' WHERE name = 'lambdaguard.client_addresses'"
grace=$(A -c "SELECT value FROM lambdaguard.settings WHERE name = 'lambdaguard.deadline_grace'")
is "deadline_grace defaults to 1000 ms" "$grace" 1000

# a text longer than track_activity_query_size is cut: its trailing comment
# is not read, its leading one is
qsize=$(S -c "SHOW track_activity_query_size")
open tr app
send tr "BEGIN;"
send tr "/*request_id='req-lead'*/ SELECT '$(head -c 1500 /dev/zero | tr '\0' x)' AS filler /*request_id='req-trail'*/;"
ptr=$(pid_of tr)
wait_for "tr idle in transaction" "SELECT state = 'idle in transaction' FROM pg_stat_activity WHERE pid = $ptr"
is "a text cut at track_activity_query_size ($qsize): the leading comment is the context, not the trailing one" \
	"$(A -c "SELECT s.client_context::text, octet_length(a.query) < 1500 FROM lambdaguard.sessions s JOIN pg_stat_activity a USING (pid) WHERE pid = $ptr")" \
	'{"request_id": "req-lead"}|t'
send tr "SELECT 'short' /*request_id='req-whole',lambdaguard_deadline='$(($(date +%s%3N) + 600000))'*/;"
wait_for "tr's second statement" "SELECT query LIKE '%req-whole%' AND state = 'idle in transaction' FROM pg_stat_activity WHERE pid = $ptr"
is "a whole text: its trailing comment is read; sessions shows the context and the deadline" \
	"$(A -c "SELECT client_context->>'request_id', deadline > now() + interval '9 min', verdict, action_at <= deadline + interval '1 s' FROM lambdaguard.sessions WHERE pid = $ptr")" \
	"req-whole|t|ok|t"
is "sessions shows no context for a session not in a transaction" \
	"$(A -c "SELECT count(*) FILTER (WHERE client_context IS NOT NULL OR deadline IS NOT NULL) FROM lambdaguard.sessions WHERE state = 'idle'")" 0
close tr

# PgBouncer (transaction mode) with room for the concurrent transactions below
sed -i 's/^default_pool_size = .*/default_pool_size = 12/' "$T/pgbouncer.ini"
psql -X -qAt -h 127.0.0.1 -p "$BPORT" -U postgres -d pgbouncer -c "RELOAD" >/dev/null 2>&1
# open_b NAME: a client of PgBouncer as role app (its server session shows
# only once it is in a transaction: found by its request id)
open_b() {
	local name=$1 fd
	mkfifo "$T/$name.in"
	(
		for f in "${FD[@]}"; do eval "exec $f>&-"; done
		PGAPPNAME=$name exec psql -X -q -h 127.0.0.1 -p "$BPORT" -U app -d postgres <"$T/$name.in" >"$T/$name.out" 2>&1
	) &
	exec {fd}>"$T/$name.in"
	FD[$name]=$fd
}
# spid REQUEST-ID: the server session whose last statement names it
spid() {
	wait_for "the server session of $1" "SELECT count(*) = 1 FROM pg_stat_activity
	           WHERE query LIKE '%request_id=''$1''%' AND pid <> pg_backend_pid() AND backend_type = 'client backend'" >/dev/null
	S -c "SELECT pid FROM pg_stat_activity WHERE query LIKE '%request_id=''$1''%' AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
}
now_ms() { date +%s%3N; }
# hreq REQUEST-ID COLUMNS: its history rows (a pooled server session serves
# several clients: its pid alone does not name one)
hreq() { A -c "SELECT $2 FROM lambdaguard.history WHERE client_context->>'request_id' = '$1' ORDER BY id"; }
tp=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01

A -c "SELECT cron.schedule('lambdaguard', '* * * * *', 'CALL lambdaguard.run()')" >/dev/null
wait_for "a scheduled run" "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'pg_cron' AND query = 'CALL lambdaguard.run()'" 75 ||
	not_ok "pg_cron starts lambdaguard.run()" "$(S -c "SELECT * FROM cron.job_run_details ORDER BY start_time DESC LIMIT 3")"

# A: frozen idle in transaction after a statement declaring a 2 s deadline
open_b dA
open_b dB
open_b dC
open_b dD
open_b dE
dA=$(($(now_ms) + 2000))
send dA "BEGIN;"
send dA "UPDATE accounts SET balance = balance + 1 WHERE id = 7 /*lambdaguard_deadline='$dA',request_id='req-A',traceparent='$tp'*/;"
# B: a later statement without a comment (and one declaring a later
# deadline): the earliest deadline holds
dB=$(($(now_ms) + 2500))
send dB "BEGIN;"
send dB "SELECT 1 /*lambdaguard_deadline='$dB',request_id='req-B'*/;"
# C: commits before its deadline
dC=$(($(now_ms) + 3000))
send dC "BEGIN;"
send dC "UPDATE accounts SET balance = balance + 1 WHERE id = 8 /*lambdaguard_deadline='$dC',request_id='req-C'*/;"
# D: a statement still running at its deadline + grace, in a transaction
dD=$(($(now_ms) + 2000))
send dD "BEGIN;"
send dD "SELECT pg_sleep(30) /*lambdaguard_deadline='$dD',request_id='req-D'*/;"
# E: the same without a transaction block: cancelled, and then no longer in
# a transaction
dE=$(($(now_ms) + 2000))
send dE "SELECT pg_sleep(30) /*lambdaguard_deadline='$dE',request_id='req-E'*/;"
pA=$(spid req-A)
pB=$(spid req-B)
pC=$(spid req-C)
pD=$(spid req-D)
pE=$(spid req-E)
is "sessions shows A's declared deadline and context through PgBouncer, verdict ok before it" \
	"$(A -c "SELECT deadline = to_timestamp($dA / 1000.0), client_context->>'request_id', client_context->>'traceparent', verdict
	           FROM lambdaguard.sessions WHERE pid = ${pA:-0}")" "t|req-A|$tp|ok"
wait_for "the run to keep B's and C's deadlines" "SELECT count(*) = 2 FROM lambdaguard.transaction_context
                                                  WHERE client_context->>'request_id' IN ('req-B', 'req-C')"
send dB "SELECT 3 /*lambdaguard_deadline='$((dB + 600000))',request_id='req-B-later'*/;"
send dB "SELECT 2;"
send dC "COMMIT;"

wait_for "A terminated" "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = ${pA:-0}" 10 &&
	ok "A: terminated although idle_in_transaction_timeout is 60 s" || not_ok "A: terminated although idle_in_transaction_timeout is 60 s"
is "A: its history row: verdict deadline_passed, action terminate, its request id and traceparent" \
	"$(hreq req-A "verdict, action, state, pid = ${pA:-0}, client_context->>'traceparent', client_context->>'lambdaguard_deadline'")" \
	"deadline_passed|terminate|idle in transaction|t|$tp|$dA"
lagA=$(A -c "SELECT round(extract(epoch FROM at - to_timestamp($dA / 1000.0)) * 1000) FROM lambdaguard.history
             WHERE client_context->>'request_id' = 'req-A' AND action = 'terminate'")
echo "# A: terminated ${lagA:-?} ms after its deadline (grace $grace ms, naptime 1000 ms)"
if [ -n "$lagA" ] && [ "$lagA" -ge "$grace" ] && [ "$lagA" -le $((grace + 3500)) ]; then
	ok "A: acted between deadline + grace and deadline + grace + naptime + pg_cron's start (3.5 s)"
else
	not_ok "A: acted between deadline + grace and deadline + grace + naptime + pg_cron's start (3.5 s)" "lag ${lagA:-none} ms"
fi
like "A: one LOG line names the verdict" "$(grep "terminated pid ${pA:-0} " "$LOG")" \
	"admin@postgres/pg_cron .*terminated pid ${pA:-0} \(role app, database postgres, application \"dA\", client 127.0.0.1\): verdict deadline_passed, idle in transaction for"
wait_for "B terminated" "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = ${pB:-0}" 10
is "B: the earliest deadline held after a statement without a comment and one declaring a later deadline" \
	"$(hreq req-B "verdict, action, query, pid = ${pB:-0}, at >= to_timestamp(($dB + $grace) / 1000.0)")" \
	"deadline_passed|terminate|SELECT 2;|t|t"
wait_for "D's cancel and terminate" "SELECT count(*) = 2 FROM lambdaguard.history WHERE client_context->>'request_id' = 'req-D'" 10
is "D: a statement running at deadline + grace is cancelled; its transaction, still open one grace later, terminated" \
	"$(hreq req-D "verdict || ':' || action || ':' || state" | tr '\n' ' ')" \
	"deadline_passed:cancel:active deadline_passed:terminate:idle in transaction (aborted) "
is "D: the cancel after deadline + grace, the terminate after deadline + 2 x grace" \
	"$(A -c "SELECT bool_and(at >= to_timestamp(($dD + $grace * CASE action WHEN 'cancel' THEN 1 ELSE 2 END) / 1000.0))
	           FROM lambdaguard.history WHERE client_context->>'request_id' = 'req-D'")" t
like "D: the client saw the cancel" "$(cat "$T/dD.out")" "canceling statement due to user request"
gone "${pD:-0}" && ok "D: its server session ended" || not_ok "D: its server session ended"
wait_for "E's cancel" "SELECT count(*) = 1 FROM lambdaguard.history WHERE client_context->>'request_id' = 'req-E'" 10
wait_for "C's and E's deadlines + 2 x grace + a scan" "SELECT clock_timestamp() > to_timestamp(($dC + 2 * $grace + 2000) / 1000.0)
                                                        AND clock_timestamp() > to_timestamp(($dE + 2 * $grace + 2000) / 1000.0)" 15
is "E: a statement outside a transaction block is cancelled, and then left alone (no longer in that transaction)" \
	"$(hreq req-E "verdict || ':' || action" | tr '\n' ' ')" "deadline_passed:cancel "
alive "${pE:-0}" && ok "E: its server session lives" || not_ok "E: its server session lives"
is "C: committed before its deadline: never touched" \
	"$(A -c "SELECT count(*) FROM lambdaguard.history WHERE client_context->>'request_id' = 'req-C'")" 0
send dC "SELECT 'C still here' AS c;"
for _ in $(seq 1 50); do grep -q "C still here" "$T/dC.out" && break; sleep 0.1; done
like "C: its client still works" "$(cat "$T/dC.out")" "C still here"
is "the kept contexts of ended transactions are removed" \
	"$(A -c "SELECT count(*) FROM lambdaguard.transaction_context WHERE client_context->>'request_id' IN ('req-A', 'req-B', 'req-C', 'req-D', 'req-E')")" 0
for s in dA dB dC dD dE; do close $s; done

# dry run: recorded and logged, nobody signalled; then acted on once off
setting lambdaguard.dry_run on
open_b dF
dF=$(($(now_ms) + 1000))
send dF "BEGIN;"
send dF "UPDATE accounts SET balance = balance + 1 WHERE id = 9 /*lambdaguard_deadline='$dF',request_id='req-F'*/;"
pF=$(spid req-F)
wait_for "F's dry run row" "SELECT count(*) = 1 FROM lambdaguard.history WHERE client_context->>'request_id' = 'req-F'" 10
is "dry_run: the decision is recorded (action dry_run) with its context" \
	"$(hreq req-F "verdict, action, pid = ${pF:-0}")" "deadline_passed|dry_run|t"
grep -q "would signal (dry run) pid ${pF:-0} " "$LOG" && ok "dry_run: logged" || not_ok "dry_run: logged"
wait_for "two more scans" "SELECT clock_timestamp() > (SELECT at FROM lambdaguard.history WHERE client_context->>'request_id' = 'req-F') + interval '2.5 s'" 5
alive "${pF:-0}" && ok "dry_run: nobody signalled" || not_ok "dry_run: nobody signalled"
is "dry_run: the episode is recorded once" "$(A -c "SELECT count(*) FROM lambdaguard.history WHERE client_context->>'request_id' = 'req-F'")" 1
setting lambdaguard.dry_run off
gone "${pF:-0}" && ok "dry_run off: the same session is terminated" || not_ok "dry_run off: the same session is terminated"
is "... with its row" "$(hreq req-F "verdict || ':' || action" | tr '\n' ' ')" "deadline_passed:dry_run deadline_passed:terminate "
close dF

A -c "SELECT cron.unschedule('lambdaguard')" >/dev/null
S -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_cron' AND query LIKE 'CALL lambdaguard.run%'" >/dev/null
A -c "UPDATE lambdaguard.settings SET value = '1s' WHERE name = 'lambdaguard.idle_in_transaction_timeout';
      UPDATE lambdaguard.settings SET value = '1s' WHERE name = 'lambdaguard.aborted_transaction_timeout'"

# --- the pg_tle package ---------------------------------------------------------------
if cmp -s "$M/pg_lambdaguard_managed--pgtle.sql" "$WORK/pgtle-generated.sql"; then
	ok "the committed pg_tle package is what build_tle.sh generates now"
else
	not_ok "the committed pg_tle package is what build_tle.sh generates now" "run: bash managed/build_tle.sh > managed/pg_lambdaguard_managed--pgtle.sql"
fi
awk '/^\$_pgtle_\$$/ { n++; next } n == 1' "$M/pg_lambdaguard_managed--pgtle.sql" >"$T/content.sql"
cmp -s "$T/content.sql" "$M/pg_lambdaguard_managed.sql" &&
	ok "the pg_tle package's content is the SQL file, byte for byte" ||
	not_ok "the pg_tle package's content is the SQL file, byte for byte"
like "the package calls pgtle.install_extension('pg_lambdaguard_managed', '1.1', ...), then install_update_path('pg_lambdaguard_managed', '1.0', '1.1', ...)" \
	"$(tr '\n' ' ' <"$M/pg_lambdaguard_managed--pgtle.sql")" \
	"SELECT pgtle.install_extension\(     'pg_lambdaguard_managed',     '1.1',.*SELECT pgtle.install_update_path\(     'pg_lambdaguard_managed',     '1.0',     '1.1',"
awk '/^\$_pgtle_\$$/ { n++; next } n == 3' "$M/pg_lambdaguard_managed--pgtle.sql" >"$T/update-content.sql"
cmp -s "$T/update-content.sql" "$M/pg_lambdaguard_managed--1.0--1.1.sql" &&
	ok "... its update path is pg_lambdaguard_managed--1.0--1.1.sql, byte for byte" ||
	not_ok "... its update path is pg_lambdaguard_managed--1.0--1.1.sql, byte for byte"

# a next upgrade script becomes one more pgtle.install_update_path(), its
# content unchanged, and the default version
mkdir -p "$T/up"
cp "$M/pg_lambdaguard_managed.sql" "$M/pg_lambdaguard_managed--1.0--1.1.sql" "$M/build_tle.sh" "$T/up/"
printf "CREATE OR REPLACE FUNCTION lambdaguard.version() RETURNS text LANGUAGE sql IMMUTABLE AS \$\$ SELECT '1.2'::text \$\$;\n" \
	>"$T/up/pg_lambdaguard_managed--1.1--1.2.sql"
bash "$T/up/build_tle.sh" "$T/up/pg_lambdaguard_managed.sql" >"$T/up/pkg.sql"
like "build_tle.sh packages the upgrade scripts in order as pgtle.install_update_path() and sets the last as default" \
	"$(tr '\n' ' ' <"$T/up/pkg.sql")" \
	"SELECT pgtle.install_update_path\(     'pg_lambdaguard_managed',     '1.0',     '1.1', .*SELECT pgtle.install_update_path\(     'pg_lambdaguard_managed',     '1.1',     '1.2', .*SELECT pgtle.set_default_version\('pg_lambdaguard_managed', '1.2'\);"
awk '/^\$_pgtle_\$$/ { n++; next } n == 5' "$T/up/pkg.sql" >"$T/up/content.sql"
cmp -s "$T/up/content.sql" "$T/up/pg_lambdaguard_managed--1.1--1.2.sql" &&
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
out=$(A -1 -f "$T/up/pg_lambdaguard_managed--1.1--1.2.sql" 2>&1)
is "an upgrade script applied with psql -1 -f upgrades in place" "$?|$(A -c "SELECT lambdaguard.version()")" "0|1.2"
out=$(A -f "$M/uninstall.sql" 2>&1)
is "uninstall.sql (history not kept) leaves nothing" "$(gone_all)|$(S -c "SELECT count(*) FROM lambdaguard_archive.history")" "0|0|0|0|$nh"
S -c "DROP SCHEMA lambdaguard_archive CASCADE" 2>/dev/null

# --- upgrade from 1.0 with psql, with data -------------------------------------------
# 1.0 (the release's file, kept as managed/test/pg_lambdaguard_managed-1.0.sql)
# in one database, a fresh 1.1 in another: after the upgrade script the two
# hold the same objects (managed/test/fingerprint.sql), and 1.0's rows
S -c "CREATE DATABASE lg_up" -c "CREATE DATABASE lg_fresh" \
	-c "GRANT CREATE ON DATABASE lg_up, lg_fresh TO admin" >/dev/null
AD() { psql -X -qAt -v ON_ERROR_STOP=1 -h "$T" -p "$PORT" -U admin -d "$@"; }
h10="id, at, pid, usename, datname, application_name, client_addr, backend_start, xact_start, state, state_since,
     verdict, action, locks_held, blocked_pids, pin_reasons, query, detail"
out=$(AD lg_up -1 -f "$M/test/pg_lambdaguard_managed-1.0.sql" 2>&1)
is "1.0 installs" "$?|$out|$(AD lg_up -c "SELECT lambdaguard.version()")" "0||1.0"
AD lg_up -c "UPDATE lambdaguard.settings SET value = 'app' WHERE name = 'lambdaguard.roles'" \
	-c "UPDATE lambdaguard.settings SET value = '127.0.0.1/32' WHERE name = 'lambdaguard.client_addresses'" \
	-c "UPDATE lambdaguard.settings SET value = '1s' WHERE name = 'lambdaguard.idle_in_transaction_timeout'"
orphan u1
pu1=$(pid_of u1)
wait_for "u1 due" "SELECT now() - state_change > interval '1.2 s' FROM pg_stat_activity WHERE pid = $pu1"
is "1.0 terminates an orphan and records it" \
	"$(AD lg_up -c "SELECT verdict, action FROM lambdaguard.scan(false) WHERE pid = $pu1")" "orphan|terminate"
close u1
AD lg_up -c "INSERT INTO lambdaguard.history (at, pid, verdict, action, detail)
             VALUES (now() - interval '1 day', 1, 'orphan', 'dry_run', 'written by 1.0'),
                    (now(), 2, 'overdue_query', 'cancel', NULL)"
before=$(AD lg_up -c "SELECT count(*), md5(string_agg(row($h10)::text, ',' ORDER BY id)) FROM lambdaguard.history")
settings_before=$(AD lg_up -c "SELECT string_agg(name || '=' || value, ' ' ORDER BY name) FROM lambdaguard.settings")
out=$(AD lg_up -1 -f "$M/pg_lambdaguard_managed--1.0--1.1.sql" 2>&1)
is "the upgrade script runs as the admin role (psql -1 -f)" "$?|$out|$(AD lg_up -c "SELECT lambdaguard.version()")" "0||1.1"
is "... 1.0's history rows are kept, every column" \
	"$(AD lg_up -c "SELECT count(*), md5(string_agg(row($h10)::text, ',' ORDER BY id)) FROM lambdaguard.history")" "$before"
is "... with client_context NULL" "$(AD lg_up -c "SELECT count(*) FROM lambdaguard.history WHERE client_context IS NOT NULL")" 0
is "... the settings are kept, deadline_grace comes with its default" \
	"$(AD lg_up -c "SELECT string_agg(name || '=' || value, ' ' ORDER BY name) FROM lambdaguard.settings WHERE name <> 'lambdaguard.deadline_grace'")|$(AD lg_up -c "SELECT value FROM lambdaguard.settings WHERE name = 'lambdaguard.deadline_grace'")" \
	"$settings_before|1000"
AD lg_fresh -1 -f "$M/pg_lambdaguard_managed.sql" >/dev/null 2>&1
AD lg_up -f "$M/test/fingerprint.sql" >"$T/fp-upgraded" 2>&1
AD lg_fresh -f "$M/test/fingerprint.sql" >"$T/fp-fresh" 2>&1
if [ -s "$T/fp-fresh" ] && diff -q "$T/fp-upgraded" "$T/fp-fresh" >/dev/null; then
	ok "... the upgraded database holds what a fresh 1.1 install holds ($(wc -l <"$T/fp-fresh") objects, definitions, privileges, comments)"
else
	not_ok "... the upgraded database holds what a fresh 1.1 install holds" "$(diff "$T/fp-upgraded" "$T/fp-fresh" | cut -c1-200 | head -20)"
fi
out=$(AD lg_up -1 -f "$M/pg_lambdaguard_managed--1.0--1.1.sql" 2>&1)
like "... and the upgrade script refuses to run twice" "$out" "pg_lambdaguard_managed 1.1 is installed; this script upgrades 1.0 to 1.1"
AD lg_up -c "UPDATE lambdaguard.settings SET value = '1h' WHERE name = 'lambdaguard.idle_in_transaction_timeout'"
open u2 app
send u2 "BEGIN;"
send u2 "SELECT 1 /*lambdaguard_deadline='1000',request_id='req-upgraded'*/;"
pu2=$(pid_of u2)
wait_for "u2 past its (already passed) deadline + grace" \
	"SELECT state = 'idle in transaction' AND now() - query_start > interval '1.2 s' FROM pg_stat_activity WHERE pid = $pu2"
is "... and the upgraded guard honours a declared deadline: deadline_passed, with the context" \
	"$(AD lg_up -c "SELECT verdict, action, client_context->>'request_id' FROM lambdaguard.scan(false) WHERE pid = $pu2")" \
	"deadline_passed|terminate|req-upgraded"
gone "$pu2" && ok "... the session ends" || not_ok "... the session ends"
is "... new rows continue the history's ids" \
	"$(AD lg_up -c "SELECT max(id) = (SELECT max(id) FROM lambdaguard.history WHERE client_context IS NOT NULL) AND count(*) = ${before%%|*} + 1 FROM lambdaguard.history")" t
close u2
S -c "DROP DATABASE lg_up" -c "DROP DATABASE lg_fresh" >/dev/null

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
is "... and the guard works there" "$(A -c "SELECT lambdaguard.version(), count(*) >= 0 FROM lambdaguard.scan(true)")" "1.1|t"
members="SELECT count(*) FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
           AND refobjid = (SELECT oid FROM pg_extension WHERE extname = '$EXT_NAME')"
fresh_members=$(A -c "$members")
A -f "$M/test/fingerprint.sql" >"$T/fp-ext-fresh" 2>&1
A -c "DROP EXTENSION $EXT_NAME"
is "DROP EXTENSION removes it all" "$(S -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'lambdaguard'")" 0

# the extension's update path, with data: CREATE EXTENSION ... VERSION '1.0',
# rows and a setting, ALTER EXTENSION ... UPDATE
out=$(A -c "CREATE EXTENSION $EXT_NAME VERSION '1.0'" 2>&1)
is "the extension at 1.0" "$out|$(A -c "SELECT lambdaguard.version()")" "|1.0"
A -c "INSERT INTO lambdaguard.history (at, pid, verdict, action, detail)
      VALUES (now(), 1, 'orphan', 'terminate', 'written by 1.0'), (now(), 2, 'orphan_aborted', 'skipped', NULL)"
A -c "UPDATE lambdaguard.settings SET value = 'on' WHERE name = 'lambdaguard.dry_run'"
before=$(A -c "SELECT count(*), md5(string_agg(row($h10)::text, ',' ORDER BY id)) FROM lambdaguard.history")
out=$(A -c "ALTER EXTENSION $EXT_NAME UPDATE" 2>&1)
is "ALTER EXTENSION ... UPDATE runs the update path as the admin role" \
	"$out|$(A -c "SELECT extversion, lambdaguard.version() FROM pg_extension WHERE extname = '$EXT_NAME'")" "|1.1|1.1"
is "... the history rows and the changed setting are kept" \
	"$(A -c "SELECT count(*), md5(string_agg(row($h10)::text, ',' ORDER BY id)) FROM lambdaguard.history")|$(A -c "SELECT value FROM lambdaguard.settings WHERE name = 'lambdaguard.dry_run'")" \
	"$before|on"
A -f "$M/test/fingerprint.sql" >"$T/fp-ext-updated" 2>&1
if [ -s "$T/fp-ext-fresh" ] && diff -q "$T/fp-ext-updated" "$T/fp-ext-fresh" >/dev/null; then
	ok "... the updated extension holds what CREATE EXTENSION of 1.1 makes"
else
	not_ok "... the updated extension holds what CREATE EXTENSION of 1.1 makes" "$(diff "$T/fp-ext-updated" "$T/fp-ext-fresh" | cut -c1-200 | head -20)"
fi
is "... every object a member, history and settings still its configuration" \
	"$(A -c "$members")|$(A -c "SELECT array_agg(c::regclass::text ORDER BY c::regclass::text) FROM pg_extension, unnest(extconfig) c WHERE extname = '$EXT_NAME'")" \
	"$fresh_members|{lambdaguard.history,lambdaguard.history_id_seq,lambdaguard.settings}"
A -c "DROP EXTENSION $EXT_NAME"

echo "# managed: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
