/*-------------------------------------------------------------------------
 *
 * lg_pinstate.h
 *		This backend's pinning state (src/pinning/lg_pinstate.c owns it):
 *		what the hooks and the PL/pgSQL plugin tell it, and when.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_PINSTATE_H
#define LG_PINSTATE_H

#include "access/parallel.h"

#include "lg_pinning.h"
#include "lg_planwalk.h"
#include "lg_settings.h"

/*
 * Is pinning recorded in this backend at all?  Not where track_pinning is
 * none, not in parallel workers (their leader records), not before shared
 * memory is there.  Inline: every statement asks.
 */
extern bool lg_pinstate_shmem_ready;
extern bool lg_pinstate_tracking_slow(void);

static inline bool
lg_pinstate_tracking(void)
{
	if (lg_track_pinning == LG_TRACK_NONE || IsParallelWorker())
		return false;
	return likely(lg_pinstate_shmem_ready) || lg_pinstate_tracking_slow();
}

/* Around each utility statement (the restore goes in PG_FINALLY) */
extern int	lg_pinstate_utility_enter(void);
extern void lg_pinstate_utility_leave(int saved);

/* The start and the end of each statement the client sent */
extern void lg_statement_begin(void);
extern void lg_statement_end(void);

/* What a statement did */
extern void lg_record_event(LgReason reason, bool hidden, const char *text,
							int location, int len, uint64 queryid);
extern void lg_record_calls(const LgPlanCalls *calls, LgReasonMask named,
							bool hidden, const char *text, int location,
							int len, uint64 queryid);
extern void lg_set_dirty(LgReasonMask bits, bool on);
extern void lg_read_param(const char *name, bool plain_set);
extern void lg_note_kinds(LgKindMask kinds);
extern void lg_note_fetch(void);
extern void lg_note_on_commit_drop(Oid relid);
extern void lg_note_c_function(void);

/* Publish the slot if what others see changed (pinned_by: a new first pin) */
extern void lg_publish(const char *pinned_by);

#endif							/* LG_PINSTATE_H */
