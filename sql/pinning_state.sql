--
-- dirty_reasons against what PostgreSQL itself shows; one numbered
-- section per property checked
--
SET client_min_messages = warning;
DROP DATABASE IF EXISTS lg_state;
CREATE DATABASE lg_state TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C';
\c lg_state
SET client_min_messages = warning;
CREATE EXTENSION pg_lambdaguard;
DROP ROLE IF EXISTS lg_state_role;
CREATE ROLE lg_state_role;
CREATE SEQUENCE s1;
CREATE TABLE serial_t (id serial, v int);
CREATE TABLE ident_t (id int GENERATED ALWAYS AS IDENTITY, v int);
CREATE TABLE m (id int PRIMARY KEY, v text);
INSERT INTO m VALUES (1, 'a');

-- The oracle: session state as PostgreSQL shows it.  Parameters are one
-- entry, 'set': pg_settings cannot tell SET from set_config().  Sequence
-- state is probed with currval() by the statements of section 6: a probe
-- inside a function would take the sequence's lock.
CREATE FUNCTION oracle() RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  r text[] := '{}';
BEGIN
  IF EXISTS (SELECT FROM pg_settings
              WHERE source = 'session' AND name NOT LIKE 'transaction\_%'
                AND lower(name) NOT IN (
                  SELECT lower(trim(p)) FROM unnest(string_to_array(
                    current_setting('lambdaguard.ignored_parameters'), ',')) p))
     OR current_setting('role') <> 'none'
     OR session_user <> (SELECT usename FROM pg_stat_activity
                          WHERE pid = pg_backend_pid())
     OR coalesce(current_setting('app.tenant', true), '') <> '' THEN
    r := r || 'set'::text;
  END IF;
  IF EXISTS (SELECT FROM pg_prepared_statements WHERE from_sql) THEN
    r := r || 'prepared_statement'::text;
  END IF;
  IF EXISTS (SELECT FROM pg_prepared_statements WHERE NOT from_sql) THEN
    r := r || 'protocol_prepared_statement'::text;
  END IF;
  IF EXISTS (SELECT FROM pg_class c WHERE relnamespace = pg_my_temp_schema()
              AND relkind IN ('r', 'p')) THEN
    r := r || 'temp_table'::text;
  END IF;
  IF EXISTS (SELECT FROM pg_class c WHERE relnamespace = pg_my_temp_schema()
              AND relkind = 'S' AND NOT EXISTS (
                SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.deptype IN ('a', 'i')
                   AND d.refclassid = 'pg_class'::regclass)) THEN
    r := r || 'temp_sequence'::text;
  END IF;
  IF EXISTS (SELECT FROM pg_class c WHERE relnamespace = pg_my_temp_schema()
              AND relkind IN ('v', 'm')) THEN
    r := r || 'temp_view'::text;
  END IF;
  IF EXISTS (SELECT FROM pg_cursors WHERE is_holdable) THEN
    r := r || 'cursor_with_hold'::text;
  END IF;
  IF EXISTS (SELECT FROM pg_listening_channels()) THEN
    r := r || 'listen'::text;
  END IF;
  IF EXISTS (SELECT FROM pg_locks WHERE pid = pg_backend_pid()
              AND locktype = 'advisory' AND granted) THEN
    r := r || 'advisory_lock'::text;
  END IF;
  RETURN r;
END $$;

-- dirty_reasons in the oracle's terms
CREATE FUNCTION dirty() RETURNS text[] LANGUAGE sql AS $$
  SELECT array(SELECT DISTINCT CASE WHEN x = 'set_config' THEN 'set' ELSE x END
                 FROM unnest(dirty_reasons) x
                WHERE x NOT IN ('cursor', 'load', 'sequence_function'))
    FROM lambdaguard.sessions WHERE pid = pg_backend_pid()
$$;
CREATE VIEW agree AS
  SELECT dirty() AS dirty_reasons,
         (SELECT array_agg(x ORDER BY x) FROM unnest(dirty()) x) IS NOT DISTINCT FROM
         (SELECT array_agg(x ORDER BY x) FROM unnest(oracle()) x) AS same_as_postgres;
CREATE VIEW my_events AS
  SELECT reason, hidden, statement FROM lambdaguard.pinning_events
   WHERE pid = pg_backend_pid() AND statement NOT LIKE '%/*oracle*/%';
