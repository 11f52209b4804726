/*
 * twilio.c
 *		Twilio Programmable Messaging: the request that sends an SMS or a
 *		WhatsApp message, and what a 201 answer tells.
 *
 * POST {crefinder.twilio_api_url}/2010-04-01/Accounts/{AccountSid}/Messages.json,
 * form-encoded, Basic auth with the API key and secret when configured,
 * else the Account SID and auth token; and the request that cancels a
 * message scheduled with SendAt; and the GET of a Message resource the
 * dispatcher's lookups make (lookup.c): its status, price and segments.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "pgtime.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "outbound.h"
#include "validate.h"

void
twilio_add_param(StringInfo form, const char *name, const char *value)
{
	char	   *escaped;

	if (value == NULL)
		return;
	escaped = http_escape(value);
	appendStringInfo(form, "%s%s=%s", form->len > 0 ? "&" : "", name, escaped);
	pfree(escaped);
}

/*
 * twilio_check_sid raises an error unless sid is prefix + 32 hexadecimal
 * digits: sids go into the request's URL path, whatever the table holds.
 */
void
twilio_check_sid(const char *what, const char *sid, const char *prefix)
{
	if (sid == NULL || !crefinder_is_prefixed_hex(sid, prefix, 32))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the %s is not a Twilio sid", what),
				 errdetail("It must be \"%s\" followed by 32 hexadecimal characters.", prefix)));
}

/*
 * StatusCallbackFor is the tenant's smsWebhookUrl with crefinder's message
 * id in its query (crefinder_message_id): Twilio signs the URL with it, so
 * a callback that comes before the dispatcher has recorded Twilio's sid
 * still finds its message (see twilio_status_callback()).  A URL with a
 * fragment is left as it is.
 */
static char *
StatusCallbackFor(const char *url, int64 id)
{
	if (url == NULL || strchr(url, '#') != NULL)
		return (char *) url;
	return psprintf("%s%ccrefinder_message_id=" INT64_FORMAT, url, strchr(url, '?') ? '&' : '?', id);
}

/* SendAt is ISO 8601 in UTC, to the second. */
static char *
SendAtText(TimestampTz at)
{
	pg_time_t	t = timestamptz_to_time_t(at);
	struct pg_tm *tm = pg_gmtime(&t);
	char		buf[32];

	pg_strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", tm);
	return pstrdup(buf);
}

/*
 * twilio_authorize sets Basic auth on request: the API key and its secret
 * when configured, else the Account SID and auth token.
 */
void
twilio_authorize(OutboundMessage *m, HttpRequest *request)
{
	char	   *api_key = outbound_text(m->config, "apiKey");

	request->username = api_key ? api_key : outbound_text(m->config, "accountSid");
	request->password = outbound_secret(m, "twilio", api_key ? "apiSecret" : "authToken");
}

/*
 * twilio_build fills m->request.  A message: To, From or
 * MessagingServiceSid, Body, every MediaUrl, StatusCallback when the tenant
 * has a webhook URL, and SendAt + ScheduleType=fixed when it is handed over
 * ahead of its time (which needs the messaging service).  SMS go through
 * the messaging service when there is one, else from phoneNumber; WhatsApp
 * from whatsappNumber when there is one, else through the service.
 * WhatsApp numbers carry the "whatsapp:" prefix on both sides.
 *
 * A cancellation: POST .../Messages/{sid}.json with Status=canceled.
 */
