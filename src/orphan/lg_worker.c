/*-------------------------------------------------------------------------
 *
 * lg_worker.c
 *		The background worker: the one process that signals.  It scans,
 *		acts on what is due (lg_act_all), holds the storm brake, runs
 *		scan(false) on its callers' behalf, and sleeps until the next
 *		session falls due (at most lambdaguard.naptime).
 *
 * It connects to lambdaguard.database and starts once the server is
 * consistent: on a hot standby too, where it records its decisions in the
 * standby's journal (lg_journal.c) instead of lambdaguard.history.  It keeps
 * running when the standby is promoted, and then imports the journal into
 * lambdaguard.history once (lg_history_import).  A scan decides in one short transaction (catalog lookups), then acts on each
 * decision with transactions of its own (lg_orphan.c, lg_history.c), then
 * purges old history in another.  An ERROR ends the worker (its message kept
 * in lambdaguard.worker) and the postmaster starts it again after
 * bgw_restart_time, without a crash-restart of the cluster; every row it
 * committed before the error stays.
 *
 * The storm brake: at most lambdaguard.max_terminations signals within any
 * naptime interval, however often the worker wakes.  The times of the last
 * max_terminations signals are kept; a signal is sent only if the oldest of
 * them is at least naptime old.  The others wait, with no row, for a later
 * scan; lambdaguard.worker.brake_since says since when the brake holds.
 *
 * scan(false) on the caller's behalf.  Rows must be committed before their
 * signals, which a function running in its caller's transaction cannot do;
 * so scan(false) hands the scan to the worker through one request slot in
 * shared memory, protected by its spinlock:
 *
 *	FREE -> PENDING		a caller takes the slot (role, pid) and sets the
 *						worker's latch;
 *	PENDING -> RUNNING	the worker runs the scan with the caller's rights,
 *						never deciding on the caller's own session;
 *	RUNNING -> DONE		the worker leaves the ids of the rows it committed,
 *						or an error;
 *	DONE -> FREE		the caller copies them out and returns those rows.
 *
 * The caller sleeps on the slot's condition variable, and the worker
 * broadcasts on every change.  A caller that gives up (a cancel) frees a
 * PENDING slot, or leaves a RUNNING one to the worker (requester_pid 0),
 * which frees it when done.  A caller notices a worker that went away; the
 * next worker frees a slot left RUNNING.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "portability/instr_time.h"

#include "lg_compat.h"
#include "lg_history.h"
#include "lg_journal.h"
#include "lg_orphan.h"
#include "lg_settings.h"
#include "lg_shmem.h"
#include "lg_worker.h"

/* Seconds between two restarts after an error: no tight loop */
#define LG_RESTART_SECONDS		10
/* How often old history is deleted */
#define LG_PURGE_INTERVAL_MS	60000
/* The worker waits this long for a lock on the history table, then errors */
#define LG_LOCK_TIMEOUT			"5s"


static LgWorkerInfo info;
static MemoryContext scan_context = NULL;
static bool said_no_extension = false;
static bool history_found = false;	/* by the last scan that looked */
static TimestampTz last_purge = 0;
/* The journal of a standby waits to be imported, and since when tried */
static bool import_pending = true;
static TimestampTz last_import_try = 0;

/* ----------
 * The request slot of scan(false)
 * ----------
 */
typedef enum LgRequestState
{
	LG_REQ_FREE = 0,
	LG_REQ_PENDING,
	LG_REQ_RUNNING,
	LG_REQ_DONE
} LgRequestState;

typedef struct LgRequest
{
	slock_t		mutex;
	ConditionVariable cv;
	Latch	   *worker_latch;	/* the worker's, while one runs */
	int			worker_pid;
	Oid			worker_dbid;
	LgRequestState state;
	int			requester_pid;	/* 0: the caller gave up */
	Oid			roleid;			/* whose rights apply */
	int			nids;
	char		error[256];
	int64		ids[FLEXIBLE_ARRAY_MEMBER]; /* one per client backend */
} LgRequest;

static LgRequest *request = NULL;
static int	request_capacity = 0;

/* Is this process serving a request now (for its error path)? */
static bool serving = false;
static char request_error[256];

