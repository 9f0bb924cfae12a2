/*-------------------------------------------------------------------------
 *
 * pg_lambdaguard.h
 *		Declarations shared by the C files of pg_lambdaguard.
 *
 * The extension has two concerns, each with its own lifecycle:
 *
 *	- orphans (lg_orphan.c): a session is seen in the backend status array,
 *	  judged by the verdict table, re-checked live, signalled and recorded.
 *	  The background worker (lg_worker.c) and lambdaguard.scan() both drive it.
 *
 *	- pinning (lg_pinning.c): a statement passes a hook, is classified into
 *	  reasons, and is published to shared memory (lg_state.c), from where the
 *	  SQL-facing functions (lg_views.c) read it.
 *
 * Copyright (c) 2026, pg_lambdaguard developers
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_LAMBDAGUARD_H
#define PG_LAMBDAGUARD_H

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "libpq/hba.h"
#include "libpq/pqcomm.h"
#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "utils/backend_status.h"

#include "lg_match.h"

/* ----------
 * Pinning reasons.  The order is the order of the bits in a reason mask and
 * of the rows the SQL functions return; lg_reason_names[] must match.
 * ----------
 */
typedef enum LgReason
{
	LG_REASON_SET = 0,
	LG_REASON_SET_CONFIG,
	LG_REASON_PREPARED_STATEMENT,
	LG_REASON_PROTOCOL_PREPARED_STATEMENT,
	LG_REASON_DISCARD,
	LG_REASON_TEMP_TABLE,
	LG_REASON_TEMP_SEQUENCE,
	LG_REASON_TEMP_VIEW,
	LG_REASON_CURSOR,
	LG_REASON_CURSOR_WITH_HOLD,
	LG_REASON_LISTEN,
	LG_REASON_LOAD,
	LG_REASON_SEQUENCE_FUNCTION,
	LG_REASON_ADVISORY_LOCK,
	LG_REASON_STATEMENT_TOO_LARGE
} LgReason;

#define LG_NUM_REASONS			(LG_REASON_STATEMENT_TOO_LARGE + 1)
#define LG_REASON_BIT(r)		((uint32) 1 << (r))
#define LG_ALL_REASONS			(LG_REASON_BIT(LG_NUM_REASONS) - 1)

/*
 * The reasons that pin RDS Proxy (lambdaguard.reasons.pins_rds_proxy): all
 * but named protocol-level statements, which it multiplexes since 2023.
 * sessions.pinned means pin_reasons holds one of these.
 */
#define LG_PINS_RDS_PROXY_MASK \
	(LG_ALL_REASONS & ~LG_REASON_BIT(LG_REASON_PROTOCOL_PREPARED_STATEMENT))

/*
 * What pinned_idle acts on: a session pinned at the proxy, or holding state
 * that a transaction pooler would hand to the next client; never a session
 * whose only reason is a named protocol-level statement (the drivers that
 * name their statements keep one on every pooled connection).
 */
#define LG_PINNED_IDLE_REASONS(pin_mask, dirty_mask) \
	((((pin_mask) & LG_PINS_RDS_PROXY_MASK) | (dirty_mask)) & \
	 ~LG_REASON_BIT(LG_REASON_PROTOCOL_PREPARED_STATEMENT))

extern const char *const lg_reason_names[LG_NUM_REASONS];

/* RDS Proxy pins on statements longer than this many bytes */
#define LG_STATEMENT_TOO_LARGE	16384

/* ----------
 * Verdicts and actions (lambdaguard.history.verdict / .action)
 * ----------
 */
typedef enum LgVerdict
{
	LG_VERDICT_OK = 0,
	LG_VERDICT_ORPHAN,
	LG_VERDICT_ORPHAN_ABORTED,
	LG_VERDICT_ORPHAN_BLOCKING,
	LG_VERDICT_PINNED_IDLE,
	LG_VERDICT_OVERDUE_QUERY
} LgVerdict;

#define LG_NUM_VERDICTS			(LG_VERDICT_OVERDUE_QUERY + 1)

typedef enum LgAction
{
	LG_ACTION_NONE = 0,
	LG_ACTION_TERMINATE,
	LG_ACTION_CANCEL,
	LG_ACTION_DRY_RUN,
	LG_ACTION_SKIPPED,
	LG_ACTION_FAILED
} LgAction;

#define LG_NUM_ACTIONS			(LG_ACTION_FAILED + 1)

