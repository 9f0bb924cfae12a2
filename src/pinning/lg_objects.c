/*-------------------------------------------------------------------------
 *
 * lg_objects.c
 *		The session's named objects PostgreSQL keeps out of reach:
 *		prepared statements, cursors, channels listened on.
 *
 * PostgreSQL keeps them in file-local tables of prepare.c, portalmem.c and
 * async.c.  The names the statements used are kept here (at most
 * LG_MAX_NAMES of each kind; past that the kind stays dirty until it is
 * cleared as a whole) and checked against PostgreSQL where it offers a
 * lookup (FetchPreparedStatement, GetPortalByName).  A prepared statement
 * or a portal closed by a protocol Close message is noticed at the next
 * DEALLOCATE, DISCARD or named statement of the session, or CLOSE, DECLARE.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/prepare.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"
#include "utils/portal.h"

#include "lg_objects.h"

/* ----------
 * Named objects: prepared statements, cursors, channels
 * ----------
 */

/* At most this many names of each kind are remembered */
#define LG_MAX_NAMES 256

typedef struct LgObject
{
	char		name[NAMEDATALEN];
	bool		from_sql;		/* prepared statements: PREPARE, not Parse */
	bool		with_hold;		/* cursors: DECLARE ... WITH HOLD */
	TimestampTz prepare_time;	/* prepared statements */
	SubTransactionId subid;		/* cursors: created in; InvalidSubTransactionId once committed */
} LgObject;

typedef struct LgObjectSet
{
	int			n;
	bool		overflow;		/* more existed than fitted */
	LgObject	   *items;
} LgObjectSet;

static LgObjectSet prepared;
static LgObjectSet cursors;

static int
name_find(LgObjectSet *set, const char *name)
{
	int			i;

	for (i = 0; i < set->n; i++)
		if (strncmp(set->items[i].name, name, NAMEDATALEN) == 0)
			return i;
	return -1;
}

static void
name_remove_at(LgObjectSet *set, int i)
{
	set->items[i] = set->items[--set->n];
}

static LgObject *
name_add(LgObjectSet *set, const char *name)
{
	int			i = name_find(set, name);
	LgObject	   *item;

	if (i >= 0)
		return &set->items[i];
	if (set->items == NULL)
		set->items = MemoryContextAllocZero(TopMemoryContext,
											sizeof(LgObject) * LG_MAX_NAMES);
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
name_clear(LgObjectSet *set)
{
	set->n = 0;
	set->overflow = false;
}

/* A PREPARE, DEALLOCATE or DEALLOCATE ALL succeeded */
void
lg_objects_prepared(const char *name, bool from_sql, LgEffectOp op)
{
	if (op == LG_OP_CLEAR)
		name_clear(&prepared);
	else if (op == LG_OP_ADD)
	{
		PreparedStatement *ps = FetchPreparedStatement(name, false);
		LgObject	   *item = name_add(&prepared, name);

		if (item)
		{
			item->from_sql = from_sql;
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
lg_objects_protocol_statement_is_new(const char *name)
{
	PreparedStatement *ps = FetchPreparedStatement(name, false);
	int			i = name_find(&prepared, name);

	if (ps == NULL)
		return false;
	if (i >= 0 && prepared.items[i].prepare_time == ps->prepare_time)
		return false;
	if (i < 0 && prepared.n >= LG_MAX_NAMES)
		lg_objects_verify_prepared();
	lg_objects_prepared(name, false, LG_OP_ADD);
	return true;
}

/* Forget the names PostgreSQL no longer has (a protocol Close message) */
void
lg_objects_verify_prepared(void)
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
lg_objects_prepared_counts(bool *sql, bool *protocol)
{
	int			i;

	*sql = *protocol = prepared.overflow;
	for (i = 0; i < prepared.n; i++)
	{
		if (prepared.items[i].from_sql)
			*sql = true;
		else
			*protocol = true;
	}
}

/* A DECLARE, CLOSE or CLOSE ALL succeeded */
void
lg_objects_cursor(const char *name, bool hold, LgEffectOp op)
{
	if (op == LG_OP_CLEAR)
		name_clear(&cursors);
	else if (op == LG_OP_ADD)
	{
		LgObject	   *item = name_add(&cursors, name);

		if (item)
		{
			item->with_hold = hold;
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
lg_objects_cursor_xact_end(bool commit)
{
	int			i = 0;

	while (i < cursors.n)
	{
		LgObject	   *c = &cursors.items[i];

		if (!c->with_hold || (!commit && c->subid != InvalidSubTransactionId) ||
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
lg_objects_cursor_subxact_end(SubTransactionId sub, SubTransactionId parent,
							bool commit)
{
	int			i = 0;

	while (i < cursors.n)
	{
		LgObject	   *c = &cursors.items[i];

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
lg_objects_cursor_counts(bool *plain, bool *hold)
{
	int			i;

	*plain = false;
	*hold = cursors.overflow;
	for (i = 0; i < cursors.n; i++)
	{
		if (cursors.items[i].with_hold)
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
lg_objects_listen(const char *name, LgEffectOp op)
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
lg_objects_listen_subxact_end(int level, bool commit)
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
lg_objects_listen_xact_end(bool commit)
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
lg_objects_listening(void)
{
	return listen_committed != NIL;
}
