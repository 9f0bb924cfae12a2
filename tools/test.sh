#!/usr/bin/env bash
# Runs every test of pg_lambdaguard: pg_regress, isolation, TAP, the
# end-to-end suite (PgBouncer + Node.js clients), the Node.js helper's
# suite (clients/node), and the suites of the
# managed edition, of monitoring and of the session-state generator, against
# every PostgreSQL installed in Debian's layout (/usr/lib/postgresql/N), as
# Debian's pg_buildext does, or against the pg_configs listed in PG_CONFIG
# (space-separated); then, once, the packaging suite (test/packaging/run.sh).
# From a fresh Debian 12 machine, as root or as a user with sudo:
#
#     bash tools/test.sh
#     PG_CONFIG="/usr/lib/postgresql/17/bin/pg_config" bash tools/test.sh
#
# Servers run as the postgres OS user when invoked as root.  Each suite
# starts its own throwaway clusters on free loopback ports and stops them.
# One summary line per version, then the total.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
requested=${PG_CONFIG:-}
. "$here/tools/common.sh"

lg_install_packages

if [ -n "$requested" ]; then
	pg_configs=$requested
else
	pg_configs=$(ls -d /usr/lib/postgresql/*/bin/pg_config 2>/dev/null | sort -t/ -k5,5n | tr '\n' ' ')
fi
[ -n "$pg_configs" ] || { echo "no PostgreSQL found in /usr/lib/postgresql/N/bin/pg_config" >&2; exit 1; }

summary=()
total_passed=0
total_failed=0
work=""
trap 'if [ -n "$work" ]; then rm -rf "$work"; fi' EXIT

# test_version PG_CONFIG: every suite against one PostgreSQL
test_version() {
	local pgc=$1 bin major version rc passed=0 failed=0 s
	bin=$(dirname "$pgc")
	major=$(basename "$(dirname "$bin")")
	version=$("$pgc" --version)
	export PG_CONFIG=$pgc
	# common.sh derives LG_PG_* from PG_CONFIG
	. "$here/tools/common.sh"

	lg_say "$version ($pgc)"
	work=$(lg_scratch_copy "$here")

	suite_done() {
		if [ "$1" -eq 0 ]; then passed=$((passed + 1)); else
			failed=$((failed + 1))
			echo "FAILED on $version: $2"
		fi
	}

	# a compiler warning fails the build; then the direction of dependencies
	lg_say "$major: build without warnings (-Wall -Wextra -Werror), direction of dependencies"
	rc=0
	LG_WERROR=1 lg_build_install "$work" || rc=$?
	if [ "$rc" -ne 0 ]; then
		suite_done "$rc" "build (a compiler warning or error)"
		summary+=("PostgreSQL $major ($version): $passed passed, $failed failed")
		total_failed=$((total_failed + failed))
		rm -rf "$work"
		work=""
		return
	fi
	rc=0
	bash "$here/tools/check_layers.sh" "$work" || rc=$?
	suite_done "$rc" "direction of dependencies (tools/check_layers.sh)"
	if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$work"; fi

	lg_say "$major: pg_regress, isolation and TAP tests (make installcheck)"
	rc=0
	lg_as_server_user make -C "$work" -s PG_CONFIG="$pgc" installcheck || rc=$?
	if [ "$rc" -ne 0 ]; then
		for f in "$work"/regression.diffs "$work"/output_iso/regression.diffs; do
			[ -f "$f" ] && { echo "--- $f"; head -200 "$f"; }
		done
		for f in "$work"/tmp_check/log/*; do
			[ -f "$f" ] && { echo "--- $f (last lines)"; tail -40 "$f"; }
		done
	fi
	suite_done "$rc" installcheck

	lg_say "$major: end-to-end: PgBouncer in transaction mode and Node.js clients"
	rc=0
	PG_BINDIR="$bin" bash "$work/test/e2e/run.sh" || rc=$?
	suite_done "$rc" e2e

	lg_say "$major: the Node.js helper that comments each invocation's queries (clients/node)"
	rc=0
	PG_BINDIR="$bin" bash "$work/clients/node/test/run.sh" || rc=$?
	suite_done "$rc" "clients/node"

	# the other suites share one contract: run from the tree's root with
	# PG_CONFIG set; they skip (exit 0) where that version lacks what they need
	for s in managed/test/run.sh monitoring/test/run.sh "test/fuzz_state/run.sh 60"; do
		[ -f "$work/${s%% *}" ] || continue
		lg_say "$major: ${s}"
		rc=0
		(cd "$work" && bash $s) || rc=$?
		suite_done "$rc" "$s"
	done

	rm -rf "$work"
	work=""
	summary+=("PostgreSQL $major ($version): $passed passed, $failed failed")
	total_passed=$((total_passed + passed))
	total_failed=$((total_failed + failed))
}

# once, whatever the versions: every relative link of README.md and docs/
lg_say "documentation: relative links"
if bash "$here/tools/check_links.sh"; then
	total_passed=$((total_passed + 1))
	summary+=("documentation links: passed")
else
	total_failed=$((total_failed + 1))
	summary+=("documentation links: FAILED")
fi

for pgc in $pg_configs; do
	if [ ! -x "$pgc" ]; then
		echo "not a pg_config: $pgc" >&2
		total_failed=$((total_failed + 1))
		summary+=("$pgc: not found")
		continue
	fi
	test_version "$pgc"
done

# once, after the per-version suites, as it installs and then purges the
# packaged extension: the Debian packages (lintian, the installed regression
# suite), the PGXN archive, the README's install blocks and pg_dump round
# trips, for the PostgreSQL versions Debian packages (pg_buildext
# supported-versions), whatever PG_CONFIG names; it puts back the extension
# files it found in their directories
lg_say "packaging: Debian packages, PGXN, the install blocks, dump and restore"
if env -u PG_CONFIG bash "$here/test/packaging/run.sh"; then
	total_passed=$((total_passed + 1))
	summary+=("packaging (Debian's PostgreSQL): passed")
else
	total_failed=$((total_failed + 1))
	summary+=("packaging (Debian's PostgreSQL): FAILED")
fi

lg_say "test suites, per PostgreSQL version"
printf '%s\n' "${summary[@]}"
echo "total: $total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
