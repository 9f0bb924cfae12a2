/*-------------------------------------------------------------------------
 *
 * lg_planwalk.c
 *		Find the calls of set_config, the sequence functions and the advisory
 *		lock functions in a plan about to run.
 *
 * Built-in functions never reach needs_fmgr_hook, so the plan is searched
 * for their FuncExprs instead.  The search is the expensive part of the
 * pinning hooks and runs only where it can find something:
 *
 *	- the statement text calls one of the functions by name (the identifier
 *	  before each '(', or any mention where a line break or a comment
 *	  stands before a '('; no allocation), or
 *	- the plan depends on a function that is not built in and not known to
 *	  be other than SQL (pstmt->invalItems holds a PROCOID item for it),
 *	  which is how an inlined SQL function shows.
 *
 * A call found in the plan whose function the text does not name came from
 * an inlined function: lg_hooks.c reports it as hidden.  Column defaults
 * (nextval of a serial column, an identity column) set sequence state but
 * are not a reason; lg_plan_default_calls() looks for them in the few
 * expressions an INSERT, UPDATE or MERGE evaluates for its target.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "lg_compat.h"
#include "lg_planwalk.h"
#include "lg_settings.h"

/* Does name begin with lit (lower case), in any case? */
static inline bool
prefix_ci(const char *name, const char *lit, size_t n)
{
	size_t		i;

	if (memcmp(name, lit, n) == 0)
		return true;			/* the usual spelling */
	for (i = 0; i < n; i++)
	{
		char		c = name[i];

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (c != lit[i])
			return false;
	}
	return true;
}

/* The reason of a function called by this name (any case), or 0 */
static LgReasonMask
reason_of_name(const char *name, size_t len)
{
	switch (len)
	{
		case 10:
			if (prefix_ci(name, "set_config", 10))
				return LG_REASON_BIT(LG_REASON_SET_CONFIG);
			break;
		case 7:					/* nextval, currval, lastval */
			if (prefix_ci(name + 4, "val", 3) &&
				(prefix_ci(name, "next", 4) || prefix_ci(name, "curr", 4) ||
				 prefix_ci(name, "last", 4)))
				return LG_REASON_BIT(LG_REASON_SEQUENCE_FUNCTION);
			break;
		case 6:
			if (prefix_ci(name, "setval", 6))
				return LG_REASON_BIT(LG_REASON_SEQUENCE_FUNCTION);
			break;
	}
	/* pg_advisory_*, pg_try_advisory_*; *_xact_* are no reason */
	if (len > 11 && prefix_ci(name, "pg_", 3))
	{
		const char *rest = NULL;

		if (prefix_ci(name + 3, "advisory_", 9))
			rest = name + 12;
		else if (len > 15 && prefix_ci(name + 3, "try_advisory_", 13))
			rest = name + 16;
		if (rest != NULL)
			return name + len - rest >= 5 && prefix_ci(rest, "xact_", 5) ?
				LG_NAMED_XACT_ADVISORY : LG_REASON_BIT(LG_REASON_ADVISORY_LOCK);
	}
	return 0;
}

/* Characters of an unquoted identifier: letters, digits, _, $, non-ASCII */
static bool identifier_chars[256];

