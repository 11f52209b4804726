/*
 * vapi.c
 *		Vapi: the request that starts an outbound AI voice call, and what a
 *		201 answer tells.
 *
 * POST {crefinder.vapi_api_url}/call, Bearer auth, JSON: assistantId,
 * phoneNumberId, customer, and assistantOverrides with the owner's and
 * property's fields as variableValues and crefinder's ids as metadata;
 * and GET {crefinder.vapi_api_url}/call/{id}, the call as Vapi knows it,
 * for the dispatcher's lookups (lookup.c).
 */
#include "postgres.h"

#include <ctype.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "guc.h"
#include "outbound.h"

/* Vapi limits customer.name to 40 characters. */
static char *
Truncated(const char *s, int max)
{
	if (s == NULL)
		return NULL;
	return pnstrdup(s, pg_mbcharcliplen(s, strlen(s), max));
}

/*
 * vapi_build fills m->request for the call.
 */
void
vapi_build(OutboundMessage *m)
{
	StringInfoData buf;
	bool		first = true;
	bool		inner;
	Jsonb	   *metadata = outbound_object(m->payload, "metadata");
	char	   *duration = outbound_integer(m->config, "maxCallDuration");
	char	   *first_message = outbound_text(m->payload, "first_message");

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	outbound_json_string(&buf, "assistantId", outbound_text(m->payload, "assistant_id"), &first);
	outbound_json_string(&buf, "phoneNumberId", outbound_text(m->config, "phoneNumber"), &first);
	appendStringInfoString(&buf, ",\"customer\":{");
	inner = true;
	outbound_json_string(&buf, "number", m->to, &inner);
	outbound_json_string(&buf, "name", Truncated(m->owner_name, 40), &inner);
	appendStringInfoString(&buf, "},\"assistantOverrides\":{");
	inner = true;
	outbound_json_string(&buf, "firstMessage", first_message, &inner);
	appendStringInfo(&buf, "%s\"variableValues\":{", inner ? "" : ",");
	{
		bool		vars = true;

		outbound_json_string(&buf, "owner_name", m->owner_name, &vars);
		outbound_json_string(&buf, "property_address", m->property_address, &vars);
		outbound_json_string(&buf, "property_city", m->property_city, &vars);
		outbound_json_string(&buf, "property_state", m->property_state, &vars);
		outbound_json_string(&buf, "property_zip", m->property_zip, &vars);
	}
	appendStringInfoString(&buf, "},\"metadata\":{");
	{
		bool		meta = true;

		/* the caller's metadata first; crefinder's ids cannot be overridden */
		if (metadata != NULL)
		{
			JsonbIterator *it = JsonbIteratorInit(&metadata->root);
			JsonbValue	v;
			JsonbIteratorToken tok;

			while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
			{
				if (tok != WJB_KEY)
					continue;
				{
					char	   *k = pnstrdup(v.val.string.val, v.val.string.len);

					if (strncmp(k, "crefinder_", 10) == 0)
					{
						JsonbIteratorNext(&it, &v, true);
						continue;
					}
					if (!meta)
						appendStringInfoChar(&buf, ',');
					meta = false;
					escape_json(&buf, k);
					appendStringInfoChar(&buf, ':');
					JsonbIteratorNext(&it, &v, true);
					if (v.type == jbvBinary)
						appendStringInfoString(&buf, JsonbToCString(NULL, v.val.binary.data, -1));
					else
					{
						Jsonb	   *scalar = JsonbValueToJsonb(&v);

						appendStringInfoString(&buf, JsonbToCString(NULL, &scalar->root, VARSIZE(scalar)));
					}
				}
			}
		}
		outbound_json_string(&buf, "crefinder_message_id", psprintf(INT64_FORMAT, m->id), &meta);
		outbound_json_string(&buf, "crefinder_tenant", m->tenant, &meta);
		if (m->property_id != 0)
			outbound_json_string(&buf, "crefinder_property_id", psprintf(INT64_FORMAT, m->property_id), &meta);
		if (m->campaign_id != 0)
			outbound_json_string(&buf, "crefinder_campaign_id", psprintf(INT64_FORMAT, m->campaign_id), &meta);
	}
	appendStringInfoChar(&buf, '}');
	if (duration != NULL)
		appendStringInfo(&buf, ",\"maxDurationSeconds\":%s", duration);
	appendStringInfoString(&buf, "}}");

	m->request.url = outbound_api_url(crefinder_vapi_api_url, "/call");
	m->request.body = buf.data;
	m->request.headers = curl_slist_append(NULL, "Content-Type: application/json");
	m->request.headers = outbound_bearer(m, "vapi", m->request.headers);
}

/* vapi_accepted reads the Call of a 201: id and status. */
void
vapi_accepted(OutboundMessage *m)
{
	Jsonb	   *answer = outbound_parse_json(m->request.response.data);

	if (answer == NULL)
	{
		m->error = pstrdup("Vapi accepted the call but its answer could not be read");
		return;
	}
	m->provider_message_id = outbound_text(answer, "id");
	m->provider_status = outbound_text(answer, "status");
	m->sender = outbound_text(m->config, "phoneNumber");	/* Vapi's id of the number */
}

/*
 * vapi_build_fetch fills m->request with the GET of the call whose id is
 * m->provider_message_id (a UUID: it goes into the URL's path).
 */
void
vapi_build_fetch(OutboundMessage *m)
{
	const char *id = m->provider_message_id;
	bool		uuid = id != NULL && strlen(id) == 36;

	for (int i = 0; uuid && i < 36; i++)
		uuid = (i == 8 || i == 13 || i == 18 || i == 23) ? id[i] == '-' : isxdigit((unsigned char) id[i]);
	if (!uuid)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the call's id is not a Vapi call id"),
				 errdetail("It must be a UUID.")));
	m->request.headers = curl_slist_append(NULL, "Accept: application/json");
	m->request.headers = outbound_bearer(m, "vapi", m->request.headers);
	m->request.url = outbound_api_url(crefinder_vapi_api_url, psprintf("/call/%s", id));
}
