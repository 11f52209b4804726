-- Comments: what every function, table, view and column is for, as
-- \df+ and \d+ show it.  Objects commented where they are created keep
-- those comments; this part, assembled after the others, covers the rest.
-- Comments of internal helpers start with "Internal:".
-- Test sql/11_comments.sql fails when an object of the schema has none.

------------------------------------------------------------------------
-- Functions
------------------------------------------------------------------------

-- Compliance: phone numbers and places.
COMMENT ON FUNCTION crefinder.normalize_phone(text) IS
    'A phone number as people type it, in E.164: (305) 555-0123 and 1-305-555-0123 give +13055550123, +44 20 7946 0958 gives +442079460958; a 10-digit number is taken as North American.  Raises 22023 with the reason when the number is invalid.';
COMMENT ON FUNCTION crefinder.phone_timezones(text) IS
    'Every IANA time zone a phone number may be in: all zones of a North American area code, else the zones of the longest known country prefix.  NULL when unknown (toll-free numbers, for example); raises 22023 for an invalid number.';
COMMENT ON FUNCTION crefinder.phone_region(text) IS
    'The state or province of a North American number''s area code, as two letters (FL, ON); NULL for other numbers and for area codes without one.  Raises 22023 for an invalid number.';
COMMENT ON FUNCTION crefinder.zip_timezone(text) IS
    'The IANA time zone of a US ZIP code (12345 or 12345-6789); NULL when the ZIP code is unknown.  Raises 22023 for something that is not a ZIP code.';
COMMENT ON FUNCTION crefinder.us_federal_holidays(integer) IS
    'The U.S. legal public holidays (5 U.S.C. 6103) of a year from 1900 to 9999: day is the holiday''s date, observed the date it is observed (the Friday before a Saturday, the Monday after a Sunday), name its name.  Calling rules with no_holidays ban both dates.';

-- Compliance: consents and suppressions.
COMMENT ON FUNCTION crefinder.record_consent(text, text, text, text, jsonb) IS
    'Record the current tenant''s consent to contact someone: contact in any form normalize_contact accepts, channel voice, sms, whatsapp or email, kind express or express_written, source where it was given, evidence a JSON object proving it (default {}).  A consent lets a number on a Do-Not-Call list be reached on that channel, and AI calls need one while voice_requires_consent is on.  Returns the consent''s id.';
COMMENT ON FUNCTION crefinder.revoke_consent(text, text, text) IS
    'Revoke the current tenant''s active consents for a contact on one channel; source says who revoked them (default manual).  Returns how many were revoked.';
COMMENT ON FUNCTION crefinder.add_suppression(text, text, text, text) IS
    'Stop email to an address for the current tenant.  reason is bounce, dropped, spamreport, unsubscribe, group_unsubscribe, invalid or manual; source (default manual) and detail say who reported it and why.  Returns the id of the active suppression, the existing one when the address is already suppressed for that reason.  opt_in lifts unsubscribe and group_unsubscribe suppressions.';

-- Sending.
COMMENT ON FUNCTION crefinder.send_sms(text, text, bigint, bigint, text[], timestamptz) IS
    'Queue an SMS (an MMS with media_urls) for the current tenant: to_number in any form normalize_phone accepts, body of 1 to 1600 characters, up to 10 https media_urls.  property_id adds the property''s time zones and mailing state to the compliance check, campaign_id files it under a campaign, send_at schedules it (not in the past; NULL sends as soon as allowed).  Returns the new outbound_events id: the dispatcher sends it after commit, or it is stored blocked when compliance refuses it for good.';
COMMENT ON FUNCTION crefinder.send_whatsapp(text, text, bigint, bigint, text[], timestamptz) IS
    'Queue a WhatsApp message for the current tenant, like send_sms: to_number may carry a whatsapp: prefix; it goes out from the Twilio settings'' whatsappNumber or messaging service.  Returns the new outbound_events id.';
COMMENT ON FUNCTION crefinder.send_email(text, text, text, text, text, jsonb, bigint, bigint, timestamptz, text[]) IS
    'Queue an email through SendGrid for the current tenant: subject of one line and at most 998 characters, content from html, text_body or a SendGrid dynamic template_id filled with template_data (a JSON object), else the configured defaultTemplateId; categories are up to 10 distinct SendGrid categories.  property_id, campaign_id and send_at as for send_sms.  Returns the new outbound_events id.';
COMMENT ON FUNCTION crefinder.start_call(text, text, jsonb, bigint, bigint) IS
    'Queue an AI voice call through Vapi for the current tenant: to_number in any form normalize_phone accepts, assistant_id (default: the Vapi settings'' assistantId), metadata a JSON object handed to Vapi with the call (keys starting with crefinder_ are reserved).  With property_id the owner''s name and the property''s address are given to the assistant as variables.  A call goes out as soon as compliance allows.  Returns the new outbound_events id.';
COMMENT ON FUNCTION crefinder.cancel(bigint) IS
    'Cancel a message of the current tenant that has not gone out: true when it was cancelled (a queued message is never sent; for a text already waiting at Twilio with SendAt the cancellation there is under way), false when it had already left or ended.';
COMMENT ON FUNCTION crefinder.retry_unknown(bigint[]) IS
    'Queue again, on purpose, messages whose status is unknown: the dispatcher stopped while their request was in flight, so the recipient may already have them.  Messages in any other status are left alone.  Returns how many were queued again.';

-- Calls to the provider's account.
COMMENT ON FUNCTION crefinder.twilio_phone_numbers() IS
    'The phone numbers (E.164) of the current tenant''s Twilio account, asked of Twilio at the time of the call (bounded by crefinder.http_timeout_ms, cancellable).';
COMMENT ON FUNCTION crefinder.sendgrid_templates() IS
    'The current tenant''s SendGrid dynamic templates (id, name), asked of SendGrid at the time of the call; an id is what send_email''s template_id and the defaultTemplateId setting take.';
COMMENT ON FUNCTION crefinder.sendgrid_unsubscribe_groups() IS
    'The current tenant''s SendGrid unsubscribe groups (id, name), asked of SendGrid at the time of the call; an id is what the unsubscribeGroupId setting takes.';

-- Administration.
COMMENT ON FUNCTION crefinder.grant_access(regrole) IS
    'Give a role (the application''s; authenticated on Supabase) what a tenant-facing application needs: usage of the schema, reading and writing the tenant tables (row-level security still applies), reading calling_rules, state_holidays and webhook_events, reading, inserting and updating integration_configs, and the identity sequences.  Run it as the extension''s owner or a superuser.';

-- Internal helpers.
COMMENT ON FUNCTION crefinder.valid_day_windows(jsonb) IS
    'Internal: the CHECK of calling_rules.day_windows; true when it is a JSON object whose keys are sun, mon, tue, wed, thu, fri or sat and whose values are [start, end] pairs of times with start before end.';
COMMENT ON FUNCTION crefinder.protect_default_rules() IS
    'Internal: trigger function that refuses updates and deletes of the calling rules shipped with crefinder (source default); insert a row with source operator to override one.';
COMMENT ON FUNCTION crefinder.rules_changed() IS
    'Internal: trigger function on calling_rules and state_holidays that makes every backend read the rules again after the change commits.';
COMMENT ON FUNCTION crefinder.delete_dnc_list_numbers() IS
    'Internal: trigger function that deletes the numbers of deleted Do-Not-Call lists.';
COMMENT ON FUNCTION crefinder.channel_provider(text) IS
    'Internal: the provider that carries a channel: sendgrid for email, vapi for voice, twilio for sms and whatsapp.';
COMMENT ON FUNCTION crefinder.provider_ready(text) IS
    'Internal: the current tenant''s settings for the provider of a channel; raises 55000 when there are none or they lack what the channel needs (a sender number or messaging service).';
COMMENT ON FUNCTION crefinder.enqueue(text, text, jsonb, bigint, bigint, timestamptz, jsonb, boolean) IS
    'Internal: store one message in the outbox after the compliance check for the instant it should go out (blocked when refused for good, else queued, held until next_allowed_at when needed), hand texts scheduled with scheduleAtTwilio to Twilio early, and wake the dispatcher at commit; the send functions call it.';
COMMENT ON FUNCTION crefinder.check_text_body(text) IS
    'Internal: raises 22023 unless a text message body is 1 to 1600 characters long and not blank.';
COMMENT ON FUNCTION crefinder.check_media_urls(text[]) IS
    'Internal: raises 22023 unless media URLs are at most 10 absolute https URLs (NULL means none).';
COMMENT ON FUNCTION crefinder.enqueue_text(text, text, text, bigint, bigint, text[], timestamptz) IS
    'Internal: send_sms and send_whatsapp once the recipient is normalized: checks the body, the media URLs and the Twilio settings, then calls enqueue.';
COMMENT ON FUNCTION crefinder.cancel_at_twilio(uuid, bigint[]) IS
    'Internal: put messages already handed to Twilio for later (SendAt, still ahead) back in the queue marked for cancellation; the dispatcher then cancels them at Twilio and records them cancelled.  Returns how many.';
COMMENT ON FUNCTION crefinder.cancel_scheduled_on_opt_out() IS
    'Internal: trigger function on opt_outs: a new phone opt-out (any phone channel: it covers them all) cancels the texts to that contact that wait at Twilio (scheduled with SendAt).';
COMMENT ON FUNCTION crefinder.dispatcher_status_rows() IS
    'Internal: each dispatcher worker''s state, read from shared memory; query the view crefinder.dispatcher_status instead.';

------------------------------------------------------------------------
-- Tables, views and their columns
------------------------------------------------------------------------

-- Tenant data: owners, templates, campaigns, the outbox, provider settings,
-- opt-outs, suppressions, consents, Do-Not-Call lists, webhook deliveries.

COMMENT ON TABLE crefinder.property_records IS
    'The property owners to reach, one row per property, entered by the application.  Row-level security shows each tenant only its own rows.';
COMMENT ON COLUMN crefinder.property_records.id IS
    'Identifies the property; generated.  The send functions and can_contact take it as property_id.';
COMMENT ON COLUMN crefinder.property_records.user_id IS
    'The tenant that owns the row; defaults to crefinder.current_user_id().';
COMMENT ON COLUMN crefinder.property_records.owner_name IS
    'The owner''s name; an AI call for the property gives it to the assistant.';
COMMENT ON COLUMN crefinder.property_records.owner_phone IS
    'The owner''s phone number, in any form normalize_phone accepts.';
COMMENT ON COLUMN crefinder.property_records.owner_email IS
    'The owner''s email address.';
COMMENT ON COLUMN crefinder.property_records.property_address IS
    'The property''s street address; an AI call for the property gives it to the assistant.';
COMMENT ON COLUMN crefinder.property_records.property_city IS
    'The property''s city; an AI call for the property gives it to the assistant.';
COMMENT ON COLUMN crefinder.property_records.property_state IS
    'The property''s state as two capital letters (FL); an AI call for the property gives it to the assistant.';
COMMENT ON COLUMN crefinder.property_records.property_zip IS
    'The property''s ZIP code; an AI call for the property gives it to the assistant.';
COMMENT ON COLUMN crefinder.property_records.mailing_address IS
    'The owner''s mailing address.';
COMMENT ON COLUMN crefinder.property_records.mailing_state IS
    'The owner''s mailing state as two capital letters; its calling rules apply to messages for the property, besides those of the area code''s state.';
COMMENT ON COLUMN crefinder.property_records.mailing_zip IS
    'The owner''s mailing ZIP code (12345 or 12345-6789); its time zone is one of those the quiet-hours check considers.';
COMMENT ON COLUMN crefinder.property_records.timezone IS
    'The property''s IANA time zone (America/New_York), if known; the quiet-hours check considers it too.';
COMMENT ON COLUMN crefinder.property_records.skip_trace_data IS
    'What skip tracing found about the owner (more phones and emails, for example), as a JSON object; default {}.';
COMMENT ON COLUMN crefinder.property_records.lead_status IS
    'The lead''s stage: new (default), contacted, responded, interested, nurture, not_interested, do_not_contact or converted.';
COMMENT ON COLUMN crefinder.property_records.interest_level IS
    'The owner''s interest from 0 (none) to 10; NULL when not rated.';
COMMENT ON COLUMN crefinder.property_records.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN crefinder.property_records.updated_at IS
    'When the row was last changed; defaults to the insertion time and is not maintained automatically: set it when you update the row.';

COMMENT ON TABLE crefinder.templates IS
    'A tenant''s message templates with {{variable}} placeholders, to be rendered per recipient; one per name and channel.';
COMMENT ON COLUMN crefinder.templates.id IS
    'Identifies the template; generated.';
COMMENT ON COLUMN crefinder.templates.user_id IS
    'The tenant that owns the row; defaults to crefinder.current_user_id().';
COMMENT ON COLUMN crefinder.templates.name IS
    'The template''s name, not empty, unique per tenant and channel.';
COMMENT ON COLUMN crefinder.templates.channel IS
    'The channel the template is for: voice, sms, whatsapp or email.';
COMMENT ON COLUMN crefinder.templates.subject IS
    'The email subject; only email templates may have one.';
COMMENT ON COLUMN crefinder.templates.body IS
    'The text: the message of an SMS or WhatsApp, the opening words of a call, the plain-text part of an email.';
COMMENT ON COLUMN crefinder.templates.html IS
    'The HTML part of an email; NULL for none.';
COMMENT ON COLUMN crefinder.templates.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN crefinder.templates.updated_at IS
    'When the row was last changed; defaults to the insertion time and is not maintained automatically: set it when you update the row.';

COMMENT ON TABLE crefinder.sequences IS
    'A tenant''s multi-step outreach sequences that campaigns follow.';
COMMENT ON COLUMN crefinder.sequences.id IS
    'Identifies the sequence; generated.';
COMMENT ON COLUMN crefinder.sequences.user_id IS
    'The tenant that owns the row; defaults to crefinder.current_user_id().';
COMMENT ON COLUMN crefinder.sequences.name IS
    'The sequence''s name, not empty, unique per tenant.';
COMMENT ON COLUMN crefinder.sequences.steps IS
    'The steps in order, a JSON array of objects {channel, delay, template or variants[], subject?, on_positive, on_negative, on_no_response}.';
COMMENT ON COLUMN crefinder.sequences.variables IS
    'The sequence''s own template variables and their defaults, a JSON object (a null default: each campaign must give a value).';
COMMENT ON COLUMN crefinder.sequences.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN crefinder.sequences.updated_at IS
    'When the row was last changed; defaults to the insertion time and is not maintained automatically: set it when you update the row.';

COMMENT ON TABLE crefinder.campaigns IS
    'A tenant''s campaigns: a sequence run for a set of properties (their enrollments).';
COMMENT ON COLUMN crefinder.campaigns.id IS
    'Identifies the campaign; generated.  The send functions take it as campaign_id.';
COMMENT ON COLUMN crefinder.campaigns.user_id IS
    'The tenant that owns the row; defaults to crefinder.current_user_id().';
