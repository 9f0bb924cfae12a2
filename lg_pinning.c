/*-------------------------------------------------------------------------
 *
 * lg_pinning.c
 *		The lifecycle of a pinning event: a statement passes a hook, is
 *		classified into reasons, and is published to shared memory; and the
 *		session state (dirty_reasons), read back from PostgreSQL at the
 *		moments it can change.
 *
 * Events.  Each statement that changes session state records one event per
 * reason: utility statements through ProcessUtility_hook and the table of
 * lg_utility.c; calls of set_config, the sequence and advisory functions
 * through ExecutorStart_hook and the plan walker of lg_planwalk.c.  A
 * change made inside a function, procedure or DO block is "hidden": a proxy
 * cannot see it, so it is an event and dirty state but not a pin_reason.
 * Changes no hook sees (PL/pgSQL simple expressions) are found by reading
 * the state back, and recorded as one hidden event of the statement.
 *
 * State.  dirty_reasons are read from PostgreSQL (lg_session_state.c):
 *	- at the end of each statement the client sent, for the kinds of state
 *	  it touched, and for parameters and sequences when it ran a function
 *	  that is not built in (needs_fmgr_hook sees those; built-ins never
 *	  reach it, and only a non-built-in function can hide a change);
 *	- at transaction end, for what the transaction touched: temporary
 *	  relations before the commit drops ON COMMIT DROP tables, parameters as
 *	  they will be once the transaction ends, advisory locks once its locks
 *	  are released; after an abort, at the next statement, what needs the
 *	  catalogs.
 * A statement that changes nothing and runs no user function reads nothing.
 *
 * Parallel workers run none of this: their leader records the statement.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "lg_pinning.h"
#include "lg_compat.h"

/* Saved hook values */
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static needs_fmgr_hook_type prev_needs_fmgr = NULL;
static fmgr_hook_type prev_fmgr = NULL;

/*
 * The nesting rule.  nesting_level is 0 while a statement the client sent
 * starts; every hook that runs other code (an executor run, a utility
 * statement) saves the level, raises it, and puts the saved value back in
 * PG_FINALLY, as pg_stat_statements does.  So an error, an exception
 * caught by PL/pgSQL, or a COMMIT or ROLLBACK inside a procedure never
 * leaves it wrong, and no callback touches it.  A statement started at a
 * level above 0 is inside a function or procedure: hidden.  The query a
 * top-level utility statement runs itself (CREATE TABLE AS, EXECUTE,
 * DECLARE, EXPLAIN ANALYZE, COPY (query)) starts at own_query_level and is
 * the client's statement too, but its text was checked already.
 */
static int	nesting_level = 0;
static int	own_query_level = -1;

/* This session's pinning state */
static uint32 pin_mask = 0;		/* sticky: visible reasons */
static uint32 event_mask = 0;	/* reasons with any event, for the stats */
static uint32 dirty_mask = 0;	/* state present now */
static TimestampTz pinned_since = 0;
static uint32 published_dirty = 0;
static uint32 published_pins = 0;

/* Parameters: which of set / set_config put them there, and their print */
static uint32 param_kinds = 0;
static uint64 guc_print = 0;
static bool guc_known = false;	/* the last read saw every set parameter */

/* The statement the client sent, while it runs */
static uint32 stmt_events = 0;	/* reasons it recorded an event of */
static uint32 stmt_touched = 0; /* LG_STATE_* to read at its end */
static bool fn_ran = false;		/* a non-built-in function was looked up */

/* The transaction */
static uint32 xact_touched = 0; /* LG_STATE_* to read at its end */
static uint32 xact_events = 0;	/* reasons it recorded an event of */
static uint32 pending_read = 0; /* LG_STATE_* to read at the next statement */
#define LG_MAX_ON_COMMIT_DROP 32
static Oid	on_commit_drop[LG_MAX_ON_COMMIT_DROP];
static int	n_on_commit_drop = 0;

static bool xact_names = false; /* cursors or channels changed in it */
static uint32 temp_at_start = 0;	/* temp bits before its first change */

static bool callbacks_registered = false;

