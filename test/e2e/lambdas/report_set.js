'use strict';
// Scenario 2: a reporting function that sets a per-request statement timeout
// with a plain SET (session level), the way many handlers do. Behind a
// transaction pooler the SET lands on whatever server connection served it
// and stays there for the next client.
const knex = require('knex');
const { proxy, deadline, quietKnexLog } = require('./common');

const db = knex({ client: 'pg', connection: { ...proxy }, pool: { min: 0, max: 1 }, log: quietKnexLog });

exports.handler = async (event) =>
  deadline(event.deadlineMs ?? 3000, async () => {
    await db.raw("SET statement_timeout = '5s'");
    const rows = await db('accounts').select('id', 'balance').orderBy('id').limit(3);
    const pid = (await db.raw('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    return { rows: rows.length, serverPid: pid };
  });

exports.shutdown = () => db.destroy();
