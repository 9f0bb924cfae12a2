/*-------------------------------------------------------------------------
 *
 * lg_orphan.c
 *		The lifecycle of an orphan, in the order it happens:
 *
 *	1. seen:		lg_take_snapshot() copies every client backend's status
 *					out of shared memory (a fresh copy each scan, no
 *					transaction needed); the watched ones are marked (roles,
 *					application_names, client_addresses; never superusers)
 *					in a transaction, by lg_decide() for a scan.
 *	2. judged:		lg_judge() applies the verdict table.  Who blocks whom
 *					comes from one look at the lock manager per scan or view
 *					read (lg_locks.c), taken only when some backend waits on
 *					a lock.
 *	3. decided:		lg_decide() turns the sessions that are due into
 *					decisions: the names, locks held, sessions blocked and
 *					pinning reasons that their history rows will hold, and
 *					whether the caller of scan(false) may signal them.
 *	4. recorded:	lg_act_all() commits the lambdaguard.history rows of a
 *					scan's decisions together (lg_history.c) before anything
 *					is signalled; on a hot standby it fsyncs the records of
 *					its journal instead (lg_journal.c),
 *	5. re-checked:	reads the backend's live status once more: same pid,
 *					same backend start, same state since the same moment,
 *	6. signalled:	and signals it, with interrupts held from the commit to
 *					the signal; an outcome other than the row's (skipped,
 *					failed) is recorded after it.  One LOG line each.
 *
 * Only the worker acts (lg_worker.c: its own scans, the storm brake, and
 * scan(false), which it runs on the caller's behalf); the views and
 * scan(true) stop after step 3.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>
#include <netinet/in.h>

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "lg_compat.h"
#include "lg_history.h"
#include "lg_locks.h"
#include "lg_orphan.h"
#include "lg_settings.h"
#include "lg_shmem.h"
#include "lg_watch.h"


/* ----------
 * 1. Seen
 * ----------
 */


/* Superuser status of the few roles a scan meets, looked up once each */
typedef struct RoleCache
{
	int			n;
	Oid			roles[64];
	bool		super[64];
} RoleCache;

static bool
cached_superuser(RoleCache *cache, Oid userid)
{
	int			i;
	bool		result;

	for (i = 0; i < cache->n; i++)
		if (cache->roles[i] == userid)
			return cache->super[i];
	result = superuser_arg(userid);
	if (cache->n < lengthof(cache->roles))
	{
		cache->roles[cache->n] = userid;
		cache->super[cache->n] = result;
		cache->n++;
	}
	return result;
}

/*
 * The roles the last scan in a transaction found no session of could be
 * watched (superusers, roles not in lambdaguard.roles).  The worker's scan
 * reads the status slots before it starts a transaction and keeps no
 * session of these roles, so a scan of idle pools and unwatched sessions
 * starts none.  The memory only ever leaves a session out: a session it
 * keeps is judged in a transaction, with the catalogs as they are then.
 * It is forgotten when lambdaguard.roles changes, when a role changes (seen
 * by the next transaction: the worker's scan then reads the slots again),
 * before a scan(false), and after LG_UNWATCHED_MS, so that a role that
 * becomes watched while the worker starts no transaction (ALTER ROLE ...
 * NOSUPERUSER) is seen within that time (and one naptime).
 */
#define LG_UNWATCHED_MS 10000

static struct
{
	int			n;
	Oid			roles[64];
	uint32		roles_generation;	/* of lambdaguard.roles when made */
	TimestampTz since;
	uint32		forgotten;		/* counts the times it was forgotten */
	bool		callback_registered;
} unwatched;

static void
unwatched_forget(Datum arg, int cacheid, uint32 hashvalue)
{
	unwatched.n = 0;
	unwatched.forgotten++;
}

/* Forget them now (a scan(false) request: its caller's changes count) */
void
lg_unwatched_forget(void)
{
	unwatched_forget((Datum) 0, 0, 0);
}

/* How many times they were forgotten: a scan may look again if it changed */
uint32
lg_unwatched_forgotten(void)
{
	return unwatched.forgotten;
}

