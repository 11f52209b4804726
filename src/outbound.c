/*
 * outbound.c
 *		Helpers the provider modules share: reading the message's jsonb,
 *		opening its sealed secrets, writing JSON, parsing answers.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "config.h"
#include "crypto.h"
#include "outbound.h"
#include "validate.h"

/* outbound_text: the string (or number, as text) at key, else NULL. */
char *
outbound_text(Jsonb *jsonb, const char *key)
{
	JsonbValue *v;

	if (jsonb == NULL)
		return NULL;
	v = getKeyJsonValueFromContainer(&jsonb->root, key, strlen(key), NULL);
	if (v == NULL)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	if (v->type == jbvBool)
		return pstrdup(v->val.boolean ? "true" : "false");
	return NULL;
}

/* outbound_object: the object or array at key as its own Jsonb, else NULL. */
Jsonb *
outbound_object(Jsonb *jsonb, const char *key)
{
	JsonbValue *v;

	if (jsonb == NULL)
		return NULL;
	v = getKeyJsonValueFromContainer(&jsonb->root, key, strlen(key), NULL);
	if (v == NULL || v->type != jbvBinary)
		return NULL;
	return JsonbValueToJsonb(v);
}

/* outbound_provider: the provider that carries a channel. */
const char *
outbound_provider(const char *channel)
{
	return strcmp(channel, "email") == 0 ? "sendgrid" :
		strcmp(channel, "voice") == 0 ? "vapi" : "twilio";
}

/*
 * Opened secrets, while the dispatcher builds a claim's requests: a
 * tenant's key is opened once per claim, not once per message.  The
 * entries live in the memory of the claim being built; outbound_secret_cache
 * (false) forgets them before that memory goes.
 */
typedef struct OpenedSecret
{
	char	   *envelope;
	char	   *plaintext;
	struct OpenedSecret *next;
} OpenedSecret;

static bool cache_on = false;
static OpenedSecret *opened = NULL;

void
outbound_secret_cache(bool on)
{
	cache_on = on;
	opened = NULL;
}

/*
 * The dispatcher hands over the server key for the claim it builds
 * (outbound_secret_key): a secret that does not open is then noted on its
 * message, never raised, so that one tenant's damaged settings or a wrong
 * server key cannot stop the others' messages.  Without a key (the
 * synchronous account calls) a secret that does not open is an error.
 */
static const CrefinderKey *claim_key = NULL;

void
outbound_secret_key(const CrefinderKey *key)
{
	claim_key = key;
}

/*
 * outbound_secret opens the tenant's sealed secret field of provider, or
 * returns NULL when the tenant has none or (with a claim key) when it does
 * not open: m->secret_wrong_key or m->secret_problem then says why.
 */
char *
outbound_secret(OutboundMessage *m, const char *provider, const char *field)
{
	JsonbValue *v;
	char	   *envelope;
	OpenedSecret *entry;
	char	   *aad;
	char	   *plaintext = NULL;

	if (m->secrets == NULL)
		return NULL;
	v = getKeyJsonValueFromContainer(&m->secrets->root, field, strlen(field), NULL);
	if (v == NULL)
		return NULL;
	if (v->type != jbvString)
	{
		m->secret_problem = psprintf("the stored %s is not a sealed secret", field);
		return NULL;
	}
	envelope = pnstrdup(v->val.string.val, v->val.string.len);
	/* an envelope is bound to its tenant, provider and field: it is the key */
	for (entry = opened; cache_on && entry != NULL; entry = entry->next)
		if (strcmp(entry->envelope, envelope) == 0)
			return entry->plaintext;
	aad = crefinder_secret_aad(m->tenant, provider, field);
	if (claim_key == NULL)
		plaintext = crefinder_decrypt_secret(envelope, aad);
	else
	{
		switch (crefinder_try_decrypt(claim_key, envelope, aad, &plaintext))
		{
			case CREFINDER_DECRYPT_OK:
				break;
			case CREFINDER_DECRYPT_WRONG_KEY:
				m->secret_wrong_key = true;
				return NULL;
			case CREFINDER_DECRYPT_MALFORMED:
				m->secret_problem = psprintf("the stored %s is not a sealed secret", field);
				return NULL;
			case CREFINDER_DECRYPT_TAMPERED:
				m->secret_problem = psprintf("the stored %s is damaged (its authentication tag does not verify)", field);
				return NULL;
		}
	}
	entry = palloc(sizeof(OpenedSecret));
	entry->envelope = envelope;
	entry->plaintext = plaintext;
	if (cache_on)
	{
		entry->next = opened;
		opened = entry;
	}
	return entry->plaintext;
}

