/*-------------------------------------------------------------------------
 *
 * lg_utility.c
 *		The effect of each utility statement on session state, as a table.
 *
 * A statement is first reduced to its node tag and a variant (SET or RESET,
 * DEALLOCATE one or all, a temporary or a permanent table, ...); the row of
 * effects[] for that pair says which reason its event has, which kind of
 * state it changes and how (add or drop a named object, clear every object
 * of the kind, or change it in ways that are read back afterwards).
 * Statements without a row change nothing.
 *
 * The table decides nothing about nesting or about whether the statement
 * succeeded: lg_hooks.c applies the effect after the statement returned.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "nodes/parsenodes.h"

#include "lg_settings.h"
#include "lg_utility.h"

/* Variants of statements that share a node tag */
typedef enum LgVariant
{
	V_ANY = 0,					/* the tag alone decides */
	V_NONE,						/* this form changes nothing */
	V_SET,						/* SET, SET SESSION CHARACTERISTICS */
	V_RESET,					/* RESET x, SET x TO DEFAULT */
	V_RESET_ALL,
	V_SET_LOCAL,				/* gone at transaction end, mostly (see row) */
	V_ONE,						/* DEALLOCATE x, CLOSE x, UNLISTEN x */
	V_ALL,						/* DEALLOCATE ALL, CLOSE ALL, UNLISTEN * */
	V_TEMP,						/* creates a temporary relation */
	V_PERMANENT,				/* creates a permanent one */
	V_HOLD,						/* DECLARE ... WITH HOLD */
	V_DISCARD_ALL,
	V_DISCARD_PLANS,
	V_DISCARD_SEQUENCES,
	V_DISCARD_TEMP,
	V_COPY_QUERY,				/* COPY (query) TO */
	V_COPY_FROM					/* COPY table FROM: column defaults */
} LgVariant;

typedef struct LgEffectRow
{
	NodeTag		tag;
	LgVariant	variant;
	int			reason;			/* LgReason or -1 */
	LgKindMask	kind;			/* LG_KIND_* */
	LgEffectOp	op;
	LgKindMask	clears;		/* more LG_KIND_* cleared */
	bool		own_query;
	bool		runs_code;
} LgEffectRow;

#define R(x) LG_REASON_##x
#define NO_REASON (-1)

