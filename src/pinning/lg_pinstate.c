/*-------------------------------------------------------------------------
 *
 * lg_pinstate.c
 *		This backend's pinning state: events (sticky pin_reasons, hidden
 *		changes) and dirty_reasons, read back from PostgreSQL at the moments
 *		session state can change, and published to its shared-memory slot.
 *		The state is one struct, "me", changed only through the functions
 *		of this file.
 *
 * dirty_reasons are read (lg_readback.c, lg_objects.c):
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
#include "utils/backend_status.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "lg_compat.h"
#include "lg_invocation.h"
#include "lg_objects.h"
#include "lg_pinstate.h"
#include "lg_readback.h"
#include "lg_settings.h"
#include "lg_shmem.h"
#include "lg_watch.h"

/* At most this many ON COMMIT DROP tables of a transaction are remembered */
#define LG_MAX_ON_COMMIT_DROP 32

/* This backend's pinning state */
typedef struct LgBackendPinning
{
	/* what the slot shows */
	LgReasonMask pin_mask;		/* sticky: visible reasons */
	LgReasonMask event_mask;	/* reasons with any event, for the stats */
	LgReasonMask dirty_mask;	/* state present now */
	TimestampTz pinned_since;
	LgReasonMask published_dirty;	/* as last published */
	LgReasonMask published_pins;

	/* parameters: which of SET / set_config put them there, and their print */
	LgReasonMask param_kinds;
	uint64		guc_print;
	bool		guc_known;		/* the last read saw every set parameter */
	bool		guc_print_stale;	/* a plain SET since guc_print was taken */

	/* the statement the client sent, while it runs */
	LgReasonMask stmt_events;	/* reasons it recorded an event of */
	LgKindMask	stmt_touched;	/* kinds to read at its end */
	bool		fn_ran;			/* a C function was looked up */

	/* the transaction */
	LgKindMask	xact_touched;	/* kinds to read at its end */
	LgReasonMask xact_events;	/* reasons it recorded an event of */
	LgKindMask	pending_read;	/* kinds to read at the next statement */
	Oid			on_commit_drop[LG_MAX_ON_COMMIT_DROP];
	int			n_on_commit_drop;
	bool		xact_names;		/* cursors or channels changed in it */
	LgReasonMask temp_at_start; /* temp bits before its first change */
	LocalTransactionId xact_lock_lxid;	/* a transaction-level advisory lock
										 * function may have run in it */

	/* utility statements running now (a procedure's COMMIT runs in one) */
	int			utility_depth;

	/* set-up done once */
	bool		callbacks_registered;
	bool		release_registered;
} LgBackendPinning;

static LgBackendPinning me;

#define BIT(r)		LG_REASON_MASK(r)
#define PARAM_BITS	(BIT(SET) | BIT(SET_CONFIG))
#define TEMP_BITS	(BIT(TEMP_TABLE) | BIT(TEMP_SEQUENCE) | BIT(TEMP_VIEW))

static void callbacks_needed(void);
static void note_advisory(void);

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

/* The same, without the call when nothing changed */
static inline void
publish_changes(void)
{
	if (me.dirty_mask != me.published_dirty || me.pin_mask != me.published_pins)
		lg_publish(NULL);
}

/* Publish the slot if what others can see has changed */
void
lg_publish(const char *pinned_by)
{
	if ((me.dirty_mask == me.published_dirty && me.pin_mask == me.published_pins &&
		 pinned_by == NULL) || !lg_shmem_ready())
		return;
	lg_slot_publish(me.pin_mask, me.dirty_mask, me.pinned_since, pinned_by,
					pinned_by ? lg_invocation_context() : NULL);
	me.published_dirty = me.dirty_mask;
	me.published_pins = me.pin_mask;
}

void
lg_set_dirty(LgReasonMask bits, bool on)
{
	if (on)
		me.dirty_mask |= bits;
	else
		me.dirty_mask &= ~bits;
}

/*
 * Record one event: sticky pin unless hidden, the event, statistics.  Text
 * is clipped at a character boundary.
 */
