/*-------------------------------------------------------------------------
 *
 * lg_objects.h
 *		The session's named objects that PostgreSQL keeps out of reach:
 *		prepared statements, cursors, channels listened on.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_OBJECTS_H
#define LG_OBJECTS_H

#include "lg_pinning.h"

extern void lg_objects_prepared(const char *name, bool from_sql, LgEffectOp op);
extern bool lg_objects_protocol_statement_is_new(const char *name);
extern void lg_objects_verify_prepared(void);
extern void lg_objects_prepared_counts(bool *sql, bool *protocol);
extern void lg_objects_cursor(const char *name, bool hold, LgEffectOp op);
extern void lg_objects_cursor_xact_end(bool commit);
extern void lg_objects_cursor_subxact_end(SubTransactionId sub,
										  SubTransactionId parent, bool commit);
extern void lg_objects_cursor_counts(bool *plain, bool *hold);
extern void lg_objects_listen(const char *name, LgEffectOp op);
extern void lg_objects_listen_xact_end(bool commit);
extern void lg_objects_listen_subxact_end(int level, bool commit);
extern bool lg_objects_listening(void);

#endif							/* LG_OBJECTS_H */
