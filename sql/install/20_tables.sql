-- Tables.  Every tenant-owned table has user_id uuid NOT NULL defaulting to
-- the current tenant, and UNIQUE (user_id, id) so that references between
-- tenant tables are composite keys: a row can only point at a row of its
-- own tenant.  Deleting a parent sets only the referencing id to NULL
-- (PostgreSQL 15's SET NULL (column)), never user_id.

-- The owners to reach.
CREATE TABLE crefinder.property_records (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id           uuid NOT NULL DEFAULT crefinder.current_user_id(),
    owner_name        text,
    owner_phone       text,
    owner_email       text,
    property_address  text,
    property_city     text,
    property_state    text,
    property_zip      text,
    mailing_address   text,
    mailing_state     text,
    mailing_zip       text,
    timezone          text,
    skip_trace_data   jsonb NOT NULL DEFAULT '{}',
    lead_status       text NOT NULL DEFAULT 'new'
        CHECK (lead_status IN ('new', 'contacted', 'responded', 'interested', 'nurture',
                               'not_interested', 'do_not_contact', 'converted')),
    interest_level    smallint CHECK (interest_level BETWEEN 0 AND 10),
    last_call_at      timestamptz,
    last_call_result  text,
    call_notes        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id),
    -- Tenants fill this table by hand: every column is checked.
    CONSTRAINT property_state_format CHECK (property_state ~ '^[A-Z]{2}$'),
    CONSTRAINT mailing_state_format CHECK (mailing_state ~ '^[A-Z]{2}$'),
    CONSTRAINT property_zip_format CHECK (property_zip ~ '^[0-9]{5}(-[0-9]{4})?$'),
    CONSTRAINT mailing_zip_format CHECK (mailing_zip ~ '^[0-9]{5}(-[0-9]{4})?$'),
    CONSTRAINT timezone_known CHECK (crefinder.is_time_zone(timezone)),
    CONSTRAINT owner_phone_format CHECK (owner_phone ~ '^[0-9+() .\-]{7,32}$'),
    CONSTRAINT owner_email_format CHECK (char_length(owner_email) <= 254
                                         AND owner_email ~ '^[^@\s]+@[^@\s]+$'),
    CONSTRAINT text_lengths CHECK (char_length(owner_name) <= 500
                                   AND char_length(property_address) <= 500
                                   AND char_length(property_city) <= 200
                                   AND char_length(mailing_address) <= 500
                                   AND char_length(last_call_result) <= 200
                                   AND char_length(call_notes) <= 2000),
    CONSTRAINT no_control_characters CHECK (
        concat(owner_name, property_address, property_city, mailing_address) !~ '[\x01-\x1f\x7f]'),
    CONSTRAINT skip_trace_data_object CHECK (jsonb_typeof(skip_trace_data) = 'object'
                                             AND pg_column_size(skip_trace_data) <= 65536)
);
CREATE INDEX ON crefinder.property_records (user_id, owner_phone);
CREATE INDEX ON crefinder.property_records (user_id, lower(owner_email));

-- Message templates: {{variable}} placeholders, rendered per recipient.
CREATE TABLE crefinder.templates (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     uuid NOT NULL DEFAULT crefinder.current_user_id(),
    name        text NOT NULL CHECK (name <> ''),
    channel     text NOT NULL CHECK (channel IN ('voice', 'sms', 'whatsapp', 'email', 'call', 'voicemail')),
    subject     text,
    body        text NOT NULL,
    html        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id),
    UNIQUE (user_id, name, channel),
    CHECK (subject IS NULL OR channel = 'email')
);

-- Multi-step sequences: steps is a validated array of
-- {channel, delay, template | variants[], subject?, on_positive, on_negative, on_no_response}.
CREATE TABLE crefinder.sequences (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     uuid NOT NULL DEFAULT crefinder.current_user_id(),
    name        text NOT NULL CHECK (name <> ''),
    steps       jsonb NOT NULL CHECK (jsonb_typeof(steps) = 'array'),
    variables   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(variables) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id),
    UNIQUE (user_id, name)
);

CREATE TABLE crefinder.campaigns (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       uuid NOT NULL DEFAULT crefinder.current_user_id(),
    name          text NOT NULL CHECK (name <> ''),
    sequence_id   bigint,
    status        text NOT NULL DEFAULT 'active'
        CHECK (status IN ('draft', 'active', 'paused', 'completed', 'cancelled')),
    settings      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    completed_at  timestamptz,
    UNIQUE (user_id, id),
    FOREIGN KEY (user_id, sequence_id) REFERENCES crefinder.sequences (user_id, id)
        ON DELETE RESTRICT
);
CREATE INDEX ON crefinder.campaigns (user_id, sequence_id);

