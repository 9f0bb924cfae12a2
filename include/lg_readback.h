/*-------------------------------------------------------------------------
 *
 * lg_readback.h
 *		Read the session state PostgreSQL itself holds: parameters, the
 *		session's advisory locks, its temporary relations.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_READBACK_H
#define LG_READBACK_H

extern bool lg_guc_dirty(bool at_abort, uint64 *fingerprint);
extern bool lg_guc_dirty_one(const char *name, uint64 *fingerprint);
extern bool lg_guc_known(uint64 *fingerprint);
extern bool lg_guc_note_set(const char *name);
extern int	lg_session_advisory_locks(void);
extern int	lg_temp_relations(int *tables, int *sequences, int *views,
							  const Oid *ignore, int nignore);
extern bool lg_temp_namespace_used(void);

#endif							/* LG_READBACK_H */
