/*-------------------------------------------------------------------------
 *
 * lg_utility.h
 *		The effect of a utility statement on session state, from the table
 *		in lg_utility.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_UTILITY_H
#define LG_UTILITY_H

#include "nodes/parsenodes.h"

#include "lg_pinning.h"

typedef struct LgUtilityEffect
{
	int			reason;			/* LgReason of its event, or -1 for none */
	LgKindMask	kind;			/* the kind it changes, 0 for none */
	LgEffectOp	op;
	LgKindMask	clears;			/* more kinds it clears (DISCARD ALL) */
	const char *name;			/* object named by ADD/SUB, parameter of SET */
	bool		hold;			/* DECLARE ... WITH HOLD */
	bool		on_commit_drop; /* temp table gone at commit */
	RangeVar   *rel;			/* the temp table ON COMMIT DROP */
	bool		own_query;		/* runs its own query through the executor */
	bool		runs_code;		/* DO, CALL: code inside is hidden */
	bool		copy_from;		/* COPY table FROM: defaults may call nextval */
	bool		plain_set;		/* SET name = value (not LOCAL, not DEFAULT) */
} LgUtilityEffect;

extern void lg_utility_effect(Node *parsetree, LgUtilityEffect *e);

#endif							/* LG_UTILITY_H */
