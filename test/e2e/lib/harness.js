'use strict';
// Shared helpers for the scenarios: connection settings handed over by run.sh,
// an admin connection straight to PostgreSQL, settings changes, bounded polls
// and "Lambda environments" (one Node child process each).

const path = require('node:path');
const { fork } = require('node:child_process');
const pg = require('pg');

function env(name) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    throw new Error(`${name} is not set: run the suite through test/e2e/run.sh`);
  }
  return v;
}

const cfg = {
  pgHost: env('E2E_PGHOST'),
  pgPort: Number(env('E2E_PGPORT')),
  pgSocket: env('E2E_PGSOCKET'),
  bouncerPort: Number(env('E2E_BOUNCER_PORT')),
  appUser: env('E2E_APP_USER'),
  appPassword: env('E2E_APP_PASSWORD'),
  database: env('E2E_DATABASE'),
  guard: process.env.E2E_GUARD === '1',
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll fn() until it returns a truthy value; fail after timeoutMs. */
async function waitFor(what, fn, { timeoutMs = 15000, intervalMs = 100 } = {}) {
  const t0 = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(intervalMs);
  }
}

/** A superuser connection straight to PostgreSQL (Unix socket), not through PgBouncer. */
async function adminClient() {
  const c = new pg.Client({
    host: cfg.pgSocket,
    port: cfg.pgPort,
    user: 'postgres',
    database: cfg.database,
    application_name: 'e2e-admin',
  });
  await c.connect();
  return c;
}

/** A client of PgBouncer's admin console (SHOW SERVERS, ...). */
async function bouncerConsole() {
  const c = new pg.Client({
    host: cfg.pgHost,
    port: cfg.bouncerPort,
    user: cfg.appUser,
    password: cfg.appPassword,
    database: 'pgbouncer',
  });
  await c.connect();
  return c;
}

/** Server connections of PgBouncer's pool: [{remote_pid, state, ...}] */
async function bouncerServers() {
  const c = await bouncerConsole();
  try {
    // the console speaks the simple protocol only
    const r = await c.query({ text: 'SHOW SERVERS', queryMode: 'simple' });
    return r.rows.map((s) => ({ ...s, remote_pid: Number(s.remote_pid) }));
  } finally {
    await c.end();
  }
}

function lit(v) {
  return `'${String(v).replace(/'/g, "''")}'`;
}

/**
 * Set lambdaguard.* settings with ALTER SYSTEM + pg_reload_conf(), check that a
 * fresh session sees them, and wait until the worker has scanned twice more
 * (so it has processed the reload).
 */
async function configureGuard(admin, settings) {
  for (const [k, v] of Object.entries(settings)) {
    await admin.query(`ALTER SYSTEM SET lambdaguard.${k} = ${lit(v)}`);
  }
  await admin.query('SELECT pg_reload_conf()');
  await waitFor('the new lambdaguard settings to be visible', async () => {
    const c = await adminClient();
    try {
      for (const [k, v] of Object.entries(settings)) {
        const r = await c.query('SELECT setting, unit FROM pg_settings WHERE name = $1', [`lambdaguard.${k}`]);
        if (r.rows.length === 0) throw new Error(`setting lambdaguard.${k} does not exist`);
        const { setting } = r.rows[0];
        const want = String(v);
        const norm = (s) => s.toLowerCase().replace(/\s+/g, '');
        if (norm(setting) !== norm(want) && !(want.endsWith('ms') && norm(setting) === norm(want.slice(0, -2)))) {
          return false;
        }
      }
      return true;
    } finally {
      await c.end();
    }
  });
  const enabled = (await admin.query("SELECT current_setting('lambdaguard.enabled') AS v")).rows[0].v;
  if (enabled === 'on') {
    await waitForScans(admin, 2);
  } else {
    // switched off, the worker does not scan: wait until the scan counter
    // stays still for three naptimes
    const naptime = Number((await admin.query("SELECT setting FROM pg_settings WHERE name = 'lambdaguard.naptime'")).rows[0].setting);
    const scans = async () => Number((await admin.query('SELECT scans FROM lambdaguard.worker')).rows[0].scans);
    let last = await scans();
    let since = Date.now();
    await waitFor('the worker to stop scanning', async () => {
      const now = await scans();
      if (now !== last) {
        last = now;
        since = Date.now();
      }
      return Date.now() - since >= 3 * naptime;
    }, { intervalMs: 50 });
  }
}

