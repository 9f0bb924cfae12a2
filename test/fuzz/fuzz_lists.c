/*-------------------------------------------------------------------------
 *
 * fuzz_lists.c
 *		libFuzzer target for the list parsers and matchers of lg_match.c.
 *
 * Every input (arbitrary bytes, made a NUL-terminated string of exactly
 * size + 1 bytes so that ASan sees any read past its end) is fed to each
 * parser: lg_parse_names() for roles, LIKE patterns and parameter names, and
 * lg_parse_cidrs().  When a parse succeeds, the list is checked against the
 * promises of lg_match.h and the README, and the matchers are run on it:
 *
 *   - at most LG_LIST_MAX_ELEMENTS items, each non-empty and at most
 *     LG_LIST_MAX_ITEM_LEN bytes (a role name at most 63), NUL-terminated
 *     inside the one block the allocator gave;
 *   - a failure leaves a non-empty, NUL-terminated sentence in errbuf (errbuf
 *     is a heap block of exactly LG_MATCH_ERRLEN bytes, so ASan catches any
 *     write past it); an allocator that returns NULL gives "Out of memory.";
 *   - a list prints back to text that parses to the same list (round trip);
 *   - patterns: one item per comma, trimmed; each pattern matches the text
 *     it describes literally (every '%' empty, every '_' one character,
 *     every "\x" the x); lg_like() agrees with a small dynamic-programming
 *     reference matcher on valid UTF-8; lg_like() runs on the whole input,
 *     on every item, and on a 63-byte run of 'a' (the longest
 *     application_name) - libFuzzer's -timeout catches exponential time;
 *   - parameter names: lg_list_contains_ci() finds every item, in any case;
 *   - CIDRs: family and mask length are valid, no host bits are set,
 *     lg_cidrs_match() agrees with a bit-by-bit reference on fixed
 *     addresses, on each item's own address (and its IPv4-mapped form), on
 *     the address with one bit flipped inside or outside the mask, and on
 *     addresses taken from the input bytes; 'local' matches only AF_UNIX.
 *
 * A violated invariant prints what was wrong and abort()s, which libFuzzer
 * reports as a crash with the input saved.
 *
 * Build and run: bash test/fuzz/run.sh [seconds].  Built with
 * -DLG_FUZZ_STANDALONE (no libFuzzer), main() runs the target on each file
 * named on the command line, e.g. under valgrind or gdb.
 *
 *-------------------------------------------------------------------------
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lg_match.h"

/* How much of the expensive checking to do per input (keeps execs fast) */
#define MAX_DIFF_PATTERNS	16		/* patterns compared with the reference */
#define MAX_DIFF_TEXT		96		/* longest text compared with it */
#define MAX_WHOLE_PATTERNS	64		/* patterns run against the whole input */
#define MAX_CIDR_ITEMS		64		/* CIDR items whose own addresses are probed */
#define MAX_CI_ITEMS		64		/* parameter names looked up */

static const uint8_t *cur_data;
static size_t cur_size;

static void fail(const char *fmt,...) __attribute__((noreturn, format(printf, 1, 2)));

static void
fail(const char *fmt,...)
{
	va_list		ap;
	size_t		i;

	fprintf(stderr, "\n*** lg_match invariant violated: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n*** input (%zu bytes): \"", cur_size);
	for (i = 0; i < cur_size && i < 512; i++)
	{
		unsigned char c = cur_data[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			fputc(c, stderr);
		else
			fprintf(stderr, "\\x%02x", c);
	}
	fprintf(stderr, "%s\"\n", cur_size > 512 ? "..." : "");
	abort();
}

/* ---------------------------------------------------------------------
 * Allocators: each parse gets its own block, remembered for the bounds
 * checks, and freed by the caller.
 * --------------------------------------------------------------------- */
static char *last_block;
static size_t last_size;
static int	alloc_calls;

static void *
fz_alloc(size_t size)
{
	alloc_calls++;
	/* exact size, so that ASan reports any write past the block */
	last_block = malloc(size ? size : 1);
	last_size = size;
	if (last_block == NULL)
		abort();
	return last_block;
}

static void *
fz_alloc_null(size_t size)
{
	(void) size;
	alloc_calls++;
	return NULL;
}

static char *
new_errbuf(void)
{
	char	   *e = malloc(LG_MATCH_ERRLEN);

	if (e == NULL)
		abort();
	memset(e, 0x5A, LG_MATCH_ERRLEN);	/* no NUL unless the parser writes one */
	return e;
}

static void
check_errbuf(const char *errbuf, const char *what)
{
	const char *nul = memchr(errbuf, '\0', LG_MATCH_ERRLEN);

	if (nul == NULL)
		fail("%s: errbuf is not NUL-terminated within %d bytes", what, LG_MATCH_ERRLEN);
	if (nul == errbuf)
		fail("%s: failed with an empty errbuf", what);
}

static bool
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool
is_blank(const char *s)
{
	while (is_space((unsigned char) *s))
		s++;
	return *s == '\0';
}

/* ---------------------------------------------------------------------
 * A reference LIKE: '%' any run of characters, '_' one character,
 * '\' makes the next byte literal.  Only used on valid UTF-8 text and
 * patterns, where byte-wise literals and character-wise ones agree.
 * --------------------------------------------------------------------- */
static int
u8len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if ((c & 0xE0) == 0xC0)
		return 2;
	if ((c & 0xF0) == 0xE0)
		return 3;
	if ((c & 0xF8) == 0xF0)
		return 4;
	return 1;
}

