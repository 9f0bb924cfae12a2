'use strict';
// The managed edition's pinning audit: a function that sends, through
// PgBouncer in transaction mode, one statement of every pinning reason and
// one of each safe variant (knex over node-postgres, as the end-to-end
// suite's handlers). event.only runs one step (by name); event.superuser
// asks for the steps only a superuser may run (LOAD), on a connection of
// its own.
const knex = require('knex');
const { proxy, deadline, quietKnexLog } = require('./common');

const user = process.env.E2E_HANDLER_USER || proxy.user;
const db = knex({
  client: 'pg',
  connection: { ...proxy, user, password: process.env.E2E_HANDLER_PASSWORD || proxy.password },
  pool: { min: 0, max: 1 },
  log: quietKnexLog,
});

let held = 0;

// every step is one transaction (one server connection of the pool)
const STEPS = {
  set: ["SET statement_timeout = '5s'", 'RESET statement_timeout'],
  set_config: ["SELECT set_config('work_mem', '8MB', false)"],
  prepared_statement: [['BEGIN', 'PREPARE lg_stmt(int) AS SELECT $1 + 1', 'EXECUTE lg_stmt(1)', 'DEALLOCATE lg_stmt', 'COMMIT']],
  discard: ['DISCARD PLANS'],
  temp_table: ['CREATE TEMP TABLE IF NOT EXISTS lg_temp (id int)'],
  temp_sequence: ['CREATE TEMP SEQUENCE IF NOT EXISTS lg_temp_seq'],
  temp_view: ['CREATE OR REPLACE TEMP VIEW lg_temp_view AS SELECT 1 AS one'],
  cursor: [['BEGIN', 'DECLARE lg_cur CURSOR FOR SELECT id FROM accounts', 'FETCH 1 FROM lg_cur', 'CLOSE lg_cur', 'COMMIT']],
  // the held cursor stays on its server connection (the leak itself)
  cursor_with_hold: [() => ['BEGIN', `DECLARE lg_hold_${process.pid}_${++held} CURSOR WITH HOLD FOR SELECT id FROM accounts`, 'COMMIT']],
  listen: ['LISTEN lg_channel', 'UNLISTEN lg_channel'],
  sequence_function: ["SELECT nextval('app.lg_seq')", "SELECT setval('app.lg_seq', 10)"],
  advisory_lock: ['SELECT pg_advisory_lock(4242)', 'SELECT pg_advisory_unlock(4242)'],
  statement_too_large: [`SELECT ${Array(4000).fill('id').join(' + ')} AS big FROM accounts WHERE id = 1`],
  // safe variants: not reasons
  safe: [
    ['BEGIN', "SET LOCAL work_mem = '2MB'", 'SELECT pg_advisory_xact_lock(4343)',
      'CREATE TEMP TABLE lg_scratch (id int) ON COMMIT DROP', 'INSERT INTO lg_scratch VALUES (1)', 'COMMIT'],
  ],
};
const SUPERUSER_STEPS = { load: ["LOAD 'auto_explain'"] };

exports.handler = async (event) =>
  deadline(event.deadlineMs ?? 10000, async () => {
    const steps = event.superuser ? SUPERUSER_STEPS : STEPS;
    const done = [];
    for (const [name, stmts] of Object.entries(steps)) {
      if (event.only && event.only !== name) continue;
      for (const step of stmts) {
        const s = typeof step === 'function' ? step() : step;
        if (Array.isArray(s)) {
          // one transaction: the statements go to one server connection
          await db.transaction(async (trx) => {
            for (const q of s.slice(1, -1)) await trx.raw(q);
          });
        } else {
          await db.raw(s);
        }
      }
      done.push(name);
    }
    return { done };
  });

exports.shutdown = () => db.destroy();
