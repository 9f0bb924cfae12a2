#!/usr/bin/env bash
# The managed edition beside the C edition, in one cluster: scan cost at 100
# and 1,000 idle connections, each beside a bare SELECT count(*) FROM
# pg_stat_activity timed the same way (and their ratio), and reaction time
# (an orphan falls due -> terminated).  A benchmark, not a test: it prints figures, never fails
# because the machine is slow.
#
#     bash managed/bench.sh          # about 3 minutes on 2 cores
#
# From a fresh Debian 12 machine, as root or with sudo: installs what is
# missing, builds and installs the C extension, and runs the server as the
# postgres OS user when invoked as root.  One cluster, two databases: "c"
# holds the C edition (preloaded, its worker connected there), "managed"
# the managed edition (installed by a non-superuser admin role).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/tools/common.sh"

lg_install_packages
work=$(lg_scratch_copy "$here")
lg_build_install "$work"

dir=$(mktemp -d /tmp/lambdaguard-mbench.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
port=
for p in $(seq 55600 55700); do
	if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then port=$p; break; fi
done
data=$dir/data
holder=
cleanup() {
	# the idle clients: runuser's pgbench child too, not only runuser
	pkill -f "$dir/idle.sql" 2>/dev/null || true
	[ -n "$holder" ] && kill "$holder" 2>/dev/null
	lg_as_server_user pg_ctl -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$dir" "$work"
}
trap cleanup EXIT

as_pg() { lg_as_server_user "$@"; }
sql() { psql -X -qAt -h 127.0.0.1 -p "$port" -U postgres "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

as_pg initdb -D "$data" -A trust -U postgres >/dev/null
cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 1100
shared_buffers = 256MB
fsync = off
log_line_prefix = '%m [%p] %a '
shared_preload_libraries = 'pg_lambdaguard'
lambdaguard.database = 'c'
lambdaguard.roles = 'app'
lambdaguard.naptime = 1000
lambdaguard.idle_in_transaction_timeout = 2000
lambdaguard.blocking_timeout = 0
lambdaguard.enabled = off
EOF
as_pg pg_ctl -D "$data" -l "$dir/server.log" -w start >/dev/null
sql -d postgres <<'EOF'
CREATE ROLE app LOGIN;
CREATE ROLE admin LOGIN;
GRANT pg_signal_backend, pg_monitor, pg_read_all_stats TO admin;
CREATE DATABASE c;
CREATE DATABASE managed;
GRANT CREATE ON DATABASE managed TO admin;
EOF
sql -d c -c "CREATE EXTENSION pg_lambdaguard" -c "CREATE TABLE t (id int PRIMARY KEY)" \
	-c "INSERT INTO t SELECT generate_series(1, 40)" -c "GRANT ALL ON t TO app"
sql -d managed -U admin -1 -v ON_ERROR_STOP=1 -f "$work/managed/pg_lambdaguard_managed.sql" >/dev/null
sql -d managed -U admin <<'EOF'
UPDATE lambdaguard.settings SET value = 'app' WHERE name = 'lambdaguard.roles';
UPDATE lambdaguard.settings SET value = '2s' WHERE name = 'lambdaguard.idle_in_transaction_timeout';
UPDATE lambdaguard.settings SET value = '0' WHERE name = 'lambdaguard.blocking_timeout';
UPDATE lambdaguard.settings SET value = '1s' WHERE name = 'lambdaguard.naptime';
EOF
sql -d managed -c "CREATE TABLE t (id int PRIMARY KEY)" -c "INSERT INTO t SELECT generate_series(1, 40)" -c "GRANT ALL ON t TO app"

lg_say "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), PostgreSQL $("$LG_PG_BIN/postgres" --version | awk '{print $3}')"

# median of 200 calls of a scan, in microseconds, timed inside one backend,
# each call in a transaction of its own (as run() scans: a fresh read of
# pg_stat_activity each time)
time_scan() { # db role call
	sql -d "$1" -U "$2" 2>&1 <<EOF | sed -n 's/.*NOTICE:  //p'
DO \$\$
DECLARE t0 timestamptz; a float8[] := '{}'; x int;
BEGIN
  FOR i IN 1..200 LOOP
    t0 := clock_timestamp();
    SELECT count(*) INTO x FROM $3;
    a := a || extract(epoch FROM clock_timestamp() - t0) * 1e6;
    COMMIT;
  END LOOP;
  RAISE NOTICE '%', (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY v)) FROM unnest(a) v);
END \$\$;
EOF
}