static const LgEffectRow effects[] = {
	/* tag, variant, reason, kind, op, clears, own_query, runs_code */
	/* first: lg_utility_effect goes straight to it for SET name = value */
	{T_VariableSetStmt, V_SET, R(SET), LG_KIND_GUC, LG_OP_READ, 0, false, false},
	{T_VariableSetStmt, V_RESET, R(SET), LG_KIND_GUC, LG_OP_READ, 0, false, false},
	{T_VariableSetStmt, V_RESET_ALL, R(SET), LG_KIND_GUC, LG_OP_READ, 0, false, false},
	/* not a reason, but after a RESET in the same transaction it leaves the
	 * reset value with source "session" (AtEOXact_GUC), as pg_settings shows */
	{T_VariableSetStmt, V_SET_LOCAL, NO_REASON, LG_KIND_GUC, LG_OP_READ, 0, false, false},
	{T_PrepareStmt, V_ANY, R(PREPARED_STATEMENT), LG_KIND_PREPARED, LG_OP_ADD, 0, false, false},
	{T_ExecuteStmt, V_ANY, R(PREPARED_STATEMENT), 0, LG_OP_NONE, 0, true, false},
	{T_DeallocateStmt, V_ONE, R(PREPARED_STATEMENT), LG_KIND_PREPARED, LG_OP_SUB, 0, false, false},
	{T_DeallocateStmt, V_ALL, R(PREPARED_STATEMENT), LG_KIND_PREPARED, LG_OP_CLEAR, 0, false, false},
	{T_DiscardStmt, V_DISCARD_ALL, R(DISCARD), LG_KIND_GUC, LG_OP_READ,
	 LG_KIND_PREPARED | LG_KIND_TEMP | LG_KIND_CURSOR | LG_KIND_LISTEN |
	 LG_KIND_ADVISORY | LG_KIND_SEQUENCE, false, false},
	{T_DiscardStmt, V_DISCARD_PLANS, R(DISCARD), 0, LG_OP_NONE, 0, false, false},
	{T_DiscardStmt, V_DISCARD_SEQUENCES, R(DISCARD), LG_KIND_SEQUENCE, LG_OP_CLEAR, 0, false, false},
	{T_DiscardStmt, V_DISCARD_TEMP, R(DISCARD), LG_KIND_TEMP, LG_OP_CLEAR, 0, false, false},
	{T_CreateStmt, V_TEMP, R(TEMP_TABLE), LG_KIND_TEMP, LG_OP_READ, 0, false, false},
	{T_CreateTableAsStmt, V_TEMP, R(TEMP_TABLE), LG_KIND_TEMP, LG_OP_READ, 0, true, false},
	{T_CreateTableAsStmt, V_PERMANENT, NO_REASON, 0, LG_OP_NONE, 0, true, false},
	{T_CreateSeqStmt, V_TEMP, R(TEMP_SEQUENCE), LG_KIND_TEMP, LG_OP_READ, 0, false, false},
	{T_ViewStmt, V_TEMP, R(TEMP_VIEW), LG_KIND_TEMP, LG_OP_READ, 0, false, false},
	{T_DropStmt, V_ANY, NO_REASON, LG_KIND_TEMP, LG_OP_READ, 0, false, false},
	{T_DropOwnedStmt, V_ANY, NO_REASON, LG_KIND_TEMP, LG_OP_READ, 0, false, false},
	{T_DeclareCursorStmt, V_ANY, R(CURSOR), LG_KIND_CURSOR, LG_OP_ADD, 0, true, false},
	{T_DeclareCursorStmt, V_HOLD, R(CURSOR_WITH_HOLD), LG_KIND_CURSOR, LG_OP_ADD, 0, true, false},
	{T_ClosePortalStmt, V_ONE, NO_REASON, LG_KIND_CURSOR, LG_OP_SUB, 0, false, false},
	{T_ClosePortalStmt, V_ALL, NO_REASON, LG_KIND_CURSOR, LG_OP_CLEAR, 0, false, false},
	{T_ListenStmt, V_ANY, R(LISTEN), LG_KIND_LISTEN, LG_OP_ADD, 0, false, false},
	{T_UnlistenStmt, V_ONE, NO_REASON, LG_KIND_LISTEN, LG_OP_SUB, 0, false, false},
	{T_UnlistenStmt, V_ALL, NO_REASON, LG_KIND_LISTEN, LG_OP_CLEAR, 0, false, false},
	{T_LoadStmt, V_ANY, R(LOAD), LG_KIND_LOAD, LG_OP_ADD, 0, false, false},
	{T_ExplainStmt, V_ANY, NO_REASON, 0, LG_OP_NONE, 0, true, false},
	{T_CopyStmt, V_COPY_QUERY, NO_REASON, 0, LG_OP_NONE, 0, true, false},
	{T_CopyStmt, V_COPY_FROM, NO_REASON, 0, LG_OP_NONE, 0, false, false},
	{T_RefreshMatViewStmt, V_ANY, NO_REASON, 0, LG_OP_NONE, 0, true, false},
	{T_DoStmt, V_ANY, NO_REASON, 0, LG_OP_NONE, 0, false, true},
	{T_CallStmt, V_ANY, NO_REASON, 0, LG_OP_NONE, 0, false, true},
};

static bool
rangevar_is_temp(RangeVar *rv)
{
	return rv != NULL &&
		(rv->relpersistence == RELPERSISTENCE_TEMP ||
		 (rv->schemaname && strcmp(rv->schemaname, "pg_temp") == 0));
}

/*
 * Reduce a statement to its variant, and take the object name, WITH HOLD
 * and ON COMMIT DROP from it.
 */