Size
lg_worker_shmem_size(void)
{
	return add_size(offsetof(LgRequest, ids),
					mul_size(sizeof(int64), LG_MAX_BACKENDS()));
}

/* Called from lg_shmem_startup() with AddinShmemInitLock held */
void
lg_worker_shmem_init(void)
{
	bool		found;

	request = ShmemInitStruct("pg_lambdaguard request", lg_worker_shmem_size(), &found);
	request_capacity = LG_MAX_BACKENDS();
	if (!found)
	{
		memset(request, 0, offsetof(LgRequest, ids));
		SpinLockInit(&request->mutex);
		ConditionVariableInit(&request->cv);
	}
}

/* Leave the slot's result and wake the caller, or free an abandoned slot */
static void
request_finish(const int64 *ids, int nids, const char *error)
{
	SpinLockAcquire(&request->mutex);
	if (request->requester_pid == 0)
		request->state = LG_REQ_FREE;
	else
	{
		request->state = LG_REQ_DONE;
		request->nids = Min(nids, request_capacity);
		if (nids > 0)
			memcpy(request->ids, ids, sizeof(int64) * request->nids);
		strlcpy(request->error, error ? error : "", sizeof(request->error));
	}
	SpinLockRelease(&request->mutex);
	ConditionVariableBroadcast(&request->cv);
}

/* before_shmem_exit: no latch to set once this worker is gone */
static void
request_detach(int code, Datum arg)
{
	LgWorkerInfo w;

	/* lambdaguard.worker shows no pid while no worker runs */
	lg_worker_info_copy(&w);
	w.pid = 0;
	w.brake_since = 0;
	lg_worker_info_update(&w);

	SpinLockAcquire(&request->mutex);
	if (request->worker_pid == MyProcPid)
	{
		request->worker_pid = 0;
		request->worker_latch = NULL;
	}
	SpinLockRelease(&request->mutex);
	ConditionVariableBroadcast(&request->cv);
}

static void
request_attach(void)
{
	bool		stale;

	SpinLockAcquire(&request->mutex);
	request->worker_latch = MyLatch;
	request->worker_pid = MyProcPid;
	request->worker_dbid = MyDatabaseId;
	/* a request the previous worker was running when it died */
	stale = request->state == LG_REQ_RUNNING;
	SpinLockRelease(&request->mutex);
	if (stale)
		request_finish(NULL, 0, "the worker restarted during the scan");
	before_shmem_exit(request_detach, (Datum) 0);
}

/* ----------
 * What the worker already did, so that its own scans do not do it twice
 * ----------
 */
typedef struct LgActed
{
	int			index;
	int			pid;
	TimestampTz backend_start;
	TimestampTz since;
	LgAction	action;
} LgActed;

static LgActed *acted = NULL;
static int	nacted = 0;
static int	acted_cap = 0;

static bool
already_acted(const LgSession *s, LgAction action)
{
	int			i;

	for (i = 0; i < nacted; i++)
		if (acted[i].pid == s->pid && acted[i].backend_start == s->backend_start &&
			acted[i].since == lg_episode_start(s) && acted[i].action == action)
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
	acted[nacted].index = s->index;
	acted[nacted].pid = s->pid;
	acted[nacted].backend_start = s->backend_start;
	acted[nacted].since = lg_episode_start(s);
	acted[nacted].action = action;
	nacted++;
}

/* Forget what was done to sessions that have ended */
static void
prune_acted(void)
{
	int			i,
				kept = 0;

	for (i = 0; i < nacted; i++)
		if (lg_session_alive(acted[i].index, acted[i].pid, acted[i].backend_start))
			acted[kept++] = acted[i];
	nacted = kept;
}

/* ----------
 * The storm brake
 * ----------
 */
static TimestampTz *sent = NULL;	/* the last signals, a ring */
static int	sent_cap = 0;
static int	sent_n = 0;
static int	sent_next = 0;

/*
 * How many signals may go now?  When none, *free_at is when the next may.
 */
