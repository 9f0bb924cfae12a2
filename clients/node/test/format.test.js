'use strict'
// The comment's format (OpenTelemetry sqlcommenter) and the invocation scope;
// no database.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('fs')
const os = require('os')
const path = require('path')
const { spawnSync } = require('child_process')
const lg = require('..')
const { fakeContext, expectedComment, settle, sleep } = require('./helpers')

// Reads a comment back the way a server would: split at the commas between
// pairs, undo the backslash escape, then the URL encoding.
function parseComment (comment) {
  const m = /^\/\*(.*)\*\/$/s.exec(comment)
  assert.ok(m, `not a comment: ${comment}`)
  const pairs = {}
  const re = /((?:[^=',\\]|\\')+)='((?:[^'\\]|\\')*)'(,|$)/gy
  const unescape = s => decodeURIComponent(s.replace(/\\'/g, "'"))
  let pair
  let end = 0
  while ((pair = re.exec(m[1])) !== null) {
    pairs[unescape(pair[1])] = unescape(pair[2])
    end = re.lastIndex
    if (pair[3] === '') break
  }
  assert.equal(end, m[1].length, `unparsed rest in ${comment}`)
  return pairs
}

test('pairs are sorted by key, joined by commas, values quoted', () => {
  assert.equal(lg.sqlComment({ traceparent: 't', b: '2', a: '1' }), "/*a='1',b='2',traceparent='t'*/")
})

test('no pairs, or only empty values, give no comment', () => {
  assert.equal(lg.sqlComment({}), '')
  assert.equal(lg.sqlComment({ a: undefined, b: null }), '')
  assert.equal(lg.sqlComment(undefined), '')
})

test("a quote is escaped with a backslash; , = and spaces are URL-encoded", () => {
  assert.equal(lg.sqlComment({ k: "it's" }), "/*k='it\\'s'*/")
  assert.equal(lg.sqlComment({ k: 'a,b=c d' }), "/*k='a%2Cb%3Dc%20d'*/")
  assert.equal(lg.sqlComment({ 'my key': 'v' }), "/*my%20key='v'*/")
  assert.equal(lg.sqlComment({ "k'": 'v' }), "/*k\\'='v'*/")
})

test('non-ASCII is URL-encoded as UTF-8', () => {
  assert.equal(lg.sqlComment({ k: 'é' }), "/*k='%C3%A9'*/")
  assert.equal(lg.sqlComment({ k: '日本' }), "/*k='%E6%97%A5%E6%9C%AC'*/")
  assert.equal(lg.sqlComment({ k: '🙂' }), "/*k='%F0%9F%99%82'*/")
})

test('*/ and backslashes cannot appear inside the comment', () => {
  assert.equal(lg.sqlComment({ k: 'x*/ DROP TABLE t; /*' }), "/*k='x*%2F%20DROP%20TABLE%20t%3B%20%2F*'*/")
  assert.equal(lg.sqlComment({ k: '\\' }), "/*k='%5C'*/")
})

test('a value that cannot be encoded (lone surrogate) is left out, never thrown', () => {
  assert.equal(lg.sqlComment({ a: '\uD800', b: 'ok' }), "/*b='ok'*/")
})

test('hostile keys and values: one comment, closed once at its end, read back unchanged', () => {
  const alphabet = ["'", '*', '/', '\\', ',', '=', ' ', '-', '\n', 'é', '%', 'a', '"', ';', '\u0000']
  let seed = 42
  const rand = n => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
  for (let i = 0; i < 500; i++) {
    const pairs = {}
    const count = 1 + rand(4)
    for (let p = 0; p < count; p++) {
      const word = () => Array.from({ length: 1 + rand(8) }, () => alphabet[rand(alphabet.length)]).join('')
      pairs[word()] = word()
    }
    const comment = lg.sqlComment(pairs)
    assert.equal(comment.indexOf('*/'), comment.length - 2, comment)
    assert.equal(comment.lastIndexOf('/*'), 0, comment)
    assert.deepEqual(parseComment(comment), pairs)
  }
})

test('contextPairs: deadline = now + remaining time, request id from awsRequestId', () => {
  const ctx = fakeContext(12345)
  const before = Date.now()
  const pairs = lg.contextPairs(ctx)
  assert.deepEqual(Object.keys(pairs).sort(), ['lambdaguard_deadline', 'request_id'])
  assert.equal(pairs.lambdaguard_deadline, String(ctx.deadline))
  assert.ok(Number(pairs.lambdaguard_deadline) >= before + 12345 - 1000)
  assert.equal(pairs.request_id, ctx.awsRequestId)
  assert.equal(lg.sqlComment(pairs), expectedComment(ctx))
})

test('contextPairs: the request id key can be renamed; function name only when asked', () => {
  const ctx = fakeContext()
  const pairs = lg.contextPairs(ctx, { requestIdKey: 'aws_request_id', functionName: true })
  assert.equal(pairs.aws_request_id, ctx.awsRequestId)
  assert.equal(pairs.request_id, undefined)
  assert.equal(pairs.function_name, 'orders-api')
  assert.equal(lg.contextPairs(ctx).function_name, undefined)
})

test('contextPairs: no context, or one without getRemainingTimeInMillis, gives what there is', () => {
  assert.deepEqual(lg.contextPairs(undefined), {})
  assert.deepEqual(lg.contextPairs({ awsRequestId: 'r1' }), { request_id: 'r1' })
  assert.deepEqual(lg.contextPairs({ getRemainingTimeInMillis: () => NaN }), {})
})

test('contextPairs: a W3C traceparent option is kept as given, an invalid one left out', () => {
  const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  assert.equal(lg.contextPairs(fakeContext(), { traceparent: tp }).traceparent, tp)
  assert.equal(lg.contextPairs(fakeContext(), { traceparent: () => tp }).traceparent, tp)
  for (const bad of ['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7', 'hello',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01']) {
    assert.equal(lg.contextPairs(fakeContext(), { traceparent: bad }).traceparent, undefined, bad)
  }
})

test('contextPairs: the X-Ray header (_X_AMZN_TRACE_ID) is not W3C and is not used', () => {
  const saved = process.env._X_AMZN_TRACE_ID
  process.env._X_AMZN_TRACE_ID = 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1'
  try {
    const pairs = lg.contextPairs(fakeContext())
    assert.equal(pairs.traceparent, undefined)
    assert.ok(!JSON.stringify(pairs).includes('5759e988'))
  } finally {
    if (saved === undefined) delete process.env._X_AMZN_TRACE_ID
    else process.env._X_AMZN_TRACE_ID = saved
  }
})

test('contextPairs: optional pairs are dropped to keep the pairs under 256 bytes', () => {
  const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const ctx = Object.assign(fakeContext(), { functionName: 'f'.repeat(64) })
  const full = lg.contextPairs(ctx, { traceparent: tp, functionName: true })
  assert.deepEqual(Object.keys(full).sort(), ['function_name', 'lambdaguard_deadline', 'request_id', 'traceparent'])
  const bytes = p => Object.entries(p).reduce((n, [k, v]) => n + k.length + encodeURIComponent(v).length, 0)
  assert.ok(bytes(full) <= 256, `${bytes(full)} bytes`)
  const huge = Object.assign(fakeContext(), { functionName: 'f'.repeat(200), awsRequestId: 'r'.repeat(300) })
  const cut = lg.contextPairs(huge, { traceparent: tp, functionName: true })
  assert.deepEqual(Object.keys(cut).sort(), ['lambdaguard_deadline', 'traceparent'])
})

test('OpenTelemetry: the active span gives the traceparent when @opentelemetry/api is installed', () => {
  // a stand-in @opentelemetry/api found through NODE_PATH by a child process:
  // the package must only require it, never depend on it
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lg-otel-'))
  try {
    const mod = path.join(dir, '@opentelemetry', 'api')
    fs.mkdirSync(mod, { recursive: true })
    fs.writeFileSync(path.join(mod, 'index.js'), `
      const active = { span: null }
      exports.context = { active: () => active }
      exports.trace = { getSpan: ctx => ctx.span }
      exports.setSpan = sc => { active.span = sc && { spanContext: () => sc } }`)
    const script = `
      const lg = require(${JSON.stringify(path.resolve(__dirname, '..'))})
      const api = require('@opentelemetry/api')
      const ctx = { awsRequestId: 'r1', getRemainingTimeInMillis: () => 1000 }
      const out = [lg.contextPairs(ctx).traceparent || null]
      api.setSpan({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 })
      out.push(lg.contextPairs(ctx).traceparent)
      out.push(lg.contextPairs(ctx, { traceparent: false }).traceparent || null)
      api.setSpan({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 0 })
      out.push(lg.withInvocation(ctx, () => lg.currentComment()))
      console.log(JSON.stringify(out))`
    const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, NODE_PATH: dir }, encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    const [none, sampled, disabled, comment] = JSON.parse(r.stdout)
    assert.equal(none, null)
    assert.equal(sampled, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
    assert.equal(disabled, null)
    assert.match(comment, /,traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00'\*\/$/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('without @opentelemetry/api the comment has no traceparent', () => {
  const ctx = fakeContext()
  assert.equal(lg.withInvocation(ctx, () => settle(lg.currentComment())), expectedComment(ctx))
})

test('the scope: a comment inside, none outside, kept across awaits and timers', async () => {
  assert.equal(settle(lg.currentComment()), '')
  const ctx = fakeContext()
  await lg.withInvocation(ctx, async () => {
    assert.equal(settle(lg.currentComment()), expectedComment(ctx))
    await sleep(5)
    assert.equal(settle(lg.currentComment()), expectedComment(ctx))
    await new Promise(resolve => setTimeout(() => {
      assert.equal(settle(lg.currentComment()), expectedComment(ctx))
      resolve()
    }, 5))
  })
  assert.equal(settle(lg.currentComment()), '')
})

test('the scope: every statement of an invocation carries the same comment (the deadline is read once)', async () => {
  const ctx = fakeContext()
  const comments = await lg.withInvocation(ctx, async () => {
    const out = []
    for (let i = 0; i < 5; i++) {
      out.push(lg.currentComment())
      await sleep(3)
    }
    return out
  })
  assert.deepEqual(comments, Array(5).fill(comments[0]))
  assert.equal(settle(comments[0]), expectedComment(ctx))
})

test('the scope: overlapping invocations each keep their own comment', async () => {
  const a = fakeContext()
  const b = fakeContext()
  const seen = []
  const run = ctx => lg.withInvocation(ctx, async () => {
    for (let i = 0; i < 5; i++) {
      await sleep(1 + (i % 3))
      seen.push(settle(lg.currentComment()) === expectedComment(ctx))
    }
  })
  await Promise.all([run(a), run(b)])
  assert.deepEqual(seen, Array(10).fill(true))
})

test('handler() passes event and context, returns the result and keeps a callback handler\'s arity', async () => {
  const ctx = fakeContext()
  const h = lg.handler(async (event, context) => ({ event, same: context === ctx, comment: settle(lg.currentComment()) }))
  assert.equal(h.length, 2)
  assert.deepEqual(await h({ id: 7 }, ctx), { event: { id: 7 }, same: true, comment: expectedComment(ctx) })

  const cb = lg.handler((event, context, callback) => setTimeout(() => callback(null, settle(lg.currentComment())), 1))
  assert.equal(cb.length, 3)
  const comment = await new Promise((resolve, reject) => cb({}, ctx, (err, res) => (err ? reject(err) : resolve(res))))
  assert.equal(comment, expectedComment(ctx))
})
