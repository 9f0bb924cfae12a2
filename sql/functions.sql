--
-- Views and functions: shape, the reasons table, scan() and reset()
--
-- every column the contract promises, with its type
SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod)
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = 'lambdaguard'::regnamespace
   AND c.relname IN ('sessions', 'orphans', 'pinning_events', 'pinning_stats',
                     'reasons', 'history', 'worker', 'metrics')
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.relname, a.attnum;

-- the schema is fixed
SELECT extrelocatable, extnamespace::regnamespace FROM pg_extension
 WHERE extname = 'pg_lambdaguard';
ALTER EXTENSION pg_lambdaguard SET SCHEMA public;

-- every reason the hooks can emit has a row, and the safe variants are listed
SELECT e.reason, r.pins_rds_proxy, r.breaks_pgbouncer_transaction_mode,
       r.hint IS NOT NULL AND r.hint <> '' AS has_hint
  FROM lambdaguard.reasons_emitted() e
  LEFT JOIN lambdaguard.reasons r USING (reason)
 ORDER BY e.reason;
SELECT reason, pins_rds_proxy, breaks_pgbouncer_transaction_mode
  FROM lambdaguard.reasons
 WHERE reason NOT IN (SELECT reasons_emitted FROM lambdaguard.reasons_emitted())
 ORDER BY reason;

-- the reasons table is read-only, even for a superuser
INSERT INTO lambdaguard.reasons VALUES ('x', 'x', false, false, NULL, 'x');
UPDATE lambdaguard.reasons SET hint = '' WHERE reason = 'set';
DELETE FROM lambdaguard.reasons;
TRUNCATE lambdaguard.reasons;
SELECT count(*) FROM lambdaguard.reasons;

-- this session is in the sessions view, unwatched (no roles configured)
SELECT state, watched, pinned, verdict, action_at, blocking, query IS NOT NULL AS has_query
  FROM lambdaguard.sessions WHERE pid = pg_backend_pid();
SELECT count(*) FROM lambdaguard.orphans;

-- scan(): a preview writes nothing; NULL is an error, not an empty answer
SELECT count(*) FROM lambdaguard.scan();
SELECT count(*) FROM lambdaguard.scan(true);
-- scan(false) is carried out by the worker, which records in
-- lambdaguard.database (postgres), not in this database
SELECT count(*) FROM lambdaguard.scan(false);
SELECT * FROM lambdaguard.scan(NULL);
SELECT count(*) FROM lambdaguard.history;

-- the worker view always has one row
SELECT count(*), bool_and(scans >= 0 AND errors >= 0) FROM lambdaguard.worker;

-- the metrics a Prometheus exporter reads
SELECT DISTINCT metric FROM lambdaguard.metrics ORDER BY metric;
SELECT labels FROM lambdaguard.metrics
 WHERE metric = 'lambdaguard_actions_total' ORDER BY labels::text LIMIT 3;

-- reset() clears events and statistics
SET search_path = public;
SELECT count(*) > 0 AS has_events FROM lambdaguard.pinning_events;
SELECT lambdaguard.reset();
SELECT count(*) FROM lambdaguard.pinning_events;
SELECT count(*) FROM lambdaguard.pinning_stats;
RESET search_path;