/* Young enough, and made for this lambdaguard.roles (a clock set back: not) */
static bool
unwatched_fresh(TimestampTz now)
{
	return unwatched.roles_generation == lg_roles_generation &&
		now >= unwatched.since && now - unwatched.since < LG_MS(LG_UNWATCHED_MS);
}

static bool
unwatched_role(Oid userid)
{
	int			i;

	for (i = 0; i < unwatched.n; i++)
		if (unwatched.roles[i] == userid)
			return true;
	return false;
}

/* In a transaction: note a role that cannot be watched */
static void
unwatched_note(Oid userid, TimestampTz now)
{
	if (!unwatched.callback_registered)
	{
		CacheRegisterSyscacheCallback(AUTHOID, unwatched_forget, (Datum) 0);
		unwatched.callback_registered = true;
	}
	if (!unwatched_fresh(now))
	{
		unwatched.n = 0;
		unwatched.roles_generation = lg_roles_generation;
		unwatched.since = now;
	}
	if (!unwatched_role(userid) && unwatched.n < lengthof(unwatched.roles))
		unwatched.roles[unwatched.n++] = userid;
}

/*
 * The backend status array itself, in shared memory.  The core keeps its
 * pointer private, so it is looked up once by its shared-memory name; it is
 * indexed like PGPROC, as lg_shmem.c's slots are.  Reading it directly (with
 * the change-counter protocol of pgstat_read_current_status) costs no
 * allocation, where the core's snapshot copies every slot's strings.
 */
static volatile PgBackendStatus *status_array = NULL;

static void
attach_status_array(void)
{
	bool		found;

	if (status_array != NULL)
		return;
	status_array = (volatile PgBackendStatus *)
		ShmemInitStruct("Backend Status Array",
						mul_size(sizeof(PgBackendStatus), LG_NUM_STATUS_SLOTS),
						&found);
	if (!found)
		elog(ERROR, "pg_lambdaguard: the backend status array is not in shared memory");
}

/* What to copy besides the fixed fields */
#define READ_APPNAME	0x01
#define READ_ADDR		0x02
#define READ_QUERY		0x04

/*
 * Copy status slot "index" into s, consistently.  Returns false when the
 * slot holds no client backend.  Strings are copied into s's own buffers
 * (appname) or palloc'd (query) only when asked for.
 */
static bool
read_status(int index, LgSession *s, int what, char *query_buf)
{
	volatile PgBackendStatus *be = &status_array[index];

	for (;;)
	{
		int			before;
		int			after;

		pgstat_begin_read_activity(be, before);
		s->pid = be->st_procpid;
		s->backend_type = be->st_backendType;
		if (s->pid > 0 && s->backend_type == B_BACKEND)
		{
			s->userid = be->st_userid;
			s->dbid = be->st_databaseid;
			s->backend_start = be->st_proc_start_timestamp;
			s->xact_start = be->st_xact_start_timestamp;
			s->query_start = be->st_activity_start_timestamp;
			s->state_change = be->st_state_start_timestamp;
			s->state = be->st_state;
			if (what & READ_ADDR)
				memcpy(&s->addr, (char *) &be->st_clientaddr, sizeof(SockAddr));
			if (what & READ_APPNAME)
				strlcpy(s->appname_buf, (char *) be->st_appname, NAMEDATALEN);
			if (what & READ_QUERY)
				strlcpy(query_buf, (char *) be->st_activity_raw,
						pgstat_track_activity_query_size);
		}
		pgstat_end_read_activity(be, after);
		if (pgstat_read_activity_complete(before, after))
			break;
		CHECK_FOR_INTERRUPTS();
	}
	return s->pid > 0 && s->backend_type == B_BACKEND;
}

/* How many status slots ahead the scan asks the memory for */
#define LG_STATUS_PREFETCH 8

/*
 * Could a verdict apply to this session, now or later in its present state,
 * were it watched?  Not to an idle one while pinned_idle_timeout is off
 * (lg_judge gives it "ok" and no next look), whatever its role.
 */
