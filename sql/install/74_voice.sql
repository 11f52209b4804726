-- Twilio voice: the TwiML of bridge calls and voicemail drops, and what
-- Twilio reports about them.  handle_twilio_voice_webhook() is the
-- tenant's voiceWebhookUrl: Twilio fetches it when a call is answered,
-- after a key is pressed or a <Dial> ends, and posts the call's status
-- callbacks to it.  The dispatcher put the message id and the step in the
-- URL (crefinder_message_id, crefinder_step; src/twilio_call.c) and
-- Twilio signs the URL: a request proves its tenant (AccountSid and that
-- tenant's auth token, as for texts) and its message (one of the tenant's
-- calls; once Twilio's CallSid is known, the request's must match it).
--
-- The flows:
--   bridge (channel call): the agent answers and hears who the owner is;
--     pressing 1 dials the owner from the tenant's number (the recording,
--     when the call records, is announced to the owner where the owner's
--     state needs every party's consent); the <Dial>'s end tells whether
--     the owner answered (delivered) and how long they talked (a response
--     past bridge_response_seconds).
--   voicemail drop (channel voicemail): answering-machine detection waits
--     for the greeting's end; a machine gets the message after the beep,
--     naming the business and the number to call back; a person gets it
--     inside a menu announced at the outset: 1 connects the tenant's
--     agent (when set), 9 opts the number out of every phone channel,
--     confirmed by voice.
--   inbound calls to the tenant's number (the callback number a drop
--     gives): the same menu, so that a callback can always opt out.
-- Status callbacks never move a call back (a late "ringing" after
-- "completed" changes nothing) and count once each.

-- twilio_call_rank: how far along a Twilio call status is.
CREATE FUNCTION crefinder.twilio_call_rank(status text) RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE status
        WHEN 'queued' THEN 1 WHEN 'initiated' THEN 2 WHEN 'ringing' THEN 3 WHEN 'in-progress' THEN 4
        WHEN 'completed' THEN 5 WHEN 'busy' THEN 5 WHEN 'no-answer' THEN 5 WHEN 'failed' THEN 5
        WHEN 'canceled' THEN 5
        ELSE 0 END
$$;