COMMENT ON COLUMN crefinder.campaigns.name IS
    'The campaign''s name, not empty.';
COMMENT ON COLUMN crefinder.campaigns.sequence_id IS
    'The sequence the campaign''s enrollments follow (a sequence in use cannot be deleted); NULL for none.';
COMMENT ON COLUMN crefinder.campaigns.status IS
    'draft, active (default), paused, completed or cancelled.';
COMMENT ON COLUMN crefinder.campaigns.settings IS
    'The campaign''s own options, as a JSON object; default {}.';
COMMENT ON COLUMN crefinder.campaigns.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN crefinder.campaigns.updated_at IS
    'When the row was last changed; defaults to the insertion time and is not maintained automatically: set it when you update the row.';
COMMENT ON COLUMN crefinder.campaigns.started_at IS
    'When the campaign started; NULL before.';
COMMENT ON COLUMN crefinder.campaigns.completed_at IS
    'When the campaign ended; NULL before.';

COMMENT ON TABLE crefinder.enrollments IS
    'One property''s walk through a campaign''s sequence; a property is enrolled at most once per campaign.  Deleting the campaign or the property deletes it.';
COMMENT ON COLUMN crefinder.enrollments.id IS
    'Identifies the enrollment; generated.';
COMMENT ON COLUMN crefinder.enrollments.user_id IS
    'The tenant that owns the row; defaults to crefinder.current_user_id().';
COMMENT ON COLUMN crefinder.enrollments.campaign_id IS
    'The campaign.';
COMMENT ON COLUMN crefinder.enrollments.property_id IS
    'The property enrolled.';
COMMENT ON COLUMN crefinder.enrollments.status IS
    'active (default: following the campaign''s sequence), nurture (following the nurture sequence after a positive answer), paused (its campaign is), completed (no step left) or stopped (stop_reason says why).';
COMMENT ON COLUMN crefinder.enrollments.resume_status IS
    'While paused: the status resume_campaign() gives back (active or nurture); NULL otherwise.';
COMMENT ON COLUMN crefinder.enrollments.sequence_id IS
    'The nurture sequence the enrollment follows after a positive answer (a step''s on_positive = nurture:<id>); NULL: the campaign''s sequence.';
COMMENT ON COLUMN crefinder.enrollments.attempts IS
    'Messages queued for the enrollment so far (skipped steps not counted); capped by max_attempts_per_property.';
COMMENT ON COLUMN crefinder.enrollments.stopped_at IS
    'When the enrollment stopped or completed; NULL while it goes on.';
COMMENT ON COLUMN crefinder.enrollments.current_step IS
    'The position in the sequence''s steps, counted from 0 (default).';
COMMENT ON COLUMN crefinder.enrollments.next_step_at IS
    'When the next step is due; NULL when none is.';
COMMENT ON COLUMN crefinder.enrollments.stop_reason IS
    'Why the enrollment stopped (a negative reply, an opt-out); NULL while it goes on.';
COMMENT ON COLUMN crefinder.enrollments.last_message_id IS
    'The latest message queued or blocked for the enrollment (outbound_events.id; it may have been pruned since).';
COMMENT ON COLUMN crefinder.enrollments.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN crefinder.enrollments.updated_at IS
    'When the row was last changed; defaults to the insertion time and is not maintained automatically: set it when you update the row.';

COMMENT ON TABLE crefinder.outbound_events IS
    'The outbox and its history, one row per message.  The send functions insert rows and the dispatcher moves them on: queued, sending, sent, delivered, or blocked, failed, cancelled, unknown.  Applications read it.';
COMMENT ON COLUMN crefinder.outbound_events.id IS
    'Identifies the message; generated, and returned by the send function that queued it.';
COMMENT ON COLUMN crefinder.outbound_events.user_id IS
    'The tenant that sends the message; defaults to crefinder.current_user_id().';
COMMENT ON COLUMN crefinder.outbound_events.channel IS
    'voice (an AI call through Vapi), sms, whatsapp (through Twilio) or email (through SendGrid).';
COMMENT ON COLUMN crefinder.outbound_events.to_contact IS
    'The recipient as crefinder stores contacts: an E.164 number, or a lower-case email address.';
COMMENT ON COLUMN crefinder.outbound_events.status IS
    'queued (default: waits until next_attempt_at), sending (handed to the provider), sent (accepted by it), delivered, blocked (compliance refused it, see block_reason), failed (a permanent error or too many attempts, see last_error), cancelled, unknown (the dispatcher stopped while the request was in flight; never sent again unless retry() or retry_unknown() says so), or skipped (a campaign step not sent: see block_reason).';
COMMENT ON COLUMN crefinder.outbound_events.block_reason IS
    'Why compliance refused the message, a reason of can_contact (opted_out, dnc, no_consent, ...), or why a campaign step was skipped (no_contact, holdout, provider_not_configured); set exactly when status is blocked or skipped.';
COMMENT ON COLUMN crefinder.outbound_events.provider_status IS
    'The provider''s own status word from its latest answer (Twilio queued or scheduled, SendGrid processed, Vapi queued or ended), set by the dispatcher.';
COMMENT ON COLUMN crefinder.outbound_events.provider_message_id IS
    'The provider''s id of the message, set by the dispatcher when the provider accepts it: the Twilio message sid, SendGrid''s X-Message-Id, the Vapi call id.';
COMMENT ON COLUMN crefinder.outbound_events.campaign_id IS
    'The campaign the message belongs to, if any; set to NULL when the campaign is deleted.';
COMMENT ON COLUMN crefinder.outbound_events.property_id IS
    'The property the message is about, if any; set to NULL when the property is deleted.';
COMMENT ON COLUMN crefinder.outbound_events.enrollment_id IS
    'The campaign enrollment that produced the message, if any; set to NULL when the enrollment is deleted.';
COMMENT ON COLUMN crefinder.outbound_events.step IS
    'The position of the sequence step that produced the message, counted from 0; NULL outside sequences.';
COMMENT ON COLUMN crefinder.outbound_events.variant IS
    'The A/B variant of the step that produced the message; NULL when the step has none.';
COMMENT ON COLUMN crefinder.outbound_events.attempts IS
    'How many times the dispatcher has handed the message to the provider; waiting for a pacing token or a free line is no attempt.  A temporary failure is retried until crefinder.max_attempts attempts or crefinder.retry_max_age after the first attempt, then the message is failed.';
COMMENT ON COLUMN crefinder.outbound_events.claimed_by IS
    'The dispatcher worker (dispatcher_status.worker) that last claimed the message, set by the dispatcher; after a crash, that worker marks its rows left sending unknown.';
COMMENT ON COLUMN crefinder.outbound_events.next_attempt_at IS
    'When a queued message may go next: its send_at, the end of a hold (quiet hours, caps, pacing, a busy line) or of a retry''s backoff; default now().  Set by the send functions and the dispatcher.';
COMMENT ON COLUMN crefinder.outbound_events.last_error IS
    'The latest error, set by the dispatcher: the provider''s code and message, a connection error, or what keeps a held message waiting; provider text is cleaned (valid text, no control characters) and cut at a character boundary.';
COMMENT ON COLUMN crefinder.outbound_events.cost_cents IS
    'What the provider charged for the message, in cents with four decimals; NULL while unknown.';
COMMENT ON COLUMN crefinder.outbound_events.payload IS
    'What the message carries, as a JSON object: the send function''s arguments (body, media_urls, subject, html, text, template_id, template_data, categories, assistant_id, metadata, send_at) and crefinder''s own marks (twilio_send_at, twilio_cancel).';
COMMENT ON COLUMN crefinder.outbound_events.created_at IS
    'When the message was queued.';
COMMENT ON COLUMN crefinder.outbound_events.updated_at IS
    'When the row last changed; set by crefinder''s functions and the dispatcher.';
COMMENT ON COLUMN crefinder.outbound_events.sent_at IS
    'When the provider first accepted the message (for a text scheduled at Twilio: when it was handed over), set by the dispatcher; NULL before.';
COMMENT ON COLUMN crefinder.outbound_events.delivered_at IS
    'When the provider reported the message delivered; NULL until then.';
COMMENT ON COLUMN crefinder.outbound_events.opened_at IS
    'When the recipient first opened the email, as the provider reported it; NULL until then.';
COMMENT ON COLUMN crefinder.outbound_events.clicked_at IS
    'When the recipient first clicked a link in the email, as the provider reported it; NULL until then.';
COMMENT ON COLUMN crefinder.outbound_events.responded_at IS
    'When the recipient first replied or answered; NULL until then.';

COMMENT ON TABLE crefinder.integration_configs IS
    'A tenant''s settings for one provider (vapi, twilio or sendgrid).  Written by crefinder.configure() only; read them with crefinder.integration_config(), which masks the secrets.';
COMMENT ON COLUMN crefinder.integration_configs.id IS
    'Identifies the row; generated.';
COMMENT ON COLUMN crefinder.integration_configs.user_id IS
    'The tenant the settings belong to; defaults to crefinder.current_user_id().';
COMMENT ON COLUMN crefinder.integration_configs.provider IS
    'vapi, twilio or sendgrid; one row per tenant and provider.';
COMMENT ON COLUMN crefinder.integration_configs.config IS
    'The validated plain fields, defaults applied, as a JSON object; secret fields are not here.';
COMMENT ON COLUMN crefinder.integration_configs.secrets IS
    'Each secret field''s AES-256-GCM envelope under the server key, bound to its tenant, provider and field; the plaintext is never stored.';
COMMENT ON COLUMN crefinder.integration_configs.paused_at IS
    'When the dispatcher paused the provider for this tenant because it rejected the credentials (401 or 403); NULL when not paused.  configure() lifts the pause.';
COMMENT ON COLUMN crefinder.integration_configs.paused_reason IS
    'Why the provider is paused, set by the dispatcher; NULL when not paused.';
COMMENT ON COLUMN crefinder.integration_configs.created_at IS
    'When the tenant first configured the provider.';
COMMENT ON COLUMN crefinder.integration_configs.updated_at IS
    'When configure() (or a key rotation) last changed the row.';

COMMENT ON TABLE crefinder.opt_outs IS
    'Opt-outs (STOP, unsubscribe, a request), written by opt_out() and the dispatcher; a row is active until revoked_at.  A phone opt-out blocks voice, sms and whatsapp, an email one blocks email.';
COMMENT ON COLUMN crefinder.opt_outs.id IS
    'Identifies the opt-out; generated, and returned by opt_out().';
COMMENT ON COLUMN crefinder.opt_outs.user_id IS
    'The tenant the opt-out is for; defaults to crefinder.current_user_id().';
COMMENT ON COLUMN crefinder.opt_outs.channel IS
    'The channel the opt-out came in on: voice, sms, whatsapp or email.';
COMMENT ON COLUMN crefinder.opt_outs.contact IS
    'The contact that opted out, normalized (E.164, or a lower-case email address).';
COMMENT ON COLUMN crefinder.opt_outs.source IS
    'Where the opt-out came from (default manual; the dispatcher writes provider: recipient unsubscribed (21610) for Twilio''s error 21610).';
COMMENT ON COLUMN crefinder.opt_outs.created_at IS
    'When the opt-out was recorded.';
COMMENT ON COLUMN crefinder.opt_outs.revoked_at IS
    'When opt_in() lifted the opt-out; NULL while it is active.';
COMMENT ON COLUMN crefinder.opt_outs.revoked_source IS
    'Who lifted the opt-out (opt_in''s source); NULL while it is active.';

COMMENT ON TABLE crefinder.email_suppressions IS
    'Email addresses that must not be mailed (bounces, drops, spam reports, unsubscribes), written by add_suppression(); a row is active until removed_at.';
COMMENT ON COLUMN crefinder.email_suppressions.id IS
    'Identifies the suppression; generated, and returned by add_suppression().';
COMMENT ON COLUMN crefinder.email_suppressions.user_id IS
    'The tenant the suppression is for; defaults to crefinder.current_user_id().';
COMMENT ON COLUMN crefinder.email_suppressions.email IS
    'The suppressed address, in lower case.';
COMMENT ON COLUMN crefinder.email_suppressions.reason IS
    'bounce, dropped, spamreport, unsubscribe, group_unsubscribe, invalid or manual; one active row per address and reason.';
COMMENT ON COLUMN crefinder.email_suppressions.source IS
    'Who reported it (default manual).';
COMMENT ON COLUMN crefinder.email_suppressions.detail IS
    'More about it, such as the bounce message; NULL for none.';
COMMENT ON COLUMN crefinder.email_suppressions.created_at IS
    'When the suppression was recorded.';
COMMENT ON COLUMN crefinder.email_suppressions.removed_at IS
    'When the suppression was lifted (opt_in() lifts unsubscribe and group_unsubscribe ones); NULL while it is active.';

COMMENT ON TABLE crefinder.consents IS
    'Consents to be contacted (TCPA prior express or express written consent), written by record_consent(); a row is active until revoked_at.  A written consent (express_written) lets a number on a Do-Not-Call list be reached on its channel, is what AI calls need while voice_requires_consent is on, and what every voicemail drop needs; an oral one (express) is kept as a record only.';
COMMENT ON COLUMN crefinder.consents.id IS
    'Identifies the consent; generated, and returned by record_consent().';
COMMENT ON COLUMN crefinder.consents.user_id IS
    'The tenant the consent was given to; defaults to crefinder.current_user_id().';
COMMENT ON COLUMN crefinder.consents.contact IS
    'The contact that consented, normalized (E.164, or a lower-case email address).';
COMMENT ON COLUMN crefinder.consents.channel IS
    'The channel consented to: voice, sms, whatsapp or email.';
COMMENT ON COLUMN crefinder.consents.kind IS
    'express (prior express consent) or express_written (prior express written consent).';
COMMENT ON COLUMN crefinder.consents.source IS
    'Where the consent was given (a web form, a call).';
COMMENT ON COLUMN crefinder.consents.evidence IS
    'Proof of the consent as a JSON object (form, wording, IP address, time); default {}.';
COMMENT ON COLUMN crefinder.consents.granted_at IS
    'When the consent was recorded.';
COMMENT ON COLUMN crefinder.consents.revoked_at IS
    'When the consent was revoked, by revoke_consent() or by a phone opt-out; NULL while it is active.';
COMMENT ON COLUMN crefinder.consents.revoked_source IS
    'Who revoked it: revoke_consent''s source, or opt-out: followed by the opt-out''s source; NULL while it is active.';

COMMENT ON TABLE crefinder.dnc_lists IS
    'Do-Not-Call lists: registry lists loaded by dnc_load() (national, state, litigator), which every tenant sees, and tenants'' own internal lists filled by dnc_add().  Deleting a list deletes its numbers.';
COMMENT ON COLUMN crefinder.dnc_lists.id IS
    'Identifies the list; generated.';
COMMENT ON COLUMN crefinder.dnc_lists.kind IS
    'national, state or litigator for a registry list, internal for a tenant''s own.';
