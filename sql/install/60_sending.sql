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
    'Wake the dispatcher when the current transaction commits (the send functions call it).';

-- channel_provider: the provider that carries a channel.
CREATE FUNCTION crefinder.channel_provider(channel text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE channel WHEN 'email' THEN 'sendgrid' WHEN 'voice' THEN 'vapi' ELSE 'twilio' END $$;

-- provider_ready raises 55000 unless the tenant's config for provider has
-- what the channel needs; returns the config.
CREATE FUNCTION crefinder.provider_ready(channel text) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    provider_name text := crefinder.channel_provider(channel);
    cfg jsonb;
    missing text;
BEGIN
    SELECT c.config INTO cfg FROM crefinder.integration_configs c
    WHERE c.user_id = crefinder.current_user_id() AND c.provider = provider_name;
    IF cfg IS NULL THEN
        RAISE EXCEPTION '% is not configured for this tenant', provider_name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Sending %s needs the tenant''s %s settings.', channel, provider_name),
                  HINT = format('Call crefinder.configure(%L, ...) first.', provider_name);
    END IF;
    missing := CASE
        WHEN channel = 'sms' AND NOT (cfg ? 'phoneNumber' OR cfg ? 'messagingServiceSid')
            THEN 'phoneNumber or messagingServiceSid'
        WHEN channel = 'whatsapp' AND NOT (cfg ? 'whatsappNumber' OR cfg ? 'messagingServiceSid')
            THEN 'whatsappNumber or messagingServiceSid'
        WHEN channel = 'voice' AND NOT cfg ? 'phoneNumber'
            THEN 'phoneNumber (the Vapi phone number id)'
        END;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION '% settings cannot send %', provider_name, channel
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The %s settings have no %s.', provider_name, missing),
                  HINT = format('Add it with crefinder.configure(%L, ...).', provider_name);
    END IF;
    RETURN cfg;
END
$$;

-- enqueue stores one message after the compliance check; the send_*
-- functions below validate their own arguments and call it.
CREATE FUNCTION crefinder.enqueue(channel text, to_contact text, payload jsonb,
                                  property_id bigint, campaign_id bigint, send_at timestamptz)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    due timestamptz := greatest(coalesce(send_at, now()), now());
    decision record;
    message_id bigint;
    goes_at timestamptz;
    cfg jsonb;
BEGIN
    IF send_at IS NOT NULL AND send_at < now() - interval '1 second' THEN
        RAISE EXCEPTION 'send_at is in the past'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A message cannot be scheduled before the current time.',
                  HINT = 'Leave send_at NULL to send as soon as allowed.';
    END IF;
    SELECT * INTO decision FROM crefinder.can_contact(channel, to_contact, due, property_id);
    goes_at := coalesce(decision.next_allowed_at, due);

    -- A text scheduled at least 16 minutes ahead, for a tenant whose Twilio
    -- settings say scheduleAtTwilio (with a messaging service), is handed to
    -- Twilio early with SendAt (Twilio takes 15 minutes to 35 days ahead):
    -- the dispatcher sends it up to 34 days before it is due and re-checks
    -- it for that instant.  cancel() and a new opt-out cancel it at Twilio.
    IF channel IN ('sms', 'whatsapp') AND send_at IS NOT NULL
       AND (decision.allowed OR decision.next_allowed_at IS NOT NULL)
       AND goes_at >= now() + interval '16 minutes' THEN
        SELECT c.config INTO cfg FROM crefinder.integration_configs c
        WHERE c.user_id = crefinder.current_user_id() AND c.provider = 'twilio';
        IF coalesce((cfg ->> 'scheduleAtTwilio')::boolean, false) AND cfg ? 'messagingServiceSid' THEN
            goes_at := date_trunc('second', goes_at);
            payload := payload || jsonb_build_object(
                'twilio_send_at', to_char(goes_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
            goes_at := greatest(now(), goes_at - interval '34 days');
        END IF;
    END IF;

    INSERT INTO crefinder.outbound_events
        (channel, to_contact, status, block_reason, property_id, campaign_id, payload, next_attempt_at)
    VALUES (channel, to_contact,
            CASE WHEN decision.allowed OR decision.next_allowed_at IS NOT NULL THEN 'queued' ELSE 'blocked' END,
            CASE WHEN decision.allowed OR decision.next_allowed_at IS NOT NULL THEN NULL ELSE decision.reason END,
            property_id, campaign_id,
            payload || CASE WHEN NOT decision.allowed AND decision.next_allowed_at IS NOT NULL
                            THEN jsonb_build_object('held_for', decision.reason) ELSE '{}'::jsonb END,
            goes_at)
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
    IF body IS NULL OR btrim(body) = '' THEN
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
        IF url IS NULL OR url !~ '^https://[^/\s?#]+[^\s]*$' THEN
            RAISE EXCEPTION 'invalid media URL "%"', url
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Media URLs must be absolute https URLs.';
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
BEGIN
    PERFORM crefinder.check_text_body(body);
    PERFORM crefinder.check_media_urls(media_urls);
    PERFORM crefinder.provider_ready(channel);
    RETURN crefinder.enqueue(channel, recipient,
                             jsonb_strip_nulls(jsonb_build_object('body', body, 'media_urls', media_urls,
                                                                  'send_at', send_at)),
                             property_id, campaign_id, send_at);
END
$$;

CREATE FUNCTION crefinder.send_sms(to_number text, body text, property_id bigint DEFAULT NULL,
                                   campaign_id bigint DEFAULT NULL, media_urls text[] DEFAULT NULL,
                                   send_at timestamptz DEFAULT NULL)
    RETURNS bigint
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT crefinder.enqueue_text('sms', crefinder.normalize_phone(to_number), body, property_id,
                                  campaign_id, media_urls, send_at)
$$;

CREATE FUNCTION crefinder.send_whatsapp(to_number text, body text, property_id bigint DEFAULT NULL,
                                        campaign_id bigint DEFAULT NULL, media_urls text[] DEFAULT NULL,
                                        send_at timestamptz DEFAULT NULL)
    RETURNS bigint
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT crefinder.enqueue_text('whatsapp', crefinder.normalize_contact('whatsapp', to_number), body,
                                  property_id, campaign_id, media_urls, send_at)
$$;

CREATE FUNCTION crefinder.send_email(to_email text, subject text, html text DEFAULT NULL,
                                     text_body text DEFAULT NULL, template_id text DEFAULT NULL,
                                     template_data jsonb DEFAULT NULL, property_id bigint DEFAULT NULL,
                                     campaign_id bigint DEFAULT NULL, send_at timestamptz DEFAULT NULL,
                                     categories text[] DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    recipient text := crefinder.normalize_contact('email', to_email);
    cfg jsonb;
    template text;
BEGIN
    IF subject IS NULL OR btrim(subject) = '' THEN
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
    cfg := crefinder.provider_ready('email');
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
                             property_id, campaign_id, send_at);
END
$$;

CREATE FUNCTION crefinder.start_call(to_number text, assistant_id text DEFAULT NULL,
                                     metadata jsonb DEFAULT '{}', property_id bigint DEFAULT NULL,
                                     campaign_id bigint DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    recipient text := crefinder.normalize_phone(to_number);
    cfg jsonb;
    assistant text;
BEGIN
    IF metadata IS NOT NULL AND jsonb_typeof(metadata) <> 'object' THEN
        RAISE EXCEPTION 'metadata must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cfg := crefinder.provider_ready('voice');
    assistant := coalesce(assistant_id, cfg ->> 'assistantId');
    IF assistant IS NULL OR btrim(assistant) = '' THEN
        RAISE EXCEPTION 'no assistant for the call'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give assistant_id or configure vapi assistantId.';
    END IF;
    RETURN crefinder.enqueue('voice', recipient,
                             jsonb_build_object('assistant_id', assistant,
                                                'metadata', coalesce(metadata, '{}'::jsonb)),
                             property_id, campaign_id, NULL);
END
$$;

-- cancel_at_twilio: messages already handed to Twilio for later (SendAt,
-- provider_status scheduled, still ahead) go back to the queue marked
-- twilio_cancel: the dispatcher asks Twilio to cancel them
-- (Status=canceled) and records them cancelled.  Returns how many.
CREATE FUNCTION crefinder.cancel_at_twilio(ids bigint[]) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    n integer;
BEGIN
    UPDATE crefinder.outbound_events e
    SET status = 'queued', next_attempt_at = now(), attempts = 0, updated_at = now(),
        payload = e.payload || '{"twilio_cancel": true}'
    WHERE e.id = ANY (ids) AND e.status = 'sent' AND e.provider_status = 'scheduled'
      AND e.payload ? 'twilio_send_at' AND NOT e.payload ? 'twilio_cancel'
      AND (e.payload ->> 'twilio_send_at')::timestamptz > now();
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM crefinder.wake_dispatcher_on_commit();
    END IF;
    RETURN n;
END
$$;

-- cancel: a message still waiting to go out is never sent; true when it
-- was cancelled (or, when it waits at Twilio with SendAt, its cancellation
-- there is under way), false when it had already left or ended.
CREATE FUNCTION crefinder.cancel(message_id bigint) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    UPDATE crefinder.outbound_events e
    SET status = 'cancelled', updated_at = now()
    WHERE e.id = cancel.message_id AND e.status = 'queued' AND NOT e.payload ? 'twilio_cancel';
    IF FOUND THEN
        RETURN true;
    END IF;
    RETURN crefinder.cancel_at_twilio(ARRAY[message_id]) > 0
        OR EXISTS (SELECT 1 FROM crefinder.outbound_events e
                   WHERE e.id = cancel.message_id AND e.payload ? 'twilio_cancel'
                     AND e.status IN ('queued', 'sending'));
END
$$;

-- A new opt-out cancels the messages to that contact on that channel that
-- wait at Twilio (scheduled with SendAt): the re-check they passed when
-- they were handed over no longer holds.
CREATE FUNCTION crefinder.cancel_scheduled_on_opt_out() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM crefinder.cancel_at_twilio(ARRAY(
        SELECT e.id FROM crefinder.outbound_events e
        WHERE e.user_id = NEW.user_id AND e.channel = NEW.channel AND e.to_contact = NEW.contact
          AND e.status = 'sent' AND e.provider_status = 'scheduled'));
    RETURN NULL;
END
$$;
CREATE TRIGGER cancel_scheduled_on_opt_out AFTER INSERT ON crefinder.opt_outs
    FOR EACH ROW WHEN (NEW.channel IN ('sms', 'whatsapp') AND NEW.revoked_at IS NULL)
    EXECUTE FUNCTION crefinder.cancel_scheduled_on_opt_out();

-- The dispatcher's state, from shared memory.
CREATE FUNCTION crefinder.dispatcher_status_rows(
    OUT worker integer, OUT pid integer, OUT state text, OUT started_at timestamptz,
    OUT in_flight integer, OUT sent bigint, OUT failed bigint, OUT retried bigint,
    OUT blocked bigint, OUT last_error text, OUT last_error_at timestamptz)
    RETURNS SETOF record
    LANGUAGE c VOLATILE ROWS 2
    AS 'MODULE_PATHNAME', 'crefinder_dispatcher_status';
CREATE VIEW crefinder.dispatcher_status WITH (security_invoker = true) AS
    SELECT * FROM crefinder.dispatcher_status_rows();
COMMENT ON VIEW crefinder.dispatcher_status IS
    'The dispatcher, one row per worker (crefinder.dispatcher_workers; worker 0 serves every message, the others help with backlogs): pid, state, requests in flight, and messages sent, failed, retried and blocked since it started, with the last error.';

-- Providers paused for the current tenant (credentials rejected); a new
-- configure() lifts the pause.
CREATE VIEW crefinder.paused_providers WITH (security_invoker = true) AS
    SELECT provider, paused_at, paused_reason FROM crefinder.integration_configs
    WHERE paused_at IS NOT NULL;

-- retry_unknown: send again, on purpose, messages whose fate is unknown.
CREATE FUNCTION crefinder.retry_unknown(ids bigint[]) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    requeued integer;
BEGIN
    UPDATE crefinder.outbound_events e
    SET status = 'queued', next_attempt_at = now(), updated_at = now(),
        last_error = 'requeued by retry_unknown()'
    WHERE e.id = ANY (ids) AND e.status = 'unknown';
    GET DIAGNOSTICS requeued = ROW_COUNT;
    IF requeued > 0 THEN
        PERFORM crefinder.wake_dispatcher_on_commit();
    END IF;
    RETURN requeued;
END
$$;

-- Calls over the tenant's maxConcurrentCalls wait in the queue (the
-- dispatcher looks again every 30 seconds).  When a call ends (Vapi's
-- end-of-call report), the waiting calls are released at once; the last_error
-- text is the one the dispatcher writes (dispatcher.c, CALL_HELD).
CREATE FUNCTION crefinder.release_held_calls() RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    released integer;
BEGIN
    UPDATE crefinder.outbound_events e
    SET next_attempt_at = now(), updated_at = now()
    WHERE e.user_id = crefinder.current_user_id() AND e.channel = 'voice' AND e.status = 'queued'
      AND e.last_error = 'held: the tenant''s maxConcurrentCalls calls are in progress'
      AND e.next_attempt_at > now();
    GET DIAGNOSTICS released = ROW_COUNT;
    IF released > 0 THEN
        PERFORM crefinder.wake_dispatcher_on_commit();
    END IF;
    RETURN released;
END
$$;
COMMENT ON FUNCTION crefinder.release_held_calls() IS
    'Lets the current tenant''s calls that wait for a free line (maxConcurrentCalls) go now; for the call-ended webhook.';

-- Synchronous calls to the provider for the current tenant: bounded by
-- crefinder.http_timeout_ms, cancellable (statement_timeout,
-- pg_cancel_backend) within a fraction of a second.
CREATE FUNCTION crefinder.test_connection(provider text) RETURNS jsonb
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'crefinder_test_connection';
COMMENT ON FUNCTION crefinder.test_connection(text) IS
    'Ask the provider whether it accepts the tenant''s credentials: {ok, http_status, detail}.';
CREATE FUNCTION crefinder.twilio_phone_numbers() RETURNS SETOF text
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'crefinder_twilio_phone_numbers';
CREATE FUNCTION crefinder.sendgrid_templates() RETURNS TABLE (id text, name text)
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'crefinder_sendgrid_templates';
CREATE FUNCTION crefinder.sendgrid_unsubscribe_groups() RETURNS TABLE (id integer, name text)
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'crefinder_sendgrid_unsubscribe_groups';