CREATE VIEW my_state AS
  SELECT pinned, pin_reasons, dirty_reasons FROM lambdaguard.sessions
   WHERE pid = pg_backend_pid();
CREATE VIEW seq_dirty AS
  SELECT 'sequence_function' = ANY (dirty_reasons) AS sequence_state
    FROM lambdaguard.sessions WHERE pid = pg_backend_pid();
GRANT pg_monitor TO lg_state_role;
GRANT SELECT ON agree, my_events, my_state, seq_dirty TO lg_state_role;
RESET client_min_messages;

--
-- 1. Text is cut at a character boundary (pinned_by 192 bytes, events 1024)
--
\c lg_state
SELECT lambdaguard.reset();
SELECT format('SET search_path = %L', 'ab' || repeat('€', 400)) AS long_set \gset
:long_set;
RESET search_path;
SELECT octet_length(pinned_by) AS bytes, octet_length(pinned_by) <= 191 AS clipped,
       convert_from(textsend(pinned_by), 'UTF8') = pinned_by AS valid_utf8
  FROM lambdaguard.sessions WHERE pid = pg_backend_pid();
SELECT octet_length(statement) AS bytes, octet_length(statement) <= 1024 AS clipped,
       convert_from(textsend(statement), 'UTF8') = statement AS valid_utf8
  FROM my_events WHERE statement LIKE 'SET search_path%';

--
-- 2. SET ROLE x; RESET ALL leaves the role set
--
\c lg_state
SET ROLE lg_state_role;
RESET ALL;
SELECT current_setting('role') AS role, * FROM agree;
RESET ROLE;
SELECT * FROM agree;
SET SESSION AUTHORIZATION lg_state_role;
RESET ALL;
SELECT * FROM agree;
RESET SESSION AUTHORIZATION;
SELECT * FROM agree;
-- parameters as they are once the transaction ends: SET LOCAL is undone,
-- but above a RESET it leaves the reset value with source session
BEGIN;
SET work_mem = '3MB';
SET LOCAL statement_timeout = '9s';
SELECT * FROM agree;
ROLLBACK;
SELECT * FROM agree;
BEGIN;
RESET work_mem;
SAVEPOINT s;
SET work_mem = '1MB';
ROLLBACK TO SAVEPOINT s;
SET LOCAL work_mem = '2MB';
COMMIT;
SELECT * FROM agree;
RESET work_mem;

--
-- 3. Changes no hook sees: PL/pgSQL simple expressions, inlined SQL
--    functions, MERGE actions
--
\c lg_state
CREATE FUNCTION f_assign() RETURNS text LANGUAGE plpgsql AS $$
DECLARE x text;
BEGIN
  x := set_config('app.tenant', '42', false);
  RETURN x;
END $$;
CREATE FUNCTION f_if(n int) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  IF pg_try_advisory_lock(n) THEN
    RETURN true;
  END IF;
  RETURN false;
END $$;
CREATE FUNCTION f_return() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  RETURN nextval('s1');
END $$;
CREATE FUNCTION f_inline() RETURNS text LANGUAGE sql AS
  $$ SELECT set_config('work_mem', '5MB', false) $$;
SELECT lambdaguard.reset();
SELECT f_assign();
SELECT * FROM agree;
SELECT f_if(7);
SELECT * FROM agree;
SELECT f_return() > 0 AS called;
SELECT * FROM agree;
SELECT currval('s1') > 0 AS currval_answers, * FROM seq_dirty;
SELECT * FROM my_events;
SELECT * FROM my_state;
\c lg_state
SELECT lambdaguard.reset();
EXPLAIN (COSTS OFF) SELECT f_inline();
SELECT f_inline();
SELECT * FROM agree;
SELECT * FROM my_events;
MERGE INTO m USING (SELECT 1 AS id) s ON m.id = s.id
  WHEN MATCHED THEN UPDATE SET v = set_config('statement_timeout', '7s', false);
SELECT * FROM my_events;
SELECT * FROM agree;

--
-- 4. COMMIT and ROLLBACK inside procedures do not break nesting
--
\c lg_state
CREATE PROCEDURE p_tx() LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('work_mem', '6MB', false);
  ROLLBACK;
  PERFORM set_config('work_mem', '7MB', false);
  COMMIT;