static inline bool
state_could_fall_due(const LgSession *s)
{
	return s->state != STATE_IDLE || lg_pinned_idle_timeout > 0;
}

/*
 * Whether each session is a superuser's and watched (roles,
 * application_names, client_addresses).  Needs a transaction: roles are
 * catalog rows.  With drop_unwatched, the sessions that are not watched are
 * taken out of the snapshot.
 */
static void
watch_sessions(LgSnapshot *snap, bool drop_unwatched)
{
	TimestampTz now = GetCurrentTimestamp();
	LgWatchFilter filter;
	RoleCache	roles;
	int			kept = 0;
	int			i;

	lg_watch_filter_init(&filter);
	roles.n = 0;
	for (i = 0; i < snap->nsessions; i++)
	{
		LgSession  *s = &snap->sessions[i];

		s->superuser = OidIsValid(s->userid) && cached_superuser(&roles, s->userid);
		s->watched = false;
		if (!OidIsValid(s->userid))
			;
		else if (!lg_watch_role(&filter, s->userid, s->superuser))
		{
			if (drop_unwatched)
				unwatched_note(s->userid, now);	/* a scan's */
		}
		else
			s->watched = lg_watch_match(&filter, s->userid, s->superuser,
										s->appname,
										s->addr_read ? &s->addr : NULL);
		if (drop_unwatched && !s->watched)
			continue;
		if (kept != i)
		{
			LgSession  *to = &snap->sessions[kept];

			*to = *s;
			to->appname = to->appname_read ? to->appname_buf : "";
		}
		kept++;
	}
	snap->nsessions = kept;
}

/* The session array, kept between scans so that a scan allocates nothing */
static LgSession *session_buf = NULL;

/*
 * See every client backend, as pg_stat_activity would see it now.
 * with_text copies the query text too (the views need it; the worker reads
 * it again only for the sessions it acts on).  need_pins attaches the
 * pinning state of each session.
 *
 * candidates_only keeps only the sessions whose state a verdict could apply
 * to (see state_could_fall_due), and outside a transaction, none of a role
 * known not to be watched (see unwatched); nseen counts them all.  It reads
 * shared memory only, so it works outside a transaction: the worker's scan
 * of idle pools and unwatched sessions starts none.  Whether the sessions
 * kept are watched is then left to lg_decide(); otherwise it is set here,
 * and that needs a transaction.  The result is valid until the next call.
 */
