/*-------------------------------------------------------------------------
 *
 * lg_journal.h
 *		The standby's audit trail: an append-only file under the data
 *		directory, each record durable before the signal it records (the
 *		format and the rules are told at the top of src/orphan/lg_journal.c).
 *		lg_history.c turns lambdaguard.history rows into records and back.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_JOURNAL_H
#define LG_JOURNAL_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

typedef struct LgJournalRecord
{
	uint64		sysid;			/* the system identifier of the writer */
	int64		journal_id;		/* the file it was started in */
	int64		seq;			/* 1, 2, ... within that journal */
	TimestampTz at;				/* when it was decided */
	int			nfields;
	char	  **fields;			/* text, NULL for SQL NULL */
} LgJournalRecord;

extern const char *lg_journal_path(void);
extern int64 lg_journal_append(TimestampTz at, int nfields, char **fields,
							   int64 seq);
extern List *lg_journal_read(int nfields);
extern void lg_journal_purge(TimestampTz cutoff, int nfields);
extern bool lg_journal_exists(void);
extern void lg_journal_remove(void);

#endif							/* LG_JOURNAL_H */
