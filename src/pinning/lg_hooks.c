/*-------------------------------------------------------------------------
 *
 * lg_hooks.c
 *		The lifecycle of a pinning event: a statement passes a hook, is
 *		classified into reasons, and is recorded (lg_pinstate.c keeps the
 *		backend's state and publishes it to shared memory, lg_shmem.c, from
 *		where the SQL layer reads it).  The root (pg_lambdaguard.c) assigns
 *		these hooks and hands over the previous ones (lg_hooks_chain).
 *
 * Each statement that changes session state records one event per reason:
 *	- utility statements through ProcessUtility_hook and the table of
 *	  per-statement effects in lg_utility.c;
 *	- calls of set_config, the sequence and the advisory lock functions
 *	  through ExecutorStart_hook and the plan walker of lg_planwalk.c
 *	  (inlined SQL functions, views and column defaults included), and in
 *	  CALL's arguments through ProcessUtility_hook;
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
 * parameter no hook sees, so lg_pinstate.c then reads them all back
 * (lg_readback.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "lg_compat.h"
#include "lg_hooks.h"
#include "lg_invocation.h"
#include "lg_objects.h"
#include "lg_pinstate.h"
#include "lg_planwalk.h"
#include "lg_plpgsql.h"
#include "lg_utility.h"

#define BIT(r)	LG_REASON_MASK(r)

/* The hooks that were there before ours, handed over by the root */
static LgHookChain prev;

/*
 * The nesting rule.  A statement the client sent is one that starts at
 * nesting_level 0 with the text the server received from the client
 * (debug_query_string: the same pointer for the simple protocol, a copy
 * while the extended protocol executes a portal); a statement run inside it
 * has a text of its own.  A utility statement saves the level, raises it,
 * and puts the saved value back in PG_FINALLY, as pg_stat_statements does,
 * and so does an executor run or finish inside one.  So an error, an exception caught by PL/pgSQL,
 * or a COMMIT or ROLLBACK inside a procedure never leaves it wrong, and no
 * callback touches it.  The executor of a statement at level 0 needs no
 * raise: what it runs has a text of its own, and that is enough to tell.
 * Any other statement is inside a function or procedure: hidden.  The
 * query a top-level utility statement runs itself (CREATE TABLE AS,
 * EXECUTE, DECLARE, EXPLAIN ANALYZE, COPY (query)) starts at
 * own_query_level and is the client's statement too, but its text was
 * checked already; what runs inside that query is a level above it.
 *
 * The client's statement ends where its executor finishes, which may be
 * later than its message (the extended protocol's portal is finished when
 * it is dropped: at the next message, or at the commit, when
 * debug_query_string is another's or none): the executors of the client's
 * statements are remembered when they start (top_queries), and known so.
 * A SELECT (without a data-modifying WITH) whose run goes to its end ends
 * with that run (end_after_run).
 */
static int	nesting_level = 0;
static int	own_query_level = -1;

static inline bool
client_statement(const char *text)
{
	return nesting_level == 0 && text != NULL && debug_query_string != NULL &&
		(text == debug_query_string || strcmp(text, debug_query_string) == 0);
}

/*
 * The client's statements whose executor started and has not finished:
 * usually one; a few with portals of the extended protocol left open.  The
 * oldest is forgotten when more are open (its end is then the next one's);
 * one that failed before its end is forgotten in time.  An entry is its
 * QueryDesc and the text it runs, so that a later QueryDesc at the same
 * address is not taken for it.
 */
#define LG_TOP_QUERIES 8		/* a power of 2 */

typedef struct LgTopQuery
{
	QueryDesc  *query;
	const char *text;
} LgTopQuery;

static LgTopQuery top_queries[LG_TOP_QUERIES];
static uint32 top_next = 0;
static QueryDesc *run_ended = NULL; /* see end_after_run */

static inline void
top_query_started(QueryDesc *queryDesc)
{
	LgTopQuery *t = &top_queries[top_next++ & (LG_TOP_QUERIES - 1)];

	t->query = queryDesc;
	t->text = queryDesc->sourceText;
}

