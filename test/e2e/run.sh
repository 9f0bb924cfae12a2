#!/usr/bin/env bash
# End-to-end suite for pg_lambdaguard.
#
#   bash test/e2e/run.sh
#
# Starts a throwaway PostgreSQL 15 cluster (pg_lambdaguard preloaded) and a
# PgBouncer in transaction pooling mode in front of it, then runs the Node.js
# scenarios (node --test).  Everything started here is stopped on exit.
#
# Environment:
#   PG_BINDIR        PostgreSQL binaries (default: those of PG_CONFIG, else
#                    /usr/lib/postgresql/15/bin)
#   PGBOUNCER        pgbouncer binary (default /usr/sbin/pgbouncer)
#   E2E_RUN_USER     user to run as when started by root (default postgres)
#   E2E_KEEP=1       keep the temp dir (cluster data, logs) for inspection
#   E2E_NO_GUARD=1   development only: run without the extension (the
#                    scenarios then only exercise the parts that need no guard)
#   E2E_TESTS        space separated list of scenario files (default: all)
set -euo pipefail

PG_CONFIG_FIRST=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PG_BINDIR=${PG_BINDIR:-$(dirname "${PG_CONFIG_FIRST%% *}")}
PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
E2E_RUN_USER=${E2E_RUN_USER:-postgres}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf 'e2e: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Copy the suite (without node_modules unless told) into a fresh temp dir
# owned by $1, so the run never writes into the git tree.
copy_suite() {
    local owner=$1 dest
    dest=$(mktemp -d /tmp/lg-e2e-suite.XXXXXX)
    tar -C "$HERE" --exclude=./node_modules -cf - . | tar -C "$dest" -xf -
    # the Node.js helper under test (scenario 5), clients/node/index.js: the
    # copy has no checkout around it (lib/context-helper.js finds it here)
    if [ -f "$HERE/../../clients/node/index.js" ]; then
        mkdir -p "$dest/pg-lambdaguard-context"
        cp "$HERE/../../clients/node/index.js" "$dest/pg-lambdaguard-context/index.js"
    fi
    # reuse an installed node_modules if there is one (saves a download)
    if [ -d "$HERE/node_modules" ]; then
        cp -a "$HERE/node_modules" "$dest/node_modules"
    fi
    chown -R "$owner" "$dest"
    chmod 755 "$dest"
    printf '%s\n' "$dest"
}

# ---------------------------------------------------------------------------
# PostgreSQL refuses to run as root: re-run as an unprivileged user, from a
# copy of the suite that this user owns.
if [ "$(id -u)" = 0 ]; then
    id "$E2E_RUN_USER" >/dev/null 2>&1 || die "user $E2E_RUN_USER does not exist"
    SUITE_COPY=$(copy_suite "$E2E_RUN_USER:")
    trap 'rm -rf "$SUITE_COPY"' EXIT
    log "running as $E2E_RUN_USER from $SUITE_COPY"
    # setpriv execs in place (no supervising parent that would SIGKILL the
    # shell before its cleanup has run); runuser where there is no setpriv
    if command -v setpriv >/dev/null; then
        as_user=(setpriv --reuid="$E2E_RUN_USER" --regid="$(id -g "$E2E_RUN_USER")" --init-groups --)
    else
        as_user=(runuser -u "$E2E_RUN_USER" --)
    fi
    "${as_user[@]}" env -i \
        PATH="$PATH" HOME="$SUITE_COPY" USER="$E2E_RUN_USER" LANG=C.UTF-8 \
        PG_BINDIR="$PG_BINDIR" PGBOUNCER="$PGBOUNCER" \
        E2E_KEEP="${E2E_KEEP:-}" E2E_NO_GUARD="${E2E_NO_GUARD:-}" \
        E2E_TESTS="${E2E_TESTS:-}" E2E_SUITE_IS_COPY=1 CI="${CI:-}" \
        bash "$SUITE_COPY/run.sh" &
    child=$!
    # pass a stop request on and wait for the unprivileged run to clean up
    trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
    rc=0
    while :; do
        wait "$child" && rc=0 || rc=$?
        kill -0 "$child" 2>/dev/null || break
    done
    exit $rc
