/*
 * config.c
 *		Tenants' provider settings: crefinder.configure(),
 *		crefinder.integration_config() and crefinder.rotate_secret_key().
 *
 * A provider's settings are described by a table of fields (name, kind,
 * whether required, format, range, default).  configure() checks a jsonb
 * document against that table, reporting every failing field at once,
 * applies defaults, encrypts the secret fields (crypto.c) and upserts the
 * tenant's row of crefinder.integration_configs: plain fields in column
 * config, sealed secrets in column secrets.  integration_config() shows
 * the same document with each secret masked as "****" and its last four
 * characters.
 *
 * Any error raised while configure() or rotate_secret_key() runs is marked
 * to hide the statement (CallHidingStatement), so that the server log never
 * repeats such a call, and with it a secret.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/uuid.h"

#include "config.h"
#include "crypto.h"
#include "tenant.h"
#include "validate.h"

PG_FUNCTION_INFO_V1(crefinder_configure);
PG_FUNCTION_INFO_V1(crefinder_configure_text);
PG_FUNCTION_INFO_V1(crefinder_integration_config);
PG_FUNCTION_INFO_V1(crefinder_rotate_secret_key);

#define MASK "****"
#define MASK_TAIL 4
#define MASK_MIN_LENGTH 8		/* shorter secrets show no tail */
#define MAX_STRING_LENGTH 2048

typedef enum FieldKind
{
	FIELD_STRING,
	FIELD_SECRET,				/* a string, encrypted at rest */
	FIELD_BOOLEAN,
	FIELD_NUMBER,
	FIELD_INTEGER
} FieldKind;

typedef enum FieldFormat
{
	FORMAT_TEXT,				/* any text without control characters */
	FORMAT_TOKEN,				/* no white space (provider ids and keys) */
	FORMAT_TWILIO_SID,			/* sid_prefix + 32 hex digits */
	FORMAT_HEX32,				/* Twilio auth token */
	FORMAT_ALNUM32,				/* Twilio API key secret */
	FORMAT_E164,
	FORMAT_WHATSAPP,			/* E.164, "whatsapp:" prefix allowed */
	FORMAT_URL,
	FORMAT_TWILIO_URL,			/* URL whose host has no "_" */
	FORMAT_EMAIL,
	FORMAT_HOSTNAME,
	FORMAT_SENDGRID_KEY,
	FORMAT_SENDGRID_TEMPLATE,
	FORMAT_P256_KEY
} FieldFormat;

typedef struct FieldSpec
{
	const char *name;
	FieldKind	kind;
	bool		required;
	FieldFormat format;
	const char *sid_prefix;		/* FORMAT_TWILIO_SID only */
	int			max_length;		/* strings; 0 = MAX_STRING_LENGTH */
	const char *min;			/* numbers, as numeric text; NULL = "0" */
	const char *max;
	const char *default_value;	/* numbers as text, booleans "true"/"false" */
} FieldSpec;

typedef struct ProviderSpec
{
	const char *name;
	const FieldSpec *fields;
	int			nfields;
} ProviderSpec;

static const FieldSpec vapi_fields[] = {
	{.name = "apiKey", .kind = FIELD_SECRET, .required = true, .format = FORMAT_TOKEN},
	{.name = "orgId", .kind = FIELD_STRING, .required = true, .format = FORMAT_TOKEN, .max_length = 200},
	{.name = "publicKey", .kind = FIELD_STRING, .format = FORMAT_TOKEN, .max_length = 200},
	{.name = "assistantId", .kind = FIELD_STRING, .format = FORMAT_TOKEN, .max_length = 200},
	{.name = "webhookSecret", .kind = FIELD_SECRET},
	/* false: the secret comes back in X-Vapi-Secret; true: HMAC x-signature */
	{.name = "webhookHmac", .kind = FIELD_BOOLEAN, .default_value = "false"},
	{.name = "phoneNumber", .kind = FIELD_STRING, .format = FORMAT_TOKEN, .max_length = 200},
	{.name = "serverUrl", .kind = FIELD_STRING, .format = FORMAT_URL},
	{.name = "maxCallDuration", .kind = FIELD_INTEGER, .min = "30", .max = "1800", .default_value = "300"},
	{.name = "maxConcurrentCalls", .kind = FIELD_INTEGER, .min = "1", .max = "10000", .default_value = "10"},
	{.name = "voiceSpeed", .kind = FIELD_NUMBER, .min = "0.5", .max = "2", .default_value = "1.0"},
	{.name = "temperature", .kind = FIELD_NUMBER, .max = "1", .default_value = "0.7"},
	{.name = "maxPerSecond", .kind = FIELD_NUMBER, .min = "0.01", .max = "100000"},
};

