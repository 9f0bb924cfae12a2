/*-------------------------------------------------------------------------
 *
 * lg_session.c
 *		This session's pinning state: events (sticky pin_reasons, hidden
 *		changes) and dirty_reasons, read back from PostgreSQL at the moments
 *		session state can change.
 *
 * dirty_reasons are read (lg_session_state.c, lg_names.c):
 *	- at the end of each statement the client sent, for the kinds of state
 *	  it touched, and every parameter when it ran a C function (PL/pgSQL and
 *	  SQL functions run their statements through the hooks and the PL/pgSQL
 *	  plugin; only C code can change a parameter unseen);
 *	- at transaction end, for what the transaction touched: temporary
 *	  relations before the commit drops ON COMMIT DROP tables, parameters as
 *	  they will be once the transaction ends (when a statement's end could
 *	  not tell: a COMMIT inside a procedure), advisory locks once the
 *	  transaction's locks are released; what a rolled-back subtransaction
 *	  undid is read when the next statement starts.
 * A statement that changes nothing and runs no C function reads nothing,
 * and the transaction callbacks return at once after it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "tcop/tcopprot.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "lg_pinning.h"
#include "lg_compat.h"

/* This session's pinning state */
static uint32 pin_mask = 0;		/* sticky: visible reasons */
static uint32 event_mask = 0;	/* reasons with any event, for the stats */
uint32		lg_dirty_mask = 0;	/* state present now */
static TimestampTz pinned_since = 0;
uint32		lg_published_dirty = 0;
static uint32 published_pins = 0;

/* Parameters: which of set / set_config put them there, and their print */
static uint32 param_kinds = 0;
static uint64 guc_print = 0;
bool		lg_guc_known = false;	/* the last read saw every set parameter */

/* The statement the client sent, while it runs */
uint32		lg_stmt_events = 0;	/* reasons it recorded an event of */
uint32		lg_stmt_touched = 0;	/* LG_STATE_* to read at its end */
bool		lg_fn_ran = false;	/* a C function was looked up */

/* The transaction */
uint32		lg_xact_touched = 0;	/* LG_STATE_* to read at its end */
static uint32 xact_events = 0;	/* reasons it recorded an event of */
uint32		lg_pending_read = 0;	/* LG_STATE_* to read at the next statement */
#define LG_MAX_ON_COMMIT_DROP 32
static Oid	on_commit_drop[LG_MAX_ON_COMMIT_DROP];
static int	n_on_commit_drop = 0;

bool		lg_xact_names = false;	/* cursors or channels changed in it */
static uint32 temp_at_start = 0;	/* temp bits before its first change */

bool		lg_callbacks_registered = false;

#define BIT(r)	LG_REASON_BIT(LG_REASON_##r)
#define PARAM_BITS	(BIT(SET) | BIT(SET_CONFIG))
#define TEMP_BITS	(BIT(TEMP_TABLE) | BIT(TEMP_SEQUENCE) | BIT(TEMP_VIEW))

bool		lg_pin_shmem_ready = false;

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
void
lg_publish(const char *pinned_by)
{
	if ((lg_dirty_mask == lg_published_dirty && pin_mask == published_pins &&
		 pinned_by == NULL) || !lg_shmem_ready())
		return;
	lg_slot_publish(pin_mask, lg_dirty_mask, pinned_since, pinned_by);
	lg_published_dirty = lg_dirty_mask;
	published_pins = pin_mask;
}

void
lg_set_dirty(uint32 bits, bool on)
{
	if (on)
		lg_dirty_mask |= bits;
	else
		lg_dirty_mask &= ~bits;
}

/*
 * Record one event: sticky pin unless hidden, the event, statistics.  Text
 * is clipped at a character boundary.
 */
