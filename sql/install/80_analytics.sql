-- Analytics: the outbox's counts kept in rollups, current with every
-- statement that inserts, changes or deletes messages, and the views
-- analysts and dashboards read (filtered to the current tenant).

-- ----------------------------------------------------------------------
-- Rollups
-- ----------------------------------------------------------------------

-- message_rollups: per tenant, campaign (NULL: messages outside
-- campaigns), channel, step, variant and day, the counts of messages in
-- each state and their cost.  Each writer adds to the shard of its
-- backend, so concurrent writers (dispatcher, webhooks, tick) rarely wait
-- on one another's row; readers sum the shards.  Always equal to what
-- rebuild_rollups() computes from outbound_events.
CREATE TABLE crefinder.message_rollups (
    user_id      uuid NOT NULL,
    campaign_id  bigint,
    channel      text NOT NULL,
    step         integer,
    variant      text,
    day          date NOT NULL,      -- the UTC day sent (created, until sent)
    shard        smallint NOT NULL,
    messages     bigint NOT NULL DEFAULT 0,
    sent         bigint NOT NULL DEFAULT 0,
    delivered    bigint NOT NULL DEFAULT 0,
    opened       bigint NOT NULL DEFAULT 0,
    clicked      bigint NOT NULL DEFAULT 0,
    responded    bigint NOT NULL DEFAULT 0,
    failed       bigint NOT NULL DEFAULT 0,
    blocked      bigint NOT NULL DEFAULT 0,
    skipped      bigint NOT NULL DEFAULT 0,
    priced       bigint NOT NULL DEFAULT 0,   -- sent, with a cost known
    cost_cents   numeric NOT NULL DEFAULT 0,
    CONSTRAINT message_rollups_key UNIQUE NULLS NOT DISTINCT
        (user_id, campaign_id, channel, step, variant, day, shard)
);
CREATE INDEX message_rollups_day_idx ON crefinder.message_rollups (user_id, day);

-- rollup_delta: what one message adds to its rollup row (sign 1) or takes
-- from it (sign -1).  The one definition of what each count counts:
--   sent: sent_at is set; delivered: delivered_at (SMS and WhatsApp
--   delivered or read, email delivered, call answered); opened, clicked:
--   opened_at, clicked_at (email); responded: responded_at; failed,
--   blocked, skipped: the current status; priced: sent with cost_cents known.
CREATE TYPE crefinder.rollup_delta AS (
    user_id uuid, campaign_id bigint, channel text, step integer, variant text, day date,
    messages integer, sent integer, delivered integer, opened integer, clicked integer,
    responded integer, failed integer, blocked integer, skipped integer, priced integer,
    cost_cents numeric);

CREATE FUNCTION crefinder.rollup_delta(m crefinder.outbound_events, sign integer)
    RETURNS crefinder.rollup_delta
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT ROW(m.user_id, m.campaign_id, m.channel, m.step, m.variant,
               (coalesce(m.sent_at, m.created_at) AT TIME ZONE 'UTC')::date,
               sign, sign * (m.sent_at IS NOT NULL)::integer, sign * (m.delivered_at IS NOT NULL)::integer,
               sign * (m.opened_at IS NOT NULL)::integer, sign * (m.clicked_at IS NOT NULL)::integer,
               sign * (m.responded_at IS NOT NULL)::integer, sign * (m.status = 'failed')::integer,
               sign * (m.status = 'blocked')::integer, sign * (m.status = 'skipped')::integer,
               sign * (m.sent_at IS NOT NULL AND m.cost_cents IS NOT NULL)::integer,
               sign * coalesce(m.cost_cents, 0))::crefinder.rollup_delta
$$;

