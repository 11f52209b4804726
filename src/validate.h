/*
 * validate.h
 *		Format checks for values people type into provider settings, and
 *		the short form in which error messages quote an input.
 */
#ifndef CREFINDER_VALIDATE_H
#define CREFINDER_VALIDATE_H

#include "fmgr.h"

extern bool crefinder_is_e164(const char *s);
extern bool crefinder_is_email(const char *s);
extern bool crefinder_is_hostname(const char *s);
extern const char *crefinder_check_url(const char *s, bool forbid_underscore_host);
extern bool crefinder_is_prefixed_hex(const char *s, const char *prefix, int hex_digits);
extern bool crefinder_has_control_chars(const char *s);
extern bool crefinder_is_p256_public_key(const char *base64_der);

/* Error messages quote at most this many characters of an input. */
#define CREFINDER_QUOTE_MAX_CHARS 40

extern const char *crefinder_quote_input(const char *input);
extern void crefinder_require_argument(FunctionCallInfo fcinfo, int argno, const char *name);

#endif							/* CREFINDER_VALIDATE_H */
