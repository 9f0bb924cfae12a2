/*-------------------------------------------------------------------------
 *
 * lg_locks.c
 *		Who blocks whom, from one look at the lock manager per scan or per
 *		read of lambdaguard.sessions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/wait_event.h"

#include "lg_compat.h"
#include "lg_locks.h"

/*
 * One look at the lock manager: who waits on whom.  GetLockStatusData()
 * takes every partition lock once and copies the lock table; pairs are
 * found by sorting the lock instances by lock tag, so that the cost grows
 * with the number of locks, not with waiters times locks.  A session blocks
 * a waiter when it holds a mode that conflicts with the mode waited for (a
 * session idle in a transaction waits for nothing, so it can only block as
 * a holder); members of one lock group do not block each other.
 */

static int
cmp_instance_tag(const void *a, const void *b)
{
	const LockInstanceData *x = *(const LockInstanceData *const *) a;
	const LockInstanceData *y = *(const LockInstanceData *const *) b;

	return memcmp(&x->locktag, &y->locktag, sizeof(LOCKTAG));
}

typedef struct LgPair
{
	int			blocker;
	int			waiter;
} LgPair;

static int
cmp_pair(const void *a, const void *b)
{
	const LgPair *x = (const LgPair *) a;
	const LgPair *y = (const LgPair *) b;

	if (x->blocker != y->blocker)
		return x->blocker < y->blocker ? -1 : 1;
	if (x->waiter != y->waiter)
		return x->waiter < y->waiter ? -1 : 1;
	return 0;
}

/* Does any backend wait on a heavyweight lock now?  Read without a lock. */
static bool
anyone_waits_on_a_lock(void)
{
	uint32		i;

	for (i = 0; i < ProcGlobal->allProcCount; i++)
	{
		PGPROC	   *proc = &ProcGlobal->allProcs[i];
		uint32		wait = *((volatile uint32 *) &proc->wait_event_info);

		if (proc->pid != 0 && (wait & 0xFF000000) == PG_WAIT_LOCK)
			return true;
	}
	return false;
}

void
lg_lock_view_take(LgLockView *v)
{
	LockData   *data;
	LockInstanceData **sorted;
	LgPair	   *pairs;
	int			npairs = 0;
	int			cap = 16;
	int			i,
				kept;

	if (v->data != NULL)
		return;
	data = v->data = GetLockStatusData();
	sorted = palloc(sizeof(LockInstanceData *) * Max(data->nelements, 1));
	for (i = 0; i < data->nelements; i++)
		sorted[i] = &data->locks[i];
	qsort(sorted, data->nelements, sizeof(LockInstanceData *), cmp_instance_tag);
	pairs = palloc(sizeof(LgPair) * cap);

	for (i = 0; i < data->nelements; i++)
	{
		LockInstanceData *w = sorted[i];
		int			conflicts;
		int			j;

		if (w->waitLockMode == NoLock)
			continue;
		conflicts = GetLockTagsMethodTable(&w->locktag)->conflictTab[w->waitLockMode];
		/* the instances of the same lock lie next to this one */
		for (j = i; j > 0 && cmp_instance_tag(&sorted[j - 1], &w) == 0; j--)
			;
		for (; j < data->nelements && cmp_instance_tag(&sorted[j], &w) == 0; j++)
		{
			LockInstanceData *h = sorted[j];

			if (h == w || h->leaderPid == w->leaderPid || !(conflicts & h->holdMask))
				continue;
			if (npairs == cap)
			{
				cap *= 2;
				pairs = repalloc(pairs, sizeof(LgPair) * cap);
			}
			pairs[npairs].blocker = h->leaderPid;
			pairs[npairs].waiter = w->pid;
			npairs++;
		}
	}
	pfree(sorted);

	/* sorted and without duplicates, for lg_waiters_of() */
	qsort(pairs, npairs, sizeof(LgPair), cmp_pair);
	v->blocker = palloc(sizeof(int) * Max(npairs, 1));
	v->waiter = palloc(sizeof(int) * Max(npairs, 1));
	kept = 0;
	for (i = 0; i < npairs; i++)
	{
		if (kept > 0 && v->blocker[kept - 1] == pairs[i].blocker &&
			v->waiter[kept - 1] == pairs[i].waiter)
			continue;
		v->blocker[kept] = pairs[i].blocker;
		v->waiter[kept] = pairs[i].waiter;
		kept++;
	}
	v->npairs = kept;
	pfree(pairs);
}

/* The pids that wait on "pid"'s locks; returns their number */
int
lg_waiters_of(const LgLockView *v, int pid, int **out)
{
	int			lo = 0,
				hi = v->npairs;
	int			n = 0;

	if (out)
		*out = NULL;
	/* first pair whose blocker is >= pid */
	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (v->blocker[mid] < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo + n < v->npairs && v->blocker[lo + n] == pid)
		n++;
	if (out && n > 0)
	{
		*out = palloc(sizeof(int) * n);
		memcpy(*out, &v->waiter[lo], sizeof(int) * n);
	}
	return n;
}

/* Lock instances held by one pid */
int
lg_locks_held_by(const LgLockView *v, int pid)
{
	int			i;
	int			n = 0;

	for (i = 0; i < v->data->nelements; i++)
		if (v->data->locks[i].pid == pid && v->data->locks[i].holdMask != 0)
			n++;
	return n;
}

/*
 * Fill s->blocking for every session of the snapshot, taking the lock view
 * only if some backend waits on a lock at all.
 */
void
lg_attach_blocking_with(LgSnapshot *snap, LgLockView *v)
{
	int			i;

	if (v->data == NULL && !anyone_waits_on_a_lock())
		return;
	lg_lock_view_take(v);
	for (i = 0; i < snap->nsessions; i++)
		snap->sessions[i].blocking = lg_waiters_of(v, snap->sessions[i].pid, NULL);
}

/* For the sessions view: every session's blocking count */
void
lg_attach_blocking(LgSnapshot *snap)
{
	LgLockView	v;

	memset(&v, 0, sizeof(v));
	lg_attach_blocking_with(snap, &v);
}
