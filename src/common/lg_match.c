/*-------------------------------------------------------------------------
 *
 * lg_match.c
 *		Parsers and matchers for the list settings (see lg_match.h).
 *
 * Lists are parsed twice with the same tokenizer: once to validate and
 * measure, once to fill a block of exactly the measured size.  Nothing here
 * allocates except through the caller's allocator, and nothing reads past
 * the terminating NUL of its input.
 *
 *-------------------------------------------------------------------------
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "lg_match.h"

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static char
ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
}

/*
 * Read the element that starts at *pos.  Writes its text to out (when not
 * NULL), sets *len to its length and advances *pos past the separator.
 * Returns false with errbuf filled when the element is malformed.
 */
static bool
next_element(const char **pos, LgListKind kind, int index, char *out,
			 size_t *len, char *errbuf)
{
	const char *p = *pos;
	size_t		n = 0;

	while (is_space(*p))
		p++;

	if (*p == '"' && kind != LG_LIST_PATTERNS)
	{
		/* a quoted identifier: keep its case, "" stands for one quote */
		p++;
		for (;;)
		{
			if (*p == '\0')
			{
				snprintf(errbuf, LG_MATCH_ERRLEN,
						 "Element %d has an unterminated quoted name.", index);
				return false;
			}
			if (*p == '"')
			{
				if (p[1] != '"')
					break;
				p++;
			}
			if (out && n < LG_LIST_MAX_ITEM_LEN + 1)
				out[n] = *p;
			n++;
			p++;
		}
		p++;					/* the closing quote */
		while (is_space(*p))
			p++;
		if (*p != ',' && *p != '\0')
		{
			snprintf(errbuf, LG_MATCH_ERRLEN,
					 "Element %d has text after its closing quote.", index);
			return false;
		}
		if (n == 0)
		{
			snprintf(errbuf, LG_MATCH_ERRLEN,
					 "Element %d is an empty quoted name.", index);
			return false;
		}
	}
	else
	{
		const char *start = p;
		const char *end;

		while (*p != ',' && *p != '\0')
			p++;
		end = p;
		while (end > start && is_space(end[-1]))
			end--;
		n = (size_t) (end - start);
		if (n == 0)
		{
			snprintf(errbuf, LG_MATCH_ERRLEN,
					 "Element %d is empty.", index);
			return false;
		}
		if (out && n <= LG_LIST_MAX_ITEM_LEN)
		{
			size_t		i;

			for (i = 0; i < n; i++)
				out[i] = (kind == LG_LIST_PATTERNS) ? start[i] : ascii_lower(start[i]);
		}
		if (kind == LG_LIST_PATTERNS && start[n - 1] == '\\')
		{
			/* an odd run of backslashes at the end escapes nothing */
			size_t		run = 0;

			while (run < n && start[n - 1 - run] == '\\')
				run++;
			if (run % 2 == 1)
			{
				snprintf(errbuf, LG_MATCH_ERRLEN,
						 "Element %d (\"%.*s\") ends with the escape character \"\\\".",
						 index, (int) (n < 64 ? n : 64), start);
				return false;
			}
		}
	}

	if (n > LG_LIST_MAX_ITEM_LEN)
	{
		snprintf(errbuf, LG_MATCH_ERRLEN,
				 "Element %d is %zu bytes long; at most %d are allowed.",
				 index, n, LG_LIST_MAX_ITEM_LEN);
		return false;
	}
	if (kind == LG_LIST_ROLES && n >= 64)
	{
		snprintf(errbuf, LG_MATCH_ERRLEN,
				 "Element %d is %zu bytes long; a role name has at most 63.",
				 index, n);
		return false;
	}

	if (*p == ',')
	{
		p++;
		/* a trailing comma leaves an empty last element */
		{
			const char *q = p;

			while (is_space(*q))
				q++;
			if (*q == '\0')
			{
				snprintf(errbuf, LG_MATCH_ERRLEN,
						 "Element %d is empty (the list ends with a comma).",
						 index + 1);
				return false;
			}
		}
	}
	*pos = p;
	*len = n;
	return true;
}

static bool
is_blank(const char *value)
{
	while (is_space(*value))
		value++;
	return *value == '\0';
}

