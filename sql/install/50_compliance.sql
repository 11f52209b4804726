-- Compliance: who may be contacted, on which channel, and when.
--
-- calling_rules holds the federal window (region 'US') and one row per
-- state with stricter rules.  Shipped rows (source 'default') are
-- read-only; an operator overrides a region by inserting a row with
-- source 'operator', which wins over the default and is kept by pg_dump.

CREATE FUNCTION crefinder.valid_day_windows(windows jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_typeof(windows) = 'object' AND NOT EXISTS (
        SELECT 1 FROM jsonb_each(windows) AS e(day, w)
        WHERE e.day NOT IN ('sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat')
           OR jsonb_typeof(e.w) <> 'array' OR jsonb_array_length(e.w) <> 2
           OR (e.w ->> 0)::time >= (e.w ->> 1)::time)
$$;

CREATE TABLE crefinder.calling_rules (
    region        text NOT NULL CHECK (region ~ '^[A-Z]{2}$'),
    source        text NOT NULL DEFAULT 'operator' CHECK (source IN ('default', 'operator')),
    window_start  time NOT NULL,
    window_end    time NOT NULL,
    day_windows   jsonb NOT NULL DEFAULT '{}' CHECK (crefinder.valid_day_windows(day_windows)),
    no_sundays    boolean NOT NULL DEFAULT false,
    no_holidays   boolean NOT NULL DEFAULT false,
    cap_count     integer CHECK (cap_count > 0),
    cap_window    interval NOT NULL DEFAULT '24 hours' CHECK (cap_window > interval '0'),
    cap_channels  text[] NOT NULL DEFAULT '{voice,sms,whatsapp,call,voicemail}'
        CHECK (cap_channels <@ ARRAY['voice', 'sms', 'whatsapp', 'call', 'voicemail']),
    channels      text[] NOT NULL DEFAULT '{voice,sms,whatsapp,call,voicemail}'
        CHECK (channels <@ ARRAY['voice', 'sms', 'whatsapp', 'call', 'voicemail']),
    note          text,
    PRIMARY KEY (region, source),
    CHECK (window_start < window_end)
);
COMMENT ON TABLE crefinder.calling_rules IS
    'Calling windows in the recipient''s local time, day bans and frequency caps: region US is federal, others are states (area code state and mailing state both apply).';

INSERT INTO crefinder.calling_rules
    (region, source, window_start, window_end, day_windows, no_sundays, no_holidays,
     cap_count, cap_window, cap_channels, note)
VALUES
    ('US', 'default', '08:00', '21:00', '{}', false, false, NULL, '24 hours', '{voice,sms,whatsapp,call,voicemail}', '47 CFR 64.1200(c)(1)'),
    ('FL', 'default', '08:00', '20:00', '{}', false, false, 3, '24 hours', '{voice,sms,whatsapp,call,voicemail}', 'Florida Telephone Solicitation Act'),
    ('OK', 'default', '08:00', '20:00', '{}', false, false, 3, '24 hours', '{voice,sms,whatsapp,call,voicemail}', 'Oklahoma Telephone Solicitation Act'),
    ('MD', 'default', '08:00', '20:00', '{}', false, false, 3, '24 hours', '{voice,sms,whatsapp,call,voicemail}', 'Maryland Stop the Spam Calls Act'),
    ('WA', 'default', '08:00', '20:00', '{}', false, false, NULL, '24 hours', '{voice,sms,whatsapp,call,voicemail}', NULL),
    ('TX', 'default', '09:00', '21:00', '{"sun": ["12:00", "21:00"]}', false, false, NULL, '24 hours', '{voice,sms,whatsapp,call,voicemail}', NULL),
    ('AL', 'default', '08:00', '20:00', '{}', true, true, NULL, '24 hours', '{voice,sms,whatsapp,call,voicemail}', NULL),
    ('LA', 'default', '08:00', '20:00', '{}', true, true, NULL, '24 hours', '{voice,sms,whatsapp,call,voicemail}', NULL),
    ('MS', 'default', '08:00', '20:00', '{}', true, false, NULL, '24 hours', '{voice,sms,whatsapp,call,voicemail}', NULL),
    ('CT', 'default', '09:00', '20:00', '{}', false, false, NULL, '24 hours', '{voice,sms,whatsapp,call,voicemail}', NULL),
    ('KY', 'default', '10:00', '21:00', '{}', false, false, NULL, '24 hours', '{voice,sms,whatsapp,call,voicemail}', NULL),
    ('MA', 'default', '08:00', '20:00', '{}', false, false, NULL, '24 hours', '{voice,sms,whatsapp,call,voicemail}', NULL),
    ('MI', 'default', '09:00', '21:00', '{}', false, false, NULL, '24 hours', '{voice,sms,whatsapp,call,voicemail}', NULL),
    ('MN', 'default', '09:00', '21:00', '{}', false, false, NULL, '24 hours', '{voice,sms,whatsapp,call,voicemail}', NULL),
    ('NM', 'default', '09:00', '21:00', '{}', false, false, NULL, '24 hours', '{voice,sms,whatsapp,call,voicemail}', NULL),
    ('NV', 'default', '09:00', '20:00', '{}', false, false, NULL, '24 hours', '{voice,sms,whatsapp,call,voicemail}', NULL),
    ('ME', 'default', '08:00', '21:00', '{}', false, false, 1, '8 hours', '{voice,voicemail}', '1 automated call per 8 hours (AI and prerecorded calls)');

CREATE FUNCTION crefinder.protect_default_rules() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_TABLE_NAME = 'recording_consent_states' THEN
        RAISE EXCEPTION 'shipped recording consent states are read-only'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Region %s is a default row shipped with crefinder.', OLD.region),
                  HINT = 'Add states with INSERT INTO crefinder.recording_consent_states (region, source, note) VALUES (..., ''operator'', ...).';
    END IF;
    RAISE EXCEPTION 'shipped calling rules are read-only'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = format('Region %s is a default rule shipped with crefinder.', OLD.region),
              HINT = format('Override it with INSERT INTO crefinder.calling_rules (region, source, ...) VALUES (%L, ''operator'', ...).', OLD.region);
END
$$;
CREATE TRIGGER protect_default_rules BEFORE UPDATE OR DELETE ON crefinder.calling_rules
    FOR EACH ROW WHEN (OLD.source = 'default') EXECUTE FUNCTION crefinder.protect_default_rules();

-- Extra holidays of states whose rules ban calls on holidays (federal
-- holidays are computed: crefinder.us_federal_holidays(year)).
CREATE TABLE crefinder.state_holidays (
    region  text NOT NULL CHECK (region ~ '^[A-Z]{2}$'),
    day     date NOT NULL,
    name    text NOT NULL,
    PRIMARY KEY (region, day)
);

-- Backends cache both tables; a change to either tells every backend to
-- read them again.
CREATE FUNCTION crefinder.rules_changed() RETURNS trigger
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'crefinder_rules_changed';
CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crefinder.calling_rules
    FOR EACH STATEMENT EXECUTE FUNCTION crefinder.rules_changed();
CREATE TRIGGER rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crefinder.state_holidays
    FOR EACH STATEMENT EXECUTE FUNCTION crefinder.rules_changed();

CREATE FUNCTION crefinder.us_federal_holidays(year integer)
    RETURNS TABLE (day date, observed date, name text)
    LANGUAGE c IMMUTABLE STRICT
    AS 'MODULE_PATHNAME', 'crefinder_us_federal_holidays';

-- States where every party to a call must consent to its recording: a
-- bridge call that records announces it to the owner when the owner's
-- state (area code or mailing address) is one of these, or unknown.
-- Shipped rows (source 'default') are read-only; an operator adds a
-- state with source 'operator'.
CREATE TABLE crefinder.recording_consent_states (
    region  text NOT NULL CHECK (region ~ '^[A-Z]{2}$'),
    source  text NOT NULL DEFAULT 'operator' CHECK (source IN ('default', 'operator')),
    note    text,
    PRIMARY KEY (region, source)
);
INSERT INTO crefinder.recording_consent_states (region, source, note) VALUES
    ('CA', 'default', 'California Penal Code 632'),
    ('CT', 'default', 'Connecticut General Statutes 52-570d (civil)'),
    ('DE', 'default', 'Delaware Code title 11, 1335'),
    ('FL', 'default', 'Florida Statutes 934.03'),
    ('IL', 'default', 'Illinois 720 ILCS 5/14-2'),
    ('MD', 'default', 'Maryland Courts and Judicial Proceedings 10-402'),
    ('MA', 'default', 'Massachusetts General Laws ch. 272, 99'),
    ('MT', 'default', 'Montana Code 45-8-213'),
    ('NV', 'default', 'Nevada Revised Statutes 200.620 (telephone calls)'),
    ('NH', 'default', 'New Hampshire RSA 570-A:2'),
    ('PA', 'default', 'Pennsylvania 18 Pa.C.S. 5703'),
    ('WA', 'default', 'Washington RCW 9.73.030');
CREATE TRIGGER protect_default_states BEFORE UPDATE OR DELETE ON crefinder.recording_consent_states
    FOR EACH ROW WHEN (OLD.source = 'default') EXECUTE FUNCTION crefinder.protect_default_rules();

-- A tenant's own policy: contact windows per channel (they can only narrow
-- the legal ones), consent for AI voice, an own cap, deal assumptions for
-- ROI.  A tenant without a row gets the column defaults.
CREATE TABLE crefinder.tenant_settings (
    user_id                 uuid PRIMARY KEY DEFAULT crefinder.current_user_id(),
    voice_window_start      time NOT NULL DEFAULT '09:00',
    voice_window_end        time NOT NULL DEFAULT '20:00',
    sms_window_start        time NOT NULL DEFAULT '09:00',
    sms_window_end          time NOT NULL DEFAULT '20:00',
    whatsapp_window_start   time NOT NULL DEFAULT '09:00',
    whatsapp_window_end     time NOT NULL DEFAULT '20:00',
    call_window_start       time NOT NULL DEFAULT '09:00',
    call_window_end         time NOT NULL DEFAULT '20:00',
    voicemail_window_start  time NOT NULL DEFAULT '09:00',
    voicemail_window_end    time NOT NULL DEFAULT '20:00',
    voice_requires_consent  boolean NOT NULL DEFAULT true,
    max_messages_per_24h    integer CHECK (max_messages_per_24h > 0),
    average_deal_value      numeric(14, 2) CHECK (average_deal_value >= 0),
    conversion_rate         numeric(7, 6) CHECK (conversion_rate BETWEEN 0 AND 1),
    business_name           text CHECK (char_length(business_name) BETWEEN 1 AND 100),
    help_text               text CHECK (char_length(help_text) BETWEEN 1 AND 320),
    opt_out_text            text CHECK (char_length(opt_out_text) BETWEEN 1 AND 320),
    postal_address          text CHECK (char_length(postal_address) BETWEEN 10 AND 300),
    -- Twilio calls: the number owners call back (said in every voicemail
    -- drop), the agent a bridge call rings first (and a press of 1 reaches),
    -- and the agent's working window in the agent's own zone
    callback_number         text CHECK (callback_number ~ '^\+[1-9][0-9]{6,14}$'),
    agent_number            text CHECK (agent_number ~ '^\+[1-9][0-9]{6,14}$'),
    agent_timezone          text CHECK (crefinder.is_time_zone(agent_timezone)),
    agent_window_start      time NOT NULL DEFAULT '09:00',
    agent_window_end        time NOT NULL DEFAULT '17:00',
    agent_days              text[] NOT NULL DEFAULT '{mon,tue,wed,thu,fri}'
        CHECK (agent_days <@ ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] AND cardinality(agent_days) > 0),
    recording_notice        text NOT NULL DEFAULT 'This call may be recorded.'
        CHECK (char_length(recording_notice) BETWEEN 1 AND 200),
    bridge_response_seconds integer NOT NULL DEFAULT 30 CHECK (bridge_response_seconds BETWEEN 1 AND 3600),
    release_window_minutes  integer NOT NULL DEFAULT 60 CHECK (release_window_minutes BETWEEN 0 AND 240),
    max_attempts_per_property integer NOT NULL DEFAULT 10 CHECK (max_attempts_per_property BETWEEN 1 AND 100),
    sms_segment_cost_cents  numeric(10, 4) NOT NULL DEFAULT 0.83 CHECK (sms_segment_cost_cents >= 0),
    whatsapp_cost_cents     numeric(10, 4) NOT NULL DEFAULT 0.50 CHECK (whatsapp_cost_cents >= 0),
    email_cost_cents        numeric(10, 4) NOT NULL DEFAULT 0 CHECK (email_cost_cents >= 0),
    voice_minute_cost_cents numeric(10, 4) NOT NULL DEFAULT 10 CHECK (voice_minute_cost_cents >= 0),
    call_minute_cost_cents  numeric(10, 4) NOT NULL DEFAULT 1.4 CHECK (call_minute_cost_cents >= 0),
    -- guardrails: a campaign's channel pauses itself past these rates
    guardrail_opt_out_percent    numeric(6, 3) NOT NULL DEFAULT 3 CHECK (guardrail_opt_out_percent > 0),
    guardrail_complaint_percent  numeric(6, 3) NOT NULL DEFAULT 0.3 CHECK (guardrail_complaint_percent > 0),
    guardrail_filtered_percent   numeric(6, 3) NOT NULL DEFAULT 2 CHECK (guardrail_filtered_percent > 0),
    guardrail_min_sends          integer NOT NULL DEFAULT 200 CHECK (guardrail_min_sends BETWEEN 1 AND 1000000),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT voice_window_order CHECK (voice_window_start < voice_window_end),
    CONSTRAINT sms_window_order CHECK (sms_window_start < sms_window_end),
    CONSTRAINT whatsapp_window_order CHECK (whatsapp_window_start < whatsapp_window_end),
    CONSTRAINT call_window_order CHECK (call_window_start < call_window_end),
    CONSTRAINT voicemail_window_order CHECK (voicemail_window_start < voicemail_window_end),
    CONSTRAINT agent_window_order CHECK (agent_window_start < agent_window_end),
    CONSTRAINT texts_printable CHECK (concat(business_name, help_text, opt_out_text, postal_address, recording_notice)
                                      !~ '[\x01-\x1f\x7f]')
);

