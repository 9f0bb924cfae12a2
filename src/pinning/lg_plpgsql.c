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
 * The root installs the plugin (lg_plpgsql_plugin) only if no other
 * library has taken the rendezvous variable: PL/pgSQL calls one plugin.
 * Without it, parameters and advisory locks changed this way are still
 * found by reading the state back at the statement's end (lg_pinstate.c,
 * through lg_readback.c); sequence state is not.
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

static void
lg_plpgsql_stmt_end(PLpgSQL_execstate *estate, PLpgSQL_stmt *stmt)
{
	PLpgSQL_expr *expr = statement_expression(stmt);
	LgPlanCalls calls;
	const char *paren;

	/* an expression that is not simple ran through the executor hooks */
	if (expr == NULL || expr->expr_simple_expr == NULL || expr->query == NULL)
		return;
	paren = strchr(expr->query, '(');
	if (paren == NULL ||
		lg_text_names_functions(expr->query, strlen(expr->query), paren) == 0)
		return;
	if (!lg_pinstate_tracking())
		return;
	lg_expr_calls((Node *) expr->expr_simple_expr, &calls);
	lg_record_calls(&calls, 0, true, expr->query, 0, 0, 0);
}

void *
lg_plpgsql_plugin(void)
{
	return &lg_plugin;
}