static void
identifier_chars_init(void)
{
	int			c;

	for (c = 0; c < 256; c++)
		identifier_chars[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '_' || c == '$' || c >= 0x80;
}

/* Does a sequence or advisory function's name have its 'v' at p? */
static inline LgReasonMask
v_of_function_name(const char *text, const char *p, const char *end)
{
	/* nextval, currval, lastval, setval */
	if (end - p >= 3 && (p[1] | 0x20) == 'a' && (p[2] | 0x20) == 'l')
	{
		if (p - text >= 4 && (prefix_ci(p - 4, "next", 4) ||
							  prefix_ci(p - 4, "curr", 4) ||
							  prefix_ci(p - 4, "last", 4)))
			return LG_REASON_BIT(LG_REASON_SEQUENCE_FUNCTION);
		if (p - text >= 3 && prefix_ci(p - 3, "set", 3))
			return LG_REASON_BIT(LG_REASON_SEQUENCE_FUNCTION);
	}
	/* advisory; advisory_xact is no reason */
	if (p - text >= 2 && end - p >= 6 && prefix_ci(p - 2, "advisory", 8))
		return end - p >= 12 && prefix_ci(p + 6, "_xact_", 6) ?
			LG_NAMED_XACT_ADVISORY : LG_REASON_BIT(LG_REASON_ADVISORY_LOCK);
	return 0;
}

/*
 * The reasons whose functions' names stand anywhere in the text (in a
 * comment or a string too: more than called).  Every such name has a 'v'
 * or a '_', so memchr finds the few places worth a look.
 */
static LgReasonMask
names_anywhere(const char *text, size_t len)
{
	const char *end = text + len;
	const char *p;
	LgReasonMask mask = 0;

	for (p = text; (p = memchr(p, 'v', end - p)) != NULL; p++)
		mask |= v_of_function_name(text, p, end);
	for (p = text; (p = memchr(p, 'V', end - p)) != NULL; p++)
		mask |= v_of_function_name(text, p, end);
	for (p = text; (p = memchr(p, '_', end - p)) != NULL; p++)
		if (p - text >= 3 && end - p >= 7 && prefix_ci(p - 3, "set_config", 10))
		{
			mask |= LG_REASON_BIT(LG_REASON_SET_CONFIG);
			break;
		}
	return mask;
}

#define NAME_UNKNOWN ((size_t) -1)
#define NAME_ESCAPED ((size_t) -2)

/* The reasons a call by a name spelt with Unicode escapes may have */
#define LG_FUNCTION_REASONS \
	(LG_REASON_BIT(LG_REASON_SET_CONFIG) | \
	 LG_REASON_BIT(LG_REASON_SEQUENCE_FUNCTION) | \
	 LG_REASON_BIT(LG_REASON_ADVISORY_LOCK))

/*
 * The name of the function a '(' at p would call: back over spaces and tabs
 * to an identifier, plain or quoted (the last part of a qualified name).
 * Sets *name and returns its length; 0 if there is none, or if it cannot be
 * a reason function's (by its last letter).  NAME_UNKNOWN if a line break or
 * a comment comes first: reading backwards cannot tell a line comment or a
 * nested one from code.  NAME_ESCAPED for a U&"..." identifier.
 */
static size_t
name_before_paren(const char *text, const char *p, const char **name)
{
	const char *q = p;
	const char *stop;
	char		c;

	while (q > text && (q[-1] == ' ' || q[-1] == '\t'))
		q--;
	if (q == text)
		return 0;
	c = q[-1];
	if (c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
		(c == '/' && q - text >= 2 && q[-2] == '*'))
		return NAME_UNKNOWN;
	switch (c | 0x20)
	{
		case 'g':				/* set_config */
		case 'l':				/* nextval ... setval, pg_advisory_unlock_all */
		case 'k':				/* pg_advisory_lock ... */
		case 'd':				/* pg_advisory_lock_shared ... */
			break;
		default:
			if (c != '"')
				return 0;		/* no reason function's name ends so */
	}
	stop = q;
	if (q[-1] == '"')
	{
		stop = --q;
		while (q > text && q[-1] != '"')
			q--;
		if (q == text)
			return 0;
		/* U&"..." may spell any name with escapes: it may be any of them */
		if (q - text >= 3 && q[-2] == '&' && (q[-3] | 0x20) == 'u')
			return NAME_ESCAPED;
	}
	else
	{
		if (unlikely(!identifier_chars['a']))
			identifier_chars_init();
		/* four at a time while there is room: one bound check for four */
		while (q - text >= 4 && identifier_chars[(unsigned char) q[-1]] &&
			   identifier_chars[(unsigned char) q[-2]] &&
			   identifier_chars[(unsigned char) q[-3]] &&
			   identifier_chars[(unsigned char) q[-4]])
			q -= 4;
		while (q > text && identifier_chars[(unsigned char) q[-1]])
			q--;
	}
	*name = q;
	return stop - q;
}

/*
 * The reasons whose functions the text calls by name: the identifier before
 * each '(' (memchr, vectorised in libc, finds them; the caller found the
 * first, paren), or every name in the text where a line break or a comment
 * stands before a '('.
 */
LgReasonMask
lg_text_names_functions(const char *text, size_t len, const char *paren)
{
	const char *end = text + len;
	const char *p;
	LgReasonMask mask = 0;

	for (p = paren; p != NULL; p = memchr(p + 1, '(', end - p - 1))
	{
		const char *name;
		size_t		n = name_before_paren(text, p, &name);

		if (n == NAME_UNKNOWN)
			return names_anywhere(text, len);
		if (n == NAME_ESCAPED)
			mask |= LG_FUNCTION_REASONS;
		else if (n >= 6)
			mask |= reason_of_name(name, n);
	}
	return mask;
}

/* ----------
 * What is known of the functions that are not built in
 * ----------
 *
 * needs_fmgr_hook asks about every function that is not built in, each time
 * a statement looks it up (fmgr_info, while the executor starts).  The
 * answers are kept here, emptied whenever pg_proc changes:
 *	- whether it is C code (not a language's handler): the parameters are
 *	  then read back after the statement (lg_pinstate.c, lg_readback.c);
 *	- that it is not an SQL function, and so never inlined: kept as the
 *	  hash value that plans record it by (PlanInvalItem), so that a plan
 *	  whose functions are all known so needs no walk.
 */
#define LG_FN_CACHE_SIZE 64		/* a power of 2 */
#define LG_NOT_INLINED_SIZE 256 /* a power of 2 */
#define LG_NOT_INLINED_PROBES 8 /* slots looked at from a hash's place */

typedef struct LgFnCacheEntry
{
	Oid			oid;
	bool		c_code;
} LgFnCacheEntry;

static LgFnCacheEntry fn_cache[LG_FN_CACHE_SIZE];
static uint32 not_inlined[LG_NOT_INLINED_SIZE];	/* hash values; 0: free */

static void
fn_cache_reset(Datum arg, int cacheid, uint32 hashvalue)
{
	memset(fn_cache, 0, sizeof(fn_cache));
	memset(not_inlined, 0, sizeof(not_inlined));
}

static bool
not_inlined_find(uint32 hash, bool add)
{
	int			i;

	if (hash == 0)
		return false;
	for (i = 0; i < LG_NOT_INLINED_PROBES; i++)
	{
		uint32	   *slot = &not_inlined[(hash + i) & (LG_NOT_INLINED_SIZE - 1)];

		if (*slot == hash)
			return true;
		if (*slot == 0)
		{
			if (add)
				*slot = hash;
			return add;
		}
	}
	return false;				/* no room near its place: walk */
}

bool
lg_function_is_c_code(Oid fn_oid)
{
	LgFnCacheEntry *entry = &fn_cache[fn_oid & (LG_FN_CACHE_SIZE - 1)];
	HeapTuple	tp;
	Form_pg_proc proc;
	bool		c_code;

	if (entry->oid == fn_oid && OidIsValid(fn_oid))
		return entry->c_code;
	tp = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (tp == NULL)
		return false;
	proc = (Form_pg_proc) GETSTRUCT(tp);
	c_code = proc->prolang == ClanguageId &&
		proc->prorettype != LANGUAGE_HANDLEROID &&
		!(proc->prorettype == VOIDOID && proc->pronargs == 1 &&
		  proc->proargtypes.values[0] == INTERNALOID);
	if (proc->prolang != SQLlanguageId)
		not_inlined_find(GetSysCacheHashValue1(PROCOID, ObjectIdGetDatum(fn_oid)),
						 true);
	ReleaseSysCache(tp);
	entry->oid = fn_oid;
	entry->c_code = c_code;
	return c_code;
}

/*
 * Could the plan hold the body of an inlined function?  It depends on a
 * function that is not built in (pstmt->invalItems holds a PROCOID item:
 * called or inlined) that is not known to be other than SQL.
 */
bool
lg_plan_may_inline(PlannedStmt *pstmt)
{
	return lg_items_may_inline(pstmt->invalItems);
}

/* The same, from a plan's dependencies (PlanInvalItems) */
bool
lg_items_may_inline(List *invalItems)
{
	ListCell   *lc;

	foreach(lc, invalItems)
	{
		PlanInvalItem *item = (PlanInvalItem *) lfirst(lc);

		if (item->cacheId == PROCOID && !not_inlined_find(item->hashValue, false))
			return true;
	}
	return false;
}

static bool
const_is(Node *node, bool value)
{
	return node && IsA(node, Const) && !((Const *) node)->constisnull &&
		DatumGetBool(((Const *) node)->constvalue) == value;
}

/* The reason and the state a call of this function may leave */
static inline void
note_call(FuncExpr *f, LgPlanCalls *calls)
{
	switch (f->funcid)
	{
		case F_SET_CONFIG:
			{
				Node	   *name = list_length(f->args) == 3 ? linitial(f->args) : NULL;
				Node	   *local = list_length(f->args) == 3 ? lthird(f->args) : NULL;

				if (const_is(local, true))
					break;	/* transaction-scoped */
				if (name && IsA(name, Const) && !((Const *) name)->constisnull &&
					lg_parameter_ignored(TextDatumGetCString(((Const *) name)->constvalue)))
					break;
				calls->reasons |= LG_REASON_BIT(LG_REASON_SET_CONFIG);
				calls->set_config = true;
			}
			break;
		case F_SETVAL_REGCLASS_INT8_BOOL:
			calls->reasons |= LG_REASON_BIT(LG_REASON_SEQUENCE_FUNCTION);
			/* setval(s, n, false): currval still does not answer */
			if (!const_is(lthird(f->args), false))
				calls->sequence = true;
			break;
		case F_NEXTVAL:
		case F_SETVAL_REGCLASS_INT8:
			calls->sequence = true;
			pg_fallthrough;
		case F_CURRVAL:
		case F_LASTVAL:
			calls->reasons |= LG_REASON_BIT(LG_REASON_SEQUENCE_FUNCTION);
			break;
		case F_PG_ADVISORY_LOCK_INT8:
		case F_PG_ADVISORY_LOCK_SHARED_INT8:
		case F_PG_TRY_ADVISORY_LOCK_INT8:
		case F_PG_TRY_ADVISORY_LOCK_SHARED_INT8:
		case F_PG_ADVISORY_LOCK_INT4_INT4:
		case F_PG_ADVISORY_LOCK_SHARED_INT4_INT4:
		case F_PG_TRY_ADVISORY_LOCK_INT4_INT4:
		case F_PG_TRY_ADVISORY_LOCK_SHARED_INT4_INT4:
			calls->reasons |= LG_REASON_BIT(LG_REASON_ADVISORY_LOCK);
			calls->advisory = true;
			break;
		case F_PG_ADVISORY_UNLOCK_INT8:
		case F_PG_ADVISORY_UNLOCK_SHARED_INT8:
		case F_PG_ADVISORY_UNLOCK_INT4_INT4:
		case F_PG_ADVISORY_UNLOCK_SHARED_INT4_INT4:
		case F_PG_ADVISORY_UNLOCK_ALL:
			calls->advisory = true;
			break;
		case F_PG_ADVISORY_XACT_LOCK_INT8:
		case F_PG_ADVISORY_XACT_LOCK_SHARED_INT8:
		case F_PG_TRY_ADVISORY_XACT_LOCK_INT8:
		case F_PG_TRY_ADVISORY_XACT_LOCK_SHARED_INT8:
		case F_PG_ADVISORY_XACT_LOCK_INT4_INT4:
		case F_PG_ADVISORY_XACT_LOCK_SHARED_INT4_INT4:
		case F_PG_TRY_ADVISORY_XACT_LOCK_INT4_INT4:
		case F_PG_TRY_ADVISORY_XACT_LOCK_SHARED_INT4_INT4:
			calls->xact_advisory = true;	/* no reason: released at its end */
			break;
		default:
			break;
	}
}

/*
 * The calls in an expression.  The nodes a small statement's expressions
 * are mostly made of (leaves, lists, target entries, function and operator
 * calls) are followed here; every other node goes through
 * expression_tree_walker, which calls back here for each of its children.
 * Only the calls check the stack depth, as expression_tree_walker does for
 * every node: nothing else here nests without one of them in between.
 */
static bool
call_walker(Node *node, LgPlanCalls *calls)
{
	List	   *args;
	ListCell   *lc;

	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_Var:
		case T_Const:
		case T_Param:
			return false;
		case T_List:
			foreach(lc, (List *) node)
				(void) call_walker((Node *) lfirst(lc), calls);
			return false;
		case T_TargetEntry:
			return call_walker((Node *) ((TargetEntry *) node)->expr, calls);
		case T_NextValueExpr:
			calls->sequence = true; /* an identity column: state, no reason */
			return false;
		case T_FuncExpr:
			note_call((FuncExpr *) node, calls);
			args = ((FuncExpr *) node)->args;
			break;
		case T_OpExpr:
			args = ((OpExpr *) node)->args;
			break;
		default:
			return expression_tree_walker(node, call_walker, (void *) calls);
	}
	check_stack_depth();
	foreach(lc, args)
		(void) call_walker((Node *) lfirst(lc), calls);
	return false;
}

