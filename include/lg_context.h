/*-------------------------------------------------------------------------
 *
 * lg_context.h
 *		The invocation behind a statement: the sqlcommenter comment a
 *		client puts at the start or the end of its statement text, a block
 *		comment of key='value' pairs separated by commas (keys and values
 *		URL-encoded, a quote in a value escaped with a backslash), read
 *		into a small fixed-size context that shared memory can hold.  Pure
 *		parsing: no backend state (src/common/lg_context.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_CONTEXT_H
#define LG_CONTEXT_H

#include "datatype/timestamp.h"

/* What is kept of a comment: the first pairs, up to this many bytes */
#define LG_CONTEXT_MAX_PAIRS	8
#define LG_CONTEXT_MAX_BYTES	256
/* A comment longer than this is not read at all */
#define LG_COMMENT_MAX_BYTES	4096
/* A declared deadline further away than this is ignored (Lambda's longest) */
#define LG_DEADLINE_HORIZON		((int64) 15 * 60 * USECS_PER_SEC)
/* The key that declares when the client will be gone */
#define LG_DEADLINE_KEY			"lambdaguard_deadline"

/*
 * Pairs, decoded, packed as key NUL value NUL ...  The size bounds the
 * decoded keys and values (LG_CONTEXT_MAX_BYTES) plus their terminators.
 */
typedef struct LgContext
{
	uint16		len;			/* bytes of data used; 0: no context */
	uint8		npairs;
	char		data[LG_CONTEXT_MAX_BYTES + 2 * LG_CONTEXT_MAX_PAIRS];
} LgContext;

/* What one comment says */
typedef struct LgComment
{
	LgContext	ctx;
	TimestampTz deadline;		/* declared, 0 if none (not yet clamped) */
} LgComment;

/* White space as the SQL scanner sees it: space, \t \n \v \f \r */
static inline bool
lg_sql_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/*
 * Could this statement carry a comment?  text is the whole string the
 * client sent; the statement is [stmt, end).  True where lg_comment_read
 * would find a comment's opening or closing characters in one of the three
 * places it looks (the start of text after white space; after the final
 * semicolon; the end of the statement before white space and semicolons);
 * false means it would return false.  Only these loops over white space:
 * the cost every statement without a comment pays.
 */
static inline bool
lg_comment_maybe(const char *text, const char *stmt, const char *end)
{
	const char *p = text;

	while (lg_sql_space(*p))
		p++;
	if (p[0] == '/' && p[1] == '*')
		return true;
	if (*end == ';')
	{
		for (p = end; *p == ';' || lg_sql_space(*p); p++)
			;
		if (p[0] == '/' && p[1] == '*')
			return true;
	}
	p = end;
	while (p > stmt && (lg_sql_space(p[-1]) || p[-1] == ';'))
		p--;
	return p - stmt >= 4 && p[-1] == '/' && p[-2] == '*';
}

/*
 * Read the comment at the start of text or at the end of the statement
 * [stmt, end) (a comment after the statement's final semicolon counts as
 * its end).  Returns true and fills *out if a well-formed comment with at
 * least one pair is there; a malformed, hostile or oversized comment is
 * ignored (false), never an error.  standard_strings: whether '' strings
 * take backslashes literally (standard_conforming_strings).
 */
extern bool lg_comment_read(const char *text, const char *stmt, const char *end,
							bool standard_strings, LgComment *out);

/* Parse the inside of one comment (without its delimiters) */
extern bool lg_comment_parse(const char *body, size_t len, LgComment *out);

/*
 * A deadline value: epoch milliseconds or an RFC 3339 time.  Returns false
 * if it is neither.
 */
extern bool lg_deadline_parse(const char *value, TimestampTz *out);

/* Add the pairs of "add" whose keys "ctx" lacks, within the limits */
extern void lg_context_merge(LgContext *ctx, const LgContext *add);

/* Walk the pairs: *pos starts at 0; false once there are no more */
extern bool lg_context_next(const LgContext *ctx, int *pos,
							const char **key, const char **value);

/* The context as a jsonb object of its pairs (as text values) */
extern Datum lg_context_jsonb(const LgContext *ctx);

#endif							/* LG_CONTEXT_H */
