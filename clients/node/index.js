'use strict'
// pg-lambdaguard-context: tells PostgreSQL (pg_lambdaguard) which Lambda
// invocation sent a statement and when that invocation will be gone, with a
// sqlcommenter comment appended to the statement text:
//
//   SELECT 1 /*lambdaguard_deadline='1718000000000',request_id='…',traceparent='00-…'*/
//
// No runtime dependency: Node's AsyncLocalStorage carries the invocation, and
// the drivers (pg, knex on pg, postgres.js) are patched through the module or
// instance the application hands in.
//
// Named (prepared) statements are never commented: the server ignores the
// comment of a named statement anyway, and a per-invocation comment would make
// each invocation's text unique, i.e. one new server-side prepared statement
// per invocation on a pooled connection, never freed.

const { AsyncLocalStorage, AsyncResource } = require('async_hooks')

const storage = new AsyncLocalStorage()
// One marker for every copy of this package, so that patching twice (two
// copies, or the same call made twice) never appends two comments.
const PATCHED = Symbol.for('pg-lambdaguard-context.patched')
// The server keeps the first 8 pairs and 256 bytes of them: stay under both.
const MAX_PAIR_BYTES = 256
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/

// ---------------------------------------------------------------------------
// The comment (OpenTelemetry sqlcommenter format)