-- default_tenant_settings: what a tenant without a row of its own gets.
CREATE FUNCTION crefinder.default_tenant_settings() RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    defaults jsonb;
BEGIN
    EXECUTE (SELECT format('SELECT to_jsonb(d) FROM (SELECT %s) d',
                           string_agg(format('%s AS %I', pg_get_expr(ad.adbin, ad.adrelid), a.attname), ', '))
             FROM pg_attribute a JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
             WHERE a.attrelid = 'crefinder.tenant_settings'::regclass AND a.attnum > 0
               AND NOT a.attisdropped AND a.attname NOT IN ('user_id', 'created_at', 'updated_at'))
    INTO defaults;
    RETURN to_jsonb(jsonb_populate_record(NULL::crefinder.tenant_settings, defaults))
           - '{user_id,created_at,updated_at}'::text[];
END
$$;

-- settings_of: a tenant's settings, defaults filled in.
CREATE FUNCTION crefinder.settings_of(tenant uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce((SELECT to_jsonb(t) - '{user_id,created_at,updated_at}'::text[]
                     FROM crefinder.tenant_settings t WHERE t.user_id = tenant),
                    crefinder.default_tenant_settings())
$$;

-- get_tenant_settings: the current tenant's settings, defaults filled in.
CREATE FUNCTION crefinder.get_tenant_settings() RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT crefinder.settings_of(crefinder.current_user_id()) $$;

-- set_tenant_settings: change some of the current tenant's settings (the
-- keys given; the others keep their values).  Every problem is named in
-- one 22023 error.  Returns the settings as get_tenant_settings() would.
CREATE FUNCTION crefinder.set_tenant_settings(changes jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tenant uuid := crefinder.current_user_id();
    merged jsonb;
    problems text[] := '{}';
    k text;
    v jsonb;
    col record;
    violated text;
BEGIN
    PERFORM crefinder.require_argument(changes IS NULL, 'changes');
    IF jsonb_typeof(changes) <> 'object' THEN
        RAISE EXCEPTION 'tenant settings must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR k, v IN SELECT * FROM jsonb_each(changes) LOOP
        SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull INTO col
        FROM pg_attribute a
        WHERE a.attrelid = 'crefinder.tenant_settings'::regclass AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attname = k AND a.attname NOT IN ('user_id', 'created_at', 'updated_at');
        IF NOT FOUND THEN
            problems := problems || format('%s: unknown setting', left(k, 40));
        ELSIF jsonb_typeof(v) = 'null' THEN
            IF col.attnotnull THEN
                problems := problems || format('%s: must not be null', k);
            END IF;
        ELSIF jsonb_typeof(v) NOT IN ('string', 'number', 'boolean') THEN
            problems := problems || format('%s: must be a %s, not a JSON %s', k, col.type, jsonb_typeof(v));
        ELSE
            BEGIN
                EXECUTE format('SELECT %L::%s', v #>> '{}', col.type);
            EXCEPTION WHEN data_exception OR invalid_text_representation THEN
                problems := problems || format('%s: must be a %s', k, col.type);
            END;
        END IF;
    END LOOP;
    -- the agent a bridge call rings first is the tenant's own: no owner, nobody who opted out
    IF jsonb_typeof(changes -> 'agent_number') = 'string'
       AND crefinder.agent_problem(tenant, changes ->> 'agent_number') IS NOT NULL THEN
        problems := problems || ('agent_number: the number ' || crefinder.agent_problem(tenant, changes ->> 'agent_number'));
    END IF;
    IF cardinality(problems) > 0 THEN
        RAISE EXCEPTION 'invalid tenant settings'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = array_to_string(problems, E'\n'),
                  HINT = format('Settings are: %s.', (SELECT string_agg(key, ', ' ORDER BY key) FROM
                                jsonb_object_keys(crefinder.default_tenant_settings()) AS key));
    END IF;

    SELECT to_jsonb(t) INTO merged FROM crefinder.tenant_settings t WHERE t.user_id = tenant;
    merged := coalesce(merged, crefinder.default_tenant_settings() || jsonb_build_object('created_at', now()))
              || changes || jsonb_build_object('user_id', tenant, 'updated_at', now());
    BEGIN
        DELETE FROM crefinder.tenant_settings t WHERE t.user_id = tenant;
        INSERT INTO crefinder.tenant_settings
        SELECT * FROM jsonb_populate_record(NULL::crefinder.tenant_settings, merged);
    EXCEPTION WHEN check_violation THEN
        GET STACKED DIAGNOSTICS violated = CONSTRAINT_NAME;
        RAISE EXCEPTION 'invalid tenant settings'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The settings break %s: %s.', violated,
                                  (SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
                                   WHERE c.conrelid = 'crefinder.tenant_settings'::regclass
                                     AND c.conname = violated));
    END;
    RETURN crefinder.get_tenant_settings();
END
$$;
COMMENT ON FUNCTION crefinder.set_tenant_settings(jsonb) IS
    'Change the current tenant''s settings: only the keys given change (e.g. {"sms_window_start": "10:00"}); every problem is named in one 22023 error; returns all settings.';
COMMENT ON FUNCTION crefinder.get_tenant_settings() IS
    'The current tenant''s settings (contact windows, consent policy, caps, deal assumptions), defaults filled in.';

-- Phone numbers and places.
CREATE FUNCTION crefinder.normalize_phone(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_normalize_phone';
CREATE FUNCTION crefinder.phone_timezones(text) RETURNS text[]
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_phone_timezones';
CREATE FUNCTION crefinder.phone_region(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_phone_region_sql';
CREATE FUNCTION crefinder.zip_timezone(text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_zip_timezone';
CREATE FUNCTION crefinder.normalize_contact(channel text, contact text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_normalize_contact';
COMMENT ON FUNCTION crefinder.normalize_contact(text, text) IS
    'A contact in the form crefinder stores it: E.164 for voice, sms and whatsapp (a whatsapp: prefix is dropped), lower-case for email; raises 22023 when invalid.';

-- The decision.
CREATE FUNCTION crefinder.can_contact(channel text, contact text, at timestamptz DEFAULT now(),
                                      property_id bigint DEFAULT NULL)
    RETURNS TABLE (allowed boolean, reason text, next_allowed_at timestamptz)
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'crefinder_can_contact';
COMMENT ON FUNCTION crefinder.can_contact(text, text, timestamptz, bigint) IS
    'May the current tenant contact this person on this channel at this instant?  reason is NULL when allowed, else invalid_contact, opted_out, suppressed, dnc, no_consent, unknown_timezone, quiet_hours, day_restricted or frequency_cap; next_allowed_at is the earliest instant from at when every time-based check passes.';

CREATE FUNCTION crefinder.scrub(channel text, contacts text[], at timestamptz DEFAULT now())
    RETURNS TABLE (contact text, allowed boolean, reason text, next_allowed_at timestamptz)
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'crefinder_scrub';
COMMENT ON FUNCTION crefinder.scrub(text, text[], timestamptz) IS
    'can_contact for many contacts at once (one row per element, in order).';

-- Opt-outs, consents, suppressions.  These change state for the current
-- tenant only: they run with the extension owner's rights (tenants cannot
-- write the tables themselves) and name the tenant in every statement.

-- check_choice raises 22023 unless value is one of allowed (22004 when null).
CREATE FUNCTION crefinder.check_choice(value text, name text, allowed text[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM crefinder.require_argument(value IS NULL, name);
    IF NOT value = ANY (allowed) THEN
        RAISE EXCEPTION 'invalid % "%"', name,
                        left(value, 40) || CASE WHEN char_length(value) > 40 THEN '…' ELSE '' END
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('%s must be one of: %s.', name, array_to_string(allowed, ', '));
    END IF;
END
$$;

-- check_label raises 22023 unless a free-text label (a source) is 1 to 200
-- characters without control characters.
CREATE FUNCTION crefinder.check_label(value text, name text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF value IS NOT NULL AND (btrim(value) = '' OR char_length(value) > 200 OR value ~ '[\x01-\x1f\x7f]') THEN
        RAISE EXCEPTION 'invalid %', name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('%s must be 1 to 200 characters without control characters.', name);
    END IF;
END
$$;

-- record_opt_out: an opt-out for tenant; a phone one revokes phone
-- consents.  Returns whether it is new (no active opt-out on that channel
-- family before).
CREATE FUNCTION crefinder.record_opt_out(tenant uuid, opt_channel text, opt_contact text, opt_source text)
    RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    already boolean;
BEGIN
    SELECT EXISTS (SELECT 1 FROM crefinder.opt_outs o
                   WHERE o.user_id = tenant AND o.contact = opt_contact AND o.revoked_at IS NULL
                     AND (o.channel = 'email') = (opt_channel = 'email'))
    INTO already;
    INSERT INTO crefinder.opt_outs (user_id, channel, contact, source)
    VALUES (tenant, opt_channel, opt_contact, left(opt_source, 200))
    ON CONFLICT (user_id, contact, channel) WHERE revoked_at IS NULL DO NOTHING;
    IF opt_channel <> 'email' THEN
        UPDATE crefinder.consents c
        SET revoked_at = now(), revoked_source = left('opt-out: ' || opt_source, 200)
        WHERE c.user_id = tenant AND c.contact = opt_contact AND c.channel <> 'email'
          AND c.revoked_at IS NULL;
    END IF;
    RETURN NOT already;
END
$$;

-- record_opt_in: lifts tenant's opt-outs of contact on the given channels
-- (and, for email, unsubscribes).  Returns how many were lifted.
CREATE FUNCTION crefinder.record_opt_in(tenant uuid, channels text[], opt_contact text, opt_source text)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    lifted integer;
BEGIN
    UPDATE crefinder.opt_outs o
    SET revoked_at = now(), revoked_source = left(opt_source, 200)
    WHERE o.user_id = tenant AND o.contact = opt_contact AND o.revoked_at IS NULL
      AND o.channel = ANY (channels);
    GET DIAGNOSTICS lifted = ROW_COUNT;
    IF 'email' = ANY (channels) THEN
        UPDATE crefinder.email_suppressions s SET removed_at = now()
        WHERE s.user_id = tenant AND s.email = opt_contact
          AND s.reason IN ('unsubscribe', 'group_unsubscribe') AND s.removed_at IS NULL;
    END IF;
    RETURN lifted;
END
$$;

CREATE FUNCTION crefinder.opt_out(channel text, contact text, source text DEFAULT 'manual')
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    normalized text;
    opt_out_id bigint;
BEGIN
    PERFORM crefinder.check_choice(channel, 'channel', '{voice,sms,whatsapp,email,call,voicemail}');
    PERFORM crefinder.require_argument(contact IS NULL, 'contact');
    PERFORM crefinder.check_label(source, 'source');
    normalized := crefinder.normalize_contact(channel, contact);
    PERFORM crefinder.record_opt_out(crefinder.current_user_id(), channel, normalized, coalesce(source, 'manual'));
    SELECT o.id INTO opt_out_id FROM crefinder.opt_outs o
    WHERE o.user_id = crefinder.current_user_id() AND o.contact = normalized
      AND o.channel = opt_out.channel AND o.revoked_at IS NULL;
    RETURN opt_out_id;
END
$$;
COMMENT ON FUNCTION crefinder.opt_out(text, text, text) IS
    'Record an opt-out (STOP, unsubscribe, a request).  A phone opt-out blocks every phone channel (voice, sms, whatsapp, call, voicemail) and revokes phone consents; an email opt-out blocks email.';

CREATE FUNCTION crefinder.opt_in(channel text, contact text, source text DEFAULT 'manual')
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM crefinder.check_choice(channel, 'channel', '{voice,sms,whatsapp,email,call,voicemail}');
    PERFORM crefinder.require_argument(contact IS NULL, 'contact');
    PERFORM crefinder.check_label(source, 'source');
    RETURN crefinder.record_opt_in(crefinder.current_user_id(),
                                   CASE WHEN channel = 'email' THEN '{email}'::text[] ELSE '{voice,sms,whatsapp,call,voicemail}' END,
                                   crefinder.normalize_contact(channel, contact), coalesce(source, 'manual'));
END
$$;
COMMENT ON FUNCTION crefinder.opt_in(text, text, text) IS
    'Lift opt-outs (START, YES, UNSTOP; a re-subscribe): every phone opt-out for a phone channel, email opt-outs and unsubscribes for email.  Returns how many opt-outs were lifted.  Consents revoked by the opt-out stay revoked.';

CREATE FUNCTION crefinder.record_consent(contact text, channel text, kind text, source text,
                                         evidence jsonb DEFAULT '{}')
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    consent_id bigint;
BEGIN
    PERFORM crefinder.require_argument(contact IS NULL, 'contact');
    PERFORM crefinder.check_choice(channel, 'channel', '{voice,sms,whatsapp,email,call,voicemail}');
    PERFORM crefinder.check_choice(kind, 'kind', '{express,express_written}');
    PERFORM crefinder.require_argument(source IS NULL, 'source');
    PERFORM crefinder.check_label(source, 'source');
    IF evidence IS NOT NULL AND (jsonb_typeof(evidence) <> 'object' OR pg_column_size(evidence) > 65536) THEN
        RAISE EXCEPTION 'evidence must be a JSON object of at most 64 kB'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO crefinder.consents (user_id, contact, channel, kind, source, evidence)
    VALUES (crefinder.current_user_id(), crefinder.normalize_contact(channel, contact), channel, kind,
            source, coalesce(evidence, '{}'))
    RETURNING id INTO consent_id;
    RETURN consent_id;
END
$$;

CREATE FUNCTION crefinder.revoke_consent(contact text, channel text, source text DEFAULT 'manual')
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    revoked integer;
BEGIN
    PERFORM crefinder.require_argument(contact IS NULL, 'contact');
    PERFORM crefinder.check_choice(channel, 'channel', '{voice,sms,whatsapp,email,call,voicemail}');
    PERFORM crefinder.check_label(source, 'source');
    UPDATE crefinder.consents c SET revoked_at = now(), revoked_source = coalesce(revoke_consent.source, 'manual')
    WHERE c.user_id = crefinder.current_user_id()
      AND c.contact = crefinder.normalize_contact(revoke_consent.channel, revoke_consent.contact)
      AND c.channel = revoke_consent.channel AND c.revoked_at IS NULL;
    GET DIAGNOSTICS revoked = ROW_COUNT;
    RETURN revoked;
END
$$;

CREATE FUNCTION crefinder.add_suppression(email text, reason text, source text DEFAULT 'manual',
                                          detail text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    normalized text;
    suppression_id bigint;
BEGIN
    PERFORM crefinder.require_argument(email IS NULL, 'email');
    PERFORM crefinder.check_choice(reason, 'reason',
        '{bounce,dropped,spamreport,unsubscribe,group_unsubscribe,invalid,manual}');
    PERFORM crefinder.check_label(source, 'source');
    IF char_length(detail) > 1000 THEN
        RAISE EXCEPTION 'detail is too long' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'detail has at most 1000 characters.';
    END IF;
    normalized := crefinder.normalize_contact('email', email);
    INSERT INTO crefinder.email_suppressions (user_id, email, reason, source, detail)
    VALUES (crefinder.current_user_id(), normalized, reason, coalesce(source, 'manual'), detail)
    ON CONFLICT (user_id, email, reason) WHERE removed_at IS NULL DO NOTHING
    RETURNING id INTO suppression_id;
    IF suppression_id IS NULL THEN
        SELECT s.id INTO suppression_id FROM crefinder.email_suppressions s
        WHERE s.user_id = crefinder.current_user_id() AND s.email = normalized
          AND s.reason = add_suppression.reason AND s.removed_at IS NULL;
    END IF;
    RETURN suppression_id;
END
$$;

-- Do-Not-Call.
CREATE FUNCTION crefinder.dnc_load(path text, source text) RETURNS bigint
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'crefinder_dnc_load';
COMMENT ON FUNCTION crefinder.dnc_load(text, text) IS
    'Superuser, or a role with pg_read_server_files to which the operator has granted EXECUTE on this function (it is revoked from PUBLIC): load a Do-Not-Call registry file on the server (areacode,number or 10-digit lines) into the registry list named by source (national, state, litigator; optionally followed by ":detail").  Returns the numbers added.';
REVOKE ALL ON FUNCTION crefinder.dnc_load(text, text) FROM PUBLIC;

CREATE FUNCTION crefinder.dnc_add(contact text, source text DEFAULT 'internal') RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    number bigint;
    list_source text := coalesce(dnc_add.source, 'internal');
    list integer;
    added integer;
BEGIN
    PERFORM crefinder.require_argument(contact IS NULL, 'contact');
    PERFORM crefinder.check_label(source, 'source');
    number := ltrim(crefinder.normalize_phone(contact), '+')::bigint;
    INSERT INTO crefinder.dnc_lists (kind, user_id, source)
    VALUES ('internal', crefinder.current_user_id(), list_source)
    ON CONFLICT DO NOTHING;
    SELECT l.id INTO list FROM crefinder.dnc_lists l
    WHERE l.user_id = crefinder.current_user_id() AND l.source = list_source;
    INSERT INTO crefinder.dnc_numbers (phone_number, list_id) VALUES (number, list)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS added = ROW_COUNT;
    RETURN added > 0;
END
$$;
COMMENT ON FUNCTION crefinder.dnc_add(text, text) IS
    'Put a number on one of the current tenant''s internal Do-Not-Call lists; false when it was already there.';

-- Deleting a list deletes its numbers.
CREATE FUNCTION crefinder.delete_dnc_list_numbers() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    DELETE FROM crefinder.dnc_numbers d USING old_lists o WHERE d.list_id = o.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER delete_dnc_list_numbers AFTER DELETE ON crefinder.dnc_lists
    REFERENCING OLD TABLE AS old_lists
    FOR EACH STATEMENT EXECUTE FUNCTION crefinder.delete_dnc_list_numbers();
