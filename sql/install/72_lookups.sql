-- ----------------------------------------------------------------------
-- Lookups: what the providers say of messages already handed over
-- ----------------------------------------------------------------------
--
-- The dispatcher (src/lookup.c) asks Twilio for a text's price once it has
-- reached its final status, and asks Twilio or Vapi about a text or a call
-- whose final status never came (outbound_events.lookup_at says when).
-- The functions here apply the answers, under the webhooks' rules: a
-- status never moves back, and an answer is checked like any request from
-- the internet (the resource must be the message's own).  Each returns
-- 'settled' (nothing more to ask: lookup_at cleared) or 'pending' (asked
-- again when the dispatcher's lease on the lookup runs out).

-- twilio_set_status: a Twilio message status for crefinder's message
-- message_id, from a status callback or a lookup: applied when it is
-- further along than the status the message has.  A final status without
-- a price sets the price lookup a minute later (Twilio fills the price in
-- shortly after); a status short of final keeps the reconciliation (set
-- here when the callback came before the dispatcher recorded the message);
-- sid and sender fill in what the message lacks.
CREATE FUNCTION crefinder.twilio_set_status(message_id bigint, new_status text, code text, sid text,
                                            sender text)
    RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    final boolean := new_status IN ('delivered', 'read', 'undelivered', 'failed');
    number text := CASE WHEN sender ~ '^[A-Za-z0-9:+._-]{1,64}$' THEN sender END;
BEGIN
    UPDATE crefinder.outbound_events e SET
        status = CASE
            WHEN new_status IN ('delivered', 'read') AND e.status IN ('sending', 'sent', 'unknown', 'failed')
                THEN 'delivered'
            WHEN new_status IN ('undelivered', 'failed') AND e.status IN ('sending', 'sent', 'unknown')
                THEN 'failed'
            WHEN new_status = 'canceled' AND e.status IN ('queued', 'sending', 'sent')
                 AND (e.provider_status = 'scheduled' OR e.payload ? 'twilio_cancel')
                THEN 'cancelled'
            WHEN new_status IN ('sent', 'partially_delivered') AND e.status IN ('sending', 'unknown')
                THEN 'sent'
            ELSE e.status END,
        hold_reason = NULL,
        provider_status = new_status,
        provider_message_id = coalesce(e.provider_message_id, sid),
        sent_at = CASE WHEN new_status IN ('sent', 'partially_delivered', 'delivered', 'read', 'undelivered')
                       THEN coalesce(e.sent_at, now()) ELSE e.sent_at END,
        delivered_at = CASE WHEN new_status IN ('delivered', 'read')
                            THEN coalesce(e.delivered_at, now()) ELSE e.delivered_at END,
        last_error = CASE WHEN new_status IN ('undelivered', 'failed')
                          THEN crefinder.twilio_error_text(new_status, code) ELSE e.last_error END,
        -- (learnt with the final status: a key of the rollups changes once,
        -- in a statement that changes counts anyway)
        sender = CASE WHEN final THEN coalesce(e.sender, number) ELSE e.sender END,
        lookup_at = CASE WHEN final AND e.cost_cents IS NULL THEN now() + interval '1 minute'
                         WHEN final OR new_status = 'canceled' THEN NULL
                         -- a callback faster than the dispatcher's record: reconciled all the same
                         WHEN e.status IN ('sending', 'unknown')
                             THEN coalesce(e.lookup_at, now() + current_setting('crefinder.reconcile_after')::interval)
                         ELSE e.lookup_at END,
        -- the price gets lookups of its own
        lookups = CASE WHEN final AND crefinder.twilio_status_rank(e.provider_status) < 6 THEN 0
                       ELSE e.lookups END,
        updated_at = now()
    WHERE e.id = message_id
      AND crefinder.twilio_status_rank(new_status) > crefinder.twilio_status_rank(e.provider_status)
      AND (e.status <> 'queued' OR new_status = 'canceled');
    RETURN FOUND;
END
$$;

-- twilio_fetched: Twilio's Message resource (GET .../Messages/{sid}.json)
-- for message_id: its status (a callback that never came), its price
-- (price_unit USD: other currencies are not converted and the message
-- stays unpriced; a price out of bounds is no price), num_segments and
-- the number it went from.  A failed
-- message without a price costs nothing (Twilio does not charge failed
-- messages).  Settled once the status is final, or sent with its price.
CREATE FUNCTION crefinder.twilio_fetched(message_id bigint, resource jsonb)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    e record;
    new_status text := lower(resource ->> 'status');
    code text := resource ->> 'error_code';
    price text := resource ->> 'price';
    segments text := resource ->> 'num_segments';
    sender text := resource ->> 'from';
    cost numeric;
    settled boolean;
BEGIN
    IF jsonb_typeof(resource) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'a Twilio Message resource must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT m.id, m.user_id, m.channel, m.to_contact, m.provider_message_id, m.cost_cents, m.lookup_at INTO e
    FROM crefinder.outbound_events m
    WHERE m.id = message_id AND m.channel IN ('sms', 'whatsapp')
    FOR UPDATE;
    IF e.id IS NULL THEN
        UPDATE crefinder.outbound_events m SET lookup_at = NULL WHERE m.id = message_id;
        RETURN 'settled';
    END IF;
    IF resource ->> 'sid' IS DISTINCT FROM e.provider_message_id THEN
        RAISE EXCEPTION 'Twilio answered with another message''s resource' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF sender !~ '^(whatsapp:)?[A-Za-z0-9+._-]{1,55}$' THEN
        sender := NULL;
    END IF;
    IF new_status !~ '^[a-z_]{1,32}$' THEN
        new_status := NULL;
    END IF;
    IF code !~ '^[0-9]{1,10}$' THEN
        code := NULL;
    END IF;
    -- Twilio's prices are negative (what was charged); anything else is not a price
    IF price ~ '^-?[0-9]{1,3}(\.[0-9]{1,10})?$' AND price::numeric <= 0 AND resource ->> 'price_unit' = 'USD' THEN
        cost := round(-price::numeric * 100, 4);
    ELSIF new_status = 'failed' AND price IS NULL THEN
        cost := 0;
    END IF;

    IF new_status IS NOT NULL THEN
        PERFORM crefinder.twilio_set_status(e.id, new_status, code, NULL, sender);
    END IF;
    IF code = '21610' THEN
        PERFORM crefinder.record_opt_out(e.user_id, e.channel, e.to_contact, 'twilio 21610');
    END IF;

    -- settled: final (or sent) with its price, or a price in another currency
    -- (not converted: the message stays unpriced)
    settled := new_status = 'canceled'
               OR (new_status IN ('sent', 'partially_delivered', 'delivered', 'read', 'undelivered', 'failed')
                   AND (coalesce(e.cost_cents, cost) IS NOT NULL
                        OR (price IS NOT NULL AND resource ->> 'price_unit' IS DISTINCT FROM 'USD')));
    UPDATE crefinder.outbound_events m SET
        cost_cents = coalesce(m.cost_cents, cost),
        segments = CASE WHEN segments ~ '^[0-9]{1,4}$' AND segments::integer > 0 THEN segments::smallint
                        ELSE m.segments END,
        sender = coalesce(m.sender, sender),
        -- the dispatcher's lease (or the price lookup a final status set) stands
        -- until an answer settles it
        lookup_at = CASE WHEN settled THEN NULL ELSE m.lookup_at END
    WHERE m.id = e.id;
    RETURN CASE WHEN settled THEN 'settled' ELSE 'pending' END;
END
$$;

-- vapi_set_status: a Vapi call status (short of ended) for message_id of
-- tenant, from a status-update message or a lookup: applied when further
-- along; in-progress means the owner answered.
CREATE FUNCTION crefinder.vapi_set_status(tenant uuid, message_id bigint, new_status text)
    RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
BEGIN
    IF crefinder.vapi_status_rank(new_status) = 0 OR new_status = 'ended' THEN
        RETURN false;
    END IF;
    UPDATE crefinder.outbound_events e SET
        provider_status = new_status,
        status = CASE WHEN new_status IN ('in-progress', 'forwarding')
                           AND e.status IN ('sending', 'sent', 'unknown', 'failed') THEN 'delivered'
                      WHEN e.status IN ('sending', 'unknown') THEN 'sent'
                      ELSE e.status END,
        sent_at = coalesce(e.sent_at, now()),
        delivered_at = CASE WHEN new_status IN ('in-progress', 'forwarding')
                            THEN coalesce(e.delivered_at, now()) ELSE e.delivered_at END,
        hold_reason = NULL,
        -- (a status faster than the dispatcher's record: the call is
        -- reconciled all the same, after its longest duration and 10 minutes)
        lookup_at = CASE WHEN e.status IN ('sending', 'unknown') THEN
            coalesce(e.lookup_at, now() + make_interval(secs => 600 + coalesce(
                (SELECT CASE WHEN c.config ->> 'maxCallDuration' ~ '^[0-9]{1,5}$'
                             THEN (c.config ->> 'maxCallDuration')::integer END
                 FROM crefinder.integration_configs c WHERE c.user_id = tenant AND c.provider = 'vapi'), 300)))
            ELSE e.lookup_at END,
        updated_at = now()
    WHERE e.user_id = tenant AND e.id = message_id AND e.status <> 'queued'
      AND crefinder.vapi_status_rank(new_status) > crefinder.vapi_status_rank(e.provider_status);
    RETURN FOUND;
END
$$;

-- vapi_fetched: Vapi's Call (GET /call/{id}) for message_id.  An ended
-- call is read as the end-of-call report Vapi sends only once and may have
-- lost (its result, cost, transcript, what the owner said), unless that
-- report came; a call still going on moves its status forward and is
-- asked about again later.
CREATE FUNCTION crefinder.vapi_fetched(message_id bigint, call jsonb)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    e record;
    new_status text := left(call ->> 'status', 32);
BEGIN
    IF jsonb_typeof(call) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'a Vapi call must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT m.id, m.user_id, m.provider_message_id, m.cost_cents INTO e
    FROM crefinder.outbound_events m
    WHERE m.id = message_id AND m.channel = 'voice'
    FOR UPDATE;
    IF e.id IS NULL THEN
        UPDATE crefinder.outbound_events m SET lookup_at = NULL WHERE m.id = message_id;
        RETURN 'settled';
    END IF;
    IF call ->> 'id' IS DISTINCT FROM e.provider_message_id THEN
        RAISE EXCEPTION 'Vapi answered with another call' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF new_status IS DISTINCT FROM 'ended' THEN
        PERFORM crefinder.vapi_set_status(e.user_id, e.id, new_status);
        RETURN 'pending';
    END IF;

    IF NOT EXISTS (SELECT 1 FROM crefinder.call_results r
                   WHERE r.user_id = e.user_id AND r.call_id = e.provider_message_id AND r.status = 'ended') THEN
        PERFORM crefinder.vapi_end_of_call(e.user_id, e.id, e.provider_message_id, call);
    ELSIF e.cost_cents IS NULL AND jsonb_typeof(call -> 'cost') = 'number'
          AND (call ->> 'cost')::numeric >= 0 AND (call ->> 'cost')::numeric < 1000000 THEN
        -- the report came without the cost Vapi knows now
        UPDATE crefinder.outbound_events m SET cost_cents = round((call ->> 'cost')::numeric * 100, 4),
                                               updated_at = now()
        WHERE m.id = e.id;
        UPDATE crefinder.call_results r SET cost = (call ->> 'cost')::numeric, updated_at = now()
        WHERE r.user_id = e.user_id AND r.call_id = e.provider_message_id;
    END IF;
    UPDATE crefinder.outbound_events m SET lookup_at = NULL WHERE m.id = e.id;
    RETURN 'settled';
END
$$;
