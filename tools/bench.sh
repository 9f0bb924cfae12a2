#!/usr/bin/env bash
# pg_lambdaguard's benchmark: every figure measured side by side in one run,
# printed beside its goal.  A benchmark, not a test: it never fails because
# the machine is slow.
#
#     bash tools/bench.sh            # about 15 minutes on 2 cores
#     BENCH_QUICK=1 bash tools/bench.sh   # a few minutes, smaller samples
#     BENCH_ONLY="1b 2" bash tools/bench.sh  # some sections only
#     BENCH_ONLY=blocking bash tools/bench.sh # views read during a lock pile-up
#
# From a fresh Debian 12 machine, as root or with sudo: installs what is
# missing, builds and installs the extension, and runs every server as the
# postgres OS user when invoked as root.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/tools/common.sh"

lg_install_packages valgrind procps
work=$(lg_scratch_copy "$here")
lg_build_install "$work"

quick=${BENCH_QUICK:-0}
only=${BENCH_ONLY:-}
want() { [ -z "$only" ] || [[ " $only " == *" $1 "* ]]; }
pairs=5; secs=10; stmts=20000; scans_long=10000
if [ "$quick" = 1 ]; then pairs=3; secs=3; stmts=5000; scans_long=2000; fi

dir=$(mktemp -d /tmp/lambdaguard-bench.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
port=
for p in $(seq 55432 55532); do
	if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then port=$p; break; fi
done
data=$dir/data
holders=()
cleanup() {
	pkill -f "$dir/idle.sql" 2>/dev/null || true
	for h in "${holders[@]}"; do kill "$h" 2>/dev/null || true; done
	lg_as_server_user pg_ctl -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$dir" "$work"
}
trap cleanup EXIT

as_pg() { lg_as_server_user "$@"; }
sql() { psql -X -qAt -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
minmax() { sort -g | awk 'NR==1{min=$1} {max=$1} END {print min" .. "max}'; }

# start [preload] [extra -c settings...]
start() {
	local preload=$1; shift
	local opts="-c shared_preload_libraries=$preload"
	for o in "$@"; do opts="$opts -c $o"; done
	as_pg pg_ctl -D "$data" -l "$dir/server.log" -o "$opts" -w start >/dev/null
}
stop() { as_pg pg_ctl -D "$data" -m fast -w stop >/dev/null; }

as_pg initdb -D "$data" -A trust -U postgres >/dev/null
cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 1100
shared_buffers = 256MB
log_line_prefix = '%m [%p] '
fsync = off
lambdaguard.track_pinning = all
lambdaguard.roles = '*'
EOF

results=$dir/results.md
: >"$results"
row() { printf '| %s | %s | %s |\n' "$1" "$2" "$3" | tee -a "$results"; }

lg_say "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), PostgreSQL $("$LG_PG_BIN/postgres" --version | awk '{print $3}')"

start ""
sql -c "CREATE ROLE app LOGIN" -c "CREATE DATABASE bench"
as_pg pgbench -i -q -s 10 -h 127.0.0.1 -p "$port" -U postgres bench >/dev/null 2>&1
sql -d bench -c "CREATE TABLE mix (id int PRIMARY KEY, v int)" -c "INSERT INTO mix SELECT g, 0 FROM generate_series(1, 1000) g"
sql -d bench -c "GRANT SELECT, UPDATE ON ALL TABLES IN SCHEMA public TO app"
stop

########################################################################
if want 1a; then
lg_say "1a. hook overhead, pgbench TPS: preloaded / not loaded, $pairs alternating pairs of ${secs}s"
cat >"$dir/setmix.sql" <<'EOF'
\set aid random(1, 1000000)
BEGIN;
SET LOCAL work_mem = '8MB';
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
COMMIT;
SET statement_timeout = '30s';
EOF
chmod 644 "$dir/setmix.sql"
tps() {
	as_pg pgbench -n -c 2 -j 2 -T "$secs" -h 127.0.0.1 -p "$port" -U postgres "$@" bench 2>/dev/null |
		awk '/^tps/ {print $3; exit}'
}
for mode in "-S" "-S -M prepared" "-f $dir/setmix.sql"; do
	: >"$dir/ratios"
	for i in $(seq 1 "$pairs"); do
		start pg_lambdaguard; with=$(tps $mode); stop
		start ""; without=$(tps $mode); stop
		awk -v a="$with" -v b="$without" 'BEGIN {printf "%.4f\n", a / b}' >>"$dir/ratios"
	done
	echo "   pgbench $mode: ratios $(tr '\n' ' ' <"$dir/ratios")"
	goal=">= 0.99"; [ "${mode#-f}" != "$mode" ] && goal="(information)"
	name="pgbench ${mode/$dir\//} TPS ratio"
	row "$name" "median $(median <"$dir/ratios"), range $(minmax <"$dir/ratios")" "$goal"
done
fi

########################################################################
if want 1b; then
lg_say "1b. instructions per statement (callgrind, postgres --single, $stmts statements)"
gen() {
	local kind=$1 n=$2 i
	for ((i = 1; i <= n; i++)); do
		case $kind in
			select1) echo "SELECT 1;" ;;
			pgbench) echo "SELECT abalance FROM pgbench_accounts WHERE aid = $(( (i * 7919) % 1000000 + 1 ));" ;;
			mix)
				case $((i % 4)) in
					0) echo "BEGIN;" ;;
					1) echo "UPDATE mix SET v = v + 1 WHERE id = $((i % 1000 + 1));" ;;
					2) echo "SELECT count(*) FROM mix WHERE id < $((i % 100));" ;;
					3) echo "COMMIT;" ;;
				esac ;;
			setvar) echo "SET work_mem = '$((4096 + i % 100))kB';" ;;
		esac
	done
}
instr() {
	local preload=$1 script=$2 out
	out=$(as_pg valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		"$LG_PG_BIN/postgres" --single -D "$data" -c "shared_preload_libraries=$preload" \
		-c lambdaguard.track_pinning=all -c "lambdaguard.roles=*" bench <"$script" 2>&1 >/dev/null |
		awk '/Collected/ {print $4}')
	echo "$out"
}
for kind in select1 pgbench mix setvar; do
	gen "$kind" "$stmts" >"$dir/$kind.sql"
	gen "$kind" 0 >"$dir/empty.sql"
	chmod 644 "$dir/$kind.sql" "$dir/empty.sql"
	w=$(instr pg_lambdaguard "$dir/$kind.sql"); w0=$(instr pg_lambdaguard "$dir/empty.sql")
	o=$(instr "" "$dir/$kind.sql"); o0=$(instr "" "$dir/empty.sql")
	per_w=$(awk -v a="$w" -v b="$w0" -v n="$stmts" 'BEGIN {printf "%.0f", (a - b) / n}')
	per_o=$(awk -v a="$o" -v b="$o0" -v n="$stmts" 'BEGIN {printf "%.0f", (a - b) / n}')
	ratio=$(awk -v a="$per_w" -v b="$per_o" 'BEGIN {printf "%.4f", a / b}')
	echo "   $kind: $per_w instructions per statement with, $per_o without"
	goal="<= 1.01"; [ "$kind" = setvar ] && goal="(a pinning statement: information)"
	row "instructions per statement, $kind" "$per_w / $per_o = $ratio" "$goal"
