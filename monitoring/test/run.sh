#!/usr/bin/env bash
# The monitoring suite of pg_lambdaguard, with the real parts from Debian:
#
#     PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config bash monitoring/test/run.sh
#
# Run from the root of a (scratch copy of the) source tree, as root or as a
# user with sudo, with pg_lambdaguard built and installed for PG_CONFIG.
#   1. starts a throwaway cluster with pg_lambdaguard preloaded, on a free
#      loopback port, and creates the extension and an exporter role that
#      is a member of pg_monitor (not a superuser);
#   2. starts its own prometheus-postgres-exporter on a free loopback port
#      with monitoring/queries.yaml (the Debian service is not used);
#   3. runs a known workload: an orphan that the worker terminates, a
#      session that pins with SET, PREPARE, LISTEN, a temp table and an
#      advisory lock, and changes a setting inside a function;
#   4. scrapes the exporter and checks every lambdaguard metric against the
#      view lambdaguard.metrics, and the workload's figures;
#   5. promtool check rules and promtool test rules on the alert rules; the
#      dashboard's and the rules' expressions against the exported metrics.
# Everything it starts is stopped on exit.  Prints "monitoring: N passed, N
# failed" and exits non-zero on any failure.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$src/tools/common.sh"
mon=$src/monitoring
PY=/usr/bin/python3

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $*"; }
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# Count the "ok - " / "not ok - " lines of a checker's output.
tally() {
	local out=$1
	passed=$((passed + $(grep -c '^ok - ' "$out" || true)))
	failed=$((failed + $(grep -c '^not ok - ' "$out" || true)))
}
finish() {
	echo "monitoring: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

lg_install_debian prometheus-postgres-exporter prometheus python3 python3-yaml curl jq
EXPORTER=/usr/bin/prometheus-postgres-exporter
PROMTOOL=/usr/bin/promtool

if [ ! -x "$LG_PG_BIN/initdb" ]; then
	echo "skipped: no PostgreSQL server at $LG_PG_BIN"
	finish
	exit 0
fi
if [ ! -f "$("$LG_PG_CONFIG" --sharedir)/extension/pg_lambdaguard.control" ]; then
	echo "pg_lambdaguard is not installed for $LG_PG_CONFIG (make install first)" >&2
	not_ok "pg_lambdaguard installed for PostgreSQL $LG_PG_MAJOR"
	finish
fi

tmp=$(mktemp -d /tmp/lg-monitoring.XXXXXX)
chmod 755 "$tmp"
[ "$(id -u)" -eq 0 ] && chown "$(lg_server_user)": "$tmp"
cd "$tmp"    # a directory the server user may enter
exporters=()    # pids of the exporters this script started
pg_started=
cleanup() {
	local rc=$? p
	set +e
	trap '' PIPE    # a closed output must not stop the clean-up
	for p in "${exporters[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	exec 3>&- 4>&-
	if [ -n "$pg_started" ]; then
		lg_as_server_user pg_ctl -D "$tmp/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			lg_as_server_user pg_ctl -D "$tmp/data" -m immediate -w -t 30 stop >/dev/null 2>&1
	fi
	if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
		for f in "$tmp/server.log" "$tmp/exporter.log"; do
			[ -f "$f" ] && { echo "--- $f (last lines)"; tail -n 30 "$f"; }
		done
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Two distinct free loopback ports, chosen by the kernel.
read -r pgport export_port < <($PY -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')

lg_say "PostgreSQL $LG_PG_MAJOR on 127.0.0.1:$pgport, postgres_exporter on 127.0.0.1:$export_port"
lg_as_server_user initdb -D "$tmp/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$tmp/initdb.log" 2>&1 ||
	{ cat "$tmp/initdb.log"; exit 1; }
cat >"$tmp/data/pg_hba.conf" <<EOF
local all all                        trust
host  all lg_exporter 127.0.0.1/32   scram-sha-256
host  all all         127.0.0.1/32   trust
EOF
cat >>"$tmp/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pgport
unix_socket_directories = '$tmp'
max_connections = 30
fsync = off
shared_preload_libraries = 'pg_lambdaguard'
lambdaguard.database = 'postgres'
lambdaguard.roles = 'lambda'
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.naptime = 100
EOF
lg_as_server_user pg_ctl -D "$tmp/data" -l "$tmp/server.log" -w -t 60 start >/dev/null
pg_started=1

psql_admin() { "$LG_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pgport" -U postgres -d postgres "$@"; }
psql_lambda() { "$LG_PG_BIN/psql" -X -q -h 127.0.0.1 -p "$pgport" -U lambda -d postgres "$@"; }
value() { psql_admin -At -c "$1"; }
# Poll a boolean query until true (at most $2 seconds).
wait_for() {
	local q=$1 secs=${2:-30} i
	for i in $(seq 1 $((secs * 10))); do
		[ "$(value "$q")" = t ] && return 0
		sleep 0.1
	done
	return 1
}

exporter_password="exp-$RANDOM$RANDOM"
psql_admin <<EOF
CREATE EXTENSION pg_lambdaguard;
CREATE ROLE lambda LOGIN;
CREATE ROLE lg_exporter LOGIN PASSWORD '$exporter_password';
GRANT pg_monitor TO lg_exporter;
CREATE ROLE lg_outsider LOGIN;
CREATE FUNCTION public.quietly_no_timeout() RETURNS void LANGUAGE plpgsql AS
  \$\$ BEGIN PERFORM set_config('statement_timeout', '0', false); END \$\$;
EOF
check "the exporter's role is not a superuser and is a member of pg_monitor" \
	test "$(value "SELECT NOT rolsuper AND pg_has_role('lg_exporter', 'pg_monitor', 'MEMBER')
	               FROM pg_roles WHERE rolname = 'lg_exporter'")" = t

# --- the exporter: our own process, never the Debian service ----------------
start_exporter() {
	local user=$1 password=$2 port=$3 log=$4
	env DATA_SOURCE_NAME="postgresql://$user:$password@127.0.0.1:$pgport/postgres?sslmode=disable" \
		"$EXPORTER" --web.listen-address="127.0.0.1:$port" \
		--extend.query-path="$mon/queries.yaml" \
		--disable-default-metrics --disable-settings-metrics \
		--no-collector.database --no-collector.bgwriter >"$log" 2>&1 &
	exporters+=($!)
}
start_exporter lg_exporter "$exporter_password" "$export_port" "$tmp/exporter.log"
exporter_pid=${exporters[-1]}
url="http://127.0.0.1:$export_port/metrics"
up=
for i in $(seq 1 100); do
	if curl -fsS "$url" 2>/dev/null | grep -q '^lambdaguard_'; then up=1; break; fi
	kill -0 "$exporter_pid" 2>/dev/null || break
	sleep 0.1
done
check "postgres_exporter serves lambdaguard metrics on $url" test -n "$up"

# --- the workload ------------------------------------------------------------
lg_say "workload: an orphan, pinning events, a hidden state change"
# An orphan: a watched session idle in transaction past
# lambdaguard.idle_in_transaction_timeout (1 s); the worker terminates it.
mkfifo "$tmp/orphan.in"
PGAPPNAME=orphan-fn psql_lambda -f - <"$tmp/orphan.in" >"$tmp/orphan.out" 2>&1 &
orphan_psql=$!
exec 3>"$tmp/orphan.in"
echo "BEGIN; SELECT 1;" >&3
check "the worker terminates the orphan (a history row: verdict orphan, action terminate)" \
	wait_for "SELECT count(*) = 1 FROM lambdaguard.history WHERE verdict = 'orphan' AND action = 'terminate'" 30
exec 3>&-
wait "$orphan_psql" 2>/dev/null || true

# A session that pins: one statement of each of five reasons, and a setting
# changed inside a function (hidden from a proxy).  It stays open, idle.
mkfifo "$tmp/pinned.in"
PGAPPNAME=report-fn psql_lambda -f - <"$tmp/pinned.in" >"$tmp/pinned.out" 2>&1 &
exec 4>"$tmp/pinned.in"
cat >&4 <<'SQL'
SET work_mem = '8MB';
PREPARE by_id AS SELECT 1;
LISTEN lg_channel;
CREATE TEMP TABLE scratch (x int);
SELECT pg_advisory_lock(42);
SELECT public.quietly_no_timeout();
SQL
check "the pinning session's six events are recorded" \
	wait_for "SELECT count(*) = 6 FROM lambdaguard.pinning_events WHERE application_name = 'report-fn'" 30
check "the pinning session is watched, pinned and dirty; no orphan is left" \
	wait_for "SELECT count(*) FILTER (WHERE watched) = 1 AND count(*) FILTER (WHERE pinned) = 1
	                 AND count(*) FILTER (WHERE cardinality(dirty_reasons) > 0) = 1
	                 AND count(*) FILTER (WHERE verdict <> 'ok') = 0
	            FROM lambdaguard.sessions" 30

# Quiet from here on: a long naptime, so that the view holds still while the
# exporter is scraped (the worker still wakes when a session falls due).
psql_admin -c "ALTER SYSTEM SET lambdaguard.naptime = '1h'" -c "SELECT pg_reload_conf()" >/dev/null

# --- the scrape against the view --------------------------------------------
lg_say "scraping $url and comparing with lambdaguard.metrics"
# The workload's figures, each also read from PostgreSQL's own record of it
# where there is one (history, pinning_events).
cat >"$tmp/expect.json" <<'EOF'
{
  "lambdaguard_actions_total{action=terminate,verdict=orphan}": 1,
  "lambdaguard_sessions_watched{}": 1,
  "lambdaguard_sessions_pinned{}": 1,
  "lambdaguard_sessions_dirty{}": 1,
  "lambdaguard_orphans{}": 0,
  "lambdaguard_worker_up{}": 1,
  "lambdaguard_worker_brake_holding{}": 0,
  "lambdaguard_worker_errors_total{}": 0,
  "lambdaguard_history_write_errors_total{}": 0,
  "lambdaguard_pinning_events_total{reason=set}": 1,
  "lambdaguard_pinning_events_total{reason=prepared_statement}": 1,
  "lambdaguard_pinning_events_total{reason=listen}": 1,
  "lambdaguard_pinning_events_total{reason=temp_table}": 1,
  "lambdaguard_pinning_events_total{reason=advisory_lock}": 1,
  "lambdaguard_pinning_events_total{reason=set_config}": 1,
  "lambdaguard_pinning_events_total{reason=cursor}": 0,
  "lambdaguard_hidden_state_changes_total{reason=set_config}": 1,
  "lambdaguard_hidden_state_changes_total{reason=set}": 0
}
EOF
check "the history holds exactly one action: orphan, terminate" \
	test "$(value "SELECT string_agg(verdict || '/' || action, ',') FROM lambdaguard.history")" = orphan/terminate
check "pinning_events: one event per reason (set, prepared_statement, listen, temp_table, advisory_lock, set_config hidden)" \
	test "$(value "SELECT string_agg(reason || CASE WHEN hidden THEN '(hidden)' ELSE '' END, ',' ORDER BY reason)
	               FROM lambdaguard.pinning_events")" = \
	"advisory_lock,listen,prepared_statement,set,set_config(hidden),temp_table"
out=$tmp/check_scrape.out
$PY "$mon/test/check_scrape.py" "$mon/queries.yaml" "$url" "$tmp/expect.json" -- \
	"$LG_PG_BIN/psql" -h 127.0.0.1 -p "$pgport" -U postgres -d postgres >"$out" 2>&1 || true
cat "$out"
tally "$out"
grep -q '^# check_scrape: ' "$out" || not_ok "check_scrape.py ran to its end"

# --- a role without pg_monitor sees nothing ---------------------------------
# The grant is what makes it work: the same exporter as a role outside
# pg_monitor serves no lambdaguard metric and reports a scrape error.
read -r outsider_port < <($PY -c '
import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_exporter lg_outsider none "$outsider_port" "$tmp/outsider.log"
outsider_pid=${exporters[-1]}
got=
for i in $(seq 1 100); do
	got=$(curl -fsS "http://127.0.0.1:$outsider_port/metrics" 2>/dev/null | grep '^pg_exporter_last_scrape_error' || true)
	[ -n "$got" ] && break
	sleep 0.1
done
outsider_metrics=$(curl -fsS "http://127.0.0.1:$outsider_port/metrics" 2>/dev/null || true)
kill "$outsider_pid" 2>/dev/null || true
wait "$outsider_pid" 2>/dev/null || true
check "an exporter role outside pg_monitor: no lambdaguard metric, a scrape error" \
	test -n "$got" -a "${got##* }" = 1 -a -z "$(grep '^lambdaguard_' <<<"$outsider_metrics")"
check "its log names the cause: permission denied for schema lambdaguard" \
	grep -q 'permission denied for schema lambdaguard' "$tmp/outsider.log"

# --- alert rules and dashboard ----------------------------------------------
lg_say "promtool check rules, promtool test rules, the dashboard"
check "promtool check rules monitoring/alerts.yml" "$PROMTOOL" check rules "$mon/alerts.yml"
check "promtool test rules monitoring/alerts_test.yml" "$PROMTOOL" test rules "$mon/alerts_test.yml"
# The rule tests can fail: each of these changes to alerts.yml (a threshold,
# a window, a "for", a matcher) makes an alert fire or stay silent where
# alerts_test.yml says otherwise.
mkdir "$tmp/mutant"
cp "$mon/alerts_test.yml" "$tmp/mutant/"
for m in 's/> 5$/> 15/' 's/> 0.75 \* 40/>= 0.75 * 40/' 's/for: 1m/for: 0m/' 's/\[30m\]/[5m]/' \
	's/> 300/> 600/' 's/absent(lambdaguard_worker_scans_total)/absent(lambdaguard_worker_up)/' \
	's/_brake_holding == 1$/_brake_holding >= 0/' 's/, action="terminate"}/}/' \
	's/history_write_errors_total\[10m\]) > 0/history_write_errors_total[10m]) > 5/' \
	's/worker_errors_total\[10m\]/worker_errors_total[30m]/'; do
	sed "$m" "$mon/alerts.yml" >"$tmp/mutant/alerts.yml"
	if cmp -s "$mon/alerts.yml" "$tmp/mutant/alerts.yml"; then
		not_ok "alerts.yml changed by sed '$m'"
	elif "$PROMTOOL" test rules "$tmp/mutant/alerts_test.yml" >/dev/null 2>&1; then
		not_ok "promtool test rules fails on alerts.yml changed by sed '$m'"
	else
		ok "promtool test rules fails on alerts.yml changed by sed '$m'"
	fi
done

out=$tmp/check_exprs.out
$PY "$mon/test/check_exprs.py" "$mon/queries.yaml" "$mon/alerts.yml" "$mon/grafana-dashboard.json" \
	>"$out" 2>&1 || true
cat "$out"
tally "$out"
grep -q '^# check_exprs: ' "$out" || not_ok "check_exprs.py ran to its end"

# The checker can fail: a dashboard with a metric the exporter does not emit
# and a label it does not carry is refused, naming both.
jq '.panels[0].targets[0].expr = "rate(lambdaguard_no_such_metric_total{pid=\"1\"}[5m])"' \
	"$mon/grafana-dashboard.json" >"$tmp/bad-dashboard.json"
if $PY "$mon/test/check_exprs.py" "$mon/queries.yaml" "$mon/alerts.yml" "$tmp/bad-dashboard.json" \
	>"$tmp/bad.out" 2>&1; then
	not_ok "check_exprs.py refuses an unknown metric"
else
	check "check_exprs.py refuses an unknown metric and label, naming them" \
		grep -q "metric lambdaguard_no_such_metric_total is not emitted.*label 'pid'" "$tmp/bad.out"
fi
echo '{"panels": [' >"$tmp/broken.json"
if $PY "$mon/test/check_exprs.py" "$mon/queries.yaml" "$mon/alerts.yml" "$tmp/broken.json" \
	>"$tmp/broken.out" 2>&1; then
	not_ok "check_exprs.py refuses invalid JSON"
else
	check "check_exprs.py refuses invalid JSON, naming the file" grep -q 'broken.json.*not valid JSON' "$tmp/broken.out"
fi

finish
