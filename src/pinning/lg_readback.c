/*-------------------------------------------------------------------------
 *
 * lg_readback.c
 *		Read the session state PostgreSQL itself holds, so that
 *		dirty_reasons equal what pg_settings, pg_locks, pg_class,
 *		pg_prepared_statements, pg_cursors and pg_listening_channels() show.
 *
 * Read directly:
 *	- parameters (GUC variables whose value would have source "session" once
 *	  the transaction ends), the role and the session user;
 *	- the session-level advisory locks (this backend's own PROCLOCKs, one
 *	  partition lock at a time, only for partitions where it holds any);
 *	- the relations of the temporary schema (pg_class).
 *
 * Sequence state (what currval and lastval answer) lives in sequence.c's
 * private table: it is known from the calls the hooks and the PL/pgSQL
 * plugin see (lg_plpgsql.c).
 *
 * Prepared statements, portals and listened channels are kept in
 * lg_objects.c.
 *
 * Every function here is called by lg_pinstate.c at the moments its header
 * comment lists; none takes more than a partition lock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/prepare.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "utils/fmgroids.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"

#include "lg_compat.h"
#include "lg_readback.h"
#include "lg_settings.h"

/* ----------
 * Parameters
 * ----------
 */

/*
 * The source and value a parameter will have once the current transaction
 * ends, from its stack of saved values (see AtEOXact_GUC): on abort every
 * stacked level is undone; on commit the newest plain SET (or RESET) stays,
 * and SET LOCAL is undone.  When a SET LOCAL sits above a SET, committing
 * restores the "masked" value, and PostgreSQL then gives it source session
 * even if it came from a RESET; so do we.  Function SET clauses
 * (GUC_SAVE) are undone before any moment this is called.
 */
static GucSource
final_source(struct config_generic *g, bool at_abort, union config_var_val *val,
			 bool *from_stack)
{
	GucStack   *st = g->stack;
	GucSource	src = g->source;
	bool		local_above = false;

	*from_stack = false;
	if (st == NULL)
		return src;
	*from_stack = true;
	if (at_abort)
	{
		while (st->prev)
			st = st->prev;
		*val = st->prior.val;
		return st->source;
	}
	for (; st != NULL; st = st->prev)
	{
		switch (st->state)
		{
			case GUC_SET:
				return local_above ? PGC_S_SESSION : src;
			case GUC_SET_LOCAL:
				if (!local_above)
					*val = st->masked.val;
				return PGC_S_SESSION;
			case GUC_SAVE:
			case GUC_LOCAL:
				*val = st->prior.val;
				src = st->source;
				local_above = true;
				break;
		}
	}
	return src;
}

static union config_var_val
current_value(struct config_generic *g)
{
	union config_var_val v;

	memset(&v, 0, sizeof(v));
	switch (g->vartype)
	{
		case PGC_BOOL:
			v.boolval = *LG_GUC_VAR(g, bool)->variable;
			break;
		case PGC_INT:
			v.intval = *LG_GUC_VAR(g, int)->variable;
			break;
		case PGC_REAL:
			v.realval = *LG_GUC_VAR(g, real)->variable;
			break;
		case PGC_STRING:
			v.stringval = *LG_GUC_VAR(g, string)->variable;
			break;
		case PGC_ENUM:
			v.enumval = *LG_GUC_VAR(g, enum)->variable;
			break;
	}
	return v;
}

#if PG_VERSION_NUM < 160000
/* guc.c's guc_name_compare: the order of the array (ASCII-only downcasing) */
static int
guc_name_cmp(const void *key, const void *elem)
{
	const char *a = (const char *) key;
	const char *b = (*(struct config_generic *const *) elem)->name;

	for (;; a++, b++)
	{
		char		ca = *a;
		char		cb = *b;

		if (ca >= 'A' && ca <= 'Z')
			ca += 'a' - 'A';
		if (cb >= 'A' && cb <= 'Z')
			cb += 'a' - 'A';
		if (ca != cb)
			return ca == '\0' ? -1 : cb == '\0' ? 1 : ca - cb;
		if (ca == '\0')
			return 0;
	}
}
#endif