-- One property's walk through a campaign's sequence.
CREATE TABLE crefinder.enrollments (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          uuid NOT NULL DEFAULT crefinder.current_user_id(),
    campaign_id      bigint NOT NULL,
    property_id      bigint NOT NULL,
    -- active: walking the campaign's sequence; nurture: walking the
    -- nurture sequence (sequence_id) after a positive answer; paused (the
    -- campaign is; resume_status says what it goes back to); completed:
    -- no step left; stopped: a reaction, a cap or a cancel (stop_reason).
    status           text NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'nurture', 'paused', 'completed', 'stopped')),
    resume_status    text CHECK (resume_status IN ('active', 'nurture')),
    sequence_id      bigint,     -- the nurture sequence; NULL: the campaign's
    current_step     integer NOT NULL DEFAULT 0 CHECK (current_step >= 0),
    next_step_at     timestamptz,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    stop_reason      text,
    last_message_id  bigint,
    stopped_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id),
    UNIQUE (campaign_id, property_id),
    FOREIGN KEY (user_id, campaign_id) REFERENCES crefinder.campaigns (user_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (user_id, property_id) REFERENCES crefinder.property_records (user_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (user_id, sequence_id) REFERENCES crefinder.sequences (user_id, id)
        ON DELETE RESTRICT
);
-- tick(): the enrollments whose next step is due.
CREATE INDEX enrollments_due_idx ON crefinder.enrollments (next_step_at)
    WHERE status IN ('active', 'nurture');
CREATE INDEX ON crefinder.enrollments (user_id, property_id);

-- The outbox and its history: one row per message.
--   queued -> sending -> sent -> delivered, with exits blocked (compliance
--   said no; block_reason keeps why), failed, cancelled and unknown (the
--   worker died between handing the request over and recording the
--   answer: never re-sent automatically).
CREATE TABLE crefinder.outbound_events (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id              uuid NOT NULL DEFAULT crefinder.current_user_id(),
    channel              text NOT NULL CHECK (channel IN ('voice', 'sms', 'whatsapp', 'email', 'call', 'voicemail')),
    to_contact           text NOT NULL CHECK (octet_length(to_contact) <= 320),
    status               text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'blocked', 'failed',
                          'cancelled', 'unknown', 'skipped')),
    block_reason         text,
    hold_reason          text,       -- why a queued message waits (until next_attempt_at)
    provider_status      text,
    provider_message_id  text,
    campaign_id          bigint,
    property_id          bigint,
    enrollment_id        bigint,
    step                 integer,
    variant              text CHECK (octet_length(variant) <= 160),
    attempts             integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    claimed_by           smallint,   -- the dispatcher worker that last claimed the row
    first_attempt_at     timestamptz,  -- retries give up crefinder.retry_max_age after it
    next_attempt_at      timestamptz NOT NULL DEFAULT now(),
    last_error           text,
    cost_cents           numeric(14, 4),
    payload              jsonb NOT NULL DEFAULT '{}',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    sent_at              timestamptz,
    delivered_at         timestamptz,
    opened_at            timestamptz,
    clicked_at           timestamptz,
    click_url            text,
    responded_at         timestamptz,
    opted_out_at         timestamptz,    -- the recipient opted out in answer to it
    complained_at        timestamptz,    -- reported as spam (email)
    sender               text CHECK (octet_length(sender) <= 64),  -- the number it went from
    segments             smallint,       -- Twilio's num_segments
    lookup_at            timestamptz,    -- when to ask the provider about it (72_lookups.sql)
    lookups              smallint NOT NULL DEFAULT 0,  -- lookups made so far
    UNIQUE (user_id, id),
    -- blocked: compliance said no; skipped: a campaign step that was not
    -- sent (no usable contact point, the A/B holdout): the reason either way
    CHECK ((status IN ('blocked', 'skipped')) = (block_reason IS NOT NULL)),
    CHECK (hold_reason IS NULL OR status = 'queued'),
    FOREIGN KEY (user_id, campaign_id) REFERENCES crefinder.campaigns (user_id, id)
        ON DELETE SET NULL (campaign_id),
    FOREIGN KEY (user_id, property_id) REFERENCES crefinder.property_records (user_id, id)
        ON DELETE SET NULL (property_id),
    FOREIGN KEY (user_id, enrollment_id) REFERENCES crefinder.enrollments (user_id, id)
        ON DELETE SET NULL (enrollment_id)
);
-- The dispatcher's claim: due queued rows, oldest first.
CREATE INDEX outbound_events_due_idx ON crefinder.outbound_events (next_attempt_at)
    WHERE status = 'queued';
-- Crash recovery finds the rows a worker left in sending.
CREATE INDEX outbound_events_sending_idx ON crefinder.outbound_events (claimed_by)
    WHERE status = 'sending';
-- Vapi's concurrent-call limit counts a tenant's calls in progress.
CREATE INDEX outbound_events_calls_idx ON crefinder.outbound_events (user_id, sent_at)
    WHERE channel = 'voice' AND status IN ('sending', 'sent');
