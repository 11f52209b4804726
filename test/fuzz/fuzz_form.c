/*
 * fuzz_form.c
 *		libFuzzer target for src/form.c: form bodies, Twilio's signed
 *		string, URL variants and query parameters.
 *
 * Run by hand (builds into a temporary folder, copies the seed corpus
 * test/fuzz/corpus_form/ there, leaves the repository as it was):
 *
 *		test/fuzz/run form 300		fuzz for 300 seconds
 *
 * test/test_fuzz.py runs it for 45 seconds as part of make test.  The
 * build is
 *
 *		clang -g -O1 -std=c11 -fsanitize=fuzzer,address,undefined \
 *			-fno-sanitize-recover=all -Isrc test/fuzz/fuzz_form.c src/form.c
 *
 * An input is a URL, a newline (or a NUL), and a body; without either the
 * whole input is the URL.  Every call's result is checked against what
 * form.h promises, and memory comes from a malloc-based allocator that
 * frees everything once the input is done (a leak is a finding).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

/* fields form_parse may return for one input */
#define MAX_FIELDS 64

typedef struct Block
{
	struct Block *next;
	max_align_t data[];
} Block;

typedef struct Arena
{
	Block	   *head;
	size_t		count;
} Arena;

static void *
arena_alloc(size_t size, void *arg)
{
	Arena	   *arena = arg;
	Block	   *b = malloc(sizeof(Block) + size);

	if (b == NULL)
		abort();
	b->next = arena->head;
	arena->head = b;
	arena->count++;
	return b->data;
}

static void
arena_free(Arena *arena)
{
	while (arena->head != NULL)
	{
		Block	   *next = arena->head->next;

		free(arena->head);
		arena->head = next;
	}
	arena->count = 0;
}

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static bool
same_fields(const FormField *a, const FormField *b, int n)
{
	for (int i = 0; i < n; i++)
		if (a[i].name_len != b[i].name_len || a[i].value_len != b[i].value_len ||
			memcmp(a[i].name, b[i].name, a[i].name_len) != 0 ||
			memcmp(a[i].value, b[i].value, a[i].value_len) != 0)
			return false;
	return true;
}

/* encode: s[0..len) form-encoded at out (room for 3 * len bytes); returns the end. */
static char *
encode(char *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '-' || c == '.' || c == '_' || c == '~')
			*out++ = (char) c;
		else if (c == ' ')
			*out++ = '+';
		else
		{
			*out++ = '%';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 0xf];
		}
	}
	return out;
}

/* check_fields: what form_parse promises of n fields of a body of len bytes */
static void
check_fields(const FormField *fields, int n, size_t len)
{
	for (int i = 0; i < n; i++)
	{
		CHECK(fields[i].name != NULL && fields[i].value != NULL);
		CHECK(strlen(fields[i].name) == fields[i].name_len);
		CHECK(strlen(fields[i].value) == fields[i].value_len);
		CHECK(fields[i].name_len + fields[i].value_len <= len);
	}
}

static void
check_twilio_string(const char *url, const FormField *fields, int n, Arena *arena)
{
	size_t		url_len = strlen(url);
	size_t		len = 0;
	size_t		reversed_len = 0;
	size_t		most = url_len;
	char	   *s = form_twilio_string(url, fields, n, &len, arena_alloc, arena);
	FormField  *reversed = arena_alloc(sizeof(FormField) * (size_t) (n + 1), arena);
	char	   *r;

	CHECK(s != NULL);
	CHECK(strlen(s) == len);		/* no NUL inside */
	CHECK(len >= url_len && memcmp(s, url, url_len) == 0);
	for (int i = 0; i < n; i++)
		most += fields[i].name_len + fields[i].value_len;
	CHECK(len <= most);
	/* with no duplicate pair nothing is dropped */
	if (n == 1)
		CHECK(len == most);

	/* the order of the fields does not matter */
	for (int i = 0; i < n; i++)
		reversed[i] = fields[n - 1 - i];
	r = form_twilio_string(url, reversed, n, &reversed_len, arena_alloc, arena);
	CHECK(r != NULL && reversed_len == len && memcmp(r, s, len) == 0);
}