static const FieldSpec twilio_fields[] = {
	{.name = "accountSid", .kind = FIELD_STRING, .required = true, .format = FORMAT_TWILIO_SID, .sid_prefix = "AC"},
	{.name = "authToken", .kind = FIELD_SECRET, .required = true, .format = FORMAT_HEX32},
	{.name = "apiKey", .kind = FIELD_STRING, .format = FORMAT_TWILIO_SID, .sid_prefix = "SK"},
	{.name = "apiSecret", .kind = FIELD_SECRET, .format = FORMAT_ALNUM32},
	{.name = "phoneNumber", .kind = FIELD_STRING, .format = FORMAT_E164},
	{.name = "whatsappNumber", .kind = FIELD_STRING, .format = FORMAT_WHATSAPP},
	{.name = "messagingServiceSid", .kind = FIELD_STRING, .format = FORMAT_TWILIO_SID, .sid_prefix = "MG"},
	{.name = "verifyServiceSid", .kind = FIELD_STRING, .format = FORMAT_TWILIO_SID, .sid_prefix = "VA"},
	{.name = "twimlAppSid", .kind = FIELD_STRING, .format = FORMAT_TWILIO_SID, .sid_prefix = "AP"},
	{.name = "smsWebhookUrl", .kind = FIELD_STRING, .format = FORMAT_TWILIO_URL},
	{.name = "voiceWebhookUrl", .kind = FIELD_STRING, .format = FORMAT_TWILIO_URL},
	{.name = "respectQuietHours", .kind = FIELD_BOOLEAN, .default_value = "true"},
	{.name = "timeZoneHandling", .kind = FIELD_BOOLEAN, .default_value = "true"},
	{.name = "autoOptOutHandling", .kind = FIELD_BOOLEAN, .default_value = "true"},
	{.name = "maxPerSecond", .kind = FIELD_NUMBER, .min = "0.01", .max = "100000"},
	/* scheduled sends through the messaging service go to Twilio with SendAt */
	{.name = "scheduleAtTwilio", .kind = FIELD_BOOLEAN, .default_value = "false"},
};

static const FieldSpec sendgrid_fields[] = {
	{.name = "apiKey", .kind = FIELD_SECRET, .required = true, .format = FORMAT_SENDGRID_KEY},
	{.name = "fromEmail", .kind = FIELD_STRING, .required = true, .format = FORMAT_EMAIL},
	{.name = "fromName", .kind = FIELD_STRING, .max_length = 256},
	{.name = "replyToEmail", .kind = FIELD_STRING, .format = FORMAT_EMAIL},
	{.name = "defaultTemplateId", .kind = FIELD_STRING, .format = FORMAT_SENDGRID_TEMPLATE},
	{.name = "clickTracking", .kind = FIELD_BOOLEAN, .default_value = "true"},
	{.name = "openTracking", .kind = FIELD_BOOLEAN, .default_value = "true"},
	{.name = "subscriptionTracking", .kind = FIELD_BOOLEAN, .default_value = "true"},
	{.name = "unsubscribeGroupId", .kind = FIELD_INTEGER, .min = "1", .max = "2147483647"},
	{.name = "customDomain", .kind = FIELD_STRING, .format = FORMAT_HOSTNAME},
	{.name = "ipPool", .kind = FIELD_STRING, .format = FORMAT_TOKEN, .max_length = 64},
	{.name = "eventWebhookPublicKey", .kind = FIELD_STRING, .format = FORMAT_P256_KEY, .max_length = 4096},
	{.name = "maxPerSecond", .kind = FIELD_NUMBER, .min = "0.01", .max = "100000"},
};

static const ProviderSpec providers[] = {
	{"vapi", vapi_fields, lengthof(vapi_fields)},
	{"twilio", twilio_fields, lengthof(twilio_fields)},
	{"sendgrid", sendgrid_fields, lengthof(sendgrid_fields)},
};

/*
 * FindProvider returns the spec of a provider name, or raises 22023.
 */
static const ProviderSpec *
FindProvider(const char *name)
{
	for (size_t i = 0; i < lengthof(providers); i++)
		if (strcmp(providers[i].name, name) == 0)
			return &providers[i];
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown provider \"%s\"", crefinder_quote_input(name)),
			 errhint("Providers are vapi, twilio and sendgrid.")));
	return NULL;				/* keep compiler quiet */
}

/* FindField returns the spec of a field name (len bytes), or NULL. */
static const FieldSpec *
FindField(const ProviderSpec *provider, const char *name, int len)
{
	for (int i = 0; i < provider->nfields; i++)
		if (strlen(provider->fields[i].name) == (size_t) len &&
			strncmp(provider->fields[i].name, name, len) == 0)
			return &provider->fields[i];
	return NULL;
}

/*
 * crefinder_secret_aad is the associated data that binds a sealed secret
 * to its tenant, provider and field.
 */
char *
crefinder_secret_aad(const char *user_id, const char *provider, const char *field)
{
	return psprintf("crefinder/v1/%s/%s/%s", user_id, provider, field);
}

/*
 * MaskSecret shows a secret as "****" and its last four characters (only
 * "****" when the secret is too short to spare four).
 */
