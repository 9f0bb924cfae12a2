/*-------------------------------------------------------------------------
 *
 * lg_plpgsql.c
 *		See the calls in PL/pgSQL simple expressions.
 *
 * PL/pgSQL evaluates a "simple" expression (an assignment, a RETURN, an IF
 * or WHILE condition, a DECLARE's initial value, a FOR bound, a RAISE
 * parameter... that is a plain expression) without the executor: no
 * executor hook sees x := set_config(...), IF pg_try_advisory_lock(n) or
 * RAISE NOTICE '%', nextval('s').  PL/pgSQL's instrumentation plugin (the
 * "PLpgSQL_plugin" rendezvous variable, as pldebugger uses it) is called
 * after each statement: for each simple expression of the statement that
 * names a reason function (the identifier before each '(' of its text)
 * and that ran, the planned expression is walked, and each call found is a
 * hidden event of that statement.
 *
 * PL/pgSQL calls one plugin, through the "PLpgSQL_plugin" rendezvous
 * variable, and other tools want it too (plpgsql_check, pldebugger,
 * plprofiler).  So this plugin wraps whatever plugin held the variable
 * when it was installed, and passes every callback on to it:
 *
 *	- loaded after another plugin (plpgsql_check, plugin_debugger), it takes
 *	  the other's place and forwards to it, handing over the helper
 *	  functions PL/pgSQL sets in the plugin it calls;
 *	- loaded before one that overwrites the variable without passing calls
 *	  on (plugin_debugger), it notices at run time (lg_plpgsql_check_plugin,
 *	  from needs_fmgr_hook, before any PL/pgSQL function runs) and wraps the
 *	  newcomer the same way;
 *	- loaded before one that takes the variable and does pass calls on
 *	  (plpgsql_check), the same run-time wrap makes a cycle: that plugin's
 *	  forwarded call reaches this one again with the estate this one is
 *	  passing on, and returns at once.
 *
 * This plugin keeps nothing in estate->plugin_info: the wrapped plugin has
 * it to itself.  Without the plugin at all, parameters and advisory locks
 * changed this way are still found by reading the state back at the
 * statement's end (lg_pinstate.c, through lg_readback.c); sequence state is
 * not.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "plpgsql.h"
#include "utils/plancache.h"

#include "lg_compat.h"
#include "lg_pinstate.h"
#include "lg_planwalk.h"
#include "lg_plpgsql.h"

static void lg_plpgsql_stmt_end(PLpgSQL_execstate *estate, PLpgSQL_stmt *stmt);

static PLpgSQL_plugin lg_plugin = {
	.stmt_end = lg_plpgsql_stmt_end
};

/* The rendezvous variable, and the plugin this one wraps (or NULL) */
static PLpgSQL_plugin **plugin_var = NULL;
static PLpgSQL_plugin *inner = NULL;

/* The estate whose callback is being passed on to the wrapped plugin now */
static PLpgSQL_execstate *forwarding = NULL;

/*
 * PL/pgSQL sets its helper functions in the plugin it calls (this one);
 * the wrapped plugin needs them too (pldebugger evaluates variables with
 * them).
 */
static inline void
hand_over_helpers(void)
{
	inner->error_callback = lg_plugin.error_callback;
	inner->assign_expr = lg_plugin.assign_expr;
#if PG_VERSION_NUM >= 150000
	inner->assign_value = lg_plugin.assign_value;
	inner->eval_datum = lg_plugin.eval_datum;
	inner->cast_value = lg_plugin.cast_value;
#endif
}

/*
 * Pass one callback on to the wrapped plugin.  "forwarding" is put back
 * even when the callback raises an error (a PL/pgSQL exception block may
 * catch it and go on).
 */
#define FORWARD(callback, estate, arg) \
	do { \
		PLpgSQL_execstate *saved_ = forwarding; \
		\
		hand_over_helpers(); \
		forwarding = (estate); \
		PG_TRY(); \
		{ \
			inner->callback((estate), (arg)); \
		} \
		PG_FINALLY(); \
		{ \
			forwarding = saved_; \
		} \
		PG_END_TRY(); \
	} while (0)

static void
forward_func_setup(PLpgSQL_execstate *estate, PLpgSQL_function *func)
{
	if (estate != forwarding && inner && inner->func_setup)
		FORWARD(func_setup, estate, func);
}