static void
check_variants(const char *url, Arena *arena)
{
	char	   *out[FORM_MAX_URL_VARIANTS + 1];
	int			n;
	size_t		url_len = strlen(url);
	char	   *query = form_query_param(url, "bodySHA256", arena_alloc, arena);

	out[FORM_MAX_URL_VARIANTS] = NULL;
	n = form_url_variants(url, out, arena_alloc, arena);
	CHECK(n >= 1 && n <= FORM_MAX_URL_VARIANTS);
	CHECK(out[FORM_MAX_URL_VARIANTS] == NULL);	/* wrote no more than 3 */
	CHECK(strcmp(out[0], url) == 0);
	for (int i = 0; i < n; i++)
	{
		size_t		len = strlen(out[i]);
		char	   *q;
		char	   *again[FORM_MAX_URL_VARIANTS];
		int			m;

		/* a port removed (digits and ":") or ":443" / ":80" added */
		CHECK(len <= url_len + 4);
		for (int j = 0; j < i; j++)
			CHECK(strcmp(out[i], out[j]) != 0);
		/* only the authority changes: the query stays */
		q = form_query_param(out[i], "bodySHA256", arena_alloc, arena);
		CHECK((q == NULL) == (query == NULL));
		CHECK(q == NULL || strcmp(q, query) == 0);
		m = form_url_variants(out[i], again, arena_alloc, arena);
		CHECK(m >= 1 && m <= FORM_MAX_URL_VARIANTS);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Arena		arena = {NULL, 0};
	const char *input = (const char *) data;
	size_t		url_len = 0;
	char	   *url;
	const char *body;
	size_t		body_len;
	FormField	fields[MAX_FIELDS];
	FormField  *all;
	int			n;
	int			all_n;
	size_t		offset;
	const char *reason;

	while (url_len < size && input[url_len] != '\n' && input[url_len] != '\0')
		url_len++;
	url = arena_alloc(url_len + 1, &arena);
	memcpy(url, input, url_len);
	url[url_len] = '\0';
	body = url_len < size ? input + url_len + 1 : input + size;
	body_len = url_len < size ? size - url_len - 1 : 0;

	/* form_parse: bounded, and the same as with room for every field */
	n = form_parse(body, body_len, fields, MAX_FIELDS, arena_alloc, &arena);
	all = arena_alloc(sizeof(FormField) * (body_len + 1), &arena);
	all_n = form_parse(body, body_len, all, (int) (body_len + 1), arena_alloc, &arena);
	reason = form_syntax_error(body, body_len, &offset);
	CHECK(n >= -1 && n <= MAX_FIELDS);
	CHECK(all_n >= -1 && (size_t) (all_n + 1) <= body_len / 2 + 2);
	CHECK((all_n < 0) == (reason != NULL));
	CHECK(reason == NULL || offset < body_len);
	CHECK(n == (all_n <= MAX_FIELDS ? all_n : -1));
	if (n >= 0)
		CHECK(same_fields(fields, all, n));
	if (all_n >= 0)
		check_fields(all, all_n, body_len);

	/* a failed parse allocates nothing */
	{
		size_t		before = arena.count;
		FormField	none[1];

		if (form_parse(body, body_len, none, 0, arena_alloc, &arena) < 0)
			CHECK(arena.count == before);
	}

	if (all_n >= 0)
	{
		/* encoding the fields again gives the same fields */
		size_t		cap = 1;
		char	   *again;
		char	   *p;
		FormField  *reparsed = arena_alloc(sizeof(FormField) * (size_t) (all_n + 1), &arena);

		for (int i = 0; i < all_n; i++)
			cap += 3 * (all[i].name_len + all[i].value_len) + 2;
		again = arena_alloc(cap, &arena);
		p = again;
		for (int i = 0; i < all_n; i++)
		{
			if (i > 0)
				*p++ = '&';
			p = encode(p, all[i].name, all[i].name_len);
			*p++ = '=';
			p = encode(p, all[i].value, all[i].value_len);
		}
		CHECK(form_parse(again, (size_t) (p - again), reparsed, all_n, arena_alloc, &arena) == all_n);
		CHECK(same_fields(reparsed, all, all_n));

		check_twilio_string(url, all, all_n, &arena);

		/* the body as a query: the first field of a name is its value */
		if (all_n > 0 && memchr(body, '#', body_len) == NULL && memchr(body, '\0', body_len) == NULL)
		{
			char	   *as_url = arena_alloc(body_len + 2, &arena);
			char	   *v;

			as_url[0] = '?';
			memcpy(as_url + 1, body, body_len);
			as_url[body_len + 1] = '\0';
			v = form_query_param(as_url, all[all_n - 1].name, arena_alloc, &arena);
			CHECK(v != NULL);
			for (int i = 0; i < all_n; i++)
				if (strcmp(all[i].name, all[all_n - 1].name) == 0)
				{
					CHECK(strcmp(v, all[i].value) == 0);
					break;
				}
		}
	}

	check_variants(url, &arena);
	{
		char	   *v = form_query_param(url, n > 0 ? fields[0].name : "bodySHA256",
										 arena_alloc, &arena);

		CHECK(v == NULL || strlen(v) <= url_len);
	}

	arena_free(&arena);
	return 0;
}
