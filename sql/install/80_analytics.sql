-- Analytics: the outbox's counts kept in rollups, current with every
-- statement that inserts, changes or deletes messages, and the views
-- analysts and dashboards read (filtered to the current tenant).

-- provider_of: the provider that carries a channel.
CREATE FUNCTION crefinder.provider_of(channel text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE channel WHEN 'email' THEN 'sendgrid' WHEN 'voice' THEN 'vapi'
                        WHEN 'sms' THEN 'twilio' WHEN 'whatsapp' THEN 'twilio'
                        WHEN 'call' THEN 'twilio' WHEN 'voicemail' THEN 'twilio' END
$$;

-- error_code: the provider's error code in a message's last_error (a
-- five-digit code, else the HTTP status), or 'other'.
CREATE FUNCTION crefinder.error_code(last_error text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce(substring(last_error FROM '\m(\d{5})\M'), substring(last_error FROM '^\w+ (\d{3})\M'), 'other')
$$;

-- ----------------------------------------------------------------------
-- Rollups
-- ----------------------------------------------------------------------

-- message_rollups: per tenant, campaign (NULL: messages outside
-- campaigns), channel, step, variant, day and sending number, the counts of messages in
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
    opted_out    bigint NOT NULL DEFAULT 0,   -- the recipient opted out in answer
    complained   bigint NOT NULL DEFAULT 0,   -- reported as spam
    filtered     bigint NOT NULL DEFAULT 0,   -- failed: filtered by the carrier (Twilio 30007, 30034)
    cost_cents   numeric NOT NULL DEFAULT 0,
    sender       text,               -- the number it went from (NULL: not known, email)
    CONSTRAINT message_rollups_key
        UNIQUE NULLS NOT DISTINCT (user_id, campaign_id, channel, step, variant, day, sender)
);
CREATE INDEX message_rollups_day_idx ON crefinder.message_rollups (user_id, day);

-- rollup_deltas: what each statement that wrote outbound_events changed
-- (the roll_up trigger appends them), waiting for fold_rollups().
CREATE TABLE crefinder.rollup_deltas (LIKE crefinder.message_rollups INCLUDING DEFAULTS);
CREATE INDEX ON crefinder.rollup_deltas (user_id, campaign_id);

-- Per campaign and property: enrolled (0 or 1), and the campaign's
-- messages sent to it, delivered, responded to, and its interested
-- replies; per campaign and contact point: the messages sent to it; per
-- campaign: how many properties (contact points) have each of these.
-- Folded from reach_deltas like the rollups, for campaign_overview and
-- campaign_funnel.
CREATE TABLE crefinder.campaign_reach (
    user_id      uuid NOT NULL,
    campaign_id  bigint NOT NULL,
    property_id  bigint NOT NULL,
    enrolled     bigint NOT NULL DEFAULT 0,
    sent         bigint NOT NULL DEFAULT 0,
    delivered    bigint NOT NULL DEFAULT 0,
    responded    bigint NOT NULL DEFAULT 0,
    interested   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, property_id)
);
CREATE TABLE crefinder.contact_reach (
    user_id      uuid NOT NULL,
    campaign_id  bigint NOT NULL,
    contact      text NOT NULL,
    sent         bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, contact)
);
CREATE TABLE crefinder.campaign_counts (
    user_id      uuid NOT NULL,
    campaign_id  bigint PRIMARY KEY,
    enrolled     bigint NOT NULL DEFAULT 0,
    contacted    bigint NOT NULL DEFAULT 0,
    delivered    bigint NOT NULL DEFAULT 0,
    responded    bigint NOT NULL DEFAULT 0,
    interested   bigint NOT NULL DEFAULT 0,
    contacts     bigint NOT NULL DEFAULT 0
);
CREATE INDEX ON crefinder.campaign_counts (user_id);
-- reach_deltas: changes to campaign_reach and contact_reach waiting for
-- fold_rollups() (contact NULL: a change of enrollment or interest only).
CREATE TABLE crefinder.reach_deltas (
    user_id      uuid NOT NULL,
    campaign_id  bigint NOT NULL,
    property_id  bigint NOT NULL,
    contact      text,
    enrolled     bigint NOT NULL DEFAULT 0,
    sent         bigint NOT NULL DEFAULT 0,
    delivered    bigint NOT NULL DEFAULT 0,
    responded    bigint NOT NULL DEFAULT 0,
    interested   bigint NOT NULL DEFAULT 0
);

-- reach_of_enrollments, reach_of_responses: enrollments added or removed,
-- and interested replies recorded or removed, as reach deltas.
CREATE FUNCTION crefinder.reach_of_enrollments() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO crefinder.reach_deltas (user_id, campaign_id, property_id, enrolled)
        SELECT n.user_id, n.campaign_id, n.property_id, 1 FROM new_rows n;
    ELSE
        INSERT INTO crefinder.reach_deltas (user_id, campaign_id, property_id, enrolled)
        SELECT o.user_id, o.campaign_id, o.property_id, -1 FROM old_rows o;
    END IF;
    RETURN NULL;