static bool
valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *) s;

	while (*p)
	{
		int			n;
		int			i;

		if (*p < 0x80)
		{
			p++;
			continue;
		}
		if ((*p & 0xC0) == 0x80 || *p >= 0xF8)
			return false;
		n = u8len(*p);
		for (i = 1; i < n; i++)
			if ((p[i] & 0xC0) != 0x80)
				return false;	/* also stops at the NUL */
		p += n;
	}
	return true;
}

/*
 * m[i][j]: pattern from token i matches text from byte j.  Tokens: the
 * pattern with escapes resolved into (kind, byte).
 */
static bool
ref_like(const char *text, const char *pattern)
{
	size_t		tl = strlen(text);
	size_t		pl = strlen(pattern);
	char	   *kind = malloc(pl + 1);
	unsigned char *lit = malloc(pl + 1);
	unsigned char *cur;
	unsigned char *next;
	size_t		nt = 0;
	size_t		i;
	size_t		j;
	bool		result;

	if (!kind || !lit)
		abort();
	for (i = 0; i < pl; i++)
	{
		if (pattern[i] == '%' || pattern[i] == '_')
			kind[nt] = pattern[i];
		else
		{
			if (pattern[i] == '\\' && i + 1 < pl)
				i++;
			kind[nt] = 'l';
			lit[nt] = (unsigned char) pattern[i];
		}
		nt++;
	}

	/* dynamic programming from the end of the pattern backwards */
	cur = calloc(tl + 1, 1);
	next = calloc(tl + 1, 1);
	if (!cur || !next)
		abort();
	next[tl] = 1;				/* empty pattern matches only the empty rest */
	for (i = nt; i-- > 0;)
	{
		for (j = tl + 1; j-- > 0;)
		{
			bool		m = false;

			if (kind[i] == '%')
				m = next[j] || (j < tl && cur[j + u8len((unsigned char) text[j])]);
			else if (j < tl && kind[i] == '_')
				m = next[j + u8len((unsigned char) text[j])];
			else if (j < tl && kind[i] == 'l')
				m = (unsigned char) text[j] == lit[i] && next[j + 1];
			cur[j] = m;
		}
		{
			unsigned char *t = cur;

			cur = next;
			next = t;
		}
		memset(cur, 0, tl + 1);
	}
	result = next[0];
	free(cur);
	free(next);
	free(kind);
	free(lit);
	return result;
}

/*
 * The text a pattern describes literally: '%' as nothing, '_' as 'x',
 * "\c" as c.  The caller frees it.
 */
static char *
literal_of(const char *pattern)
{
	size_t		pl = strlen(pattern);
	char	   *out = malloc(pl + 1);
	size_t		n = 0;
	size_t		i;

	if (!out)
		abort();
	for (i = 0; i < pl; i++)
	{
		if (pattern[i] == '%')
			continue;
		if (pattern[i] == '_')
			out[n++] = 'x';
		else
		{
			if (pattern[i] == '\\' && i + 1 < pl)
				i++;
			out[n++] = pattern[i];
		}
	}
	out[n] = '\0';
	return out;
}