void
lg_record_event(LgReason reason, bool hidden, const char *text, int location,
				int len, uint64 queryid)
{
	uint32		bit = LG_REASON_BIT(reason);
	bool		first = (event_mask & bit) == 0;
	const char *pinned_by = NULL;
	char		buf[LG_PINNED_BY_LEN];

	lg_callbacks_needed();
	lg_stmt_events |= bit;
	xact_events |= bit;
	if (reason == LG_REASON_SET || reason == LG_REASON_SET_CONFIG)
		param_kinds |= bit;
	if (!session_recorded())
		return;

	if (text == NULL)
		text = "";
	if (location > 0)
		text += location;
	if (len <= 0)
		len = strlen(text);

	if (!hidden)
	{
		/* pinned_since and pinned_by: the first reason that pins the proxy */
		if ((pin_mask & LG_PINS_RDS_PROXY_MASK) == 0 &&
			(bit & LG_PINS_RDS_PROXY_MASK) != 0)
		{
			int			n = pg_mbcliplen(text, len, LG_PINNED_BY_LEN - 1);

			pinned_since = GetCurrentTimestamp();
			memcpy(buf, text, n);
			buf[n] = '\0';
			pinned_by = buf;
		}
		pin_mask |= bit;
	}
	event_mask |= bit;
	lg_publish(pinned_by);
	lg_event_publish(reason, hidden, first, text, len, queryid);
}

/* An event for a change no hook saw, in the statement now running */
static void
record_hidden_change(LgReason reason)
{
	if ((lg_stmt_events | xact_events) & LG_REASON_BIT(reason))
		return;
	lg_record_event(reason, true, debug_query_string, 0, 0, 0);
}

/*
 * Calls of reason functions in code no executor hook sees (a PL/pgSQL
 * simple expression): hidden events, and the state they leave.
 */
void
lg_hidden_calls(const LgPlanCalls *calls, const char *text)
{
	uint32		reasons;

	if (!lg_tracking())
		return;
	lg_callbacks_needed();
	for (reasons = calls->reasons; reasons != 0; reasons &= reasons - 1)
		lg_record_event((LgReason) pg_rightmost_one_pos32(reasons), true, text,
						0, 0, 0);
	if (calls->set_config)
	{
		lg_stmt_touched |= LG_STATE_GUC;
		lg_guc_known = false;
	}
	if (calls->sequence)
		lg_set_dirty(BIT(SEQUENCE_FUNCTION), true);
	if (calls->advisory)
		lg_note_advisory();
	lg_publish(NULL);
}

/* ----------
 * Reading the state back
 * ----------
 */
typedef enum LgReadMoment
{
	LG_READ_STATEMENT,			/* end of a statement, or start after abort */
	LG_READ_PRE_COMMIT,
	LG_READ_COMMIT,
	LG_READ_ABORT
} LgReadMoment;

static void
apply_params(bool dirty, uint64 print, bool events)
{
	if (!dirty)
		param_kinds = 0;
	else if (print != guc_print && events && (lg_stmt_events & PARAM_BITS) == 0)
		record_hidden_change(LG_REASON_SET_CONFIG); /* unseen C code */
	if (dirty && (param_kinds & PARAM_BITS) == 0)
		param_kinds = BIT(SET_CONFIG);
	guc_print = print;
	lg_dirty_mask = (lg_dirty_mask & ~PARAM_BITS) | (dirty ? param_kinds : 0);
}

/* Every parameter */
static void
read_params(bool at_abort, bool events)
{
	uint64		print;
	bool		dirty = lg_guc_dirty(at_abort, &print);

	lg_guc_known = true;
	apply_params(dirty, print, events);
}

/* One parameter was SET or RESET: read it and those known to be set */
void
lg_read_param(const char *name)
{
	uint64		print;
	bool		dirty;

	if (!lg_guc_known || name == NULL)
	{
		lg_callbacks_needed();
		lg_stmt_touched |= LG_STATE_GUC;
		return;
	}
	dirty = lg_guc_dirty_one(name, &print);
	apply_params(dirty, print, false);
}

static void
read_temp(void)
{
	int			t,
				s,
				v;

	if (!lg_temp_namespace_used())
	{
		lg_set_dirty(TEMP_BITS, false);
		return;
	}
	lg_temp_relations(&t, &s, &v, on_commit_drop, n_on_commit_drop);
	lg_set_dirty(BIT(TEMP_TABLE), t > 0);
	lg_set_dirty(BIT(TEMP_SEQUENCE), s > 0);
	lg_set_dirty(BIT(TEMP_VIEW), v > 0);
}

