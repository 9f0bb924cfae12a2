'use strict';
// Scenario 2, the second incident: functions that change session state
// (SET, a named prepared statement, a temp table, a session advisory lock)
// through PgBouncer in transaction mode. pg_lambdaguard names every reason
// with the proxy's role and the function's application_name; the small server
// pool ends up with every connection dirty; pinned_idle_timeout frees them.

const test = require('node:test');
const assert = require('node:assert/strict');
const {
  cfg, waitFor, adminClient, bouncerServers, configureGuard, LambdaEnv, stopAll,
} = require('../lib/harness');

const KINDS = [
  { handler: 'report_set.js', name: 'lambda-set', reason: 'set' },
  { handler: 'report_prepared.js', name: 'lambda-prepared', reason: 'protocol_prepared_statement' },
  { handler: 'import_temp.js', name: 'lambda-temp', reason: 'temp_table' },
  { handler: 'job_lock.js', name: 'lambda-lock', reason: 'advisory_lock' },
];
const ENVS_PER_KIND = 2;
const MAX_ROUNDS = 8;
const PINNED_IDLE_TIMEOUT_MS = 1000;

/** PgBouncer's server connections for our pool, with what PostgreSQL knows of each. */
async function pool(admin) {
  const servers = (await bouncerServers()).filter((s) => s.database === cfg.database && s.user === cfg.appUser);
  const pids = servers.map((s) => s.remote_pid);
  if (!cfg.guard) return servers.map((s) => ({ pid: s.remote_pid, bouncer_state: s.state }));
  const r = await admin.query(
    `SELECT pid, state, pinned, pin_reasons, dirty_reasons, host(client_addr) AS client_addr
       FROM lambdaguard.sessions WHERE pid = ANY($1::int[]) ORDER BY pid`,
    [pids],
  );
  return r.rows.map((row) => ({ ...row, bouncer_state: servers.find((s) => s.remote_pid === row.pid).state }));
}

const isDirty = (s) => Array.isArray(s.dirty_reasons) && s.dirty_reasons.length > 0;
// what pinned_idle acts on: any reason but a named protocol-level statement
// (drivers that name their statements keep one on every pooled connection)
const isFreeable = (s) => isDirty(s) &&
  [...s.dirty_reasons, ...(s.pin_reasons || [])].some((r) => r !== 'protocol_prepared_statement');

