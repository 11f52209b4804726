-- Sending: queue a message in the outbox (crefinder.outbound_events).
--
-- Each send_* function validates its input (22023 on bad input), checks
-- that the tenant has configured the channel's provider (55000 if not),
-- and runs can_contact() for the instant the message should go out: a
-- permanent refusal stores the row as blocked with its reason, a
-- time-based one holds it (queued, next_attempt_at = next_allowed_at).
-- The row is seen by the dispatcher only once the transaction commits,
-- and the commit wakes the dispatcher.

CREATE FUNCTION crefinder.wake_dispatcher_on_commit() RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'crefinder_wake_dispatcher_on_commit';
COMMENT ON FUNCTION crefinder.wake_dispatcher_on_commit() IS
    'Internal: wake the dispatcher when the current transaction commits (the send functions call it).';

-- channel_provider: the provider that carries a channel.
CREATE FUNCTION crefinder.channel_provider(channel text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT CASE channel WHEN 'email' THEN 'sendgrid' WHEN 'voice' THEN 'vapi' ELSE 'twilio' END $$;

-- require_argument raises 22004 naming an argument that must not be null.
CREATE FUNCTION crefinder.require_argument(is_null boolean, name text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF is_null THEN
        RAISE EXCEPTION '% must not be null', name USING ERRCODE = 'null_value_not_allowed';
    END IF;
END
$$;

-- provider_ready raises 55000 unless the tenant's config for provider has
-- what the channel needs, or unless this database is the one the
-- dispatcher serves; returns the config and whether the dispatcher paused
-- the provider (one read, for the send path).
CREATE FUNCTION crefinder.provider_ready(channel text, OUT config jsonb, OUT paused boolean)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    -- crefinder.channel_provider(), written out: this runs for every message
    provider_name text := CASE channel WHEN 'email' THEN 'sendgrid' WHEN 'voice' THEN 'vapi' ELSE 'twilio' END;
    missing text;
BEGIN
    IF current_database() <> current_setting('crefinder.database') THEN
        RAISE EXCEPTION 'the crefinder dispatcher does not serve database "%"', current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('It serves database "%s" (crefinder.database); a message queued here would never be sent.',
                                  current_setting('crefinder.database')),
                  HINT = format('Set crefinder.database = ''%s'' in postgresql.conf and restart the server, or send from database "%s".',
                                current_database(), current_setting('crefinder.database'));
    END IF;
    SELECT c.config, c.paused_at IS NOT NULL INTO config, paused FROM crefinder.integration_configs c
    WHERE c.user_id = crefinder.current_user_id() AND c.provider = provider_name;
    IF config IS NULL THEN
        RAISE EXCEPTION '% is not configured for this tenant', provider_name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Sending %s needs the tenant''s %s settings.', channel, provider_name),
                  HINT = format('Call crefinder.configure(%L, ...) first.', provider_name);
    END IF;
    missing := CASE
        WHEN channel = 'sms' AND NOT (config ? 'phoneNumber' OR config ? 'messagingServiceSid')
            THEN 'phoneNumber or messagingServiceSid'
        WHEN channel = 'whatsapp' AND NOT (config ? 'whatsappNumber' OR config ? 'messagingServiceSid')
            THEN 'whatsappNumber or messagingServiceSid'
        WHEN channel = 'voice' AND NOT config ? 'phoneNumber'
            THEN 'phoneNumber (the Vapi phone number id)'
        WHEN channel IN ('call', 'voicemail') AND NOT config ? 'phoneNumber'
            THEN 'phoneNumber (the number calls come from)'
        WHEN channel IN ('call', 'voicemail') AND NOT config ? 'voiceWebhookUrl'
            THEN 'voiceWebhookUrl (the route that answers Twilio''s voice requests)'
        END;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION '% settings cannot send %', provider_name, channel
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The %s settings have no %s.', provider_name, missing),
                  HINT = format('Add it with crefinder.configure(%L, ...).', provider_name);
    END IF;
END
$$;

-- enqueue stores one message after the compliance check; the send_*
-- functions below validate their own arguments and call it.  A message
-- that must wait says why in hold_reason (until next_attempt_at).
CREATE FUNCTION crefinder.enqueue(channel text, to_contact text, payload jsonb,
                                  property_id bigint, campaign_id bigint, send_at timestamptz,
                                  cfg jsonb, paused boolean)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tenant uuid := crefinder.current_user_id();
    due timestamptz := greatest(coalesce(send_at, now()), now());
    decision record;
    message_id bigint;
    goes_at timestamptz;
    held text;
BEGIN
    IF send_at IS NOT NULL AND send_at < now() - interval '1 second' THEN
        RAISE EXCEPTION 'send_at is in the past'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A message cannot be scheduled before the current time.',
                  HINT = 'Leave send_at NULL to send as soon as allowed.';
    END IF;
    IF send_at IS NOT NULL AND send_at > now() + interval '5 years' THEN
        RAISE EXCEPTION 'send_at is too far ahead'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A message can be scheduled at most 5 years ahead.';
    END IF;
    -- a property or campaign id must be one of the tenant's (22023, not 23503)
    IF property_id IS NOT NULL THEN
        PERFORM 1 FROM crefinder.property_records p WHERE p.user_id = tenant AND p.id = enqueue.property_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'property % does not exist', property_id
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'property_id must name one of the tenant''s crefinder.property_records.';
        END IF;
    END IF;
    IF campaign_id IS NOT NULL THEN
        PERFORM 1 FROM crefinder.campaigns c WHERE c.user_id = tenant AND c.id = enqueue.campaign_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'campaign % does not exist', campaign_id
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'campaign_id must name one of the tenant''s crefinder.campaigns.';
        END IF;
    END IF;
    SELECT * INTO decision FROM crefinder.can_contact(channel, to_contact, due, property_id);
    goes_at := coalesce(decision.next_allowed_at, due);
    held := CASE WHEN NOT decision.allowed AND decision.next_allowed_at IS NOT NULL THEN decision.reason
                 WHEN send_at IS NOT NULL AND send_at > now() THEN 'scheduled' END;

    IF paused THEN
        held := 'provider_paused';
    END IF;

    -- A text scheduled at least 16 minutes ahead, for a tenant whose Twilio
    -- settings say scheduleAtTwilio (with a messaging service), is handed to
    -- Twilio early with SendAt (Twilio takes 15 minutes to 35 days ahead):
    -- the dispatcher sends it up to 34 days before it is due and re-checks
    -- it for that instant.  cancel() and a new opt-out cancel it at Twilio.
    IF channel IN ('sms', 'whatsapp') AND send_at IS NOT NULL
       AND (decision.allowed OR decision.next_allowed_at IS NOT NULL)
       AND goes_at >= now() + interval '16 minutes'
       AND coalesce((cfg ->> 'scheduleAtTwilio')::boolean, false) AND cfg ? 'messagingServiceSid' THEN
        goes_at := date_trunc('second', goes_at);
        payload := payload || jsonb_build_object(
            'twilio_send_at', to_char(goes_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
        goes_at := greatest(now(), goes_at - interval '34 days');
    END IF;

    INSERT INTO crefinder.outbound_events
        (user_id, channel, to_contact, status, block_reason, hold_reason, property_id, campaign_id,
         payload, next_attempt_at)
    VALUES (tenant, channel, to_contact,
            CASE WHEN decision.allowed OR decision.next_allowed_at IS NOT NULL THEN 'queued' ELSE 'blocked' END,
            CASE WHEN decision.allowed OR decision.next_allowed_at IS NOT NULL THEN NULL ELSE decision.reason END,
            CASE WHEN decision.allowed OR decision.next_allowed_at IS NOT NULL THEN held END,
            property_id, campaign_id, payload, goes_at)
    RETURNING id INTO message_id;

    IF decision.allowed OR decision.next_allowed_at IS NOT NULL THEN
        PERFORM crefinder.wake_dispatcher_on_commit();
    END IF;
    RETURN message_id;
END
$$;

-- check_text_body: 1 to 1600 characters.
CREATE FUNCTION crefinder.check_text_body(body text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF body IS NULL THEN
        RAISE EXCEPTION 'body must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(body) = '' THEN
        RAISE EXCEPTION 'message body must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF char_length(body) > 1600 THEN
        RAISE EXCEPTION 'message body is too long'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The body has %s characters; at most 1600 are allowed.', char_length(body));
    END IF;
END
$$;

CREATE FUNCTION crefinder.check_media_urls(media_urls text[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    url text;
BEGIN
    IF media_urls IS NULL THEN
        RETURN;
    END IF;
    IF cardinality(media_urls) > 10 THEN
        RAISE EXCEPTION 'too many media URLs'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('%s media URLs were given; at most 10 are allowed.', cardinality(media_urls));
    END IF;
    FOREACH url IN ARRAY media_urls LOOP
        IF url IS NULL OR char_length(url) > 2048 OR url !~ '^https://[^/\s?#]+[^\s]*$' THEN
            RAISE EXCEPTION 'invalid media URL "%"', left(url, 40) || CASE WHEN char_length(url) > 40 THEN '…' ELSE '' END
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Media URLs must be absolute https URLs of at most 2048 characters.';
        END IF;
    END LOOP;
END
$$;

-- enqueue_text is send_sms and send_whatsapp once the recipient is known.
CREATE FUNCTION crefinder.enqueue_text(channel text, recipient text, body text, property_id bigint,
                                       campaign_id bigint, media_urls text[], send_at timestamptz)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    cfg jsonb;
    paused boolean;
    ready record;
BEGIN
    PERFORM crefinder.check_text_body(body);
    PERFORM crefinder.check_media_urls(media_urls);
    ready := crefinder.provider_ready(channel);
    cfg := ready.config;
    paused := ready.paused;
    RETURN crefinder.enqueue(channel, recipient,
                             jsonb_strip_nulls(jsonb_build_object('body', body, 'media_urls', media_urls,
                                                                  'send_at', send_at)),
                             property_id, campaign_id, send_at, cfg, paused);
END
$$;

CREATE FUNCTION crefinder.send_sms(to_number text, body text, property_id bigint DEFAULT NULL,
                                   campaign_id bigint DEFAULT NULL, media_urls text[] DEFAULT NULL,
                                   send_at timestamptz DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF to_number IS NULL THEN
        RAISE EXCEPTION 'to_number must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN crefinder.enqueue_text('sms', crefinder.normalize_phone(to_number), body, property_id,
                                  campaign_id, media_urls, send_at);
END
$$;

CREATE FUNCTION crefinder.send_whatsapp(to_number text, body text, property_id bigint DEFAULT NULL,
                                        campaign_id bigint DEFAULT NULL, media_urls text[] DEFAULT NULL,
                                        send_at timestamptz DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF to_number IS NULL THEN
        RAISE EXCEPTION 'to_number must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN crefinder.enqueue_text('whatsapp', crefinder.normalize_contact('whatsapp', to_number), body,
                                  property_id, campaign_id, media_urls, send_at);
END
$$;

CREATE FUNCTION crefinder.send_email(to_email text, subject text, html text DEFAULT NULL,
                                     text_body text DEFAULT NULL, template_id text DEFAULT NULL,
                                     template_data jsonb DEFAULT NULL, property_id bigint DEFAULT NULL,
                                     campaign_id bigint DEFAULT NULL, send_at timestamptz DEFAULT NULL,
                                     categories text[] DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    recipient text;
    cfg jsonb;
    paused boolean;
    ready record;
    template text;
BEGIN
    IF to_email IS NULL OR subject IS NULL THEN
        RAISE EXCEPTION '% must not be null', CASE WHEN to_email IS NULL THEN 'to_email' ELSE 'subject' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    recipient := crefinder.normalize_contact('email', to_email);
    IF btrim(subject) = '' THEN
        RAISE EXCEPTION 'subject must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF subject ~ '[\r\n]' THEN
        RAISE EXCEPTION 'subject must not contain line breaks'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A CR or LF in a subject could inject mail headers.';
    END IF;
    IF char_length(subject) > 998 THEN
        RAISE EXCEPTION 'subject is too long' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'A subject has at most 998 characters.';
    END IF;
    IF template_data IS NOT NULL AND jsonb_typeof(template_data) <> 'object' THEN
        RAISE EXCEPTION 'template_data must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF categories IS NOT NULL AND (cardinality(categories) > 10
        OR EXISTS (SELECT 1 FROM unnest(categories) c WHERE c IS NULL OR c = '' OR char_length(c) > 255)
        OR cardinality(categories) <> (SELECT count(DISTINCT c) FROM unnest(categories) c)) THEN
        RAISE EXCEPTION 'invalid categories'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'At most 10 distinct, non-empty categories of at most 255 characters.';
    END IF;
    ready := crefinder.provider_ready('email');
    cfg := ready.config;
    paused := ready.paused;
    template := coalesce(template_id, CASE WHEN html IS NULL AND text_body IS NULL
                                           THEN cfg ->> 'defaultTemplateId' END);
    IF template IS NULL AND html IS NULL AND text_body IS NULL THEN
        RAISE EXCEPTION 'email has no content'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give html, text_body or template_id (or configure defaultTemplateId).';
    END IF;
    RETURN crefinder.enqueue('email', recipient,
                             jsonb_strip_nulls(jsonb_build_object(
                                 'subject', subject, 'html', html, 'text', text_body,
                                 'template_id', template, 'template_data', template_data,
                                 'categories', categories, 'send_at', send_at)),
                             property_id, campaign_id, send_at, cfg, paused);
END
$$;

CREATE FUNCTION crefinder.start_call(to_number text, assistant_id text DEFAULT NULL,
                                     metadata jsonb DEFAULT '{}', property_id bigint DEFAULT NULL,
                                     campaign_id bigint DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    recipient text;
    cfg jsonb;
    paused boolean;
    ready record;
    assistant text;
BEGIN
    IF to_number IS NULL THEN
        RAISE EXCEPTION 'to_number must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    recipient := crefinder.normalize_phone(to_number);
    IF metadata IS NOT NULL AND jsonb_typeof(metadata) <> 'object' THEN
        RAISE EXCEPTION 'metadata must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    ready := crefinder.provider_ready('voice');
    cfg := ready.config;
    paused := ready.paused;
    assistant := coalesce(assistant_id, cfg ->> 'assistantId');
    IF assistant IS NULL OR btrim(assistant) = '' THEN
        RAISE EXCEPTION 'no assistant for the call'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give assistant_id or configure vapi assistantId.';
    END IF;
    RETURN crefinder.enqueue('voice', recipient,
                             jsonb_build_object('assistant_id', assistant,
                                                'metadata', coalesce(metadata, '{}'::jsonb)),
                             property_id, campaign_id, NULL, cfg, paused);
END
$$;

-- ----------------------------------------------------------------------
-- Twilio calls (74_voice.sql answers them)
-- ----------------------------------------------------------------------

-- records_announced: whether a recorded call to number must announce the
-- recording: the owner's state (by area code, and the property's mailing
-- state) needs every party's consent, or is not known.
CREATE FUNCTION crefinder.recording_announced(tenant uuid, number text, property_id bigint)
    RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT crefinder.phone_region(number) IS NULL
        OR EXISTS (SELECT 1 FROM crefinder.recording_consent_states s
                   WHERE s.region IN (crefinder.phone_region(number),
                                      (SELECT upper(btrim(p.mailing_state)) FROM crefinder.property_records p
                                       WHERE p.user_id = tenant AND p.id = property_id)))
$$;

-- call_settings: the tenant's settings a Twilio call needs, checked:
-- 55000 naming what is missing.
CREATE FUNCTION crefinder.call_settings(tenant uuid, needs text[]) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    settings jsonb := crefinder.settings_of(tenant);
    missing text[];
BEGIN
    missing := ARRAY(SELECT n FROM unnest(needs) AS n WHERE settings ->> n IS NULL ORDER BY n);
    IF cardinality(missing) > 0 THEN
        RAISE EXCEPTION 'the tenant''s settings lack %', array_to_string(missing, ' and ')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = CASE WHEN 'business_name' = ANY (missing) OR 'callback_number' = ANY (missing)
                                THEN 'A prerecorded message must say who calls and give a number to call back (47 CFR 64.1200(b)).'
                                ELSE 'A bridge call rings the tenant''s agent first.' END,
                  HINT = format('Set them with crefinder.set_tenant_settings(''{%s}'').',
                                (SELECT string_agg(format('"%s": ...', n), ', ') FROM unnest(missing) AS n));
    END IF;
    RETURN settings;
END
$$;

-- agent_problem: why number cannot be a tenant's agent (an owner's phone,
-- however it was typed; a number that opted out), or NULL.
CREATE FUNCTION crefinder.agent_problem(tenant uuid, number text) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM crefinder.property_contacts c
                     WHERE c.user_id = tenant AND c.kind = 'phone' AND c.value = number)
          OR EXISTS (SELECT 1 FROM crefinder.property_records p
                     WHERE p.user_id = tenant AND crefinder.try_normalize_contact('sms', p.owner_phone) = number)
            THEN 'is an owner''s number'
        WHEN EXISTS (SELECT 1 FROM crefinder.opt_outs o
                     WHERE o.user_id = tenant AND o.contact = number AND o.revoked_at IS NULL
                       AND o.channel <> 'email')
            THEN 'has opted out' END
$$;

-- bridge_call: Twilio rings the agent (agent_number, else the tenant's
-- agent_number setting) from the tenant's number; when the agent answers,
-- the owner is dialled with the tenant's number as caller id.  Compliance
-- is decided for the owner.  record: the call is recorded, announced to
-- the owner where the owner's state needs every party's consent.
CREATE FUNCTION crefinder.bridge_call(owner_number text, agent_number text DEFAULT NULL,
                                      property_id bigint DEFAULT NULL, campaign_id bigint DEFAULT NULL,
                                      record boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    tenant uuid := crefinder.current_user_id();
    owner text;
    agent text;
    problem text;
    ready record;
BEGIN
    PERFORM crefinder.require_argument(owner_number IS NULL, 'owner_number');
    owner := crefinder.normalize_phone(owner_number);
    agent := CASE WHEN agent_number IS NULL
                  THEN crefinder.call_settings(tenant, '{agent_number}') ->> 'agent_number'
                  ELSE crefinder.normalize_phone(agent_number) END;
    IF agent = owner THEN
        RAISE EXCEPTION 'the agent and the owner are the same number'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    problem := crefinder.agent_problem(tenant, agent);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'the agent number %', problem
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A bridge call rings the agent first: never an owner, nor a number that asked not to be called.',
                  HINT = 'Give the agent''s own number (or set agent_number in the tenant''s settings).';
    END IF;
    ready := crefinder.provider_ready('call');
    RETURN crefinder.enqueue('call', owner,
                             jsonb_build_object('agent_number', agent, 'record', coalesce(record, false),
                                                'announce_recording',
                                                coalesce(record, false)
                                                AND crefinder.recording_announced(tenant, owner, property_id)),
                             property_id, campaign_id, NULL, ready.config, ready.paused);
END
$$;

-- check_voicemail_content: exactly one of an https audio URL and a text to
-- say, each within bounds.
CREATE FUNCTION crefinder.check_voicemail_content(audio_url text, say_text text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF (audio_url IS NULL) = (say_text IS NULL) THEN
        RAISE EXCEPTION 'give exactly one of audio_url and say_text'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A voicemail drop plays a recording or says a text.';
    END IF;
    IF audio_url IS NOT NULL AND (char_length(audio_url) > 2048 OR audio_url !~ '^https://[^/\s?#]+[^\s<>"]*$') THEN
        RAISE EXCEPTION 'invalid audio URL'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'audio_url must be an absolute https URL of at most 2048 characters.';
    END IF;
    IF say_text IS NOT NULL AND (btrim(crefinder.xml_text(say_text), E' \t\r\n') = '' OR char_length(say_text) > 1000
                                 OR say_text ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]') THEN
        RAISE EXCEPTION 'invalid say_text'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'say_text has 1 to 1000 characters and no control characters.';
    END IF;
END
$$;

-- drop_voicemail: a prerecorded message, left after the beep when a
-- machine answers; a person who answers hears it inside a menu (1: the
-- tenant's agent, when set; 9: never called or texted again).  Needs a
-- recorded consent for the number (else stored blocked no_consent), and
-- the tenant's business_name and callback_number (55000).
CREATE FUNCTION crefinder.drop_voicemail(to_number text, audio_url text DEFAULT NULL,
                                         say_text text DEFAULT NULL, property_id bigint DEFAULT NULL,
                                         campaign_id bigint DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    tenant uuid := crefinder.current_user_id();
    recipient text;
    settings jsonb;
    ready record;
BEGIN
    PERFORM crefinder.require_argument(to_number IS NULL, 'to_number');
    recipient := crefinder.normalize_phone(to_number);
    PERFORM crefinder.check_voicemail_content(audio_url, say_text);
    settings := crefinder.call_settings(tenant, '{business_name,callback_number}');
    ready := crefinder.provider_ready('voicemail');
    RETURN crefinder.enqueue('voicemail', recipient,
                             jsonb_strip_nulls(jsonb_build_object(
                                 'audio_url', audio_url, 'say_text', say_text,
                                 'business_name', settings ->> 'business_name',
                                 'callback_number', settings ->> 'callback_number')),
                             property_id, campaign_id, NULL, ready.config, ready.paused);
END
$$;

-- cancel_at_twilio: a tenant's messages already handed to Twilio for later
-- (SendAt, provider_status scheduled, still ahead) go back to the queue
-- marked twilio_cancel: the dispatcher asks Twilio to cancel them
-- (Status=canceled) and records them cancelled.  Returns how many.
CREATE FUNCTION crefinder.cancel_at_twilio(tenant uuid, ids bigint[]) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    n integer;
BEGIN
    UPDATE crefinder.outbound_events e
    SET status = 'queued', next_attempt_at = now(), attempts = 0, updated_at = now(),
        hold_reason = NULL, payload = e.payload || '{"twilio_cancel": true}'
    WHERE e.user_id = tenant AND e.id = ANY (ids) AND e.status = 'sent'
      AND e.provider_status = 'scheduled'
      AND jsonb_typeof(e.payload -> 'twilio_send_at') = 'string' AND NOT e.payload ? 'twilio_cancel'
      AND e.payload ->> 'twilio_send_at' > to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM crefinder.wake_dispatcher_on_commit();
    END IF;
    RETURN n;
END
$$;

-- cancel: a message still waiting to go out is never sent; true when it
-- was cancelled (or, when it waits at Twilio with SendAt, its cancellation
-- there is under way), false when it had already left or ended; 22023
-- when the tenant has no such message.
CREATE FUNCTION crefinder.cancel(message_id bigint) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tenant uuid := crefinder.current_user_id();
BEGIN
    PERFORM crefinder.require_argument(message_id IS NULL, 'message_id');
    PERFORM 1 FROM crefinder.outbound_events e WHERE e.user_id = tenant AND e.id = cancel.message_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message % does not exist', message_id
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'message_id must name one of the tenant''s messages (crefinder.outbound_events).';
    END IF;
    UPDATE crefinder.outbound_events e
    SET status = 'cancelled', hold_reason = NULL, updated_at = now()
    WHERE e.user_id = tenant AND e.id = cancel.message_id AND e.status = 'queued'
      AND NOT e.payload ? 'twilio_cancel';
    IF FOUND THEN
        RETURN true;
    END IF;
    RETURN crefinder.cancel_at_twilio(tenant, ARRAY[message_id]) > 0
        OR EXISTS (SELECT 1 FROM crefinder.outbound_events e
                   WHERE e.user_id = tenant AND e.id = cancel.message_id
                     AND e.payload ? 'twilio_cancel' AND e.status IN ('queued', 'sending'));
END
$$;

-- A new phone opt-out, on whichever channel it came (it covers them all),
-- cancels the texts to that contact that wait at Twilio (scheduled with
-- SendAt): the re-check they passed when they were handed over no longer
-- holds.
CREATE FUNCTION crefinder.cancel_scheduled_on_opt_out() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM crefinder.cancel_at_twilio(NEW.user_id, ARRAY(
        SELECT e.id FROM crefinder.outbound_events e
        WHERE e.user_id = NEW.user_id AND e.channel IN ('sms', 'whatsapp') AND e.to_contact = NEW.contact
          AND e.status = 'sent' AND e.provider_status = 'scheduled'));
    RETURN NULL;
END
$$;
CREATE TRIGGER cancel_scheduled_on_opt_out AFTER INSERT ON crefinder.opt_outs
    -- (a phone opt-out on any channel: a STOP, a press of 9, a call's request)
    FOR EACH ROW WHEN (NEW.channel <> 'email' AND NEW.revoked_at IS NULL)
    EXECUTE FUNCTION crefinder.cancel_scheduled_on_opt_out();

-- The dispatcher's state, from shared memory.  It holds no tenant data:
-- a message's own error is on its row (crefinder.message_errors).
CREATE FUNCTION crefinder.dispatcher_status_rows(
    OUT worker integer, OUT database text, OUT pid integer, OUT state text,
    OUT started_at timestamptz, OUT in_flight integer, OUT sent bigint, OUT failed bigint,
    OUT retried bigint, OUT blocked bigint, OUT last_error text, OUT last_error_at timestamptz)
    RETURNS SETOF record
    LANGUAGE c VOLATILE ROWS 2
    AS 'MODULE_PATHNAME', 'crefinder_dispatcher_status';
CREATE VIEW crefinder.dispatcher_status AS
    SELECT * FROM crefinder.dispatcher_status_rows();
COMMENT ON VIEW crefinder.dispatcher_status IS
    'The dispatcher, one row per worker (crefinder.dispatcher_workers; worker 0 serves every message, the others help with backlogs): the database it serves, pid, state, requests in flight, messages sent, failed, retried and blocked since it started, and the last problem of the dispatcher itself (a missing server key, a failed claim); no tenant data.';

-- Providers paused for a tenant (credentials rejected, settings that cannot
-- be read); a new configure() lifts the pause.  Row-level security shows a
-- tenant its own; operators see every tenant's.
CREATE VIEW crefinder.paused_providers WITH (security_invoker = true) AS
    SELECT user_id, provider, paused_at, paused_reason FROM crefinder.integration_configs
    WHERE paused_at IS NOT NULL;
COMMENT ON VIEW crefinder.paused_providers IS
    'Providers the dispatcher paused for a tenant (credentials rejected, settings that cannot be read), with when and why; crefinder.configure() lifts a pause.';

-- A tenant's messages that carry an error or wait for a reason.
CREATE VIEW crefinder.message_errors WITH (security_invoker = true) AS
    SELECT e.id, e.user_id, e.channel, e.to_contact, e.status, e.hold_reason,
           e.next_attempt_at, e.attempts, e.last_error, e.updated_at
    FROM crefinder.outbound_events e
    WHERE e.last_error IS NOT NULL AND e.status IN ('queued', 'failed', 'unknown');
COMMENT ON VIEW crefinder.message_errors IS
    'The current tenant''s messages that failed, whose fate is unknown, or that wait after an error (a retry, a paused provider), with the error and, for a waiting one, why and until when.';

-- retry(ids): send again, on purpose, failed messages and messages whose
-- fate is unknown.  They are re-checked for compliance at dispatch like
-- any other; returns how many were re-queued.
CREATE FUNCTION crefinder.retry(ids bigint[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    requeued integer;
BEGIN
    PERFORM crefinder.require_argument(ids IS NULL, 'ids');
    -- (a step of a paused campaign waits for resume_campaign())
    UPDATE crefinder.outbound_events e
    SET status = 'queued', updated_at = now(), attempts = 0, first_attempt_at = NULL,
        next_attempt_at = CASE WHEN paused.id IS NULL THEN now() ELSE 'infinity' END,
        hold_reason = CASE WHEN paused.id IS NULL THEN NULL ELSE 'campaign_paused' END,
        last_error = format('requeued by retry() after: %s', coalesce(e.last_error, e.status))
    FROM crefinder.outbound_events x
    LEFT JOIN crefinder.campaigns paused
           ON paused.user_id = x.user_id AND paused.id = x.campaign_id AND paused.status = 'paused'
              AND x.enrollment_id IS NOT NULL
    WHERE x.id = e.id AND e.user_id = crefinder.current_user_id() AND e.id = ANY (ids)
      AND e.status IN ('failed', 'unknown');
    GET DIAGNOSTICS requeued = ROW_COUNT;
    IF requeued > 0 THEN
        PERFORM crefinder.wake_dispatcher_on_commit();
    END IF;
    RETURN requeued;
END
$$;

-- retry_unknown(ids): retry() for messages whose fate is unknown only.
CREATE FUNCTION crefinder.retry_unknown(ids bigint[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM crefinder.require_argument(ids IS NULL, 'ids');
    RETURN crefinder.retry(ARRAY(SELECT e.id FROM crefinder.outbound_events e
                                 WHERE e.user_id = crefinder.current_user_id() AND e.id = ANY (ids)
                                   AND e.status = 'unknown'));
END
$$;

-- Calls over the tenant's maxConcurrentCalls wait in the queue (the
-- dispatcher looks again every 30 seconds, hold_reason call_limit).  When a
-- call ends (Vapi's end-of-call report), the waiting calls are released at
-- once.
CREATE FUNCTION crefinder.release_tenant_calls(tenant uuid) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    released integer;
BEGIN
    UPDATE crefinder.outbound_events e
    SET next_attempt_at = now(), updated_at = now()
    WHERE e.user_id = tenant AND e.channel = 'voice' AND e.status = 'queued'
      AND e.hold_reason = 'call_limit' AND e.next_attempt_at > now();
    GET DIAGNOSTICS released = ROW_COUNT;
    IF released > 0 THEN
        PERFORM crefinder.wake_dispatcher_on_commit();
    END IF;
    RETURN released;
END
$$;
COMMENT ON FUNCTION crefinder.release_tenant_calls(uuid) IS
    'Internal: release_held_calls() for a given tenant (the call-ended webhook).';

CREATE FUNCTION crefinder.release_held_calls() RETURNS integer
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT crefinder.release_tenant_calls(crefinder.current_user_id())
$$;
COMMENT ON FUNCTION crefinder.release_held_calls() IS
    'Lets the current tenant''s calls that wait for a free line (maxConcurrentCalls) go now; for the call-ended webhook.';

-- Synchronous calls to the provider for the current tenant: bounded by
-- crefinder.http_timeout_ms, cancellable (statement_timeout,
-- pg_cancel_backend) within a fraction of a second.
CREATE FUNCTION crefinder.test_connection(provider text) RETURNS jsonb
    LANGUAGE c VOLATILE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'crefinder_test_connection';
COMMENT ON FUNCTION crefinder.test_connection(text) IS
    'Ask the provider whether it accepts the tenant''s credentials: {ok, http_status, detail}.';
CREATE FUNCTION crefinder.twilio_phone_numbers() RETURNS SETOF text
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'crefinder_twilio_phone_numbers';
CREATE FUNCTION crefinder.sendgrid_templates() RETURNS TABLE (id text, name text)
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'crefinder_sendgrid_templates';
CREATE FUNCTION crefinder.sendgrid_unsubscribe_groups() RETURNS TABLE (id integer, name text)
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'crefinder_sendgrid_unsubscribe_groups';
