'use strict';
// Scenario 3: a reporting function whose query takes longer than the
// function's deadline. The deadline returns control to the handler, but the
// query keeps running on the server (and keeps its pooled server connection).
const knex = require('knex');
const { proxy, deadline, quietKnexLog } = require('./common');

let lastQueryOutcome = null; // what finally happened to an abandoned query

const db = knex({ client: 'pg', connection: { ...proxy }, pool: { min: 0, max: 1 }, log: quietKnexLog });

exports.handler = async (event, context) => {
  if (event.outcome) return lastQueryOutcome; // test probe
  const started = Date.now();
  const query = db
    .raw('SELECT count(*) AS n FROM accounts, pg_sleep(?)', [event.queryS ?? 30])
    .then(
      (r) => { lastQueryOutcome = { ok: true, afterMs: Date.now() - started }; return r.rows[0]; },
      (err) => { lastQueryOutcome = { ok: false, code: err.code, error: err.message, afterMs: Date.now() - started }; throw err; },
    );
  context.progress('query sent');
  return deadline(event.deadlineMs ?? 1500, () => query);
};

exports.shutdown = () => db.destroy();
