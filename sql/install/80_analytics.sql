-- Analytics: the outbox's counts kept in rollups, current with every
-- statement that inserts, changes or deletes messages, and the views
-- analysts and dashboards read (filtered to the current tenant).

-- ----------------------------------------------------------------------
-- Rollups
-- ----------------------------------------------------------------------

-- message_rollups: per tenant, campaign (NULL: messages outside
-- campaigns), channel, step, variant and day, the counts of messages in
-- each state and their cost, as of the last fold_rollups(); the deltas
-- appended since are in rollup_deltas, and crefinder.rollups is the sum of
-- both.  Always equal to what rebuild_rollups() computes from
-- outbound_events.
CREATE TABLE crefinder.message_rollups (
    user_id      uuid NOT NULL,
    campaign_id  bigint,
    channel      text NOT NULL,
    step         integer,
    variant      text,
    day          date NOT NULL,      -- the UTC day sent (created, until sent)
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
    CONSTRAINT message_rollups_key UNIQUE NULLS NOT DISTINCT (user_id, campaign_id, channel, step, variant, day)
);
CREATE INDEX message_rollups_day_idx ON crefinder.message_rollups (user_id, day);

-- rollup_deltas: what each statement that wrote outbound_events changed
-- (the roll_up trigger appends them), waiting for fold_rollups().
CREATE TABLE crefinder.rollup_deltas (LIKE crefinder.message_rollups INCLUDING DEFAULTS);

-- roll_up: the statement trigger on outbound_events (one per kind of
-- statement: a trigger with transition tables has one event), in C.
CREATE FUNCTION crefinder.roll_up() RETURNS trigger
    LANGUAGE c SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'crefinder_roll_up';
CREATE TRIGGER roll_up_inserts AFTER INSERT ON crefinder.outbound_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crefinder.roll_up();
CREATE TRIGGER roll_up_updates AFTER UPDATE ON crefinder.outbound_events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crefinder.roll_up();
CREATE TRIGGER roll_up_deletes AFTER DELETE ON crefinder.outbound_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION crefinder.roll_up();

-- fold_rollups: moves the deltas committed so far into message_rollups,
-- summed by key (keys in order).  tick() runs it every minute.  Returns
-- how many deltas it folded.
CREATE FUNCTION crefinder.fold_rollups() RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    AS $$
DECLARE
    n bigint;
BEGIN
    WITH taken AS (
        DELETE FROM crefinder.rollup_deltas d RETURNING d.*
    ),
    summed AS (
        SELECT t.user_id, t.campaign_id, t.channel, t.step, t.variant, t.day, count(*) AS deltas,
               sum(t.messages) AS messages, sum(t.sent) AS sent, sum(t.delivered) AS delivered,
               sum(t.opened) AS opened, sum(t.clicked) AS clicked, sum(t.responded) AS responded,
               sum(t.failed) AS failed, sum(t.blocked) AS blocked, sum(t.skipped) AS skipped,
               sum(t.priced) AS priced, sum(t.cost_cents) AS cost_cents
        FROM taken t
        GROUP BY t.user_id, t.campaign_id, t.channel, t.step, t.variant, t.day
    ),
    folded AS (
        INSERT INTO crefinder.message_rollups AS r
            (user_id, campaign_id, channel, step, variant, day, messages, sent, delivered, opened, clicked,
             responded, failed, blocked, skipped, priced, cost_cents)
        SELECT s.user_id, s.campaign_id, s.channel, s.step, s.variant, s.day, s.messages, s.sent, s.delivered,
               s.opened, s.clicked, s.responded, s.failed, s.blocked, s.skipped, s.priced, s.cost_cents
        FROM summed s
        ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT ON CONSTRAINT message_rollups_key DO UPDATE SET
            messages = r.messages + excluded.messages, sent = r.sent + excluded.sent,
            delivered = r.delivered + excluded.delivered, opened = r.opened + excluded.opened,
            clicked = r.clicked + excluded.clicked, responded = r.responded + excluded.responded,
            failed = r.failed + excluded.failed, blocked = r.blocked + excluded.blocked,
            skipped = r.skipped + excluded.skipped, priced = r.priced + excluded.priced,
            cost_cents = r.cost_cents + excluded.cost_cents
    )
    SELECT coalesce(sum(s.deltas), 0) INTO n FROM summed s;
    RETURN n;
END
$$;

-- rollups: message_rollups and the deltas not folded yet, as one (what
-- the views read).
CREATE VIEW crefinder.rollups WITH (security_invoker = true) AS
SELECT r.user_id, r.campaign_id, r.channel, r.step, r.variant, r.day, r.messages, r.sent, r.delivered,
       r.opened, r.clicked, r.responded, r.failed, r.blocked, r.skipped, r.priced, r.cost_cents
