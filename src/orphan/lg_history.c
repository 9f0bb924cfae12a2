/*-------------------------------------------------------------------------
 *
 * lg_history.c
 *		The audit trail: lambdaguard.history rows and the LOG line of each
 *		decision.
 *
 * The rule this file keeps: a decision's row is committed before its
 * signal.  lg_history_record_all() writes the rows of one scan's decisions
 * in a short transaction of its own and commits them together (one WAL
 * flush for a burst); only then does lg_act_all() signal, and an outcome
 * that differs from a row (skipped, failed) is written afterwards, again in
 * a transaction of its own.  No error, cancel, shutdown or ROLLBACK that comes
 * later can take back a row whose signal was sent.  The purge, too, runs in
 * its own transaction.  After each commit the worker reports its table
 * statistics, so that autovacuum sees the inserts and deletes (as
 * worker_spi does).
 *
 * Rows are written through SPI as the owner of lambdaguard.history, with
 * bound parameters, under the worker's fixed search_path.
 *
 * On a hot standby no table can be written: the same rows go to the
 * standby's journal (lg_journal.c), each fsynced before its signal, and an
 * outcome after the signal is a later version of the same record.  Rows
 * from the journal carry its seq as their id; inside the worker a negative
 * id names a journal record.  Once the server is promoted,
 * lg_history_import() copies this server's records into lambdaguard.history
 * in one transaction that also marks them imported (lambdaguard.
 * standby_imports, by system identifier, journal and seq), then removes the
 * file: a restart before or after that commit never imports a record twice.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "lg_compat.h"
#include "lg_context.h"
#include "lg_datum.h"
#include "lg_history.h"
#include "lg_journal.h"
#include "lg_settings.h"
#include "lg_shmem.h"

/* The columns of lambdaguard.history: the one list of their names and types */
typedef struct LgHistoryColumnDef
{
	const char *name;
	Oid			type;
} LgHistoryColumnDef;

static const LgHistoryColumnDef history_columns[LG_HISTORY_NATTS] = {
	[LG_HIST_ID] = {"id", INT8OID},
	[LG_HIST_AT] = {"at", TIMESTAMPTZOID},
	[LG_HIST_PID] = {"pid", INT4OID},
	[LG_HIST_USENAME] = {"usename", NAMEOID},
	[LG_HIST_DATNAME] = {"datname", NAMEOID},
	[LG_HIST_APPLICATION_NAME] = {"application_name", TEXTOID},
	[LG_HIST_CLIENT_ADDR] = {"client_addr", INETOID},
	[LG_HIST_BACKEND_START] = {"backend_start", TIMESTAMPTZOID},
	[LG_HIST_XACT_START] = {"xact_start", TIMESTAMPTZOID},
	[LG_HIST_STATE] = {"state", TEXTOID},
	[LG_HIST_STATE_SINCE] = {"state_since", TIMESTAMPTZOID},
	[LG_HIST_VERDICT] = {"verdict", TEXTOID},
	[LG_HIST_ACTION] = {"action", TEXTOID},
	[LG_HIST_LOCKS_HELD] = {"locks_held", INT4OID},
	[LG_HIST_BLOCKED_PIDS] = {"blocked_pids", INT4ARRAYOID},
	[LG_HIST_PIN_REASONS] = {"pin_reasons", TEXTARRAYOID},
	[LG_HIST_QUERY] = {"query", TEXTOID},
	[LG_HIST_DETAIL] = {"detail", TEXTOID},
	[LG_HIST_CLIENT_CONTEXT] = {"client_context", JSONBOID}
};

