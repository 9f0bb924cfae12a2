/*-------------------------------------------------------------------------
 *
 * lg_context.c
 *		Reading the sqlcommenter comment of a statement into an invocation
 *		context (include/lg_context.h).
 *
 * Where a comment counts.  At the start of the string the client sent
 * (after white space): nothing can come before it, so it is a comment.  At
 * the end of the statement (before white space and semicolons), or after
 * the statement's final semicolon: there a string literal, a quoted
 * identifier or a line comment could end in the same characters, so the
 * statement is lexed from its start (strings, quoted identifiers, dollar
 * quotes, line and nested block comments, as the core scanner does), and
 * only a block comment that nothing but white space and semicolons follows
 * is read.  Only statements whose text starts or ends like a comment get
 * that far (lg_comment_maybe).
 *
 * What is read.  The comment's body is key='value' pairs separated by
 * commas, white space allowed around them; keys and values URL-encoded; in
 * a value a backslash escapes the next character (sqlcommenter writes \').
 * Anything else (a plain comment, a nested comment, a bad escape, a
 * decoded value that is not valid in the database encoding or holds a NUL,
 * a body over LG_COMMENT_MAX_BYTES) makes the whole comment ignored.  The
 * first LG_CONTEXT_MAX_PAIRS pairs are kept while their decoded keys and
 * values fit in LG_CONTEXT_MAX_BYTES; the deadline key is read from any
 * pair.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"

#include "lg_context.h"

#define is_space(c) lg_is_space(c)

static inline bool
is_ident(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '$' ||
		(unsigned char) c >= 0x80;
}

/*
 * The end of the block comment that starts at p ("/" "*"), or NULL if it is
 * not closed before limit.  *nested says whether it holds another.
 */
static const char *
block_comment_end(const char *p, const char *limit, bool *nested)
{
	int			depth = 1;

	*nested = false;
	p += 2;
	while (p + 1 < limit)
	{
		/* to the next '*' or '/' (strpbrk stops at the terminator too) */
		p = strpbrk(p, "*/");
		if (p == NULL || p + 1 >= limit)
			return NULL;
		if (p[0] == '/' && p[1] == '*')
		{
			depth++;
			*nested = true;
			p += 2;
		}
		else if (p[0] == '*' && p[1] == '/')
		{
			p += 2;
			if (--depth == 0)
				return p;
		}
		else
			p++;
	}
	return NULL;
}

/*
 * Lex [p, end) and return the start of the block comment that ends it
 * (followed only by white space and semicolons), or NULL.
 */
static const char *
trailing_comment(const char *p, const char *end, bool standard_strings,
				 const char **comment_end, bool *nested)
{
	const char *last = NULL;	/* the last block comment, if nothing since */
	const char *last_end = NULL;
	bool		last_nested = false;
	const char *start = p;

	while (p < end)
	{
		char		c = *p;

		if (is_space(c) || c == ';')
		{
			p++;
			continue;
		}
		if (c == '/' && p + 1 < end && p[1] == '*')
		{
			const char *e = block_comment_end(p, end, &last_nested);

			if (e == NULL)
				return NULL;
			last = p;
			last_end = e;
			p = e;
			continue;
		}
		last = NULL;
		if (c == '-' && p + 1 < end && p[1] == '-')
		{
			while (p < end && *p != '\n' && *p != '\r')
				p++;
		}
		else if (c == '\'' || c == '"')
		{
			/* E'...' takes backslash escapes; so does '...' without scs */
			bool		backslash = c == '\'' &&
				(!standard_strings ||
				 (p > start && (p[-1] == 'e' || p[-1] == 'E') &&
				  (p - 1 == start || !is_ident(p[-2]))));

			p++;
			while (p < end)
			{
				if (backslash && *p == '\\' && p + 1 < end)
					p += 2;
				else if (*p == c)
				{
					p++;
					if (p < end && *p == c)
						p++;	/* doubled: still inside */
					else
						break;
				}
				else
					p++;
			}
		}
		else if (c == '$' && (p == start || !is_ident(p[-1])))
		{
			/* a dollar quote $tag$...$tag$, or a parameter $1 */
			const char *t = p + 1;

			while (t < end && is_ident(*t) && *t != '$' &&
				   !(t == p + 1 && *t >= '0' && *t <= '9'))
				t++;
			if (t < end && *t == '$' && !(t > p + 1 && p[1] >= '0' && p[1] <= '9'))
			{
				size_t		taglen = t - p + 1;
				const char *q = t + 1;

				while (q + taglen <= end && memcmp(q, p, taglen) != 0)
					q++;
				if (q + taglen > end)
					return NULL;
				p = q + taglen;
			}
			else
				p = t;
		}
		else
			p++;
	}
	*comment_end = last_end;
	*nested = last_nested;
	return last;
}