/* outbound_bearer adds "Authorization: Bearer <the tenant's apiKey>". */
struct curl_slist *
outbound_bearer(OutboundMessage *m, const char *provider, struct curl_slist *headers)
{
	char	   *key = outbound_secret(m, provider, "apiKey");

	/* a line break in a header value would add headers of its own */
	if (key != NULL && crefinder_has_control_chars(key))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the stored %s apiKey contains control characters", provider),
				 errhint("Configure the provider again with crefinder.configure().")));
	return curl_slist_append(headers, psprintf("Authorization: Bearer %s", key ? key : ""));
}

/* outbound_json_string appends "key": "value" (escaped) to an object. */
void
outbound_json_string(StringInfo buf, const char *key, const char *value, bool *first)
{
	if (value == NULL)
		return;
	if (!*first)
		appendStringInfoChar(buf, ',');
	*first = false;
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
	escape_json(buf, value);
}

/* outbound_parse_json parses a provider's answer; NULL when malformed. */
Jsonb *
outbound_parse_json(const char *text)
{
	MemoryContext cxt = CurrentMemoryContext;
	Jsonb	   *result = NULL;

	if (text == NULL || text[0] == '\0')
		return NULL;
	PG_TRY();
	{
		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		result = NULL;
	}
	PG_END_TRY();
	return result;
}

/* outbound_api_url joins a base URL (no trailing slash needed) and a path. */
char *
outbound_api_url(const char *base, const char *path)
{
	size_t		len = strlen(base);

	while (len > 0 && base[len - 1] == '/')
		len--;
	return psprintf("%.*s%s", (int) len, base, path);
}

/* outbound_timestamp reads a timestamp with time zone (ISO 8601). */
TimestampTz
outbound_timestamp(const char *text)
{
	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(text),
												   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/*
 * outbound_integer returns the whole number (at most 9 digits) at key, or
 * NULL when there is none or it is anything else: values written raw into
 * a provider's JSON must be checked where the request is built, whatever
 * the table holds.
 */
char *
outbound_integer(Jsonb *jsonb, const char *key)
{
	char	   *text = outbound_text(jsonb, key);

	if (text == NULL || text[0] == '\0' || strlen(text) > 9)
		return NULL;
	for (const char *p = text; *p; p++)
		if (*p < '0' || *p > '9')
			return NULL;
	return text;
}

/*
 * outbound_clean_text makes text that came from outside (a provider's
 * answer, an error) safe to store: bytes that are not valid in the
 * database's encoding become "?", control characters become spaces, and
 * the result is cut to at most max_bytes at a character boundary.
 */
char *
outbound_clean_text(const char *text, size_t len, int max_bytes)
{
	int			encoding = GetDatabaseEncoding();
	StringInfoData out;
	size_t		i = 0;

	initStringInfo(&out);
	while (i < len && out.len < max_bytes)
	{
		unsigned char c = (unsigned char) text[i];
		int			n;

		if (c < 0x80)
		{
			appendStringInfoChar(&out, (c < 0x20 || c == 0x7f) ? ' ' : (char) c);
			i++;
			continue;
		}
		n = pg_encoding_verifymbchar(encoding, text + i, (int) (len - i));
		if (n <= 0)
		{
			appendStringInfoChar(&out, '?');
			i++;
			continue;
		}
		if (out.len + n > max_bytes)
			break;
		appendBinaryStringInfo(&out, text + i, n);
		i += n;
	}
	return out.data;
}