static char *
MaskSecret(const char *secret)
{
	size_t		len = strlen(secret);

	if (len < MASK_MIN_LENGTH)
		return pstrdup(MASK);
	return psprintf(MASK "%s", secret + len - MASK_TAIL);
}

static bool
LooksMasked(const char *value)
{
	return strncmp(value, MASK, strlen(MASK)) == 0;
}

/*
 * CheckStringFormat returns NULL when value has the field's format, else
 * the reason.  It may replace *value with a normalized form.
 */
static const char *
CheckStringFormat(const FieldSpec *field, char **value)
{
	char	   *s = *value;
	int			max_length = field->max_length > 0 ? field->max_length : MAX_STRING_LENGTH;

	if (strlen(s) > (size_t) max_length)
		return psprintf("must be at most %d characters", max_length);
	if (crefinder_has_control_chars(s))
		return "must not contain control characters";

	switch (field->format)
	{
		case FORMAT_TEXT:
			return NULL;
		case FORMAT_TOKEN:
			for (const char *p = s; *p; p++)
				if (*p == ' ')
					return "must not contain spaces";
			return NULL;
		case FORMAT_TWILIO_SID:
			if (strncmp(s, field->sid_prefix, strlen(field->sid_prefix)) != 0)
				return psprintf("must start with \"%s\"", field->sid_prefix);
			if (!crefinder_is_prefixed_hex(s, field->sid_prefix, 32))
				return psprintf("must be \"%s\" followed by 32 hexadecimal characters",
								field->sid_prefix);
			return NULL;
		case FORMAT_HEX32:
			if (!crefinder_is_prefixed_hex(s, "", 32))
				return "must be 32 hexadecimal characters";
			return NULL;
		case FORMAT_ALNUM32:
			if (strlen(s) != 32)
				return "must be 32 characters";
			for (const char *p = s; *p; p++)
				if (!isalnum((unsigned char) *p))
					return "must be 32 letters and digits";
			return NULL;
		case FORMAT_WHATSAPP:
			if (strncmp(s, "whatsapp:", 9) == 0)
				*value = s = pstrdup(s + 9);
			/* FALLTHROUGH */
		case FORMAT_E164:
			if (!crefinder_is_e164(s))
				return "must be an E.164 phone number such as +13055550123";
			return NULL;
		case FORMAT_URL:
			return crefinder_check_url(s, false);
		case FORMAT_TWILIO_URL:
			return crefinder_check_url(s, true);
		case FORMAT_EMAIL:
			if (!crefinder_is_email(s))
				return "must be an email address";
			return NULL;
		case FORMAT_HOSTNAME:
			if (!crefinder_is_hostname(s))
				return "must be a domain name such as mail.example.com";
			return NULL;
		case FORMAT_SENDGRID_KEY:
			{
				const char *id;
				const char *dot;

				if (strncmp(s, "SG.", 3) != 0)
					return "must start with \"SG.\"";
				id = s + 3;
				dot = strchr(id, '.');
				if (dot == NULL || dot == id || dot[1] == '\0')
					return "must have the form SG.<key id>.<secret>";
				for (const char *p = id; *p; p++)
					if (p != dot && !isalnum((unsigned char) *p) && *p != '-' && *p != '_')
						return "must have the form SG.<key id>.<secret>";
				return NULL;
			}
		case FORMAT_SENDGRID_TEMPLATE:
			if (strncmp(s, "d-", 2) == 0)
			{
				if (!crefinder_is_prefixed_hex(s, "d-", 32))
					return "must be \"d-\" followed by 32 hexadecimal characters";
				return NULL;
			}
			if (!crefinder_uuid_text_is_valid(s))
				return "must be a dynamic template id (\"d-\" followed by 32 hexadecimal characters) or a legacy template UUID";
			return NULL;
		case FORMAT_P256_KEY:
			if (!crefinder_is_p256_public_key(s))
				return "must be a base64 DER P-256 (ECDSA) public key";
			return NULL;
	}
	return NULL;
}

static JsonbValue
StringValue(const char *s)
{
	JsonbValue	v;

	memset(&v, 0, sizeof(v));
	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	return v;
}

static JsonbValue
DefaultValue(const FieldSpec *field)
{
	JsonbValue	v;

	memset(&v, 0, sizeof(v));
	if (field->kind == FIELD_BOOLEAN)
	{
		v.type = jbvBool;
		v.val.boolean = strcmp(field->default_value, "true") == 0;
	}
	else
	{
		v.type = jbvNumeric;
		v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
															CStringGetDatum(field->default_value),
															ObjectIdGetDatum(InvalidOid),
															Int32GetDatum(-1)));
	}
	return v;
}

static void
PushPair(JsonbParseState **state, const char *key, JsonbValue *value)
{
	JsonbValue	k = StringValue(key);

	pushJsonbValue(state, WJB_KEY, &k);
	pushJsonbValue(state, WJB_VALUE, value);
}