extern const char *const lg_verdict_names[LG_NUM_VERDICTS];
extern const char *const lg_action_names[LG_NUM_ACTIONS];

/* ----------
 * Settings (pg_lambdaguard.c).  The parsed forms of the list settings are
 * kept as GUC "extra" data and published through these pointers.
 * ----------
 */
typedef enum LgTrackPinning
{
	LG_TRACK_NONE,
	LG_TRACK_WATCHED,
	LG_TRACK_ALL
} LgTrackPinning;

extern char *lg_database;
extern bool lg_enabled;
extern int	lg_naptime;
extern int	lg_idle_in_transaction_timeout;
extern int	lg_aborted_transaction_timeout;
extern int	lg_blocking_timeout;
extern int	lg_pinned_idle_timeout;
extern int	lg_active_timeout;
extern bool lg_dry_run;
extern int	lg_max_terminations;
extern int	lg_history_retention;
extern int	lg_track_pinning;
extern int	lg_max_events;

extern const LgNameList *lg_roles_list;
extern const LgNameList *lg_appname_list;
extern const LgCidrList *lg_addr_list;
extern const LgNameList *lg_ignored_list;

/* ----------
 * Shared state (lg_state.c)
 * ----------
 */

/* Longest text kept for sessions.pinned_by */
#define LG_PINNED_BY_LEN		192
/* Longest statement text kept for one event */
#define LG_EVENT_STMT_LEN		1024
/* Bytes of event text storage per event slot, on average */
#define LG_EVENT_TEXT_PER_EVENT 80
/* Capacity of the (role, database, reason) statistics table */
#define LG_MAX_STATS			1024

/*
 * One backend's pinning state, written only by that backend and read by
 * anyone under the change-counter protocol of PgBackendStatus.
 */
typedef struct LgBackendSlot
{
	int			changecount;
	int			pid;
	TimestampTz backend_start;	/* MyStartTimestamp of the owner */
	uint32		pin_mask;		/* sticky: every reason since start */
	uint32		dirty_mask;		/* session state present now */
	TimestampTz pinned_since;
	char		pinned_by[LG_PINNED_BY_LEN];
} LgBackendSlot;

/* A copy of one slot, taken consistently */
typedef struct LgPinState
{
	uint32		pin_mask;
	uint32		dirty_mask;
	TimestampTz pinned_since;
	char		pinned_by[LG_PINNED_BY_LEN];
} LgPinState;