static void walk_plan(Plan *plan, LgPlanCalls *calls);

static void
walk_plans(List *plans, LgPlanCalls *calls)
{
	ListCell   *lc;

	foreach(lc, plans)
		walk_plan((Plan *) lfirst(lc), calls);
}

#define WALK_EXPR(e)	(void) call_walker((Node *) (e), calls)

/* MERGE: the quals and target lists of every WHEN clause */
static void
walk_merge_actions(ModifyTable *mt, LgPlanCalls *calls)
{
#if PG_VERSION_NUM >= 150000
	ListCell   *l1;

	foreach(l1, mt->mergeActionLists)
	{
		ListCell   *l2;

		foreach(l2, (List *) lfirst(l1))
		{
			MergeAction *action = (MergeAction *) lfirst(l2);

			WALK_EXPR(action->qual);
			WALK_EXPR(action->targetList);
		}
	}
#endif
}

/*
 * Visit every expression of a plan tree that can call a function.
 */
static void
walk_plan(Plan *plan, LgPlanCalls *calls)
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
			walk_merge_actions((ModifyTable *) plan, calls);
			break;
		case T_Append:
			walk_plans(((Append *) plan)->appendplans, calls);
			break;
		case T_MergeAppend:
			walk_plans(((MergeAppend *) plan)->mergeplans, calls);
			break;
		case T_BitmapAnd:
			walk_plans(((BitmapAnd *) plan)->bitmapplans, calls);
			break;
		case T_BitmapOr:
			walk_plans(((BitmapOr *) plan)->bitmapplans, calls);
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
			walk_plan(((SubqueryScan *) plan)->subplan, calls);
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
			walk_plans(((CustomScan *) plan)->custom_plans, calls);
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

	walk_plan(plan->lefttree, calls);
	walk_plan(plan->righttree, calls);
}