/** Wait until the background worker has completed n more scans. */
async function waitForScans(admin, n = 1, timeoutMs = 15000) {
  const scans = async () => Number((await admin.query('SELECT scans FROM lambdaguard.worker')).rows[0].scans);
  const s0 = await scans();
  await waitFor(`${n} more worker scans`, async () => (await scans()) >= s0 + n, { timeoutMs, intervalMs: 50 });
}

/** Sessions of the proxy's role as PostgreSQL sees them. */
async function appBackends(admin) {
  const r = await admin.query(
    `SELECT pid, state, application_name, client_addr::text AS client_addr, backend_start
       FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend' ORDER BY pid`,
    [cfg.appUser],
  );
  return r.rows;
}

// ---------------------------------------------------------------------------
// Lambda environments

const RUNTIME = path.join(__dirname, 'runtime.js');
const live = new Set();

/**
 * One execution environment: a Node process that loads a handler module once
 * (module-level pools survive between invocations, as in Lambda) and runs one
 * invocation at a time.
 */
class LambdaEnv {
  constructor(handler, { name, env = {} } = {}) {
    this.name = name || path.basename(handler, '.js');
    this.child = fork(RUNTIME, [path.join(__dirname, '..', 'lambdas', handler)], {
      env: { ...process.env, LAMBDA_NAME: this.name, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.nextId = 1;
    this.pending = new Map();
    this.progressWaiters = [];
    this.frozen = false;
    this.exited = false;
    this.ready = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      this.child.on('message', (m) => {
        if (m.type === 'ready') resolve();
        else if (m.type === 'result') {
          const p = this.pending.get(m.id);
          if (p) {
            this.pending.delete(m.id);
            p(m);
          }
        } else if (m.type === 'progress') {
          for (const w of this.progressWaiters) w(m);
        }
      });
    });
    this.child.on('exit', () => {
      this.exited = true;
      live.delete(this);
      for (const [, p] of this.pending) p({ ok: false, error: 'environment exited', code: 'ENVEXIT' });
      this.pending.clear();
    });
    live.add(this);
  }

  get pid() {
    return this.child.pid;
  }

  /**
   * Invoke the handler; resolves with {ok, value | error, code, ms, requestId}.
   * options.timeoutMs: this invocation's timeout (getRemainingTimeInMillis()),
   * else the environment's LAMBDA_TIMEOUT_MS, else 3000.
   */
  invoke(event = {}, { timeoutMs } = {}) {
    const id = this.nextId++;
    const started = Date.now();
    return new Promise((resolve) => {
      this.pending.set(id, (m) => resolve({ ...m, startedAt: started }));
      this.child.send({ type: 'invoke', id, event, timeoutMs });
    });
  }

  /** Resolve when the running invocation reports the given stage. */
  progress(stage) {
    return new Promise((resolve) => {
      const w = (m) => {
        if (m.stage === stage) {
          this.progressWaiters = this.progressWaiters.filter((x) => x !== w);
          resolve(m);
        }
      };
      this.progressWaiters.push(w);
    });
  }

  freeze() {
    process.kill(this.child.pid, 'SIGSTOP');
    this.frozen = true;
  }

  thaw() {
    if (this.frozen && !this.exited) process.kill(this.child.pid, 'SIGCONT');
    this.frozen = false;
  }

  async stop() {
    if (this.exited) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.thaw();
    this.child.send({ type: 'shutdown' }, () => {});
    const t = setTimeout(() => {
      if (!this.exited) this.child.kill('SIGKILL');
    }, 3000);
    await gone;
    clearTimeout(t);
  }
}

async function stopAll() {
  await Promise.all([...live].map((e) => e.stop()));
}

// Never leave a child behind, even when a test throws: stop them once the
// file's tests are done (a frozen child is thawed first), and kill whatever
// is left when the process exits.
require('node:test').after(stopAll);
process.on('exit', () => {
  for (const e of live) {
    try {
      process.kill(e.child.pid, 'SIGCONT');
      process.kill(e.child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

module.exports = {
  cfg,
  sleep,
  waitFor,
  adminClient,
  bouncerServers,
  configureGuard,
  waitForScans,
  appBackends,
  LambdaEnv,
  stopAll,
};
