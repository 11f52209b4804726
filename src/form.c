/*
 * form.c
 *		application/x-www-form-urlencoded bodies, and what Twilio signs for
 *		a webhook (X-Twilio-Signature): its string of sorted parameters,
 *		the URL variants it may have used, and query parameters.
 *
 * Plain C that includes no PostgreSQL header, so that it can be fuzzed
 * outside the server (test/fuzz/fuzz_form.c).  Memory comes from the
 * caller's allocator, which never fails and frees nothing itself.
 *
 * Every function reads exactly the bytes it is given (a length, or up to
 * a NUL) and writes only what it allocated; a body that does not decode
 * is refused as a whole rather than read in part.
 */
#include <stddef.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

/* One pair of a body or query, still encoded. */
typedef struct FormSpan
{
	const char *name;
	size_t		name_len;
	const char *value;
	size_t		value_len;
} FormSpan;

static int
hex_digit(char c)
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
 * next_pair finds the next non-empty pair of [*cursor, end) and moves
 * *cursor past it and its '&'; false when there is none.
 */
static bool
next_pair(const char **cursor, const char *end, FormSpan *pair)
{
	const char *p = *cursor;

	while (p < end)
	{
		const char *amp = memchr(p, '&', (size_t) (end - p));
		const char *stop = amp ? amp : end;
		const char *eq;

		*cursor = amp ? amp + 1 : end;
		if (stop == p)
		{
			p = *cursor;		/* "&&": an empty pair */
			continue;
		}
		eq = memchr(p, '=', (size_t) (stop - p));
		pair->name = p;
		pair->name_len = (size_t) ((eq ? eq : stop) - p);
		pair->value = eq ? eq + 1 : stop;
		pair->value_len = (size_t) (stop - pair->value);
		return true;
	}
	*cursor = end;
	return false;
}

/*
 * decode_byte decodes the byte at src[*i] (a '+', a %XX escape or itself)
 * and moves *i past it.  Returns the byte, or -1 for a bad escape.
 */
static int
decode_byte(const char *src, size_t len, size_t *i)
{
	char		c = src[*i];

	if (c == '%')
	{
		int			hi,
					lo;

		if (len - *i < 3 ||
			(hi = hex_digit(src[*i + 1])) < 0 ||
			(lo = hex_digit(src[*i + 2])) < 0)
			return -1;
		*i += 3;
		return hi << 4 | lo;
	}
	*i += 1;
	return c == '+' ? ' ' : (unsigned char) c;
}

/*
 * decode decodes src[0..len) into dst (room for len + 1 bytes; NULL only
 * checks) and returns the decoded length; on a bad escape or a NUL it
 * returns false with a reason and the offset of the offending byte.
 */
static bool
decode(const char *src, size_t len, char *dst, size_t *dst_len,
	   const char **reason, size_t *offset)
{
	size_t		n = 0;
	size_t		i = 0;

	while (i < len)
	{
		size_t		at = i;
		int			c = decode_byte(src, len, &i);

		if (c <= 0)
		{
			*offset = at;
			*reason = c < 0 ? "\"%\" is not followed by two hexadecimal digits" :
				src[at] == '%' ? "\"%00\" decodes to a NUL byte, which is not allowed" :
				"a NUL byte, which is not allowed";
			return false;
		}
		if (dst != NULL)
			dst[n] = (char) c;
		n++;
	}
	if (dst != NULL)
		dst[n] = '\0';
	*dst_len = n;
	return true;
}

/*
 * scan checks every pair of body[0..len) and counts them, stopping once
 * there are more than max_fields when max_fields >= 0.  Returns the count,
 * or -1 with a reason and an offset when a pair does not decode.
 */
static int
scan(const char *body, size_t len, int max_fields, const char **reason, size_t *offset)
{
	const char *cursor = body;
	const char *end = body + len;
	FormSpan	pair;
	int			count = 0;
	size_t		decoded;

	while (next_pair(&cursor, end, &pair))
	{
		if (!decode(pair.name, pair.name_len, NULL, &decoded, reason, offset))
		{
			*offset += (size_t) (pair.name - body);
			return -1;
		}
		if (!decode(pair.value, pair.value_len, NULL, &decoded, reason, offset))
		{
			*offset += (size_t) (pair.value - body);
			return -1;
		}
		count++;
		if (max_fields >= 0 && count > max_fields)
			break;
	}
	return count;
}

