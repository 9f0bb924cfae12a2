/*-------------------------------------------------------------------------
 *
 * lg_views.c
 *		SQL-facing functions: the set-returning functions behind the views,
 *		lambdaguard.scan() and lambdaguard.reset().
 *
 * Each reads shared state through lg_shmem.c, which copies it out under its
 * lock; tuples are built here, after every lock is released.
 *
 * Privileges.  A view calls its functions with the rights of whoever reads
 * the view, so GRANT SELECT on a view alone would end in "permission denied
 * for function".  The functions behind the views are therefore executable
 * by PUBLIC, and each checks for itself that its caller may read some view
 * built on it, directly or through other views (check_view_access).  Query
 * text follows pg_stat_activity's rule.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "common/ip.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "lg_compat.h"
#include "lg_context.h"
#include "lg_datum.h"
#include "lg_history.h"
#include "lg_locks.h"
#include "lg_orphan.h"
#include "lg_settings.h"
#include "lg_shmem.h"
#include "lg_worker.h"

PG_FUNCTION_INFO_V1(lg_sessions);
PG_FUNCTION_INFO_V1(lg_pinning_events);
PG_FUNCTION_INFO_V1(lg_pinning_stats);
PG_FUNCTION_INFO_V1(lg_worker);
PG_FUNCTION_INFO_V1(lg_action_counts);
PG_FUNCTION_INFO_V1(lg_scan_sql);
PG_FUNCTION_INFO_V1(lg_reset);
PG_FUNCTION_INFO_V1(lg_reason_list);
PG_FUNCTION_INFO_V1(lg_standby_history);

#define INSUFFICIENT_PRIVILEGE "<insufficient privilege>"

/*
 * pg_stat_activity's rule for showing a session's query text.
 */
static bool
may_read_query(Oid userid)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS) ||
		has_privs_of_role(GetUserId(), userid);
}

/* ----------
 * Who may call the functions behind the views
 * ----------
 */

/* The view whose rule has this OID, or InvalidOid */
static Oid
rule_view(Relation rewrite, Oid ruleoid)
{
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			view = InvalidOid;

	ScanKeyInit(&key, Anum_pg_rewrite_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ruleoid));
	scan = systable_beginscan(rewrite, RewriteOidIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
		view = ((Form_pg_rewrite) GETSTRUCT(tup))->ev_class;
	systable_endscan(scan);
	return view;
}

/*
 * Raise "permission denied" unless the current user may SELECT from some
 * view that is built on this function, directly or through other views
 * (pg_depend, breadth first, a few levels deep).
 */
static void
check_view_access(FunctionCallInfo fcinfo)
{
#define LG_MAX_VIEWS 64
	Oid			found[LG_MAX_VIEWS];
	int			nfound = 0;
	int			next = -1;
	Oid			refclass = ProcedureRelationId;
	Oid			refobj = fcinfo->flinfo->fn_oid;
	Relation	depend = table_open(DependRelationId, AccessShareLock);
	Relation	rewrite = table_open(RewriteRelationId, AccessShareLock);
	bool		allowed = false;

	while (!allowed)
	{
		ScanKeyData key[2];
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(refclass));
		ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(refobj));
		scan = systable_beginscan(depend, DependReferenceIndexId, true, NULL, 2, key);
		while (!allowed && HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);
			Oid			view;
			int			i;
			bool		seen = false;

			if (dep->classid != RewriteRelationId)
				continue;
			view = rule_view(rewrite, dep->objid);
			if (!OidIsValid(view))
				continue;
			for (i = 0; i < nfound; i++)
				seen |= found[i] == view;
			if (seen)
				continue;
			if (pg_class_aclcheck(view, GetUserId(), ACL_SELECT) == ACLCHECK_OK)
				allowed = true;
			else if (nfound < LG_MAX_VIEWS)
				found[nfound++] = view;
		}
		systable_endscan(scan);
		if (allowed || ++next >= nfound)
			break;
		/* then the views built on the views found so far */
		refclass = RelationRelationId;
		refobj = found[next];
	}
	table_close(rewrite, AccessShareLock);
	table_close(depend, AccessShareLock);

	if (!allowed)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s",
						get_func_name(fcinfo->flinfo->fn_oid)),
				 errhint("Read it through a view of schema lambdaguard that you were granted SELECT on, such as lambdaguard.sessions.")));
}

