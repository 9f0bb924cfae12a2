/*-------------------------------------------------------------------------
 *
 * lg_shmem.h
 *		pg_lambdaguard's shared memory: one pinning slot per backend, the
 *		event ring with its statistics, the action counters and the
 *		worker's figures.  The locking protocol is stated at the top of
 *		src/shmem/lg_shmem.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_SHMEM_H
#define LG_SHMEM_H

#include "datatype/timestamp.h"
#include "storage/latch.h"

#include "lg_context.h"
#include "lg_labels.h"

/* Name of the LWLock tranche the root requests for this module */
#define LG_SHMEM_TRANCHE		"pg_lambdaguard"

/* Longest text kept for sessions.pinned_by */
#define LG_PINNED_BY_LEN		192
/* Longest statement text kept for one event */
#define LG_EVENT_STMT_LEN		1024
/* Bytes of event text storage per event slot, on average */
#define LG_EVENT_TEXT_PER_EVENT 80
/* Capacity of the (role, database, reason) statistics table */
#define LG_MAX_STATS			1024

/* What one backend published of its pinning: a consistent copy of its slot */
typedef struct LgPublishedPins
{
	LgReasonMask pin_mask;		/* sticky: every reason since start */
	LgReasonMask dirty_mask;	/* session state present now */
	TimestampTz pinned_since;
	char		pinned_by[LG_PINNED_BY_LEN];
	LgContext	pinned_ctx;		/* the invocation of pinned_by */
	/* the invocation of the transaction that started at ctx_xact_start */
	TimestampTz ctx_xact_start;
	bool		ctx_aborted;	/* that transaction failed and is still open */
	TimestampTz deadline;		/* its earliest deadline, 0 if none */
	LgContext	ctx;			/* its pairs (copied only with text) */
} LgPublishedPins;

/* One pinning event, as copied out of the ring */
typedef struct LgEvent
{
	uint64		seqno;			/* its position in the ring, ever */
	TimestampTz at;
	int			pid;
	Oid			userid;
	Oid			dbid;
	uint8		reason;
	bool		hidden;
	uint8		family;			/* AF_INET, AF_INET6, or 0 for none */
	unsigned char addr[16];
	uint64		queryid;
	char	   *appname;		/* NULL once the text was overwritten */
	char	   *statement;
	LgContext	ctx;			/* its statement's invocation */
} LgEvent;

typedef struct LgStatKey
{
	Oid			userid;
	Oid			dbid;
	int32		reason;
} LgStatKey;

typedef struct LgStat
{
	LgStatKey	key;
	int64		events;
	int64		sessions;
	TimestampTz last_seen;
	int64		hidden_events;	/* of events, made inside a function */
} LgStat;

/* The worker's figures (lambdaguard.worker), updated by the worker only */
typedef struct LgWorkerInfo
{
	int			pid;
	TimestampTz started_at;
	TimestampTz last_scan_at;
	int64		scans;
	int			sessions_seen;
	int64		last_scan_us;
	int64		orphans_found;
	int64		terminated;
	int64		cancelled;
	int64		dry_run_hits;
	int64		errors;
	int64		history_errors; /* errors while writing lambdaguard.history */
	TimestampTz brake_since;	/* since when the storm brake holds, or 0 */
	char		last_error[256];
} LgWorkerInfo;

/* Set-up: the root requests lg_shmem_size() and calls lg_shmem_init() */
extern Size lg_shmem_size(void);
extern void lg_shmem_init(void);
extern bool lg_shmem_ready(void);
extern void lg_require_shmem(void);

/* Backend slots: written by their owner only, read by anyone */
extern void lg_slot_publish(LgReasonMask pin_mask, LgReasonMask dirty_mask,
							TimestampTz pinned_since, const char *pinned_by,
							const LgContext *pinned_ctx);
extern void lg_slot_publish_context(TimestampTz xact_start, TimestampTz deadline,
									TimestampTz due, const LgContext *ctx);
extern void lg_slot_context_ended(bool aborted);
extern int	lg_slot_count(void);
extern bool lg_slot_read(int index, int *pid, TimestampTz *backend_start,
						 LgPublishedPins *pins, bool with_text);

/* The event ring and its statistics */
extern void lg_event_publish(LgReason reason, bool hidden, bool new_for_session,
							 const char *statement, int stmt_len, uint64 queryid,
							 const LgContext *ctx);
extern LgEvent *lg_events_copy(int *nevents);
extern LgStat *lg_stats_copy(int *nstats);
extern uint64 lg_stats_dropped(void);
extern void lg_pinning_reset(void);

/* Action counters */
extern void lg_count_action(LgVerdict verdict, LgAction action);
extern uint64 lg_action_count(LgVerdict verdict, LgAction action);

/* The worker's figures */
extern void lg_worker_info_update(const LgWorkerInfo *info);
extern void lg_worker_info_copy(LgWorkerInfo *info);
extern void lg_worker_note_error(const char *message, bool history);
extern void lg_worker_wakes_at(TimestampTz when, Latch *latch);

#endif							/* LG_SHMEM_H */