#define BIT(r)	LG_REASON_BIT(LG_REASON_##r)
#define PARAM_BITS	(BIT(SET) | BIT(SET_CONFIG))
#define TEMP_BITS	(BIT(TEMP_TABLE) | BIT(TEMP_SEQUENCE) | BIT(TEMP_VIEW))

static bool shmem_ready = false;

static inline bool
lg_tracking(void)
{
	return lg_track_pinning != LG_TRACK_NONE && !IsParallelWorker() &&
		(shmem_ready || (shmem_ready = lg_shmem_ready()));
}

/*
 * Does lambdaguard.track_pinning let this session be recorded?
 */
static bool
session_recorded(void)
{
	LgWatchFilter filter;
	Oid			userid;

	if (lg_track_pinning == LG_TRACK_ALL)
		return true;
	if (lg_track_pinning == LG_TRACK_NONE || !IsTransactionState())
		return false;
	userid = GetAuthenticatedUserId();
	lg_watch_filter_init(&filter);
	return lg_watch_match(&filter, userid, superuser_arg(userid),
						  application_name,
						  MyBEEntry ? &MyBEEntry->st_clientaddr : NULL);
}

/* Publish the slot if what others can see has changed */
static void
publish_if_changed(const char *pinned_by)
{
	if ((dirty_mask == published_dirty && pin_mask == published_pins &&
		 pinned_by == NULL) || !lg_shmem_ready())
		return;
	lg_slot_publish(pin_mask, dirty_mask, pinned_since, pinned_by);
	published_dirty = dirty_mask;
	published_pins = pin_mask;
}

static inline void
set_dirty(uint32 bits, bool on)
{
	if (on)
		dirty_mask |= bits;
	else
		dirty_mask &= ~bits;
}

/*
 * Record one event: sticky pin unless hidden, the event, statistics.  Text
 * is clipped at a character boundary.
 */
static void
record_event(LgReason reason, bool hidden, const char *text, int location,
			 int len, uint64 queryid)
{
	uint32		bit = LG_REASON_BIT(reason);
	bool		first = (event_mask & bit) == 0;
	const char *pinned_by = NULL;
	char		buf[LG_PINNED_BY_LEN];

	stmt_events |= bit;
	xact_events |= bit;
	if (reason == LG_REASON_SET || reason == LG_REASON_SET_CONFIG)
		param_kinds |= bit;
	if (!session_recorded())
		return;

	if (text == NULL)
		text = "";
	if (location > 0)
		text += location;
	if (len <= 0)
		len = strlen(text);

	if (!hidden)
	{
		if (pin_mask == 0)
		{
			int			n = pg_mbcliplen(text, len, LG_PINNED_BY_LEN - 1);

			pinned_since = GetCurrentTimestamp();
			memcpy(buf, text, n);
			buf[n] = '\0';
			pinned_by = buf;
		}
		pin_mask |= bit;
	}
	event_mask |= bit;
	publish_if_changed(pinned_by);
	lg_event_publish(reason, hidden, first, text, len, queryid);
}

/* An event for a change no hook saw, in the statement now running */
static void
record_hidden_change(LgReason reason)
{
	if ((stmt_events | xact_events) & LG_REASON_BIT(reason))
		return;
	record_event(reason, true, debug_query_string, 0, 0, 0);
}

/*
 * Calls of reason functions in code no executor hook sees (a PL/pgSQL
 * simple expression): hidden events, and the state they leave.
 */
void
lg_hidden_calls(const LgPlanCalls *calls, const char *text)
{
	int			r;

	if (!lg_tracking())
		return;
	for (r = 0; r < LG_NUM_REASONS; r++)
		if (calls->reasons & LG_REASON_BIT(r))
			record_event((LgReason) r, true, text, 0, 0, 0);
	if (calls->set_config)
	{
		stmt_touched |= LG_STATE_GUC;
		guc_known = false;
	}
	if (calls->sequence)
		set_dirty(BIT(SEQUENCE_FUNCTION), true);
	if (calls->advisory)
		xact_touched |= LG_STATE_ADVISORY;
	publish_if_changed(NULL);
}

/* ----------
 * Reading the state back
 * ----------
 */
