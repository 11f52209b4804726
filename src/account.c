/*
 * account.c
 *		Synchronous calls to a provider on behalf of the current tenant:
 *		crefinder.test_connection(), twilio_phone_numbers(),
 *		sendgrid_templates(), sendgrid_unsubscribe_groups().
 *
 * Each is one bounded HTTP exchange (crefinder.http_timeout_ms) driven in
 * short slices with CHECK_FOR_INTERRUPTS() between them, so that
 * statement_timeout and pg_cancel_backend() stop it within a fraction of a
 * second; libcurl's handles are released however the call ends.  Errors
 * name the provider's answer, never a credential.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "guc.h"
#include "http.h"
#include "outbound.h"
#include "tenant.h"
#include "validate.h"

PG_FUNCTION_INFO_V1(crefinder_test_connection);
PG_FUNCTION_INFO_V1(crefinder_twilio_phone_numbers);
PG_FUNCTION_INFO_V1(crefinder_sendgrid_templates);
PG_FUNCTION_INFO_V1(crefinder_sendgrid_unsubscribe_groups);

#define SLICE_MS 50

/*
 * LoadAccount reads the current tenant's settings for provider into m
 * (config and sealed secrets); raises 55000 when there are none.
 */
static void
LoadAccount(const char *provider, OutboundMessage *m)
{
	Oid			argtypes[2] = {UUIDOID, TEXTOID};
	Datum		args[2];
	int			rc;
	bool		isnull;
	Datum		tenant = crefinder_current_tenant();
	MemoryContext caller = CurrentMemoryContext;

	memset(m, 0, sizeof(*m));
	args[0] = tenant;
	args[1] = CStringGetTextDatum(provider);
	SPI_connect();
	rc = SPI_execute_with_args("SELECT user_id::text, config, secrets FROM crefinder.integration_configs "
							   "WHERE user_id = $1 AND provider = $2",
							   2, argtypes, args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read crefinder.integration_configs: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s is not configured for this tenant", provider),
				 errhint("Call crefinder.configure('%s', ...) first.", provider)));
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		m->tenant = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		m->config = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		m->secrets = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
}

/* Authorize sets the credentials of provider on request. */
static void
Authorize(const char *provider, OutboundMessage *m, HttpRequest *request)
{
	if (strcmp(provider, "twilio") == 0)
		twilio_authorize(m, request);
	else
		request->headers = outbound_bearer(m, provider, request->headers);
	request->headers = curl_slist_append(request->headers, "Accept: application/json");
}

/*
 * Exchange performs one GET and waits for its answer, interruptibly.
 */
static void
Exchange(HttpRequest *request)
{
	HttpClient *client = http_client_create(1);

	PG_TRY();
	{
		HttpRequest *done[1];

		if (!http_start(client, request, crefinder_http_timeout_ms))
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("%s", request->error)));
		while (http_poll(client, SLICE_MS, done, 1) == 0)
		{
			/* a cancel or a timeout sets the latch: it ends the wait at once */
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_FINALLY();
	{
		if (request->easy != NULL)
			http_abandon(client, request);
		http_client_destroy(client);
	}
	PG_END_TRY();
}

static const char *
AccountPath(const char *provider, OutboundMessage *m)
{
	if (strcmp(provider, "twilio") == 0)
		return psprintf("/2010-04-01/Accounts/%s.json", outbound_text(m->config, "accountSid"));
	if (strcmp(provider, "sendgrid") == 0)
		return "/v3/scopes";
	return "/assistant?limit=1";
}

static const char *
BaseUrl(const char *provider)
{
	if (strcmp(provider, "twilio") == 0)
		return crefinder_twilio_api_url;
	if (strcmp(provider, "sendgrid") == 0)
		return crefinder_sendgrid_api_url;
	return crefinder_vapi_api_url;
}

/* CheckProvider raises 22023 unless provider is one crefinder knows. */
static void
CheckProvider(const char *provider)
{
	if (strcmp(provider, "twilio") != 0 && strcmp(provider, "sendgrid") != 0 &&
		strcmp(provider, "vapi") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown provider \"%s\"", crefinder_quote_input(provider)),
				 errhint("Providers are vapi, twilio and sendgrid.")));
}

/*
 * crefinder.test_connection(provider text) returns jsonb {ok, http_status,
 * detail}: whether the provider accepts the tenant's credentials.
 */
Datum
crefinder_test_connection(PG_FUNCTION_ARGS)
{
	char	   *provider;
	OutboundMessage m;
	HttpRequest request;
	char	   *json;

	crefinder_require_argument(fcinfo, 0, "provider");
	provider = text_to_cstring(PG_GETARG_TEXT_PP(0));
	CheckProvider(provider);
	LoadAccount(provider, &m);
	memset(&request, 0, sizeof(request));
	request.url = outbound_api_url(BaseUrl(provider), AccountPath(provider, &m));
	Authorize(provider, &m, &request);
	Exchange(&request);

	if (request.result != CURLE_OK)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfoString(&buf, "{\"ok\": false, \"http_status\": null, \"detail\": ");
		escape_json(&buf, psprintf("could not reach %s: %s", provider, request.error));
		appendStringInfoChar(&buf, '}');
		json = buf.data;
	}
	else
		json = psprintf("{\"ok\": %s, \"http_status\": %ld, \"detail\": \"%s\"}",
						request.status >= 200 && request.status < 300 ? "true" : "false",
						request.status,
						request.status >= 200 && request.status < 300 ? "credentials accepted" :
						request.status == 401 || request.status == 403 ? "credentials rejected" :
						"unexpected answer");
	http_request_free(&request);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

