'use strict';
// Scenario 5: the invocation declares its deadline (pg_lambdaguard 1.2).
// A knex function instrumented with pg-lambdaguard-context (clients/node)
// sends a sqlcommenter comment with every statement: its deadline (start +
// getRemainingTimeInMillis()), its awsRequestId and a traceparent. Through
// PgBouncer in transaction mode (pool of 3):
//   - an invocation that commits before its deadline is never touched;
//   - a pinning statement (SET) is recorded with the invocation's request id;
//   - an invocation with a 2 s timeout updates a row and is frozen at its
//     timeout (SIGSTOP, as Lambda does): the worker ends its transaction at
//     deadline + deadline_grace (verdict deadline_passed), although
//     idle_in_transaction_timeout is 60 s, blocking_timeout is off and the
//     naptime is 5 s; 19 later invocations that need the same row lock all
//     succeed.

const test = require('node:test');
const assert = require('node:assert/strict');
const { randomBytes } = require('node:crypto');
const {
  cfg, sleep, waitFor, adminClient, configureGuard, LambdaEnv, stopAll,
} = require('../lib/harness');

const NAPTIME_MS = 5000; // the e2e value is 200 ms: the worker must wake for the deadline
const GRACE_MS = 1000;
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 60000;
const FROZEN_TIMEOUT_MS = 2000; // the frozen invocation's function timeout = its declared deadline
const BOUND_MS = FROZEN_TIMEOUT_MS + GRACE_MS + 1500; // generous: the contract says deadline + grace + 10 ms
const LATER = 19; // invocations after the frozen one
const INTERVAL_MS = 150; // one every 150 ms, right after the frozen one's UPDATE
const TRAFFIC_TIMEOUT_MS = 6000; // their own function timeout
const IN_TIME_TIMEOUT_MS = 1500;
const ACCOUNT = 5; // the row they all update

