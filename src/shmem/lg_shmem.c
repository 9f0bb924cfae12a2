/*-------------------------------------------------------------------------
 *
 * lg_shmem.c
 *		Shared state of pg_lambdaguard: per-backend pinning slots, the event
 *		ring, cumulative statistics, action counters and the worker's figures.
 *
 * Locking protocol
 * ----------------
 * - Backend slots (one per backend, indexed like PGPROC) are written only by
 *   the backend that owns them, without a lock, under a change counter as
 *   PgBackendStatus does: the owner increments changecount before and after
 *   writing (so it is odd while a write is under way), with write barriers;
 *   a reader copies the slot and retries until it sees the same even count
 *   before and after its copy.  A slot belongs to whichever backend now holds
 *   its index; readers match a slot to a session by (pid, backend start), so
 *   a slot left by an exited backend matches nobody.
 *
 * - The event ring is written without a lock.  A writer claims the next
 *   position with an atomic increment of events_written; the entry at that
 *   position modulo max_events carries a sequence number, 2 * pos + 2 once
 *   event pos is complete.  The writer marks the entry busy (2 * pos + 1)
 *   with a compare-and-swap from an even, older value, fills it, and after a
 *   write barrier stores 2 * pos + 2.  If the entry is busy (an older writer
 *   still fills it) or holds a newer event, the writer leaves it: its event
 *   has already left the ring.  A reader copies an entry and keeps it only
 *   if the sequence number read before and after the copy (with read
 *   barriers) is the same 2 * pos + 2 for the position it expects: an entry
 *   being written or overwritten is skipped, never shown torn.
 *
 * - The event text (application_name and statement) goes to a byte arena
 *   written as a ring; a writer claims its bytes with an atomic increment of
 *   arena_pos before writing them, and its entry remembers their position.
 *   A reader copies the text, then reads arena_pos again: if bytes up to
 *   more than one arena past the text's start were claimed, later events
 *   may have overwritten it, and the text is not shown.
 *
 * - lambdaguard.reset() does not move the ring: it notes the position from
 *   which events are shown (events_reset).
 *
 * - The statistics are a shared hash of entries with atomic counters.  An
 *   entry is found or created under lg->lock held exclusively, once per
 *   backend and reason (the backend keeps the pointer: its user and database
 *   do not change); counting is an atomic increment, without the lock.
 *   Entries are never removed, so a kept pointer stays valid: reset() zeroes
 *   their counters under the lock, and readers (under the lock, shared, for
 *   the hash walk) leave out entries with no event.
 *
 * - Action counters are atomics.  The worker's figures are written by the
 *   worker alone, under a spinlock, and read under it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>
#include <netinet/in.h>

#include "access/xact.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/guc.h"
#include "utils/backend_status.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "lg_compat.h"
#include "lg_context.h"
#include "lg_settings.h"
#include "lg_shmem.h"

/*
 * One backend's pinning state, written only by that backend and read by
 * anyone under the change-counter protocol of PgBackendStatus.
 */
typedef struct LgBackendSlot
{
	int			changecount;
	int			pid;
	TimestampTz backend_start;	/* MyStartTimestamp of the owner */
	LgReasonMask pin_mask;		/* sticky: every reason since start */
	LgReasonMask dirty_mask;	/* session state present now */
	TimestampTz pinned_since;
	char		pinned_by[LG_PINNED_BY_LEN];
	LgContext	pinned_ctx;		/* the invocation of pinned_by */
	/* the invocation of the transaction that started at ctx_xact_start */
	TimestampTz ctx_xact_start;
	bool		ctx_aborted;	/* it failed, and is still open */
	TimestampTz deadline;
	LgContext	ctx;
} LgBackendSlot;

/* One event in the ring */
typedef struct LgEventEntry
{
	pg_atomic_uint64 seq;		/* 2 * pos + 2: event pos is complete */
	TimestampTz at;
	uint64		queryid;
	uint64		text_pos;		/* arena position of appname + statement */
	int			pid;
	Oid			userid;
	Oid			dbid;
	uint16		appname_len;
	uint16		stmt_len;
	uint16		ctx_len;		/* then the context's pairs */
	uint8		ctx_npairs;
	uint8		reason;
	bool		hidden;
	uint8		family;
	unsigned char addr[16];
} LgEventEntry;

