/*-------------------------------------------------------------------------
 *
 * lg_match.h
 *		Parsers and matchers for the list settings of pg_lambdaguard:
 *		role names, application_name LIKE patterns, client address CIDRs,
 *		parameter names.
 *
 * This file and lg_match.c use only the C library, so that they can be
 * built into a fuzzer without the server (see test/fuzz/).  A parsed list is one
 * block from the caller's allocator, with its strings inside it, so that the
 * GUC machinery can keep and free it as "extra" data.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_MATCH_H
#define LG_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits that keep every list cheap to match on each scan */
#define LG_LIST_MAX_ELEMENTS	1000
#define LG_LIST_MAX_ITEM_LEN	255
#define LG_MATCH_ERRLEN			256

typedef void *(*LgAllocFn) (size_t size);

typedef enum LgListKind
{
	LG_LIST_ROLES,				/* identifiers, '*' allowed */
	LG_LIST_PATTERNS,			/* LIKE patterns, kept verbatim */
	LG_LIST_PARAMETERS			/* parameter names, compared case-blind */
} LgListKind;

typedef struct LgNameList
{
	int			n;
	bool		star;			/* roles: '*' was given */
	uint32_t	initials;		/* bit (c & 31) of each item's first byte c,
								 * lower-cased: a quick "not in the list" */
	const char *items[];		/* point into the same block */
} LgNameList;

#define LG_CIDR_LOCAL	0		/* family of the 'local' element */

typedef struct LgCidr
{
	int			family;			/* AF_INET, AF_INET6 or LG_CIDR_LOCAL */
	int			bits;
	unsigned char addr[16];
} LgCidr;

typedef struct LgCidrList
{
	int			n;
	LgCidr		items[];
} LgCidrList;

/*
 * Parse a comma-separated list.  On success returns a block from alloc
 * (NULL from alloc is reported as out of memory); on failure returns NULL
 * and writes a sentence naming the bad element into errbuf.
 */
extern LgNameList *lg_parse_names(const char *value, LgListKind kind,
								  LgAllocFn alloc, char *errbuf);
extern LgCidrList *lg_parse_cidrs(const char *value, LgAllocFn alloc,
								  char *errbuf);

/* SQL LIKE with '%', '_' and '\' as escape; case-sensitive, UTF-8 aware */
extern bool lg_like(const char *text, const char *pattern);

/* Does any pattern of the list match? */
extern bool lg_list_like_any(const LgNameList *list, const char *text);

/* Is the name in the list, ignoring ASCII case? */
extern bool lg_list_contains_ci(const LgNameList *list, const char *name);

/*
 * Does an address fall in any CIDR of the list?  family is AF_INET,
 * AF_INET6 or AF_UNIX; addr points to 4 or 16 bytes in network order.
 * IPv4-mapped IPv6 addresses also match IPv4 CIDRs.
 */
extern bool lg_cidrs_match(const LgCidrList *list, int family,
						   const unsigned char *addr);

#endif							/* LG_MATCH_H */