-- add_to_rollups: sums deltas by key and adds them to this backend's
-- shard (keys in order, so that two writers never wait on each other in a
-- cycle).  Deltas that cancel out (a claim, a retry) write nothing.
CREATE FUNCTION crefinder.add_to_rollups(deltas crefinder.rollup_delta[]) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    AS $$
    INSERT INTO crefinder.message_rollups AS r
        (user_id, campaign_id, channel, step, variant, day, shard, messages, sent, delivered, opened,
         clicked, responded, failed, blocked, skipped, priced, cost_cents)
    SELECT d.user_id, d.campaign_id, d.channel, d.step, d.variant, d.day, (pg_backend_pid() % 8)::smallint,
           sum(d.messages), sum(d.sent), sum(d.delivered), sum(d.opened), sum(d.clicked), sum(d.responded),
           sum(d.failed), sum(d.blocked), sum(d.skipped), sum(d.priced), sum(d.cost_cents)
    FROM unnest(deltas) AS d
    GROUP BY d.user_id, d.campaign_id, d.channel, d.step, d.variant, d.day
    HAVING sum(d.messages) <> 0 OR sum(d.sent) <> 0 OR sum(d.delivered) <> 0 OR sum(d.opened) <> 0
        OR sum(d.clicked) <> 0 OR sum(d.responded) <> 0 OR sum(d.failed) <> 0 OR sum(d.blocked) <> 0
        OR sum(d.skipped) <> 0 OR sum(d.priced) <> 0 OR sum(d.cost_cents) <> 0
    ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT ON CONSTRAINT message_rollups_key DO UPDATE SET
        messages = r.messages + excluded.messages, sent = r.sent + excluded.sent,
        delivered = r.delivered + excluded.delivered, opened = r.opened + excluded.opened,
        clicked = r.clicked + excluded.clicked, responded = r.responded + excluded.responded,
        failed = r.failed + excluded.failed, blocked = r.blocked + excluded.blocked,
        skipped = r.skipped + excluded.skipped, priced = r.priced + excluded.priced,
        cost_cents = r.cost_cents + excluded.cost_cents
$$;

-- roll_up: the trigger of every statement that writes outbound_events
-- (one per kind of statement: a trigger with transition tables has one
-- event): the new rows' counts less the old rows'.
CREATE FUNCTION crefinder.roll_up() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM crefinder.add_to_rollups(ARRAY(SELECT crefinder.rollup_delta(n, 1) FROM new_rows n));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM crefinder.add_to_rollups(ARRAY(SELECT crefinder.rollup_delta(n, 1) FROM new_rows n)
                                         || ARRAY(SELECT crefinder.rollup_delta(o, -1) FROM old_rows o));
    ELSE
        PERFORM crefinder.add_to_rollups(ARRAY(SELECT crefinder.rollup_delta(o, -1) FROM old_rows o));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER roll_up_inserts AFTER INSERT ON crefinder.outbound_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crefinder.roll_up();
CREATE TRIGGER roll_up_updates AFTER UPDATE ON crefinder.outbound_events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crefinder.roll_up();
CREATE TRIGGER roll_up_deletes AFTER DELETE ON crefinder.outbound_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION crefinder.roll_up();

-- rebuild_rollups: recomputes the rollups from outbound_events (locking
-- it against writers meanwhile).  Returns how many rollup rows there are;
-- they must equal what was kept incrementally.
CREATE FUNCTION crefinder.rebuild_rollups() RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    AS $$
DECLARE
    n bigint;
BEGIN
    LOCK TABLE crefinder.outbound_events IN SHARE MODE;
    DELETE FROM crefinder.message_rollups;
    INSERT INTO crefinder.message_rollups
        (user_id, campaign_id, channel, step, variant, day, shard, messages, sent, delivered, opened,
         clicked, responded, failed, blocked, skipped, priced, cost_cents)
    SELECT (d).user_id, (d).campaign_id, (d).channel, (d).step, (d).variant, (d).day, 0,
           sum((d).messages), sum((d).sent), sum((d).delivered), sum((d).opened), sum((d).clicked),
           sum((d).responded), sum((d).failed), sum((d).blocked), sum((d).skipped), sum((d).priced),
           sum((d).cost_cents)
    FROM (SELECT crefinder.rollup_delta(m, 1) AS d FROM crefinder.outbound_events m) AS x
    GROUP BY 1, 2, 3, 4, 5, 6;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- ----------------------------------------------------------------------