/*
 * StoredSecrets is the tenant's current secrets column, or NULL.
 */
typedef struct CheckedConfig
{
	Jsonb	   *config;			/* plain fields, defaults applied */
	Jsonb	   *secrets;		/* field -> envelope */
} CheckedConfig;

static const char *
JsonTypeName(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		default:
			return "an object or array";
	}
}

/* NumericOfText is the numeric value of a constant such as "0.01". */
static Numeric
NumericOfText(const char *text)
{
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(text),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}

/* NumericCompare is numeric_cmp: negative, 0 or positive. */
static int
NumericCompare(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a),
											 NumericGetDatum(b)));
}

/*
 * CheckNumber validates a numeric field; NULL when fine, else the reason.
 * The comparisons are numeric, exact for any number JSON can write (a
 * float8 would overflow on 1e400 and round 300.0000000000000000001 to a
 * whole number).
 */
static const char *
CheckNumber(const FieldSpec *field, Numeric n)
{
	const char *min_text = field->min != NULL ? field->min : "0";
	Numeric		min = NumericOfText(min_text);
	Numeric		max = NumericOfText(field->max);

	if (field->kind == FIELD_INTEGER)
	{
		Numeric		whole = DatumGetNumeric(DirectFunctionCall1(numeric_floor,
																NumericGetDatum(n)));

		if (NumericCompare(n, whole) != 0)
			return "must be a whole number";
	}
	if (NumericCompare(n, min) < 0 || NumericCompare(n, max) > 0)
		return psprintf("must be between %s and %s", min_text, field->max);
	return NULL;
}

/*
 * LookupStoredEnvelope finds field's envelope in the tenant's stored
 * secrets (NULL when none).
 */
