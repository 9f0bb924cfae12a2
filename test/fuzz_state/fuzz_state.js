'use strict';
// Differential test of pg_lambdaguard's dirty_reasons and pinning events.
//
//   node test/fuzz_state/fuzz_state.js PORT SECONDS SEED
//
// Draws random sessions from a grammar that covers every reason and every
// statement that clears one, run directly (simple protocol), through the
// extended protocol (unnamed and named statements), inside DO blocks,
// PL/pgSQL functions (EXECUTE, PERFORM, assignments, IF, RETURN), SQL
// functions (inlined and not), procedures with COMMIT and ROLLBACK, in
// transaction blocks with savepoints rolled back, after errors.  After each
// step, while the session is idle, it compares
//   - dirty_reasons of the session, read from another connection, with what
//     PostgreSQL itself shows in that session (pg_settings, role, session
//     user, pg_prepared_statements, pg_class of pg_my_temp_schema(),
//     pg_cursors, pg_listening_channels(), pg_locks, currval()), and
//   - the events the step recorded with the statements it ran.
// Half the statements carry a sqlcommenter comment (leading or trailing,
// well-formed or hostile): the comment must never change either.
// A disagreement is shrunk to a minimal sequence of steps and printed.
const { Client } = require('pg');

const [port, seconds, seedArg] = process.argv.slice(2);
const deadline = Date.now() + Number(seconds) * 1000;
const login = process.env.PGUSER || 'postgres';
const conn = { host: '127.0.0.1', port: Number(port), user: login, database: 'postgres' };

// mulberry32: a small deterministic generator
function rng(seed) {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}
const random = rng(Number(seedArg));
const pick = (a) => a[Math.floor(random() * a.length)];
const n3 = () => 1 + Math.floor(random() * 3);