/*
 * Fetch GETs path from provider for the current tenant and returns the
 * parsed answer, raising an error for anything but a 2xx JSON answer.
 */
static Jsonb *
Fetch(const char *provider, OutboundMessage *m, const char *url)
{
	HttpRequest request;
	Jsonb	   *answer;

	memset(&request, 0, sizeof(request));
	request.url = (char *) url;
	Authorize(provider, m, &request);
	Exchange(&request);
	if (request.result != CURLE_OK)
	{
		char	   *error = pstrdup(request.error);

		http_request_free(&request);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not reach %s: %s", provider, error)));
	}
	if (request.status < 200 || request.status >= 300)
	{
		long		status = request.status;

		http_request_free(&request);
		ereport(ERROR,
				(errcode(status == 401 || status == 403 ? ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION :
						 ERRCODE_CONNECTION_FAILURE),
				 errmsg("%s answered HTTP %ld", provider, status),
				 status == 401 || status == 403 ?
				 errhint("The provider rejected the tenant's credentials; check them with crefinder.configure().") : 0));
	}
	answer = outbound_parse_json(request.response.data);
	http_request_free(&request);
	if (answer == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("%s answered with something that is not JSON", provider)));
	return answer;
}

/* EachElement calls fn for each element (object) of a JSON array. */
static void
EachElement(Jsonb *array, void (*fn) (Jsonb *element, ReturnSetInfo *rsinfo), ReturnSetInfo *rsinfo)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (array == NULL || !JB_ROOT_IS_ARRAY(array))
		return;
	it = JsonbIteratorInit(&array->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_ELEM && v.type == jbvBinary)
			fn(JsonbValueToJsonb(&v), rsinfo);
}

static void
PutPhoneNumber(Jsonb *element, ReturnSetInfo *rsinfo)
{
	char	   *number = outbound_text(element, "phone_number");
	Datum		values[1];
	bool		nulls[1] = {false};

	if (number == NULL)
		return;
	values[0] = CStringGetTextDatum(number);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * crefinder.twilio_phone_numbers() returns setof text: the tenant's Twilio
 * numbers, every page.
 */
Datum
crefinder_twilio_phone_numbers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	OutboundMessage m;
	char	   *url;
	int			pages = 0;

	LoadAccount("twilio", &m);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	url = outbound_api_url(crefinder_twilio_api_url,
						   psprintf("/2010-04-01/Accounts/%s/IncomingPhoneNumbers.json?PageSize=1000",
									outbound_text(m.config, "accountSid")));
	while (url != NULL && pages++ < 100)
	{
		Jsonb	   *answer = Fetch("twilio", &m, url);
		char	   *next = outbound_text(answer, "next_page_uri");

		EachElement(outbound_object(answer, "incoming_phone_numbers"), PutPhoneNumber, rsinfo);
		url = next ? outbound_api_url(crefinder_twilio_api_url, next) : NULL;
	}
	return (Datum) 0;
}

static void
PutIdName(Jsonb *element, ReturnSetInfo *rsinfo)
{
	Datum		values[2];
	bool		nulls[2] = {false, false};
	char	   *id = outbound_text(element, "id");
	char	   *name = outbound_text(element, "name");
	Oid			idtype = TupleDescAttr(rsinfo->setDesc, 0)->atttypid;

	if (id == NULL)
		return;
	values[0] = idtype == INT4OID ? DirectFunctionCall1(int4in, CStringGetDatum(id)) :
		CStringGetTextDatum(id);
	if (name == NULL)
		nulls[1] = true;
	else
		values[1] = CStringGetTextDatum(name);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * crefinder.sendgrid_templates() returns table(id text, name text): the
 * tenant's dynamic templates.
 */
Datum
crefinder_sendgrid_templates(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	OutboundMessage m;
	Jsonb	   *answer;

	LoadAccount("sendgrid", &m);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	answer = Fetch("sendgrid", &m, outbound_api_url(crefinder_sendgrid_api_url,
													"/v3/templates?generations=dynamic&page_size=200"));
	EachElement(outbound_object(answer, "result"), PutIdName, rsinfo);
	return (Datum) 0;
}

/*
 * crefinder.sendgrid_unsubscribe_groups() returns table(id int, name text).
 */
Datum
crefinder_sendgrid_unsubscribe_groups(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	OutboundMessage m;

	LoadAccount("sendgrid", &m);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	EachElement(Fetch("sendgrid", &m, outbound_api_url(crefinder_sendgrid_api_url, "/v3/asm/groups")),
				PutIdName, rsinfo);
	return (Datum) 0;
}
