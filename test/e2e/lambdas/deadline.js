'use strict';
// Scenario 5: a payment-style function instrumented with pg-lambdaguard-context
// (clients/node): every statement it sends through knex (on pg) carries a
// sqlcommenter comment with the invocation's deadline (now + the context's
// getRemainingTimeInMillis()), its awsRequestId and a W3C traceparent.
//
//   event.kind = 'transfer' (default): credits one account row in a
//     transaction; with event.downstreamMs it then waits on a slow downstream
//     call before committing (where a timed-out environment is frozen)
//   event.kind = 'set': a session-level SET (and its RESET) in a transaction:
//     a pinning statement, harmless to the next client of the server connection
const { instrumentPg, withInvocation } = require('../lib/context-helper');

instrumentPg(require('pg')); // knex's pg dialect uses this same module
const knex = require('knex');
const { proxy, sleep, deadline, quietKnexLog } = require('./common');

let connectionsOpened = 0;

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

const backend = (trx) => trx.raw(
  'SELECT pid, backend_start::text AS backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()',
).then((r) => r.rows[0]);

async function transfer(event, context) {
  const tx = db.transaction(async (trx) => {
    const [row] = await trx('accounts')
      .where({ id: event.accountId ?? 5 })
      .increment('balance', 1)
      .returning(['balance']);
    const server = await backend(trx);
    const downstream = event.downstreamMs ? sleep(event.downstreamMs) : null; // the slow downstream call
    context.progress('updated', { server }); // test probe: the environment may be frozen from here on
    if (downstream) await downstream;
    return { balance: Number(row.balance), server, connectionsOpened };
  });
  tx.catch(() => {}); // abandoned at the timeout: settles on its own
  // the function's own timeout, as the platform would enforce it
  return deadline(context.getRemainingTimeInMillis(), () => tx);
}

async function setStatementTimeout() {
  return db.transaction(async (trx) => {
    await trx.raw("SET statement_timeout = '20s'");
    const server = await backend(trx);
    await trx.raw('RESET statement_timeout');
    return { server, connectionsOpened };
  });
}

exports.handler = (event, context) =>
  withInvocation(
    context,
    () => (event.kind === 'set' ? setStatementTimeout() : transfer(event, context)),
    { traceparent: event.traceparent },
  );

exports.shutdown = () => db.destroy();