typedef struct LgShared
{
	LWLock	   *lock;			/* creating and walking the stats hash */
	int			nslots;
	int			max_events;
	Size		arena_size;
	pg_atomic_uint64 events_written;	/* positions ever claimed */
	pg_atomic_uint64 events_reset;	/* events before this one are not shown */
	pg_atomic_uint64 arena_pos; /* arena bytes ever claimed */
	pg_atomic_uint64 stats_dropped; /* events not counted: stats table full */

	pg_atomic_uint64 actions[LG_NUM_VERDICTS][LG_NUM_ACTIONS];

	slock_t		worker_mutex;
	LgWorkerInfo worker;

	/* when the worker wakes next (0: it is awake), and its latch */
	pg_atomic_uint64 worker_wake_at;
	Latch	   *worker_latch;

	/* then: slots[nslots], events[max_events], arena[arena_size] */
} LgShared;

/* One statistics entry in shared memory: counted with atomics */
typedef struct LgStatEntry
{
	LgStatKey	key;
	pg_atomic_uint64 events;
	pg_atomic_uint64 sessions;
	pg_atomic_uint64 hidden_events;
	pg_atomic_uint64 last_seen;
} LgStatEntry;

static LgShared *lg = NULL;
static LgBackendSlot *lg_slots = NULL;
static LgEventEntry *lg_events = NULL;
static char *lg_arena = NULL;
static HTAB *lg_stats = NULL;

/* This backend's slot, once it published something */
static LgBackendSlot *my_slot = NULL;

/*
 * This backend's stats entries, by reason: its user and database do not
 * change, and entries are never removed.
 */
static LgStatEntry *my_stats[LG_NUM_REASONS];

/* This backend's client address, as events record it: read once */
static bool my_addr_known = false;
static uint8 my_family = 0;
static unsigned char my_addr[16];
static Oid	my_userid = InvalidOid;	/* the authenticated user never changes */

/*
 * The length of application_name, measured again only when the parameter
 * changes (each value is a string of its own: a new pointer)
 */
static const char *my_appname = NULL;
static Size my_appname_len = 0;
static Size my_stmt_max = 0;	/* LG_EVENT_STMT_LEN, or less in a small arena */

static int
lg_num_slots(void)
{
	/* every PGPROC that can run a client backend, plus auxiliary ones */
	return LG_MAX_BACKENDS() + NUM_AUXILIARY_PROCS;
}

static Size
lg_arena_size(void)
{
	return mul_size(lg_max_events, LG_EVENT_TEXT_PER_EVENT);
}

/* The size of everything but the statistics hash */
static Size
lg_shmem_struct_size(void)
{
	Size		size;

	size = MAXALIGN(sizeof(LgShared));
	size = add_size(size, MAXALIGN(mul_size(lg_num_slots(), sizeof(LgBackendSlot))));
	size = add_size(size, MAXALIGN(mul_size(lg_max_events, sizeof(LgEventEntry))));
	size = add_size(size, MAXALIGN(lg_arena_size()));
	return size;
}

Size
lg_shmem_size(void)
{
	return add_size(lg_shmem_struct_size(),
					hash_estimate_size(LG_MAX_STATS, sizeof(LgStatEntry)));
}

/*
 * Attach to (or create) the shared structures.  The caller holds
 * AddinShmemInitLock.
 */