bool
lg_comment_read(const char *text, const char *stmt, const char *end,
				bool standard_strings, LgComment *out)
{
	const char *p = text;
	const char *c_end;
	bool		nested;

	/* at the start of what the client sent */
	while (is_space(*p))
		p++;
	if (p[0] == '/' && p[1] == '*')
	{
		c_end = block_comment_end(p, p + LG_COMMENT_MAX_BYTES + 4, &nested);
		if (c_end != NULL && !nested &&
			lg_comment_parse(p + 2, c_end - p - 4, out))
			return true;
	}

	/* after the statement's final semicolon */
	if (*end == ';')
	{
		p = end;
		while (*p == ';' || is_space(*p))
			p++;
		if (p[0] == '/' && p[1] == '*' &&
			(c_end = block_comment_end(p, p + LG_COMMENT_MAX_BYTES + 4, &nested)) != NULL &&
			!nested)
		{
			const char *q;

			for (q = c_end; *q == ';' || is_space(*q); q++)
				;
			/* the last thing the client sent, not a later statement's */
			if (*q == '\0' && lg_comment_parse(p + 2, c_end - p - 4, out))
				return true;
		}
	}

	/* at the end of the statement itself */
	p = end;
	while (p > stmt && (is_space(p[-1]) || p[-1] == ';'))
		p--;
	if (p - stmt < 4 || p[-1] != '/' || p[-2] != '*')
		return false;
	{
		const char *c_start = trailing_comment(stmt, p, standard_strings,
											   &c_end, &nested);

		if (c_start == NULL || nested || c_end - c_start > LG_COMMENT_MAX_BYTES + 4)
			return false;
		return lg_comment_parse(c_start + 2, c_end - c_start - 4, out);
	}
}

/* ----------
 * The body: pairs
 * ----------
 */

static inline int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * URL-decode [p, e) into buf (of size cap).  Returns the length, or -1 for
 * a bad escape, a NUL, or more than cap bytes.
 */
static int
url_decode(const char *p, const char *e, char *buf, int cap)
{
	int			n = 0;

	/* most keys and values have no escape: copied as they are */
	if (memchr(p, '%', e - p) == NULL)
	{
		if (e - p > cap || memchr(p, '\0', e - p) != NULL)
			return -1;
		memcpy(buf, p, e - p);
		return e - p;
	}
	while (p < e)
	{
		char		c = *p++;

		if (c == '%')
		{
			int			hi;
			int			lo;

			if (e - p < 2 || (hi = hex_value(p[0])) < 0 || (lo = hex_value(p[1])) < 0)
				return -1;
			c = (char) (hi * 16 + lo);
			p += 2;
		}
		if (c == '\0' || n >= cap)
			return -1;
		buf[n++] = c;
	}
	return n;
}

static bool
valid_text(const char *s, int len)
{
	int			i;

	/* ASCII (no NUL: url_decode refused it) is valid in every encoding */
	for (i = 0; i < len; i++)
		if ((unsigned char) s[i] >= 0x80)
			return pg_verify_mbstr(GetDatabaseEncoding(), s, len, true);
	return true;
}

static bool context_add(LgContext *ctx, const char *key, int klen,
						const char *value, int vlen);