COMMENT ON COLUMN crefinder.dnc_lists.user_id IS
    'The tenant of an internal list (defaults to crefinder.current_user_id()); NULL for a registry list.';
COMMENT ON COLUMN crefinder.dnc_lists.source IS
    'The list''s name, unique per tenant (and among registry lists): the source given to dnc_load (national:2026-11, state:FL) or to dnc_add (default internal).';
COMMENT ON COLUMN crefinder.dnc_lists.created_at IS
    'When the list was created.';

COMMENT ON TABLE crefinder.dnc_numbers IS
    'The numbers on the Do-Not-Call lists, one row per number and list.  A number on a list is blocked on phone channels unless the tenant holds a consent for the channel.';
COMMENT ON COLUMN crefinder.dnc_numbers.phone_number IS
    'The number''s E.164 digits as an integer (+13055550123 is 13055550123).';
COMMENT ON COLUMN crefinder.dnc_numbers.list_id IS
    'The list the number is on (dnc_lists.id).';


-- Compliance rules and settings.

COMMENT ON COLUMN crefinder.calling_rules.region IS
    'US for the federal rule, which applies everywhere; else a state as two capital letters, whose rule applies when it is the area code''s state or the owner''s mailing state.';
COMMENT ON COLUMN crefinder.calling_rules.source IS
    'default for the rules shipped with crefinder (read-only), operator (the default for inserts) for an operator''s override, which replaces the default rule of its region.';
COMMENT ON COLUMN crefinder.calling_rules.window_start IS
    'Start of the daily window, in the recipient''s local time, when contact is allowed.';
COMMENT ON COLUMN crefinder.calling_rules.window_end IS
    'End of the daily window, in the recipient''s local time; after window_start.';
COMMENT ON COLUMN crefinder.calling_rules.day_windows IS
    'Windows of particular weekdays that replace window_start and window_end on those days, as a JSON object such as {"sun": ["12:00", "21:00"]} (keys sun to sat); default {}.';
COMMENT ON COLUMN crefinder.calling_rules.no_sundays IS
    'No contact on Sundays (local time); default false.';
COMMENT ON COLUMN crefinder.calling_rules.no_holidays IS
    'No contact on federal holidays (the day and the day observed) and on the region''s state_holidays; default false.';
COMMENT ON COLUMN crefinder.calling_rules.cap_count IS
    'At most this many messages on cap_channels to one number within cap_window; NULL for no cap.';
COMMENT ON COLUMN crefinder.calling_rules.cap_window IS
    'The trailing period of cap_count; default 24 hours.';
COMMENT ON COLUMN crefinder.calling_rules.cap_channels IS
    'The channels whose messages cap_count counts together, among voice, sms and whatsapp; default all three.';
COMMENT ON COLUMN crefinder.calling_rules.channels IS
    'The channels the rule governs, among voice, sms and whatsapp; default all three.';
COMMENT ON COLUMN crefinder.calling_rules.note IS
    'The law the rule comes from, or a remark; NULL for none.';

COMMENT ON TABLE crefinder.state_holidays IS
    'Extra days on which a region whose calling rule has no_holidays bans contact, besides the federal holidays (which are computed by us_federal_holidays).  Written by the operator; tenants read it.';
COMMENT ON COLUMN crefinder.state_holidays.region IS
    'The state, as two capital letters (its calling_rules region).';
COMMENT ON COLUMN crefinder.state_holidays.day IS
    'The date of the holiday.';
COMMENT ON COLUMN crefinder.state_holidays.name IS
    'The holiday''s name.';

COMMENT ON TABLE crefinder.tenant_settings IS
    'A tenant''s own compliance policy and deal assumptions, at most one row per tenant, written by the application; a tenant without a row gets the column defaults.  Its windows can only narrow the legal ones.';
COMMENT ON COLUMN crefinder.tenant_settings.user_id IS
    'The tenant; defaults to crefinder.current_user_id().';
COMMENT ON COLUMN crefinder.tenant_settings.voice_window_start IS
    'Start of the window for calls, in the recipient''s local time; default 09:00.';
COMMENT ON COLUMN crefinder.tenant_settings.voice_window_end IS
    'End of the window for calls, in the recipient''s local time; default 20:00.';
COMMENT ON COLUMN crefinder.tenant_settings.sms_window_start IS
    'Start of the window for SMS, in the recipient''s local time; default 09:00.';
COMMENT ON COLUMN crefinder.tenant_settings.sms_window_end IS
    'End of the window for SMS, in the recipient''s local time; default 20:00.';
COMMENT ON COLUMN crefinder.tenant_settings.whatsapp_window_start IS
    'Start of the window for WhatsApp, in the recipient''s local time; default 09:00.';
COMMENT ON COLUMN crefinder.tenant_settings.whatsapp_window_end IS
    'End of the window for WhatsApp, in the recipient''s local time; default 20:00.';
COMMENT ON COLUMN crefinder.tenant_settings.voice_requires_consent IS
    'Whether every AI call needs the recipient''s voice consent (record_consent), not only calls to numbers on a Do-Not-Call list; default true.';
COMMENT ON COLUMN crefinder.tenant_settings.max_messages_per_24h IS
    'The tenant''s own cap: at most this many voice, sms and whatsapp messages together to one number in any 24 hours; NULL (default) for none.';
COMMENT ON COLUMN crefinder.tenant_settings.average_deal_value IS
    'The value of an average closed deal, in the tenant''s currency, for return-on-investment figures; NULL when not set.';
COMMENT ON COLUMN crefinder.tenant_settings.conversion_rate IS
    'The share of contacted owners expected to close, from 0 to 1, for return-on-investment figures; NULL when not set.';
COMMENT ON COLUMN crefinder.tenant_settings.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN crefinder.tenant_settings.updated_at IS
    'When the row was last changed; defaults to the insertion time and is not maintained automatically: set it when you update the row.';

-- The dispatcher.

COMMENT ON COLUMN crefinder.dispatcher_status.worker IS
    'The worker''s number, from 0 to crefinder.dispatcher_workers - 1; worker 0 serves every message.';
COMMENT ON COLUMN crefinder.dispatcher_status.pid IS
    'The worker''s process id; NULL when it is not running.';
COMMENT ON COLUMN crefinder.dispatcher_status.state IS
    'What the worker does: starting, waiting for CREATE EXTENSION crefinder, idle, sending, disabled (crefinder.dispatcher_enabled is off), stopping or stopped.';
COMMENT ON COLUMN crefinder.dispatcher_status.started_at IS
    'When the worker started; NULL when it never did.';
COMMENT ON COLUMN crefinder.dispatcher_status.in_flight IS
    'Requests the worker has at the providers right now.';
COMMENT ON COLUMN crefinder.dispatcher_status.sent IS
    'Messages the providers accepted since the worker started.';
COMMENT ON COLUMN crefinder.dispatcher_status.failed IS
    'Messages that failed since the worker started.';
COMMENT ON COLUMN crefinder.dispatcher_status.retried IS
    'Temporary failures put back in the queue for another attempt since the worker started.';
COMMENT ON COLUMN crefinder.dispatcher_status.blocked IS
    'Messages the re-check at dispatch blocked since the worker started.';
COMMENT ON COLUMN crefinder.dispatcher_status.last_error IS
    'The latest problem of the worker itself (no usable secret key, a claim that failed, outcomes that wait to be recorded); never a tenant''s message error, which is on the message''s row; NULL when none.';
COMMENT ON COLUMN crefinder.dispatcher_status.database IS
    'The database the dispatcher serves (crefinder.database); messages queued in any other database are refused.';
COMMENT ON COLUMN crefinder.dispatcher_status.last_error_at IS
    'When last_error happened; NULL when none.';

COMMENT ON COLUMN crefinder.paused_providers.user_id IS
    'The tenant whose provider is paused (row-level security shows a tenant only its own).';
COMMENT ON COLUMN crefinder.paused_providers.provider IS
    'vapi, twilio or sendgrid.';
COMMENT ON COLUMN crefinder.paused_providers.paused_at IS
    'When the dispatcher paused the provider.';
COMMENT ON COLUMN crefinder.paused_providers.paused_reason IS
    'Why the dispatcher paused it.';

-- Added with the hardening of the privilege model and the dispatcher.
COMMENT ON COLUMN crefinder.outbound_events.hold_reason IS
    'Why a queued message waits, until next_attempt_at: scheduled (its send_at), quiet_hours, day_restricted or frequency_cap (compliance), paced (maxPerSecond), call_limit (maxConcurrentCalls), provider_paused, campaign_paused or guardrail (the campaign or its channel paused), sender_paused (a guardrail paused the sending number), server_key (no usable crefinder.secret_key), locked (the tenant''s rows were locked), retry (backoff after a temporary failure); NULL when it waits for nothing.';
COMMENT ON COLUMN crefinder.outbound_events.first_attempt_at IS
    'When the dispatcher first handed the message to the provider; retries give up crefinder.retry_max_age after it.  retry() clears it.';
COMMENT ON VIEW crefinder.message_errors IS
    'The current tenant''s messages that failed, whose fate is unknown, or that wait after an error, with the error and, for a waiting one, why and until when.';
COMMENT ON COLUMN crefinder.message_errors.id IS 'The message (crefinder.outbound_events.id).';
COMMENT ON COLUMN crefinder.message_errors.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.message_errors.channel IS 'voice, sms, whatsapp or email.';
COMMENT ON COLUMN crefinder.message_errors.to_contact IS 'The recipient.';
COMMENT ON COLUMN crefinder.message_errors.status IS 'queued (waiting after an error), failed or unknown.';
COMMENT ON COLUMN crefinder.message_errors.hold_reason IS 'Why a queued message waits (see outbound_events.hold_reason).';
COMMENT ON COLUMN crefinder.message_errors.next_attempt_at IS 'When a queued message is tried again.';
COMMENT ON COLUMN crefinder.message_errors.attempts IS 'Attempts so far.';
COMMENT ON COLUMN crefinder.message_errors.last_error IS 'The error.';
COMMENT ON COLUMN crefinder.message_errors.updated_at IS 'When the row last changed.';
COMMENT ON FUNCTION crefinder.require_argument(boolean, text) IS
    'Internal: raises 22004 naming an argument that must not be null.';
COMMENT ON FUNCTION crefinder.check_choice(text, text, text[]) IS
    'Internal: raises 22023 listing the allowed values unless value is one of them (22004 when null).';
COMMENT ON FUNCTION crefinder.check_label(text, text) IS
    'Internal: raises 22023 unless a free-text label is 1 to 200 characters without control characters.';
COMMENT ON FUNCTION crefinder.default_tenant_settings() IS
    'Internal: the settings of a tenant that has set none (the column defaults of tenant_settings).';
COMMENT ON FUNCTION crefinder.tenant_functions() IS
    'Internal: the functions grant_access() lets a tenant role execute; every other function is internal or the operator''s.';
COMMENT ON FUNCTION crefinder.revoke_access(regrole) IS
    'Take back from a role everything grant_access() gave it (operator).';
COMMENT ON FUNCTION crefinder.retry(bigint[]) IS
    'Send again, on purpose, the current tenant''s failed messages and messages whose fate is unknown (re-checked for compliance at dispatch like any other); returns how many were re-queued.';

-- Webhooks.
COMMENT ON TABLE crefinder.webhook_events IS
    'Every webhook delivery from a provider, rejected ones included: for idempotency (a verified event id counts once per provider and tenant) and audit.  Tenants read their own; only crefinder writes it.';
COMMENT ON COLUMN crefinder.webhook_events.id IS 'Identifies the delivery; generated.';
COMMENT ON COLUMN crefinder.webhook_events.user_id IS
    'The tenant the signature proved; NULL when none was proved (bad signature, unknown tenant, too large).';
COMMENT ON COLUMN crefinder.webhook_events.provider IS 'vapi, twilio or sendgrid.';
COMMENT ON COLUMN crefinder.webhook_events.event_id IS
    'The key that makes a delivery a duplicate: SendGrid''s sg_event_id; Twilio''s MessageSid and status (inbound:MessageSid for a reply); Vapi''s call id, message type and timestamp.  NULL for rejections and duplicates.';
COMMENT ON COLUMN crefinder.webhook_events.idempotency_token IS
    'Twilio''s I-Twilio-Idempotency-Token, when the route passed it: a token seen before makes the delivery a duplicate.';
COMMENT ON COLUMN crefinder.webhook_events.event_type IS
    'The kind of event: status:<MessageStatus> or inbound (Twilio), the event (SendGrid), the message type (Vapi).';
COMMENT ON COLUMN crefinder.webhook_events.verified IS
    'Whether the signature proved the tenant; false for rejected deliveries.';
COMMENT ON COLUMN crefinder.webhook_events.http_status IS
    'What the route answered: 200, 400 (malformed, unknown tenant, too large) or 401 (bad signature, stale timestamp).';
COMMENT ON COLUMN crefinder.webhook_events.outcome IS
    'applied, duplicate (seen before: nothing changed), unknown_message (no message of the tenant matched; what it says of an address or number still applied), ignored (older than what the message already shows, or a type crefinder does not act on), bad_signature, stale, unknown_tenant, malformed or too_large.';
COMMENT ON COLUMN crefinder.webhook_events.message_id IS
    'The tenant''s message the event is about (outbound_events.id), when one matched.';
COMMENT ON COLUMN crefinder.webhook_events.payload IS
    'For a refused delivery, the body as received: at most 64 kB when a tenant signed it, the first kilobyte otherwise (error then gives its size and SHA-256); NULL for deliveries that were handled.';
COMMENT ON COLUMN crefinder.webhook_events.headers IS
    'For a refused Vapi delivery, its headers (secrets masked); NULL otherwise.';
COMMENT ON COLUMN crefinder.webhook_events.error IS 'Why the delivery was refused; NULL when it was handled.';
COMMENT ON COLUMN crefinder.webhook_events.received_at IS 'When the delivery arrived.';

COMMENT ON TABLE crefinder.inbound_messages IS
    'Texts owners sent to a tenant''s numbers (Twilio inbound webhooks), classified, and attributed to the latest message the tenant sent to that number.';
COMMENT ON COLUMN crefinder.inbound_messages.id IS 'Identifies the reply; generated.';
COMMENT ON COLUMN crefinder.inbound_messages.user_id IS 'The tenant whose number received it.';
COMMENT ON COLUMN crefinder.inbound_messages.channel IS 'sms or whatsapp (email for replies by email).';
COMMENT ON COLUMN crefinder.inbound_messages.provider_message_id IS 'Twilio''s MessageSid (unique per tenant).';
COMMENT ON COLUMN crefinder.inbound_messages.from_contact IS 'The sender, in E.164.';
COMMENT ON COLUMN crefinder.inbound_messages.to_contact IS 'The tenant''s number it was sent to.';
COMMENT ON COLUMN crefinder.inbound_messages.body IS 'The text as received.';
COMMENT ON COLUMN crefinder.inbound_messages.media_urls IS 'The MediaUrl of each attachment (at most 10).';
COMMENT ON COLUMN crefinder.inbound_messages.keyword IS
    'opt_out (STOP and the other opt-out keywords, or Twilio''s OptOutType STOP), opt_in (START, YES, UNSTOP) or help (HELP, INFO); NULL for other texts.';
