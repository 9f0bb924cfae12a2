'use strict';
// A minimal stand-in for the Lambda Node.js runtime: load the handler module
// once (its module-level state, like a connection pool, lives as long as the
// environment), then run invocations one at a time as the parent sends them.
// Freezing the environment is done from outside with SIGSTOP / SIGCONT, as
// Lambda does between invocations and after a timeout.

const mod = require(process.argv[2]);

let seq = 0;

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
  const context = {
    functionName: process.env.LAMBDA_NAME,
    awsRequestId: `${process.pid}-${++seq}`,
    // test probe: lets the parent know how far the handler got
    progress: (stage, data = {}) => process.send({ type: 'progress', id: m.id, stage, ...data }),
  };
  let reply;
  try {
    const value = await mod.handler(m.event || {}, context);
    reply = { ok: true, value };
  } catch (err) {
    reply = { ok: false, error: String((err && err.message) || err), code: err && err.code };
  }
  reply.ms = Date.now() - t0;
  if (process.connected) process.send({ type: 'result', id: m.id, ...reply });
});

// the parent went away: an environment never outlives its test
process.on('disconnect', () => process.exit(0));

process.send({ type: 'ready' });
