/* pg_lambdaguard--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_lambdaguard UPDATE TO '1.1'" to load this file. \quit

------------------------------------------------------------------------------
-- The orphan guard
------------------------------------------------------------------------------

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
REVOKE ALL ON FUNCTION lambdaguard.pinning_stat_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lambdaguard.pinning_stat_rows() TO pg_monitor;

CREATE OR REPLACE VIEW lambdaguard.pinning_stats AS
    SELECT * FROM lambdaguard.pinning_stat_rows();
COMMENT ON VIEW lambdaguard.pinning_stats IS
    'Pinning events (of which hidden_events inside functions) and sessions per role, database and reason since the last reset()';


------------------------------------------------------------------------------
-- Metrics
------------------------------------------------------------------------------