/* One pinning event, as copied out of the ring */
typedef struct LgEvent
{
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

extern void lg_shmem_request(void);
extern void lg_shmem_startup(void);
extern bool lg_shmem_ready(void);
extern void lg_require_shmem(void);

extern void lg_slot_attach(void);
extern void lg_slot_publish(uint32 pin_mask, uint32 dirty_mask,
							TimestampTz pinned_since, const char *pinned_by);
extern int	lg_slot_count(void);
extern bool lg_slot_read(int index, int *pid, TimestampTz *backend_start,
						 LgPinState *state, bool with_text);

extern void lg_event_publish(LgReason reason, bool hidden, bool new_for_session,
							 const char *statement, int stmt_len, uint64 queryid);
extern LgEvent *lg_events_copy(int *nevents);
extern LgStat *lg_stats_copy(int *nstats);
extern void lg_pinning_reset(void);

extern void lg_count_action(LgVerdict verdict, LgAction action);
extern uint64 lg_action_count(LgVerdict verdict, LgAction action);
extern uint64 lg_stats_dropped(void);

extern void lg_worker_info_update(const LgWorkerInfo *info);
extern void lg_worker_info_copy(LgWorkerInfo *info);
extern void lg_worker_note_error(const char *message, bool history);

/* ----------
 * Pinning hooks (lg_pinning.c)
 * ----------
 */
extern void lg_pinning_install_hooks(void);

/* ----------
 * Orphans (lg_orphan.c)
 * ----------
 */

/* One client backend as a scan sees it */
typedef struct LgSession
{
	int			index;			/* slot in the backend status array */
	int			pid;
	BackendType backend_type;
	Oid			userid;
	Oid			dbid;
	TimestampTz backend_start;
	TimestampTz xact_start;
	TimestampTz query_start;
	TimestampTz state_change;
	BackendState state;
	SockAddr	addr;
	char	   *appname;		/* points to appname_buf */
	char	   *query;			/* NULL unless asked for */
	char		appname_buf[NAMEDATALEN];
	bool		superuser;
	bool		watched;
	bool		has_pins;
	LgPinState	pins;
	int			blocking;		/* sessions waiting on its locks, or -1 */
	LgVerdict	verdict;
	LgAction	action;			/* what is due now, LG_ACTION_NONE if nothing */
	TimestampTz action_at;		/* when the guard will act, 0 if never */
	TimestampTz next_due;		/* earliest future due moment, 0 if none */
} LgSession;

typedef struct LgSnapshot
{
	int			nsessions;
	LgSession  *sessions;
} LgSnapshot;

/* ----------
 * Who blocks whom (lg_locks.c)
 * ----------
 */
/* One look at the lock manager: the (blocker, waiter) pairs */
typedef struct LgLockView
{
	struct LockData *data;			/* NULL until taken */
	int			npairs;
	int		   *blocker;		/* pairs sorted by (blocker, waiter) */
	int		   *waiter;
} LgLockView;

extern void lg_lock_view_take(LgLockView *v);
extern int	lg_waiters_of(const LgLockView *v, int pid, int **out);
extern int	lg_locks_held_by(const LgLockView *v, int pid);
extern void lg_attach_blocking_with(LgSnapshot *snap, LgLockView *v);

/* A decision made by one scan, as written to lambdaguard.history */
typedef struct LgDecision
{
	LgSession	s;
	LgAction	action;
	int			locks_held;
	int			nblocked;
	int		   *blocked_pids;
	const char *detail;
	const char *denied;			/* why the caller may not signal it, or NULL */
	char		role[NAMEDATALEN];	/* names looked up when it was decided */
	char		db[NAMEDATALEN];
	TimestampTz at;
	int64		id;				/* its lambdaguard.history row, 0 if none */
} LgDecision;

/* The lambdaguard.roles list resolved to role OIDs in this transaction */
typedef struct LgWatchFilter
{
	bool		star;
	int			nroles;
	Oid		   *roles;
} LgWatchFilter;

extern void lg_watch_filter_init(LgWatchFilter *filter);
extern bool lg_watch_match(const LgWatchFilter *filter, Oid userid,
						   bool superuser, const char *appname,
						   const SockAddr *addr);

extern LgSnapshot *lg_take_snapshot(bool with_text, bool need_pins);
extern void lg_judge(LgSession *s, TimestampTz now);
extern void lg_attach_blocking(LgSnapshot *snap);
extern List *lg_decide(TimestampTz now, bool with_text, Oid caller,
					   int exclude_pid, TimestampTz *next_due, int *nseen);
extern LgAction lg_act(LgDecision *d);
extern TimestampTz lg_episode_start(const LgSession *s);
extern bool lg_session_alive(int index, int pid, TimestampTz backend_start);

/* ----------
 * The audit trail (lg_history.c).  Each write is its own transaction,
 * committed before the signal it records; the caller has none open.
 * ----------
 */

/* lambdaguard.history has this many columns; column 0 is its id */
#define LG_HISTORY_NATTS 18
extern void lg_history_values(LgDecision *d, Datum *values, bool *nulls);
extern void lg_history_check_tupdesc(TupleDesc tupdesc, int *map);
extern Oid	lg_history_relid(void);
extern void lg_history_record(LgDecision *d, LgAction action, const char *detail);
extern void lg_history_correct(LgDecision *d, LgAction action, const char *detail);
extern void lg_history_purge(void);
extern void lg_log_decision(LgDecision *d);
extern List *lg_history_fetch(const int64 *ids, int nids);
extern bool lg_history_writing;

/* ----------
 * Helpers shared with the views (lg_views.c)
 * ----------
 */
extern Datum lg_inet_datum(const SockAddr *addr, bool *isnull);
extern const char *lg_state_name(BackendState state);
extern Datum lg_reasons_array(uint32 mask, bool *isnull);
extern bool lg_may_read_query(Oid userid);

/* ----------
 * Background worker (lg_worker.c)
 * ----------
 */
extern void lg_worker_register(void);
extern Size lg_worker_shmem_size(void);
extern void lg_worker_shmem_init(void);
extern List *lg_worker_act_for(Oid caller);
PGDLLEXPORT void lg_worker_main(Datum main_arg);

#endif							/* PG_LAMBDAGUARD_H */