const char *
form_syntax_error(const char *body, size_t len, size_t *offset)
{
	const char *reason = NULL;

	*offset = 0;
	if (body == NULL)
		return len == 0 ? NULL : "no body";
	if (scan(body, len, -1, &reason, offset) < 0)
		return reason;
	return NULL;
}

/* copy_decoded: a NUL-terminated, decoded copy of src[0..len). */
static char *
copy_decoded(const char *src, size_t len, size_t *out_len, FormAlloc alloc, void *arg)
{
	char	   *dst = alloc(len + 1, arg);
	const char *reason;
	size_t		offset;

	/* cannot fail: scan() checked it */
	if (!decode(src, len, dst, out_len, &reason, &offset))
	{
		dst[0] = '\0';
		*out_len = 0;
	}
	return dst;
}

int
form_parse(const char *body, size_t len, FormField *fields, int max_fields,
		   FormAlloc alloc, void *arg)
{
	const char *cursor;
	const char *end;
	const char *reason;
	size_t		offset;
	FormSpan	pair;
	int			count;
	int			n = 0;

	if (max_fields < 0)
		max_fields = 0;
	if (body == NULL)
		return len == 0 ? 0 : -1;

	/* First every pair is checked, so that a bad body allocates nothing. */
	count = scan(body, len, max_fields, &reason, &offset);
	if (count < 0 || count > max_fields)
		return -1;

	cursor = body;
	end = body + len;
	while (n < count && next_pair(&cursor, end, &pair))
	{
		fields[n].name = copy_decoded(pair.name, pair.name_len, &fields[n].name_len, alloc, arg);
		fields[n].value = copy_decoded(pair.value, pair.value_len, &fields[n].value_len, alloc, arg);
		n++;
	}
	return n;
}

/* bytes_cmp orders a[0..alen) and b[0..blen) bytewise, a prefix first. */
static int
bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int			c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int
field_cmp(const void *a, const void *b)
{
	const FormField *fa = *(const FormField *const *) a;
	const FormField *fb = *(const FormField *const *) b;
	int			c = bytes_cmp(fa->name, fa->name_len, fb->name, fb->name_len);

	return c != 0 ? c : bytes_cmp(fa->value, fa->value_len, fb->value, fb->value_len);
}

char *
form_twilio_string(const char *url, const FormField *fields, int nfields,
				   size_t *out_len, FormAlloc alloc, void *arg)
{
	size_t		url_len = url ? strlen(url) : 0;
	size_t		total = url_len;
	size_t		n = nfields > 0 ? (size_t) nfields : 0;
	const FormField **order = NULL;
	char	   *result;
	char	   *p;

	if (n > 0)
	{
		if (n > ((size_t) -1) / sizeof(*order))
			return NULL;
		order = alloc(n * sizeof(*order), arg);
		for (size_t i = 0; i < n; i++)
			order[i] = &fields[i];
		qsort(order, n, sizeof(*order), field_cmp);
	}
	for (size_t i = 0; i < n; i++)
	{
		size_t		add = order[i]->name_len + order[i]->value_len;

		if (i > 0 && field_cmp(&order[i - 1], &order[i]) == 0)
			continue;
		if (add < order[i]->name_len || total + add < total || total + add + 1 == 0)
			return NULL;		/* longer than memory */
		total += add;
	}

	result = alloc(total + 1, arg);
	p = result;
	if (url_len > 0)
		memcpy(p, url, url_len);
	p += url_len;
	for (size_t i = 0; i < n; i++)
	{
		if (i > 0 && field_cmp(&order[i - 1], &order[i]) == 0)
			continue;
		if (order[i]->name_len > 0)
			memcpy(p, order[i]->name, order[i]->name_len);
		p += order[i]->name_len;
		if (order[i]->value_len > 0)
			memcpy(p, order[i]->value, order[i]->value_len);
		p += order[i]->value_len;
	}
	*p = '\0';
	*out_len = total;
	return result;
}

/* concat: a[0..alen) + b + c[0..clen), NUL-terminated. */
static char *
concat(const char *a, size_t alen, const char *b, const char *c, size_t clen,
	   FormAlloc alloc, void *arg)
{
	size_t		blen = strlen(b);
	char	   *s = alloc(alen + blen + clen + 1, arg);

	memcpy(s, a, alen);
	memcpy(s + alen, b, blen);
	memcpy(s + alen + blen, c, clen);
	s[alen + blen + clen] = '\0';
	return s;
}

