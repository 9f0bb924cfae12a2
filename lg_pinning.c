/*-------------------------------------------------------------------------
 *
 * lg_pinning.c
 *		The lifecycle of a pinning event: a statement passes a hook, is
 *		classified into reasons, and is published to shared memory.
 *
 * Where each reason is seen:
 *
 *	- ProcessUtility_hook: utility statements, by node tag (SET, RESET,
 *	  PREPARE, EXECUTE, DEALLOCATE, DISCARD, DECLARE, CLOSE, LISTEN, UNLISTEN,
 *	  LOAD, CREATE TEMP TABLE/SEQUENCE/VIEW, CREATE TEMP TABLE AS, SELECT INTO
 *	  TEMP, DROP of temporary objects).
 *
 *	- ExecutorStart_hook: function calls.  Built-in functions never reach
 *	  needs_fmgr_hook, so the plan is searched for the FuncExprs of
 *	  set_config, the sequence functions and the advisory lock functions; the
 *	  search runs only when the statement text names one of them, which keeps
 *	  an INSERT into a serial column (nextval from a column default, not in
 *	  the text) and every ordinary statement away from it.  Also the named
 *	  prepared statements of the extended protocol (ActivePortal->prepStmtName)
 *	  and statements over 16384 bytes.
 *
 *	- A transaction callback undoes the transactional state of an aborted
 *	  transaction, and a resource-release callback counts the session-level
 *	  advisory locks that are really held once a transaction's own are gone.
 *
 * A statement that changes no session state costs a few comparisons and one
 * pass over its text: no allocation, no lock, no system call.
 *
 * "pin_reasons" (sticky) only ever grow.  "dirty_reasons" follow counters of
 * the state that is present now.  A change made while nesting_level > 0 is
 * inside a function or procedure: a proxy cannot see it, so it is "hidden".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/async.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "storage/lock.h"
#include "tcop/pquery.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "pg_lambdaguard.h"
#include "lg_compat.h"

/* Saved hook values */
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* Depth of function and procedure execution; > 0 means "hidden" */
static int	nesting_level = 0;

/* ----------
 * This session's pinning state
 * ----------
 */
static uint32 pin_mask = 0;		/* sticky */
static TimestampTz pinned_since = 0;
static uint32 published_dirty = 0;
static uint32 published_pins = 0;

/* How much of each kind of state the session holds now */
static int	state_count[LG_NUM_REASONS];

/* state_count at the start of the transaction, to undo an abort */
static int	saved_count[LG_NUM_REASONS];
static bool saved_valid = false;

/* Reasons whose state a rollback undoes */
#define LG_TRANSACTIONAL_MASK \
	(LG_REASON_BIT(LG_REASON_SET) | LG_REASON_BIT(LG_REASON_SET_CONFIG) | \
	 LG_REASON_BIT(LG_REASON_TEMP_TABLE) | LG_REASON_BIT(LG_REASON_TEMP_SEQUENCE) | \
	 LG_REASON_BIT(LG_REASON_TEMP_VIEW) | LG_REASON_BIT(LG_REASON_CURSOR_WITH_HOLD) | \
	 LG_REASON_BIT(LG_REASON_LISTEN))

/* Channels this session listens on (committed) and their pre-xact copy */
static List *listen_channels = NIL;
static List *saved_channels = NIL;

/* Advisory lock functions ran: count the session's locks at xact end */
static bool advisory_recheck = false;

/* Named protocol-level statements already reported by this session */
static HTAB *protocol_statements = NULL;

static bool callbacks_registered = false;

/* ----------
 * Helpers
 * ----------
 */
static inline bool
lg_tracking(void)
{
	return lg_track_pinning != LG_TRACK_NONE && lg_shmem_ready();
}

static uint32
current_dirty_mask(void)
{
	uint32		mask = 0;
	int			r;

	for (r = 0; r < LG_NUM_REASONS; r++)
		if (state_count[r] > 0)
			mask |= LG_REASON_BIT(r);
	return mask;
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
	uint32		dirty = current_dirty_mask();

	if (dirty == published_dirty && pin_mask == published_pins && pinned_by == NULL)
		return;
	lg_slot_publish(pin_mask, dirty, pinned_since, pinned_by);
	published_dirty = dirty;
	published_pins = pin_mask;
}