fi

# An unprivileged user who cannot write the suite dir works from a copy too.
if [ -z "${E2E_SUITE_IS_COPY:-}" ] && [ ! -w "$HERE" ]; then
    SUITE_COPY=$(copy_suite "$(id -un):")
    trap 'rm -rf "$SUITE_COPY"' EXIT
    E2E_SUITE_IS_COPY=1 bash "$SUITE_COPY/run.sh" &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
    rc=0
    while :; do
        wait "$child" && rc=0 || rc=$?
        kill -0 "$child" 2>/dev/null || break
    done
    exit $rc
fi

# ---------------------------------------------------------------------------
[ -x "$PG_BINDIR/initdb" ] || die "no initdb in PG_BINDIR=$PG_BINDIR"
[ -x "$PGBOUNCER" ] || die "no pgbouncer at $PGBOUNCER (apt-get install pgbouncer)"
command -v node >/dev/null || die "node is not installed"
command -v npm >/dev/null || die "npm is not installed"

PG_CONFIG="$PG_BINDIR/pg_config"
if [ -z "${E2E_NO_GUARD:-}" ]; then
    sharedir=$("$PG_CONFIG" --sharedir)
    pkglibdir=$("$PG_CONFIG" --pkglibdir)
    [ -f "$sharedir/extension/pg_lambdaguard.control" ] && [ -f "$pkglibdir/pg_lambdaguard.so" ] \
        || die "pg_lambdaguard is not installed for $PG_CONFIG (run: make && make install, as root)"
fi

TMP=$(mktemp -d /tmp/lg-e2e.XXXXXX)
PGDATA="$TMP/data"
PGLOG="$TMP/postgres.log"
BOUNCER_INI="$TMP/pgbouncer.ini"
BOUNCER_LOG="$TMP/pgbouncer.log"
BOUNCER_PID=""
PG_STARTED=""
STANDBY_DATA="$TMP/standby"
STANDBY_LOG="$TMP/standby.log"
STANDBY_STARTED=""

NODE_PGID=""

cleanup() {
    local rc=$?
    set +e
    trap - INT TERM HUP
    if [ -n "$NODE_PGID" ]; then
        # the test runner, its test files and every Lambda environment they
        # forked share one process group: wake any frozen one and end them all
        kill -CONT -- "-$NODE_PGID" 2>/dev/null
        kill -TERM -- "-$NODE_PGID" 2>/dev/null
        for _ in $(seq 1 30); do kill -0 -- "-$NODE_PGID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$NODE_PGID" 2>/dev/null
    fi
    if [ -n "$BOUNCER_PID" ] && kill -0 "$BOUNCER_PID" 2>/dev/null; then
        kill -TERM "$BOUNCER_PID" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$BOUNCER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$BOUNCER_PID" 2>/dev/null && kill -KILL "$BOUNCER_PID" 2>/dev/null
        wait "$BOUNCER_PID" 2>/dev/null
        log "pgbouncer stopped"
    fi
    if [ -n "$STANDBY_STARTED" ]; then
        "$PG_BINDIR/pg_ctl" -D "$STANDBY_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || "$PG_BINDIR/pg_ctl" -D "$STANDBY_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1
        log "standby stopped"
    fi
    if [ -n "$PG_STARTED" ]; then
        "$PG_BINDIR/pg_ctl" -D "$PGDATA" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || "$PG_BINDIR/pg_ctl" -D "$PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1
        log "postgres stopped"
    fi
    if [ "$rc" != 0 ]; then
        log "failed (exit $rc); last lines of the server logs:"
        [ -f "$PGLOG" ] && tail -n 40 "$PGLOG" | sed 's/^/  postgres| /' >&2
        [ -f "$STANDBY_LOG" ] && tail -n 20 "$STANDBY_LOG" | sed 's/^/  standby| /' >&2
        [ -f "$BOUNCER_LOG" ] && tail -n 20 "$BOUNCER_LOG" | sed 's/^/  pgbouncer| /' >&2
    fi
    if [ -n "${E2E_KEEP:-}" ]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Three free loopback ports, chosen by the kernel.
read -r PGPORT BOUNCER_PORT STANDBY_PORT < <(node -e '
const net = require("net");
const take = () => new Promise(r => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => r(p)); }); });
(async () => { const ports = []; while (ports.length < 3) { const p = await take(); if (!ports.includes(p)) ports.push(p); } console.log(ports.join(" ")); })();')
log "postgres on 127.0.0.1:$PGPORT, its standby on 127.0.0.1:$STANDBY_PORT, pgbouncer on 127.0.0.1:$BOUNCER_PORT, temp dir $TMP"

