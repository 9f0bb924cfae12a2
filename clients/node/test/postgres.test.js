'use strict'
// postgres.js against a real PostgreSQL, with its default options (every
// tagged query prepared as a named statement): commented queries are sent
// unprepared, and pg_prepared_statements, read on the driver's own
// connection, does not grow over 100 invocations.

const test = require('node:test')
const assert = require('node:assert/strict')
const postgres = require('postgres')
const lg = require('..')
const { connection, SELF_TEXT, fakeContext, expectedComment, settle, sleep } = require('./helpers')

const { host, port, user, database } = connection
// one connection, so that every query and pg_prepared_statements share it
const sql = lg.instrumentPostgres(postgres({ host, port, user, database, max: 1, onnotice: () => {} }))

test.after(() => sql.end({ timeout: 5 }))

const PREPARED = 'SELECT pg_backend_pid() AS pid, count(*)::int AS n, ' +
  "count(*) FILTER (WHERE statement LIKE '%/*%')::int AS commented FROM pg_prepared_statements"

test('instrumentPostgres returns the same sql and is idempotent', async () => {
  assert.equal(lg.instrumentPostgres(sql), sql)
  const ctx = fakeContext()
  const [row] = await lg.withInvocation(ctx, async () => sql.unsafe(SELF_TEXT))
  assert.equal(settle(row.query), `${SELF_TEXT} ${expectedComment(ctx)}`)
})

test('a query returned unawaited from the handler runs inside the invocation', async () => {
  const ctx = fakeContext()
  const h = lg.handler(() => sql`SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()`)
  const [row] = await h({}, ctx)
  assert.equal(settle(row.query), `${SELF_TEXT} ${expectedComment(ctx)}`)
})

test('outside an invocation the text is sent unchanged (and prepared, as by default)', async () => {
  const [row] = await sql`SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid() AND ${1}::int = 1`
  assert.equal(settle(row.query), `${SELF_TEXT} AND $1::int = 1`)
  const [ps] = await sql.unsafe("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement = $1",
    [`${SELF_TEXT} AND $1::int = 1`])
  assert.equal(ps.n, 1)
})

test('tagged queries, with and without parameters, carry the comment and are not prepared', async () => {
  const ctx = fakeContext()
  const want = expectedComment(ctx)
  await lg.withInvocation(ctx, async () => {
    const [a] = await sql`SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()`
    assert.equal(settle(a.query), `${SELF_TEXT} ${want}`)
    const [b] = await sql`SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid() AND ${2}::int = 2 AND ${'x'} = 'x'`
    assert.equal(settle(b.query), `${SELF_TEXT} AND $1::int = 2 AND $2 = 'x' ${want}`)
    const [ps] = await sql.unsafe(PREPARED)
    assert.equal(ps.commented, 0)
  })
})

test('fragments and helpers: one comment, at the end of the whole text', async () => {
  const ctx = fakeContext()
  const want = expectedComment(ctx)
  await lg.withInvocation(ctx, async () => {
    const where = sql`WHERE pid = pg_backend_pid() AND ${3}::int = 3`
    const [a] = await sql`SELECT ${sql('query')} FROM pg_stat_activity ${where}`
    assert.equal(settle(a.query), `SELECT "query" FROM pg_stat_activity WHERE pid = pg_backend_pid() AND $1::int = 3 ${want}`)
    // the fragment itself was not changed: it can be used again
    const [b] = await sql`SELECT query FROM pg_stat_activity ${where} AND true`
    assert.equal(settle(b.query), `SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid() AND $1::int = 3 AND true ${want}`)
  })
})

test('sql.unsafe, simple and extended, carries the comment', async () => {
  const ctx = fakeContext()
  const want = expectedComment(ctx)
  await lg.withInvocation(ctx, async () => {
    const [a] = await sql.unsafe(SELF_TEXT)
    assert.equal(settle(a.query), `${SELF_TEXT} ${want}`)
    const [b] = await sql.unsafe(`${SELF_TEXT} AND $1::int = 1`, [1])
    assert.equal(settle(b.query), `${SELF_TEXT} AND $1::int = 1 ${want}`)
  })
})

test('sql.begin and savepoints: the queries inside carry the comment', async () => {
  const ctx = fakeContext()
  const want = expectedComment(ctx)
  const seen = await lg.withInvocation(ctx, () => sql.begin(async tx => {
    const out = []
    await sleep(1)
    out.push(settle((await tx`SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()`)[0].query))
    await tx.savepoint(async sp => {
      out.push(settle((await sp`SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()`)[0].query))
    })
    return out
  }))
  assert.deepEqual(seen, Array(2).fill(`${SELF_TEXT} ${want}`))
})

