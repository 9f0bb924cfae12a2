--
-- The invocation context: sqlcommenter comments read from the statements
-- the client sends, shown in lambdaguard.sessions for the open transaction.
-- Each case runs in a transaction of its own; ctx() reads this session's
-- row (the reading statement carries no comment).
--
BEGIN;
SET LOCAL client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_lambdaguard;
COMMIT;
\pset null (null)
CREATE FUNCTION pg_temp.ctx() RETURNS jsonb LANGUAGE sql
AS $$ SELECT client_context FROM lambdaguard.sessions WHERE pid = pg_backend_pid() $$;

-- well-formed, trailing; URL-decoding and a backslash-escaped quote
BEGIN;
SELECT 1 AS trailing /*request_id='r%2D1',route='%2Fpay%3Fx%3D1',who='O\'Brien'*/;
SELECT pg_temp.ctx();
ROLLBACK;

-- leading (knex's .comment() puts it first, with spaces inside)
BEGIN;
/* request_id='lead', traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' */ SELECT 2 AS leading;
SELECT pg_temp.ctx();
ROLLBACK;

-- a comment after the final semicolon counts as trailing
BEGIN;
SELECT 3 AS after_semicolon; /*request_id='semi'*/
SELECT pg_temp.ctx();
ROLLBACK;

-- pairs of several statements add up; a key keeps its first value
BEGIN;
SELECT 4 /*a='1'*/;
SELECT 4 /*a='2',b='3'*/;
SELECT pg_temp.ctx();
ROLLBACK;

-- outside a transaction block the context ends with the statement
SELECT 5 /*request_id='autocommit'*/;
SELECT pg_temp.ctx();

-- nested comments are not sqlcommenter comments: ignored
BEGIN;
SELECT 6 /*a='1' /*b='2'*/ */;
SELECT pg_temp.ctx();
ROLLBACK;

-- truncated or malformed pairs: the whole comment is ignored
BEGIN;
SELECT 7 /*a='unterminated*/;
SELECT 7 /*a=unquoted*/;
SELECT 7 /*='nokey'*/;
SELECT 7 /*a='1' b='2'*/;
SELECT 7 /*a='bad%2'*/;
SELECT 7 /*a='%zz'*/;
SELECT 7 /* just a plain comment */;
SELECT pg_temp.ctx();
ROLLBACK;

-- non-UTF-8 (a lone byte 0xFF) and NUL are ignored, never an error
BEGIN;
SELECT 8 /*a='%FF'*/;
SELECT 8 /*a='x%00y'*/;
SELECT pg_temp.ctx();
ROLLBACK;
-- valid UTF-8 is decoded
BEGIN;
SELECT 8 /*city='Z%C3%BCrich'*/;
SELECT pg_temp.ctx();
ROLLBACK;

-- comments inside string literals, quoted identifiers, dollar quotes and
-- line comments are never read as context
BEGIN;
SELECT '/*a=''b''*/' AS lit;
SELECT E'\'/*a=''b''*/' AS escaped;
SELECT 1 AS "/*a='b'*/";
SELECT $q$ /*a='b'*/ $q$ AS dollar;
SELECT 1 -- /*a='b'*/
;
SELECT pg_temp.ctx();
ROLLBACK;

-- a string that ends like a comment, then a real one
BEGIN;
SELECT '/*x' AS lit /*request_id='real'*/;
SELECT pg_temp.ctx();
ROLLBACK;

-- the first 8 pairs are kept
BEGIN;
SELECT 9 /*k1='1',k2='2',k3='3',k4='4',k5='5',k6='6',k7='7',k8='8',k9='9'*/;
SELECT (SELECT count(*) FROM jsonb_object_keys(pg_temp.ctx())) AS pairs,
       pg_temp.ctx() ? 'k8' AS has_k8, pg_temp.ctx() ? 'k9' AS has_k9;
ROLLBACK;

-- at most 256 bytes of keys and values are kept: a pair that does not fit
-- is dropped with the rest
BEGIN;
SELECT format('SELECT 10 /*a=%L,b=%L,c=%L*/', repeat('x', 200), repeat('y', 60), 'z') AS q \gset
:q;
SELECT pg_temp.ctx() ? 'a' AS has_a, pg_temp.ctx() ? 'b' AS has_b, pg_temp.ctx() ? 'c' AS has_c;
ROLLBACK;

-- a comment over 4 KB is ignored
BEGIN;
SELECT format('SELECT 11 /*a=%L*/', repeat('x', 4100)) AS q \gset
:q;
SELECT pg_temp.ctx();
ROLLBACK;

-- a statement inside a function is not the client's: its comment is not read
CREATE FUNCTION pg_temp.inner_comment() RETURNS int LANGUAGE plpgsql
AS $$ BEGIN RETURN (SELECT 12 /*request_id='inside'*/); END $$;
BEGIN;
SELECT pg_temp.inner_comment();
SELECT pg_temp.ctx();
ROLLBACK;

-- SQL-level PREPARE: the comment of EXECUTE counts, the one prepared does not
PREPARE old_invocation AS SELECT 13 /*request_id='prepared-earlier'*/;
BEGIN;
EXECUTE old_invocation;
SELECT pg_temp.ctx();
EXECUTE old_invocation /*request_id='executing-now'*/;
SELECT pg_temp.ctx();
ROLLBACK;
DEALLOCATE old_invocation;

-- deadlines: epoch milliseconds or RFC 3339; the earliest holds; one further
-- away than 15 minutes is ignored; one already past counts from now
BEGIN;
SELECT format('SELECT 14 /*lambdaguard_deadline=''%s''*/',
              (extract(epoch FROM now() + interval '5 min') * 1000)::bigint) AS q \gset
:q;
SELECT deadline BETWEEN now() + interval '4 min' AND now() + interval '6 min' AS five_minutes
  FROM lambdaguard.sessions WHERE pid = pg_backend_pid();
SELECT format('SELECT 14 /*lambdaguard_deadline=''%s''*/',
              to_char((now() + interval '2 min') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) AS q \gset
:q;
SELECT deadline BETWEEN now() + interval '1 min' AND now() + interval '3 min' AS earlier_rfc3339
  FROM lambdaguard.sessions WHERE pid = pg_backend_pid();
SELECT format('SELECT 14 /*lambdaguard_deadline=''%s''*/',
              (extract(epoch FROM now() + interval '4 min') * 1000)::bigint) AS q \gset
:q;
SELECT deadline < now() + interval '3 min' AS later_one_ignored
  FROM lambdaguard.sessions WHERE pid = pg_backend_pid();
ROLLBACK;
BEGIN;
SELECT format('SELECT 15 /*lambdaguard_deadline=''%s''*/',
              (extract(epoch FROM now() + interval '20 min') * 1000)::bigint) AS q \gset
:q;
SELECT deadline AS beyond_horizon FROM lambdaguard.sessions WHERE pid = pg_backend_pid();
SELECT 15 /*lambdaguard_deadline='2020-01-01T00:00:00+02:00'*/;
SELECT deadline BETWEEN now() AND clock_timestamp() AS past_counts_from_now
  FROM lambdaguard.sessions WHERE pid = pg_backend_pid();
ROLLBACK;
BEGIN;
SELECT 16 /*lambdaguard_deadline='tomorrow'*/;
SELECT 16 /*lambdaguard_deadline='2026-13-01T00:00:00Z'*/;
SELECT deadline AS not_a_deadline FROM lambdaguard.sessions WHERE pid = pg_backend_pid();
ROLLBACK;

-- the comments changed no session state: only PREPARE above pinned
SELECT pin_reasons, dirty_reasons
  FROM lambdaguard.sessions WHERE pid = pg_backend_pid();

-- a pinning statement's event carries its statement's context
SELECT lambdaguard.reset();
SET work_mem = '5MB' /*request_id='pinner'*/;
SELECT reason, client_context FROM lambdaguard.pinning_events WHERE pid = pg_backend_pid();
RESET work_mem;

-- the setting
SHOW lambdaguard.deadline_grace;
SET lambdaguard.deadline_grace = 10;