static void
check_like(const char *text, const char *pattern, bool differential)
{
	bool		got = lg_like(text, pattern);

	if (differential && strlen(text) <= MAX_DIFF_TEXT &&
		valid_utf8(text) && valid_utf8(pattern))
	{
		bool		want = ref_like(text, pattern);

		if (got != want)
			fail("lg_like(\"%s\", \"%s\") = %d, reference says %d",
				 text, pattern, got, want);
	}
}

/* ---------------------------------------------------------------------
 * Name lists
 * --------------------------------------------------------------------- */
static const char *const kind_names[] = {"roles", "patterns", "parameters"};

static void
check_list_shape(const LgNameList *list, LgListKind kind, const char *value,
				 const char *block, size_t size)
{
	const char *end = block + size;
	int			i;
	bool		star = false;

	if (list->n < 0 || list->n > LG_LIST_MAX_ELEMENTS)
		fail("%s: n = %d", kind_names[kind], list->n);
	if ((list->n == 0) != is_blank(value))
		fail("%s: n = %d for a %sblank value", kind_names[kind], list->n,
			 is_blank(value) ? "" : "non-");
	if ((const char *) &list->items[list->n] > end)
		fail("%s: item pointers run past the block", kind_names[kind]);

	for (i = 0; i < list->n; i++)
	{
		const char *s = list->items[i];
		const char *nul;
		size_t		len;

		if (s < (const char *) &list->items[list->n] || s >= end)
			fail("%s: item %d points outside its block", kind_names[kind], i + 1);
		nul = memchr(s, '\0', (size_t) (end - s));
		if (nul == NULL)
			fail("%s: item %d is not NUL-terminated inside the block",
				 kind_names[kind], i + 1);
		len = (size_t) (nul - s);
		if (len == 0)
			fail("%s: item %d is empty", kind_names[kind], i + 1);
		if (len > LG_LIST_MAX_ITEM_LEN)
			fail("%s: item %d is %zu bytes", kind_names[kind], i + 1, len);
		if (kind == LG_LIST_ROLES && len > 63)
			fail("roles: item %d is %zu bytes, more than a role name", i + 1, len);
		if (strcmp(s, "*") == 0)
			star = true;
	}
	if (kind == LG_LIST_ROLES && list->star != star)
		fail("roles: star = %d but '*' %s in the list", list->star,
			 star ? "is" : "is not");
	if (kind != LG_LIST_ROLES && list->star)
		fail("%s: star set", kind_names[kind]);
}

/* Patterns are split on every comma and trimmed: compare with that. */
static void
check_pattern_split(const LgNameList *list, const char *value)
{
	const char *p = value;
	int			i = 0;

	for (;;)
	{
		const char *start = p;
		const char *stop;
		const char *e;
		size_t		len;

		while (*p && *p != ',')
			p++;
		stop = p;
		while (start < stop && is_space((unsigned char) *start))
			start++;
		e = stop;
		while (e > start && is_space((unsigned char) e[-1]))
			e--;
		len = (size_t) (e - start);
		if (i >= list->n)
			fail("patterns: fewer items (%d) than elements", list->n);
		if (strlen(list->items[i]) != len || memcmp(list->items[i], start, len) != 0)
			fail("patterns: item %d is \"%s\", expected \"%.*s\"", i + 1,
				 list->items[i], (int) len, start);
		i++;
		if (*p == '\0')
			break;
		p++;
	}
	if (i != list->n)
		fail("patterns: %d items for %d elements", list->n, i);
}

/* Print a list back to text: quoted identifiers, or patterns as they are. */
static char *
unparse_names(const LgNameList *list, LgListKind kind)
{
	size_t		cap = 16;
	size_t		n = 0;
	char	   *out;
	int			i;

	for (i = 0; i < list->n; i++)
		cap += 2 * strlen(list->items[i]) + 5;
	out = malloc(cap);
	if (!out)
		abort();
	for (i = 0; i < list->n; i++)
	{
		const char *s = list->items[i];

		if (i > 0)
		{
			out[n++] = ',';
			out[n++] = ' ';
		}
		if (kind == LG_LIST_PATTERNS || (kind == LG_LIST_ROLES && strcmp(s, "*") == 0))
		{
			memcpy(out + n, s, strlen(s));
			n += strlen(s);
		}
		else
		{
			out[n++] = '"';
			for (; *s; s++)
			{
				if (*s == '"')
					out[n++] = '"';
				out[n++] = *s;
			}
			out[n++] = '"';
		}
	}
	out[n] = '\0';
	return out;
}