/*
 * A parameter's variable, by name.  A SET names the same few parameters
 * again and again, so the last ones found are kept, by the name's first two
 * letters; the name is checked against the variable's own.  Variables
 * never move or go away, except a placeholder replaced when its extension
 * loads: placeholders are not kept.
 */
#define LG_GUC_CACHE_SIZE 16	/* a power of 2 */
static struct config_generic *guc_cache[LG_GUC_CACHE_SIZE];

static inline struct config_generic **
guc_cache_slot(const char *name)
{
	return &guc_cache[((unsigned char) name[0] * 31 +
					   (name[0] ? (unsigned char) name[1] : 0)) &
					  (LG_GUC_CACHE_SIZE - 1)];
}

/* Not in the cache: looked up, and kept unless a placeholder */
static pg_noinline struct config_generic *
find_guc_slow(const char *name)
{
	struct config_generic *g;

#if PG_VERSION_NUM >= 160000
	g = find_option(name, false, true, DEBUG5);
#else
	{
		struct config_generic **vars;
		struct config_generic **found;
		int			nvars;

		vars = lg_guc_variables(&nvars);
		found = bsearch(name, vars, nvars, sizeof(*vars), guc_name_cmp);
		g = found ? *found : NULL;
	}
#endif
	if (g != NULL && !(g->flags & GUC_CUSTOM_PLACEHOLDER))
		*guc_cache_slot(name) = g;
	return g;
}

static inline struct config_generic *
find_guc(const char *name)
{
	struct config_generic *g = *guc_cache_slot(name);

	if (likely(g != NULL) && strcmp(g->name, name) == 0)
		return g;
	return find_guc_slow(name);
}

/* role and session_authorization, whose "set" values need a closer look */
static struct config_generic *role_var = NULL;
static struct config_generic *session_authorization_var = NULL;

static inline void
find_special_gucs(void)
{
	if (unlikely(role_var == NULL))
	{
		role_var = find_guc("role");
		session_authorization_var = find_guc("session_authorization");
	}
}

static uint64
value_bits(struct config_generic *g, union config_var_val v)
{
	uint64		bits = 0;

	switch (g->vartype)
	{
		case PGC_BOOL:
			bits = v.boolval;
			break;
		case PGC_INT:
			bits = (uint32) v.intval;
			break;
		case PGC_REAL:
			memcpy(&bits, &v.realval, sizeof(bits));
			break;
		case PGC_STRING:
			bits = v.stringval ? hash_bytes((const unsigned char *) v.stringval,
											strlen(v.stringval)) : 0;
			break;
		case PGC_ENUM:
			bits = (uint32) v.enumval;
			break;
	}
	return bits;
}

/*
 * If this variable will hold a value set in the session once the current
 * transaction ends, its share of the fingerprint (never 0); 0 if not.
 */
static uint64
session_value(struct config_generic *g, bool at_abort, bool vetted)
{
	union config_var_val val;
	bool		from_stack;
	uint64		bits;

	if (g->source != PGC_S_SESSION && g->stack == NULL)
		return 0;
	val = current_value(g);
	if (final_source(g, at_abort, &val, &from_stack) != PGC_S_SESSION)
		return 0;
	find_special_gucs();
	if (g == role_var)
	{
		/* SET ROLE NONE has source session too */
		if (from_stack ? (val.stringval == NULL ||
						  strcmp(val.stringval, "none") == 0) :
			!OidIsValid(GetCurrentRoleId()))
			return 0;
	}
	else if (g == session_authorization_var)
	{
		if (!from_stack && GetSessionUserId() == GetAuthenticatedUserId())
			return 0;
	}
	else if ((g->flags & GUC_CUSTOM_PLACEHOLDER) &&
			 (val.stringval == NULL || val.stringval[0] == '\0'))
		return 0;				/* a custom parameter reset to nothing */
	else if (vetted)
		;						/* found a user's parameter before */
	else if ((g->flags & GUC_NO_SHOW_ALL) &&
			 !(g->flags & GUC_CUSTOM_PLACEHOLDER))
		return 0;				/* internal, not a user's parameter */
	else if (lg_parameter_ignored(g->name) ||
			 strncmp(g->name, "transaction_", 12) == 0)
		return 0;				/* transaction_*: reset when one starts */
	bits = (uint64) (uintptr_t) g * 2654435761u + value_bits(g, val);
	return bits ? bits : 1;
}

