/*
 * outbound.h
 *		A message the dispatcher sends, and helpers the provider modules
 *		share (see outbound.c, twilio.c, sendgrid.c, vapi.c).
 */
#ifndef CREFINDER_OUTBOUND_H
#define CREFINDER_OUTBOUND_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "crypto.h"
#include "http.h"

typedef struct OutboundMessage
{
	void	   *batch;			/* the claim it came in (dispatcher.c) */
	/* from crefinder.outbound_events and the tenant's settings */
	int64		id;
	char	   *tenant;			/* uuid as text */
	char	   *channel;		/* voice, sms, whatsapp, email, call, voicemail */
	char	   *to;				/* E.164 or email */
	int			attempts;		/* including this one */
	int64		property_id;	/* 0 when none */
	int64		campaign_id;	/* 0 when none */
	Jsonb	   *payload;
	Jsonb	   *config;			/* the provider's plain settings */
	Jsonb	   *secrets;		/* sealed secrets */
	char	   *owner_name;
	char	   *property_address;
	char	   *property_city;
	char	   *property_state;
	char	   *property_zip;
	/* Twilio scheduling (payload twilio_send_at / twilio_cancel) */
	TimestampTz schedule_at;	/* hand over with SendAt for this time; 0: now */
	bool		twilio_cancel;	/* ask Twilio to cancel the scheduled message */
	char	   *scheduled_sid;	/* its sid (provider_message_id) */

	HttpRequest request;

	/* the outcome */
	const char *status;			/* sent, queued (retry), failed, blocked,
								 * cancelled */
	char	   *provider_message_id;
	char	   *provider_status;
	char	   *sender;			/* the number it went from, when the answer says */
	char	   *error;
	char	   *block_reason;
	TimestampTz next_attempt_at;
	bool		opt_out;		/* record an opt-out for the recipient */
	bool		pause_provider; /* credentials rejected, settings unreadable */
	char	   *pause_reason;
	bool		deferred;		/* put back unsent (held, paced): no attempt */
	const char *hold_reason;	/* why a message put back waits */
	TimestampTz first_attempt_at;	/* retries give up retry_max_age later */
	bool		recorded;		/* its outcome is in the table */

	/* a sealed secret that did not open (set by outbound_secret) */
	bool		secret_wrong_key;	/* sealed under another server key */
	char	   *secret_problem; /* damaged: which field, why */

	/* emails that differ only in recipient travel in the leader's request */
	struct OutboundMessage **followers;
	int			nfollowers;
} OutboundMessage;

extern char *outbound_text(Jsonb *jsonb, const char *key);
extern Jsonb *outbound_object(Jsonb *jsonb, const char *key);
extern char *outbound_integer(Jsonb *jsonb, const char *key);
extern const char *outbound_provider(const char *channel);
extern char *outbound_secret(OutboundMessage *m, const char *provider, const char *field);
extern void outbound_secret_cache(bool on);
extern void outbound_secret_key(const CrefinderKey *key);
extern struct curl_slist *outbound_bearer(OutboundMessage *m, const char *provider,
										  struct curl_slist *headers);
extern void outbound_json_string(StringInfo buf, const char *key, const char *value, bool *first);
extern Jsonb *outbound_parse_json(const char *text);
extern char *outbound_api_url(const char *base, const char *path);
extern TimestampTz outbound_timestamp(const char *text);
extern char *outbound_clean_text(const char *text, size_t len, int max_bytes);

/* provider modules: fill m->request; read a 2xx answer into m */
extern void twilio_authorize(OutboundMessage *m, HttpRequest *request);
extern void twilio_add_param(StringInfo form, const char *name, const char *value);
extern void twilio_check_sid(const char *what, const char *sid, const char *prefix);
/* the longest a Twilio call lasts (its TimeLimit), in seconds */
#define TWILIO_BRIDGE_TIME_LIMIT 3600
#define TWILIO_DROP_TIME_LIMIT 300
#define TWILIO_CALL_FIRST_LOOKUP_SECONDS 300	/* a call's status is first asked then */

extern char *twilio_voice_url(const char *base, int64 id, const char *step);
extern void twilio_build_call(OutboundMessage *m);
extern void twilio_build(OutboundMessage *m);
extern void twilio_accepted(OutboundMessage *m);
extern void twilio_build_fetch(OutboundMessage *m);
extern void sendgrid_build(OutboundMessage *m);
extern void sendgrid_accepted(OutboundMessage *m);
extern void vapi_build(OutboundMessage *m);
extern void vapi_accepted(OutboundMessage *m);
extern void vapi_build_fetch(OutboundMessage *m);

#endif							/* CREFINDER_OUTBOUND_H */
