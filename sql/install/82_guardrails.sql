-- Guardrails: a campaign's channel that draws too many opt-outs or spam
-- complaints, or whose texts carriers filter, pauses itself before it
-- burns the sender's reputation; an alert says why, to a table and to
-- LISTEN crefinder_alerts.

-- channel_pauses: a campaign's channel paused by a guardrail, until
-- resume_campaign(); its steps are queued held, its queued messages wait.
CREATE TABLE crefinder.channel_pauses (
    user_id      uuid NOT NULL,
    campaign_id  bigint NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('voice', 'sms', 'whatsapp', 'email', 'call', 'voicemail')),
    alert_id     bigint NOT NULL,
    paused_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, channel),
    FOREIGN KEY (user_id, campaign_id) REFERENCES crefinder.campaigns (user_id, id) ON DELETE CASCADE
);

-- alerts: what tripped, when, with the figures.
CREATE TABLE crefinder.alerts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      uuid NOT NULL,
    campaign_id  bigint,
    channel      text,
    kind         text NOT NULL CHECK (kind IN ('opt_out_rate', 'complaint_rate', 'filtered_rate')),
    rate         numeric NOT NULL,      -- percent
    threshold    numeric NOT NULL,      -- percent
    sends        bigint NOT NULL,
    detail       jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON crefinder.alerts (user_id, created_at);

-- guardrail_baselines: a channel's counts when the tenant resumed it: the
-- guardrails judge what came after (a resumed channel is not paused again
-- for the same opt-outs).
CREATE TABLE crefinder.guardrail_baselines (
    user_id      uuid NOT NULL,
    campaign_id  bigint NOT NULL,
    channel      text NOT NULL,
    sent         bigint NOT NULL,
    delivered    bigint NOT NULL,
    opted_out    bigint NOT NULL,
    complained   bigint NOT NULL,
    filtered     bigint NOT NULL,
    set_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, channel),
    FOREIGN KEY (user_id, campaign_id) REFERENCES crefinder.campaigns (user_id, id) ON DELETE CASCADE
);

-- campaign_guardrails: per campaign and channel, the rates the guardrails
-- watch (percent): opt-outs and spam complaints per delivered message,
-- carrier filtering per sent message; whether each is past the tenant's
-- threshold (once at least guardrail_min_sends were sent; after a resume,
-- counting from it), and whether the channel is paused.
CREATE VIEW crefinder.campaign_guardrails WITH (security_invoker = true) AS
SELECT x.user_id, x.campaign_id, x.channel, x.sent, x.delivered, x.opted_out, x.complained, x.filtered,
       round(100.0 * x.delivered / nullif(x.sent, 0), 2) AS delivery_rate,
       round(100.0 * x.opted_out / nullif(x.delivered, 0), 3) AS opt_out_rate,
       round(100.0 * x.complained / nullif(x.delivered, 0), 3) AS complaint_rate,
       round(100.0 * x.filtered / nullif(x.sent, 0), 3) AS filtered_rate,
       coalesce(y.sent >= x.min_sends AND 100.0 * y.opted_out / nullif(y.delivered, 0) >= x.opt_out_limit, false)
           AS opt_out_tripped,
       coalesce(y.sent >= x.min_sends AND 100.0 * y.complained / nullif(y.delivered, 0) >= x.complaint_limit, false)
           AS complaint_tripped,
       coalesce(y.sent >= x.min_sends AND 100.0 * y.filtered / nullif(y.sent, 0) >= x.filtered_limit, false)
           AS filtered_tripped,
       p.paused_at, b.set_at AS resumed_at
FROM (SELECT r.user_id, r.campaign_id, r.channel, sum(r.sent)::bigint AS sent, sum(r.delivered)::bigint AS delivered,
             sum(r.opted_out)::bigint AS opted_out, sum(r.complained)::bigint AS complained,
             sum(r.filtered)::bigint AS filtered,
             coalesce(min(t.guardrail_min_sends), 200) AS min_sends,
             coalesce(min(t.guardrail_opt_out_percent), 3) AS opt_out_limit,
             coalesce(min(t.guardrail_complaint_percent), 0.3) AS complaint_limit,
             coalesce(min(t.guardrail_filtered_percent), 2) AS filtered_limit
      FROM crefinder.rollups r
      LEFT JOIN crefinder.tenant_settings t ON t.user_id = r.user_id
      WHERE r.campaign_id IS NOT NULL
      GROUP BY r.user_id, r.campaign_id, r.channel) AS x