END $$;
CREATE FUNCTION f_set() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  SET search_path = public;
END $$;
SELECT lambdaguard.reset();
CALL p_tx();
DO $$ BEGIN ROLLBACK; END $$;
SELECT f_set();
SELECT repeat('x', 17000) AS big \gset
SELECT length(:'big');
SELECT reason, hidden FROM my_events;
SELECT * FROM my_state;
SELECT current_setting('work_mem') AS work_mem, * FROM agree;

--
-- 5. No phantom or doubled events
--
\c lg_state
SELECT lambdaguard.reset();
CREATE TEMP TABLE t5 (id serial);
SELECT * FROM agree;
DROP TABLE t5;
SELECT * FROM agree;
SELECT reason, hidden FROM my_events;
-- parallel workers record nothing; the statement is counted once, here
SELECT lambdaguard.reset();
SELECT CASE WHEN current_setting('server_version_num')::int >= 160000
            THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END AS parallel_guc \gset
SET :parallel_guc = on;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SELECT format('SELECT count(*) FROM m WHERE v <> %L', repeat('y', 17000)) AS bigq \gset
:bigq;
RESET :parallel_guc;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
SELECT reason, count(*) FROM lambdaguard.pinning_events
 WHERE reason = 'statement_too_large' GROUP BY reason;
SELECT count(*) FILTER (WHERE pid <> pg_backend_pid()) AS from_other_pids
  FROM lambdaguard.pinning_events;
-- utility statements that run the executor: once each
SELECT lambdaguard.reset();
SELECT format('CREATE TEMP TABLE big_ctas AS SELECT %L AS v', repeat('z', 17000)) AS q1,
       format('EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT %L AS v', repeat('z', 17000)) AS q2,
       format('DECLARE big_c CURSOR FOR SELECT %L AS v', repeat('z', 17000)) AS q3,
       format('COPY (SELECT %L AS v) TO STDOUT', repeat('z', 17000)) AS q4 \gset
:q1;
\o /dev/null
:q2;
BEGIN;
:q3;
COMMIT;
:q4;
\o
SELECT reason, count(*) FROM my_events GROUP BY reason ORDER BY reason;
-- EXECUTE is as long as its own text
SELECT lambdaguard.reset();
SELECT format('PREPARE big_p AS SELECT %L AS v', repeat('z', 17000)) AS q5 \gset
:q5;
EXECUTE big_p \g /dev/null
SELECT reason, count(*) FROM my_events GROUP BY reason ORDER BY reason;
DEALLOCATE big_p;
DROP TABLE big_ctas;

--
-- 6. Sequence state is dirty until DISCARD SEQUENCES
--
\c lg_state
SELECT * FROM seq_dirty;
INSERT INTO serial_t (v) VALUES (1);
SELECT currval('serial_t_id_seq') > 0 AS currval_answers, * FROM seq_dirty;
DISCARD SEQUENCES;
SELECT * FROM seq_dirty;
SELECT currval('serial_t_id_seq');
INSERT INTO ident_t (v) VALUES (1);
SELECT lastval() > 0 AS lastval_answers, * FROM seq_dirty;
DISCARD SEQUENCES;
SELECT setval('s1', 10, false);
SELECT * FROM seq_dirty;
SELECT currval('s1');
SELECT setval('s1', 10);
SELECT currval('s1') AS currval, * FROM seq_dirty;
DISCARD ALL;
SELECT * FROM seq_dirty;
SELECT lastval();
-- COPY fills defaults without a plan: a serial column not given
COPY serial_t (id, v) FROM STDIN;
100	6
\.
SELECT * FROM seq_dirty;
COPY serial_t (v) FROM STDIN;
7
\.
SELECT currval('serial_t_id_seq') > 0 AS currval_answers, * FROM seq_dirty;

--
-- 7. Changes inside functions are dirty and hidden, not pin_reasons
--
\c lg_state
SELECT lambdaguard.reset();
SELECT f_assign();
DO $$ BEGIN PERFORM pg_advisory_lock(99); END $$;
SELECT * FROM my_state;
SELECT reason, hidden FROM my_events;
SELECT reason, events, hidden_events FROM lambdaguard.pinning_stats
 WHERE datname = current_database() ORDER BY reason;
SELECT pg_advisory_unlock_all();