/* The kinds whose state is kept as names here: cheap to recompute */
static void
read_names(void)
{
	bool		a,
				b;

	lg_names_prepared_counts(&a, &b);
	lg_set_dirty(BIT(PREPARED_STATEMENT), a);
	lg_set_dirty(BIT(PROTOCOL_PREPARED_STATEMENT), b);
	lg_names_cursor_counts(&a, &b);
	lg_set_dirty(BIT(CURSOR), a);
	lg_set_dirty(BIT(CURSOR_WITH_HOLD), b);
	lg_set_dirty(BIT(LISTEN), lg_names_listening());
}

/*
 * The end of a statement the client sent: read what it touched, and
 * parameters if it ran a function that is not built in (a change found only
 * so is a hidden event of the statement).
 */
static pg_noinline void
statement_end_read(void)
{
	uint32		touched = lg_stmt_touched | lg_pending_read;

	if (lg_fn_ran)
	{
		touched |= LG_STATE_GUC;
		lg_note_advisory();
	}
	lg_xact_touched |= touched & (LG_STATE_GUC | LG_STATE_TEMP);
	if (IsTransactionState())
	{
		if (touched & LG_STATE_GUC)
			read_params(false, lg_fn_ran);
		if (touched & LG_STATE_TEMP)
			read_temp();
		lg_pending_read = 0;
	}
	if (touched & LG_STATE_PREPARED)
		lg_names_verify_prepared();
	if (touched & (LG_STATE_PREPARED | LG_STATE_CURSOR | LG_STATE_LISTEN))
		read_names();
	lg_stmt_touched = 0;
	lg_stmt_events = 0;
	lg_fn_ran = false;
	lg_publish(NULL);
}

void
lg_statement_end_slow(void)
{
	if (lg_stmt_touched | lg_pending_read | lg_fn_ran)
		statement_end_read();
	else
	{
		lg_stmt_events = 0;
		if (lg_dirty_mask != lg_published_dirty)
			lg_publish(NULL);
	}
}

/*
 * The start of a statement the client sent: read what a rollback left to
 * read (its changes are no event).
 */
void
lg_statement_begin_slow(void)
{
	uint32		pending = lg_pending_read;

	lg_stmt_events = 0;
	if (pending == 0 || !IsTransactionState())
		return;
	lg_pending_read = 0;
	if (pending & LG_STATE_GUC)
		read_params(false, false);
	if (pending & LG_STATE_TEMP)
		read_temp();
	if (pending & LG_STATE_CURSOR)
		read_names();
	lg_publish(NULL);
}

/* ----------
 * Transaction end
 * ----------
 */
static pg_noinline void
xact_end(XactEvent event)
{
	bool		commit;

	if (!lg_tracking())
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* the catalogs are still readable; ON COMMIT DROP not yet run */
			if (lg_xact_touched & LG_STATE_TEMP)
				read_temp();
			if (lg_fn_ran)
				lg_note_advisory();
			lg_publish(NULL);
			return;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			/* a statement's end read it already, unless it is still running */
			if ((lg_xact_touched & LG_STATE_GUC) &&
				(lg_nesting_level > 0 || lg_fn_ran || (lg_stmt_touched & LG_STATE_GUC)))
				read_params(false, false);
			commit = true;
			break;
		case XACT_EVENT_ABORT:
			if (((lg_xact_touched | lg_stmt_touched) & LG_STATE_GUC) || lg_fn_ran)
				read_params(true, false);
			if (lg_fn_ran)
				lg_note_advisory();
			/* every catalog change of the transaction is undone */
			if (lg_xact_touched & LG_STATE_TEMP)
				lg_dirty_mask = (lg_dirty_mask & ~TEMP_BITS) | temp_at_start;
			lg_stmt_events = 0;
			lg_stmt_touched = 0;
			lg_fn_ran = false;
			commit = false;
			break;
		default:
			return;
	}
	if (lg_xact_names)
	{
		lg_names_listen_xact_end(commit);
		lg_names_cursor_xact_end(commit);
		read_names();
		lg_xact_names = false;
	}
	n_on_commit_drop = 0;
	lg_xact_touched &= LG_STATE_ADVISORY;	/* read after the locks go */
	lg_publish(NULL);
}