typedef enum LgReadMoment
{
	LG_READ_STATEMENT,			/* end of a statement, or start after abort */
	LG_READ_PRE_COMMIT,
	LG_READ_COMMIT,
	LG_READ_ABORT
} LgReadMoment;

static void
apply_params(bool dirty, uint64 print, bool events)
{
	if (!dirty)
		param_kinds = 0;
	else if (print != guc_print && events && (stmt_events & PARAM_BITS) == 0)
		record_hidden_change(LG_REASON_SET_CONFIG); /* unseen C code */
	if (dirty && (param_kinds & PARAM_BITS) == 0)
		param_kinds = BIT(SET_CONFIG);
	guc_print = print;
	dirty_mask = (dirty_mask & ~PARAM_BITS) | (dirty ? param_kinds : 0);
}

/* Every parameter */
static void
read_params(bool at_abort, bool events)
{
	uint64		print;
	bool		dirty = lg_guc_dirty(at_abort, &print);

	guc_known = true;
	apply_params(dirty, print, events);
}

/* One parameter was SET or RESET: read it and those known to be set */
static void
read_param(const char *name)
{
	uint64		print;
	bool		dirty;

	if (!guc_known || name == NULL)
	{
		stmt_touched |= LG_STATE_GUC;
		return;
	}
	dirty = lg_guc_dirty_one(name, &print);
	apply_params(dirty, print, false);
}

static void
read_temp(void)
{
	int			t,
				s,
				v;

	if (!lg_temp_namespace_used())
	{
		set_dirty(TEMP_BITS, false);
		return;
	}
	lg_temp_relations(&t, &s, &v, on_commit_drop, n_on_commit_drop);
	set_dirty(BIT(TEMP_TABLE), t > 0);
	set_dirty(BIT(TEMP_SEQUENCE), s > 0);
	set_dirty(BIT(TEMP_VIEW), v > 0);
}

/* The kinds whose state is kept as names here: cheap to recompute */
static void
read_names(void)
{
	bool		a,
				b;

	lg_names_prepared_counts(&a, &b);
	set_dirty(BIT(PREPARED_STATEMENT), a);
	set_dirty(BIT(PROTOCOL_PREPARED_STATEMENT), b);
	lg_names_cursor_counts(&a, &b);
	set_dirty(BIT(CURSOR), a);
	set_dirty(BIT(CURSOR_WITH_HOLD), b);
	set_dirty(BIT(LISTEN), lg_names_listening());
}

/*
 * The end of a statement the client sent: read what it touched, and
 * parameters if it ran a function that is not built in (a change found only
 * so is a hidden event of the statement).
 */
static void
statement_end(void)
{
	uint32		touched = stmt_touched | pending_read;

	if (touched == 0 && !fn_ran)
	{
		stmt_events = 0;
		publish_if_changed(NULL);
		return;
	}
	if (fn_ran)
	{
		touched |= LG_STATE_GUC;
		xact_touched |= LG_STATE_ADVISORY;
	}
	xact_touched |= touched & (LG_STATE_GUC | LG_STATE_TEMP);
	if (IsTransactionState())
	{
		if (touched & LG_STATE_GUC)
			read_params(false, fn_ran);
		if (touched & LG_STATE_TEMP)
			read_temp();
		pending_read = 0;
	}
	if (touched & LG_STATE_PREPARED)
		lg_names_verify_prepared();
	if (touched & (LG_STATE_PREPARED | LG_STATE_CURSOR | LG_STATE_LISTEN))
		read_names();
	stmt_touched = 0;
	stmt_events = 0;
	fn_ran = false;
	publish_if_changed(NULL);
}

/*
 * The start of a statement the client sent: read what a rollback left to
 * read (its changes are no event).
 */
static void
statement_begin(void)
{
	uint32		pending = pending_read;

	stmt_events = 0;
	if (pending == 0 || !IsTransactionState())
		return;
	pending_read = 0;
	if (pending & LG_STATE_GUC)
		read_params(false, false);
	if (pending & LG_STATE_TEMP)
		read_temp();
	if (pending & LG_STATE_CURSOR)
		read_names();
	publish_if_changed(NULL);
}