static pg_noinline void
record_first_pin(LgReason reason, bool hidden, const char *text, int len,
				 uint64 queryid)
{
	LgReasonMask bit = LG_REASON_BIT(reason);
	bool		first = (me.event_mask & bit) == 0;
	int			n = pg_mbcliplen(text, len, LG_PINNED_BY_LEN - 1);
	char		buf[LG_PINNED_BY_LEN];

	me.pinned_since = GetCurrentTimestamp();
	memcpy(buf, text, n);
	buf[n] = '\0';
	me.pin_mask |= bit;
	me.event_mask |= bit;
	lg_publish(buf);
	lg_event_publish(reason, hidden, first, text, len, queryid,
					 lg_invocation_context());
}

void
lg_record_event(LgReason reason, bool hidden, const char *text, int location,
				int len, uint64 queryid)
{
	LgReasonMask bit = LG_REASON_BIT(reason);
	bool		first = (me.event_mask & bit) == 0;

	callbacks_needed();
	me.stmt_events |= bit;
	me.xact_events |= bit;
	if (reason == LG_REASON_SET || reason == LG_REASON_SET_CONFIG)
		me.param_kinds |= bit;
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
		/* me.pinned_since and pinned_by: the first reason that pins the proxy */
		if (unlikely((me.pin_mask & LG_PINS_RDS_PROXY_MASK) == 0 &&
					 (bit & LG_PINS_RDS_PROXY_MASK) != 0))
		{
			record_first_pin(reason, hidden, text, len, queryid);
			return;
		}
		me.pin_mask |= bit;
	}
	me.event_mask |= bit;
	publish_changes();
	lg_event_publish(reason, hidden, first, text, len, queryid,
					 lg_invocation_context());
}

/* An event for a change no hook saw, in the statement now running */
static void
record_hidden_change(LgReason reason)
{
	if ((me.stmt_events | me.xact_events) & LG_REASON_BIT(reason))
		return;
	lg_record_event(reason, true, debug_query_string, 0, 0, 0);
}

/*
 * The calls of reason functions a statement made: found in its plan (named
 * holds the reasons whose functions its text names; a call it does not name
 * came from an inlined function: hidden), or in a PL/pgSQL simple
 * expression (named 0, hidden).  Events, and the state they leave.
 */
void
lg_record_calls(const LgPlanCalls *calls, LgReasonMask named, bool hidden,
				const char *text, int location, int len, uint64 queryid)
{
	LgReasonMask reasons;

	if (!lg_plan_calls_any(calls))
		return;
	callbacks_needed();
	for (reasons = calls->reasons; reasons != 0; reasons &= reasons - 1)
	{
		int			r = pg_rightmost_one_pos32(reasons);

		lg_record_event((LgReason) r, hidden || !(named & LG_REASON_BIT(r)),
						text, location, len, queryid);
	}
	if (calls->set_config)
	{
		me.stmt_touched |= LG_KIND_GUC;
		me.guc_known = false;
	}
	if (calls->sequence)
		lg_set_dirty(BIT(SEQUENCE_FUNCTION), true);
	if (calls->xact_advisory)
		me.xact_lock_lxid = LG_MY_LXID();
	if (calls->advisory)
	{
		note_advisory();
		/* in a transaction block, counted when the statement ends too */
		if (IsTransactionBlock())
			me.stmt_touched |= LG_KIND_ADVISORY;
	}
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
		me.param_kinds = 0;
	else if (print != me.guc_print && events && (me.stmt_events & PARAM_BITS) == 0)
		record_hidden_change(LG_REASON_SET_CONFIG); /* unseen C code */
	if (dirty && (me.param_kinds & PARAM_BITS) == 0)
		me.param_kinds = BIT(SET_CONFIG);
	me.guc_print = print;
	me.guc_print_stale = false;
	me.dirty_mask = (me.dirty_mask & ~PARAM_BITS) | (dirty ? me.param_kinds : 0);
}

/* Every parameter */
static void
read_params(bool at_abort, bool events)
{
	uint64		print;
	bool		dirty = lg_guc_dirty(at_abort, &print);

	me.guc_known = true;
	apply_params(dirty, print, events);
}

/*
 * One parameter was SET or RESET: read it and those known to be set.  A
 * plain SET of an ordinary parameter leaves it set in the session, so the
 * parameters are set; the fingerprint that C code's changes are found by is
 * taken again before C code next runs (lg_note_c_function).  Notes the
 * kind for the transaction's end, as lg_note_kinds does.
 */
