/*
 * form.h
 *		application/x-www-form-urlencoded bodies, and the URL and string
 *		that Twilio signs (see form.c).  Plain C: no PostgreSQL header.
 */
#ifndef CREFINDER_FORM_H
#define CREFINDER_FORM_H

#include <stdbool.h>
#include <stddef.h>

/* One name=value pair, both decoded and NUL-terminated. */
typedef struct FormField
{
	char	   *name;
	size_t		name_len;
	char	   *value;
	size_t		value_len;
} FormField;

/*
 * Where the functions below get memory: size bytes, suitably aligned.
 * Never returns NULL (palloc semantics).  Nothing is freed through it:
 * the caller releases what it handed out (a memory context, or a list).
 */
typedef void *(*FormAlloc) (size_t size, void *arg);

/* form_url_variants writes at most this many URLs. */
#define FORM_MAX_URL_VARIANTS 3

/*
 * form_parse parses body[0..len): pairs separated by '&', name '=' value,
 * '+' is a space, %XX is the byte XX.  A pair without '=' is a name with
 * an empty value; empty pairs ("&&") are skipped.  Returns the number of
 * fields (at most max_fields) or -1 when the body is malformed: a bad %
 * escape, a decoded or raw NUL byte, or more than max_fields fields.
 * Names and values are NUL-terminated copies allocated with alloc; when
 * it returns -1 nothing was allocated.
 */
extern int	form_parse(const char *body, size_t len, FormField *fields, int max_fields,
					   FormAlloc alloc, void *arg);

/*
 * form_syntax_error says why body[0..len) is malformed regardless of its
 * number of fields: NULL when it is not, else a short reason, with the
 * offset of the offending byte in *offset.
 */
extern const char *form_syntax_error(const char *body, size_t len, size_t *offset);

/*
 * form_twilio_string: the string Twilio signs for a form POST, url
 * followed by each name and value, sorted by name and then by value
 * (bytewise), a repeated name=value pair counted once.  Allocated with
 * alloc (as is a scratch array of nfields pointers); *out_len is its
 * length.  NULL only when its length would not fit in a size_t.
 */
extern char *form_twilio_string(const char *url, const FormField *fields, int nfields,
								size_t *out_len, FormAlloc alloc, void *arg);

/*
 * form_url_variants: the URLs Twilio may have signed for url.  out[0] is
 * url as given; then url with its port removed, and url with the default
 * port of http (80) or https (443) added when it names none, each when it
 * differs from those before.  Returns how many (1 to 3; 0 for a NULL url).
 */
extern int	form_url_variants(const char *url, char **out, FormAlloc alloc, void *arg);

/*
 * form_query_param: the decoded value of the first query parameter of url
 * called name (names compared after decoding), or NULL when there is none.
 * Parameters that do not decode (bad % escape, NUL) are passed over.
 */
extern char *form_query_param(const char *url, const char *name, FormAlloc alloc, void *arg);

#endif							/* CREFINDER_FORM_H */