COMMENT ON COLUMN crefinder.inbound_messages.classification IS
    'classify_reply() of the text (opt_out for an opt-out keyword, question for HELP).';
COMMENT ON COLUMN crefinder.inbound_messages.message_id IS
    'The message it answers: the latest the tenant sent to that number (a text on the same channel first); NULL when none.';
COMMENT ON COLUMN crefinder.inbound_messages.property_id IS 'That message''s property.';
COMMENT ON COLUMN crefinder.inbound_messages.campaign_id IS 'That message''s campaign.';
COMMENT ON COLUMN crefinder.inbound_messages.received_at IS 'When it arrived.';

COMMENT ON TABLE crefinder.responses IS
    'What owners answered: classified replies and call outcomes (from webhooks, or record_response()), with the message, campaign and enrollment they answer, so that sequences can react.';
COMMENT ON COLUMN crefinder.responses.id IS 'Identifies the response; generated.';
COMMENT ON COLUMN crefinder.responses.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.responses.message_id IS 'The message answered; NULL when the reply matched none.';
COMMENT ON COLUMN crefinder.responses.enrollment_id IS 'That message''s campaign enrollment, when it has one.';
COMMENT ON COLUMN crefinder.responses.campaign_id IS 'That message''s campaign.';
COMMENT ON COLUMN crefinder.responses.property_id IS 'That message''s property.';
COMMENT ON COLUMN crefinder.responses.channel IS 'The channel of the answer: sms, whatsapp, email or voice.';
COMMENT ON COLUMN crefinder.responses.kind IS
    'opt_out, not_interested, interested, callback_later, wrong_number, question or unknown (classify_reply''s classes).';
COMMENT ON COLUMN crefinder.responses.detail IS 'The reply''s text, or the call''s summary.';
COMMENT ON COLUMN crefinder.responses.source IS 'reply (a text), call (a call''s outcome) or manual (record_response()).';
COMMENT ON COLUMN crefinder.responses.inbound_message_id IS 'The reply (inbound_messages.id) for a text.';
COMMENT ON COLUMN crefinder.responses.created_at IS 'When the owner answered.';

COMMENT ON TABLE crefinder.call_results IS
    'What the provider reported of each call: Vapi''s AI calls (end, cost, transcript, recording and analysis: crefinder''s analyze_transcript(), with Vapi''s structured analysis over it) and Twilio''s bridge calls and voicemail drops (who answered, the key pressed, the dialled leg, prices).';
COMMENT ON COLUMN crefinder.call_results.id IS 'Identifies the row; generated.';
COMMENT ON COLUMN crefinder.call_results.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.call_results.call_id IS 'Vapi''s call id or Twilio''s CallSid (unique per tenant).';
COMMENT ON COLUMN crefinder.call_results.message_id IS 'The call''s message (outbound_events.id).';
COMMENT ON COLUMN crefinder.call_results.property_id IS 'The property called.';
COMMENT ON COLUMN crefinder.call_results.status IS 'Vapi: in-progress while transcript lines arrive, ended after the end-of-call report; Twilio: the call''s status (initiated ... completed, busy, no-answer, failed).';
COMMENT ON COLUMN crefinder.call_results.ended_reason IS 'Vapi''s endedReason (customer-ended-call, voicemail, ...).';
COMMENT ON COLUMN crefinder.call_results.started_at IS 'When the call started.';
COMMENT ON COLUMN crefinder.call_results.ended_at IS 'When it ended.';
COMMENT ON COLUMN crefinder.call_results.duration_seconds IS 'ended_at - started_at, in seconds (Twilio: CallDuration).';
COMMENT ON COLUMN crefinder.call_results.cost IS 'The cost of the call in dollars: Vapi''s, or the price of the call Twilio placed (-1: priced in another currency); on the message as cost_cents with the dialled leg''s.';
COMMENT ON COLUMN crefinder.call_results.transcript IS
    'The transcript: Vapi''s in the end-of-call report, or the final transcript lines received so far.';
COMMENT ON COLUMN crefinder.call_results.recording_url IS 'The recording (Vapi''s artifact.recordingUrl, Twilio''s RecordingUrl of a recorded bridge).';
COMMENT ON COLUMN crefinder.call_results.stereo_recording_url IS 'The stereo recording (artifact.stereoRecordingUrl).';
COMMENT ON COLUMN crefinder.call_results.summary IS 'Vapi''s summary of the call, else crefinder''s.';
COMMENT ON COLUMN crefinder.call_results.structured_data IS 'Vapi''s analysis.structuredData, as sent.';
COMMENT ON COLUMN crefinder.call_results.success_evaluation IS 'Vapi''s analysis.successEvaluation, as sent.';
COMMENT ON COLUMN crefinder.call_results.analysis IS
    'crefinder''s reading: analyze_transcript() of the transcript, with the fields of Vapi''s structured data of the same names over it.';
COMMENT ON COLUMN crefinder.call_results.created_at IS 'When the first report of the call arrived.';
COMMENT ON COLUMN crefinder.call_results.updated_at IS 'When a report last changed it.';

COMMENT ON COLUMN crefinder.property_records.last_call_at IS 'When the owner was last called (set by the end-of-call report).';
COMMENT ON COLUMN crefinder.property_records.last_call_result IS 'How that call ended (Vapi''s endedReason).';
COMMENT ON COLUMN crefinder.property_records.call_notes IS 'The summary of that call.';
COMMENT ON COLUMN crefinder.outbound_events.click_url IS 'The first link clicked in an email (SendGrid click event).';
COMMENT ON COLUMN crefinder.tenant_settings.business_name IS
    'The name texts and calls identify the sender by (HELP answers, opt-out confirmations); NULL: the sending number.';
COMMENT ON COLUMN crefinder.tenant_settings.help_text IS
    'The answer to HELP or INFO (at most 320 characters); NULL: a default naming the sender and how to opt out.';
COMMENT ON COLUMN crefinder.tenant_settings.opt_out_text IS
    'The one confirmation of an opt-out (at most 320 characters); NULL: a default naming the sender.';

COMMENT ON FUNCTION crefinder.handle_twilio_webhook(text, text, text, text) IS
    'Handle a Twilio webhook: pass the full URL Twilio called, the raw body, the X-Twilio-Signature header and the I-Twilio-Idempotency-Token header (or NULL).  Status callbacks update the message; inbound texts are stored, classified, and STOP/START/HELP (and free-text opt-outs) change opt-out state.  Returns {http_status, content_type, body} (TwiML) for the route to answer.';
COMMENT ON FUNCTION crefinder.handle_sendgrid_events(text, text, text, uuid) IS
    'Handle a batch of SendGrid''s Signed Event Webhook for a tenant: pass the raw body, the X-Twilio-Email-Event-Webhook-Signature and -Timestamp headers, and the tenant (from the route''s URL).  Returns {http_status, content_type, body}.';
COMMENT ON FUNCTION crefinder.handle_vapi_message(text, jsonb) IS
    'Handle a Vapi server message: pass the raw body and the request headers as a JSON object.  Returns {http_status, content_type, body} (the answer Vapi expects for tool-calls and assistant-request).';
COMMENT ON FUNCTION crefinder.record_response(bigint, text, text) IS
    'Record what an owner answered to one of the current tenant''s messages by another way (kind: classify_reply''s classes); sets the message''s responded_at; opt_out also records the opt-out.  Returns the response''s id.';
COMMENT ON FUNCTION crefinder.grant_webhook_access(regrole) IS
    'Give the web route''s role the three webhook handlers and nothing else (no table, no other function).  Run it as the extension''s owner or a superuser.';
COMMENT ON FUNCTION crefinder.webhook_answer(integer, text, text) IS 'Internal: a handler''s answer {http_status, content_type, body}.';
COMMENT ON FUNCTION crefinder.twiml(text) IS 'Internal: TwiML with one <Message> (escaped), or an empty <Response/> for NULL.';
COMMENT ON FUNCTION crefinder.webhook_reject(text, uuid, integer, text, text, text, jsonb) IS
    'Internal: record a refused webhook delivery and answer it.';
COMMENT ON FUNCTION crefinder.purge_webhook_events(interval) IS
    'Delete webhook deliveries received more than older_than ago (at least 1 day; default 30 days); returns how many.  The operator''s retention: run it daily (pg_cron).';
COMMENT ON FUNCTION crefinder.webhook_duplicate(text, uuid, text) IS 'Internal: record a delivery already processed.';
COMMENT ON FUNCTION crefinder.webhook_too_large(bigint) IS 'Internal: whether a payload is over crefinder.webhook_max_bytes.';
COMMENT ON FUNCTION crefinder.webhook_stale(text) IS
    'Internal: whether a unix timestamp (s or ms) is further from now than crefinder.webhook_tolerance.';
COMMENT ON FUNCTION crefinder.try_phone(text) IS 'Internal: a phone number in E.164 (whatsapp: dropped), or NULL when it is none.';
COMMENT ON FUNCTION crefinder.try_timestamp(jsonb) IS 'Internal: an instant from a payload value (ISO-8601, unix s or ms), or NULL.';
COMMENT ON FUNCTION crefinder.text_keyword(text) IS
    'Internal: opt_out, opt_in or help when a whole text is one of Twilio''s keywords, else NULL.';
COMMENT ON FUNCTION crefinder.record_opt_out(uuid, text, text, text) IS
    'Internal: an opt-out for a given tenant (webhooks); true when the contact had none on that channel family.';
COMMENT ON FUNCTION crefinder.record_opt_in(uuid, text[], text, text) IS 'Internal: lift a given tenant''s opt-outs of a contact on some channels (opt_in(), webhooks).';
COMMENT ON FUNCTION crefinder.store_response(uuid, bigint, text, text, text, text, bigint, timestamptz) IS
    'Internal: store a response for a given tenant, set the message''s responded_at and the lead''s status.';
COMMENT ON FUNCTION crefinder.twilio_status_rank(text) IS 'Internal: how far along a Twilio message status is (callbacks never move a message back).';
COMMENT ON FUNCTION crefinder.twilio_error_text(text, text) IS 'Internal: the last_error of an undelivered Twilio message.';
COMMENT ON FUNCTION crefinder.twilio_params(text, text) IS 'Internal: a Twilio request''s parameters (form body, or JSON with bodySHA256).';
COMMENT ON FUNCTION crefinder.twilio_status_callback(uuid[], jsonb, text, text) IS 'Internal: apply a verified Twilio status callback (the message by MessageSid, or by the crefinder_message_id of the signed URL).';
COMMENT ON FUNCTION crefinder.twilio_inbound(uuid, jsonb, text) IS 'Internal: store and act on a verified inbound text.';
COMMENT ON FUNCTION crefinder.twilio_request_verified(uuid, text, text, text, text) IS
    'Internal: whether X-Twilio-Signature was made with the tenant''s (sealed) auth token over the URL and body.';
COMMENT ON FUNCTION crefinder.sendgrid_events(jsonb) IS 'Internal: the events of a SendGrid batch, one row each (timestamp, rank, crefinder''s custom args).';
COMMENT ON FUNCTION crefinder.sendgrid_apply(uuid, jsonb) IS 'Internal: apply a verified batch of SendGrid events, set-based.';
COMMENT ON FUNCTION crefinder.vapi_status_rank(text) IS 'Internal: how far along a Vapi call is.';
COMMENT ON FUNCTION crefinder.vapi_call_outcome(text) IS 'Internal: answered, unanswered or failed, from a Vapi endedReason.';
COMMENT ON FUNCTION crefinder.vapi_headers(jsonb) IS 'Internal: request headers with lower-case names and text values.';
COMMENT ON FUNCTION crefinder.vapi_call_ended(uuid, bigint, text, boolean) IS
    'Internal: a call ended: its outcome on the message, and the tenant''s calls waiting for a line are released.';
COMMENT ON FUNCTION crefinder.vapi_end_of_call(uuid, bigint, text, jsonb) IS 'Internal: apply Vapi''s end-of-call report.';
COMMENT ON FUNCTION crefinder.vapi_process(uuid, bigint, text, jsonb) IS 'Internal: apply one verified Vapi server message.';
COMMENT ON FUNCTION crefinder.vapi_request_verified(uuid, text, text, text, text) IS
    'Internal: whether a Vapi request''s x-signature is the HMAC of "{x-timestamp}.{body}" under the tenant''s (sealed) webhook secret.';
COMMENT ON FUNCTION crefinder.vapi_secret_verified(uuid, text, text) IS
    'Internal: whether X-Vapi-Secret is the tenant''s (sealed) webhook secret.';

-- Campaigns
COMMENT ON COLUMN crefinder.tenant_settings.postal_address IS
    'The tenant''s postal address, which every campaign email carries (CAN-SPAM); an email step is refused without it.';
COMMENT ON COLUMN crefinder.tenant_settings.release_window_minutes IS
    'Campaign messages held by quiet hours are released spread over this many minutes after the window opens, not in one burst (default 60; 0 to 240, shorter than any day''s calling window, so that none is spread past its close).';
COMMENT ON COLUMN crefinder.tenant_settings.max_attempts_per_property IS
    'At most this many messages per enrollment over a whole campaign (nurture included); then the enrollment stops with attempt_cap (default 10).';
COMMENT ON FUNCTION crefinder.render(text, jsonb, boolean, integer) IS
    'Fill a template''s {{name}} and {{name | fallback}} placeholders from vars (a missing, null or blank value takes the fallback, or nothing); with html, values are HTML-escaped; NULL when the result would exceed max_bytes.  Values are never read as templates; nothing else is evaluated.';
COMMENT ON TABLE crefinder.tick_lock IS 'Internal: one row, locked by the tick() that runs (no tenant can lock it).';
COMMENT ON COLUMN crefinder.tick_lock.id IS 'Always 1.';
COMMENT ON FUNCTION crefinder.template_variables(text) IS
    'The variable names a template uses, each once, in order; 22023 for a malformed placeholder.';
COMMENT ON FUNCTION crefinder.sms_segments(text) IS
    'How many SMS segments a text takes: GSM-7 (160, else 153 per segment; extension characters count twice) or UCS-2 (70, else 67 per segment).';
COMMENT ON FUNCTION crefinder.split_owner_name(text) IS
    'An owner''s first and last name from a property record''s owner name ("SMITH JOHN A", "John Smith", "Smith, John", "John & Mary Smith"); NULLs for companies, trusts and estates.';
COMMENT ON FUNCTION crefinder.template_builtin_variables() IS
    'The variables every template may use: owner_name, first_name, last_name, property_address, city, state, zip, mailing_address, business_name.';
COMMENT ON FUNCTION crefinder.property_variables(crefinder.property_records) IS
    'A property''s template variables (all built-in ones but business_name), as a JSON object.';