static void
check_round_trip(const LgNameList *list, LgListKind kind)
{
	char	   *text = unparse_names(list, kind);
	char	   *errbuf = new_errbuf();
	LgNameList *again = lg_parse_names(text, kind, fz_alloc, errbuf);
	int			i;

	if (again == NULL)
		fail("%s: the list printed back as \"%s\" does not parse: %s",
			 kind_names[kind], text, errbuf);
	if (again->n != list->n || again->star != list->star)
		fail("%s: round trip of \"%s\" gives %d items (star %d), not %d (star %d)",
			 kind_names[kind], text, again->n, again->star, list->n, list->star);
	for (i = 0; i < list->n; i++)
		if (strcmp(again->items[i], list->items[i]) != 0)
			fail("%s: round trip changes item %d from \"%s\" to \"%s\"",
				 kind_names[kind], i + 1, list->items[i], again->items[i]);
	free(again);
	free(errbuf);
	free(text);
}

static void
exercise_patterns(const LgNameList *list, const char *input)
{
	static char aaa[64];
	static const char *const fixed[] = {
		"", "a", "psql", "checkout-fn", "lambda_%", "caf\xc3\xa9",
		"\xe2\x82\xac\xf0\x9f\x98\x80", "%", "\\", aaa
	};
	int			i;
	size_t		k;

	if (aaa[0] == '\0')
		memset(aaa, 'a', 63);

	/* lg_list_like_any is the OR of lg_like over the list */
	for (k = 0; k < 2; k++)
	{
		const char *text = k == 0 ? input : aaa;
		bool		any = false;

		for (i = 0; i < list->n && !any; i++)
			any = lg_like(text, list->items[i]);
		if (lg_list_like_any(list, text) != any)
			fail("patterns: lg_list_like_any(\"%s\") is not the OR of lg_like", text);
	}

	for (i = 0; i < list->n; i++)
	{
		const char *pat = list->items[i];
		bool		diff = i < MAX_DIFF_PATTERNS;
		char	   *lit;
		int			j;

		/* a pattern matches the text it spells out */
		lit = literal_of(pat);
		if (!lg_like(lit, pat))
			fail("patterns: \"%s\" does not match its literal text \"%s\"", pat, lit);
		if (!lg_list_like_any(list, lit))
			fail("patterns: lg_list_like_any misses \"%s\"", lit);
		/* without wildcards or escapes, only that text */
		if (strpbrk(pat, "%_\\") == NULL && strcmp(lit, pat) != 0)
			fail("patterns: literal text of \"%s\" differs", pat);
		check_like(lit, pat, diff);
		free(lit);

		if (strpbrk(pat, "%_\\") == NULL && !lg_like(pat, pat))
			fail("patterns: \"%s\" does not match itself", pat);

		if (i < MAX_WHOLE_PATTERNS)
			check_like(input, pat, diff);
		for (k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++)
			check_like(fixed[k], pat, diff);
		/* the other items as texts (application names) */
		if (diff)
			for (j = 0; j < list->n && j < MAX_DIFF_PATTERNS; j++)
				check_like(list->items[j], pat, true);
	}
}

static void
exercise_names_ci(const LgNameList *list)
{
	int			i;

	/* the first items and the last one (each probe scans the whole list) */
	for (i = 0; i < list->n; i++)
	{
		const char *s = list->items[i];
		size_t		len = strlen(s);
		char	   *up;

		if (i >= MAX_CI_ITEMS && i != list->n - 1)
			continue;
		up = malloc(len + 2);
		size_t		k;

		if (!up)
			abort();
		if (!lg_list_contains_ci(list, s))
			fail("lg_list_contains_ci misses item %d \"%s\"", i + 1, s);
		for (k = 0; k <= len; k++)
			up[k] = (s[k] >= 'a' && s[k] <= 'z') ? (char) (s[k] - 'a' + 'A') : s[k];
		if (!lg_list_contains_ci(list, up))
			fail("lg_list_contains_ci misses \"%s\" (item %d in upper case)", up, i + 1);
		/* a strict prefix or extension is not the same name */
		memcpy(up, s, len);
		up[len] = 'q';
		up[len + 1] = '\0';
		(void) lg_list_contains_ci(list, up);
		up[len - 1] = '\0';
		(void) lg_list_contains_ci(list, up);
		free(up);
	}
	(void) lg_list_contains_ci(list, "");
	(void) lg_list_contains_ci(list, "application_name");
}