/* ----------
 * Statement-level checks: named protocol statements, statement size
 * ----------
 */
static inline size_t
statement_length(const char *text, int location, int len)
{
	return len > 0 ? (size_t) len : strlen(text + Max(location, 0));
}

static void
check_statement(const char *text, int location, int len, size_t length,
				uint64 queryid)
{
	Portal		portal = ActivePortal;

	if (portal != NULL && portal->prepStmtName != NULL &&
		portal->prepStmtName[0] != '\0' &&
		lg_protocol_statement_is_new(portal->prepStmtName))
	{
		set_dirty(BIT(PROTOCOL_PREPARED_STATEMENT), true);
		record_event(LG_REASON_PROTOCOL_PREPARED_STATEMENT, false, text,
					 location, len, queryid);
	}
	if (length > LG_STATEMENT_TOO_LARGE)
		record_event(LG_REASON_STATEMENT_TOO_LARGE, false, text, location,
					 len, queryid);
}

/* ----------
 * Executor hooks
 * ----------
 */
static void
lg_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *pstmt = queryDesc->plannedstmt;
	const char *text = queryDesc->sourceText;
	bool		top;
	bool		hidden;
	int			location;
	size_t		len;
	uint32		named;
	LgPlanCalls calls;
	int			r;

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	if (!lg_tracking() || (eflags & EXEC_FLAG_EXPLAIN_ONLY) || text == NULL)
		return;

	top = (nesting_level == 0);
	hidden = !top && nesting_level != own_query_level;
	location = Max(pstmt->stmt_location, 0);
	len = statement_length(text, location, pstmt->stmt_len);
	if (top)
	{
		statement_begin();
		check_statement(text, location, pstmt->stmt_len, len, pstmt->queryId);
	}

	named = lg_text_names_functions(text + location, len);
	if (named == 0 && !lg_plan_has_user_functions(pstmt))
	{
		/* only a column default can still set sequence state */
		if (pstmt->commandType != CMD_SELECT && lg_plan_sets_sequence(pstmt))
			set_dirty(BIT(SEQUENCE_FUNCTION), true);
		return;
	}

	lg_plan_calls(pstmt, &calls);
	for (r = 0; r < LG_NUM_REASONS; r++)
		if (calls.reasons & LG_REASON_BIT(r))
			record_event((LgReason) r, hidden || !(named & LG_REASON_BIT(r)),
						 text, location, pstmt->stmt_len, pstmt->queryId);
	if (calls.set_config)
	{
		stmt_touched |= LG_STATE_GUC;
		guc_known = false;
	}
	if (calls.sequence)
		set_dirty(BIT(SEQUENCE_FUNCTION), true);
	if (calls.advisory)
		xact_touched |= LG_STATE_ADVISORY;
	publish_if_changed(NULL);
}

static void
lg_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
			   bool execute_once)
{
	int			saved = nesting_level;

	nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		nesting_level = saved;
	}
	PG_END_TRY();
}

static void
lg_ExecutorFinish(QueryDesc *queryDesc)
{
	int			saved = nesting_level;

	nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		nesting_level = saved;
	}
	PG_END_TRY();
}

static void
lg_ExecutorEnd(QueryDesc *queryDesc)
{
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	if (nesting_level == 0 && lg_tracking())
		statement_end();
}

/* ----------
 * Utility statements
 * ----------
 */

