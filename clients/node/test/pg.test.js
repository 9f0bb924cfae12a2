'use strict'
// node-postgres and knex (on pg) against a real PostgreSQL: what the server
// received (its own pg_stat_activity row) and what it keeps prepared
// (pg_prepared_statements, read on the driver's own connection).

const test = require('node:test')
const assert = require('node:assert/strict')
const pg = require('pg')
const knexFactory = require('knex')
const lg = require('..')
const { connection, SELF_TEXT, fakeContext, expectedComment, settle, sleep } = require('./helpers')

lg.instrumentPg(pg)

const pool = new pg.Pool({ ...connection, max: 1 })
const knex = knexFactory({ client: 'pg', connection, pool: { min: 0, max: 1 } })

test.after(async () => {
  await pool.end()
  await knex.destroy()
})

async function selfText (queryable, config = SELF_TEXT) {
  const res = await queryable.query(config)
  return settle(res.rows[0].query)
}

test('instrumentPg is idempotent: one comment after patching twice', async () => {
  lg.instrumentPg(pg)
  const ctx = fakeContext()
  assert.equal(await lg.withInvocation(ctx, () => selfText(pool)), `${SELF_TEXT} ${expectedComment(ctx)}`)
})

test('outside an invocation the text is sent unchanged', async () => {
  assert.equal(await selfText(pool), SELF_TEXT)
})

test('an unnamed query (string, {text, values}, pool or client) carries the comment', async () => {
  const ctx = fakeContext()
  const want = expectedComment(ctx)
  await lg.withInvocation(ctx, async () => {
    assert.equal(await selfText(pool), `${SELF_TEXT} ${want}`)
    const config = { text: `${SELF_TEXT} AND $1::int = 1`, values: [1] }
    assert.equal(await selfText(pool, config), `${SELF_TEXT} AND $1::int = 1 ${want}`)
    assert.equal(config.text, `${SELF_TEXT} AND $1::int = 1`, 'the caller\'s config object is not changed')
    const client = await pool.connect()
    try {
      assert.equal(await selfText(client), `${SELF_TEXT} ${want}`)
    } finally {
      client.release()
    }
  })
})

test('a trailing line comment does not swallow the comment', async () => {
  const ctx = fakeContext()
  const text = `${SELF_TEXT} -- the caller's note`
  assert.equal(await lg.withInvocation(ctx, () => selfText(pool, text)), `${text}\n${expectedComment(ctx)}`)
})

test('a named query is sent unchanged inside an invocation', async () => {
  const ctx = fakeContext()
  const client = await pool.connect()
  try {
    const name = 'lg_self_named'
    const text = `${SELF_TEXT} AND $1::int = 1`
    const got = await lg.withInvocation(ctx, () => selfText(client, { name, text, values: [1] }))
    assert.equal(got, text)
    const ps = await client.query('SELECT statement FROM pg_prepared_statements WHERE name = $1', [name])
    assert.deepEqual(ps.rows, [{ statement: text }])
  } finally {
    client.release()
  }
})

test('100 invocations on one pooled connection: named statements do not grow, every unnamed query has its invocation\'s comment', async () => {
  const named = { name: 'lg_get_one', text: 'SELECT $1::int AS n' }
  const pids = new Set()
  const counts = []
  for (let i = 0; i < 100; i++) {
    const ctx = fakeContext()
    await lg.withInvocation(ctx, async () => {
      const r = await pool.query({ ...named, values: [i] })
      assert.equal(r.rows[0].n, i)
      assert.equal(await selfText(pool), `${SELF_TEXT} ${expectedComment(ctx)}`)
      const ps = await pool.query('SELECT pg_backend_pid() AS pid, count(*)::int AS n, ' +
        "count(*) FILTER (WHERE statement LIKE '%/*%')::int AS commented FROM pg_prepared_statements")
      pids.add(ps.rows[0].pid)
      assert.equal(ps.rows[0].commented, 0)
      counts.push(ps.rows[0].n)
    })
  }
  assert.equal(pids.size, 1, 'all on the same server connection')
  // lg_get_one, plus lg_self_named if that test ran first on this connection
  assert.ok(counts[0] >= 1, 'the named statement is visible in pg_prepared_statements')
  assert.deepEqual(new Set(counts), new Set([counts[0]]), `prepared statements per invocation: ${counts}`)
})