LgNameList *
lg_parse_names(const char *value, LgListKind kind, LgAllocFn alloc,
			   char *errbuf)
{
	const char *pos;
	int			count = 0;
	size_t		textbytes = 0;
	size_t		len;
	LgNameList *list;
	char	   *text;
	int			i;

	errbuf[0] = '\0';
	if (value == NULL)
		value = "";

	/* first pass: validate and measure */
	pos = value;
	while (!is_blank(pos))
	{
		if (count >= LG_LIST_MAX_ELEMENTS)
		{
			snprintf(errbuf, LG_MATCH_ERRLEN,
					 "The list has more than %d elements.", LG_LIST_MAX_ELEMENTS);
			return NULL;
		}
		if (!next_element(&pos, kind, count + 1, NULL, &len, errbuf))
			return NULL;
		count++;
		textbytes += len + 1;
	}

	list = alloc(sizeof(LgNameList) + count * sizeof(char *) + textbytes);
	if (list == NULL)
	{
		snprintf(errbuf, LG_MATCH_ERRLEN, "Out of memory.");
		return NULL;
	}
	list->n = count;
	list->star = false;
	list->initials = 0;
	text = (char *) &list->items[count];

	/* second pass: fill; it cannot fail where the first one passed */
	pos = value;
	for (i = 0; i < count; i++)
	{
		(void) next_element(&pos, kind, i + 1, text, &len, errbuf);
		text[len] = '\0';
		list->items[i] = text;
		list->initials |= UINT32_C(1) << (ascii_lower(text[0]) & 31);
		if (kind == LG_LIST_ROLES && strcmp(text, "*") == 0)
			list->star = true;
		text += len + 1;
	}
	return list;
}

/*
 * Parse one CIDR element ("10.0.0.0/8", "::1", "local").
 */
static bool
parse_cidr(const char *text, int index, LgCidr *out, char *errbuf)
{
	char		host[LG_LIST_MAX_ITEM_LEN + 1];
	const char *slash;
	size_t		hostlen;
	int			maxbits;
	int			bits;
	int			i;

	if (strcmp(text, "local") == 0)
	{
		memset(out, 0, sizeof(*out));
		out->family = LG_CIDR_LOCAL;
		return true;
	}

	slash = strchr(text, '/');
	hostlen = slash ? (size_t) (slash - text) : strlen(text);
	if (hostlen == 0 || hostlen > LG_LIST_MAX_ITEM_LEN)
	{
		snprintf(errbuf, LG_MATCH_ERRLEN,
				 "Element %d (\"%.64s\") is not an address.", index, text);
		return false;
	}
	memcpy(host, text, hostlen);
	host[hostlen] = '\0';

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, out->addr) == 1)
	{
		out->family = AF_INET;
		maxbits = 32;
	}
	else if (inet_pton(AF_INET6, host, out->addr) == 1)
	{
		out->family = AF_INET6;
		maxbits = 128;
	}
	else
	{
		snprintf(errbuf, LG_MATCH_ERRLEN,
				 "Element %d (\"%.64s\") is neither an IPv4 nor an IPv6 address, nor \"local\".",
				 index, host);
		return false;
	}

	bits = maxbits;
	if (slash)
	{
		const char *d = slash + 1;

		if (*d == '\0')
		{
			snprintf(errbuf, LG_MATCH_ERRLEN,
					 "Element %d (\"%.64s\") has no mask length after \"/\".",
					 index, text);
			return false;
		}
		bits = 0;
		for (; *d; d++)
		{
			if (*d < '0' || *d > '9' || bits > maxbits)
			{
				snprintf(errbuf, LG_MATCH_ERRLEN,
						 "Element %d (\"%.64s\") has an invalid mask length; it must be between 0 and %d.",
						 index, text, maxbits);
				return false;
			}
			bits = bits * 10 + (*d - '0');
		}
		if (bits > maxbits)
		{
			snprintf(errbuf, LG_MATCH_ERRLEN,
					 "Element %d (\"%.64s\") has an invalid mask length; it must be between 0 and %d.",
					 index, text, maxbits);
			return false;
		}
	}
	out->bits = bits;

	/* as the cidr type does, refuse bits set to the right of the mask */
	for (i = bits; i < maxbits; i++)
	{
		if (out->addr[i / 8] & (0x80 >> (i % 8)))
		{
			snprintf(errbuf, LG_MATCH_ERRLEN,
					 "Element %d (\"%.64s\") has bits set to the right of its mask.",
					 index, text);
			return false;
		}
	}
	return true;
}

