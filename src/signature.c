/*
 * signature.c
 *		Checks of the signatures providers put on their webhooks, and
 *		internal SQL functions that run them on plain keys.
 *
 * Twilio: X-Twilio-Signature is base64(HMAC-SHA1(auth token, URL + the
 * form parameters' names and values, sorted)).  Twilio may have signed
 * the URL with or without its port (form_url_variants), so every variant
 * is tried.  A JSON body is signed through a bodySHA256 query parameter
 * instead: the HMAC covers the URL alone and the body's SHA-256 must be
 * that parameter.
 *
 * SendGrid: the Signed Event Webhook signs timestamp + body with ECDSA on
 * P-256 and SHA-256; the signature is base64 of DER, the public key base64
 * of a DER SubjectPublicKeyInfo.
 *
 * Vapi: either lower-case hex of HMAC-SHA256(secret, timestamp "." body),
 * or the secret itself in a header.
 *
 * The C functions answer true or false, never raise for what they are
 * given, and free every OpenSSL object they make.  Secret-derived values
 * are compared in constant time (CRYPTO_memcmp) over fixed-length
 * buffers; only lengths, which are not secret, end a comparison early.
 * Base64 is decoded strictly (canonical, padded): a signature has one
 * spelling.  An empty key or secret matches nothing.
 *
 * The SQL functions (crefinder.twilio_signature() and friends) are for
 * tests with the providers' published vectors; tenants are not granted
 * them.  crefinder.parse_form() shows how a form body is read.
 */
#include "postgres.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "form.h"
#include "signature.h"

PG_FUNCTION_INFO_V1(crefinder_twilio_signature);
PG_FUNCTION_INFO_V1(crefinder_twilio_signature_valid_sql);
PG_FUNCTION_INFO_V1(crefinder_sendgrid_signature_valid_sql);
PG_FUNCTION_INFO_V1(crefinder_vapi_signature_valid_sql);
PG_FUNCTION_INFO_V1(crefinder_secret_equal_sql);
PG_FUNCTION_INFO_V1(crefinder_parse_form);

#define TWILIO_MAC_BYTES 20		/* HMAC-SHA1 */
#define TWILIO_SIGNATURE_CHARS 28	/* its base64 */
#define SHA256_BYTES 32

/* Longer inputs than these cannot be a SendGrid key or signature. */
#define SENDGRID_KEY_DER_MAX 256
#define SENDGRID_SIGNATURE_DER_MAX 128

/* form_palloc: the FormAlloc of the server. */
static void *
form_palloc(size_t size, void *arg)
{
	return MemoryContextAllocHuge(CurrentMemoryContext, size);
}

/*
 * hmac computes the HMAC (digest "SHA1" or "SHA256") of the concatenation
 * of parts[0..nparts) into out, which has exactly out_size bytes.
 */
static bool
hmac(const char *digest, const char *key, size_t key_len,
	 const char *const *parts, const size_t *lens, int nparts,
	 unsigned char *out, size_t out_size)
{
	EVP_MAC    *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM	params[2];
	size_t		out_len = 0;
	bool		ok = false;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx != NULL &&
		EVP_MAC_init(ctx, (const unsigned char *) key, key_len, params) == 1)
	{
		ok = true;
		for (int i = 0; i < nparts && ok; i++)
			ok = EVP_MAC_update(ctx, (const unsigned char *) parts[i], lens[i]) == 1;
		ok = ok && EVP_MAC_final(ctx, out, &out_len, out_size) == 1 && out_len == out_size;
	}
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	ERR_clear_error();
	return ok;
}

/*
 * hex_matches: given is the hexadecimal spelling of digest[0..len), in
 * either case; constant time in the digits.
 */
static bool
hex_matches(const unsigned char *digest, size_t len, const char *given)
{
	static const char digits[] = "0123456789abcdef";
	char		expected[2 * EVP_MAX_MD_SIZE];
	char		lowered[2 * EVP_MAX_MD_SIZE];
	bool		ok;

	Assert(len <= EVP_MAX_MD_SIZE);
	if (strlen(given) != 2 * len)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		expected[2 * i] = digits[digest[i] >> 4];
		expected[2 * i + 1] = digits[digest[i] & 0xf];
	}
	for (size_t i = 0; i < 2 * len; i++)
	{
		char		c = given[i];

		lowered[i] = (c >= 'A' && c <= 'F') ? (char) (c - 'A' + 'a') : c;
	}
	ok = CRYPTO_memcmp(expected, lowered, 2 * len) == 0;
	OPENSSL_cleanse(expected, sizeof(expected));
	return ok;
}

static int
base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * decode_base64 decodes canonical, padded base64 (RFC 4648 section 4: a
 * multiple of 4 characters of the alphabet, '=' only as the last one or
 * two, unused bits zero) into dst, which has room for cap bytes.  Returns
 * the number of bytes, or -1 for anything else or more than cap bytes.
 */
