'use strict';
// Scenario 2: the same kind of function written with `postgres` (porsager),
// which prepares every query as a named statement of the extended protocol
// by default (prepare: true). PgBouncer 1.18 in transaction mode does not
// track them: they pile up on the server connections.
const postgres = require('postgres');
const { proxy, deadline } = require('./common');

const sql = postgres({
  host: proxy.host,
  port: proxy.port,
  user: proxy.user,
  pass: proxy.password,
  database: proxy.database,
  connection: { application_name: proxy.application_name },
  max: 1,
  onnotice: () => {},
});

exports.handler = async (event) =>
  deadline(event.deadlineMs ?? 3000, async () => {
    const id = event.accountId ?? 2;
    const [row] = await sql`SELECT id, balance FROM accounts WHERE id = ${id}`;
    const [{ pid }] = await sql`SELECT pg_backend_pid() AS pid`;
    return { balance: Number(row.balance), serverPid: pid };
  });

exports.shutdown = () => sql.end({ timeout: 1 });