static LgVariant
statement_variant(Node *parsetree, LgUtilityEffect *e)
{
	switch (nodeTag(parsetree))
	{
		case T_VariableSetStmt:
			{
				VariableSetStmt *stmt = (VariableSetStmt *) parsetree;

				e->name = stmt->name;	/* NULL for RESET ALL */
				if (stmt->is_local)
					return stmt->kind == VAR_SET_MULTI ? V_NONE : V_SET_LOCAL;
				switch (stmt->kind)
				{
					case VAR_SET_VALUE:
						e->plain_set = true;
						return lg_parameter_ignored(stmt->name) ? V_NONE : V_SET;
					case VAR_SET_CURRENT:
						return lg_parameter_ignored(stmt->name) ? V_NONE : V_SET;
					case VAR_SET_DEFAULT:
					case VAR_RESET:
						return lg_parameter_ignored(stmt->name) ? V_NONE : V_RESET;
					case VAR_RESET_ALL:
						return V_RESET_ALL;
					case VAR_SET_MULTI:
						/* SET TRANSACTION is transaction-scoped */
						if (stmt->name &&
							strcmp(stmt->name, "SESSION CHARACTERISTICS") == 0)
							return V_SET;
						return V_NONE;
				}
				return V_NONE;
			}
		case T_PrepareStmt:
			e->name = ((PrepareStmt *) parsetree)->name;
			return V_ANY;
		case T_DeallocateStmt:
			e->name = ((DeallocateStmt *) parsetree)->name;
			return e->name ? V_ONE : V_ALL;
		case T_DiscardStmt:
			switch (((DiscardStmt *) parsetree)->target)
			{
				case DISCARD_ALL:
					return V_DISCARD_ALL;
				case DISCARD_PLANS:
					return V_DISCARD_PLANS;
				case DISCARD_SEQUENCES:
					return V_DISCARD_SEQUENCES;
				case DISCARD_TEMP:
					return V_DISCARD_TEMP;
			}
			return V_NONE;
		case T_CreateStmt:
			{
				CreateStmt *stmt = (CreateStmt *) parsetree;

				e->on_commit_drop = (stmt->oncommit == ONCOMMIT_DROP);
				e->rel = stmt->relation;
				return rangevar_is_temp(stmt->relation) ? V_TEMP : V_NONE;
			}
		case T_CreateTableAsStmt:
			{
				IntoClause *into = ((CreateTableAsStmt *) parsetree)->into;

				if (into && rangevar_is_temp(into->rel))
				{
					e->on_commit_drop = (into->onCommit == ONCOMMIT_DROP);
					e->rel = into->rel;
					return V_TEMP;
				}
				return V_PERMANENT;
			}
		case T_CreateSeqStmt:
			return rangevar_is_temp(((CreateSeqStmt *) parsetree)->sequence) ? V_TEMP : V_NONE;
		case T_ViewStmt:
			return rangevar_is_temp(((ViewStmt *) parsetree)->view) ? V_TEMP : V_NONE;
		case T_DeclareCursorStmt:
			{
				DeclareCursorStmt *stmt = (DeclareCursorStmt *) parsetree;

				e->name = stmt->portalname;
				e->hold = (stmt->options & CURSOR_OPT_HOLD) != 0;
				return e->hold ? V_HOLD : V_ANY;
			}
		case T_ClosePortalStmt:
			e->name = ((ClosePortalStmt *) parsetree)->portalname;
			return e->name ? V_ONE : V_ALL;
		case T_ListenStmt:
			e->name = ((ListenStmt *) parsetree)->conditionname;
			return V_ANY;
		case T_UnlistenStmt:
			e->name = ((UnlistenStmt *) parsetree)->conditionname;
			return e->name ? V_ONE : V_ALL;
		case T_CopyStmt:
			{
				CopyStmt   *stmt = (CopyStmt *) parsetree;

				if (stmt->query)
					return V_COPY_QUERY;
				e->copy_from = stmt->is_from && stmt->relation != NULL;
				return e->copy_from ? V_COPY_FROM : V_NONE;
			}
		case T_ExecuteStmt:
		case T_DropStmt:
		case T_DropOwnedStmt:
		case T_LoadStmt:
		case T_ExplainStmt:
		case T_RefreshMatViewStmt:
		case T_DoStmt:
		case T_CallStmt:
			return V_ANY;
		default:
			return V_NONE;		/* no row: changes no session state */
	}
}

/* What a row of the table says the statement does */
static inline void
effect_of_row(const LgEffectRow *row, LgUtilityEffect *e)
{
	e->reason = row->reason;
	e->kind = row->kind;
	e->op = row->op;
	e->clears = row->clears;
	e->own_query = row->own_query;
	e->runs_code = row->runs_code;
}

/*
 * Look up the effect of a utility statement.  No catalog access, no
 * allocation: a statement that changes no state costs one switch and a
 * short search of the table.
 */
void
lg_utility_effect(Node *parsetree, LgUtilityEffect *e)
{
	NodeTag		tag = nodeTag(parsetree);
	LgVariant	variant;
	int			i;

	/*
	 * The commonest pinning statement, SET name = value, straight to its row
	 * (the table's first: statement_variant would find it so)
	 */
	if (tag == T_VariableSetStmt &&
		((VariableSetStmt *) parsetree)->kind == VAR_SET_VALUE &&
		!((VariableSetStmt *) parsetree)->is_local)
	{
		const LgEffectRow *row = &effects[0];
		const char *name = ((VariableSetStmt *) parsetree)->name;

		StaticAssertStmt(LG_REASON_SET >= 0, "SET has a reason");
		Assert(row->tag == T_VariableSetStmt && row->variant == V_SET);
		memset(e, 0, sizeof(*e));
		e->name = name;
		e->reason = NO_REASON;
		if (lg_parameter_ignored(name))
			return;
		e->plain_set = true;
		effect_of_row(row, e);
		return;
	}

	memset(e, 0, sizeof(*e));
	e->reason = NO_REASON;
	variant = statement_variant(parsetree, e);
	if (variant == V_NONE)
		return;
	for (i = 0; i < (int) lengthof(effects); i++)
	{
		const LgEffectRow *row = &effects[i];

		if (row->tag != tag || row->variant != variant)
			continue;
		effect_of_row(row, e);
		return;
	}
}
