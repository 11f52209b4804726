/*
 * twilio_call.c
 *		Twilio Programmable Voice: the request that places a bridge call or
 *		a voicemail drop (POST .../Accounts/{AccountSid}/Calls.json).
 *
 * A bridge call (channel call) rings the tenant's agent first: To is the
 * agent, From the tenant's number; the TwiML Twilio fetches when the agent
 * answers dials the owner (74_voice.sql).  A voicemail drop (channel
 * voicemail) rings the owner with answering-machine detection that waits
 * for the end of the greeting (MachineDetection=DetectMessageEnd), so that
 * the message starts after the beep.  Both fetch their TwiML from the
 * tenant's voiceWebhookUrl and report their progress to it, with
 * crefinder's message id and the step in the query: Twilio signs the URL
 * with them, so every request proves which message it is about.
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "guc.h"
#include "outbound.h"

#define BRIDGE_RING_SECONDS "25"	/* the agent's phone rings this long */
#define DROP_RING_SECONDS "30"

/*
 * twilio_voice_url is the tenant's voiceWebhookUrl with the message id and
 * the step in its query (crefinder_message_id, crefinder_step).
 */
char *
twilio_voice_url(const char *base, int64 id, const char *step)
{
	if (base == NULL || strchr(base, '#') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the tenant's voiceWebhookUrl cannot carry a query"),
				 errhint("Configure twilio voiceWebhookUrl without a fragment.")));
	return psprintf("%s%ccrefinder_message_id=" INT64_FORMAT "&crefinder_step=%s",
					base, strchr(base, '?') ? '&' : '?', id, step);
}

/* twilio_build_call fills m->request for a bridge call or a voicemail drop. */
void
twilio_build_call(OutboundMessage *m)
{
	bool		bridge = strcmp(m->channel, "call") == 0;
	char	   *account = outbound_text(m->config, "accountSid");
	char	   *from = outbound_text(m->config, "phoneNumber");
	char	   *base = outbound_text(m->config, "voiceWebhookUrl");
	char	   *to = bridge ? outbound_text(m->payload, "agent_number") : m->to;
	StringInfoData form;

	twilio_check_sid("accountSid in the tenant's settings", account, "AC");
	if (from == NULL || base == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the tenant's Twilio settings have no %s", from == NULL ? "phoneNumber" : "voiceWebhookUrl")));
	if (to == NULL || to[0] != '+' || strlen(to) < 8 || strlen(to) > 16 ||
		strspn(to + 1, "0123456789") != strlen(to) - 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the call has no valid number to ring")));

	initStringInfo(&form);
	m->request.headers = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
	m->request.headers = curl_slist_append(m->request.headers, "Accept: application/json");
	twilio_authorize(m, &m->request);

	twilio_add_param(&form, "To", to);
	twilio_add_param(&form, "From", from);
	twilio_add_param(&form, "Url", twilio_voice_url(base, m->id, "answer"));
	twilio_add_param(&form, "Method", "POST");
	twilio_add_param(&form, "StatusCallback", twilio_voice_url(base, m->id, "status"));
	twilio_add_param(&form, "StatusCallbackMethod", "POST");
	twilio_add_param(&form, "StatusCallbackEvent", "initiated");
	twilio_add_param(&form, "StatusCallbackEvent", "ringing");
	twilio_add_param(&form, "StatusCallbackEvent", "answered");
	twilio_add_param(&form, "StatusCallbackEvent", "completed");
	if (bridge)
	{
		twilio_add_param(&form, "Timeout", BRIDGE_RING_SECONDS);
		twilio_add_param(&form, "TimeLimit", psprintf("%d", TWILIO_BRIDGE_TIME_LIMIT));
	}
	else
	{
		twilio_add_param(&form, "MachineDetection", "DetectMessageEnd");
		twilio_add_param(&form, "Timeout", DROP_RING_SECONDS);
		twilio_add_param(&form, "TimeLimit", psprintf("%d", TWILIO_DROP_TIME_LIMIT));
	}

	m->request.url = outbound_api_url(crefinder_twilio_api_url,
									  psprintf("/2010-04-01/Accounts/%s/Calls.json", account));
	m->request.body = form.data;
}