static void
fuzz_names(const char *value, LgListKind kind)
{
	char	   *errbuf = new_errbuf();
	LgNameList *list;
	char	   *block;
	size_t		size;

	alloc_calls = 0;
	last_block = NULL;
	list = lg_parse_names(value, kind, fz_alloc, errbuf);
	if (list == NULL)
	{
		check_errbuf(errbuf, kind_names[kind]);
		if (alloc_calls != 0)
		{
			/* nothing here fails after allocating; do not leak it either */
			fail("%s: failed after allocating: %s", kind_names[kind], errbuf);
		}
		free(errbuf);
		return;
	}
	if ((char *) list != last_block || alloc_calls != 1)
		fail("%s: the list is not the one block allocated (%d calls)",
			 kind_names[kind], alloc_calls);
	block = last_block;
	size = last_size;

	check_list_shape(list, kind, value, block, size);
	if (kind == LG_LIST_PATTERNS)
	{
		if (list->n > 0)
			check_pattern_split(list, value);
		exercise_patterns(list, value);
	}
	else
		exercise_names_ci(list);
	check_round_trip(list, kind);

	/* the same value with an allocator that fails */
	memset(errbuf, 0x5A, LG_MATCH_ERRLEN);
	if (lg_parse_names(value, kind, fz_alloc_null, errbuf) != NULL)
		fail("%s: success although the allocator returned NULL", kind_names[kind]);
	check_errbuf(errbuf, "out of memory");

	free(list);
	free(errbuf);
}

/* ---------------------------------------------------------------------
 * CIDR lists
 * --------------------------------------------------------------------- */