APP_USER=app
APP_PASSWORD="app-$RANDOM$RANDOM"

# --- PostgreSQL ------------------------------------------------------------
"$PG_BINDIR/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$TMP/initdb.log" 2>&1 \
    || { cat "$TMP/initdb.log" >&2; die "initdb failed"; }

cat >"$PGDATA/pg_hba.conf" <<EOF
local all all                 trust
local replication postgres    trust
host  all postgres 127.0.0.1/32 trust
host  all $APP_USER 127.0.0.1/32 scram-sha-256
EOF

{
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $PGPORT"
    echo "unix_socket_directories = '$TMP'"
    echo "max_connections = 60"
    echo "fsync = off"
    echo "synchronous_commit = off"
    echo "full_page_writes = off"
    echo "log_line_prefix = '%m [%p] %q%u@%d/%a '"
    echo "log_min_messages = log"
    if [ -z "${E2E_NO_GUARD:-}" ]; then
        echo "shared_preload_libraries = 'pg_lambdaguard'"
        echo "lambdaguard.database = 'postgres'"
        # the proxy's login role, seen from the proxy's address only
        echo "lambdaguard.roles = '$APP_USER'"
        echo "lambdaguard.client_addresses = '127.0.0.1/32'"
        echo "lambdaguard.naptime = 200"
        echo "lambdaguard.enabled = off"
    fi
} >>"$PGDATA/postgresql.conf"

"$PG_BINDIR/pg_ctl" -D "$PGDATA" -l "$PGLOG" -w -t 60 start >/dev/null || die "postgres did not start"
PG_STARTED=1

psql_admin() { "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$TMP" -p "$PGPORT" -U postgres -d postgres "$@"; }

psql_admin <<EOF
CREATE ROLE $APP_USER LOGIN PASSWORD '$APP_PASSWORD';
CREATE TABLE public.accounts (id int PRIMARY KEY, balance bigint NOT NULL DEFAULT 0);
INSERT INTO public.accounts SELECT g, 0 FROM generate_series(1, 10) g;
GRANT SELECT, UPDATE ON public.accounts TO $APP_USER;
EOF
if [ -z "${E2E_NO_GUARD:-}" ]; then
    psql_admin -c "CREATE EXTENSION pg_lambdaguard"
    psql_admin -At -c "SELECT 'pg_lambdaguard ' || extversion FROM pg_extension WHERE extname = 'pg_lambdaguard'" | sed 's/^/e2e: /' >&2
fi

