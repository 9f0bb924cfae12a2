/*
 * pg_lambdaguard_managed--1.0--1.1.sql: from 1.0 to 1.1 (the invocation
 * context): the sqlcommenter comment of each statement, as
 * pg_stat_activity shows it; history.client_context; sessions.client_context
 * and sessions.deadline; the setting lambdaguard.deadline_grace and the
 * verdict deadline_passed.  As the role that installed 1.0:
 *
 *     psql -X -1 -v ON_ERROR_STOP=1 -f pg_lambdaguard_managed--1.0--1.1.sql
 *
 * or, with pg_tle, ALTER EXTENSION pg_lambdaguard_managed UPDATE (the
 * package carries this file as its update path).  History rows and
 * settings are kept; the objects end as a fresh install of 1.1 makes them.
 */

DO $guard$
BEGIN
    IF to_regprocedure('lambdaguard.version()') IS NULL THEN
        RAISE EXCEPTION 'pg_lambdaguard_managed is not installed in this database'
            USING ERRCODE = 'undefined_object',
                  HINT = 'Install the newest version with pg_lambdaguard_managed.sql.';
    END IF;
    IF lambdaguard.version() <> '1.0' THEN
        RAISE EXCEPTION 'pg_lambdaguard_managed % is installed; this script upgrades 1.0 to 1.1', lambdaguard.version()
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$guard$;

COMMENT ON SCHEMA lambdaguard IS 'pg_lambdaguard_managed 1.1: orphan guard and pinning audit in SQL';

CREATE OR REPLACE FUNCTION lambdaguard.version()
RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT '1.1'::text $$;

-- the context of the transaction each decision is about
ALTER TABLE lambdaguard.history ADD COLUMN client_context jsonb;

-- the new setting (its definitions are read-only to everyone else)
ALTER TABLE lambdaguard.setting_definitions DISABLE TRIGGER setting_definitions_read_only;
INSERT INTO lambdaguard.setting_definitions VALUES
('lambdaguard.deadline_grace', '1000', 'duration', 'ms', 0, 3600000,
 'a watched session whose transaction is still open this long after the deadline its client declared in a statement comment (lambdaguard_deadline) is deadline_passed');
ALTER TABLE lambdaguard.setting_definitions ENABLE TRIGGER setting_definitions_read_only;

/*
 * The settings, parsed: one row, written whenever settings change, so
 * that a scan reads its settings without parsing them.
 */
CREATE TABLE lambdaguard.parsed_settings (
    enabled               bool NOT NULL,
    naptime_ms            bigint NOT NULL,
    roles                 text[] NOT NULL,
    all_roles             bool NOT NULL,
    application_names     text[] NOT NULL,
    client_cidrs          cidr[] NOT NULL,
    client_local          bool NOT NULL,
    client_filter         bool NOT NULL,
    idle_ms               bigint NOT NULL,
    aborted_ms            bigint NOT NULL,
    blocking_ms           bigint NOT NULL,
    active_ms             bigint NOT NULL,
    dry_run               bool NOT NULL,
    max_terminations      int NOT NULL,
    history_retention_min bigint NOT NULL,
    ignored_parameters    text[] NOT NULL,
    deadline_grace_ms     bigint NOT NULL
);
COMMENT ON TABLE lambdaguard.parsed_settings IS
    'The settings of pg_lambdaguard_managed, parsed (one row, rewritten by every change of settings)';

/*
 * Parse every setting into parsed_settings, after each statement that
 * writes settings (the values are valid: settings_check saw them), as the
 * owner of the table.
 */
CREATE FUNCTION lambdaguard.settings_parse()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s jsonb;
    r lambdaguard.parsed_settings;
    addrs text[];
BEGIN
    SELECT jsonb_object_agg(name, value) INTO s FROM lambdaguard.settings;
    r.enabled := (s->>'lambdaguard.enabled') = 'on';
    r.naptime_ms := (s->>'lambdaguard.naptime')::bigint;
    r.roles := lambdaguard.split_list('lambdaguard.roles', s->>'lambdaguard.roles', 'roles');
    r.all_roles := '*' = ANY (r.roles);
    r.application_names := lambdaguard.split_list('lambdaguard.application_names', s->>'lambdaguard.application_names', 'patterns');
    addrs := lambdaguard.split_list('lambdaguard.client_addresses', s->>'lambdaguard.client_addresses', 'cidrs');
    r.client_filter := cardinality(addrs) > 0;
    r.client_local := 'local' = ANY (addrs);
    r.client_cidrs := ARRAY(SELECT a::cidr FROM unnest(addrs) a WHERE a <> 'local');
    r.idle_ms := (s->>'lambdaguard.idle_in_transaction_timeout')::bigint;
    r.aborted_ms := (s->>'lambdaguard.aborted_transaction_timeout')::bigint;
    r.blocking_ms := (s->>'lambdaguard.blocking_timeout')::bigint;
    r.active_ms := (s->>'lambdaguard.active_timeout')::bigint;
    r.dry_run := (s->>'lambdaguard.dry_run') = 'on';
    r.max_terminations := (s->>'lambdaguard.max_terminations')::int;
    r.history_retention_min := (s->>'lambdaguard.history_retention')::bigint;
    r.ignored_parameters := lambdaguard.split_list('lambdaguard.ignored_parameters', s->>'lambdaguard.ignored_parameters', 'names');
    r.deadline_grace_ms := (s->>'lambdaguard.deadline_grace')::bigint;
    DELETE FROM lambdaguard.parsed_settings;
    INSERT INTO lambdaguard.parsed_settings SELECT r.*;
    RETURN NULL;
