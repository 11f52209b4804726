-- Retention: finished messages older than crefinder.history_retention days
-- and webhook deliveries older than crefinder.webhook_retention days are
-- pruned, in bounded batches, by the hourly part of tick(); what the
-- pruned messages counted stays in the rollups, and in archives that
-- rebuild_rollups() adds to what it finds in the outbox.

-- The pruned messages' counts, in the shapes of the rollups.
CREATE TABLE crefinder.pruned_rollups (LIKE crefinder.message_rollups INCLUDING DEFAULTS);
ALTER TABLE crefinder.pruned_rollups ADD CONSTRAINT pruned_rollups_key
    UNIQUE NULLS NOT DISTINCT (user_id, campaign_id, channel, step, variant, day, sender);
CREATE TABLE crefinder.pruned_reach (
    user_id      uuid NOT NULL,
    campaign_id  bigint NOT NULL,
    property_id  bigint NOT NULL,
    contact      text NOT NULL,
    sent         bigint NOT NULL DEFAULT 0,
    delivered    bigint NOT NULL DEFAULT 0,
    responded    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, property_id, contact)
);
CREATE TABLE crefinder.pruned_contact_time (LIKE crefinder.contact_time_rollups INCLUDING DEFAULTS);
ALTER TABLE crefinder.pruned_contact_time ADD PRIMARY KEY (user_id, channel, dow, hour);

-- maintenance: when tick() last pruned.
CREATE TABLE crefinder.maintenance (
    id              integer PRIMARY KEY CHECK (id = 1),
    last_pruned_at  timestamptz
);
INSERT INTO crefinder.maintenance VALUES (1, NULL);

-- Messages are pruned by age, oldest first: a BRIN index (insert order)
-- finds them at almost no cost per insert.
CREATE INDEX outbound_events_created_idx ON crefinder.outbound_events USING brin (created_at);

-- prune_history: deletes up to batch finished messages (any status but
-- queued and sending) created more than crefinder.history_retention days
-- ago, and up to batch webhook deliveries older than
-- crefinder.webhook_retention days; the messages' counts stay in the
-- rollups and go into the archives.  Returns what it deleted.
CREATE FUNCTION crefinder.prune_history(batch integer DEFAULT 50000) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    AS $$
DECLARE
    messages bigint;
    deliveries bigint;
BEGIN
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'batch must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the deletes change no count (crefinder.pruning, for this statement)
    PERFORM set_config('crefinder.pruning', 'on', true);
    WITH doomed AS MATERIALIZED (
        -- (rows someone holds are left for the next time)
        SELECT m.id, m.user_id, m.campaign_id, m.channel, m.step, m.variant, m.sender, m.property_id, m.to_contact,
               m.sent_at, m.delivered_at, m.responded_at, crefinder.rollup_delta(m, 1) AS d
        FROM crefinder.outbound_events m
        WHERE m.status NOT IN ('queued', 'sending')
          AND m.created_at < now() - make_interval(days => current_setting('crefinder.history_retention')::integer)
        ORDER BY m.created_at
        LIMIT batch
        FOR UPDATE OF m SKIP LOCKED
    ),
    archived AS (
        INSERT INTO crefinder.pruned_rollups AS r
            (user_id, campaign_id, channel, step, variant, sender, day, messages, sent, delivered, opened, clicked,
             responded, failed, blocked, skipped, priced, opted_out, complained, filtered, cost_cents)
        SELECT p.user_id, p.campaign_id, p.channel, p.step, p.variant, p.sender, (p.d).day, sum((p.d).messages),
               sum((p.d).sent), sum((p.d).delivered), sum((p.d).opened), sum((p.d).clicked), sum((p.d).responded),
               sum((p.d).failed), sum((p.d).blocked), sum((p.d).skipped), sum((p.d).priced),
               sum((p.d).opted_out), sum((p.d).complained), sum((p.d).filtered), sum((p.d).cost_cents)
        FROM doomed p
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT ON CONSTRAINT pruned_rollups_key DO UPDATE SET
            messages = r.messages + excluded.messages, sent = r.sent + excluded.sent,
            delivered = r.delivered + excluded.delivered, opened = r.opened + excluded.opened,
            clicked = r.clicked + excluded.clicked, responded = r.responded + excluded.responded,
            failed = r.failed + excluded.failed, blocked = r.blocked + excluded.blocked,
            skipped = r.skipped + excluded.skipped, priced = r.priced + excluded.priced,
            opted_out = r.opted_out + excluded.opted_out, complained = r.complained + excluded.complained,
            filtered = r.filtered + excluded.filtered, cost_cents = r.cost_cents + excluded.cost_cents
    ),
    archived_reach AS (
        INSERT INTO crefinder.pruned_reach AS r (user_id, campaign_id, property_id, contact, sent, delivered, responded)
        SELECT p.user_id, p.campaign_id, p.property_id, p.to_contact, count(*), count(p.delivered_at),
               count(p.responded_at)
        FROM doomed p
        WHERE p.campaign_id IS NOT NULL AND p.property_id IS NOT NULL AND p.sent_at IS NOT NULL
        GROUP BY 1, 2, 3, 4
        ORDER BY 2, 3, 4
        ON CONFLICT (campaign_id, property_id, contact) DO UPDATE SET
            sent = r.sent + excluded.sent, delivered = r.delivered + excluded.delivered,
            responded = r.responded + excluded.responded
    ),
    archived_hours AS (
        INSERT INTO crefinder.pruned_contact_time AS r (user_id, channel, dow, hour, sent, responded)
        SELECT x.user_id, x.channel, extract(dow FROM x.local)::integer, extract(hour FROM x.local)::integer,
               count(*), count(*) FILTER (WHERE x.responded)
        FROM (SELECT p.user_id, p.channel, p.sent_at AT TIME ZONE z.zone AS local,
                     p.responded_at IS NOT NULL AS responded
              FROM doomed p
              LEFT JOIN crefinder.property_records pr ON p.channel = 'email' AND pr.id = p.property_id
              CROSS JOIN LATERAL (SELECT crefinder.recipient_zone(p.channel, p.to_contact, pr.property_zip) AS zone) AS z
              WHERE p.sent_at IS NOT NULL AND z.zone IS NOT NULL AND isfinite(p.sent_at)) AS x
        GROUP BY 1, 2, 3, 4
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (user_id, channel, dow, hour) DO UPDATE SET
            sent = r.sent + excluded.sent, responded = r.responded + excluded.responded
    ),
    deleted AS (
        DELETE FROM crefinder.outbound_events m USING doomed p WHERE m.id = p.id RETURNING 1
    )
    SELECT count(*) INTO messages FROM deleted;
    PERFORM set_config('crefinder.pruning', 'off', true);

    DELETE FROM crefinder.webhook_events w
    WHERE w.id IN (SELECT x.id FROM crefinder.webhook_events x
                   WHERE x.received_at < now() - make_interval(days => current_setting('crefinder.webhook_retention')::integer)
                   ORDER BY x.received_at LIMIT batch);
    GET DIAGNOSTICS deliveries = ROW_COUNT;
    UPDATE crefinder.maintenance SET last_pruned_at = now() WHERE id = 1;
    RETURN jsonb_build_object('messages', messages, 'webhook_events', deliveries);
END
$$;
