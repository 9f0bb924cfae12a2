/*-------------------------------------------------------------------------
 *
 * lg_orphan.c
 *		The lifecycle of an orphan, in the order it happens:
 *
 *	1. seen:		lg_take_snapshot() copies every client backend's status
 *					out of shared memory (a fresh copy each scan) and marks
 *					the watched ones (roles, application_names,
 *					client_addresses; never superusers).
 *	2. judged:		lg_judge() applies the verdict table; lg_find_blockers()
 *					asks the lock manager who waits on whom, only when some
 *					watched session has been idle in transaction for
 *					blocking_timeout already.
 *	3. re-checked:	recheck() reads the backend's live status again right
 *					before the signal: same pid, same backend start, same
 *					state since the same moment, or the decision is
 *					"skipped".
 *	4. recorded:	its lambdaguard.history row is written before the
 *					signal (lg_history_insert), so that no signal goes
 *					unrecorded: an error writing it comes first.
 *	5. signalled:	after one more re-check, signal_session() with
 *					pg_terminate_backend's rules, at most max_terminations
 *					signals a scan, none in dry run; a signal that fails
 *					corrects its row; one LOG line per decision.
 *
 * lg_scan() runs 1-5 for the worker and for lambdaguard.scan(); the worker
 * also uses the earliest future due time it returns to sleep until then.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>
#include <netinet/in.h>

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "common/ip.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "pg_lambdaguard.h"
#include "lg_compat.h"

const char *const lg_verdict_names[LG_NUM_VERDICTS] = {
	"ok", "orphan", "orphan_aborted", "orphan_blocking", "pinned_idle",
	"overdue_query"
};

const char *const lg_action_names[LG_NUM_ACTIONS] = {
	"none", "terminate", "cancel", "dry_run", "skipped", "failed"
};

const char *const lg_reason_names[LG_NUM_REASONS] = {
	"set", "set_config", "prepared_statement", "protocol_prepared_statement",
	"discard", "temp_table", "temp_sequence", "temp_view", "cursor",
	"cursor_with_hold", "listen", "load", "sequence_function",
	"advisory_lock", "statement_too_large"
};

#define MS(x)	((int64) (x) * 1000)	/* milliseconds to TimestampTz units */

/* ----------
 * 1. Seen
 * ----------
 */

void
lg_watch_filter_init(LgWatchFilter *filter)
{
	const LgNameList *roles = lg_roles_list;
	int			i;

	filter->star = roles->star;
	filter->nroles = 0;
	filter->roles = roles->n > 0 ? palloc(sizeof(Oid) * roles->n) : NULL;
	for (i = 0; i < roles->n; i++)
	{
		Oid			roleid;

		if (strcmp(roles->items[i], "*") == 0)
			continue;
		/* a role that does not exist yet is not an error */
		roleid = get_role_oid(roles->items[i], true);
		if (OidIsValid(roleid))
			filter->roles[filter->nroles++] = roleid;
	}
}

bool
lg_watch_match(const LgWatchFilter *filter, Oid userid, bool superuser,
			   const char *appname, const SockAddr *addr)
{
	if (superuser)
		return false;

	if (!filter->star)
	{
		int			i;
		bool		found = false;

		for (i = 0; i < filter->nroles && !found; i++)
			found = filter->roles[i] == userid;
		if (!found)
			return false;
	}

	if (lg_appname_list->n > 0 &&
		!lg_names_like_any(lg_appname_list, appname ? appname : ""))
		return false;

	if (lg_addr_list->n > 0)
	{
		const struct sockaddr *sa = addr ? (const struct sockaddr *) &addr->addr : NULL;

		if (sa == NULL)
			return false;
		switch (sa->sa_family)
		{
			case AF_UNIX:
				return lg_cidrs_match(lg_addr_list, AF_UNIX, NULL);
			case AF_INET:
				return lg_cidrs_match(lg_addr_list, AF_INET,
									  (const unsigned char *) &((const struct sockaddr_in *) sa)->sin_addr);
			case AF_INET6:
				return lg_cidrs_match(lg_addr_list, AF_INET6,
									  (const unsigned char *) &((const struct sockaddr_in6 *) sa)->sin6_addr);
			default:
				return false;
		}
	}
	return true;
}

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
 * The backend status array itself, in shared memory.  The core keeps its
 * pointer private, so it is looked up once by its shared-memory name; it is
 * indexed like PGPROC, as lg_state.c's slots are.  Reading it directly (with
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

