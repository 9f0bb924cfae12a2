--
-- Pinning: each reason, its safe variant, hidden changes, dirty state
--
SET client_min_messages = warning;
CREATE VIEW my_events AS
  SELECT reason, hidden, statement FROM lambdaguard.pinning_events
   WHERE pid = pg_backend_pid();
CREATE VIEW my_state AS
  SELECT pinned, pin_reasons, dirty_reasons FROM lambdaguard.sessions
   WHERE pid = pg_backend_pid();
CREATE ROLE lg_pin_role;
CREATE SEQUENCE seq;
CREATE TABLE serial_t (id serial, v int);
RESET client_min_messages;

-- a fresh session has no pins; SET pins and is named in pinned_by
\c
SELECT * FROM my_state;
SELECT lambdaguard.reset();
SET work_mem = '8MB';
SELECT pinned, pin_reasons, dirty_reasons, pinned_by FROM lambdaguard.sessions
 WHERE pid = pg_backend_pid();

-- SET and its forms; SET LOCAL, SET TRANSACTION and ignored parameters are not reasons
SELECT lambdaguard.reset();
BEGIN; SET LOCAL work_mem = '9MB'; COMMIT;
BEGIN; SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; COMMIT;
SET application_name = 'pinning_test';
SET timezone = 'UTC';
SET DateStyle = 'ISO, MDY';
RESET work_mem;
SET ROLE lg_pin_role;
RESET ROLE;
SET SESSION AUTHORIZATION lg_pin_role;
RESET SESSION AUTHORIZATION;
SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;
SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE;
RESET ALL;
SELECT * FROM my_events;

-- set_config: only the session-wide form, and not for ignored parameters
SELECT lambdaguard.reset();
SELECT set_config('work_mem', '10MB', false);
SELECT set_config('work_mem', '10MB', true);
SELECT set_config('application_name', 'pinning_test', false);
SELECT * FROM my_events;

-- sequence functions written in the statement; a serial default is not one
SELECT lambdaguard.reset();
INSERT INTO serial_t (v) VALUES (1);
SELECT nextval('seq');
SELECT currval('seq');
SELECT setval('seq', 5);
SELECT setval('seq', 6, false);
SELECT lastval();
SELECT * FROM my_events;

-- advisory locks: the session-level ones; the _xact_ ones are not reasons
SELECT lambdaguard.reset();
SELECT pg_advisory_xact_lock(5);
BEGIN; SELECT pg_try_advisory_xact_lock(6); SELECT pg_advisory_xact_lock_shared(7); COMMIT;
SELECT * FROM my_state;
SELECT pg_advisory_lock(1);
SELECT pg_try_advisory_lock(2);
SELECT pg_advisory_lock_shared(3);
SELECT pg_try_advisory_lock_shared(4);
SELECT pg_advisory_lock(1, 2);
SELECT * FROM pg_advisory_lock(8);
SELECT * FROM my_events;
SELECT dirty_reasons FROM my_state;
SELECT pg_advisory_unlock_all();
SELECT dirty_reasons FROM my_state;
-- unlocking one key recounts what is really held
SELECT pg_advisory_lock(20);
SELECT dirty_reasons FROM my_state;
SELECT pg_advisory_unlock(20);
SELECT dirty_reasons FROM my_state;

-- prepared statements, DISCARD
SELECT lambdaguard.reset();
PREPARE p1 AS SELECT 1;
EXECUTE p1;
DEALLOCATE p1;
DISCARD PLANS;
SELECT * FROM my_events;

-- temporary objects in every spelling
SELECT lambdaguard.reset();
CREATE TEMP TABLE tt1 (x int);
CREATE TEMPORARY TABLE tt2 AS SELECT 1 AS x;
SELECT 1 AS x INTO TEMP tt3;
CREATE TABLE pg_temp.tt4 (x int);
CREATE TEMP SEQUENCE ts1;
CREATE TEMP VIEW tv1 AS SELECT 1 AS one;
CREATE TABLE not_temp (x int);
SELECT * FROM my_events;
SELECT dirty_reasons FROM my_state;
DROP TABLE tt1, tt2, tt3, tt4;
SELECT dirty_reasons FROM my_state;
DROP SEQUENCE ts1;
DROP VIEW tv1;
SELECT dirty_reasons FROM my_state;

