'use strict';
// Scenario 2: a scheduled job that makes sure only one instance runs, with a
// session-level advisory lock. Through a transaction pooler the lock and the
// unlock may run on different server connections: the unlock then fails
// (returns false) and the lock stays held by a pooled server connection.
const knex = require('knex');
const { proxy, deadline, quietKnexLog } = require('./common');

const db = knex({ client: 'pg', connection: { ...proxy }, pool: { min: 0, max: 1 }, log: quietKnexLog });

exports.handler = async (event) =>
  deadline(event.deadlineMs ?? 3000, async () => {
    const got = (await db.raw('SELECT pg_try_advisory_lock(?) AS got', [event.lockKey ?? 42])).rows[0].got;
    let unlocked = null;
    if (got) {
      await db('accounts').where({ id: 3 }).increment('balance', 1);
      unlocked = (await db.raw('SELECT pg_advisory_unlock(?) AS ok', [event.lockKey ?? 42])).rows[0].ok;
    }
    return { got, unlocked };
  });

exports.shutdown = () => db.destroy();