static int
brake_free(TimestampTz now, TimestampTz *free_at)
{
	int			used = 0;
	int			i;

	if (sent_cap != lg_max_terminations)
	{
		/* max_terminations changed: start counting afresh, conservatively */
		int			keep = Min(sent_n, lg_max_terminations);
		TimestampTz *ring = MemoryContextAlloc(TopMemoryContext,
											   sizeof(TimestampTz) * lg_max_terminations);

		for (i = 0; i < keep; i++)
			ring[keep - 1 - i] = sent[(sent_next - 1 - i + sent_cap) % sent_cap];
		if (sent)
			pfree(sent);
		sent = ring;
		sent_cap = lg_max_terminations;
		sent_n = keep;
		sent_next = keep % sent_cap;
	}
	/* the signals sent within the last naptime: the newest ones */
	for (i = 0; i < sent_n; i++)
	{
		TimestampTz t = sent[(sent_next - 1 - i + sent_cap) % sent_cap];

		if (now - t >= LG_MS(lg_naptime))
			break;
		used++;
	}
	if (used == sent_cap)
		*free_at = sent[sent_next] + LG_MS(lg_naptime);	/* full: the oldest */
	return sent_cap - used;
}

static void
brake_count(TimestampTz at)
{
	sent[sent_next] = at;
	sent_next = (sent_next + 1) % sent_cap;
	if (sent_n < sent_cap)
		sent_n++;
}

/* ----------
 * The scan
 * ----------
 */

