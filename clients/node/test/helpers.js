'use strict'
// Shared by the test files: the throwaway cluster of run.sh, Lambda-like
// contexts and the expected comment written out by hand (not with the code
// under test).

const connection = {
  host: process.env.LGN_PGHOST || '127.0.0.1',
  port: Number(process.env.LGN_PGPORT || 5432),
  user: process.env.LGN_PGUSER || 'postgres',
  database: process.env.LGN_PGDATABASE || 'postgres'
}

// The text of the statement that runs it, as the server received it.
const SELF_TEXT = 'SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()'

let seq = 0
const contexts = new Map()

// A context like the one the Lambda runtime passes: the remaining time is
// counted down from a fixed deadline.
function fakeContext (remainingMs = 30000) {
  const deadline = Date.now() + remainingMs
  const n = ++seq
  const ctx = {
    deadline,
    awsRequestId: `0000000${n}-aaaa-4bbb-8ccc-${String(n).padStart(12, '0')}`,
    functionName: 'orders-api',
    getRemainingTimeInMillis: () => deadline - Date.now()
  }
  contexts.set(ctx.awsRequestId, ctx)
  return ctx
}

// The deadline sent is Date.now() + getRemainingTimeInMillis(), two clock
// readings that may be a millisecond apart (as in the real runtime): a text
// whose deadline is within 2 ms of its context's gets that context's exact
// deadline, so that tests can compare whole texts.
function settle (text) {
  const m = /lambdaguard_deadline='(\d+)',request_id='([^']+)'/.exec(text)
  const ctx = m && contexts.get(m[2])
  if (!ctx || Math.abs(Number(m[1]) - ctx.deadline) > 2) return text
  return text.replace(`lambdaguard_deadline='${m[1]}'`, `lambdaguard_deadline='${ctx.deadline}'`)
}

function expectedComment (ctx) {
  return `/*lambdaguard_deadline='${ctx.deadline}',request_id='${ctx.awsRequestId}'*/`
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

module.exports = { connection, SELF_TEXT, fakeContext, expectedComment, settle, sleep }
