'use strict';
// Scenario 4: the read path. PgBouncer in front of a streaming hot standby;
// an invocation frozen mid-transaction there (a REPEATABLE READ snapshot,
// which hot_standby_feedback holds against the primary's VACUUM). The worker
// on the standby terminates it after idle_in_transaction_timeout, records it
// in lambdaguard.standby_history, and the later invocations succeed.

const test = require('node:test');
const assert = require('node:assert/strict');
const pg = require('pg');
const {
  cfg, waitFor, LambdaEnv, stopAll,
} = require('../lib/harness');

const IDLE_TIMEOUT_MS = 2000;
const ENVIRONMENTS = 3;

async function standbyAdmin() {
  const c = new pg.Client({
    host: cfg.pgSocket,
    port: Number(process.env.E2E_STANDBY_PORT),
    user: 'postgres',
    database: cfg.database,
    application_name: 'e2e-admin',
  });
  await c.connect();
  return c;
}

test('scenario 4: a function frozen mid-transaction on a standby is terminated there; later reads succeed', { timeout: 90000 }, async (t) => {
  if (!cfg.guard) {
    t.skip('pg_lambdaguard not installed (E2E_NO_GUARD)');
    return;
  }
  const standby = await standbyAdmin();
  t.after(async () => {
    await stopAll();
    await standby.query('ALTER SYSTEM RESET ALL').catch(() => {});
    await standby.query('SELECT pg_reload_conf()').catch(() => {});
    await standby.end();
  });
  assert.equal((await standby.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'the standby is in recovery');
  await standby.query(`ALTER SYSTEM SET lambdaguard.enabled = on`);
  await standby.query(`ALTER SYSTEM SET lambdaguard.idle_in_transaction_timeout = ${IDLE_TIMEOUT_MS}`);
  await standby.query('SELECT pg_reload_conf()');
  await waitFor('the worker on the standby with the new settings', async () => {
    const r = await standby.query(
      `SELECT (SELECT pid FROM lambdaguard.worker) IS NOT NULL
              AND current_setting('lambdaguard.idle_in_transaction_timeout') = '2s' AS ok`,
    );
    return r.rows[0].ok;
  });

  const frozen = new LambdaEnv('read_report.js', { name: 'lambda-read-frozen' });
  const envs = Array.from({ length: ENVIRONMENTS }, () => new LambdaEnv('read_report.js', { name: 'lambda-read' }));
  await Promise.all([frozen.ready, ...envs.map((e) => e.ready)]);

  // the downstream call ends right after the thaw: the transaction then meets
  // its terminated connection and gives it back to the pool
  const call = frozen.invoke({ deadlineMs: 1000, downstreamMs: 1500 });
  await frozen.progress('read');
  frozen.freeze();
  const frozenAt = Date.now();
  const orphan = await waitFor('the frozen read on the standby', async () => {
    const r = await standby.query(
      `SELECT pid, xmin_age FROM lambdaguard.sessions
        WHERE application_name = 'lambda-read-frozen' AND state = 'idle in transaction'`,
    );
    return r.rows[0];
  });
  assert.ok(orphan.xmin_age !== null, 'the frozen REPEATABLE READ transaction holds a snapshot (xmin_age)');

  // later invocations, one every 300 ms, for 5 s
  const results = [];
  const until = Date.now() + 5000;
  let i = 0;
  while (Date.now() < until) {
    results.push(envs[i % ENVIRONMENTS].invoke({ deadlineMs: 2000 }));
    i += 1;
    await new Promise((r) => setTimeout(r, 300));
  }
  const done = await Promise.all(results);

  await waitFor('the frozen session to be terminated', async () => {
    const r = await standby.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [orphan.pid]);
    return r.rowCount === 0;
  });
  const goneAfterS = (Date.now() - frozenAt) / 1000;
  const rec = (await standby.query(
    `SELECT verdict, action, usename, application_name, host(client_addr) AS client_addr,
            extract(epoch FROM at - state_since)::float8 AS after_s
       FROM lambdaguard.standby_history WHERE pid = $1`, [orphan.pid],
  )).rows;
  const inHistory = (await standby.query('SELECT count(*)::int AS n FROM lambdaguard.history WHERE pid = $1', [orphan.pid])).rows[0].n;

  frozen.thaw();
  const frozenResult = await call;
  const next = await frozen.invoke({ deadlineMs: 3000 });
  const failed = done.filter((r) => !r.ok);
  console.log(
    `scenario4: reads through PgBouncer on the standby: ${done.length - failed.length}/${done.length} succeeded while one was frozen;` +
      ` frozen session (pid ${orphan.pid}, xmin_age ${orphan.xmin_age}) terminated within ${goneAfterS.toFixed(2)} s of the freeze;` +
      ` standby_history: ${rec.map((h) => `${h.verdict}/${h.action} ${h.usename} app=${h.application_name} client_addr=${h.client_addr} after ${h.after_s.toFixed(3)} s`).join('; ')};` +
      ` frozen invocation: ${frozenResult.ok ? 'ok' : frozenResult.code}; next invocation after the thaw: ${next.ok ? 'ok' : next.error}`,
  );
  assert.equal(failed.length, 0, `failed reads: ${failed.map((r) => r.error).join(', ')}`);
  assert.equal(rec.length, 1, 'one record in lambdaguard.standby_history');
  assert.equal(rec[0].verdict, 'orphan');
  assert.equal(rec[0].action, 'terminate');
  assert.equal(rec[0].client_addr, '127.0.0.1', 'the session came through PgBouncer');
  assert.ok(rec[0].after_s >= IDLE_TIMEOUT_MS / 1000, `terminated after ${rec[0].after_s} s`);
  assert.equal(inHistory, 0, 'the standby cannot write lambdaguard.history: nothing there');
  assert.equal(frozenResult.ok, false, 'the frozen invocation had timed out');
  assert.ok(next.ok, `the next invocation of the thawed environment failed: ${next.error}`);
});
