/*
 * sendgrid.c
 *		SendGrid Mail Send: the request that sends an email, and what a 202
 *		answer tells.
 *
 * POST {crefinder.sendgrid_api_url}/v3/mail/send, Bearer auth, JSON.
 * crefinder's message id and tenant travel in custom_args, so that every
 * event of the Event Webhook finds its message.  Emails that share
 * everything but the recipient and the template data go out in one
 * request, up to 1,000 personalizations.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "guc.h"
#include "outbound.h"

static void
AddTracking(StringInfo buf, OutboundMessage *m, const char *name, const char *field, bool *first)
{
	char	   *value = outbound_text(m->config, field);

	if (!*first)
		appendStringInfoChar(buf, ',');
	*first = false;
	appendStringInfo(buf, "\"%s\":{\"enable\":%s}", name,
					 value != NULL && strcmp(value, "false") == 0 ? "false" : "true");
}

/*
 * sendgrid_build fills m->request: one personalization per recipient (m
 * and its followers: the recipient, custom_args, dynamic_template_data),
 * from/name, reply_to, subject,
 * content (text/plain before text/html) or template_id, categories, the
 * unsubscribe group, the IP pool and the tracking settings.
 */
void
sendgrid_build(OutboundMessage *m)
{
	StringInfoData buf;
	bool		first = true;
	bool		inner;
	char	   *text = outbound_text(m->payload, "text");
	char	   *html = outbound_text(m->payload, "html");
	char	   *template_id = outbound_text(m->payload, "template_id");
	Jsonb	   *categories = outbound_object(m->payload, "categories");
	char	   *reply_to = outbound_text(m->config, "replyToEmail");
	char	   *group = outbound_integer(m->config, "unsubscribeGroupId");

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"personalizations\":[");
	for (int i = 0; i <= m->nfollowers; i++)
	{
		OutboundMessage *r = i == 0 ? m : m->followers[i - 1];
		Jsonb	   *data = outbound_object(r->payload, "template_data");

		appendStringInfoString(&buf, i == 0 ? "{\"to\":[{" : ",{\"to\":[{");
		inner = true;
		outbound_json_string(&buf, "email", r->to, &inner);
		appendStringInfoString(&buf, "}],\"custom_args\":{");
		inner = true;
		outbound_json_string(&buf, "crefinder_message_id", psprintf(INT64_FORMAT, r->id), &inner);
		outbound_json_string(&buf, "crefinder_tenant", r->tenant, &inner);
		appendStringInfoChar(&buf, '}');
		if (data != NULL && JB_ROOT_IS_OBJECT(data))
			appendStringInfo(&buf, ",\"dynamic_template_data\":%s",
							 JsonbToCString(NULL, &data->root, VARSIZE(data)));
		appendStringInfoChar(&buf, '}');
	}
	appendStringInfoString(&buf, "],\"from\":{");
	inner = true;
	outbound_json_string(&buf, "email", outbound_text(m->config, "fromEmail"), &inner);
	outbound_json_string(&buf, "name", outbound_text(m->config, "fromName"), &inner);
	appendStringInfoChar(&buf, '}');
	first = false;
	if (reply_to != NULL)
	{
		appendStringInfoString(&buf, ",\"reply_to\":{");
		inner = true;
		outbound_json_string(&buf, "email", reply_to, &inner);
		appendStringInfoChar(&buf, '}');
	}
	outbound_json_string(&buf, "subject", outbound_text(m->payload, "subject"), &first);
	if (text != NULL || html != NULL)
	{
		bool		item = true;

		appendStringInfoString(&buf, ",\"content\":[");
		if (text != NULL)
		{
			appendStringInfoString(&buf, "{\"type\":\"text/plain\",\"value\":");
			escape_json(&buf, text);
			appendStringInfoChar(&buf, '}');
			item = false;
		}
		if (html != NULL)
		{
			appendStringInfo(&buf, "%s{\"type\":\"text/html\",\"value\":", item ? "" : ",");
			escape_json(&buf, html);
			appendStringInfoChar(&buf, '}');
		}
		appendStringInfoChar(&buf, ']');
	}
	outbound_json_string(&buf, "template_id", template_id, &first);
	if (categories != NULL && JB_ROOT_IS_ARRAY(categories))
		appendStringInfo(&buf, ",\"categories\":%s",
						 JsonbToCString(NULL, &categories->root, VARSIZE(categories)));
	if (group != NULL)
		appendStringInfo(&buf, ",\"asm\":{\"group_id\":%s}", group);
	outbound_json_string(&buf, "ip_pool_name", outbound_text(m->config, "ipPool"), &first);
	appendStringInfoString(&buf, ",\"tracking_settings\":{");
	inner = true;
	AddTracking(&buf, m, "click_tracking", "clickTracking", &inner);
	AddTracking(&buf, m, "open_tracking", "openTracking", &inner);
	AddTracking(&buf, m, "subscription_tracking", "subscriptionTracking", &inner);
	appendStringInfoString(&buf, "}}");

	m->request.url = outbound_api_url(crefinder_sendgrid_api_url, "/v3/mail/send");
	m->request.body = buf.data;
	m->request.headers = curl_slist_append(NULL, "Content-Type: application/json");
	m->request.headers = outbound_bearer(m, "sendgrid", m->request.headers);
}

/* sendgrid_accepted takes the X-Message-Id of a 202. */
void
sendgrid_accepted(OutboundMessage *m)
{
	if (m->request.message_id[0] != '\0')
		m->provider_message_id = pstrdup(m->request.message_id);
	else
		m->error = pstrdup("SendGrid accepted the message without an X-Message-Id");
	m->provider_status = pstrdup("processed");
}