/*
 * The function calls of a whole plan: its tree and its subplans.
 */
void
lg_plan_calls(PlannedStmt *pstmt, LgPlanCalls *calls)
{
	memset(calls, 0, sizeof(*calls));
	walk_plan(pstmt->planTree, calls);
	walk_plans(pstmt->subplans, calls);
}

/* The function calls of one expression (a PL/pgSQL simple expression) */
void
lg_expr_calls(Node *expr, LgPlanCalls *calls)
{
	memset(calls, 0, sizeof(*calls));
	(void) call_walker(expr, calls);
}

/* ----------
 * Views that call reason functions
 * ----------
 *
 * A view's query is part of the plan of a statement that reads it, but not
 * of its text: a view that calls set_config, a sequence or an advisory lock
 * function makes the plan worth a walk (its calls are hidden).  The range
 * table keeps an entry for each view the statement read, with its relkind
 * (the "*OLD*" relation entry before PostgreSQL 16, the subquery that
 * replaced it since), and the statement holds its lock.  What is known of
 * each view is kept here, forgotten when the view changes (a relcache
 * invalidation: CREATE OR REPLACE VIEW too).
 */
#define LG_VIEW_CACHE_SIZE 64	/* a power of 2 */

typedef struct LgViewCacheEntry
{
	Oid			oid;
	bool		calls;			/* its query calls a reason function */
} LgViewCacheEntry;

