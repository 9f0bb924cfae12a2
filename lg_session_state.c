/*-------------------------------------------------------------------------
 *
 * lg_session_state.c
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
 * PostgreSQL keeps prepared statements, portals and listened channels in
 * file-local tables of prepare.c, portalmem.c and async.c.  For those the
 * names the statements used are kept here and checked against PostgreSQL
 * where it offers a lookup (FetchPreparedStatement, GetPortalByName).
 *
 * Every function here is called by lg_pinning.c at the moments its header
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

#include "lg_pinning.h"
#include "lg_compat.h"

/* ----------
 * Parameters
 * ----------
 */

/*
 * The source and value a parameter will have once the current transaction
 * ends, from its stack of saved values (see AtEOXact_GUC): on abort every
 * stacked level is undone; on commit the value of the newest plain SET (or
 * RESET) stays, SET LOCAL is undone.  Function SET clauses (GUC_SAVE) are
 * undone before any moment this is called.
 */
static GucSource
final_source(struct config_generic *g, bool at_abort, union config_var_val *val,
			 bool *from_stack)
{
	GucStack   *st = g->stack;
	GucSource	src = g->source;

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
				return src;
			case GUC_SET_LOCAL:
				*val = st->masked.val;
				return PGC_S_SESSION;
			case GUC_SAVE:
			case GUC_LOCAL:
				*val = st->prior.val;
				src = st->source;
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
			v.boolval = *((struct config_bool *) g)->variable;
			break;
		case PGC_INT:
			v.intval = *((struct config_int *) g)->variable;
			break;
		case PGC_REAL:
			v.realval = *((struct config_real *) g)->variable;
			break;
		case PGC_STRING:
			v.stringval = *((struct config_string *) g)->variable;
			break;
		case PGC_ENUM:
			v.enumval = *((struct config_enum *) g)->variable;
			break;
	}
	return v;
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
	if (strcmp(g->name, "role") == 0)
	{
		/* SET ROLE NONE has source session too */
		if (from_stack ? (val.stringval == NULL ||
						  strcmp(val.stringval, "none") == 0) :
			!OidIsValid(GetCurrentRoleId()))
			return 0;
	}
	else if (strcmp(g->name, "session_authorization") == 0)
	{
		if (!from_stack && GetSessionUserId() == GetAuthenticatedUserId())
			return 0;
	}
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