static void
lg_xact_callback(XactEvent event, void *arg)
{
	uint32		touched = lg_xact_touched & ~LG_STATE_ADVISORY;
	bool		more = lg_stmt_touched != 0 || lg_fn_ran || lg_xact_names;

	/* the events of a transaction that ends (advisory_recount needs them) */
	if ((event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PREPARE) && !(lg_xact_touched & LG_STATE_ADVISORY))
		xact_events = 0;

	/*
	 * Nothing this transaction did can have changed session state, or only
	 * advisory locks, which lg_resource_release counts once they are
	 * released.
	 */
	if (touched == 0 && !more)
		return;

	/*
	 * Parameters set by statements that have ended were read at their end:
	 * a commit changes nothing more (an abort undoes them: read again).
	 */
	if (touched == LG_STATE_GUC && !more && lg_nesting_level == 0 &&
		(event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_COMMIT))
	{
		if (event == XACT_EVENT_COMMIT)
			lg_xact_touched &= LG_STATE_ADVISORY;
		return;
	}
	xact_end(event);
}

static void
lg_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	if ((lg_xact_touched == 0 && lg_stmt_touched == 0 && !lg_fn_ran && !lg_xact_names) ||
		!lg_tracking())
		return;
	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			lg_names_listen_subxact_end(GetCurrentTransactionNestLevel(), true);
			lg_names_cursor_subxact_end(mySubid, parentSubid, true);
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			lg_names_listen_subxact_end(GetCurrentTransactionNestLevel(), false);
			lg_names_cursor_subxact_end(mySubid, parentSubid, false);
			/* what it changed is undone after this callback: read it later */
			lg_pending_read |= LG_STATE_CURSOR | LG_STATE_GUC |
				(lg_xact_touched & LG_STATE_TEMP);
			lg_guc_known = false;
			break;
		default:
			break;
	}
}

/*
 * Once a top-level transaction's locks are released, the advisory locks
 * left are the session's own: count them, if advisory functions (or code
 * that could call them) ran.
 */
static pg_noinline void
advisory_recount(bool isCommit)
{
	lg_xact_touched &= ~LG_STATE_ADVISORY;
	if (lg_session_advisory_locks() > 0)
	{
		if (!(lg_dirty_mask & BIT(ADVISORY_LOCK)) && isCommit)
			record_hidden_change(LG_REASON_ADVISORY_LOCK);
		lg_dirty_mask |= BIT(ADVISORY_LOCK);
	}
	else
		lg_dirty_mask &= ~BIT(ADVISORY_LOCK);
	xact_events = 0;
	lg_publish(NULL);
}

static void
lg_resource_release(ResourceReleasePhase phase, bool isCommit, bool isTopLevel,
					void *arg)
{
	if (phase != RESOURCE_RELEASE_AFTER_LOCKS || !isTopLevel ||
		!(lg_xact_touched & LG_STATE_ADVISORY))
		return;
	if (lg_tracking())
		advisory_recount(isCommit);
	else
		xact_events = 0;
}

/*
 * Advisory locks may have changed in this transaction: count them once its
 * locks are released.  The resource release callback that does so is
 * registered the first time (it is called several times per transaction).
 */
void
lg_note_advisory(void)
{
	static bool registered = false;

	lg_xact_touched |= LG_STATE_ADVISORY;
	if (unlikely(!registered))
	{
		lg_callbacks_needed();
		RegisterResourceReleaseCallback(lg_resource_release, NULL);
		registered = true;
	}
}

/* An ON COMMIT DROP temporary table: not state after the commit */
void
lg_note_on_commit_drop(Oid relid)
{
	if (OidIsValid(relid) && n_on_commit_drop < LG_MAX_ON_COMMIT_DROP)
		on_commit_drop[n_on_commit_drop++] = relid;
}

/* A utility statement changed these kinds of state */
void
lg_note_kinds(uint32 kinds)
{
	if (kinds == 0)
		return;
	lg_callbacks_needed();
	if (kinds & (LG_STATE_CURSOR | LG_STATE_LISTEN))
		lg_xact_names = true;
	if ((kinds & LG_STATE_TEMP) && !(lg_xact_touched & LG_STATE_TEMP))
		temp_at_start = lg_dirty_mask & TEMP_BITS;
	lg_stmt_touched |= kinds & ~LG_STATE_GUC;
	lg_xact_touched |= kinds;
}

void
lg_session_register(void)
{
	if (lg_callbacks_registered)
		return;
	RegisterXactCallback(lg_xact_callback, NULL);
	RegisterSubXactCallback(lg_subxact_callback, NULL);
	lg_callbacks_registered = true;
}