/* Remember the pre-transaction state before the first change in it */
static void
save_for_abort(void)
{
	MemoryContext old;

	if (saved_valid || !IsTransactionState())
		return;
	memcpy(saved_count, state_count, sizeof(state_count));
	old = MemoryContextSwitchTo(TopMemoryContext);
	list_free_deep(saved_channels);
	saved_channels = NIL;
	{
		ListCell   *lc;

		foreach(lc, listen_channels)
			saved_channels = lappend(saved_channels, pstrdup((char *) lfirst(lc)));
	}
	MemoryContextSwitchTo(old);
	saved_valid = true;
}

/*
 * Record one occurrence of a reason: sticky pin, event, statistics.
 */
static void
record_reason(LgReason reason, const char *text, int location, int len,
			  uint64 queryid)
{
	bool		first = (pin_mask & LG_REASON_BIT(reason)) == 0;
	const char *pinned_by = NULL;
	char		buf[LG_PINNED_BY_LEN];

	if (!session_recorded())
		return;

	if (text == NULL)
		text = "";
	if (location > 0)
		text += location;
	if (len <= 0)
		len = strnlen(text, LG_EVENT_STMT_LEN);

	if (pin_mask == 0)
	{
		pinned_since = GetCurrentTimestamp();
		strlcpy(buf, text, Min(len + 1, LG_PINNED_BY_LEN));
		pinned_by = buf;
	}
	pin_mask |= LG_REASON_BIT(reason);
	publish_if_changed(pinned_by);
	lg_event_publish(reason, nesting_level > 0, first, text, len, queryid);
}

/* Change the amount of state of one reason; publishing is the caller's */
static void
change_state(LgReason reason, int delta)
{
	save_for_abort();
	state_count[reason] = Max(state_count[reason] + delta, 0);
}

static void
clear_state(LgReason reason)
{
	save_for_abort();
	state_count[reason] = 0;
}

static bool
parameter_ignored(const char *name)
{
	return name != NULL && lg_names_contain_ci(lg_ignored_list, name);
}

/* ----------
 * Extended-protocol named statements
 * ----------
 */
typedef struct LgProtocolStatement
{
	char		name[NAMEDATALEN];
} LgProtocolStatement;

/*
 * True the first time this session runs the named statement.
 */
