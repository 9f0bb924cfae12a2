'use strict';
// Scenario 4: a read-only function behind the reader pool (PgBouncer in front
// of a streaming standby). It reads in a REPEATABLE READ transaction, so its
// snapshot lives as long as the transaction, and some invocations call a slow
// downstream service before committing (where a timed-out function is frozen).
const knex = require('knex');
const { proxy, sleep, deadline, quietKnexLog } = require('./common');

const db = knex({
  client: 'pg',
  connection: { ...proxy, database: process.env.E2E_READ_DATABASE },
  pool: { min: 0, max: 1 },
  acquireConnectionTimeout: 10000,
  log: quietKnexLog,
});

exports.handler = async (event, context) => {
  const tx = db.transaction(async (trx) => {
    await trx.raw('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    const [row] = await trx('accounts').sum({ total: 'balance' }).count({ n: '*' });
    const downstream = event.downstreamMs ? sleep(event.downstreamMs) : null;
    context.progress('read'); // test probe: the environment may be frozen from here on
    if (downstream) await downstream;
    return { total: Number(row.total), n: Number(row.n) };
  });
  tx.catch(() => {});
  return deadline(event.deadlineMs ?? 2000, () => tx);
};

exports.shutdown = () => db.destroy();