void
lg_read_param(const char *name, bool plain_set)
{
	uint64		print;
	bool		dirty;

	callbacks_needed();
	me.xact_touched |= LG_KIND_GUC;
	if (!me.guc_known || name == NULL)
	{
		callbacks_needed();
		me.stmt_touched |= LG_KIND_GUC;
		return;
	}
	if (plain_set && (me.param_kinds & PARAM_BITS) != 0 && lg_guc_note_set(name))
	{
		me.guc_print_stale = true;
		me.dirty_mask = (me.dirty_mask & ~PARAM_BITS) | me.param_kinds;
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
	lg_temp_relations(&t, &s, &v, me.on_commit_drop, me.n_on_commit_drop);
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

	lg_objects_prepared_counts(&a, &b);
	lg_set_dirty(BIT(PREPARED_STATEMENT), a);
	lg_set_dirty(BIT(PROTOCOL_PREPARED_STATEMENT), b);
	lg_objects_cursor_counts(&a, &b);
	lg_set_dirty(BIT(CURSOR), a);
	lg_set_dirty(BIT(CURSOR_WITH_HOLD), b);
	lg_set_dirty(BIT(LISTEN), lg_objects_listening());
}

/*
 * The statement the client sent is over (ended, or undone by an abort):
 * the one place its state is cleared.
 */
static inline void
statement_done(void)
{
	me.stmt_events = 0;
	me.stmt_touched = 0;
	me.fn_ran = false;
}

/*
 * The end of a statement the client sent: read what it touched, and
 * parameters if it ran a function that is not built in (a change found only
 * so is a hidden event of the statement).
 */
static pg_noinline void
statement_end_read(void)
{
	LgKindMask	touched = me.stmt_touched | me.pending_read;

	if (me.fn_ran)
	{
		touched |= LG_KIND_GUC;
		note_advisory();
	}
	me.xact_touched |= touched & (LG_KIND_GUC | LG_KIND_TEMP);
	if (IsTransactionState())
	{
		if (touched & LG_KIND_GUC)
			read_params(false, me.fn_ran);
		if (touched & LG_KIND_TEMP)
			read_temp();
		me.pending_read = 0;
	}
	else
	{
		/*
		 * Between transactions, or where SAVEPOINT has pushed one not
		 * started yet: read at the commit, or at the next statement
		 */
		me.pending_read |= touched & (LG_KIND_GUC | LG_KIND_TEMP);
	}
	/*
	 * Advisory locks are counted once the transaction's locks are released;
	 * in a transaction block, also at the end of the statement that took or
	 * released one, unless a transaction-level one may be among them
	 */
	if ((touched & LG_KIND_ADVISORY) && IsTransactionState() &&
		me.xact_lock_lxid != LG_MY_LXID())
		lg_set_dirty(BIT(ADVISORY_LOCK), lg_session_advisory_locks() > 0);
	if (touched & LG_KIND_PREPARED)
		lg_objects_verify_prepared();
	if (touched & (LG_KIND_PREPARED | LG_KIND_CURSOR | LG_KIND_LISTEN))
		read_names();
	statement_done();
	lg_publish(NULL);
}

/*
 * The end of a statement the client sent.  Most statements change nothing:
 * they only check that here.
 */
void
lg_statement_end(void)
{
	if (likely((me.stmt_events | me.stmt_touched | me.pending_read) == 0 &&
			   !me.fn_ran && me.dirty_mask == me.published_dirty))
		return;
	if (me.stmt_touched | me.pending_read | me.fn_ran)
		statement_end_read();
	else
	{
		statement_done();
		if (me.dirty_mask != me.published_dirty)
			lg_publish(NULL);
	}
}

/*
 * The start of a statement the client sent: its events start empty (a
 * statement whose portal was left suspended keeps what it touched for its
 * end), and what a rollback left to read is read (its changes are no
 * event).
 */
void
lg_statement_begin(void)
{
	LgKindMask	pending = me.pending_read;

	if (likely((me.stmt_events | pending) == 0))
		return;
	me.stmt_events = 0;
	if (pending == 0 || !IsTransactionState())
		return;
	me.pending_read = 0;
	if (pending & LG_KIND_GUC)
		read_params(false, false);
	if (pending & LG_KIND_TEMP)
		read_temp();
	if (pending & LG_KIND_CURSOR)
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

	if (!lg_pinstate_tracking())
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* the catalogs are still readable; ON COMMIT DROP not yet run */
			if (me.xact_touched & LG_KIND_TEMP)
			{
				read_temp();
				me.pending_read &= ~LG_KIND_TEMP;
			}
			if (me.fn_ran)
				note_advisory();
			lg_publish(NULL);
			return;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			/*
			 * A statement's end read it already, unless it is still running
			 * or could not read (pending)
			 */
			if ((me.xact_touched & LG_KIND_GUC) &&
				(me.utility_depth > 0 || me.fn_ran ||
				 ((me.stmt_touched | me.pending_read) & LG_KIND_GUC)))
			{
				read_params(false, false);
				me.pending_read &= ~LG_KIND_GUC;
			}
			commit = true;
			break;
		case XACT_EVENT_ABORT:
			if (((me.xact_touched | me.stmt_touched) & LG_KIND_GUC) || me.fn_ran)
				read_params(true, false);
			if (me.fn_ran)
				note_advisory();
			/* every catalog change of the transaction is undone */
			if (me.xact_touched & LG_KIND_TEMP)
				me.dirty_mask = (me.dirty_mask & ~TEMP_BITS) | me.temp_at_start;
			statement_done();
			commit = false;
			break;
		default:
			return;
	}
	if (me.xact_names)
	{
		lg_objects_listen_xact_end(commit);
		lg_objects_cursor_xact_end(commit);
		read_names();
		me.xact_names = false;
	}
	me.n_on_commit_drop = 0;
	me.xact_touched &= LG_KIND_ADVISORY;	/* read after the locks go */
	lg_publish(NULL);
}