static bool
protocol_statement_is_new(const char *name)
{
	char		key[NAMEDATALEN];
	bool		found;

	if (protocol_statements == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = NAMEDATALEN;
		ctl.entrysize = sizeof(LgProtocolStatement);
		ctl.hcxt = TopMemoryContext;
		protocol_statements = hash_create("pg_lambdaguard protocol statements",
										  64, &ctl,
										  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	memset(key, 0, sizeof(key));
	strlcpy(key, name, NAMEDATALEN);
	(void) hash_search(protocol_statements, key, HASH_ENTER, &found);
	return !found;
}

static void
protocol_statement_forget(const char *name)
{
	char		key[NAMEDATALEN];

	if (protocol_statements == NULL)
		return;
	if (name == NULL)
	{
		hash_destroy(protocol_statements);
		protocol_statements = NULL;
		state_count[LG_REASON_PROTOCOL_PREPARED_STATEMENT] = 0;
		return;
	}
	memset(key, 0, sizeof(key));
	strlcpy(key, name, NAMEDATALEN);
	if (hash_search(protocol_statements, key, HASH_REMOVE, NULL) != NULL)
		change_state(LG_REASON_PROTOCOL_PREPARED_STATEMENT, -1);
}

/*
 * The portal being run comes from a named statement of the extended query
 * protocol (Parse with a name): report it once per statement and session.
 */
static void
check_protocol_statement(const char *text, int location, int len, uint64 queryid)
{
	Portal		portal = ActivePortal;

	if (nesting_level > 0 || portal == NULL || portal->prepStmtName == NULL ||
		portal->prepStmtName[0] == '\0')
		return;
	if (!protocol_statement_is_new(portal->prepStmtName))
		return;
	change_state(LG_REASON_PROTOCOL_PREPARED_STATEMENT, 1);
	record_reason(LG_REASON_PROTOCOL_PREPARED_STATEMENT, text, location, len, queryid);
}

/* The length of a statement: stmt_len, or 0 for "the rest of the string" */
static inline size_t
statement_length(const char *text, int location, int len)
{
	return len > 0 ? (size_t) len : strlen(text + Max(location, 0));
}

/* ----------
 * Function calls in a plan
 * ----------
 */

/* Does the name of a sequence or advisory function have its 'v' at p? */
static inline bool
v_of_function_name(const char *text, const char *p, const char *end)
{
	/* nextval, currval, lastval, setval */
	if (end - p >= 3 && (p[1] | 0x20) == 'a' && (p[2] | 0x20) == 'l')
	{
		if (p - text >= 4 && (pg_strncasecmp(p - 4, "next", 4) == 0 ||
							  pg_strncasecmp(p - 4, "curr", 4) == 0 ||
							  pg_strncasecmp(p - 4, "last", 4) == 0))
			return true;
		if (p - text >= 3 && pg_strncasecmp(p - 3, "set", 3) == 0)
			return true;
	}
	/* advisory */
	return p - text >= 2 && end - p >= 6 && pg_strncasecmp(p - 2, "advisory", 8) == 0;
}

/*
 * Does the text name a function that can be a reason?  Every such name has
 * a 'v' or a '_', so memchr (vectorised in libc) finds the few places worth
 * a look; no allocation, one short pass per character looked for.
 */
static bool
text_names_function(const char *text, size_t len)
{
	const char *end = text + len;
	const char *p;

	for (p = text; (p = memchr(p, 'v', end - p)) != NULL; p++)
		if (v_of_function_name(text, p, end))
			return true;
	for (p = text; (p = memchr(p, 'V', end - p)) != NULL; p++)
		if (v_of_function_name(text, p, end))
			return true;
	for (p = text; (p = memchr(p, '_', end - p)) != NULL; p++)
		if (p - text >= 3 && end - p >= 7 && pg_strncasecmp(p - 3, "set_config", 10) == 0)
			return true;
	return false;
}

typedef struct LgCallSearch
{
	uint32		reasons;
	bool		set_config_dirty;
	bool		advisory;		/* an advisory lock function ran */
	bool		unlock_all;
} LgCallSearch;

static bool
call_walker(Node *node, LgCallSearch *cs)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr))
	{
		FuncExpr   *f = (FuncExpr *) node;

		switch (f->funcid)
		{
			case F_SET_CONFIG:
				{
					Node	   *name = list_length(f->args) == 3 ? linitial(f->args) : NULL;
					Node	   *local = list_length(f->args) == 3 ? lthird(f->args) : NULL;
					bool		is_local = false;

					if (local && IsA(local, Const) && !((Const *) local)->constisnull)
						is_local = DatumGetBool(((Const *) local)->constvalue);
					if (!is_local && name && IsA(name, Const) &&
						!((Const *) name)->constisnull &&
						parameter_ignored(TextDatumGetCString(((Const *) name)->constvalue)))
						is_local = true;	/* not a reason */
					if (!is_local)
					{
						cs->reasons |= LG_REASON_BIT(LG_REASON_SET_CONFIG);
						cs->set_config_dirty = true;
					}
				}
				break;
			case F_NEXTVAL:
			case F_CURRVAL:
			case F_LASTVAL:
			case F_SETVAL_REGCLASS_INT8:
			case F_SETVAL_REGCLASS_INT8_BOOL:
				cs->reasons |= LG_REASON_BIT(LG_REASON_SEQUENCE_FUNCTION);
				break;
			case F_PG_ADVISORY_LOCK_INT8:
			case F_PG_ADVISORY_LOCK_SHARED_INT8:
			case F_PG_TRY_ADVISORY_LOCK_INT8:
			case F_PG_TRY_ADVISORY_LOCK_SHARED_INT8:
			case F_PG_ADVISORY_LOCK_INT4_INT4:
			case F_PG_ADVISORY_LOCK_SHARED_INT4_INT4:
			case F_PG_TRY_ADVISORY_LOCK_INT4_INT4:
			case F_PG_TRY_ADVISORY_LOCK_SHARED_INT4_INT4:
				cs->reasons |= LG_REASON_BIT(LG_REASON_ADVISORY_LOCK);
				cs->advisory = true;
				break;
			case F_PG_ADVISORY_UNLOCK_INT8:
			case F_PG_ADVISORY_UNLOCK_SHARED_INT8:
			case F_PG_ADVISORY_UNLOCK_INT4_INT4:
			case F_PG_ADVISORY_UNLOCK_SHARED_INT4_INT4:
				cs->advisory = true;
				break;
			case F_PG_ADVISORY_UNLOCK_ALL:
				cs->advisory = true;
				cs->unlock_all = true;
				break;
			default:
				break;
		}
	}
	return expression_tree_walker(node, call_walker, (void *) cs);
}

static void walk_plan(Plan *plan, LgCallSearch *cs);

static void
walk_plans(List *plans, LgCallSearch *cs)
{
	ListCell   *lc;

	foreach(lc, plans)
		walk_plan((Plan *) lfirst(lc), cs);
}

#define WALK_EXPR(e)	(void) call_walker((Node *) (e), cs)

/*
 * Visit every expression of a plan tree that can call a function.
 */