static LgViewCacheEntry view_cache[LG_VIEW_CACHE_SIZE];

static void
view_cache_reset(Datum arg, Oid relid)
{
	if (OidIsValid(relid))
	{
		LgViewCacheEntry *entry = &view_cache[relid & (LG_VIEW_CACHE_SIZE - 1)];

		if (entry->oid == relid)
			entry->oid = InvalidOid;
	}
	else
		memset(view_cache, 0, sizeof(view_cache));
}

/*
 * Does a view's query (its subqueries too) call a reason function?  Any
 * set_config counts: whether its parameter is ignored is the plan walk's
 * to say, at the time (lambdaguard.ignored_parameters may change).
 */
static bool
view_walker(Node *node, bool *found)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr))
	{
		LgPlanCalls calls;

		memset(&calls, 0, sizeof(calls));
		note_call((FuncExpr *) node, &calls);
		if (lg_plan_calls_any(&calls) ||
			((FuncExpr *) node)->funcid == F_SET_CONFIG)
		{
			*found = true;
			return true;
		}
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, view_walker, (void *) found, 0);
	return expression_tree_walker(node, view_walker, (void *) found);
}

static pg_noinline bool
view_calls(Oid relid)
{
	LgViewCacheEntry *entry = &view_cache[relid & (LG_VIEW_CACHE_SIZE - 1)];
	Relation	rel;
	bool		found = false;

	/*
	 * The statement locked the view; a lock it does not hold (or cannot
	 * have at once) is not waited for: the plan is walked, nothing kept.
	 */
	if (!ConditionalLockRelationOid(relid, AccessShareLock))
		return true;
	/* the relcache entry only: relation_open would mark a temporary view's
	 * transaction as one that used temporary objects (PREPARE TRANSACTION) */
	rel = SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)) ?
		RelationIdGetRelation(relid) : NULL;
	if (rel == NULL)
	{
		UnlockRelationOid(relid, AccessShareLock);
		return true;
	}
	if (rel->rd_rel->relkind == RELKIND_VIEW)
		(void) view_walker((Node *) get_view_query(rel), &found);
	RelationClose(rel);
	UnlockRelationOid(relid, AccessShareLock);
	entry->oid = relid;
	entry->calls = found;
	return found;
}