/* Was this the executor of a client's statement?  It is forgotten now. */
static inline bool
top_query_finished(QueryDesc *queryDesc)
{
	uint32		i;

	/* the newest first: the one that started last usually ends first */
	for (i = 1; i <= LG_TOP_QUERIES; i++)
	{
		LgTopQuery *t = &top_queries[(top_next - i) & (LG_TOP_QUERIES - 1)];

		if (t->query == queryDesc && t->text == queryDesc->sourceText)
		{
			t->query = NULL;
			return true;
		}
	}
	return false;
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

static pg_noinline void
check_statement_slow(const char *text, int location, int len, size_t length,
					 uint64 queryid)
{
	Portal		portal = ActivePortal;

	if (portal != NULL && portal->prepStmtName != NULL &&
		portal->prepStmtName[0] != '\0' &&
		lg_objects_protocol_statement_is_new(portal->prepStmtName))
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
plan_events(PlannedStmt *pstmt, const char *text, int location,
			LgReasonMask named, bool hidden)
{
	LgPlanCalls calls;

	lg_plan_calls(pstmt, &calls);
	lg_record_calls(&calls, named, hidden, text, location, pstmt->stmt_len,
					pstmt->queryId);
}

/* The calls of the column defaults an INSERT, UPDATE or MERGE computes */
static pg_noinline void
default_events(PlannedStmt *pstmt, const char *text, int location)
{
	LgPlanCalls calls;

	if (!lg_plan_default_calls(pstmt, &calls))
		return;
	if (calls.reasons == 0 && !calls.set_config && !calls.advisory &&
		!calls.xact_advisory)
		lg_set_dirty(BIT(SEQUENCE_FUNCTION), true);	/* serial, identity */
	else
		lg_record_calls(&calls, 0, true, text, location, pstmt->stmt_len,
						pstmt->queryId);
}

void
lg_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *pstmt = queryDesc->plannedstmt;
	const char *text = queryDesc->sourceText;
	bool		top;
	bool		hidden;
	int			location;
	size_t		len;
	const char *paren;
	LgReasonMask named;

	if (prev.ExecutorStart)
		prev.ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	if ((eflags & EXEC_FLAG_EXPLAIN_ONLY) || text == NULL)
		return;

	top = client_statement(text);
	location = Max(pstmt->stmt_location, 0);
	len = statement_length(text, location, pstmt->stmt_len);
	if (top)
	{
		run_ended = NULL;
		top_query_started(queryDesc);
		lg_invocation_statement(text, text + location, text + location + len);
	}
	if (!lg_pinstate_tracking())
		return;
	hidden = !top && nesting_level != own_query_level;
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
		(pstmt->invalItems == NIL || !lg_plan_may_inline(pstmt)) &&
		!lg_plan_reads_view_calls(pstmt))
	{
		/* only a column default can still call one (hidden) */
		if (pstmt->commandType != CMD_SELECT)
			default_events(pstmt, text, location);
		return;
	}

	plan_events(pstmt, text, location, named, hidden);
}

/*
 * ExecutorFinish runs AFTER triggers and the data-modifying parts of WITH:
 * user code.  A SELECT without a data-modifying WITH queued no trigger event
 * at its own level and has no such part, so it runs none; only another
 * library's hook could, and then the level is raised as usual (above level
 * 0: see the nesting rule).
 */
static inline bool
finish_runs_code(QueryDesc *queryDesc)
{
	return prev.ExecutorFinish != NULL || queryDesc->operation != CMD_SELECT ||
		queryDesc->plannedstmt->hasModifyingCTE;
}

/*
 * A client's SELECT (without a data-modifying WITH) that its run took to
 * the end is done there: the extended protocol finishes its portal only
 * later (at the next message, or the commit), and what the statement
 * changed is then read while its session sits idle in the transaction.  Its
 * finish runs no user code of its own; what another library's
 * ExecutorFinish hook might run is read at the next statement or the
 * commit, as it was before.  Only the newest client's statement is looked
 * at (the usual case, and one compare); any other ends in ExecutorFinish as
 * before.  run_ended spares that finish the search; it is forgotten when a
 * client's statement starts.
 */
static inline void
end_after_run(QueryDesc *queryDesc, uint64 count)
{
	LgTopQuery *t = &top_queries[(top_next - 1) & (LG_TOP_QUERIES - 1)];

	if (t->query != queryDesc || count != 0 ||
		queryDesc->operation != CMD_SELECT ||
		queryDesc->plannedstmt->hasModifyingCTE ||
		t->text != queryDesc->sourceText)
		return;
	t->query = NULL;
	run_ended = queryDesc;
	lg_statement_end();
}