/* Apply the effect of a utility statement that succeeded */
static void
apply_utility(LgUtilityEffect *e, bool hidden, PlannedStmt *pstmt,
			  const char *queryString)
{
	uint32		kinds = e->state | e->clears;

	if (e->reason >= 0)
		record_event((LgReason) e->reason, hidden, queryString,
					 pstmt->stmt_location, pstmt->stmt_len, pstmt->queryId);
	if (e->state == LG_STATE_GUC)
		read_param(e->name);
	if (e->state == LG_STATE_PREPARED || (e->clears & LG_STATE_PREPARED))
		lg_names_prepared(e->name, true,
						  e->state == LG_STATE_PREPARED ? e->op : LG_OP_CLEAR);
	if (e->state == LG_STATE_CURSOR || (e->clears & LG_STATE_CURSOR))
		lg_names_cursor(e->name, e->hold,
						e->state == LG_STATE_CURSOR ? e->op : LG_OP_CLEAR);
	if (e->state == LG_STATE_LISTEN || (e->clears & LG_STATE_LISTEN))
		lg_names_listen(e->name,
						e->state == LG_STATE_LISTEN ? e->op : LG_OP_CLEAR);
	if (e->state == LG_STATE_LOAD)
		set_dirty(BIT(LOAD), true);
	if (kinds & LG_STATE_SEQUENCE)
		set_dirty(BIT(SEQUENCE_FUNCTION), false);
	if (e->on_commit_drop && e->rel && n_on_commit_drop < LG_MAX_ON_COMMIT_DROP)
	{
		Oid			nsp;
		Oid			toast_nsp;

		GetTempNamespaceState(&nsp, &toast_nsp);
		if (OidIsValid(nsp))
			on_commit_drop[n_on_commit_drop++] = get_relname_relid(e->rel->relname, nsp);
	}
	if (kinds & (LG_STATE_CURSOR | LG_STATE_LISTEN))
		xact_names = true;
	if ((kinds & LG_STATE_TEMP) && !(xact_touched & LG_STATE_TEMP))
		temp_at_start = dirty_mask & TEMP_BITS;
	stmt_touched |= kinds & ~LG_STATE_GUC;
	xact_touched |= kinds;
}

static void
lg_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  LG_UTILITY_ARGS_READONLY
				  ProcessUtilityContext context, ParamListInfo params,
				  QueryEnvironment *queryEnv, DestReceiver *dest,
				  QueryCompletion *qc)
{
	int			saved_level = nesting_level;
	int			saved_own = own_query_level;
	bool		top = (nesting_level == 0);
	bool		tracking = lg_tracking();
	LgUtilityEffect effect;

	/* a statement generated by another (serial's sequence) is not the user's */
	if (tracking && context != PROCESS_UTILITY_SUBCOMMAND)
	{
		lg_utility_effect(pstmt->utilityStmt, &effect);
		if (top)
		{
			statement_begin();
			if (queryString)
				check_statement(queryString, pstmt->stmt_location,
								pstmt->stmt_len,
								statement_length(queryString, pstmt->stmt_location,
												 pstmt->stmt_len),
								pstmt->queryId);
		}
	}
	else
		tracking = false;

	own_query_level = (tracking && top && effect.own_query) ? nesting_level + 1 : -1;
	nesting_level++;
	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, LG_UTILITY_PASS_READONLY
								context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, LG_UTILITY_PASS_READONLY
									context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		nesting_level = saved_level;
		own_query_level = saved_own;
	}
	PG_END_TRY();

	if (tracking)
	{
		apply_utility(&effect, !top, pstmt, queryString);
		if (top)
			statement_end();
		else
			publish_if_changed(NULL);
	}
}

/* ----------
 * Functions that are not built in: they can change state no hook sees
 * ----------
 */
static bool
lg_needs_fmgr_hook(Oid fn_oid)
{
	HeapTuple	tp;

	/*
	 * PL/pgSQL and SQL functions run their statements through the hooks and
	 * the PL/pgSQL plugin; a C function (not a language's handler) may
	 * change state in ways only a read shows.
	 */
	if (!fn_ran && (tp = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid))) != NULL)
	{
		Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(tp);

		if (proc->prolang == ClanguageId &&
			proc->prorettype != LANGUAGE_HANDLEROID &&
			!(proc->prorettype == VOIDOID && proc->pronargs == 1 &&
			  proc->proargtypes.values[0] == INTERNALOID))
		{
			fn_ran = true;
			guc_known = false;
		}
		ReleaseSysCache(tp);
	}
	return prev_needs_fmgr ? prev_needs_fmgr(fn_oid) : false;
}

static void
lg_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	if (prev_fmgr)
		prev_fmgr(event, flinfo, private);
}

/* ----------
 * Transaction end
 * ----------
 */
