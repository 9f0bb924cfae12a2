/*-------------------------------------------------------------------------
 *
 * lg_pinning.c
 *		The lifecycle of a pinning event: a statement passes a hook, is
 *		classified into reasons, and is recorded (lg_session.c publishes it
 *		to shared memory, lg_state.c).
 *
 * Each statement that changes session state records one event per reason:
 *	- utility statements through ProcessUtility_hook and the table of
 *	  per-statement effects in lg_utility.c;
 *	- calls of set_config, the sequence and the advisory lock functions
 *	  through ExecutorStart_hook and the plan walker of lg_planwalk.c
 *	  (inlined SQL functions included);
 *	- PL/pgSQL simple expressions through the PL/pgSQL plugin
 *	  (lg_plpgsql.c);
 *	- named statements of the extended protocol and statements over 16384
 *	  bytes, once per statement the client sent.
 * A change made inside a function, procedure or DO block is "hidden": a
 * proxy cannot see it, so it is an event and dirty state, not a pin_reason.
 * Generated subcommands (a serial column's sequence) are not the user's
 * statements; parallel workers record nothing.
 *
 * needs_fmgr_hook notes that a C function ran: only C code can change a
 * parameter no hook sees, so lg_session.c then reads them all back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "lg_pinning.h"
#include "lg_compat.h"

#define BIT(r)	LG_REASON_BIT(LG_REASON_##r)

/* Saved hook values */
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static needs_fmgr_hook_type prev_needs_fmgr = NULL;
static fmgr_hook_type prev_fmgr = NULL;

/*
 * The nesting rule.  lg_nesting_level is 0 while a statement the client sent
 * starts; every hook that runs other code (an executor run, a utility
 * statement) saves the level, raises it, and puts the saved value back in
 * PG_FINALLY, as pg_stat_statements does.  So an error, an exception
 * caught by PL/pgSQL, or a COMMIT or ROLLBACK inside a procedure never
 * leaves it wrong, and no callback touches it.  (ExecutorFinish of a plain
 * SELECT runs no other code, so it needs no raise: see finish_runs_code.)
 * A statement started at a level above 0 is inside a function or
 * procedure: hidden.  The query a top-level utility statement runs itself
 * (CREATE TABLE AS, EXECUTE, DECLARE, EXPLAIN ANALYZE, COPY (query)) starts
 * at own_query_level and is the client's statement too, but its text was
 * checked already.
 */
int			lg_nesting_level = 0;
static int	own_query_level = -1;

/* ----------
 * Statement-level checks: named protocol statements, statement size
 * ----------
 */
static inline size_t
statement_length(const char *text, int location, int len)
{
	return len > 0 ? (size_t) len : strlen(text + Max(location, 0));
}

static pg_noinline void
check_statement_slow(const char *text, int location, int len, size_t length,
					 uint64 queryid)
{
	Portal		portal = ActivePortal;

	if (portal != NULL && portal->prepStmtName != NULL &&
		portal->prepStmtName[0] != '\0' &&
		lg_protocol_statement_is_new(portal->prepStmtName))
	{
		lg_set_dirty(BIT(PROTOCOL_PREPARED_STATEMENT), true);
		lg_record_event(LG_REASON_PROTOCOL_PREPARED_STATEMENT, false, text,
						location, len, queryid);
	}
	if (length > LG_STATEMENT_TOO_LARGE)
		lg_record_event(LG_REASON_STATEMENT_TOO_LARGE, false, text, location,
						len, queryid);
}

static inline void
check_statement(const char *text, int location, int len, size_t length,
				uint64 queryid)
{
	Portal		portal = ActivePortal;

	if ((portal != NULL && portal->prepStmtName != NULL &&
		 portal->prepStmtName[0] != '\0') || length > LG_STATEMENT_TOO_LARGE)
		check_statement_slow(text, location, len, length, queryid);
}

/* ----------
 * Executor hooks
 * ----------
 */
/*
 * The events of the function calls in a plan about to run (a call found
 * in the plan whose name the text does not show came from an inlined
 * function: hidden).
 */