-- cursors, LISTEN, LOAD; NOTIFY is not a reason
SELECT lambdaguard.reset();
BEGIN;
DECLARE c1 CURSOR FOR SELECT 1;
DECLARE c2 CURSOR WITH HOLD FOR SELECT 1;
SELECT dirty_reasons FROM my_state;
COMMIT;
SELECT dirty_reasons FROM my_state;
CLOSE c2;
SELECT dirty_reasons FROM my_state;
LISTEN chan1;
NOTIFY other_channel;
LOAD 'plpgsql';
SELECT * FROM my_events;
UNLISTEN chan1;
SELECT dirty_reasons FROM my_state;

-- a statement over 16384 bytes
SELECT lambdaguard.reset();
SELECT repeat('x', 17000) AS big \gset
SELECT length(:'big');
SELECT length('short');
SELECT reason, hidden, length(statement) FROM my_events;

-- changes made inside functions and procedures are hidden
CREATE FUNCTION f_state() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('work_mem', '11MB', false);
  SET search_path = public;
  PERFORM pg_advisory_lock(42);
  CREATE TEMP TABLE IF NOT EXISTS ft (x int);
END $$;
CREATE PROCEDURE p_state() LANGUAGE plpgsql AS $$
BEGIN
  SET work_mem = '12MB';
END $$;
CREATE FUNCTION f_sql_state() RETURNS SETOF text LANGUAGE sql AS $$
  SELECT set_config('statement_timeout', '5s', false);
$$;
SELECT lambdaguard.reset();
SELECT f_state();
SELECT f_state();
CALL p_state();
DO $$ BEGIN PERFORM nextval('seq'); END $$;
SELECT * FROM f_sql_state();
SELECT reason, hidden FROM my_events;
SELECT pg_advisory_unlock_all();

-- dirty state and what clears it; pin_reasons stay
\c
SET work_mem = '1MB';
PREPARE q AS SELECT 1;
CREATE TEMP TABLE d1 (x int);
BEGIN; DECLARE h CURSOR WITH HOLD FOR SELECT 1; COMMIT;
LISTEN d;
SELECT pg_advisory_lock(10);
SELECT * FROM my_state;
RESET ALL;
SELECT dirty_reasons FROM my_state;
DEALLOCATE ALL;
SELECT dirty_reasons FROM my_state;
CLOSE ALL;
SELECT dirty_reasons FROM my_state;
UNLISTEN *;
SELECT dirty_reasons FROM my_state;
SELECT pg_advisory_unlock_all();
SELECT dirty_reasons FROM my_state;
DROP TABLE d1;
SELECT * FROM my_state;

-- DISCARD ALL clears everything at once
\c
SET work_mem = '1MB';
PREPARE q AS SELECT 1;
CREATE TEMP TABLE d2 (x int);
CREATE TEMP SEQUENCE d3;
BEGIN; DECLARE h CURSOR WITH HOLD FOR SELECT 1; COMMIT;
LISTEN d;
SELECT pg_advisory_lock(11);
SELECT dirty_reasons FROM my_state;
DISCARD ALL;
SELECT * FROM my_state;

-- a rollback undoes transactional state; ON COMMIT DROP and EXECUTE leave none
\c
BEGIN;
SET work_mem = '2MB';
CREATE TEMP TABLE r1 (x int);
SELECT set_config('work_mem', '3MB', false);
SELECT dirty_reasons FROM my_state;
ROLLBACK;
SELECT * FROM my_state;
BEGIN;
CREATE TEMP TABLE ocd (x int) ON COMMIT DROP;
COMMIT;
PREPARE e AS SELECT 2;
EXECUTE e;
DEALLOCATE e;
SELECT * FROM my_state;

-- the ring keeps the last lambdaguard.max_events (100 here)
SELECT lambdaguard.reset();
DO $$
BEGIN
  FOR i IN 1..150 LOOP
    EXECUTE format('SET work_mem = %L', (1024 + i) || 'kB');
  END LOOP;
END $$;
SELECT count(*), min(statement), max(statement) FROM my_events;
SELECT reason, events, sessions FROM lambdaguard.pinning_stats
 WHERE usename = current_user;

-- track_pinning: none records nothing, watched only watched sessions
SELECT lambdaguard.reset();
SET lambdaguard.track_pinning = none;
SET work_mem = '4MB';
SET lambdaguard.track_pinning = watched;
SET work_mem = '5MB';
SET lambdaguard.track_pinning = 'all';
SET work_mem = '6MB';
SELECT reason, statement FROM my_events;
