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
 * - The event ring, its text arena and the statistics hash are protected by
 *   one LWLock (lg->lock).  A writer holds it exclusively for one event: a
 *   fixed-size entry, at most two memcpy into the arena and one hash update.
 *   Readers hold it shared only to copy the entries and the arena out; they
 *   decode and build tuples after releasing it.
 *
 * - The event text (application_name and statement) goes to a byte arena
 *   written as a ring; each entry remembers the arena position of its text,
 *   and a reader shows the text only if it was not overwritten since.
 *
 * - Action counters are atomics.  The worker's figures are written by the
 *   worker alone, under a spinlock, and read under it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>
#include <netinet/in.h>

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
} LgBackendSlot;

/* One event in the ring */
typedef struct LgEventEntry
{
	TimestampTz at;
	uint64		queryid;
	uint64		text_pos;		/* arena position of appname + statement */
	int			pid;
	Oid			userid;
	Oid			dbid;
	uint16		appname_len;
	uint16		stmt_len;
	uint8		reason;
	bool		hidden;
	uint8		family;
	unsigned char addr[16];
} LgEventEntry;

typedef struct LgShared
{
	LWLock	   *lock;			/* ring, arena and stats */
	int			nslots;
	int			max_events;
	Size		arena_size;
	uint64		events_written; /* ever; the ring holds the last max_events */
	uint64		arena_pos;		/* bytes ever written to the arena */
	uint64		stats_dropped;	/* events not counted: stats table full */
	uint64		stats_generation;	/* bumped when stats entries are removed */

	pg_atomic_uint64 actions[LG_NUM_VERDICTS][LG_NUM_ACTIONS];

	slock_t		worker_mutex;
	LgWorkerInfo worker;

	/* then: slots[nslots], events[max_events], arena[arena_size] */
} LgShared;

static LgShared *lg = NULL;
static LgBackendSlot *lg_slots = NULL;
static LgEventEntry *lg_events = NULL;
static char *lg_arena = NULL;
static HTAB *lg_stats = NULL;

/* This backend's slot, once it published something */
static LgBackendSlot *my_slot = NULL;

/*
 * This backend's stats entries, by reason: its user and database do not
 * change, and entries are removed only by lambdaguard.reset(), which bumps
 * stats_generation.  Read and written under lg->lock.
 */
static LgStat *my_stats[LG_NUM_REASONS];
static uint64 my_stats_generation = 0;

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
					hash_estimate_size(LG_MAX_STATS, sizeof(LgStat)));
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
					a;

		memset(lg, 0, MAXALIGN(sizeof(LgShared)));
		lg->lock = &(GetNamedLWLockTranche(LG_SHMEM_TRANCHE))->lock;
		lg->nslots = lg_num_slots();
		lg->max_events = lg_max_events;
		lg->arena_size = lg_arena_size();
		for (v = 0; v < LG_NUM_VERDICTS; v++)
			for (a = 0; a < LG_NUM_ACTIONS; a++)
				pg_atomic_init_u64(&lg->actions[v][a], 0);
		SpinLockInit(&lg->worker_mutex);
		memset(lg_slots, 0, mul_size(lg->nslots, sizeof(LgBackendSlot)));
		memset(lg_events, 0, mul_size(lg->max_events, sizeof(LgEventEntry)));
	}

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(LgStatKey);
	info.entrysize = sizeof(LgStat);
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
	SLOT_END_WRITE(my_slot);
}

/*
 * Publish this backend's pinning state.  No lock: only we write our slot.
 */
void
lg_slot_publish(LgReasonMask pin_mask, LgReasonMask dirty_mask, TimestampTz pinned_since,
				const char *pinned_by)
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
		strlcpy(my_slot->pinned_by, pinned_by, LG_PINNED_BY_LEN);
	SLOT_END_WRITE(my_slot);
}