static void
walk_plan(Plan *plan, LgCallSearch *cs)
{
	if (plan == NULL)
		return;
	check_stack_depth();

	WALK_EXPR(plan->targetlist);
	WALK_EXPR(plan->qual);

	switch (nodeTag(plan))
	{
		case T_Result:
			WALK_EXPR(((Result *) plan)->resconstantqual);
			break;
		case T_ModifyTable:
			WALK_EXPR(((ModifyTable *) plan)->returningLists);
			WALK_EXPR(((ModifyTable *) plan)->onConflictSet);
			WALK_EXPR(((ModifyTable *) plan)->onConflictWhere);
			break;
		case T_Append:
			walk_plans(((Append *) plan)->appendplans, cs);
			break;
		case T_MergeAppend:
			walk_plans(((MergeAppend *) plan)->mergeplans, cs);
			break;
		case T_BitmapAnd:
			walk_plans(((BitmapAnd *) plan)->bitmapplans, cs);
			break;
		case T_BitmapOr:
			walk_plans(((BitmapOr *) plan)->bitmapplans, cs);
			break;
		case T_IndexScan:
			WALK_EXPR(((IndexScan *) plan)->indexqual);
			WALK_EXPR(((IndexScan *) plan)->indexorderby);
			break;
		case T_IndexOnlyScan:
			WALK_EXPR(((IndexOnlyScan *) plan)->indexqual);
			WALK_EXPR(((IndexOnlyScan *) plan)->indexorderby);
			break;
		case T_BitmapIndexScan:
			WALK_EXPR(((BitmapIndexScan *) plan)->indexqual);
			break;
		case T_BitmapHeapScan:
			WALK_EXPR(((BitmapHeapScan *) plan)->bitmapqualorig);
			break;
		case T_TidScan:
			WALK_EXPR(((TidScan *) plan)->tidquals);
			break;
		case T_SubqueryScan:
			walk_plan(((SubqueryScan *) plan)->subplan, cs);
			break;
		case T_FunctionScan:
			WALK_EXPR(((FunctionScan *) plan)->functions);
			break;
		case T_ValuesScan:
			WALK_EXPR(((ValuesScan *) plan)->values_lists);
			break;
		case T_TableFuncScan:
			WALK_EXPR(((TableFuncScan *) plan)->tablefunc);
			break;
		case T_ForeignScan:
			WALK_EXPR(((ForeignScan *) plan)->fdw_exprs);
			break;
		case T_CustomScan:
			WALK_EXPR(((CustomScan *) plan)->custom_exprs);
			walk_plans(((CustomScan *) plan)->custom_plans, cs);
			break;
		case T_NestLoop:
		case T_MergeJoin:
		case T_HashJoin:
			WALK_EXPR(((Join *) plan)->joinqual);
			if (IsA(plan, MergeJoin))
				WALK_EXPR(((MergeJoin *) plan)->mergeclauses);
			if (IsA(plan, HashJoin))
				WALK_EXPR(((HashJoin *) plan)->hashclauses);
			break;
		case T_WindowAgg:
			WALK_EXPR(((WindowAgg *) plan)->startOffset);
			WALK_EXPR(((WindowAgg *) plan)->endOffset);
			break;
		case T_Limit:
			WALK_EXPR(((Limit *) plan)->limitOffset);
			WALK_EXPR(((Limit *) plan)->limitCount);
			break;
		default:
			break;
	}

	walk_plan(plan->lefttree, cs);
	walk_plan(plan->righttree, cs);
}

/*
 * Reasons from the function calls of a plan about to run.
 */
static void
check_calls(QueryDesc *queryDesc, const char *text, int location, size_t len)
{
	PlannedStmt *pstmt = queryDesc->plannedstmt;
	LgCallSearch cs;
	int			r;

	if (!text_names_function(text + location, len))
		return;

	memset(&cs, 0, sizeof(cs));
	walk_plan(pstmt->planTree, &cs);
	walk_plans(pstmt->subplans, &cs);

	if (cs.set_config_dirty)
		change_state(LG_REASON_SET_CONFIG, 1 - Min(state_count[LG_REASON_SET_CONFIG], 1));
	if (cs.unlock_all)
		state_count[LG_REASON_ADVISORY_LOCK] = 0;
	else if (cs.reasons & LG_REASON_BIT(LG_REASON_ADVISORY_LOCK))
		state_count[LG_REASON_ADVISORY_LOCK]++;
	if (cs.advisory)
		advisory_recheck = true;

	for (r = 0; r < LG_NUM_REASONS; r++)
		if (cs.reasons & LG_REASON_BIT(r))
			record_reason((LgReason) r, text, location, pstmt->stmt_len, pstmt->queryId);
	publish_if_changed(NULL);
}

