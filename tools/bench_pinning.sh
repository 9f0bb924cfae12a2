#!/usr/bin/env bash
# Instructions per statement of the pinning hooks, with callgrind on
# "postgres --single": each workload runs N statements with the library
# preloaded and without it, and once with no statement, so that start-up and
# shut-down (fixed costs) are subtracted.
#
#     bash tools/bench_pinning.sh [N]          # default 3000
#
# From a fresh Debian 12 machine, as root or with sudo: builds and installs
# the extension for PG_CONFIG (default Debian's 15) from a scratch copy,
# unless LG_BENCH_INSTALLED=1 (measure what is installed).  Prints one line
# per workload; the targets: statements that change no state within
# 0.5% of the library not loaded, the advisory-lock polling workload within
# 1%, a pinning event at most 1,000 instructions.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-3000}
case $n in '' | *[!0-9]*) echo "usage: bash tools/bench_pinning.sh [N]" >&2; exit 2 ;; esac
. "$here/tools/common.sh"

lg_install_debian valgrind
if [ "${LG_BENCH_INSTALLED:-0}" != 1 ]; then
	lg_install_packages
	work=$(lg_scratch_copy "$here")
	lg_build_install "$work"
	rm -rf "$work"
fi

dir=$(mktemp -d /tmp/lg_bench_pinning.XXXXXX)
chmod 755 "$dir"
trap 'rm -rf "$dir"' EXIT
data=$dir/data
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
lg_as_server_user "$LG_PG_BIN/initdb" -D "$data" -A trust -U postgres >/dev/null

single() {
	lg_as_server_user "$LG_PG_BIN/postgres" --single -D "$data" "$@" postgres
}
single <<'EOF' >/dev/null
CREATE TABLE acc (id int PRIMARY KEY, v int)
INSERT INTO acc SELECT g, 0 FROM generate_series(1, 10000) g
CREATE FUNCTION f_noop(n int) RETURNS int LANGUAGE plpgsql AS 'DECLARE x int; BEGIN x := n + 1; RETURN x; END'
VACUUM ANALYZE acc
EOF

gen() {
	local kind=$1 count=$2 i
	for ((i = 1; i <= count; i++)); do
		case $kind in
			select1) echo "SELECT 1" ;;
			point) echo "SELECT v FROM acc WHERE id = $(((i * 7919) % 10000 + 1))" ;;
			mix)
				case $((i % 4)) in
					0) echo "BEGIN" ;;
					1) echo "UPDATE acc SET v = v + 1 WHERE id = $((i % 1000 + 1))" ;;
					2) echo "SELECT count(*) FROM acc WHERE id < $((i % 100))" ;;
					3) echo "COMMIT" ;;
				esac ;;
			plpgsql) echo "SELECT f_noop($i)" ;;
			advisory)
				if ((i % 2)); then echo "SELECT pg_try_advisory_lock($((i % 50)))"
				else echo "SELECT pg_advisory_unlock($(((i - 1) % 50)))"; fi ;;
			setvar) echo "SET work_mem = '$((4096 + i % 100))kB'" ;;
			# select1 with a sqlcommenter comment: a request id, a trace and a
			# deadline (past: counted from now), each invocation's own
			comment) printf "SELECT 1 /*lambdaguard_deadline='1733390523456',request_id='req-%06d',traceparent='00-0af7651916cd43dd8448eb211c%06d-b7ad6b7169203331-01'*/\n" "$i" "$i" ;;
		esac
	done
}
# Each run starts from the same data directory: the UPDATEs of one run
# would otherwise change what the next one prunes and scans.
lg_as_server_user cp -a "$data" "$dir/template"
instr() {
	local preload=$1 script=$2
	lg_as_server_user rm -rf "$data"
	lg_as_server_user cp -a "$dir/template" "$data"
	lg_as_server_user valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		"$LG_PG_BIN/postgres" --single -D "$data" -c "shared_preload_libraries=$preload" \
		-c lambdaguard.track_pinning=all postgres <"$script" 2>&1 >/dev/null |
		awk '/Collected/ {print $4}'
}

echo "instructions per statement (callgrind, postgres --single, $n statements, fixed costs subtracted)"
printf '%-10s %12s %12s %9s %10s\n' workload with without ratio difference
: >"$dir/empty.sql"
chmod 644 "$dir/empty.sql"
o0=$(instr "" "$dir/empty.sql")
w0=$(instr pg_lambdaguard "$dir/empty.sql")
for kind in select1 point mix plpgsql advisory setvar comment; do
	gen "$kind" "$n" >"$dir/$kind.sql"
	chmod 644 "$dir/$kind.sql"
	w=$(instr pg_lambdaguard "$dir/$kind.sql")
	o=$(instr "" "$dir/$kind.sql")
	awk -v k="$kind" -v w="$w" -v w0="$w0" -v o="$o" -v o0="$o0" -v n="$n" 'BEGIN {
		pw = (w - w0) / n; po = (o - o0) / n
		printf "%-10s %12.0f %12.0f %9.4f %+10.0f\n", k, pw, po, pw / po, pw - po }'
done

# The floor of the nesting rule (a level saved and restored with PG_TRY
# around ExecutorRun and ExecutorFinish, as pg_stat_statements does):
# auto_explain, preloaded and doing nothing else, keeps exactly such a level.
a0=$(instr auto_explain "$dir/empty.sql")
a=$(instr auto_explain "$dir/select1.sql")
o=$(instr "" "$dir/select1.sql")
awk -v a="$a" -v a0="$a0" -v o="$o" -v o0="$o0" -v n="$n" 'BEGIN {
	pa = (a - a0) / n; po = (o - o0) / n
	printf "reference: auto_explain preloaded (PG_TRY nesting only), select1: %.0f vs %.0f, %+.0f (%.2f%%)\n",
		pa, po, pa - po, (pa - po) * 100 / po }'

# The check every statement without a comment pays (lg_comment_maybe,
# inlined into the hooks: callgrind attributes its lines to
# include/lg_context.h), and the reading of a comment (lg_invocation_comment,
# a function of its own), per statement of the select1 and comment workloads.
percall() {
	local script=$1 out=$dir/callgrind.out
	lg_as_server_user rm -rf "$data" "$out"
	lg_as_server_user cp -a "$dir/template" "$data"
	lg_as_server_user valgrind --tool=callgrind --callgrind-out-file="$out" \
		"$LG_PG_BIN/postgres" --single -D "$data" -c shared_preload_libraries=pg_lambdaguard \
		postgres <"$script" >/dev/null 2>&1
	# (awk reads to the end: an early exit would fail the pipeline)
	{
		callgrind_annotate --inclusive=no --threshold=100 "$out" 2>/dev/null |
			awk '/include\/lg_context.h:lg_(ExecutorStart|ProcessUtility)/ { gsub(",", "", $1); n += $1 } END { print n + 0 }'
		callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null |
			awk '/lg_invocation_comment/ && !done { gsub(",", "", $1); print $1; done = 1 } END { if (!done) print 0 }'
	} | tr '\n' ' '
}
for kind in select1 comment; do
	read -r check comment <<<"$(percall "$dir/$kind.sql")"
	awk -v k="$kind" -v c="${check:-0}" -v r="${comment:-0}" -v n="$n" 'BEGIN {
		printf "invocation context, %s: the check %.1f, reading the comment %.1f instructions per statement\n", k, c / n, r / n }'
done
