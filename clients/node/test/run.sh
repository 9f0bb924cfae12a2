#!/usr/bin/env bash
# Tests of the Node.js helper pg-lambdaguard-context (clients/node).
#
#   bash clients/node/test/run.sh
#
# Starts a throwaway PostgreSQL 15 cluster (pg_lambdaguard is not needed: the
# tests check what PostgreSQL itself received), installs the pinned drivers
# from package-lock.json (npm ci) and runs test/*.test.js with node --test.
# Everything started here is stopped on exit.  The last line printed is
#   node-client: N passed, M failed
# (a set-up failure counts as one failed test); the exit status is non-zero on
# any failure.
#
# Environment:
#   PG_BINDIR              PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#   NODE_CLIENT_RUN_USER   user to run as when started by root (default postgres)
#   NODE_CLIENT_KEEP=1     keep the temp dir (cluster data, logs) for inspection
set -euo pipefail

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
RUN_USER=${NODE_CLIENT_RUN_USER:-postgres}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) # the package: clients/node

log() { printf 'node-client: %s\n' "$*" >&2; }
summary_printed=""
summary() { summary_printed=1; printf 'node-client: %s passed, %s failed\n' "$1" "$2"; }
die() {
    log "ERROR: $*"
    [ -n "$summary_printed" ] || summary 0 1
    exit 1
}

# Copy the package (without node_modules unless there is one to reuse) into a
# fresh temp dir owned by $1, so that the run never writes into the git tree.
copy_suite() {
    local owner=$1 dest
    dest=$(mktemp -d /tmp/lg-node-client.XXXXXX)
    tar -C "$HERE" --exclude=./node_modules -cf - . | tar -C "$dest" -xf -
    if [ -d "$HERE/node_modules" ]; then
        cp -a "$HERE/node_modules" "$dest/node_modules"
    fi
    chown -R "$owner" "$dest"
    chmod 755 "$dest"
    printf '%s\n' "$dest"
}

# Run the copy as another process and wait for it, passing stop requests on
# so that it can clean up.
run_copy() {
    "$@" &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
    rc=0
    while :; do
        wait "$child" && rc=0 || rc=$?
        kill -0 "$child" 2>/dev/null || break
    done
    exit $rc
}

