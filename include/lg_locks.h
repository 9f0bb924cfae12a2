/*-------------------------------------------------------------------------
 *
 * lg_locks.h
 *		Who blocks whom: one look at the lock manager per scan or view read,
 *		taken only when some backend waits on a lock.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_LOCKS_H
#define LG_LOCKS_H

#include "lg_decision.h"

/* One look at the lock manager: the (blocker, waiter) pairs */
typedef struct LgLockView
{
	struct LockData *data;		/* NULL until taken */
	int			npairs;
	int		   *blocker;		/* pairs sorted by (blocker, waiter) */
	int		   *waiter;
} LgLockView;

extern void lg_lock_view_take(LgLockView *v);
extern int	lg_waiters_of(const LgLockView *v, int pid, int **out);
extern int	lg_locks_held_by(const LgLockView *v, int pid);

/* Fill each session's "blocking" count from a view (taken if need be) */
extern void lg_attach_blocking_with(LgSnapshot *snap, LgLockView *v);
extern void lg_attach_blocking(LgSnapshot *snap);

#endif							/* LG_LOCKS_H */