static void
lg_xact_callback(XactEvent event, void *arg)
{
	bool		commit;

	/* nothing this transaction did can have changed session state */
	if (xact_touched == 0 && stmt_touched == 0 && !fn_ran && !xact_names)
		return;
	if (!lg_tracking())
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* the catalogs are still readable; ON COMMIT DROP not yet run */
			if (xact_touched & LG_STATE_TEMP)
				read_temp();
			if (fn_ran)
				xact_touched |= LG_STATE_ADVISORY;
			publish_if_changed(NULL);
			return;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			/* a statement's end read it already, unless it is still running */
			if ((xact_touched & LG_STATE_GUC) &&
				(nesting_level > 0 || fn_ran || (stmt_touched & LG_STATE_GUC)))
				read_params(false, false);
			commit = true;
			break;
		case XACT_EVENT_ABORT:
			if (((xact_touched | stmt_touched) & LG_STATE_GUC) || fn_ran)
				read_params(true, false);
			if (fn_ran)
				xact_touched |= LG_STATE_ADVISORY;
			/* every catalog change of the transaction is undone */
			if (xact_touched & LG_STATE_TEMP)
				dirty_mask = (dirty_mask & ~TEMP_BITS) | temp_at_start;
			stmt_events = 0;
			stmt_touched = 0;
			fn_ran = false;
			commit = false;
			break;
		default:
			return;
	}
	if (xact_names)
	{
		lg_names_listen_xact_end(commit);
		lg_names_cursor_xact_end(commit);
		read_names();
		xact_names = false;
	}
	n_on_commit_drop = 0;
	xact_touched &= LG_STATE_ADVISORY;	/* read after the locks go */
	publish_if_changed(NULL);
}

static void
lg_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	if ((xact_touched == 0 && stmt_touched == 0 && !fn_ran && !xact_names) ||
		!lg_tracking())
		return;
	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			lg_names_listen_subxact_end(GetCurrentTransactionNestLevel(), true);
			lg_names_cursor_subxact_end(mySubid, parentSubid, true);
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			lg_names_listen_subxact_end(GetCurrentTransactionNestLevel(), false);
			lg_names_cursor_subxact_end(mySubid, parentSubid, false);
			/* what it changed is undone after this callback: read it later */
			pending_read |= LG_STATE_CURSOR | LG_STATE_GUC |
				(xact_touched & LG_STATE_TEMP);
			guc_known = false;
			break;
		default:
			break;
	}
}

/*
 * Once a top-level transaction's locks are released, the advisory locks
 * left are the session's own: count them, if advisory functions (or code
 * that could call them) ran.
 */
static void
lg_resource_release(ResourceReleasePhase phase, bool isCommit, bool isTopLevel,
					void *arg)
{
	if (phase != RESOURCE_RELEASE_AFTER_LOCKS || !isTopLevel)
		return;
	if (!(xact_touched & LG_STATE_ADVISORY) || !lg_tracking())
	{
		xact_events = 0;
		return;
	}
	xact_touched &= ~LG_STATE_ADVISORY;
	if (lg_session_advisory_locks() > 0)
	{
		if (!(dirty_mask & BIT(ADVISORY_LOCK)) && isCommit)
			record_hidden_change(LG_REASON_ADVISORY_LOCK);
		dirty_mask |= BIT(ADVISORY_LOCK);
	}
	else
		dirty_mask &= ~BIT(ADVISORY_LOCK);
	xact_events = 0;
	publish_if_changed(NULL);
}

void
lg_pinning_install_hooks(void)
{
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = lg_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = lg_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = lg_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = lg_ExecutorEnd;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = lg_ProcessUtility;
	prev_needs_fmgr = needs_fmgr_hook;
	needs_fmgr_hook = lg_needs_fmgr_hook;
	prev_fmgr = fmgr_hook;
	fmgr_hook = lg_fmgr_hook;
	lg_plpgsql_install();

	if (!callbacks_registered)
	{
		RegisterXactCallback(lg_xact_callback, NULL);
		RegisterSubXactCallback(lg_subxact_callback, NULL);
		RegisterResourceReleaseCallback(lg_resource_release, NULL);
		callbacks_registered = true;
	}
}