END
$$;
-- campaign_funnel counts the enrollments moved to nurture
CREATE INDEX enrollments_nurture_idx ON crefinder.enrollments (campaign_id) WHERE sequence_id IS NOT NULL;
CREATE TRIGGER reach_of_new_enrollments AFTER INSERT ON crefinder.enrollments
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crefinder.reach_of_enrollments();
CREATE TRIGGER reach_of_old_enrollments AFTER DELETE ON crefinder.enrollments
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION crefinder.reach_of_enrollments();

CREATE FUNCTION crefinder.reach_of_responses() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO crefinder.reach_deltas (user_id, campaign_id, property_id, interested)
        SELECT n.user_id, n.campaign_id, n.property_id, count(*) FROM new_rows n
        WHERE n.kind = 'interested' AND n.campaign_id IS NOT NULL AND n.property_id IS NOT NULL
        GROUP BY 1, 2, 3;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO crefinder.reach_deltas (user_id, campaign_id, property_id, interested)
        SELECT o.user_id, o.campaign_id, o.property_id, -count(*) FROM old_rows o
        WHERE o.kind = 'interested' AND o.campaign_id IS NOT NULL AND o.property_id IS NOT NULL
        GROUP BY 1, 2, 3;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER reach_of_new_responses AFTER INSERT ON crefinder.responses
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crefinder.reach_of_responses();
CREATE TRIGGER reach_of_changed_responses AFTER UPDATE ON crefinder.responses
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION crefinder.reach_of_responses();
CREATE TRIGGER reach_of_old_responses AFTER DELETE ON crefinder.responses
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION crefinder.reach_of_responses();

-- contact_time_rollups: per tenant, channel and hour of the week in the
-- recipient's local time (recipient_zone()), the messages sent then and
-- of those, responded to (as of the last fold; contact_time_deltas hold
-- the rest).  Messages whose recipient's zone is not known are not in it.
CREATE TABLE crefinder.contact_time_rollups (
    user_id    uuid NOT NULL,
    channel    text NOT NULL,
    dow        integer NOT NULL CHECK (dow BETWEEN 0 AND 6),
    hour       integer NOT NULL CHECK (hour BETWEEN 0 AND 23),
    sent       bigint NOT NULL DEFAULT 0,
    responded  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, channel, dow, hour)
);
CREATE TABLE crefinder.contact_time_deltas (
    user_id    uuid NOT NULL,
    channel    text NOT NULL,
    dow        integer NOT NULL,
    hour       integer NOT NULL,
    sent       bigint NOT NULL DEFAULT 0,
    responded  bigint NOT NULL DEFAULT 0
);
CREATE INDEX ON crefinder.contact_time_deltas (user_id);

-- recipient_zone: the time zone a message's recipient is in, as the
-- rollups take it: a phone number's area code's (its first zone, when the
-- area code spans several), an email's property's ZIP code's; NULL when
-- not known.
CREATE FUNCTION crefinder.recipient_zone(channel text, contact text, zip text) RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_recipient_zone';

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
    changed bigint[];
    changed_tenants uuid[];