COMMENT ON FUNCTION crefinder.save_template(text, text, text, text, text) IS
    'Create or replace the current tenant''s template of that name and channel (body; subject and html for email); returns its id.  Sequences copy a template''s text when they are created.';
COMMENT ON TABLE crefinder.property_contacts IS
    'An owner''s contact points (skip tracing gives several phones and emails): a campaign step uses the best active one of its kind that is not opted out or suppressed.';
COMMENT ON COLUMN crefinder.property_contacts.id IS 'Identifies the contact point; generated.';
COMMENT ON COLUMN crefinder.property_contacts.user_id IS
    'The tenant that owns the row; defaults to crefinder.current_user_id().';
COMMENT ON COLUMN crefinder.property_contacts.property_id IS 'The property whose owner it reaches.';
COMMENT ON COLUMN crefinder.property_contacts.kind IS 'phone (texts, WhatsApp and calls) or email.';
COMMENT ON COLUMN crefinder.property_contacts.value IS
    'The number (stored as E.164) or address (stored in lower case); an invalid one is refused (22023).';
COMMENT ON COLUMN crefinder.property_contacts.rank IS
    'Lower is better (default 100); the property''s owner_phone and owner_email are added with rank 0 when it is enrolled.';
COMMENT ON COLUMN crefinder.property_contacts.status IS
    'active (default), wrong (a wrong-number reply) or undeliverable (a permanent delivery failure); only active ones are used.';
COMMENT ON COLUMN crefinder.property_contacts.status_reason IS 'Why the contact point was marked; NULL while active.';
COMMENT ON COLUMN crefinder.property_contacts.marked_at IS 'When it was marked; NULL while active.';
COMMENT ON COLUMN crefinder.property_contacts.created_at IS 'When the row was inserted.';
COMMENT ON COLUMN crefinder.property_contacts.updated_at IS 'When the row was last changed.';
COMMENT ON FUNCTION crefinder.normalize_property_contact() IS
    'Internal: trigger storing a contact point normalized (E.164, lower-case email).';
COMMENT ON FUNCTION crefinder.sync_property_contacts(uuid, bigint[]) IS
    'Internal: make the owner_phone and owner_email of enrolled properties contact points of rank 0.';
COMMENT ON FUNCTION crefinder.sequence_steps(uuid, jsonb, jsonb) IS
    'Internal: check a sequence''s steps as a whole (every problem named in one 22023 error) and return them normalized.';
COMMENT ON FUNCTION crefinder.settings_of(uuid) IS 'Internal: a tenant''s settings, defaults filled in.';
COMMENT ON FUNCTION crefinder.create_sequence(text, jsonb, jsonb) IS
    'Create a sequence from steps [{channel, delay, template | body/subject/html | variants[{name, weight, ...}], holdout, on_positive, on_negative, on_no_response, assistant_id}] and its own variables {name: default}; every problem is named in one 22023 error.  Returns its id.';
COMMENT ON FUNCTION crefinder.enroll(uuid, bigint, bigint[], timestamptz) IS
    'Internal: enroll properties in a campaign (each once), the first step due after its delay.';
COMMENT ON FUNCTION crefinder.create_campaign(text, bigint, bigint[], jsonb, timestamptz) IS
    'Create a campaign running a sequence for properties (each enrolled once), with values for the sequence''s variables, starting at starts_at (default now); returns its id.  tick() takes its steps.';
COMMENT ON FUNCTION crefinder.add_to_campaign(bigint, bigint[]) IS
    'Enroll more properties in a running or paused campaign; those already enrolled stay as they are.  Returns how many were new.';
COMMENT ON FUNCTION crefinder.variant_index(bigint, integer, double precision[], double precision) IS
    'Internal: the A/B variant (1-based; 0 for the holdout) of an enrollment''s step, the same every time.';
COMMENT ON FUNCTION crefinder.scrub_for(uuid, text, text[], bigint[], timestamptz) IS
    'Internal: scrub() for a named tenant, each contact with its property''s context (tick() uses it).';
COMMENT ON FUNCTION crefinder.tick(timestamptz, integer) IS
    'Advance every campaign enrollment whose next step is due at at (default now; at most max_steps), set-based: queue, hold, block or skip each step''s message and schedule the next step.  pg_cron runs it every minute (schedule()); returns how many enrollments advanced, 0 at once when another tick is running.';
COMMENT ON FUNCTION crefinder.stop_enrollments(uuid, bigint[], text) IS
    'Internal: stop enrollments with a reason and cancel their queued messages.';
COMMENT ON FUNCTION crefinder.react_to_response() IS
    'Internal: trigger applying a response to its property''s campaigns (opt-out and negative: stop; positive: on_positive; wrong number: mark the contact point).';
COMMENT ON FUNCTION crefinder.stop_enrollments_on_opt_out() IS
    'Internal: trigger stopping the enrollments of an opted-out contact point''s properties.';
COMMENT ON FUNCTION crefinder.stop_enrollments_on_lead_close() IS
    'Internal: trigger stopping the enrollments of a property whose lead is closed.';
COMMENT ON FUNCTION crefinder.campaign_for_change(bigint) IS
    'Internal: lock the current tenant''s campaign and return its status (22023 when there is none).';
COMMENT ON FUNCTION crefinder.pause_campaign(bigint) IS
    'Pause a campaign: no step is taken and none of its queued messages goes out until resume_campaign(); true when it was running.';
COMMENT ON FUNCTION crefinder.resume_campaign(bigint) IS
    'Resume a paused campaign; steps that fell due meanwhile go with the next tick.  True when it was paused.';
COMMENT ON FUNCTION crefinder.cancel_campaign(bigint) IS
    'End a campaign: every enrollment stops and every queued message is cancelled.  True when it had not ended.';
COMMENT ON FUNCTION crefinder.schedule() IS
    'Register crefinder.tick() with pg_cron, every minute, in this database; returns the job id (55000 with what to run elsewhere when pg_cron is not installed here).';
COMMENT ON FUNCTION crefinder.unschedule() IS
    'Remove the pg_cron job schedule() registered; true when there was one.';
COMMENT ON FUNCTION crefinder.try_normalize_contact(text, text) IS
    'normalize_contact(), but NULL for an invalid contact instead of an error (for bulk paths, where an invalid contact becomes a blocked row).';
COMMENT ON FUNCTION crefinder.send_many(text, jsonb, text, text, text, timestamptz) IS
    'Queue one message per element of rows (JSON objects: the template''s variables, the contact in contact_field, default phone or email, a property id in property_field) from the tenant''s template of that name, compliance decided for all at once; an invalid contact becomes a blocked row (invalid_contact), not an error.  Returns how many messages were stored.';
COMMENT ON FUNCTION crefinder.enqueue_trigger() IS
    'Trigger function queueing a message for inserted or updated rows: arguments channel, template name [, contact column [, property id column]].  FOR EACH STATEMENT (REFERENCING NEW TABLE AS new_rows) is set-based; FOR EACH ROW also works.';
COMMENT ON COLUMN crefinder.tenant_settings.sms_segment_cost_cents IS
    'The price of one SMS segment, in cents, for estimates (preview_campaign); default 0.83.  Reports use the providers'' real prices.';
COMMENT ON COLUMN crefinder.tenant_settings.whatsapp_cost_cents IS
    'The price of one WhatsApp message, in cents, for estimates; default 0.50.';
COMMENT ON COLUMN crefinder.tenant_settings.email_cost_cents IS
    'The cost of one email, in cents (SendGrid reports no price per message); default 0.';
COMMENT ON COLUMN crefinder.tenant_settings.voice_minute_cost_cents IS
    'The price of one minute of an AI call, in cents, for estimates (a call is estimated at 2 minutes); default 10.';
COMMENT ON FUNCTION crefinder.preview_campaign(bigint, timestamptz) IS
    'Per step of a campaign, for the enrollments that have not taken it yet, as if it were taken at at (default now): how many messages would be sent, held (quiet hours, caps), blocked (by reason) or skipped (no contact point, holdout), their SMS segments, and an estimated cost from the tenant''s price settings.';
COMMENT ON FUNCTION crefinder.due_enrollments(timestamptz, integer) IS
    'Internal: lock the enrollments whose next step is due (tick() uses it).';

-- Analytics
COMMENT ON TABLE crefinder.message_rollups IS
    'The outbox''s counts per tenant, campaign, channel, step, variant and day, as of the last fold_rollups(); with rollup_deltas (the view crefinder.rollups) always what rebuild_rollups() computes.';
COMMENT ON TABLE crefinder.rollup_deltas IS
    'What each statement that wrote outbound_events changed in the counts (appended by its trigger), until fold_rollups() moves it into message_rollups. Deltas may be negative.';
COMMENT ON VIEW crefinder.rollups IS
    'message_rollups and rollup_deltas as one: the current counts (sum by key). What the analytics views read.';
COMMENT ON COLUMN crefinder.message_rollups.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.message_rollups.campaign_id IS 'The campaign; NULL for messages sent outside campaigns.';
COMMENT ON COLUMN crefinder.message_rollups.channel IS 'sms, whatsapp, email or voice.';
COMMENT ON COLUMN crefinder.message_rollups.step IS 'The campaign step (NULL outside campaigns).';
COMMENT ON COLUMN crefinder.message_rollups.variant IS 'The A/B variant, holdout, or NULL.';
COMMENT ON COLUMN crefinder.message_rollups.day IS 'The UTC day the messages were sent (created, for those not sent).';
COMMENT ON COLUMN crefinder.message_rollups.messages IS 'Messages, whatever their status.';
COMMENT ON COLUMN crefinder.message_rollups.sent IS 'Messages with sent_at set.';
COMMENT ON COLUMN crefinder.message_rollups.delivered IS 'Messages with delivered_at set (SMS/WhatsApp delivered or read, email delivered, call answered).';
COMMENT ON COLUMN crefinder.message_rollups.opened IS 'Messages with opened_at set (email).';
COMMENT ON COLUMN crefinder.message_rollups.clicked IS 'Messages with clicked_at set (email).';
COMMENT ON COLUMN crefinder.message_rollups.responded IS 'Messages with responded_at set.';
COMMENT ON COLUMN crefinder.message_rollups.failed IS 'Messages whose status is failed.';
COMMENT ON COLUMN crefinder.message_rollups.blocked IS 'Messages whose status is blocked.';
COMMENT ON COLUMN crefinder.message_rollups.skipped IS 'Messages whose status is skipped (campaign steps not sent).';
COMMENT ON COLUMN crefinder.message_rollups.priced IS 'Sent messages whose cost is known.';
COMMENT ON COLUMN crefinder.message_rollups.cost_cents IS 'The known costs, in cents.';
COMMENT ON COLUMN crefinder.rollup_deltas.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.rollup_deltas.campaign_id IS 'The campaign; NULL for messages sent outside campaigns.';
COMMENT ON COLUMN crefinder.rollup_deltas.channel IS 'sms, whatsapp, email or voice.';
COMMENT ON COLUMN crefinder.rollup_deltas.step IS 'The campaign step (NULL outside campaigns).';
COMMENT ON COLUMN crefinder.rollup_deltas.variant IS 'The A/B variant, holdout, or NULL.';
COMMENT ON COLUMN crefinder.rollup_deltas.day IS 'The UTC day the messages were sent (created, for those not sent).';
COMMENT ON COLUMN crefinder.rollup_deltas.messages IS 'The change in: messages, whatever their status.';
COMMENT ON COLUMN crefinder.rollup_deltas.sent IS 'The change in: messages with sent_at set.';
COMMENT ON COLUMN crefinder.rollup_deltas.delivered IS 'The change in: messages with delivered_at set (SMS/WhatsApp delivered or read, email delivered, call answered).';
COMMENT ON COLUMN crefinder.rollup_deltas.opened IS 'The change in: messages with opened_at set (email).';
COMMENT ON COLUMN crefinder.rollup_deltas.clicked IS 'The change in: messages with clicked_at set (email).';
COMMENT ON COLUMN crefinder.rollup_deltas.responded IS 'The change in: messages with responded_at set.';
COMMENT ON COLUMN crefinder.rollup_deltas.failed IS 'The change in: messages whose status is failed.';
COMMENT ON COLUMN crefinder.rollup_deltas.blocked IS 'The change in: messages whose status is blocked.';
COMMENT ON COLUMN crefinder.rollup_deltas.skipped IS 'The change in: messages whose status is skipped (campaign steps not sent).';
COMMENT ON COLUMN crefinder.rollup_deltas.priced IS 'The change in: sent messages whose cost is known.';
COMMENT ON COLUMN crefinder.rollup_deltas.cost_cents IS 'The change in: the known costs, in cents.';
COMMENT ON COLUMN crefinder.rollups.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.rollups.campaign_id IS 'The campaign; NULL for messages sent outside campaigns.';
COMMENT ON COLUMN crefinder.rollups.channel IS 'sms, whatsapp, email or voice.';
COMMENT ON COLUMN crefinder.rollups.step IS 'The campaign step (NULL outside campaigns).';
COMMENT ON COLUMN crefinder.rollups.variant IS 'The A/B variant, holdout, or NULL.';
COMMENT ON COLUMN crefinder.rollups.day IS 'The UTC day the messages were sent (created, for those not sent).';
COMMENT ON COLUMN crefinder.rollups.messages IS 'Messages, whatever their status.';
COMMENT ON COLUMN crefinder.rollups.sent IS 'Messages with sent_at set.';
COMMENT ON COLUMN crefinder.rollups.delivered IS 'Messages with delivered_at set (SMS/WhatsApp delivered or read, email delivered, call answered).';
COMMENT ON COLUMN crefinder.rollups.opened IS 'Messages with opened_at set (email).';
COMMENT ON COLUMN crefinder.rollups.clicked IS 'Messages with clicked_at set (email).';
COMMENT ON COLUMN crefinder.rollups.responded IS 'Messages with responded_at set.';
COMMENT ON COLUMN crefinder.rollups.failed IS 'Messages whose status is failed.';
COMMENT ON COLUMN crefinder.rollups.blocked IS 'Messages whose status is blocked.';
COMMENT ON COLUMN crefinder.rollups.skipped IS 'Messages whose status is skipped (campaign steps not sent).';
COMMENT ON COLUMN crefinder.rollups.priced IS 'Sent messages whose cost is known.';
COMMENT ON COLUMN crefinder.rollups.cost_cents IS 'The known costs, in cents.';
COMMENT ON FUNCTION crefinder.rollup_delta(crefinder.outbound_events, integer) IS
    'Internal: a message''s counts, signed (1: added, -1: removed), for rebuild_rollups(); the same definitions as the trigger''s.';
COMMENT ON FUNCTION crefinder.roll_up() IS
    'Internal: the statement trigger on outbound_events that appends each statement''s changes in the counts to rollup_deltas.';
COMMENT ON FUNCTION crefinder.fold_rollups() IS
    'Moves the committed rollup_deltas into message_rollups, summed by key; tick() runs it every minute. Returns how many deltas it folded.';