/*
 * Set up materialize-mode output for a set-returning function.
 */
static Tuplestorestate *
begin_srf(FunctionCallInfo fcinfo, TupleDesc *tupdesc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old;
	Tuplestorestate *store;
	Oid			restype;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("materialize mode required, but it is not allowed in this context")));
	switch (get_call_result_type(fcinfo, &restype, tupdesc))
	{
		case TYPEFUNC_COMPOSITE:
			break;
		case TYPEFUNC_SCALAR:
			*tupdesc = CreateTemplateTupleDesc(1);
			TupleDescInitEntry(*tupdesc, (AttrNumber) 1, "value", restype, -1, 0);
			break;
		default:
			elog(ERROR, "return type must be a row type");
	}

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	*tupdesc = CreateTupleDescCopy(*tupdesc);
	store = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = *tupdesc;
	MemoryContextSwitchTo(old);
	return store;
}

/*
 * The row shapes of one set-returning function: the column types of the
 * newest version's row, and the column counts each version's SQL declares
 * (an older version's row is a prefix of the newest).  A database not yet
 * updated calls the same C function with its own, older row type.
 */
typedef struct LgRowShape
{
	int			ntypes;
	const Oid  *types;			/* of the newest row */
	int			nversions;
	const int  *natts;			/* column count per version, oldest first */
	const char *const *versions;
} LgRowShape;

/*
 * Check that the caller's row type is one this library fills: a known
 * column count, each column of the expected type.  Returns the count.  A
 * row of any other shape (a column added, dropped, reordered or retyped)
 * is an error, never a row of wrong values.
 */
static int
check_row_shape(FunctionCallInfo fcinfo, TupleDesc tupdesc,
				const LgRowShape *shape)
{
	int			natts = tupdesc->natts;
	int			v;
	int			i;

	for (v = 0; v < shape->nversions; v++)
		if (shape->natts[v] == natts)
			break;
	if (v == shape->nversions)
	{
		StringInfoData known;

		initStringInfo(&known);
		for (v = 0; v < shape->nversions; v++)
			appendStringInfo(&known, "%s%d (%s)", v > 0 ? ", " : "",
							 shape->natts[v], shape->versions[v]);
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s returns %d columns, which no version of pg_lambdaguard declares",
						format_procedure(fcinfo->flinfo->fn_oid), natts),
				 errdetail("This library fills rows of %s columns.", known.data),
				 errhint("Update the extension (ALTER EXTENSION pg_lambdaguard UPDATE), or recreate it if its functions were altered.")));
	}
	for (i = 0; i < natts; i++)
	{
		Oid			type = TupleDescAttr(tupdesc, i)->atttypid;

		if (type != shape->types[i])
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column %d of %s is of type %s, pg_lambdaguard fills it with %s",
							i + 1, format_procedure(fcinfo->flinfo->fn_oid),
							format_type_be(type),
							format_type_be(shape->types[i])),
					 errhint("Update the extension (ALTER EXTENSION pg_lambdaguard UPDATE), or recreate it if its functions were altered.")));
	}
	return natts;
}

#define SHAPE(types, natts, versions) \
	{lengthof(types), types, lengthof(natts), natts, versions}

static const char *const v10[] = {"1.0 and later"};
static const char *const v10_v11[] = {"1.0", "1.1 and later"};
static const char *const v10_v12[] = {"1.0 and 1.1", "1.2 and later"};

/* 1.2 added xmin_age, client_context and deadline */
static const Oid session_types[] = {
	INT4OID, NAMEOID, NAMEOID, TEXTOID, INETOID, TIMESTAMPTZOID,
	TIMESTAMPTZOID, TEXTOID, TIMESTAMPTZOID, INTERVALOID, BOOLOID, BOOLOID,
	TEXTARRAYOID, TIMESTAMPTZOID, TEXTOID, TEXTARRAYOID, INT4OID, TEXTOID,
	TIMESTAMPTZOID, TEXTOID, INT4OID, JSONBOID, TIMESTAMPTZOID
};
static const int session_natts[] = {20, 23};
static const LgRowShape session_shape =
SHAPE(session_types, session_natts, v10_v12);

