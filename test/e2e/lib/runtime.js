'use strict';
// A minimal stand-in for the Lambda Node.js runtime: load the handler module
// once (its module-level state, like a connection pool, lives as long as the
// environment), then run invocations one at a time as the parent sends them.
// Freezing the environment is done from outside with SIGSTOP / SIGCONT, as
// Lambda does between invocations and after a timeout.
//
// The context has a real getRemainingTimeInMillis(): the function's timeout
// (env LAMBDA_TIMEOUT_MS, default 3000 ms as Lambda's; or the invoke option
// timeoutMs) minus the time since the invocation started.  The runtime does
// not end an invocation at its timeout: the test freezes the environment
// there, as Lambda does.

const { randomUUID } = require('node:crypto');

const mod = require(process.argv[2]);
const DEFAULT_TIMEOUT_MS = Number(process.env.LAMBDA_TIMEOUT_MS || 3000);

process.on('message', async (m) => {
  if (m.type === 'shutdown') {
    try {
      if (typeof mod.shutdown === 'function') await mod.shutdown();
    } finally {
      process.exit(0);
    }
  }
  if (m.type !== 'invoke') return;
  const t0 = Date.now();
  const timeoutMs = Number(m.timeoutMs || DEFAULT_TIMEOUT_MS);
  const requestId = randomUUID();
  const context = {
    functionName: process.env.LAMBDA_NAME,
    awsRequestId: requestId,
    getRemainingTimeInMillis: () => Math.max(0, t0 + timeoutMs - Date.now()),
    // test probe: lets the parent know how far the handler got
    progress: (stage, data = {}) => process.send({ type: 'progress', id: m.id, requestId, stage, ...data }),
  };
  let reply;
  try {
    const value = await mod.handler(m.event || {}, context);
    reply = { ok: true, value };
  } catch (err) {
    reply = { ok: false, error: String((err && err.message) || err), code: err && err.code };
  }
  reply.ms = Date.now() - t0;
  reply.requestId = requestId;
  reply.timeoutMs = timeoutMs;
  if (process.connected) process.send({ type: 'result', id: m.id, ...reply });
});

// the parent went away: an environment never outlives its test
process.on('disconnect', () => process.exit(0));

process.send({ type: 'ready' });