bool
lg_comment_parse(const char *body, size_t len, LgComment *out)
{
	const char *p = body;
	const char *e = body + len;
	char		key[LG_COMMENT_MAX_BYTES];
	char		raw[LG_COMMENT_MAX_BYTES];
	char		value[LG_COMMENT_MAX_BYTES];
	bool		full = false;
	int			npairs = 0;

	if (len > LG_COMMENT_MAX_BYTES)
		return false;
	out->ctx.len = 0;
	out->ctx.npairs = 0;
	out->deadline = 0;

	for (;;)
	{
		const char *k;
		const char *v;
		int			klen;
		int			rlen = 0;
		int			vlen;

		while (p < e && is_space(*p))
			p++;
		if (p == e)
			break;
		if (npairs > 0)
		{
			if (*p != ',')
				return false;
			p++;
			while (p < e && is_space(*p))
				p++;
		}

		/* key= */
		k = p;
		while (p < e && *p != '=' && *p != '\'' && *p != ',' && !is_space(*p))
			p++;
		if (p == k || p == e || *p != '=')
			return false;
		klen = url_decode(k, p, key, sizeof(key) - 1);
		if (klen <= 0 || !valid_text(key, klen))
			return false;
		key[klen] = '\0';
		p++;

		/* 'value', a backslash escaping the next character */
		if (p == e || *p != '\'')
			return false;
		v = ++p;
		{
			const char *q = memchr(v, '\'', e - v);
			const char *b = memchr(v, '\\', (q ? q : e) - v);

			p = b ? b : q ? q : e;
		}
		if (p < e && *p == '\\')
		{
			/* escapes: unescaped into raw */
			memcpy(raw, v, p - v);
			rlen = p - v;
			while (p < e && *p != '\'')
			{
				if (*p == '\\')
				{
					if (++p == e)
						return false;
				}
				raw[rlen++] = *p++;
			}
			v = raw;
		}
		else
			rlen = p - v;
		if (p == e)
			return false;
		p++;
		vlen = url_decode(v, v + rlen, value, sizeof(value) - 1);
		if (vlen < 0 || !valid_text(value, vlen))
			return false;
		value[vlen] = '\0';
		npairs++;

		if (strcmp(key, LG_DEADLINE_KEY) == 0 && out->deadline == 0)
		{
			TimestampTz d;

			if (lg_deadline_parse(value, &d))
				out->deadline = d;
		}

		/* kept: the first pairs, while they fit; a repeated key once */
		if (!full)
			full = !context_add(&out->ctx, key, klen, value, vlen);
	}
	return npairs > 0;
}

/* ----------
 * Deadlines
 * ----------
 */

static bool
digits(const char *p, int n, int *value)
{
	int			v = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*value = v;
	return true;
}