-- Webhooks find their message by the provider's id.
CREATE INDEX outbound_events_provider_message_idx
    ON crefinder.outbound_events (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
-- The dispatcher's lookups: messages to ask the provider about, soonest first.
CREATE INDEX outbound_events_lookup_idx ON crefinder.outbound_events (lookup_at)
    WHERE lookup_at IS NOT NULL;
-- Frequency caps: a tenant's recent messages to one contact.
CREATE INDEX outbound_events_contact_idx
    ON crefinder.outbound_events (user_id, to_contact, created_at);
CREATE INDEX ON crefinder.outbound_events (campaign_id, channel) WHERE campaign_id IS NOT NULL;
CREATE INDEX ON crefinder.outbound_events (property_id) WHERE property_id IS NOT NULL;
-- A campaign step of an enrollment is one message, whatever the ticks do.
CREATE UNIQUE INDEX outbound_events_step_idx ON crefinder.outbound_events (enrollment_id, step)
    WHERE enrollment_id IS NOT NULL;

-- (enrollments.last_message_id has no foreign key: tick() sets it for
-- every enrollment it advances, and a check per row would cost as much as
-- the rest of the step; only crefinder writes it, and a message pruned
-- since is simply not found.)

-- A tenant's settings for one provider.  config holds the plain fields
-- (defaults applied); secrets maps each secret field to its AES-256-GCM
-- envelope.  Written by crefinder.configure(), never by hand.
CREATE TABLE crefinder.integration_configs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        uuid NOT NULL DEFAULT crefinder.current_user_id(),
    provider       text NOT NULL CHECK (provider IN ('vapi', 'twilio', 'sendgrid')),
    config         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    secrets        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(secrets) = 'object'),
    paused_at      timestamptz,
    paused_reason  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, provider)
);
-- Twilio webhooks name the account, not the tenant.
CREATE INDEX integration_configs_twilio_account_idx
    ON crefinder.integration_configs ((config ->> 'accountSid'))
    WHERE provider = 'twilio';

-- Opt-outs (STOP, unsubscribe, manual).  A row is active until revoked_at.
-- channel is the channel the opt-out came in on; the compliance engine
-- extends a phone opt-out to every phone channel.
CREATE TABLE crefinder.opt_outs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         uuid NOT NULL DEFAULT crefinder.current_user_id(),
    channel         text NOT NULL CHECK (channel IN ('voice', 'sms', 'whatsapp', 'email', 'call', 'voicemail')),
    contact         text NOT NULL,
    source          text NOT NULL DEFAULT 'manual',
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoked_source  text,
    UNIQUE (user_id, id)
);
CREATE UNIQUE INDEX opt_outs_active_idx ON crefinder.opt_outs (user_id, contact, channel)
    WHERE revoked_at IS NULL;

-- Email addresses that must not be mailed: bounces, drops, spam reports,
-- unsubscribes.  email is stored lower-cased.
CREATE TABLE crefinder.email_suppressions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      uuid NOT NULL DEFAULT crefinder.current_user_id(),
    email        text NOT NULL CHECK (email = lower(email)),
    reason       text NOT NULL
        CHECK (reason IN ('bounce', 'dropped', 'spamreport', 'unsubscribe',
                          'group_unsubscribe', 'invalid', 'manual')),
    source       text NOT NULL DEFAULT 'manual',
    detail       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    removed_at   timestamptz,
    UNIQUE (user_id, id)
);
CREATE UNIQUE INDEX email_suppressions_active_idx
    ON crefinder.email_suppressions (user_id, email, reason)
    WHERE removed_at IS NULL;

-- Consents to be contacted (TCPA prior express / express written consent).
CREATE TABLE crefinder.consents (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         uuid NOT NULL DEFAULT crefinder.current_user_id(),
    contact         text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('voice', 'sms', 'whatsapp', 'email', 'call', 'voicemail')),
    kind            text NOT NULL CHECK (kind IN ('express', 'express_written')),
    source          text NOT NULL,
    evidence        jsonb NOT NULL DEFAULT '{}',
    granted_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoked_source  text,
    UNIQUE (user_id, id)
);
CREATE INDEX consents_active_idx ON crefinder.consents (user_id, contact, channel)
    WHERE revoked_at IS NULL;

-- Do-Not-Call lists and their numbers.  A list is a registry file loaded
-- by a superuser (national, state, litigator: user_id NULL, every tenant
-- sees it) or a tenant's internal list.  phone_number is the E.164
-- number's digits as an integer (13055550123), and a number row is only
-- that and its list, so tens of millions of them stay small and load fast.
-- Deleting a list deletes its numbers (trigger in the compliance part).
CREATE TABLE crefinder.dnc_lists (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('national', 'state', 'internal', 'litigator')),
    user_id     uuid DEFAULT crefinder.current_user_id(),
    source      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'internal') = (user_id IS NOT NULL))
);
CREATE UNIQUE INDEX dnc_lists_source_idx ON crefinder.dnc_lists (user_id, source) NULLS NOT DISTINCT;

CREATE TABLE crefinder.dnc_numbers (
    phone_number  bigint NOT NULL CHECK (phone_number > 0),
    list_id       integer NOT NULL,
    PRIMARY KEY (phone_number, list_id)
);
