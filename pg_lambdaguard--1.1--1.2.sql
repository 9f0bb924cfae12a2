/* pg_lambdaguard--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_lambdaguard UPDATE TO '1.2'" to load this file. \quit

------------------------------------------------------------------------------
-- The invocation behind a decision: the pairs of the sqlcommenter comments
-- of the transaction it is about (for pinned_idle: of the statement that
-- pinned the session first).  Rows written before 1.2 keep NULL.
------------------------------------------------------------------------------
ALTER TABLE lambdaguard.history ADD COLUMN client_context jsonb;
COMMENT ON COLUMN lambdaguard.history.client_context IS
    'The sqlcommenter pairs of the transaction the decision is about (for pinned_idle, of the statement that pinned the session first), e.g. traceparent and a request id';

------------------------------------------------------------------------------
-- Hot standbys: the worker records in a journal file, read and imported here
------------------------------------------------------------------------------

-- The decisions a standby recorded in its journal (pg_lambdaguard/
-- standby_history under its data directory) and has not imported into
-- lambdaguard.history yet, with history's columns; id is the record's number
-- in the journal.  On a standby this is where its decisions are; once
-- promoted, the worker imports them into lambdaguard.history.  Its columns
-- are history's, declared here rather than as the table's row type, so that
-- the view does not depend on the table.
CREATE FUNCTION lambdaguard.standby_history_rows(
    OUT id bigint, OUT at timestamptz, OUT pid int, OUT usename name,
    OUT datname name, OUT application_name text, OUT client_addr inet,
    OUT backend_start timestamptz, OUT xact_start timestamptz, OUT state text,
    OUT state_since timestamptz, OUT verdict text, OUT action text,
    OUT locks_held int, OUT blocked_pids int[], OUT pin_reasons text[],
    OUT query text, OUT detail text, OUT client_context jsonb)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'lg_standby_history'
LANGUAGE C STRICT VOLATILE;
-- as for the other functions behind views: it checks its caller may read a
-- view built on it
GRANT EXECUTE ON FUNCTION lambdaguard.standby_history_rows() TO PUBLIC;

CREATE VIEW lambdaguard.standby_history AS
    SELECT * FROM lambdaguard.standby_history_rows();
COMMENT ON VIEW lambdaguard.standby_history IS
    'Decisions of the worker on this server while it was a hot standby, not yet imported into lambdaguard.history (imported once it is promoted)';
GRANT SELECT ON lambdaguard.standby_history TO pg_monitor;

-- What the worker imported from standby journals: one row per journal, the
-- last record imported.  The rows and this mark are written in one
-- transaction, so that a restart never imports a record twice.
CREATE TABLE lambdaguard.standby_imports (
    system_identifier bigint NOT NULL,
    journal_id        bigint NOT NULL,
    last_seq          bigint NOT NULL,
    rows              int NOT NULL,
    imported_at       timestamptz NOT NULL,
    PRIMARY KEY (system_identifier, journal_id)
);
COMMENT ON TABLE lambdaguard.standby_imports IS
    'Standby journals imported into lambdaguard.history at promotion: the last record imported of each';
SELECT pg_catalog.pg_extension_config_dump('lambdaguard.standby_imports', '');
REVOKE ALL ON lambdaguard.standby_imports FROM PUBLIC;
GRANT SELECT ON lambdaguard.standby_imports TO pg_monitor;

------------------------------------------------------------------------------
-- sessions gains xmin_age: age(backend_xmin), NULL without a snapshot; and
-- the invocation of its open transaction: client_context (the pairs of its
-- statements' comments) and deadline (the earliest its client declared)
------------------------------------------------------------------------------
DROP VIEW lambdaguard.metrics;
DROP VIEW lambdaguard.orphans;
DROP VIEW lambdaguard.sessions;
DROP FUNCTION lambdaguard.session_rows();

CREATE FUNCTION lambdaguard.session_rows(
    OUT pid int, OUT usename name, OUT datname name, OUT application_name text,
    OUT client_addr inet, OUT backend_start timestamptz, OUT xact_start timestamptz,
    OUT state text, OUT state_change timestamptz, OUT state_duration interval,
    OUT watched bool, OUT pinned bool, OUT pin_reasons text[],
    OUT pinned_since timestamptz, OUT pinned_by text, OUT dirty_reasons text[],
    OUT blocking int, OUT verdict text, OUT action_at timestamptz, OUT query text,
    OUT xmin_age int, OUT client_context jsonb, OUT deadline timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'lg_sessions'
LANGUAGE C STRICT VOLATILE;
GRANT EXECUTE ON FUNCTION lambdaguard.session_rows() TO PUBLIC;

CREATE VIEW lambdaguard.sessions AS
    SELECT * FROM lambdaguard.session_rows();
COMMENT ON VIEW lambdaguard.sessions IS
    'One row per client backend: watched, pinned, dirty, blocking, verdict, the age of its snapshot, the invocation of its open transaction';

CREATE VIEW lambdaguard.orphans AS
    SELECT * FROM lambdaguard.sessions WHERE verdict <> 'ok';
COMMENT ON VIEW lambdaguard.orphans IS 'Sessions whose verdict is not ok';

GRANT SELECT ON lambdaguard.sessions, lambdaguard.orphans TO pg_monitor;

------------------------------------------------------------------------------
-- pinning_events gains client_context: the invocation of the event's statement
------------------------------------------------------------------------------
DROP VIEW lambdaguard.pinning_events;
DROP FUNCTION lambdaguard.event_rows();

CREATE FUNCTION lambdaguard.event_rows(
    OUT event_time timestamptz, OUT pid int, OUT usename name, OUT datname name,
    OUT application_name text, OUT client_addr inet, OUT reason text,
    OUT hidden bool, OUT statement text, OUT queryid bigint,
    OUT client_context jsonb)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'lg_pinning_events'
LANGUAGE C STRICT VOLATILE;
GRANT EXECUTE ON FUNCTION lambdaguard.event_rows() TO PUBLIC;

CREATE VIEW lambdaguard.pinning_events AS
    SELECT * FROM lambdaguard.event_rows();
COMMENT ON VIEW lambdaguard.pinning_events IS
    'The last lambdaguard.max_events session-state changes, oldest first, each with the invocation of its statement';
GRANT SELECT ON lambdaguard.pinning_events TO pg_monitor;

------------------------------------------------------------------------------
-- Metrics: whether the server is in recovery, and the standby's records
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
           (brake_since IS NOT NULL)::int::float8 FROM w
    UNION ALL
    SELECT 'lambdaguard_in_recovery', '{}'::jsonb, pg_is_in_recovery()::int::float8
    UNION ALL
    SELECT 'lambdaguard_standby_history_records', '{}'::jsonb, count(*)::float8
      FROM lambdaguard.standby_history;
COMMENT ON VIEW lambdaguard.metrics IS 'Figures for a Prometheus exporter';
GRANT SELECT ON lambdaguard.metrics TO pg_monitor;