void
twilio_build(OutboundMessage *m)
{
	bool		whatsapp = strcmp(m->channel, "whatsapp") == 0;
	char	   *account = outbound_text(m->config, "accountSid");
	char	   *service = outbound_text(m->config, "messagingServiceSid");
	char	   *from = outbound_text(m->config, whatsapp ? "whatsappNumber" : "phoneNumber");
	Jsonb	   *media = outbound_object(m->payload, "media_urls");
	StringInfoData form;

	initStringInfo(&form);
	m->request.headers = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
	m->request.headers = curl_slist_append(m->request.headers, "Accept: application/json");
	twilio_authorize(m, &m->request);
	twilio_check_sid("accountSid in the tenant's settings", account, "AC");

	if (m->twilio_cancel)
	{
		if (m->scheduled_sid == NULL || !(crefinder_is_prefixed_hex(m->scheduled_sid, "SM", 32) ||
										  crefinder_is_prefixed_hex(m->scheduled_sid, "MM", 32)))
			twilio_check_sid("scheduled message's id", m->scheduled_sid, "SM");
		twilio_add_param(&form, "Status", "canceled");
		m->request.url = outbound_api_url(crefinder_twilio_api_url,
										  psprintf("/2010-04-01/Accounts/%s/Messages/%s.json",
												   account, m->scheduled_sid));
		m->request.body = form.data;
		return;
	}

	twilio_add_param(&form, "To", whatsapp ? psprintf("whatsapp:%s", m->to) : m->to);
	if (service != NULL && (m->schedule_at != 0 || !whatsapp || from == NULL))
		twilio_add_param(&form, "MessagingServiceSid", service);
	else
		twilio_add_param(&form, "From", whatsapp ? psprintf("whatsapp:%s", from) : from);
	twilio_add_param(&form, "Body", outbound_text(m->payload, "body"));
	if (media != NULL)
	{
		JsonbIterator *it = JsonbIteratorInit(&media->root);
		JsonbValue	v;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
			if (tok == WJB_ELEM && v.type == jbvString)
				twilio_add_param(&form, "MediaUrl", pnstrdup(v.val.string.val, v.val.string.len));
	}
	twilio_add_param(&form, "StatusCallback", StatusCallbackFor(outbound_text(m->config, "smsWebhookUrl"), m->id));
	if (m->schedule_at != 0)
	{
		twilio_add_param(&form, "SendAt", SendAtText(m->schedule_at));
		twilio_add_param(&form, "ScheduleType", "fixed");
	}

	m->request.url = outbound_api_url(crefinder_twilio_api_url,
									  psprintf("/2010-04-01/Accounts/%s/Messages.json", account));
	m->request.body = form.data;
}

/*
 * twilio_accepted reads the Message resource of a 201: sid, status, and the
 * number it goes from (null when a messaging service picks it later).
 */
void
twilio_accepted(OutboundMessage *m)
{
	Jsonb	   *answer = outbound_parse_json(m->request.response.data);

	if (answer == NULL)
	{
		m->error = pstrdup("Twilio accepted the message but its answer could not be read");
		return;
	}
	m->provider_message_id = outbound_text(answer, "sid");
	m->provider_status = outbound_text(answer, "status");
	m->sender = outbound_text(answer, "from");
}

/*
 * twilio_build_fetch fills m->request with the GET of the message's
 * resource: .../Accounts/{AccountSid}/Messages/{sid}.json, where the sid
 * is m->provider_message_id (for calls .../Calls/{sid}.json: the call, or
 * the leg a bridge dialled).
 */
void
twilio_build_fetch(OutboundMessage *m)
{
	char	   *account = outbound_text(m->config, "accountSid");
	char	   *sid = m->provider_message_id;

	bool		call = strcmp(m->channel, "call") == 0 || strcmp(m->channel, "voicemail") == 0;

	twilio_check_sid("accountSid in the tenant's settings", account, "AC");
	if (call)
		twilio_check_sid("call's id", sid, "CA");
	else if (sid == NULL || !(crefinder_is_prefixed_hex(sid, "SM", 32) || crefinder_is_prefixed_hex(sid, "MM", 32)))
		twilio_check_sid("message's id", sid, "SM");
	m->request.headers = curl_slist_append(NULL, "Accept: application/json");
	twilio_authorize(m, &m->request);
	m->request.url = outbound_api_url(crefinder_twilio_api_url,
									  psprintf("/2010-04-01/Accounts/%s/%s/%s.json", account,
											   call ? "Calls" : "Messages", sid));
}