LEFT JOIN crefinder.channel_pauses p ON p.campaign_id = x.campaign_id AND p.channel = x.channel
LEFT JOIN crefinder.guardrail_baselines b ON b.campaign_id = x.campaign_id AND b.channel = x.channel
CROSS JOIN LATERAL (SELECT x.sent - coalesce(b.sent, 0) AS sent, x.delivered - coalesce(b.delivered, 0) AS delivered,
                           x.opted_out - coalesce(b.opted_out, 0) AS opted_out,
                           x.complained - coalesce(b.complained, 0) AS complained,
                           x.filtered - coalesce(b.filtered, 0) AS filtered) AS y;

-- check_guardrails: for the campaigns given (those whose counts changed),
-- each channel past a threshold and not paused yet is paused: an alert is
-- written and sent (NOTIFY crefinder_alerts, the alert as JSON), the
-- channel's queued messages of the campaign wait (held until
-- resume_campaign), and tick() queues its next steps held.  Returns how
-- many channels it paused.
CREATE FUNCTION crefinder.check_guardrails(campaigns bigint[]) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    a record;
    alert bigint;
    paused integer := 0;
BEGIN
    FOR a IN
        SELECT g.*, k.kind, k.rate, k.threshold
        FROM crefinder.campaign_guardrails g
        LEFT JOIN crefinder.tenant_settings t ON t.user_id = g.user_id
        CROSS JOIN LATERAL (VALUES
            (1, 'opt_out_rate', g.opt_out_rate, coalesce(t.guardrail_opt_out_percent, 3), g.opt_out_tripped),
            (2, 'complaint_rate', g.complaint_rate, coalesce(t.guardrail_complaint_percent, 0.3), g.complaint_tripped),
            (3, 'filtered_rate', g.filtered_rate, coalesce(t.guardrail_filtered_percent, 2), g.filtered_tripped))
            AS k(n, kind, rate, threshold, tripped)
        WHERE g.campaign_id = ANY (campaigns) AND g.paused_at IS NULL AND k.tripped
        ORDER BY g.campaign_id, g.channel, k.n
    LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM crefinder.channel_pauses p
                              WHERE p.campaign_id = a.campaign_id AND p.channel = a.channel);
        INSERT INTO crefinder.alerts (user_id, campaign_id, channel, kind, rate, threshold, sends, detail)
        VALUES (a.user_id, a.campaign_id, a.channel, a.kind, a.rate, a.threshold, a.sent,
                jsonb_build_object('sent', a.sent, 'delivered', a.delivered, 'opted_out', a.opted_out,
                                   'complained', a.complained, 'filtered', a.filtered))
        RETURNING id INTO alert;
        INSERT INTO crefinder.channel_pauses (user_id, campaign_id, channel, alert_id)
        VALUES (a.user_id, a.campaign_id, a.channel, alert);
        UPDATE crefinder.outbound_events m
        SET hold_reason = 'guardrail', next_attempt_at = 'infinity', updated_at = now()
        WHERE m.user_id = a.user_id AND m.campaign_id = a.campaign_id AND m.channel = a.channel
          AND m.status = 'queued';
        PERFORM pg_notify('crefinder_alerts', jsonb_build_object(
            'alert_id', alert, 'tenant', a.user_id, 'campaign_id', a.campaign_id, 'channel', a.channel,
            'kind', a.kind, 'rate', a.rate, 'threshold', a.threshold, 'sent', a.sent, 'action', 'paused')::text);
        paused := paused + 1;
    END LOOP;
    RETURN paused;
END
$$;

-- ----------------------------------------------------------------------
-- Per sending number
-- ----------------------------------------------------------------------
--
-- A number carriers filter, or whose recipients opt out or complain, is
-- judged across every campaign and every direct send of the tenant, over
-- the last 7 UTC days (a number's whole history would hide a bad week).
-- Past a threshold the number is paused: the tenant's queued messages on
-- its channel wait (a messaging service may pick any of its numbers, so
-- all of them), an alert is written and sent, until resume_sender().

-- sender_pauses: a sending number paused by a guardrail.
CREATE TABLE crefinder.sender_pauses (
    user_id      uuid NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('voice', 'sms', 'whatsapp', 'email', 'call', 'voicemail')),
    sender       text NOT NULL,
    alert_id     bigint NOT NULL,
    paused_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, channel, sender)
);