static char *
LookupStoredEnvelope(Jsonb *stored, const char *field)
{
	JsonbValue *v;

	if (stored == NULL)
		return NULL;
	v = getKeyJsonValueFromContainer(&stored->root, field, strlen(field), NULL);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * CheckConfig validates input against provider, collecting one line per
 * failing field in errors; on success fills out (secrets sealed under key
 * for user_id).  stored is the tenant's current secrets, used when a
 * secret is given back in its masked form.
 */
static void
CheckConfig(const ProviderSpec *provider, Jsonb *input, Jsonb *stored,
			const CrefinderKey *key, const char *user_id,
			StringInfo errors, CheckedConfig *out)
{
	JsonbParseState *config_state = NULL;
	JsonbParseState *secrets_state = NULL;
	JsonbValue *config_result;
	JsonbValue *secrets_result;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		have[64] = {false};

	Assert(provider->nfields <= lengthof(have));

	pushJsonbValue(&config_state, WJB_BEGIN_OBJECT, NULL);
	pushJsonbValue(&secrets_state, WJB_BEGIN_OBJECT, NULL);

	for (int i = 0; i < provider->nfields; i++)
	{
		const FieldSpec *field = &provider->fields[i];
		JsonbValue *value = getKeyJsonValueFromContainer(&input->root, field->name,
														 strlen(field->name), NULL);
		const char *reason = NULL;

		/* null and "" mean "not given" for optional fields, as a blank form field */
		if (value != NULL &&
			(value->type == jbvNull ||
			 (value->type == jbvString && value->val.string.len == 0)))
		{
			if (field->required)
				reason = value->type == jbvNull ? "is required" : "must not be empty";
			value = NULL;
		}

		if (value == NULL)
		{
			if (reason == NULL && field->required)
				reason = "is required";
			else if (reason == NULL && field->default_value != NULL)
			{
				JsonbValue	def = DefaultValue(field);

				PushPair(&config_state, field->name, &def);
			}
		}
		else
		{
			switch (field->kind)
			{
				case FIELD_STRING:
				case FIELD_SECRET:
					if (value->type != jbvString)
					{
						reason = psprintf("must be a string, not %s", JsonTypeName(value));
						break;
					}
					{
						char	   *s = pnstrdup(value->val.string.val, value->val.string.len);

						if (field->kind == FIELD_SECRET && LooksMasked(s))
						{
							char	   *envelope = LookupStoredEnvelope(stored, field->name);
							char	   *aad = crefinder_secret_aad(user_id, provider->name, field->name);
							char	   *plain = NULL;

							if (envelope == NULL)
								reason = "is a masked value; give the full secret";
							else if (crefinder_try_decrypt(key, envelope, aad, &plain) != CREFINDER_DECRYPT_OK)
								reason = "is a masked value but the stored secret cannot be decrypted with crefinder.secret_key; give the full secret";
							else
							{
								char	   *mask = MaskSecret(plain);

								if (strcmp(mask, s) != 0)
									reason = "is a masked value that does not match the stored secret; give the full secret";
								else
								{
									JsonbValue	ev = StringValue(crefinder_encrypt(key, plain, aad));

									PushPair(&secrets_state, field->name, &ev);
									have[i] = true;
								}
								crefinder_wipe_string(plain);
							}
							break;
						}

						reason = CheckStringFormat(field, &s);
						if (reason == NULL)
						{
							JsonbValue	sv;

							if (field->kind == FIELD_SECRET)
							{
								char	   *aad = crefinder_secret_aad(user_id, provider->name, field->name);

								sv = StringValue(crefinder_encrypt(key, s, aad));
								PushPair(&secrets_state, field->name, &sv);
							}
							else
							{
								sv = StringValue(s);
								PushPair(&config_state, field->name, &sv);
							}
							have[i] = true;
						}
						if (field->kind == FIELD_SECRET)
							crefinder_wipe_string(s);
					}
					break;
				case FIELD_BOOLEAN:
					if (value->type != jbvBool)
						reason = psprintf("must be true or false, not %s", JsonTypeName(value));
					else
						PushPair(&config_state, field->name, value);
					break;
				case FIELD_NUMBER:
				case FIELD_INTEGER:
					if (value->type != jbvNumeric)
						reason = psprintf("must be a number, not %s", JsonTypeName(value));
					else if ((reason = CheckNumber(field, value->val.numeric)) == NULL)
						PushPair(&config_state, field->name, value);
					break;
			}
		}

		if (reason != NULL)
			appendStringInfo(errors, "%s%s: %s", errors->len > 0 ? "\n" : "",
							 field->name, reason);
	}

	/* Twilio API keys come in pairs: the key sid and its secret. */
	if (strcmp(provider->name, "twilio") == 0)
	{
		const FieldSpec *key_sid = FindField(provider, "apiKey", 6);
		const FieldSpec *key_secret = FindField(provider, "apiSecret", 9);
		bool		has_sid = getKeyJsonValueFromContainer(&input->root, "apiKey", 6, NULL) != NULL;
		bool		has_secret = getKeyJsonValueFromContainer(&input->root, "apiSecret", 9, NULL) != NULL;

		if (have[key_sid - provider->fields] && !has_secret)
			appendStringInfo(errors, "%sapiSecret: is required when apiKey is set",
							 errors->len > 0 ? "\n" : "");
		if (have[key_secret - provider->fields] && !has_sid)
			appendStringInfo(errors, "%sapiKey: is required when apiSecret is set",
							 errors->len > 0 ? "\n" : "");

		/* Twilio schedules messages (SendAt) only through a Messaging Service. */
		{
			JsonbValue *schedule = getKeyJsonValueFromContainer(&input->root, "scheduleAtTwilio", 16, NULL);
			const FieldSpec *service = FindField(provider, "messagingServiceSid", 19);

			if (schedule != NULL && schedule->type == jbvBool && schedule->val.boolean &&
				!have[service - provider->fields])
				appendStringInfo(errors, "%sscheduleAtTwilio: needs messagingServiceSid (Twilio schedules messages only through a Messaging Service)",
								 errors->len > 0 ? "\n" : "");
		}
	}

	/* Anything the provider does not have is refused. */
	it = JsonbIteratorInit(&input->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY &&
			FindField(provider, v.val.string.val, v.val.string.len) == NULL)
			appendStringInfo(errors, "%s%s: unknown field", errors->len > 0 ? "\n" : "",
							 crefinder_quote_input(pnstrdup(v.val.string.val,
															v.val.string.len)));
	}

	config_result = pushJsonbValue(&config_state, WJB_END_OBJECT, NULL);
	secrets_result = pushJsonbValue(&secrets_state, WJB_END_OBJECT, NULL);
	out->config = JsonbValueToJsonb(config_result);
	out->secrets = JsonbValueToJsonb(secrets_result);
}

static char *
FieldList(const ProviderSpec *provider)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < provider->nfields; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", provider->fields[i].name);
	return buf.data;
}

/*
 * MaskedConfig merges the plain fields with the masked secrets.
 */
static Jsonb *
MaskedConfig(const ProviderSpec *provider, const char *user_id, Jsonb *config,
			 Jsonb *secrets)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	JsonbValue *result;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	it = JsonbIteratorInit(&config->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_KEY || tok == WJB_VALUE)
			pushJsonbValue(&state, tok, &v);

	it = JsonbIteratorInit(&secrets->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *field = pnstrdup(v.val.string.val, v.val.string.len);
			char	   *envelope;
			char	   *plain;
			JsonbValue	masked;

			tok = JsonbIteratorNext(&it, &v, true);
			if (tok != WJB_VALUE || v.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("stored provider secret %s is damaged", field),
						 errdetail("It is not a sealed secret."),
						 errhint("Configure the provider again with crefinder.configure().")));
			envelope = pnstrdup(v.val.string.val, v.val.string.len);
			plain = crefinder_decrypt_secret(envelope, crefinder_secret_aad(user_id, provider->name, field));
			masked = StringValue(MaskSecret(plain));
			crefinder_wipe_string(plain);
			PushPair(&state, field, &masked);
		}
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
}