#if PG_VERSION_NUM < 160000
static int
guc_name_cmp(const void *key, const void *elem)
{
	return pg_strcasecmp((const char *) key,
						 (*(struct config_generic *const *) elem)->name);
}
#endif

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
	int			n = 0;
	int			i;

	if (MyProc == NULL)
		return 0;
	for (i = 0; i < NUM_LOCK_PARTITIONS; i++)
	{
		LWLock	   *partition = LockHashPartitionLockByIndex(i);

#if PG_VERSION_NUM >= 160000
		dlist_iter	iter;

		if (dlist_is_empty(&MyProc->myProcLocks[i]))
			continue;
		LWLockAcquire(partition, LW_SHARED);
		dlist_foreach(iter, &MyProc->myProcLocks[i])
		{
			PROCLOCK   *pl = dlist_container(PROCLOCK, procLink, iter.cur);

			if (pl->holdMask != 0 &&
				pl->tag.myLock->tag.locktag_type == LOCKTAG_ADVISORY)
				n++;
		}
#else
		SHM_QUEUE  *head = &MyProc->myProcLocks[i];
		PROCLOCK   *pl;

		if (SHMQueueEmpty(head))
			continue;
		LWLockAcquire(partition, LW_SHARED);
		for (pl = (PROCLOCK *) SHMQueueNext(head, head, offsetof(PROCLOCK, procLink));
			 pl != NULL;
			 pl = (PROCLOCK *) SHMQueueNext(head, &pl->procLink, offsetof(PROCLOCK, procLink)))
		{
			if (pl->holdMask != 0 &&
				pl->tag.myLock->tag.locktag_type == LOCKTAG_ADVISORY)
				n++;
		}
#endif
		LWLockRelease(partition);
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

/* ----------
 * Named objects: prepared statements, cursors, channels
 * ----------
 */

/* At most this many names of each kind are remembered */
#define LG_MAX_NAMES 256

typedef struct LgName
{
	char		name[NAMEDATALEN];
	bool		flag;			/* from_sql; WITH HOLD */
	TimestampTz prepare_time;	/* prepared statements */
	SubTransactionId subid;		/* cursors: created in; InvalidSubTransactionId once committed */
} LgName;

typedef struct LgNameSet
{
	int			n;
	bool		overflow;		/* more existed than fitted */
	LgName	   *items;
} LgNameSet;

static LgNameSet prepared;
static LgNameSet cursors;

static int
name_find(LgNameSet *set, const char *name)
{
	int			i;

	for (i = 0; i < set->n; i++)
		if (strncmp(set->items[i].name, name, NAMEDATALEN) == 0)
			return i;
	return -1;
}

static void
name_remove_at(LgNameSet *set, int i)
{
	set->items[i] = set->items[--set->n];
}

static LgName *
name_add(LgNameSet *set, const char *name)
{
	int			i = name_find(set, name);
	LgName	   *item;

	if (i >= 0)
		return &set->items[i];
	if (set->items == NULL)
		set->items = MemoryContextAllocZero(TopMemoryContext,
											sizeof(LgName) * LG_MAX_NAMES);
	if (set->n >= LG_MAX_NAMES)
	{
		set->overflow = true;
		return NULL;
	}
	item = &set->items[set->n++];
	memset(item, 0, sizeof(*item));
	strlcpy(item->name, name, NAMEDATALEN);
	return item;
}

static void
name_clear(LgNameSet *set)
{
	set->n = 0;
	set->overflow = false;
}

/* A PREPARE, DEALLOCATE or DEALLOCATE ALL succeeded */
void
lg_names_prepared(const char *name, bool from_sql, LgEffectOp op)
{
	if (op == LG_OP_CLEAR)
		name_clear(&prepared);
	else if (op == LG_OP_ADD)
	{
		PreparedStatement *ps = FetchPreparedStatement(name, false);
		LgName	   *item = name_add(&prepared, name);

		if (item)
		{
			item->flag = from_sql;
			item->prepare_time = ps ? ps->prepare_time : 0;
		}
	}
	else if (op == LG_OP_SUB)
	{
		int			i = name_find(&prepared, name);

		if (i >= 0)
			name_remove_at(&prepared, i);
	}
}

/*
 * Is this the first run of a named statement of the extended protocol
 * since it was parsed?  A statement closed and parsed again under the same
 * name is new: its prepare_time differs.
 */
bool
lg_protocol_statement_is_new(const char *name)
{
	PreparedStatement *ps = FetchPreparedStatement(name, false);
	int			i = name_find(&prepared, name);

	if (ps == NULL)
		return false;
	if (i >= 0 && prepared.items[i].prepare_time == ps->prepare_time)
		return false;
	if (i < 0 && prepared.n >= LG_MAX_NAMES)
		lg_names_verify_prepared();
	lg_names_prepared(name, false, LG_OP_ADD);
	return true;
}

/* Forget the names PostgreSQL no longer has (a protocol Close message) */
void
lg_names_verify_prepared(void)
{
	int			i = 0;

	while (i < prepared.n)
	{
		PreparedStatement *ps = FetchPreparedStatement(prepared.items[i].name, false);

		if (ps == NULL || ps->prepare_time != prepared.items[i].prepare_time)
			name_remove_at(&prepared, i);
		else
			i++;
	}
}

void
lg_names_prepared_counts(bool *sql, bool *protocol)
{
	int			i;

	*sql = *protocol = prepared.overflow;
	for (i = 0; i < prepared.n; i++)
	{
		if (prepared.items[i].flag)
			*sql = true;
		else
			*protocol = true;
	}
}

/* A DECLARE, CLOSE or CLOSE ALL succeeded */
void
lg_names_cursor(const char *name, bool hold, LgEffectOp op)
{
	if (op == LG_OP_CLEAR)
		name_clear(&cursors);
	else if (op == LG_OP_ADD)
	{
		LgName	   *item = name_add(&cursors, name);

		if (item)
		{
			item->flag = hold;
			item->subid = GetCurrentSubTransactionId();
		}
	}
	else if (op == LG_OP_SUB)
	{
		int			i = name_find(&cursors, name);

		if (i >= 0)
			name_remove_at(&cursors, i);
	}
}

/*
 * At transaction end cursors without HOLD close; on abort so do those with
 * HOLD declared in the transaction.  A holdable cursor whose portal is gone
 * (closed by a protocol Close) is forgotten too.
 */
void
lg_names_cursor_xact_end(bool commit)
{
	int			i = 0;

	while (i < cursors.n)
	{
		LgName	   *c = &cursors.items[i];

		if (!c->flag || (!commit && c->subid != InvalidSubTransactionId) ||
			(commit && c->subid == InvalidSubTransactionId &&
			 !PortalIsValid(GetPortalByName(c->name))))
			name_remove_at(&cursors, i);
		else
		{
			c->subid = InvalidSubTransactionId;
			i++;
		}
	}
	if (cursors.n == 0)
		cursors.overflow = false;
}

/* Cursors declared in a subtransaction belong to its parent, or are gone */
void
lg_names_cursor_subxact_end(SubTransactionId sub, SubTransactionId parent,
							bool commit)
{
	int			i = 0;

	while (i < cursors.n)
	{
		LgName	   *c = &cursors.items[i];

		if (c->subid == sub && !commit)
		{
			name_remove_at(&cursors, i);
			continue;
		}
		if (c->subid == sub)
			c->subid = parent;
		i++;
	}
}

void
lg_names_cursor_counts(bool *plain, bool *hold)
{
	int			i;

	*plain = false;
	*hold = cursors.overflow;
	for (i = 0; i < cursors.n; i++)
	{
		if (cursors.items[i].flag)
			*hold = true;
		else
			*plain = true;
	}
}

/*
 * LISTEN and UNLISTEN take effect at commit (async.c); a rolled back
 * subtransaction drops what it asked for.  Pending actions keep their
 * transaction nesting level; the committed channels are what
 * pg_listening_channels() shows.
 */
typedef struct LgListenAction
{
	LgEffectOp	op;
	int			level;
	char		name[NAMEDATALEN];
} LgListenAction;

static List *listen_committed = NIL;	/* of char * */
static List *listen_pending = NIL;	/* of LgListenAction * */

void
lg_names_listen(const char *name, LgEffectOp op)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	LgListenAction *a = palloc0(sizeof(LgListenAction));

	a->op = op;
	a->level = GetCurrentTransactionNestLevel();
	if (name)
		strlcpy(a->name, name, NAMEDATALEN);
	listen_pending = lappend(listen_pending, a);
	MemoryContextSwitchTo(old);
}