Oid
lg_history_relid(void)
{
	Oid			nsp = get_namespace_oid("lambdaguard", true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid("history", nsp);
}

/*
 * Raise a clear error if a row type is not lambdaguard.history as some
 * version of the extension created it (someone altered the table).
 * Columns are matched by name, so that a column dropped and added again
 * (at the end) still matches; dropped columns are passed over.  map[i]
 * gets the attribute index of history column i, or -1 for the one column a
 * table created before 1.2 lacks (client_context).  Returns the number of
 * history columns the row has.
 */
int
lg_history_check_tupdesc(TupleDesc tupdesc, int *map)
{
	int			found[LG_HISTORY_NATTS];
	int			i;
	int			c;
	int			n = 0;

	for (c = 0; c < LG_HISTORY_NATTS; c++)
		found[c] = -1;
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped)
			continue;
		for (c = 0; c < LG_HISTORY_NATTS; c++)
			if (strcmp(NameStr(att->attname), history_columns[c].name) == 0)
				break;
		if (c == LG_HISTORY_NATTS || found[c] >= 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("lambdaguard.history has a column \"%s\" that pg_lambdaguard does not know",
							NameStr(att->attname)),
					 errdetail("The column was added after CREATE EXTENSION."),
					 errhint("Drop the column, or recreate the extension.")));
		if (att->atttypid != history_columns[c].type)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of lambdaguard.history is of type %s, pg_lambdaguard expects %s",
							NameStr(att->attname), format_type_be(att->atttypid),
							format_type_be(history_columns[c].type)),
					 errdetail("The table was altered after CREATE EXTENSION."),
					 errhint("Undo the change, or recreate the extension.")));
		found[c] = i;
		n++;
	}
	for (c = 0; c < LG_HISTORY_NATTS_1_0; c++)
		if (found[c] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("lambdaguard.history has no column \"%s\"",
							history_columns[c].name),
					 errdetail("The table was altered after CREATE EXTENSION."),
					 errhint("Undo the change, or recreate the extension.")));
	if (map)
		memcpy(map, found, sizeof(found));
	return n;
}

/* The owner of lambdaguard.history */
static Oid
history_owner(void)
{
	Oid			relid = lg_history_relid();
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("pg_lambdaguard: lambdaguard.history does not exist")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Run one statement on the history through SPI as the owner of the table:
 * a role granted EXECUTE on scan() gets its rows back without being able to
 * read or write the history itself.  The caller has a transaction and an
 * active snapshot; an error restores the user at transaction abort.
 * Returns SPI_processed; the tuples stay in SPI_tuptable until SPI_finish,
 * so "keep" copies them into the caller's memory context first; "scalar"
 * gets the first column of the first row (a bigint), if there is one.
 */
static uint64
history_spi(const char *sql, int nargs, const Oid *argtypes, Datum *values,
			const char *nulls, int expected, List **keep, int64 *scalar)
{
	int			ret;
	uint64		n;
	Oid			save_userid;
	int			save_sec_context;
	MemoryContext caller = CurrentMemoryContext;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(history_owner(),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "pg_lambdaguard: SPI_connect failed");
	ret = SPI_execute_with_args(sql, nargs, (Oid *) argtypes, values, nulls,
								false, 0);
	if (ret != expected)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_lambdaguard: could not use lambdaguard.history: %s",
						SPI_result_code_string(ret))));
	n = SPI_processed;
	if (scalar && n > 0)
	{
		bool		isnull;
		Datum		v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			*scalar = DatumGetInt64(v);
	}
	if (keep)
	{
		uint64		i;
		int			map[LG_HISTORY_NATTS];
		TupleDesc	tupdesc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(caller);
		Datum	   *values_in = palloc(sizeof(Datum) * tupdesc->natts);
		bool	   *nulls_in = palloc(sizeof(bool) * tupdesc->natts);

		lg_history_check_tupdesc(tupdesc, map);
		for (i = 0; i < n; i++)
		{
			Datum	   *values_out = palloc(sizeof(Datum) * LG_HISTORY_NATTS);
			bool	   *nulls_out = palloc(sizeof(bool) * LG_HISTORY_NATTS);
			HeapTuple	tup = heap_copytuple(SPI_tuptable->vals[i]);
			int			c;

			/* in history's column order, a column the table lacks NULL */
			heap_deform_tuple(tup, tupdesc, values_in, nulls_in);
			for (c = 0; c < LG_HISTORY_NATTS; c++)
			{
				values_out[c] = map[c] < 0 ? (Datum) 0 : values_in[map[c]];
				nulls_out[c] = map[c] < 0 || nulls_in[map[c]];
			}
			*keep = lappend(*keep, values_out);
			*keep = lappend(*keep, nulls_out);
		}
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return n;
}

/* Is a write under way (for the worker's count of history errors)? */
static bool writing = false;

bool
lg_history_writing(void)
{
	return writing;
}

/*
 * A short transaction of the worker's own around one write, committed at
 * once; then the table statistics go to the cumulative statistics system.
 */
static MemoryContext
write_begin(void)
{
	MemoryContext caller = CurrentMemoryContext;

	writing = true;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "pg_lambdaguard: writing lambdaguard.history");
	return caller;
}