static char *
TenantText(void)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, crefinder_current_tenant()));
}

/*
 * FetchStored reads the tenant's config and secrets for provider (both
 * NULL when the tenant has none), locking the row when for_update.
 * Must be called inside SPI.
 */
static bool
FetchStored(const char *user_id, const char *provider, bool for_update,
			Jsonb **config, Jsonb **secrets)
{
	Oid			argtypes[2] = {UUIDOID, TEXTOID};
	Datum		args[2];
	int			rc;

	args[0] = DirectFunctionCall1(uuid_in, CStringGetDatum(user_id));
	args[1] = CStringGetTextDatum(provider);
	rc = SPI_execute_with_args(for_update ?
							   "SELECT config, secrets FROM crefinder.integration_configs "
							   "WHERE user_id = $1 AND provider = $2 FOR UPDATE" :
							   "SELECT config, secrets FROM crefinder.integration_configs "
							   "WHERE user_id = $1 AND provider = $2",
							   2, argtypes, args, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read crefinder.integration_configs: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		*config = *secrets = NULL;
		return false;
	}
	{
		bool		isnull;
		Datum		c = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		Datum		s = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		*config = DatumGetJsonbPCopy(c);
		*secrets = DatumGetJsonbPCopy(s);
	}
	return true;
}


/*
 * ReportInvalidJson raises 22P02 for config text that jsonb refused,
 * saying where its syntax breaks (line and character) or that it holds
 * what jsonb cannot store, but never any of the text: it may hold
 * secrets.  Wipes json.
 */
static void
ReportInvalidJson(char *json)
{
	JsonLexContext *lex = makeJsonLexContextCstringLen(json, strlen(json),
													   GetDatabaseEncoding(), false);
	JsonParseErrorType error = pg_parse_json(lex, &nullSemAction);
	int			line = 0;
	int			character = 0;

	if (error != JSON_SUCCESS)
	{
		const char *at = lex->token_start != NULL ? lex->token_start : json + strlen(json);

		line = lex->line_number;
		if (at >= lex->line_start)
			character = pg_mbstrlen_with_len(lex->line_start, at - lex->line_start) + 1;
	}
	crefinder_wipe_string(json);
	if (error != JSON_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("config is not valid JSON"),
				 errdetail("The JSON syntax breaks at line %d, character %d.", line, character),
				 errhint("The text is not shown, since it may hold secrets.")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("config is not valid JSON"),
			 errdetail("It holds a string or an escape sequence that jsonb cannot store, such as \\u0000."),
			 errhint("The text is not shown, since it may hold secrets.")));
}

/*
 * ParseConfigText turns config given as text into jsonb.  jsonb's own
 * input function quotes the text in its error (detail and context), so
 * its data errors are caught and replaced by ReportInvalidJson's.  Other
 * errors (out of memory, a cancel) quote nothing and pass through.
 */
static Jsonb *
ParseConfigText(text *config)
{
	char	   *json = text_to_cstring(config);
	MemoryContext cxt = CurrentMemoryContext;
	Jsonb	   *volatile result = NULL;

	PG_TRY();
	{
		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
		{
			FreeErrorData(edata);
			PG_RE_THROW();
		}
		FlushErrorState();
		crefinder_wipe_string(edata->message);
		crefinder_wipe_string(edata->detail);
		crefinder_wipe_string(edata->context);
		FreeErrorData(edata);
		result = NULL;
	}
	PG_END_TRY();

	if (result == NULL)
		ReportInvalidJson(json);
	crefinder_wipe_string(json);
	return result;
}

/*
 * Configure validates input for the provider named provider_name,
 * applies defaults, encrypts secrets and upserts the current tenant's
 * settings for it; returns them masked.  A new config clears a pause the
 * dispatcher put on the provider.
 */