// ---------------------------------------------------------------------------
// The grammar.  Each action: SQL, the reasons of its events when it
// succeeds, and its kind: 'stmt' (one statement: exactly one event per
// reason, hidden when wrapped), 'expr' (a function whose changes only a read
// of the state finds: at most one hidden event per reason), 'call' (a
// function whose statements the hooks see: exactly one hidden event), 'big'
// (a statement over 16 KB).  tx: only inside a transaction block; notx:
// never there; nowrap: not inside DO or a function.
// ---------------------------------------------------------------------------
const S = 'stmt';
const actions = [
	() => ({ sql: `SET work_mem = '${1024 + n3()}kB'`, reasons: ['set'], kind: S }),
	() => ({ sql: 'RESET work_mem', reasons: ['set'], kind: S }),
	() => ({ sql: 'RESET ALL', reasons: ['set'], kind: S }),
	() => ({ sql: 'SET ROLE fz_role', reasons: ['set'], kind: S }),
	() => ({ sql: 'RESET ROLE', reasons: ['set'], kind: S }),
	() => ({ sql: 'SET ROLE NONE', reasons: ['set'], kind: S }),
	() => ({ sql: 'SET SESSION AUTHORIZATION fz_role', reasons: ['set'], kind: S }),
	() => ({ sql: 'RESET SESSION AUTHORIZATION', reasons: ['set'], kind: S }),
	() => ({ sql: `SET LOCAL work_mem = '${2048 + n3()}kB'`, reasons: [], kind: S, tx: true }),
	() => ({ sql: `SELECT set_config('app.tenant', '${n3()}', false)`, reasons: ['set_config'], kind: S }),
	() => ({ sql: `SELECT set_config('app.tenant', '${n3()}', true)`, reasons: [], kind: S }),
	() => ({ sql: `SELECT set_config('application_name', 'fz', false)`, reasons: [], kind: S }),
	() => { const k = n3(); return { sql: `PREPARE fz_p${k} AS SELECT ${k}`, reasons: ['prepared_statement'], kind: S }; },
	() => ({ sql: `EXECUTE fz_p${n3()}`, reasons: ['prepared_statement'], kind: S }),
	() => ({ sql: `DEALLOCATE fz_p${n3()}`, reasons: ['prepared_statement'], kind: S }),
	() => ({ sql: 'DEALLOCATE ALL', reasons: ['prepared_statement'], kind: S, rare: true }),
	() => ({ sql: 'DISCARD ALL', reasons: ['discard'], kind: S, notx: true, nowrap: true, rare: true }),
	() => ({ sql: 'DISCARD PLANS', reasons: ['discard'], kind: S }),
	() => ({ sql: 'DISCARD SEQUENCES', reasons: ['discard'], kind: S }),
	() => ({ sql: 'DISCARD TEMP', reasons: ['discard'], kind: S }),
	() => ({ sql: `CREATE TEMP TABLE fz_t${n3()} (id serial)`, reasons: ['temp_table'], kind: S }),
	() => ({ sql: `CREATE TEMP TABLE fz_o${n3()} (x int) ON COMMIT DROP`, reasons: ['temp_table'], kind: S }),
	() => ({ sql: `CREATE TEMP TABLE fz_a${n3()} AS SELECT 1 AS x`, reasons: ['temp_table'], kind: S }),
	() => ({ sql: `CREATE TEMP SEQUENCE fz_ts${n3()}`, reasons: ['temp_sequence'], kind: S }),
	() => ({ sql: `CREATE TEMP VIEW fz_tv${n3()} AS SELECT 1 AS x`, reasons: ['temp_view'], kind: S }),
	() => ({ sql: `DROP TABLE fz_t${n3()}`, reasons: [], kind: S }),
	() => ({ sql: `DROP TABLE fz_a${n3()}`, reasons: [], kind: S }),
	() => ({ sql: `DROP SEQUENCE fz_ts${n3()}`, reasons: [], kind: S }),
	() => ({ sql: `DROP VIEW fz_tv${n3()}`, reasons: [], kind: S }),
	() => ({ sql: `DECLARE fz_h${n3()} CURSOR WITH HOLD FOR SELECT 1`, reasons: ['cursor_with_hold'], kind: S }),
	() => ({ sql: `DECLARE fz_c${n3()} CURSOR FOR SELECT 1`, reasons: ['cursor'], kind: S, tx: true }),
	() => ({ sql: `CLOSE fz_h${n3()}`, reasons: [], kind: S }),
	() => ({ sql: 'CLOSE ALL', reasons: [], kind: S }),
	() => ({ sql: `LISTEN fz_ch${n3()}`, reasons: ['listen'], kind: S }),
	() => ({ sql: `UNLISTEN fz_ch${n3()}`, reasons: [], kind: S }),
	() => ({ sql: 'UNLISTEN *', reasons: [], kind: S }),
	() => ({ sql: `SELECT nextval('fz_s${n3() % 2 + 1}')`, reasons: ['sequence_function'], kind: S }),
	() => ({ sql: `SELECT setval('fz_s1', ${n3()})`, reasons: ['sequence_function'], kind: S }),
	() => ({ sql: `SELECT setval('fz_s2', ${n3()}, false)`, reasons: ['sequence_function'], kind: S }),
	() => ({ sql: `SELECT currval('fz_s${n3() % 2 + 1}')`, reasons: ['sequence_function'], kind: S }),
	() => ({ sql: 'SELECT lastval()', reasons: ['sequence_function'], kind: S }),
	() => ({ sql: 'INSERT INTO fz_t (v) VALUES (1)', reasons: [], kind: S }),
	() => ({ sql: `SELECT pg_advisory_lock(${n3()})`, reasons: ['advisory_lock'], kind: S }),
	() => ({ sql: `SELECT pg_try_advisory_lock(${n3()})`, reasons: ['advisory_lock'], kind: S }),
	() => ({ sql: `SELECT pg_advisory_lock_shared(${n3()})`, reasons: ['advisory_lock'], kind: S }),
	() => ({ sql: `SELECT pg_advisory_unlock(${n3()})`, reasons: [], kind: S }),
	() => ({ sql: `SELECT pg_advisory_unlock_shared(${n3()})`, reasons: [], kind: S }),
	() => ({ sql: 'SELECT pg_advisory_unlock_all()', reasons: [], kind: S }),
	() => ({ sql: `SELECT pg_advisory_xact_lock(${n3()})`, reasons: [], kind: S }),
	() => ({ sql: 'SELECT 1 / (random() > 2)::int', reasons: [], kind: S }),
	() => ({ sql: `SELECT length('${'x'.repeat(16400)}')`, reasons: ['statement_too_large'], kind: 'big', nowrap: true, rare: true }),
	// functions whose changes no hook sees, and functions the hooks see into
	() => ({ sql: `SELECT fz_assign(${n3()})`, reasons: ['set_config'], kind: 'expr', nowrap: true }),
	() => ({ sql: `SELECT fz_if(${n3()})`, reasons: ['advisory_lock'], kind: 'expr', nowrap: true }),
	() => ({ sql: 'SELECT fz_ret()', reasons: ['sequence_function'], kind: 'expr', nowrap: true }),
	() => ({ sql: `SELECT fz_unlock(${n3()})`, reasons: [], kind: 'expr', nowrap: true }),
	() => ({ sql: `SELECT fz_fail(${n3()})`, reasons: ['set_config', 'sequence_function'], kind: 'expr', nowrap: true }),
	() => ({ sql: `SELECT fz_inl('${n3()}')`, reasons: ['set_config'], kind: 'call', nowrap: true }),
	() => ({ sql: 'SELECT fz_seq_inl()', reasons: ['sequence_function'], kind: 'call', nowrap: true }),
	() => ({ sql: `SELECT fz_noinl('${n3()}')`, reasons: ['set_config'], kind: 'call', nowrap: true }),
	() => ({ sql: `CALL fz_proc(${n3()}, ${random() < 0.5})`, reasons: ['set_config', 'advisory_lock'], kind: 'call', nowrap: true, notx: true }),
	() => ({ sql: `CALL fz_proc(${n3()}, ${random() < 0.5})`, reasons: ['set_config', 'advisory_lock'], kind: 'expr', nowrap: true, tx: true }),
];

