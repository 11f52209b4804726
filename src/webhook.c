/*
 * webhook.c
 *		The signature checks of the webhook handlers that need a tenant's
 *		sealed secret (Twilio's auth token, Vapi's webhook secret).
 *
 * The handlers (sql/install/70_webhooks.sql) pass the secret as it is
 * stored, sealed; it is opened here with the server key, used, and wiped.
 * It never becomes an SQL value, so no statement, log line or error can
 * show it.  The algorithms themselves are in signature.c.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "config.h"
#include "crypto.h"
#include "signature.h"

PG_FUNCTION_INFO_V1(crefinder_twilio_request_verified);
PG_FUNCTION_INFO_V1(crefinder_vapi_request_verified);
PG_FUNCTION_INFO_V1(crefinder_vapi_secret_verified);

/* the tenant's uuid as text, for the secret's associated data */
static char *
TenantText(FunctionCallInfo fcinfo, int argno)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(argno)));
}

/*
 * crefinder.twilio_request_verified(tenant uuid, sealed_token text, url text,
 * body text, signature text) returns boolean: whether X-Twilio-Signature
 * was made with the tenant's auth token over this URL and body.
 */
Datum
crefinder_twilio_request_verified(PG_FUNCTION_ARGS)
{
	char	   *tenant = TenantText(fcinfo, 0);
	char	   *sealed = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(2));
	text	   *body = PG_GETARG_TEXT_PP(3);
	char	   *signature = text_to_cstring(PG_GETARG_TEXT_PP(4));
	char	   *token;
	bool		valid;

	token = crefinder_decrypt_secret(sealed, crefinder_secret_aad(tenant, "twilio", "authToken"));
	valid = crefinder_twilio_signature_valid(token, url, VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body),
											 signature);
	crefinder_wipe_string(token);
	PG_RETURN_BOOL(valid);
}

/* the tenant's Vapi webhook secret, opened */
static char *
VapiSecret(FunctionCallInfo fcinfo)
{
	return crefinder_decrypt_secret(text_to_cstring(PG_GETARG_TEXT_PP(1)),
									crefinder_secret_aad(TenantText(fcinfo, 0), "vapi", "webhookSecret"));
}

/*
 * crefinder.vapi_request_verified(tenant uuid, sealed_secret text,
 * timestamp text, body text, signature text) returns boolean: whether
 * signature is the HMAC of "timestamp.body" under the tenant's webhook
 * secret.
 */
Datum
crefinder_vapi_request_verified(PG_FUNCTION_ARGS)
{
	char	   *secret = VapiSecret(fcinfo);
	text	   *body = PG_GETARG_TEXT_PP(3);
	bool		valid;

	valid = crefinder_vapi_hmac_valid(secret, text_to_cstring(PG_GETARG_TEXT_PP(2)),
									  VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body),
									  text_to_cstring(PG_GETARG_TEXT_PP(4)));
	crefinder_wipe_string(secret);
	PG_RETURN_BOOL(valid);
}

/*
 * crefinder.vapi_secret_verified(tenant uuid, sealed_secret text, given
 * text) returns boolean: whether given (X-Vapi-Secret) is the tenant's
 * webhook secret.
 */
Datum
crefinder_vapi_secret_verified(PG_FUNCTION_ARGS)
{
	char	   *secret = VapiSecret(fcinfo);
	bool		valid;

	valid = crefinder_secret_equal(secret, text_to_cstring(PG_GETARG_TEXT_PP(2)));
	crefinder_wipe_string(secret);
	PG_RETURN_BOOL(valid);
}