LgSnapshot *
lg_take_snapshot(bool with_text, bool need_pins, bool candidates_only)
{
	static LgSnapshot snap;
	bool		use_unwatched;
	char	   *query_buf = NULL;
	int			what = 0;
	int			i;

	attach_status_array();
	if (session_buf == NULL)
		session_buf = MemoryContextAllocZero(TopMemoryContext,
											 sizeof(LgSession) * MaxBackends);
	/*
	 * The worker's scan reads what the watch filter needs; a decision reads
	 * the rest from the live status right before its row (recheck)
	 */
	if (with_text || lg_appname_list->n > 0)
		what |= READ_APPNAME;
	if (with_text || lg_addr_list->n > 0)
		what |= READ_ADDR;
	if (with_text)
	{
		what |= READ_QUERY;
		query_buf = palloc(pgstat_track_activity_query_size);
	}

	snap.nsessions = 0;
	snap.nseen = 0;
	snap.sessions = session_buf;
	use_unwatched = candidates_only && !IsTransactionState() &&
		unwatched.n > 0 && unwatched_fresh(GetCurrentTimestamp());

	/* client backends hold the slots below MaxBackends */
	for (i = 0; i < MaxBackends; i++)
	{
		LgSession  *s = &session_buf[snap.nsessions];

		/*
		 * The lines of a slot some way ahead, while this one is read: a scan
		 * of a thousand slots waits on memory, not on instructions.
		 */
		if (i + LG_STATUS_PREFETCH < MaxBackends)
		{
			LgSession  *ahead = &session_buf[snap.nsessions + LG_STATUS_PREFETCH];

			LG_PREFETCH(&status_array[i + LG_STATUS_PREFETCH]);
			LG_PREFETCH(&status_array[i + LG_STATUS_PREFETCH].st_state);
			LG_PREFETCH_WRITE(ahead);
			LG_PREFETCH_WRITE(&ahead->next_due);
		}
		if (!read_status(i, s, what, query_buf))
			continue;
		snap.nseen++;

		/*
		 * Not kept: its record is overwritten by the next session's, so a
		 * scan of many idle sessions writes to the same few cache lines
		 */
		if (candidates_only &&
			(!state_could_fall_due(s) || !OidIsValid(s->userid) ||
			 (use_unwatched && unwatched_role(s->userid))))
			continue;
		s->addr_read = (what & READ_ADDR) != 0;
		s->appname_read = (what & READ_APPNAME) != 0;
		s->index = i;
		s->appname = s->appname_read ? s->appname_buf : "";
		s->query = with_text ? pgstat_clip_activity(query_buf) : NULL;
		s->blocking = 0;
		s->has_pins = false;
		s->superuser = false;
		s->watched = false;
		if (need_pins)
		{
			int			pid;
			TimestampTz start;

			/* the pinning slot of the same index, if it is this session's */
			if (lg_slot_read(i, &pid, &start, &s->pins, with_text) &&
				pid == s->pid && start == s->backend_start)
				s->has_pins = true;
		}
		snap.nsessions++;
	}
	if (!candidates_only)
		watch_sessions(&snap, false);
	return &snap;
}

/* ----------
 * 2. Judged
 * ----------
 */

/*
 * One line of the verdict table: if it is due, it is the verdict unless an
 * earlier line already is; if not, it may be the next moment to look.
 */
static inline void
consider(LgSession *s, LgVerdict verdict, LgAction action, TimestampTz due,
		 TimestampTz now)
{
	if (due <= now)
	{
		if (s->action == LG_ACTION_NONE)
		{
			s->verdict = verdict;
			s->action = action;
			s->action_at = due;
		}
	}
	else if (s->next_due == 0 || due < s->next_due)
		s->next_due = due;
}

/*
 * The deadline its client declared for the session's open transaction, or
 * 0: the slot's context counts only while the transaction it was declared
 * in (the same start) is open.
 */
static inline TimestampTz
declared_deadline(const LgSession *s)
{
	return lg_context_current(s) ? s->pins.deadline : 0;
}

/*
 * Apply the verdict table to one session.  s->blocking must be filled for
 * the idle-in-transaction case, s->pins for the idle case.  Sets verdict,
 * the action due now (if any) and action_at: when the guard acts, or will
 * act if nothing changes.  lambdaguard.enabled is not consulted: it
 * switches the worker, not the verdicts, and scan() works while it is off.
 */
