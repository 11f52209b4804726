/*
 * outbound.c
 *		Helpers the provider modules share: reading the message's jsonb,
 *		opening its sealed secrets, writing JSON, parsing answers.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "config.h"
#include "crypto.h"
#include "outbound.h"

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
 * outbound_secret opens the tenant's sealed secret field of provider, or
 * returns NULL when the tenant has none.
 */
char *
outbound_secret(OutboundMessage *m, const char *provider, const char *field)
{
	char	   *envelope = outbound_text(m->secrets, field);
	OpenedSecret *entry;

	if (envelope == NULL)
		return NULL;
	/* an envelope is bound to its tenant, provider and field: it is the key */
	for (entry = opened; cache_on && entry != NULL; entry = entry->next)
		if (strcmp(entry->envelope, envelope) == 0)
			return entry->plaintext;
	entry = palloc(sizeof(OpenedSecret));
	entry->envelope = envelope;
	entry->plaintext = crefinder_decrypt_secret(envelope, crefinder_secret_aad(m->tenant, provider, field));
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