/* ----------
 * Executor hooks
 * ----------
 */
static void
lg_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	if (lg_tracking() && (eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0 &&
		queryDesc->sourceText != NULL)
	{
		PlannedStmt *pstmt = queryDesc->plannedstmt;
		const char *text = queryDesc->sourceText;
		int			location = Max(pstmt->stmt_location, 0);
		size_t		len = statement_length(text, location, pstmt->stmt_len);

		check_protocol_statement(text, location, pstmt->stmt_len, pstmt->queryId);
		if (nesting_level == 0 && len > LG_STATEMENT_TOO_LARGE)
			record_reason(LG_REASON_STATEMENT_TOO_LARGE, text, location,
						  pstmt->stmt_len, pstmt->queryId);
		check_calls(queryDesc, text, location, len);
	}
}

/*
 * ExecutorRun and ExecutorFinish count the nesting level without PG_TRY: an
 * error unwinds past the decrement, and the (sub)transaction abort that
 * follows every error puts the level back (lg_subxact_callback,
 * lg_xact_callback).  That saves a sigsetjmp on every statement.
 */
static void
lg_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count
			   LG_EXECUTOR_RUN_ARGS)
{
	nesting_level++;
	if (prev_ExecutorRun)
		prev_ExecutorRun(queryDesc, direction, count LG_EXECUTOR_RUN_PASS);
	else
		standard_ExecutorRun(queryDesc, direction, count LG_EXECUTOR_RUN_PASS);
	nesting_level--;
}

static void
lg_ExecutorFinish(QueryDesc *queryDesc)
{
	nesting_level++;
	if (prev_ExecutorFinish)
		prev_ExecutorFinish(queryDesc);
	else
		standard_ExecutorFinish(queryDesc);
	nesting_level--;
}

/* ----------
 * Utility statements
 * ----------
 */

/* What a utility statement does to session state, decided before it runs */
typedef struct LgUtilityEffect
{
	int			reason;			/* LgReason, or -1 for none */
	int			state;			/* LgReason whose count changes, or -1 */
	int			delta;			/* +n, -n; 0 with clear */
	bool		clear;			/* set state_count[state] to 0 */
	bool		discard_all;
	bool		discard_temp;
	bool		close_all;
	bool		dealloc_all;
	bool		reset_all;
	char	   *channel;		/* LISTEN / UNLISTEN channel */
	bool		unlisten_all;
	char	   *deallocate;		/* DEALLOCATE name */
	int			temp_dropped[3];	/* DROP of temp table, sequence, view */
} LgUtilityEffect;

static bool
rangevar_is_temp(RangeVar *rv)
{
	return rv->relpersistence == RELPERSISTENCE_TEMP ||
		(rv->schemaname && strcmp(rv->schemaname, "pg_temp") == 0);
}

static Oid
my_temp_namespace(void)
{
	Oid			nsp;
	Oid			toast_nsp;

	GetTempNamespaceState(&nsp, &toast_nsp);
	return nsp;
}

/* Does a temporary relation of this name exist already (IF NOT EXISTS)? */
static bool
temp_relation_exists(RangeVar *rv)
{
	Oid			nsp = my_temp_namespace();

	if (!OidIsValid(nsp))
		return false;
	return OidIsValid(get_relname_relid(rv->relname, nsp));
}