done
fi

########################################################################
if want 2; then
lg_say "2. scan cost with idle client connections (100, 1,000, 5,000); the sessions view beside pg_stat_activity"
cat >"$dir/idle.sql" <<'EOF'
\sleep 300 s
EOF
chmod 644 "$dir/idle.sql"
peer_sql="SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND state IN ('idle in transaction', 'idle in transaction (aborted)') AND state_change < now() - interval '60 seconds' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
# time_view SQL: microseconds per read of a count over SQL, 200 reads, each
# with a fresh statistics snapshot
time_view() {
	sql 2>&1 <<EOF | sed -n 's/.*NOTICE:  //p'
DO \$\$
DECLARE t0 timestamptz; n int := 200; x int;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP
    PERFORM pg_stat_clear_snapshot();
    SELECT count(*) INTO x FROM ($1) s;
  END LOOP;
  RAISE NOTICE '%', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / n);
END \$\$;
EOF
}
for n in 100 1000 5000; do
	[ "$quick" = 1 ] && [ "$n" = 5000 ] && continue
	# max_connections as a server for that many clients has it: the scan
	# walks every backend slot
	start pg_lambdaguard "lambdaguard.roles=app" "lambdaguard.naptime=100" "max_connections=$((n + 100))"
	sql -c "CREATE EXTENSION IF NOT EXISTS pg_lambdaguard"
	# 5,000 connections need as many descriptors in pgbench
	as_pg bash -c 'ulimit -n 20000 2>/dev/null || true; exec "$@"' pgbench pgbench -n -c "$n" -j 20 -T 300 -h 127.0.0.1 -p "$port" -U app -f "$dir/idle.sql" bench >/dev/null 2>&1 &
	holders+=($!)
	for _ in $(seq 1 600); do
		[ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'")" -ge "$n" ] && break
		sleep 0.2
	done
	# 40 scans sampled by one session that sleeps in between: a client
	# started for each sample would empty the caches the next scan needs
	sql 2>&1 <<'EOF' | sed -n 's/.*NOTICE:  //p' >"$dir/scan_us"
DO $$
DECLARE v bigint;
BEGIN
  FOR i IN 1..40 LOOP
    PERFORM pg_sleep(0.11);
    SELECT last_scan_us INTO v FROM lambdaguard.worker;
    RAISE NOTICE '%', v;
  END LOOP;
END $$;
EOF
	ours=$(median <"$dir/scan_us")
	peer=$(sql 2>&1 <<EOF | sed -n 's/.*NOTICE:  //p'
DO \$\$
DECLARE t0 timestamptz; n int := 200; x int;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP
    PERFORM pg_stat_clear_snapshot();
    SELECT count(*) INTO x FROM ($peer_sql) s;
  END LOOP;
  RAISE NOTICE '%', round(extract(epoch FROM clock_timestamp() - t0) * 1e6 / n);
END \$\$;
EOF
	)
	seen=$(sql -c "SELECT sessions_seen FROM lambdaguard.worker")
	echo "   $n idle connections ($seen seen): worker scan ${ours} us (median of 40), peers' SQL over pg_stat_activity ${peer} us"
	goal="(information)"; [ "$n" = 1000 ] && goal="<= 50 us"
	row "worker scan, $n idle connections" "$ours us" "$goal"
	goal="(information)"; [ "$n" = 1000 ] && goal=">= 20x"
	row "peers' SQL scan, $n idle connections" "$peer us; ours is $(awk -v a="$peer" -v b="$ours" 'BEGIN {printf "%.0f", a / b}')x cheaper" "$goal"
	view=$(time_view "SELECT pid FROM lambdaguard.sessions")
	psa=$(time_view "SELECT pid FROM pg_stat_activity")
	echo "   $n idle connections: SELECT count(*) FROM lambdaguard.sessions ${view} us, FROM pg_stat_activity ${psa} us"
	goal="(information)"; [ "$n" = 1000 ] && goal="<= pg_stat_activity's"
	row "sessions view read, $n idle connections (pg_stat_activity: $psa us)" "$view us" "$goal"
	pkill -f "$dir/idle.sql" 2>/dev/null || true
	wait "${holders[-1]}" 2>/dev/null || true
	for _ in $(seq 1 100); do
		[ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'")" -eq 0 ] && break
		sleep 0.2
	done
	stop
done
fi

########################################################################
# orphans and reaction(): for sections 3 and 3b
orphans() {
	# 20 sessions that begin a transaction, note the time and go silent
	local label=$1 gap=${2:-0.13} i
	: >"$dir/$label.starts"
	for i in $(seq 1 20); do
		(
			mkfifo "$dir/$label.$i.in"
			exec 5<>"$dir/$label.$i.in"
			echo "BEGIN; UPDATE mix SET v = v WHERE id = $i; SELECT pg_backend_pid(), extract(epoch FROM clock_timestamp());" >&5
			psql -X -qAt -F ' ' -h 127.0.0.1 -p "$port" -U app -d bench <&5 >>"$dir/$label.starts" 2>/dev/null
		) &
		sleep "$gap"
	done
	sleep 4
	for i in $(seq 1 20); do echo "\\q" >"$dir/$label.$i.in" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
reaction() {
	# per pid: server log time of its FATAL line minus its last statement
	local label=$1 pattern=$2
	while read -r pid t0; do
		line=$(grep "\[$pid\] FATAL:  $pattern" "$dir/server.log" | head -1 || true)
		[ -n "$line" ] || continue
		t1=$(date -d "$(echo "$line" | awk '{print $1" "$2" "$3}')" +%s.%N)
		awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.0f\n", (a - b) * 1000}'
	done <"$dir/$label.starts"
}
if want 3; then
lg_say "3. reaction time: 20 orphans, timeout 2 s, naptime 1 s; and PostgreSQL's own timeout"
start pg_lambdaguard "lambdaguard.roles=app" "lambdaguard.naptime=1000" \
	"lambdaguard.idle_in_transaction_timeout=2000" "lambdaguard.blocking_timeout=0"
sql -c "CREATE EXTENSION IF NOT EXISTS pg_lambdaguard"
orphans guard
reaction guard "terminating connection due to administrator command" >"$dir/guard.ms"
stop
start "" "idle_in_transaction_session_timeout=2000"
orphans core
reaction core "terminating connection due to idle-in-transaction timeout" >"$dir/core.ms"
stop
echo "   pg_lambdaguard: $(wc -l <"$dir/guard.ms") orphans, ms: $(sort -n "$dir/guard.ms" | tr '\n' ' ')"
echo "   PostgreSQL's idle_in_transaction_session_timeout: $(wc -l <"$dir/core.ms") orphans, ms: $(sort -n "$dir/core.ms" | tr '\n' ' ')"
row "reaction time, 20 orphans, timeout 2 s, naptime 1 s" "median $(median <"$dir/guard.ms") ms, max $(sort -n "$dir/guard.ms" | tail -1) ms" "max <= 2050 ms"
row "PostgreSQL's idle_in_transaction_session_timeout = 2s, same way" "median $(median <"$dir/core.ms") ms, max $(sort -n "$dir/core.ms" | tail -1) ms" "(reference)"
fi

########################################################################
if want 3b; then
lg_say "3b. a burst: 20 orphans falling due at once, fsync and synchronous_commit on, max_terminations 20"
# every history row is committed before its signal; the rows of one scan are
# committed together, so the twentieth signal does not wait for 19 flushes
start pg_lambdaguard "lambdaguard.roles=app" "lambdaguard.naptime=1000" \
	"lambdaguard.idle_in_transaction_timeout=2000" "lambdaguard.blocking_timeout=0" \
	"lambdaguard.max_terminations=20" "fsync=on" "synchronous_commit=on"
sql -c "CREATE EXTENSION IF NOT EXISTS pg_lambdaguard"
orphans burst 0
reaction burst "terminating connection due to administrator command" |
	awk '{print $1 - 2000}' >"$dir/burst.ms"
stop
echo "   $(wc -l <"$dir/burst.ms") orphans, ms after each one's due time: $(sort -n "$dir/burst.ms" | tr '\n' ' ')"
row "burst of 20 orphans, fsync on: signal after its due time" "median $(median <"$dir/burst.ms") ms, max $(sort -n "$dir/burst.ms" | tail -1) ms" "max <= 10 ms"
fi

########################################################################
if want 4; then
lg_say "4. memory: shared memory requested, worker's private memory"
for mc in 100 1000; do
	for me in 1000 10000; do
		start pg_lambdaguard "max_connections=$mc" "lambdaguard.max_events=$me"
		bytes=$(sql -c "SELECT sum(allocated_size) FROM pg_shmem_allocations WHERE name LIKE 'pg_lambdaguard%'")
		stop
		kb=$(awk -v b="$bytes" 'BEGIN {printf "%.0f", b / 1024}')
		goal="(information)"; [ "$mc" = 1000 ] && [ "$me" = 10000 ] && goal="<= 2048 kB"
		row "shared memory, max_connections $mc, max_events $me" "$kb kB" "$goal"
	done
done
start pg_lambdaguard "lambdaguard.roles=app" "lambdaguard.naptime=10"
sql -c "CREATE EXTENSION IF NOT EXISTS pg_lambdaguard"
rss_at() {
	local target=$1 pid
	for _ in $(seq 1 100000); do
		[ "$(sql -c "SELECT scans FROM lambdaguard.worker")" -ge "$target" ] && break
		sleep 0.5
	done
	pid=$(sql -c "SELECT pid FROM lambdaguard.worker")
	awk '/RssAnon/ {print $2}' "/proc/$pid/status"
}
r1=$(rss_at 100)
r2=$(rss_at "$scans_long")
stop
row "worker private memory (RssAnon) after 100 and $scans_long scans" "$r1 kB, $r2 kB" "no growth"
fi

########################################################################
if want 5; then
lg_say "5. event cost: one pinning statement, from a loop of 100000"
loop="DO \$\$ DECLARE t0 timestamptz := clock_timestamp(); BEGIN FOR i IN 1..100000 LOOP EXECUTE 'SET work_mem = ''4MB'''; END LOOP; RAISE NOTICE '%', extract(epoch FROM clock_timestamp() - t0); END \$\$;"
: >"$dir/ev_with"; : >"$dir/ev_without"
for i in $(seq 1 3); do
	start pg_lambdaguard "lambdaguard.roles=*"
	sql -c "$loop" 2>&1 | sed -n 's/.*NOTICE:  //p' >>"$dir/ev_with"
	stop
	start ""
	sql -c "$loop" 2>&1 | sed -n 's/.*NOTICE:  //p' >>"$dir/ev_without"
	stop
done
tw=$(median <"$dir/ev_with"); to=$(median <"$dir/ev_without")
row "one SET x (pinning, hidden in a DO loop)" "$(awk -v a="$tw" -v b="$to" 'BEGIN {printf "%.2f us added (%.2f us with, %.2f us without)", (a - b) * 1e6 / 100000, a * 1e6 / 100000, b * 1e6 / 100000}')" "(information)"
fi

########################################################################
if want blocking; then
lg_say "blocking. reading the views with one orphan and N sessions waiting on its row lock (median of 20 reads)"
# the worker is switched off so that the orphan stays; the views still judge
start pg_lambdaguard "lambdaguard.roles=app" "lambdaguard.enabled=off"
sql -c "CREATE EXTENSION IF NOT EXISTS pg_lambdaguard"
echo "UPDATE mix SET v = v WHERE id = 1;" >"$dir/waiter.sql"
chmod 644 "$dir/waiter.sql"
# time_read SQL: median ms of 20 reads, each with a fresh statistics snapshot
time_read() {
	sql 2>&1 <<EOF2 | sed -n 's/.*NOTICE:  //p'
DO \$\$
DECLARE t0 timestamptz; r record; ms float8[] := '{}';
BEGIN
  FOR i IN 1..20 LOOP
    PERFORM pg_stat_clear_snapshot();
    t0 := clock_timestamp();
    EXECUTE \$q\$$1\$q\$ INTO r;
    ms := ms || extract(epoch FROM clock_timestamp() - t0)::float8 * 1000;
  END LOOP;
  RAISE NOTICE '%', (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY m)::numeric, 3) FROM unnest(ms) m);
END \$\$;
EOF2
}
# the orphan: a psql fed through a fifo, which "\q" ends
mkfifo "$dir/holder.in"
(
	exec 5<>"$dir/holder.in"
	exec psql -X -q -h 127.0.0.1 -p "$port" -U app -d bench <&5 >/dev/null 2>&1
) &
holders+=($!)
echo "BEGIN; UPDATE mix SET v = v WHERE id = 1;" >"$dir/holder.in"
for _ in $(seq 1 100); do
	[ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state = 'idle in transaction'")" -ge 1 ] && break
	sleep 0.2
done
have=0
for n in 0 50 200; do
	if [ "$n" -gt "$have" ]; then
		as_pg pgbench -n -c $((n - have)) -j 10 -T 600 -h 127.0.0.1 -p "$port" -U postgres -f "$dir/waiter.sql" bench >/dev/null 2>&1 &
		holders+=($!)
		have=$n
	fi
	for _ in $(seq 1 300); do
		[ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")" -ge "$n" ] && break
		sleep 0.2
	done
	waiting=$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
	blocking=$(sql -c "SELECT max(blocking) FROM lambdaguard.sessions")
	ours=$(time_read "SELECT count(*) FROM lambdaguard.sessions")
	peers=$(time_read "SELECT count(*), count(pg_blocking_pids(pid)) FROM pg_stat_activity")
	alone=$(time_read "SELECT count(*) FROM pg_stat_activity")
	echo "   $waiting waiting (lambdaguard.sessions.blocking = $blocking): lambdaguard.sessions $ours ms, pg_stat_activity with pg_blocking_pids() $peers ms, pg_stat_activity alone $alone ms"
	goal="(information)"; [ "$n" = 200 ] && goal="<= pg_stat_activity alone"
	row "count(*) FROM lambdaguard.sessions, 1 orphan and $n sessions waiting on it" "$ours ms" "$goal"
	row "count(*), count(pg_blocking_pids(pid)) FROM pg_stat_activity, same" "$peers ms" "(the peers' approach)"
	row "count(*) FROM pg_stat_activity, same" "$alone ms" "(reference)"
done
# the orphan quits; the waiters' backends are ended from the server, so that
# their pgbench runs end (every client aborted)
echo '\q' >"$dir/holder.in"
for _ in $(seq 1 100); do
	left=$(sql -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pgbench' AND usename = 'postgres'")
	[ "$left" -eq 0 ] && break
	sleep 0.2
done
for h in "${holders[@]}"; do wait "$h" 2>/dev/null || true; done
holders=()
stop
fi

lg_say "results"
echo "| measure | figure | goal |"
echo "|---|---|---|"
cat "$results"
