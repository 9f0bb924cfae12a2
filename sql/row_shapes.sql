--
-- The C functions fill the row type their caller declares only when it is
-- one that some version of the extension declares: a column added, dropped,
-- reordered or retyped is an error that names it, never a row of wrong
-- values.  (A database still at 1.0 reading every view: t/4xx.)
--
CREATE SCHEMA shapes;

-- the worker's row as 1.0 declares it (12 columns) is filled
CREATE FUNCTION shapes.worker_10(
    OUT pid int, OUT started_at timestamptz, OUT last_scan_at timestamptz,
    OUT scans bigint, OUT sessions_seen int, OUT last_scan_us bigint,
    OUT orphans_found bigint, OUT terminated bigint, OUT cancelled bigint,
    OUT dry_run_hits bigint, OUT errors bigint, OUT last_error text)
RETURNS SETOF record AS 'pg_lambdaguard', 'lg_worker' LANGUAGE C;
CREATE VIEW shapes.worker_10 AS SELECT * FROM shapes.worker_10();
SELECT w.pid IS NOT DISTINCT FROM v.pid AS same_pid,
       w.started_at IS NOT DISTINCT FROM v.started_at AS same_start
  FROM shapes.worker_10 w, lambdaguard.worker v;

-- 13 columns: no version declares that
CREATE FUNCTION shapes.worker_13(
    OUT pid int, OUT started_at timestamptz, OUT last_scan_at timestamptz,
    OUT scans bigint, OUT sessions_seen int, OUT last_scan_us bigint,
    OUT orphans_found bigint, OUT terminated bigint, OUT cancelled bigint,
    OUT dry_run_hits bigint, OUT errors bigint, OUT last_error text,
    OUT history_errors bigint)
RETURNS SETOF record AS 'pg_lambdaguard', 'lg_worker' LANGUAGE C;
CREATE VIEW shapes.worker_13 AS SELECT * FROM shapes.worker_13();
SELECT * FROM shapes.worker_13;

-- two columns swapped: scans (bigint) where sessions_seen (int) stands
CREATE FUNCTION shapes.worker_swapped(
    OUT pid int, OUT started_at timestamptz, OUT last_scan_at timestamptz,
    OUT sessions_seen int, OUT scans bigint, OUT last_scan_us bigint,
    OUT orphans_found bigint, OUT terminated bigint, OUT cancelled bigint,
    OUT dry_run_hits bigint, OUT errors bigint, OUT last_error text)
RETURNS SETOF record AS 'pg_lambdaguard', 'lg_worker' LANGUAGE C;
CREATE VIEW shapes.worker_swapped AS SELECT * FROM shapes.worker_swapped();
SELECT * FROM shapes.worker_swapped;

-- the statistics as 1.0 declares them (6 columns), and a retyped column
CREATE FUNCTION shapes.stats_10(
    OUT usename name, OUT datname name, OUT reason text, OUT events bigint,
    OUT sessions bigint, OUT last_seen timestamptz)
RETURNS SETOF record AS 'pg_lambdaguard', 'lg_pinning_stats' LANGUAGE C;
CREATE VIEW shapes.stats_10 AS SELECT * FROM shapes.stats_10();
SET work_mem = '5MB';
SELECT count(*) > 0 AS has_rows,
       bool_and(s.events = p.events AND s.sessions = p.sessions
                AND s.last_seen = p.last_seen) AS same_values
  FROM shapes.stats_10 s
  JOIN lambdaguard.pinning_stats p USING (usename, datname, reason);
RESET work_mem;
CREATE FUNCTION shapes.stats_text(
    OUT usename name, OUT datname name, OUT reason text, OUT events text,
    OUT sessions bigint, OUT last_seen timestamptz)
RETURNS SETOF record AS 'pg_lambdaguard', 'lg_pinning_stats' LANGUAGE C;
CREATE VIEW shapes.stats_text AS SELECT * FROM shapes.stats_text();
SELECT * FROM shapes.stats_text;

-- a column dropped from the sessions row
CREATE FUNCTION shapes.sessions_short(
    OUT pid int, OUT usename name, OUT datname name)
RETURNS SETOF record AS 'pg_lambdaguard', 'lg_sessions' LANGUAGE C;
CREATE VIEW shapes.sessions_short AS SELECT * FROM shapes.sessions_short();
SELECT * FROM shapes.sessions_short;

-- a function without a view: the reasons as integers
CREATE FUNCTION shapes.reasons_int()
RETURNS SETOF int AS 'pg_lambdaguard', 'lg_reason_list' LANGUAGE C;
SELECT * FROM shapes.reasons_int();

DROP SCHEMA shapes CASCADE;