-- Views
-- ----------------------------------------------------------------------

-- campaign_performance: per campaign and channel, the counts of messages
-- and the rates (percentages; NULL where the denominator is 0) as the
-- README defines them, the cost in dollars and how many sent messages
-- have no price yet.
CREATE VIEW crefinder.campaign_performance WITH (security_invoker = true) AS
SELECT r.user_id, r.campaign_id, c.name AS campaign_name, r.channel,
       sum(r.messages) AS messages, sum(r.sent) AS sent, sum(r.delivered) AS delivered,
       sum(r.opened) AS opened, sum(r.clicked) AS clicked, sum(r.responded) AS responded,
       sum(r.failed) AS failed, sum(r.blocked) AS blocked, sum(r.skipped) AS skipped,
       round(100.0 * sum(r.delivered) / nullif(sum(r.sent), 0), 2) AS delivery_rate,
       round(100.0 * sum(r.opened) / nullif(sum(r.delivered), 0), 2) AS open_rate,
       round(100.0 * sum(r.clicked) / nullif(sum(r.delivered), 0), 2) AS click_rate,
       round(100.0 * sum(r.responded) / nullif(sum(r.delivered), 0), 2) AS response_rate,
       round(sum(r.cost_cents) / 100, 2) AS total_cost,
       round(sum(r.cost_cents) / 100 / nullif(sum(r.sent), 0), 4) AS cost_per_contact,
       sum(r.sent) - sum(r.priced) AS unpriced
FROM crefinder.message_rollups r
JOIN crefinder.campaigns c ON c.user_id = r.user_id AND c.id = r.campaign_id
GROUP BY r.user_id, r.campaign_id, c.name, r.channel;

-- channel_effectiveness: per channel, the messages sent in the last 30
-- days, best response rate first, with the cost, the revenue the
-- tenant's deal assumptions expect from the responses (average_deal_value,
-- default 50,000; conversion_rate, default 0.05) and the ROI in percent.
CREATE VIEW crefinder.channel_effectiveness WITH (security_invoker = true) AS
SELECT x.user_id, x.channel, x.sent, x.delivered, x.opened, x.responded,
       round(100.0 * x.delivered / nullif(x.sent, 0), 2) AS delivery_rate,
       round(100.0 * x.opened / nullif(x.delivered, 0), 2) AS open_rate,
       round(100.0 * x.responded / nullif(x.delivered, 0), 2) AS response_rate,
       round(x.cost_cents / 100, 2) AS cost,
       round(x.responded * x.deal_value * x.conversion, 2) AS revenue,
       round(100 * (x.responded * x.deal_value * x.conversion - x.cost_cents / 100) / nullif(x.cost_cents / 100, 0), 2)
           AS roi,
       x.sent - x.priced AS unpriced
FROM (SELECT r.user_id, r.channel, sum(r.sent) AS sent, sum(r.delivered) AS delivered, sum(r.opened) AS opened,
             sum(r.responded) AS responded, sum(r.cost_cents) AS cost_cents, sum(r.priced) AS priced,
             coalesce(min(t.average_deal_value), 50000) AS deal_value,
             coalesce(min(t.conversion_rate), 0.05) AS conversion
      FROM crefinder.message_rollups r
      LEFT JOIN crefinder.tenant_settings t ON t.user_id = r.user_id
      WHERE r.day > (now() AT TIME ZONE 'UTC')::date - 30
      GROUP BY r.user_id, r.channel) AS x
ORDER BY x.user_id, round(100.0 * x.responded / nullif(x.delivered, 0), 2) DESC NULLS LAST, x.channel;
