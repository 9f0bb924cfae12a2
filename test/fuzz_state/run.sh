#!/usr/bin/env bash
# Differential test of pinning state: random sessions against what
# PostgreSQL itself shows (fuzz_state.js, beside this script, says what is
# compared).
#
#     bash test/fuzz_state/run.sh [SECONDS] [SEED]     # defaults: 60, 1
#
# Suite script: run from any directory of a (scratch copy of the) tree, with
# PG_CONFIG naming the PostgreSQL to use and pg_lambdaguard built and
# installed for it.  As root it runs the server as Debian's postgres user.
# Installs Node.js (Debian's nodejs and npm) when missing and the node-postgres
# driver pinned in test/e2e/package-lock.json into a temporary directory;
# starts a throwaway preloaded cluster on 127.0.0.1 and a free port, stops it
# on exit.  Prints any disagreement as a minimal reproducing sequence and
# ends with "fuzz_state: N passed, N failed" (N passed: steps compared).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seconds=${1:-60}
seed=${2:-1}
case "$seconds$seed" in
	*[!0-9]*) echo "usage: bash test/fuzz_state/run.sh [SECONDS] [SEED] (whole numbers)" >&2; exit 2 ;;
esac
[ "$seconds" -ge 1 ] || { echo "SECONDS must be at least 1" >&2; exit 2; }

. "$here/tools/common.sh"
fail() { echo "$*" >&2; echo "fuzz_state: 0 passed, 1 failed"; exit 1; }

command -v node >/dev/null && command -v npm >/dev/null || lg_install_debian nodejs npm
"$LG_PG_BIN/postgres" --version >/dev/null
[ -f "$("$LG_PG_CONFIG" --pkglibdir)/pg_lambdaguard.so" ] ||
	fail "pg_lambdaguard is not installed for $LG_PG_CONFIG"
command -v node >/dev/null || fail "node not found"
[ "$(node -e 'console.log(process.versions.node.split(".")[0])')" -ge 18 ] ||
	fail "Node.js 18 or later is needed"


tmp=$(mktemp -d /tmp/lg_fuzz_state.XXXXXX)
chmod 755 "$tmp"
data=$tmp/data
pgctl() { lg_as_server_user "$LG_PG_BIN/pg_ctl" "$@"; }
cleanup() {
	if [ -f "$data/postmaster.pid" ]; then pgctl -D "$data" -m immediate stop >/dev/null 2>&1 || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# the driver, as pinned for the end-to-end suite
lg_say "node-postgres from test/e2e/package-lock.json"
mkdir -p "$tmp/npm"
cp "$here/test/e2e/package.json" "$here/test/e2e/package-lock.json" "$tmp/npm/"
(cd "$tmp/npm" && npm_config_cache="$tmp/npm-cache" npm ci --omit=dev --no-audit --no-fund >"$tmp/npm.log" 2>&1) ||
	{ cat "$tmp/npm.log" >&2; fail "npm ci failed"; }

port=
for p in $(seq 55432 55532); do
	if ! ss -ltn | awk '{print $4}' | grep -q ":$p\$"; then port=$p; break; fi
done
[ -n "$port" ] || fail "no free port"


lg_say "throwaway cluster on 127.0.0.1:$port (PostgreSQL $LG_PG_MAJOR)"
mkdir -p "$data"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$tmp"
lg_as_server_user "$LG_PG_BIN/initdb" -D "$data" -A trust -U "$(lg_server_user)" >"$tmp/initdb.log" 2>&1 ||
	{ cat "$tmp/initdb.log" >&2; fail "initdb failed"; }
cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$tmp'
shared_preload_libraries = 'pg_lambdaguard'
lambdaguard.max_events = 100000
max_connections = 20
EOF
pgctl -D "$data" -l "$tmp/server.log" -w start >/dev/null ||
	{ cat "$tmp/server.log" >&2; fail "the server did not start"; }

lg_say "fuzzing for ${seconds}s, seed $seed"
set +e
PGUSER=$(lg_server_user) NODE_PATH="$tmp/npm/node_modules" \
	node "$here/test/fuzz_state/fuzz_state.js" "$port" "$seconds" "$seed" | tee "$tmp/out.log"
rc=${PIPESTATUS[0]}
set -e
passed=$(sed -n 's/.*checks passed \([0-9]*\).*/\1/p' "$tmp/out.log")
failed=$(sed -n 's/.*disagreements \([0-9]*\).*/\1/p' "$tmp/out.log")
if [ -z "$passed" ] || [ "$rc" -gt 1 ]; then
	tail -20 "$tmp/server.log" >&2
	echo "fuzz_state: 0 passed, 1 failed"
	exit 1
fi
echo "fuzz_state: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