static pg_noinline void
plan_events(PlannedStmt *pstmt, const char *text, int location, uint32 named,
			bool hidden)
{
	LgPlanCalls calls;
	uint32		reasons;

	lg_plan_calls(pstmt, &calls);
	if (calls.reasons == 0 && !calls.set_config && !calls.sequence &&
		!calls.advisory)
		return;
	lg_callbacks_needed();
	for (reasons = calls.reasons; reasons != 0; reasons &= reasons - 1)
	{
		int			r = pg_rightmost_one_pos32(reasons);

		lg_record_event((LgReason) r, hidden || !(named & LG_REASON_BIT(r)),
						text, location, pstmt->stmt_len, pstmt->queryId);
	}
	if (calls.set_config)
	{
		lg_stmt_touched |= LG_STATE_GUC;
		lg_guc_known = false;
	}
	if (calls.sequence)
		lg_set_dirty(BIT(SEQUENCE_FUNCTION), true);
	if (calls.advisory)
		lg_note_advisory();
	lg_publish(NULL);
}

static void
lg_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *pstmt = queryDesc->plannedstmt;
	const char *text = queryDesc->sourceText;
	bool		top;
	bool		hidden;
	int			location;
	size_t		len;
	const char *paren;
	uint32		named;

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	if (!lg_tracking() || (eflags & EXEC_FLAG_EXPLAIN_ONLY) || text == NULL)
		return;

	top = (lg_nesting_level == 0);
	hidden = !top && lg_nesting_level != own_query_level;
	location = Max(pstmt->stmt_location, 0);
	len = statement_length(text, location, pstmt->stmt_len);
	if (top)
	{
		lg_statement_begin();
		check_statement(text, location, pstmt->stmt_len, len, pstmt->queryId);
	}

	/* each function is called: no parenthesis, no call */
	paren = memchr(text + location, '(', len);
	named = paren == NULL ? 0 :
		lg_text_names_functions(text + location, len, paren);
	if (named == 0 &&
		(pstmt->invalItems == NIL || !lg_plan_may_inline(pstmt)))
	{
		/* only a column default can still set sequence state */
		if (pstmt->commandType != CMD_SELECT && lg_plan_sets_sequence(pstmt))
			lg_set_dirty(BIT(SEQUENCE_FUNCTION), true);
		return;
	}

	plan_events(pstmt, text, location, named, hidden);
}

static void
lg_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count
			   LG_EXECUTOR_RUN_ARGS)
{
	int			saved = lg_nesting_level;

	lg_nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count LG_EXECUTOR_RUN_PASS);
		else
			standard_ExecutorRun(queryDesc, direction, count LG_EXECUTOR_RUN_PASS);
	}
	PG_FINALLY();
	{
		lg_nesting_level = saved;
	}
	PG_END_TRY();
}

/*
 * ExecutorFinish runs AFTER triggers and the data-modifying parts of WITH:
 * user code.  A SELECT without a data-modifying WITH queued no trigger event
 * at its own level and has no such part, so it runs none; only another
 * library's hook could, and then the level is raised as usual.
 */
static inline bool
finish_runs_code(QueryDesc *queryDesc)
{
	return prev_ExecutorFinish != NULL || queryDesc->operation != CMD_SELECT ||
		queryDesc->plannedstmt->hasModifyingCTE;
}

static void
lg_ExecutorFinish(QueryDesc *queryDesc)
{
	int			saved = lg_nesting_level;

	if (!finish_runs_code(queryDesc))
		standard_ExecutorFinish(queryDesc);
	else
	{
		lg_nesting_level++;
		PG_TRY();
		{
			if (prev_ExecutorFinish)
				prev_ExecutorFinish(queryDesc);
			else
				standard_ExecutorFinish(queryDesc);
		}
		PG_FINALLY();
		{
			lg_nesting_level = saved;
		}
		PG_END_TRY();
	}

	/* ExecutorEnd follows at once: the statement the client sent is done */
	if (saved == 0 && lg_tracking())
		lg_statement_end();
}

/* ----------
 * Utility statements
 * ----------
 */