void
lg_worker_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* hot standbys are guarded too: their orphans hold back the primary */
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = LG_RESTART_SECONDS;
	strlcpy(worker.bgw_library_name, "pg_lambdaguard", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "lg_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "pg_lambdaguard worker", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "pg_lambdaguard", BGW_MAXLEN);
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

/*
 * The longest the worker may sleep without missing a session: at most
 * naptime, and at most the shortest enabled timeout, so that every session
 * is seen by some scan before it can fall due, and its due moment is known.
 */
static long
longest_sleep(void)
{
	const int	timeouts[] = {
		lg_idle_in_transaction_timeout, lg_aborted_transaction_timeout,
		lg_blocking_timeout, lg_pinned_idle_timeout, lg_active_timeout
	};
	long		sleep_ms = lg_naptime;
	int			i;

	for (i = 0; i < lengthof(timeouts); i++)
		if (timeouts[i] > 0 && timeouts[i] < sleep_ms)
			sleep_ms = timeouts[i];
	return sleep_ms;
}

/*
 * Is lambdaguard.history there to record in?  Says so in the log once when
 * it is not, and once when it is back.  Needs a transaction.
 */
static bool
history_ready(void)
{
	if (!OidIsValid(lg_history_relid()))
	{
		if (!said_no_extension && OidIsValid(get_extension_oid("pg_lambdaguard", true)))
			ereport(LOG,
					(errmsg("pg_lambdaguard: table lambdaguard.history is missing in database \"%s\"; the worker acts on nobody until it is back",
							lg_database),
					 errhint("Restore the table, or run DROP EXTENSION pg_lambdaguard and CREATE EXTENSION pg_lambdaguard.")));
		else if (!said_no_extension)
			ereport(LOG,
					(errmsg("pg_lambdaguard: the extension is not created in database \"%s\"; the worker acts on nobody until it is",
							lg_database),
					 errhint("Run CREATE EXTENSION pg_lambdaguard in database \"%s\".",
							 lg_database)));
		said_no_extension = true;
		return false;
	}
	if (said_no_extension)
		ereport(LOG,
				(errmsg("pg_lambdaguard: the extension now exists in database \"%s\"; the worker starts recording",
						lg_database)));
	said_no_extension = false;
	return true;
}

/*
 * One scan: decide, then act on each decision, each in transactions of its
 * own.  "caller" is the role of a scan(false) request (InvalidOid for the
 * worker's own scan) and "exclude_pid" its session; the ids of the rows
 * written go to ids[] when given.  Returns how long to sleep, in ms.
 */
static long
run_scan(Oid caller, int exclude_pid, int64 *ids, int *nids)
{
	TimestampTz next_due = 0;
	TimestampTz now;
	TimestampTz free_at = 0;
	int			nseen = 0;
	bool		braked = false;
	bool		ready;
	bool		purge_due;
	bool		request = OidIsValid(caller) || ids != NULL;
	uint32		forgotten;
	LgSnapshot *snap;
	List	   *decisions = NIL;
	List	   *todo = NIL;
	List	   *planned = NIL;
	ListCell   *lc;
	ListCell   *lp;
	int			free_now;
	instr_time	start,
				elapsed;
	long		sleep_ms = longest_sleep();
	MemoryContext old = MemoryContextSwitchTo(scan_context);

	INSTR_TIME_SET_CURRENT(start);

	/*
	 * The status slots are read without a transaction.  A scan that keeps
	 * no session (idle ones while pinned_idle_timeout is off, and those of
	 * roles it cannot watch: a pool's many connections and the monitoring)
	 * has nobody to judge and starts none, once the history table has been
	 * found (it is looked for again before each purge of old rows).
	 */
	if (request)
		lg_unwatched_forget();	/* its caller's changes to roles count */
	forgotten = lg_unwatched_forgotten();
	snap = lg_take_snapshot(false, false, true);
	nseen = snap->nseen;
	ready = history_found;
	now = GetCurrentTimestamp();
	purge_due = now - last_purge >= LG_MS(LG_PURGE_INTERVAL_MS) || now < last_purge;
	if (snap->nsessions > 0 || !history_found || purge_due || request)
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		MemoryContextSwitchTo(scan_context);
		/* a role changed (seen by this transaction): read the slots again */
		if (lg_unwatched_forgotten() != forgotten)
		{
			snap = lg_take_snapshot(false, false, true);
			nseen = snap->nseen;
		}
		ready = history_found = history_ready();
		if (ready)
			decisions = lg_decide(snap, GetCurrentTimestamp(), caller,
								  exclude_pid, &next_due);
		CommitTransactionCommand();
		MemoryContextSwitchTo(scan_context);
	}
	if (!ready && ids)
		snprintf(request_error, sizeof(request_error),
				 "lambdaguard.history does not exist in database \"%s\"", lg_database);

	prune_acted();

	/*
	 * What is acted on now: what was not done already, and no more signals
	 * than the brake lets go; the others wait, with no row, for a later scan.
	 */
	free_now = brake_free(GetCurrentTimestamp(), &free_at);
	foreach(lc, decisions)
	{
		LgDecision *d = (LgDecision *) lfirst(lc);

		if (!OidIsValid(caller) && already_acted(&d->s, d->action))
			continue;
		if ((d->action == LG_ACTION_TERMINATE || d->action == LG_ACTION_CANCEL) &&
			d->denied == NULL)
		{
			if (free_now == 0)
			{
				braked = true;
				continue;
			}
			free_now--;
		}
		planned = lappend_int(planned, d->action);
		todo = lappend(todo, d);
	}

	/* rows committed together, then the signals (lg_orphan.c) */
	lg_act_all(todo);

	/*
	 * Every signal counts for the brake; the worker's figures count its own
	 * scans only (scan(false) acts for its caller).
	 */
	forboth(lc, todo, lp, planned)
	{
		LgDecision *d = (LgDecision *) lfirst(lc);

		switch (d->action)
		{
			case LG_ACTION_TERMINATE:
				brake_count(GetCurrentTimestamp());
				info.terminated += !OidIsValid(caller);
				break;
			case LG_ACTION_CANCEL:
				brake_count(GetCurrentTimestamp());
				info.cancelled += !OidIsValid(caller);
				break;
			case LG_ACTION_DRY_RUN:
				info.dry_run_hits += !OidIsValid(caller);
				break;
			default:
				break;
		}
		info.orphans_found += !OidIsValid(caller);
		remember_acted(&d->s, (LgAction) lfirst_int(lp));
		if (ids)
			ids[(*nids)++] = d->id;
	}
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);

	if (ready && purge_due)
	{
		lg_history_purge();
		last_purge = GetCurrentTimestamp();
	}

	MemoryContextSwitchTo(old);
	MemoryContextReset(scan_context);

	now = GetCurrentTimestamp();
	if (braked && info.brake_since == 0)
		info.brake_since = now;
	else if (!braked)
		info.brake_since = 0;
	info.scans++;
	info.last_scan_at = now;
	info.last_scan_us = INSTR_TIME_GET_MICROSEC(elapsed);
	info.sessions_seen = nseen;
	lg_worker_info_update(&info);
	pgstat_report_activity(STATE_IDLE, NULL);

	/*
	 * Sleep until the next session falls due, rounded up to the next ms, but
	 * never longer than longest_sleep(); while the brake holds, until the
	 * next signal may go.
	 */
	if (braked)
		next_due = (next_due == 0 || free_at < next_due) ? free_at : next_due;
	if (next_due != 0)
	{
		int64		wait_us = next_due - now;

		if (wait_us <= 0)
			sleep_ms = 0;
		else
			sleep_ms = Min((long) ((wait_us + 999) / 1000), sleep_ms);
	}
	return sleep_ms;
}

