/*
 * uninstall.sql: removes pg_lambdaguard_managed from this database, as the
 * role that installed it:
 *
 *     psql -X -v ON_ERROR_STOP=1 -f uninstall.sql                     # history dropped too
 *     psql -X -v ON_ERROR_STOP=1 -v keep_history=on -f uninstall.sql  # history kept
 *
 * With keep_history=on, lambdaguard.history (its rows, identity and
 * indexes) moves to the schema lambdaguard_archive, created for it; nothing
 * else is left.  The pg_cron jobs of this role that call lambdaguard.run()
 * are unscheduled.  Installed as an extension (pg_tle), the extension is
 * dropped (DROP EXTENSION), the history copied first when kept.
 */
\if :{?keep_history}
\else
\set keep_history off
\endif
SET client_min_messages = warning;
BEGIN;

-- the jobs that would call a procedure that no longer exists
DO $$
BEGIN
    IF to_regclass('cron.job') IS NOT NULL THEN
        PERFORM cron.unschedule(jobid) FROM cron.job
         WHERE command ~ 'lambdaguard\.run\s*\(' AND username = current_user;
    END IF;
END
$$;

\if :keep_history
DO $$
DECLARE
    ext text;
BEGIN
    IF to_regclass('lambdaguard.history') IS NULL THEN
        RAISE EXCEPTION 'lambdaguard.history does not exist: nothing to keep';
    END IF;
    IF to_regclass('lambdaguard_archive.history') IS NOT NULL THEN
        RAISE EXCEPTION 'lambdaguard_archive.history already exists'
            USING HINT = 'Rename or drop the history kept by an earlier uninstall first.';
    END IF;
    CREATE SCHEMA IF NOT EXISTS lambdaguard_archive;
    SELECT e.extname INTO ext FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     JOIN pg_depend d ON d.refobjid = e.oid AND d.classid = 'pg_namespace'::regclass
     WHERE d.objid = 'lambdaguard'::regnamespace AND d.deptype = 'e';
    IF ext IS NOT NULL THEN
        -- an extension's table cannot leave it: copy the rows
        CREATE TABLE lambdaguard_archive.history (LIKE lambdaguard.history INCLUDING ALL);
        INSERT INTO lambdaguard_archive.history SELECT * FROM lambdaguard.history;
    ELSE
        ALTER TABLE lambdaguard.history SET SCHEMA lambdaguard_archive;
    END IF;
END
$$;
\endif

DO $$
DECLARE
    ext text;
BEGIN
    SELECT e.extname INTO ext FROM pg_extension e
      JOIN pg_depend d ON d.refobjid = e.oid AND d.refclassid = 'pg_extension'::regclass
     WHERE d.classid = 'pg_namespace'::regclass AND d.objid = to_regnamespace('lambdaguard')
       AND d.deptype = 'e';
    IF ext IS NOT NULL THEN
        EXECUTE format('DROP EXTENSION %I', ext);
    ELSIF to_regnamespace('lambdaguard') IS NOT NULL THEN
        DROP SCHEMA lambdaguard CASCADE;
    END IF;
END
$$;
COMMIT;
