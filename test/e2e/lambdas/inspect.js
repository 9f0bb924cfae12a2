'use strict';
// An innocent function that only reads: it reports the session state it
// finds on the server connection PgBouncer handed it (all in one
// transaction, so all on one server connection).
const knex = require('knex');
const { proxy, deadline, quietKnexLog } = require('./common');

const db = knex({ client: 'pg', connection: { ...proxy }, pool: { min: 0, max: 1 }, log: quietKnexLog });

exports.handler = async (event) =>
  deadline(event.deadlineMs ?? 3000, () =>
    db.transaction(async (trx) => {
      const r = await trx.raw(`
        SELECT pg_backend_pid() AS server_pid,
               current_setting('statement_timeout') AS statement_timeout,
               (SELECT count(*)::int FROM pg_prepared_statements) AS prepared_statements,
               (SELECT count(*)::int FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temp_relations,
               (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks`);
      return r.rows[0];
    }),
  );

exports.shutdown = () => db.destroy();
