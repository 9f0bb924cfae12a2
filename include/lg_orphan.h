/*-------------------------------------------------------------------------
 *
 * lg_orphan.h
 *		The orphan guard: sessions seen, judged, decided, recorded,
 *		re-checked and signalled (the lifecycle is told at the top of
 *		src/orphan/lg_orphan.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_ORPHAN_H
#define LG_ORPHAN_H

#include "nodes/pg_list.h"

#include "lg_decision.h"

extern LgSnapshot *lg_take_snapshot(bool with_text, bool need_pins,
									 bool candidates_only);
extern void lg_unwatched_forget(void);
extern uint32 lg_unwatched_forgotten(void);
extern void lg_judge(LgSession *s, TimestampTz now);
extern List *lg_decide(LgSnapshot *snap, TimestampTz now, Oid caller,
					   int exclude_pid, TimestampTz *next_due);
extern void lg_act_all(List *decisions);
extern bool lg_session_alive(int index, int pid, TimestampTz backend_start);

#endif							/* LG_ORPHAN_H */
