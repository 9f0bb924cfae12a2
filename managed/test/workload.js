'use strict';
// Sends the pinning workload of the managed edition's test through
// PgBouncer: the end-to-end suite's Lambda handlers (lambdas/report_set.js,
// import_temp.js, job_lock.js) and lambdas/every_reason.js, each in a Lambda
// environment of its own (lib/runtime.js), one after another.
// Prints one JSON line per invocation; exits non-zero if one failed.
//
//   node workload.js <suite dir with lambdas/ and lib/>
const path = require('node:path');
const { fork } = require('node:child_process');

const dir = path.resolve(process.argv[2] || '.');

function environment(handler, name, env = {}) {
  const child = fork(path.join(dir, 'lib', 'runtime.js'), [path.join(dir, 'lambdas', handler)], {
    env: { ...process.env, LAMBDA_NAME: name, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let next = 1;
  const pending = new Map();
  const ready = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.on('message', (m) => {
      if (m.type === 'ready') resolve();
      else if (m.type === 'result' && pending.has(m.id)) {
        pending.get(m.id)(m);
        pending.delete(m.id);
      }
    });
  });
  child.on('exit', () => {
    for (const [, p] of pending) p({ ok: false, error: 'environment exited' });
  });
  return {
    ready,
    invoke(event = {}) {
      const id = next++;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        child.send({ type: 'invoke', id, event });
      });
    },
    stop() {
      return new Promise((resolve) => {
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => { clearTimeout(t); resolve(); });
        child.send({ type: 'shutdown' });
      });
    },
  };
}

const RUNS = [
  { handler: 'report_set.js', name: 'lambda-set', times: 2 },
  { handler: 'import_temp.js', name: 'lambda-temp', times: 2 },
  { handler: 'job_lock.js', name: 'lambda-lock', times: 2, event: { lockKey: 77 } },
  { handler: 'every_reason.js', name: 'lambda-every-reason', times: 2 },
  {
    handler: 'every_reason.js', name: 'lambda-every-reason-su', times: 1, event: { superuser: true },
    env: { E2E_HANDLER_USER: process.env.E2E_SUPERUSER || 'postgres', E2E_HANDLER_PASSWORD: '' },
  },
];

(async () => {
  let failed = 0;
  for (const run of RUNS) {
    const e = environment(run.handler, run.name, run.env);
    await e.ready;
    for (let i = 0; i < run.times; i++) {
      const r = await e.invoke(run.event || {});
      console.log(JSON.stringify({ lambda: run.name, ok: r.ok, value: r.value, error: r.error }));
      if (!r.ok) failed++;
    }
    await e.stop();
  }
  process.exit(failed ? 1 : 0);
})().catch((err) => {
  console.error(err);
  process.exit(2);
});
