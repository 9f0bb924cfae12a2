#!/usr/bin/env bash
# Runs pg_lambdaguard's test suites with every server process under valgrind
# memcheck, and counts the reports that point into pg_lambdaguard's code.
#
#     bash tools/memcheck.sh
#
# From a fresh Debian 12 machine, as root or as a user with sudo: installs
# what is missing (PostgreSQL 15 server and headers, valgrind, IPC::Run),
# builds the extension in a scratch copy of the tree (never in the checkout)
# and installs it, then runs, as the postgres OS user when invoked as root:
#
#   - pg_regress: the REGRESS tests of the Makefile (sql/, expected/) on a
#     --temp-instance with the library preloaded;
#   - pg_isolation_regress: the ISOLATION specs of the Makefile;
#   - the TAP tests t/*.pl (PostgreSQL::Test::Cluster), each bounded in time.
#
# How the server runs under valgrind: a scratch bin directory holds symlinks
# to /usr/lib/postgresql/15/bin/*, except `postgres` (and `postmaster`), a
# script that execs valgrind on the real binary, and `pg_ctl`, a copy rather
# than a symlink because pg_ctl looks for `postgres` beside its own resolved
# path.  pg_regress gets it as --bindir; the TAP tests find pg_ctl through
# PATH, as PostgreSQL::Test::Cluster does.  initdb stays a symlink, so the
# bootstrap runs without valgrind (it does not load the extension).  Backends
# and background workers are forked, not exec'd, so valgrind follows them;
# each process writes its own log (valgrind --log-file=%p).
#
# The packaged server is not built with USE_VALGRIND, so memcheck sees
# malloc-level blocks only: it checks the extension's malloc'd GUC lists,
# uninitialised values and every read or write outside what the C library
# handed out, but not overruns inside a palloc'd chunk of a memory context.
#
# Suppressions: test/fuzz/valgrind.supp (each entry says why it is there).
#
# Output: the result of each suite, then the number of valgrind reports
# in total and in pg_lambdaguard's code (a frame in pg_lambdaguard.so,
# pg_lambdaguard.c or lg_*.c), with the full stacks of the latter.  Exit
# status: 0 when no report points into pg_lambdaguard's code, 1 when some
# do, 3 when no server process ran under valgrind at all.  A test that fails
# under valgrind only because of its timing does not change the exit status
# (see the per-suite lines).
#
# Environment:
#   LG_MEMCHECK_TAP="t/300_concurrent_events.pl ..."  TAP files to run
#                         (default: every t/*.pl; "none" to skip TAP)
#   LG_MEMCHECK_TAP_TIMEOUT=900   seconds allowed per TAP file
#   SOAK_SECONDS=30       length of the soak test's traffic (t/015_soak.pl)
#   LG_MEMCHECK_SUITES="regress isolation tap"   which suites to run
#   LG_MEMCHECK_KEEP=1    keep the scratch directory (logs) afterwards
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/tools/common.sh"
PG_MAJOR=$LG_PG_MAJOR
PG_BIN=$LG_PG_BIN
PGXS_DIR=$(cd "$(dirname "$("$LG_PG_CONFIG" --pgxs)")/../.." && pwd)
SUPP=$here/test/fuzz/valgrind.supp
TAP_TIMEOUT=${LG_MEMCHECK_TAP_TIMEOUT:-900}
SUITES=${LG_MEMCHECK_SUITES:-regress isolation tap}
say() { lg_say "$@"; }
as_root() { lg_root "$@"; }
as_server_user() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# --- install what is missing -------------------------------------------------
lg_install_debian "postgresql-$LG_DEBIAN_MAJOR" "postgresql-server-dev-$LG_DEBIAN_MAJOR" valgrind make gcc \
	libipc-run-perl perl util-linux coreutils