test('scenario 2: session state through PgBouncer, pinning reasons, a dirty pool freed', { timeout: 120000 }, async (t) => {
  const admin = await adminClient();
  t.after(async () => {
    await stopAll();
    if (cfg.guard) await configureGuard(admin, { pinned_idle_timeout: 0 }).catch(() => {});
    await admin.end();
  });

  let lastHistoryId = 0;
  if (cfg.guard) {
    await configureGuard(admin, {
      enabled: 'on', dry_run: 'off', pinned_idle_timeout: 0, active_timeout: 0,
    });
    await admin.query('SELECT lambdaguard.reset()');
    lastHistoryId = Number((await admin.query('SELECT coalesce(max(id), 0) AS id FROM lambdaguard.history')).rows[0].id);
  }
  // start from an empty server pool: PgBouncer opens fresh server connections
  const before = await bouncerServers();
  for (const s of before.filter((x) => x.database === cfg.database)) {
    await admin.query('SELECT pg_terminate_backend($1)', [s.remote_pid]);
  }
  await waitFor('PgBouncer to drop the old server connections', async () =>
    (await bouncerServers()).filter((x) => x.database === cfg.database).length === 0);

  const envs = [];
  for (const k of KINDS) {
    for (let i = 0; i < ENVS_PER_KIND; i++) envs.push({ kind: k, env: new LambdaEnv(k.handler, { name: k.name }) });
  }
  await Promise.all(envs.map((e) => e.env.ready));

  // concurrent traffic, round after round, until every server connection of
  // the pool carries session state (bounded)
  const failures = Object.fromEntries(KINDS.map((k) => [k.name, 0]));
  const invocations = Object.fromEntries(KINDS.map((k) => [k.name, 0]));
  const errors = {};
  let leakedLocks = 0;
  let rounds = 0;
  let servers = [];
  for (rounds = 1; rounds <= MAX_ROUNDS; rounds++) {
    const results = await Promise.all(envs.map(async (e) => ({ e, r: await e.env.invoke({}) })));
    for (const { e, r } of results) {
      invocations[e.kind.name] += 1;
      if (!r.ok) {
        failures[e.kind.name] += 1;
        const key = `${e.kind.name}: ${r.error}`;
        errors[key] = (errors[key] || 0) + 1;
      }
      if (r.ok && e.kind.name === 'lambda-lock' && r.value.unlocked === false) leakedLocks += 1;
    }
    servers = await pool(admin);
    if (!cfg.guard && rounds >= 3) break;
    if (cfg.guard && servers.length >= 3 && servers.every(isDirty)) break;
  }
  console.log(
    `scenario2: ${rounds} rounds of ${envs.length} concurrent invocations; failed per function: ${JSON.stringify(failures)}` +
      ` of ${JSON.stringify(invocations)}; advisory unlocks that ran on another server connection: ${leakedLocks}`,
  );
  for (const [k, n] of Object.entries(errors)) console.log(`scenario2: error x${n}: ${k}`);

  // what an innocent read-only function finds on the connections it is handed
  const inspector = new LambdaEnv('inspect.js', { name: 'lambda-inspect' });
  await inspector.ready;
  const seen = [];
  for (let i = 0; i < 3; i++) {
    const r = await inspector.invoke({});
    assert.ok(r.ok, `inspect failed: ${r.error}`);
    seen.push(r.value);
  }
  for (const v of seen) {
    console.log(
      `scenario2: a read-only invocation was handed server pid ${v.server_pid}: statement_timeout=${v.statement_timeout},` +
        ` prepared statements=${v.prepared_statements}, temp relations=${v.temp_relations}, advisory locks=${v.advisory_locks}`,
    );
  }
  await inspector.stop();

  if (!cfg.guard) {
    t.skip('pg_lambdaguard not installed (E2E_NO_GUARD)');
    return;
  }

  // --- every reason, named with PgBouncer's role and the application_name
  const events = (await admin.query(
    `SELECT application_name, reason, usename, host(client_addr) AS client_addr, count(*)::int AS n,
            bool_or(hidden) AS hidden
       FROM lambdaguard.pinning_events WHERE usename = $1
      GROUP BY 1, 2, 3, 4 ORDER BY 1, 2`, [cfg.appUser],
  )).rows;
  const stats = (await admin.query(
    `SELECT usename, datname, reason, events, sessions, last_seen
       FROM lambdaguard.pinning_stats WHERE usename = $1 ORDER BY reason`, [cfg.appUser],
  )).rows;
  for (const e of events) {
    console.log(`scenario2: pinning_events: ${e.usename} ${e.application_name} from ${e.client_addr}: ${e.reason} x${e.n}`);
  }
  for (const s of stats) {
    console.log(`scenario2: pinning_stats: ${s.usename}@${s.datname} ${s.reason}: events=${s.events} sessions=${s.sessions}`);
  }
  console.log(`scenario2: reasons seen: ${[...new Set(stats.map((s) => s.reason))].join(', ')}`);
  for (const k of KINDS) {
    const e = events.find((x) => x.application_name === k.name && x.reason === k.reason);
    assert.ok(e, `pinning_events has no ${k.reason} event for ${k.name}: ${JSON.stringify(events)}`);
    assert.equal(e.client_addr, '127.0.0.1', 'events carry PgBouncer\'s address');
    const s = stats.find((x) => x.reason === k.reason);
    assert.ok(s && Number(s.events) >= 1 && Number(s.sessions) >= 1, `pinning_stats has no ${k.reason} row for ${cfg.appUser}`);
  }

  // --- a server pool where every connection is dirty
  for (const s of servers) {
    console.log(
      `scenario2: server connection pid ${s.pid} (${s.bouncer_state} in PgBouncer, from ${s.client_addr}): ` +
        `pinned=${s.pinned} dirty_reasons={${s.dirty_reasons}} pin_reasons={${s.pin_reasons}}`,
    );
  }
  const dirtyPids = servers.filter(isDirty).map((s) => s.pid);
  console.log(`scenario2: dirty server connections: ${dirtyPids.length} of ${servers.length} (default_pool_size = 3)`);
  assert.equal(servers.length, 3, 'the pool grew to its 3 server connections');
  assert.equal(dirtyPids.length, servers.length, 'every server connection of the pool is dirty');

  // --- pinned_idle_timeout frees them, all but those whose only reason is a
  // named protocol-level statement
  const freedPids = servers.filter(isFreeable).map((s) => s.pid);
  const keptPids = dirtyPids.filter((pid) => !freedPids.includes(pid));
  const t0 = Date.now();
  await configureGuard(admin, { pinned_idle_timeout: PINNED_IDLE_TIMEOUT_MS });
  await waitFor('the pinned idle server connections to be terminated', async () => {
    const r = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1::int[])', [freedPids]);
    return r.rows[0].n === 0;
  }, { timeoutMs: 20000 });
  const freedS = (Date.now() - t0) / 1000;
  if (keptPids.length > 0) {
    // idle for twice the timeout: the guard had every chance, and left them
    await waitFor('the protocol-only server connections to be idle for twice the timeout', async () => {
      const r = await admin.query(
        `SELECT bool_and(now() - state_change > make_interval(secs => $2::float8 / 500)) AS old
           FROM pg_stat_activity WHERE pid = ANY($1::int[])`, [keptPids, PINNED_IDLE_TIMEOUT_MS]);
      return r.rows[0].old === true;
    }, { timeoutMs: 20000 });
    const alive = (await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1::int[])', [keptPids])).rows[0].n;
    assert.equal(alive, keptPids.length, 'a server connection whose only reason is protocol_prepared_statement is not terminated');
    console.log(`scenario2: ${keptPids.length} server connection(s) holding only named protocol-level statements left alone, as the contract says`);
  }
  const hist = (await admin.query(
    `SELECT pid, verdict, action, pin_reasons, host(client_addr) AS client_addr, application_name
       FROM lambdaguard.history WHERE id > $1 AND pid = ANY($2::int[]) ORDER BY id`, [lastHistoryId, dirtyPids],
  )).rows;
  for (const h of hist) {
    console.log(`scenario2: history: pid ${h.pid} verdict=${h.verdict} action=${h.action} pin_reasons={${h.pin_reasons}} client_addr=${h.client_addr}`);
  }
  console.log(`scenario2: pinned_idle_timeout = ${PINNED_IDLE_TIMEOUT_MS / 1000} s freed ${freedPids.length} dirty server connections in ${freedS.toFixed(2)} s`);
  for (const pid of keptPids) {
    assert.ok(!hist.some((x) => x.pid === pid), `a history row for the protocol-only server connection ${pid}`);
  }
  for (const pid of freedPids) {
    const h = hist.find((x) => x.pid === pid && x.verdict === 'pinned_idle');
    assert.ok(h, `no pinned_idle history row for pid ${pid}`);
    assert.equal(h.action, 'terminate');
    assert.ok(h.pin_reasons.length >= 1);
  }

  // --- PgBouncer notices and the next client gets a clean server connection
  await waitFor('PgBouncer to forget the terminated server connections', async () =>
    (await bouncerServers()).every((s) => !freedPids.includes(s.remote_pid)));
  await stopAll();
  const fresh = new LambdaEnv('inspect.js', { name: 'lambda-inspect' });
  await fresh.ready;
  const r = await fresh.invoke({});
  assert.ok(r.ok, `an invocation after the cleanup failed: ${r.error}`);
  console.log(
    `scenario2: after the cleanup a read-only invocation got server pid ${r.value.server_pid}: statement_timeout=${r.value.statement_timeout},` +
      ` prepared statements=${r.value.prepared_statements}, temp relations=${r.value.temp_relations}, advisory locks=${r.value.advisory_locks}`,
  );
  assert.ok(!freedPids.includes(r.value.server_pid));
  assert.equal(r.value.statement_timeout, '0');
  // a kept server connection holds named protocol-level statements only
  if (!keptPids.includes(r.value.server_pid)) assert.equal(r.value.prepared_statements, 0);
  assert.equal(r.value.temp_relations, 0);
  assert.equal(r.value.advisory_locks, 0);
});