bool
lg_deadline_parse(const char *value, TimestampTz *out)
{
	const char *p = value;
	int			year,
				month,
				day,
				hour,
				minute,
				second;
	int64		usec = 0;
	int64		offset = 0;

	if (*p >= '0' && *p <= '9' && strlen(p) <= 15 && strspn(p, "0123456789") == strlen(p))
	{
		/* epoch milliseconds */
		int64		ms = strtoll(p, NULL, 10);

		*out = ms * 1000 -
			(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
		return true;
	}

	/* RFC 3339: YYYY-MM-DD(T| )HH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
	if (strlen(p) < 20 ||
		!digits(p, 4, &year) || p[4] != '-' || !digits(p + 5, 2, &month) ||
		p[7] != '-' || !digits(p + 8, 2, &day) ||
		(p[10] != 'T' && p[10] != 't' && p[10] != ' ') ||
		!digits(p + 11, 2, &hour) || p[13] != ':' ||
		!digits(p + 14, 2, &minute) || p[16] != ':' ||
		!digits(p + 17, 2, &second))
		return false;
	if (month < 1 || month > 12 || day < 1 || day > day_tab[isleap(year)][month - 1] ||
		hour > 23 || minute > 59 || second > 60)
		return false;
	p += 19;
	if (*p == '.')
	{
		int64		scale = 100000;

		if (!(p[1] >= '0' && p[1] <= '9'))
			return false;
		for (p++; *p >= '0' && *p <= '9'; p++)
		{
			usec += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		offset = 0;
	else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':')
	{
		int			oh,
					om;

		if (!digits(p + 1, 2, &oh) || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return false;
		offset = ((int64) oh * 60 + om) * 60 * USECS_PER_SEC;
		if (*p == '-')
			offset = -offset;
	}
	else
		return false;
	if (second == 60)
		second = 59;			/* a leap second: as the moment before */

	*out = ((int64) (date2j(year, month, day) - POSTGRES_EPOCH_JDATE)) * USECS_PER_DAY +
		(((int64) hour * 60 + minute) * 60 + second) * USECS_PER_SEC + usec - offset;
	return true;
}

/* ----------
 * Contexts
 * ----------
 */

bool
lg_context_next(const LgContext *ctx, int *pos, const char **key,
				const char **value)
{
	if (*pos >= ctx->len)
		return false;
	*key = ctx->data + *pos;
	*pos += strlen(*key) + 1;
	*value = ctx->data + *pos;
	*pos += strlen(*value) + 1;
	return true;
}

static bool
context_has(const LgContext *ctx, const char *key)
{
	int			pos = 0;
	const char *k;
	const char *v;

	while (lg_context_next(ctx, &pos, &k, &v))
		if (strcmp(k, key) == 0)
			return true;
	return false;
}

/*
 * Add a pair unless its key is there already.  Returns false if it does not
 * fit (the context is full for it).
 */
static bool
context_add(LgContext *ctx, const char *key, int klen, const char *value,
			int vlen)
{
	if (ctx->len > 0 && context_has(ctx, key))
		return true;
	if (ctx->npairs >= LG_CONTEXT_MAX_PAIRS ||
		ctx->len + klen + vlen + 2 > (int) sizeof(ctx->data) ||
		ctx->len - 2 * ctx->npairs + klen + vlen > LG_CONTEXT_MAX_BYTES)
		return false;
	memcpy(ctx->data + ctx->len, key, klen + 1);
	memcpy(ctx->data + ctx->len + klen + 1, value, vlen + 1);
	ctx->len += klen + vlen + 2;
	ctx->npairs++;
	return true;
}

void
lg_context_merge(LgContext *ctx, const LgContext *add)
{
	int			pos = 0;
	const char *k;
	const char *v;

	if (ctx->len == 0)
	{
		/* nothing to compare with: the whole context at once */
		memcpy(ctx->data, add->data, add->len);
		ctx->len = add->len;
		ctx->npairs = add->npairs;
		return;
	}
	while (lg_context_next(add, &pos, &k, &v))
		if (!context_add(ctx, k, strlen(k), v, strlen(v)))
			break;
}

/* 19 builds a value in a JsonbInState; before, pushJsonbValue returns it */
#if PG_VERSION_NUM >= 190000
#define LG_JSONB_STATE	JsonbInState
#define LG_JSONB_STATE_INIT	{0}
#define LG_JSONB_PUSH(st, seq, v)	pushJsonbValue(&(st), (seq), (v))
#define LG_JSONB_END(st)	(pushJsonbValue(&(st), WJB_END_OBJECT, NULL), (st).result)
#else
#define LG_JSONB_STATE	JsonbParseState *
#define LG_JSONB_STATE_INIT	NULL
#define LG_JSONB_PUSH(st, seq, v)	(void) pushJsonbValue(&(st), (seq), (v))
#define LG_JSONB_END(st)	pushJsonbValue(&(st), WJB_END_OBJECT, NULL)
#endif

Datum
lg_context_jsonb(const LgContext *ctx)
{
	LG_JSONB_STATE state = LG_JSONB_STATE_INIT;
	JsonbValue *res;
	int			pos = 0;
	const char *k;
	const char *v;

	LG_JSONB_PUSH(state, WJB_BEGIN_OBJECT, NULL);
	while (lg_context_next(ctx, &pos, &k, &v))
	{
		JsonbValue	jk;
		JsonbValue	jv;

		jk.type = jbvString;
		jk.val.string.val = (char *) k;
		jk.val.string.len = strlen(k);
		LG_JSONB_PUSH(state, WJB_KEY, &jk);
		jv.type = jbvString;
		jv.val.string.val = (char *) v;
		jv.val.string.len = strlen(v);
		LG_JSONB_PUSH(state, WJB_VALUE, &jv);
	}
	res = LG_JSONB_END(state);
	return JsonbPGetDatum(JsonbValueToJsonb(res));
}