static bool
ref_cidr_match(const LgCidr *c, int family, const unsigned char *addr)
{
	static const unsigned char v4mapped[12] =
	{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
	int			b;

	if (family == AF_UNIX)
		return c->family == LG_CIDR_LOCAL;
	if (c->family == LG_CIDR_LOCAL)
		return false;
	if (c->family == AF_INET && family == AF_INET6)
	{
		if (memcmp(addr, v4mapped, 12) != 0)
			return false;
		addr += 12;
	}
	else if (c->family != family)
		return false;
	for (b = 0; b < c->bits; b++)
	{
		int			mask = 0x80 >> (b % 8);

		if ((c->addr[b / 8] & mask) != (addr[b / 8] & mask))
			return false;
	}
	return true;
}

static void
probe(const LgCidrList *list, int family, const unsigned char *addr)
{
	bool		want = false;
	bool		got;
	int			i;
	unsigned char copy[16];

	/* the matcher must not read more than the family's bytes */
	if (family == AF_UNIX)
		got = lg_cidrs_match(list, AF_UNIX, NULL);
	else
	{
		size_t		len = family == AF_INET ? 4 : 16;
		unsigned char *exact = malloc(len);

		if (!exact)
			abort();
		memcpy(exact, addr, len);
		got = lg_cidrs_match(list, family, exact);
		free(exact);
	}
	for (i = 0; i < list->n && !want; i++)
		want = ref_cidr_match(&list->items[i], family, addr);
	if (got != want)
	{
		char		buf[INET6_ADDRSTRLEN] = "local";

		if (family != AF_UNIX)
		{
			memcpy(copy, addr, family == AF_INET ? 4 : 16);
			inet_ntop(family, copy, buf, sizeof(buf));
		}
		fail("cidrs: lg_cidrs_match(%s) = %d, reference says %d", buf, got, want);
	}
}

static void
check_cidr_round_trip(const LgCidrList *list)
{
	size_t		cap = (size_t) list->n * (INET6_ADDRSTRLEN + 8) + 1;
	char	   *text = malloc(cap);
	char	   *errbuf = new_errbuf();
	LgCidrList *again;
	size_t		n = 0;
	int			i;

	if (!text)
		abort();
	text[0] = '\0';
	for (i = 0; i < list->n; i++)
	{
		const LgCidr *c = &list->items[i];
		char		buf[INET6_ADDRSTRLEN];

		if (c->family == LG_CIDR_LOCAL)
			n += (size_t) snprintf(text + n, cap - n, "%slocal", i ? "," : "");
		else
		{
			if (inet_ntop(c->family, c->addr, buf, sizeof(buf)) == NULL)
				fail("cidrs: inet_ntop fails on item %d", i + 1);
			n += (size_t) snprintf(text + n, cap - n, "%s%s/%d", i ? "," : "", buf, c->bits);
		}
	}
	again = lg_parse_cidrs(text, fz_alloc, errbuf);
	if (again == NULL)
		fail("cidrs: the list printed back as \"%s\" does not parse: %s", text, errbuf);
	if (again->n != list->n)
		fail("cidrs: round trip of \"%s\" gives %d items, not %d", text, again->n, list->n);
	for (i = 0; i < list->n; i++)
	{
		const LgCidr *a = &list->items[i];
		const LgCidr *b = &again->items[i];

		if (a->family != b->family || a->bits != b->bits ||
			memcmp(a->addr, b->addr, 16) != 0)
			fail("cidrs: round trip of \"%s\" changes item %d", text, i + 1);
	}
	free(again);
	free(errbuf);
	free(text);
}

static void
fuzz_cidrs(const char *value, const uint8_t *data, size_t size)
{
	static const char *const fixed4[] = {
		"127.0.0.1", "10.1.2.3", "192.168.0.1", "0.0.0.0", "255.255.255.255", "172.16.5.4"
	};
	static const char *const fixed6[] = {
		"::1", "::", "::ffff:10.1.2.3", "::ffff:127.0.0.1", "fe80::1", "2001:db8::1",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
	};
	char	   *errbuf = new_errbuf();
	LgCidrList *list;
	bool		any_local = false;
	unsigned char a[16];
	size_t		k;
	int			i;

	alloc_calls = 0;
	last_block = NULL;
	list = lg_parse_cidrs(value, fz_alloc, errbuf);
	if (list == NULL)
	{
		check_errbuf(errbuf, "cidrs");
		if (alloc_calls != 0 && strcmp(errbuf, "Out of memory.") != 0)
		{
			/* the block was allocated and is lost */
			fail("cidrs: failed after allocating: %s", errbuf);
		}
		free(errbuf);
		return;
	}
	if ((char *) list != last_block || alloc_calls != 1)
		fail("cidrs: the list is not the one block allocated");
	if (last_size < sizeof(LgCidrList) + (size_t) list->n * sizeof(LgCidr))
		fail("cidrs: block of %zu bytes for %d items", last_size, list->n);
	if (list->n < 0 || list->n > LG_LIST_MAX_ELEMENTS)
		fail("cidrs: n = %d", list->n);
	if ((list->n == 0) != is_blank(value))
		fail("cidrs: n = %d for a %sblank value", list->n, is_blank(value) ? "" : "non-");

	for (i = 0; i < list->n; i++)
	{
		const LgCidr *c = &list->items[i];
		int			maxbits;
		int			b;

		if (c->family == LG_CIDR_LOCAL)
		{
			static const unsigned char zero[16];

			any_local = true;
			if (c->bits != 0 || memcmp(c->addr, zero, 16) != 0)
				fail("cidrs: 'local' item %d has an address", i + 1);
			continue;
		}
		if (c->family == AF_INET)
			maxbits = 32;
		else if (c->family == AF_INET6)
			maxbits = 128;
		else
			fail("cidrs: item %d has family %d", i + 1, c->family);
		if (c->bits < 0 || c->bits > maxbits)
			fail("cidrs: item %d has %d bits", i + 1, c->bits);
		for (b = c->bits; b < 128; b++)
			if (c->addr[b / 8] & (0x80 >> (b % 8)))
				fail("cidrs: item %d has bit %d set beyond its mask /%d", i + 1, b, c->bits);
	}

	/* 'local' matches Unix sockets exactly when it is in the list */
	if (lg_cidrs_match(list, AF_UNIX, NULL) != any_local)
		fail("cidrs: AF_UNIX match is %d with local %d", !any_local, any_local);

	for (k = 0; k < sizeof(fixed4) / sizeof(fixed4[0]); k++)
	{
		inet_pton(AF_INET, fixed4[k], a);
		probe(list, AF_INET, a);
	}
	for (k = 0; k < sizeof(fixed6) / sizeof(fixed6[0]); k++)
	{
		inet_pton(AF_INET6, fixed6[k], a);
		probe(list, AF_INET6, a);
	}

	for (i = 0; i < list->n && i < MAX_CIDR_ITEMS; i++)
	{
		const LgCidr *c = &list->items[i];
		int			len;
		int			bits;

		if (c->family == LG_CIDR_LOCAL)
			continue;
		len = c->family == AF_INET ? 4 : 16;
		bits = c->family == AF_INET ? 32 : 128;

		/* its own network address always matches */
		if (!lg_cidrs_match(list, c->family, c->addr))
			fail("cidrs: item %d does not match its own address", i + 1);
		probe(list, c->family, c->addr);
		if (c->family == AF_INET)
		{
			unsigned char m[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};

			memcpy(m + 12, c->addr, 4);
			if (!lg_cidrs_match(list, AF_INET6, m))
				fail("cidrs: item %d does not match its IPv4-mapped address", i + 1);
			probe(list, AF_INET6, m);
		}
		/* every host address in the network matches: set the last bit */
		if (c->bits < bits)
		{
			memcpy(a, c->addr, 16);
			a[(bits - 1) / 8] |= (unsigned char) (0x80 >> ((bits - 1) % 8));
			if (!lg_cidrs_match(list, c->family, a))
				fail("cidrs: item %d misses its last host address", i + 1);
		}
		/* flip the last bit of the mask: outside this network */
		if (c->bits > 0)
		{
			memcpy(a, c->addr, 16);
			a[(c->bits - 1) / 8] ^= (unsigned char) (0x80 >> ((c->bits - 1) % 8));
			probe(list, c->family, a);
		}
		(void) len;
	}

	/* addresses taken from the raw input */
	for (k = 0; k + 16 <= size && k < 256; k += 16)
	{
		probe(list, AF_INET, data + k);
		probe(list, AF_INET6, data + k);
	}

	check_cidr_round_trip(list);

	/* the same value with an allocator that fails */
	memset(errbuf, 0x5A, LG_MATCH_ERRLEN);
	if (lg_parse_cidrs(value, fz_alloc_null, errbuf) != NULL)
		fail("cidrs: success although the allocator returned NULL");
	check_errbuf(errbuf, "cidrs out of memory");

	free(list);
	free(errbuf);
}

/* ---------------------------------------------------------------------
 * The entry point
 * --------------------------------------------------------------------- */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *value = malloc(size + 1);
	char		errbuf[LG_MATCH_ERRLEN];

	if (!value)
		abort();
	memcpy(value, data, size);
	value[size] = '\0';			/* a NUL inside the data ends it early: fine */
	cur_data = data;
	cur_size = size;

	fuzz_names(value, LG_LIST_ROLES);
	fuzz_names(value, LG_LIST_PATTERNS);
	fuzz_names(value, LG_LIST_PARAMETERS);
	fuzz_cidrs(value, data, size);

	/* lg_like on the raw input as text and as pattern, and NULL handling */
	(void) lg_like(value, "%");
	(void) lg_like(NULL, value);
	if (!lg_like(value, "%") || lg_like("", "_"))
		fail("lg_like: '%%' or '_' misbehave");
	/* NULL value means the empty list */
	{
		LgNameList *l = lg_parse_names(NULL, LG_LIST_ROLES, fz_alloc, errbuf);
		LgCidrList *c = lg_parse_cidrs(NULL, fz_alloc, errbuf);

		if (l == NULL || l->n != 0)
			fail("lg_parse_names(NULL) is not the empty list");
		if (c == NULL || c->n != 0)
			fail("lg_parse_cidrs(NULL) is not the empty list");
		free(l);
		free(c);
	}

	free(value);
	return 0;
}

#ifdef LG_FUZZ_STANDALONE
/* Without libFuzzer: run the target on each file named (reproducers). */
int
main(int argc, char **argv)
{
	int			i;

	for (i = 1; i < argc; i++)
	{
		FILE	   *f = fopen(argv[i], "rb");
		uint8_t    *buf;
		long		len;

		if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0)
		{
			perror(argv[i]);
			return 2;
		}
		rewind(f);
		buf = malloc((size_t) len + 1);
		if (!buf || fread(buf, 1, (size_t) len, f) != (size_t) len)
		{
			perror(argv[i]);
			return 2;
		}
		fclose(f);
		fprintf(stderr, "running %s (%ld bytes)\n", argv[i], len);
		LLVMFuzzerTestOneInput(buf, (size_t) len);
		free(buf);
	}
	return 0;
}
#endif