COMMENT ON FUNCTION crefinder.rebuild_rollups() IS
    'Recomputes message_rollups from outbound_events and empties rollup_deltas (operator''s; writers wait meanwhile); returns the number of rollup rows. The result equals what was kept incrementally.';
COMMENT ON VIEW crefinder.campaign_performance IS
    'Per campaign and channel: counts of messages (sent, delivered, opened, clicked, responded, failed, blocked), rates in percent (NULL where the denominator is 0), cost in dollars, and how many sent messages have no price yet.';
COMMENT ON COLUMN crefinder.campaign_performance.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.campaign_performance.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.campaign_performance.campaign_name IS 'The campaign''s name.';
COMMENT ON COLUMN crefinder.campaign_performance.channel IS 'sms, whatsapp, email or voice.';
COMMENT ON COLUMN crefinder.campaign_performance.messages IS 'Messages of the campaign on this channel, whatever their status.';
COMMENT ON COLUMN crefinder.campaign_performance.sent IS 'Messages with sent_at set.';
COMMENT ON COLUMN crefinder.campaign_performance.delivered IS 'Messages with delivered_at set.';
COMMENT ON COLUMN crefinder.campaign_performance.opened IS 'Messages with opened_at set (email).';
COMMENT ON COLUMN crefinder.campaign_performance.clicked IS 'Messages with clicked_at set (email).';
COMMENT ON COLUMN crefinder.campaign_performance.responded IS 'Messages with responded_at set.';
COMMENT ON COLUMN crefinder.campaign_performance.failed IS 'Messages whose status is failed.';
COMMENT ON COLUMN crefinder.campaign_performance.blocked IS 'Messages whose status is blocked.';
COMMENT ON COLUMN crefinder.campaign_performance.skipped IS 'Campaign steps not sent (no contact point, holdout).';
COMMENT ON COLUMN crefinder.campaign_performance.delivery_rate IS 'delivered / sent, in percent.';
COMMENT ON COLUMN crefinder.campaign_performance.open_rate IS 'opened / delivered, in percent.';
COMMENT ON COLUMN crefinder.campaign_performance.click_rate IS 'clicked / delivered, in percent.';
COMMENT ON COLUMN crefinder.campaign_performance.response_rate IS 'responded / delivered, in percent.';
COMMENT ON COLUMN crefinder.campaign_performance.total_cost IS 'The known costs, in dollars.';
COMMENT ON COLUMN crefinder.campaign_performance.cost_per_contact IS 'total_cost / sent, in dollars.';
COMMENT ON COLUMN crefinder.campaign_performance.unpriced IS 'Sent messages whose price is not known yet (not in total_cost).';
COMMENT ON VIEW crefinder.channel_effectiveness IS
    'Per channel, messages sent in the last 30 days, best response rate first, with cost, expected revenue and ROI from the tenant''s deal assumptions.';
COMMENT ON COLUMN crefinder.channel_effectiveness.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.channel_effectiveness.channel IS 'sms, whatsapp, email or voice.';
COMMENT ON COLUMN crefinder.channel_effectiveness.sent IS 'Messages sent in the last 30 days.';
COMMENT ON COLUMN crefinder.channel_effectiveness.delivered IS 'Of those, delivered.';
COMMENT ON COLUMN crefinder.channel_effectiveness.opened IS 'Of those, opened (email).';
COMMENT ON COLUMN crefinder.channel_effectiveness.responded IS 'Of those, responded to.';
COMMENT ON COLUMN crefinder.channel_effectiveness.delivery_rate IS 'delivered / sent, in percent.';
COMMENT ON COLUMN crefinder.channel_effectiveness.open_rate IS 'opened / delivered, in percent.';
COMMENT ON COLUMN crefinder.channel_effectiveness.response_rate IS 'responded / delivered, in percent.';
COMMENT ON COLUMN crefinder.channel_effectiveness.cost IS 'The known costs, in dollars.';
COMMENT ON COLUMN crefinder.channel_effectiveness.revenue IS 'responded x average_deal_value x conversion_rate (tenant settings; defaults 50,000 and 0.05), in dollars.';
COMMENT ON COLUMN crefinder.channel_effectiveness.roi IS '(revenue - cost) / cost, in percent; NULL while the cost is 0.';
COMMENT ON COLUMN crefinder.channel_effectiveness.unpriced IS 'Sent messages whose price is not known yet (not in cost).';
COMMENT ON FUNCTION crefinder.proportion_test(bigint, bigint, bigint, bigint) IS
    'The two-proportion z-test of x1 successes in n1 trials against x2 in n2: z and the two-sided p-value; NULL when an arm has no trials or the pooled proportion is 0 or 1.';
COMMENT ON VIEW crefinder.ab_test_results IS
    'Per campaign, step and arm (each A/B variant and the holdout): assigned, sent, responded, response rate, the difference to the first variant with a two-proportion z-test, the lift over the holdout, and the winner (p < 0.05, at least 100 sends per variant).';
COMMENT ON COLUMN crefinder.ab_test_results.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.ab_test_results.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.ab_test_results.step IS 'The step (0 the first; a nurture sequence''s from 1000).';
COMMENT ON COLUMN crefinder.ab_test_results.variant IS 'The variant''s name, or holdout.';
COMMENT ON COLUMN crefinder.ab_test_results.assigned IS 'Enrollments that took this step with this arm.';
COMMENT ON COLUMN crefinder.ab_test_results.sent IS 'Of those, messages sent (the holdout is sent nothing).';
COMMENT ON COLUMN crefinder.ab_test_results.responded IS 'Messages responded to.';
COMMENT ON COLUMN crefinder.ab_test_results.response_rate IS 'responded / sent in percent (the holdout: responded / assigned).';
COMMENT ON COLUMN crefinder.ab_test_results.difference IS 'response_rate less the first variant''s, in percentage points.';
COMMENT ON COLUMN crefinder.ab_test_results.z IS 'The z statistic of this variant against the first (NULL for the first and the holdout).';
COMMENT ON COLUMN crefinder.ab_test_results.p_value IS 'The two-sided p-value of z.';
COMMENT ON COLUMN crefinder.ab_test_results.lift_over_holdout IS 'response_rate less the holdout''s, in percentage points (NULL without a holdout).';
COMMENT ON COLUMN crefinder.ab_test_results.winner IS 'The best variant, once every variant has 100 sends and the difference is significant (p < 0.05).';
COMMENT ON TABLE crefinder.campaign_reach IS
    'Per campaign and property: enrolled (0 or 1), the campaign''s messages sent to it, delivered and responded to, and its interested replies (as of the last fold; reach_deltas hold the rest).';
COMMENT ON TABLE crefinder.contact_reach IS
    'Per campaign and contact point: the campaign''s messages sent to it (as of the last fold).';
COMMENT ON TABLE crefinder.campaign_counts IS
    'Per campaign: how many properties are enrolled, contacted, delivered, responded and interested, and how many contact points were messaged (as of the last fold).';
COMMENT ON TABLE crefinder.reach_deltas IS
    'Changes to campaign_reach and contact_reach (messages sent, enrollments, interested replies) waiting for fold_rollups().';
COMMENT ON FUNCTION crefinder.reach_of_enrollments() IS 'Internal: the statement trigger that records enrollments added or removed as reach deltas.';
COMMENT ON FUNCTION crefinder.reach_of_responses() IS 'Internal: the statement trigger that records interested replies as reach deltas.';
COMMENT ON FUNCTION crefinder.fold_reach() IS
    'Internal: moves the committed reach_deltas into campaign_reach and contact_reach, and what crosses zero into campaign_counts; fold_rollups() runs it.';
COMMENT ON VIEW crefinder.campaign_overview IS
    'Per campaign: properties enrolled, contacted, responded and interested, unique contact points messaged, response rate (properties responded / contacted), cost, cost per property contacted and per interested lead.';
COMMENT ON VIEW crefinder.campaign_funnel IS
    'Per campaign and stage (enrolled, contacted, delivered, responded, interested, nurture): how many properties reached it, and its share of the stage before.';
COMMENT ON COLUMN crefinder.campaign_reach.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.campaign_reach.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.campaign_reach.property_id IS 'The property.';
COMMENT ON COLUMN crefinder.campaign_reach.enrolled IS '1 while the property is enrolled in the campaign, else 0.';
COMMENT ON COLUMN crefinder.campaign_reach.sent IS 'The campaign''s messages sent to it.';
COMMENT ON COLUMN crefinder.campaign_reach.delivered IS 'Of those, delivered.';
COMMENT ON COLUMN crefinder.campaign_reach.responded IS 'Of those, responded to.';
COMMENT ON COLUMN crefinder.campaign_reach.interested IS 'Its interested replies in the campaign.';
COMMENT ON COLUMN crefinder.reach_deltas.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.reach_deltas.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.reach_deltas.property_id IS 'The property.';
COMMENT ON COLUMN crefinder.reach_deltas.enrolled IS 'The change in whether it is enrolled (1 or 0).';
COMMENT ON COLUMN crefinder.reach_deltas.sent IS 'The change in the campaign''s messages sent to it.';
COMMENT ON COLUMN crefinder.reach_deltas.delivered IS 'The change in those delivered.';
COMMENT ON COLUMN crefinder.reach_deltas.responded IS 'The change in those responded to.';
COMMENT ON COLUMN crefinder.reach_deltas.interested IS 'The change in its interested replies.';
COMMENT ON COLUMN crefinder.reach_deltas.contact IS 'The contact point the messages went to; NULL for a change of enrollment or interest.';
COMMENT ON COLUMN crefinder.contact_reach.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.contact_reach.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.contact_reach.contact IS 'The contact point (E.164 phone number or email address).';
COMMENT ON COLUMN crefinder.contact_reach.sent IS 'The campaign''s messages sent to it.';
COMMENT ON COLUMN crefinder.campaign_counts.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.campaign_counts.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.campaign_counts.enrolled IS 'Properties enrolled.';
COMMENT ON COLUMN crefinder.campaign_counts.contacted IS 'Properties sent at least one message.';
COMMENT ON COLUMN crefinder.campaign_counts.delivered IS 'Properties with a message delivered.';
COMMENT ON COLUMN crefinder.campaign_counts.responded IS 'Properties with a message responded to.';
COMMENT ON COLUMN crefinder.campaign_counts.interested IS 'Properties with an interested reply.';
COMMENT ON COLUMN crefinder.campaign_counts.contacts IS 'Distinct contact points sent at least one message.';
COMMENT ON COLUMN crefinder.campaign_overview.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.campaign_overview.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.campaign_overview.campaign_name IS 'The campaign''s name.';
COMMENT ON COLUMN crefinder.campaign_overview.status IS 'The campaign''s status.';
COMMENT ON COLUMN crefinder.campaign_overview.properties_enrolled IS 'Properties enrolled.';
COMMENT ON COLUMN crefinder.campaign_overview.properties_contacted IS 'Properties sent at least one message.';
COMMENT ON COLUMN crefinder.campaign_overview.properties_responded IS 'Properties with a message responded to.';
COMMENT ON COLUMN crefinder.campaign_overview.properties_interested IS 'Properties with an interested reply.';
COMMENT ON COLUMN crefinder.campaign_overview.unique_contacts IS 'Distinct contact points sent at least one message.';
COMMENT ON COLUMN crefinder.campaign_overview.response_rate IS 'properties_responded / properties_contacted, in percent.';
COMMENT ON COLUMN crefinder.campaign_overview.total_cost IS 'The known costs of the campaign''s messages, in dollars.';
COMMENT ON COLUMN crefinder.campaign_overview.cost_per_property IS 'total_cost / properties_contacted, in dollars.';
COMMENT ON COLUMN crefinder.campaign_overview.cost_per_interested IS 'total_cost / properties_interested, in dollars.';
COMMENT ON COLUMN crefinder.campaign_overview.unpriced IS 'Sent messages whose price is not known yet (not in total_cost).';
COMMENT ON COLUMN crefinder.campaign_funnel.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.campaign_funnel.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.campaign_funnel.campaign_name IS 'The campaign''s name.';
COMMENT ON COLUMN crefinder.campaign_funnel.position IS 'The stage''s place in the funnel (1: enrolled ... 6: nurture).';
COMMENT ON COLUMN crefinder.campaign_funnel.stage IS 'enrolled, contacted, delivered, responded, interested or nurture.';
COMMENT ON COLUMN crefinder.campaign_funnel.properties IS 'Properties that reached the stage.';
COMMENT ON COLUMN crefinder.campaign_funnel.share_of_previous IS 'properties / the stage before''s, in percent.';
COMMENT ON VIEW crefinder.campaign_counts_now IS
    'campaign_counts with the reach deltas not folded yet: the distinct counts as of the last commit.';
COMMENT ON COLUMN crefinder.campaign_counts_now.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.campaign_counts_now.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.campaign_counts_now.enrolled IS 'Properties enrolled.';
COMMENT ON COLUMN crefinder.campaign_counts_now.contacted IS 'Properties sent at least one message.';
COMMENT ON COLUMN crefinder.campaign_counts_now.delivered IS 'Properties with a message delivered.';
COMMENT ON COLUMN crefinder.campaign_counts_now.responded IS 'Properties with a message responded to.';
COMMENT ON COLUMN crefinder.campaign_counts_now.interested IS 'Properties with an interested reply.';
COMMENT ON COLUMN crefinder.campaign_counts_now.contacts IS 'Distinct contact points sent at least one message.';
COMMENT ON TABLE crefinder.contact_time_rollups IS
    'Per tenant, channel and hour of the week in the recipient''s local time: messages sent and of those responded to (as of the last fold; contact_time_deltas hold the rest).';
COMMENT ON TABLE crefinder.contact_time_deltas IS
    'Changes to contact_time_rollups appended by the outbox''s trigger, waiting for fold_rollups().';
COMMENT ON FUNCTION crefinder.recipient_zone(text, text, text) IS
    'The time zone of a message''s recipient as the analytics take it: a phone number''s area code''s (the first, when it spans several), an email''s property ZIP code''s; NULL when not known.';
COMMENT ON VIEW crefinder.contact_time_performance IS
    'Per channel, day of the week and hour in the recipient''s local time: messages sent, responded to, and the response rate; when owners answer.';