void
lg_judge(LgSession *s, TimestampTz now)
{
	TimestampTz deadline;
	TimestampTz due = 0;
	int64		grace = LG_MS(lg_deadline_grace);

	s->verdict = LG_VERDICT_OK;
	s->action = LG_ACTION_NONE;
	s->action_at = 0;
	s->next_due = 0;

	if (!s->watched)
		return;

	/*
	 * A declared deadline comes first where it is due: it can only make a
	 * session due earlier than the timeouts below would.
	 */
	deadline = declared_deadline(s);
	if (deadline != 0)
		due = deadline + grace;

	switch (s->state)
	{
		case STATE_IDLEINTRANSACTION:
			if (due != 0)
				consider(s, LG_VERDICT_DEADLINE_PASSED, LG_ACTION_TERMINATE, due, now);
			if (lg_blocking_timeout > 0 && s->blocking > 0)
				consider(s, LG_VERDICT_ORPHAN_BLOCKING, LG_ACTION_TERMINATE,
						 s->state_change + LG_MS(lg_blocking_timeout), now);
			if (lg_idle_in_transaction_timeout > 0)
				consider(s, LG_VERDICT_ORPHAN, LG_ACTION_TERMINATE,
						 s->state_change + LG_MS(lg_idle_in_transaction_timeout), now);
			break;
		case STATE_IDLEINTRANSACTION_ABORTED:

			/*
			 * Aborted after the due moment (a statement cancelled for its
			 * deadline): terminated if still in the transaction one more
			 * grace later.
			 */
			if (due != 0)
				consider(s, LG_VERDICT_DEADLINE_PASSED, LG_ACTION_TERMINATE,
						 s->state_change >= due ? due + grace : due, now);
			if (lg_aborted_transaction_timeout > 0)
				consider(s, LG_VERDICT_ORPHAN_ABORTED, LG_ACTION_TERMINATE,
						 s->state_change + LG_MS(lg_aborted_transaction_timeout), now);
			break;
		case STATE_IDLE:
			if (lg_pinned_idle_timeout > 0 && s->has_pins &&
				LG_PINNED_IDLE_REASONS(s->pins.pin_mask, s->pins.dirty_mask) != 0)
				consider(s, LG_VERDICT_PINNED_IDLE, LG_ACTION_TERMINATE,
						 s->state_change + LG_MS(lg_pinned_idle_timeout), now);
			break;
		case STATE_RUNNING:
			if (due != 0)
			{
				/* cancel; terminate if still running one grace later */
				consider(s, LG_VERDICT_DEADLINE_PASSED, LG_ACTION_TERMINATE,
						 due + grace, now);
				consider(s, LG_VERDICT_DEADLINE_PASSED, LG_ACTION_CANCEL, due, now);
			}
			if (lg_active_timeout > 0)
			{
				/* cancel first; terminate if still running one period later */
				consider(s, LG_VERDICT_OVERDUE_QUERY, LG_ACTION_TERMINATE,
						 s->query_start + 2 * LG_MS(lg_active_timeout), now);
				consider(s, LG_VERDICT_OVERDUE_QUERY, LG_ACTION_CANCEL,
						 s->query_start + LG_MS(lg_active_timeout), now);
			}
			break;
		default:
			break;
	}
	if (s->action == LG_ACTION_NONE)
		s->action_at = s->next_due;
}

/*
 * The earliest moment after "now" at which this session may fall due,
 * counting a blocking_timeout look for any idle-in-transaction session (it
 * may start blocking others at any time), or 0.
 */
static TimestampTz
next_look(const LgSession *s, TimestampTz now)
{
	TimestampTz next = s->next_due;

	if (s->watched && s->state == STATE_IDLEINTRANSACTION &&
		lg_blocking_timeout > 0)
	{
		TimestampTz b = s->state_change + LG_MS(lg_blocking_timeout);

		if (b > now && (next == 0 || b < next))
			next = b;
	}
	return next;
}

/* ----------
 * 3. Decided
 * ----------
 */

/*
 * May "caller" signal a backend of role "target"?  The rules of
 * pg_signal_backend(), checked when deciding, so that a refusal becomes a
 * "failed" row: NULL if it may, else why not.
 */
static const char *
may_signal(Oid caller, Oid target)
{
	if (superuser_arg(target) && !superuser_arg(caller))
		return "permission denied: only superusers can signal a superuser's process";
	if (!has_privs_of_role(caller, target) &&
		!has_privs_of_role(caller, ROLE_PG_SIGNAL_BACKEND))
		return "permission denied: signalling this process needs the privileges of its role or of pg_signal_backend";
	return NULL;
}

/*
 * Judge the sessions of a candidates_only snapshot; return the ones due now
 * as decisions (a List of LgDecision *, in CurrentMemoryContext), with
 * everything their history rows hold.  "caller" is the role whose rights
 * apply (scan(false)) or InvalidOid (the worker's own scan, or a preview);
 * "exclude_pid" is never decided on (the session that called scan()).
 * *next_due gets the earliest future moment a watched session falls due (0
 * if none).  Needs a transaction: roles and names come from the catalogs.
 */
