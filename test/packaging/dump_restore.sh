#!/usr/bin/env bash
# pg_dump / pg_restore round trips of a database that holds pg_lambdaguard,
# run by test/packaging/run.sh as the server user:
#
#     dump_restore.sh c         the C edition (installed for the PostgreSQL in
#                               LG_PG_BIN, loaded with shared_preload_libraries)
#     dump_restore.sh managed   the managed edition: the SQL file installed with
#                               psql, and its pg_tle content installed as the
#                               extension EXT_NAME (run.sh put its control file
#                               in place, superuser = false, as pg_tle does)
#     dump_restore.sh pgtle     the managed edition's pg_tle package, with pg_tle
#                               (where it is installed: Debian does not package it)
#
# Each starts a throwaway cluster, makes the guard record a real decision
# (an orphan terminated), dumps with pg_dump -Fc and restores into a new
# database with pg_restore --exit-on-error, and compares.  Environment:
# LG_PG_BIN, SRC (the source tree), WORK (a directory of ours), EXT_NAME.
# Prints "dump_restore <edition>: N passed, N failed".
set -uo pipefail
edition=${1:?usage: dump_restore.sh c|managed|pgtle}
export PATH="$LG_PG_BIN:$PATH"
. "$SRC/test/packaging/lib.sh"

dir=$WORK/dump-$edition
port=$(free_port 57300 57999) || { not_ok "a free port"; summary "dump_restore $edition"; exit; }
holder_fd=
cleanup() {
	[ -n "$holder_fd" ] && eval "exec $holder_fd>&-"
	cluster_stop "$dir"
	wait 2>/dev/null
	if [ "$fail" -gt 0 ] && [ -f "$dir/server.log" ]; then
		echo "# last lines of the server log:"
		tail -n 20 "$dir/server.log" | sed 's/^/#   /'
	fi
}
trap cleanup EXIT

Q() { psql -X -qAt -v ON_ERROR_STOP=1 -h "$dir" -p "$port" "$@"; }
S() { Q -U postgres "$@"; }

# orphan DB: a session of role app left idle in a transaction (psql reading
# a FIFO that we keep open; closing it ends the session if still alive)
orphan() {
	rm -f "$dir/orphan.in"
	mkfifo "$dir/orphan.in"
	psql -X -q -h 127.0.0.1 -p "$port" -U app -d "$1" <"$dir/orphan.in" >/dev/null 2>&1 &
	exec {holder_fd}>"$dir/orphan.in"
	echo "BEGIN; SELECT 1;" >&"$holder_fd"
	wait_for "the orphan to be idle in transaction" 15 S -d "$1" -c \
		"SELECT EXISTS (SELECT FROM pg_stat_activity WHERE usename = 'app' AND state = 'idle in transaction')"
}
orphan_done() {
	eval "exec $holder_fd>&-"
	holder_fd=
}

# history DB: its rows, all columns, in one line (count and digest)
history() {
	S -d "$1" -c "SELECT count(*), md5(coalesce(string_agg(h::text, '|' ORDER BY h.id), ''))
	                FROM lambdaguard.history h"
}

# round_trip FROM TO USER: pg_dump -Fc FROM, pg_restore --exit-on-error into
# the new database TO (owned by USER) as USER; prints rc|output
round_trip() {
	local out rc=0
	pg_dump -h "$dir" -p "$port" -U postgres -Fc -f "$dir/$1.dump" "$1" 2>&1 || return
	S -d postgres -c "CREATE DATABASE $2 OWNER $3" || return
	out=$(pg_restore -h "$dir" -p "$port" -U "$3" --exit-on-error -d "$2" "$dir/$1.dump" 2>&1) || rc=$?
	echo "$rc|$out"
}