int
lg_slot_count(void)
{
	return lg ? lg->nslots : 0;
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
		if (with_text && pins->pin_mask != 0)
			memcpy(pins->pinned_by, slot->pinned_by, LG_PINNED_BY_LEN);
		pg_read_barrier();
		after = slot->changecount;
		if (before == after && (before & 1) == 0)
			break;
		CHECK_FOR_INTERRUPTS();
	}
	if (with_text && pins->pin_mask != 0)
		pins->pinned_by[LG_PINNED_BY_LEN - 1] = '\0';
	else
		pins->pinned_by[0] = '\0';
	return *pid != 0;
}

/* ----------
 * Events and statistics
 * ----------
 */

static void
arena_write(uint64 pos, const char *data, Size len)
{
	Size		size = lg->arena_size;
	Size		off = pos % size;
	Size		first = Min(len, size - off);

	memcpy(lg_arena + off, data, first);
	if (first < len)
		memcpy(lg_arena, data + first, len - first);
}

static void
arena_read(const char *arena, Size size, uint64 pos, char *out, Size len)
{
	Size		off = pos % size;
	Size		first = Min(len, size - off);

	memcpy(out, arena + off, first);
	if (first < len)
		memcpy(out + first, arena, len - first);
	out[len] = '\0';
}

/*
 * Record one event and count it.  Takes lg->lock exclusively, once.
 */
void
lg_event_publish(LgReason reason, bool hidden, bool new_for_session,
				 const char *statement, int stmt_len, uint64 queryid)
{
	LgEventEntry *e;
	LgStatKey	key;
	LgStat	   *stat;
	bool		found;
	const char *appname = application_name ? application_name : "";
	Size		app_len = strnlen(appname, NAMEDATALEN - 1);
	Size		text_max;
	TimestampTz now;
	uint8		family = 0;
	unsigned char addr[16];

	if (lg == NULL)
		return;

	/* the statement keeps at most a quarter of the arena */
	text_max = Min((Size) LG_EVENT_STMT_LEN, lg->arena_size / 4);
	if (stmt_len < 0)
		stmt_len = 0;
	if ((Size) stmt_len > text_max)
		stmt_len = pg_mbcliplen(statement, stmt_len, (int) text_max);
	if (app_len > lg->arena_size / 4)
		app_len = pg_mbcliplen(appname, app_len, (int) (lg->arena_size / 4));

	memset(addr, 0, sizeof(addr));
	if (MyBEEntry)
	{
		const struct sockaddr *sa = (const struct sockaddr *) &MyBEEntry->st_clientaddr.addr;

		if (sa->sa_family == AF_INET)
		{
			family = AF_INET;
			memcpy(addr, &((const struct sockaddr_in *) sa)->sin_addr, 4);
		}
		else if (sa->sa_family == AF_INET6)
		{
			family = AF_INET6;
			memcpy(addr, &((const struct sockaddr_in6 *) sa)->sin6_addr, 16);
		}
	}

	key.userid = GetAuthenticatedUserId();
	key.dbid = MyDatabaseId;
	key.reason = reason;

	LWLockAcquire(lg->lock, LW_EXCLUSIVE);

	/* taken under the lock, so that the ring's order is the time order */
	now = GetCurrentTimestamp();
	e = &lg_events[lg->events_written % lg->max_events];
	e->at = now;
	e->queryid = queryid;
	e->pid = MyProcPid;
	e->userid = key.userid;
	e->dbid = key.dbid;
	e->reason = (uint8) reason;
	e->hidden = hidden;
	e->family = family;
	memcpy(e->addr, addr, sizeof(addr));
	e->text_pos = lg->arena_pos;
	e->appname_len = (uint16) app_len;
	e->stmt_len = (uint16) stmt_len;
	arena_write(lg->arena_pos, appname, app_len);
	arena_write(lg->arena_pos + app_len, statement, stmt_len);
	lg->arena_pos += app_len + stmt_len;
	lg->events_written++;

	if (my_stats_generation != lg->stats_generation)
	{
		memset(my_stats, 0, sizeof(my_stats));
		my_stats_generation = lg->stats_generation;
	}
	stat = my_stats[reason];
	if (stat == NULL)
	{
		stat = hash_search(lg_stats, &key, HASH_FIND, NULL);
		if (stat == NULL && hash_get_num_entries(lg_stats) < LG_MAX_STATS)
		{
			stat = hash_search(lg_stats, &key, HASH_ENTER_NULL, &found);
			if (stat && !found)
			{
				stat->events = 0;
				stat->sessions = 0;
				stat->hidden_events = 0;
			}
		}
		my_stats[reason] = stat;
	}
	if (stat)
	{
		stat->events++;
		if (hidden)
			stat->hidden_events++;
		if (new_for_session)
			stat->sessions++;
		stat->last_seen = now;
	}
	else
		lg->stats_dropped++;

	LWLockRelease(lg->lock);
}

