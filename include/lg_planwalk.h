/*-------------------------------------------------------------------------
 *
 * lg_planwalk.h
 *		What the function calls of a plan or an expression do: reason
 *		functions called by name in the statement's text, or inlined.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_PLANWALK_H
#define LG_PLANWALK_H

#include "catalog/pg_class.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"

#include "lg_labels.h"

typedef struct LgPlanCalls
{
	LgReasonMask reasons;		/* reasons of explicit (or inlined) calls */
	bool		set_config;		/* set_config(.., .., false) may have run */
	bool		sequence;		/* nextval/setval(true) may have run */
	bool		advisory;		/* an advisory lock function may have run */
	bool		xact_advisory;	/* a transaction-level one may have run */
} LgPlanCalls;

/*
 * The text names a transaction-level advisory lock function: its plan is
 * worth a walk (lg_pinstate.c counts the session's locks differently while
 * one may be held), but the name is no reason's
 */
#define LG_NAMED_XACT_ADVISORY	((LgReasonMask) 1 << 31)
StaticAssertDecl(LG_NUM_REASONS < 31, "a bit above the reasons is free");

/* Does any of these hold a call worth recording? */
static inline bool
lg_plan_calls_any(const LgPlanCalls *calls)
{
	return calls->reasons != 0 || calls->set_config || calls->sequence ||
		calls->advisory || calls->xact_advisory;
}

extern void lg_planwalk_init(void);
extern LgReasonMask lg_text_names_functions(const char *text, size_t len,
											const char *paren);
extern bool lg_plan_may_inline(PlannedStmt *pstmt);
extern bool lg_items_may_inline(List *invalItems);
extern bool lg_function_is_c_code(Oid fn_oid);
extern bool lg_plan_reads_calling_view(PlannedStmt *pstmt);

/*
 * Did the plan read a view that calls a reason function?  The range table
 * is looked through here, at every statement; only a view costs a call.
 */
static inline bool
lg_plan_reads_view_calls(PlannedStmt *pstmt)
{
	ListCell   *lc;

	foreach(lc, pstmt->rtable)
		if (((RangeTblEntry *) lfirst(lc))->relkind == RELKIND_VIEW)
			return lg_plan_reads_calling_view(pstmt);
	return false;
}
extern void lg_plan_calls(PlannedStmt *pstmt, LgPlanCalls *calls);
extern bool lg_plan_default_calls(PlannedStmt *pstmt, LgPlanCalls *calls);
extern bool lg_copy_sets_sequence(CopyStmt *stmt);
extern void lg_expr_calls(Node *expr, LgPlanCalls *calls);

#endif							/* LG_PLANWALK_H */