c_edition() {
	local before seq out members
	cluster_start "$dir" "$port" \
		"shared_preload_libraries = 'pg_lambdaguard'" \
		"lambdaguard.database = 'postgres'" \
		"lambdaguard.naptime = 100" \
		"lambdaguard.roles = 'app'" \
		"lambdaguard.idle_in_transaction_timeout = 1000" ||
		{ not_ok "C edition: the preloaded server starts" "$(tail -20 "$dir/server.log")"; return; }
	S -d postgres -c "CREATE EXTENSION pg_lambdaguard" -c "CREATE ROLE app LOGIN"
	orphan postgres
	if wait_for "the worker's decision" 20 S -d postgres -c \
		"SELECT EXISTS (SELECT FROM lambdaguard.history WHERE usename = 'app' AND verdict = 'orphan' AND action = 'terminate')"; then
		ok "C edition: the worker terminates an orphan and records it in history"
	else
		not_ok "C edition: the worker terminates an orphan and records it in history" \
			"$(S -d postgres -c "TABLE lambdaguard.history")"
	fi
	orphan_done
	S -d postgres -c "SELECT * FROM lambdaguard.scan(true)" >/dev/null
	before=$(history postgres)
	seq=$(S -d postgres -c "SELECT last_value FROM lambdaguard.history_id_seq")

	out=$(round_trip postgres restored postgres)
	is "C edition: pg_restore --exit-on-error of pg_dump -Fc succeeds, without a message" "$out" "0|"
	is "C edition: the history rows are restored, every column" "$(history restored)" "$before"
	is "C edition: the history's identity sequence is restored" \
		"$(S -d restored -c "SELECT last_value FROM lambdaguard.history_id_seq")" "$seq"
	members="SELECT extversion, (SELECT count(*) FROM pg_depend WHERE refobjid = e.oid AND deptype = 'e')
	           FROM pg_extension e WHERE extname = 'pg_lambdaguard'"
	is "C edition: the restored extension has the same version and as many member objects" \
		"$(S -d restored -c "$members")" "$(S -d postgres -c "$members")"
	is "C edition: the restored extension works (sessions shows this session, from shared memory)" \
		"$(S -d restored -c "SELECT count(*) FROM lambdaguard.sessions WHERE pid = pg_backend_pid()")" 1
	is "C edition: the restored reasons table is the shipped one" \
		"$(S -d restored -c "SELECT count(*) FROM lambdaguard.reasons")" \
		"$(S -d postgres -c "SELECT count(*) FROM lambdaguard.reasons")"
	is "C edition: a new history row continues the restored sequence" \
		"$(S -d restored -c "INSERT INTO lambdaguard.history (at, pid, verdict, action) VALUES (now(), 1, 'orphan', 'dry_run')
		                     RETURNING id > $seq")" t
}

# the managed edition's settings, in one line
settings() {
	S -d "$1" -c "SELECT string_agg(name || '=' || value, ' ' ORDER BY name) FROM lambdaguard.settings"
}

# managed_guard DB: change two settings, leave an orphan, let the guard
# (CALL lambdaguard.run(true), as pg_cron would) terminate it
managed_guard() {
	local db=$1 what=$2
	Q -U admin -d "$db" -c "UPDATE lambdaguard.settings SET value = 'app' WHERE name = 'lambdaguard.roles'" \
		-c "UPDATE lambdaguard.settings SET value = '1s' WHERE name = 'lambdaguard.idle_in_transaction_timeout'" \
		-c "UPDATE lambdaguard.settings SET value = '1h' WHERE name = 'lambdaguard.active_timeout'" \
		-c "UPDATE lambdaguard.settings SET value = NULL WHERE name = 'lambdaguard.active_timeout'"
	orphan "$db"
	wait_for "the orphan's timeout" 15 S -d "$db" -c \
		"SELECT EXISTS (SELECT FROM pg_stat_activity WHERE usename = 'app' AND state = 'idle in transaction'
		                   AND clock_timestamp() - state_change > interval '1.2 s')"
	Q -U admin -d "$db" -c "CALL lambdaguard.run(true)"
	is "managed edition ($what): the guard terminates an orphan and records it in history" \
		"$(S -d "$db" -c "SELECT count(*) FROM lambdaguard.history WHERE usename = 'app' AND verdict = 'orphan' AND action = 'terminate'")" 1
	orphan_done
}

# managed_restored FROM TO WHAT OWNER: the checks after a round trip
# restored by OWNER
managed_restored() {
	local from=$1 to=$2 what=$3 owner=$4 out
	is "managed edition ($what): a changed setting survives the round trip, the others keep their defaults" \
		"$(settings "$to")" "$(settings "$from")"
	is "managed edition ($what): the history rows are restored, every column" "$(history "$to")" "$(history "$from")"
	is "managed edition ($what): the restored objects belong to $owner, who ran pg_restore" \
		"$(S -d "$to" -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		                   WHERE n.nspname = 'lambdaguard' AND c.relowner <> '$owner'::regrole")" 0
	is "managed edition ($what): the restored guard works for $owner" \
		"$(Q -U "$owner" -d "$to" -c "SELECT count(*) >= 1 FROM lambdaguard.sessions WHERE pid = pg_backend_pid()")" t
	out=$(Q -U "$owner" -d "$to" -c "UPDATE lambdaguard.settings SET value = 'maybe' WHERE name = 'lambdaguard.dry_run'" 2>&1)
	like "managed edition ($what): the restored settings are still checked" "$out" \
		'invalid value for setting "lambdaguard.dry_run"'
}