FROM crefinder.message_rollups r
UNION ALL
SELECT d.user_id, d.campaign_id, d.channel, d.step, d.variant, d.day, d.messages, d.sent, d.delivered,
       d.opened, d.clicked, d.responded, d.failed, d.blocked, d.skipped, d.priced, d.cost_cents
FROM crefinder.rollup_deltas d;

-- rollup_delta: what one message adds to its rollup row (sign 1) or takes
-- from it (sign -1), for rebuild_rollups(): the same definitions as the
-- trigger's (src/rollups.c), and a test holds them equal:
--   sent: sent_at is set; delivered: delivered_at (SMS and WhatsApp
--   delivered or read, email delivered, call answered); opened, clicked:
--   opened_at, clicked_at (email); responded: responded_at; failed,
--   blocked, skipped: the current status; priced: sent with cost_cents known.
CREATE FUNCTION crefinder.rollup_delta(m crefinder.outbound_events, sign integer,
    OUT day date, OUT messages integer, OUT sent integer, OUT delivered integer, OUT opened integer,
    OUT clicked integer, OUT responded integer, OUT failed integer, OUT blocked integer,
    OUT skipped integer, OUT priced integer, OUT cost_cents numeric)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT (coalesce(m.sent_at, m.created_at) AT TIME ZONE 'UTC')::date,
           sign, sign * (m.sent_at IS NOT NULL)::integer, sign * (m.delivered_at IS NOT NULL)::integer,
           sign * (m.opened_at IS NOT NULL)::integer, sign * (m.clicked_at IS NOT NULL)::integer,
           sign * (m.responded_at IS NOT NULL)::integer, sign * (m.status = 'failed')::integer,
           sign * (m.status = 'blocked')::integer, sign * (m.status = 'skipped')::integer,
           sign * (m.sent_at IS NOT NULL AND m.cost_cents IS NOT NULL)::integer,
           sign * coalesce(m.cost_cents, 0)
$$;

-- rebuild_rollups: recomputes the rollups from outbound_events (writers
-- wait meanwhile).  Returns how many rollup rows there are; they are what
-- was kept incrementally.
CREATE FUNCTION crefinder.rebuild_rollups() RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    AS $$
DECLARE
    n bigint;
BEGIN
    LOCK TABLE crefinder.outbound_events IN SHARE MODE;
    LOCK TABLE crefinder.rollup_deltas, crefinder.message_rollups IN EXCLUSIVE MODE;
    DELETE FROM crefinder.rollup_deltas;
    DELETE FROM crefinder.message_rollups;
    INSERT INTO crefinder.message_rollups
        (user_id, campaign_id, channel, step, variant, day, messages, sent, delivered, opened,
         clicked, responded, failed, blocked, skipped, priced, cost_cents)
    SELECT m.user_id, m.campaign_id, m.channel, m.step, m.variant, (d).day,
           sum((d).messages), sum((d).sent), sum((d).delivered), sum((d).opened), sum((d).clicked),
           sum((d).responded), sum((d).failed), sum((d).blocked), sum((d).skipped), sum((d).priced),
           sum((d).cost_cents)
    FROM (SELECT m.user_id, m.campaign_id, m.channel, m.step, m.variant, crefinder.rollup_delta(m, 1) AS d
          FROM crefinder.outbound_events m) AS m
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
       sum(r.messages)::bigint AS messages, sum(r.sent)::bigint AS sent, sum(r.delivered)::bigint AS delivered,
       sum(r.opened)::bigint AS opened, sum(r.clicked)::bigint AS clicked, sum(r.responded)::bigint AS responded,
       sum(r.failed)::bigint AS failed, sum(r.blocked)::bigint AS blocked, sum(r.skipped)::bigint AS skipped,
       round(100.0 * sum(r.delivered)::bigint / nullif(sum(r.sent)::bigint, 0), 2) AS delivery_rate,
       round(100.0 * sum(r.opened)::bigint / nullif(sum(r.delivered)::bigint, 0), 2) AS open_rate,
       round(100.0 * sum(r.clicked)::bigint / nullif(sum(r.delivered)::bigint, 0), 2) AS click_rate,
       round(100.0 * sum(r.responded)::bigint / nullif(sum(r.delivered)::bigint, 0), 2) AS response_rate,
       round(sum(r.cost_cents) / 100, 2) AS total_cost,
       round(sum(r.cost_cents) / 100 / nullif(sum(r.sent)::bigint, 0), 4) AS cost_per_contact,
       sum(r.sent)::bigint - sum(r.priced)::bigint AS unpriced
FROM crefinder.rollups r
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
FROM (SELECT r.user_id, r.channel, sum(r.sent)::bigint AS sent, sum(r.delivered)::bigint AS delivered, sum(r.opened)::bigint AS opened,
             sum(r.responded)::bigint AS responded, sum(r.cost_cents) AS cost_cents, sum(r.priced)::bigint AS priced,
             coalesce(min(t.average_deal_value), 50000) AS deal_value,
             coalesce(min(t.conversion_rate), 0.05) AS conversion
      FROM crefinder.rollups r
      LEFT JOIN crefinder.tenant_settings t ON t.user_id = r.user_id
      WHERE r.day > (now() AT TIME ZONE 'UTC')::date - 30
      GROUP BY r.user_id, r.channel) AS x