# --- scratch copy, build, install ---------------------------------------------
work=$(mktemp -d /tmp/lg_memcheck.XXXXXX)
keep=${LG_MEMCHECK_KEEP:-0}
cleanup() {
	if [ "$keep" = 1 ]; then echo "scratch directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
src=$work/src
mkdir -p "$src"
# tracked and untracked-but-not-ignored files: no build outputs of the checkout
(cd "$here" && git ls-files -z --cached --others --exclude-standard 2>/dev/null |
	xargs -0 -r -I{} cp --parents {} "$src" 2>/dev/null) || true
[ -f "$src/Makefile" ] || cp -a "$here/." "$src"

say "building pg_lambdaguard in $src and installing it"
make -C "$src" -s PG_CONFIG="$PG_BIN/pg_config" >/dev/null
as_root make -C "$src" -s PG_CONFIG="$PG_BIN/pg_config" install >/dev/null

# the Makefile's own lists, as make sees them
mkvar() {
	make -C "$src" -s --no-print-directory PG_CONFIG="$PG_BIN/pg_config" \
		--eval='lg-print-%: ; @echo $($*)' "lg-print-$1"
}
REGRESS=$(mkvar REGRESS)
ISOLATION=$(mkvar ISOLATION)
echo "REGRESS: $REGRESS"
echo "ISOLATION: $ISOLATION"

# --- the bin directory whose postgres runs under valgrind -------------------------
bin=$work/bin
vglogs=$work/valgrind
mkdir -p "$bin" "$vglogs"
for f in "$PG_BIN"/*; do
	case $(basename "$f") in
		postgres | postmaster | pg_ctl) ;;
		*) ln -s "$f" "$bin/$(basename "$f")" ;;
	esac
done
cp "$PG_BIN/pg_ctl" "$bin/pg_ctl"
cp "$SUPP" "$work/valgrind.supp"
cat >"$bin/postgres" <<EOF
#!/bin/sh
# postgres under valgrind memcheck (written by tools/memcheck.sh)
case "\$1" in
	-V | --version | -C | --describe-config | --boot | --single | --check)
		exec $PG_BIN/postgres "\$@" ;;
esac
exec valgrind --quiet --tool=memcheck --trace-children=no --leak-check=no \\
	--track-origins=yes --num-callers=40 --error-limit=no \\
	--gen-suppressions=all --suppressions=$work/valgrind.supp \\
	--log-file=$vglogs/%p.log \\
	$PG_BIN/postgres "\$@"
EOF
chmod 755 "$bin/postgres"
ln -s postgres "$bin/postmaster"
if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$work"; fi
chmod 755 "$work"

# slower server: longer start-up waits everywhere
export PGCTLTIMEOUT=600
export PG_TEST_TIMEOUT_DEFAULT=600

declare -A result
run_suite() {		# name, command...
	local name=$1 rc=0 t0=$SECONDS
	shift
	say "$name under valgrind"
	as_server_user env PATH="$bin:$PATH" PGCTLTIMEOUT=$PGCTLTIMEOUT \
		PG_TEST_TIMEOUT_DEFAULT=$PG_TEST_TIMEOUT_DEFAULT "$@" || rc=$?
	if [ "$rc" -eq 0 ]; then
		result[$name]="passed ($((SECONDS - t0)) s)"
	else
		result[$name]="FAILED, exit $rc ($((SECONDS - t0)) s)"
	fi
	echo "$name: ${result[$name]}"
}

cd "$src"
status=0
if [[ " $SUITES " == *" regress "* ]] && [ -n "$REGRESS" ]; then
	# shellcheck disable=SC2086
	run_suite regress "$PGXS_DIR/src/test/regress/pg_regress" --inputdir=. \
		--bindir="$bin" --temp-config=test/lambdaguard.conf \
		--temp-instance=./tmp_check --dbname=contrib_regression $REGRESS
	[ -f regression.diffs ] && head -100 regression.diffs
fi
if [[ " $SUITES " == *" isolation "* ]] && [ -n "$ISOLATION" ]; then
	# shellcheck disable=SC2086
	run_suite isolation "$PGXS_DIR/src/test/isolation/pg_isolation_regress" \
		--inputdir=. --outputdir=output_iso --bindir="$bin" \
		--temp-config=test/lambdaguard.conf --temp-instance=./tmp_check_iso \
		--dbname=isolation_regression $ISOLATION
	[ -f output_iso/regression.diffs ] && head -100 output_iso/regression.diffs
fi
if [[ " $SUITES " == *" tap "* ]] && [ "${LG_MEMCHECK_TAP:-}" != none ]; then
	taps=${LG_MEMCHECK_TAP:-$(ls t/*.pl 2>/dev/null | tr '\n' ' ')}
	for t in $taps; do
		run_suite "TAP $t" env TESTDIR="$src" PGPORT=65432 SOAK_SECONDS="${SOAK_SECONDS:-30}" \
			PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
			timeout --kill-after=30 "$TAP_TIMEOUT" \
			prove -I "$PGXS_DIR/src/test/perl/" -I . "$t"
		# a test that timed out leaves its servers: stop them
		for pidfile in "$src"/tmp_check/t_*_data/pgdata/postmaster.pid; do
			[ -f "$pidfile" ] || continue
			as_server_user "$PG_BIN/pg_ctl" -D "$(dirname "$pidfile")" -m immediate stop \
				>/dev/null 2>&1 || true
		done
	done
fi
cd /

# --- the valgrind reports ---------------------------------------------------------
nlogs=$(find "$vglogs" -name '*.log' | wc -l)
say "valgrind reports ($nlogs server processes ran under valgrind)"
for name in "${!result[@]}"; do printf '  %-40s %s\n' "$name" "${result[$name]}"; done | sort

ours=$(perl - "$vglogs" <<'PERL'
# Split each log into error reports: a report starts with "==PID== text"
# after a blank "==PID== " line and runs to the next blank one; suppression
# templates (--gen-suppressions) follow it without the prefix.
use strict;
use warnings;
my $dir = shift;
my ($total, $ours, %kinds) = (0, 0);
my @ourtext;
opendir(my $dh, $dir) or die "$dir: $!";
for my $f (sort grep { /\.log$/ } readdir $dh)
{
	open(my $fh, '<', "$dir/$f") or next;
	my @blocks;
	my $cur;
	while (my $l = <$fh>)
	{
		if ($l =~ /^==\d+==\s*$/) { push @blocks, $cur if $cur; $cur = undef; next; }
		# one-line warnings (address range perms, ...) come without a blank
		if ($l =~ /^==\d+== Warning:/) { push @blocks, $cur if $cur; $cur = undef; next; }
		if ($l =~ /^==\d+== (.*)/) { $cur .= $l; next; }
		$cur .= $l if $cur;		# suppression template lines
	}
	push @blocks, $cur if $cur;
	for my $b (@blocks)
	{
		my ($first) = $b =~ /^==\d+== (.*)$/m;
		next if !defined $first || $first =~ /^(Warning:|WARNING|Memcheck,|Copyright|Using Valgrind|Command:|Parent PID|HEAP SUMMARY|ERROR SUMMARY|For lists of|More than|Use --|Note:|\s)/;
		$total++;
		my $stack = join("\n", grep { !/^\s*[{}<]|^\s+(Memcheck:|fun:|obj:|\.\.\.)/ } split /\n/, $b);
		my ($top) = $b =~ /(?:at|by) 0x[0-9A-F]+: (\S+)/;
		$kinds{"$first  [at " . ($top // '?') . "]"}++;
		if ($b =~ /pg_lambdaguard\.so|\blg_\w+\.c|\bpg_lambdaguard\.c/)
		{
			$ours++;
			push @ourtext, "--- $f\n$stack\n" if @ourtext < 30;
		}
	}
}
print STDERR "  total reports: $total\n";
for my $k (sort { $kinds{$b} <=> $kinds{$a} } keys %kinds)
{
	printf STDERR "    %5d  %s\n", $kinds{$k}, $k;
}
print STDERR "  reports pointing into pg_lambdaguard's code: $ours\n";
print STDERR $_ for @ourtext;
print "$ours\n";
PERL
)
if [ "$nlogs" -eq 0 ]; then
	echo "no server process ran under valgrind: nothing was checked" >&2
	keep=1
	exit 3
fi
if [ "$ours" -gt 0 ]; then
	echo "memcheck: $ours valgrind report(s) in pg_lambdaguard's code (logs: $vglogs)"
	keep=1
	exit 1
fi
echo "memcheck: no valgrind report in pg_lambdaguard's code"
exit $status