void
lg_shmem_init(void)
{
	bool		found;
	HASHCTL		info;
	char	   *p;

	lg = ShmemInitStruct("pg_lambdaguard", lg_shmem_struct_size(), &found);
	p = (char *) lg + MAXALIGN(sizeof(LgShared));
	lg_slots = (LgBackendSlot *) p;
	p += MAXALIGN(mul_size(lg_num_slots(), sizeof(LgBackendSlot)));
	lg_events = (LgEventEntry *) p;
	p += MAXALIGN(mul_size(lg_max_events, sizeof(LgEventEntry)));
	lg_arena = p;

	if (!found)
	{
		int			v,
					a,
					i;

		memset(lg, 0, MAXALIGN(sizeof(LgShared)));
		lg->lock = &(GetNamedLWLockTranche(LG_SHMEM_TRANCHE))->lock;
		lg->nslots = lg_num_slots();
		lg->max_events = lg_max_events;
		lg->arena_size = lg_arena_size();
		pg_atomic_init_u64(&lg->events_written, 0);
		pg_atomic_init_u64(&lg->events_reset, 0);
		pg_atomic_init_u64(&lg->arena_pos, 0);
		pg_atomic_init_u64(&lg->stats_dropped, 0);
		for (v = 0; v < LG_NUM_VERDICTS; v++)
			for (a = 0; a < LG_NUM_ACTIONS; a++)
				pg_atomic_init_u64(&lg->actions[v][a], 0);
		SpinLockInit(&lg->worker_mutex);
		pg_atomic_init_u64(&lg->worker_wake_at, 0);
		lg->worker_latch = NULL;
		memset(lg_slots, 0, mul_size(lg->nslots, sizeof(LgBackendSlot)));
		memset(lg_events, 0, mul_size(lg->max_events, sizeof(LgEventEntry)));
		for (i = 0; i < lg->max_events; i++)
			pg_atomic_init_u64(&lg_events[i].seq, 0);
	}

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(LgStatKey);
	info.entrysize = sizeof(LgStatEntry);
	lg_stats = lg_shmem_init_hash("pg_lambdaguard stats", LG_MAX_STATS, &info,
								  HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
}

bool
lg_shmem_ready(void)
{
	return lg != NULL;
}

/*
 * Raise the contract's error where shared memory is needed but absent.
 */
void
lg_require_shmem(void)
{
	if (lg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_lambdaguard must be loaded via shared_preload_libraries"),
				 errhint("Add pg_lambdaguard to shared_preload_libraries and restart the server.")));
}

/* ----------
 * Backend slots
 * ----------
 */

#define SLOT_BEGIN_WRITE(slot) \
	do { (slot)->changecount++; pg_write_barrier(); } while (0)
#define SLOT_END_WRITE(slot) \
	do { pg_write_barrier(); (slot)->changecount++; } while (0)

/* Copy a context: only the bytes it uses */
static inline void
context_copy(LgContext *dst, const LgContext *src)
{
	if (src == NULL || src->len == 0)
	{
		dst->len = 0;
		dst->npairs = 0;
		return;
	}
	dst->npairs = src->npairs;
	memcpy(dst->data, src->data, src->len);
	pg_compiler_barrier();
	dst->len = src->len;
}

/*
 * Take over this backend's slot: called before the first publish.
 */
static void
slot_attach(void)
{
	int			index = LG_MY_SLOT_INDEX();

	if (lg == NULL || index < 0 || index >= lg->nslots)
		return;
	my_slot = &lg_slots[index];
	SLOT_BEGIN_WRITE(my_slot);
	my_slot->pid = MyProcPid;
	my_slot->backend_start = MyStartTimestamp;
	my_slot->pin_mask = 0;
	my_slot->dirty_mask = 0;
	my_slot->pinned_since = 0;
	my_slot->pinned_by[0] = '\0';
	my_slot->pinned_ctx.len = 0;
	my_slot->ctx_xact_start = 0;
	my_slot->ctx_aborted = false;
	my_slot->deadline = 0;
	my_slot->ctx.len = 0;
	SLOT_END_WRITE(my_slot);
}

/*
 * Publish this backend's pinning state.  No lock: only we write our slot.
 */