-- An agent takes one bridge call at a time: the dispatcher looks for the
-- agent's bridge in progress, and a bridge that ends releases the next.
-- (a bridge that ended leaves it: an agent's history is not scanned)
CREATE INDEX outbound_events_bridges_idx ON crefinder.outbound_events (user_id, (payload ->> 'agent_number'))
    WHERE channel = 'call' AND status IN ('sending', 'sent', 'unknown')
      AND crefinder.twilio_call_rank(provider_status) < 5;
CREATE INDEX outbound_events_agent_busy_idx ON crefinder.outbound_events (user_id, (payload ->> 'agent_number'))
    WHERE channel = 'call' AND status = 'queued' AND hold_reason = 'agent_busy';

-- xml_text: text escaped for XML content and attribute values, without the
-- characters XML 1.0 forbids.
CREATE FUNCTION crefinder.xml_text(value text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT replace(replace(replace(replace(replace(
               regexp_replace(value, '[\x01-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]', '', 'g'),
               '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&apos;')
$$;

-- twiml_say: one <Say>; nothing for nothing to say (Twilio refuses an
-- empty <Say>).
CREATE FUNCTION crefinder.twiml_say(words text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN nullif(btrim(crefinder.xml_text(words)), '') IS NULL THEN ''
                ELSE '<Say>' || crefinder.xml_text(words) || '</Say>' END
$$;

-- twiml_answer: a TwiML document of verbs, as the route answers it.
CREATE FUNCTION crefinder.twiml_answer(verbs text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT crefinder.webhook_answer(200, 'text/xml',
                                    '<?xml version="1.0" encoding="UTF-8"?><Response>' || coalesce(verbs, '')
                                    || '</Response>')
$$;

-- spoken_number: a phone number as it should be read out, digit by digit
-- in its groups (+13055550100: "3 0 5, 5 5 5, 0 1 0 0").
CREATE FUNCTION crefinder.spoken_number(number text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN number ~ '^\+1[0-9]{10}$'
                THEN concat_ws(', ', regexp_replace(substr(number, 3, 3), '(.)(?!$)', '\1 ', 'g'),
                               regexp_replace(substr(number, 6, 3), '(.)(?!$)', '\1 ', 'g'),
                               regexp_replace(substr(number, 9, 4), '(.)(?!$)', '\1 ', 'g'))
                ELSE regexp_replace(ltrim(number, '+'), '(.)(?!$)', '\1 ', 'g') END
$$;

-- voice_step_url: the URL of a step of message_id's flow, built from the
-- URL Twilio fetched (its crefinder_step replaced, so that every step is
-- signed by the same route).
CREATE FUNCTION crefinder.voice_step_url(url text, step text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN url ~ '[?&]crefinder_step=[a-z_]*'
                THEN regexp_replace(url, '([?&])crefinder_step=[a-z_]*', '\1crefinder_step=' || step)
                ELSE url || CASE WHEN url LIKE '%?%' THEN '&' ELSE '?' END || 'crefinder_step=' || step END
$$;

-- twilio_call_set_status: a call status (from a callback, the voice URL
-- or a lookup) on message_id, never moving it back; applied only to calls
-- that were placed (not queued, blocked, skipped or cancelled).  A
-- voicemail drop is delivered when its message is played (the answer step;
-- a fax undoes it), a bridge call when the owner answers (the dial step).  A call that
-- ended gets its price by a lookup a minute later.  Returns whether the
-- status moved on.
CREATE FUNCTION crefinder.twilio_call_set_status(message_id bigint, new_status text, sid text,
                                                 answered_by text, duration integer)
    RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    final boolean := crefinder.twilio_call_rank(new_status) = 5;
    m record;
    applied boolean;
BEGIN
    SELECT e.user_id, e.property_id, e.channel, e.payload ->> 'agent_number' AS agent
    INTO m FROM crefinder.outbound_events e
    WHERE e.id = message_id AND e.channel IN ('call', 'voicemail')
      AND (e.status IN ('sending', 'sent', 'delivered', 'unknown')
           OR (e.status = 'failed' AND e.provider_message_id IS NOT NULL));
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE crefinder.outbound_events e SET
        status = CASE
            WHEN new_status = 'failed' AND e.status IN ('sending', 'sent', 'unknown') THEN 'failed'
            WHEN e.status IN ('sending', 'unknown') THEN 'sent'
            ELSE e.status END,
        hold_reason = NULL,
        provider_status = new_status,
        provider_message_id = coalesce(e.provider_message_id, sid),
        sent_at = coalesce(e.sent_at, now()),
        last_error = CASE WHEN new_status = 'failed' AND e.status IN ('sending', 'sent', 'unknown')
                          THEN 'twilio call failed' ELSE e.last_error END,
        lookup_at = CASE WHEN final AND e.cost_cents IS NULL THEN now() + interval '1 minute'
                         WHEN final THEN NULL
                         -- faster than the dispatcher's record: reconciled all the same, from
                         -- 5 minutes on (lookup.c)
                         WHEN e.status IN ('sending', 'unknown')
                             THEN coalesce(e.lookup_at, now() + interval '5 minutes')
                         ELSE e.lookup_at END,
        lookups = CASE WHEN final THEN 0 ELSE e.lookups END,
        updated_at = now()
    WHERE e.id = message_id
      AND crefinder.twilio_call_rank(new_status) > crefinder.twilio_call_rank(e.provider_status);
    applied := FOUND;
    -- a bridge that ended frees its agent: the next bridge waiting for the agent goes now
    IF applied AND final AND m.channel = 'call' THEN
        -- (in the order they were queued)
        UPDATE crefinder.outbound_events e
        SET next_attempt_at = now() + make_interval(secs => w.n / 1000.0), updated_at = now()
        FROM (SELECT x.id, row_number() OVER (ORDER BY x.id) AS n FROM crefinder.outbound_events x
              WHERE x.user_id = m.user_id AND x.channel = 'call' AND x.status = 'queued'
                AND x.hold_reason = 'agent_busy' AND x.payload ->> 'agent_number' = m.agent) AS w
        WHERE e.id = w.id;
        IF FOUND THEN
            PERFORM crefinder.wake_dispatcher_on_commit();
        END IF;
    END IF;
    -- a fax is no delivery, whatever was said before (a drop is delivered by
    -- its answer step, when its message is played)
    IF m.channel = 'voicemail' AND answered_by = 'fax' THEN
        UPDATE crefinder.outbound_events e SET status = 'sent', delivered_at = NULL, updated_at = now()
        WHERE e.id = message_id AND e.status = 'delivered';
    END IF;
    INSERT INTO crefinder.call_results AS r (user_id, call_id, message_id, property_id, status, answered_by,
                                             started_at, ended_at, duration_seconds)
    VALUES (m.user_id, sid, message_id, m.property_id, new_status, answered_by,
            CASE WHEN new_status = 'in-progress' THEN now() END,
            CASE WHEN final THEN now() END, CASE WHEN final THEN duration END)
    ON CONFLICT (user_id, call_id) DO UPDATE SET
        status = CASE WHEN applied THEN excluded.status ELSE r.status END,
        answered_by = coalesce(excluded.answered_by, r.answered_by),
        started_at = coalesce(r.started_at, excluded.started_at),
        ended_at = coalesce(r.ended_at, excluded.ended_at),
        duration_seconds = coalesce(r.duration_seconds, excluded.duration_seconds),
        updated_at = now();
    RETURN applied;
END
$$;

-- voice_response: a keypress or a conversation stored once per message
-- and kind.
CREATE FUNCTION crefinder.voice_response(tenant uuid, m record, kind text, detail text, source text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
BEGIN
    IF NOT EXISTS (SELECT 1 FROM crefinder.responses r
                   WHERE r.user_id = tenant AND r.message_id = m.id AND r.kind = kind AND r.source = source) THEN
        PERFORM crefinder.store_response(tenant, m.id, m.channel, kind, detail, source, NULL);
    END IF;
END
$$;

-- voice_menu: the keypad menu of a voicemail drop or an inbound call.
CREATE FUNCTION crefinder.voice_menu(action text, business text, agent text, content text, callback text)
    RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT '<Gather input="dtmf" numDigits="1" timeout="6" action="' || crefinder.xml_text(action) || '" method="POST">'
           || crefinder.twiml_say(format('Hello%s. To stop these calls, press 9 at any time.%s',
                                         ', this is ' || business, CASE WHEN agent IS NOT NULL
                                                        THEN ' To speak with us now, press 1.' ELSE '' END))
           || coalesce(content, '')
           || crefinder.twiml_say(concat_ws(' ',
                  CASE WHEN callback IS NOT NULL
                       THEN format('You can call us back at %s.', crefinder.spoken_number(callback)) END,
                  CASE WHEN agent IS NOT NULL THEN 'Press 1 to speak with us, or 9 to stop these calls.'
                       ELSE 'Press 9 to stop these calls.' END))
           || '</Gather>'
$$;

-- voice_dial: a <Dial> from the tenant's number to one number, reporting
-- its end to the dial step; announce: the URL the dialled party hears
-- before being connected.
CREATE FUNCTION crefinder.voice_dial(url text, caller_id text, number text, record boolean, announce text)
    RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN number IS NOT NULL THEN
           '<Dial' || coalesce(' callerId="' || crefinder.xml_text(caller_id) || '"', '') || ' timeout="30" action="'
           || crefinder.xml_text(crefinder.voice_step_url(url, 'dial')) || '" method="POST"'
           || CASE WHEN record THEN ' record="record-from-answer-dual"' ELSE '' END || '>'
           || '<Number' || CASE WHEN announce IS NOT NULL
                               THEN ' url="' || crefinder.xml_text(announce) || '" method="POST"' ELSE '' END
           || '>' || crefinder.xml_text(number) || '</Number></Dial>' ELSE '' END
$$;

-- twilio_voice_step: one verified voice request about tenant's message m
-- at step (answer, connect, announce, keypress, dial): what Twilio does
-- next, as TwiML.
CREATE FUNCTION crefinder.twilio_voice_step(tenant uuid, m record, step text, params jsonb, url text)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    settings jsonb := crefinder.settings_of(tenant);
    cfg jsonb := (SELECT c.config FROM crefinder.integration_configs c
                  WHERE c.user_id = tenant AND c.provider = 'twilio');
    payload jsonb := m.payload;
    digits text := nullif(left(btrim(params ->> 'Digits'), 8), '');
    answered_by text := nullif(left(params ->> 'AnsweredBy', 32), '');
    business text := coalesce(m.payload ->> 'business_name', settings ->> 'business_name');
    callback text := coalesce(m.payload ->> 'callback_number', settings ->> 'callback_number');
    agent text := settings ->> 'agent_number';
    -- the number the call came from (should the settings have lost it)
    caller_id text := coalesce(cfg ->> 'phoneNumber', crefinder.try_phone(params ->> 'From'));
    opted_out boolean;
    dial_status text := lower(left(params ->> 'DialCallStatus', 32));
    talked integer := CASE WHEN params ->> 'DialCallDuration' ~ '^[0-9]{1,6}$'
                           THEN (params ->> 'DialCallDuration')::integer END;
    content text;
    owner_text text;
BEGIN
    -- what compliance says of the owner now (a STOP since the call was
    -- placed, a DNC listing, a consent revoked): no message, no dial
    opted_out := step IN ('answer', 'connect', 'keypress') AND coalesce(
        (SELECT s.reason IN ('opted_out', 'dnc', 'no_consent', 'invalid_contact')
         FROM crefinder.scrub_for(tenant, m.channel, ARRAY[m.to_contact], ARRAY[m.property_id], now()) AS s
         LIMIT 1), false);
    IF m.channel = 'call' THEN
        IF step = 'answer' THEN
            PERFORM crefinder.twilio_call_set_status(m.id, 'in-progress', params ->> 'CallSid', NULL, NULL);
            IF opted_out THEN
                RETURN crefinder.twiml_answer(crefinder.twiml_say('The owner has asked not to be called. Goodbye.')
                                              || '<Hangup/>');
            END IF;
            SELECT concat_ws(', ', nullif(btrim(p.owner_name), ''),
                             'about ' || nullif(btrim(p.property_address), ''))
            INTO owner_text
            FROM crefinder.property_records p WHERE p.user_id = tenant AND p.id = m.property_id;
            RETURN crefinder.twiml_answer(
                '<Gather input="dtmf" numDigits="1" timeout="8" action="'
                || crefinder.xml_text(crefinder.voice_step_url(url, 'connect')) || '" method="POST">'
                || crefinder.twiml_say(format('Call to the owner%s. Press 1 to connect.',
                                              CASE WHEN nullif(owner_text, '') IS NOT NULL THEN ', ' || owner_text ELSE '' END))
                || '</Gather>' || crefinder.twiml_say('No key was pressed. Goodbye.') || '<Hangup/>');
        ELSIF step = 'connect' THEN
            IF digits IS DISTINCT FROM '1' THEN
                RETURN crefinder.twiml_answer(crefinder.twiml_say('Goodbye.') || '<Hangup/>');
            END IF;
            IF opted_out THEN
                RETURN crefinder.twiml_answer(crefinder.twiml_say('The owner has asked not to be called. Goodbye.')
                                              || '<Hangup/>');
            END IF;
            RETURN crefinder.twiml_answer(crefinder.voice_dial(
                url, caller_id, m.to_contact, coalesce((payload ->> 'record')::boolean, false),
                CASE WHEN coalesce((payload ->> 'announce_recording')::boolean, false)
                     THEN crefinder.voice_step_url(url, 'announce') END));
        ELSIF step = 'announce' THEN
            RETURN crefinder.twiml_answer(crefinder.twiml_say(settings ->> 'recording_notice'));
        END IF;
    ELSE
        IF step = 'answer' THEN
            PERFORM crefinder.twilio_call_set_status(m.id, 'in-progress', params ->> 'CallSid', answered_by, NULL);
            IF answered_by = 'fax' OR (opted_out AND answered_by LIKE 'machine%') THEN
                RETURN crefinder.twiml_answer('<Hangup/>');
            ELSIF opted_out THEN
                -- a person, whom compliance no longer lets crefinder address: who called, and goodbye
                -- (never a silent hang-up on a person, 47 CFR 64.1200(a)(7))
                RETURN crefinder.twiml_answer(crefinder.twiml_say(
                           'This was a call from ' || coalesce(business, 'us') || '. Goodbye.') || '<Hangup/>');
            END IF;
            -- the message is played: the drop is delivered
            UPDATE crefinder.outbound_events e
            SET status = CASE WHEN e.status IN ('sending', 'sent', 'unknown') THEN 'delivered' ELSE e.status END,
                delivered_at = coalesce(e.delivered_at, now()), updated_at = now()
            WHERE e.id = m.id AND e.status IN ('sending', 'sent', 'unknown', 'delivered');
            content := CASE WHEN payload ? 'audio_url'
                            THEN '<Play>' || crefinder.xml_text(payload ->> 'audio_url') || '</Play>'
                            ELSE crefinder.twiml_say(payload ->> 'say_text') END;
            IF answered_by LIKE 'machine%' THEN
                -- after the beep: who calls, the message, the number to call back
                RETURN crefinder.twiml_answer(
                    crefinder.twiml_say('Hello, this is a message from ' || business || '.')
                    || content
                    || crefinder.twiml_say('Please call us back at ' || crefinder.spoken_number(callback)
                                           || '. To stop these calls, call that number and press 9.')
                    || '<Hangup/>');
            END IF;
            RETURN crefinder.twiml_answer(
                crefinder.voice_menu(crefinder.voice_step_url(url, 'keypress'), business, agent, content, callback)
                || '<Hangup/>');
        ELSIF step = 'keypress' THEN
            UPDATE crefinder.call_results r SET keypress = left(digits, 1), updated_at = now()
            WHERE r.user_id = tenant AND r.call_id = params ->> 'CallSid' AND digits ~ '^[0-9*#]';
            IF digits = '9' THEN
                PERFORM crefinder.record_opt_out(tenant, m.channel, m.to_contact, 'keypad: 9 on a voicemail drop');
                PERFORM crefinder.voice_response(tenant, m, 'opt_out', 'pressed 9 on a voicemail drop', 'keypad');
                RETURN crefinder.twiml_answer(
                    crefinder.twiml_say(format('You will not be called or texted by %s again. Goodbye.',
                                               coalesce(business, 'us')))
                    || '<Hangup/>');
            ELSIF digits = '1' AND agent IS NOT NULL AND NOT opted_out THEN
                PERFORM crefinder.voice_response(tenant, m, 'interested', 'pressed 1 on a voicemail drop', 'keypad');
                RETURN crefinder.twiml_answer(crefinder.twiml_say('Connecting you now.')
                                              || crefinder.voice_dial(url, caller_id, agent, false, NULL));
            END IF;
            RETURN crefinder.twiml_answer(
                '<Gather input="dtmf" numDigits="1" timeout="6" action="'
                || crefinder.xml_text(crefinder.voice_step_url(url, 'keypress')) || '" method="POST">'
                || crefinder.twiml_say(CASE WHEN agent IS NOT NULL
                                            THEN 'Press 1 to speak with us, or 9 to stop these calls.'
                                            ELSE 'Press 9 to stop these calls.' END)
                || '</Gather>' || crefinder.twiml_say('Goodbye.') || '<Hangup/>');
        END IF;
    END IF;

    IF step = 'dial' THEN
        -- the <Dial> ended: the owner (bridge) or the agent (after a 1) answered or not
        -- (the call's row may not exist yet: its callbacks may come later)
        INSERT INTO crefinder.call_results AS r (user_id, call_id, message_id, property_id, status, dial_call_sid,
                                                 dial_status, bridged_seconds, recording_url)
        VALUES (tenant, params ->> 'CallSid', m.id, m.property_id, 'in-progress',
                CASE WHEN params ->> 'DialCallSid' ~ '^CA[0-9a-f]{32}$' AND params ->> 'DialCallSid' <> params ->> 'CallSid'
                     THEN params ->> 'DialCallSid' END,
                dial_status, talked,
                CASE WHEN params ->> 'RecordingUrl' ~ '^https://[^\s<>"]+$' AND char_length(params ->> 'RecordingUrl') <= 2000
                     THEN params ->> 'RecordingUrl' END)
        ON CONFLICT (user_id, call_id) DO UPDATE SET
            dial_call_sid = coalesce(excluded.dial_call_sid, r.dial_call_sid),
            dial_status = coalesce(excluded.dial_status, r.dial_status),
            bridged_seconds = coalesce(excluded.bridged_seconds, r.bridged_seconds),
            recording_url = coalesce(excluded.recording_url, r.recording_url),
            updated_at = now();
        IF m.channel = 'call' AND dial_status IN ('completed', 'answered') THEN
            UPDATE crefinder.outbound_events e
            SET status = CASE WHEN e.status IN ('sending', 'sent', 'unknown', 'failed') THEN 'delivered' ELSE e.status END,
                delivered_at = coalesce(e.delivered_at, now()), updated_at = now()
            WHERE e.user_id = tenant AND e.id = m.id;
        END IF;
        IF m.channel = 'call' AND talked >= (settings ->> 'bridge_response_seconds')::integer THEN
            PERFORM crefinder.voice_response(tenant, m, 'unknown',
                                             format('talked with the agent for %s s', talked), 'call');
        END IF;
        IF dial_status IN ('completed', 'answered') OR m.channel = 'voicemail' THEN
            RETURN crefinder.twiml_answer(CASE WHEN dial_status IN ('completed', 'answered') THEN ''
                                               ELSE crefinder.twiml_say(concat_ws(' ', 'No one is available.',
                                                        'Please call us back at ' || crefinder.spoken_number(callback) || '.',
                                                        'Goodbye.')) END
                                          || '<Hangup/>');
        END IF;
        RETURN crefinder.twiml_answer(crefinder.twiml_say('The owner did not answer. Goodbye.') || '<Hangup/>');
    END IF;
    RAISE EXCEPTION 'unknown voice step "%"', left(step, 20) USING ERRCODE = 'invalid_parameter_value';
END
$$;

-- twilio_voice_inbound: a call to a tenant's number (the callback number a
-- voicemail drop gives): the keypad menu; 9 opts the caller out of every
-- phone channel with each of the tenants (the first speaks), 1 connects the
-- first tenant's agent.
CREATE FUNCTION crefinder.twilio_voice_inbound(tenants uuid[], params jsonb, url text, step text,
                                                known boolean)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    tenant uuid := tenants[1];
    each_tenant uuid;
    settings jsonb := crefinder.settings_of(tenants[1]);
    -- Twilio's stand-ins for a withheld number are no one's number
    caller text := CASE WHEN crefinder.try_phone(params ->> 'From') IN
                             ('+266696687', '+86282452253', '+7378742833', '+2562533', '+8656696')
                        THEN NULL ELSE crefinder.try_phone(params ->> 'From') END;
    digits text := nullif(btrim(params ->> 'Digits'), '');
    -- a number that is none of the tenants': no name, no agent (whose would they be?)
    business text := CASE WHEN known THEN settings ->> 'business_name' END;
    agent text := CASE WHEN known THEN settings ->> 'agent_number' END;
    caller_id text := (SELECT c.config ->> 'phoneNumber' FROM crefinder.integration_configs c
                       WHERE c.user_id = tenant AND c.provider = 'twilio');
BEGIN
    INSERT INTO crefinder.webhook_events (user_id, provider, event_type, verified, http_status, outcome)
    VALUES (tenant, 'twilio', 'voice:inbound' || coalesce(':' || step, ''), true, 200, 'applied');
    IF step IS NULL THEN
        RETURN crefinder.twiml_answer(
            crefinder.voice_menu(crefinder.voice_step_url(url, 'inbound_keypress'), business, agent, NULL, NULL)
            || crefinder.twiml_say('Goodbye.') || '<Hangup/>');
    END IF;
    IF digits = '9' AND caller IS NULL THEN
        RETURN crefinder.twiml_answer(
            crefinder.twiml_say('Your number is hidden, so it cannot be removed. Please call again from the number '
                                || 'you want removed, or reply STOP to one of our texts. Goodbye.') || '<Hangup/>');
    ELSIF digits = '9' THEN
        FOREACH each_tenant IN ARRAY tenants LOOP
            PERFORM crefinder.record_opt_out(each_tenant, 'call', caller, 'keypad: 9 on a call to the tenant''s number');
        END LOOP;
        RETURN crefinder.twiml_answer(
            crefinder.twiml_say(format('You will not be called or texted by %s again. Goodbye.',
                                       coalesce(business, 'us')))
            || '<Hangup/>');
    ELSIF digits = '1' AND agent IS NOT NULL AND caller_id IS NOT NULL THEN
        RETURN crefinder.twiml_answer(crefinder.twiml_say('Connecting you now.')
                                      || '<Dial callerId="' || crefinder.xml_text(caller_id) || '" timeout="30">'
                                      || '<Number>' || crefinder.xml_text(agent) || '</Number></Dial>');
    END IF;
    RETURN crefinder.twiml_answer(crefinder.twiml_say('Goodbye.') || '<Hangup/>');
END
$$;

-- twilio_voice: a verified voice request for the tenants that signed it.
CREATE FUNCTION crefinder.twilio_voice(tenants uuid[], params jsonb, url text, token text)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    step text := substring(url FROM '[?&]crefinder_step=([a-z_]{1,20})(&|$)');
    url_message text := substring(url FROM '[?&]crefinder_message_id=([0-9]{1,18})(&|$)');
    sid text := params ->> 'CallSid';
    parent text := params ->> 'ParentCallSid';
    call_status text := lower(params ->> 'CallStatus');
    duration integer := CASE WHEN params ->> 'CallDuration' ~ '^[0-9]{1,7}$'
                             THEN (params ->> 'CallDuration')::integer END;
    m record;
    tenant uuid;
    owners uuid[];
    event_row bigint;
BEGIN
    IF sid IS NULL OR sid !~ '^CA[0-9a-f]{32}$' OR (parent IS NOT NULL AND parent !~ '^CA[0-9a-f]{32}$')
       OR (call_status IS NOT NULL AND call_status !~ '^[a-z-]{1,20}$') THEN
        RAISE EXCEPTION 'a Twilio voice request needs a CallSid' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF url_message IS NULL THEN
        IF step IS NOT NULL AND step <> 'inbound_keypress' THEN
            RAISE EXCEPTION 'a voice step without its message' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- a call to a tenant's number: the tenants whose number (or callback number) it is;
        -- when it is none of theirs, every tenant that signed (an opt-out errs on the safe side)
        owners := ARRAY(SELECT c.user_id FROM crefinder.integration_configs c
                        LEFT JOIN crefinder.tenant_settings s ON s.user_id = c.user_id
                        WHERE c.provider = 'twilio' AND c.user_id = ANY (tenants)
                          AND params ->> 'To' IN (c.config ->> 'phoneNumber', s.callback_number)
                        ORDER BY array_position(tenants, c.user_id));
        RETURN crefinder.twilio_voice_inbound(CASE WHEN cardinality(owners) > 0 THEN owners ELSE tenants END,
                                              params, url, step, cardinality(owners) > 0);
    END IF;

    -- the message: one of the signers' calls; the request's call must be its
    -- call (the announcement runs on the dialled leg: its parent)
    SELECT e.id, e.user_id, e.channel, e.to_contact, e.payload, e.property_id, e.provider_message_id, e.status
    INTO m
    FROM crefinder.outbound_events e
    WHERE e.id = url_message::bigint AND e.user_id = ANY (tenants) AND e.channel IN ('call', 'voicemail')
      -- a call that was placed: never one that compliance blocked or that waits
      AND (e.status IN ('sending', 'sent', 'delivered', 'unknown')
           OR (e.status = 'failed' AND e.provider_message_id IS NOT NULL))
      AND (e.provider_message_id IS NULL
           OR e.provider_message_id = CASE WHEN step = 'announce' THEN parent ELSE sid END)
    FOR UPDATE;
    tenant := coalesce(m.user_id, tenants[1]);

    IF step = 'status' THEN
        IF call_status IS NULL OR crefinder.twilio_call_rank(call_status) = 0 THEN
            RAISE EXCEPTION 'a Twilio call status callback needs a known CallStatus'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        INSERT INTO crefinder.webhook_events (user_id, provider, event_id, idempotency_token, event_type,
                                              verified, http_status, outcome, message_id)
        VALUES (tenant, 'twilio', sid || ':' || call_status, left(token, 200), 'call:' || call_status,
                true, 200, CASE WHEN m.id IS NULL THEN 'unknown_message' ELSE 'applied' END, m.id)
        ON CONFLICT DO NOTHING
        RETURNING id INTO event_row;
        IF event_row IS NULL THEN
            PERFORM crefinder.webhook_duplicate('twilio', tenant, 'call:' || call_status);
        ELSIF m.id IS NOT NULL
              AND NOT crefinder.twilio_call_set_status(m.id, call_status, sid,
                                                        nullif(left(params ->> 'AnsweredBy', 32), ''), duration) THEN
            UPDATE crefinder.webhook_events w SET outcome = 'ignored' WHERE w.id = event_row;
        END IF;
        RETURN crefinder.twiml_answer('');
    END IF;

    INSERT INTO crefinder.webhook_events (user_id, provider, idempotency_token, event_type, verified,
                                          http_status, outcome, message_id)
    VALUES (tenant, 'twilio', left(token, 200), 'voice:' || coalesce(step, 'none'), true, 200,
            CASE WHEN m.id IS NULL THEN 'unknown_message' ELSE 'applied' END, m.id)
    -- a retried request (the same idempotency token) is answered again: every step is idempotent
    ON CONFLICT DO NOTHING;
    IF m.id IS NULL OR step IS NULL OR step NOT IN ('answer', 'connect', 'announce', 'keypress', 'dial') THEN
        -- not (or no longer) a call of these tenants: nothing is said
        RETURN crefinder.twiml_answer('<Hangup/>');
    END IF;
    RETURN crefinder.twilio_voice_step(tenant, m, step, params, url);
END
$$;

-- handle_twilio_voice_webhook: the tenant's voiceWebhookUrl (Twilio's
-- voice requests and call status callbacks).  Answers TwiML.
CREATE FUNCTION crefinder.handle_twilio_voice_webhook(url text, body text, signature text,
                                                      idempotency_token text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    signers record;
    problem text;
    code text;
BEGIN
    signers := crefinder.twilio_signers(url, body, signature, idempotency_token);
    IF signers.rejection IS NOT NULL THEN
        RETURN signers.rejection;
    END IF;
    BEGIN
        RETURN crefinder.twilio_voice(signers.tenants, signers.params, url, idempotency_token);
    EXCEPTION WHEN data_exception OR integrity_constraint_violation OR program_limit_exceeded THEN
        GET STACKED DIAGNOSTICS problem = MESSAGE_TEXT, code = RETURNED_SQLSTATE;
        RETURN crefinder.webhook_reject('twilio', signers.tenants[1], 400, 'malformed', code || ': ' || problem, body);
    END;
END
$$;

-- twilio_call_fetched: Twilio's Call resource (GET .../Calls/{sid}.json,
-- a lookup, 72_lookups.sql) for message_id: the call's status (callbacks
-- that never came) and its price; for a bridge, the dialled leg is a call
-- of its own, with its own price, asked about once the first is priced.
-- Prices in USD only (another currency settles the call unpriced); a call
-- that was not answered costs nothing when Twilio gives no price.  The
-- message's cost is the sum of its legs, once every leg is priced.
CREATE FUNCTION crefinder.twilio_call_fetched(message_id bigint, resource jsonb)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    e record;
    r record;
    new_status text := lower(resource ->> 'status');
    price text := resource ->> 'price';
    duration integer := CASE WHEN resource ->> 'duration' ~ '^[0-9]{1,7}$'
                             THEN (resource ->> 'duration')::integer END;
    answered_by text := CASE WHEN resource ->> 'answered_by' ~ '^[a-z_]{1,32}$' THEN resource ->> 'answered_by' END;
    cost numeric;
    foreign_price boolean := price IS NOT NULL AND resource ->> 'price_unit' IS DISTINCT FROM 'USD';
    settled boolean;
    before numeric;
BEGIN
    IF jsonb_typeof(resource) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'a Twilio Call resource must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT m.id, m.user_id, m.provider_message_id, m.cost_cents INTO e
    FROM crefinder.outbound_events m
    WHERE m.id = message_id AND m.channel IN ('call', 'voicemail')
    FOR UPDATE;
    IF e.id IS NULL OR e.provider_message_id IS NULL THEN
        UPDATE crefinder.outbound_events m SET lookup_at = NULL WHERE m.id = message_id;
        RETURN 'settled';
    END IF;
    IF new_status !~ '^[a-z-]{1,20}$' THEN
        new_status := NULL;
    END IF;
    IF price ~ '^-?[0-9]{1,4}(\.[0-9]{1,10})?$' AND price::numeric <= 0 AND NOT foreign_price THEN
        cost := -price::numeric;
    ELSIF new_status IN ('busy', 'no-answer', 'failed', 'canceled') AND price IS NULL THEN
        cost := 0;
    END IF;

    SELECT c.cost INTO before FROM crefinder.call_results c
    WHERE c.user_id = e.user_id AND c.call_id = e.provider_message_id;
    IF resource ->> 'sid' = e.provider_message_id THEN
        IF new_status IS NOT NULL THEN
            PERFORM crefinder.twilio_call_set_status(e.id, new_status, e.provider_message_id, answered_by, duration);
        END IF;
        IF crefinder.twilio_call_rank(new_status) = 5 THEN
            INSERT INTO crefinder.call_results AS c (user_id, call_id, message_id, status, cost)
            VALUES (e.user_id, e.provider_message_id, e.id, new_status, CASE WHEN foreign_price THEN -1 ELSE cost END)
            ON CONFLICT (user_id, call_id) DO UPDATE SET
                cost = coalesce(c.cost, excluded.cost), updated_at = now();
        END IF;
    ELSE
        UPDATE crefinder.call_results c
        SET dial_cost = coalesce(c.dial_cost, CASE WHEN foreign_price THEN -1 ELSE cost END), updated_at = now()
        WHERE c.user_id = e.user_id AND c.call_id = e.provider_message_id
          AND c.dial_call_sid = resource ->> 'sid' AND crefinder.twilio_call_rank(new_status) = 5;
        IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM crefinder.call_results c
                                     WHERE c.user_id = e.user_id AND c.call_id = e.provider_message_id
                                       AND c.dial_call_sid = resource ->> 'sid') THEN
            RAISE EXCEPTION 'Twilio answered with another call''s resource' USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;

    -- (a price in another currency is kept as -1: known, not converted)
    SELECT c.cost, c.dial_call_sid, c.dial_cost INTO r
    FROM crefinder.call_results c WHERE c.user_id = e.user_id AND c.call_id = e.provider_message_id;
    settled := r.cost IS NOT NULL AND (r.dial_call_sid IS NULL OR r.dial_cost IS NOT NULL);
    UPDATE crefinder.outbound_events m SET
        cost_cents = CASE WHEN settled AND r.cost >= 0 AND coalesce(r.dial_cost, 0) >= 0
                          THEN coalesce(m.cost_cents, round((r.cost + coalesce(r.dial_cost, 0)) * 100, 4))
                          ELSE m.cost_cents END,
        -- the dialled leg is asked about next, at once (once: then the lookups' own
        -- backoff and their last attempt stand)
        lookup_at = CASE WHEN settled THEN NULL
                         WHEN r.cost IS NOT NULL AND before IS NULL AND m.lookup_at IS NOT NULL THEN now()
                         ELSE m.lookup_at END
    WHERE m.id = e.id;
    RETURN CASE WHEN settled THEN 'settled' ELSE 'pending' END;
END
$$;
