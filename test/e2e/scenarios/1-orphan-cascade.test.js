'use strict';
// Scenario 1, the first incident: a function frozen in the middle of a
// transaction (SIGSTOP after its UPDATE, before COMMIT, as a timed-out
// Lambda environment is) holds a row lock and a PgBouncer server connection.
// Every other invocation that touches the row queues behind it and misses its
// deadline: a cascade. With the guard on, the worker terminates the orphan
// (verdict orphan_blocking) and the others go through.

const test = require('node:test');
const assert = require('node:assert/strict');
const {
  cfg, sleep, waitFor, adminClient, configureGuard, LambdaEnv, stopAll,
} = require('../lib/harness');
const pg = require('pg');

const ENVIRONMENTS = 4; // warm environments serving the traffic
const WINDOW_MS = 8000; // the fixed window in which failures are counted
const INTERVAL_MS = 500; // one invocation every 500 ms -> 16 invocations
const DEADLINE_MS = 1500; // each invocation's own deadline
const BLOCKING_TIMEOUT_MS = 1000;

async function bouncerWaiting() {
  const c = new pg.Client({
    host: cfg.pgHost, port: cfg.bouncerPort, user: cfg.appUser, password: cfg.appPassword, database: 'pgbouncer',
  });
  await c.connect();
  try {
    const r = await c.query({ text: 'SHOW POOLS', queryMode: 'simple' });
    const p = r.rows.find((x) => x.database === cfg.database && x.user === cfg.appUser);
    return p ? { waiting: Number(p.cl_waiting), active: Number(p.sv_active) } : { waiting: 0, active: 0 };
  } finally {
    await c.end();
  }
}