static void
classify_drop(DropStmt *stmt, LgUtilityEffect *e)
{
	int			kind;
	ListCell   *lc;

	switch (stmt->removeType)
	{
		case OBJECT_TABLE:
			kind = 0;
			break;
		case OBJECT_SEQUENCE:
			kind = 1;
			break;
		case OBJECT_VIEW:
			kind = 2;
			break;
		default:
			return;
	}
	if (state_count[LG_REASON_TEMP_TABLE + kind] == 0 || !OidIsValid(my_temp_namespace()))
		return;

	foreach(lc, stmt->objects)
	{
		RangeVar   *rv = makeRangeVarFromNameList((List *) lfirst(lc));
		Oid			relid = RangeVarGetRelid(rv, NoLock, true);

		if (OidIsValid(relid) && get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
			e->temp_dropped[kind]++;
	}
}

static void
classify_utility(Node *parsetree, LgUtilityEffect *e)
{
	memset(e, 0, sizeof(*e));
	e->reason = -1;
	e->state = -1;

	switch (nodeTag(parsetree))
	{
		case T_VariableSetStmt:
			{
				VariableSetStmt *stmt = (VariableSetStmt *) parsetree;

				if (stmt->is_local)
					break;		/* SET LOCAL: gone at transaction end */
				switch (stmt->kind)
				{
					case VAR_SET_VALUE:
					case VAR_SET_CURRENT:
						if (parameter_ignored(stmt->name))
							break;
						e->reason = LG_REASON_SET;
						e->state = LG_REASON_SET;
						e->delta = 1;
						break;
					case VAR_SET_DEFAULT:
					case VAR_RESET:
						if (!parameter_ignored(stmt->name))
							e->reason = LG_REASON_SET;
						break;
					case VAR_RESET_ALL:
						e->reason = LG_REASON_SET;
						e->reset_all = true;
						break;
					case VAR_SET_MULTI:
						/* SET TRANSACTION is transaction-scoped */
						if (stmt->name && strcmp(stmt->name, "SESSION CHARACTERISTICS") == 0)
						{
							e->reason = LG_REASON_SET;
							e->state = LG_REASON_SET;
							e->delta = 1;
						}
						break;
				}
			}
			break;

		case T_PrepareStmt:
			e->reason = LG_REASON_PREPARED_STATEMENT;
			e->state = LG_REASON_PREPARED_STATEMENT;
			e->delta = 1;
			break;

		case T_ExecuteStmt:
			e->reason = LG_REASON_PREPARED_STATEMENT;
			break;

		case T_DeallocateStmt:
			{
				DeallocateStmt *stmt = (DeallocateStmt *) parsetree;

				e->reason = LG_REASON_PREPARED_STATEMENT;
				if (stmt->name == NULL)
					e->dealloc_all = true;
				else
					e->deallocate = stmt->name;
			}
			break;

		case T_DiscardStmt:
			e->reason = LG_REASON_DISCARD;
			switch (((DiscardStmt *) parsetree)->target)
			{
				case DISCARD_ALL:
					e->discard_all = true;
					break;
				case DISCARD_TEMP:
					e->discard_temp = true;
					break;
				default:
					break;
			}
			break;

		case T_CreateStmt:
			{
				CreateStmt *stmt = (CreateStmt *) parsetree;

				if (!rangevar_is_temp(stmt->relation))
					break;
				e->reason = LG_REASON_TEMP_TABLE;
				if (stmt->oncommit != ONCOMMIT_DROP &&
					!(stmt->if_not_exists && temp_relation_exists(stmt->relation)))
				{
					e->state = LG_REASON_TEMP_TABLE;
					e->delta = 1;
				}
			}
			break;

		case T_CreateTableAsStmt:
			{
				CreateTableAsStmt *stmt = (CreateTableAsStmt *) parsetree;
				IntoClause *into = stmt->into;

				if (into == NULL || !rangevar_is_temp(into->rel))
					break;
				e->reason = LG_REASON_TEMP_TABLE;
				if (into->onCommit != ONCOMMIT_DROP &&
					!(stmt->if_not_exists && temp_relation_exists(into->rel)))
				{
					e->state = LG_REASON_TEMP_TABLE;
					e->delta = 1;
				}
			}
			break;

		case T_CreateSeqStmt:
			{
				CreateSeqStmt *stmt = (CreateSeqStmt *) parsetree;

				if (!rangevar_is_temp(stmt->sequence))
					break;
				e->reason = LG_REASON_TEMP_SEQUENCE;
				if (!(stmt->if_not_exists && temp_relation_exists(stmt->sequence)))
				{
					e->state = LG_REASON_TEMP_SEQUENCE;
					e->delta = 1;
				}
			}
			break;

		case T_ViewStmt:
			{
				ViewStmt   *stmt = (ViewStmt *) parsetree;

				if (!rangevar_is_temp(stmt->view))
					break;
				e->reason = LG_REASON_TEMP_VIEW;
				if (!(stmt->replace && temp_relation_exists(stmt->view)))
				{
					e->state = LG_REASON_TEMP_VIEW;
					e->delta = 1;
				}
			}
			break;

		case T_DropStmt:
			classify_drop((DropStmt *) parsetree, e);
			break;

		case T_DeclareCursorStmt:
			if (((DeclareCursorStmt *) parsetree)->options & CURSOR_OPT_HOLD)
			{
				e->reason = LG_REASON_CURSOR_WITH_HOLD;
				e->state = LG_REASON_CURSOR_WITH_HOLD;
			}
			else
			{
				e->reason = LG_REASON_CURSOR;
				e->state = LG_REASON_CURSOR;
			}
			e->delta = 1;
			break;

		case T_ClosePortalStmt:
			{
				ClosePortalStmt *stmt = (ClosePortalStmt *) parsetree;

				if (stmt->portalname == NULL)
					e->close_all = true;
				else
				{
					Portal		portal = GetPortalByName(stmt->portalname);

					if (PortalIsValid(portal))
					{
						e->state = (portal->cursorOptions & CURSOR_OPT_HOLD) ?
							LG_REASON_CURSOR_WITH_HOLD : LG_REASON_CURSOR;
						e->delta = -1;
					}
				}
			}
			break;

		case T_ListenStmt:
			e->reason = LG_REASON_LISTEN;
			e->channel = ((ListenStmt *) parsetree)->conditionname;
			break;

		case T_UnlistenStmt:
			{
				UnlistenStmt *stmt = (UnlistenStmt *) parsetree;

				if (stmt->conditionname == NULL)
					e->unlisten_all = true;
				else
					e->channel = stmt->conditionname;
			}
			break;

		case T_LoadStmt:
			e->reason = LG_REASON_LOAD;
			e->state = LG_REASON_LOAD;
			e->delta = 1;
			break;

		default:
			break;
	}
}

static void
listen_change(const char *channel, bool add)
{
	MemoryContext old;
	ListCell   *lc;

	save_for_abort();
	foreach(lc, listen_channels)
	{
		if (strcmp((char *) lfirst(lc), channel) == 0)
		{
			if (!add)
				listen_channels = foreach_delete_current(listen_channels, lc);
			goto done;
		}
	}
	if (add)
	{
		old = MemoryContextSwitchTo(TopMemoryContext);
		listen_channels = lappend(listen_channels, pstrdup(channel));
		MemoryContextSwitchTo(old);
	}
done:
	state_count[LG_REASON_LISTEN] = list_length(listen_channels);
}

static void
listen_clear(void)
{
	save_for_abort();
	list_free_deep(listen_channels);
	listen_channels = NIL;
	state_count[LG_REASON_LISTEN] = 0;
}

/*
 * Apply what a utility statement did, once it succeeded.
 */
static void
apply_utility(LgUtilityEffect *e, PlannedStmt *pstmt, const char *queryString)
{
	int			k;

	if (e->discard_all)
	{
		static const LgReason gone[] = {
			LG_REASON_SET, LG_REASON_SET_CONFIG, LG_REASON_PREPARED_STATEMENT,
			LG_REASON_TEMP_TABLE, LG_REASON_TEMP_SEQUENCE, LG_REASON_TEMP_VIEW,
			LG_REASON_CURSOR, LG_REASON_CURSOR_WITH_HOLD, LG_REASON_ADVISORY_LOCK
		};

		for (k = 0; k < lengthof(gone); k++)
			clear_state(gone[k]);
		protocol_statement_forget(NULL);
		listen_clear();
	}
	if (e->discard_temp)
	{
		clear_state(LG_REASON_TEMP_TABLE);
		clear_state(LG_REASON_TEMP_SEQUENCE);
		clear_state(LG_REASON_TEMP_VIEW);
	}
	if (e->reset_all)
	{
		clear_state(LG_REASON_SET);
		clear_state(LG_REASON_SET_CONFIG);
	}
	if (e->close_all)
	{
		clear_state(LG_REASON_CURSOR);
		clear_state(LG_REASON_CURSOR_WITH_HOLD);
	}
	if (e->dealloc_all)
	{
		clear_state(LG_REASON_PREPARED_STATEMENT);
		protocol_statement_forget(NULL);
	}
	if (e->deallocate)
	{
		/* the name is a protocol-level statement or an SQL one */
		if (protocol_statements &&
			hash_search(protocol_statements, e->deallocate, HASH_FIND, NULL))
			protocol_statement_forget(e->deallocate);
		else
			change_state(LG_REASON_PREPARED_STATEMENT, -1);
	}
	if (e->unlisten_all)
		listen_clear();
	else if (e->channel)
		listen_change(e->channel, e->reason == LG_REASON_LISTEN);
	for (k = 0; k < 3; k++)
		if (e->temp_dropped[k])
			change_state(LG_REASON_TEMP_TABLE + k, -e->temp_dropped[k]);
	if (e->state >= 0)
	{
		if (e->state == LG_REASON_SET)
			change_state(LG_REASON_SET, 1 - Min(state_count[LG_REASON_SET], 1));
		else
			change_state((LgReason) e->state, e->delta);
	}

	if (e->reason >= 0)
		record_reason((LgReason) e->reason, queryString, pstmt->stmt_location,
					  pstmt->stmt_len, pstmt->queryId);
	publish_if_changed(NULL);
}

static void
lg_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
				  bool readOnlyTree, ProcessUtilityContext context, ParamListInfo params,
				  QueryEnvironment *queryEnv, DestReceiver *dest,
				  QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	bool		tracking = lg_tracking();
	bool		runs_code = IsA(parsetree, DoStmt) || IsA(parsetree, CallStmt);
	LgUtilityEffect effect;

	if (tracking)
	{
		classify_utility(parsetree, &effect);
		if (nesting_level == 0)
		{
			check_protocol_statement(queryString, pstmt->stmt_location,
									 pstmt->stmt_len, pstmt->queryId);
			if (queryString &&
				statement_length(queryString, pstmt->stmt_location,
								 pstmt->stmt_len) > LG_STATEMENT_TOO_LARGE)
				record_reason(LG_REASON_STATEMENT_TOO_LARGE, queryString,
							  pstmt->stmt_location, pstmt->stmt_len, pstmt->queryId);
		}
	}

	/* code run by DO and CALL is inside a procedure: hidden from a proxy */
	if (runs_code)
		nesting_level++;
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree,
							context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree,
								context, params, queryEnv, dest, qc);
	if (runs_code)
		nesting_level--;

	if (tracking)
		apply_utility(&effect, pstmt, queryString);
}