COMMENT ON COLUMN crefinder.contact_time_rollups.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.contact_time_rollups.channel IS 'sms, whatsapp, email or voice.';
COMMENT ON COLUMN crefinder.contact_time_rollups.dow IS 'Day of the week in the recipient''s local time (0: Sunday).';
COMMENT ON COLUMN crefinder.contact_time_rollups.hour IS 'Hour of the day in the recipient''s local time (0 to 23).';
COMMENT ON COLUMN crefinder.contact_time_rollups.sent IS 'Messages sent then.';
COMMENT ON COLUMN crefinder.contact_time_rollups.responded IS 'Of those, responded to.';
COMMENT ON COLUMN crefinder.contact_time_deltas.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.contact_time_deltas.channel IS 'sms, whatsapp, email or voice.';
COMMENT ON COLUMN crefinder.contact_time_deltas.dow IS 'Day of the week in the recipient''s local time (0: Sunday).';
COMMENT ON COLUMN crefinder.contact_time_deltas.hour IS 'Hour of the day in the recipient''s local time (0 to 23).';
COMMENT ON COLUMN crefinder.contact_time_deltas.sent IS 'The change in messages sent.';
COMMENT ON COLUMN crefinder.contact_time_deltas.responded IS 'The change in those responded to.';
COMMENT ON COLUMN crefinder.contact_time_performance.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.contact_time_performance.channel IS 'sms, whatsapp, email or voice.';
COMMENT ON COLUMN crefinder.contact_time_performance.dow IS 'Day of the week in the recipient''s local time (0: Sunday).';
COMMENT ON COLUMN crefinder.contact_time_performance.hour IS 'Hour of the day in the recipient''s local time (0 to 23).';
COMMENT ON COLUMN crefinder.contact_time_performance.sent IS 'Messages sent then.';
COMMENT ON COLUMN crefinder.contact_time_performance.responded IS 'Of those, responded to.';
COMMENT ON COLUMN crefinder.contact_time_performance.response_rate IS 'responded / sent, in percent.';
COMMENT ON FUNCTION crefinder.provider_of(text) IS 'The provider that carries a channel: twilio (sms, whatsapp), sendgrid (email), vapi (voice).';
COMMENT ON FUNCTION crefinder.error_code(text) IS 'The provider''s error code in a message''s last_error (a five-digit code, else the HTTP status), or other.';
COMMENT ON VIEW crefinder.health IS
    'Per tenant and provider: queue depth, due now, oldest due, in sending (stuck over 5 minutes), unknown, failures of the last hour by error code, the reconciliation backlog (lookups due at the provider), webhook rejections of the last hour.';
COMMENT ON COLUMN crefinder.health.user_id IS 'The tenant (NULL: webhook deliveries no tenant was proven for; the operator sees them).';
COMMENT ON COLUMN crefinder.health.provider IS 'twilio, sendgrid or vapi.';
COMMENT ON COLUMN crefinder.health.queued IS 'Messages queued.';
COMMENT ON COLUMN crefinder.health.due IS 'Of those, due now (held ones wait for later).';
COMMENT ON COLUMN crefinder.health.oldest_due_age IS 'How long the oldest due message has waited.';
COMMENT ON COLUMN crefinder.health.sending IS 'Messages handed to the dispatcher, their outcome not recorded yet.';
COMMENT ON COLUMN crefinder.health.stuck_sending IS 'Of those, in sending for more than 5 minutes.';
COMMENT ON COLUMN crefinder.health.unknown IS 'Messages whose request was in flight when the dispatcher stopped (never re-sent by itself).';
COMMENT ON COLUMN crefinder.health.failed_last_hour IS 'Messages that failed in the last hour.';
COMMENT ON COLUMN crefinder.health.errors_last_hour IS 'Those failures by provider error code (five digits, else the HTTP status).';
COMMENT ON COLUMN crefinder.health.reconciliation_backlog IS 'Lookups due at the provider: texts and calls past their reconciliation time with no final status, final texts without their price.';
COMMENT ON COLUMN crefinder.health.webhook_rejections_last_hour IS 'Webhook deliveries rejected in the last hour (signature, age, format, tenant).';
COMMENT ON TABLE crefinder.channel_pauses IS
    'A campaign''s channel paused by a guardrail until resume_campaign(): its steps wait (the enrollments paused) and its queued messages are held.';
COMMENT ON COLUMN crefinder.channel_pauses.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.channel_pauses.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.channel_pauses.channel IS 'The channel paused.';
COMMENT ON COLUMN crefinder.channel_pauses.alert_id IS 'The alert that paused it (crefinder.alerts.id).';
COMMENT ON COLUMN crefinder.channel_pauses.paused_at IS 'When it was paused.';
COMMENT ON TABLE crefinder.alerts IS
    'Guardrails that tripped: a campaign''s channel past the tenant''s opt-out, spam-complaint or carrier-filtering threshold (also sent to LISTEN crefinder_alerts as JSON).';
COMMENT ON COLUMN crefinder.alerts.id IS 'Identifies the alert; generated.';
COMMENT ON COLUMN crefinder.alerts.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.alerts.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.alerts.channel IS 'The channel paused.';
COMMENT ON COLUMN crefinder.alerts.kind IS 'opt_out_rate, complaint_rate or filtered_rate.';
COMMENT ON COLUMN crefinder.alerts.rate IS 'The rate, in percent, when it tripped.';
COMMENT ON COLUMN crefinder.alerts.threshold IS 'The tenant''s threshold, in percent.';
COMMENT ON COLUMN crefinder.alerts.sends IS 'Messages sent on the channel by the campaign then.';
COMMENT ON COLUMN crefinder.alerts.detail IS 'The counts behind the rate (sent, delivered, opted_out, complained, filtered).';
COMMENT ON COLUMN crefinder.alerts.created_at IS 'When it tripped.';
COMMENT ON FUNCTION crefinder.check_guardrails(bigint[]) IS
    'Internal: pauses the channels of the campaigns given that are past a guardrail, with an alert and NOTIFY crefinder_alerts; fold_rollups() runs it for the campaigns whose counts changed.';
COMMENT ON VIEW crefinder.campaign_guardrails IS
    'Per campaign and channel: the rates the guardrails watch (opt-outs and spam complaints per delivered message, carrier filtering per sent message), whether each is past the tenant''s threshold, and whether the channel is paused.';
COMMENT ON COLUMN crefinder.campaign_guardrails.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.campaign_guardrails.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.campaign_guardrails.channel IS 'sms, whatsapp, email or voice.';
COMMENT ON COLUMN crefinder.campaign_guardrails.sent IS 'Messages sent.';
COMMENT ON COLUMN crefinder.campaign_guardrails.delivered IS 'Messages delivered.';
COMMENT ON COLUMN crefinder.campaign_guardrails.opted_out IS 'Messages the recipient opted out in answer to.';
COMMENT ON COLUMN crefinder.campaign_guardrails.complained IS 'Messages reported as spam.';
COMMENT ON COLUMN crefinder.campaign_guardrails.filtered IS 'Messages filtered by the carrier (Twilio 30007, 30034).';
COMMENT ON COLUMN crefinder.campaign_guardrails.delivery_rate IS 'delivered / sent, in percent.';
COMMENT ON COLUMN crefinder.campaign_guardrails.opt_out_rate IS 'opted_out / delivered, in percent.';
COMMENT ON COLUMN crefinder.campaign_guardrails.complaint_rate IS 'complained / delivered, in percent.';
COMMENT ON COLUMN crefinder.campaign_guardrails.filtered_rate IS 'filtered / sent, in percent.';
COMMENT ON COLUMN crefinder.campaign_guardrails.opt_out_tripped IS 'opt_out_rate is at or past guardrail_opt_out_percent, over at least guardrail_min_sends sends.';
COMMENT ON COLUMN crefinder.campaign_guardrails.complaint_tripped IS 'complaint_rate is at or past guardrail_complaint_percent, over at least guardrail_min_sends sends.';
COMMENT ON COLUMN crefinder.campaign_guardrails.filtered_tripped IS 'filtered_rate is at or past guardrail_filtered_percent, over at least guardrail_min_sends sends.';
COMMENT ON COLUMN crefinder.campaign_guardrails.paused_at IS 'When a guardrail paused the channel; NULL while it runs.';
COMMENT ON COLUMN crefinder.message_rollups.opted_out IS 'Messages the recipient opted out in answer to.';
COMMENT ON COLUMN crefinder.message_rollups.complained IS 'Messages reported as spam.';
COMMENT ON COLUMN crefinder.message_rollups.filtered IS 'Messages that failed, filtered by the carrier (Twilio 30007, 30034).';
COMMENT ON COLUMN crefinder.rollup_deltas.opted_out IS 'The change in: messages the recipient opted out in answer to.';
COMMENT ON COLUMN crefinder.rollup_deltas.complained IS 'The change in: messages reported as spam.';
COMMENT ON COLUMN crefinder.rollup_deltas.filtered IS 'The change in: messages that failed, filtered by the carrier (Twilio 30007, 30034).';
COMMENT ON COLUMN crefinder.rollups.opted_out IS 'Messages the recipient opted out in answer to.';
COMMENT ON COLUMN crefinder.rollups.complained IS 'Messages reported as spam.';
COMMENT ON COLUMN crefinder.rollups.filtered IS 'Messages that failed, filtered by the carrier (Twilio 30007, 30034).';
COMMENT ON COLUMN crefinder.outbound_events.opted_out_at IS 'When the recipient opted out in answer to this message (a STOP reply, an unsubscribe, an opt-out on the call).';
COMMENT ON COLUMN crefinder.outbound_events.complained_at IS 'When the recipient reported this email as spam.';
COMMENT ON COLUMN crefinder.tenant_settings.guardrail_opt_out_percent IS 'A campaign''s channel pauses itself when opt-outs reach this share of its delivered messages (percent; default 3).';
COMMENT ON COLUMN crefinder.tenant_settings.guardrail_complaint_percent IS '... when spam complaints reach this share of its delivered messages (percent; default 0.3).';
COMMENT ON COLUMN crefinder.tenant_settings.guardrail_filtered_percent IS '... when carrier filtering (Twilio 30007, 30034) reaches this share of its sent messages (percent; default 2).';
COMMENT ON COLUMN crefinder.tenant_settings.guardrail_min_sends IS 'The guardrails judge a campaign''s channel only after this many sends (default 200).';
COMMENT ON TABLE crefinder.guardrail_baselines IS 'A channel''s counts when the tenant resumed it after a guardrail: the guardrails judge what came after.';
COMMENT ON COLUMN crefinder.campaign_guardrails.resumed_at IS 'When the tenant last resumed the channel after a guardrail (the tripped columns count from then).';
COMMENT ON COLUMN crefinder.guardrail_baselines.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.guardrail_baselines.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.guardrail_baselines.channel IS 'The channel.';
COMMENT ON COLUMN crefinder.guardrail_baselines.sent IS 'Messages sent, then.';
COMMENT ON COLUMN crefinder.guardrail_baselines.delivered IS 'Messages delivered, then.';
COMMENT ON COLUMN crefinder.guardrail_baselines.opted_out IS 'Opt-outs, then.';
COMMENT ON COLUMN crefinder.guardrail_baselines.complained IS 'Spam complaints, then.';
COMMENT ON COLUMN crefinder.guardrail_baselines.filtered IS 'Carrier-filtered messages, then.';
COMMENT ON COLUMN crefinder.guardrail_baselines.set_at IS 'When the channel was resumed.';
COMMENT ON TABLE crefinder.pruned_rollups IS 'What pruned messages counted, in the shape of message_rollups (rebuild_rollups() adds it to what it finds in the outbox).';
COMMENT ON TABLE crefinder.pruned_reach IS 'What pruned campaign messages counted per property and contact point (for rebuild_rollups()).';
COMMENT ON COLUMN crefinder.pruned_reach.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.pruned_reach.campaign_id IS 'The campaign.';
COMMENT ON COLUMN crefinder.pruned_reach.property_id IS 'The property.';
COMMENT ON COLUMN crefinder.pruned_reach.contact IS 'The contact point.';
COMMENT ON COLUMN crefinder.pruned_reach.sent IS 'Pruned messages sent to it.';
COMMENT ON COLUMN crefinder.pruned_reach.delivered IS 'Of those, delivered.';
COMMENT ON COLUMN crefinder.pruned_reach.responded IS 'Of those, responded to.';
COMMENT ON TABLE crefinder.pruned_contact_time IS 'What pruned messages counted per channel and hour of the week (for rebuild_rollups()).';
COMMENT ON TABLE crefinder.maintenance IS 'Internal: when tick() last pruned history.';
COMMENT ON COLUMN crefinder.maintenance.id IS 'Always 1 (one row).';
COMMENT ON COLUMN crefinder.maintenance.last_pruned_at IS 'When prune_history() last ran.';
COMMENT ON FUNCTION crefinder.prune_history(integer) IS
    'Deletes up to batch finished messages older than crefinder.history_retention days (their counts stay in the rollups and go into the pruned_* archives) and up to batch webhook deliveries older than crefinder.webhook_retention days; tick() runs it once an hour. Returns what it deleted.';
COMMENT ON COLUMN crefinder.pruned_rollups.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.pruned_rollups.campaign_id IS 'The campaign; NULL for messages outside campaigns.';
COMMENT ON COLUMN crefinder.pruned_rollups.channel IS 'sms, whatsapp, email or voice.';
COMMENT ON COLUMN crefinder.pruned_rollups.step IS 'The campaign step.';
COMMENT ON COLUMN crefinder.pruned_rollups.variant IS 'The A/B variant.';
COMMENT ON COLUMN crefinder.pruned_rollups.day IS 'The UTC day the messages were sent (created, if never sent).';
COMMENT ON COLUMN crefinder.pruned_rollups.messages IS 'Pruned messages.';
COMMENT ON COLUMN crefinder.pruned_rollups.sent IS 'Of those, sent.';
COMMENT ON COLUMN crefinder.pruned_rollups.delivered IS 'Of those, delivered.';
COMMENT ON COLUMN crefinder.pruned_rollups.opened IS 'Of those, opened.';
COMMENT ON COLUMN crefinder.pruned_rollups.clicked IS 'Of those, clicked.';
COMMENT ON COLUMN crefinder.pruned_rollups.responded IS 'Of those, responded to.';
COMMENT ON COLUMN crefinder.pruned_rollups.failed IS 'Of those, failed.';
COMMENT ON COLUMN crefinder.pruned_rollups.blocked IS 'Of those, blocked.';
COMMENT ON COLUMN crefinder.pruned_rollups.skipped IS 'Of those, skipped.';
COMMENT ON COLUMN crefinder.pruned_rollups.priced IS 'Of those sent, priced.';
COMMENT ON COLUMN crefinder.pruned_rollups.opted_out IS 'Of those, opted out in answer.';
COMMENT ON COLUMN crefinder.pruned_rollups.complained IS 'Of those, reported as spam.';
COMMENT ON COLUMN crefinder.pruned_rollups.filtered IS 'Of those, filtered by the carrier.';
COMMENT ON COLUMN crefinder.pruned_rollups.cost_cents IS 'Their known costs, in cents.';
COMMENT ON COLUMN crefinder.pruned_contact_time.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.pruned_contact_time.channel IS 'sms, whatsapp, email or voice.';
COMMENT ON COLUMN crefinder.pruned_contact_time.dow IS 'Day of the week in the recipient''s local time (0: Sunday).';
COMMENT ON COLUMN crefinder.pruned_contact_time.hour IS 'Hour in the recipient''s local time.';
COMMENT ON COLUMN crefinder.pruned_contact_time.sent IS 'Pruned messages sent then.';
COMMENT ON COLUMN crefinder.pruned_contact_time.responded IS 'Of those, responded to.';