/* 1.2 added client_context */
static const Oid event_types[] = {
	TIMESTAMPTZOID, INT4OID, NAMEOID, NAMEOID, TEXTOID, INETOID, TEXTOID,
	BOOLOID, TEXTOID, INT8OID, JSONBOID
};
static const int event_natts[] = {10, 11};
static const LgRowShape event_shape =
SHAPE(event_types, event_natts, v10_v12);

/* 1.1 added hidden_events (pinning_stat_rows; 1.0's stat_rows lacks it) */
static const Oid stat_types[] = {
	NAMEOID, NAMEOID, TEXTOID, INT8OID, INT8OID, TIMESTAMPTZOID, INT8OID
};
static const int stat_natts[] = {6, 7};
static const LgRowShape stat_shape =
SHAPE(stat_types, stat_natts, v10_v11);

/* 1.1 added history_errors and brake_since */
static const Oid worker_types[] = {
	INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, INT4OID, INT8OID,
	INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID, INT8OID,
	TIMESTAMPTZOID
};
static const int worker_natts[] = {12, 14};
static const LgRowShape worker_shape =
SHAPE(worker_types, worker_natts, v10_v11);

static const Oid action_types[] = {TEXTOID, TEXTOID, INT8OID};
static const int action_natts[] = {3};
static const LgRowShape action_shape =
SHAPE(action_types, action_natts, v10);

static const Oid reason_types[] = {TEXTOID};
static const int reason_natts[] = {1};
static const LgRowShape reason_shape =
SHAPE(reason_types, reason_natts, v10);

static Datum
name_datum(const char *name, bool *isnull)
{
	*isnull = (name == NULL);
	return name ? DirectFunctionCall1(namein, CStringGetDatum(name)) : (Datum) 0;
}

/*
 * The names and the query-text right of the few roles and databases a read
 * of many rows meets, looked up once each: a thousand sessions of one role
 * in one database cost two catalog lookups, not two thousand.
 */
typedef struct LgNameEntry
{
	Oid			oid;
	bool		is_role;
	bool		isnull;
	bool		may_read;		/* roles: may the caller read its query text */
	Datum		name;
} LgNameEntry;

typedef struct LgNameCache
{
	int			n;
	LgNameEntry e[32];
} LgNameCache;

static LgNameEntry *
name_entry(LgNameCache *cache, Oid oid, bool is_role)
{
	int			i;

	for (i = 0; i < cache->n; i++)
		if (cache->e[i].oid == oid && cache->e[i].is_role == is_role)
			return &cache->e[i];
	if (cache->n == lengthof(cache->e))
		cache->n = 0;			/* many names: start again */
	i = cache->n++;
	cache->e[i].oid = oid;
	cache->e[i].is_role = is_role;
	cache->e[i].name = name_datum(is_role ? GetUserNameFromId(oid, true) :
								  get_database_name(oid), &cache->e[i].isnull);
	cache->e[i].may_read = is_role && may_read_query(oid);
	return &cache->e[i];
}

static Datum
cached_role(LgNameCache *cache, Oid roleid, bool *isnull, bool *may_read)
{
	LgNameEntry *e = name_entry(cache, roleid, true);

	*isnull = e->isnull;
	if (may_read)
		*may_read = e->may_read;
	return e->name;
}

static Datum
cached_db(LgNameCache *cache, Oid dbid, bool *isnull)
{
	LgNameEntry *e = name_entry(cache, dbid, false);

	*isnull = e->isnull;
	return e->name;
}

#define SESSIONS_NATTS lengthof(session_types)

/* An interval of this many microseconds, as timestamp_mi makes it */
static Datum
duration_datum(int64 usecs)
{
	Interval   *result = (Interval *) palloc(sizeof(Interval));

	result->month = 0;
	result->day = 0;
	result->time = usecs;
	return IntervalPGetDatum(DatumGetIntervalP(DirectFunctionCall1(interval_justify_hours,
																	IntervalPGetDatum(result))));
}

