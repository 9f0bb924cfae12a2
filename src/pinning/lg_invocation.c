/*-------------------------------------------------------------------------
 *
 * lg_invocation.c
 *		The invocation behind this backend's statements.  Each statement the
 *		client sends may carry a sqlcommenter comment (src/common/
 *		lg_context.c reads it); its pairs and deadline are gathered for the
 *		transaction it runs in and published to the backend's shared slot
 *		(lg_shmem.c) with that transaction's start, so that a reader shows
 *		them only while the same transaction is open.  A statement without
 *		a comment costs only lg_comment_maybe(); a transaction callback,
 *		registered once a comment was seen, clears the slot at commit and
 *		marks it at a failure (pg_stat_activity shows a failed transaction
 *		without its start).
 *
 * A named prepared statement's text is the one it was prepared with, maybe
 * by an earlier invocation: its comment does not count.  Statements run
 * inside functions never get here (lg_hooks.c calls at nesting level 0).
 *
 * Deadlines: the earliest of the transaction holds until it ends; one
 * further away than LG_DEADLINE_HORIZON is ignored; one already past when
 * declared counts from the moment it was declared.  When the deadline plus
 * lambdaguard.deadline_grace falls due before the worker would wake, the
 * worker is woken (lg_slot_publish_context).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "parser/parser.h"
#include "tcop/pquery.h"
#include "utils/portal.h"
#include "utils/timestamp.h"

#include "lg_compat.h"
#include "lg_decision.h"
#include "lg_invocation.h"
#include "lg_settings.h"
#include "lg_shmem.h"

typedef struct LgInvocation
{
	TimestampTz stmt_start;		/* the statement whose comment stmt is */
	LgComment	stmt;			/* its comment */
	TimestampTz xact_start;		/* the transaction the rest is about */
	TimestampTz deadline;		/* its earliest deadline, 0 if none */
	LgContext	xact;			/* its pairs */
} LgInvocation;

static LgInvocation inv;

/* Something is in the slot; the transaction callback is registered */
static bool published = false;
static bool callback_registered = false;

/*
 * The end of a transaction, once this backend has published a context:
 * at commit the context is cleared; at a failure it stays, marked, while
 * the failed transaction is open (the worker may still have to end it).
 */
static void
xact_ended(XactEvent event, void *arg)
{
	if (!published)
		return;
	switch (event)
	{
		case XACT_EVENT_ABORT:
			if (inv.xact_start == GetCurrentTransactionStartTimestamp())
			{
				lg_slot_context_ended(true);
				break;
			}
			pg_fallthrough;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			lg_slot_context_ended(false);
			published = false;
			break;
		default:
			break;
	}
}

/*
 * The text starts or ends like a comment: read it.  The comment belongs to
 * the statement (a protocol message: its start timestamp) that runs now.
 */
void
lg_invocation_comment(const char *text, const char *stmt, const char *end)
{
	Portal		portal = ActivePortal;
	TimestampTz xact_start;
	TimestampTz due = 0;

	/* a client's statement: not a background worker's (pg_cron's jobs) */
	if (MyBackendType == B_BG_WORKER || IsParallelWorker() || !IsTransactionState())
		return;
	if (portal != NULL && portal->prepStmtName != NULL &&
		portal->prepStmtName[0] != '\0')
		return;
	inv.stmt_start = 0;
	if (!lg_comment_read(text, stmt, end, LG_STANDARD_STRINGS, &inv.stmt))
		return;
	inv.stmt_start = GetCurrentStatementStartTimestamp();
	lg_invocation_seen = true;

	xact_start = GetCurrentTransactionStartTimestamp();
	if (inv.xact_start != xact_start)
	{
		inv.xact_start = xact_start;
		inv.deadline = 0;
		inv.xact.len = 0;
		inv.xact.npairs = 0;
	}
	lg_context_merge(&inv.xact, &inv.stmt.ctx);

	if (inv.stmt.deadline != 0)
	{
		TimestampTz now = GetCurrentTimestamp();
		TimestampTz d = Max(inv.stmt.deadline, now);

		if (d - now <= LG_DEADLINE_HORIZON &&
			(inv.deadline == 0 || d < inv.deadline))
		{
			inv.deadline = d;
			due = d + LG_MS(lg_deadline_grace);
		}
	}
	if (!callback_registered)
	{
		RegisterXactCallback(xact_ended, NULL);
		callback_registered = true;
	}
	lg_slot_publish_context(inv.xact_start, inv.deadline, due, &inv.xact);
	published = true;
}

bool		lg_invocation_seen = false;

const LgContext *
lg_invocation_context_read(void)
{
	if (inv.stmt_start != 0 && inv.stmt_start == GetCurrentStatementStartTimestamp())
		return &inv.stmt.ctx;
	if (inv.xact.len > 0 && IsTransactionState() &&
		inv.xact_start == GetCurrentTransactionStartTimestamp())
		return &inv.xact;
	return NULL;
}