// encodeURIComponent leaves ' unencoded (and * ! ( ) ~), so ' gets a
// backslash; it always encodes / and \, so neither "*/" nor a stray backslash
// can appear in a key or value.  A lone surrogate cannot be encoded: null.
function encode (s) {
  try {
    return encodeURIComponent(s).replace(/'/g, "\\'")
  } catch (e) {
    return null
  }
}

function serializePairs (pairs) {
  const out = []
  for (const key of Object.keys(pairs || {})) {
    const value = pairs[key]
    if (value === undefined || value === null) continue
    const k = encode(key)
    const v = encode(String(value))
    if (k !== null && v !== null && k !== '') out.push({ k, v })
  }
  // sorted by (encoded, hence ASCII) key, as sqlcommenter requires
  return out.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
}

// sqlComment({ b: '2', a: "it's" }) === "/*a='it\\'s',b='2'*/"; '' for no pairs.
function sqlComment (pairs) {
  const parts = serializePairs(pairs).map(({ k, v }) => `${k}='${v}'`)
  return parts.length ? `/*${parts.join(',')}*/` : ''
}

function pairBytes (pairs) {
  return serializePairs(pairs).reduce((n, { k, v }) => n + k.length + v.length, 0)
}

// ---------------------------------------------------------------------------
// The pairs of a Lambda context

let otel // undefined: not looked for yet; null: not installed

// The W3C traceparent of OpenTelemetry's active span, if the application has
// @opentelemetry/api (it is never a dependency of this package).
function activeTraceparent () {
  if (otel === undefined) {
    try {
      otel = require('@opentelemetry/api')
    } catch (e) {
      otel = null
    }
  }
  if (!otel || !otel.trace || !otel.context) return undefined
  const span = otel.trace.getSpan(otel.context.active())
  const sc = span && span.spanContext()
  if (!sc) return undefined
  const flags = ('0' + ((sc.traceFlags || 0) & 0xff).toString(16)).slice(-2)
  const tp = `00-${sc.traceId}-${sc.spanId}-${flags}`
  return validTraceparent(tp) ? tp : undefined
}

function validTraceparent (tp) {
  return typeof tp === 'string' && TRACEPARENT.test(tp) && !tp.startsWith('ff-') &&
    !/^..-0{32}-/.test(tp) && !/-0{16}-..$/.test(tp)
}

function deadlineOf (ctx) {
  if (typeof ctx.getRemainingTimeInMillis !== 'function') return undefined
  return Date.now() + Number(ctx.getRemainingTimeInMillis())
}

// The pairs for one statement of an invocation:
//   lambdaguard_deadline  epoch ms when the client is gone (Date.now() + remaining
//                         time, or options.deadline)
//   request_id            context.awsRequestId (key: options.requestIdKey)
//   traceparent           options.traceparent (a string, or a function returning one),
//                         else OpenTelemetry's active span, else none.  The
//                         X-Ray header in _X_AMZN_TRACE_ID is not W3C: not used.
//   function_name         context.functionName, only with options.functionName
// Optional pairs are dropped (function name first) to keep under 256 bytes.
function contextPairs (context, options = {}) {
  const ctx = context || {}
  const requestIdKey = options.requestIdKey || 'request_id'
  const pairs = {}
  const deadline = options.deadline !== undefined ? options.deadline : deadlineOf(ctx)
  if (Number.isFinite(deadline)) pairs.lambdaguard_deadline = String(Math.round(deadline))
  if (ctx.awsRequestId) pairs[requestIdKey] = String(ctx.awsRequestId)
  let tp = options.traceparent
  if (typeof tp === 'function') tp = tp()
  else if (tp === undefined) tp = activeTraceparent()
  if (validTraceparent(tp)) pairs.traceparent = tp
  if (options.functionName && ctx.functionName) pairs.function_name = String(ctx.functionName)
  for (const optional of ['function_name', requestIdKey, 'traceparent']) {
    if (pairBytes(pairs) <= MAX_PAIR_BYTES) break
    delete pairs[optional]
  }
  return pairs
}

// ---------------------------------------------------------------------------
// The invocation scope

// Runs fn with this invocation's context; every query issued from it (its
// promises, timers, callbacks) gets the invocation's comment.
function withInvocation (context, fn, options) {
  // the deadline is read once: every statement of the invocation then carries
  // the same value (the remaining time and the clock are read at two instants)
  const given = options || {}
  const deadline = given.deadline !== undefined ? given.deadline : deadlineOf(context || {})
  const scope = { context, options: { ...given, deadline } }
  return storage.run(scope, () => {
    const result = fn()
    // postgres.js queries and knex builders are lazy: they run when awaited.
    // Returned unawaited (handler(() => sql`...`)), they would run after the
    // scope: start them here, inside it.
    if (result && typeof result.then === 'function' && !(result instanceof Promise && result.constructor === Promise)) {
      return new Promise((resolve, reject) => result.then(resolve, reject))
    }
    return result
  })
}

// Wraps a Lambda handler: exports.handler = handler(async (event, context) => ...)
// (a callback-style handler, three parameters, keeps its arity).
function handler (fn, options) {
  if (fn.length >= 3) {
    return function (event, context, callback) {
      return withInvocation(context, () => fn.call(this, event, context, callback), options)
    }
  }
  return function (event, context) {
    return withInvocation(context, () => fn.call(this, event, context), options)
  }
}

// The comment for a statement issued now: '' outside an invocation.
function currentComment () {
  const store = storage.getStore()
  return store ? sqlComment(contextPairs(store.context, store.options)) : ''
}

// The replication commands of a walsender connection (replication=database,
// e.g. postgres.js's sql.subscribe) have a grammar of their own that takes no
// comment: a syntax error.  No SQL statement starts with these words.
const REPLICATION_COMMAND = /^\s*(IDENTIFY_SYSTEM|TIMELINE_HISTORY|CREATE_REPLICATION_SLOT|DROP_REPLICATION_SLOT|READ_REPLICATION_SLOT|ALTER_REPLICATION_SLOT|START_REPLICATION|UPLOAD_MANIFEST|BASE_BACKUP)\b/i

function appendComment (text, comment) {
  // a "-- ..." on the last line would swallow the comment: start a new line then
  const lastLine = text.slice(text.lastIndexOf('\n') + 1)
  return text + (lastLine.includes('--') ? '\n' : ' ') + comment
}

// ---------------------------------------------------------------------------
// node-postgres (and knex on it): instrumentPg(require('pg'))

function commentPgQuery (config, comment) {
  if (typeof config === 'string') {
    return REPLICATION_COMMAND.test(config) ? config : appendComment(config, comment)
  }
  if (!config || typeof config !== 'object' || typeof config.text !== 'string' || config.name ||
      REPLICATION_COMMAND.test(config.text)) {
    return config // named (prepared) statements, replication commands, or nothing we can read
  }
  if (typeof config.submit === 'function') {
    // a Submittable (pg.Query, pg-cursor): used once, so commented in place
    config.text = appendComment(config.text, comment)
    return config
  }
  // a copy: the application may pass the same config object again later
  return Object.assign({}, config, { text: appendComment(config.text, comment) })
}

function instrumentPg (pg) {
  const clientProto = pg.Client.prototype
  if (!clientProto.query[PATCHED]) {
    const query = clientProto.query
    clientProto.query = function (config, ...rest) {
      const comment = currentComment()
      if (comment) config = commentPgQuery(config, comment)
      // a callback runs from the socket's events: give it back its caller's
      // invocation, so that queries issued from it carry the right comment
      rest = rest.map(a => (typeof a === 'function' ? AsyncResource.bind(a) : a))
      return query.call(this, config, ...rest)
    }
    clientProto.query[PATCHED] = true
  }
  // pg-pool hands a waiting connect() callback a client from inside the code
  // that released it (another invocation, maybe): bind it to its caller.
  // pool.query() goes through connect(callback) too.
  const poolProto = pg.Pool && pg.Pool.prototype
  if (poolProto && !poolProto.connect[PATCHED]) {
    const connect = poolProto.connect
    poolProto.connect = function (callback, ...rest) {
      return connect.call(this, typeof callback === 'function' ? AsyncResource.bind(callback) : callback, ...rest)
    }
    poolProto.connect[PATCHED] = true
  }
  return pg
}

// ---------------------------------------------------------------------------
// postgres.js: const sql = instrumentPostgres(postgres(url, options))
//
// postgres.js prepares every tagged-template query as a named statement by
// default.  A commented query is therefore sent unprepared (its
// options.prepare set to false, as sql.unsafe(text, args, { prepare: false })
// does): the comment is added to the last string of the query when it is
// executed, i.e. after fragments and helpers, at the very end of the text.
// Queries explicitly prepared ({ prepare: true }, .describe()) are left as
// they are.  The patch is on postgres.js's Query class, so it also covers
// sql.begin(), savepoints, sql.reserve() and other instances of the same copy
// of postgres.js; sql.file() queries are not commented (their text is read
// after they start).

function commentPostgresQuery (q) {
  const comment = currentComment()
  if (!comment || !q.strings || !q.strings.length || q.options.prepare === true) return
  if (REPLICATION_COMMAND.test(q.strings[0])) return
  if (q.tagged) {
    // postgres.js caches a call site's error origin keyed by its strings
    // array: read it before the array is replaced, so the cache never sees
    // one array per query
    const origin = q.origin
    Object.defineProperty(q, 'origin', { value: origin })
  }
  const strings = Array.prototype.slice.call(q.strings)
  strings[strings.length - 1] = appendComment(strings[strings.length - 1], comment)
  q.strings = strings
  q.options.prepare = false
}

function instrumentPostgres (sql) {
  // an unsafe query is only built here: nothing is sent until it is awaited
  const proto = Object.getPrototypeOf(sql.unsafe('SELECT 1'))
  if (!proto.handle[PATCHED]) {
    const handle = proto.handle
    proto.handle = function () {
      if (!this.executed) commentPostgresQuery(this)
      return handle.apply(this, arguments)
    }
    proto.handle[PATCHED] = true
  }
  return sql
}

module.exports = {
  sqlComment,
  contextPairs,
  withInvocation,
  handler,
  currentComment,
  instrumentPg,
  instrumentPostgres
}