void
lg_slot_publish(LgReasonMask pin_mask, LgReasonMask dirty_mask, TimestampTz pinned_since,
				const char *pinned_by, const LgContext *pinned_ctx)
{
	if (my_slot == NULL)
	{
		slot_attach();
		if (my_slot == NULL)
			return;
	}
	SLOT_BEGIN_WRITE(my_slot);
	my_slot->pin_mask = pin_mask;
	my_slot->dirty_mask = dirty_mask;
	my_slot->pinned_since = pinned_since;
	if (pinned_by)
	{
		strlcpy(my_slot->pinned_by, pinned_by, LG_PINNED_BY_LEN);
		context_copy(&my_slot->pinned_ctx, pinned_ctx);
	}
	SLOT_END_WRITE(my_slot);
}

/*
 * Publish the invocation context of this backend's transaction (the one
 * that started at xact_start) and its deadline.  If the worker would wake
 * only after the deadline falls due, wake it: it sleeps until the next
 * session it knows of falls due, and this one it does not know yet.
 */
void
lg_slot_publish_context(TimestampTz xact_start, TimestampTz deadline,
						TimestampTz due, const LgContext *ctx)
{
	uint64		wake_at;

	if (my_slot == NULL)
	{
		slot_attach();
		if (my_slot == NULL)
			return;
	}
	SLOT_BEGIN_WRITE(my_slot);
	my_slot->ctx_xact_start = xact_start;
	my_slot->ctx_aborted = false;
	my_slot->deadline = deadline;
	context_copy(&my_slot->ctx, ctx);
	SLOT_END_WRITE(my_slot);

	if (due == 0)
		return;
	/* pairs with the barrier in lg_worker_wakes_at(): one of us sees the other */
	pg_memory_barrier();
	wake_at = pg_atomic_read_u64(&lg->worker_wake_at);
	if (wake_at == 0 || (TimestampTz) wake_at > due)
	{
		Latch	   *latch = lg->worker_latch;

		if (latch != NULL)
			SetLatch(latch);
	}
}

/*
 * The transaction of the published context ended (committed: the context
 * is gone) or failed (aborted: it stays while the failed transaction is
 * open; pg_stat_activity then shows no xact_start to match it by).
 */
void
lg_slot_context_ended(bool aborted)
{
	if (my_slot == NULL)
		return;
	SLOT_BEGIN_WRITE(my_slot);
	if (aborted)
		my_slot->ctx_aborted = true;
	else
	{
		my_slot->ctx_xact_start = 0;
		my_slot->ctx_aborted = false;
		my_slot->deadline = 0;
	}
	SLOT_END_WRITE(my_slot);
}

/*
 * The worker says when it will wake next (0: it is awake and about to read
 * every slot), and which latch wakes it.
 */
void
lg_worker_wakes_at(TimestampTz when, Latch *latch)
{
	lg->worker_latch = latch;
	pg_atomic_write_u64(&lg->worker_wake_at, (uint64) when);
	pg_memory_barrier();
}

int
lg_slot_count(void)
{
	return lg ? lg->nslots : 0;
}

/*
 * Copy a context a writer may be changing: bounded, and checked for
 * whole pairs (the change counter decides whether the copy is kept).
 */
static void
context_read(LgContext *dst, const volatile LgContext *src)
{
	uint16		len = src->len;

	if (len > sizeof(dst->data))
		len = 0;
	dst->npairs = src->npairs;
	memcpy(dst->data, (const char *) src->data, len);
	dst->len = len;
	if (len > 0)
		dst->data[len - 1] = '\0';
}

/*
 * Copy slot "index" consistently.  Returns false for a slot nobody uses.
 */