# the same for several calls taken in turn (call 1, call 2, ..., call 1, ...),
# so that a change in the machine's load falls on each alike: their medians,
# space-separated
time_turns() { # db role call...
	local db=$1 role=$2 body="" j=0 c
	shift 2
	for c in "$@"; do
		j=$((j + 1))
		body="$body
    t0 := clock_timestamp();
    SELECT count(*) INTO x FROM $c;
    a := a || extract(epoch FROM clock_timestamp() - t0) * 1e6;
    k := k || $j;
    COMMIT;"
	done
	sql -d "$db" -U "$role" 2>&1 <<EOF | sed -n 's/.*NOTICE:  //p'
DO \$\$
DECLARE t0 timestamptz; a float8[] := '{}'; k int[] := '{}'; x int;
BEGIN
  FOR i IN 1..200 LOOP$body
  END LOOP;
  RAISE NOTICE '%', (SELECT string_agg(m::text, ' ' ORDER BY j)
                       FROM (SELECT j, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY v)) AS m
                               FROM unnest(a, k) u(v, j) GROUP BY j) s);
END \$\$;
EOF
}

lg_say "1. scan cost with idle connections of the watched role (median of 200 scans each)"
printf '\\sleep 600 s\n' >"$dir/idle.sql"
chmod 644 "$dir/idle.sql"
declare -A fig
for n in 100 1000; do
	as_pg pgbench -n -c "$n" -j 20 -T 600 -h 127.0.0.1 -p "$port" -U app -f "$dir/idle.sql" managed >/dev/null 2>&1 &
	holder=$!
	for _ in $(seq 1 300); do
		[ "$(sql -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'")" -ge "$n" ] && break
		sleep 0.2
	done
	# the floor: the bare read of pg_stat_activity, timed the same way,
	# beside the managed scan (the preview) and run()'s scan (plan(false))
	sleep 2
	c_scan=$(time_scan c postgres "lambdaguard.scan(true)")
	read -r b_scan m_scan r_scan < <(time_turns managed admin "pg_stat_activity" "lambdaguard.scan(true)" \
		"lambdaguard.plan(false)")
	fig[c$n]=$c_scan
	fig[b$n]=$b_scan
	fig[m$n]=$m_scan
	fig[r$n]=$r_scan
	fig[x$n]=$(awk -v m="$m_scan" -v b="$b_scan" 'BEGIN {printf "%.2f", m / b}')
	# one watched orphan that is due: the managed scan then reads pg_locks too
	mkfifo "$dir/o.in"
	exec 5<>"$dir/o.in"
	echo "BEGIN; UPDATE t SET id = id WHERE id = 1; SELECT 1;" >&5
	psql -X -q -h 127.0.0.1 -p "$port" -U app -d managed <&5 >/dev/null 2>&1 &
	opid=$!
	sleep 2.5
	m_due=$(time_scan managed admin "lambdaguard.scan(true)")
	fig[d$n]=$m_due
	echo '\q' >&5
	exec 5>&-
	wait "$opid" 2>/dev/null || true
	rm -f "$dir/o.in"
	echo "   $n idle connections: C edition scan(true) ${c_scan} us; SELECT count(*) FROM pg_stat_activity ${b_scan} us;" \
		"managed scan(true) ${m_scan} us (${fig[x$n]} x the bare read), plan(false) ${r_scan} us," \
		"${m_due} us with one orphan due (pg_locks read)"
	# pgbench sleeps in \sleep: stop it (runuser passes the signal on)
	pkill -f "$dir/idle.sql" 2>/dev/null || true
	kill "$holder" 2>/dev/null || true
	wait "$holder" 2>/dev/null || true
	sql -d postgres -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'app'" >/dev/null
	holder=
	for _ in $(seq 1 100); do
		[ "$(sql -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'")" -eq 0 ] && break
		sleep 0.2
	done