LgCidrList *
lg_parse_cidrs(const char *value, LgAllocFn alloc, char *errbuf)
{
	char		item[LG_LIST_MAX_ITEM_LEN + 1];
	const char *pos;
	size_t		len;
	int			count = 0;
	int			pass;
	LgCidrList *list = NULL;
	LgCidr		scratch;

	errbuf[0] = '\0';
	if (value == NULL)
		value = "";

	/* pass 0 validates and counts, pass 1 fills the block */
	for (pass = 0; pass < 2; pass++)
	{
		int			i = 0;

		pos = value;
		while (!is_blank(pos))
		{
			if (pass == 0 && i >= LG_LIST_MAX_ELEMENTS)
			{
				snprintf(errbuf, LG_MATCH_ERRLEN,
						 "The list has more than %d elements.", LG_LIST_MAX_ELEMENTS);
				return NULL;
			}
			if (!next_element(&pos, LG_LIST_PATTERNS, i + 1, item, &len, errbuf))
				return NULL;
			item[len] = '\0';
			if (!parse_cidr(item, i + 1, pass == 0 ? &scratch : &list->items[i],
							errbuf))
				return NULL;
			i++;
		}
		if (pass == 0)
		{
			count = i;
			list = alloc(sizeof(LgCidrList) + count * sizeof(LgCidr));
			if (list == NULL)
			{
				snprintf(errbuf, LG_MATCH_ERRLEN, "Out of memory.");
				return NULL;
			}
			list->n = count;
		}
	}
	return list;
}

/* Length of the UTF-8 character that starts with byte c (1 for invalid) */
static int
utf8_len(unsigned char c)
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

/* Step over one character, but never past the terminating NUL */
static const char *
next_char(const char *t)
{
	int			n = utf8_len((unsigned char) *t);

	while (n-- > 0 && *t)
		t++;
	return t;
}

/*
 * The matcher of core's like_match.c, reduced to what application_name
 * needs: '%' matches any run, '_' one character, '\' escapes the next one.
 * Recursion happens only at '%', and a run of '%' is folded first, so the
 * depth is bounded by the number of '%' in the pattern (at most 255).
 *
 * As in core, a failure that no later placement of an earlier '%' can fix
 * returns LIKE_ABORT rather than LIKE_FALSE, which stops the callers from
 * trying: without it a pattern such as '%a%a%a...%b' takes exponential time.
 */
#define LIKE_TRUE		1
#define LIKE_FALSE		0
#define LIKE_ABORT		(-1)

static int
like_at(const char *t, const char *p)
{
	while (*p)
	{
		if (*p == '%')
		{
			while (*p == '%')
				p++;
			if (*p == '\0')
				return LIKE_TRUE;
			while (*t)
			{
				int			r = like_at(t, p);

				if (r != LIKE_FALSE)
					return r;
				t = next_char(t);
			}
			/* no suffix of the text matches the rest: nor will a shorter one */
			return LIKE_ABORT;
		}
		if (*t == '\0')
			return LIKE_ABORT;	/* text ran out before the pattern did */
		if (*p == '_')
		{
			t = next_char(t);
			p++;
			continue;
		}
		if (*p == '\\' && p[1] != '\0')
			p++;
		if (*p != *t)
			return LIKE_FALSE;
		p++;
		t++;
	}
	return *t == '\0' ? LIKE_TRUE : LIKE_FALSE;
}

bool
lg_like(const char *text, const char *pattern)
{
	return like_at(text ? text : "", pattern) == LIKE_TRUE;
}

bool
lg_list_like_any(const LgNameList *list, const char *text)
{
	int			i;

	for (i = 0; i < list->n; i++)
		if (lg_like(text, list->items[i]))
			return true;
	return false;
}

bool
lg_list_contains_ci(const LgNameList *list, const char *name)
{
	int			i;

	if ((list->initials & (UINT32_C(1) << (ascii_lower(name[0]) & 31))) == 0)
		return false;

	for (i = 0; i < list->n; i++)
	{
		const char *a = list->items[i];
		const char *b = name;

		while (*a && ascii_lower(*a) == ascii_lower(*b))
		{
			a++;
			b++;
		}
		if (*a == '\0' && *b == '\0')
			return true;
	}
	return false;
}

static bool
prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
	int			whole = bits / 8;
	int			rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest)
	{
		unsigned char mask = (unsigned char) (0xFF << (8 - rest));

		if ((a[whole] & mask) != (b[whole] & mask))
			return false;
	}
	return true;
}

bool
lg_cidrs_match(const LgCidrList *list, int family, const unsigned char *addr)
{
	static const unsigned char v4mapped[12] =
	{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
	int			i;

	for (i = 0; i < list->n; i++)
	{
		const LgCidr *c = &list->items[i];

		if (family == AF_UNIX)
		{
			if (c->family == LG_CIDR_LOCAL)
				return true;
		}
		else if (c->family == family)
		{
			if (prefix_match(c->addr, addr, c->bits))
				return true;
		}
		else if (c->family == AF_INET && family == AF_INET6 &&
				 memcmp(addr, v4mapped, 12) == 0)
		{
			if (prefix_match(c->addr, addr + 12, c->bits))
				return true;
		}
	}
	return false;
}
