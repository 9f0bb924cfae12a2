'use strict';
// Scenario 1: a payment-style function. Every invocation credits the same
// account row inside a transaction; some also call a slow downstream service
// before committing (that is where a timed-out function gets frozen).
const knex = require('knex');
const { proxy, sleep, deadline, quietKnexLog } = require('./common');

let connectionsOpened = 0;
let lastTx = null; // how the previous invocation's transaction really ended

// module level: created once per environment, reused by every invocation
const db = knex({
  client: 'pg',
  connection: { ...proxy },
  pool: {
    min: 0,
    max: 1,
    afterCreate(conn, done) {
      connectionsOpened += 1;
      done(null, conn);
    },
  },
  acquireConnectionTimeout: 10000,
  log: quietKnexLog,
});

exports.handler = async (event, context) => {
  if (event.probe) return { lastTx, connectionsOpened }; // test probe, touches no database
  lastTx = { pending: true };
  const tx = db.transaction(async (trx) => {
    const [row] = await trx('accounts')
      .where({ id: event.accountId ?? 1 })
      .increment('balance', 1)
      .returning(['balance']);
    const downstream = event.downstreamMs ? sleep(event.downstreamMs) : null; // the slow downstream call
    context.progress('updated'); // test probe: the environment may be frozen from here on
    if (downstream) await downstream;
    return { balance: Number(row.balance), connectionsOpened };
  });
  tx.then(
    () => { lastTx = { committed: true }; },
    (err) => { lastTx = { committed: false, error: err.message }; },
  );
  return deadline(event.deadlineMs ?? 2000, () => tx);
};

exports.shutdown = () => db.destroy();