/* The session array, kept between scans so that a scan allocates nothing */
static LgSession *session_buf = NULL;

/*
 * See every client backend, as pg_stat_activity would see it now.
 * with_text copies the query text too (the views need it; the worker reads
 * it again only for the sessions it acts on).  need_pins attaches the
 * pinning state of each session.  The result is valid until the next call.
 */
LgSnapshot *
lg_take_snapshot(bool with_text, bool need_pins)
{
	static LgSnapshot snap;
	LgWatchFilter filter;
	RoleCache	roles;
	char	   *query_buf = NULL;
	int			what = READ_APPNAME;
	int			i;

	attach_status_array();
	if (session_buf == NULL)
		session_buf = MemoryContextAllocZero(TopMemoryContext,
											 sizeof(LgSession) * MaxBackends);
	if (with_text || lg_addr_list->n > 0)
		what |= READ_ADDR;
	if (with_text)
	{
		what |= READ_QUERY;
		query_buf = palloc(pgstat_track_activity_query_size);
	}

	lg_watch_filter_init(&filter);
	roles.n = 0;
	snap.nsessions = 0;
	snap.sessions = session_buf;

	/* client backends hold the slots below MaxBackends */
	for (i = 0; i < MaxBackends; i++)
	{
		LgSession  *s = &session_buf[snap.nsessions];

		if (!read_status(i, s, what, query_buf))
			continue;
		if (!(what & READ_ADDR))
			memset(&s->addr, 0, sizeof(s->addr));
		s->index = i;
		s->appname = s->appname_buf;
		s->query = with_text ? pgstat_clip_activity(query_buf) : NULL;
		s->blocking = 0;
		s->has_pins = false;
		s->superuser = OidIsValid(s->userid) && cached_superuser(&roles, s->userid);
		s->watched = OidIsValid(s->userid) &&
			lg_watch_match(&filter, s->userid, s->superuser, s->appname,
						   (what & READ_ADDR) ? &s->addr : NULL);
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
	return &snap;
}

/* ----------
 * 2. Judged
 * ----------
 */

/* Pairs (blocker pid, waiter pid) found in the lock manager */
typedef struct LgBlocks
{
	int			n;
	int		   *blocker;
	int		   *waiter;
} LgBlocks;

/*
 * Who blocks whom, for every backend waiting on a heavyweight lock now.
 * The same rules as pg_blocking_pids(), but called once per waiter, not
 * once per session: waiters are found by reading each PGPROC's wait event
 * without a lock, as pg_stat_activity does.
 */
static LgBlocks *
lg_find_blockers(void)
{
	LgBlocks   *blocks = palloc0(sizeof(LgBlocks));
	int			cap = 16;
	uint32		i;

	blocks->blocker = palloc(sizeof(int) * cap);
	blocks->waiter = palloc(sizeof(int) * cap);

	for (i = 0; i < ProcGlobal->allProcCount; i++)
	{
		PGPROC	   *proc = &ProcGlobal->allProcs[i];
		int			pid = proc->pid;
		uint32		wait = *((volatile uint32 *) &proc->wait_event_info);
		BlockedProcsData *data;
		int			b;

		if (pid == 0 || (wait & 0xFF000000) != PG_WAIT_LOCK)
			continue;

		data = GetBlockerStatusData(pid);
		for (b = 0; b < data->nprocs; b++)
		{
			BlockedProcData *bproc = &data->procs[b];
			LockInstanceData *instances = &data->locks[bproc->first_lock];
			int		   *preceding = &data->waiter_pids[bproc->first_waiter];
			LockInstanceData *blocked = NULL;
			LockMethod	method;
			int			conflicts;
			int			j;

			for (j = 0; j < bproc->num_locks; j++)
				if (instances[j].pid == bproc->pid)
					blocked = &instances[j];
			if (blocked == NULL)
				continue;
			method = GetLockTagsMethodTable(&blocked->locktag);
			conflicts = method->conflictTab[blocked->waitLockMode];

			for (j = 0; j < bproc->num_locks; j++)
			{
				LockInstanceData *inst = &instances[j];
				bool		blocks_it = false;

				if (inst == blocked || inst->leaderPid == blocked->leaderPid)
					continue;
				if (conflicts & inst->holdMask)
					blocks_it = true;
				else if (inst->waitLockMode != NoLock &&
						 (conflicts & LOCKBIT_ON(inst->waitLockMode)))
				{
					int			k;

					for (k = 0; k < bproc->num_waiters; k++)
						if (preceding[k] == inst->pid)
							blocks_it = true;
				}
				if (!blocks_it)
					continue;
				if (blocks->n == cap)
				{
					cap *= 2;
					blocks->blocker = repalloc(blocks->blocker, sizeof(int) * cap);
					blocks->waiter = repalloc(blocks->waiter, sizeof(int) * cap);
				}
				blocks->blocker[blocks->n] = inst->leaderPid;
				blocks->waiter[blocks->n] = pid;
				blocks->n++;
			}
		}
	}
	return blocks;
}

/* The distinct pids that wait on "pid"; returns their number */
static int
waiters_of(const LgBlocks *blocks, int pid, int **out)
{
	int		   *list = NULL;
	int			n = 0;
	int			i;

	for (i = 0; i < blocks->n; i++)
	{
		int			j;
		bool		dup = false;

		if (blocks->blocker[i] != pid)
			continue;
		for (j = 0; j < n; j++)
			dup |= list[j] == blocks->waiter[i];
		if (dup)
			continue;
		if (list == NULL)
			list = palloc(sizeof(int) * blocks->n);
		list[n++] = blocks->waiter[i];
	}
	if (out)
		*out = list;
	return n;
}

/* Fill s->blocking for every session from one look at the lock manager */
static LgBlocks *
attach_blocking(LgSnapshot *snap)
{
	LgBlocks   *blocks = lg_find_blockers();
	int			i;

	for (i = 0; i < snap->nsessions; i++)
		snap->sessions[i].blocking =
			blocks->n > 0 ? waiters_of(blocks, snap->sessions[i].pid, NULL) : 0;
	return blocks;
}

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
 * Apply the verdict table to one session.  s->blocking must be filled for
 * the idle-in-transaction case.  Sets verdict, the action due now (if any)
 * and action_at: when the guard acts, or will act if nothing changes.
 * lambdaguard.enabled is not consulted: it switches the worker, not the
 * verdicts, and scan() works while the worker is off.
 */
void
lg_judge(LgSession *s, TimestampTz now)
{
	s->verdict = LG_VERDICT_OK;
	s->action = LG_ACTION_NONE;
	s->action_at = 0;
	s->next_due = 0;

	if (!s->watched)
		return;

	switch (s->state)
	{
		case STATE_IDLEINTRANSACTION:
			if (lg_blocking_timeout > 0 && s->blocking > 0)
				consider(s, LG_VERDICT_ORPHAN_BLOCKING, LG_ACTION_TERMINATE,
						 s->state_change + MS(lg_blocking_timeout), now);
			if (lg_idle_in_transaction_timeout > 0)
				consider(s, LG_VERDICT_ORPHAN, LG_ACTION_TERMINATE,
						 s->state_change + MS(lg_idle_in_transaction_timeout), now);
			break;
		case STATE_IDLEINTRANSACTION_ABORTED:
			if (lg_aborted_transaction_timeout > 0)
				consider(s, LG_VERDICT_ORPHAN_ABORTED, LG_ACTION_TERMINATE,
						 s->state_change + MS(lg_aborted_transaction_timeout), now);
			break;
		case STATE_IDLE:
			if (lg_pinned_idle_timeout > 0 && s->has_pins && s->pins.pin_mask != 0)
				consider(s, LG_VERDICT_PINNED_IDLE, LG_ACTION_TERMINATE,
						 s->state_change + MS(lg_pinned_idle_timeout), now);
			break;
		case STATE_RUNNING:
			if (lg_active_timeout > 0)
			{
				/* cancel first; terminate if still running one period later */
				consider(s, LG_VERDICT_OVERDUE_QUERY, LG_ACTION_TERMINATE,
						 s->query_start + 2 * MS(lg_active_timeout), now);
				consider(s, LG_VERDICT_OVERDUE_QUERY, LG_ACTION_CANCEL,
						 s->query_start + MS(lg_active_timeout), now);
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
		TimestampTz b = s->state_change + MS(lg_blocking_timeout);

		if (b > now && (next == 0 || b < next))
			next = b;
	}
	return next;
}

/* ----------
 * 3. Re-checked
 * ----------
 */

/*
 * Read the backend's live status again.  The decision stands only if it is
 * the same session (pid, backend start) in the same state since the same
 * moment, and for a running statement, the same statement.  Fills the
 * decision's copy with the live query text and application name.
 */
static bool
recheck(LgSession *d, char **why)
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
	d->addr = live.addr;
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
 * 4. Signalled
 * ----------
 */

/*
 * May the current user signal a backend of this role?  The rules of
 * pg_signal_backend(), checked first so that a refusal becomes a "failed"
 * row instead of an error that would undo the rows already written.
 */
static bool
may_signal(Oid roleid, char **why)
{
	if (superuser_arg(roleid) && !superuser())
	{
		*why = "permission denied: only superusers can signal a superuser's process";
		return false;
	}
	if (!has_privs_of_role(GetUserId(), roleid) &&
		!has_privs_of_role(GetUserId(), ROLE_PG_SIGNAL_BACKEND))
	{
		*why = "permission denied: signalling this process needs the privileges of its role or of pg_signal_backend";
		return false;
	}
	return true;
}

static bool
signal_session(const LgSession *s, LgAction action)
{
	Datum		ok;

	if (action == LG_ACTION_CANCEL)
		ok = DirectFunctionCall1(pg_cancel_backend, Int32GetDatum(s->pid));
	else
		ok = LG_TERMINATE_BACKEND(s->pid);
	return DatumGetBool(ok);
}

/* ----------
 * The scan
 * ----------
 */

/* What the worker already did, so that it does not do it twice */
typedef struct LgActed
{
	int			pid;
	TimestampTz backend_start;
	TimestampTz since;
	LgAction	action;
} LgActed;

static LgActed *acted = NULL;
static int	nacted = 0;
static int	acted_cap = 0;

static TimestampTz
episode_start(const LgSession *s)
{
	return s->state == STATE_RUNNING ? s->query_start : s->state_change;
}

static bool
already_acted(const LgSession *s, LgAction action)
{
	int			i;

	for (i = 0; i < nacted; i++)
		if (acted[i].pid == s->pid && acted[i].backend_start == s->backend_start &&
			acted[i].since == episode_start(s) && acted[i].action == action)
			return true;
	return false;
}

static void
remember_acted(const LgSession *s, LgAction action)
{
	if (nacted == acted_cap)
	{
		acted_cap = acted_cap ? acted_cap * 2 : 16;
		acted = acted ? repalloc(acted, sizeof(LgActed) * acted_cap) :
			MemoryContextAlloc(TopMemoryContext, sizeof(LgActed) * acted_cap);
	}
	acted[nacted].pid = s->pid;
	acted[nacted].backend_start = s->backend_start;
	acted[nacted].since = episode_start(s);
	acted[nacted].action = action;
	nacted++;
}

/* Forget what was done to sessions that are gone from the snapshot */
static void
prune_acted(const LgSnapshot *snap)
{
	int			i,
				j,
				kept = 0;

	for (i = 0; i < nacted; i++)
	{
		bool		alive = false;

		for (j = 0; j < snap->nsessions && !alive; j++)
			alive = snap->sessions[j].pid == acted[i].pid &&
				snap->sessions[j].backend_start == acted[i].backend_start;
		if (alive)
			acted[kept++] = acted[i];
	}
	nacted = kept;
}

void
lg_worker_forget_acted(void)
{
	nacted = 0;
}

/* Locks held by one pid, from one look at the lock manager per scan */
static int
locks_held_by(LockData **data, int pid)
{
	int			i;
	int			n = 0;

	if (*data == NULL)
		*data = GetLockStatusData();
	for (i = 0; i < (*data)->nelements; i++)
		if ((*data)->locks[i].pid == pid && (*data)->locks[i].holdMask != 0)
			n++;
	return n;
}

/* What the worker means to do about a session that is due */
static LgAction
planned_action(const LgSession *s)
{
	return lg_dry_run ? LG_ACTION_DRY_RUN : s->action;
}

/* Write the decision's history row with this action */
static void
record(LgDecision *d, LgAction action, const char *detail)
{
	d->action = action;
	d->detail = (char *) detail;
	d->id = lg_history_insert(d);
}

/* The signal went otherwise than its row says: correct the row */
static void
change_record(LgDecision *d, LgAction action, const char *detail)
{
	d->action = action;
	d->detail = (char *) detail;
	lg_history_update(d);
}

/*
 * One scan: see, judge, re-check and signal.  Returns the decisions (a List
 * of LgDecision *) for the caller to record; *next_due gets the earliest
 * future moment a watched session falls due (0 if none), *braked whether
 * max_terminations stopped the scan.
 */
List *
lg_scan(LgScanMode mode, TimestampTz *next_due, int *nseen, bool *braked)
{
	TimestampTz now = GetCurrentTimestamp();
	LgSnapshot *snap;
	LgBlocks   *blocks = NULL;
	LockData   *lockdata = NULL;
	List	   *decisions = NIL;
	int			signals = 0;
	int			i;

	*next_due = 0;
	*braked = false;
	snap = lg_take_snapshot(mode != LG_SCAN_WORKER,
							mode != LG_SCAN_WORKER || lg_pinned_idle_timeout > 0);
	*nseen = snap->nsessions;
	if (mode == LG_SCAN_WORKER)
		prune_acted(snap);

	/* the lock manager is asked only if some session could be blocking */
	if (lg_blocking_timeout > 0)
	{
		for (i = 0; i < snap->nsessions; i++)
		{
			LgSession  *s = &snap->sessions[i];

			if (s->watched && s->state == STATE_IDLEINTRANSACTION &&
				now >= s->state_change + MS(lg_blocking_timeout))
			{
				blocks = attach_blocking(snap);
				break;
			}
		}
	}

	for (i = 0; i < snap->nsessions; i++)
	{
		LgSession  *s = &snap->sessions[i];
		TimestampTz look;
		LgDecision *d;
		char	   *why = NULL;

		lg_judge(s, now);
		look = next_look(s, now);
		if (look != 0 && (*next_due == 0 || look < *next_due))
			*next_due = look;

		/* a scan never signals the session that runs it */
		if (s->action == LG_ACTION_NONE || s->pid == MyProcPid)
			continue;
		if (mode == LG_SCAN_WORKER && already_acted(s, planned_action(s)))
			continue;
		if (mode != LG_SCAN_PREVIEW && !lg_dry_run && signals >= lg_max_terminations)
		{
			*braked = true;
			continue;
		}

		d = palloc0(sizeof(LgDecision));
		d->s = *s;
		d->s.appname = d->s.appname_buf;
		d->at = GetCurrentTimestamp();
		if (blocks == NULL)
			blocks = lg_find_blockers();	/* once, for the record */
		d->nblocked = waiters_of(blocks, s->pid, &d->blocked_pids);
		d->locks_held = locks_held_by(&lockdata, s->pid);

		if (mode == LG_SCAN_PREVIEW)
		{
			d->action = LG_ACTION_DRY_RUN;
			decisions = lappend(decisions, d);
			continue;
		}
		if (mode == LG_SCAN_WORKER)
			remember_acted(s, planned_action(s));

		/*
		 * The history row is written before the signal, so that no signal
		 * goes unrecorded: if the row cannot be written (its table locked
		 * past lock_timeout, dropped), the error comes before the signal.
		 * The live state is read again right after it, just before the
		 * signal.
		 */
		if (!recheck(&d->s, &why))
			record(d, LG_ACTION_SKIPPED, why);
		else if (lg_dry_run)
			record(d, LG_ACTION_DRY_RUN, NULL);
		else if (mode == LG_SCAN_ACT && !may_signal(s->userid, &why))
			record(d, LG_ACTION_FAILED, why);
		else
		{
			record(d, s->action, NULL);
			if (!recheck(&d->s, &why))
				change_record(d, LG_ACTION_SKIPPED, why);
			else
			{
				signals++;
				if (!signal_session(s, s->action))
					change_record(d, LG_ACTION_FAILED,
								  "the process could not be signalled");
			}
		}
		lg_log_decision(d);
		decisions = lappend(decisions, d);
	}
	return decisions;
}

/* ----------
 * 5. Recorded
 * ----------
 */

Datum
lg_inet_datum(const SockAddr *addr, bool *isnull)
{
	char		host[NI_MAXHOST];
	const struct sockaddr *sa = (const struct sockaddr *) &addr->addr;

	*isnull = true;
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return (Datum) 0;
	if (pg_getnameinfo_all(&addr->addr, addr->salen, host, sizeof(host),
						   NULL, 0, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return (Datum) 0;
	clean_ipv6_addr(sa->sa_family, host);
	*isnull = false;
	return DirectFunctionCall1(inet_in, CStringGetDatum(host));
}

Datum
lg_reasons_array(uint32 mask, bool *isnull)
{
	Datum		elems[LG_NUM_REASONS];
	int			n = 0;
	int			r;

	for (r = 0; r < LG_NUM_REASONS; r++)
		if (mask & LG_REASON_BIT(r))
			elems[n++] = CStringGetTextDatum(lg_reason_names[r]);
	*isnull = false;
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

Oid
lg_history_relid(void)
{
	Oid			nsp = get_namespace_oid("lambdaguard", true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid("history", nsp);
}

/* The state as pg_stat_activity names it, or NULL */
const char *
lg_state_name(BackendState state)
{
	switch (state)
	{
		case STATE_IDLE:
			return "idle";
		case STATE_RUNNING:
			return "active";
		case STATE_IDLEINTRANSACTION:
			return "idle in transaction";
		case STATE_IDLEINTRANSACTION_ABORTED:
			return "idle in transaction (aborted)";
		case STATE_FASTPATH:
			return "fastpath function call";
		case STATE_DISABLED:
			return "disabled";
#if PG_VERSION_NUM >= 180000
		case STATE_STARTING:
			return "starting";
#endif
		default:
			return NULL;
	}
}

static char *
addr_text(const SockAddr *addr)
{
	bool		isnull;
	Datum		d = lg_inet_datum(addr, &isnull);

	if (isnull)
		return ((const struct sockaddr *) &addr->addr)->sa_family == AF_UNIX ?
			"local" : "unknown";
	return DatumGetCString(DirectFunctionCall1(inet_out, d));
}

/*
 * The lambdaguard.history row of a decision, id (column 0) left NULL.
 */
void
lg_history_values(LgDecision *d, Datum *values, bool *nulls)
{
	LgSession  *s = &d->s;
	char	   *role = GetUserNameFromId(s->userid, true);
	char	   *db = get_database_name(s->dbid);
	const char *state = lg_state_name(s->state);
	Datum	   *blocked;
	int			i;

	memset(nulls, false, sizeof(bool) * LG_HISTORY_NATTS);
	nulls[0] = true;
	values[1] = TimestampTzGetDatum(d->at);
	values[2] = Int32GetDatum(s->pid);
	values[3] = DirectFunctionCall1(namein, CStringGetDatum(role ? role : ""));
	nulls[3] = (role == NULL);
	values[4] = DirectFunctionCall1(namein, CStringGetDatum(db ? db : ""));
	nulls[4] = (db == NULL);
	values[5] = CStringGetTextDatum(s->appname ? s->appname : "");
	values[6] = lg_inet_datum(&s->addr, &nulls[6]);
	values[7] = TimestampTzGetDatum(s->backend_start);
	values[8] = TimestampTzGetDatum(s->xact_start);
	nulls[8] = (s->xact_start == 0);
	values[9] = CStringGetTextDatum(state ? state : "unknown");
	values[10] = TimestampTzGetDatum(episode_start(s));
	values[11] = CStringGetTextDatum(lg_verdict_names[s->verdict]);
	values[12] = CStringGetTextDatum(lg_action_names[d->action]);
	values[13] = Int32GetDatum(d->locks_held);
	blocked = palloc(sizeof(Datum) * Max(d->nblocked, 1));
	for (i = 0; i < d->nblocked; i++)
		blocked[i] = Int32GetDatum(d->blocked_pids[i]);
	values[14] = PointerGetDatum(construct_array(blocked, d->nblocked, INT4OID,
												 sizeof(int32), true, TYPALIGN_INT));
	values[15] = lg_reasons_array(s->has_pins ? s->pins.pin_mask : 0, &nulls[15]);
	values[16] = s->query ? CStringGetTextDatum(s->query) : (Datum) 0;
	nulls[16] = (s->query == NULL);
	values[17] = d->detail ? CStringGetTextDatum(d->detail) : (Datum) 0;
	nulls[17] = (d->detail == NULL);
}

/*
 * One LOG line per decision, naming who, what and why.
 */
void
lg_log_decision(LgDecision *d)
{
	LgSession  *s = &d->s;
	char	   *role = GetUserNameFromId(s->userid, true);
	char	   *db = get_database_name(s->dbid);
	double		secs = (double) (d->at - episode_start(s)) / 1000000.0;
	const char *what;

	switch (d->action)
	{
		case LG_ACTION_TERMINATE:
			what = "terminated";
			break;
		case LG_ACTION_CANCEL:
			what = "cancelled the statement of";
			break;
		case LG_ACTION_DRY_RUN:
			what = "would signal (dry run)";
			break;
		case LG_ACTION_SKIPPED:
			what = "skipped";
			break;
		default:
			what = "failed to signal";
			break;
	}

	ereport(LOG,
			(errmsg("pg_lambdaguard: %s pid %d (role %s, database %s, application \"%s\", client %s): verdict %s, %s for %.3f s, %d locks held, %d sessions blocked%s%s",
					what, s->pid, role ? role : "?", db ? db : "?",
					s->appname ? s->appname : "", addr_text(&s->addr),
					lg_verdict_names[s->verdict], lg_state_name(s->state), secs,
					d->locks_held, d->nblocked,
					d->detail ? ": " : "", d->detail ? d->detail : "")));

	lg_count_action(s->verdict, d->action);
}

/* The owner of lambdaguard.history */
static Oid
history_owner(void)
{
	Oid			relid = lg_history_relid();
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("pg_lambdaguard: lambdaguard.history does not exist")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Run one statement of the history through SPI, with an active snapshot,
 * as the owner of the history table: a role granted EXECUTE on scan()
 * records its decisions without being able to write (or read) the history
 * itself.  An error restores the user at transaction abort.
 */
static void
history_spi(const char *sql, int nargs, Oid *argtypes, Datum *values,
			const char *nulls, int expected, int64 *id)
{
	bool		pushed = false;
	int			ret;
	Oid			save_userid;
	int			save_sec_context;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(history_owner(),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);

	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "pg_lambdaguard: SPI_connect failed");
	ret = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 1);
	if (ret != expected || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_lambdaguard: could not write lambdaguard.history: %s",
						SPI_result_code_string(ret))));
	if (id)
	{
		bool		isnull;

		*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	if (pushed)
		PopActiveSnapshot();
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * Insert the decision's lambdaguard.history row with bound parameters;
 * returns its id.  The caller has a transaction.
 */
int64
lg_history_insert(LgDecision *d)
{
	static Oid	argtypes[LG_HISTORY_NATTS - 1] = {
		TIMESTAMPTZOID, INT4OID, NAMEOID, NAMEOID, TEXTOID, INETOID,
		TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TIMESTAMPTZOID, TEXTOID,
		TEXTOID, INT4OID, INT4ARRAYOID, TEXTARRAYOID, TEXTOID, TEXTOID
	};
	Datum		values[LG_HISTORY_NATTS];
	bool		nulls[LG_HISTORY_NATTS];
	char		spi_nulls[LG_HISTORY_NATTS - 1];
	int64		id = 0;
	int			i;

	lg_history_values(d, values, nulls);
	for (i = 1; i < LG_HISTORY_NATTS; i++)
		spi_nulls[i - 1] = nulls[i] ? 'n' : ' ';
	history_spi("INSERT INTO lambdaguard.history (at, pid, usename, datname, "
				"application_name, client_addr, backend_start, xact_start, state, "
				"state_since, verdict, action, locks_held, blocked_pids, pin_reasons, "
				"query, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
				"$11, $12, $13, $14, $15, $16, $17) RETURNING id",
				LG_HISTORY_NATTS - 1, argtypes, values + 1, spi_nulls,
				SPI_OK_INSERT_RETURNING, &id);
	return id;
}

/* Correct the action and detail of a row written before its signal */
void
lg_history_update(LgDecision *d)
{
	Oid			argtypes[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = Int64GetDatum(d->id);
	values[1] = CStringGetTextDatum(lg_action_names[d->action]);
	values[2] = d->detail ? CStringGetTextDatum(d->detail) : (Datum) 0;
	if (d->detail == NULL)
		nulls[2] = 'n';
	history_spi("UPDATE lambdaguard.history SET action = $2, detail = $3 "
				"WHERE id OPERATOR(pg_catalog.=) $1",
				3, argtypes, values, nulls, SPI_OK_UPDATE, NULL);
}

/*
 * Delete history older than lambdaguard.history_retention.  Needs a
 * transaction with an active snapshot.  Returns the number of rows deleted.
 */
int
lg_purge_history(void)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	int			ret;
	int			deleted;

	if (lg_history_retention <= 0)
		return 0;
	values[0] = Int32GetDatum(lg_history_retention);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "pg_lambdaguard: SPI_connect failed");
	ret = SPI_execute_with_args("DELETE FROM lambdaguard.history "
								"WHERE at OPERATOR(pg_catalog.<) (pg_catalog.now() "
								"OPERATOR(pg_catalog.-) pg_catalog.make_interval(mins => $1))",
								1, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "pg_lambdaguard: could not delete old history: %s",
			 SPI_result_code_string(ret));
	deleted = (int) SPI_processed;
	SPI_finish();
	return deleted;
}

/*
 * pg_stat_activity's rule for showing a session's query text.
 */
bool
lg_may_read_query(Oid userid)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS) ||
		has_privs_of_role(GetUserId(), userid);
}

/* For the sessions view: every session's blocking count */
void
lg_attach_blocking(LgSnapshot *snap)
{
	(void) attach_blocking(snap);
}
