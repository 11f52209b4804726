-- Webhooks: what the providers tell crefinder back (delivered, bounced,
-- opened, a reply, STOP, a call that ended).  The application's web route
-- hands the raw request to handle_twilio_webhook(), handle_sendgrid_events()
-- or handle_vapi_message() and answers the provider with what they return:
-- {http_status, content_type, body}.
--
-- A handler trusts nothing it is given.  It finds the tenant the request
-- claims (Twilio: AccountSid; SendGrid: the route's tenant; Vapi: the
-- call's metadata or id), checks the signature with that tenant's secret,
-- and then acts only on that tenant's rows: every statement names the
-- proven tenant.  Every delivery is written to webhook_events; one already
-- seen (the provider's event id, Twilio's idempotency token) changes
-- nothing.  Bad signatures are answered 401, malformed or oversized
-- payloads and unknown tenants 400, and a payload that fails half-way
-- changes nothing (the work runs in a subtransaction).  Errors that are
-- not the payload's fault (a lock timeout, a missing server key) are
-- raised: the route answers 500 and the provider delivers again later.

-- Every delivery.
CREATE TABLE crefinder.webhook_events (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id            uuid,
    provider           text NOT NULL CHECK (provider IN ('vapi', 'twilio', 'sendgrid')),
    event_id           text,
    idempotency_token  text,
    event_type         text,
    verified           boolean NOT NULL,
    http_status        integer NOT NULL,
    outcome            text NOT NULL
        CHECK (outcome IN ('applied', 'duplicate', 'unknown_message', 'ignored', 'bad_signature',
                           'stale', 'unknown_tenant', 'malformed', 'too_large')),
    message_id         bigint,
    payload            text,
    headers            jsonb,
    error              text,
    received_at        timestamptz NOT NULL DEFAULT now()
);
-- A verified event counts once per provider and tenant; one about a message
-- not known (yet) counts again when it is delivered again.
CREATE UNIQUE INDEX webhook_events_dedupe_idx
    ON crefinder.webhook_events (provider, user_id, event_id)
    WHERE event_id IS NOT NULL AND verified AND outcome NOT IN ('duplicate', 'unknown_message');
CREATE UNIQUE INDEX webhook_events_token_idx
    ON crefinder.webhook_events (provider, user_id, idempotency_token)
    WHERE idempotency_token IS NOT NULL AND verified AND outcome NOT IN ('duplicate', 'unknown_message');
-- Retention and the last hour's counts read by time; rows arrive in time
-- order, so a BRIN index serves them at almost no cost per insert (a
-- SendGrid batch inserts a thousand rows).
CREATE INDEX webhook_events_received_idx ON crefinder.webhook_events USING brin (received_at);
CREATE INDEX ON crefinder.webhook_events (received_at) WHERE NOT verified;

-- Replies: texts that owners send to a tenant's numbers.
CREATE TABLE crefinder.inbound_messages (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id              uuid NOT NULL DEFAULT crefinder.current_user_id(),
    channel              text NOT NULL CHECK (channel IN ('sms', 'whatsapp', 'email')),
    provider_message_id  text,
    from_contact         text NOT NULL,
    to_contact           text,
    body                 text NOT NULL DEFAULT '',
    media_urls           text[] NOT NULL DEFAULT '{}',
    keyword              text CHECK (keyword IN ('opt_out', 'opt_in', 'help')),
    classification       text NOT NULL,
    message_id           bigint,
    property_id          bigint,
    campaign_id          bigint,
    received_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id),
    FOREIGN KEY (user_id, message_id) REFERENCES crefinder.outbound_events (user_id, id)
        ON DELETE SET NULL (message_id),
    FOREIGN KEY (user_id, property_id) REFERENCES crefinder.property_records (user_id, id)
        ON DELETE SET NULL (property_id),
    FOREIGN KEY (user_id, campaign_id) REFERENCES crefinder.campaigns (user_id, id)
        ON DELETE SET NULL (campaign_id)
);
CREATE UNIQUE INDEX inbound_messages_provider_idx
    ON crefinder.inbound_messages (user_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX ON crefinder.inbound_messages (user_id, from_contact, received_at);
CREATE INDEX ON crefinder.inbound_messages (message_id) WHERE message_id IS NOT NULL;

-- Responses: classified replies and call outcomes, what campaigns react to.
CREATE TABLE crefinder.responses (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id             uuid NOT NULL DEFAULT crefinder.current_user_id(),
    message_id          bigint,
    enrollment_id       bigint,
    campaign_id         bigint,
    property_id         bigint,
    channel             text NOT NULL CHECK (channel IN ('voice', 'sms', 'whatsapp', 'email', 'call', 'voicemail')),
    kind                text NOT NULL
        CHECK (kind IN ('opt_out', 'not_interested', 'interested', 'callback_later', 'wrong_number',
                        'question', 'unknown')),
    detail              text CHECK (char_length(detail) <= 4000),
    source              text NOT NULL CHECK (source IN ('reply', 'call', 'keypad', 'manual')),
    inbound_message_id  bigint,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id),
    FOREIGN KEY (user_id, message_id) REFERENCES crefinder.outbound_events (user_id, id)
        ON DELETE SET NULL (message_id),
    FOREIGN KEY (user_id, enrollment_id) REFERENCES crefinder.enrollments (user_id, id)
        ON DELETE SET NULL (enrollment_id),
    FOREIGN KEY (user_id, campaign_id) REFERENCES crefinder.campaigns (user_id, id)
        ON DELETE SET NULL (campaign_id),
    FOREIGN KEY (user_id, property_id) REFERENCES crefinder.property_records (user_id, id)
        ON DELETE SET NULL (property_id),
    FOREIGN KEY (user_id, inbound_message_id) REFERENCES crefinder.inbound_messages (user_id, id)
        ON DELETE SET NULL (inbound_message_id)
);
CREATE INDEX ON crefinder.responses (enrollment_id, created_at) WHERE enrollment_id IS NOT NULL;
CREATE INDEX ON crefinder.responses (user_id, created_at);
CREATE INDEX ON crefinder.responses (message_id) WHERE message_id IS NOT NULL;

-- What the provider reported about a call (Vapi's AI calls, Twilio's calls).
CREATE TABLE crefinder.call_results (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id               uuid NOT NULL DEFAULT crefinder.current_user_id(),
    call_id               text NOT NULL,
    message_id            bigint,
    property_id           bigint,
    status                text,
    ended_reason          text,
    started_at            timestamptz,
    ended_at              timestamptz,
    duration_seconds      numeric(10, 3),
    cost                  numeric(14, 6),
    transcript            text NOT NULL DEFAULT '',
    recording_url         text,
    stereo_recording_url  text,
    summary               text,
    structured_data       jsonb,
    success_evaluation    text,
    analysis              jsonb,
    -- Twilio calls (74_voice.sql): who answered, the key pressed, the leg
    -- a <Dial> connected and how long its parties talked, its price
    answered_by           text CHECK (char_length(answered_by) <= 32),
    keypress              text CHECK (keypress ~ '^[0-9*#]$'),
    dial_call_sid         text CHECK (dial_call_sid ~ '^CA[0-9a-f]{32}$'),
    dial_status           text CHECK (char_length(dial_status) <= 32),
    bridged_seconds       integer CHECK (bridged_seconds >= 0),
    dial_cost             numeric(14, 6),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id),
    UNIQUE (user_id, call_id),
    FOREIGN KEY (user_id, message_id) REFERENCES crefinder.outbound_events (user_id, id)
        ON DELETE SET NULL (message_id),
    FOREIGN KEY (user_id, property_id) REFERENCES crefinder.property_records (user_id, id)
        ON DELETE SET NULL (property_id)
);
CREATE INDEX ON crefinder.call_results (message_id) WHERE message_id IS NOT NULL;

-- ----------------------------------------------------------------------
-- Small helpers
-- ----------------------------------------------------------------------

-- webhook_answer: what the route answers.
CREATE FUNCTION crefinder.webhook_answer(http_status integer, content_type text, body text)
    RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_build_object('http_status', http_status, 'content_type', content_type, 'body', body)
$$;