/*
 * The variables found set in the session by the last read, so that a SET of
 * one parameter re-reads that one and these, not every variable.
 */
#define LG_MAX_KNOWN 64
static struct config_generic *known[LG_MAX_KNOWN];
static int	nknown = 0;
static bool known_complete = true;	/* false: more than fitted */

/*
 * Will the session hold a parameter set by SET or set_config() (including
 * the role and the session user) once the current transaction ends?
 * *fingerprint changes whenever such a value changes.  One pass over the
 * variables, no allocation.
 */
bool
lg_guc_dirty(bool at_abort, uint64 *fingerprint)
{
	struct config_generic **vars;
	int			nvars;
	int			i;
	uint64		fp = 0;

	nknown = 0;
	known_complete = true;
	vars = lg_guc_variables(&nvars);
	for (i = 0; i < nvars; i++)
	{
		uint64		v = session_value(vars[i], at_abort, false);

		if (v == 0)
			continue;
		fp += v;
		if (nknown < LG_MAX_KNOWN)
			known[nknown++] = vars[i];
		else
			known_complete = false;
	}
	*fingerprint = fp;
	return fp != 0;
}

/*
 * The fingerprint of the variables the last reads found set (all of them
 * when more than fitted).
 */
bool
lg_guc_known(uint64 *fingerprint)
{
	uint64		fp = 0;
	int			i;
	int			n = 0;

	if (!known_complete)
		return lg_guc_dirty(false, fingerprint);
	for (i = 0; i < nknown; i++)
	{
		uint64		v = session_value(known[i], false, true);

		if (v != 0)
		{
			fp += v;
			known[n++] = known[i];
		}
	}
	nknown = n;
	*fingerprint = fp;
	return fp != 0;
}

/*
 * SET name = value succeeded.  If name is an ordinary parameter whose value
 * is now the session's for good (source session, no SET LOCAL or function's
 * SET clause above it to put an older value back), it is noted among the
 * known ones and the answer is true: the session's parameters are set.
 * Otherwise false: read them.
 */
bool
lg_guc_note_set(const char *name)
{
	struct config_generic *g = find_guc(name);
	GucStack   *st;
	int			i;

	if (g == NULL || !known_complete || g->source != PGC_S_SESSION ||
		(g->flags & (GUC_CUSTOM_PLACEHOLDER | GUC_NO_SHOW_ALL)))
		return false;
	find_special_gucs();
	if (g == role_var || g == session_authorization_var ||
		(g->name[0] == 't' && strncmp(g->name, "transaction_", 12) == 0))
		return false;
	for (st = g->stack; st != NULL; st = st->prev)
		if (st->state != GUC_SET)
			return false;
	for (i = 0; i < nknown; i++)
		if (known[i] == g)
			return true;
	if (nknown == LG_MAX_KNOWN)
		return false;
	known[nknown++] = g;
	return true;
}

/*
 * The same, after a SET or RESET of one parameter: that one and those the
 * last read found.  Falls back to reading every variable.
 */
bool
lg_guc_dirty_one(const char *name, uint64 *fingerprint)
{
	struct config_generic *g;
	uint64		fp = 0;
	int			i;
	int			n = 0;
	bool		seen = false;

	g = find_guc(name);
	if (g == NULL || !known_complete)
		return lg_guc_dirty(false, fingerprint);
	for (i = 0; i < nknown; i++)
	{
		uint64		v = session_value(known[i], false, true);

		seen |= (known[i] == g);
		if (v != 0)
		{
			fp += v;
			known[n++] = known[i];
		}
	}
	nknown = n;
	if (!seen)
	{
		uint64		v = session_value(g, false, false);

		if (v != 0)
		{
			fp += v;
			if (nknown < LG_MAX_KNOWN)
				known[nknown++] = g;
			else
				known_complete = false;
		}
	}
	*fingerprint = fp;
	return fp != 0;
}