static void
write_end(MemoryContext caller)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	/* flush now: a worker may write nothing more for a minute */
	(void) pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);
	writing = false;
}

/* ----------
 * The standby's journal: rows to records and back
 * ----------
 */

/* The fields of a record: every column but id, as text */
#define LG_JOURNAL_NFIELDS	(LG_HISTORY_NATTS - 1)

/*
 * A row as the journal's fields, in CurrentMemoryContext.  Timestamps are
 * written as their integer value, so that DateStyle and TimeZone never
 * change what is read back.  The output functions look up their types: the
 * worker, outside any transaction, gets a short read-only one.
 */
static char **
row_to_fields(const Datum *values, const bool *nulls)
{
	MemoryContext mcxt = CurrentMemoryContext;
	bool		own_xact = !IsTransactionState();
	char	  **fields;
	int			i;

	if (own_xact)
	{
		StartTransactionCommand();
		MemoryContextSwitchTo(mcxt);
	}
	fields = palloc(sizeof(char *) * LG_JOURNAL_NFIELDS);

	for (i = 1; i < LG_HISTORY_NATTS; i++)
	{
		Oid			type = history_columns[i].type;
		Oid			out;
		bool		varlena;

		if (nulls[i])
			fields[i - 1] = NULL;
		else if (type == TIMESTAMPTZOID)
			fields[i - 1] = psprintf(INT64_FORMAT, (int64) DatumGetTimestampTz(values[i]));
		else
		{
			getTypeOutputInfo(type, &out, &varlena);
			fields[i - 1] = OidOutputFunctionCall(out, values[i]);
		}
	}
	if (own_xact)
	{
		CommitTransactionCommand();
		MemoryContextSwitchTo(mcxt);
	}
	return fields;
}

/* A record as a row (values and nulls of every column), its seq as id */
static void
record_to_row(const LgJournalRecord *rec, Datum *values, bool *nulls)
{
	int			i;

	values[LG_HIST_ID] = Int64GetDatum(rec->seq);
	nulls[LG_HIST_ID] = false;
	for (i = 1; i < LG_HISTORY_NATTS; i++)
	{
		const char *f = rec->fields[i - 1];
		Oid			type = history_columns[i].type;
		Oid			in;
		Oid			ioparam;

		nulls[i] = (f == NULL);
		if (f == NULL)
			values[i] = (Datum) 0;
		else if (type == TIMESTAMPTZOID)
			values[i] = TimestampTzGetDatum((TimestampTz) strtoll(f, NULL, 10));
		else
		{
			getTypeInputInfo(type, &in, &ioparam);
			values[i] = OidInputFunctionCall(in, (char *) f, ioparam, -1);
		}
	}
}

/*
 * This server's records in the journal, in the order they were written:
 * a List of LgJournalRecord *.  *foreign (if given) counts the records of
 * other servers, which are left out.
 */
static List *
my_records(int *foreign)
{
	uint64		sysid = GetSystemIdentifier();
	List	   *records = lg_journal_read(LG_JOURNAL_NFIELDS);
	List	   *mine = NIL;
	ListCell   *lc;

	if (foreign)
		*foreign = 0;
	foreach(lc, records)
	{
		LgJournalRecord *rec = (LgJournalRecord *) lfirst(lc);

		if (rec->sysid == sysid)
			mine = lappend(mine, rec);
		else if (foreign)
			(*foreign)++;
	}
	return mine;
}

/*
 * lambdaguard.standby_history: this server's records not yet imported, as
 * lambdaguard.history rows (id: the record's seq).  A List of (Datum
 * *values, bool *nulls) pairs.
 */
List *
lg_history_journal_rows(void)
{
	List	   *rows = NIL;
	ListCell   *lc;

	foreach(lc, my_records(NULL))
	{
		Datum	   *values = palloc(sizeof(Datum) * LG_HISTORY_NATTS);
		bool	   *nulls = palloc(sizeof(bool) * LG_HISTORY_NATTS);

		record_to_row((LgJournalRecord *) lfirst(lc), values, nulls);
		rows = lappend(rows, values);
		rows = lappend(rows, nulls);
	}
	return rows;
}

/*
 * The lambdaguard.history row of a decision, id (column 0) left NULL.
 */