async function runCascade(admin, guard) {
  const label = guard ? 'guard on' : 'guard off';
  if (cfg.guard) {
    await configureGuard(admin, {
      enabled: guard ? 'on' : 'off',
      dry_run: 'off',
      blocking_timeout: BLOCKING_TIMEOUT_MS,
      idle_in_transaction_timeout: 60000,
      aborted_transaction_timeout: 10000,
      pinned_idle_timeout: 0,
      active_timeout: 0,
    });
  }
  const lastHistoryId = cfg.guard
    ? Number((await admin.query('SELECT coalesce(max(id), 0) AS id FROM lambdaguard.history')).rows[0].id)
    : 0;

  // warm environments, as after a few minutes of traffic
  const frozen = new LambdaEnv('transfer.js', { name: 'lambda-frozen' });
  const envs = Array.from({ length: ENVIRONMENTS }, () => new LambdaEnv('transfer.js', { name: 'lambda-payments' }));
  await Promise.all([frozen, ...envs].map((e) => e.ready));
  for (const e of [frozen, ...envs]) {
    const r = await e.invoke({ deadlineMs: 5000 });
    assert.ok(r.ok, `warm-up invocation failed: ${r.error}`);
  }

  // the invocation that times out: UPDATE done, waiting on a slow downstream
  // call, and the environment is frozen right there
  const frozenCall = frozen.invoke({ deadlineMs: 2000, downstreamMs: 3000 });
  await frozen.progress('updated');
  frozen.freeze();
  const frozenAt = Date.now();
  const orphan = await waitFor('the frozen session to be idle in transaction', async () => {
    const r = await admin.query(
      `SELECT pid, backend_start FROM pg_stat_activity
        WHERE application_name = 'lambda-frozen' AND state = 'idle in transaction'`,
    );
    return r.rows[0];
  });

  // the fixed window: one invocation every INTERVAL_MS, round robin over the environments
  const windowStart = Date.now();
  const calls = [];
  let maxWaiting = 0;
  const sampler = (async () => {
    while (Date.now() - windowStart < WINDOW_MS) {
      maxWaiting = Math.max(maxWaiting, (await bouncerWaiting()).waiting);
      await sleep(250);
    }
  })();
  for (let i = 0; i * INTERVAL_MS < WINDOW_MS; i++) {
    const due = windowStart + i * INTERVAL_MS;
    if (due > Date.now()) await sleep(due - Date.now());
    calls.push(envs[i % ENVIRONMENTS].invoke({ deadlineMs: DEADLINE_MS }));
  }
  const results = await Promise.all(calls);
  await sampler;
  const failed = results.filter((r) => !r.ok);
  const successes = results.filter((r) => r.ok).map((r) => r.startedAt + r.ms - windowStart);
  const firstSuccessS = successes.length ? Math.min(...successes) / 1000 : null;
  const errors = {};
  for (const r of failed) errors[r.error] = (errors[r.error] || 0) + 1;
  console.log(
    `scenario1 (${label}): ${failed.length}/${results.length} invocations failed in ${WINDOW_MS / 1000} s;` +
      ` first success after ${firstSuccessS === null ? 'none' : `${firstSuccessS.toFixed(2)} s`};` +
      ` max clients waiting in PgBouncer for a server: ${maxWaiting}; errors: ${JSON.stringify(errors)}`,
  );

  const out = {
    total: results.length, failed: failed.length, firstSuccessS, maxWaiting, orphanPid: orphan.pid, frozenAt,
  };

  if (guard) {
    const row = await waitFor('the history row of the terminated orphan', async () => {
      const r = await admin.query(
        `SELECT id, at, pid, usename, datname, application_name, host(client_addr) AS client_addr,
                verdict, action, locks_held, blocked_pids, state, state_since
           FROM lambdaguard.history WHERE id > $1 AND pid = $2 ORDER BY id`,
        [lastHistoryId, orphan.pid],
      );
      return r.rows[0];
    });
    out.history = row;
    out.orphanGoneAfterS = (new Date(row.at).getTime() - frozenAt) / 1000;
    const stillThere = await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [orphan.pid]);
    out.orphanStillThere = stillThere.rowCount > 0;
    console.log(
      `scenario1 (${label}): history: pid ${row.pid} ${row.usename}@${row.datname} app=${row.application_name}` +
        ` client_addr=${row.client_addr} verdict=${row.verdict} action=${row.action} locks_held=${row.locks_held}` +
        ` blocked_pids=${JSON.stringify(row.blocked_pids)}; terminated ${out.orphanGoneAfterS.toFixed(2)} s after the freeze`,
    );
  }

  // the frozen environment is thawed (its next invocation arrives)
  const thawedAt = Date.now();
  frozen.thaw();
  const frozenResult = await frozenCall;
  // the handler returned at its deadline; its transaction settles on its own
  const { lastTx } = await waitFor('the frozen transaction to settle', async () => {
    const r = await frozen.invoke({ probe: true });
    return r.ok && !r.value.lastTx.pending && r.value;
  });
  const next = await frozen.invoke({ deadlineMs: 5000 });
  out.frozenResult = frozenResult;
  out.frozenTx = lastTx;
  out.next = next;
  out.recoveryS = (Date.now() - thawedAt) / 1000;
  console.log(
    `scenario1 (${label}): frozen invocation ended with ${frozenResult.ok ? 'success' : `"${frozenResult.error}"`},` +
      ` its transaction ${lastTx.committed ? 'committed' : `failed: "${lastTx.error}"`};` +
      ` next invocation in that environment: ${next.ok ? 'ok' : `failed "${next.error}"`}` +
      ` ${next.ok ? `(connections opened by its pool: ${next.value.connectionsOpened})` : ''}` +
      ` ${out.recoveryS.toFixed(2)} s after the thaw`,
  );

  await stopAll();
  // everything has drained before the next phase
  await waitFor('the proxy sessions to be quiet', async () => {
    const r = await admin.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND state <> 'idle'`, [cfg.appUser],
    );
    return r.rows[0].n === 0;
  }, { timeoutMs: 20000 });
  return out;
}

test('scenario 1: a frozen invocation mid-transaction, cascade without and with the guard', { timeout: 150000 }, async (t) => {
  const admin = await adminClient();
  t.after(async () => {
    await stopAll();
    await admin.end();
  });

  const off = await runCascade(admin, false);
  // without the guard most invocations miss their deadline behind the lock
  assert.ok(off.failed >= off.total / 2, `expected a cascade without the guard, got ${off.failed}/${off.total} failures`);
  assert.equal(off.frozenTx.committed, true, 'without the guard the frozen transaction commits when it resumes');

  if (!cfg.guard) {
    console.log(`scenario1: failed invocations without guard = ${off.failed}/${off.total} (guard not installed: E2E_NO_GUARD)`);
    t.skip('pg_lambdaguard not installed (E2E_NO_GUARD)');
    return;
  }

  const on = await runCascade(admin, true);
  console.log(
    `scenario1: failed invocations without guard = ${off.failed}/${off.total}, with guard = ${on.failed}/${on.total};` +
      ` seconds to recovery: without guard = ${off.firstSuccessS === null ? `none within ${WINDOW_MS / 1000} s` : off.firstSuccessS.toFixed(2)},` +
      ` with guard = ${on.firstSuccessS === null ? 'none' : on.firstSuccessS.toFixed(2)}` +
      ` (orphan terminated ${on.orphanGoneAfterS.toFixed(2)} s after the freeze, blocking_timeout ${BLOCKING_TIMEOUT_MS / 1000} s);` +
      ` frozen environment recovered ${on.recoveryS.toFixed(2)} s after the thaw`,
  );

  assert.ok(on.failed < off.failed, 'the guard must reduce failures');
  assert.ok(on.failed <= 1, `with the guard at most the first invocation may fail, got ${on.failed}`);
  assert.equal(on.history.verdict, 'orphan_blocking');
  assert.equal(on.history.action, 'terminate');
  assert.equal(on.history.usename, cfg.appUser);
  assert.equal(on.history.application_name, 'lambda-frozen');
  assert.equal(on.history.client_addr, '127.0.0.1', 'client_addr is PgBouncer\'s address');
  assert.ok(on.history.blocked_pids && on.history.blocked_pids.length >= 1, 'blocked_pids names the waiting sessions');
  assert.equal(on.orphanStillThere, false, 'the orphan session is gone');
  // the frozen invocation itself had timed out; after the thaw its
  // environment serves the next invocation on a fresh connection
  assert.equal(on.frozenResult.ok, false);
  assert.equal(on.frozenTx.committed, false, 'the orphan\'s transaction was rolled back, not committed');
  assert.ok(on.next.ok, `next invocation after the thaw failed: ${on.next.error}`);
  assert.equal(on.next.value.connectionsOpened, 2, 'the pool replaced the broken connection');
});
