'use strict';
// Scenario 3: an invocation whose query outlives its deadline. The handler
// gives up after 1.5 s, but the query would keep running for 30 s on a pooled
// server connection. active_timeout cancels it server-side.

const test = require('node:test');
const assert = require('node:assert/strict');
const {
  cfg, waitFor, adminClient, configureGuard, LambdaEnv, stopAll,
} = require('../lib/harness');

const ACTIVE_TIMEOUT_MS = 3000;
const DEADLINE_MS = 1500;
const QUERY_S = 30;

test('scenario 3: a query that outlives its deadline is cancelled by active_timeout', { timeout: 90000 }, async (t) => {
  const admin = await adminClient();
  t.after(async () => {
    await stopAll();
    if (cfg.guard) await configureGuard(admin, { active_timeout: 0 }).catch(() => {});
    await admin.end();
  });
  if (!cfg.guard) {
    t.skip('pg_lambdaguard not installed (E2E_NO_GUARD)');
    return;
  }
  await configureGuard(admin, {
    enabled: 'on', dry_run: 'off', active_timeout: ACTIVE_TIMEOUT_MS, pinned_idle_timeout: 0,
  });
  const lastHistoryId = Number((await admin.query('SELECT coalesce(max(id), 0) AS id FROM lambdaguard.history')).rows[0].id);

  const env = new LambdaEnv('slow_report.js', { name: 'lambda-report' });
  await env.ready;
  const call = env.invoke({ deadlineMs: DEADLINE_MS, queryS: QUERY_S });
  const running = await waitFor('the report query to run on the server', async () => {
    const r = await admin.query(
      `SELECT pid, query_start, query_start::text AS query_start_text FROM pg_stat_activity
        WHERE application_name = 'lambda-report' AND state = 'active' AND query LIKE '%pg_sleep%'`,
    );
    return r.rows[0];
  });
  const result = await call;
  console.log(`scenario3: the invocation returned after ${(result.ms / 1000).toFixed(2)} s: ${result.ok ? 'ok' : result.error}`);
  assert.equal(result.ok, false);
  assert.equal(result.code, 'DEADLINE');

  // the caller is gone; the query is still running until the guard cancels it
  const stillRunning = await admin.query(`SELECT state FROM pg_stat_activity WHERE pid = $1`, [running.pid]);
  assert.equal(stillRunning.rows[0] && stillRunning.rows[0].state, 'active', 'the abandoned query keeps running');
  await waitFor('the overdue query to stop', async () => {
    const r = await admin.query(
      `SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query_start::text = $2`,
      [running.pid, running.query_start_text],
    );
    return r.rowCount === 0;
  }, { timeoutMs: 20000, intervalMs: 50 });
  const ranS = (Date.now() - new Date(running.query_start).getTime()) / 1000;

  const hist = (await admin.query(
    `SELECT pid, verdict, action, usename, application_name, host(client_addr) AS client_addr, query
       FROM lambdaguard.history WHERE id > $1 AND pid = $2 ORDER BY id`, [lastHistoryId, running.pid],
  )).rows;
  const outcome = await waitFor('the abandoned query to settle in the environment', async () => {
    const r = await env.invoke({ outcome: true });
    return r.ok && r.value;
  });
  console.log(
    `scenario3: query of pid ${running.pid} (pg_sleep(${QUERY_S})) stopped ${ranS.toFixed(2)} s after it started,` +
      ` ${(ranS - DEADLINE_MS / 1000).toFixed(2)} s after its caller's deadline (active_timeout ${ACTIVE_TIMEOUT_MS / 1000} s);` +
      ` the abandoned promise saw ${outcome.ok ? 'success' : `${outcome.code} "${outcome.error}"`}`,
  );
  for (const h of hist) {
    console.log(`scenario3: history: pid ${h.pid} ${h.usename} app=${h.application_name} client_addr=${h.client_addr} verdict=${h.verdict} action=${h.action}`);
  }

  assert.ok(ranS < QUERY_S / 2, `the query ran ${ranS} s`);
  assert.ok(ranS >= ACTIVE_TIMEOUT_MS / 1000 - 0.2, `cancelled too early (${ranS} s)`);
  const cancel = hist.find((h) => h.verdict === 'overdue_query');
  assert.ok(cancel, `no overdue_query history row for pid ${running.pid}`);
  assert.equal(cancel.action, 'cancel');
  assert.equal(cancel.application_name, 'lambda-report');
  assert.equal(cancel.client_addr, '127.0.0.1');
  assert.ok(!hist.some((h) => h.action === 'terminate'), 'a cancel was enough: no terminate');
  assert.equal(outcome.ok, false);
  assert.equal(outcome.code, '57014', 'query_canceled');

  // the environment's pooled connection is usable again
  const next = await env.invoke({ deadlineMs: 3000, queryS: 0.1 });
  console.log(`scenario3: next invocation in the same environment: ${next.ok ? 'ok' : next.error} in ${(next.ms / 1000).toFixed(2)} s`);
  assert.ok(next.ok, `next invocation failed: ${next.error}`);
});