const setupSql = `
CREATE EXTENSION IF NOT EXISTS pg_lambdaguard;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fz_role') THEN CREATE ROLE fz_role; END IF;
END $$;
DROP TABLE IF EXISTS fz_t;
DROP SEQUENCE IF EXISTS fz_s1, fz_s2;
CREATE SEQUENCE fz_s1;
CREATE SEQUENCE fz_s2;
CREATE TABLE fz_t (id serial, v int);
GRANT ALL ON fz_t, fz_s1, fz_s2, fz_t_id_seq TO fz_role;
CREATE OR REPLACE FUNCTION fz_assign(n int) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE x text;
BEGIN
  x := set_config('app.tenant', n::text, false);
  RETURN x;
END $f$;
CREATE OR REPLACE FUNCTION fz_if(n int) RETURNS bool LANGUAGE plpgsql AS $f$
BEGIN
  IF pg_try_advisory_lock(n) THEN RETURN true; END IF;
  RETURN false;
END $f$;
CREATE OR REPLACE FUNCTION fz_ret() RETURNS bigint LANGUAGE plpgsql AS $f$
BEGIN
  RETURN nextval('fz_s1');
END $f$;
CREATE OR REPLACE FUNCTION fz_unlock(n int) RETURNS bool LANGUAGE plpgsql AS $f$
DECLARE b bool;
BEGIN
  b := pg_advisory_unlock(n);
  RETURN b;
END $f$;
CREATE OR REPLACE FUNCTION fz_fail(n int) RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE x bigint;
BEGIN
  PERFORM set_config('work_mem', '777kB', false);
  x := nextval('fz_s2');
  RAISE EXCEPTION 'fz_fail %', n;
END $f$;
CREATE OR REPLACE FUNCTION fz_inl(t text) RETURNS text LANGUAGE sql AS
  $f$ SELECT set_config('app.tenant', t, false) $f$;
CREATE OR REPLACE FUNCTION fz_seq_inl() RETURNS bigint LANGUAGE sql AS
  $f$ SELECT nextval('fz_s2') $f$;
CREATE OR REPLACE FUNCTION fz_noinl(t text) RETURNS text LANGUAGE sql AS
  $f$ SELECT set_config('app.tenant', t, false); SELECT t $f$;
CREATE OR REPLACE PROCEDURE fz_proc(n int, do_commit bool) LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM set_config('work_mem', (1024 + n) || 'kB', false);
  IF do_commit THEN COMMIT; ELSE ROLLBACK; END IF;
  PERFORM pg_advisory_lock(n);
END $f$;
CREATE OR REPLACE FUNCTION fz_exec(q text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE q;
END $f$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO fz_role;
`;