BEGIN
    -- (the minute's usual case when nothing was sent: three probes)
    IF NOT EXISTS (SELECT 1 FROM crefinder.rollup_deltas) AND NOT EXISTS (SELECT 1 FROM crefinder.reach_deltas)
       AND NOT EXISTS (SELECT 1 FROM crefinder.contact_time_deltas) THEN
        RETURN 0;
    END IF;
    WITH taken AS (
        DELETE FROM crefinder.rollup_deltas d RETURNING d.*
    ),
    summed AS (
        SELECT t.user_id, t.campaign_id, t.channel, t.step, t.variant, t.day, t.sender, count(*) AS deltas,
               sum(t.messages) AS messages, sum(t.sent) AS sent, sum(t.delivered) AS delivered,
               sum(t.opened) AS opened, sum(t.clicked) AS clicked, sum(t.responded) AS responded,
               sum(t.failed) AS failed, sum(t.blocked) AS blocked, sum(t.skipped) AS skipped,
               sum(t.priced) AS priced, sum(t.opted_out) AS opted_out, sum(t.complained) AS complained,
               sum(t.filtered) AS filtered, sum(t.cost_cents) AS cost_cents
        FROM taken t
        GROUP BY t.user_id, t.campaign_id, t.channel, t.step, t.variant, t.day, t.sender
    ),
    folded AS (
        INSERT INTO crefinder.message_rollups AS r
            (user_id, campaign_id, channel, step, variant, day, sender, messages, sent, delivered, opened, clicked,
             responded, failed, blocked, skipped, priced, opted_out, complained, filtered, cost_cents)
        SELECT s.user_id, s.campaign_id, s.channel, s.step, s.variant, s.day, s.sender, s.messages, s.sent,
               s.delivered, s.opened, s.clicked, s.responded, s.failed, s.blocked, s.skipped, s.priced, s.opted_out,
               s.complained, s.filtered, s.cost_cents
        FROM summed s
        ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT ON CONSTRAINT message_rollups_key DO UPDATE SET
            messages = r.messages + excluded.messages, sent = r.sent + excluded.sent,
            delivered = r.delivered + excluded.delivered, opened = r.opened + excluded.opened,
            clicked = r.clicked + excluded.clicked, responded = r.responded + excluded.responded,
            failed = r.failed + excluded.failed, blocked = r.blocked + excluded.blocked,
            skipped = r.skipped + excluded.skipped, priced = r.priced + excluded.priced,
            opted_out = r.opted_out + excluded.opted_out, complained = r.complained + excluded.complained,
            filtered = r.filtered + excluded.filtered, cost_cents = r.cost_cents + excluded.cost_cents
    )
    SELECT coalesce(sum(s.deltas), 0), array_agg(DISTINCT s.campaign_id) FILTER (WHERE s.campaign_id IS NOT NULL),
           array_agg(DISTINCT s.user_id) FILTER (WHERE s.sender IS NOT NULL)
    INTO n, changed, changed_tenants FROM summed s;
    n := n + crefinder.fold_reach();
    WITH taken AS (
        DELETE FROM crefinder.contact_time_deltas d RETURNING d.*
    ),
    summed AS (
        SELECT t.user_id, t.channel, t.dow, t.hour, sum(t.sent) AS sent, sum(t.responded) AS responded,
               count(*) AS deltas
        FROM taken t GROUP BY t.user_id, t.channel, t.dow, t.hour
    ),
    folded AS (
        INSERT INTO crefinder.contact_time_rollups AS r (user_id, channel, dow, hour, sent, responded)
        SELECT s.user_id, s.channel, s.dow, s.hour, s.sent, s.responded FROM summed s ORDER BY 1, 2, 3, 4
        ON CONFLICT (user_id, channel, dow, hour) DO UPDATE SET
            sent = r.sent + excluded.sent, responded = r.responded + excluded.responded
    )
    SELECT n + coalesce(sum(s.deltas), 0) INTO n FROM summed s;
    -- the campaigns whose counts changed: are their guardrails crossed?
    IF changed IS NOT NULL THEN
        PERFORM crefinder.check_guardrails(changed);
    END IF;
    -- the tenants whose sending numbers' counts changed
    IF changed_tenants IS NOT NULL THEN
        PERFORM crefinder.check_sender_guardrails(changed_tenants);
    END IF;
    RETURN n;
END
$$;

-- fold_reach: moves the committed reach_deltas into campaign_reach and
-- contact_reach, and what crosses zero there (a property first contacted,
-- a contact point no longer sent anything) into campaign_counts.
CREATE FUNCTION crefinder.fold_reach() RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    AS $$
DECLARE
    n bigint;
BEGIN
    WITH taken AS (
        DELETE FROM crefinder.reach_deltas d RETURNING d.*
    ),
    props AS (
        SELECT t.user_id, t.campaign_id, t.property_id, sum(t.enrolled) AS enrolled, sum(t.sent) AS sent,
               sum(t.delivered) AS delivered, sum(t.responded) AS responded, sum(t.interested) AS interested,
               count(*) AS deltas
        FROM taken t GROUP BY t.user_id, t.campaign_id, t.property_id
    ),
    contacts AS (
        SELECT t.user_id, t.campaign_id, t.contact, sum(t.sent) AS sent
        FROM taken t WHERE t.contact IS NOT NULL GROUP BY t.user_id, t.campaign_id, t.contact
    ),
    props_now AS (
        INSERT INTO crefinder.campaign_reach AS r
            (user_id, campaign_id, property_id, enrolled, sent, delivered, responded, interested)
        SELECT p.user_id, p.campaign_id, p.property_id, p.enrolled, p.sent, p.delivered, p.responded, p.interested
        FROM props p ORDER BY p.campaign_id, p.property_id
        ON CONFLICT (campaign_id, property_id) DO UPDATE SET
            enrolled = r.enrolled + excluded.enrolled, sent = r.sent + excluded.sent,
            delivered = r.delivered + excluded.delivered, responded = r.responded + excluded.responded,
            interested = r.interested + excluded.interested
        RETURNING r.user_id, r.campaign_id, r.property_id, r.enrolled, r.sent, r.delivered, r.responded,
                  r.interested
    ),
    contacts_now AS (
        INSERT INTO crefinder.contact_reach AS r (user_id, campaign_id, contact, sent)
        SELECT c.user_id, c.campaign_id, c.contact, c.sent FROM contacts c ORDER BY c.campaign_id, c.contact
        ON CONFLICT (campaign_id, contact) DO UPDATE SET sent = r.sent + excluded.sent
        RETURNING r.user_id, r.campaign_id, r.contact, r.sent
    ),
    -- what crossed zero: now positive and before not, or the other way
    crossed AS (
        SELECT a.user_id, a.campaign_id,
               sum((a.enrolled > 0)::integer - (a.enrolled - p.enrolled > 0)::integer) AS enrolled,
               sum((a.sent > 0)::integer - (a.sent - p.sent > 0)::integer) AS contacted,
               sum((a.delivered > 0)::integer - (a.delivered - p.delivered > 0)::integer) AS delivered,
               sum((a.responded > 0)::integer - (a.responded - p.responded > 0)::integer) AS responded,
               sum((a.interested > 0)::integer - (a.interested - p.interested > 0)::integer) AS interested,
               0 AS contacts
        FROM props_now a JOIN props p ON p.campaign_id = a.campaign_id AND p.property_id = a.property_id
        GROUP BY a.user_id, a.campaign_id
        UNION ALL
        SELECT a.user_id, a.campaign_id, 0, 0, 0, 0, 0, sum((a.sent > 0)::integer - (a.sent - c.sent > 0)::integer)
        FROM contacts_now a JOIN contacts c ON c.campaign_id = a.campaign_id AND c.contact = a.contact
        GROUP BY a.user_id, a.campaign_id
    ),
    counted AS (
        INSERT INTO crefinder.campaign_counts AS k
            (user_id, campaign_id, enrolled, contacted, delivered, responded, interested, contacts)
        SELECT x.user_id, x.campaign_id, sum(x.enrolled), sum(x.contacted), sum(x.delivered), sum(x.responded),
               sum(x.interested), sum(x.contacts)
        FROM crossed x GROUP BY x.user_id, x.campaign_id ORDER BY x.campaign_id
        ON CONFLICT (campaign_id) DO UPDATE SET
            enrolled = k.enrolled + excluded.enrolled, contacted = k.contacted + excluded.contacted,
            delivered = k.delivered + excluded.delivered, responded = k.responded + excluded.responded,
            interested = k.interested + excluded.interested, contacts = k.contacts + excluded.contacts
    )
    SELECT coalesce(sum(p.deltas), 0) INTO n FROM props p;
    RETURN n;
END
$$;

-- rollups: message_rollups and the deltas not folded yet, as one (what
-- the views read).
CREATE VIEW crefinder.rollups WITH (security_invoker = true) AS
SELECT r.user_id, r.campaign_id, r.channel, r.step, r.variant, r.day, r.messages, r.sent, r.delivered,
       r.opened, r.clicked, r.responded, r.failed, r.blocked, r.skipped, r.priced, r.opted_out, r.complained,
       r.filtered, r.cost_cents, r.sender
FROM crefinder.message_rollups r
UNION ALL
SELECT d.user_id, d.campaign_id, d.channel, d.step, d.variant, d.day, d.messages, d.sent, d.delivered,
       d.opened, d.clicked, d.responded, d.failed, d.blocked, d.skipped, d.priced, d.opted_out, d.complained,
       d.filtered, d.cost_cents, d.sender
FROM crefinder.rollup_deltas d;

-- rollup_delta: what one message adds to its rollup row (sign 1) or takes
-- from it (sign -1), for rebuild_rollups(): the same definitions as the
-- trigger's (src/rollups.c), and a test holds them equal:
--   sent: sent_at is set; delivered: delivered_at (SMS and WhatsApp
--   delivered or read, email delivered, call answered); opened, clicked:
--   opened_at, clicked_at (email); responded: responded_at; failed,
--   blocked, skipped: the current status; priced: sent with cost_cents known;
--   opted_out, complained: opted_out_at, complained_at; filtered: failed
--   with Twilio's carrier-filtering code (30007, 30034) as its error code.
CREATE FUNCTION crefinder.rollup_delta(m crefinder.outbound_events, sign integer,
    OUT day date, OUT messages integer, OUT sent integer, OUT delivered integer, OUT opened integer,
    OUT clicked integer, OUT responded integer, OUT failed integer, OUT blocked integer,
    OUT skipped integer, OUT priced integer, OUT opted_out integer, OUT complained integer,
    OUT filtered integer, OUT cost_cents numeric)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT (coalesce(m.sent_at, m.created_at) AT TIME ZONE 'UTC')::date,
           sign, sign * (m.sent_at IS NOT NULL)::integer, sign * (m.delivered_at IS NOT NULL)::integer,
           sign * (m.opened_at IS NOT NULL)::integer, sign * (m.clicked_at IS NOT NULL)::integer,
           sign * (m.responded_at IS NOT NULL)::integer, sign * (m.status = 'failed')::integer,
           sign * (m.status = 'blocked')::integer, sign * (m.status = 'skipped')::integer,
           sign * (m.sent_at IS NOT NULL AND m.cost_cents IS NOT NULL)::integer,
           sign * (m.opted_out_at IS NOT NULL)::integer, sign * (m.complained_at IS NOT NULL)::integer,
           sign * (m.status = 'failed' AND crefinder.error_code(m.last_error) IN ('30007', '30034'))::integer,
           sign * coalesce(m.cost_cents, 0)
$$;

-- rebuild_rollups: recomputes the rollups from outbound_events and what
-- pruned messages counted (the pruned_* archives; writers wait
-- meanwhile).  Returns how many rollup rows there are; they are what
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
        (user_id, campaign_id, channel, step, variant, sender, day, messages, sent, delivered, opened,
         clicked, responded, failed, blocked, skipped, priced, opted_out, complained, filtered, cost_cents)
    SELECT x.user_id, x.campaign_id, x.channel, x.step, x.variant, x.sender, x.day, sum(x.messages), sum(x.sent),
           sum(x.delivered), sum(x.opened), sum(x.clicked), sum(x.responded), sum(x.failed), sum(x.blocked),
           sum(x.skipped), sum(x.priced), sum(x.opted_out), sum(x.complained), sum(x.filtered), sum(x.cost_cents)
    FROM (SELECT m.user_id, m.campaign_id, m.channel, m.step, m.variant, m.sender, d.*
          FROM crefinder.outbound_events m
          -- (LATERAL: one call per message, not one per column)
          CROSS JOIN LATERAL crefinder.rollup_delta(m, 1) AS d
          UNION ALL
          -- what pruned messages counted
          SELECT a.user_id, a.campaign_id, a.channel, a.step, a.variant, a.sender, a.day, a.messages, a.sent,
                 a.delivered,
                 a.opened, a.clicked, a.responded, a.failed, a.blocked, a.skipped, a.priced, a.opted_out,
                 a.complained, a.filtered, a.cost_cents
          FROM crefinder.pruned_rollups a) AS x
    GROUP BY 1, 2, 3, 4, 5, 6, 7;
    GET DIAGNOSTICS n = ROW_COUNT;

    -- the hours of the week
    LOCK TABLE crefinder.contact_time_deltas, crefinder.contact_time_rollups IN EXCLUSIVE MODE;
    DELETE FROM crefinder.contact_time_deltas;
    DELETE FROM crefinder.contact_time_rollups;
    INSERT INTO crefinder.contact_time_rollups (user_id, channel, dow, hour, sent, responded)
    SELECT x.user_id, x.channel, extract(dow FROM x.local)::integer, extract(hour FROM x.local)::integer,
           count(*), count(*) FILTER (WHERE x.responded)
    FROM (SELECT m.user_id, m.channel, m.sent_at AT TIME ZONE z.zone AS local, m.responded_at IS NOT NULL AS responded
          FROM crefinder.outbound_events m
          LEFT JOIN crefinder.property_records p ON m.channel = 'email' AND p.id = m.property_id
          CROSS JOIN LATERAL (SELECT crefinder.recipient_zone(m.channel, m.to_contact, p.property_zip) AS zone) AS z
          WHERE m.sent_at IS NOT NULL AND z.zone IS NOT NULL AND isfinite(m.sent_at)) AS x
    GROUP BY 1, 2, 3, 4;
    -- and what pruned messages counted
    INSERT INTO crefinder.contact_time_rollups AS r (user_id, channel, dow, hour, sent, responded)
    SELECT a.user_id, a.channel, a.dow, a.hour, a.sent, a.responded FROM crefinder.pruned_contact_time a
    ON CONFLICT (user_id, channel, dow, hour) DO UPDATE SET
        sent = r.sent + excluded.sent, responded = r.responded + excluded.responded;

    -- the reach: enrollments, the campaign messages sent (per property and
    -- contact point), interested replies
    LOCK TABLE crefinder.enrollments, crefinder.responses IN SHARE MODE;
    LOCK TABLE crefinder.reach_deltas, crefinder.campaign_reach, crefinder.contact_reach,
               crefinder.campaign_counts IN EXCLUSIVE MODE;
    DELETE FROM crefinder.reach_deltas;
    DELETE FROM crefinder.campaign_reach;
    DELETE FROM crefinder.contact_reach;
    DELETE FROM crefinder.campaign_counts;
    INSERT INTO crefinder.campaign_reach
        (user_id, campaign_id, property_id, enrolled, sent, delivered, responded, interested)
    SELECT x.user_id, x.campaign_id, x.property_id, sum(x.enrolled), sum(x.sent), sum(x.delivered),
           sum(x.responded), sum(x.interested)
    FROM (SELECT e.user_id, e.campaign_id, e.property_id, 1 AS enrolled, 0 AS sent, 0 AS delivered,
                 0 AS responded, 0 AS interested
          FROM crefinder.enrollments e
          UNION ALL
          SELECT m.user_id, m.campaign_id, m.property_id, 0, 1, (m.delivered_at IS NOT NULL)::integer,
                 (m.responded_at IS NOT NULL)::integer, 0
          FROM crefinder.outbound_events m
          WHERE m.campaign_id IS NOT NULL AND m.property_id IS NOT NULL AND m.sent_at IS NOT NULL
          UNION ALL
          SELECT a.user_id, a.campaign_id, a.property_id, 0, a.sent, a.delivered, a.responded, 0
          FROM crefinder.pruned_reach a
          UNION ALL
          SELECT r.user_id, r.campaign_id, r.property_id, 0, 0, 0, 0, 1
          FROM crefinder.responses r
          WHERE r.kind = 'interested' AND r.campaign_id IS NOT NULL AND r.property_id IS NOT NULL) AS x
    GROUP BY 1, 2, 3;
    INSERT INTO crefinder.contact_reach (user_id, campaign_id, contact, sent)
    SELECT x.user_id, x.campaign_id, x.contact, sum(x.n)
    FROM (SELECT m.user_id, m.campaign_id, m.to_contact AS contact, 1 AS n
          FROM crefinder.outbound_events m
          WHERE m.campaign_id IS NOT NULL AND m.property_id IS NOT NULL AND m.sent_at IS NOT NULL
          UNION ALL
          SELECT a.user_id, a.campaign_id, a.contact, a.sent FROM crefinder.pruned_reach a) AS x
    GROUP BY 1, 2, 3;
    INSERT INTO crefinder.campaign_counts
        (user_id, campaign_id, enrolled, contacted, delivered, responded, interested, contacts)
    SELECT coalesce(p.user_id, c.user_id), coalesce(p.campaign_id, c.campaign_id), coalesce(p.enrolled, 0),
           coalesce(p.contacted, 0), coalesce(p.delivered, 0), coalesce(p.responded, 0),
           coalesce(p.interested, 0), coalesce(c.contacts, 0)
    FROM (SELECT r.user_id, r.campaign_id, count(*) FILTER (WHERE r.enrolled > 0) AS enrolled,
                 count(*) FILTER (WHERE r.sent > 0) AS contacted, count(*) FILTER (WHERE r.delivered > 0) AS delivered,
                 count(*) FILTER (WHERE r.responded > 0) AS responded,
                 count(*) FILTER (WHERE r.interested > 0) AS interested
          FROM crefinder.campaign_reach r GROUP BY 1, 2) AS p
    FULL JOIN (SELECT r.user_id, r.campaign_id, count(*) FILTER (WHERE r.sent > 0) AS contacts
               FROM crefinder.contact_reach r GROUP BY 1, 2) AS c
      ON c.campaign_id = p.campaign_id;
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

-- campaign_counts_now: campaign_counts with the reach deltas not folded
-- yet (what they make cross zero in campaign_reach and contact_reach),
-- so that the views are current to the last commit.
CREATE VIEW crefinder.campaign_counts_now WITH (security_invoker = true) AS
WITH pending AS (
    SELECT d.user_id, d.campaign_id, d.property_id, sum(d.enrolled) AS enrolled, sum(d.sent) AS sent,
           sum(d.delivered) AS delivered, sum(d.responded) AS responded, sum(d.interested) AS interested
    FROM crefinder.reach_deltas d
    GROUP BY d.user_id, d.campaign_id, d.property_id
),
pending_contacts AS (
    SELECT d.user_id, d.campaign_id, d.contact, sum(d.sent) AS sent
    FROM crefinder.reach_deltas d WHERE d.contact IS NOT NULL
    GROUP BY d.user_id, d.campaign_id, d.contact
),
changes AS (
    SELECT p.user_id, p.campaign_id,
           sum((coalesce(r.enrolled, 0) + p.enrolled > 0)::integer - (coalesce(r.enrolled, 0) > 0)::integer) AS enrolled,
           sum((coalesce(r.sent, 0) + p.sent > 0)::integer - (coalesce(r.sent, 0) > 0)::integer) AS contacted,
           sum((coalesce(r.delivered, 0) + p.delivered > 0)::integer - (coalesce(r.delivered, 0) > 0)::integer)
               AS delivered,
           sum((coalesce(r.responded, 0) + p.responded > 0)::integer - (coalesce(r.responded, 0) > 0)::integer)
               AS responded,
           sum((coalesce(r.interested, 0) + p.interested > 0)::integer - (coalesce(r.interested, 0) > 0)::integer)
               AS interested,
           0 AS contacts
    FROM pending p
    LEFT JOIN crefinder.campaign_reach r ON r.campaign_id = p.campaign_id AND r.property_id = p.property_id
    GROUP BY p.user_id, p.campaign_id
    UNION ALL
    SELECT p.user_id, p.campaign_id, 0, 0, 0, 0, 0,
           sum((coalesce(r.sent, 0) + p.sent > 0)::integer - (coalesce(r.sent, 0) > 0)::integer)
    FROM pending_contacts p
    LEFT JOIN crefinder.contact_reach r ON r.campaign_id = p.campaign_id AND r.contact = p.contact
    GROUP BY p.user_id, p.campaign_id
    UNION ALL
    SELECT k.user_id, k.campaign_id, k.enrolled, k.contacted, k.delivered, k.responded, k.interested, k.contacts
    FROM crefinder.campaign_counts k
)
SELECT c.user_id, c.campaign_id, sum(c.enrolled)::bigint AS enrolled, sum(c.contacted)::bigint AS contacted,
       sum(c.delivered)::bigint AS delivered, sum(c.responded)::bigint AS responded,
       sum(c.interested)::bigint AS interested, sum(c.contacts)::bigint AS contacts
FROM changes c
GROUP BY c.user_id, c.campaign_id;

-- campaign_overview: per campaign, the properties enrolled, contacted (a
-- message sent), responded (a message responded to) and interested (an
-- interested reply), the distinct contact points messaged, the response
-- rate (properties responded / contacted, in percent), the cost in
-- dollars, per property contacted and per interested lead.
CREATE VIEW crefinder.campaign_overview WITH (security_invoker = true) AS
SELECT c.user_id, c.id AS campaign_id, c.name AS campaign_name, c.status,
       coalesce(k.enrolled, 0) AS properties_enrolled, coalesce(k.contacted, 0) AS properties_contacted,
       coalesce(k.responded, 0) AS properties_responded, coalesce(k.interested, 0) AS properties_interested,
       coalesce(k.contacts, 0) AS unique_contacts,
       round(100.0 * k.responded / nullif(k.contacted, 0), 2) AS response_rate,
       round(coalesce(m.cost_cents, 0) / 100, 2) AS total_cost,
       round(coalesce(m.cost_cents, 0) / 100 / nullif(k.contacted, 0), 4) AS cost_per_property,
       round(coalesce(m.cost_cents, 0) / 100 / nullif(k.interested, 0), 2) AS cost_per_interested,
       coalesce(m.unpriced, 0) AS unpriced
FROM crefinder.campaigns c
LEFT JOIN crefinder.campaign_counts_now k ON k.campaign_id = c.id AND k.user_id = c.user_id
LEFT JOIN LATERAL (SELECT sum(r.cost_cents) AS cost_cents, (sum(r.sent) - sum(r.priced))::bigint AS unpriced
                   FROM crefinder.rollups r WHERE r.user_id = c.user_id AND r.campaign_id = c.id) AS m ON true;

-- campaign_funnel: per campaign, how many properties reached each stage:
-- enrolled, contacted, delivered, responded, interested, and moved to a
-- nurture sequence; each stage's share of the one before, in percent.
CREATE VIEW crefinder.campaign_funnel WITH (security_invoker = true) AS
SELECT f.user_id, f.campaign_id, f.campaign_name, s.n AS position, s.stage, s.properties,
       round(100.0 * s.properties / nullif(lag(s.properties) OVER (PARTITION BY f.campaign_id ORDER BY s.n), 0), 2)
           AS share_of_previous
FROM (SELECT c.user_id, c.id AS campaign_id, c.name AS campaign_name, coalesce(k.enrolled, 0) AS enrolled,
             coalesce(k.contacted, 0) AS contacted, coalesce(k.delivered, 0) AS delivered,
             coalesce(k.responded, 0) AS responded, coalesce(k.interested, 0) AS interested,
             (SELECT count(*) FROM crefinder.enrollments e
              WHERE e.user_id = c.user_id AND e.campaign_id = c.id AND e.sequence_id IS NOT NULL) AS nurture
      FROM crefinder.campaigns c
      LEFT JOIN crefinder.campaign_counts_now k ON k.campaign_id = c.id AND k.user_id = c.user_id) AS f
CROSS JOIN LATERAL (VALUES (1, 'enrolled', f.enrolled), (2, 'contacted', f.contacted),
                           (3, 'delivered', f.delivered), (4, 'responded', f.responded),
                           (5, 'interested', f.interested), (6, 'nurture', f.nurture)) AS s(n, stage, properties);

-- contact_time_performance: per channel, day of the week (0: Sunday) and
-- hour in the recipient's local time, the messages sent then, those
-- responded to, and the response rate (responded / sent, in percent):
-- when owners actually answer.
CREATE VIEW crefinder.contact_time_performance WITH (security_invoker = true) AS
SELECT x.user_id, x.channel, x.dow, x.hour, sum(x.sent)::bigint AS sent, sum(x.responded)::bigint AS responded,
       round(100.0 * sum(x.responded) / nullif(sum(x.sent), 0), 2) AS response_rate
FROM (SELECT r.user_id, r.channel, r.dow, r.hour, r.sent, r.responded FROM crefinder.contact_time_rollups r
      UNION ALL
      SELECT d.user_id, d.channel, d.dow, d.hour, d.sent, d.responded FROM crefinder.contact_time_deltas d) AS x
GROUP BY x.user_id, x.channel, x.dow, x.hour
HAVING sum(x.sent) <> 0 OR sum(x.responded) <> 0;

-- ----------------------------------------------------------------------
-- Health
-- ----------------------------------------------------------------------

-- Messages health looks at (each a small part of the outbox).
-- (by tenant first: row-level security reads only the tenant's part; with
-- the channel, so that counting needs no table access)
CREATE INDEX outbound_events_queued_idx ON crefinder.outbound_events (user_id, channel, next_attempt_at)
    WHERE status = 'queued';
CREATE INDEX outbound_events_unknown_idx ON crefinder.outbound_events (user_id, channel) WHERE status = 'unknown';
CREATE INDEX outbound_events_failed_idx ON crefinder.outbound_events (user_id, updated_at) WHERE status = 'failed';
CREATE INDEX webhook_events_rejected_idx ON crefinder.webhook_events (received_at)
    WHERE outcome IN ('bad_signature', 'stale', 'unknown_tenant', 'malformed', 'too_large');

-- health: per tenant and provider, like pg_stat_*: the queue (messages
-- queued, due now, the age of the oldest due), messages in sending (and
-- those there for more than 5 minutes), unknown (the dispatcher stopped
-- with the request in flight: never re-sent by itself), failures of the
-- last hour by provider error code, the lookups due at the provider (the
-- reconciliation backlog: messages past their time with no final status,
-- final texts without their price; see 72_lookups.sql), and webhook
-- deliveries rejected in the last hour (bad signature, stale, malformed,
-- unknown tenant: the operator sees those without a tenant).
CREATE VIEW crefinder.health WITH (security_invoker = true) AS
WITH queued AS (
    SELECT m.user_id, crefinder.provider_of(m.channel) AS provider, count(*) AS queued,
           count(*) FILTER (WHERE m.next_attempt_at <= now()) AS due,
           now() - min(m.next_attempt_at) FILTER (WHERE m.next_attempt_at <= now()) AS oldest_due_age
    FROM crefinder.outbound_events m WHERE m.status = 'queued'
    GROUP BY 1, 2
),
sending AS (
    SELECT m.user_id, crefinder.provider_of(m.channel) AS provider, count(*) AS sending,
           count(*) FILTER (WHERE m.updated_at < now() - interval '5 minutes') AS stuck_sending
    FROM crefinder.outbound_events m WHERE m.status = 'sending'
    GROUP BY 1, 2
),
unknown AS (
    SELECT m.user_id, crefinder.provider_of(m.channel) AS provider, count(*) AS unknown
    FROM crefinder.outbound_events m WHERE m.status = 'unknown'
    GROUP BY 1, 2
),
errors AS (
    SELECT x.user_id, x.provider, sum(x.n) AS failed_last_hour, jsonb_object_agg(x.code, x.n) AS errors_last_hour
    FROM (SELECT m.user_id, crefinder.provider_of(m.channel) AS provider, crefinder.error_code(m.last_error) AS code,
                 count(*) AS n
          FROM crefinder.outbound_events m
          WHERE m.status = 'failed' AND m.updated_at > now() - interval '1 hour'
          GROUP BY 1, 2, 3) AS x
    GROUP BY 1, 2
),
unconfirmed AS (
    SELECT m.user_id, crefinder.provider_of(m.channel) AS provider, count(*) AS reconciliation_backlog
    FROM crefinder.outbound_events m WHERE m.lookup_at <= now()
    GROUP BY 1, 2
),
rejected AS (
    SELECT w.user_id, w.provider, count(*) AS webhook_rejections_last_hour
    FROM crefinder.webhook_events w
    WHERE w.outcome IN ('bad_signature', 'stale', 'unknown_tenant', 'malformed', 'too_large')
      AND w.received_at > now() - interval '1 hour'
    GROUP BY 1, 2
),
keys AS (
    SELECT user_id, provider FROM queued UNION SELECT user_id, provider FROM sending
    UNION SELECT user_id, provider FROM unknown UNION SELECT user_id, provider FROM errors
    UNION SELECT user_id, provider FROM unconfirmed UNION SELECT user_id, provider FROM rejected
)
SELECT k.user_id, k.provider, coalesce(q.queued, 0) AS queued, coalesce(q.due, 0) AS due, q.oldest_due_age,
       coalesce(s.sending, 0) AS sending, coalesce(s.stuck_sending, 0) AS stuck_sending,
       coalesce(u.unknown, 0) AS unknown, coalesce(e.failed_last_hour, 0)::bigint AS failed_last_hour,
       coalesce(e.errors_last_hour, '{}') AS errors_last_hour,
       coalesce(c.reconciliation_backlog, 0) AS reconciliation_backlog,
       coalesce(r.webhook_rejections_last_hour, 0) AS webhook_rejections_last_hour
FROM keys k
LEFT JOIN queued q ON q.user_id IS NOT DISTINCT FROM k.user_id AND q.provider = k.provider
LEFT JOIN sending s ON s.user_id IS NOT DISTINCT FROM k.user_id AND s.provider = k.provider
LEFT JOIN unknown u ON u.user_id IS NOT DISTINCT FROM k.user_id AND u.provider = k.provider
LEFT JOIN errors e ON e.user_id IS NOT DISTINCT FROM k.user_id AND e.provider = k.provider
LEFT JOIN unconfirmed c ON c.user_id IS NOT DISTINCT FROM k.user_id AND c.provider = k.provider
LEFT JOIN rejected r ON r.user_id IS NOT DISTINCT FROM k.user_id AND r.provider = k.provider;