-- twiml: TwiML answering an inbound text, with one <Message> or none.
CREATE FUNCTION crefinder.twiml(message text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT '<?xml version="1.0" encoding="UTF-8"?>'
           || CASE WHEN message IS NULL THEN '<Response/>'
                   ELSE '<Response><Message>'
                        || replace(replace(replace(replace(replace(message, '&', '&amp;'), '<', '&lt;'),
                                                       '>', '&gt;'), '"', '&quot;'), '''', '&apos;')
                        || '</Message></Response>' END
$$;

-- webhook_reject: records a delivery that is refused (bad signature,
-- malformed, unknown tenant, too large, replayed) and answers it.  For the
-- operator, a delivery a tenant signed keeps its payload (at most 64 kB);
-- one nobody signed (anyone on the internet can send those) keeps only its
-- first kilobyte, its size and its SHA-256.  Headers that carry a secret
-- are masked.
CREATE FUNCTION crefinder.webhook_reject(provider text, tenant uuid, http_status integer,
                                         outcome text, error text, payload text,
                                         headers jsonb DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    signed boolean := tenant IS NOT NULL
                      AND outcome NOT IN ('bad_signature', 'stale', 'unknown_tenant', 'too_large');
BEGIN
    INSERT INTO crefinder.webhook_events (user_id, provider, verified, http_status, outcome,
                                          payload, headers, error)
    VALUES (tenant, provider, signed, http_status, outcome,
            left(payload, CASE WHEN signed THEN 65536 ELSE 1024 END),
            (SELECT jsonb_object_agg(left(h.key, 100),
                                     CASE WHEN lower(h.key) IN ('x-vapi-secret', 'authorization')
                                          THEN '"****"'::jsonb ELSE to_jsonb(left(h.value #>> '{}', 1000)) END)
             FROM (SELECT * FROM jsonb_each(CASE WHEN jsonb_typeof(headers) = 'object' THEN headers END)
                   LIMIT 100) AS h),
            left(error, 1000)
            || CASE WHEN signed OR payload IS NULL THEN ''
                    ELSE format(' [%s bytes, sha256 %s]', octet_length(payload),
                                encode(sha256(convert_to(payload, 'UTF8')), 'hex')) END);
    RETURN crefinder.webhook_answer(http_status, 'text/plain',
                                    CASE http_status WHEN 401 THEN 'unauthorized' ELSE 'bad request' END);
END
$$;

-- purge_webhook_events: the operator's retention of webhook_events (run it
-- daily, e.g. from pg_cron).  Deliveries are kept at least a day, the
-- longest a provider redelivers (SendGrid retries for 24 hours), so that a
-- late duplicate is still known.  Returns how many rows went.
CREATE FUNCTION crefinder.purge_webhook_events(older_than interval DEFAULT '30 days')
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    purged bigint;
BEGIN
    PERFORM crefinder.require_argument(older_than IS NULL, 'older_than');
    IF older_than < interval '1 day' THEN
        RAISE EXCEPTION 'webhook deliveries are kept at least a day'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Providers deliver again for up to 24 hours; a purged delivery would be applied twice.';
    END IF;
    DELETE FROM crefinder.webhook_events w WHERE w.received_at < now() - older_than;
    GET DIAGNOSTICS purged = ROW_COUNT;
    RETURN purged;
END
$$;

-- webhook_seen: records a verified delivery that was already processed.
CREATE FUNCTION crefinder.webhook_duplicate(provider text, tenant uuid, event_type text)
    RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    AS $$
    INSERT INTO crefinder.webhook_events (user_id, provider, event_type, verified, http_status, outcome)
    VALUES (tenant, provider, left(event_type, 100), true, 200, 'duplicate')
$$;

-- webhook_too_large: whether a payload is over crefinder.webhook_max_bytes.
CREATE FUNCTION crefinder.webhook_too_large(bytes bigint) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT bytes > current_setting('crefinder.webhook_max_bytes')::bigint
$$;

-- webhook_stale: whether a signed unix timestamp (seconds, or
-- milliseconds) is further from now than crefinder.webhook_tolerance.
CREATE FUNCTION crefinder.webhook_stale(stamp text) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT stamp IS NULL OR stamp !~ '^[0-9]{1,15}$'
           OR abs(extract(epoch FROM now())
                  - CASE WHEN stamp::bigint > 100000000000 THEN stamp::bigint / 1000.0
                         ELSE stamp::numeric END)
              > current_setting('crefinder.webhook_tolerance')::integer
$$;

-- try_phone: a phone number as crefinder stores it, or NULL when it is none
-- (an alphanumeric sender, a short code, garbage).
CREATE FUNCTION crefinder.try_phone(number text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF number IS NULL OR char_length(number) > 40 THEN
        RETURN NULL;
    END IF;
    RETURN crefinder.normalize_contact('sms', regexp_replace(number, '^whatsapp:', ''));
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN NULL;
END
$$;

-- try_timestamp: an ISO-8601 instant or unix time (s or ms) from a
-- payload, or NULL when it is none.
CREATE FUNCTION crefinder.try_timestamp(value jsonb) RETURNS timestamptz
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF jsonb_typeof(value) = 'number' THEN
        RETURN CASE WHEN value::numeric > 100000000000 THEN to_timestamp(value::numeric / 1000)
                    ELSE to_timestamp(value::numeric) END;
    ELSIF jsonb_typeof(value) = 'string' AND char_length(value #>> '{}') <= 40
          AND value #>> '{}' ~ '^\d{4}-\d\d-\d\d[T ]\d\d:\d\d' THEN
        RETURN (value #>> '{}')::timestamptz;
    END IF;
    RETURN NULL;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;

-- text_keyword: the compliance keyword a whole text is (Twilio's list:
-- trimmed, case-insensitive, the message alone), or NULL.
CREATE FUNCTION crefinder.text_keyword(body text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE
        WHEN k IN ('STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'REVOKE', 'OPTOUT',
                   'OPT OUT', 'OPT-OUT') THEN 'opt_out'
        WHEN k IN ('START', 'YES', 'UNSTOP') THEN 'opt_in'
        WHEN k IN ('HELP', 'INFO') THEN 'help'
        END
    FROM (SELECT upper(btrim(regexp_replace(body, '[[:space:][:punct:]]+$', ''))) AS k) AS t
$$;

-- ----------------------------------------------------------------------
-- What a webhook does to a tenant's state: the same changes the tenant
-- functions make, for the tenant the signature proved (not
-- current_user_id()).
-- ----------------------------------------------------------------------

-- store_response: a classified reply or call outcome for tenant's message
-- (the message's responded_at is set; the response keeps its campaign
-- and enrollment so that the sequence can react), and the lead's status.
CREATE FUNCTION crefinder.store_response(tenant uuid, message_id bigint, channel text, kind text,
                                         detail text, source text, inbound_message_id bigint,
                                         at timestamptz DEFAULT now())
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    answered bigint;
    enrollment bigint;
    campaign bigint;
    property bigint;
    response_id bigint;
BEGIN
    IF message_id IS NOT NULL THEN
        UPDATE crefinder.outbound_events e
        SET responded_at = coalesce(e.responded_at, at),
            opted_out_at = CASE WHEN kind = 'opt_out' THEN coalesce(e.opted_out_at, at) ELSE e.opted_out_at END,
            updated_at = now()
        WHERE e.user_id = tenant AND e.id = message_id
        RETURNING e.id, e.enrollment_id, e.campaign_id, e.property_id
        INTO answered, enrollment, campaign, property;
    END IF;
    INSERT INTO crefinder.responses (user_id, message_id, enrollment_id, campaign_id, property_id,
                                     channel, kind, detail, source, inbound_message_id, created_at)
    VALUES (tenant, answered, enrollment, campaign, property, channel, kind,
            left(detail, 4000), source, inbound_message_id, at)
    RETURNING id INTO response_id;
    IF property IS NOT NULL THEN
        UPDATE crefinder.property_records p
        SET lead_status = CASE kind
                              WHEN 'opt_out' THEN 'do_not_contact'
                              WHEN 'interested' THEN 'interested'
                              WHEN 'not_interested' THEN 'not_interested'
                              ELSE 'responded' END,
            updated_at = now()
        WHERE p.user_id = tenant AND p.id = property
          AND (p.lead_status IN ('new', 'contacted', 'responded')
               OR (kind IN ('opt_out', 'not_interested', 'interested') AND p.lead_status <> 'converted'
                   AND p.lead_status <> 'do_not_contact'));
    END IF;
    RETURN response_id;
END
$$;

-- record_response(message_id, kind, detail): the same for the current
-- tenant, by hand (an answer that came by another way: a phone call the
-- agent took, an email reply read in the inbox).
CREATE FUNCTION crefinder.record_response(message_id bigint, kind text, detail text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    tenant uuid := crefinder.current_user_id();
    message_channel text;
BEGIN
    PERFORM crefinder.require_argument(message_id IS NULL, 'message_id');
    PERFORM crefinder.check_choice(kind, 'kind',
        '{opt_out,not_interested,interested,callback_later,wrong_number,question,unknown}');
    IF char_length(detail) > 4000 THEN
        RAISE EXCEPTION 'detail is too long' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'detail has at most 4000 characters.';
    END IF;
    SELECT e.channel INTO message_channel FROM crefinder.outbound_events e
    WHERE e.user_id = tenant AND e.id = message_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message % does not exist', message_id
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'message_id must name one of the tenant''s messages (crefinder.outbound_events).';
    END IF;
    IF kind = 'opt_out' THEN
        PERFORM crefinder.record_opt_out(tenant, message_channel,
                                         (SELECT e.to_contact FROM crefinder.outbound_events e
                                          WHERE e.user_id = tenant AND e.id = message_id),
                                         'response');
    END IF;
    RETURN crefinder.store_response(tenant, message_id, message_channel, kind, detail, 'manual', NULL);
END
$$;

-- ----------------------------------------------------------------------
-- Twilio
-- ----------------------------------------------------------------------

-- twilio_status_rank: how far along a Twilio message status is; a
-- callback changes a message only when it is further along.
CREATE FUNCTION crefinder.twilio_status_rank(status text) RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE status
        WHEN 'accepted' THEN 1 WHEN 'scheduled' THEN 1 WHEN 'queued' THEN 2 WHEN 'sending' THEN 3
        WHEN 'sent' THEN 4 WHEN 'partially_delivered' THEN 5
        WHEN 'delivered' THEN 6 WHEN 'undelivered' THEN 6 WHEN 'failed' THEN 6 WHEN 'canceled' THEN 6
        WHEN 'read' THEN 7
        ELSE 0 END
$$;

-- twilio_error_text: the last_error of a message Twilio could not deliver.
CREATE FUNCTION crefinder.twilio_error_text(status text, code text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT format('twilio %s%s', status,
                  CASE WHEN code IS NULL THEN ''
                       ELSE format(' %s: %s', code, CASE code
                           WHEN '30003' THEN 'unreachable destination handset (undeliverable)'
                           WHEN '30004' THEN 'message blocked by the recipient or carrier (undeliverable)'
                           WHEN '30005' THEN 'unknown destination handset (undeliverable)'
                           WHEN '30006' THEN 'landline or unreachable carrier (undeliverable)'
                           WHEN '30007' THEN 'message filtered by the carrier'
                           WHEN '30008' THEN 'unknown delivery error (undeliverable)'
                           WHEN '21610' THEN 'the recipient replied STOP (opt-out recorded)'
                           WHEN '63016' THEN 'WhatsApp message outside the 24-hour window needs a template'
                           ELSE 'delivery error' END) END)
$$;

-- twilio_params: the parameters of a Twilio request, from a form body, or
-- from a JSON body when the URL carries bodySHA256.
CREATE FUNCTION crefinder.twilio_params(url text, body text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    params jsonb;
BEGIN
    IF url ~ '[?&]bodySHA256=' THEN
        params := body::jsonb;
        IF jsonb_typeof(params) <> 'object' THEN
            RAISE EXCEPTION 'a JSON Twilio body must be an object' USING ERRCODE = 'invalid_text_representation';
        END IF;
        RETURN params;
    END IF;
    RETURN crefinder.parse_form(body);
END
$$;

-- twilio_status_callback: a status callback for the tenants that signed
-- it.  The message is one of theirs, found by MessageSid, or, when the
-- dispatcher has not recorded Twilio's sid yet, by the crefinder_message_id
-- the dispatcher put in the StatusCallback URL (Twilio signed that URL).
CREATE FUNCTION crefinder.twilio_status_callback(tenants uuid[], params jsonb, token text, url text)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    sid text := coalesce(params ->> 'MessageSid', params ->> 'SmsSid');
    new_status text := lower(coalesce(params ->> 'MessageStatus', params ->> 'SmsStatus'));
    code text := nullif(btrim(params ->> 'ErrorCode'), '');
    url_message text := substring(url FROM '[?&]crefinder_message_id=([0-9]{1,18})(&|$)');
    m record;
    tenant uuid;
    event_row bigint;
    result text := 'applied';
    number text;
BEGIN
    IF sid IS NULL OR sid !~ '^[A-Z]{2}[0-9a-fA-F]{32}$' OR new_status IS NULL
       OR new_status !~ '^[a-z_]{1,32}$' OR (code IS NOT NULL AND code !~ '^[0-9]{1,10}$') THEN
        RAISE EXCEPTION 'a Twilio status callback needs MessageSid, MessageStatus and a numeric ErrorCode'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT e.id, e.user_id, e.channel, e.to_contact INTO m
    FROM crefinder.outbound_events e
    WHERE e.provider_message_id = sid AND e.user_id = ANY (tenants) AND e.channel IN ('sms', 'whatsapp')
    ORDER BY e.id LIMIT 1
    FOR UPDATE;
    IF m.id IS NULL AND url_message IS NOT NULL THEN
        SELECT e.id, e.user_id, e.channel, e.to_contact INTO m
        FROM crefinder.outbound_events e
        WHERE e.id = url_message::bigint
          AND e.user_id = ANY (tenants) AND e.channel IN ('sms', 'whatsapp') AND e.provider_message_id IS NULL
        FOR UPDATE;
    END IF;
    tenant := coalesce(m.user_id, tenants[1]);

    INSERT INTO crefinder.webhook_events (user_id, provider, event_id, idempotency_token, event_type,
                                          verified, http_status, outcome, message_id)
    VALUES (tenant, 'twilio', sid || ':' || new_status, left(token, 200), 'status:' || new_status,
            true, 200, 'applied', m.id)
    ON CONFLICT DO NOTHING
    RETURNING id INTO event_row;
    IF event_row IS NULL THEN
        PERFORM crefinder.webhook_duplicate('twilio', tenant, 'status:' || new_status);
        RETURN crefinder.webhook_answer(200, 'text/xml', crefinder.twiml(NULL));
    END IF;

    IF m.id IS NULL THEN
        result := 'unknown_message';
    ELSE
        IF NOT crefinder.twilio_set_status(m.id, new_status, code, sid, nullif(left(params ->> 'From', 64), '')) THEN
            result := 'ignored';
        END IF;
    END IF;

    -- The recipient replied STOP at Twilio: what it says of the number
    -- holds whether or not the message is crefinder's.
    IF code = '21610' THEN
        number := coalesce(m.to_contact, crefinder.try_phone(params ->> 'To'));
        IF number IS NOT NULL THEN
            PERFORM crefinder.record_opt_out(tenant, coalesce(m.channel, 'sms'), number, 'twilio 21610');
        END IF;
    END IF;
    IF result <> 'applied' THEN
        UPDATE crefinder.webhook_events w SET outcome = result WHERE w.id = event_row;
    END IF;
    RETURN crefinder.webhook_answer(200, 'text/xml', crefinder.twiml(NULL));
END
$$;

-- twilio_inbound: a text an owner sent to the tenant's number.
CREATE FUNCTION crefinder.twilio_inbound(tenant uuid, params jsonb, token text)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    sid text := coalesce(params ->> 'MessageSid', params ->> 'SmsMessageSid', params ->> 'SmsSid');
    sender text := params ->> 'From';
    reply_channel text := CASE WHEN params ->> 'From' LIKE 'whatsapp:%' THEN 'whatsapp' ELSE 'sms' END;
    number text;
    body text := coalesce(params ->> 'Body', '');
    media text[];
    media_count integer;
    opt_out_type text := upper(nullif(btrim(params ->> 'OptOutType'), ''));
    keyword text;
    class text;
    m record;
    event_row bigint;
    inbound_id bigint;
    cfg jsonb;
    settings jsonb;
    sender_name text;
    reply text;
    is_new boolean;
BEGIN
    number := crefinder.try_phone(sender);
    IF sid IS NULL OR sid !~ '^[A-Z]{2}[0-9a-fA-F]{32}$' OR number IS NULL THEN
        RAISE EXCEPTION 'an inbound Twilio message needs MessageSid and a phone number in From'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    media_count := CASE WHEN params ->> 'NumMedia' ~ '^[0-9]{1,3}$' THEN least((params ->> 'NumMedia')::integer, 10) ELSE 0 END;
    media := ARRAY(SELECT params ->> ('MediaUrl' || i) FROM generate_series(0, media_count - 1) AS i
                   WHERE params ? ('MediaUrl' || i) ORDER BY i);
    keyword := CASE opt_out_type WHEN 'STOP' THEN 'opt_out' WHEN 'START' THEN 'opt_in'
                                 WHEN 'HELP' THEN 'help' ELSE crefinder.text_keyword(body) END;
    class := CASE keyword WHEN 'opt_out' THEN 'opt_out' WHEN 'help' THEN 'question'
                          ELSE crefinder.classify_reply(body) END;

    -- the latest message the tenant sent to that number, a text on the same
    -- reply_channel first
    SELECT e.id INTO m
    FROM crefinder.outbound_events e
    WHERE e.user_id = tenant AND e.to_contact = number AND e.channel IN ('sms', 'whatsapp', 'voice', 'call', 'voicemail')
      AND e.status IN ('sent', 'delivered')
    ORDER BY e.channel = reply_channel DESC, e.sent_at DESC NULLS LAST, e.id DESC
    LIMIT 1;

    INSERT INTO crefinder.webhook_events (user_id, provider, event_id, idempotency_token, event_type,
                                          verified, http_status, outcome, message_id)
    VALUES (tenant, 'twilio', 'inbound:' || sid, left(token, 200), 'inbound', true, 200, 'applied', m.id)
    ON CONFLICT DO NOTHING
    RETURNING id INTO event_row;
    IF event_row IS NULL THEN
        PERFORM crefinder.webhook_duplicate('twilio', tenant, 'inbound');
        RETURN crefinder.webhook_answer(200, 'text/xml', crefinder.twiml(NULL));
    END IF;

    INSERT INTO crefinder.inbound_messages (user_id, channel, provider_message_id, from_contact, to_contact,
                                            body, media_urls, keyword, classification, message_id,
                                            property_id, campaign_id)
    SELECT tenant, reply_channel, sid, number, left(regexp_replace(params ->> 'To', '^whatsapp:', ''), 40),
           body, media, keyword, class, e.id, e.property_id, e.campaign_id
    FROM (SELECT 1) AS one
    LEFT JOIN crefinder.outbound_events e ON e.user_id = tenant AND e.id = m.id
    ON CONFLICT DO NOTHING
    RETURNING id INTO inbound_id;

    cfg := (SELECT c.config FROM crefinder.integration_configs c
            WHERE c.user_id = tenant AND c.provider = 'twilio');
    settings := (SELECT to_jsonb(s) FROM crefinder.tenant_settings s WHERE s.user_id = tenant);
    sender_name := coalesce(settings ->> 'business_name', params ->> 'To', 'This number');

    IF class = 'opt_out' THEN
        is_new := crefinder.record_opt_out(tenant, reply_channel, number,
                                           CASE WHEN keyword = 'opt_out' THEN reply_channel || ' reply: ' || left(upper(btrim(body)), 20)
                                                ELSE reply_channel || ' reply (free text)' END);
        IF is_new AND opt_out_type IS NULL AND coalesce((cfg ->> 'autoOptOutHandling')::boolean, true) THEN
            reply := coalesce(settings ->> 'opt_out_text',
                              format('%s: you are unsubscribed and will get no more messages from us. Reply START to resubscribe.',
                                     sender_name));
        END IF;
    ELSIF keyword = 'opt_in' THEN
        -- a text lifts what texts can: opt-outs of texts, not a request
        -- not to be called
        PERFORM crefinder.record_opt_in(tenant, '{sms,whatsapp}', number,
                                        reply_channel || ' reply: ' || left(upper(btrim(body)), 20));
    ELSIF keyword = 'help' AND opt_out_type IS NULL
          AND coalesce((cfg ->> 'autoOptOutHandling')::boolean, true) THEN
        reply := coalesce(settings ->> 'help_text',
                          format('%s: we write to property owners about their property. Reply STOP to opt out. Msg & data rates may apply.',
                                 sender_name));
    END IF;

    IF keyword IS DISTINCT FROM 'opt_in' OR class <> 'unknown' THEN
        PERFORM crefinder.store_response(tenant, m.id, reply_channel, class, body, 'reply', inbound_id);
    END IF;
    RETURN crefinder.webhook_answer(200, 'text/xml', crefinder.twiml(reply));
END
$$;

-- twilio_signers: the tenants a Twilio request is from: those with its
-- AccountSid whose auth token verifies its X-Twilio-Signature (the tenant
-- whose number or messaging service the request names first), with the
-- request's parameters; or the answer that rejects it (too large,
-- malformed, unknown account, bad signature).
CREATE FUNCTION crefinder.twilio_signers(url text, body text, signature text, idempotency_token text,
                                         OUT tenants uuid[], OUT params jsonb, OUT rejection jsonb)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    account text;
    configured boolean;
    problem text;
BEGIN
    IF url IS NULL OR body IS NULL THEN
        rejection := crefinder.webhook_reject('twilio', NULL, 400, 'malformed', 'url and body are required', body);
        RETURN;
    END IF;
    IF crefinder.webhook_too_large(octet_length(url)::bigint + octet_length(body)
                                   + coalesce(octet_length(signature), 0) + coalesce(octet_length(idempotency_token), 0)) THEN
        rejection := crefinder.webhook_reject('twilio', NULL, 400, 'too_large',
                                              format('%s bytes, over crefinder.webhook_max_bytes', octet_length(body)),
                                              body);
        RETURN;
    END IF;
    BEGIN
        params := crefinder.twilio_params(url, body);
    EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
        GET STACKED DIAGNOSTICS problem = MESSAGE_TEXT;
        rejection := crefinder.webhook_reject('twilio', NULL, 400, 'malformed', problem, body);
        RETURN;
    END;
    account := params ->> 'AccountSid';
    IF account IS NULL OR account !~ '^AC[0-9a-fA-F]{32}$' THEN
        rejection := crefinder.webhook_reject('twilio', NULL, 400, 'unknown_tenant', 'no AccountSid', body);
        RETURN;
    END IF;
    SELECT count(*) > 0,
           array_agg(c.user_id ORDER BY
                         (regexp_replace(params ->> 'To', '^whatsapp:', '') IN
                              (c.config ->> 'phoneNumber', regexp_replace(c.config ->> 'whatsappNumber', '^whatsapp:', ''))
                          OR params ->> 'MessagingServiceSid' = c.config ->> 'messagingServiceSid') DESC NULLS LAST,
                         c.created_at, c.user_id)
               FILTER (WHERE signature IS NOT NULL
                         AND crefinder.twilio_request_verified(c.user_id, c.secrets ->> 'authToken',
                                                               url, body, signature))
    INTO configured, tenants
    FROM crefinder.integration_configs c
    WHERE c.provider = 'twilio' AND c.config ->> 'accountSid' = account;
    IF NOT configured THEN
        rejection := crefinder.webhook_reject('twilio', NULL, 400, 'unknown_tenant',
                                              'no tenant has this AccountSid', body);
    ELSIF tenants IS NULL THEN
        rejection := crefinder.webhook_reject('twilio', NULL, 401, 'bad_signature',
                                              'X-Twilio-Signature does not match', body);
    END IF;
END
$$;

-- handle_twilio_webhook: a Twilio status callback or inbound message.
CREATE FUNCTION crefinder.handle_twilio_webhook(url text, body text, signature text,
                                                idempotency_token text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    signers record;
    params jsonb;
    tenant uuid;
    kind text;
    problem text;
    code text;
BEGIN
    signers := crefinder.twilio_signers(url, body, signature, idempotency_token);
    IF signers.rejection IS NOT NULL THEN
        RETURN signers.rejection;
    END IF;
    params := signers.params;
    tenant := signers.tenants[1];

    kind := CASE WHEN lower(coalesce(params ->> 'MessageStatus', params ->> 'SmsStatus', '')) = 'received'
                      OR (NOT params ? 'MessageStatus' AND params ? 'Body') THEN 'inbound'
                 ELSE 'status' END;
    BEGIN
        IF kind = 'inbound' THEN
            RETURN crefinder.twilio_inbound(tenant, params, idempotency_token);
        END IF;
        RETURN crefinder.twilio_status_callback(signers.tenants, params, idempotency_token, url);
    EXCEPTION WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded THEN
        GET STACKED DIAGNOSTICS problem = MESSAGE_TEXT, code = RETURNED_SQLSTATE;
        RETURN crefinder.webhook_reject('twilio', tenant, 400, 'malformed', code || ': ' || problem, body);
    END;
END
$$;

-- ----------------------------------------------------------------------
-- SendGrid
-- ----------------------------------------------------------------------

-- sendgrid_events: the events of a batch, one row each, as sendgrid_apply
-- reads them.  A function of its own so that the planner knows a batch
-- has many rows (ROWS): a join of a few hundred events to the messages
-- must be a probe of the primary key per event, not a rescan per message.
-- Only objects with an event and an sg_event_id are events; email is NULL
-- when it is no address.
CREATE FUNCTION crefinder.sendgrid_events(events jsonb)
    RETURNS TABLE (n bigint, event text, event_id text, email text, at timestamptz, rank integer,
                   bounce_type text, reason text, url text, claimed_id bigint, claimed_tenant text,
                   sg_prefix text, group_id text)
    LANGUAGE sql STABLE ROWS 500
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT x.n, x.e ->> 'event', x.e ->> 'sg_event_id',
           CASE WHEN lower(btrim(x.e ->> 'email')) ~ '^[^@[:space:]]+@[^@[:space:]]+$'
                     AND char_length(btrim(x.e ->> 'email')) <= 254
                THEN lower(btrim(x.e ->> 'email')) END,
           CASE WHEN jsonb_typeof(x.e -> 'timestamp') = 'number'
                     AND (x.e -> 'timestamp')::numeric BETWEEN 0 AND 32503680000000
                THEN to_timestamp(CASE WHEN (x.e -> 'timestamp')::numeric > 100000000000
                                       THEN (x.e -> 'timestamp')::numeric / 1000
                                       ELSE (x.e -> 'timestamp')::numeric END)
                ELSE now() END,
           CASE x.e ->> 'event'
               WHEN 'processed' THEN 1 WHEN 'deferred' THEN 2
               WHEN 'delivered' THEN 3 WHEN 'bounce' THEN 3 WHEN 'dropped' THEN 3
               WHEN 'open' THEN 4 WHEN 'click' THEN 5
               WHEN 'spamreport' THEN 6 WHEN 'unsubscribe' THEN 6 WHEN 'group_unsubscribe' THEN 6
               WHEN 'group_resubscribe' THEN 6 ELSE 0 END,
           x.e ->> 'type', left(coalesce(x.e ->> 'reason', x.e ->> 'response'), 1000), left(x.e ->> 'url', 2000),
           CASE WHEN x.e ->> 'crefinder_message_id' ~ '^[0-9]{1,18}$'
                THEN (x.e ->> 'crefinder_message_id')::bigint END,
           x.e ->> 'crefinder_tenant',
           split_part(x.e ->> 'sg_message_id', '.', 1),
           left(x.e ->> 'asm_group_id', 20)
    FROM jsonb_array_elements(events) WITH ORDINALITY AS x(e, n)
    WHERE jsonb_typeof(x.e) = 'object' AND x.e ->> 'event' IS NOT NULL
      AND x.e ->> 'sg_event_id' IS NOT NULL AND char_length(x.e ->> 'sg_event_id') <= 200
$$;

-- sendgrid_apply: the events of one verified batch for tenant, set-based:
-- one statement records them (new ones only) and changes the messages,
-- suppressions and opt-outs they speak of.  Returns how many were new.
CREATE FUNCTION crefinder.sendgrid_apply(tenant uuid, events jsonb) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    fresh_count integer;
    event_count integer;
BEGIN
    WITH located AS MATERIALIZED (
        SELECT DISTINCT ON (ev.event_id) ev.*,
               coalesce(by_id.id,
                        -- without crefinder's ids: the X-Message-Id and the address
                        CASE WHEN ev.claimed_id IS NULL AND ev.sg_prefix <> '' THEN
                            (SELECT by_prefix.id FROM crefinder.outbound_events by_prefix
                             WHERE by_prefix.provider_message_id = ev.sg_prefix AND by_prefix.user_id = tenant
                               AND by_prefix.channel = 'email' AND by_prefix.to_contact = ev.email
                             ORDER BY by_prefix.id LIMIT 1) END) AS message_id
        FROM crefinder.sendgrid_events(events) AS ev
        LEFT JOIN crefinder.outbound_events by_id
               ON by_id.id = ev.claimed_id AND by_id.user_id = tenant AND by_id.channel = 'email'
              AND (ev.claimed_tenant IS NULL OR ev.claimed_tenant = tenant::text)
        ORDER BY ev.event_id, ev.n
    ),
    recorded AS (
        INSERT INTO crefinder.webhook_events (user_id, provider, event_id, event_type, verified,
                                              http_status, outcome, message_id)
        SELECT tenant, 'sendgrid', l.event_id, left(l.event, 100), true, 200,
               CASE WHEN l.message_id IS NULL THEN 'unknown_message' ELSE 'applied' END, l.message_id
        FROM located l
        ON CONFLICT (provider, user_id, event_id)
            WHERE event_id IS NOT NULL AND verified AND outcome NOT IN ('duplicate', 'unknown_message')
            DO NOTHING
        RETURNING event_id
    ),
    marked AS MATERIALIZED (
        SELECT l.*, r.event_id IS NOT NULL AS is_new
        FROM located l LEFT JOIN recorded r ON r.event_id = l.event_id
    ),
    duplicates AS (
        INSERT INTO crefinder.webhook_events (user_id, provider, event_type, verified, http_status,
                                              outcome, message_id)
        SELECT tenant, 'sendgrid', left(m.event, 100), true, 200, 'duplicate', m.message_id
        FROM marked m WHERE NOT m.is_new
    ),
    per_message AS MATERIALIZED (
        SELECT f.message_id,
               min(f.at) FILTER (WHERE f.event IN ('delivered', 'open', 'click')) AS delivered_at,
               min(f.at) FILTER (WHERE f.event = 'open') AS opened_at,
               min(f.at) FILTER (WHERE f.event = 'click') AS clicked_at,
               min(f.at) FILTER (WHERE f.event = 'spamreport') AS complained_at,
               min(f.at) FILTER (WHERE f.event IN ('unsubscribe', 'group_unsubscribe')) AS opted_out_at,
               (array_agg(f.url ORDER BY f.at, f.n) FILTER (WHERE f.event = 'click'))[1] AS click_url,
               (array_agg(f.event || coalesce(': ' || f.reason, '') ORDER BY f.at DESC, f.n DESC)
                    FILTER (WHERE f.event IN ('bounce', 'dropped')))[1] AS failure,
               (array_agg(f.event ORDER BY f.rank DESC, f.at DESC, f.n DESC))[1] AS last_event,
               max(f.rank) AS last_rank
        FROM marked f WHERE f.is_new AND f.message_id IS NOT NULL
        GROUP BY f.message_id
    ),
    messages AS (
        UPDATE crefinder.outbound_events e SET
            status = CASE
                WHEN p.delivered_at IS NOT NULL AND e.status IN ('sending', 'sent', 'unknown', 'failed') THEN 'delivered'
                WHEN p.failure IS NOT NULL AND e.status IN ('sending', 'sent', 'unknown') THEN 'failed'
                ELSE e.status END,
            provider_status = CASE
                WHEN p.last_rank > CASE e.provider_status
                                        WHEN 'processed' THEN 1 WHEN 'deferred' THEN 2
                                        WHEN 'delivered' THEN 3 WHEN 'bounce' THEN 3 WHEN 'dropped' THEN 3
                                        WHEN 'open' THEN 4 WHEN 'click' THEN 5
                                        WHEN 'spamreport' THEN 6 WHEN 'unsubscribe' THEN 6
                                        WHEN 'group_unsubscribe' THEN 6 WHEN 'group_resubscribe' THEN 6
                                        ELSE 0 END
                THEN p.last_event ELSE e.provider_status END,
            delivered_at = coalesce(e.delivered_at, p.delivered_at),
            opened_at = coalesce(e.opened_at, p.opened_at),
            clicked_at = coalesce(e.clicked_at, p.clicked_at),
            complained_at = coalesce(e.complained_at, p.complained_at),
            opted_out_at = coalesce(e.opted_out_at, p.opted_out_at),
            click_url = coalesce(e.click_url, p.click_url),
            last_error = CASE WHEN p.failure IS NOT NULL AND p.delivered_at IS NULL
                                   AND e.status IN ('sending', 'sent', 'unknown')
                              THEN left('sendgrid ' || p.failure, 1000) ELSE e.last_error END,
            updated_at = now()
        FROM per_message p
        WHERE e.id = p.message_id AND e.user_id = tenant AND e.status <> 'queued'
    ),
    -- per address and event, the latest; the latest bounce says whether it
    -- was temporary (blocked)
    addresses AS MATERIALIZED (
        SELECT DISTINCT ON (f.email, f.event) f.email, f.event, f.reason, f.bounce_type, least(f.at, now()) AS at
        FROM marked f
        WHERE f.is_new AND f.email IS NOT NULL
          AND f.event IN ('bounce', 'dropped', 'spamreport', 'unsubscribe')
        ORDER BY f.email, f.event, f.at DESC, f.n DESC
    ),
    -- an unsubscribe group: the latest of an address's group events decides
    -- (a resubscribe lifts only that group's unsubscribe, and only one
    -- recorded before it happened)
    groups AS MATERIALIZED (
        SELECT DISTINCT ON (f.email, f.group_id) f.email, f.event, f.at,
               'sendgrid group_unsubscribe' || coalesce(' ' || f.group_id, '') AS source
        FROM marked f
        WHERE f.is_new AND f.email IS NOT NULL
          AND f.event IN ('group_unsubscribe', 'group_resubscribe')
        ORDER BY f.email, f.group_id, f.at DESC, f.event = 'group_resubscribe', f.n DESC
    ),
    -- (the opt-outs and suppressions made here date from their event, so
    -- that a resubscribe is compared with when the unsubscribe happened)
    suppressed AS (
        INSERT INTO crefinder.email_suppressions (user_id, email, reason, source, detail, created_at)
        SELECT tenant, a.email, a.event, 'sendgrid', a.reason, a.at
        FROM addresses a
        WHERE a.event IN ('dropped', 'spamreport', 'unsubscribe')
           OR (a.event = 'bounce' AND a.bounce_type IS DISTINCT FROM 'blocked')
        UNION ALL
        SELECT tenant, g.email, 'group_unsubscribe', 'sendgrid', g.source, least(g.at, now())
        FROM groups g WHERE g.event = 'group_unsubscribe'
        ON CONFLICT DO NOTHING
    ),
    opted_out AS (
        INSERT INTO crefinder.opt_outs (user_id, channel, contact, source, created_at)
        SELECT tenant, 'email', a.email, 'sendgrid unsubscribe', a.at FROM addresses a WHERE a.event = 'unsubscribe'
        UNION ALL
        SELECT tenant, 'email', g.email, g.source, least(g.at, now()) FROM groups g WHERE g.event = 'group_unsubscribe'
        ON CONFLICT DO NOTHING
    ),
    opted_in AS (
        UPDATE crefinder.opt_outs o SET revoked_at = now(), revoked_source = 'sendgrid group_resubscribe'
        FROM groups g
        WHERE g.event = 'group_resubscribe' AND o.user_id = tenant AND o.contact = g.email
          AND o.channel = 'email' AND o.revoked_at IS NULL AND o.source = g.source AND o.created_at <= g.at
          AND EXISTS (SELECT 1 FROM groups r WHERE r.event = 'group_resubscribe')
    ),
    resubscribed AS (
        UPDATE crefinder.email_suppressions x SET removed_at = now()
        FROM groups g
        WHERE g.event = 'group_resubscribe' AND x.user_id = tenant AND x.email = g.email
          AND x.reason = 'group_unsubscribe' AND x.detail = g.source AND x.removed_at IS NULL
          AND x.created_at <= g.at
          AND EXISTS (SELECT 1 FROM groups r WHERE r.event = 'group_resubscribe')
    )
    SELECT count(*) FILTER (WHERE is_new), count(*) INTO fresh_count, event_count FROM marked;
    -- every element was an event (the usual batch): nothing more to record
    IF event_count = jsonb_array_length(events) THEN
        RETURN fresh_count;
    END IF;

    -- elements that are no event (not an object, no event or sg_event_id)
    -- are counted, in one row with the first of them, for the operator; the
    -- others of the batch still count
    INSERT INTO crefinder.webhook_events (user_id, provider, event_type, verified, http_status, outcome,
                                          payload, error)
    SELECT tenant, 'sendgrid', NULL, true, 200, 'malformed', left(jsonb_agg(x.e)::text, 4000),
           format('%s elements of the batch are not events (an object with event and sg_event_id)', count(*))
    FROM (SELECT y.e FROM jsonb_array_elements(events) AS y(e)
          WHERE jsonb_typeof(y.e) <> 'object' OR y.e ->> 'sg_event_id' IS NULL OR y.e ->> 'event' IS NULL
             OR char_length(y.e ->> 'sg_event_id') > 200) AS x
    HAVING count(*) > 0;
    RETURN fresh_count;
END
$$;

-- handle_sendgrid_events: a batch of the Event Webhook for tenant (the
-- route knows the tenant from its own URL; the signature proves it).
CREATE FUNCTION crefinder.handle_sendgrid_events(body text, signature text, "timestamp" text, tenant uuid)
    RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    public_key text;
    events jsonb;
    problem text;
    code text;
BEGIN
    IF body IS NULL OR tenant IS NULL THEN
        RETURN crefinder.webhook_reject('sendgrid', NULL, 400, 'malformed', 'body and tenant are required', body);
    END IF;
    IF crefinder.webhook_too_large(octet_length(body)::bigint + coalesce(octet_length(signature), 0)
                                   + coalesce(octet_length("timestamp"), 0)) THEN
        RETURN crefinder.webhook_reject('sendgrid', NULL, 400, 'too_large',
                                        format('%s bytes, over crefinder.webhook_max_bytes', octet_length(body)),
                                        body);
    END IF;
    SELECT c.config ->> 'eventWebhookPublicKey' INTO public_key
    FROM crefinder.integration_configs c WHERE c.user_id = tenant AND c.provider = 'sendgrid';
    IF NOT FOUND THEN
        RETURN crefinder.webhook_reject('sendgrid', NULL, 400, 'unknown_tenant',
                                        'the tenant has no SendGrid settings', body);
    END IF;
    IF public_key IS NULL OR signature IS NULL OR "timestamp" IS NULL
       OR NOT crefinder.sendgrid_signature_valid(public_key, "timestamp", body, signature) THEN
        RETURN crefinder.webhook_reject('sendgrid', NULL, 401, 'bad_signature',
                                        CASE WHEN public_key IS NULL THEN 'no eventWebhookPublicKey configured'
                                             ELSE 'the Event Webhook signature does not match' END, body);
    END IF;
    IF crefinder.webhook_stale("timestamp") THEN
        RETURN crefinder.webhook_reject('sendgrid', NULL, 401, 'stale',
                                        'the timestamp is outside crefinder.webhook_tolerance (a replay?)', body);
    END IF;
    BEGIN
        events := body::jsonb;
        IF jsonb_typeof(events) <> 'array' THEN
            RAISE EXCEPTION 'the Event Webhook body must be a JSON array' USING ERRCODE = 'invalid_text_representation';
        END IF;
        -- SendGrid posts batches of at most a few thousand events
        IF jsonb_array_length(events) > 10000 THEN
            RAISE EXCEPTION 'a batch has at most 10,000 events, this one %', jsonb_array_length(events)
                USING ERRCODE = 'program_limit_exceeded';
        END IF;
        PERFORM crefinder.sendgrid_apply(tenant, events);
    EXCEPTION WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded THEN
        GET STACKED DIAGNOSTICS problem = MESSAGE_TEXT, code = RETURNED_SQLSTATE;
        RETURN crefinder.webhook_reject('sendgrid', tenant, 400, 'malformed', code || ': ' || problem, body);
    END;
    RETURN crefinder.webhook_answer(200, 'text/plain', 'ok');
END
$$;

-- ----------------------------------------------------------------------
-- Vapi
-- ----------------------------------------------------------------------

-- vapi_status_rank: how far along a call is.
CREATE FUNCTION crefinder.vapi_status_rank(status text) RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE status
        WHEN 'scheduled' THEN 1 WHEN 'queued' THEN 2 WHEN 'ringing' THEN 3
        WHEN 'in-progress' THEN 4 WHEN 'forwarding' THEN 5 WHEN 'ended' THEN 6
        ELSE 0 END
$$;

-- vapi_call_outcome: what an endedReason says of a call: answered (a
-- conversation took place), unanswered (busy, no answer, voicemail,
-- cancelled), or failed (every other reason, unknown ones included).
CREATE FUNCTION crefinder.vapi_call_outcome(ended_reason text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE
        WHEN ended_reason IS NULL THEN NULL
        WHEN ended_reason IN ('customer-ended-call', 'assistant-ended-call', 'assistant-said-end-call-phrase',
                              'assistant-ended-call-after-message-spoken', 'assistant-ended-call-with-hangup-task',
                              'assistant-forwarded-call', 'exceeded-max-duration', 'silence-timed-out',
                              'customer-ended-call-after-warm-transfer-attempt')
            THEN 'answered'
        WHEN ended_reason IN ('customer-busy', 'customer-did-not-answer', 'voicemail', 'manually-canceled',
                              'customer-did-not-give-microphone-permission')
            THEN 'unanswered'
        ELSE 'failed' END
$$;

-- vapi_headers: the request's headers with lower-case names and text values
-- (the first of a repeated header).
CREATE FUNCTION crefinder.vapi_headers(headers jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce(jsonb_object_agg(k, v), '{}')
    FROM (SELECT DISTINCT ON (lower(h.key)) lower(h.key) AS k,
                 CASE jsonb_typeof(h.value) WHEN 'string' THEN h.value
                                            WHEN 'array' THEN h.value -> 0 END AS v
          FROM jsonb_each(CASE WHEN jsonb_typeof(headers) = 'object' THEN headers END) AS h
          WHERE jsonb_typeof(h.value) = 'string'
             OR (jsonb_typeof(h.value) = 'array' AND jsonb_typeof(h.value -> 0) = 'string')
          ORDER BY lower(h.key), h.key) AS t
$$;

-- vapi_call_ended: a call of tenant ended: provider_status ended, its
-- outcome on the message, and the calls waiting for a free line go.
CREATE FUNCTION crefinder.vapi_call_ended(tenant uuid, message_id bigint, ended_reason text, spoke boolean)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    outcome text := crefinder.vapi_call_outcome(ended_reason);
BEGIN
    IF message_id IS NOT NULL THEN
        UPDATE crefinder.outbound_events e SET
            provider_status = 'ended',
            status = CASE
                WHEN (outcome = 'answered' OR spoke) AND e.status IN ('sending', 'sent', 'unknown', 'failed')
                    THEN 'delivered'
                WHEN outcome = 'failed' AND NOT spoke AND e.status IN ('sending', 'sent', 'unknown') THEN 'failed'
                WHEN e.status IN ('sending', 'unknown') THEN 'sent'
                ELSE e.status END,
            sent_at = coalesce(e.sent_at, now()),
            delivered_at = CASE WHEN outcome = 'answered' OR spoke THEN coalesce(e.delivered_at, now())
                                ELSE e.delivered_at END,
            last_error = CASE WHEN outcome = 'failed' AND NOT spoke AND e.status IN ('sending', 'sent', 'unknown')
                              THEN left('vapi ' || ended_reason, 1000) ELSE e.last_error END,
            hold_reason = NULL,
            -- nothing more to ask Vapi once the cost is known (72_lookups.sql)
            lookup_at = CASE WHEN e.cost_cents IS NOT NULL THEN NULL ELSE e.lookup_at END,
            updated_at = now()
        WHERE e.user_id = tenant AND e.id = message_id AND e.channel = 'voice' AND e.status <> 'queued'
          AND (e.provider_status IS DISTINCT FROM 'ended' OR ended_reason IS NOT NULL);
    END IF;
    PERFORM crefinder.release_tenant_calls(tenant);
END
$$;

-- vapi_end_of_call: Vapi's end-of-call report: the call's result, what
-- the owner said (analyze_transcript, or Vapi's own structured analysis),
-- the property's last call, an opt-out asked for on the call.
CREATE FUNCTION crefinder.vapi_end_of_call(tenant uuid, message_id bigint, vapi_call_id text, msg jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    artifact jsonb := CASE WHEN jsonb_typeof(msg -> 'artifact') = 'object' THEN msg -> 'artifact' ELSE '{}' END;
    vapi_analysis jsonb := CASE WHEN jsonb_typeof(msg -> 'analysis') = 'object' THEN msg -> 'analysis' ELSE '{}' END;
    ended_reason text := left(coalesce(msg ->> 'endedReason', msg #>> '{call,endedReason}'), 200);
    transcript text := left(coalesce(artifact ->> 'transcript', msg ->> 'transcript', ''), 200000);
    started timestamptz := crefinder.try_timestamp(coalesce(msg -> 'startedAt', msg #> '{call,startedAt}'));
    ended timestamptz := crefinder.try_timestamp(coalesce(msg -> 'endedAt', msg #> '{call,endedAt}'));
    cost numeric;
    structured jsonb := CASE WHEN jsonb_typeof(vapi_analysis -> 'structuredData') = 'object'
                             THEN vapi_analysis -> 'structuredData' END;
    reading jsonb;
    analysis jsonb;
    spoke boolean;
    m record;
    kind text;
    number text;
    reported boolean;
BEGIN
    -- (a dollar figure cost_cents can hold)
    cost := CASE WHEN jsonb_typeof(msg -> 'cost') = 'number' AND (msg ->> 'cost')::numeric >= 0
                      AND (msg ->> 'cost')::numeric < 1000000
                 THEN (msg ->> 'cost')::numeric END;
    spoke := transcript ~* '(^|\n)\s*(user|customer)\s*:\s*\S';
    -- crefinder's reading, and Vapi's structured analysis over it where it
    -- speaks of the same things
    reading := crefinder.analyze_transcript(transcript);
    analysis := reading;
    IF structured IS NOT NULL THEN
        analysis := analysis || jsonb_strip_nulls(jsonb_build_object(
            'interest_level', CASE WHEN jsonb_typeof(structured -> 'interest_level') = 'number'
                                        AND (structured ->> 'interest_level')::numeric BETWEEN 1 AND 5
                                   THEN round((structured ->> 'interest_level')::numeric)::integer END,
            'opted_out', CASE WHEN jsonb_typeof(structured -> 'opted_out') = 'boolean'
                              THEN structured -> 'opted_out' END,
            'wrong_number', CASE WHEN jsonb_typeof(structured -> 'wrong_number') = 'boolean'
                                 THEN structured -> 'wrong_number' END,
            'needs_follow_up', CASE WHEN jsonb_typeof(structured -> 'needs_follow_up') = 'boolean'
                                    THEN structured -> 'needs_follow_up' END,
            'contains_interest', CASE WHEN jsonb_typeof(structured -> 'contains_interest') = 'boolean'
                                      THEN structured -> 'contains_interest' END));
        -- an opt-out heard by either reading counts
        IF (reading ->> 'opted_out')::boolean THEN
            analysis := analysis || '{"opted_out": true}';
        END IF;
    END IF;
    IF jsonb_typeof(vapi_analysis -> 'summary') = 'string' THEN
        analysis := analysis || jsonb_build_object('summary', left(vapi_analysis ->> 'summary', 2000));
    END IF;

    SELECT e.id, e.to_contact, e.property_id INTO m FROM crefinder.outbound_events e
    WHERE e.user_id = tenant AND e.id = message_id;
    -- a second report of the same call (Vapi's, after a lookup read the
    -- ended call) updates the call's record but is not a second answer
    reported := CASE WHEN m.id IS NOT NULL
                     THEN EXISTS (SELECT 1 FROM crefinder.responses r
                                  WHERE r.user_id = tenant AND r.message_id = m.id AND r.source = 'call')
                     ELSE EXISTS (SELECT 1 FROM crefinder.call_results r
                                  WHERE r.user_id = tenant AND r.call_id = vapi_call_id AND r.status = 'ended') END;

    INSERT INTO crefinder.call_results AS r (user_id, call_id, message_id, property_id, status, ended_reason,
                                             started_at, ended_at, duration_seconds, cost, transcript,
                                             recording_url, stereo_recording_url, summary, structured_data,
                                             success_evaluation, analysis)
    VALUES (tenant, vapi_call_id, m.id, m.property_id, 'ended', ended_reason, started, ended,
            CASE WHEN ended >= started AND ended - started < interval '1 day'
                 THEN extract(epoch FROM ended - started) END,
            cost, transcript,
            left(coalesce(artifact ->> 'recordingUrl', msg ->> 'recordingUrl'), 2000),
            left(coalesce(artifact ->> 'stereoRecordingUrl', msg ->> 'stereoRecordingUrl'), 2000),
            analysis ->> 'summary', structured, left(vapi_analysis ->> 'successEvaluation', 1000), analysis)
    ON CONFLICT (user_id, call_id) DO UPDATE SET
        message_id = coalesce(r.message_id, excluded.message_id),
        property_id = coalesce(r.property_id, excluded.property_id),
        status = 'ended', ended_reason = excluded.ended_reason,
        started_at = excluded.started_at, ended_at = excluded.ended_at,
        duration_seconds = excluded.duration_seconds, cost = excluded.cost,
        transcript = CASE WHEN excluded.transcript <> '' THEN excluded.transcript ELSE r.transcript END,
        recording_url = excluded.recording_url, stereo_recording_url = excluded.stereo_recording_url,
        summary = excluded.summary, structured_data = excluded.structured_data,
        success_evaluation = excluded.success_evaluation, analysis = excluded.analysis,
        updated_at = now();

    IF m.id IS NOT NULL AND cost IS NOT NULL THEN
        UPDATE crefinder.outbound_events e SET cost_cents = round(cost * 100, 4), updated_at = now()
        WHERE e.user_id = tenant AND e.id = m.id;
    END IF;
    PERFORM crefinder.vapi_call_ended(tenant, m.id, coalesce(ended_reason, 'unknown'), spoke);

    number := coalesce(m.to_contact, crefinder.try_phone(coalesce(msg #>> '{customer,number}',
                                                                  msg #>> '{call,customer,number}')));
    IF (analysis ->> 'opted_out')::boolean AND number IS NOT NULL THEN
        PERFORM crefinder.record_opt_out(tenant, 'voice', number, 'vapi call: asked not to be called');
    END IF;
    IF m.property_id IS NOT NULL THEN
        UPDATE crefinder.property_records p SET
            last_call_at = coalesce(ended, now()),
            last_call_result = left(coalesce(ended_reason, 'ended'), 200),
            interest_level = CASE WHEN spoke OR structured IS NOT NULL
                                  THEN (analysis ->> 'interest_level')::smallint ELSE p.interest_level END,
            call_notes = left(analysis ->> 'summary', 2000),
            updated_at = now()
        WHERE p.user_id = tenant AND p.id = m.property_id;
    END IF;
    IF (spoke OR structured IS NOT NULL) AND NOT reported THEN
        kind := CASE
            WHEN (analysis ->> 'opted_out')::boolean THEN 'opt_out'
            WHEN (analysis ->> 'wrong_number')::boolean THEN 'wrong_number'
            WHEN (analysis ->> 'interest_level')::integer >= 4 THEN 'interested'
            WHEN (analysis ->> 'interest_level')::integer <= 2 THEN 'not_interested'
            WHEN (analysis ->> 'needs_follow_up')::boolean THEN 'callback_later'
            ELSE 'unknown' END;
        PERFORM crefinder.store_response(tenant, m.id, 'voice', kind, analysis ->> 'summary', 'call', NULL,
                                         coalesce(ended, now()));
    END IF;
END
$$;

-- vapi_process: one verified Vapi server message of tenant.
CREATE FUNCTION crefinder.vapi_process(tenant uuid, message_id bigint, vapi_call_id text, msg jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    kind text := msg ->> 'type';
    event_row bigint;
    new_status text;
    line text;
    stamp text := coalesce(msg ->> 'timestamp', '');
    answer jsonb := '{}';
BEGIN
    -- questions Vapi waits on are answered every time they are asked
    IF kind = 'tool-calls' THEN
        answer := jsonb_build_object('results', coalesce((
            SELECT jsonb_agg(jsonb_build_object('toolCallId', t ->> 'id',
                                                'result', 'No such tool is available for this call.'))
            FROM jsonb_array_elements(CASE WHEN jsonb_typeof(msg -> 'toolCallList') = 'array'
                                           THEN msg -> 'toolCallList' ELSE '[]' END) AS t
            WHERE jsonb_typeof(t) = 'object' AND jsonb_typeof(t -> 'id') = 'string'), '[]'));
    ELSIF kind = 'assistant-request' THEN
        answer := coalesce((SELECT jsonb_build_object('assistantId', c.config ->> 'assistantId')
                            FROM crefinder.integration_configs c
                            WHERE c.user_id = tenant AND c.provider = 'vapi' AND c.config ? 'assistantId'),
                           '{"error": "No assistant is configured for this number."}');
    END IF;

    INSERT INTO crefinder.webhook_events (user_id, provider, event_id, event_type, verified, http_status,
                                          outcome, message_id)
    VALUES (tenant, 'vapi',
            CASE WHEN vapi_call_id IS NOT NULL AND kind NOT IN ('tool-calls', 'assistant-request')
                 THEN left(vapi_call_id || ':' || kind || ':' || stamp || ':'
                           || CASE WHEN kind = 'status-update' THEN coalesce(msg ->> 'status', '')
                                   WHEN kind = 'transcript' THEN md5(coalesce(msg ->> 'transcript', ''))
                                   ELSE '' END, 400) END,
            left(kind, 100), true, 200,
            CASE WHEN kind IN ('status-update', 'end-of-call-report', 'transcript')
                      AND message_id IS NULL THEN 'unknown_message'
                 WHEN kind IN ('status-update', 'end-of-call-report', 'transcript', 'tool-calls',
                               'assistant-request') THEN 'applied'
                 ELSE 'ignored' END,
            message_id)
    ON CONFLICT DO NOTHING
    RETURNING id INTO event_row;
    IF event_row IS NULL THEN
        PERFORM crefinder.webhook_duplicate('vapi', tenant, kind);
        RETURN crefinder.webhook_answer(200, 'application/json', answer::text);
    END IF;

    IF kind = 'status-update' THEN
        new_status := left(msg ->> 'status', 32);
        IF message_id IS NOT NULL THEN
            PERFORM crefinder.vapi_set_status(tenant, message_id, new_status);
        END IF;
        IF new_status = 'ended' THEN
            PERFORM crefinder.vapi_call_ended(tenant, message_id,
                                              left(coalesce(msg ->> 'endedReason', msg #>> '{call,endedReason}'), 200),
                                              false);
        END IF;
    ELSIF kind = 'end-of-call-report' THEN
        IF vapi_call_id IS NULL THEN
            RAISE EXCEPTION 'an end-of-call report needs the call''s id' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM crefinder.vapi_end_of_call(tenant, message_id, vapi_call_id, msg);
    ELSIF kind = 'transcript' AND msg ->> 'transcriptType' = 'final' AND vapi_call_id IS NOT NULL
          AND jsonb_typeof(msg -> 'transcript') = 'string' THEN
        line := format('%s: %s', CASE WHEN msg ->> 'role' IN ('user', 'customer') THEN 'User' ELSE 'AI' END,
                       left(msg ->> 'transcript', 10000));
        INSERT INTO crefinder.call_results AS r (user_id, call_id, message_id, property_id, status, transcript)
        SELECT tenant, vapi_call_id, e.id, e.property_id, 'in-progress', line
        FROM (SELECT 1) AS one
        LEFT JOIN crefinder.outbound_events e ON e.user_id = tenant AND e.id = message_id
        ON CONFLICT (user_id, call_id) DO UPDATE SET
            transcript = CASE WHEN r.status = 'ended' THEN r.transcript
                              ELSE left(r.transcript || CASE WHEN r.transcript = '' THEN '' ELSE E'\n' END
                                        || excluded.transcript, 200000) END,
            updated_at = now();
    END IF;
    RETURN crefinder.webhook_answer(200, 'application/json', answer::text);
END
$$;

-- handle_vapi_message: a Vapi server message.  The tenant is the one the
-- call's metadata names (crefinder's own ids, sent with every call) or the
-- one whose call it is; its webhookSecret must authenticate the request:
-- the X-Vapi-Secret header by default, Vapi's HMAC signature (x-signature
-- over "{x-timestamp}.{body}", timestamp within crefinder.webhook_tolerance)
-- when the tenant's setting webhookHmac is true.
CREATE FUNCTION crefinder.handle_vapi_message(body text, headers jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    doc jsonb;
    msg jsonb;
    h jsonb;
    call_id text;
    claimed_tenant uuid;
    claimed_message bigint;
    tenant uuid;
    message_id bigint;
    cfg record;
    candidates integer := 0;
    authentic boolean;
    problem text;
    code text;
BEGIN
    IF body IS NULL THEN
        RETURN crefinder.webhook_reject('vapi', NULL, 400, 'malformed', 'body is required', body, headers);
    END IF;
    IF crefinder.webhook_too_large(octet_length(body)::bigint + coalesce(octet_length(headers::text), 0)) THEN
        RETURN crefinder.webhook_reject('vapi', NULL, 400, 'too_large',
                                        format('%s bytes, over crefinder.webhook_max_bytes', octet_length(body)),
                                        body);
    END IF;
    BEGIN
        doc := body::jsonb;
        h := crefinder.vapi_headers(headers);
    EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
        GET STACKED DIAGNOSTICS problem = MESSAGE_TEXT;
        RETURN crefinder.webhook_reject('vapi', NULL, 400, 'malformed', problem, body, headers);
    END;
    msg := CASE WHEN jsonb_typeof(doc) = 'object' AND jsonb_typeof(doc -> 'message') = 'object'
                THEN doc -> 'message' END;
    IF msg IS NULL OR jsonb_typeof(msg -> 'type') IS DISTINCT FROM 'string' THEN
        RETURN crefinder.webhook_reject('vapi', NULL, 400, 'malformed',
                                        'a Vapi server message is {"message": {"type": ...}}', body, headers);
    END IF;
    call_id := CASE WHEN jsonb_typeof(msg #> '{call,id}') = 'string' AND char_length(msg #>> '{call,id}') <= 200
                    THEN msg #>> '{call,id}' END;
    -- who the message claims to be for: crefinder's metadata, else the call
    BEGIN
        claimed_tenant := CASE WHEN msg #>> '{call,assistantOverrides,metadata,crefinder_tenant}'
                                    ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                               THEN (msg #>> '{call,assistantOverrides,metadata,crefinder_tenant}')::uuid END;
        claimed_message := CASE WHEN msg #>> '{call,assistantOverrides,metadata,crefinder_message_id}' ~ '^[0-9]{1,18}$'
                                THEN (msg #>> '{call,assistantOverrides,metadata,crefinder_message_id}')::bigint END;
    EXCEPTION WHEN data_exception THEN
        claimed_tenant := NULL;
        claimed_message := NULL;
    END;
    -- The tenants it may be for, most specific first: the one crefinder's
    -- metadata names, the ones whose call it is, whose Vapi phone number
    -- or org it names.  The first whose secret authenticates it is the
    -- tenant; none is chosen by any other rule, so a tenant that claims
    -- another's org or number gains nothing and blocks nothing.
    FOR cfg IN
        SELECT c.user_id, c.secrets ->> 'webhookSecret' AS sealed,
               coalesce((c.config ->> 'webhookHmac')::boolean, false) AS hmac
        FROM crefinder.integration_configs c
        JOIN (SELECT claimed_tenant AS user_id, 1 AS priority
              UNION ALL
              SELECT e.user_id, 2 FROM crefinder.outbound_events e
              WHERE call_id IS NOT NULL AND e.provider_message_id = call_id AND e.channel = 'voice'
              UNION ALL
              SELECT c2.user_id, 3 FROM crefinder.integration_configs c2
              WHERE c2.provider = 'vapi' AND jsonb_typeof(msg #> '{call,phoneNumberId}') = 'string'
                AND c2.config ->> 'phoneNumber' = msg #>> '{call,phoneNumberId}'
              UNION ALL
              SELECT c3.user_id, 4 FROM crefinder.integration_configs c3
              WHERE c3.provider = 'vapi' AND jsonb_typeof(msg #> '{call,orgId}') = 'string'
                AND c3.config ->> 'orgId' = msg #>> '{call,orgId}') AS k ON k.user_id = c.user_id
        WHERE c.provider = 'vapi'
        GROUP BY c.user_id, c.secrets, c.config
        ORDER BY min(k.priority), c.user_id
        LIMIT 20
    LOOP
        candidates := candidates + 1;
        IF cfg.sealed IS NULL THEN
            CONTINUE;
        ELSIF cfg.hmac THEN
            authentic := h ->> 'x-signature' IS NOT NULL AND h ->> 'x-timestamp' IS NOT NULL
                         AND crefinder.vapi_request_verified(cfg.user_id, cfg.sealed, h ->> 'x-timestamp', body,
                                                             h ->> 'x-signature');
            IF authentic AND crefinder.webhook_stale(h ->> 'x-timestamp') THEN
                RETURN crefinder.webhook_reject('vapi', NULL, 401, 'stale',
                                                'x-timestamp is outside crefinder.webhook_tolerance (a replay?)',
                                                body, headers);
            END IF;
        ELSE
            authentic := coalesce(crefinder.vapi_secret_verified(
                             cfg.user_id, cfg.sealed,
                             coalesce(h ->> 'x-vapi-secret', substring(h ->> 'authorization' FROM '^Bearer (.*)$'))),
                             false);
        END IF;
        IF authentic THEN
            tenant := cfg.user_id;
            EXIT;
        END IF;
    END LOOP;
    IF candidates = 0 THEN
        RETURN crefinder.webhook_reject('vapi', NULL, 400, 'unknown_tenant',
                                        'no tenant with Vapi settings is named by the message', body, headers);
    END IF;
    IF tenant IS NULL THEN
        RETURN crefinder.webhook_reject('vapi', NULL, 401, 'bad_signature',
                                        'the webhook secret or signature does not match', body, headers);
    END IF;

    -- the call, among the proven tenant's own messages only
    SELECT e.id INTO message_id FROM crefinder.outbound_events e
    WHERE e.user_id = tenant AND e.channel = 'voice'
      AND (e.id = claimed_message OR (call_id IS NOT NULL AND e.provider_message_id = call_id))
    ORDER BY e.id = claimed_message DESC NULLS LAST LIMIT 1
    FOR UPDATE;
    BEGIN
        RETURN crefinder.vapi_process(tenant, message_id, call_id, msg);
    EXCEPTION WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded THEN
        GET STACKED DIAGNOSTICS problem = MESSAGE_TEXT, code = RETURNED_SQLSTATE;
        RETURN crefinder.webhook_reject('vapi', tenant, 400, 'malformed', code || ': ' || problem, body, headers);
    END;
END
$$;

-- grant_webhook_access(role): what the web route's role needs to hand
-- webhooks over, and nothing else: the schema and the three handlers.
CREATE FUNCTION crefinder.grant_webhook_access(role regrole) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA crefinder TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION crefinder.handle_twilio_webhook(text, text, text, text), '
                   'crefinder.handle_twilio_voice_webhook(text, text, text, text), '
                   'crefinder.handle_sendgrid_events(text, text, text, uuid), '
                   'crefinder.handle_vapi_message(text, jsonb) TO %s', role);
END
$$;

-- C: the signature checks that need a tenant's sealed secret.  The secret
-- is opened inside, used and wiped; it never becomes an SQL value.
CREATE FUNCTION crefinder.twilio_request_verified(tenant uuid, sealed_token text, url text, body text,
                                                  signature text)
    RETURNS boolean
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'crefinder_twilio_request_verified';

CREATE FUNCTION crefinder.vapi_request_verified(tenant uuid, sealed_secret text, "timestamp" text, body text,
                                                signature text)
    RETURNS boolean
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'crefinder_vapi_request_verified';

CREATE FUNCTION crefinder.vapi_secret_verified(tenant uuid, sealed_secret text, given text)
    RETURNS boolean
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'crefinder_vapi_secret_verified';