-- sender_baselines: a number's counts of the UTC day it was resumed, at
-- that moment: from then on the guardrails judge what came after.
CREATE TABLE crefinder.sender_baselines (
    user_id      uuid NOT NULL,
    channel      text NOT NULL,
    sender       text NOT NULL,
    day          date NOT NULL,
    sent         bigint NOT NULL,
    delivered    bigint NOT NULL,
    opted_out    bigint NOT NULL,
    complained   bigint NOT NULL,
    filtered     bigint NOT NULL,
    set_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, channel, sender)
);

ALTER TABLE crefinder.alerts ADD COLUMN sender text;

-- (the numbers' part of the rollups, by tenant and day)
CREATE INDEX message_rollups_sender_idx ON crefinder.message_rollups (user_id, day) WHERE sender IS NOT NULL;

-- sender_guardrails: per tenant, channel and sending number, over the last
-- 7 UTC days: the rates campaign_guardrails shows, whether each is past
-- the tenant's threshold (counting from a resume when there was one), and
-- whether the number is paused.
CREATE VIEW crefinder.sender_guardrails WITH (security_invoker = true) AS
SELECT x.user_id, x.channel, x.sender, x.sent, x.delivered, x.opted_out, x.complained, x.filtered,
       round(100.0 * x.delivered / nullif(x.sent, 0), 2) AS delivery_rate,
       round(100.0 * x.opted_out / nullif(x.delivered, 0), 3) AS opt_out_rate,
       round(100.0 * x.complained / nullif(x.delivered, 0), 3) AS complaint_rate,
       round(100.0 * x.filtered / nullif(x.sent, 0), 3) AS filtered_rate,
       coalesce(x.judged_sent >= x.min_sends
                AND 100.0 * x.judged_opted_out / nullif(x.judged_delivered, 0) >= x.opt_out_limit, false)
           AS opt_out_tripped,
       coalesce(x.judged_sent >= x.min_sends
                AND 100.0 * x.judged_complained / nullif(x.judged_delivered, 0) >= x.complaint_limit, false)
           AS complaint_tripped,
       coalesce(x.judged_sent >= x.min_sends
                AND 100.0 * x.judged_filtered / nullif(x.judged_sent, 0) >= x.filtered_limit, false)
           AS filtered_tripped,
       p.paused_at, x.resumed_at
FROM (SELECT r.user_id, r.channel, r.sender, sum(r.sent)::bigint AS sent, sum(r.delivered)::bigint AS delivered,
             sum(r.opted_out)::bigint AS opted_out, sum(r.complained)::bigint AS complained,
             sum(r.filtered)::bigint AS filtered,
             -- since the resume: the days after it, and its own day less what it had then
             greatest(0, coalesce(sum(r.sent) FILTER (WHERE b.day IS NULL OR r.day >= b.day), 0)
                         - coalesce(max(b.sent) FILTER (WHERE r.day = b.day), 0))::bigint AS judged_sent,
             greatest(0, coalesce(sum(r.delivered) FILTER (WHERE b.day IS NULL OR r.day >= b.day), 0)
                         - coalesce(max(b.delivered) FILTER (WHERE r.day = b.day), 0))::bigint AS judged_delivered,
             greatest(0, coalesce(sum(r.opted_out) FILTER (WHERE b.day IS NULL OR r.day >= b.day), 0)
                         - coalesce(max(b.opted_out) FILTER (WHERE r.day = b.day), 0))::bigint AS judged_opted_out,
             greatest(0, coalesce(sum(r.complained) FILTER (WHERE b.day IS NULL OR r.day >= b.day), 0)
                         - coalesce(max(b.complained) FILTER (WHERE r.day = b.day), 0))::bigint AS judged_complained,
             greatest(0, coalesce(sum(r.filtered) FILTER (WHERE b.day IS NULL OR r.day >= b.day), 0)
                         - coalesce(max(b.filtered) FILTER (WHERE r.day = b.day), 0))::bigint AS judged_filtered,
             max(b.set_at) AS resumed_at,
             coalesce(min(t.guardrail_min_sends), 200) AS min_sends,
             coalesce(min(t.guardrail_opt_out_percent), 3) AS opt_out_limit,
             coalesce(min(t.guardrail_complaint_percent), 0.3) AS complaint_limit,
             coalesce(min(t.guardrail_filtered_percent), 2) AS filtered_limit
      FROM crefinder.rollups r
      LEFT JOIN crefinder.sender_baselines b
             ON b.user_id = r.user_id AND b.channel = r.channel AND b.sender = r.sender
      LEFT JOIN crefinder.tenant_settings t ON t.user_id = r.user_id
      WHERE r.sender IS NOT NULL AND r.day > (now() AT TIME ZONE 'UTC')::date - 7
      GROUP BY r.user_id, r.channel, r.sender) AS x
LEFT JOIN crefinder.sender_pauses p ON p.user_id = x.user_id AND p.channel = x.channel AND p.sender = x.sender;

-- check_sender_guardrails: for the tenants given (those whose numbers'
-- counts changed), each number past a threshold and not paused yet is
-- paused: an alert is written and sent (NOTIFY crefinder_alerts, with the
-- number), and the tenant's queued messages on its channel wait.  The
-- dispatcher holds the ones that come later (hold_for_paused_senders).
-- Returns how many numbers it paused.
CREATE FUNCTION crefinder.check_sender_guardrails(tenants uuid[]) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    a record;
    alert bigint;
    paused integer := 0;
BEGIN
    FOR a IN
        SELECT g.*, k.kind, k.rate, k.threshold
        FROM crefinder.sender_guardrails g
        LEFT JOIN crefinder.tenant_settings t ON t.user_id = g.user_id
        CROSS JOIN LATERAL (VALUES
            (1, 'opt_out_rate', g.opt_out_rate, coalesce(t.guardrail_opt_out_percent, 3), g.opt_out_tripped),
            (2, 'complaint_rate', g.complaint_rate, coalesce(t.guardrail_complaint_percent, 0.3), g.complaint_tripped),
            (3, 'filtered_rate', g.filtered_rate, coalesce(t.guardrail_filtered_percent, 2), g.filtered_tripped))
            AS k(n, kind, rate, threshold, tripped)
        WHERE g.user_id = ANY (tenants) AND g.paused_at IS NULL AND k.tripped
        ORDER BY g.user_id, g.channel, g.sender, k.n
    LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM crefinder.sender_pauses p
                              WHERE p.user_id = a.user_id AND p.channel = a.channel AND p.sender = a.sender);
        INSERT INTO crefinder.alerts (user_id, channel, sender, kind, rate, threshold, sends, detail)
        VALUES (a.user_id, a.channel, a.sender, a.kind, a.rate, a.threshold, a.sent,
                jsonb_build_object('sent', a.sent, 'delivered', a.delivered, 'opted_out', a.opted_out,
                                   'complained', a.complained, 'filtered', a.filtered, 'days', 7,
                                   'since_resume', a.resumed_at))
        RETURNING id INTO alert;
        INSERT INTO crefinder.sender_pauses (user_id, channel, sender, alert_id)
        VALUES (a.user_id, a.channel, a.sender, alert);
        PERFORM crefinder.hold_for_paused_senders(a.user_id, a.channel);
        PERFORM pg_notify('crefinder_alerts', jsonb_build_object(
            'alert_id', alert, 'tenant', a.user_id, 'channel', a.channel, 'sender', a.sender,
            'kind', a.kind, 'rate', a.rate, 'threshold', a.threshold, 'sent', a.sent, 'action', 'paused')::text);
        paused := paused + 1;
    END LOOP;
    RETURN paused;