void
lg_history_values(LgDecision *d, Datum *values, bool *nulls)
{
	LgSession  *s = &d->s;
	const char *state = lg_backend_state_name(s->state);
	const LgContext *context;
	Datum	   *blocked;
	int			i;

	memset(nulls, false, sizeof(bool) * LG_HISTORY_NATTS);
	nulls[LG_HIST_ID] = true;
	values[LG_HIST_AT] = TimestampTzGetDatum(d->at);
	values[LG_HIST_PID] = Int32GetDatum(s->pid);
	values[LG_HIST_USENAME] = DirectFunctionCall1(namein, CStringGetDatum(d->role));
	nulls[LG_HIST_USENAME] = (d->role[0] == '\0');
	values[LG_HIST_DATNAME] = DirectFunctionCall1(namein, CStringGetDatum(d->db));
	nulls[LG_HIST_DATNAME] = (d->db[0] == '\0');
	values[LG_HIST_APPLICATION_NAME] = CStringGetTextDatum(s->appname ? s->appname : "");
	values[LG_HIST_CLIENT_ADDR] = lg_inet_datum(&s->addr, &nulls[LG_HIST_CLIENT_ADDR]);
	values[LG_HIST_BACKEND_START] = TimestampTzGetDatum(s->backend_start);
	values[LG_HIST_XACT_START] = TimestampTzGetDatum(s->xact_start);
	nulls[LG_HIST_XACT_START] = (s->xact_start == 0);
	values[LG_HIST_STATE] = CStringGetTextDatum(state ? state : "unknown");
	values[LG_HIST_STATE_SINCE] = TimestampTzGetDatum(lg_episode_start(s));
	values[LG_HIST_VERDICT] = CStringGetTextDatum(lg_verdict_names[s->verdict]);
	values[LG_HIST_ACTION] = CStringGetTextDatum(lg_action_names[d->action]);
	values[LG_HIST_LOCKS_HELD] = Int32GetDatum(d->locks_held);
	blocked = palloc(sizeof(Datum) * Max(d->nblocked, 1));
	for (i = 0; i < d->nblocked; i++)
		blocked[i] = Int32GetDatum(d->blocked_pids[i]);
	values[LG_HIST_BLOCKED_PIDS] =
		PointerGetDatum(construct_array(blocked, d->nblocked, INT4OID,
										sizeof(int32), true, TYPALIGN_INT));
	/* whatever the settings: the decision read the session's slot */
	values[LG_HIST_PIN_REASONS] =
		lg_reasons_array(s->has_pins ? s->pins.pin_mask : 0,
						 &nulls[LG_HIST_PIN_REASONS]);
	values[LG_HIST_QUERY] = s->query ? CStringGetTextDatum(s->query) : (Datum) 0;
	nulls[LG_HIST_QUERY] = (s->query == NULL);
	values[LG_HIST_DETAIL] = d->detail ? CStringGetTextDatum(d->detail) : (Datum) 0;
	nulls[LG_HIST_DETAIL] = (d->detail == NULL);
	/* the invocation: of the first pin for pinned_idle, else of the transaction */
	if (s->verdict == LG_VERDICT_PINNED_IDLE)
		context = s->has_pins ? &s->pins.pinned_ctx : NULL;
	else
		context = lg_context_current(s) ? &s->pins.ctx : NULL;
	nulls[LG_HIST_CLIENT_CONTEXT] = (context == NULL || context->len == 0);
	values[LG_HIST_CLIENT_CONTEXT] = nulls[LG_HIST_CLIENT_CONTEXT] ? (Datum) 0 :
		lg_context_jsonb(context);
}

/*
 * The INSERT of one row (every column of the table but id, bound as $1...)
 * and the types of its parameters, built once per table version from
 * history_columns.  A table created before 1.2 has no client_context.
 * *nparams gets the number of parameters.  Needs a transaction.
 */
