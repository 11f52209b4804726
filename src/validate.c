/*
 * validate.c
 *		Format checks for values people type into provider settings:
 *		phone numbers, email addresses, host names, URLs, provider ids and
 *		public keys.
 *
 * URLs are parsed by libcurl's URL API and public keys by OpenSSL, the
 * same code that will later use them; the rest are small syntax checks.
 * Every function answers and never raises an error.
 *
 * crefinder_quote_input is how every error message of crefinder quotes
 * what it was given: at most a short prefix, so that a huge argument does
 * not end up whole in the error and the server log.
 */
#include "postgres.h"

#include <ctype.h>

#include <curl/curl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/base64.h"
#include "mb/pg_wchar.h"

#include "validate.h"

/*
 * crefinder_is_e164: "+", a country code not starting with 0, and at most
 * 15 digits in all.
 */
bool
crefinder_is_e164(const char *s)
{
	int			digits = 0;

	if (s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	for (const char *p = s + 1; *p; p++)
	{
		if (!isdigit((unsigned char) *p))
			return false;
		digits++;
	}
	return digits >= 8 && digits <= 15;
}

/*
 * crefinder_is_hostname: dot-separated labels of letters, digits and
 * hyphens (no leading or trailing hyphen, at most 63 characters each), at
 * least two labels, a top-level label that is not all digits, 253
 * characters in all.
 */
bool
crefinder_is_hostname(const char *s)
{
	size_t		len = strlen(s);
	int			labels = 0;
	const char *label = s;

	if (len == 0 || len > 253)
		return false;
	for (;;)
	{
		const char *end = strchr(label, '.');
		size_t		label_len = end ? (size_t) (end - label) : strlen(label);
		bool		all_digits = true;

		if (label_len == 0 || label_len > 63 ||
			label[0] == '-' || label[label_len - 1] == '-')
			return false;
		for (size_t i = 0; i < label_len; i++)
		{
			unsigned char c = (unsigned char) label[i];

			if (!isalnum(c) && c != '-')
				return false;
			if (!isdigit(c))
				all_digits = false;
		}
		labels++;
		if (end == NULL)
			return labels >= 2 && !all_digits;
		label = end + 1;
	}
}

/*
 * crefinder_is_email: a dot-atom local part (RFC 5321/5322, no quoted
 * forms), "@", and a host name.
 */
bool
crefinder_is_email(const char *s)
{
	static const char atext_extra[] = "!#$%&'*+/=?^_`{|}~-";
	const char *at = strrchr(s, '@');
	size_t		local_len;

	if (at == NULL || strlen(s) > 254)
		return false;
	local_len = at - s;
	if (local_len == 0 || local_len > 64 || s[0] == '.' || at[-1] == '.')
		return false;
	for (const char *p = s; p < at; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (c == '.')
		{
			if (p[1] == '.')
				return false;
			continue;
		}
		if (!isalnum(c) && strchr(atext_extra, c) == NULL)
			return false;
	}
	return crefinder_is_hostname(at + 1);
}

/*
 * crefinder_check_url returns NULL when s is an absolute http or https URL
 * with a host, else a short reason.  Twilio refuses callback hosts that
 * contain "_", hence forbid_underscore_host.
 */
const char *
crefinder_check_url(const char *s, bool forbid_underscore_host)
{
	CURLU	   *url = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	const char *reason = NULL;

	if (url == NULL)
		return "could not be parsed";
	if (curl_url_set(url, CURLUPART_URL, s, 0) != CURLUE_OK ||
		curl_url_get(url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		reason = "must be an absolute http or https URL";
	else if (pg_strcasecmp(scheme, "http") != 0 && pg_strcasecmp(scheme, "https") != 0)
		reason = "must be an http or https URL";
	else if (host[0] == '\0')
		reason = "must name a host";
	else if (forbid_underscore_host && strchr(host, '_') != NULL)
		reason = "host must not contain \"_\"";

	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(url);
	return reason;
}

/*
 * crefinder_is_prefixed_hex: prefix followed by exactly hex_digits
 * hexadecimal digits (Twilio's "AC…", "MG…" ids).
 */
bool
crefinder_is_prefixed_hex(const char *s, const char *prefix, int hex_digits)
{
	size_t		prefix_len = strlen(prefix);

	if (strncmp(s, prefix, prefix_len) != 0 || strlen(s) != prefix_len + hex_digits)
		return false;
	for (const char *p = s + prefix_len; *p; p++)
		if (!isxdigit((unsigned char) *p))
			return false;
	return true;
}

/* crefinder_has_control_chars: any C0 control character or DEL. */
bool
crefinder_has_control_chars(const char *s)
{
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

/*
 * crefinder_is_p256_public_key: base64 of a DER SubjectPublicKeyInfo that
 * holds an EC key on P-256 (the form of SendGrid's Signed Event Webhook
 * verification key).
 */
bool
crefinder_is_p256_public_key(const char *base64_der)
{
	int			b64_len = strlen(base64_der);
	int			der_cap = pg_b64_dec_len(b64_len);
	char	   *der = palloc(der_cap + 1);
	int			der_len = pg_b64_decode(base64_der, b64_len, der, der_cap);
	const unsigned char *p = (const unsigned char *) der;
	EVP_PKEY   *pkey;
	char		group[64];
	size_t		group_len = 0;
	bool		ok = false;

	if (der_len <= 0)
	{
		pfree(der);
		return false;
	}
	pkey = d2i_PUBKEY(NULL, &p, der_len);
	if (pkey != NULL &&
		p == (const unsigned char *) der + der_len &&
		EVP_PKEY_is_a(pkey, "EC") &&
		EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
									   group, sizeof(group), &group_len) == 1)
		ok = strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
	EVP_PKEY_free(pkey);
	pfree(der);
	return ok;
}

/*
 * crefinder_quote_input returns input as an error message may quote it:
 * unchanged when it has at most CREFINDER_QUOTE_MAX_CHARS characters,
 * else its first CREFINDER_QUOTE_MAX_CHARS characters (cut between
 * characters, never inside one) followed by an ellipsis (three dots in
 * a database whose encoding is not UTF-8).
 */
const char *
crefinder_quote_input(const char *input)
{
	int			len;
	int			clipped;

	if (input == NULL)
		return "";
	len = strlen(input);
	if (len <= CREFINDER_QUOTE_MAX_CHARS)
		return input;			/* no more bytes than characters allowed */
	clipped = pg_mbcharcliplen(input, len, CREFINDER_QUOTE_MAX_CHARS);
	if (clipped >= len)
		return input;
	return psprintf("%.*s%s", clipped, input,
					GetDatabaseEncoding() == PG_UTF8 ? "\xE2\x80\xA6" : "...");
}

/*
 * crefinder_require_argument raises 22004 naming argument argno of a C
 * function that is not STRICT when it is NULL.
 */
void
crefinder_require_argument(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}