/* ----------
 * Transaction end
 * ----------
 */

/* How many advisory locks does this backend hold now? */
static int
count_my_advisory_locks(void)
{
	LockData   *data;
	int			i;
	int			n = 0;

	data = GetLockStatusData();
	for (i = 0; i < data->nelements; i++)
	{
		LockInstanceData *inst = &data->locks[i];

		if (inst->pid == MyProcPid && inst->holdMask != 0 &&
			inst->locktag.locktag_type == LOCKTAG_ADVISORY)
			n++;
	}
	return n;
}

static void
lg_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
			nesting_level = 0;
			if (saved_valid)
			{
				int			r;

				for (r = 0; r < LG_NUM_REASONS; r++)
					if (LG_TRANSACTIONAL_MASK & LG_REASON_BIT(r))
						state_count[r] = saved_count[r];
				list_free_deep(listen_channels);
				listen_channels = saved_channels;
				saved_channels = NIL;
			}
			pg_fallthrough;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			/* cursors without HOLD end with their transaction */
			state_count[LG_REASON_CURSOR] = 0;
			saved_valid = false;
			if (saved_channels != NIL)
			{
				list_free_deep(saved_channels);
				saved_channels = NIL;
			}
			if (lg_shmem_ready() && (pin_mask != 0 || published_dirty != 0))
				publish_if_changed(NULL);
			break;
		default:
			break;
	}
}