static const char *
insert_statement(Oid *argtypes, int *nparams)
{
	static char *sql[2] = {NULL, NULL};
	int			natts = LG_HISTORY_NATTS;
	int			v;
	int			i;

	if (get_attnum(lg_history_relid(), history_columns[LG_HIST_CLIENT_CONTEXT].name) ==
		InvalidAttrNumber)
		natts = LG_HISTORY_NATTS_1_0;
	v = (natts == LG_HISTORY_NATTS);
	for (i = 1; i < natts; i++)
		argtypes[i - 1] = history_columns[i].type;
	*nparams = natts - 1;
	if (sql[v] == NULL)
	{
		StringInfoData cols;
		StringInfoData params;
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&cols);
		initStringInfo(&params);
		for (i = 1; i < natts; i++)
		{
			appendStringInfo(&cols, "%s%s", i > 1 ? ", " : "", history_columns[i].name);
			appendStringInfo(&params, "%s$%d", i > 1 ? ", " : "", i);
		}
		sql[v] = psprintf("INSERT INTO lambdaguard.history (%s) VALUES (%s) RETURNING *",
						  cols.data, params.data);
		MemoryContextSwitchTo(old);
	}
	return sql[v];
}

/* Insert one decision's row, in the caller's write transaction */
static void
insert_row(LgDecision *d, const char *sql, int nparams, const Oid *argtypes)
{
	Datum		values[LG_HISTORY_NATTS];
	bool		nulls[LG_HISTORY_NATTS];
	char		spi_nulls[LG_HISTORY_NATTS - 1];
	List	   *row = NIL;
	int			i;

	lg_history_values(d, values, nulls);
	for (i = 1; i < LG_HISTORY_NATTS; i++)
		spi_nulls[i - 1] = nulls[i] ? 'n' : ' ';
	history_spi(sql, nparams, (Oid *) argtypes, values + 1, spi_nulls,
				SPI_OK_INSERT_RETURNING, &row, NULL);
	d->id = DatumGetInt64(((Datum *) linitial(row))[LG_HIST_ID]);
}

/*
 * Write and commit the rows of these decisions (a List of LgDecision *),
 * each with its d->action and d->detail, in one transaction: one commit,
 * one WAL flush, however many.  Called by the worker outside any
 * transaction; on return every row is durable and visible.  In recovery
 * the rows go to the journal instead, each fsynced before this returns,
 * and d->id is minus its seq.
 */
void
lg_history_record_all(List *decisions)
{
	Oid			argtypes[LG_HISTORY_NATTS - 1];
	const char *sql;
	int			nparams;
	MemoryContext caller;
	ListCell   *lc;

	if (decisions == NIL)
		return;
	foreach(lc, decisions)
		((LgDecision *) lfirst(lc))->at = GetCurrentTimestamp();

	if (RecoveryInProgress())
	{
		writing = true;
		foreach(lc, decisions)
		{
			LgDecision *d = (LgDecision *) lfirst(lc);
			Datum		values[LG_HISTORY_NATTS];
			bool		nulls[LG_HISTORY_NATTS];

			lg_history_values(d, values, nulls);
			d->id = -lg_journal_append(d->at, LG_JOURNAL_NFIELDS,
									   row_to_fields(values, nulls), 0);
		}
		writing = false;
		return;
	}

	caller = write_begin();
	sql = insert_statement(argtypes, &nparams);
	foreach(lc, decisions)
		insert_row((LgDecision *) lfirst(lc), sql, nparams, argtypes);
	write_end(caller);
}

/*
 * The signals went otherwise than the committed rows say: record each
 * decision's outcome (its d->action and d->detail now), in one transaction
 * of its own.
 */
void
lg_history_correct_all(List *decisions)
{
	static const Oid argtypes[3] = {INT8OID, TEXTOID, TEXTOID};
	MemoryContext caller = NULL;
	ListCell   *lc;

	foreach(lc, decisions)
	{
		LgDecision *d = (LgDecision *) lfirst(lc);
		Datum		values[3];
		char		nulls[3] = {' ', ' ', ' '};

		if (d->id < 0)
		{
			/* a journal record: its later version, with the same seq */
			Datum		row[LG_HISTORY_NATTS];
			bool		rownulls[LG_HISTORY_NATTS];

			writing = true;
			lg_history_values(d, row, rownulls);
			(void) lg_journal_append(d->at, LG_JOURNAL_NFIELDS,
									 row_to_fields(row, rownulls), -d->id);
			writing = false;
			continue;
		}
		if (caller == NULL)
			caller = write_begin();
		values[0] = Int64GetDatum(d->id);
		values[1] = CStringGetTextDatum(lg_action_names[d->action]);
		values[2] = d->detail ? CStringGetTextDatum(d->detail) : (Datum) 0;
		if (d->detail == NULL)
			nulls[2] = 'n';
		history_spi("UPDATE lambdaguard.history SET action = $2, detail = $3 "
					"WHERE id OPERATOR(pg_catalog.=) $1",
					3, argtypes, values, nulls, SPI_OK_UPDATE, NULL, NULL);
	}
	if (caller != NULL)
		write_end(caller);
}