// What PostgreSQL shows in the session itself
const oracleSql = `SELECT /*oracle*/ array_remove(ARRAY[
  CASE WHEN EXISTS (SELECT FROM pg_settings WHERE source = 'session'
         AND name NOT LIKE 'transaction\\_%' AND lower(name) NOT IN (
           SELECT lower(trim(p)) FROM unnest(string_to_array(
             current_setting('lambdaguard.ignored_parameters'), ',')) p))
       OR current_setting('role') <> 'none' OR session_user::text <> '${login}'
       OR coalesce(current_setting('app.tenant', true), '') <> '' THEN 'set' END,
  CASE WHEN EXISTS (SELECT FROM pg_prepared_statements WHERE from_sql) THEN 'prepared_statement' END,
  CASE WHEN EXISTS (SELECT FROM pg_prepared_statements WHERE NOT from_sql) THEN 'protocol_prepared_statement' END,
  CASE WHEN EXISTS (SELECT FROM pg_class WHERE relnamespace = pg_my_temp_schema()
       AND relkind IN ('r', 'p')) THEN 'temp_table' END,
  CASE WHEN EXISTS (SELECT FROM pg_class c WHERE relnamespace = pg_my_temp_schema()
       AND relkind = 'S' AND NOT EXISTS (SELECT FROM pg_depend d
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
           AND d.deptype IN ('a', 'i') AND d.refclassid = 'pg_class'::regclass))
       THEN 'temp_sequence' END,
  CASE WHEN EXISTS (SELECT FROM pg_class WHERE relnamespace = pg_my_temp_schema()
       AND relkind IN ('v', 'm')) THEN 'temp_view' END,
  CASE WHEN EXISTS (SELECT FROM pg_cursors WHERE is_holdable) THEN 'cursor_with_hold' END,
  CASE WHEN EXISTS (SELECT FROM pg_listening_channels()) THEN 'listen' END,
  CASE WHEN EXISTS (SELECT FROM pg_locks WHERE pid = pg_backend_pid()
       AND locktype = 'advisory' AND granted) THEN 'advisory_lock' END
], NULL) AS r`;
const probes = ['fz_s1', 'fz_s2', 'fz_t_id_seq'].map((s) => `SELECT currval('${s}') /*oracle*/`);

function wrapperFor(a, inTx) {
	const w = ['simple', 'simple', 'extended', 'named'];
	if (!a.nowrap && !(a.notx) && a.kind === S) w.push('do', 'func');
	if (a.kind === S && a.notx && !a.nowrap) w.push('func');
	return pick(w);
}

// A sqlcommenter comment for a statement, or none; deadlines far enough
// away that no watched session could fall due (the fuzzed role is a
// superuser, never watched, anyway)
function drawComment() {
	if (random() < 0.5) return null;
	const tp = `00-${'0af7651916cd43dd8448eb211c80319c'}-${'b7ad6b7169203331'}-01`;
	const text = pick([
		`/*request_id='fz-${n3()}',traceparent='${tp}'*/`,
		`/* request_id='fz-${n3()}', lambdaguard_deadline='${Date.now() + 600000}' */`,
		`/*route='%2Fpay%3Fx%3D1',who='O\\'Brien'*/`,
		"/*a='%FF'*/",
		"/*a='x' /*b='nested'*/ */",
		"/*a='unterminated*/",
		`/*a='${'x'.repeat(5000)}'*/`,
		'/* a plain comment */',
	]);
	return { text, lead: random() < 0.5 };
}

function render(step) {
	return step.map((x) => {
		const sql = x.comment ? textOf({ ...x, wrap: 'simple' }) : x.sql;
		return x.wrap && x.wrap !== 'simple' ? `${sql}  -- ${x.wrap}` : sql;
	}).join('\n');
}

// Sessions an earlier run found disagreeing, played first, every run
const noinl = (t, wrap) => ({ sql: `SELECT fz_noinl('${t}')`, reasons: ['set_config'], kind: 'call', nowrap: true, wrap });
const known = [
	// a set_config in a statement of the extended protocol whose portal is
	// finished by a SAVEPOINT of the simple protocol: the savepoint's end
	// falls where its subtransaction is pushed but not started
	[[{ sql: 'BEGIN' }, noinl('2', 'extended'), { sql: 'SAVEPOINT fz_sp' }, { sql: 'SELECT fz_if(2)', reasons: ['advisory_lock'], kind: 'expr', nowrap: true }, { sql: 'COMMIT' }]],
	[[{ sql: 'BEGIN' }, noinl('3', 'named'), { sql: 'SAVEPOINT fz_sp' }, { sql: 'COMMIT' }]],
	// the portal finished by the commit itself, and by the next Bind
	[[{ sql: 'BEGIN' }, noinl('4', 'extended'), { sql: 'COMMIT' }]],
	[[{ sql: 'BEGIN' }, noinl('5', 'extended'), noinl('6', 'extended'), { sql: 'ROLLBACK' }]],
];

