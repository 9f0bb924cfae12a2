/*-------------------------------------------------------------------------
 *
 * lg_pinning.h
 *		Types the pinning modules share: the kinds of session state and what
 *		a statement does to them.  Types only; each module has its own
 *		header for its functions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_PINNING_H
#define LG_PINNING_H

#include "lg_labels.h"

/*
 * Kinds of session state.  Each is read from PostgreSQL itself (or, where
 * PostgreSQL keeps it out of reach, from what the hooks saw) and maps to
 * the reasons shown in dirty_reasons.  A set of kinds is an LgKindMask,
 * never mixed with an LgReasonMask.
 */
typedef uint32 LgKindMask;

#define LG_KIND_GUC			0x0001	/* parameters, role, session user */
#define LG_KIND_PREPARED	0x0002	/* prepared statements, both kinds */
#define LG_KIND_TEMP		0x0004	/* relations in the temporary schema */
#define LG_KIND_CURSOR		0x0008	/* open cursors */
#define LG_KIND_LISTEN		0x0010	/* channels listened on */
#define LG_KIND_ADVISORY	0x0020	/* session-level advisory locks */
#define LG_KIND_SEQUENCE	0x0040	/* currval/lastval answer */
#define LG_KIND_LOAD		0x0080	/* a library was LOADed */
#define LG_KIND_ALL			0x00FF

/* What a statement does to one kind of state */
typedef enum LgEffectOp
{
	LG_OP_NONE = 0,
	LG_OP_ADD,					/* a named object is created */
	LG_OP_SUB,					/* a named object is dropped */
	LG_OP_CLEAR,				/* every object of the kind is dropped */
	LG_OP_READ					/* changed in ways to read back afterwards */
} LgEffectOp;

/* RDS Proxy pins on statements longer than this many bytes */
#define LG_STATEMENT_TOO_LARGE	16384

#endif							/* LG_PINNING_H */
