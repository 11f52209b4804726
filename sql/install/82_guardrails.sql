-- Guardrails: a campaign's channel that draws too many opt-outs or spam
-- complaints, or whose texts carriers filter, pauses itself before it
-- burns the sender's reputation; an alert says why, to a table and to
-- LISTEN crefinder_alerts.

-- channel_pauses: a campaign's channel paused by a guardrail, until
-- resume_campaign(); its steps are queued held, its queued messages wait.
CREATE TABLE crefinder.channel_pauses (
    user_id      uuid NOT NULL,
    campaign_id  bigint NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('voice', 'sms', 'whatsapp', 'email')),
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