function drawStep() {
	if (random() < 0.25) {
		// a transaction block
		const step = [{ sql: 'BEGIN' }];
		const n = 1 + Math.floor(random() * 4);
		let sp = false;
		for (let i = 0; i < n; i++) {
			if (!sp && random() < 0.3) { step.push({ sql: 'SAVEPOINT fz_sp' }); sp = true; }
			let a;
			do a = pick(actions)(); while (a.notx || (a.rare && random() < 0.8));
			a.wrap = wrapperFor(a, true);
			a.comment = drawComment();
			step.push(a);
			if (sp && random() < 0.4) { step.push({ sql: 'ROLLBACK TO SAVEPOINT fz_sp' }); sp = false; }
		}
		step.push({ sql: random() < 0.7 ? 'COMMIT' : 'ROLLBACK' });
		return step;
	}
	let a;
	do a = pick(actions)(); while (a.tx || (a.rare && random() < 0.8));
	a.wrap = wrapperFor(a, false);
	a.comment = drawComment();
	return [a];
}

function textOf(a) {
	let text;
	switch (a.wrap) {
		case 'do': text = `DO $fz$ BEGIN EXECUTE $q$${a.sql}$q$; END $fz$`; break;
		case 'func': text = `SELECT fz_exec($q$${a.sql}$q$)`; break;
		default: text = a.sql;
	}
	if (!a.comment) return text;
	return a.comment.lead ? `${a.comment.text} ${text}` : `${text} ${a.comment.text}`;
}

// Run one action on the fuzzed connection; true if it succeeded
async function run(c, a, names) {
	const text = textOf(a);
	try {
		if (a.wrap === 'extended') await c.query({ text, values: [], queryMode: 'extended' });
		else if (a.wrap === 'named') {
			if (!names.has(text)) names.set(text, `fz_n${names.size + 1}`);
			a.stmtName = names.get(text);
			await c.query({ name: a.stmtName, text });
		} else await c.query(text);
		return true;
	} catch (e) {
		a.error = e.message;
		return false;
	}
}

// The events a step may and must produce, as bounds per "reason/hidden"
function expectations(step, ran, parsed) {
	const lo = new Map();
	const hi = new Map();
	const add = (m, k, v) => m.set(k, (m.get(k) || 0) + v);
	step.forEach((a, i) => {
		if (!a.reasons) return;
		const ok = ran[i];
		for (const r of a.reasons) {
			let hidden = a.kind === 'expr' || a.kind === 'call' || a.wrap === 'do' || a.wrap === 'func';
			if (a.kind === 'big') hidden = false;
			const k = `${r}/${hidden}`;
			if (ok && (a.kind === S || a.kind === 'call' || a.kind === 'big')) add(lo, k, 1);
			add(hi, k, a.kind === 'call' && r === 'set_config' && a.sql.startsWith('CALL') ? 2 : 1);
			if (a.kind === 'call' && a.sql.startsWith('CALL')) add(lo, k, 0);
		}
		if (a.wrap === 'named' && parsed[i]) {
			add(hi, 'protocol_prepared_statement/false', 1);
			if (parsed[i] === 'first-ok') add(lo, 'protocol_prepared_statement/false', 1);
		}
	});
	return { lo, hi };
}

function normalize(arr) {
	return [...new Set((arr || []).map((x) => (x === 'set_config' ? 'set' : x)))].sort();
}

async function oracle(c) {
	const r = (await c.query(oracleSql)).rows[0].r;
	for (const p of probes) {
		try { await c.query(p); r.push('sequence_function'); break; } catch (e) { /* not defined */ }
	}
	return normalize(r);
}