/* Run a pending scan(false) request, if there is one */
static void
serve_request(void)
{
	Oid			roleid;
	int			requester;
	int64	   *ids;
	int			nids = 0;

	SpinLockAcquire(&request->mutex);
	if (request->state != LG_REQ_PENDING)
	{
		SpinLockRelease(&request->mutex);
		return;
	}
	request->state = LG_REQ_RUNNING;
	roleid = request->roleid;
	requester = request->requester_pid;
	SpinLockRelease(&request->mutex);

	serving = true;
	request_error[0] = '\0';
	ids = MemoryContextAlloc(TopMemoryContext, sizeof(int64) * request_capacity);
	(void) run_scan(roleid, requester, ids, &nids);
	request_finish(ids, nids, request_error[0] ? request_error : NULL);
	pfree(ids);
	serving = false;
}

/* ----------
 * scan(false), in the calling backend
 * ----------
 */

/* The caller gives up its request (an error or cancel while waiting) */
static void
request_give_up(void)
{
	SpinLockAcquire(&request->mutex);
	if (request->requester_pid == MyProcPid)
	{
		if (request->state == LG_REQ_RUNNING && request->worker_pid != 0)
			request->requester_pid = 0; /* the worker frees it when done */
		else
			request->state = LG_REQ_FREE;
	}
	SpinLockRelease(&request->mutex);
	ConditionVariableBroadcast(&request->cv);
}

/*
 * Have the worker run one scan with the rights of "caller", never deciding
 * on this session, and return its rows (lg_history_fetch).  Each row was
 * committed by the worker before its signal, so it survives whatever
 * becomes of this transaction.
 */
List *
lg_worker_act_for(Oid caller)
{
	int			worker_pid;
	Oid			worker_dbid;
	Latch	   *latch;
	bool		taken = false;
	int64	   *ids;
	int			nids;
	char		error[256];

	SpinLockAcquire(&request->mutex);
	worker_pid = request->worker_pid;
	worker_dbid = request->worker_dbid;
	latch = request->worker_latch;
	SpinLockRelease(&request->mutex);
	if (worker_pid == 0 || latch == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the pg_lambdaguard worker is not running"),
				 errdetail("lambdaguard.scan(false) is carried out by the worker, which commits each history row before its signal."),
				 errhint("See lambdaguard.worker and the server log; the worker is restarted 10 s after an error.")));
	if (worker_dbid != MyDatabaseId)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lambdaguard.scan(false) must be run in database \"%s\"",
						lg_database),
				 errdetail("The worker that carries it out records in lambdaguard.history there (lambdaguard.database).")));

	/* take the slot, waiting for another caller's scan to finish */
	ConditionVariablePrepareToSleep(&request->cv);
	for (;;)
	{
		SpinLockAcquire(&request->mutex);
		if (request->state == LG_REQ_FREE)
		{
			request->state = LG_REQ_PENDING;
			request->requester_pid = MyProcPid;
			request->roleid = caller;
			request->nids = 0;
			request->error[0] = '\0';
			taken = true;
		}
		SpinLockRelease(&request->mutex);
		if (taken)
			break;
		(void) ConditionVariableTimedSleep(&request->cv, 1000, PG_WAIT_EXTENSION);
	}
	SetLatch(latch);

	PG_TRY();
	{
		for (;;)
		{
			LgRequestState state;
			int			pid;

			SpinLockAcquire(&request->mutex);
			state = request->state;
			pid = request->worker_pid;
			SpinLockRelease(&request->mutex);
			if (state == LG_REQ_DONE)
				break;
			if (pid != worker_pid)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("the pg_lambdaguard worker stopped before it finished the scan"),
						 errhint("The rows it committed before it stopped are in lambdaguard.history.")));
			(void) ConditionVariableTimedSleep(&request->cv, 1000, PG_WAIT_EXTENSION);
		}
		ConditionVariableCancelSleep();
	}
	PG_CATCH();
	{
		ConditionVariableCancelSleep();
		request_give_up();
		PG_RE_THROW();
	}
	PG_END_TRY();

	SpinLockAcquire(&request->mutex);
	nids = request->nids;
	ids = palloc(sizeof(int64) * Max(nids, 1));
	memcpy(ids, request->ids, sizeof(int64) * nids);
	strlcpy(error, request->error, sizeof(error));
	request->state = LG_REQ_FREE;
	request->requester_pid = 0;
	SpinLockRelease(&request->mutex);
	ConditionVariableBroadcast(&request->cv);

	if (error[0] != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the pg_lambdaguard worker could not finish the scan: %s", error),
				 errhint("The rows it committed before the error are in lambdaguard.history.")));
	return lg_history_fetch(ids, nids);
}