static void
forward_func_beg(PLpgSQL_execstate *estate, PLpgSQL_function *func)
{
	if (estate != forwarding && inner && inner->func_beg)
		FORWARD(func_beg, estate, func);
}

static void
forward_func_end(PLpgSQL_execstate *estate, PLpgSQL_function *func)
{
	if (estate != forwarding && inner && inner->func_end)
		FORWARD(func_end, estate, func);
}

static void
forward_stmt_beg(PLpgSQL_execstate *estate, PLpgSQL_stmt *stmt)
{
	if (estate != forwarding && inner && inner->stmt_beg)
		FORWARD(stmt_beg, estate, stmt);
}

/* Wrap the plugin the variable holds now, unless it is this one */
static void
wrap_current(void)
{
	PLpgSQL_plugin *current = *plugin_var;

	if (current == &lg_plugin)
		return;
	inner = current;
	/* without a plugin to wrap, PL/pgSQL calls nothing but stmt_end */
	lg_plugin.func_setup = inner && inner->func_setup ? forward_func_setup : NULL;
	lg_plugin.func_beg = inner && inner->func_beg ? forward_func_beg : NULL;
	lg_plugin.func_end = inner && inner->func_end ? forward_func_end : NULL;
	lg_plugin.stmt_beg = inner && inner->stmt_beg ? forward_stmt_beg : NULL;
	*plugin_var = &lg_plugin;
}

/*
 * Could a simple expression hold the body of an inlined SQL function?  Its
 * query (its plan source's dependencies, taken before planning; NIL once
 * invalidated) depends on a function not known to be other than SQL.
 */
static inline bool
has_dependencies(PLpgSQL_expr *expr)
{
	return expr->expr_simple_plansource != NULL &&
		expr->expr_simple_plansource->invalItems != NIL;
}

static inline bool
may_inline(PLpgSQL_expr *expr)
{
	return has_dependencies(expr) &&
		lg_items_may_inline(expr->expr_simple_plansource->invalItems);
}

/*
 * A simple expression that names a reason function (paren: its first '('),
 * or that may hold an inlined SQL function: its calls, hidden
 */
static pg_noinline void
expression_events(PLpgSQL_expr *expr, const char *paren)
{
	LgPlanCalls calls;

	if ((paren == NULL ||
		 lg_text_names_functions(expr->query, strlen(expr->query), paren) == 0) &&
		!may_inline(expr))
		return;
	if (!lg_pinstate_tracking())
		return;
	lg_expr_calls((Node *) expr->expr_simple_expr, &calls);
	lg_record_calls(&calls, 0, true, expr->query, 0, 0, 0);
}

/*
 * An expression of the statement that ended.  One that is not simple ran
 * through the executor hooks.  One that is counts if it ran in this run of
 * the statement: always, or (ran_in valid: an ELSIF or WHEN after the
 * branch taken may be skipped, an ASSERT while plpgsql.check_asserts is
 * off) if PL/pgSQL marked it, and its plan, prepared in the transaction the
 * statement's first expression ran in (it prepares a simple expression once
 * per transaction; a COMMIT in the branch taken comes after).  One
 * evaluated earlier in that transaction, and skipped this time, is counted
 * again.  Without a '(' an expression calls no function by name, but an
 * operator's may be an inlined SQL function.
 */
static inline void
check_expression(PLpgSQL_expr *expr, LocalTransactionId ran_in)
{
	const char *paren;

	if (expr == NULL || expr->expr_simple_expr == NULL || expr->query == NULL ||
		(ran_in != InvalidLocalTransactionId &&
		 (expr->expr_simple_lxid != ran_in || expr->expr_simple_plan_lxid != ran_in)))
		return;
	paren = strchr(expr->query, '(');
	if (paren != NULL || has_dependencies(expr))
		expression_events(expr, paren);
}

#define ALWAYS InvalidLocalTransactionId

/* The transaction a statement's first expression ran in */
static inline LocalTransactionId
first_ran_in(PLpgSQL_expr *first)
{
	return first != NULL && first->expr_simple_expr != NULL ?
		first->expr_simple_lxid : LG_MY_LXID();
}