ORDER BY x.user_id, round(100.0 * x.responded / nullif(x.delivered, 0), 2) DESC NULLS LAST, x.channel;

-- proportion_test: the two-proportion z-test of x1 successes in n1 trials
-- against x2 in n2: z and the two-sided p-value (NULL when an arm has no
-- trials or nothing varies).
CREATE FUNCTION crefinder.proportion_test(x1 bigint, n1 bigint, x2 bigint, n2 bigint,
                                          OUT z float8, OUT p_value float8)
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_proportion_test';

-- ab_test_results: per campaign, step and arm (each variant, and the
-- holdout), who was assigned, sent and responded; the response rate
-- (responded / sent; the holdout's, which is sent nothing: responded /
-- assigned), the difference to the step's first variant with the z-test,
-- the lift over the holdout (percentage points), and the winner: the best
-- variant once each variant has at least 100 sends and it differs from
-- the first (or, being the first, every other differs from it) at
-- p < 0.05.
CREATE VIEW crefinder.ab_test_results WITH (security_invoker = true) AS
WITH arms AS (
    SELECT r.user_id, r.campaign_id, r.step, r.variant, sum(r.messages)::bigint AS assigned, sum(r.sent)::bigint AS sent,
           sum(r.responded)::bigint AS responded
    FROM crefinder.rollups r
    WHERE r.campaign_id IS NOT NULL AND r.variant IS NOT NULL AND r.step IS NOT NULL
    GROUP BY r.user_id, r.campaign_id, r.step, r.variant
),
placed AS (
    -- the variants in the order the step lists them (a nurture step's,
    -- numbered from 1000, by name), the holdout apart
    SELECT a.*, a.variant = 'holdout' AS holdout,
           CASE WHEN a.variant = 'holdout' THEN a.assigned ELSE a.sent END AS base,
           row_number() OVER (PARTITION BY a.user_id, a.campaign_id, a.step
                              ORDER BY a.variant = 'holdout', o.n, a.variant) AS position
    FROM arms a
    LEFT JOIN crefinder.campaigns c ON c.user_id = a.user_id AND c.id = a.campaign_id
    LEFT JOIN crefinder.sequences q ON q.user_id = c.user_id AND q.id = c.sequence_id
    LEFT JOIN LATERAL (SELECT v.n FROM jsonb_array_elements(q.steps -> a.step -> 'variants') WITH ORDINALITY AS v(x, n)
                       WHERE a.step < 1000 AND v.x ->> 'name' = a.variant) AS o ON true
),
compared AS (
    SELECT p.*, round(100.0 * p.responded / nullif(p.base, 0), 2) AS response_rate,
           f.responded AS first_responded, f.base AS first_base,
           round(100.0 * f.responded / nullif(f.base, 0), 2) AS first_rate,
           round(100.0 * h.responded / nullif(h.base, 0), 2) AS holdout_rate,
           t.z, t.p_value
    FROM placed p
    LEFT JOIN placed f ON f.user_id = p.user_id AND f.campaign_id = p.campaign_id AND f.step = p.step
                      AND f.position = 1 AND NOT f.holdout
    LEFT JOIN placed h ON h.user_id = p.user_id AND h.campaign_id = p.campaign_id AND h.step = p.step AND h.holdout
    LEFT JOIN LATERAL crefinder.proportion_test(p.responded, p.base, f.responded, f.base) AS t
        ON NOT p.holdout AND p.position > 1
),
judged AS (
    SELECT x.*,
           bool_and(x.base >= 100) FILTER (WHERE NOT x.holdout) OVER w AS enough,
           bool_and(x.p_value < 0.05) FILTER (WHERE NOT x.holdout AND x.position > 1) OVER w AS all_differ,
           first_value(x.position) OVER (PARTITION BY x.user_id, x.campaign_id, x.step
                                         ORDER BY x.holdout, x.responded::numeric / nullif(x.base, 0) DESC NULLS LAST,
                                                  x.position) AS best
    FROM compared x
    WINDOW w AS (PARTITION BY x.user_id, x.campaign_id, x.step)
)
SELECT j.user_id, j.campaign_id, j.step, j.variant, j.assigned, j.sent, j.responded, j.response_rate,
       j.response_rate - j.first_rate AS difference, j.z, j.p_value,
       CASE WHEN NOT j.holdout THEN j.response_rate - j.holdout_rate END AS lift_over_holdout,
       NOT j.holdout AND j.position = j.best AND coalesce(j.enough, false)
           AND CASE WHEN j.position = 1 THEN coalesce(j.all_differ, false) ELSE j.p_value < 0.05 END AS winner
FROM judged j;