static void
lg_xact_callback(XactEvent event, void *arg)
{
	LgKindMask	touched = me.xact_touched & ~LG_KIND_ADVISORY;
	bool		more = (me.stmt_touched != 0) | me.fn_ran | me.xact_names |
		(me.pending_read != 0);

	/*
	 * The usual transactions: one that changed nothing, and one whose
	 * parameters were read at the end of each statement.  A commit changes
	 * nothing more (an abort undoes them: read again below).
	 */
	if (likely(!more && me.utility_depth == 0))
	{
		if (event == XACT_EVENT_PRE_COMMIT && (touched & ~LG_KIND_GUC) == 0)
			return;
		if (event == XACT_EVENT_COMMIT && (touched & ~LG_KIND_GUC) == 0)
		{
			if (!(me.xact_touched & LG_KIND_ADVISORY))
				me.xact_events = 0;
			me.xact_touched &= LG_KIND_ADVISORY;
			return;
		}
	}

	/* the events of a transaction that ends (advisory_recount needs them) */
	if ((event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PREPARE) && !(me.xact_touched & LG_KIND_ADVISORY))
		me.xact_events = 0;

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
	if (touched == LG_KIND_GUC && !more && me.utility_depth == 0 &&
		(event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_COMMIT))
	{
		if (event == XACT_EVENT_COMMIT)
			me.xact_touched &= LG_KIND_ADVISORY;
		return;
	}
	xact_end(event);
}

static void
lg_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	if ((me.xact_touched == 0 && me.stmt_touched == 0 && !me.fn_ran && !me.xact_names) ||
		!lg_pinstate_tracking())
		return;
	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			lg_objects_listen_subxact_end(GetCurrentTransactionNestLevel(), true);
			lg_objects_cursor_subxact_end(mySubid, parentSubid, true);
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			lg_objects_listen_subxact_end(GetCurrentTransactionNestLevel(), false);
			lg_objects_cursor_subxact_end(mySubid, parentSubid, false);
			/* what it changed is undone after this callback: read it later */
			me.pending_read |= LG_KIND_CURSOR | LG_KIND_GUC |
				(me.xact_touched & LG_KIND_TEMP);
			me.guc_known = false;
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
	me.xact_touched &= ~LG_KIND_ADVISORY;
	if (lg_session_advisory_locks() > 0)
	{
		if (!(me.dirty_mask & BIT(ADVISORY_LOCK)) && isCommit)
			record_hidden_change(LG_REASON_ADVISORY_LOCK);
		me.dirty_mask |= BIT(ADVISORY_LOCK);
	}
	else
		me.dirty_mask &= ~BIT(ADVISORY_LOCK);
	me.xact_events = 0;
	lg_publish(NULL);
}