/* Did the plan read a view that calls a reason function? */
bool
lg_plan_reads_calling_view(PlannedStmt *pstmt)
{
	ListCell   *lc;

	foreach(lc, pstmt->rtable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);
		LgViewCacheEntry *entry;

		if (rte->relkind != RELKIND_VIEW || !OidIsValid(rte->relid))
			continue;
		entry = &view_cache[rte->relid & (LG_VIEW_CACHE_SIZE - 1)];
		if (entry->oid == rte->relid ? entry->calls : view_calls(rte->relid))
			return true;
	}
	return false;
}

/*
 * What is known of functions and views is forgotten when they change: the
 * callbacks are registered when the library is loaded (a backend has a
 * fixed number of slots for them, better found full then than at a query).
 */
void
lg_planwalk_init(void)
{
	CacheRegisterSyscacheCallback(PROCOID, fn_cache_reset, (Datum) 0);
	CacheRegisterRelcacheCallback(view_cache_reset, (Datum) 0);
}

/*
 * The calls in the column defaults an INSERT, UPDATE or MERGE computes for
 * its target.  Only the expressions right under ModifyTable are looked at:
 * that is where the planner puts column defaults.  A default's nextval is
 * sequence state but no reason (only an explicit call is); a default that
 * calls set_config or an advisory lock function is a hidden call.  Returns
 * whether there is any.
 */
bool
lg_plan_default_calls(PlannedStmt *pstmt, LgPlanCalls *calls)
{
	Plan	   *plan = pstmt->planTree;
	Plan	   *sub;

	memset(calls, 0, sizeof(*calls));
	if (pstmt->commandType == CMD_SELECT || pstmt->commandType == CMD_DELETE ||
		plan == NULL || !IsA(plan, ModifyTable))
		return false;
	walk_merge_actions((ModifyTable *) plan, calls);
	sub = plan->lefttree;
	if (sub)
	{
		(void) call_walker((Node *) sub->targetlist, calls);
		if (IsA(sub, ValuesScan))
			(void) call_walker((Node *) ((ValuesScan *) sub)->values_lists, calls);
	}
	calls->reasons &= ~LG_REASON_BIT(LG_REASON_SEQUENCE_FUNCTION);
	return lg_plan_calls_any(calls);
}

/*
 * Did a COPY FROM (of at least one row) fill a column from a sequence: an
 * identity column, or a default that calls nextval, not given in the
 * column list?  COPY evaluates defaults without the executor's plan.
 */
bool
lg_copy_sets_sequence(CopyStmt *stmt)
{
	Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	Relation	rel;
	TupleDesc	desc;
	bool		found = false;
	int			i;

	if (!OidIsValid(relid))
		return false;
	rel = relation_open(relid, NoLock);	/* COPY still holds its lock */
	desc = RelationGetDescr(rel);
	for (i = 0; i < desc->natts && !found; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		ListCell   *lc;
		bool		listed = false;

		if (att->attisdropped || att->attgenerated)
			continue;
		foreach(lc, stmt->attlist)
			listed |= (strcmp(strVal(lfirst(lc)), NameStr(att->attname)) == 0);
		if (listed)
			continue;
		if (att->attidentity)
			found = true;
		else if (att->atthasdef)
		{
			LgPlanCalls calls;

			memset(&calls, 0, sizeof(calls));
			(void) call_walker(build_column_default(rel, i + 1), &calls);
			found = calls.sequence;
		}
	}
	relation_close(rel, NoLock);
	return found;
}