END
$$;

CREATE TRIGGER settings_parse
    AFTER INSERT OR UPDATE ON lambdaguard.settings
    FOR EACH STATEMENT EXECUTE FUNCTION lambdaguard.settings_parse();

-- (its trigger parses the settings, the new one included)
INSERT INTO lambdaguard.settings (name, value)
    SELECT name, default_value FROM lambdaguard.setting_definitions WHERE name = 'lambdaguard.deadline_grace';

-- config() and session_rows() return more columns: the views over them go
-- first, and come back below
DROP VIEW lambdaguard.orphans;
DROP VIEW lambdaguard.sessions;
DROP FUNCTION lambdaguard.session_rows(boolean);
DROP FUNCTION lambdaguard.config();

/*
 * Every setting, parsed, for one scan: the row of parsed_settings.
 */
CREATE FUNCTION lambdaguard.config(
    OUT enabled bool, OUT naptime_ms bigint, OUT roles text[], OUT all_roles bool,
    OUT application_names text[], OUT client_cidrs cidr[], OUT client_local bool,
    OUT client_filter bool, OUT idle_ms bigint, OUT aborted_ms bigint,
    OUT blocking_ms bigint, OUT active_ms bigint, OUT dry_run bool,
    OUT max_terminations int, OUT history_retention_min bigint,
    OUT ignored_parameters text[], OUT deadline_grace_ms bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT p.* INTO enabled, naptime_ms, roles, all_roles, application_names, client_cidrs,
                    client_local, client_filter, idle_ms, aborted_ms, blocking_ms, active_ms,
                    dry_run, max_terminations, history_retention_min, ignored_parameters,
                    deadline_grace_ms
      FROM lambdaguard.parsed_settings p;
END
$$;

------------------------------------------------------------------------------
-- Invocation context: the sqlcommenter comment of a statement
-- (/*key='value',...*/, keys and values URL-encoded, a quote escaped with a
-- backslash), as pg_stat_activity shows the statement
------------------------------------------------------------------------------

/*
 * Percent-decode one key or value: NULL if the encoding is invalid, or if
 * the bytes it stands for are not valid UTF-8 or hold a NUL.
 */
CREATE FUNCTION lambdaguard.url_decode(s text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    parts text[];
    b bytea;
    i int;
BEGIN
    IF strpos(s, '%') = 0 THEN
        RETURN s;
    END IF;
    IF s ~ '%(?![0-9A-Fa-f]{2})' THEN
        RETURN NULL;
    END IF;
    parts := string_to_array(s, '%');
    b := convert_to(parts[1], 'UTF8');
    FOR i IN 2 .. cardinality(parts) LOOP
        b := b || decode(left(parts[i], 2), 'hex') || convert_to(substr(parts[i], 3), 'UTF8');
    END LOOP;
    -- UTF-8, byte pair by byte pair (RFC 3629), and no NUL
    IF encode(b, 'hex') !~ ('^(0[1-9a-f]|[1-7][0-9a-f]|(c[2-9a-f]|d[0-9a-f])[89ab][0-9a-f]'
                            '|e0[ab][0-9a-f][89ab][0-9a-f]|(e[1-9a-c]|e[ef])([89ab][0-9a-f]){2}'
                            '|ed[89][0-9a-f][89ab][0-9a-f]|f0(9[0-9a-f]|[ab][0-9a-f])([89ab][0-9a-f]){2}'
                            '|f[1-3]([89ab][0-9a-f]){3}|f48[0-9a-f]([89ab][0-9a-f]){2})*$') THEN
        RETURN NULL;
    END IF;
    IF current_setting('server_encoding') = 'UTF8' THEN
        RETURN convert_from(b, 'UTF8');
    END IF;
    BEGIN
        RETURN convert_from(b, 'UTF8');
    EXCEPTION WHEN untranslatable_character OR character_not_in_repertoire THEN
        RETURN NULL;        -- not representable in the server's encoding
    END;
END
$$;

/*
 * A lambdaguard_deadline value: epoch milliseconds or an RFC 3339 time;
 * NULL if it is neither.
 */
CREATE FUNCTION lambdaguard.deadline_value(v text)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF v ~ '^[0-9]{1,15}$' THEN
        RETURN to_timestamp(v::numeric / 1000);
    ELSIF v ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$' THEN
        BEGIN
            RETURN v::timestamptz;
        EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
            RETURN NULL;    -- the right shape, not a time (2026-13-45)
        END;
    END IF;
    RETURN NULL;
END
$$;

/*
 * Is the character at position pos of a statement's text outside string
 * literals, quoted identifiers and comments?  A small lexer after
 * PostgreSQL's own (scan.l): '' and E'' strings, "" identifiers, $tag$
 * strings, line comments and nested block comments (with
 * standard_conforming_strings on).
 */
CREATE FUNCTION lambdaguard.in_code(stmt text, pos int)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    head text := left(stmt, pos - 1);
    ch text[];
    n int := pos - 1;
    i int := 1;
    c text;
    esc boolean;
    tag text;
    depth int;
    j int;
BEGIN
    IF head !~ '[''"]|--|/\*|\$[^0-9]' THEN
        RETURN true;            -- nothing that could open a literal or comment
    END IF;
    ch := string_to_array(head, NULL);
    WHILE i <= n LOOP
        c := ch[i];
        IF c = '''' THEN
            esc := i > 1 AND ch[i - 1] IN ('E', 'e')
                   AND (i = 2 OR NOT (ch[i - 2] ~ '[A-Za-z0-9_$]' OR ascii(ch[i - 2]) > 127));
            i := i + 1;
            LOOP
                IF i > n THEN
                    RETURN false;
                END IF;
                c := ch[i];
                IF esc AND c = '\' THEN
                    i := i + 2;
                    CONTINUE;
                ELSIF c = '''' THEN
                    EXIT WHEN i = n OR ch[i + 1] <> '''';
                    i := i + 1;
                END IF;
                i := i + 1;
            END LOOP;
        ELSIF c = '"' THEN
            i := i + 1;
            LOOP
                IF i > n THEN
                    RETURN false;
                END IF;
                IF ch[i] = '"' THEN
                    EXIT WHEN i = n OR ch[i + 1] <> '"';
                    i := i + 1;
                END IF;
                i := i + 1;
            END LOOP;
        ELSIF c = '$' AND (i = 1 OR NOT (ch[i - 1] ~ '[A-Za-z0-9_$]' OR ascii(ch[i - 1]) > 127)) THEN
            tag := substring(substr(head, i) FROM '^\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$');
            IF tag IS NOT NULL OR ch[i + 1] = '$' THEN
                tag := '$' || coalesce(tag, '') || '$';
                j := strpos(substr(head, i + length(tag)), tag);
                IF j = 0 THEN
                    RETURN false;
                END IF;
                i := i + length(tag) + j - 1 + length(tag) - 1;
            END IF;
        ELSIF c = '-' AND i < n AND ch[i + 1] = '-' THEN
            j := strpos(substr(head, i), E'\n');
            IF j = 0 THEN
                RETURN false;
            END IF;
            i := i + j - 1;
        ELSIF c = '/' AND i < n AND ch[i + 1] = '*' THEN
            depth := 1;
            i := i + 2;
            WHILE depth > 0 LOOP
                IF i >= n THEN
                    RETURN false;
                ELSIF ch[i] = '/' AND ch[i + 1] = '*' THEN
                    depth := depth + 1;
                    i := i + 2;
                ELSIF ch[i] = '*' AND ch[i + 1] = '/' THEN
                    depth := depth - 1;
                    i := i + 2;
                ELSE
                    i := i + 1;
                END IF;
            END LOOP;
            CONTINUE;
        END IF;
        i := i + 1;
    END LOOP;
    RETURN true;
END
$$;

/*
 * The sqlcommenter comment of one statement's text, as the C edition reads
 * it: the comment at its end (before trailing blanks and semicolons) when
 * the text is complete (not cut at track_activity_query_size), else or
 * failing that the comment at its start.  client_context holds the pairs
 * kept (the first 8, at most 256 bytes of decoded keys and values), deadline
 * the earliest lambdaguard_deadline of any pair: NULL if further than 15
 * minutes after seen (when the statement was sent), seen if already past.
 * A comment that is nested, malformed, badly encoded or over 4096 bytes is
 * ignored: both NULL, never an error.
 */
CREATE FUNCTION lambdaguard.comment_context(stmt text, complete boolean DEFAULT true,
    seen timestamptz DEFAULT now(), OUT client_context jsonb, OUT deadline timestamptz)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    blanks constant text := E' \t\n\r\f\v';
    pair constant text := $re$([^=',[:space:]]+)='((?:[^'\\]|\\.)*)'$re$;
    t text;
    l int;
    s int;
    body text;
    bodies text[] := '{}';
    m text[];
    k text;
    v text;
    d timestamptz;
    kept int;
    bytes int;
    full_ boolean;
BEGIN
    IF stmt IS NULL OR strpos(stmt, '/*') = 0 THEN
        RETURN;
    END IF;
    -- the trailing comment: the last /* of the text, if it is code there
    IF complete THEN
        t := rtrim(stmt, blanks || ';');
        l := length(t);
        IF right(t, 2) = '*/' THEN
            s := l - strpos(reverse(t), '*/');
            IF s BETWEEN 1 AND l - 3 THEN
                body := substr(t, s + 2, l - s - 3);
                IF strpos(body, '*/') = 0 AND lambdaguard.in_code(t, s) THEN
                    bodies := bodies || body;
                END IF;
            END IF;
        END IF;
    END IF;
    -- the leading comment
    t := ltrim(stmt, blanks);
    IF left(t, 2) = '/*' THEN
        s := strpos(t, '*/');
        IF s > 2 THEN
            body := substr(t, 3, s - 3);
            IF strpos(body, '/*') = 0 THEN
                bodies := bodies || body;
            END IF;
        END IF;
    END IF;

    FOREACH body IN ARRAY bodies LOOP
        CONTINUE WHEN octet_length(body) + 4 > 4096
                   OR body !~ ('^[[:space:]]*' || pair || '([[:space:]]*,[[:space:]]*' || pair || ')*[[:space:]]*$');
        client_context := '{}';
        deadline := NULL;
        kept := 0;
        bytes := 0;
        full_ := false;
        FOR m IN SELECT regexp_matches(body, pair, 'g') LOOP
            k := lambdaguard.url_decode(m[1]);
            v := lambdaguard.url_decode(regexp_replace(m[2], '\\(.)', '\1', 'g'));
            IF k IS NULL OR v IS NULL THEN
                client_context := NULL;     -- one bad pair: the whole comment is ignored
                deadline := NULL;
                EXIT;
            END IF;
            IF k = 'lambdaguard_deadline' THEN
                d := lambdaguard.deadline_value(v);
                IF d IS NOT NULL AND d <= seen + interval '15 min' THEN
                    deadline := least(deadline, greatest(d, seen));
                END IF;
            END IF;
            IF NOT full_ AND NOT client_context ? k THEN
                IF kept < 8 AND bytes + octet_length(k) + octet_length(v) <= 256 THEN
                    client_context := client_context || jsonb_build_object(k, v);
                    kept := kept + 1;
                    bytes := bytes + octet_length(k) + octet_length(v);
                ELSE
                    full_ := true;          -- this pair and those after it are dropped
                END IF;
            END IF;
        END LOOP;
        IF client_context IS NOT NULL THEN
            IF client_context = '{}' THEN
                client_context := NULL;
            END IF;
            RETURN;
        END IF;
    END LOOP;
    client_context := NULL;
    deadline := NULL;
END
$$;

/*
 * The earliest deadline and the context of each open transaction, kept
 * across scans: pg_stat_activity shows only a session's last statement.
 * One row per transaction (pid, backend start, transaction start) that
 * carried a comment; query_start is the last statement of it a scan saw.
 * An aborted transaction shows no xact_start: it is the row whose last
 * statement is the one that failed (seen by a scan while it ran: a cancel
 * of this guard, or a slow statement).  Rows of ended transactions are
 * removed by the next scan.
 */
CREATE UNLOGGED TABLE lambdaguard.transaction_context (
    pid            int NOT NULL,
    backend_start  timestamptz NOT NULL,
    xact_start     timestamptz NOT NULL,
    query_start    timestamptz NOT NULL,
    client_context jsonb,
    deadline       timestamptz,
    PRIMARY KEY (pid, backend_start, xact_start)
);
COMMENT ON TABLE lambdaguard.transaction_context IS
    'The context and earliest declared deadline of each open transaction, kept by the scans (pg_stat_activity shows only the last statement)';

/*
 * Is a statement's text in pg_stat_activity whole?  It is cut at
 * track_activity_query_size - 1 bytes, on a character boundary (up to 3
 * bytes shorter): a text that long may be cut, and its trailing comment
 * is not read.
 */
CREATE FUNCTION lambdaguard.query_complete(query text)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- the setting as current_setting() shows it: a number of B, kB or MB
    m text[] := regexp_match(current_setting('track_activity_query_size'), '^([0-9]+)\s*([kMGT]?)B$');
BEGIN
    RETURN octet_length(query) < m[1]::bigint * CASE m[2] WHEN 'k' THEN 1024 WHEN 'M' THEN 1048576
                                                          WHEN 'G' THEN 1073741824 ELSE 1 END - 4;
END
$$;

/*
 * Read the last statement of every open transaction into
 * transaction_context (the earliest deadline, the first context; the last
 * statement seen of a transaction already kept), and remove the rows of
 * transactions that ended.  Called by a scan that acts (plan(false)) when
 * its sessions show something to keep or rows are kept, as the owner of
 * the table; it reads the statistics snapshot of the scan that calls it
 * (run() calls it alone in a transaction of its own).  A statement
 * already read is not read again.
 */
CREATE FUNCTION lambdaguard.remember_contexts()
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    WITH a AS MATERIALIZED (
        SELECT s.pid, s.backend_start, s.xact_start, s.query_start, s.query
          FROM pg_stat_activity s
         WHERE s.backend_type = 'client backend' AND s.pid <> pg_backend_pid()
           AND ((s.xact_start IS NOT NULL AND s.query_start >= s.xact_start)
                OR s.state = 'idle in transaction (aborted)')
    ), ended AS (
        DELETE FROM lambdaguard.transaction_context t
         WHERE NOT EXISTS (SELECT FROM a WHERE a.pid = t.pid AND a.backend_start = t.backend_start
                                            AND (a.xact_start = t.xact_start
                                                 OR (a.xact_start IS NULL AND a.query_start = t.query_start)))
    ), n AS MATERIALIZED (
        -- new statements: of a kept transaction, or with a comment
        SELECT a.*, o.pid IS NOT NULL AS kept
          FROM a
          LEFT JOIN lambdaguard.transaction_context o
            ON o.pid = a.pid AND o.backend_start = a.backend_start AND o.xact_start = a.xact_start
         WHERE a.xact_start IS NOT NULL AND o.query_start IS DISTINCT FROM a.query_start
           AND (o.pid IS NOT NULL OR strpos(a.query, '/*') > 0)
    )
    INSERT INTO lambdaguard.transaction_context AS t
           (pid, backend_start, xact_start, query_start, client_context, deadline)
    SELECT n.pid, n.backend_start, n.xact_start, n.query_start, p.client_context, p.deadline
      FROM n
     CROSS JOIN LATERAL lambdaguard.comment_context(n.query, lambdaguard.query_complete(n.query),
                                                    n.query_start) p
     WHERE n.kept OR p.client_context IS NOT NULL OR p.deadline IS NOT NULL
    ON CONFLICT (pid, backend_start, xact_start) DO UPDATE
       SET query_start = excluded.query_start,
           client_context = coalesce(t.client_context, excluded.client_context),
           deadline = least(t.deadline, excluded.deadline);
END
$$;

/*
 * The client backends, judged: one read of pg_stat_activity and, when
 * some watched session could be due (or every_session asks for it, as the
 * sessions view does), one read of pg_locks joined with itself.  A scan
 * (every_session false) keeps only the sessions that could be due or
 * whose transaction's context counts (in a transaction, or running a
 * statement; never its own) as pg_stat_activity is read, so that idle
 * sessions cost no more than their read.  The statistics snapshot is
 * cleared first, so that the rows are live even in a long transaction.
 * A transaction's context and deadline are those kept in
 * transaction_context merged with its last statement's comment.
 */
CREATE FUNCTION lambdaguard.session_rows(every_session boolean DEFAULT true,
    OUT pid int, OUT usesysid oid, OUT usename name, OUT datname name,
    OUT application_name text, OUT client_addr inet, OUT backend_start timestamptz,
    OUT xact_start timestamptz, OUT query_start timestamptz, OUT state text,
    OUT state_change timestamptz, OUT state_since timestamptz, OUT state_duration interval,
    OUT watched bool, OUT blocking int, OUT blocked_pids int[], OUT locks_held int,
    OUT verdict text, OUT action text, OUT action_at timestamptz, OUT query text,
    OUT client_context jsonb, OUT deadline timestamptz)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    snap pg_stat_activity[];
BEGIN
    PERFORM pg_stat_clear_snapshot();
    snap := ARRAY(
        SELECT s FROM pg_stat_activity s
         WHERE s.backend_type = 'client backend'
           AND (every_session
                OR (s.pid <> pg_backend_pid()
                    AND (s.xact_start IS NOT NULL
                         OR s.state IN ('idle in transaction', 'idle in transaction (aborted)', 'active')))));
    IF cardinality(snap) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH c AS MATERIALIZED (
        SELECT * FROM lambdaguard.config()
    ), t AS MATERIALIZED (
        SELECT clock_timestamp() AS now
    ), a0 AS MATERIALIZED (
        SELECT s.pid, s.usesysid, s.usename, s.datname, s.application_name, s.client_addr,
               s.backend_start, s.xact_start, s.query_start, s.state, s.state_change, s.query,
               CASE WHEN s.state = 'active' THEN s.query_start ELSE s.state_change END AS since,
               (r.rolsuper IS FALSE
                AND s.pid <> pg_backend_pid()
                AND s.application_name IS DISTINCT FROM 'pg_cron'
                AND (c.all_roles OR s.usename::text = ANY (c.roles))
                AND (cardinality(c.application_names) = 0
                     OR EXISTS (SELECT FROM unnest(c.application_names) p
                                 WHERE s.application_name LIKE p))
                AND (NOT c.client_filter
                     OR (c.client_local AND s.client_port = -1)
                     OR EXISTS (SELECT FROM unnest(c.client_cidrs) x WHERE s.client_addr <<= x))
               ) AS watched
          FROM unnest(snap) s
          LEFT JOIN pg_roles r ON r.oid = s.usesysid
          CROSS JOIN c
    ), k AS MATERIALIZED (
        -- what the scans kept of each transaction (an aborted transaction
        -- shows no xact_start: its kept row is the one whose last
        -- statement failed)
        SELECT a0.pid, k.xact_start, k.query_start, k.client_context, k.deadline
          FROM a0
          JOIN LATERAL (
              SELECT k.* FROM lambdaguard.transaction_context k
               WHERE k.pid = a0.pid AND k.backend_start = a0.backend_start
                 AND (k.xact_start = a0.xact_start
                      OR (a0.state = 'idle in transaction (aborted)' AND a0.xact_start IS NULL
                          AND k.query_start = a0.query_start))
               LIMIT 1
          ) k ON true
         WHERE a0.xact_start IS NOT NULL OR a0.state = 'idle in transaction (aborted)'
    ), p AS MATERIALIZED (
        -- the last statement's comment, unless it was read already
        SELECT a0.pid, x.client_context, x.deadline
          FROM a0
          LEFT JOIN k ON k.pid = a0.pid
         CROSS JOIN LATERAL lambdaguard.comment_context(a0.query, lambdaguard.query_complete(a0.query),
                                                        a0.query_start) x
         WHERE ((a0.xact_start IS NOT NULL AND a0.query_start >= a0.xact_start)
                OR a0.state = 'idle in transaction (aborted)')
           AND k.query_start IS DISTINCT FROM a0.query_start
           AND strpos(a0.query, '/*') > 0
    ), a AS MATERIALIZED (
        SELECT a0.*,
               coalesce(a0.xact_start, k.xact_start) AS txn,
               coalesce(k.client_context, p.client_context) AS ctx,
               least(k.deadline, p.deadline) AS declared
          FROM a0
          LEFT JOIN k ON k.pid = a0.pid
          LEFT JOIN p ON p.pid = a0.pid
    ), dl AS (
        -- deadline_passed: due at deadline + grace; a running statement is
        -- cancelled then, and its transaction terminated one grace later
        -- (also when the cancel left it idle in the aborted transaction)
        SELECT a.pid,
               a.declared + c.deadline_grace_ms * interval '1 ms'
                   * CASE WHEN a.state <> 'active' AND EXISTS (
                              SELECT FROM lambdaguard.history h
                               WHERE h.pid = a.pid AND h.backend_start = a.backend_start
                                 AND h.xact_start = a.txn AND h.verdict = 'deadline_passed'
                                 AND h.action = 'cancel')
                          THEN 2 ELSE 1 END AS due,
               a.declared + c.deadline_grace_ms * interval '1 ms'
                   * CASE WHEN a.state = 'active' THEN 2 ELSE 1 END AS due_term
          FROM a CROSS JOIN c
         WHERE a.watched AND a.declared IS NOT NULL
           AND a.state IN ('idle in transaction', 'idle in transaction (aborted)', 'active')
    ), dl2 AS (
        SELECT dl.pid, dl.due, greatest(dl.due, dl.due_term) AS due_term FROM dl
    ), need AS (
        -- the lock manager is asked only if a watched session could be due
        SELECT every_session OR EXISTS (
            SELECT FROM a, c, t
             WHERE a.watched
               AND ((a.state = 'idle in transaction'
                     AND ((c.blocking_ms > 0 AND a.since <= t.now - c.blocking_ms * interval '1 ms')
                          OR (c.idle_ms > 0 AND a.since <= t.now - c.idle_ms * interval '1 ms')))
                 OR (a.state = 'idle in transaction (aborted)' AND c.aborted_ms > 0
                     AND a.since <= t.now - c.aborted_ms * interval '1 ms')
                 OR (a.state = 'active' AND c.active_ms > 0
                     AND a.since <= t.now - c.active_ms * interval '1 ms')))
            OR EXISTS (SELECT FROM dl2, t WHERE dl2.due <= t.now) AS yes
    ), l AS MATERIALIZED (
        SELECT k.pid, k.granted, k.mode,
               ROW(k.locktype, k.database, k.relation, k.page, k.tuple, k.virtualxid,
                   k.transactionid, k.classid, k.objid, k.objsubid)::text AS tag
          FROM pg_locks k
         WHERE (SELECT yes FROM need) AND k.pid IS NOT NULL
    ), b AS (
        SELECT h.pid, array_agg(DISTINCT w.pid ORDER BY w.pid) AS waiters
          FROM l w
          JOIN l h ON h.tag = w.tag
         WHERE NOT w.granted AND h.granted AND h.pid <> w.pid
           AND lambdaguard.lock_conflicts(h.mode, w.mode)
         GROUP BY h.pid
    ), held AS (
        SELECT l.pid, count(*)::int AS n FROM l WHERE l.granted GROUP BY l.pid
    ), j AS (
        SELECT a.*, coalesce(cardinality(b.waiters), 0) AS nblocking,
               coalesce(b.waiters, '{}') AS waiters,
               CASE WHEN (SELECT yes FROM need) THEN coalesce(held.n, 0) END AS nheld,
               -- the lines of the verdict table, each with its due time
               CASE WHEN a.watched AND a.state = 'idle in transaction' AND c.blocking_ms > 0
                         AND coalesce(cardinality(b.waiters), 0) > 0
                    THEN a.since + c.blocking_ms * interval '1 ms' END AS due_blocking,
               CASE WHEN a.watched AND a.state = 'idle in transaction' AND c.idle_ms > 0
                    THEN a.since + c.idle_ms * interval '1 ms' END AS due_orphan,
               CASE WHEN a.watched AND a.state = 'idle in transaction (aborted)' AND c.aborted_ms > 0
                    THEN a.since + c.aborted_ms * interval '1 ms' END AS due_aborted,
               CASE WHEN a.watched AND a.state = 'active' AND c.active_ms > 0
                    THEN a.since + c.active_ms * interval '1 ms' END AS due_cancel,
               CASE WHEN a.watched AND a.state = 'active' AND c.active_ms > 0
                    THEN a.since + 2 * c.active_ms * interval '1 ms' END AS due_terminate,
               dl2.due AS due_deadline,
               dl2.due_term AS due_deadline_terminate,
               t.now
          FROM a CROSS JOIN c CROSS JOIN t
          LEFT JOIN b ON b.pid = a.pid
          LEFT JOIN held ON held.pid = a.pid
          LEFT JOIN dl2 ON dl2.pid = a.pid
    ), v AS (
        -- a declared deadline only comes earlier: the other lines still
        -- apply at their own times, the one due first names the verdict
        SELECT j.*,
               CASE WHEN j.due_deadline <= j.now
                         AND j.due_deadline <= coalesce(least(j.due_blocking, j.due_orphan, j.due_aborted,
                                                              j.due_cancel), 'infinity')
                    THEN 'deadline_passed'
                    WHEN j.due_blocking <= j.now THEN 'orphan_blocking'
                    WHEN j.due_orphan <= j.now THEN 'orphan'
                    WHEN j.due_aborted <= j.now THEN 'orphan_aborted'
                    WHEN j.due_cancel <= j.now THEN 'overdue_query'
                    WHEN j.due_deadline <= j.now THEN 'deadline_passed'
                    ELSE 'ok' END AS v_verdict
          FROM j
    ), w AS (
        SELECT v.*,
               CASE WHEN v.v_verdict = 'deadline_passed' THEN
                        CASE WHEN v.due_deadline_terminate <= v.now THEN 'terminate' ELSE 'cancel' END
                    WHEN v.due_blocking <= v.now OR v.due_orphan <= v.now
                         OR v.due_aborted <= v.now OR v.due_terminate <= v.now THEN 'terminate'
                    WHEN v.due_cancel <= v.now THEN 'cancel' END AS v_action
          FROM v
    )
    SELECT w.pid, w.usesysid, w.usename, w.datname, w.application_name, w.client_addr,
           w.backend_start, w.xact_start, w.query_start, w.state, w.state_change, w.since,
           w.now - w.since, coalesce(w.watched, false), w.nblocking, w.waiters, w.nheld,
           w.v_verdict, w.v_action,
           CASE w.v_verdict
               WHEN 'orphan_blocking' THEN w.due_blocking
               WHEN 'orphan' THEN w.due_orphan
               WHEN 'orphan_aborted' THEN w.due_aborted
               WHEN 'overdue_query' THEN
                   CASE WHEN w.v_action = 'terminate' THEN w.due_terminate ELSE w.due_cancel END
               WHEN 'deadline_passed' THEN
                   CASE WHEN w.v_action = 'terminate' THEN w.due_deadline_terminate ELSE w.due_deadline END
               ELSE (SELECT min(x) FROM unnest(ARRAY[w.due_blocking, w.due_orphan, w.due_aborted,
                                                     w.due_cancel, w.due_deadline]) x)
           END,
           w.query,
           CASE WHEN w.txn IS NOT NULL OR w.state = 'idle in transaction (aborted)' THEN w.ctx END,
           CASE WHEN w.txn IS NOT NULL OR w.state = 'idle in transaction (aborted)' THEN w.declared END
      FROM w;
END
$$;

/*
 * The decisions of one scan, as history rows not yet written: the
 * sessions due now, minus those this guard already acted on in the same
 * episode (same pid, backend start, state since, verdict and action; a
 * failed signal is not tried again).  A scan that acts then keeps the
 * open transactions' contexts (remember_contexts(), from the same
 * snapshot), only when some session shows a context or deadline or rows
 * are kept: with none, it writes nothing.  A preview writes nothing.
 */
CREATE OR REPLACE FUNCTION lambdaguard.plan(preview boolean)
RETURNS SETOF lambdaguard.history
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dry boolean;
    s record;
    d lambdaguard.history;
    contexts boolean := false;
BEGIN
    -- the sessions that could be due, or whose transaction carries a
    -- context: few, unless many are busy
    FOR s IN SELECT * FROM lambdaguard.session_rows(false) r ORDER BY r.state_since, r.pid LOOP
        contexts := contexts OR (s.xact_start IS NOT NULL
                                 AND (s.client_context IS NOT NULL OR s.deadline IS NOT NULL));
        CONTINUE WHEN s.action IS NULL;
        IF dry IS NULL THEN
            dry := (SELECT c.dry_run FROM lambdaguard.config() c);
        END IF;
        d := ROW(NULL, clock_timestamp(), s.pid, s.usename, s.datname, s.application_name,
                 s.client_addr, s.backend_start, s.xact_start, s.state, s.state_since, s.verdict,
                 CASE WHEN preview OR dry THEN 'dry_run' ELSE s.action END,
                 s.locks_held, s.blocked_pids, NULL, s.query, NULL, s.client_context);
        CONTINUE WHEN NOT preview AND EXISTS (
            SELECT FROM lambdaguard.history h
             WHERE h.pid = d.pid AND h.backend_start = d.backend_start
               AND h.state_since = d.state_since AND h.verdict = d.verdict
               AND h.action IN (d.action, 'failed'));
        RETURN NEXT d;
    END LOOP;
    IF NOT preview AND (contexts OR EXISTS (SELECT FROM lambdaguard.transaction_context)) THEN
        PERFORM lambdaguard.remember_contexts();
    END IF;
END
$$;

/*
 * Write the decision's history row, as the owner of the history table.
 * Applies the storm brake first (NULL: braked, nothing written) and the
 * first live re-check (a changed session is recorded as skipped).  The
 * caller commits the row before it signals (run()).
 */
CREATE OR REPLACE FUNCTION lambdaguard.record_decision(d lambdaguard.history)
RETURNS lambdaguard.history
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
    signals int;
    why text;
BEGIN
    SELECT * INTO c FROM lambdaguard.config();
    IF d.action IN ('terminate', 'cancel') THEN
        PERFORM pg_advisory_xact_lock(lambdaguard.lock_key());
        SELECT count(*) INTO signals FROM lambdaguard.history h
         WHERE h.at > clock_timestamp() - c.naptime_ms * interval '1 ms'
           AND h.action IN ('terminate', 'cancel');
        IF signals >= c.max_terminations THEN
            RETURN NULL;
        END IF;
    END IF;
    why := lambdaguard.recheck(d);
    IF why IS NOT NULL THEN
        d.action := 'skipped';
        d.detail := why;
    END IF;
    d.at := clock_timestamp();
    INSERT INTO lambdaguard.history (at, pid, usename, datname, application_name, client_addr,
                                     backend_start, xact_start, state, state_since, verdict,
                                     action, locks_held, blocked_pids, pin_reasons, query, detail,
                                     client_context)
    VALUES (d.at, d.pid, d.usename, d.datname, d.application_name, d.client_addr,
            d.backend_start, d.xact_start, d.state, d.state_since, d.verdict,
            d.action, d.locks_held, d.blocked_pids, d.pin_reasons, d.query, d.detail,
            d.client_context)
    RETURNING * INTO d;
    IF d.action NOT IN ('terminate', 'cancel') THEN
        PERFORM lambdaguard.log_decision(d);
    END IF;
    RETURN d;
END
$$;

/*
 * The scheduled job: CALL lambdaguard.run() from pg_cron every minute (pg_cron
 * 1.4, minutes only): it scans every naptime until the minute is over,
 * committing each history row before its signal and between scans.
 * CALL lambdaguard.run(once => true) scans once (pg_cron 1.5+: a schedule
 * in seconds).  One runner at a time (a session advisory lock): a run that
 * finds another still running waits up to 5 s for it, then leaves.
 * A procedure that commits cannot carry SET clauses: every name here is
 * schema-qualified.
 */
CREATE OR REPLACE PROCEDURE lambdaguard.run(once boolean DEFAULT false)
LANGUAGE plpgsql
AS $$
DECLARE
    started timestamptz := pg_catalog.clock_timestamp();
    deadline timestamptz;
    nap interval;
    d lambdaguard.history;
    decisions lambdaguard.history[];
    got boolean := false;
    braked int;
    tries int := 0;
BEGIN
    IF once IS NULL THEN
        RAISE EXCEPTION 'once must be true or false, not null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    LOOP
        got := pg_catalog.pg_try_advisory_lock(lambdaguard.lock_key() + 1);
        tries := tries + 1;
        EXIT WHEN got OR once OR tries > 50;
        PERFORM pg_catalog.pg_sleep(0.1);
    END LOOP;
    IF NOT got THEN
        RAISE LOG 'pg_lambdaguard: another lambdaguard.run() is still running (pid %); this one leaves',
            (SELECT pg_catalog.string_agg(k.pid::text, ', ') FROM pg_catalog.pg_locks k
              WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 1
                AND k.classid = ((lambdaguard.lock_key() + 1) >> 32)::oid
                AND k.objid = ((lambdaguard.lock_key() + 1) & 4294967295)::oid);
        RETURN;
    END IF;
    deadline := pg_catalog.date_trunc('minute', started) + interval '1 minute';
    PERFORM lambdaguard.purge_history();
    COMMIT;
    LOOP
        IF (SELECT c.enabled FROM lambdaguard.config() c) THEN
            braked := 0;
            decisions := ARRAY(SELECT p FROM lambdaguard.plan(false) p);
            COMMIT;
            FOREACH d IN ARRAY decisions LOOP
                d := lambdaguard.record_decision(d);
                COMMIT;         -- the row is durable before its signal
                IF d.id IS NULL THEN
                    braked := braked + 1;
                ELSIF d.action IN ('terminate', 'cancel') THEN
                    d := lambdaguard.signal_decision(d);
                    COMMIT;
                END IF;
            END LOOP;
            IF braked > 0 THEN
                RAISE LOG 'pg_lambdaguard: storm brake: % decisions deferred (lambdaguard.max_terminations signals within lambdaguard.naptime)', braked;
            END IF;
        ELSE
            -- off: no decision, but the open transactions' deadlines are
            -- still kept, for when it is on again
            PERFORM lambdaguard.remember_contexts();
            COMMIT;
        END IF;
        nap := (SELECT c.naptime_ms FROM lambdaguard.config() c) * interval '1 ms';
        EXIT WHEN once OR pg_catalog.clock_timestamp() + nap >= deadline;
        COMMIT;
        PERFORM pg_catalog.pg_sleep(pg_catalog.date_part('epoch', nap));
        COMMIT;
    END LOOP;
    PERFORM pg_catalog.pg_advisory_unlock(lambdaguard.lock_key() + 1);
    COMMIT;
END
$$;

CREATE VIEW lambdaguard.sessions AS
    SELECT s.pid, s.usename, s.datname, s.application_name, s.client_addr, s.backend_start,
           s.xact_start, s.state, s.state_change, s.state_duration, s.watched,
           NULL::bool AS pinned, NULL::text[] AS pin_reasons, NULL::timestamptz AS pinned_since,
           NULL::text AS pinned_by, NULL::text[] AS dirty_reasons, s.blocking, s.verdict,
           s.action_at, s.query, s.client_context, s.deadline
      FROM lambdaguard.session_rows(true) s;
COMMENT ON VIEW lambdaguard.sessions IS
    'One row per client backend: watched, blocking, verdict, its transaction''s declared context and deadline (pinning columns are NULL without hooks)';

CREATE VIEW lambdaguard.orphans AS
    SELECT * FROM lambdaguard.sessions WHERE verdict <> 'ok';
COMMENT ON VIEW lambdaguard.orphans IS 'Sessions whose verdict is not ok';

-- Privileges of the objects new or made again: nothing for PUBLIC, reading
-- for pg_monitor (as a fresh install grants them)
REVOKE ALL ON lambdaguard.sessions, lambdaguard.orphans, lambdaguard.transaction_context,
    lambdaguard.parsed_settings FROM PUBLIC;
REVOKE ALL ON FUNCTION lambdaguard.config(), lambdaguard.session_rows(boolean),
    lambdaguard.url_decode(text), lambdaguard.deadline_value(text), lambdaguard.in_code(text, int),
    lambdaguard.comment_context(text, boolean, timestamptz), lambdaguard.query_complete(text),
    lambdaguard.remember_contexts(), lambdaguard.settings_parse() FROM PUBLIC;
GRANT SELECT ON lambdaguard.sessions, lambdaguard.orphans, lambdaguard.transaction_context TO pg_monitor;
GRANT EXECUTE ON FUNCTION lambdaguard.url_decode(text), lambdaguard.deadline_value(text),
    lambdaguard.in_code(text, int), lambdaguard.comment_context(text, boolean, timestamptz),
    lambdaguard.query_complete(text) TO pg_monitor;
GRANT EXECUTE ON FUNCTION lambdaguard.session_rows(boolean), lambdaguard.config() TO pg_monitor;