/* add_variant appends v to out[0..n) unless it is there already. */
static int
add_variant(char **out, int n, char *v)
{
	for (int i = 0; i < n; i++)
		if (strcmp(out[i], v) == 0)
			return n;
	out[n] = v;
	return n + 1;
}

static bool
is_scheme_char(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return !first && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.');
}

/* same_ascii_nocase: s[0..len) is the lower-case word w, in any case. */
static bool
same_ascii_nocase(const char *s, size_t len, const char *w)
{
	if (strlen(w) != len)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char		c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char) (c - 'A' + 'a');
		if (c != w[i])
			return false;
	}
	return true;
}

int
form_url_variants(const char *url, char **out, FormAlloc alloc, void *arg)
{
	size_t		len;
	size_t		scheme_len = 0;
	const char *authority;
	const char *authority_end;
	const char *host;
	const char *host_end;
	const char *default_port = NULL;
	bool		has_port;
	int			n = 0;

	if (url == NULL)
		return 0;
	len = strlen(url);
	out[n++] = concat(url, len, "", "", 0, alloc, arg);

	/* scheme "://" authority, else there is no port to speak of */
	while (scheme_len < len && is_scheme_char(url[scheme_len], scheme_len == 0))
		scheme_len++;
	if (scheme_len == 0 || len - scheme_len < 3 || memcmp(url + scheme_len, "://", 3) != 0)
		return n;
	if (same_ascii_nocase(url, scheme_len, "https"))
		default_port = "443";
	else if (same_ascii_nocase(url, scheme_len, "http"))
		default_port = "80";

	authority = url + scheme_len + 3;
	authority_end = authority + strcspn(authority, "/?#");

	/* the host follows the last '@' of the authority (after any userinfo) */
	host = authority;
	for (const char *p = authority; p < authority_end; p++)
		if (*p == '@')
			host = p + 1;

	if (host < authority_end && *host == '[')
	{
		const char *bracket = memchr(host, ']', (size_t) (authority_end - host));

		if (bracket == NULL)
			return n;			/* an IPv6 literal that does not end */
		host_end = bracket + 1;
	}
	else
	{
		const char *colon = memchr(host, ':', (size_t) (authority_end - host));

		host_end = colon ? colon : authority_end;
	}

	if (host_end == authority_end)
		has_port = false;
	else if (*host_end == ':')
	{
		for (const char *p = host_end + 1; p < authority_end; p++)
			if (*p < '0' || *p > '9')
				return n;		/* not a port */
		has_port = true;
	}
	else
		return n;				/* something after "]" that is no port */

	if (has_port)
		n = add_variant(out, n,
						concat(url, (size_t) (host_end - url), "",
							   authority_end, len - (size_t) (authority_end - url),
							   alloc, arg));
	/* "host:" names no port either */
	if (default_port != NULL && (!has_port || host_end + 1 == authority_end))
	{
		char		port[8] = ":";

		strcat(port, default_port);
		n = add_variant(out, n,
						concat(url, (size_t) (host_end - url), port,
							   authority_end, len - (size_t) (authority_end - url),
							   alloc, arg));
	}
	return n;
}

/* component_equals: src[0..len), decoded, is exactly want. */
static bool
component_equals(const char *src, size_t len, const char *want)
{
	size_t		i = 0;
	size_t		j = 0;

	while (i < len)
	{
		int			c = decode_byte(src, len, &i);

		if (c <= 0 || want[j] == '\0' || (unsigned char) want[j] != c)
			return false;
		j++;
	}
	return want[j] == '\0';
}

char *
form_query_param(const char *url, const char *name, FormAlloc alloc, void *arg)
{
	const char *query;
	const char *end;
	const char *cursor;
	FormSpan	pair;

	if (url == NULL || name == NULL)
		return NULL;
	query = url + strcspn(url, "?#");
	if (*query != '?')
		return NULL;			/* no query, or only a fragment */
	query++;
	end = query + strcspn(query, "#");

	cursor = query;
	while (next_pair(&cursor, end, &pair))
	{
		const char *reason;
		size_t		offset;
		size_t		value_len;

		if (component_equals(pair.name, pair.name_len, name) &&
			decode(pair.value, pair.value_len, NULL, &value_len, &reason, &offset))
			return copy_decoded(pair.value, pair.value_len, &value_len, alloc, arg);
	}
	return NULL;
}