test('sql.reserve: the reserved connection\'s queries carry the comment', async () => {
  const ctx = fakeContext()
  const got = await lg.withInvocation(ctx, async () => {
    const reserved = await sql.reserve()
    try {
      return settle((await reserved`SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid() AND ${1}::int = 1`)[0].query)
    } finally {
      reserved.release()
    }
  })
  assert.equal(got, `${SELF_TEXT} AND $1::int = 1 ${expectedComment(ctx)}`)
})

test('explicitly prepared queries are left as they are: never a named statement with a comment', async () => {
  const ctx = fakeContext()
  const text = `${SELF_TEXT} AND $1::int = 4`
  await lg.withInvocation(ctx, async () => {
    const [a] = await sql.unsafe(text, [4], { prepare: true })
    assert.equal(settle(a.query), text)
    const described = await sql`SELECT ${5}::int AS described`.describe()
    assert.deepEqual(described.columns.map(c => c.name), ['described'])
    const [ps] = await sql.unsafe(PREPARED)
    assert.equal(ps.commented, 0)
  })
})

test('an error inside an invocation: rejected as usual, the connection stays usable', async () => {
  const ctx = fakeContext()
  await lg.withInvocation(ctx, async () => {
    await assert.rejects(sql`SELECT 1 / ${0}::int`, err => err.code === '22012' && typeof err.stack === 'string')
    const [row] = await sql`SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()`
    assert.equal(settle(row.query), `${SELF_TEXT} ${expectedComment(ctx)}`)
  })
})

test('overlapping invocations on one connection keep their own comments', async () => {
  const run = ctx => lg.withInvocation(ctx, async () => {
    const seen = []
    for (let i = 0; i < 3; i++) {
      await sleep(1)
      seen.push(settle((await sql`SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid() AND ${i}::int = ${i}`)[0].query))
    }
    return seen
  })
  const ctxs = [fakeContext(), fakeContext(), fakeContext()]
  const results = await Promise.all(ctxs.map(run))
  ctxs.forEach((ctx, c) => assert.deepEqual(results[c],
    [0, 1, 2].map(() => `${SELF_TEXT} AND $1::int = $2 ${expectedComment(ctx)}`)))
})

test('100 invocations with default options: pg_prepared_statements does not grow, every query has its invocation\'s comment', async () => {
  const pids = new Set()
  const counts = []
  for (let i = 0; i < 100; i++) {
    const ctx = fakeContext()
    await lg.withInvocation(ctx, async () => {
      const [one] = await sql`SELECT ${i}::int AS n`
      assert.equal(one.n, i)
      await sql`SELECT 1`
      const [self] = await sql`SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid() AND ${i}::int >= 0`
      assert.equal(settle(self.query), `${SELF_TEXT} AND $1::int >= 0 ${expectedComment(ctx)}`)
      const [ps] = await sql.unsafe(PREPARED)
      pids.add(ps.pid)
      assert.equal(ps.commented, 0)
      counts.push(ps.n)
    })
  }
  assert.equal(pids.size, 1, 'all on the same server connection')
  assert.deepEqual(new Set(counts), new Set([counts[0]]), `prepared statements per invocation: ${counts}`)

  // the reading can see growth: outside an invocation a new tagged query is
  // prepared, and commented texts prepared by hand (what the wrapper avoids)
  // add one statement each
  const before = counts[counts.length - 1]
  await sql`SELECT ${1}::int AS not_in_an_invocation`
  for (let i = 0; i < 3; i++) await sql.unsafe(`SELECT 1 /*request_id='naive-${i}'*/`, [], { prepare: true, simple: false })
  const [after] = await sql.unsafe(PREPARED)
  assert.equal(after.pid, [...pids][0])
  assert.equal(after.n, before + 4)
  assert.equal(after.commented, 3)
})

test('sql.subscribe inside an invocation: its replication commands are sent without a comment', async () => {
  const sub = postgres({ host, port, user, database, max: 1, onnotice: () => {}, publications: 'lgn_pub' })
  lg.instrumentPostgres(sub)
  try {
    await sub.unsafe('CREATE TABLE lgn_sub (id int PRIMARY KEY)')
    await sub.unsafe('CREATE PUBLICATION lgn_pub FOR TABLE lgn_sub')
    const ctx = fakeContext()
    const row = await lg.withInvocation(ctx, async () => {
      let got
      const seen = new Promise(resolve => { got = resolve })
      const { unsubscribe } = await sub.subscribe('insert:lgn_sub', r => got(r))
      await sub`INSERT INTO lgn_sub VALUES (${7})`
      let timer
      const timeout = new Promise(resolve => { timer = setTimeout(resolve, 10000, 'no event within 10 s') })
      const r = await Promise.race([seen, timeout])
      clearTimeout(timer)
      unsubscribe()
      return r
    })
    assert.deepEqual(row, { id: 7 })
  } finally {
    await sub.end({ timeout: 5 })
  }
})