/*
 * Delete history older than lambdaguard.history_retention, in a transaction
 * of its own; in recovery, the journal's older records.
 */
void
lg_history_purge(void)
{
	static const Oid argtypes[1] = {INT4OID};
	Datum		values[1];
	MemoryContext caller;

	if (lg_history_retention <= 0)
		return;
	if (RecoveryInProgress())
	{
		lg_journal_purge(GetCurrentTimestamp() - LG_MS((int64) lg_history_retention * 60000),
						 LG_JOURNAL_NFIELDS);
		return;
	}
	caller = write_begin();
	values[0] = Int32GetDatum(lg_history_retention);
	history_spi("DELETE FROM lambdaguard.history "
				"WHERE at OPERATOR(pg_catalog.<) (pg_catalog.now() "
				"OPERATOR(pg_catalog.-) pg_catalog.make_interval(mins => $1))",
				1, argtypes, values, NULL, SPI_OK_DELETE, NULL, NULL);
	write_end(caller);
}

/*
 * The rows with these ids, in id order, read in the caller's transaction:
 * a List of (Datum *values, bool *nulls) pairs.  scan(false) returns them.
 * Negative ids are the journal's records (on a standby).
 */
List *
lg_history_fetch(const int64 *ids, int nids)
{
	static const Oid argtypes[1] = {INT8ARRAYOID};
	Datum	   *elems = palloc(sizeof(Datum) * Max(nids, 1));
	Datum		values[1];
	List	   *rows = NIL;
	int			i;
	int			ntable = 0;
	bool		journal = false;

	for (i = 0; i < nids; i++)
	{
		if (ids[i] > 0)
			elems[ntable++] = Int64GetDatum(ids[i]);
		else
			journal = true;
	}
	if (journal)
	{
		List	   *jrows = lg_history_journal_rows();
		ListCell   *lc;

		for (lc = list_head(jrows); lc != NULL; lc = lnext(jrows, lnext(jrows, lc)))
		{
			Datum	   *v = (Datum *) lfirst(lc);
			int			j;

			for (j = 0; j < nids; j++)
				if (ids[j] < 0 && -ids[j] == DatumGetInt64(v[LG_HIST_ID]))
				{
					rows = lappend(rows, v);
					rows = lappend(rows, lfirst(lnext(jrows, lc)));
					break;
				}
		}
	}
	if (ntable == 0)
		return rows;
	nids = ntable;
	values[0] = PointerGetDatum(construct_array(elems, nids, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	history_spi("SELECT * FROM lambdaguard.history "
				"WHERE id OPERATOR(pg_catalog.=) ANY ($1) ORDER BY id",
				1, argtypes, values, NULL, SPI_OK_SELECT, &rows, NULL);
	return rows;
}

/*
 * After promotion: copy this server's journal records into
 * lambdaguard.history, once.  One transaction inserts the records not yet
 * marked in lambdaguard.standby_imports and moves the mark; then the file
 * is removed.  A restart anywhere in between imports nothing twice: before
 * the commit nothing happened, after it the mark skips what was imported.
 * Records of other servers are left out (and go with the file).  Returns
 * the number of rows imported, or -1 if lambdaguard.standby_imports is
 * missing (extension older than 1.2: the file stays).  Worker only, outside
 * any transaction, not in recovery.
 */
int
lg_history_import(void)
{
	static const Oid mark_types[2] = {INT8OID, INT8OID};
	static const Oid set_types[4] = {INT8OID, INT8OID, INT8OID, INT4OID};
	Oid			argtypes[LG_HISTORY_NATTS - 1];
	const char *insert_sql;
	int			nparams;
	uint64		sysid = GetSystemIdentifier();
	MemoryContext caller;
	List	   *records;
	ListCell   *lc;
	int			foreign = 0;
	int			imported = 0;
	Oid			nsp;

	if (!lg_journal_exists())
		return 0;

	caller = write_begin();
	nsp = get_namespace_oid("lambdaguard", true);
	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("standby_imports", nsp)))
	{
		write_end(caller);
		return -1;
	}
	insert_sql = insert_statement(argtypes, &nparams);
	records = my_records(&foreign);
	while (records != NIL)
	{
		int64		journal_id = ((LgJournalRecord *) linitial(records))->journal_id;
		int64		done = 0;
		int64		last = 0;
		int			n = 0;
		List	   *rest = NIL;
		Datum		mark[4];

		mark[0] = Int64GetDatum((int64) sysid);
		mark[1] = Int64GetDatum(journal_id);
		history_spi("SELECT last_seq FROM lambdaguard.standby_imports "
					"WHERE system_identifier OPERATOR(pg_catalog.=) $1 "
					"AND journal_id OPERATOR(pg_catalog.=) $2 FOR UPDATE",
					2, mark_types, mark, NULL, SPI_OK_SELECT, NULL, &done);
		foreach(lc, records)
		{
			LgJournalRecord *rec = (LgJournalRecord *) lfirst(lc);
			Datum		values[LG_HISTORY_NATTS];
			bool		nulls[LG_HISTORY_NATTS];
			char		spi_nulls[LG_HISTORY_NATTS - 1];
			int			i;

			if (rec->journal_id != journal_id)
			{
				rest = lappend(rest, rec);
				continue;
			}
			last = Max(last, rec->seq);
			if (rec->seq <= done)
				continue;
			record_to_row(rec, values, nulls);
			for (i = 1; i < LG_HISTORY_NATTS; i++)
				spi_nulls[i - 1] = nulls[i] ? 'n' : ' ';
			history_spi(insert_sql, nparams, argtypes, values + 1,
						spi_nulls, SPI_OK_INSERT_RETURNING, NULL, NULL);
			n++;
		}
		mark[2] = Int64GetDatum(Max(last, done));
		mark[3] = Int32GetDatum(n);
		history_spi("INSERT INTO lambdaguard.standby_imports "
					"(system_identifier, journal_id, last_seq, rows, imported_at) "
					"VALUES ($1, $2, $3, $4, pg_catalog.now()) "
					"ON CONFLICT (system_identifier, journal_id) DO UPDATE "
					"SET last_seq = excluded.last_seq, "
					"rows = lambdaguard.standby_imports.rows OPERATOR(pg_catalog.+) excluded.rows, "
					"imported_at = excluded.imported_at",
					4, set_types, mark, NULL, SPI_OK_INSERT, NULL, NULL);
		imported += n;
		records = rest;
	}
	write_end(caller);
	lg_journal_remove();

	ereport(LOG,
			(errmsg("pg_lambdaguard: imported %d records of the standby history into lambdaguard.history",
					imported),
			 foreign > 0 ?
			 errdetail("%d records of another server (another system identifier) were not imported.",
					   foreign) : 0));
	return imported;
}