static void
check_expressions(List *exprs)
{
	ListCell   *lc;

	foreach(lc, exprs)
		check_expression((PLpgSQL_expr *) lfirst(lc), ALWAYS);
}

/*
 * A statement's other simple expressions: a block's initial values, the
 * conditions of ELSIF and WHEN, the bounds of FOR, the array of FOREACH, the
 * parameters of RAISE, the condition of ASSERT, the query string and USING
 * values of EXECUTE, and the count of FETCH or MOVE.  (OPEN's arguments
 * and every query run through the executor hooks.)
 */
static pg_noinline void
other_expressions(PLpgSQL_execstate *estate, PLpgSQL_stmt *stmt)
{
	ListCell   *lc;
	int			i;

	switch (stmt->cmd_type)
	{
		case PLPGSQL_STMT_BLOCK:
			/* the initial values: lg_plpgsql_stmt_end found one */
			{
				PLpgSQL_stmt_block *block = (PLpgSQL_stmt_block *) stmt;

				for (i = 0; i < block->n_initvars; i++)
				{
					PLpgSQL_datum *d = estate->datums[block->initvarnos[i]];

					if (d->dtype == PLPGSQL_DTYPE_VAR ||
						d->dtype == PLPGSQL_DTYPE_PROMISE ||
						d->dtype == PLPGSQL_DTYPE_REC)
						check_expression(((PLpgSQL_variable *) d)->default_val, ALWAYS);
				}
			}
			break;
		case PLPGSQL_STMT_IF:
			{
				PLpgSQL_stmt_if *s_if = (PLpgSQL_stmt_if *) stmt;
				LocalTransactionId ran_in = first_ran_in(s_if->cond);

				foreach(lc, s_if->elsif_list)
					check_expression(((PLpgSQL_if_elsif *) lfirst(lc))->cond, ran_in);
			}
			break;
		case PLPGSQL_STMT_CASE:
			{
				PLpgSQL_stmt_case *s_case = (PLpgSQL_stmt_case *) stmt;
				LocalTransactionId ran_in;

				/* the value, or else the first WHEN, is evaluated first */
				ran_in = first_ran_in(s_case->t_expr ? s_case->t_expr :
									  s_case->case_when_list == NIL ? NULL :
									  ((PLpgSQL_case_when *) linitial(s_case->case_when_list))->expr);
				foreach(lc, s_case->case_when_list)
					check_expression(((PLpgSQL_case_when *) lfirst(lc))->expr, ran_in);
			}
			break;
		case PLPGSQL_STMT_FORI:
			check_expression(((PLpgSQL_stmt_fori *) stmt)->lower, ALWAYS);
			check_expression(((PLpgSQL_stmt_fori *) stmt)->upper, ALWAYS);
			check_expression(((PLpgSQL_stmt_fori *) stmt)->step, ALWAYS);
			break;
		case PLPGSQL_STMT_FOREACH_A:
			check_expression(((PLpgSQL_stmt_foreach_a *) stmt)->expr, ALWAYS);
			break;
		case PLPGSQL_STMT_RAISE:
			check_expressions(((PLpgSQL_stmt_raise *) stmt)->params);
			foreach(lc, ((PLpgSQL_stmt_raise *) stmt)->options)
				check_expression(((PLpgSQL_raise_option *) lfirst(lc))->expr, ALWAYS);
			break;
		case PLPGSQL_STMT_ASSERT:
			check_expression(((PLpgSQL_stmt_assert *) stmt)->cond, LG_MY_LXID());
			break;
		case PLPGSQL_STMT_DYNEXECUTE:
			check_expression(((PLpgSQL_stmt_dynexecute *) stmt)->query, ALWAYS);
			check_expressions(((PLpgSQL_stmt_dynexecute *) stmt)->params);
			break;
		case PLPGSQL_STMT_DYNFORS:
			check_expression(((PLpgSQL_stmt_dynfors *) stmt)->query, ALWAYS);
			check_expressions(((PLpgSQL_stmt_dynfors *) stmt)->params);
			break;
		case PLPGSQL_STMT_RETURN_QUERY:
			check_expression(((PLpgSQL_stmt_return_query *) stmt)->dynquery, ALWAYS);
			check_expressions(((PLpgSQL_stmt_return_query *) stmt)->params);
			break;
		case PLPGSQL_STMT_OPEN:
			check_expression(((PLpgSQL_stmt_open *) stmt)->dynquery, ALWAYS);
			check_expressions(((PLpgSQL_stmt_open *) stmt)->params);
			break;
		case PLPGSQL_STMT_FETCH:
			check_expression(((PLpgSQL_stmt_fetch *) stmt)->expr, ALWAYS);
			break;
		default:
			break;
	}
}