--
-- 8. Advisory locks are counted from the session's own locks, per
--    transaction that may have changed them
--
\c lg_state
SELECT pg_try_advisory_lock(1), pg_try_advisory_lock_shared(2);
SELECT * FROM agree;
BEGIN;
SELECT pg_advisory_xact_lock(3);
SELECT pg_advisory_unlock(1);
COMMIT;
SELECT * FROM agree;
SELECT pg_advisory_unlock_shared(2);
SELECT * FROM agree;
-- an error after the lock: the session lock stays
SELECT pg_advisory_lock(4), 1 / (length(current_user) - length(current_user));
SELECT * FROM agree;
SELECT pg_advisory_unlock_all();
SELECT * FROM agree;

--
-- 9. A function known as PL/pgSQL, replaced by an inlinable SQL function:
--    what is known of functions goes with the change of pg_proc, and the
--    inlined body is walked
--
\c lg_state
CREATE FUNCTION f_becomes_sql() RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN RETURN 'plain'; END $$;
SELECT lambdaguard.reset();
SELECT f_becomes_sql();
SELECT f_becomes_sql();
SELECT * FROM my_events;
SELECT * FROM agree;
CREATE OR REPLACE FUNCTION f_becomes_sql() RETURNS text LANGUAGE sql AS
  $$ SELECT set_config('app.tenant', '9', false) $$;
EXPLAIN (COSTS OFF) SELECT f_becomes_sql();
SELECT f_becomes_sql();
SELECT * FROM my_events;
SELECT * FROM agree;

--
-- 10. A call the client wrote is visible whatever its spelling: qualified,
--     quoted, upper case, white space or a comment before the parenthesis
--
\c lg_state
SELECT lambdaguard.reset();
SELECT pg_catalog.set_config ('work_mem', '9MB', false);
SELECT "set_config"/* why not */('app.tenant', '10', false);
SELECT NEXTVAL('s1') > 0 AS called;
SELECT pg_advisory_lock
  (11);
-- (psql before 15 drops the line comment from the text it sends)
SELECT set_config -- a line comment
  ('app.tenant', '12', false);
SELECT * FROM my_events;
SELECT * FROM agree;
SELECT pg_advisory_unlock_all();