void
lg_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count
			   LG_EXECUTOR_RUN_ARGS)
{
	int			saved = nesting_level;

	if (saved == 0)
	{
		/* no level to keep: see the nesting rule */
		if (prev.ExecutorRun)
			prev.ExecutorRun(queryDesc, direction, count LG_EXECUTOR_RUN_PASS);
		else
			standard_ExecutorRun(queryDesc, direction, count LG_EXECUTOR_RUN_PASS);
		end_after_run(queryDesc, count);
		return;
	}
	nesting_level++;
	PG_TRY();
	{
		if (prev.ExecutorRun)
			prev.ExecutorRun(queryDesc, direction, count LG_EXECUTOR_RUN_PASS);
		else
			standard_ExecutorRun(queryDesc, direction, count LG_EXECUTOR_RUN_PASS);
	}
	PG_FINALLY();
	{
		nesting_level = saved;
	}
	PG_END_TRY();
}

void
lg_ExecutorFinish(QueryDesc *queryDesc)
{
	int			saved = nesting_level;

	if (saved == 0 || !finish_runs_code(queryDesc))
	{
		if (prev.ExecutorFinish)
			prev.ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	else
	{
		nesting_level++;
		PG_TRY();
		{
			if (prev.ExecutorFinish)
				prev.ExecutorFinish(queryDesc);
			else
				standard_ExecutorFinish(queryDesc);
		}
		PG_FINALLY();
		{
			nesting_level = saved;
		}
		PG_END_TRY();
	}

	/*
	 * ExecutorEnd follows at once: the statement the client sent is done
	 * (without tracking there is nothing to end: it returns at once)
	 */
	if (queryDesc == run_ended)
		run_ended = NULL;		/* ended with its run */
	else if (saved == 0 && top_query_finished(queryDesc))
		lg_statement_end();
}

/* ----------
 * Utility statements
 * ----------
 */

/* Apply the effect of a utility statement that succeeded */
static void
apply_utility(LgUtilityEffect *e, bool hidden, PlannedStmt *pstmt,
			  const char *queryString, size_t len, QueryCompletion *qc)
{
	LgKindMask	kinds = e->kind | e->clears;

	/* len: the client's statement measured already, else 0 */
	if (e->reason >= 0)
		lg_record_event((LgReason) e->reason, hidden, queryString,
						pstmt->stmt_location,
						len > 0 && len <= PG_INT32_MAX ? (int) len : pstmt->stmt_len,
						pstmt->queryId);
	if (e->kind == LG_KIND_GUC)
	{
		lg_read_param(e->name, e->plain_set);
		if ((e->clears & ~LG_KIND_GUC) == 0)
			return;				/* SET, RESET: nothing more */
	}
	if (e->kind == LG_KIND_PREPARED || (e->clears & LG_KIND_PREPARED))
		lg_objects_prepared(e->name, true,
						  e->kind == LG_KIND_PREPARED ? e->op : LG_OP_CLEAR);
	if (e->kind == LG_KIND_CURSOR || (e->clears & LG_KIND_CURSOR))
		lg_objects_cursor(e->name, e->hold,
						e->kind == LG_KIND_CURSOR ? e->op : LG_OP_CLEAR);
	if (e->kind == LG_KIND_LISTEN || (e->clears & LG_KIND_LISTEN))
		lg_objects_listen(e->name,
						e->kind == LG_KIND_LISTEN ? e->op : LG_OP_CLEAR);
	if (e->copy_from && qc && qc->nprocessed > 0 &&
		lg_copy_sets_sequence((CopyStmt *) pstmt->utilityStmt))
		lg_set_dirty(BIT(SEQUENCE_FUNCTION), true);
	if (e->kind == LG_KIND_LOAD)
		lg_set_dirty(BIT(LOAD), true);
	if (kinds & LG_KIND_SEQUENCE)
		lg_set_dirty(BIT(SEQUENCE_FUNCTION), false);
	if (e->kind == LG_KIND_GUC)
		kinds &= ~LG_KIND_GUC;	/* noted by lg_read_param */
	if (e->on_commit_drop && e->rel)
	{
		Oid			nsp;
		Oid			toast_nsp;

		GetTempNamespaceState(&nsp, &toast_nsp);
		if (OidIsValid(nsp))
			lg_note_on_commit_drop(get_relname_relid(e->rel->relname, nsp));
	}
	if (kinds != 0)
		lg_note_kinds(kinds);
}

/*
 * CALL evaluates its arguments itself, without the executor: the calls in
 * them (the defaults the parser filled in too, which the text does not
 * show: hidden), recorded before the call, as ExecutorStart records a
 * plan's.  (An SQL function in them is inlined only when CALL plans them:
 * what it calls is not seen here.)
 */
static pg_noinline void
call_events(CallStmt *stmt, bool hidden, PlannedStmt *pstmt,
			const char *queryString, size_t len)
{
	LgPlanCalls calls;
	LgReasonMask named = 0;
	int			location = Max(pstmt->stmt_location, 0);

	/* a CALL refused before its arguments are evaluated runs nothing */
	if (stmt->funcexpr == NULL || !LG_MAY_EXECUTE(stmt->funcexpr->funcid))
		return;
	lg_expr_calls((Node *) stmt->funcexpr, &calls);
	if (!lg_plan_calls_any(&calls))
		return;
	if (!hidden && queryString != NULL && len > 0)
	{
		const char *paren = memchr(queryString + location, '(', len);

		if (paren != NULL)
			named = lg_text_names_functions(queryString + location, len, paren);
	}
	lg_record_calls(&calls, named, hidden, queryString, location,
					len > 0 && len <= PG_INT32_MAX ? (int) len : pstmt->stmt_len,
					pstmt->queryId);
}

void
lg_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context, ParamListInfo params,
				  QueryEnvironment *queryEnv, DestReceiver *dest,
				  QueryCompletion *qc)
{
	int			saved_level = nesting_level;
	int			saved_own = own_query_level;
	int			saved_depth;
	volatile bool top = client_statement(queryString);	/* kept over PG_TRY */
	bool		tracking = lg_pinstate_tracking();
	int			location = Max(pstmt->stmt_location, 0);
	size_t		len = 0;
	LgUtilityEffect effect;

	/* the client's statement: its text, measured once */
	if (top && queryString && context != PROCESS_UTILITY_SUBCOMMAND)
	{
		len = statement_length(queryString, location, pstmt->stmt_len);
		lg_invocation_statement(queryString, queryString + location,
								queryString + location + len);
	}

	/* a statement generated by another (serial's sequence) is not the user's */
	if (tracking && context != PROCESS_UTILITY_SUBCOMMAND)
	{
		lg_utility_effect(pstmt->utilityStmt, &effect);
		if (top)
		{
			lg_statement_begin();
			if (queryString)
				check_statement(queryString, pstmt->stmt_location,
								pstmt->stmt_len, len, pstmt->queryId);
		}
	}
	else
		tracking = false;

	/* before the procedure runs: what it does after them may fail */
	if (tracking && effect.runs_code && IsA(pstmt->utilityStmt, CallStmt))
		call_events((CallStmt *) pstmt->utilityStmt, !top, pstmt,
					queryString, len);

	own_query_level = (tracking && top && effect.own_query) ? nesting_level + 1 : -1;
	nesting_level++;
	saved_depth = lg_pinstate_utility_enter();
	PG_TRY();
	{
		if (prev.ProcessUtility)
			prev.ProcessUtility(pstmt, queryString, readOnlyTree,
								context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree,
									context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		nesting_level = saved_level;
		own_query_level = saved_own;
		lg_pinstate_utility_leave(saved_depth);
	}
	PG_END_TRY();

	if (tracking)
	{
		if (IsA(pstmt->utilityStmt, FetchStmt))
			lg_note_fetch();
		apply_utility(&effect, !top, pstmt, queryString, len, qc);
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
bool
lg_needs_fmgr_hook(Oid fn_oid)
{
	/*
	 * PL/pgSQL and SQL functions run their statements through the hooks and
	 * the PL/pgSQL plugin; a C function may change state in ways only a read
	 * shows.
	 */
	/* a library loaded after this one may have taken PL/pgSQL's plugin slot */
	lg_plpgsql_check_plugin();
	if (lg_function_is_c_code(fn_oid))
		lg_note_c_function();
	return prev.needs_fmgr ? prev.needs_fmgr(fn_oid) : false;
}

/*
 * needs_fmgr_hook and fmgr_hook are a pair: a function for which any
 * needs_fmgr_hook answers true runs through fmgr_security_definer, which
 * calls fmgr_hook.  Ours answers what the previous needs_fmgr_hook says (it
 * only notes C functions), so this one only passes each call on to the
 * previous fmgr_hook, keeping the pair together in the chain.
 */
void
lg_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	if (prev.fmgr)
		prev.fmgr(event, flinfo, private);
}

/* The root assigned our hooks: these are the ones to pass calls on to */
void
lg_hooks_chain(const LgHookChain *previous)
{
	prev = *previous;
}