-- Lookups
COMMENT ON FUNCTION crefinder.twilio_set_status(bigint, text, text, text, text) IS
    'A Twilio message status for a message, from a status callback or a lookup: applied when further along; a final status without a price schedules the price lookup.';
COMMENT ON FUNCTION crefinder.twilio_fetched(bigint, jsonb) IS
    'The dispatcher''s lookup of a Twilio Message resource: status, price (USD), segments, sender; settled or pending.';
COMMENT ON FUNCTION crefinder.vapi_set_status(uuid, bigint, text) IS
    'A Vapi call status short of ended, from a status-update message or a lookup: applied when further along.';
COMMENT ON FUNCTION crefinder.vapi_fetched(bigint, jsonb) IS
    'The dispatcher''s lookup of a Vapi call: an ended call is read as its end-of-call report unless that came.';
COMMENT ON COLUMN crefinder.outbound_events.sender IS 'The number the message went from (Twilio''s From; Vapi''s phone number id).';
COMMENT ON COLUMN crefinder.outbound_events.segments IS 'Twilio''s num_segments for the text, once looked up.';
COMMENT ON COLUMN crefinder.outbound_events.lookup_at IS 'When the dispatcher asks the provider about the message (its price, or a final status that never came); NULL: nothing to ask.';
COMMENT ON COLUMN crefinder.outbound_events.lookups IS 'Lookups made for the message so far (at most 10 per stage).';

-- Guardrails per sending number
COMMENT ON TABLE crefinder.sender_pauses IS
    'Sending numbers a guardrail paused, until resume_sender(): the tenant''s queued messages on the channel wait (hold_reason sender_paused).';
COMMENT ON TABLE crefinder.sender_baselines IS
    'A number''s counts of the UTC day it was resumed, at that moment: the guardrails judge what came after.';
COMMENT ON COLUMN crefinder.alerts.sender IS 'The sending number the alert is about (NULL: a campaign''s channel).';
COMMENT ON VIEW crefinder.sender_guardrails IS
    'Per tenant, channel and sending number over the last 7 UTC days: delivery, opt-out, complaint and carrier-filtering rates, whether each is past the tenant''s threshold (from a resume on), and the pause.';
COMMENT ON FUNCTION crefinder.check_sender_guardrails(uuid[]) IS
    'Pauses each number of the given tenants past a guardrail threshold: an alert row, NOTIFY crefinder_alerts, its channel''s queued messages held.';
COMMENT ON FUNCTION crefinder.hold_for_paused_senders(uuid, text) IS
    'Holds the queued messages of tenants and channels whose sending number a guardrail paused (the dispatcher runs it before each claim).';
COMMENT ON FUNCTION crefinder.resume_sender(text, text) IS
    'The current tenant''s number a guardrail paused goes on, judged from now on; held messages go out spread over the release window.';
COMMENT ON COLUMN crefinder.message_rollups.sender IS 'The number the messages went from (NULL: not known, or email).';
COMMENT ON COLUMN crefinder.rollup_deltas.sender IS 'The number the messages went from (NULL: not known, or email).';
COMMENT ON COLUMN crefinder.pruned_rollups.sender IS 'The number the pruned messages went from.';
COMMENT ON COLUMN crefinder.rollups.sender IS 'The number the messages went from (NULL: not known, or email).';
COMMENT ON COLUMN crefinder.sender_pauses.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.sender_pauses.channel IS 'The channel the number sends on.';
COMMENT ON COLUMN crefinder.sender_pauses.sender IS 'The paused number (as the provider names it).';
COMMENT ON COLUMN crefinder.sender_pauses.alert_id IS 'The alert that paused it.';
COMMENT ON COLUMN crefinder.sender_pauses.paused_at IS 'When it was paused.';
COMMENT ON COLUMN crefinder.sender_baselines.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.sender_baselines.channel IS 'The channel the number sends on.';
COMMENT ON COLUMN crefinder.sender_baselines.sender IS 'The number.';
COMMENT ON COLUMN crefinder.sender_baselines.day IS 'The UTC day it was resumed.';
COMMENT ON COLUMN crefinder.sender_baselines.sent IS 'Messages sent from it that day, when it was resumed.';
COMMENT ON COLUMN crefinder.sender_baselines.delivered IS 'Of them, delivered.';
COMMENT ON COLUMN crefinder.sender_baselines.opted_out IS 'Of them, answered with an opt-out.';
COMMENT ON COLUMN crefinder.sender_baselines.complained IS 'Of them, reported as spam.';
COMMENT ON COLUMN crefinder.sender_baselines.filtered IS 'Of them, filtered by the carrier.';
COMMENT ON COLUMN crefinder.sender_baselines.set_at IS 'When it was resumed.';
COMMENT ON COLUMN crefinder.sender_guardrails.user_id IS 'The tenant.';
COMMENT ON COLUMN crefinder.sender_guardrails.channel IS 'The channel the number sends on.';
COMMENT ON COLUMN crefinder.sender_guardrails.sender IS 'The number (Twilio''s From; Vapi''s phone number id).';
COMMENT ON COLUMN crefinder.sender_guardrails.sent IS 'Messages sent from it in the last 7 UTC days.';
COMMENT ON COLUMN crefinder.sender_guardrails.delivered IS 'Of them, delivered.';
COMMENT ON COLUMN crefinder.sender_guardrails.opted_out IS 'Of them, answered with an opt-out.';
COMMENT ON COLUMN crefinder.sender_guardrails.complained IS 'Of them, reported as spam.';
COMMENT ON COLUMN crefinder.sender_guardrails.filtered IS 'Of them, filtered by the carrier (Twilio 30007, 30034).';
COMMENT ON COLUMN crefinder.sender_guardrails.delivery_rate IS 'delivered / sent, percent.';
COMMENT ON COLUMN crefinder.sender_guardrails.opt_out_rate IS 'opted_out / delivered, percent.';
COMMENT ON COLUMN crefinder.sender_guardrails.complaint_rate IS 'complained / delivered, percent.';
COMMENT ON COLUMN crefinder.sender_guardrails.filtered_rate IS 'filtered / sent, percent.';
COMMENT ON COLUMN crefinder.sender_guardrails.opt_out_tripped IS 'The opt-out rate since the last resume is past the tenant''s threshold, over enough sends.';
COMMENT ON COLUMN crefinder.sender_guardrails.complaint_tripped IS 'The complaint rate since the last resume is past the tenant''s threshold, over enough sends.';
COMMENT ON COLUMN crefinder.sender_guardrails.filtered_tripped IS 'The filtering rate since the last resume is past the tenant''s threshold, over enough sends.';
COMMENT ON COLUMN crefinder.sender_guardrails.paused_at IS 'When a guardrail paused the number (NULL: not paused).';
COMMENT ON COLUMN crefinder.sender_guardrails.resumed_at IS 'When the tenant last resumed it.';
COMMENT ON FUNCTION crefinder.release_unpaused_senders() IS
    'Releases, spread over the release window, messages held for a number whose pause is gone (tick() runs it every minute).';

-- Twilio voice
COMMENT ON TABLE crefinder.recording_consent_states IS
    'States where every party to a call must consent to its recording: a recorded bridge call announces the recording to an owner there (or whose state is unknown).  Shipped rows are read-only; operators add rows with source ''operator''.';
COMMENT ON COLUMN crefinder.recording_consent_states.region IS 'The state (two capital letters).';
COMMENT ON COLUMN crefinder.recording_consent_states.source IS '''default'' (shipped with crefinder, read-only) or ''operator'' (added).';
COMMENT ON COLUMN crefinder.recording_consent_states.note IS 'The statute, for the reader.';
COMMENT ON COLUMN crefinder.call_results.answered_by IS 'Twilio calls: AnsweredBy of answering-machine detection (human, machine_end_beep, fax, unknown, ...).';
COMMENT ON COLUMN crefinder.call_results.keypress IS 'Twilio calls: the last key the owner pressed in a voicemail drop''s menu.';
COMMENT ON COLUMN crefinder.call_results.dial_call_sid IS 'Twilio calls: the sid of the leg a <Dial> connected (the owner of a bridge, the agent after a 1).';
COMMENT ON COLUMN crefinder.call_results.dial_status IS 'Twilio calls: DialCallStatus of that leg (completed, busy, no-answer, failed, canceled).';
COMMENT ON COLUMN crefinder.call_results.bridged_seconds IS 'Twilio calls: how long the dialled parties talked (DialCallDuration).';
COMMENT ON COLUMN crefinder.call_results.dial_cost IS 'Twilio calls: the dialled leg''s price in USD, from a lookup (-1: priced in another currency).';
COMMENT ON COLUMN crefinder.tenant_settings.call_window_start IS 'Bridge calls (channel call): the earliest local time of the owner at which one may ring.';
COMMENT ON COLUMN crefinder.tenant_settings.call_window_end IS 'Bridge calls: the end of the owner''s window.';
COMMENT ON COLUMN crefinder.tenant_settings.voicemail_window_start IS 'Voicemail drops: the earliest local time of the owner at which one may ring.';
COMMENT ON COLUMN crefinder.tenant_settings.voicemail_window_end IS 'Voicemail drops: the end of the owner''s window.';
COMMENT ON COLUMN crefinder.tenant_settings.callback_number IS 'The number owners call back (E.164), said in every voicemail drop; drop_voicemail() needs it.';
COMMENT ON COLUMN crefinder.tenant_settings.agent_number IS 'The agent a bridge call rings first and a press of 1 reaches (E.164).';
COMMENT ON COLUMN crefinder.tenant_settings.agent_timezone IS 'The agent''s time zone: when set, bridge calls go out only inside the agent''s working window (agent_days, agent_window_start to agent_window_end there).';
COMMENT ON COLUMN crefinder.tenant_settings.agent_window_start IS 'The start of the agent''s working day, in agent_timezone.';
COMMENT ON COLUMN crefinder.tenant_settings.agent_window_end IS 'The end of the agent''s working day, in agent_timezone.';
COMMENT ON COLUMN crefinder.tenant_settings.agent_days IS 'The agent''s working days (sun ... sat).';
COMMENT ON COLUMN crefinder.tenant_settings.recording_notice IS 'What a recorded bridge call says to the owner before connecting, where the owner''s state needs every party''s consent.';
COMMENT ON COLUMN crefinder.tenant_settings.bridge_response_seconds IS 'A bridged conversation at least this long counts as the owner''s response.';
COMMENT ON COLUMN crefinder.tenant_settings.call_minute_cost_cents IS 'Twilio calls: the estimated cost of a minute of one leg, in cents (campaign previews; real prices come from Twilio).';
COMMENT ON FUNCTION crefinder.bridge_call(text, text, bigint, bigint, boolean) IS
    'Queue an agent-bridged call: Twilio rings agent_number (default: the tenant''s agent_number) from the tenant''s number, and on a 1 dials the owner with the tenant''s number as caller id.  Compliance is decided for the owner; record records the call (announced where the owner''s state needs every party''s consent).  Returns the message id.';
COMMENT ON FUNCTION crefinder.drop_voicemail(text, text, text, bigint, bigint) IS
    'Queue a voicemail drop (audio_url or say_text): left after the beep on a machine; a person hears it inside a keypad menu (1: the agent, 9: opt out of every phone channel).  Needs a recorded voicemail consent for the number (else stored blocked no_consent) and the tenant''s business_name and callback_number (55000).  Returns the message id.';
COMMENT ON FUNCTION crefinder.handle_twilio_voice_webhook(text, text, text, text) IS
    'The tenant''s Twilio voiceWebhookUrl: verifies X-Twilio-Signature, answers Twilio''s voice requests with the TwiML of the call''s flow and applies call status callbacks; returns {http_status, content_type, body}.';
COMMENT ON FUNCTION crefinder.call_settings(uuid, text[]) IS 'Internal: the tenant''s settings, 55000 when one a Twilio call needs is missing.';
COMMENT ON FUNCTION crefinder.check_voicemail_content(text, text) IS 'Internal: exactly one of an https audio URL and a text to say (22023).';
COMMENT ON FUNCTION crefinder.recording_announced(uuid, text, bigint) IS 'Internal: whether a recorded call to the number must announce it (the owner''s state needs every party''s consent, or is unknown).';
COMMENT ON FUNCTION crefinder.spoken_number(text) IS 'Internal: a phone number as a <Say> should read it, digit by digit in groups.';
COMMENT ON FUNCTION crefinder.twilio_call_fetched(bigint, jsonb) IS 'Internal: apply a Twilio Call resource fetched by a lookup (status, the price of each leg).';
COMMENT ON FUNCTION crefinder.twilio_call_rank(text) IS 'Internal: how far along a Twilio call status is (callbacks never move a call back).';
COMMENT ON FUNCTION crefinder.twilio_call_set_status(bigint, text, text, text, integer) IS 'Internal: apply a Twilio call status to its message, never moving it back.';
COMMENT ON FUNCTION crefinder.twilio_signers(text, text, text, text) IS 'Internal: the tenants whose auth token verifies a Twilio request, and its parameters; or the answer rejecting it.';
COMMENT ON FUNCTION crefinder.twilio_voice(uuid[], jsonb, text, text) IS 'Internal: one verified Twilio voice request (a step of a call, a status callback, an inbound call).';
COMMENT ON FUNCTION crefinder.twilio_voice_inbound(uuid[], jsonb, text, text, boolean) IS 'Internal: a call to a tenant''s number: the keypad menu (1: the agent, 9: opt out with each of the tenants).';
COMMENT ON FUNCTION crefinder.twilio_voice_step(uuid, record, text, jsonb, text) IS 'Internal: the TwiML of one step of a bridge call or voicemail drop.';
COMMENT ON FUNCTION crefinder.twiml_answer(text) IS 'Internal: a TwiML document of verbs as a handler''s answer.';
COMMENT ON FUNCTION crefinder.twiml_say(text) IS 'Internal: one escaped <Say>.';
COMMENT ON FUNCTION crefinder.voice_dial(text, text, text, boolean, text) IS 'Internal: a <Dial> of one number from the tenant''s number, reporting its end to the dial step.';
COMMENT ON FUNCTION crefinder.voice_menu(text, text, text, text, text) IS 'Internal: the keypad menu of a voicemail drop or an inbound call, announced at the outset.';
COMMENT ON FUNCTION crefinder.voice_response(uuid, record, text, text, text) IS 'Internal: store a keypress or conversation as a response, once per message and kind.';
COMMENT ON FUNCTION crefinder.voice_step_url(text, text) IS 'Internal: the URL of another step of the call''s flow (the signed URL with its crefinder_step replaced).';
COMMENT ON FUNCTION crefinder.xml_text(text) IS 'Internal: text escaped for XML, without the characters XML 1.0 forbids.';
COMMENT ON FUNCTION crefinder.agent_problem(uuid, text) IS 'Internal: why a number cannot be a tenant''s agent (an owner''s phone, an opt-out), or NULL.';
