/*-------------------------------------------------------------------------
 *
 * lg_plpgsql.c
 *		See the calls in PL/pgSQL simple expressions.
 *
 * PL/pgSQL evaluates a "simple" expression (an assignment, a RETURN, an IF
 * or WHILE condition that is a plain expression) without the executor: no
 * executor hook sees x := set_config(...), IF pg_try_advisory_lock(n) or
 * RETURN nextval('s').  PL/pgSQL's instrumentation plugin (the
 * "PLpgSQL_plugin" rendezvous variable, as pldebugger uses it) is called
 * after each statement: for those statements whose expression names a
 * reason function (the identifier before each '(' of its text), the planned
 * expression is walked, and each call found is a hidden event of that
 * statement.
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

/* The simple expression a statement evaluated, if any */
static PLpgSQL_expr *
statement_expression(PLpgSQL_stmt *stmt)
{
	switch (stmt->cmd_type)
	{
		case PLPGSQL_STMT_ASSIGN:
			return ((PLpgSQL_stmt_assign *) stmt)->expr;
		case PLPGSQL_STMT_RETURN:
			return ((PLpgSQL_stmt_return *) stmt)->expr;
		case PLPGSQL_STMT_RETURN_NEXT:
			return ((PLpgSQL_stmt_return_next *) stmt)->expr;
		case PLPGSQL_STMT_IF:
			return ((PLpgSQL_stmt_if *) stmt)->cond;
		case PLPGSQL_STMT_WHILE:
			return ((PLpgSQL_stmt_while *) stmt)->cond;
		case PLPGSQL_STMT_EXIT:
			return ((PLpgSQL_stmt_exit *) stmt)->cond;
		case PLPGSQL_STMT_CASE:
			return ((PLpgSQL_stmt_case *) stmt)->t_expr;
		default:
			return NULL;
	}
}

/* A simple expression that names a reason function: its calls, hidden */
static pg_noinline void
expression_events(PLpgSQL_expr *expr, const char *paren)
{
	LgPlanCalls calls;

	if (lg_text_names_functions(expr->query, strlen(expr->query), paren) == 0 ||
		!lg_pinstate_tracking())
		return;
	lg_expr_calls((Node *) expr->expr_simple_expr, &calls);
	lg_record_calls(&calls, 0, true, expr->query, 0, 0, 0);
}

/* Passing stmt_end on: apart, so that the usual call sets up no PG_TRY */
static pg_noinline void
forward_stmt_end(PLpgSQL_execstate *estate, PLpgSQL_stmt *stmt)
{
	FORWARD(stmt_end, estate, stmt);
}

static void
lg_plpgsql_stmt_end(PLpgSQL_execstate *estate, PLpgSQL_stmt *stmt)
{
	PLpgSQL_expr *expr;
	const char *paren;

	/* the wrapped plugin passing this very call on again: done already */
	if (estate == forwarding)
		return;
	if (inner && inner->stmt_end)
		forward_stmt_end(estate, stmt);

	expr = statement_expression(stmt);

	/* an expression that is not simple ran through the executor hooks */
	if (expr == NULL || expr->expr_simple_expr == NULL || expr->query == NULL)
		return;
	paren = strchr(expr->query, '(');
	if (paren != NULL)
		expression_events(expr, paren);
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