managed_edition() {
	local out
	cluster_start "$dir" "$port" "max_connections = 30" ||
		{ not_ok "managed edition: the server starts" "$(tail -20 "$dir/server.log")"; return; }
	S -d postgres -c "CREATE ROLE admin LOGIN" \
		-c "GRANT pg_signal_backend, pg_monitor, pg_read_all_stats TO admin" \
		-c "CREATE ROLE app LOGIN" \
		-c "CREATE DATABASE plain OWNER admin" \
		-c "CREATE DATABASE ext OWNER admin"

	# the SQL file, installed with psql: pg_dump sees ordinary objects
	out=$(Q -U admin -d plain -1 -f "$SRC/managed/pg_lambdaguard_managed.sql" 2>&1)
	is "managed edition (psql -f): the admin role installs the SQL file" "$?|$out" "0|"
	managed_guard plain "psql -f"
	out=$(round_trip plain plain_restored admin)
	is "managed edition (psql -f): pg_restore --exit-on-error as the admin role succeeds, without a message" "$out" "0|"
	managed_restored plain plain_restored "psql -f" admin

	# the pg_tle content as an extension: settings and history are extension
	# configuration tables, so the dump holds their rows and the restore
	# runs CREATE EXTENSION (which writes the defaults) before them
	out=$(Q -U admin -d ext -c "CREATE EXTENSION $EXT_NAME" 2>&1)
	is "managed edition (extension): the admin role creates the extension" "$out" ""
	managed_guard ext extension
	out=$(Q -U admin -d ext -c "INSERT INTO lambdaguard.settings VALUES ('lambdaguard.dry_run', 'yes')" \
		-c "SELECT value FROM lambdaguard.settings WHERE name = 'lambdaguard.dry_run'" 2>&1)
	is "managed edition (extension): an INSERT of an existing setting sets it, checked" "$out" "on"
	Q -U admin -d ext -c "UPDATE lambdaguard.settings SET value = NULL WHERE name = 'lambdaguard.dry_run'"
	out=$(Q -U admin -d ext -c "INSERT INTO lambdaguard.settings VALUES ('lambdaguard.naptime', '1ms')" 2>&1)
	like "managed edition (extension): ... and a bad value is refused as by UPDATE" "$out" \
		'1 ms is outside the valid range for lambdaguard.naptime'
	out=$(round_trip ext ext_restored admin)
	is "managed edition (extension): pg_restore --exit-on-error as the admin role succeeds, without a message" "$out" "0|"
	is "managed edition (extension): the dump holds only the settings changed from their defaults" \
		"$(pg_restore --data-only -t settings -f - "$dir/ext.dump" | sed -n '/^COPY /,/^\\\.$/p' | sed '1d;$d' | cut -f1 | sort | tr '\n' ' ')" \
		"lambdaguard.idle_in_transaction_timeout lambdaguard.roles "
	managed_restored ext ext_restored extension admin
	is "managed edition (extension): the restored database holds the extension, settings and history as its configuration" \
		"$(S -d ext_restored -c "SELECT array_agg(c::regclass::text ORDER BY c::regclass::text) FROM pg_extension, unnest(extconfig) c WHERE extname = '$EXT_NAME'")" \
		"{lambdaguard.history,lambdaguard.history_id_seq,lambdaguard.settings}"
}

# pg_tle itself: the package installed by the admin role (a member of
# pgtle_admin), the extension created from it.  The dump re-creates pg_tle,
# which only a superuser may do here, so a superuser restores: CREATE
# EXTENSION runs as that role, whose the restored objects then are.
pgtle_edition() {
	local out
	cluster_start "$dir" "$port" "max_connections = 30" "shared_preload_libraries = 'pg_tle'" ||
		{ not_ok "pg_tle: the server starts" "$(tail -20 "$dir/server.log")"; return; }
	S -d postgres -c "CREATE ROLE admin LOGIN" \
		-c "GRANT pg_signal_backend, pg_monitor, pg_read_all_stats TO admin" \
		-c "CREATE ROLE app LOGIN" \
		-c "CREATE DATABASE tle OWNER admin"
	S -d tle -c "CREATE EXTENSION pg_tle" -c "GRANT pgtle_admin TO admin"
	out=$(Q -U admin -d tle -X -v ON_ERROR_STOP=1 -f "$SRC/managed/pg_lambdaguard_managed--pgtle.sql" 2>&1)
	is "managed edition (pg_tle): the admin role installs the pg_tle package" "$?" 0
	out=$(Q -U admin -d tle -c "CREATE EXTENSION pg_lambdaguard_managed" 2>&1)
	is "managed edition (pg_tle): the admin role creates the extension" "$out" ""
	managed_guard tle pg_tle
	out=$(round_trip tle tle_restored postgres)
	is "managed edition (pg_tle): pg_restore --exit-on-error succeeds, without a message" "$out" "0|"
	managed_restored tle tle_restored pg_tle postgres
}

case $edition in
c) c_edition ;;
managed) managed_edition ;;
pgtle) pgtle_edition ;;
*) echo "usage: dump_restore.sh c|managed|pgtle" >&2; exit 2 ;;
esac
summary "dump_restore $edition"
