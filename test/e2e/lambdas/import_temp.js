'use strict';
// Scenario 2: an import function that stages ids in a temporary table
// (default ON COMMIT PRESERVE ROWS), a classic pattern that is fine on a
// direct connection and leaks through a transaction pooler.
const knex = require('knex');
const { proxy, deadline, quietKnexLog } = require('./common');

const db = knex({ client: 'pg', connection: { ...proxy }, pool: { min: 0, max: 1 }, log: quietKnexLog });

exports.handler = async (event) =>
  deadline(event.deadlineMs ?? 3000, async () => {
    await db.raw('CREATE TEMP TABLE IF NOT EXISTS import_batch (id int)');
    await db.raw('INSERT INTO import_batch SELECT g FROM generate_series(1, 5) g');
    const n = (await db.raw('SELECT count(*)::int AS n FROM accounts WHERE id IN (SELECT id FROM import_batch)')).rows[0].n;
    return { matched: n };
  });

exports.shutdown = () => db.destroy();
