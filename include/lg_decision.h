/*-------------------------------------------------------------------------
 *
 * lg_decision.h
 *		What the orphan guard passes along an orphan's lifecycle: a session
 *		as a scan sees it, the scan's snapshot, and a decision about one
 *		session as lambdaguard.history records it.  Types only: the orphan
 *		guard (lg_orphan.c), the audit trail (lg_history.c) and the SQL
 *		layer share them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_DECISION_H
#define LG_DECISION_H

#include "libpq/pqcomm.h"
#include "utils/backend_status.h"

#include "lg_labels.h"
#include "lg_shmem.h"

/* Milliseconds (a timeout setting) to TimestampTz units */
#define LG_MS(x)	((int64) (x) * 1000)

/*
 * One client backend as a scan sees it.  What every scan reads and judges
 * comes first, in two cache lines: a scan of a thousand sessions touches
 * those only.  The address, the application name and the pinning state
 * after them are filled only when asked for (addr_read, appname_read,
 * has_pins).
 */
typedef struct LgSession
{
	int			index;			/* slot in the backend status array */
	int			pid;
	BackendType backend_type;
	Oid			userid;
	Oid			dbid;
	BackendState state;
	TimestampTz backend_start;
	TimestampTz xact_start;
	TimestampTz query_start;
	TimestampTz state_change;
	const char *appname;		/* appname_buf, or "" when not read */
	char	   *query;			/* NULL unless asked for */
	bool		superuser;
	bool		watched;
	bool		has_pins;
	bool		addr_read;		/* addr holds the client's address */
	bool		appname_read;	/* appname_buf holds the name */
	int			blocking;		/* sessions waiting on its locks, or -1 */
	LgVerdict	verdict;
	LgAction	action;			/* what is due now, LG_ACTION_NONE if nothing */
	TimestampTz action_at;		/* when the guard will act, 0 if never */
	TimestampTz next_due;		/* earliest future due moment, 0 if none */
	SockAddr	addr;
	char		appname_buf[NAMEDATALEN];
	LgPublishedPins pins;
} LgSession;

typedef struct LgSnapshot
{
	int			nsessions;
	LgSession  *sessions;
	int			nseen;			/* client backends seen, kept or not */
} LgSnapshot;

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

/*
 * Does the invocation context in the session's slot belong to its open
 * transaction?  The slot says which transaction (its start); a failed one
 * (idle in transaction (aborted)) shows no start in pg_stat_activity, so
 * there the slot's own mark counts.
 */
static inline bool
lg_context_current(const LgSession *s)
{
	if (!s->has_pins || s->pins.ctx_xact_start == 0)
		return false;
	if (s->state == STATE_IDLEINTRANSACTION_ABORTED)
		return s->pins.ctx_aborted;
	return s->xact_start == s->pins.ctx_xact_start && !s->pins.ctx_aborted;
}

/* When the session's current episode began: its statement, or its state */
static inline TimestampTz
lg_episode_start(const LgSession *s)
{
	return s->state == STATE_RUNNING ? s->query_start : s->state_change;
}

#endif							/* LG_DECISION_H */