done

lg_say "2. reaction time: 20 orphans, idle_in_transaction_timeout 2 s, naptime 1 s"
orphans() { # label db
	local label=$1 db=$2 i pids=()
	: >"$dir/$label.starts"
	for i in $(seq 1 20); do
		(
			mkfifo "$dir/$label.$i.in"
			exec 5<>"$dir/$label.$i.in"
			echo "BEGIN; UPDATE t SET id = id WHERE id = $i; SELECT pg_backend_pid(), extract(epoch FROM clock_timestamp());" >&5
			psql -X -qAt -F ' ' -h 127.0.0.1 -p "$port" -U app -d "$db" <&5 >>"$dir/$label.starts" 2>/dev/null
		) &
		pids+=($!)
		sleep 0.13
	done
	sleep 4.5
	for i in $(seq 1 20); do echo "\\q" >"$dir/$label.$i.in" 2>/dev/null || true; done
	wait "${pids[@]}" 2>/dev/null || true
}
# per orphan: the server log's time of its FATAL line minus the moment it fell due
reaction() {
	local label=$1
	while read -r pid t0; do
		line=$(grep "\[$pid\] .*FATAL:  terminating connection due to administrator command" "$dir/server.log" | head -1 || true)
		[ -n "$line" ] || continue
		t1=$(date -d "$(echo "$line" | awk '{print $1" "$2" "$3}')" +%s.%N)
		awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.0f\n", (a - b - 2) * 1000}'
	done <"$dir/$label.starts"
}
sql -d postgres -c "ALTER SYSTEM SET lambdaguard.enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1.5
orphans c c
sql -d postgres -c "ALTER SYSTEM SET lambdaguard.enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
reaction c >"$dir/c.ms"
# the managed edition: the procedure pg_cron starts every minute, run by hand
# (a pg_cron run is the same CALL) and started again when its minute is over,
# as pg_cron does; it scans every naptime
(
	while [ ! -e "$dir/stop" ]; do
		sql -d managed -U admin -c "CALL lambdaguard.run()" >/dev/null 2>&1 || sleep 0.1
	done
) &
runner=$!
sleep 1
orphans m managed
reaction m >"$dir/m.ms"
touch "$dir/stop"
sql -d postgres -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'CALL lambdaguard.run()'" >/dev/null
wait "$runner" 2>/dev/null || true
echo "   C edition worker: $(wc -l <"$dir/c.ms") orphans, ms after due: $(sort -n "$dir/c.ms" | tr '\n' ' ')"
echo "   managed run(): $(wc -l <"$dir/m.ms") orphans, ms after due: $(sort -n "$dir/m.ms" | tr '\n' ' ')"

lg_say "results"
printf '| figure | C edition | managed edition |\n|---|---|---|\n'
printf '| bare SELECT count(*) FROM pg_stat_activity, 100 / 1000 idle connections | | %s us / %s us |\n' "${fig[b100]}" "${fig[b1000]}"
printf '| scan(true), 100 idle connections | %s us | %s us (%s x the bare read) |\n' "${fig[c100]}" "${fig[m100]}" "${fig[x100]}"
printf '| scan(true), 1000 idle connections | %s us | %s us (%s x the bare read) |\n' "${fig[c1000]}" "${fig[m1000]}" "${fig[x1000]}"
printf "| run()'s scan, plan(false), 100 / 1000 idle connections | | %s us / %s us |\n" "${fig[r100]}" "${fig[r1000]}"
printf '| scan(true), 1000 idle connections + 1 orphan due (pg_locks read) | | %s us |\n' "${fig[d1000]}"
printf '| reaction after due, 20 orphans, naptime 1 s: median, max | %s ms, %s ms | %s ms, %s ms |\n' \
	"$(median <"$dir/c.ms")" "$(sort -n "$dir/c.ms" | tail -1)" "$(median <"$dir/m.ms")" "$(sort -n "$dir/m.ms" | tail -1)"