const traceparent = () => `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;

/**
 * Environments of one function, scaled out as Lambda does: an invocation goes
 * to an idle environment, or to a new one (cold start) when all are busy
 * (the test warms enough of them first, so none is needed in the window).
 */
class Fleet {
  constructor(handler, opts) {
    this.handler = handler;
    this.opts = opts;
    this.envs = [];
  }

  async add() {
    const slot = { env: new LambdaEnv(this.handler, this.opts), busy: false };
    this.envs.push(slot);
    await slot.env.ready;
    return slot;
  }

  async invoke(event, options) {
    let slot = this.envs.find((s) => !s.busy);
    if (!slot) {
      slot = { env: new LambdaEnv(this.handler, this.opts), busy: true };
      this.envs.push(slot);
      await slot.env.ready;
    }
    slot.busy = true;
    try {
      return await slot.env.invoke(event, options);
    } finally {
      slot.busy = false;
    }
  }
}

async function historySince(admin, id) {
  const r = await admin.query(
    `SELECT id, (extract(epoch FROM at) * 1000)::float8 AS at_ms, pid, backend_start::text AS backend_start,
            usename, application_name, host(client_addr) AS client_addr, state, verdict, action, locks_held,
            client_context
       FROM lambdaguard.history WHERE id > $1 ORDER BY id`,
    [id],
  );
  return r.rows;
}

const maxHistoryId = async (admin) =>
  Number((await admin.query('SELECT coalesce(max(id), 0) AS id FROM lambdaguard.history')).rows[0].id);

test('scenario 5: declared deadlines through PgBouncer: a frozen invocation ends at deadline + grace, others untouched', { timeout: 150000 }, async (t) => {
  const admin = await adminClient();
  const poller = await adminClient();
  t.after(async () => {
    await stopAll();
    if (cfg.guard) await configureGuard(admin, { naptime: 200 }).catch(() => {});
    await poller.end();
    await admin.end();
  });
  if (!cfg.guard) {
    t.skip('pg_lambdaguard not installed (E2E_NO_GUARD)');
    return;
  }
  await configureGuard(admin, {
    enabled: 'on',
    dry_run: 'off',
    naptime: NAPTIME_MS,
    deadline_grace: GRACE_MS,
    idle_in_transaction_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
    aborted_transaction_timeout: 60000,
    blocking_timeout: 0,
    pinned_idle_timeout: 0,
    active_timeout: 0,
  });

  // --- 1. in time: committed before its deadline, never touched -------------
  const quick = new LambdaEnv('deadline.js', {
    name: 'lambda-deadline-quick', env: { LAMBDA_TIMEOUT_MS: String(IN_TIME_TIMEOUT_MS) },
  });
  await quick.ready;
  let lastId = await maxHistoryId(admin);
  const inTime = await quick.invoke({ accountId: ACCOUNT + 1, traceparent: traceparent() });
  assert.ok(inTime.ok, `the in-time invocation failed: ${inTime.error}`);
  const quickServer = inTime.value.server;
  // its last statement (COMMIT) carried its comment
  const seen = (await admin.query('SELECT query FROM pg_stat_activity WHERE pid = $1', [quickServer.pid])).rows[0];
  assert.ok(seen && seen.query.includes(`request_id='${inTime.requestId}'`),
    `the server saw the invocation's comment: ${seen && seen.query}`);
  assert.match(seen.query, /lambdaguard_deadline='\d{13}'/);
  // well past its deadline + grace
  await sleep(inTime.startedAt + IN_TIME_TIMEOUT_MS + GRACE_MS + 1500 - Date.now());
  const touched = await historySince(admin, lastId);
  const stillThere = await admin.query(
    'SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_start::text = $2', [quickServer.pid, quickServer.backend_start],
  );
  const again = await quick.invoke({ accountId: ACCOUNT + 1 });
  console.log(
    `scenario5: in time: invocation ${inTime.requestId} committed in ${inTime.ms} ms (timeout ${IN_TIME_TIMEOUT_MS} ms, server pid ${quickServer.pid});` +
      ` ${Math.round(Date.now() - inTime.startedAt - IN_TIME_TIMEOUT_MS - GRACE_MS)} ms after its deadline + grace:` +
      ` history rows ${touched.length}, its server connection ${stillThere.rowCount ? 'still there' : 'gone'},` +
      ` next invocation ${again.ok ? `ok (connections opened by its pool: ${again.value.connectionsOpened})` : `failed: ${again.error}`}`,
  );
  assert.deepEqual(touched, [], 'no history row: an invocation that finished in time is never touched');
  assert.equal(stillThere.rowCount, 1, 'its server connection was not terminated');
  assert.ok(again.ok, `its environment keeps working: ${again.error}`);
  assert.equal(again.value.connectionsOpened, 1, 'on the same connection');

  // --- 2. a pinning statement names its invocation ---------------------------
  const setTp = traceparent();
  const set = await quick.invoke({ kind: 'set', traceparent: setTp });
  assert.ok(set.ok, `the SET invocation failed: ${set.error}`);
  const events = await waitFor('the pinning event of the SET', async () => {
    const r = await admin.query(
      `SELECT pid, usename, application_name, reason, statement, client_context
         FROM lambdaguard.pinning_events WHERE client_context->>'request_id' = $1 ORDER BY event_time`,
      [set.requestId],
    );
    return r.rows.length > 0 && r.rows;
  }, { timeoutMs: 5000 });
  for (const e of events) {
    console.log(
      `scenario5: pinning event: pid ${e.pid} ${e.usename} app=${e.application_name} reason=${e.reason}` +
        ` statement=${JSON.stringify(e.statement)} client_context=${JSON.stringify(e.client_context)}`,
    );
  }
  const setEvent = events.find((e) => /^SET statement_timeout/.test(e.statement));
  assert.ok(setEvent, 'the SET is among the events with its request id');
  assert.equal(setEvent.reason, 'set');
  assert.equal(setEvent.pid, set.value.server.pid, 'on the server connection the invocation used');
  assert.equal(setEvent.usename, cfg.appUser);
  assert.equal(setEvent.client_context.request_id, set.requestId);
  assert.equal(setEvent.client_context.traceparent, setTp);
  assert.match(setEvent.client_context.lambdaguard_deadline, /^\d{13}$/);
  await quick.stop();

  // --- 3. frozen at its timeout mid-transaction ------------------------------
  const fleet = new Fleet('deadline.js', { name: 'lambda-deadline', env: { LAMBDA_TIMEOUT_MS: String(TRAFFIC_TIMEOUT_MS) } });
  // warm environments (one per later invocation: each waits for the lock, so
  // they overlap), as after a few minutes of traffic
  const slots = await Promise.all(Array.from({ length: LATER }, () => fleet.add()));
  for (const r of await Promise.all(slots.map((slot) => slot.env.invoke({ accountId: ACCOUNT })))) {
    assert.ok(r.ok, `warm-up invocation failed: ${r.error}`);
  }
  const frozen = new LambdaEnv('deadline.js', { name: 'lambda-deadline-frozen' });
  await frozen.ready;
  const warm = await frozen.invoke({ accountId: ACCOUNT }, { timeoutMs: 5000 });
  assert.ok(warm.ok, `warm-up invocation failed: ${warm.error}`);
  lastId = await maxHistoryId(admin);

  const frozenTp = traceparent();
  const frozenStartedAt = Date.now();
  // UPDATE done, then a slow downstream call (4 s) outlives its 2 s timeout
  const frozenCall = frozen.invoke({ accountId: ACCOUNT, downstreamMs: 4000, traceparent: frozenTp }, { timeoutMs: FROZEN_TIMEOUT_MS });
  const updated = await frozen.progress('updated');
  const { server } = updated;
  // the platform freezes the environment at its timeout
  const freezeTimer = new Promise((resolve) => {
    setTimeout(() => { frozen.freeze(); resolve(Date.now()); }, frozenStartedAt + FROZEN_TIMEOUT_MS - Date.now());
  });

  // what the server knows about it now
  const live = (await admin.query(
    `SELECT (extract(epoch FROM deadline) * 1000)::float8 AS deadline_ms, action_at - deadline AS grace,
            state, verdict, client_context FROM lambdaguard.sessions WHERE pid = $1`,
    [server.pid],
  )).rows[0];
  assert.ok(live, 'the frozen invocation\'s server connection is in lambdaguard.sessions');
  assert.equal(live.client_context.request_id, updated.requestId);
  assert.ok(Math.abs(live.deadline_ms - (frozenStartedAt + FROZEN_TIMEOUT_MS)) < 250,
    `sessions.deadline is the invocation's start + its timeout (off by ${Math.round(live.deadline_ms - frozenStartedAt - FROZEN_TIMEOUT_MS)} ms)`);
  assert.equal(live.grace && live.grace.seconds, 1, 'action_at = deadline + deadline_grace');

  // when the backend is gone, seen from outside (20 ms polls)
  let goneAt = null;
  const gone = waitFor('the frozen invocation\'s backend to be gone', async () => {
    const r = await poller.query(
      'SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_start::text = $2', [server.pid, server.backend_start],
    );
    if (r.rowCount === 0) goneAt = Date.now();
    return r.rowCount === 0;
  }, { timeoutMs: 20000, intervalMs: 20 });

  // 19 later invocations, other environments, the same row, the same pool of 3
  const calls = [];
  const trafficStart = Date.now();
  for (let i = 0; i < LATER; i++) {
    const due = trafficStart + i * INTERVAL_MS;
    if (due > Date.now()) await sleep(due - Date.now());
    calls.push(fleet.invoke({ accountId: ACCOUNT }));
  }
  const frozenAt = await freezeTimer;
  await gone;
  const results = await Promise.all(calls);
  const rows = await waitFor('the history row of the frozen invocation', async () => {
    const r = await historySince(admin, lastId);
    return r.some((h) => h.pid === server.pid) && r;
  }, { timeoutMs: 10000 });
  const h = rows.find((x) => x.pid === server.pid);
  const declared = Number(h.client_context && h.client_context.lambdaguard_deadline);
  const due = declared + GRACE_MS;
  const lateMs = h.at_ms - due;
  const afterStartMs = h.at_ms - frozenStartedAt;
  const failed = results.filter((r) => !r.ok);
  const waited = Math.max(...results.map((r) => r.startedAt + r.ms - trafficStart)) / 1000;

  console.log(
    `scenario5: frozen invocation ${updated.requestId} (timeout ${FROZEN_TIMEOUT_MS} ms, frozen ${frozenAt - frozenStartedAt} ms after it started):` +
      ` terminated ${(afterStartMs / 1000).toFixed(3)} s after it started, history.at - (deadline + grace) = ${lateMs.toFixed(1)} ms,` +
      ` backend gone (20 ms polls) ${goneAt - due} ms after deadline + grace` +
      ` (deadline_grace ${GRACE_MS} ms, idle_in_transaction_timeout ${IDLE_IN_TRANSACTION_TIMEOUT_MS / 1000} s, blocking_timeout off, naptime ${NAPTIME_MS / 1000} s)`,
  );
  console.log(
    `scenario5: history: pid ${h.pid} ${h.usename} app=${h.application_name} client_addr=${h.client_addr} state=${h.state}` +
      ` verdict=${h.verdict} action=${h.action} locks_held=${h.locks_held} client_context=${JSON.stringify(h.client_context)}`,
  );
  console.log(
    `scenario5: later invocations: ${results.length - failed.length}/${results.length} succeeded` +
      ` (${fleet.envs.length} environments, PgBouncer default_pool_size 3), the last one done ${waited.toFixed(2)} s after the first started` +
      `${failed.length ? `; errors: ${JSON.stringify(failed.map((r) => r.error))}` : ''}`,
  );

  assert.equal(h.verdict, 'deadline_passed');
  assert.equal(h.action, 'terminate');
  assert.equal(h.state, 'idle in transaction');
  assert.equal(h.backend_start, server.backend_start);
  assert.equal(h.usename, cfg.appUser);
  assert.equal(h.application_name, 'lambda-deadline-frozen');
  assert.equal(h.client_addr, '127.0.0.1', 'client_addr is PgBouncer\'s address');
  assert.equal(h.client_context.request_id, updated.requestId, 'history names the invocation (awsRequestId)');
  assert.equal(h.client_context.traceparent, frozenTp, 'and its trace');
  assert.ok(Math.abs(declared - (frozenStartedAt + FROZEN_TIMEOUT_MS)) < 250, 'the declared deadline is start + timeout');
  assert.ok(lateMs >= 0, `not before deadline + grace (${lateMs} ms)`);
  assert.ok(afterStartMs < BOUND_MS, `ended ${afterStartMs} ms after the start, bound ${BOUND_MS} ms`);
  assert.deepEqual(rows.filter((x) => x.pid !== server.pid), [], 'no other session was touched');
  assert.equal(failed.length, 0, 'every later invocation succeeded');

  // the platform thaws the environment for its next invocation
  frozen.thaw();
  const frozenResult = await frozenCall;
  const next = await frozen.invoke({ accountId: ACCOUNT }, { timeoutMs: 5000 });
  console.log(
    `scenario5: frozen invocation ended with ${frozenResult.ok ? 'success' : `"${frozenResult.error}"`};` +
      ` next invocation after the thaw: ${next.ok ? `ok (connections opened by its pool: ${next.value.connectionsOpened})` : `failed: ${next.error}`}`,
  );
  assert.equal(frozenResult.ok, false, 'the frozen invocation had timed out');
  assert.ok(next.ok, `next invocation after the thaw failed: ${next.error}`);
});