/*
 * The nesting level at the start of each open subtransaction, so that an
 * error caught by a savepoint or an exception block (which aborts the
 * subtransaction) puts the level back where it was.
 */
static int *subxact_levels = NULL;
static int	subxact_levels_cap = 0;

static void
lg_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	int			depth = GetCurrentTransactionNestLevel();

	switch (event)
	{
		case SUBXACT_EVENT_START_SUB:
			if (depth >= subxact_levels_cap)
			{
				int			cap = Max(16, depth * 2);

				subxact_levels = subxact_levels ?
					repalloc(subxact_levels, sizeof(int) * cap) :
					MemoryContextAlloc(TopMemoryContext, sizeof(int) * cap);
				subxact_levels_cap = cap;
			}
			subxact_levels[depth] = nesting_level;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			if (depth < subxact_levels_cap)
				nesting_level = subxact_levels[depth];
			break;
		default:
			break;
	}
}

/*
 * After a top-level transaction released its locks, the advisory locks left
 * are the session's own: count them, if advisory functions ran.
 */
static void
lg_resource_release(ResourceReleasePhase phase, bool isCommit, bool isTopLevel,
					void *arg)
{
	if (phase != RESOURCE_RELEASE_AFTER_LOCKS || !isTopLevel || !advisory_recheck)
		return;
	advisory_recheck = false;
	state_count[LG_REASON_ADVISORY_LOCK] = count_my_advisory_locks();
	if (lg_shmem_ready())
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
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = lg_ProcessUtility;

	if (!callbacks_registered)
	{
		RegisterXactCallback(lg_xact_callback, NULL);
		RegisterSubXactCallback(lg_subxact_callback, NULL);
		RegisterResourceReleaseCallback(lg_resource_release, NULL);
		callbacks_registered = true;
	}
}