/*
 * lambdaguard.sessions: one row per client backend.
 */
Datum
lg_sessions(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	TimestampTz now = GetCurrentTimestamp();
	LgSnapshot *snap;
	LgNameCache names;
	Datum		verdicts[LG_NUM_VERDICTS];
	Datum		no_reasons;
	bool		nulls_unused;
	int			natts;
	int			i;

	lg_require_shmem();
	check_view_access(fcinfo);
	store = begin_srf(fcinfo, &tupdesc);
	natts = check_row_shape(fcinfo, tupdesc, &session_shape);
	names.n = 0;

	/* values most rows share, built once (tuples copy them) */
	for (i = 0; i < LG_NUM_VERDICTS; i++)
		verdicts[i] = CStringGetTextDatum(lg_verdict_names[i]);
	no_reasons = lg_reasons_array(0, &nulls_unused);

	snap = lg_take_snapshot(true, true, false);
	lg_attach_blocking(snap);

	for (i = 0; i < snap->nsessions; i++)
	{
		LgSession  *s = &snap->sessions[i];
		Datum		values[SESSIONS_NATTS];
		bool		nulls[SESSIONS_NATTS];
		bool		may_read;
		const char *state = lg_backend_state_name(s->state);
		LgReasonMask pins = s->has_pins ? s->pins.pin_mask : 0;
		LgReasonMask dirty = s->has_pins ? s->pins.dirty_mask : 0;
		bool		pinned = (pins & LG_PINS_RDS_PROXY_MASK) != 0;

		lg_judge(s, now);
		memset(nulls, false, sizeof(nulls));

		values[0] = Int32GetDatum(s->pid);
		values[1] = cached_role(&names, s->userid, &nulls[1], &may_read);
		values[2] = cached_db(&names, s->dbid, &nulls[2]);
		values[3] = CStringGetTextDatum(s->appname ? s->appname : "");
		values[4] = lg_inet_datum(&s->addr, &nulls[4]);
		values[5] = TimestampTzGetDatum(s->backend_start);
		values[6] = TimestampTzGetDatum(s->xact_start);
		nulls[6] = (s->xact_start == 0);
		values[7] = state ? CStringGetTextDatum(state) : (Datum) 0;
		nulls[7] = (state == NULL);
		values[8] = TimestampTzGetDatum(s->state_change);
		nulls[8] = (s->state_change == 0);
		values[9] = duration_datum(now - s->state_change);
		nulls[9] = (s->state_change == 0);
		values[10] = BoolGetDatum(s->watched);
		values[11] = BoolGetDatum(pinned);
		values[12] = pins ? lg_reasons_array(pins, &nulls[12]) : no_reasons;
		values[13] = TimestampTzGetDatum(s->pins.pinned_since);
		nulls[13] = !pinned;
		if (pinned)
			values[14] = CStringGetTextDatum(may_read ? s->pins.pinned_by : INSUFFICIENT_PRIVILEGE);
		nulls[14] = !pinned;
		values[15] = dirty ? lg_reasons_array(dirty, &nulls[15]) : no_reasons;
		values[16] = Int32GetDatum(Max(s->blocking, 0));
		values[17] = verdicts[s->verdict];
		/* the worker acts only while enabled */
		values[18] = TimestampTzGetDatum(s->action_at);
		nulls[18] = (s->action_at == 0 || !lg_enabled);
		if (may_read)
		{
			values[19] = s->query ? CStringGetTextDatum(s->query) : (Datum) 0;
			nulls[19] = (s->query == NULL);
		}
		else
			values[19] = CStringGetTextDatum(INSUFFICIENT_PRIVILEGE);
		if (natts > 20)
		{
			/*
			 * 1.2: age(backend_xmin), NULL without a snapshot.  On a standby
			 * this is what hot_standby_feedback holds back on the primary.
			 */
			TransactionId xmin = lg_backend_xmin(s->index);

			nulls[20] = !TransactionIdIsNormal(xmin);
			if (!nulls[20])
				values[20] = DirectFunctionCall1(xid_age, TransactionIdGetDatum(xmin));
		}
		if (natts > 21)
		{
			/*
			 * 1.2: the invocation of the open transaction, as its comments
			 * declared it; the pairs follow the rule of the query text
			 */
			bool		mine = lg_context_current(s);

			nulls[21] = !mine || s->pins.ctx.len == 0 || !may_read;
			if (!nulls[21])
				values[21] = lg_context_jsonb(&s->pins.ctx);
			nulls[22] = !mine || s->pins.deadline == 0;
			values[22] = TimestampTzGetDatum(s->pins.deadline);
		}

		tuplestore_putvalues(store, tupdesc, values, nulls);
	}
	return (Datum) 0;
}