// Play a session; returns the index of the first step that disagrees and why
async function play(steps, observer, report) {
	const c = new Client(conn);
	await c.connect();
	c.on('error', () => {});
	c.on('notice', () => {});
	const pid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;
	const names = new Map();
	const usedNames = new Set();
	const triedNames = new Set();
	let seen = (await observer.query('SELECT count(*)::int AS n FROM lambdaguard.pinning_events WHERE pid = $1', [pid])).rows[0].n;
	let result = null;
	try {
		for (let s = 0; s < steps.length; s++) {
			const step = steps[s];
			const ran = [];
			const parsed = [];
			for (const a of step) {
				a.error = undefined;
				// a name counts as parsed once a run of it succeeded; after a
				// failed run it may or may not have been parsed
				const wasNew = a.wrap === 'named' && !usedNames.has(textOf(a));
				const triedBefore = a.wrap === 'named' && triedNames.has(textOf(a));
				ran.push(await run(c, a, names));
				if (a.wrap === 'named') {
					if (ran[ran.length - 1]) usedNames.add(textOf(a));
					triedNames.add(textOf(a));
					// a first run that failed may have failed before or after Parse
					parsed.push(wasNew ? (ran[ran.length - 1] && !triedBefore ? 'first-ok' : 'first') : null);
				} else parsed.push(null);
			}
			// the session is idle now: compare
			const st = (await c.query('SELECT pg_backend_pid() /*oracle*/')); void st;
			const dirtyRow = (await observer.query('SELECT dirty_reasons FROM lambdaguard.sessions WHERE pid = $1', [pid])).rows[0];
			const dirty = normalize(dirtyRow ? dirtyRow.dirty_reasons : []);
			const want = await oracle(c);
			const ev = (await observer.query(
				`SELECT reason, hidden, statement FROM lambdaguard.pinning_events WHERE pid = $1`, [pid])).rows;
			const fresh = ev.slice(seen).filter((e) => !/\/\*oracle\*\//.test(e.statement || ''));
			seen = ev.length;
			const why = [];
			if (JSON.stringify(dirty) !== JSON.stringify(want)) {
				why.push(`dirty_reasons ${JSON.stringify(dirty)} but PostgreSQL shows ${JSON.stringify(want)}`);
			}
			const { lo, hi } = expectations(step, ran, parsed);
			const got = new Map();
			for (const e of fresh) {
				const k = `${e.reason}/${e.hidden}`;
				got.set(k, (got.get(k) || 0) + 1);
			}
			for (const [k, v] of got) if (v > (hi.get(k) || 0)) why.push(`${v} event(s) ${k}, at most ${hi.get(k) || 0} expected`);
			for (const [k, v] of lo) if ((got.get(k) || 0) < v) why.push(`${got.get(k) || 0} event(s) ${k}, at least ${v} expected`);
			if (report) report(step, ran);
			if (why.length) { result = { at: s, why }; break; }
		}
	} finally {
		await c.end().catch(() => {});
	}
	return result;
}

async function shrink(steps, observer) {
	let cur = steps.slice();
	let changed = true;
	while (changed) {
		changed = false;
		for (let i = cur.length - 2; i >= 0; i--) {
			const cand = cur.slice(0, i).concat(cur.slice(i + 1));
			const r = await play(cand, observer);
			if (r) { cur = cand.slice(0, r.at + 1); changed = true; break; }
		}
	}
	return cur;
}

(async () => {
	const observer = new Client(conn);
	await observer.connect();
	await observer.query(setupSql);
	await observer.query(`SELECT lambdaguard.reset()`);
	let sessions = 0;
	let statements = 0;
	let checks = 0;
	let failed = 0;
	const failures = [];
	for (const steps of known) {
		sessions++;
		const r = await play(steps, observer, (step) => { statements += step.length; checks++; });
		if (r) {
			failed++;
			checks--;
			failures.push({ min: steps, why: r.why });
			console.log(`DISAGREEMENT in known session ${sessions}: ${r.why.join('; ')}`);
			for (const st of steps) console.log(render(st).split('\n').map((l) => `    ${l}`).join('\n') + '\n    --');
		}
	}
	while (Date.now() < deadline && failures.length < 3) {
		const steps = [];
		const len = 3 + Math.floor(random() * 10);
		for (let i = 0; i < len; i++) steps.push(drawStep());
		sessions++;
		const r = await play(steps, observer, (step) => { statements += step.length; checks++; });
		if (r) {
			failed++;
			checks--;
			const min = await shrink(steps.slice(0, r.at + 1), observer);
			const again = await play(min, observer);
			failures.push({ min, why: (again || r).why });
			console.log(`DISAGREEMENT in session ${sessions}: ${(again || r).why.join('; ')}`);
			console.log('minimal reproducing sequence (one step per line group, each step then compared):');
			for (const st of min) console.log(render(st).split('\n').map((l) => `    ${l}`).join('\n') + '\n    --');
		}
		if (sessions % 50 === 0) await observer.query('SELECT lambdaguard.reset()');
	}
	console.log(`sessions ${sessions}, statements ${statements}, checks passed ${checks}, disagreements ${failed}`);
	await observer.end();
	process.exit(failed ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