bool
lg_slot_read(int index, int *pid, TimestampTz *backend_start, LgPublishedPins *pins,
			 bool with_text)
{
	LgBackendSlot *slot = &lg_slots[index];

	if (lg == NULL || index < 0 || index >= lg->nslots)
		return false;

	for (;;)
	{
		int			before;
		int			after;

		before = slot->changecount;
		pg_read_barrier();
		*pid = slot->pid;
		*backend_start = slot->backend_start;
		pins->pin_mask = slot->pin_mask;
		pins->dirty_mask = slot->dirty_mask;
		pins->pinned_since = slot->pinned_since;
		pins->ctx_xact_start = slot->ctx_xact_start;
		pins->ctx_aborted = slot->ctx_aborted;
		pins->deadline = slot->deadline;
		if (with_text && pins->pin_mask != 0)
		{
			memcpy(pins->pinned_by, slot->pinned_by, LG_PINNED_BY_LEN);
			context_read(&pins->pinned_ctx, &slot->pinned_ctx);
		}
		if (with_text && pins->ctx_xact_start != 0)
			context_read(&pins->ctx, &slot->ctx);
		pg_read_barrier();
		after = slot->changecount;
		if (before == after && (before & 1) == 0)
			break;
		CHECK_FOR_INTERRUPTS();
	}
	if (with_text && pins->pin_mask != 0)
		pins->pinned_by[LG_PINNED_BY_LEN - 1] = '\0';
	else
	{
		pins->pinned_by[0] = '\0';
		pins->pinned_ctx.len = 0;
	}
	if (!with_text || pins->ctx_xact_start == 0)
		pins->ctx.len = 0;
	return *pid != 0;
}

/* ----------
 * Events and statistics
 * ----------
 */

/*
 * LG_RING_BROKEN builds a ring without its consistency checks (no busy mark,
 * no sequence check, no check that a text was overwritten): only for showing
 * that t/303_event_ring_stress.pl catches torn rows.  Never in a release.
 */
#ifdef LG_RING_BROKEN
#warning "LG_RING_BROKEN: the event ring has no consistency checks"
#endif

static inline void
arena_write(uint64 pos, const char *data, Size len)
{
	Size		size = lg->arena_size;
	Size		off = pos % size;

	if (likely(len <= size - off))
		memcpy(lg_arena + off, data, len);
	else
	{
		Size		first = size - off;

		memcpy(lg_arena + off, data, first);
		memcpy(lg_arena, data + first, len - first);
	}
}

static void
arena_read_raw(uint64 pos, char *out, Size len)
{
	Size		size = lg->arena_size;
	Size		off = pos % size;
	Size		first = Min(len, size - off);

	memcpy(out, lg_arena + off, first);
	if (first < len)
		memcpy(out + first, lg_arena, len - first);
}

/* A text: out has room for its terminator */
static void
arena_read(uint64 pos, char *out, Size len)
{
	arena_read_raw(pos, out, len);
	out[len] = '\0';
}

/* What every event of this backend records alike, read once */
static void
read_my_constants(void)
{
	memset(my_addr, 0, sizeof(my_addr));
	my_family = 0;
	if (MyBEEntry)
	{
		const struct sockaddr *sa = (const struct sockaddr *) &MyBEEntry->st_clientaddr.addr;

		if (sa->sa_family == AF_INET)
		{
			my_family = AF_INET;
			memcpy(my_addr, &((const struct sockaddr_in *) sa)->sin_addr, 4);
		}
		else if (sa->sa_family == AF_INET6)
		{
			my_family = AF_INET6;
			memcpy(my_addr, &((const struct sockaddr_in6 *) sa)->sin6_addr, 16);
		}
	}
	my_userid = GetAuthenticatedUserId();
	my_stmt_max = Min((Size) LG_EVENT_STMT_LEN, lg->arena_size / 4);
	my_addr_known = true;
}

/*
 * This backend's statistics entry for a reason, found or created under
 * lg->lock held exclusively; NULL if the table is full.
 */
static pg_noinline LgStatEntry *
stats_entry(LgReason reason)
{
	LgStatKey	key;
	LgStatEntry *stat;
	bool		found;

	memset(&key, 0, sizeof(key));
	key.userid = GetAuthenticatedUserId();
	key.dbid = MyDatabaseId;
	key.reason = reason;

	LWLockAcquire(lg->lock, LW_EXCLUSIVE);
	stat = hash_search(lg_stats, &key, HASH_FIND, NULL);
	if (stat == NULL && hash_get_num_entries(lg_stats) < LG_MAX_STATS)
	{
		stat = hash_search(lg_stats, &key, HASH_ENTER_NULL, &found);
		if (stat && !found)
		{
			pg_atomic_init_u64(&stat->events, 0);
			pg_atomic_init_u64(&stat->sessions, 0);
			pg_atomic_init_u64(&stat->hidden_events, 0);
			pg_atomic_init_u64(&stat->last_seen, 0);
		}
	}
	LWLockRelease(lg->lock);
	my_stats[reason] = stat;
	return stat;
}