static int
decode_base64(const char *src, unsigned char *dst, size_t cap)
{
	size_t		len = strnlen(src, 4 * (cap / 3 + 2) + 1);
	size_t		out = 0;

	if (len == 0 || len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4)
	{
		int			pad = 0;
		unsigned long bits = 0;

		if (i + 4 == len && src[i + 3] == '=')
			pad = src[i + 2] == '=' ? 2 : 1;
		for (int j = 0; j < 4 - pad; j++)
		{
			int			v = base64_value(src[i + j]);

			if (v < 0)
				return -1;
			bits = bits << 6 | (unsigned long) v;
		}
		bits <<= 6 * pad;
		if ((pad == 1 && (bits & 0xff) != 0) || (pad == 2 && (bits & 0xffff) != 0))
			return -1;			/* not the canonical spelling */
		if (out + 3 - pad > cap)
			return -1;
		dst[out++] = (unsigned char) (bits >> 16);
		if (pad < 2)
			dst[out++] = (unsigned char) (bits >> 8);
		if (pad < 1)
			dst[out++] = (unsigned char) bits;
	}
	return (int) out;
}

/*
 * twilio_mac: the base64 X-Twilio-Signature (TWILIO_SIGNATURE_CHARS + 1
 * bytes with its NUL) of signed_url and fields under token.
 */
static bool
twilio_mac(const char *token, size_t token_len, const char *signed_url,
		   const FormField *fields, int nfields, char *out)
{
	unsigned char mac[TWILIO_MAC_BYTES];
	size_t		len;
	char	   *s = form_twilio_string(signed_url, fields, nfields, &len, form_palloc, NULL);
	const char *parts[1];
	bool		ok;

	if (s == NULL)
		return false;
	parts[0] = s;
	ok = hmac("SHA1", token, token_len, parts, &len, 1, mac, sizeof(mac));
	pfree(s);
	if (ok)
		EVP_EncodeBlock((unsigned char *) out, mac, TWILIO_MAC_BYTES);
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok;
}

/* twilio_valid: crefinder_twilio_signature_valid in a memory context of its own. */
static bool
twilio_valid(const char *token, const char *url, const char *body, size_t body_len,
			 const char *signature)
{
	FormField  *fields = NULL;
	int			nfields = 0;
	char	   *variants[FORM_MAX_URL_VARIANTS];
	int			nvariants;
	char	   *body_sha;
	bool		match = false;

	body_sha = form_query_param(url, "bodySHA256", form_palloc, NULL);
	if (body_sha != NULL)
	{
		unsigned char digest[SHA256_BYTES];
		unsigned int digest_len = 0;

		/* a JSON body: its hash is in the URL, and the URL is signed */
		if (EVP_Digest(body, body_len, digest, &digest_len, EVP_sha256(), NULL) != 1 ||
			digest_len != SHA256_BYTES)
		{
			ERR_clear_error();
			return false;
		}
		if (!hex_matches(digest, SHA256_BYTES, body_sha))
			return false;
	}
	else
	{
		fields = palloc(sizeof(FormField) * CREFINDER_FORM_MAX_FIELDS);
		nfields = form_parse(body, body_len, fields, CREFINDER_FORM_MAX_FIELDS, form_palloc, NULL);
		if (nfields < 0)
			return false;
	}

	/* every variant is computed and compared, whichever matches */
	nvariants = form_url_variants(url, variants, form_palloc, NULL);
	for (int i = 0; i < nvariants; i++)
	{
		char		expected[TWILIO_SIGNATURE_CHARS + 1];

		if (twilio_mac(token, strlen(token), variants[i], fields, nfields, expected))
			match |= CRYPTO_memcmp(expected, signature, TWILIO_SIGNATURE_CHARS) == 0;
		OPENSSL_cleanse(expected, sizeof(expected));
	}
	return match;
}

/*
 * crefinder_twilio_signature_valid: signature is the X-Twilio-Signature of
 * a POST of body to url under token.  False for a malformed body or
 * signature.
 */