# --- a streaming hot standby (the read path) --------------------------------
# a copy of the primary, extension included; its worker starts once it is
# consistent
"$PG_BINDIR/pg_basebackup" -D "$STANDBY_DATA" -h "$TMP" -p "$PGPORT" -U postgres -R -X stream --no-sync \
    >"$TMP/basebackup.log" 2>&1 || { cat "$TMP/basebackup.log" >&2; die "pg_basebackup failed"; }
{
    echo "port = $STANDBY_PORT"
    echo "hot_standby_feedback = on"
} >>"$STANDBY_DATA/postgresql.conf"
"$PG_BINDIR/pg_ctl" -D "$STANDBY_DATA" -l "$STANDBY_LOG" -w -t 60 start >/dev/null || die "the standby did not start"
STANDBY_STARTED=1

# --- PgBouncer -------------------------------------------------------------
printf '"%s" "%s"\n' "$APP_USER" "$APP_PASSWORD" >"$TMP/userlist.txt"
chmod 600 "$TMP/userlist.txt"
cat >"$BOUNCER_INI" <<EOF
[databases]
postgres = host=127.0.0.1 port=$PGPORT dbname=postgres
postgres_ro = host=127.0.0.1 port=$STANDBY_PORT dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir = $TMP
auth_type = scram-sha-256
auth_file = $TMP/userlist.txt
admin_users = $APP_USER
pool_mode = transaction
default_pool_size = 3
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 200
server_login_retry = 1
ignore_startup_parameters = extra_float_digits
logfile = $BOUNCER_LOG
pidfile = $TMP/pgbouncer.pid
EOF
"$PGBOUNCER" "$BOUNCER_INI" >"$TMP/pgbouncer.out" 2>&1 &
BOUNCER_PID=$!
ok=""
# (PgBouncer 1.18 refuses the "grease" protocol version 3.9999 that libpq of
# PostgreSQL 19 betas sends by default; older libpq ignores the variable)
for _ in $(seq 1 100); do
    if PGMAXPROTOCOLVERSION=3.0 PGPASSWORD="$APP_PASSWORD" "$PG_BINDIR/psql" -X -q -h 127.0.0.1 -p "$BOUNCER_PORT" -U "$APP_USER" -d pgbouncer \
        -c "SHOW VERSION" >/dev/null 2>&1; then ok=1; break; fi
    kill -0 "$BOUNCER_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$ok" ] || { cat "$TMP/pgbouncer.out" >&2; die "pgbouncer did not start"; }
log "$("$PGBOUNCER" --version | head -1) up, pool_mode=transaction, default_pool_size=3"

# --- Node.js clients -------------------------------------------------------
cd "$HERE"
if [ ! -d node_modules ]; then
    log "npm ci"
    npm_config_cache="$TMP/npm-cache" npm ci --no-audit --no-fund >"$TMP/npm.log" 2>&1 \
        || { cat "$TMP/npm.log" >&2; die "npm ci failed"; }
fi

export E2E_PGHOST=127.0.0.1 E2E_PGPORT="$PGPORT" E2E_PGSOCKET="$TMP" \
       E2E_BOUNCER_PORT="$BOUNCER_PORT" E2E_APP_USER="$APP_USER" E2E_APP_PASSWORD="$APP_PASSWORD" \
       E2E_DATABASE=postgres E2E_READ_DATABASE=postgres_ro E2E_STANDBY_PORT="$STANDBY_PORT" E2E_PGLOG="$PGLOG" E2E_GUARD=$([ -z "${E2E_NO_GUARD:-}" ] && echo 1 || echo 0)

TESTS=${E2E_TESTS:-"scenarios/1-orphan-cascade.test.js scenarios/2-pinning.test.js scenarios/3-overdue-query.test.js scenarios/4-standby-read.test.js scenarios/5-declared-deadline.test.js"}
# Scenarios share one cluster and its settings: run them one after another.
# The runner gets a process group of its own (job control on), so that the
# cleanup can end everything it started; waiting in the background lets the
# traps run as soon as a stop request arrives.
set -m
# shellcheck disable=SC2086
node --test --test-concurrency=1 $TESTS &
NODE_PGID=$!
set +m
rc=0
wait "$NODE_PGID" || rc=$?
exit $rc