--
-- 11. C code that sets a parameter no hook sees (pg_trgm's set_limit), right
--     after a plain SET: a hidden event when it changes a value, none when
--     it does not (the SET before it is no change of its); in a statement
--     that has a parameter event already, no second one
--
\c lg_state
CREATE EXTENSION pg_trgm;
SELECT lambdaguard.reset();
SET work_mem = '6MB';
SELECT set_limit(0.4) > 0 AS called;
SELECT * FROM agree;
SET work_mem = '7MB';
SELECT set_limit(0.4) > 0 AS called;
DO $$ BEGIN SET work_mem = '8MB'; PERFORM set_limit(0.6); END $$;
SELECT current_setting('pg_trgm.similarity_threshold') AS threshold, * FROM agree;
SELECT * FROM my_events;
DROP EXTENSION pg_trgm;

--
-- 12. Every simple expression a PL/pgSQL statement evaluates (a DECLARE's
--     initial value, ELSIF and WHEN conditions, FOR bounds, FOREACH's
--     array, RAISE parameters, ASSERT, EXECUTE ... USING), and CALL's
--     arguments, which CALL evaluates itself
--
\c lg_state
CREATE FUNCTION f_declare() RETURNS text LANGUAGE plpgsql AS $$
DECLARE x text := set_config('work_mem', '3MB', false);
BEGIN
  RETURN x;
END $$;
CREATE FUNCTION f_elsif(n int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  IF n = 0 THEN
    RETURN 0;
  ELSIF set_config('app.tenant', '12', false) IS NOT NULL THEN
    RETURN 1;
  END IF;
  RETURN 2;
END $$;
CREATE FUNCTION f_when() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  CASE WHEN false THEN RETURN 0;
       WHEN pg_try_advisory_lock(12) THEN RETURN 1;
       ELSE RETURN 2;
  END CASE;
END $$;
CREATE FUNCTION f_for() RETURNS int LANGUAGE plpgsql AS $$
DECLARE n int := 0;
BEGIN
  FOR i IN 1 .. pg_try_advisory_lock(13)::int + 1 LOOP n := n + 1; END LOOP;
  RETURN n;
END $$;
CREATE FUNCTION f_foreach() RETURNS int LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
  FOREACH v IN ARRAY ARRAY[nextval('s1')] LOOP END LOOP;
  RETURN 1;
END $$;
CREATE FUNCTION f_raise() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  RAISE DEBUG 'next: %', nextval('s1');
  RETURN 1;
END $$;
CREATE FUNCTION f_assert() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  ASSERT nextval('s1') > 0;
  RETURN 1;
END $$;
CREATE FUNCTION f_using() RETURNS bool LANGUAGE plpgsql AS $$
DECLARE b bool;
BEGIN
  EXECUTE 'SELECT $1' INTO b USING pg_try_advisory_lock(14);
  RETURN b;
END $$;
CREATE PROCEDURE p_arg(x text) LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
CREATE PROCEDURE p_default(x bigint DEFAULT nextval('s1')) LANGUAGE plpgsql AS
  $$ BEGIN NULL; END $$;
CREATE FUNCTION f_call() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  CALL p_arg(set_config('app.tenant', '14', false));
  RETURN 1;
END $$;
SELECT lambdaguard.reset();
SELECT f_declare();
SELECT current_setting('work_mem') AS work_mem, * FROM agree;
SELECT * FROM my_events;
\c lg_state
SELECT f_elsif(0);
SELECT * FROM agree;
SELECT f_elsif(1);
SELECT * FROM agree;
SELECT * FROM my_events WHERE statement LIKE '%app.tenant%';
\c lg_state
SELECT f_when();
SELECT * FROM agree;
SELECT pg_advisory_unlock_all();
SELECT f_for();
SELECT * FROM agree;
SELECT pg_advisory_unlock_all();
SELECT f_using();
SELECT * FROM agree;
SELECT pg_advisory_unlock_all();
SELECT * FROM agree;
SELECT reason, hidden, statement FROM my_events
 WHERE statement LIKE '%advisory_lock(1_)%' ORDER BY statement;
-- an ELSIF whose branch commits; an SQL function inlined into an expression
CREATE PROCEDURE p_elsif_commit(n int) LANGUAGE plpgsql AS $$
BEGIN
  IF n = 0 THEN
    NULL;
  ELSIF nextval('s1') > 0 THEN
    COMMIT;
  END IF;
END $$;
CREATE FUNCTION f_sqlnext() RETURNS bigint LANGUAGE sql AS $$ SELECT nextval('s1') $$;
CREATE FUNCTION f_inlined() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE x bigint;
BEGIN
  x := f_sqlnext() + 1;
  RETURN x;
END $$;
\c lg_state
CALL p_elsif_commit(1);
SELECT currval('s1') > 0 AS currval_answers, * FROM seq_dirty;
\c lg_state
SELECT f_inlined() > 0 AS called;
SELECT currval('s1') > 0 AS currval_answers, * FROM seq_dirty;
-- inlined into a FOR bound, the loop committing; behind an operator
CREATE PROCEDURE p_for_commit() LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. f_sqlnext() * 0 + 1 LOOP
    COMMIT;
  END LOOP;
END $$;
CREATE FUNCTION f_op(int) RETURNS bigint LANGUAGE sql AS $$ SELECT nextval('s1') + $1 $$;
CREATE OPERATOR ### (RIGHTARG = int, FUNCTION = f_op);
CREATE FUNCTION f_operator(n int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE x bigint;
BEGIN
  x := ### n;
  RETURN x;
END $$;
\c lg_state
CALL p_for_commit();
SELECT currval('s1') > 0 AS currval_answers, * FROM seq_dirty;
\c lg_state
SELECT f_operator(1) > 0 AS called;
SELECT currval('s1') > 0 AS currval_answers, * FROM seq_dirty;
\c lg_state
SELECT f_foreach();
SELECT currval('s1') > 0 AS currval_answers, * FROM seq_dirty;
\c lg_state
SELECT f_raise();
SELECT currval('s1') > 0 AS currval_answers, * FROM seq_dirty;
\c lg_state
SELECT f_assert();
SELECT currval('s1') > 0 AS currval_answers, * FROM seq_dirty;
-- CALL: the client's arguments pin as the client wrote them; a default, or
-- a CALL inside a function, is hidden
\c lg_state
SELECT lambdaguard.reset();
CALL p_arg(set_config('app.tenant', '13', false));
SELECT * FROM agree;
SELECT * FROM my_state;
SELECT * FROM my_events;
\c lg_state
CREATE PROCEDURE p_fails(x bigint) LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'p_fails: %', x; END $$;
CALL p_fails(nextval('s1') * 0);
SELECT currval('s1') > 0 AS currval_answers, * FROM seq_dirty;
-- a CALL refused before its arguments are evaluated changed nothing
\c lg_state
CREATE PROCEDURE p_owner_only(x bigint) LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
REVOKE EXECUTE ON PROCEDURE p_owner_only(bigint) FROM PUBLIC;
SELECT lambdaguard.reset();
SET ROLE lg_state_role;
CALL p_owner_only(nextval('s1'));
RESET ROLE;
SELECT * FROM my_state;
SELECT * FROM seq_dirty;
SELECT currval('s1');
\c lg_state
CALL p_default();
SELECT currval('s1') > 0 AS currval_answers, * FROM seq_dirty;
SELECT * FROM my_events;
\c lg_state
SELECT f_call();
SELECT * FROM agree;
SELECT * FROM my_state;
SELECT * FROM my_events;

--
-- 13. A view whose query calls a reason function (a view over it too), or a
--     column default that does: the calls are hidden, as in a function; a
--     view replaced in the session is looked at again
--
\c lg_state
CREATE VIEW v_plain AS SELECT 1 AS x;
CREATE VIEW v_seq AS SELECT nextval('s1') AS x;
CREATE VIEW v_over_seq AS SELECT x FROM v_seq;
CREATE VIEW v_lock AS SELECT pg_try_advisory_lock(15) AS x;
SELECT lambdaguard.reset();
SELECT * FROM v_plain;
SELECT * FROM agree;
CREATE OR REPLACE VIEW v_plain AS SELECT length(set_config('app.tenant', '15', false)) AS x;
SELECT * FROM v_plain;
SELECT * FROM agree;
SELECT * FROM v_lock;
SELECT * FROM agree;
SELECT * FROM my_events;
SELECT * FROM my_state;
SELECT pg_advisory_unlock_all();
\c lg_state
SELECT x > 0 AS called FROM v_over_seq;
SELECT currval('s1') > 0 AS currval_answers, * FROM seq_dirty;
SELECT * FROM my_events WHERE reason = 'sequence_function' AND hidden;
-- a transaction-level lock named in the text is no pin of the view's
-- session-level one
\c lg_state
SELECT lambdaguard.reset();
SELECT pg_advisory_xact_lock(1) IS NULL AS xact_lock, x FROM v_lock;
SELECT * FROM agree;
SELECT * FROM my_state;
SELECT * FROM my_events;
SELECT pg_advisory_unlock_all();
-- a temporary view read by a prepared statement: the transaction can still
-- be prepared (the view is looked at without marking it as one that used
-- temporary objects)
\c lg_state
CREATE TEMP VIEW tv AS SELECT 1 AS a;
PREPARE q_tv AS SELECT a FROM tv;
BEGIN;
EXECUTE q_tv;
PREPARE TRANSACTION 'lg_state_tv';
COMMIT PREPARED 'lg_state_tv';
-- a column default that calls set_config: hidden; a serial's nextval: state,
-- no event
\c lg_state
CREATE TABLE t_default (id serial, tenant text DEFAULT set_config('app.tenant', '16', false));
SELECT * FROM seq_dirty;
INSERT INTO t_default DEFAULT VALUES;
SELECT current_setting('app.tenant') AS tenant, * FROM agree;
SELECT currval('t_default_id_seq') > 0 AS currval_answers, * FROM seq_dirty;
SELECT * FROM my_events WHERE statement LIKE 'INSERT%';
DROP TABLE t_default;

-- a name spelt with Unicode escapes is the client's own call too
\c lg_state
SELECT lambdaguard.reset();
SELECT U&"nextv\0061l"('s1') > 0 AS called;
SELECT currval('s1') > 0 AS currval_answers, * FROM seq_dirty;
SELECT * FROM my_state;
-- a cursor's query runs at FETCH: what it changed is read there
\c lg_state
BEGIN;
DECLARE c_lock CURSOR FOR SELECT pg_advisory_lock(17), set_config('app.tenant', '17', false);
SELECT * FROM agree;
FETCH c_lock;
SELECT * FROM agree;
COMMIT;
SELECT pg_advisory_unlock_all();
\c contrib_regression
DROP DATABASE lg_state;
DROP ROLE lg_state_role;