/*
 * Import the journal a standby wrote into lambdaguard.history, now that the
 * server is out of recovery.  Where the extension is older than 1.2 (no
 * lambdaguard.standby_imports to mark what was imported), the file stays
 * and the worker says so, trying again every minute.
 */
static void
try_import(void)
{
	if (GetCurrentTimestamp() - last_import_try < LG_MS(LG_PURGE_INTERVAL_MS) &&
		last_import_try != 0)
		return;
	last_import_try = GetCurrentTimestamp();
	if (lg_history_import() < 0)
	{
		ereport(LOG,
				(errmsg("pg_lambdaguard: the standby history in \"%s\" is not imported: lambdaguard.standby_imports does not exist in database \"%s\"",
						lg_journal_path(), lg_database),
				 errhint("Run ALTER EXTENSION pg_lambdaguard UPDATE.")));
		return;
	}
	import_pending = false;
	last_import_try = 0;
}

/* ----------
 * The worker's main loop
 * ----------
 */
void
lg_worker_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(lg_database, NULL, 0);
	pgstat_report_appname("pg_lambdaguard worker");

	/* a locked history table must end in an error, not a hang */
	SetConfigOption("lock_timeout", LG_LOCK_TIMEOUT, PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * The worker runs as the bootstrap superuser: its statements must not
	 * resolve functions or operators through a search_path that the
	 * database's owner may set (ALTER DATABASE ... SET search_path).
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	scan_context = AllocSetContextCreate(TopMemoryContext,
										 "pg_lambdaguard scan",
										 ALLOCSET_DEFAULT_SIZES);

	/* keep the counters of earlier incarnations, start the rest afresh */
	lg_worker_info_copy(&info);
	info.pid = MyProcPid;
	info.started_at = GetCurrentTimestamp();
	info.brake_since = 0;
	lg_worker_info_update(&info);
	request_attach();

	ereport(LOG,
			(errmsg("pg_lambdaguard: worker started in database \"%s\"%s", lg_database,
					RecoveryInProgress() ? " (hot standby: decisions are recorded in the standby history)" : "")));

	PG_TRY();
	{
		for (;;)
		{
			long		sleep_ms = lg_naptime;

			/* awake: a backend that declares a deadline now sets the latch */
			lg_worker_wakes_at(0, MyLatch);
			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}

			/* promoted (or started after it): import the standby's journal */
			if (import_pending && !RecoveryInProgress())
				try_import();

			/* scan(false) is served even while the worker is switched off */
			serve_request();

			/* switched off: decide nothing, record nothing, signal nobody */
			if (lg_enabled)
				sleep_ms = run_scan(InvalidOid, 0, NULL, NULL);

			if (sleep_ms > 0)
			{
				/* a deadline due before this wakes the worker (lg_invocation.c) */
				lg_worker_wakes_at(GetCurrentTimestamp() + LG_MS(sleep_ms), MyLatch);
				(void) WaitLatch(MyLatch,
								 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 sleep_ms,
								 PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
			}
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* keep the message for lambdaguard.worker, then die as usual */
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		lg_worker_note_error(edata->message, lg_history_writing());
		if (serving)
			request_finish(NULL, 0, edata->message);
		FreeErrorData(edata);
		RESUME_INTERRUPTS();
		PG_RE_THROW();
	}
	PG_END_TRY();
}