END
$$;

-- hold_for_paused_senders: the due queued messages of a paused number's
-- tenant and channel wait (hold_reason sender_paused) until
-- resume_sender(); of every paused number when tenant is NULL (the
-- dispatcher, before each claim: messages queued by any path since the
-- pause).  Messages not due yet keep their time (a scheduled send, a
-- backoff, quiet hours) and are held when they fall due.  Rows someone
-- holds are left for the next time, and so is a pause being resumed (its
-- row locked: the resume then waits for this transaction and sees what it
-- held).
CREATE FUNCTION crefinder.hold_for_paused_senders(tenant uuid DEFAULT NULL, channel text DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    n integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM crefinder.sender_pauses) THEN
        RETURN 0;
    END IF;
    WITH held AS (
        -- one paused tenant and channel at a time, by the queue's index
        SELECT q.id
        FROM (SELECT p.user_id, p.channel FROM crefinder.sender_pauses p
              WHERE (tenant IS NULL OR p.user_id = tenant) AND (channel IS NULL OR p.channel = channel)
              FOR KEY SHARE OF p SKIP LOCKED) AS p
        CROSS JOIN LATERAL (
            SELECT m.id FROM crefinder.outbound_events m
            WHERE m.user_id = p.user_id AND m.channel = p.channel AND m.status = 'queued'
              AND m.next_attempt_at <= now()
              -- (a campaign's own pause keeps its messages: resume_campaign releases them)
              AND coalesce(m.hold_reason, '') NOT IN ('sender_paused', 'campaign_paused', 'guardrail')
            FOR UPDATE OF m SKIP LOCKED) AS q
    )
    UPDATE crefinder.outbound_events m
    SET hold_reason = 'sender_paused', next_attempt_at = 'infinity', updated_at = now()
    FROM held WHERE m.id = held.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- release_unpaused_senders: messages held for a number whose pause is
-- gone (a resume in a transaction that could not see a hold committed
-- beside it) go on, spread over their tenant's release window; tick()
-- runs it every minute.
CREATE INDEX outbound_events_sender_paused_idx ON crefinder.outbound_events (user_id, channel)
    WHERE status = 'queued' AND hold_reason = 'sender_paused';
CREATE FUNCTION crefinder.release_unpaused_senders() RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    n integer;
BEGIN
    UPDATE crefinder.outbound_events m
    SET hold_reason = NULL,
        next_attempt_at = now() + make_interval(secs => (hashint8(m.id) & 2147483647) % greatest(60 * coalesce(
            (crefinder.settings_of(m.user_id) ->> 'release_window_minutes')::integer, 60), 1)),
        updated_at = now()
    WHERE m.status = 'queued' AND m.hold_reason = 'sender_paused'
      AND NOT EXISTS (SELECT 1 FROM crefinder.sender_pauses p WHERE p.user_id = m.user_id AND p.channel = m.channel);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- resume_sender: the current tenant's number a guardrail paused goes on,
-- judged from now on by what comes next; once none of the channel's
-- numbers is paused, its held messages go out spread over the tenant's
-- release window.  True when it was paused.
CREATE FUNCTION crefinder.resume_sender(channel text, sender text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    tenant uuid := crefinder.current_user_id();
    release_window integer := coalesce((crefinder.settings_of(tenant) ->> 'release_window_minutes')::integer, 60);
    today date := (now() AT TIME ZONE 'UTC')::date;
BEGIN
    PERFORM crefinder.require_argument(channel IS NULL, 'channel');
    PERFORM crefinder.require_argument(sender IS NULL, 'sender');
    DELETE FROM crefinder.sender_pauses p WHERE p.user_id = tenant AND p.channel = channel AND p.sender = sender;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO crefinder.sender_baselines AS b
        (user_id, channel, sender, day, sent, delivered, opted_out, complained, filtered)
    SELECT tenant, channel, sender, today, coalesce(sum(r.sent), 0), coalesce(sum(r.delivered), 0),
           coalesce(sum(r.opted_out), 0), coalesce(sum(r.complained), 0), coalesce(sum(r.filtered), 0)
    FROM crefinder.rollups r
    WHERE r.user_id = tenant AND r.channel = channel AND r.sender = sender AND r.day = today
    ON CONFLICT ON CONSTRAINT sender_baselines_pkey DO UPDATE SET
        day = excluded.day, sent = excluded.sent, delivered = excluded.delivered, opted_out = excluded.opted_out,
        complained = excluded.complained, filtered = excluded.filtered, set_at = now();
    IF NOT EXISTS (SELECT 1 FROM crefinder.sender_pauses p WHERE p.user_id = tenant AND p.channel = channel) THEN
        -- decided again when the dispatcher takes them
        UPDATE crefinder.outbound_events m
        SET hold_reason = NULL,
            next_attempt_at = now() + make_interval(secs => (hashint8(m.id) & 2147483647)
                                                             % greatest(release_window * 60, 1)),
            updated_at = now()
        WHERE m.user_id = tenant AND m.channel = channel AND m.status = 'queued'
          AND m.hold_reason = 'sender_paused';
        PERFORM crefinder.wake_dispatcher_on_commit();
    END IF;
    RETURN true;
END
$$;
