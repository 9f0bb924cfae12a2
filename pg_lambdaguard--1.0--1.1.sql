/* pg_lambdaguard--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_lambdaguard UPDATE TO '1.1'" to load this file. \quit

------------------------------------------------------------------------------
-- The orphan guard
------------------------------------------------------------------------------

-- lambdaguard.metrics reads the views below; it is created again at the end.
DROP VIEW lambdaguard.metrics;

-- The worker's view: the storm brake (since when it holds) and the errors
-- met while writing the history.
DROP VIEW lambdaguard.worker;
DROP FUNCTION lambdaguard.worker_row();
CREATE FUNCTION lambdaguard.worker_row(
    OUT pid int, OUT started_at timestamptz, OUT last_scan_at timestamptz,
    OUT scans bigint, OUT sessions_seen int, OUT last_scan_us bigint,
    OUT orphans_found bigint, OUT terminated bigint, OUT cancelled bigint,
    OUT dry_run_hits bigint, OUT errors bigint, OUT last_error text,
    OUT history_errors bigint, OUT brake_since timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'lg_worker'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW lambdaguard.worker AS
    SELECT * FROM lambdaguard.worker_row();
COMMENT ON VIEW lambdaguard.worker IS
    'The background worker''s figures; brake_since: since when the storm brake holds';
GRANT SELECT ON lambdaguard.worker TO pg_monitor;

COMMENT ON FUNCTION lambdaguard.scan(boolean) IS
    'One scan now with the caller''s rights: scan(true) previews; scan(false) is carried out by the worker, which commits each row before its signal';

-- A view calls its functions with the rights of whoever reads it, so GRANT
-- SELECT on a view must come with the right to execute them.  Each checks
-- for itself that its caller may read some view built on it.
GRANT EXECUTE ON FUNCTION lambdaguard.session_rows(), lambdaguard.event_rows(),
    lambdaguard.stat_rows(), lambdaguard.worker_row(), lambdaguard.action_counts(),
    lambdaguard.reasons_emitted() TO PUBLIC;

------------------------------------------------------------------------------
-- Pinning
------------------------------------------------------------------------------
-- pinning_stats gains hidden_events: the events made inside a function,
-- procedure or DO block (which no proxy sees).  stat_rows() keeps its 1.0
-- columns for what is built on it.
CREATE FUNCTION lambdaguard.pinning_stat_rows(
    OUT usename name, OUT datname name, OUT reason text, OUT events bigint,
    OUT sessions bigint, OUT last_seen timestamptz, OUT hidden_events bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'lg_pinning_stats'
LANGUAGE C STRICT VOLATILE;
-- as for the other functions behind views: it checks its caller may read
-- a view built on it
GRANT EXECUTE ON FUNCTION lambdaguard.pinning_stat_rows() TO PUBLIC;

CREATE OR REPLACE VIEW lambdaguard.pinning_stats AS
    SELECT * FROM lambdaguard.pinning_stat_rows();
COMMENT ON VIEW lambdaguard.pinning_stats IS
    'Pinning events (of which hidden_events inside functions) and sessions per role, database and reason since the last reset()';


------------------------------------------------------------------------------
-- Metrics
------------------------------------------------------------------------------
CREATE VIEW lambdaguard.metrics AS
    WITH s AS (SELECT watched, pinned, verdict, dirty_reasons FROM lambdaguard.sessions),
    w AS (SELECT * FROM lambdaguard.worker)
    SELECT 'lambdaguard_sessions_watched'::text AS metric, '{}'::jsonb AS labels,
           count(*) FILTER (WHERE watched)::float8 AS value FROM s
    UNION ALL
    SELECT 'lambdaguard_sessions_pinned', '{}'::jsonb,
           count(*) FILTER (WHERE pinned)::float8 FROM s
    UNION ALL
    SELECT 'lambdaguard_sessions_dirty', '{}'::jsonb,
           count(*) FILTER (WHERE cardinality(dirty_reasons) > 0)::float8 FROM s
    UNION ALL
    SELECT 'lambdaguard_orphans', '{}'::jsonb,
           count(*) FILTER (WHERE verdict <> 'ok')::float8 FROM s
    UNION ALL
    SELECT 'lambdaguard_actions_total',
           jsonb_build_object('verdict', a.verdict, 'action', a.action), a.count::float8
      FROM lambdaguard.action_counts() a
    UNION ALL
    SELECT 'lambdaguard_pinning_events_total', jsonb_build_object('reason', e.reason),
           coalesce(sum(st.events), 0)::float8
      FROM lambdaguard.reasons_emitted() e
      LEFT JOIN lambdaguard.pinning_stat_rows() st ON st.reason = e.reason
     GROUP BY e.reason
    UNION ALL
    SELECT 'lambdaguard_hidden_state_changes_total', jsonb_build_object('reason', e.reason),
           coalesce(sum(st.hidden_events), 0)::float8
      FROM lambdaguard.reasons_emitted() e
      LEFT JOIN lambdaguard.pinning_stat_rows() st ON st.reason = e.reason
     GROUP BY e.reason
    UNION ALL
    SELECT 'lambdaguard_worker_up', '{}'::jsonb, (pid IS NOT NULL)::int::float8 FROM w
    UNION ALL
    SELECT 'lambdaguard_worker_last_scan_seconds', '{}'::jsonb, last_scan_us / 1e6 FROM w
    UNION ALL
    SELECT 'lambdaguard_worker_last_scan_age_seconds', '{}'::jsonb,
           extract(epoch FROM clock_timestamp() - last_scan_at)::float8
      FROM w WHERE last_scan_at IS NOT NULL
    UNION ALL
    SELECT 'lambdaguard_worker_scans_total', '{}'::jsonb, scans::float8 FROM w
    UNION ALL
    SELECT 'lambdaguard_worker_errors_total', '{}'::jsonb, errors::float8 FROM w
    UNION ALL
    SELECT 'lambdaguard_history_write_errors_total', '{}'::jsonb, history_errors::float8 FROM w
    UNION ALL
    SELECT 'lambdaguard_worker_brake_holding', '{}'::jsonb,
           (brake_since IS NOT NULL)::int::float8 FROM w;
COMMENT ON VIEW lambdaguard.metrics IS 'Figures for a Prometheus exporter';
GRANT SELECT ON lambdaguard.metrics TO pg_monitor;