static Jsonb *
Configure(const char *provider_name, Jsonb *input)
{
	const ProviderSpec *provider;
	char	   *user_id;
	CrefinderKey key;
	Jsonb	   *stored_config;
	Jsonb	   *stored_secrets;
	StringInfoData errors;
	CheckedConfig checked;
	MemoryContext caller_cxt = CurrentMemoryContext;
	Jsonb	   *result;
	int			rc;

	provider = FindProvider(provider_name);
	if (!JB_ROOT_IS_OBJECT(input) || JB_ROOT_IS_SCALAR(input))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s configuration must be a JSON object", provider->name)));

	user_id = TenantText();
	crefinder_server_key(&key);

	SPI_connect();
	FetchStored(user_id, provider->name, true, &stored_config, &stored_secrets);

	initStringInfo(&errors);
	CheckConfig(provider, input, stored_secrets, &key, user_id, &errors, &checked);
	crefinder_wipe_key(&key);
	if (errors.len > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s configuration", provider->name),
				 errdetail("%s", errors.data),
				 errhint("%s fields are: %s.", provider->name, FieldList(provider))));

	{
		Oid			argtypes[4] = {UUIDOID, TEXTOID, JSONBOID, JSONBOID};
		Datum		args[4];

		args[0] = DirectFunctionCall1(uuid_in, CStringGetDatum(user_id));
		args[1] = CStringGetTextDatum(provider->name);
		args[2] = JsonbPGetDatum(checked.config);
		args[3] = JsonbPGetDatum(checked.secrets);
		rc = SPI_execute_with_args("INSERT INTO crefinder.integration_configs AS c "
								   "(user_id, provider, config, secrets) VALUES ($1, $2, $3, $4) "
								   "ON CONFLICT (user_id, provider) DO UPDATE SET "
								   "config = EXCLUDED.config, secrets = EXCLUDED.secrets, "
								   "paused_at = NULL, paused_reason = NULL, updated_at = now()",
								   4, argtypes, args, NULL, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "could not store crefinder configuration: %s", SPI_result_code_string(rc));
	}

	{
		MemoryContext spi_cxt = MemoryContextSwitchTo(caller_cxt);

		result = MaskedConfig(provider, user_id, checked.config, checked.secrets);
		MemoryContextSwitchTo(spi_cxt);
	}
	SPI_finish();
	return result;
}

/*
 * crefinder.configure(provider text, config jsonb) returns jsonb (see
 * Configure).
 */
static Datum
configure_jsonb_internal(PG_FUNCTION_ARGS)
{
	char	   *provider_name;

	crefinder_require_argument(fcinfo, 0, "provider");
	crefinder_require_argument(fcinfo, 1, "config");
	provider_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	PG_RETURN_JSONB_P(Configure(provider_name, PG_GETARG_JSONB_P(1)));
}

/*
 * crefinder.configure(provider text, config text) returns jsonb: the
 * same, for config given as text (an untyped literal resolves to this
 * one), parsed here so that malformed JSON is reported without quoting
 * it (see ParseConfigText).
 */
static Datum
configure_text_internal(PG_FUNCTION_ARGS)
{
	char	   *provider_name;

	crefinder_require_argument(fcinfo, 0, "provider");
	crefinder_require_argument(fcinfo, 1, "config");
	provider_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	FindProvider(provider_name);
	PG_RETURN_JSONB_P(Configure(provider_name, ParseConfigText(PG_GETARG_TEXT_PP(1))));
}

/*
 * crefinder.integration_config(provider text) returns jsonb: the current
 * tenant's settings for provider with secrets masked, or NULL when the
 * tenant has none.
 */
Datum
crefinder_integration_config(PG_FUNCTION_ARGS)
{
	const ProviderSpec *provider;
	char	   *user_id;
	Jsonb	   *config;
	Jsonb	   *secrets;
	Jsonb	   *result = NULL;
	MemoryContext caller_cxt = CurrentMemoryContext;

	crefinder_require_argument(fcinfo, 0, "provider");
	provider = FindProvider(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	user_id = TenantText();

	SPI_connect();
	if (FetchStored(user_id, provider->name, false, &config, &secrets))
	{
		MemoryContext spi_cxt = MemoryContextSwitchTo(caller_cxt);

		result = MaskedConfig(provider, user_id, config, secrets);
		MemoryContextSwitchTo(spi_cxt);
	}
	SPI_finish();
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(result);
}

/*
 * ParseKeyArgument reads a key argument of rotate_secret_key, naming the
 * argument but never its value when it is malformed.
 */
static void
ParseKeyArgument(FunctionCallInfo fcinfo, int argno, const char *argname, CrefinderKey *key)
{
	char	   *hex;

	crefinder_require_argument(fcinfo, argno, argname);
	hex = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (!crefinder_parse_key(hex, key))
	{
		crefinder_wipe_string(hex);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not a valid key", argname),
				 errdetail("A key is exactly 64 hexadecimal characters (256 bits).")));
	}
	crefinder_wipe_string(hex);
}

/*
 * crefinder.rotate_secret_key(old_key text, new_key text) returns integer:
 * re-encrypts every tenant's stored secrets from old_key to new_key in one
 * transaction, and returns how many secrets it re-encrypted.  Secrets
 * already under new_key are left alone, so an interrupted rotation can be
 * run again.  Superuser only.  Afterwards set crefinder.secret_key to
 * new_key and reload.
 */
