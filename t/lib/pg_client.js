// A node-postgres client for the TAP tests: one connection, driven by JSON
// lines on stdin ({"text": ..., "values": [...], "name": ...}); each answer
// is one JSON line on stdout ({"rows": [...]} or {"error": ..., "code": ...}).
// When the server ends the connection it prints {"dead": ...} and exits.
'use strict';

const { Client } = require('pg');
const readline = require('readline');

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function main() {
  const client = new Client({
    host: process.env.LG_HOST,
    port: Number(process.env.LG_PORT),
    user: process.env.LG_USER,
    database: process.env.LG_DB,
    application_name: process.env.LG_APPNAME,
  });
  client.on('error', (err) => {
    say({ dead: String(err.message), code: err.code || null });
    process.exit(0);
  });
  client.on('end', () => {
    say({ dead: 'connection ended', code: null });
    process.exit(0);
  });
  await client.connect();
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() === '') continue;
    const q = JSON.parse(line);
    try {
      const res = await client.query(q);
      say({ rows: res.rows.map((r) => Object.values(r)) });
    } catch (err) {
      say({ error: String(err.message), code: err.code || null });
    }
  }
  await client.end();
}

main().catch((err) => {
  say({ dead: String(err.message), code: err.code || null });
  process.exit(1);
});
