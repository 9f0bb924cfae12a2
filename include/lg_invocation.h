/*-------------------------------------------------------------------------
 *
 * lg_invocation.h
 *		The invocation behind this backend's statements: the context and
 *		deadline its client declared in sqlcommenter comments
 *		(src/pinning/lg_invocation.c), kept for the current transaction
 *		and published to the backend's shared slot for the worker and the
 *		views.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_INVOCATION_H
#define LG_INVOCATION_H

#include "lg_context.h"

extern void lg_invocation_comment(const char *text, const char *stmt,
								  const char *end);

/*
 * A statement the client sent starts (lg_hooks.c): text is the whole
 * string, the statement is [stmt, end).  Costs a few loads unless the text
 * starts or ends like a comment.
 */
static inline void
lg_invocation_statement(const char *text, const char *stmt, const char *end)
{
	if (unlikely(lg_comment_maybe(text, stmt, end)))
		lg_invocation_comment(text, stmt, end);
}

/*
 * The context of the statement running now, or else of its transaction;
 * NULL if there is none.  For events.
 */
extern const LgContext *lg_invocation_context_read(void);

/* true once this backend has read a comment's pairs */
extern bool lg_invocation_seen;

static inline const LgContext *
lg_invocation_context(void)
{
	return likely(!lg_invocation_seen) ? NULL : lg_invocation_context_read();
}

#endif							/* LG_INVOCATION_H */