static Datum
rotate_secret_key_internal(PG_FUNCTION_ARGS)
{
	CrefinderKey old_key;
	CrefinderKey new_key;
	int			rotated = 0;
	int			rc;
	uint64		nrows;
	SPITupleTable *rows;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to rotate the crefinder secret key"),
				 errhint("Only superusers may rotate the key.")));

	ParseKeyArgument(fcinfo, 0, "old_key", &old_key);
	ParseKeyArgument(fcinfo, 1, "new_key", &new_key);

	SPI_connect();
	rc = SPI_execute("SELECT id, user_id::text, provider, secrets "
					 "FROM crefinder.integration_configs ORDER BY id FOR UPDATE",
					 false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read crefinder.integration_configs: %s", SPI_result_code_string(rc));
	rows = SPI_tuptable;
	nrows = SPI_processed;

	for (uint64 r = 0; r < nrows; r++)
	{
		HeapTuple	tuple = rows->vals[r];
		TupleDesc	desc = rows->tupdesc;
		bool		isnull;
		Datum		id = SPI_getbinval(tuple, desc, 1, &isnull);
		char	   *user_id = SPI_getvalue(tuple, desc, 2);
		char	   *provider = SPI_getvalue(tuple, desc, 3);
		Jsonb	   *secrets = DatumGetJsonbP(SPI_getbinval(tuple, desc, 4, &isnull));
		JsonbParseState *state = NULL;
		JsonbIterator *it;
		JsonbValue	v;
		JsonbIteratorToken tok;
		int			changed = 0;

		CHECK_FOR_INTERRUPTS();
		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		it = JsonbIteratorInit(&secrets->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			char	   *field;
			char	   *envelope;
			char	   *aad;
			char	   *plain;
			JsonbValue	out;

			if (tok != WJB_KEY)
				continue;
			field = pnstrdup(v.val.string.val, v.val.string.len);
			tok = JsonbIteratorNext(&it, &v, true);
			envelope = pnstrdup(v.val.string.val, v.val.string.len);
			aad = crefinder_secret_aad(user_id, provider, field);

			if (crefinder_try_decrypt(&old_key, envelope, aad, &plain) == CREFINDER_DECRYPT_OK)
			{
				out = StringValue(crefinder_encrypt(&new_key, plain, aad));
				crefinder_wipe_string(plain);
				changed++;
			}
			else if (crefinder_try_decrypt(&new_key, envelope, aad, &plain) == CREFINDER_DECRYPT_OK)
			{
				crefinder_wipe_string(plain);
				out = StringValue(envelope);
			}
			else
			{
				crefinder_wipe_key(&old_key);
				crefinder_wipe_key(&new_key);
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("old_key does not decrypt every stored secret"),
						 errdetail("The %s secret %s of tenant %s opens with neither old_key nor new_key.",
								   provider, field, user_id),
						 errhint("Nothing was changed.")));
			}
			PushPair(&state, field, &out);
		}

		if (changed > 0)
		{
			Oid			argtypes[2] = {JSONBOID, INT8OID};
			Datum		args[2];
			Jsonb	   *new_secrets = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));

			args[0] = JsonbPGetDatum(new_secrets);
			args[1] = id;
			rc = SPI_execute_with_args("UPDATE crefinder.integration_configs "
									   "SET secrets = $1, updated_at = now() WHERE id = $2",
									   2, argtypes, args, NULL, false, 0);
			if (rc != SPI_OK_UPDATE)
				elog(ERROR, "could not update crefinder.integration_configs: %s",
					 SPI_result_code_string(rc));
			rotated += changed;
		}
	}
	SPI_finish();
	crefinder_wipe_key(&old_key);
	crefinder_wipe_key(&new_key);
	PG_RETURN_INT32(rotated);
}

/*
 * CallHidingStatement runs fn and, should it fail for any reason (a bad
 * field, a missing key, a missing privilege), re-raises the error marked
 * so that the server log does not repeat the statement: its text holds
 * the secrets this function was given.  fn runs without the callers'
 * error context callbacks, so that its errors carry no context line
 * either: a PL/pgSQL caller's would quote its statement, and with it any
 * secret written there as a literal.
 */
static Datum
CallHidingStatement(PGFunction fn, FunctionCallInfo fcinfo)
{
	MemoryContext cxt = CurrentMemoryContext;
	Datum		result = (Datum) 0;

	PG_TRY();
	{
		error_context_stack = NULL; /* PG_CATCH and PG_END_TRY restore it */
		result = fn(fcinfo);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		edata->hide_stmt = true;
		ReThrowError(edata);
	}
	PG_END_TRY();
	return result;
}

/*
 * crefinder.configure(provider text, config jsonb) returns jsonb (see
 * Configure).
 */
Datum
crefinder_configure(PG_FUNCTION_ARGS)
{
	return CallHidingStatement(configure_jsonb_internal, fcinfo);
}

/*
 * crefinder.configure(provider text, config text) returns jsonb (see
 * configure_text_internal).
 */
Datum
crefinder_configure_text(PG_FUNCTION_ARGS)
{
	return CallHidingStatement(configure_text_internal, fcinfo);
}

/*
 * crefinder.rotate_secret_key(old_key text, new_key text) returns integer
 * (see rotate_secret_key_internal).
 */
Datum
crefinder_rotate_secret_key(PG_FUNCTION_ARGS)
{
	return CallHidingStatement(rotate_secret_key_internal, fcinfo);
}
