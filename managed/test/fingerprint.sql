-- The managed edition's objects in one listing, one line each (functions
-- with their definitions, relations, columns, triggers, constraints,
-- indexes, privileges, comments, settings (not their values) and reasons),
-- sorted: two
-- databases with the same listing hold the same edition.  Used by
-- tests.sh to check that an upgraded installation is a fresh one.
SELECT x FROM (
 SELECT 'function ' || p.oid::regprocedure::text || ' ' || pg_get_functiondef(p.oid) || ' acl ' || coalesce(p.proacl::text, '-')
        || ' comment ' || coalesce(obj_description(p.oid, 'pg_proc'), '-') AS x
   FROM pg_proc p WHERE p.pronamespace = 'lambdaguard'::regnamespace
 UNION ALL
 SELECT 'relation ' || c.relname || ' ' || c.relkind::text || c.relpersistence::text || ' acl ' || coalesce(c.relacl::text, '-')
        || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
        || coalesce(' view ' || pg_get_viewdef(c.oid), '')
   FROM pg_class c WHERE c.relnamespace = 'lambdaguard'::regnamespace
 UNION ALL
 SELECT 'column ' || a.attrelid::regclass || ' ' || a.attnum || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
        || ' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-') || ' ' || a.attidentity::text
   FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
   LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE c.relnamespace = 'lambdaguard'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
 UNION ALL
 SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text
   FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  WHERE c.relnamespace = 'lambdaguard'::regnamespace AND NOT t.tgisinternal
 UNION ALL
 SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'lambdaguard'::regnamespace
 UNION ALL
 SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'lambdaguard'::regnamespace
 UNION ALL
 SELECT 'schema ' || coalesce(obj_description('lambdaguard'::regnamespace, 'pg_namespace'), '-') || ' ' || coalesce(n.nspacl::text, '-')
   FROM pg_namespace n WHERE n.nspname = 'lambdaguard'
 UNION ALL
 SELECT 'setting ' || s.name || ' ' || row(d.*)::text FROM lambdaguard.settings s JOIN lambdaguard.setting_definitions d USING (name)
 UNION ALL
 SELECT 'reason ' || row(r.*)::text FROM lambdaguard.reasons r
) f ORDER BY x;