/*
 * Copy the ring out, oldest first.  The entries and the arena are copied
 * under a shared lock; the texts are decoded after it is released.
 */
LgEvent *
lg_events_copy(int *nevents)
{
	LgEventEntry *entries;
	char	   *arena;
	uint64		written;
	uint64		arena_pos;
	Size		arena_size = lg->arena_size;
	int			n;
	int			i;
	LgEvent    *out;

	entries = palloc(mul_size(lg->max_events, sizeof(LgEventEntry)));
	arena = palloc(arena_size);

	LWLockAcquire(lg->lock, LW_SHARED);
	written = lg->events_written;
	arena_pos = lg->arena_pos;
	n = (int) Min(written, (uint64) lg->max_events);
	memcpy(entries, lg_events, mul_size(lg->max_events, sizeof(LgEventEntry)));
	memcpy(arena, lg_arena, arena_size);
	LWLockRelease(lg->lock);

	out = palloc0(sizeof(LgEvent) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		LgEventEntry *e = &entries[(written - n + i) % lg->max_events];
		LgEvent    *o = &out[i];

		o->at = e->at;
		o->pid = e->pid;
		o->userid = e->userid;
		o->dbid = e->dbid;
		o->reason = e->reason;
		o->hidden = e->hidden;
		o->family = e->family;
		memcpy(o->addr, e->addr, sizeof(o->addr));
		o->queryid = e->queryid;
		/* the text is there unless the arena has wrapped over it */
		if (arena_pos - e->text_pos <= arena_size)
		{
			o->appname = palloc(e->appname_len + 1);
			arena_read(arena, arena_size, e->text_pos, o->appname, e->appname_len);
			o->statement = palloc(e->stmt_len + 1);
			arena_read(arena, arena_size, e->text_pos + e->appname_len,
					   o->statement, e->stmt_len);
		}
	}
	pfree(entries);
	pfree(arena);
	*nevents = n;
	return out;
}

LgStat *
lg_stats_copy(int *nstats)
{
	HASH_SEQ_STATUS seq;
	LgStat	   *entry;
	LgStat	   *out;
	int			n = 0;

	out = palloc(sizeof(LgStat) * LG_MAX_STATS);
	LWLockAcquire(lg->lock, LW_SHARED);
	hash_seq_init(&seq, lg_stats);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		if (n < LG_MAX_STATS)
			out[n++] = *entry;
	}
	LWLockRelease(lg->lock);
	*nstats = n;
	return out;
}

uint64
lg_stats_dropped(void)
{
	uint64		n;

	LWLockAcquire(lg->lock, LW_SHARED);
	n = lg->stats_dropped;
	LWLockRelease(lg->lock);
	return n;
}

/*
 * lambdaguard.reset(): forget events and statistics.  Sessions keep their
 * pin_reasons: those describe live sessions, not history.
 */
void
lg_pinning_reset(void)
{
	HASH_SEQ_STATUS seq;
	LgStat	   *entry;

	LWLockAcquire(lg->lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, lg_stats);
	while ((entry = hash_seq_search(&seq)) != NULL)
		hash_search(lg_stats, &entry->key, HASH_REMOVE, NULL);
	lg->events_written = 0;
	lg->arena_pos = 0;
	lg->stats_dropped = 0;
	lg->stats_generation++;
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