List *
lg_decide(LgSnapshot *snap, TimestampTz now, Oid caller, int exclude_pid,
		  TimestampTz *next_due)
{
	LgLockView	locks;
	List	   *decisions = NIL;
	int			i;

	memset(&locks, 0, sizeof(locks));
	*next_due = 0;
	watch_sessions(snap, true);

	/* the lock manager is asked only if some session could be blocking */
	if (lg_blocking_timeout > 0)
	{
		for (i = 0; i < snap->nsessions; i++)
		{
			LgSession  *s = &snap->sessions[i];

			if (s->watched && s->state == STATE_IDLEINTRANSACTION &&
				now >= s->state_change + LG_MS(lg_blocking_timeout))
			{
				lg_attach_blocking_with(snap, &locks);
				break;
			}
		}
	}

	for (i = 0; i < snap->nsessions; i++)
	{
		LgSession  *s = &snap->sessions[i];
		TimestampTz look;
		LgDecision *d;
		char	   *name;

		/*
		 * A watched session's slot: its reasons for pinned_idle, its
		 * deadline in a transaction.  Idle sessions need none while
		 * pinned_idle is off: the common case of many idle connections.
		 */
		if (s->watched && (s->state != STATE_IDLE || lg_pinned_idle_timeout > 0))
		{
			int			pid;
			TimestampTz start;

			s->has_pins = lg_slot_read(s->index, &pid, &start, &s->pins, false) &&
				pid == s->pid && start == s->backend_start;
		}
		lg_judge(s, now);
		look = next_look(s, now);
		if (look != 0 && (*next_due == 0 || look < *next_due))
			*next_due = look;
		if (s->action == LG_ACTION_NONE || s->pid == exclude_pid)
			continue;

		d = palloc0(sizeof(LgDecision));
		d->s = *s;
		/* what the scan did not read stays empty until the re-check */
		d->s.appname = d->s.appname_buf;
		if (!d->s.appname_read)
			d->s.appname_buf[0] = '\0';
		if (!d->s.addr_read)
			memset(&d->s.addr, 0, sizeof(d->s.addr));
		d->action = lg_dry_run ? LG_ACTION_DRY_RUN : s->action;
		name = GetUserNameFromId(s->userid, true);
		strlcpy(d->role, name ? name : "", NAMEDATALEN);
		name = get_database_name(s->dbid);
		strlcpy(d->db, name ? name : "", NAMEDATALEN);

		/* history.pin_reasons whatever the settings, and client_context */
		{
			int			pid;
			TimestampTz start;

			d->s.has_pins = lg_slot_read(s->index, &pid, &start, &d->s.pins, true) &&
				pid == s->pid && start == s->backend_start;
		}

		lg_lock_view_take(&locks);
		d->nblocked = lg_waiters_of(&locks, s->pid, &d->blocked_pids);
		d->locks_held = lg_locks_held_by(&locks, s->pid);
		if (OidIsValid(caller))
			d->denied = may_signal(caller, s->userid);
		decisions = lappend(decisions, d);
	}
	return decisions;
}

/* ----------
 * The live re-check that steps 5 and 6 below rely on
 * ----------
 */

/*
 * Read the backend's live status again.  The decision stands only if it is
 * the same session (pid, backend start) in the same state since the same
 * moment, and for a running statement, the same statement.  Fills the
 * decision's copy with the live query text and application name.
 */
static bool
recheck(LgSession *d, const char **why)
{
	LgSession	live;
	char	   *query_buf = palloc(pgstat_track_activity_query_size);

	if (!read_status(d->index, &live, READ_APPNAME | READ_ADDR | READ_QUERY, query_buf) ||
		live.pid != d->pid)
	{
		*why = "the session ended before the signal";
		return false;
	}
	if (live.backend_start != d->backend_start)
	{
		*why = "the pid now belongs to another session";
		return false;
	}
	strlcpy(d->appname_buf, live.appname_buf, NAMEDATALEN);
	d->appname = d->appname_buf;
	d->appname_read = true;
	d->addr = live.addr;
	d->addr_read = true;
	d->query = pgstat_clip_activity(query_buf);
	if (live.state != d->state || live.state_change != d->state_change)
	{
		*why = "the session changed state since the scan";
		return false;
	}
	if (d->state == STATE_RUNNING && live.query_start != d->query_start)
	{
		*why = "the session started another statement since the scan";
		return false;
	}
	return true;
}

