/*-------------------------------------------------------------------------
 *
 * lg_worker.c
 *		The background worker: scans, sleeps until the next session falls
 *		due (at most lambdaguard.naptime), records what it did.
 *
 * It connects to lambdaguard.database and starts once recovery is over.  A
 * scan reads backend status from shared memory; a transaction is open only
 * for the catalog lookups and the history rows.  An ERROR ends the worker
 * (its message kept in lambdaguard.worker) and the postmaster starts it
 * again after bgw_restart_time, without a crash-restart of the cluster.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "portability/instr_time.h"

#include "pg_lambdaguard.h"
#include "lg_compat.h"

/* Seconds between two restarts after an error: no tight loop */
#define LG_RESTART_SECONDS		10
/* How often old history is deleted */
#define LG_PURGE_INTERVAL_MS	60000
/* The worker waits this long for a lock on the history table, then errors */
#define LG_LOCK_TIMEOUT			"5s"

static LgWorkerInfo info;
static MemoryContext scan_context = NULL;
static bool said_no_extension = false;
static TimestampTz last_purge = 0;

void
lg_worker_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
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
 * One scan in its own transaction.  Returns how long to sleep, in ms.
 */
static long
lg_worker_scan(void)
{
	TimestampTz next_due;
	TimestampTz now;
	int			nseen;
	bool		braked;
	bool		have_history;
	List	   *decisions = NIL;
	ListCell   *lc;
	instr_time	start,
				elapsed;
	long		sleep_ms = longest_sleep();
	MemoryContext old;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	old = MemoryContextSwitchTo(scan_context);

	have_history = OidIsValid(lg_history_relid());
	if (!have_history)
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
		MemoryContextSwitchTo(old);
		CommitTransactionCommand();
		MemoryContextReset(scan_context);
		return sleep_ms;
	}
	if (said_no_extension)
		ereport(LOG,
				(errmsg("pg_lambdaguard: the extension now exists in database \"%s\"; the worker starts recording",
						lg_database)));
	said_no_extension = false;

	INSTR_TIME_SET_CURRENT(start);
	decisions = lg_scan(LG_SCAN_WORKER, &next_due, &nseen, &braked);
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);

	/* lg_scan() wrote a history row for each decision */
	foreach(lc, decisions)
	{
		LgDecision *d = (LgDecision *) lfirst(lc);

		info.orphans_found++;
		if (d->action == LG_ACTION_TERMINATE)
			info.terminated++;
		else if (d->action == LG_ACTION_CANCEL)
			info.cancelled++;
		else if (d->action == LG_ACTION_DRY_RUN)
			info.dry_run_hits++;
	}

	if (GetCurrentTimestamp() - last_purge >= LG_PURGE_INTERVAL_MS * INT64CONST(1000))
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		lg_purge_history();
		PopActiveSnapshot();
		last_purge = GetCurrentTimestamp();
	}

	MemoryContextSwitchTo(old);
	CommitTransactionCommand();
	MemoryContextReset(scan_context);

	now = GetCurrentTimestamp();
	info.scans++;
	info.last_scan_at = now;
	info.last_scan_us = INSTR_TIME_GET_MICROSEC(elapsed);
	info.sessions_seen = nseen;
	lg_worker_info_update(&info);

	/*
	 * Sleep until the next session falls due, rounded up to the next ms, but
	 * never longer than longest_sleep().  When the storm brake held signals
	 * back, wait a whole naptime: that is the brake.
	 */
	if (braked)
		sleep_ms = lg_naptime;
	else if (next_due != 0)
	{
		int64		wait_us = next_due - now;

		if (wait_us <= 0)
			sleep_ms = 0;
		else
			sleep_ms = Min((long) ((wait_us + 999) / 1000), sleep_ms);
	}
	return sleep_ms;
}

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
	lg_worker_info_update(&info);

	ereport(LOG,
			(errmsg("pg_lambdaguard: worker started in database \"%s\"", lg_database)));

	PG_TRY();
	{
		for (;;)
		{
			long		sleep_ms = lg_naptime;

			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}

			/* switched off: decide nothing, record nothing, signal nobody */
			if (lg_enabled)
				sleep_ms = lg_worker_scan();

			if (sleep_ms > 0)
			{
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
		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		lg_worker_note_error(edata->message);
		FreeErrorData(edata);
		PG_RE_THROW();
	}
	PG_END_TRY();
}