/* Count one event: atomic increments, no lock once the entry is known */
static inline void
stats_count(LgReason reason, bool hidden, bool new_for_session, TimestampTz now)
{
	LgStatEntry *stat = my_stats[reason];
	uint64		seen;

	if (unlikely(stat == NULL) && (stat = stats_entry(reason)) == NULL)
	{
		pg_atomic_fetch_add_u64(&lg->stats_dropped, 1);
		return;
	}
	pg_atomic_fetch_add_u64(&stat->events, 1);
	if (hidden)
		pg_atomic_fetch_add_u64(&stat->hidden_events, 1);
	if (new_for_session)
		pg_atomic_fetch_add_u64(&stat->sessions, 1);
	/* the latest time wins, whichever writer stores last */
	seen = pg_atomic_read_u64(&stat->last_seen);
	while ((int64) seen < now &&
		   !pg_atomic_compare_exchange_u64(&stat->last_seen, &seen, (uint64) now))
		;
}

/*
 * Record one event and count it.  No lock (see the header comment): one
 * atomic increment claims the ring position, a compare-and-swap marks the
 * entry busy, one atomic increment claims the text's bytes.
 */
void
lg_event_publish(LgReason reason, bool hidden, bool new_for_session,
				 const char *statement, int stmt_len, uint64 queryid,
				 const LgContext *ctx)
{
	uint16		ctx_len = ctx ? ctx->len : 0;
	LgEventEntry *e;
	Size		app_len;
	TimestampTz now;
	uint64		pos;
	uint64		busy;
	uint64		text_pos;

	if (lg == NULL)
		return;
	if (unlikely(!my_addr_known))
		read_my_constants();

	/* the statement and the name keep at most a quarter of the arena each */
	if (stmt_len < 0)
		stmt_len = 0;
	if ((Size) stmt_len > my_stmt_max)
		stmt_len = pg_mbcliplen(statement, stmt_len, (int) my_stmt_max);
	if (unlikely(application_name != my_appname))
	{
		const char *appname = application_name ? application_name : "";
		Size		quarter = lg->arena_size / 4;

		my_appname_len = strnlen(appname, NAMEDATALEN - 1);
		if (my_appname_len > quarter)
			my_appname_len = pg_mbcliplen(appname, my_appname_len, (int) quarter);
		my_appname = application_name;
	}
	app_len = my_appname_len;

	/*
	 * The time of a client's statement is when it started (the change is
	 * made then, or a moment later); a change inside a function or
	 * procedure, which may run long, is stamped when it is made.
	 */
	now = hidden ? GetCurrentTimestamp() : GetCurrentStatementStartTimestamp();
	stats_count(reason, hidden, new_for_session, now);

	pos = pg_atomic_fetch_add_u64(&lg->events_written, 1);
	e = &lg_events[pos % lg->max_events];
	busy = 2 * pos + 1;
#ifndef LG_RING_BROKEN
	{
		uint64		old = pg_atomic_read_u64(&e->seq);

		do
		{
			/* an older writer still fills it, or a newer event is there */
			if ((old & 1) != 0 || old > busy)
				return;
		} while (!pg_atomic_compare_exchange_u64(&e->seq, &old, busy));
	}
#endif
	text_pos = pg_atomic_fetch_add_u64(&lg->arena_pos, app_len + stmt_len + ctx_len);
	if (app_len > 0)
		arena_write(text_pos, application_name, app_len);
	arena_write(text_pos + app_len, statement, stmt_len);
	if (ctx_len > 0)
		arena_write(text_pos + app_len + stmt_len, ctx->data, ctx_len);
	e->at = now;
	e->queryid = queryid;
	e->pid = MyProcPid;
	e->userid = my_userid;
	e->dbid = MyDatabaseId;
	e->reason = (uint8) reason;
	e->hidden = hidden;
	e->family = my_family;
	memcpy(e->addr, my_addr, sizeof(my_addr));
	e->text_pos = text_pos;
	e->appname_len = (uint16) app_len;
	e->stmt_len = (uint16) stmt_len;
	e->ctx_len = ctx_len;
	e->ctx_npairs = ctx_len > 0 ? ctx->npairs : 0;
	pg_write_barrier();
	pg_atomic_write_u64(&e->seq, busy + 1);
}