void
lg_names_listen_subxact_end(int level, bool commit)
{
	ListCell   *lc;

	foreach(lc, listen_pending)
	{
		LgListenAction *a = (LgListenAction *) lfirst(lc);

		if (a->level < level)
			continue;
		if (commit)
			a->level = level - 1;
		else
		{
			listen_pending = foreach_delete_current(listen_pending, lc);
			pfree(a);
		}
	}
}

void
lg_names_listen_xact_end(bool commit)
{
	ListCell   *lc;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	foreach(lc, listen_pending)
	{
		LgListenAction *a = (LgListenAction *) lfirst(lc);
		ListCell   *c;

		if (!commit)
			continue;
		if (a->op == LG_OP_CLEAR)
		{
			list_free_deep(listen_committed);
			listen_committed = NIL;
			continue;
		}
		foreach(c, listen_committed)
		{
			if (strcmp((char *) lfirst(c), a->name) == 0)
			{
				if (a->op == LG_OP_SUB)
				{
					pfree(lfirst(c));
					listen_committed = foreach_delete_current(listen_committed, c);
				}
				break;
			}
		}
		if (c == NULL && a->op == LG_OP_ADD)
			listen_committed = lappend(listen_committed, pstrdup(a->name));
	}
	list_free_deep(listen_pending);
	listen_pending = NIL;
	MemoryContextSwitchTo(old);
}

bool
lg_names_listening(void)
{
	return listen_committed != NIL;
}