bool
crefinder_twilio_signature_valid(const char *token, const char *url,
								 const char *body, size_t body_len,
								 const char *signature)
{
	MemoryContext cxt;
	MemoryContext old;
	bool		match;

	if (token == NULL || url == NULL || signature == NULL || (body == NULL && body_len > 0))
		return false;
	if (token[0] == '\0' || strnlen(signature, TWILIO_SIGNATURE_CHARS + 1) != TWILIO_SIGNATURE_CHARS)
		return false;
	if (body == NULL)
		body = "";

	cxt = AllocSetContextCreate(CurrentMemoryContext, "crefinder twilio signature",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	match = twilio_valid(token, url, body, body_len, signature);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return match;
}

/* is_p256: pkey is an EC key on the NIST P-256 curve. */
static bool
is_p256(EVP_PKEY *pkey)
{
	char		group[64];
	size_t		group_len = 0;

	if (!EVP_PKEY_is_a(pkey, "EC") ||
		EVP_PKEY_get_group_name(pkey, group, sizeof(group), &group_len) != 1)
		return false;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

/*
 * crefinder_sendgrid_signature_valid: signature_b64 is SendGrid's ECDSA
 * signature of timestamp followed by body under public_key_b64.
 */
bool
crefinder_sendgrid_signature_valid(const char *public_key_b64, const char *timestamp,
								   const char *body, size_t body_len,
								   const char *signature_b64)
{
	unsigned char key_der[SENDGRID_KEY_DER_MAX];
	unsigned char sig_der[SENDGRID_SIGNATURE_DER_MAX];
	const unsigned char *p = key_der;
	int			key_len;
	int			sig_len;
	EVP_PKEY   *pkey = NULL;
	EVP_MD_CTX *ctx = NULL;
	bool		ok;

	if (public_key_b64 == NULL || timestamp == NULL || signature_b64 == NULL ||
		(body == NULL && body_len > 0))
		return false;
	if (body == NULL)
		body = "";
	key_len = decode_base64(public_key_b64, key_der, sizeof(key_der));
	sig_len = decode_base64(signature_b64, sig_der, sizeof(sig_der));
	if (key_len <= 0 || sig_len <= 0)
		return false;

	pkey = d2i_PUBKEY(NULL, &p, key_len);
	ok = pkey != NULL && p == key_der + key_len && is_p256(pkey);
	if (ok)
	{
		ctx = EVP_MD_CTX_new();
		ok = ctx != NULL &&
			EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1 &&
			EVP_DigestVerifyUpdate(ctx, timestamp, strlen(timestamp)) == 1 &&
			EVP_DigestVerifyUpdate(ctx, body, body_len) == 1 &&
			EVP_DigestVerifyFinal(ctx, sig_der, sig_len) == 1;
	}
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return ok;
}

/*
 * crefinder_vapi_hmac_valid: signature_hex is the hexadecimal (either
 * case) HMAC-SHA256 of timestamp "." body under secret.
 */
bool
crefinder_vapi_hmac_valid(const char *secret, const char *timestamp,
						  const char *body, size_t body_len,
						  const char *signature_hex)
{
	unsigned char mac[SHA256_BYTES];
	const char *parts[3];
	size_t		lens[3];
	bool		ok;

	if (secret == NULL || timestamp == NULL || signature_hex == NULL ||
		(body == NULL && body_len > 0) || secret[0] == '\0')
		return false;
	parts[0] = timestamp;
	lens[0] = strlen(timestamp);
	parts[1] = ".";
	lens[1] = 1;
	parts[2] = body ? body : "";
	lens[2] = body_len;
	ok = hmac("SHA256", secret, strlen(secret), parts, lens, 3, mac, sizeof(mac)) &&
		hex_matches(mac, sizeof(mac), signature_hex);
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok;
}

/*
 * crefinder_secret_equal: given is expected (a shared secret sent as a
 * header), compared through their SHA-256 digests, so that the time taken
 * depends on the two lengths only.  An empty expected matches nothing.
 */
bool
crefinder_secret_equal(const char *expected, const char *given)
{
	unsigned char de[SHA256_BYTES];
	unsigned char dg[SHA256_BYTES];
	unsigned int de_len = 0;
	unsigned int dg_len = 0;
	size_t		expected_len;
	size_t		given_len;
	bool		ok;

	if (expected == NULL || given == NULL)
		return false;
	expected_len = strlen(expected);
	given_len = strlen(given);
	ok = EVP_Digest(expected, expected_len, de, &de_len, EVP_sha256(), NULL) == 1 &&
		EVP_Digest(given, given_len, dg, &dg_len, EVP_sha256(), NULL) == 1 &&
		de_len == SHA256_BYTES && dg_len == SHA256_BYTES;
	ok = ok & (CRYPTO_memcmp(de, dg, SHA256_BYTES) == 0) &
		(expected_len == given_len) & (expected_len > 0);
	OPENSSL_cleanse(de, sizeof(de));
	OPENSSL_cleanse(dg, sizeof(dg));
	ERR_clear_error();
	return ok;
}

/* ----------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------- */

/*
 * parse_form_or_raise parses a form body for the SQL functions: at most
 * CREFINDER_FORM_MAX_FIELDS fields, else 22P02 saying why.
 */
static int
parse_form_or_raise(const char *body, size_t len, FormField **fields_out)
{
	FormField  *fields = palloc(sizeof(FormField) * (CREFINDER_FORM_MAX_FIELDS + 1));
	int			n = form_parse(body, len, fields, CREFINDER_FORM_MAX_FIELDS + 1, form_palloc, NULL);

	if (n < 0)
	{
		size_t		offset;
		const char *reason = form_syntax_error(body, len, &offset);

		if (reason != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("malformed form body"),
					 errdetail("At byte %zu: %s.", offset + 1, reason)));
	}
	if (n < 0 || n > CREFINDER_FORM_MAX_FIELDS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("form body has more than %d fields", CREFINDER_FORM_MAX_FIELDS),
				 errdetail("crefinder reads at most %d name=value pairs from a form body.",
						   CREFINDER_FORM_MAX_FIELDS)));
	*fields_out = fields;
	return n;
}