/*
 * A consistent copy of the entry of event pos, or false if it is not there
 * (not complete yet, overwritten, or being overwritten).  A writer that is
 * filling this very event is waited for a little.
 */
static bool
entry_read(uint64 pos, LgEventEntry *out)
{
	LgEventEntry *e = &lg_events[pos % lg->max_events];
	uint64		done = 2 * pos + 2;
	int			spins = 0;

	for (;;)
	{
		uint64		before = pg_atomic_read_u64(&e->seq);

		if (before == done - 1 && spins++ < 1000)
		{
			pg_spin_delay();
			continue;
		}
#ifndef LG_RING_BROKEN
		if (before != done)
			return false;
#endif
		pg_read_barrier();
		memcpy((char *) out + sizeof(pg_atomic_uint64),
			   (char *) e + sizeof(pg_atomic_uint64),
			   sizeof(LgEventEntry) - sizeof(pg_atomic_uint64));
		pg_read_barrier();
#ifndef LG_RING_BROKEN
		if (pg_atomic_read_u64(&e->seq) != done)
			return false;
#endif
		return true;
	}
}

/* Order of events: by time, then by position */
static int
event_cmp(const void *a, const void *b)
{
	const LgEvent *x = (const LgEvent *) a;
	const LgEvent *y = (const LgEvent *) b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return x->seqno < y->seqno ? -1 : x->seqno > y->seqno ? 1 : 0;
}

/*
 * Copy the ring out, oldest first: each entry under its sequence number,
 * each text checked against the arena's claims after its copy.  No lock.
 */
LgEvent *
lg_events_copy(int *nevents)
{
	uint64		written = pg_atomic_read_u64(&lg->events_written);
	uint64		reset = pg_atomic_read_u64(&lg->events_reset);
	uint64		first;
	uint64		pos;
	int			n = 0;
	LgEvent    *out;

	first = written - Min(written - Min(reset, written), (uint64) lg->max_events);
	out = palloc0(sizeof(LgEvent) * Max(written - first, 1));
	for (pos = first; pos < written; pos++)
	{
		LgEventEntry e;
		LgEvent    *o = &out[n];
		char	   *appname;
		char	   *statement;
		uint64		claimed;

		if (!entry_read(pos, &e))
			continue;
		o->seqno = pos;
		o->at = e.at;
		o->pid = e.pid;
		o->userid = e.userid;
		o->dbid = e.dbid;
		o->reason = e.reason;
		o->hidden = e.hidden;
		o->family = e.family;
		memcpy(o->addr, e.addr, sizeof(o->addr));
		o->queryid = e.queryid;
		appname = palloc(e.appname_len + 1);
		arena_read(e.text_pos, appname, e.appname_len);
		statement = palloc(e.stmt_len + 1);
		arena_read(e.text_pos + e.appname_len, statement, e.stmt_len);
		o->ctx.len = Min(e.ctx_len, sizeof(o->ctx.data));
		o->ctx.npairs = e.ctx_npairs;
		if (o->ctx.len > 0)
			arena_read_raw(e.text_pos + e.appname_len + e.stmt_len, o->ctx.data, o->ctx.len);
		pg_read_barrier();
		claimed = pg_atomic_read_u64(&lg->arena_pos);
#ifdef LG_RING_BROKEN
		claimed = e.text_pos;
#endif
		/* the text is there unless later claims wrapped over it */
		if (claimed - e.text_pos <= lg->arena_size)
		{
			o->appname = appname;
			o->statement = statement;
			if (o->ctx.len > 0)
				o->ctx.data[o->ctx.len - 1] = '\0';
		}
		else
			o->ctx.len = 0;
		n++;
	}
	if (n > 1)
		qsort(out, n, sizeof(LgEvent), event_cmp);
	*nevents = n;
	return out;
}