test('pool callbacks under contention: each invocation\'s queries carry its own comment', async () => {
  // one connection, three invocations at once: each waits in pg-pool's queue
  // and gets its client from the code that released it
  const run = ctx => lg.withInvocation(ctx, () => new Promise((resolve, reject) => {
    const seen = []
    pool.query(SELF_TEXT, (err, res) => {
      if (err) return reject(err)
      seen.push(settle(res.rows[0].query))
      pool.connect((err, client, release) => {
        if (err) return reject(err)
        client.query(SELF_TEXT, (err, res) => {
          if (err) { release(); return reject(err) }
          seen.push(settle(res.rows[0].query))
          // a query issued from inside a query's callback
          client.query(SELF_TEXT, (err, res) => {
            release()
            if (err) return reject(err)
            seen.push(settle(res.rows[0].query))
            resolve(seen)
          })
        })
      })
    })
  }))
  const ctxs = [fakeContext(), fakeContext(), fakeContext()]
  const results = await Promise.all(ctxs.map(run))
  ctxs.forEach((ctx, i) => assert.deepEqual(results[i], Array(3).fill(`${SELF_TEXT} ${expectedComment(ctx)}`)))
})

test('knex: raw, query builder and transaction queries carry the comment', async () => {
  const ctx = fakeContext()
  const want = expectedComment(ctx)
  await lg.withInvocation(ctx, async () => {
    const raw = await knex.raw(SELF_TEXT)
    assert.equal(settle(raw.rows[0].query), `${SELF_TEXT} ${want}`)
    const built = await knex.select('query').from('pg_stat_activity').where('pid', knex.raw('pg_backend_pid()'))
    assert.equal(settle(built[0].query), `select "query" from "pg_stat_activity" where "pid" = pg_backend_pid() ${want}`)
    await knex.transaction(async trx => {
      await sleep(1)
      const r = await trx.raw(`${SELF_TEXT} AND ?::int = 1`, [1])
      assert.equal(settle(r.rows[0].query), `${SELF_TEXT} AND $1::int = 1 ${want}`)
    })
    // knex's own .comment() prepends; ours still ends the text
    const commented = await knex.select('query').from('pg_stat_activity')
      .where('pid', knex.raw('pg_backend_pid()')).comment('orders list')
    assert.equal(settle(commented[0].query),
      `/* orders list */ select "query" from "pg_stat_activity" where "pid" = pg_backend_pid() ${want}`)
  })
})

test('knex: overlapping invocations on one pooled connection keep their own comments', async () => {
  const run = ctx => lg.withInvocation(ctx, () => knex.transaction(async trx => {
    const seen = []
    for (let i = 0; i < 3; i++) {
      await sleep(1)
      seen.push(settle((await trx.raw(SELF_TEXT)).rows[0].query))
    }
    seen.push(settle((await knex.raw(SELF_TEXT).transacting(trx)).rows[0].query))
    return seen
  }))
  const ctxs = [fakeContext(), fakeContext(), fakeContext()]
  const results = await Promise.all(ctxs.map(run))
  ctxs.forEach((ctx, i) => assert.deepEqual(results[i], Array(4).fill(`${SELF_TEXT} ${expectedComment(ctx)}`)))
})

test('knex: a builder returned unawaited from the handler runs inside the invocation', async () => {
  const ctx = fakeContext()
  const h = lg.handler(() => knex.raw(SELF_TEXT))
  const res = await h({}, ctx)
  assert.equal(settle(res.rows[0].query), `${SELF_TEXT} ${expectedComment(ctx)}`)
})

test('a replication connection: its commands are sent without a comment (they take none)', async () => {
  const client = new pg.Client({ ...connection, replication: 'database' })
  await client.connect()
  try {
    const ctx = fakeContext()
    await lg.withInvocation(ctx, async () => {
      const r = await client.query('IDENTIFY_SYSTEM')
      assert.equal(r.rows.length, 1)
      // plain SQL on the same connection is still commented
      assert.equal(await selfText(client), `${SELF_TEXT} ${expectedComment(ctx)}`)
    })
  } finally {
    await client.end()
  }
})