# ---------------------------------------------------------------------------
# As root: install what is missing, then re-run as an unprivileged user
# (PostgreSQL refuses to run as root) from a copy that this user owns.
if [ "$(id -u)" = 0 ]; then
    need=()
    command -v node >/dev/null || need+=(nodejs)
    command -v npm >/dev/null || need+=(npm)
    if [ ! -x "$PG_BINDIR/initdb" ] && [ "$PG_BINDIR" = /usr/lib/postgresql/15/bin ]; then
        need+=(postgresql-15)
    fi
    if [ ${#need[@]} -gt 0 ]; then
        common="$HERE/../../tools/common.sh"
        if [ -f "$common" ]; then
            # shellcheck source=/dev/null
            . "$common"
            lg_install_debian "${need[@]}" || die "could not install ${need[*]}"
        else
            log "installing ${need[*]}"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
                die "could not install ${need[*]}"
        fi
    fi
    id "$RUN_USER" >/dev/null 2>&1 || die "user $RUN_USER does not exist"
    SUITE_COPY=$(copy_suite "$RUN_USER:")
    trap 'rm -rf "$SUITE_COPY"' EXIT
    log "running as $RUN_USER from $SUITE_COPY"
    # setpriv execs in place (no supervising parent that could kill the shell
    # before its clean-up has run); runuser where there is no setpriv
    if command -v setpriv >/dev/null; then
        as_user=(setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --init-groups --)
    else
        as_user=(runuser -u "$RUN_USER" --)
    fi
    run_copy "${as_user[@]}" env -i \
        PATH="$PATH" HOME="$SUITE_COPY" USER="$RUN_USER" LANG=C.UTF-8 \
        PG_BINDIR="$PG_BINDIR" NODE_CLIENT_KEEP="${NODE_CLIENT_KEEP:-}" \
        NODE_CLIENT_IS_COPY=1 CI="${CI:-}" \
        bash "$SUITE_COPY/test/run.sh"
fi

# An unprivileged user who cannot write the package dir works from a copy too.
if [ -z "${NODE_CLIENT_IS_COPY:-}" ] && [ ! -w "$HERE" ]; then
    SUITE_COPY=$(copy_suite "$(id -un):")
    trap 'rm -rf "$SUITE_COPY"' EXIT
    run_copy env NODE_CLIENT_IS_COPY=1 bash "$SUITE_COPY/test/run.sh"
fi

# ---------------------------------------------------------------------------
[ -x "$PG_BINDIR/initdb" ] || die "no initdb in PG_BINDIR=$PG_BINDIR"
command -v node >/dev/null || die "node is not installed (apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm is not installed (apt-get install npm)"

TMP=$(mktemp -d /tmp/lg-node-client-run.XXXXXX)
PGDATA="$TMP/data"
PGLOG="$TMP/postgres.log"
PG_STARTED=""
NODE_PGID=""

cleanup() {
    local rc=$?
    set +e
    trap - INT TERM HUP
    if [ -n "$NODE_PGID" ]; then
        # the test runner and its test files share one process group
        kill -TERM -- "-$NODE_PGID" 2>/dev/null
        for _ in $(seq 1 30); do kill -0 -- "-$NODE_PGID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$NODE_PGID" 2>/dev/null
    fi
    if [ -n "$PG_STARTED" ]; then
        "$PG_BINDIR/pg_ctl" -D "$PGDATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
            "$PG_BINDIR/pg_ctl" -D "$PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
    if [ "$rc" != 0 ] && [ -f "$PGLOG" ]; then
        log "failed (exit $rc); last lines of the server log:"
        tail -n 20 "$PGLOG" | sed 's/^/  postgres| /' >&2
    fi
    if [ -n "${NODE_CLIENT_KEEP:-}" ]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    [ -n "$summary_printed" ] || summary 0 1
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# A free loopback port, chosen by the kernel.
PGPORT=$(node -e '
const s = require("net").createServer();
s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => console.log(p)); });')

"$PG_BINDIR/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$TMP/initdb.log" 2>&1 ||
    { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
{
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $PGPORT"
    echo "unix_socket_directories = '$TMP'"
    echo "max_connections = 40"
    echo "fsync = off"
    echo "synchronous_commit = off"
    echo "full_page_writes = off"
    echo "wal_level = logical" # replication connections: their commands take no comment
} >>"$PGDATA/postgresql.conf"
echo "host replication postgres 127.0.0.1/32 trust" >>"$PGDATA/pg_hba.conf"
"$PG_BINDIR/pg_ctl" -D "$PGDATA" -l "$PGLOG" -w -t 60 start >/dev/null || die "postgres did not start"
PG_STARTED=1
log "$("$PG_BINDIR/postgres" --version) on 127.0.0.1:$PGPORT, node $(node --version), temp dir $TMP"

cd "$HERE"
if [ ! -d node_modules ]; then
    log "npm ci"
    npm_config_cache="$TMP/npm-cache" npm ci --no-audit --no-fund >"$TMP/npm.log" 2>&1 ||
        { cat "$TMP/npm.log" >&2; die "npm ci failed"; }
fi

export LGN_PGHOST=127.0.0.1 LGN_PGPORT="$PGPORT" LGN_PGUSER=postgres LGN_PGDATABASE=postgres

# The runner gets a process group of its own (job control on), so that the
# clean-up can end everything it started.  Two reporters: spec for the
# reader, TAP into a file for the counts.
set -m
node --test --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$TMP/tap.txt" test/*.test.js &
NODE_PGID=$!
set +m
rc=0
wait "$NODE_PGID" || rc=$?
NODE_PGID=""

passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$TMP/tap.txt" | tail -n 1)
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$TMP/tap.txt" | tail -n 1)
[ -n "$passed" ] || passed=0
[ -n "$failed" ] || failed=0
if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi # the runner itself failed
summary "$passed" "$failed"
[ "$rc" = 0 ] && [ "$failed" = 0 ]
