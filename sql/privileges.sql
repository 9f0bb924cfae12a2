--
-- Privileges: nothing for PUBLIC, pg_monitor reads, superusers act
--
SET client_min_messages = warning;
CREATE ROLE lg_plain LOGIN;
CREATE ROLE lg_monitor LOGIN IN ROLE pg_monitor;
CREATE ROLE lg_signaller LOGIN IN ROLE pg_signal_backend;
CREATE ROLE lg_granted LOGIN;
RESET client_min_messages;

-- a plain login role reads nothing and runs nothing
SET ROLE lg_plain;
SELECT count(*) FROM lambdaguard.sessions;
SELECT count(*) FROM lambdaguard.orphans;
SELECT count(*) FROM lambdaguard.pinning_events;
SELECT count(*) FROM lambdaguard.pinning_stats;
SELECT count(*) FROM lambdaguard.history;
SELECT count(*) FROM lambdaguard.worker;
SELECT count(*) FROM lambdaguard.metrics;
SELECT count(*) FROM lambdaguard.reasons;
SELECT count(*) FROM lambdaguard.session_rows();
SELECT count(*) FROM lambdaguard.scan(true);
SELECT lambdaguard.reset();
RESET ROLE;

-- pg_monitor members read every view, and see other roles' query text
SET ROLE lg_monitor;
SELECT count(*) > 0 FROM lambdaguard.sessions;
SELECT count(*) >= 0 FROM lambdaguard.orphans;
SELECT count(*) >= 0 FROM lambdaguard.pinning_events;
SELECT count(*) >= 0 FROM lambdaguard.pinning_stats;
SELECT count(*) >= 0 FROM lambdaguard.history;
SELECT count(*) FROM lambdaguard.worker;
SELECT count(*) > 0 FROM lambdaguard.metrics;
SELECT count(*) > 0 FROM lambdaguard.reasons;
SELECT query <> '<insufficient privilege>' AS sees_query
  FROM lambdaguard.sessions WHERE pid = pg_backend_pid();
-- but may not act or reset
SELECT count(*) FROM lambdaguard.scan(false);
SELECT lambdaguard.reset();
-- nor write the history
DELETE FROM lambdaguard.history;
RESET ROLE;

-- pg_signal_backend alone does not open the views or scan()
SET ROLE lg_signaller;
SELECT count(*) FROM lambdaguard.sessions;
SELECT count(*) FROM lambdaguard.scan(false);
RESET ROLE;

-- GRANT SELECT on a view is enough (specs/session_state shows others' query
-- text hidden): its functions check that the caller may read a view built on
-- them, directly or through other views
GRANT USAGE ON SCHEMA lambdaguard TO lg_granted;
GRANT SELECT ON lambdaguard.sessions TO lg_granted;
SET ROLE lg_granted;
SELECT usename, query FROM lambdaguard.sessions
 WHERE pid = pg_backend_pid();
SELECT count(*) > 0 FROM lambdaguard.session_rows();
-- but no other view, nor the functions behind them
SELECT count(*) FROM lambdaguard.orphans;
SELECT count(*) FROM lambdaguard.worker_row();
SELECT count(*) FROM lambdaguard.event_rows();
RESET ROLE;
GRANT SELECT ON lambdaguard.metrics TO lg_granted;
SET ROLE lg_granted;
SELECT count(*) > 0 FROM lambdaguard.metrics;
SELECT count(*) FROM lambdaguard.worker_row();
RESET ROLE;
REVOKE SELECT ON lambdaguard.metrics FROM lg_granted;

-- scan(false) and reset() by explicit grant (scan(false) is carried out by
-- the worker, in lambdaguard.database: here, not this database)
GRANT EXECUTE ON FUNCTION lambdaguard.scan(boolean), lambdaguard.reset() TO lg_granted;
SET ROLE lg_granted;
SELECT count(*) FROM lambdaguard.scan(false);
SELECT lambdaguard.reset();
RESET ROLE;

-- nothing in the schema is granted to PUBLIC
SELECT c.relname, c.relacl::text LIKE '%=r%/%' AND c.relacl::text ~ '(^|[{,])=' AS public_can_read
  FROM pg_class c
 WHERE c.relnamespace = 'lambdaguard'::regnamespace AND c.relkind IN ('r', 'v')
 ORDER BY c.relname;
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_can_execute
  FROM pg_proc p WHERE p.pronamespace = 'lambdaguard'::regnamespace
 ORDER BY p.proname;

REVOKE ALL ON SCHEMA lambdaguard FROM lg_granted;
REVOKE ALL ON lambdaguard.sessions FROM lg_granted;
REVOKE ALL ON FUNCTION lambdaguard.session_rows(), lambdaguard.scan(boolean), lambdaguard.reset() FROM lg_granted;
DROP ROLE lg_plain, lg_monitor, lg_signaller, lg_granted;