static char *
addr_text(const SockAddr *addr)
{
	bool		isnull;
	Datum		d = lg_inet_datum(addr, &isnull);

	if (isnull)
		return ((const struct sockaddr *) &addr->addr)->sa_family == AF_UNIX ?
			"local" : "unknown";
	return DatumGetCString(DirectFunctionCall1(inet_out, d));
}

/*
 * One LOG line per decision, naming who, what and why.
 */
void
lg_log_decision(LgDecision *d)
{
	LgSession  *s = &d->s;
	double		secs = (double) (d->at - lg_episode_start(s)) / 1000000.0;
	const char *what;

	switch (d->action)
	{
		case LG_ACTION_TERMINATE:
			what = "terminated";
			break;
		case LG_ACTION_CANCEL:
			what = "cancelled the statement of";
			break;
		case LG_ACTION_DRY_RUN:
			what = "would signal (dry run)";
			break;
		case LG_ACTION_SKIPPED:
			what = "skipped";
			break;
		default:
			what = "failed to signal";
			break;
	}

	ereport(LOG,
			(errmsg("pg_lambdaguard: %s pid %d (role %s, database %s, application \"%s\", client %s): verdict %s, %s for %.3f s, %d locks held, %d sessions blocked%s%s",
					what, s->pid, d->role[0] ? d->role : "?", d->db[0] ? d->db : "?",
					s->appname ? s->appname : "", addr_text(&s->addr),
					lg_verdict_names[s->verdict],
					lg_backend_state_name(s->state) ? lg_backend_state_name(s->state) : "unknown", secs,
					d->locks_held, d->nblocked,
					d->detail ? ": " : "", d->detail ? d->detail : "")));

	lg_count_action(s->verdict, d->action);
}