static Datum
event_addr(uint8 family, const unsigned char *addr, bool *isnull)
{
	char		text[INET6_ADDRSTRLEN];

	*isnull = true;
	if (family != AF_INET && family != AF_INET6)
		return (Datum) 0;
	if (inet_ntop(family, addr, text, sizeof(text)) == NULL)
		return (Datum) 0;
	*isnull = false;
	return DirectFunctionCall1(inet_in, CStringGetDatum(text));
}

#define EVENTS_NATTS lengthof(event_types)

/*
 * lambdaguard.pinning_events: the ring, oldest first.
 */
Datum
lg_pinning_events(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	LgEvent    *events;
	LgNameCache names;
	int			natts;
	int			n;
	int			i;

	lg_require_shmem();
	check_view_access(fcinfo);
	store = begin_srf(fcinfo, &tupdesc);
	natts = check_row_shape(fcinfo, tupdesc, &event_shape);
	events = lg_events_copy(&n);
	names.n = 0;

	for (i = 0; i < n; i++)
	{
		LgEvent    *e = &events[i];
		Datum		values[EVENTS_NATTS];
		bool		nulls[EVENTS_NATTS];
		bool		may_read;

		memset(nulls, false, sizeof(nulls));
		values[0] = TimestampTzGetDatum(e->at);
		values[1] = Int32GetDatum(e->pid);
		values[2] = cached_role(&names, e->userid, &nulls[2], &may_read);
		values[3] = cached_db(&names, e->dbid, &nulls[3]);
		values[4] = e->appname ? CStringGetTextDatum(e->appname) : (Datum) 0;
		nulls[4] = (e->appname == NULL);
		values[5] = event_addr(e->family, e->addr, &nulls[5]);
		values[6] = CStringGetTextDatum(lg_reason_names[e->reason]);
		values[7] = BoolGetDatum(e->hidden);
		if (!may_read)
			values[8] = CStringGetTextDatum(INSUFFICIENT_PRIVILEGE);
		else if (e->statement)
			values[8] = CStringGetTextDatum(e->statement);
		else
			nulls[8] = true;
		values[9] = Int64GetDatum((int64) e->queryid);
		nulls[9] = (e->queryid == 0);
		if (natts > 10)
		{
			/* 1.2: the invocation of its statement, under the text's rule */
			nulls[10] = e->ctx.len == 0 || !may_read;
			if (!nulls[10])
				values[10] = lg_context_jsonb(&e->ctx);
		}
		tuplestore_putvalues(store, tupdesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * lambdaguard.pinning_stats
 */
Datum
lg_pinning_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	LgStat	   *stats;
	int			n;
	int			i;

	lg_require_shmem();
	check_view_access(fcinfo);
	store = begin_srf(fcinfo, &tupdesc);
	check_row_shape(fcinfo, tupdesc, &stat_shape);
	stats = lg_stats_copy(&n);

	for (i = 0; i < n; i++)
	{
		Datum		values[lengthof(stat_types)];
		bool		nulls[lengthof(stat_types)];

		memset(nulls, false, sizeof(nulls));
		values[0] = name_datum(GetUserNameFromId(stats[i].key.userid, true), &nulls[0]);
		values[1] = name_datum(get_database_name(stats[i].key.dbid), &nulls[1]);
		values[2] = CStringGetTextDatum(lg_reason_names[stats[i].key.reason]);
		values[3] = Int64GetDatum(stats[i].events);
		values[4] = Int64GetDatum(stats[i].sessions);
		values[5] = TimestampTzGetDatum(stats[i].last_seen);
		values[6] = Int64GetDatum(stats[i].hidden_events);	/* 1.1 */
		tuplestore_putvalues(store, tupdesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * lambdaguard.worker: one row.
 */
Datum
lg_worker(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	LgWorkerInfo w;
	Datum		values[lengthof(worker_types)];
	bool		nulls[lengthof(worker_types)];

	lg_require_shmem();
	check_view_access(fcinfo);
	store = begin_srf(fcinfo, &tupdesc);
	check_row_shape(fcinfo, tupdesc, &worker_shape);
	lg_worker_info_copy(&w);

	memset(nulls, false, sizeof(nulls));
	values[0] = Int32GetDatum(w.pid);
	nulls[0] = (w.pid == 0);
	values[1] = TimestampTzGetDatum(w.started_at);
	nulls[1] = (w.started_at == 0);
	values[2] = TimestampTzGetDatum(w.last_scan_at);
	nulls[2] = (w.last_scan_at == 0);
	values[3] = Int64GetDatum(w.scans);
	values[4] = Int32GetDatum(w.sessions_seen);
	values[5] = Int64GetDatum(w.last_scan_us);
	values[6] = Int64GetDatum(w.orphans_found);
	values[7] = Int64GetDatum(w.terminated);
	values[8] = Int64GetDatum(w.cancelled);
	values[9] = Int64GetDatum(w.dry_run_hits);
	values[10] = Int64GetDatum(w.errors);
	values[11] = w.last_error[0] ? CStringGetTextDatum(w.last_error) : (Datum) 0;
	nulls[11] = (w.last_error[0] == '\0');
	values[12] = Int64GetDatum(w.history_errors);	/* 1.1 */
	values[13] = TimestampTzGetDatum(w.brake_since);	/* 1.1 */
	nulls[13] = (w.brake_since == 0 || w.pid == 0);
	tuplestore_putvalues(store, tupdesc, values, nulls);
	return (Datum) 0;
}

/*
 * Cumulative action counts, for lambdaguard.metrics.
 */
Datum
lg_action_counts(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	int			v,
				a;

	lg_require_shmem();
	check_view_access(fcinfo);
	store = begin_srf(fcinfo, &tupdesc);
	check_row_shape(fcinfo, tupdesc, &action_shape);
	for (v = LG_VERDICT_ORPHAN; v < LG_NUM_VERDICTS; v++)
	{
		for (a = LG_ACTION_TERMINATE; a < LG_NUM_ACTIONS; a++)
		{
			Datum		values[3];
			bool		nulls[3] = {false, false, false};

			values[0] = CStringGetTextDatum(lg_verdict_names[v]);
			values[1] = CStringGetTextDatum(lg_action_names[a]);
			values[2] = Int64GetDatum((int64) lg_action_count((LgVerdict) v, (LgAction) a));
			tuplestore_putvalues(store, tupdesc, values, nulls);
		}
	}
	return (Datum) 0;
}

/*
 * The reasons the hooks can emit, for checking lambdaguard.reasons.
 */
Datum
lg_reason_list(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	int			r;

	store = begin_srf(fcinfo, &tupdesc);
	check_row_shape(fcinfo, tupdesc, &reason_shape);
	for (r = 0; r < LG_NUM_REASONS; r++)
	{
		Datum		values[1];
		bool		nulls[1] = {false};

		values[0] = CStringGetTextDatum(lg_reason_names[r]);
		tuplestore_putvalues(store, tupdesc, values, nulls);
	}
	return (Datum) 0;
}

/* A history row into a row type that may hold dropped columns */
static void
put_history_row(Tuplestorestate *store, TupleDesc tupdesc, const int *map,
				Datum *values, bool *nulls)
{
	Datum	   *v = palloc(sizeof(Datum) * tupdesc->natts);
	bool	   *n = palloc(sizeof(bool) * tupdesc->natts);
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		v[i] = (Datum) 0;
		n[i] = true;
	}
	for (i = 0; i < LG_HISTORY_NATTS; i++)
	{
		if (map[i] < 0)
			continue;			/* a column the caller's version lacks */
		v[map[i]] = values[i];
		n[map[i]] = nulls[i];
	}
	tuplestore_putvalues(store, tupdesc, v, n);
}

/*
 * lambdaguard.scan(dry_run boolean DEFAULT true): one scan now, with the
 * caller's rights.  scan(true) is a preview in this session: it returns what
 * a scan would do (action dry_run) and writes nothing.  scan(false) is
 * carried out by the worker, which commits each history row before its
 * signal; it returns those rows, which survive whatever becomes of the
 * calling transaction.
 */
Datum
lg_scan_sql(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	bool		preview;
	ListCell   *lc;
	int			map[LG_HISTORY_NATTS];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dry_run must be true or false, not null"),
				 errhint("Use lambdaguard.scan(true) to preview and lambdaguard.scan(false) to act.")));
	preview = PG_GETARG_BOOL(0);

	lg_require_shmem();
	store = begin_srf(fcinfo, &tupdesc);
	lg_history_check_tupdesc(tupdesc, map);

	if (preview)
	{
		TimestampTz next_due;
		List	   *decisions;

		decisions = lg_decide(lg_take_snapshot(true, false, true),
							  GetCurrentTimestamp(), InvalidOid, MyProcPid,
							  &next_due);
		foreach(lc, decisions)
		{
			LgDecision *d = (LgDecision *) lfirst(lc);
			Datum		values[LG_HISTORY_NATTS];
			bool		nulls[LG_HISTORY_NATTS];

			d->action = LG_ACTION_DRY_RUN;
			d->at = GetCurrentTimestamp();
			lg_history_values(d, values, nulls);
			if (!may_read_query(d->s.userid))
				values[LG_HIST_QUERY] = CStringGetTextDatum(INSUFFICIENT_PRIVILEGE);
			put_history_row(store, tupdesc, map, values, nulls);
		}
		return (Datum) 0;
	}

	/* a standby's transactions are all read-only: its worker records in the journal */
	if (!RecoveryInProgress())
		PreventCommandIfReadOnly("lambdaguard.scan(false)");
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("lambdaguard.scan(false) cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("The worker commits its rows while the scan runs; this transaction's snapshot could not see them."),
				 errhint("Run it in a READ COMMITTED transaction, or on its own.")));

	lc = NULL;
	{
		List	   *rows = lg_worker_act_for(GetUserId());

		/* rows alternate: values, nulls */
		for (lc = list_head(rows); lc != NULL; lc = lnext(rows, lnext(rows, lc)))
		{
			Datum	   *values = (Datum *) lfirst(lc);
			bool	   *nulls = (bool *) lfirst(lnext(rows, lc));
			Oid			role = nulls[LG_HIST_USENAME] ? InvalidOid :
				get_role_oid(NameStr(*DatumGetName(values[LG_HIST_USENAME])), true);

			/* the query text follows pg_stat_activity's rule (the row keeps it) */
			if (!nulls[LG_HIST_QUERY] && !may_read_query(role))
				values[LG_HIST_QUERY] = CStringGetTextDatum(INSUFFICIENT_PRIVILEGE);
			put_history_row(store, tupdesc, map, values, nulls);
		}
	}
	return (Datum) 0;
}

/*
 * lambdaguard.standby_history: the decisions this server recorded in its
 * standby journal while in recovery and has not yet imported into
 * lambdaguard.history (it imports them once promoted), with history's
 * columns (declared by the function, so the row is checked as history's);
 * id is the record's number in the journal.
 */
Datum
lg_standby_history(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	int			map[LG_HISTORY_NATTS];
	List	   *rows;
	ListCell   *lc;

	check_view_access(fcinfo);
	store = begin_srf(fcinfo, &tupdesc);
	lg_history_check_tupdesc(tupdesc, map);
	rows = lg_history_journal_rows();
	for (lc = list_head(rows); lc != NULL; lc = lnext(rows, lnext(rows, lc)))
		put_history_row(store, tupdesc, map, (Datum *) lfirst(lc),
						(bool *) lfirst(lnext(rows, lc)));
	return (Datum) 0;
}

/*
 * lambdaguard.reset(): clear pinning events and statistics.
 */
Datum
lg_reset(PG_FUNCTION_ARGS)
{
	lg_require_shmem();
	lg_pinning_reset();
	PG_RETURN_VOID();
}