/* ----------
 * Advisory locks
 * ----------
 */

/*
 * The advisory locks this backend holds, counted over its own PROCLOCKs.
 * A partition lock is taken only where the backend holds something; after
 * the transaction's locks are released (RESOURCE_RELEASE_AFTER_LOCKS) what
 * remains is session-level.
 */
int
lg_session_advisory_locks(void)
{
	PGPROC	   *proc = MyProc;	/* a local: kept in a register over the loop */
	int			n = 0;
	int			i;

	if (proc == NULL)
		return 0;
	for (i = 0; i < NUM_LOCK_PARTITIONS; i++)
	{
#if PG_VERSION_NUM >= 160000
		dlist_head *head = &proc->myProcLocks[i];
		dlist_iter	iter;

		if (dlist_is_empty(head))
			continue;
		LWLockAcquire(LockHashPartitionLockByIndex(i), LW_SHARED);
		dlist_foreach(iter, head)
		{
			PROCLOCK   *pl = dlist_container(PROCLOCK, procLink, iter.cur);

			if (pl->holdMask != 0 &&
				pl->tag.myLock->tag.locktag_type == LOCKTAG_ADVISORY)
				n++;
		}
#else
		SHM_QUEUE  *head = &proc->myProcLocks[i];
		PROCLOCK   *pl;

		if (head->prev == head)	/* SHMQueueEmpty, without the call */
			continue;
		LWLockAcquire(LockHashPartitionLockByIndex(i), LW_SHARED);
		for (pl = (PROCLOCK *) SHMQueueNext(head, head, offsetof(PROCLOCK, procLink));
			 pl != NULL;
			 pl = (PROCLOCK *) SHMQueueNext(head, &pl->procLink, offsetof(PROCLOCK, procLink)))
		{
			if (pl->holdMask != 0 &&
				pl->tag.myLock->tag.locktag_type == LOCKTAG_ADVISORY)
				n++;
		}
#endif
		LWLockRelease(LockHashPartitionLockByIndex(i));
	}
	return n;
}

/* ----------
 * Temporary relations
 * ----------
 */
bool
lg_temp_namespace_used(void)
{
	Oid			nsp;
	Oid			toast_nsp;

	GetTempNamespaceState(&nsp, &toast_nsp);
	return OidIsValid(nsp);
}

/*
 * Count the tables, sequences and views of this session's temporary schema
 * (pg_class, one scan).  A sequence owned by a column (serial, identity) is
 * part of its table.  Relations in ignore[] (ON COMMIT DROP, about to go)
 * are not counted.  Returns their total.
 */
int
lg_temp_relations(int *tables, int *sequences, int *views,
				  const Oid *ignore, int nignore)
{
	Oid			nsp;
	Oid			toast_nsp;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;

	*tables = *sequences = *views = 0;
	GetTempNamespaceState(&nsp, &toast_nsp);
	if (!OidIsValid(nsp))
		return 0;

	ScanKeyInit(&key, Anum_pg_class_relnamespace, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(nsp));
	rel = table_open(RelationRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_class form = (Form_pg_class) GETSTRUCT(tup);
		Oid			owner_rel;
		int32		owner_col;
		int			k;
		bool		skip = false;

		for (k = 0; k < nignore; k++)
			skip |= (ignore[k] == form->oid);
		if (skip)
			continue;
		switch (form->relkind)
		{
			case RELKIND_RELATION:
			case RELKIND_PARTITIONED_TABLE:
				(*tables)++;
				break;
			case RELKIND_SEQUENCE:
				if (!sequenceIsOwned(form->oid, DEPENDENCY_AUTO, &owner_rel, &owner_col) &&
					!sequenceIsOwned(form->oid, DEPENDENCY_INTERNAL, &owner_rel, &owner_col))
					(*sequences)++;
				break;
			case RELKIND_VIEW:
			case RELKIND_MATVIEW:
				(*views)++;
				break;
			default:
				break;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return *tables + *sequences + *views;
}