/*
 * Copy the statistics out: the hash walked under lg->lock held shared,
 * entries with no event (since reset) left out.
 */
LgStat *
lg_stats_copy(int *nstats)
{
	HASH_SEQ_STATUS seq;
	LgStatEntry *entry;
	LgStat	   *out;
	int			n = 0;

	out = palloc(sizeof(LgStat) * LG_MAX_STATS);
	LWLockAcquire(lg->lock, LW_SHARED);
	hash_seq_init(&seq, lg_stats);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		LgStat	   *o = &out[n];

		if (n >= LG_MAX_STATS)
			continue;
		o->key = entry->key;
		o->events = (int64) pg_atomic_read_u64(&entry->events);
		if (o->events == 0)
			continue;
		o->sessions = (int64) pg_atomic_read_u64(&entry->sessions);
		o->hidden_events = (int64) pg_atomic_read_u64(&entry->hidden_events);
		o->last_seen = (TimestampTz) pg_atomic_read_u64(&entry->last_seen);
		n++;
	}
	LWLockRelease(lg->lock);
	*nstats = n;
	return out;
}

uint64
lg_stats_dropped(void)
{
	return pg_atomic_read_u64(&lg->stats_dropped);
}

/*
 * lambdaguard.reset(): forget events and statistics.  Sessions keep their
 * pin_reasons: those describe live sessions, not history.  Statistics
 * entries stay (backends keep pointers to them), with their counters zeroed;
 * the ring shows the events claimed from now on.
 */
void
lg_pinning_reset(void)
{
	HASH_SEQ_STATUS seq;
	LgStatEntry *entry;

	LWLockAcquire(lg->lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, lg_stats);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		pg_atomic_write_u64(&entry->events, 0);
		pg_atomic_write_u64(&entry->sessions, 0);
		pg_atomic_write_u64(&entry->hidden_events, 0);
		pg_atomic_write_u64(&entry->last_seen, 0);
	}
	pg_atomic_write_u64(&lg->events_reset, pg_atomic_read_u64(&lg->events_written));
	pg_atomic_write_u64(&lg->stats_dropped, 0);
	LWLockRelease(lg->lock);
}

/* ----------
 * Action counters and the worker's figures
 * ----------
 */
void
lg_count_action(LgVerdict verdict, LgAction action)
{
	if (lg)
		pg_atomic_fetch_add_u64(&lg->actions[verdict][action], 1);
}

uint64
lg_action_count(LgVerdict verdict, LgAction action)
{
	return pg_atomic_read_u64(&lg->actions[verdict][action]);
}

void
lg_worker_info_update(const LgWorkerInfo *info)
{
	SpinLockAcquire(&lg->worker_mutex);
	lg->worker = *info;
	SpinLockRelease(&lg->worker_mutex);
}

void
lg_worker_info_copy(LgWorkerInfo *info)
{
	SpinLockAcquire(&lg->worker_mutex);
	*info = lg->worker;
	SpinLockRelease(&lg->worker_mutex);
}

/*
 * Count an error of the worker and keep its message; called on the way out
 * of the worker, so that the next incarnation and the views still see it.
 */
void
lg_worker_note_error(const char *message, bool history)
{
	if (lg == NULL)
		return;
	SpinLockAcquire(&lg->worker_mutex);
	lg->worker.errors++;
	if (history)
		lg->worker.history_errors++;
	strlcpy(lg->worker.last_error, message ? message : "",
			sizeof(lg->worker.last_error));
	SpinLockRelease(&lg->worker_mutex);
}