/* ----------
 * 4-6. Recorded, re-checked, signalled
 * ----------
 */

/*
 * Signal the session if the live re-check still agrees; the caller has a
 * transaction open (pg_signal_backend reads the catalogs).  Returns the
 * outcome.
 */
static LgAction
recheck_and_signal(LgDecision *d, const char **why)
{
	Datum		ok;

	if (!recheck(&d->s, why))
		return LG_ACTION_SKIPPED;
	if (d->action == LG_ACTION_CANCEL)
		ok = DirectFunctionCall1(pg_cancel_backend, Int32GetDatum(d->s.pid));
	else
		ok = LG_TERMINATE_BACKEND(d->s.pid);
	if (!DatumGetBool(ok))
	{
		*why = "the process could not be signalled";
		return LG_ACTION_FAILED;
	}
	return d->action;
}

static inline bool
is_signal(LgAction action)
{
	return action == LG_ACTION_TERMINATE || action == LG_ACTION_CANCEL;
}

/*
 * Carry out the decisions of one scan (a List of LgDecision *): the one
 * routine through which every signal goes, for the worker's own scans and
 * for scan(false) alike.  Called by the worker outside any transaction.
 * On return each d->action says what was done.
 *
 * Each decision is re-checked first (a session that changed gets a
 * "skipped" row, a dry run a "dry_run" row, one the caller may not signal
 * a "failed" row); then every row is committed together (lg_history_
 * record_all: one WAL flush for a burst; on a standby, each journal record
 * fsynced); then each session is re-checked once more, right before its
 * signal, and signalled, with interrupts held from the commit to the last
 * signal, so that a shutdown or a recovery-conflict cancel leaves at worst
 * a record whose signal was not sent, never a signal without its record.
 * Outcomes other than the rows' are written afterwards (lg_history_
 * correct_all).  One LOG line each.
 */
void
lg_act_all(List *decisions)
{
	MemoryContext mcxt = CurrentMemoryContext;
	List	   *corrected = NIL;
	ListCell   *lc;

	if (decisions == NIL)
		return;
	foreach(lc, decisions)
	{
		LgDecision *d = (LgDecision *) lfirst(lc);
		const char *why = NULL;

		d->detail = NULL;
		if (!recheck(&d->s, &why))
		{
			d->action = LG_ACTION_SKIPPED;
			d->detail = why;
		}
		else if (d->action != LG_ACTION_DRY_RUN && d->denied != NULL)
		{
			d->action = LG_ACTION_FAILED;
			d->detail = d->denied;
		}
	}
	lg_history_record_all(decisions);

	HOLD_INTERRUPTS();
	StartTransactionCommand();
	MemoryContextSwitchTo(mcxt);
	foreach(lc, decisions)
	{
		LgDecision *d = (LgDecision *) lfirst(lc);
		const char *why = NULL;
		LgAction	outcome;

		if (!is_signal(d->action))
			continue;
		outcome = recheck_and_signal(d, &why);
		if (outcome != d->action)
		{
			d->action = outcome;
			d->detail = why;
			corrected = lappend(corrected, d);
		}
	}
	CommitTransactionCommand();
	MemoryContextSwitchTo(mcxt);
	RESUME_INTERRUPTS();

	lg_history_correct_all(corrected);
	foreach(lc, decisions)
		lg_log_decision((LgDecision *) lfirst(lc));
}

/*
 * Is the session of this status slot still there?  For the worker's memory
 * of what it already did.
 */
bool
lg_session_alive(int index, int pid, TimestampTz backend_start)
{
	LgSession	live;

	attach_status_array();
	return read_status(index, &live, 0, NULL) && live.pid == pid &&
		live.backend_start == backend_start;
}