/* Passing stmt_end on: apart, so that the usual call sets up no PG_TRY */
static pg_noinline void
forward_stmt_end(PLpgSQL_execstate *estate, PLpgSQL_stmt *stmt)
{
	FORWARD(stmt_end, estate, stmt);
}

/*
 * After each statement: the simple expression every run of it evaluates
 * (an assignment, RETURN, IF, WHILE, EXIT WHEN, CASE), then the others.
 */
static void
lg_plpgsql_stmt_end(PLpgSQL_execstate *estate, PLpgSQL_stmt *stmt)
{
	/* the wrapped plugin passing this very call on again: done already */
	if (estate == forwarding)
		return;
	if (inner && inner->stmt_end)
		forward_stmt_end(estate, stmt);

	switch (stmt->cmd_type)
	{
		case PLPGSQL_STMT_ASSIGN:
			check_expression(((PLpgSQL_stmt_assign *) stmt)->expr, ALWAYS);
			break;
		case PLPGSQL_STMT_RETURN:
			check_expression(((PLpgSQL_stmt_return *) stmt)->expr, ALWAYS);
			break;
		case PLPGSQL_STMT_RETURN_NEXT:
			check_expression(((PLpgSQL_stmt_return_next *) stmt)->expr, ALWAYS);
			break;
		case PLPGSQL_STMT_WHILE:
			check_expression(((PLpgSQL_stmt_while *) stmt)->cond, ALWAYS);
			break;
		case PLPGSQL_STMT_EXIT:
			check_expression(((PLpgSQL_stmt_exit *) stmt)->cond, ALWAYS);
			break;
		case PLPGSQL_STMT_IF:
			check_expression(((PLpgSQL_stmt_if *) stmt)->cond, ALWAYS);
			if (((PLpgSQL_stmt_if *) stmt)->elsif_list != NIL)
				other_expressions(estate, stmt);
			break;
		case PLPGSQL_STMT_CASE:
			check_expression(((PLpgSQL_stmt_case *) stmt)->t_expr, ALWAYS);
			other_expressions(estate, stmt);
			break;
		case PLPGSQL_STMT_BLOCK:
			{
				/*
				 * Most variables have no initial value.  Those a block
				 * initialises are variables and records, which share
				 * PLpgSQL_variable's fields (other_expressions checks).
				 */
				PLpgSQL_stmt_block *block = (PLpgSQL_stmt_block *) stmt;
				int			i;

				for (i = 0; i < block->n_initvars; i++)
					if (unlikely(((PLpgSQL_variable *)
								  estate->datums[block->initvarnos[i]])->default_val))
					{
						other_expressions(estate, stmt);
						break;
					}
			}
			break;
		case PLPGSQL_STMT_FORI:
		case PLPGSQL_STMT_FOREACH_A:
		case PLPGSQL_STMT_RAISE:
		case PLPGSQL_STMT_ASSERT:
		case PLPGSQL_STMT_DYNEXECUTE:
		case PLPGSQL_STMT_DYNFORS:
		case PLPGSQL_STMT_RETURN_QUERY:
		case PLPGSQL_STMT_OPEN:
		case PLPGSQL_STMT_FETCH:
			other_expressions(estate, stmt);
			break;
		default:
			break;
	}
}

/*
 * Install the plugin in PL/pgSQL's rendezvous variable (the root calls this
 * from _PG_init), wrapping the plugin that holds it.
 */
void
lg_plpgsql_install(void **rendezvous)
{
	plugin_var = (PLpgSQL_plugin **) rendezvous;
	wrap_current();
}

/*
 * Before a function runs: if a library loaded later put its own plugin in
 * the variable, wrap that one too.
 */
void
lg_plpgsql_check_plugin(void)
{
	if (unlikely(plugin_var != NULL && *plugin_var != &lg_plugin))
		wrap_current();
}