/* Apply the effect of a utility statement that succeeded */
static void
apply_utility(LgUtilityEffect *e, bool hidden, PlannedStmt *pstmt,
			  const char *queryString, QueryCompletion *qc)
{
	uint32		kinds = e->state | e->clears;

	if (e->reason >= 0)
		lg_record_event((LgReason) e->reason, hidden, queryString,
						pstmt->stmt_location, pstmt->stmt_len, pstmt->queryId);
	if (e->state == LG_STATE_GUC)
		lg_read_param(e->name);
	if (e->state == LG_STATE_PREPARED || (e->clears & LG_STATE_PREPARED))
		lg_names_prepared(e->name, true,
						  e->state == LG_STATE_PREPARED ? e->op : LG_OP_CLEAR);
	if (e->state == LG_STATE_CURSOR || (e->clears & LG_STATE_CURSOR))
		lg_names_cursor(e->name, e->hold,
						e->state == LG_STATE_CURSOR ? e->op : LG_OP_CLEAR);
	if (e->state == LG_STATE_LISTEN || (e->clears & LG_STATE_LISTEN))
		lg_names_listen(e->name,
						e->state == LG_STATE_LISTEN ? e->op : LG_OP_CLEAR);
	if (e->copy_from && qc && qc->nprocessed > 0 &&
		lg_copy_sets_sequence((CopyStmt *) pstmt->utilityStmt))
		lg_set_dirty(BIT(SEQUENCE_FUNCTION), true);
	if (e->state == LG_STATE_LOAD)
		lg_set_dirty(BIT(LOAD), true);
	if (kinds & LG_STATE_SEQUENCE)
		lg_set_dirty(BIT(SEQUENCE_FUNCTION), false);
	if (e->on_commit_drop && e->rel)
	{
		Oid			nsp;
		Oid			toast_nsp;

		GetTempNamespaceState(&nsp, &toast_nsp);
		if (OidIsValid(nsp))
			lg_note_on_commit_drop(get_relname_relid(e->rel->relname, nsp));
	}
	lg_note_kinds(kinds);
}

static void
lg_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context, ParamListInfo params,
				  QueryEnvironment *queryEnv, DestReceiver *dest,
				  QueryCompletion *qc)
{
	int			saved_level = lg_nesting_level;
	int			saved_own = own_query_level;
	bool		top = (lg_nesting_level == 0);
	bool		tracking = lg_tracking();
	LgUtilityEffect effect;

	/* a statement generated by another (serial's sequence) is not the user's */
	if (tracking && context != PROCESS_UTILITY_SUBCOMMAND)
	{
		lg_utility_effect(pstmt->utilityStmt, &effect);
		if (top)
		{
			lg_statement_begin();
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

	own_query_level = (tracking && top && effect.own_query) ? lg_nesting_level + 1 : -1;
	lg_nesting_level++;
	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree,
								context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree,
									context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		lg_nesting_level = saved_level;
		own_query_level = saved_own;
	}
	PG_END_TRY();

	if (tracking)
	{
		apply_utility(&effect, !top, pstmt, queryString, qc);
		if (top)
			lg_statement_end();
		else
			lg_publish(NULL);
	}
}

/* ----------
 * Functions that are not built in: they can change state no hook sees
 * ----------
 */
static bool
lg_needs_fmgr_hook(Oid fn_oid)
{
	/*
	 * PL/pgSQL and SQL functions run their statements through the hooks and
	 * the PL/pgSQL plugin; a C function may change state in ways only a read
	 * shows.
	 */
	if (lg_function_is_c_code(fn_oid) && !lg_fn_ran)
	{
		lg_callbacks_needed();
		lg_fn_ran = true;
		lg_guc_known = false;
	}
	return prev_needs_fmgr ? prev_needs_fmgr(fn_oid) : false;
}

static void
lg_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	if (prev_fmgr)
		prev_fmgr(event, flinfo, private);
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
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = lg_ProcessUtility;
	prev_needs_fmgr = needs_fmgr_hook;
	needs_fmgr_hook = lg_needs_fmgr_hook;
	prev_fmgr = fmgr_hook;
	fmgr_hook = lg_fmgr_hook;
	lg_plpgsql_install();
}
