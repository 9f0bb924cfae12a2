/*-------------------------------------------------------------------------
 *
 * lg_history.h
 *		The audit trail: lambdaguard.history rows and the LOG line of each
 *		decision.  Each write is its own transaction, committed before the
 *		signal it records; the caller has none open.  In recovery the rows
 *		go to the standby's journal (lg_journal.h), imported at promotion.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_HISTORY_H
#define LG_HISTORY_H

#include "access/tupdesc.h"
#include "nodes/pg_list.h"

#include "lg_decision.h"

/*
 * The columns of lambdaguard.history, in table order.  The column names and
 * types are listed once, in lg_history.c; everything else uses these.
 */
typedef enum LgHistoryColumn
{
	LG_HIST_ID = 0,
	LG_HIST_AT,
	LG_HIST_PID,
	LG_HIST_USENAME,
	LG_HIST_DATNAME,
	LG_HIST_APPLICATION_NAME,
	LG_HIST_CLIENT_ADDR,
	LG_HIST_BACKEND_START,
	LG_HIST_XACT_START,
	LG_HIST_STATE,
	LG_HIST_STATE_SINCE,
	LG_HIST_VERDICT,
	LG_HIST_ACTION,
	LG_HIST_LOCKS_HELD,
	LG_HIST_BLOCKED_PIDS,
	LG_HIST_PIN_REASONS,
	LG_HIST_QUERY,
	LG_HIST_DETAIL,
	LG_HIST_CLIENT_CONTEXT		/* 1.2 */
} LgHistoryColumn;

#define LG_HISTORY_NATTS (LG_HIST_CLIENT_CONTEXT + 1)
/* The table as versions before 1.2 created it: without client_context */
#define LG_HISTORY_NATTS_1_0 LG_HIST_CLIENT_CONTEXT

extern Oid	lg_history_relid(void);
extern int	lg_history_check_tupdesc(TupleDesc tupdesc, int *map);
extern void lg_history_values(LgDecision *d, Datum *values, bool *nulls);
extern void lg_history_record_all(List *decisions);
extern void lg_history_correct_all(List *decisions);
extern void lg_history_purge(void);
extern List *lg_history_fetch(const int64 *ids, int nids);
extern List *lg_history_journal_rows(void);
extern int	lg_history_import(void);
extern bool lg_history_writing(void);
extern void lg_log_decision(LgDecision *d);

#endif							/* LG_HISTORY_H */