/*
 * crefinder.twilio_signature(auth_token, url, body): the X-Twilio-Signature
 * of a form body POSTed to url exactly as given; for a url with a
 * bodySHA256 parameter, of the URL alone.
 */
Datum
crefinder_twilio_signature(PG_FUNCTION_ARGS)
{
	text	   *token = PG_GETARG_TEXT_PP(0);
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(1));
	text	   *body = PG_GETARG_TEXT_PP(2);
	FormField  *fields = NULL;
	int			nfields = 0;
	char		out[TWILIO_SIGNATURE_CHARS + 1];

	if (form_query_param(url, "bodySHA256", form_palloc, NULL) == NULL)
		nfields = parse_form_or_raise(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), &fields);
	if (!twilio_mac(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token), url, fields, nfields, out))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a Twilio signature")));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

Datum
crefinder_twilio_signature_valid_sql(PG_FUNCTION_ARGS)
{
	char	   *token = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(1));
	text	   *body = PG_GETARG_TEXT_PP(2);
	char	   *signature = text_to_cstring(PG_GETARG_TEXT_PP(3));

	PG_RETURN_BOOL(crefinder_twilio_signature_valid(token, url, VARDATA_ANY(body),
													VARSIZE_ANY_EXHDR(body), signature));
}

Datum
crefinder_sendgrid_signature_valid_sql(PG_FUNCTION_ARGS)
{
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *timestamp = text_to_cstring(PG_GETARG_TEXT_PP(1));
	text	   *body = PG_GETARG_TEXT_PP(2);
	char	   *signature = text_to_cstring(PG_GETARG_TEXT_PP(3));

	PG_RETURN_BOOL(crefinder_sendgrid_signature_valid(key, timestamp, VARDATA_ANY(body),
													  VARSIZE_ANY_EXHDR(body), signature));
}

Datum
crefinder_vapi_signature_valid_sql(PG_FUNCTION_ARGS)
{
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *timestamp = text_to_cstring(PG_GETARG_TEXT_PP(1));
	text	   *body = PG_GETARG_TEXT_PP(2);
	char	   *signature = text_to_cstring(PG_GETARG_TEXT_PP(3));

	PG_RETURN_BOOL(crefinder_vapi_hmac_valid(secret, timestamp, VARDATA_ANY(body),
											 VARSIZE_ANY_EXHDR(body), signature));
}

Datum
crefinder_secret_equal_sql(PG_FUNCTION_ARGS)
{
	char	   *expected = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *given = text_to_cstring(PG_GETARG_TEXT_PP(1));

	PG_RETURN_BOOL(crefinder_secret_equal(expected, given));
}

/* jsonb_string: a JSON string of s[0..len), which must be valid text. */
static JsonbValue *
jsonb_string(JsonbValue *v, const char *s, size_t len, const char *what, int field)
{
	if (!pg_verifymbstr(s, (int) len, true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("form body field %d has a %s that is not valid %s",
						field, what, GetDatabaseEncodingName()),
				 errdetail("Its %% escapes decode to bytes that are not text in the database's encoding.")));
	/* all of it: pushJsonbValue copies the whole value, union included */
	memset(v, 0, sizeof(*v));
	v->type = jbvString;
	v->val.string.val = (char *) s;
	v->val.string.len = (int) len;
	return v;
}

/*
 * crefinder.parse_form(body): a form body as a JSON object of names and
 * values, the first value of a repeated name.
 */
Datum
crefinder_parse_form(PG_FUNCTION_ARGS)
{
	text	   *body = PG_GETARG_TEXT_PP(0);
	FormField  *fields;
	int			n = parse_form_or_raise(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), &fields);
	JsonbParseState *state = NULL;
	JsonbValue	key;
	JsonbValue	value;
	JsonbValue *result;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	/* jsonb keeps the last value of a repeated key: push the first last */
	for (int i = n - 1; i >= 0; i--)
	{
		pushJsonbValue(&state, WJB_KEY,
					   jsonb_string(&key, fields[i].name, fields[i].name_len, "name", i + 1));
		pushJsonbValue(&state, WJB_VALUE,
					   jsonb_string(&value, fields[i].value, fields[i].value_len, "value", i + 1));
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(result));
}