static void
lg_resource_release(ResourceReleasePhase phase, bool isCommit, bool isTopLevel,
					void *arg)
{
	if (phase != RESOURCE_RELEASE_AFTER_LOCKS || !isTopLevel ||
		!(me.xact_touched & LG_KIND_ADVISORY))
		return;
	if (lg_pinstate_tracking())
		advisory_recount(isCommit);
	else
		me.xact_events = 0;
}

/*
 * Advisory locks may have changed in this transaction: count them once its
 * locks are released.  The resource release callback that does so is
 * registered the first time (it is called several times per transaction).
 */
static void
note_advisory(void)
{
	me.xact_touched |= LG_KIND_ADVISORY;
	if (unlikely(!me.release_registered))
	{
		callbacks_needed();
		RegisterResourceReleaseCallback(lg_resource_release, NULL);
		me.release_registered = true;
	}
}

/* An ON COMMIT DROP temporary table: not state after the commit */
void
lg_note_on_commit_drop(Oid relid)
{
	if (OidIsValid(relid) && me.n_on_commit_drop < LG_MAX_ON_COMMIT_DROP)
		me.on_commit_drop[me.n_on_commit_drop++] = relid;
}

/*
 * FETCH or MOVE ran a cursor's query further: what its calls changed
 * (parameters, advisory locks the transaction may have touched already) is
 * read again at the statement's end.
 */
void
lg_note_fetch(void)
{
	me.stmt_touched |= me.xact_touched & (LG_KIND_GUC | LG_KIND_ADVISORY);
}

/* A utility statement changed these kinds of state */
void
lg_note_kinds(LgKindMask kinds)
{
	if (kinds == 0)
		return;
	callbacks_needed();
	if (kinds & (LG_KIND_CURSOR | LG_KIND_LISTEN))
		me.xact_names = true;
	if ((kinds & LG_KIND_TEMP) && !(me.xact_touched & LG_KIND_TEMP))
		me.temp_at_start = me.dirty_mask & TEMP_BITS;
	me.stmt_touched |= kinds & ~LG_KIND_GUC;
	me.xact_touched |= kinds;
}

/*
 * The transaction callbacks are registered the first time a session does
 * something they must see: a session that never changes state pays nothing
 * for them at transaction end.  Whatever touches a kind of state, notes a
 * C function or records an event calls this first.
 */
static void
callbacks_needed(void)
{
	if (likely(me.callbacks_registered))
		return;
	RegisterXactCallback(lg_xact_callback, NULL);
	RegisterSubXactCallback(lg_subxact_callback, NULL);
	me.callbacks_registered = true;
}

/* lg_pinstate_tracking (lg_pinstate.h), until shared memory is there */
bool		lg_pinstate_shmem_ready = false;

bool
lg_pinstate_tracking_slow(void)
{
	lg_pinstate_shmem_ready = lg_shmem_ready();
	return lg_pinstate_shmem_ready;
}

/*
 * A utility statement starts: returns the depth to restore when it ends
 * (lg_pinstate_utility_leave, from PG_FINALLY).  A COMMIT that happens while
 * one runs (a COMMIT statement, or one inside a procedure) may leave
 * parameters that no statement's end has read yet.
 */
int
lg_pinstate_utility_enter(void)
{
	return me.utility_depth++;
}

void
lg_pinstate_utility_leave(int saved)
{
	me.utility_depth = saved;
}

/*
 * A C function was looked up: it may change parameters or take advisory
 * locks unseen, so the statement's end reads them all.
 */
void
lg_note_c_function(void)
{
	if (me.fn_ran)
		return;
	callbacks_needed();
	if (me.guc_print_stale)
	{
		/* the parameters as they are before the C code runs */
		(void) lg_guc_known(&me.guc_print);
		me.guc_print_stale = false;
	}
	me.fn_ran = true;
	me.guc_known = false;
}
