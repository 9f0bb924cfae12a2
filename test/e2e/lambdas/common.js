'use strict';
// What every handler module shares: where the proxy is, and the deadline
// wrapper from the first incident's write-up (a deadline shorter than the
// platform's, so the handler returns instead of being killed).

const proxy = {
  host: process.env.E2E_PGHOST,
  port: Number(process.env.E2E_BOUNCER_PORT), // PgBouncer, never PostgreSQL itself
  user: process.env.E2E_APP_USER,
  password: process.env.E2E_APP_PASSWORD,
  database: process.env.E2E_DATABASE,
  application_name: process.env.LAMBDA_NAME,
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class DeadlineError extends Error {
  constructor(ms) {
    super(`deadline ${ms}ms exceeded`);
    this.code = 'DEADLINE';
  }
}

/** Promise.race against a timer: the operation is abandoned, not stopped. */
function deadline(timeoutInMs, operation) {
  let timer;
  return Promise.race([
    operation(),
    new Promise((_resolve, reject) => {
      timer = setTimeout(() => reject(new DeadlineError(timeoutInMs)), timeoutInMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

// knex logs every queued acquire it aborts when the environment shuts down
const quietKnexLog = {
  warn(msg) {
    if (!/Acquire connection error: Error: aborted/.test(String(msg))) console.warn(msg);
  },
};

module.exports = { proxy, sleep, deadline, DeadlineError, quietKnexLog };
