-- Campaigns: templates, contact points, sequences, enrollments, and tick(),
-- which advances every due enrollment set-based.
--
-- A campaign runs a sequence (steps: a channel, a delay, a template or A/B
-- variants, reactions) for each property enrolled in it.  pg_cron calls
-- tick() every minute: it takes the enrollments whose next step is due,
-- picks each one's contact point, variant and text, decides compliance for
-- all of them at once (scrub_for, the set form of can_contact), inserts the
-- messages into the outbox in one statement (a unique key makes each step
-- of each enrollment one message), and schedules the following steps.
-- Replies and call outcomes (the responses table, filled by the webhooks)
-- and opt-outs stop or redirect enrollments at once (the reactions below).

-- ----------------------------------------------------------------------
-- Templates
-- ----------------------------------------------------------------------

CREATE FUNCTION crefinder.render(template text, vars jsonb, html boolean DEFAULT false,
                                 max_bytes integer DEFAULT NULL) RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_render';

CREATE FUNCTION crefinder.template_variables(template text) RETURNS text[]
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_template_variables';

CREATE FUNCTION crefinder.sms_segments(body text) RETURNS integer
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_sms_segments';

CREATE FUNCTION crefinder.split_owner_name(owner_name text, OUT first_name text, OUT last_name text)
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_split_owner_name';

-- template_builtin_variables: what every template may name, from the
-- property record and the tenant's settings.
CREATE FUNCTION crefinder.template_builtin_variables() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT '{owner_name,first_name,last_name,property_address,city,state,zip,mailing_address,business_name}'::text[]
$$;

-- property_variables: the built-in variables of a property (business_name
-- comes from the tenant's settings, added by the caller).
CREATE FUNCTION crefinder.property_variables(p crefinder.property_records) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'owner_name', p.owner_name, 'first_name', n.first_name, 'last_name', n.last_name,
        'property_address', p.property_address, 'city', p.property_city, 'state', p.property_state,
        'zip', p.property_zip, 'mailing_address', p.mailing_address))
    FROM crefinder.split_owner_name(p.owner_name) AS n
$$;

-- save_template: create or replace the current tenant's template of that
-- name and channel; its placeholders must be well-formed.
CREATE FUNCTION crefinder.save_template(name text, channel text, body text, subject text DEFAULT NULL,
                                        html text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    tenant uuid := crefinder.current_user_id();
    saved bigint;
BEGIN
    PERFORM crefinder.require_argument(name IS NULL, 'name');
    PERFORM crefinder.require_argument(body IS NULL, 'body');
    PERFORM crefinder.check_choice(channel, 'channel', '{sms,whatsapp,email,voice}');
    IF btrim(name) = '' OR char_length(name) > 200 THEN
        RAISE EXCEPTION 'a template name has 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF subject IS NOT NULL AND channel <> 'email' THEN
        RAISE EXCEPTION 'only an email template has a subject' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF char_length(body) > 20000 OR char_length(html) > 200000 OR char_length(subject) > 998 THEN
        RAISE EXCEPTION 'template is too long' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'A body has at most 20000 characters, html 200000, a subject 998.';
    END IF;
    PERFORM crefinder.template_variables(coalesce(subject, '')), crefinder.template_variables(body),
            crefinder.template_variables(coalesce(html, ''));
    INSERT INTO crefinder.templates AS t (user_id, name, channel, subject, body, html)
    VALUES (tenant, name, channel, subject, body, html)
    ON CONFLICT ON CONSTRAINT templates_user_id_name_channel_key DO UPDATE
        SET subject = excluded.subject, body = excluded.body, html = excluded.html, updated_at = now()
    RETURNING t.id INTO saved;
    RETURN saved;
END
$$;

CREATE FUNCTION crefinder.try_normalize_contact(channel text, contact text) RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_try_normalize_contact';
-- bridge_call() makes sure its agent is no owner, whatever form the phone was typed in
CREATE INDEX property_records_owner_phone_e164_idx
    ON crefinder.property_records (user_id, crefinder.try_normalize_contact('sms', owner_phone));

-- ----------------------------------------------------------------------
-- Contact points
-- ----------------------------------------------------------------------

-- Owners have several phones and emails (skip tracing returns 3 to 5
-- phones).  A step uses the best active one of its kind (lowest rank) that
-- is not opted out (nor suppressed); a wrong-number reply marks a phone
-- wrong, a permanent delivery failure marks it undeliverable, and the next
-- step uses the next one.
CREATE TABLE crefinder.property_contacts (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        uuid NOT NULL DEFAULT crefinder.current_user_id(),
    property_id    bigint NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('phone', 'email')),
    value          text NOT NULL CHECK (char_length(value) BETWEEN 3 AND 254),
    rank           integer NOT NULL DEFAULT 100 CHECK (rank >= 0),
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'wrong', 'undeliverable')),
    status_reason  text CHECK (char_length(status_reason) <= 1000),
    marked_at      timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, id),
    UNIQUE (user_id, property_id, kind, value),
    FOREIGN KEY (user_id, property_id) REFERENCES crefinder.property_records (user_id, id)
        ON DELETE CASCADE
);
CREATE INDEX ON crefinder.property_contacts (user_id, value);

-- Contact points are stored normalized (E.164, lower-case email): a
-- tenant's insert of an invalid one is refused (22023).
CREATE FUNCTION crefinder.normalize_property_contact() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    NEW.value := crefinder.normalize_contact(CASE NEW.kind WHEN 'email' THEN 'email' ELSE 'sms' END, NEW.value);
    RETURN NEW;
END
$$;
CREATE TRIGGER normalize_property_contact BEFORE INSERT OR UPDATE OF kind, value ON crefinder.property_contacts
    FOR EACH ROW EXECUTE FUNCTION crefinder.normalize_property_contact();

-- sync_property_contacts: the owner_phone and owner_email of tenant's
-- properties become contact points of rank 0 (when valid and not already
-- there), so that every contact of an enrolled owner can be marked.
CREATE FUNCTION crefinder.sync_property_contacts(tenant uuid, property_ids bigint[]) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    AS $$
    INSERT INTO crefinder.property_contacts (user_id, property_id, kind, value, rank)
    SELECT p.user_id, p.id, c.kind, c.value, 0
    FROM crefinder.property_records p
    CROSS JOIN LATERAL (VALUES
        ('phone', crefinder.try_normalize_contact('sms', p.owner_phone)),
        ('email', crefinder.try_normalize_contact('email', p.owner_email))) AS c(kind, value)
    WHERE p.user_id = tenant AND p.id = ANY (property_ids) AND c.value IS NOT NULL
    ON CONFLICT (user_id, property_id, kind, value) DO NOTHING
$$;

-- ----------------------------------------------------------------------
-- Sequences
-- ----------------------------------------------------------------------

-- sequence_steps: steps checked as a whole for tenant, every problem named
-- in one 22023 error; returns them normalized: each step has channel,
-- delay (an interval, after the previous step or, for the first, after
-- enrollment), holdout (percent), variants [{name, weight, body, subject,
-- html}] (a template's text is copied in), on_positive (stop |
-- nurture:<sequence id>), on_negative (stop), on_no_response (next | stop)
-- and, for voice, assistant_id.
CREATE FUNCTION crefinder.sequence_steps(tenant uuid, steps jsonb, variables jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    problems text[] := '{}';
    normalized jsonb := '[]';
    allowed text[];
    step jsonb;
    variant jsonb;
    variants jsonb;
    out_variants jsonb;
    n integer := 0;
    v integer;
    where_ text;
    channel text;
    delay interval;
    holdout numeric;
    weight numeric;
    vname text;
    names text[];
    body text;
    subject text;
    html text;
    tpl record;
    used text;
    reaction text;
    settings jsonb := crefinder.settings_of(tenant);
    email_config jsonb;
    voice_config jsonb;
    assistant text;
    weights float8[];
BEGIN
    IF steps IS NULL OR jsonb_typeof(steps) <> 'array' OR jsonb_array_length(steps) = 0 THEN
        RAISE EXCEPTION 'steps must be a non-empty JSON array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_array_length(steps) > 20 THEN
        RAISE EXCEPTION 'a sequence has at most 20 steps' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    allowed := crefinder.template_builtin_variables()
               || ARRAY(SELECT jsonb_object_keys(coalesce(variables, '{}')));
    SELECT c.config INTO email_config FROM crefinder.integration_configs c
    WHERE c.user_id = tenant AND c.provider = 'sendgrid';
    SELECT c.config INTO voice_config FROM crefinder.integration_configs c
    WHERE c.user_id = tenant AND c.provider = 'vapi';

    FOR step IN SELECT s FROM jsonb_array_elements(steps) AS s LOOP
        n := n + 1;
        where_ := format('step %s', n);
        IF jsonb_typeof(step) <> 'object' THEN
            problems := problems || format('%s: must be a JSON object', where_);
            CONTINUE;
        END IF;
        FOR used IN SELECT k FROM jsonb_object_keys(step) k
                    WHERE k NOT IN ('channel', 'delay', 'template', 'body', 'subject', 'html', 'variants',
                                    'holdout', 'on_positive', 'on_negative', 'on_no_response', 'assistant_id',
                                    'audio_url', 'record')
        LOOP
            problems := problems || format('%s: unknown field "%s"', where_, left(used, 40));
        END LOOP;
        channel := step ->> 'channel';
        IF channel IS NULL OR channel NOT IN ('sms', 'whatsapp', 'email', 'voice', 'call', 'voicemail') THEN
            problems := problems || format('%s: channel must be sms, whatsapp, email, voice, call or voicemail', where_);
            channel := NULL;
        END IF;
        delay := interval '0';
        IF step ? 'delay' THEN
            BEGIN
                delay := (step ->> 'delay')::interval;
                IF delay < interval '0' OR delay > interval '365 days' THEN
                    problems := problems || format('%s: delay must be between 0 and 365 days', where_);
                END IF;
            EXCEPTION WHEN data_exception OR invalid_text_representation THEN
                problems := problems || format('%s: delay "%s" is not an interval (e.g. "2 days")', where_,
                                               left(step ->> 'delay', 40));
                delay := interval '0';
            END;
        END IF;
        holdout := 0;
        IF step ? 'holdout' THEN
            IF jsonb_typeof(step -> 'holdout') <> 'number'
               OR (step -> 'holdout')::numeric < 0 OR (step -> 'holdout')::numeric > 50 THEN
                problems := problems || format('%s: holdout must be a percentage from 0 to 50', where_);
            ELSE
                holdout := round((step -> 'holdout')::numeric, 2);
            END IF;
        END IF;
        -- reactions
        reaction := coalesce(step ->> 'on_positive', 'stop');
        IF reaction <> 'stop' THEN
            IF reaction !~ '^nurture:[0-9]{1,18}$' THEN
                problems := problems || format('%s: on_positive must be "stop" or "nurture:<sequence id>"', where_);
            ELSIF NOT EXISTS (SELECT 1 FROM crefinder.sequences q
                              WHERE q.user_id = tenant AND q.id = substr(reaction, 9)::bigint) THEN
                problems := problems || format('%s: on_positive names sequence %s, which does not exist',
                                               where_, substr(reaction, 9));
            END IF;
        END IF;
        IF coalesce(step ->> 'on_negative', 'stop') <> 'stop' THEN
            problems := problems || format('%s: on_negative must be "stop"', where_);
        END IF;
        IF coalesce(step ->> 'on_no_response', 'next') NOT IN ('next', 'stop') THEN
            problems := problems || format('%s: on_no_response must be "next" or "stop"', where_);
        END IF;
        -- the variants (a step without "variants" is its own one variant)
        IF step ? 'variants' THEN
            variants := step -> 'variants';
            IF jsonb_typeof(variants) <> 'array' OR jsonb_array_length(variants) NOT BETWEEN 1 AND 10 THEN
                problems := problems || format('%s: variants must be an array of 1 to 10 objects', where_);
                variants := '[]';
            END IF;
        ELSE
            variants := jsonb_build_array(step - '{channel,delay,holdout,on_positive,on_negative,on_no_response,assistant_id,record}'::text[]);
        END IF;
        out_variants := '[]';
        weights := '{}';
        names := '{}';
        v := 0;
        FOR variant IN SELECT x FROM jsonb_array_elements(variants) AS x LOOP
            v := v + 1;
            IF step ? 'variants' THEN
                where_ := format('step %s variant %s', n, v);
            END IF;
            IF jsonb_typeof(variant) <> 'object' THEN
                problems := problems || format('%s: must be a JSON object', where_);
                CONTINUE;
            END IF;
            IF step ? 'variants' THEN
                FOR used IN SELECT k FROM jsonb_object_keys(variant) k
                            WHERE k NOT IN ('name', 'weight', 'template', 'body', 'subject', 'html', 'audio_url')
                LOOP
                    problems := problems || format('%s: unknown field "%s"', where_, left(used, 40));
                END LOOP;
            END IF;
            vname := coalesce(variant ->> 'name', chr(64 + v));
            IF vname = 'holdout' OR char_length(vname) > 40 OR vname = ANY (names) THEN
                problems := problems || format('%s: the name "%s" is taken, reserved or too long', where_, left(vname, 40));
            END IF;
            names := names || vname;
            weight := 1;
            IF variant ? 'weight' THEN
                IF jsonb_typeof(variant -> 'weight') <> 'number' OR (variant -> 'weight')::numeric < 0.001
                   OR (variant -> 'weight')::numeric > 1000000 THEN
                    problems := problems || format('%s: weight must be a number from 0.001 to 1000000', where_);
                ELSE
                    weight := round((variant -> 'weight')::numeric, 3);
                END IF;
            END IF;
            body := variant ->> 'body';
            subject := variant ->> 'subject';
            html := variant ->> 'html';
            IF variant ? 'template' THEN
                SELECT t.body, t.subject, t.html INTO tpl FROM crefinder.templates t
                WHERE t.user_id = tenant AND t.channel = channel
                  AND (t.name = variant ->> 'template'
                       OR (jsonb_typeof(variant -> 'template') = 'number' AND t.id::text = variant ->> 'template'));
                IF NOT FOUND THEN
                    problems := problems || format('%s: no %s template "%s"', where_, coalesce(channel, ''),
                                                   left(variant ->> 'template', 80));
                ELSE
                    body := coalesce(body, tpl.body);
                    subject := coalesce(subject, tpl.subject);
                    html := coalesce(html, tpl.html);
                END IF;
            END IF;
            IF char_length(body) > 20000 OR char_length(html) > 200000 OR char_length(subject) > 998 THEN
                problems := problems || format('%s: a body has at most 20000 characters, html 200000, a subject 998', where_);
            END IF;
            IF channel IN ('sms', 'whatsapp') AND (body IS NULL OR btrim(body) = '') THEN
                problems := problems || format('%s: a %s step needs a body or a template', where_, channel);
            ELSIF channel IN ('sms', 'whatsapp') AND char_length(body) > 1600 THEN
                problems := problems || format('%s: the body has %s characters, at most 1600', where_, char_length(body));
            END IF;
            -- a voicemail drop says its body (a template, rendered per owner) or plays audio_url
            IF channel = 'voicemail' THEN
                IF (nullif(btrim(crefinder.xml_text(body), E' \t\r\n'), '') IS NULL) = (variant ->> 'audio_url' IS NULL) THEN
                    problems := problems || format('%s: a voicemail step needs a body (said) or an audio_url (played), not both', where_);
                ELSIF char_length(body) > 1000 THEN
                    problems := problems || format('%s: a voicemail body has at most 1000 characters', where_);
                ELSIF variant ->> 'audio_url' IS NOT NULL AND (char_length(variant ->> 'audio_url') > 2048
                      OR variant ->> 'audio_url' !~ '^https://[^/\s?#]+[^\s<>"]*$') THEN
                    problems := problems || format('%s: audio_url must be an absolute https URL of at most 2048 characters', where_);
                END IF;
            ELSIF channel = 'call' AND (body IS NOT NULL OR variant ? 'audio_url') THEN
                problems := problems || format('%s: a call step (a bridge to the agent) has no body or audio', where_);
            END IF;
            IF channel = 'email' THEN
                IF subject IS NULL OR btrim(subject) = '' OR subject ~ '[\r\n]' THEN
                    problems := problems || format('%s: an email step needs a one-line subject', where_);
                END IF;
                IF coalesce(body, html) IS NULL THEN
                    problems := problems || format('%s: an email step needs a body or html', where_);
                END IF;
            END IF;
            -- every placeholder must be well-formed and known
            BEGIN
                FOR used IN SELECT DISTINCT u FROM unnest(crefinder.template_variables(coalesce(subject, ''))
                                                          || crefinder.template_variables(coalesce(body, ''))
                                                          || crefinder.template_variables(coalesce(html, ''))) u
                            WHERE u <> ALL (allowed) LOOP
                    problems := problems || format('%s: unknown variable {{%s}} (known: %s)', where_, used,
                                                   array_to_string(allowed, ', '));
                END LOOP;
            EXCEPTION WHEN invalid_parameter_value THEN
                GET STACKED DIAGNOSTICS used = MESSAGE_TEXT;
                problems := problems || format('%s: %s', where_, used);
            END;
            weights := weights || weight::float8;
            out_variants := out_variants || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
                'name', vname, 'weight', weight, 'body', body, 'subject', subject, 'html', html,
                'audio_url', variant ->> 'audio_url')));
        END LOOP;
        where_ := format('step %s', n);
        IF channel = 'email' THEN
            IF email_config IS NULL THEN
                problems := problems || format('%s: sendgrid is not configured for this tenant', where_);
            ELSIF NOT (email_config ? 'unsubscribeGroupId')
                  AND coalesce((email_config ->> 'subscriptionTracking')::boolean, true) = false THEN
                problems := problems || format('%s: email needs an unsubscribe link: configure sendgrid unsubscribeGroupId or subscriptionTracking', where_);
            END IF;
            IF settings ->> 'postal_address' IS NULL THEN
                problems := problems || format('%s: an email step needs the tenant''s postal_address (CAN-SPAM): set it with crefinder.set_tenant_settings(''{"postal_address": "..."}'')', where_);
            END IF;
        END IF;
        assistant := NULL;
        IF channel = 'voice' THEN
            assistant := coalesce(step ->> 'assistant_id', voice_config ->> 'assistantId');
            IF voice_config IS NULL THEN
                problems := problems || format('%s: vapi is not configured for this tenant', where_);
            ELSIF assistant IS NULL THEN
                problems := problems || format('%s: a voice step needs assistant_id (or vapi assistantId)', where_);
            END IF;
        END IF;
        IF channel IN ('sms', 'whatsapp') AND NOT EXISTS (
               SELECT 1 FROM crefinder.integration_configs c WHERE c.user_id = tenant AND c.provider = 'twilio') THEN
            problems := problems || format('%s: twilio is not configured for this tenant', where_);
        END IF;
        -- Twilio calls: the number they come from and the route that answers them; a drop
        -- names the business and a number to call back; a bridge rings the agent, only in
        -- the agent's working window
        IF channel IN ('call', 'voicemail') AND NOT EXISTS (
               SELECT 1 FROM crefinder.integration_configs c WHERE c.user_id = tenant AND c.provider = 'twilio'
                 AND c.config ? 'phoneNumber' AND c.config ? 'voiceWebhookUrl') THEN
            problems := problems || format('%s: a %s step needs twilio phoneNumber and voiceWebhookUrl', where_, channel);
        END IF;
        IF channel = 'voicemail' AND (settings ->> 'business_name' IS NULL OR settings ->> 'callback_number' IS NULL) THEN
            problems := problems || format('%s: a voicemail step needs the tenant''s business_name and callback_number (47 CFR 64.1200(b))', where_);
        END IF;
        IF channel = 'call' AND (settings ->> 'agent_number' IS NULL OR settings ->> 'agent_timezone' IS NULL) THEN
            problems := problems || format('%s: a call step needs the tenant''s agent_number and agent_timezone (bridges go out in the agent''s working window)', where_);
        END IF;
        IF step ? 'record' AND (channel IS DISTINCT FROM 'call' OR jsonb_typeof(step -> 'record') <> 'boolean') THEN
            problems := problems || format('%s: record (true or false) is for call steps', where_);
        END IF;
        normalized := normalized || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
            'channel', channel, 'delay', delay::text, 'holdout', holdout, 'variants', out_variants,
            'weights', to_jsonb(weights),
            'on_positive', coalesce(step ->> 'on_positive', 'stop'), 'on_negative', 'stop',
            'on_no_response', coalesce(step ->> 'on_no_response', 'next'), 'assistant_id', assistant,
            'record', CASE WHEN channel = 'call' THEN coalesce((step ->> 'record')::boolean, false) END)));
    END LOOP;
    IF cardinality(problems) > 0 THEN
        RAISE EXCEPTION 'invalid sequence'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = array_to_string(problems, E'\n');
    END IF;
    RETURN normalized;
END
$$;

CREATE FUNCTION crefinder.create_sequence(name text, steps jsonb, variables jsonb DEFAULT '{}')
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    tenant uuid := crefinder.current_user_id();
    created bigint;
BEGIN
    PERFORM crefinder.require_argument(name IS NULL, 'name');
    PERFORM crefinder.require_argument(steps IS NULL, 'steps');
    IF btrim(name) = '' OR char_length(name) > 200 THEN
        RAISE EXCEPTION 'a sequence name has 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF variables IS NULL OR jsonb_typeof(variables) <> 'object' THEN
        RAISE EXCEPTION 'variables must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_each(variables) v
               WHERE v.key !~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$' OR v.key = ANY (crefinder.template_builtin_variables())
                  OR jsonb_typeof(v.value) NOT IN ('string', 'number', 'null')
                  OR char_length(v.value #>> '{}') > 1000 OR (v.value #>> '{}') ~ '[\x01-\x1f\x7f]')
       OR (SELECT count(*) FROM jsonb_object_keys(variables)) > 100 THEN
        RAISE EXCEPTION 'invalid sequence variables'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'At most 100 variables, each a name (letters, digits, underscores; not a built-in one) with a string, number or null default of at most 1000 characters and no control characters.';
    END IF;
    IF EXISTS (SELECT 1 FROM crefinder.sequences q WHERE q.user_id = tenant AND q.name = name) THEN
        RAISE EXCEPTION 'sequence "%" already exists', name USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO crefinder.sequences (user_id, name, steps, variables)
    VALUES (tenant, name, crefinder.sequence_steps(tenant, steps, variables), variables)
    RETURNING id INTO created;
    RETURN created;
END
$$;

-- ----------------------------------------------------------------------
-- Campaigns and enrollments
-- ----------------------------------------------------------------------

-- enroll: enrolls tenant's properties (each once) in campaign, their first
-- step due at starts_at plus its delay; returns how many were new.
CREATE FUNCTION crefinder.enroll(tenant uuid, campaign bigint, property_ids bigint[], starts_at timestamptz)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    AS $$
DECLARE
    missing bigint[];
    first_delay interval;
    added integer;
BEGIN
    SELECT array_agg(x.id ORDER BY x.id) INTO missing
    FROM (SELECT DISTINCT u.id FROM unnest(property_ids) AS u(id)
          WHERE u.id IS NULL OR NOT EXISTS (SELECT 1 FROM crefinder.property_records p
                                            WHERE p.user_id = tenant AND p.id = u.id)) AS x;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION '% of the properties do not exist', cardinality(missing)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Not among the tenant''s property_records: %s%s.',
                                  array_to_string(missing[1:10], ', ', 'NULL'),
                                  CASE WHEN cardinality(missing) > 10 THEN ', ...' ELSE '' END);
    END IF;
    SELECT (q.steps -> 0 ->> 'delay')::interval INTO first_delay
    FROM crefinder.campaigns c JOIN crefinder.sequences q ON q.user_id = c.user_id AND q.id = c.sequence_id
    WHERE c.user_id = tenant AND c.id = campaign;
    -- (a closed lead is not enrolled; in a paused campaign an enrollment
    -- starts paused)
    INSERT INTO crefinder.enrollments (user_id, campaign_id, property_id, next_step_at, status, resume_status)
    SELECT tenant, campaign, p.id, starts_at + first_delay,
           CASE WHEN c.status = 'paused' THEN 'paused' ELSE 'active' END,
           CASE WHEN c.status = 'paused' THEN 'active' END
    FROM (SELECT DISTINCT u.id FROM unnest(property_ids) AS u(id)) AS x
    JOIN crefinder.property_records p ON p.user_id = tenant AND p.id = x.id
    JOIN crefinder.campaigns c ON c.user_id = tenant AND c.id = campaign
    WHERE p.lead_status NOT IN ('not_interested', 'do_not_contact', 'converted')
    ON CONFLICT (campaign_id, property_id) DO NOTHING;
    GET DIAGNOSTICS added = ROW_COUNT;
    PERFORM crefinder.sync_property_contacts(tenant, property_ids);
    RETURN added;
END
$$;

CREATE FUNCTION crefinder.create_campaign(name text, sequence_id bigint, property_ids bigint[],
                                          variables jsonb DEFAULT '{}', starts_at timestamptz DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    tenant uuid := crefinder.current_user_id();
    declared jsonb;
    problems text[];
    created bigint;
BEGIN
    PERFORM crefinder.require_argument(name IS NULL, 'name');
    PERFORM crefinder.require_argument(sequence_id IS NULL, 'sequence_id');
    PERFORM crefinder.require_argument(property_ids IS NULL, 'property_ids');
    IF btrim(name) = '' OR char_length(name) > 200 THEN
        RAISE EXCEPTION 'a campaign name has 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(property_ids) > 10000000 THEN
        RAISE EXCEPTION 'at most 10,000,000 properties per call' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    SELECT q.variables INTO declared FROM crefinder.sequences q WHERE q.user_id = tenant AND q.id = sequence_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sequence % does not exist', sequence_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF variables IS NULL OR jsonb_typeof(variables) <> 'object' THEN
        RAISE EXCEPTION 'variables must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(p ORDER BY p) INTO problems FROM (
        SELECT format('unknown variable "%s" (the sequence declares: %s)', left(k, 40),
                      coalesce((SELECT string_agg(d, ', ') FROM jsonb_object_keys(declared) d), 'none')) AS p
        FROM jsonb_object_keys(variables) k WHERE NOT declared ? k
        UNION ALL
        SELECT format('variable "%s" needs a value', d.key) FROM jsonb_each(declared) d
        WHERE jsonb_typeof(d.value) = 'null' AND jsonb_typeof(coalesce(variables -> d.key, 'null')) = 'null'
        UNION ALL
        SELECT format('variable "%s" must be a string or a number', v.key) FROM jsonb_each(variables) v
        WHERE jsonb_typeof(v.value) NOT IN ('string', 'number')
        UNION ALL
        SELECT format('variable "%s" has more than 1000 characters or a control character', v.key)
        FROM jsonb_each(variables) v
        WHERE char_length(v.value #>> '{}') > 1000 OR (v.value #>> '{}') ~ '[\x01-\x1f\x7f]') AS x;
    IF problems IS NOT NULL THEN
        RAISE EXCEPTION 'invalid campaign variables' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = array_to_string(problems, E'\n');
    END IF;
    INSERT INTO crefinder.campaigns (user_id, name, sequence_id, status, settings, started_at)
    VALUES (tenant, name, sequence_id, 'active',
            jsonb_build_object('variables', jsonb_strip_nulls(declared || variables)),
            coalesce(starts_at, now()))
    RETURNING id INTO created;
    PERFORM crefinder.enroll(tenant, created, property_ids, coalesce(starts_at, now()));
    RETURN created;
END
$$;

-- add_to_campaign: enrolls more properties; those already enrolled are
-- left as they are.  Returns how many were new.
CREATE FUNCTION crefinder.add_to_campaign(campaign_id bigint, property_ids bigint[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    tenant uuid := crefinder.current_user_id();
BEGIN
    PERFORM crefinder.require_argument(campaign_id IS NULL, 'campaign_id');
    PERFORM crefinder.require_argument(property_ids IS NULL, 'property_ids');
    IF cardinality(property_ids) > 10000000 THEN
        RAISE EXCEPTION 'at most 10,000,000 properties per call' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    PERFORM 1 FROM crefinder.campaigns c
    WHERE c.user_id = tenant AND c.id = campaign_id AND c.status IN ('active', 'paused') FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'campaign % does not exist or has ended', campaign_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN crefinder.enroll(tenant, campaign_id, property_ids, now());
END
$$;

CREATE FUNCTION crefinder.variant_index(enrollment_id bigint, step integer, weights float8[], holdout float8)
    RETURNS integer
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_variant_index';

CREATE FUNCTION crefinder.scrub_for(tenant uuid, channel text, contacts text[], property_ids bigint[],
                                    at timestamptz)
    RETURNS TABLE (allowed boolean, reason text, next_allowed_at timestamptz)
    LANGUAGE c STABLE ROWS 10000
    AS 'MODULE_PATHNAME', 'crefinder_scrub_for';

-- ----------------------------------------------------------------------
-- tick
-- ----------------------------------------------------------------------

-- tick_lock: one row, locked by the tick that runs (tenants have no
-- privilege on it, so none can hold it).
CREATE TABLE crefinder.tick_lock (id integer PRIMARY KEY CHECK (id = 1));
INSERT INTO crefinder.tick_lock VALUES (1);

-- due_enrollments: the enrollments whose next step is due at at (at most
-- max_steps, oldest first), locked for this transaction; one that another
-- transaction holds (a reaction, an overlapping tick) is left for the next
-- tick.  When more are due than one tick takes, the tenants take turns
-- (each one's oldest first): one tenant's backlog does not hold back the
-- others' steps.  A function of its own so that the planner expects many
-- rows (ROWS): every later join of tick() is then a hash join, never a
-- loop over a list that has no statistics.
CREATE FUNCTION crefinder.due_enrollments(at timestamptz, max_steps integer)
    RETURNS TABLE (id bigint, user_id uuid, campaign_id bigint, property_id bigint, current_step integer,
                   attempts integer, sequence_id bigint, step_base integer, campaign_vars jsonb,
                   owner_name text, property_address text, property_city text, property_state text,
                   property_zip text, mailing_address text)
    LANGUAGE plpgsql VOLATILE ROWS 10000
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    -- more due than this tick takes (counted from the due index, no further)
    crowded boolean := (SELECT count(*) FROM (SELECT 1 FROM crefinder.enrollments e
                                              WHERE e.status IN ('active', 'nurture') AND e.next_step_at <= at
                                              LIMIT max_steps + 1) AS x) > max_steps;
BEGIN
    RETURN QUERY
    SELECT e.id, e.user_id, e.campaign_id, e.property_id, e.current_step, e.attempts,
           coalesce(e.sequence_id, c.sequence_id),
           -- a nurture sequence's steps are numbered from 1000 in the
           -- outbox, after the campaign's own
           CASE WHEN e.sequence_id IS NULL THEN 0 ELSE 1000 END,
           coalesce(c.settings -> 'variables', '{}'),
           p.owner_name, p.property_address, p.property_city, p.property_state, p.property_zip,
           p.mailing_address
    FROM crefinder.enrollments e
    JOIN crefinder.campaigns c ON c.user_id = e.user_id AND c.id = e.campaign_id
    -- the property is locked as the outbox's foreign key will lock it
    -- (KEY SHARE): a tenant holding its own property row (it may: it
    -- writes property_records) delays only that enrollment, not the tick.
    -- (A campaign row a tenant can only lock FOR NO KEY UPDATE, through
    -- crefinder's functions, which does not conflict.)
    JOIN crefinder.property_records p ON p.user_id = e.user_id AND p.id = e.property_id
    WHERE e.status IN ('active', 'nurture') AND e.next_step_at <= at AND c.status = 'active'
      -- crowded: the tenants' turns, a tenant's n-th oldest step after
      -- every tenant's (n-1)-th
      AND (NOT crowded
           OR e.id IN (SELECT r.id
                       FROM (SELECT q.id, q.next_step_at,
                                    row_number() OVER (PARTITION BY q.user_id ORDER BY q.next_step_at, q.id) AS turn
                             FROM crefinder.enrollments q
                             WHERE q.status IN ('active', 'nurture') AND q.next_step_at <= at) AS r
                       ORDER BY r.turn, r.next_step_at, r.id
                       LIMIT max_steps))
    ORDER BY e.next_step_at
    LIMIT max_steps
    FOR UPDATE OF e SKIP LOCKED
    FOR KEY SHARE OF p SKIP LOCKED;
END
$$;

-- tick: advances every enrollment whose next step is due at at (at most
-- max_steps of them, oldest first), in one statement: the due enrollments
-- are locked, each gets its contact point, variant and rendered text,
-- every tenant's and channel's steps are decided at once by scrub_for, the
-- messages go into the outbox (allowed: queued for at; held by quiet hours
-- or a cap: queued until the window opens, spread over the tenant's
-- release_window_minutes; refused: blocked; no contact point or the
-- holdout: skipped), and each enrollment moves to its next step, due its
-- delay after the message goes; a step whose channel a guardrail paused
-- waits, its enrollment paused.  Each tick also folds the analytics'
-- deltas (which checks the guardrails) and, once an hour, prunes history
-- past its retention.  A tick that finds another running returns 0 at
-- once.  Returns how many enrollments advanced.
CREATE FUNCTION crefinder.tick(at timestamptz DEFAULT now(), max_steps integer DEFAULT 200000)
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    -- a last resort: a lock held longer fails this tick, not all later ones
    SET lock_timeout = '10s'
    -- the plan's estimates (made for thousands of rows, off by orders of
    -- magnitude through the CTEs) would have JIT compile it for a third of
    -- its run; the due steps' rows fit in memory
    SET jit = off
    SET work_mem = '64MB'
    AS $$
#variable_conflict use_variable
DECLARE
    advanced integer;
    queued integer;
    -- the outbox's id sequence, looked up once (not per message)
    ids regclass := pg_get_serial_sequence('crefinder.outbound_events', 'id')::regclass;
BEGIN
    PERFORM crefinder.require_argument(at IS NULL, 'at');
    IF max_steps IS NULL OR max_steps < 1 THEN
        RAISE EXCEPTION 'max_steps must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF current_database() <> current_setting('crefinder.database') THEN
        RAISE EXCEPTION 'the crefinder dispatcher does not serve database "%"', current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run crefinder.tick() in the database named by crefinder.database.';
    END IF;
    -- one tick at a time: the row of tick_lock, which no tenant can lock
    -- (an advisory lock could be taken by anyone)
    PERFORM 1 FROM crefinder.tick_lock FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    -- the analytics' counts changed since the last minute go into their
    -- rollups (the views read them either way: this keeps them quick)
    PERFORM crefinder.fold_rollups();
    PERFORM crefinder.release_unpaused_senders();
    -- history past its retention goes, once an hour (counts kept)
    IF coalesce((SELECT m.last_pruned_at FROM crefinder.maintenance m WHERE m.id = 1) < now() - interval '1 hour', true)
    THEN
        PERFORM crefinder.prune_history();
    END IF;
    -- nothing due: done (the minute's usual case, one probe of an index)
    -- (the earliest due time, read from the front of enrollments_due_idx:
    -- a condition on next_step_at could be planned as a scan of them all)
    IF coalesce((SELECT min(e.next_step_at) FROM crefinder.enrollments e
                 WHERE e.status IN ('active', 'nurture')) > at, true) THEN
        RETURN 0;
    END IF;

    -- a permanent delivery failure of a due enrollment's last message
    -- marks that contact point: this step goes to the next one
    -- (rows a tenant holds are left for a later tick)
    UPDATE crefinder.property_contacts c
    SET status = 'undeliverable', status_reason = f.reason, marked_at = now(), updated_at = now()
    FROM (SELECT x.id, left(m.last_error, 1000) AS reason
          FROM crefinder.enrollments e
          JOIN crefinder.outbound_events m ON m.user_id = e.user_id AND m.id = e.last_message_id
          JOIN crefinder.property_contacts x
            ON x.user_id = e.user_id AND x.property_id = e.property_id AND x.value = m.to_contact
          WHERE e.status IN ('active', 'nurture') AND e.next_step_at <= at
            AND m.status = 'failed' AND x.status = 'active'
            AND CASE WHEN m.channel = 'email' THEN m.last_error ~ '^sendgrid (bounce|dropped)'
                     ELSE m.last_error ~ '\m(21211|21214|21217|21407|21421|21612|21614|30005|30006)\M' END
          FOR UPDATE OF x SKIP LOCKED) AS f
    WHERE c.id = f.id;

    WITH due AS MATERIALIZED (
        SELECT * FROM crefinder.due_enrollments(at, max_steps)
    ),
    steps AS MATERIALIZED (
        SELECT q.user_id, q.id AS sequence_id, (s.n - 1)::integer AS step_no, s.value AS step,
               ARRAY(SELECT w::float8 FROM jsonb_array_elements_text(s.value -> 'weights') AS w) AS weights,
               coalesce((s.value ->> 'holdout')::float8, 0) AS holdout,
               jsonb_array_length(q.steps) AS nsteps,
               (q.steps -> s.n::integer ->> 'delay')::interval AS next_delay
        FROM crefinder.sequences q
        CROSS JOIN LATERAL jsonb_array_elements(q.steps) WITH ORDINALITY AS s(value, n)
        WHERE q.id IN (SELECT DISTINCT d.sequence_id FROM due d)
    ),
    -- each due step's contact point: the best of its kind (lowest rank)
    -- that is active, not opted out and (email) not suppressed, for all
    -- of them in one join (a lookup per step costs ten times the probe);
    -- and one step per contact point and tick: an owner enrolled in two
    -- campaigns (or two properties with one owner) gets the second step at
    -- the next tick (deferred), decided with the first counted by the
    -- frequency caps (the holdout's steps send nothing and defer nothing)
    contacts AS MATERIALIZED (
        SELECT b.id, b.value,
               b.vi > 0 AND row_number() OVER (PARTITION BY b.user_id, b.value, b.vi > 0 ORDER BY b.id) > 1
                   AS deferred
        FROM (
            SELECT DISTINCT ON (d.id) d.id, d.user_id, c.value,
                   crefinder.variant_index(d.id, d.step_base + d.current_step, st.weights, st.holdout) AS vi
            FROM due d
            JOIN steps st ON st.sequence_id = d.sequence_id AND st.step_no = d.current_step
            JOIN crefinder.property_contacts c
              ON c.user_id = d.user_id AND c.property_id = d.property_id AND c.status = 'active'
             AND c.kind = CASE WHEN st.step ->> 'channel' = 'email' THEN 'email' ELSE 'phone' END
            WHERE NOT EXISTS (SELECT 1 FROM crefinder.opt_outs o
                              WHERE o.user_id = d.user_id AND o.contact = c.value AND o.revoked_at IS NULL
                                AND (o.channel = 'email') = (c.kind = 'email'))
              AND NOT EXISTS (SELECT 1 FROM crefinder.email_suppressions x
                              WHERE c.kind = 'email' AND x.user_id = d.user_id AND x.email = c.value
                                AND x.removed_at IS NULL)
            ORDER BY d.id, c.rank, c.id) AS b
    ),
    planned AS MATERIALIZED (
        SELECT d.id, d.user_id, d.campaign_id, d.property_id, d.current_step, d.attempts,
               d.step_base + d.current_step AS message_step,
               st.step, st.nsteps, st.next_delay, st.step ->> 'channel' AS channel,
               CASE WHEN st.step IS NULL THEN NULL
                    ELSE crefinder.variant_index(d.id, d.step_base + d.current_step, st.weights, st.holdout) END AS vi,
               pc.value AS contact, coalesce(pc.deferred, false) AS deferred,
               jsonb_strip_nulls(jsonb_build_object(
                   'owner_name', p.owner_name, 'first_name', nm.first_name, 'last_name', nm.last_name,
                   'property_address', p.property_address, 'city', p.property_city,
                   'state', p.property_state, 'zip', p.property_zip,
                   'mailing_address', p.mailing_address, 'business_name', ts.business_name))
                   || d.campaign_vars AS vars,
               ts.business_name, ts.postal_address, ts.callback_number, ts.agent_number, ts.agent_timezone,
               coalesce(ts.release_window_minutes, 60) AS release_window,
               coalesce(ts.max_attempts_per_property, 10) AS max_attempts,
               ic.configured, ic.paused_at,
               EXISTS (SELECT 1 FROM crefinder.outbound_events x
                       WHERE x.enrollment_id = d.id AND x.step = d.step_base + d.current_step) AS taken,
               -- a guardrail paused this channel of the campaign: the
               -- enrollment waits, paused, for resume_campaign()
               st.step IS NOT NULL AND EXISTS (SELECT 1 FROM crefinder.channel_pauses g
                                               WHERE g.campaign_id = d.campaign_id
                                                 AND g.channel = st.step ->> 'channel') AS guarded
        FROM due d
        LEFT JOIN steps st ON st.sequence_id = d.sequence_id AND st.step_no = d.current_step
        -- (the property came with the enrollment)
        CROSS JOIN LATERAL (SELECT d.owner_name, d.property_address, d.property_city, d.property_state,
                                   d.property_zip, d.mailing_address) AS p
        LEFT JOIN LATERAL (SELECT t.business_name, t.postal_address, t.release_window_minutes,
                                  t.max_attempts_per_property, t.callback_number, t.agent_number,
                                  t.agent_timezone
                           FROM crefinder.tenant_settings t WHERE t.user_id = d.user_id) AS ts ON true
        LEFT JOIN LATERAL (SELECT true AS configured, i.paused_at FROM crefinder.integration_configs i
                           WHERE i.user_id = d.user_id
                             AND i.provider = CASE st.step ->> 'channel' WHEN 'email' THEN 'sendgrid'
                                                  WHEN 'voice' THEN 'vapi' ELSE 'twilio' END) AS ic ON true
        CROSS JOIN LATERAL crefinder.split_owner_name(p.owner_name) AS nm
        LEFT JOIN contacts pc ON pc.id = d.id
    ),
    groups AS (
        SELECT pl.user_id, pl.channel, array_agg(pl.contact ORDER BY pl.id) AS contacts,
               array_agg(pl.property_id ORDER BY pl.id) AS property_ids, array_agg(pl.id ORDER BY pl.id) AS ids
        FROM planned pl
        WHERE pl.vi > 0 AND pl.contact IS NOT NULL AND pl.configured AND NOT pl.taken AND NOT pl.deferred
          AND NOT pl.guarded
        GROUP BY pl.user_id, pl.channel
    ),
    decided AS MATERIALIZED (
        SELECT g.ids[r.n] AS enrollment_id, r.allowed, r.reason, r.next_allowed_at
        FROM groups g
        CROSS JOIN LATERAL crefinder.scrub_for(g.user_id, g.channel, g.contacts, g.property_ids, at)
            WITH ORDINALITY AS r(allowed, reason, next_allowed_at, n)
    ),
    messages AS MATERIALIZED (
        SELECT x.*,
               CASE WHEN x.status IS NULL THEN NULL
                    ELSE nextval(ids) END AS message_id,
               -- when the message goes: allowed now, or (held) when the
               -- window opens, spread over the release window so that the
               -- night's messages do not go in one burst
               CASE WHEN x.status = 'queued' AND NOT x.allowed THEN
                        x.next_allowed_at + make_interval(secs => (hashint8(x.id) & 2147483647)
                                                                  % greatest(x.release_window * 60, 1))
                    ELSE at END AS goes_at
        FROM (
            SELECT y.*,
                   CASE WHEN y.step IS NULL OR y.taken OR y.deferred OR y.guarded THEN NULL
                        WHEN y.vi = 0 OR y.contact IS NULL OR NOT coalesce(y.configured, false) THEN 'skipped'
                        WHEN y.too_long THEN 'blocked'
                        WHEN y.allowed OR y.next_allowed_at IS NOT NULL THEN 'queued'
                        ELSE 'blocked' END AS status
            FROM (
                SELECT z.*,
                       -- a text Twilio would refuse (the variables are the tenant's)
                       (z.channel IN ('sms', 'whatsapp')
                        AND (char_length(z.body) > 1600 OR coalesce(btrim(z.body), '') = ''))
                       OR (z.channel = 'voicemail' AND NOT z.variant ? 'audio_url'
                           AND (char_length(z.body) > 1000
                                OR coalesce(btrim(crefinder.xml_text(z.body), E' \t\r\n'), '') = ''))
                       -- (the settings a call needs were there when the sequence was made)
                       OR (z.channel = 'voicemail' AND (z.business_name IS NULL OR z.callback_number IS NULL))
                       OR (z.channel = 'call' AND (z.agent_number IS NULL OR z.agent_timezone IS NULL
                                                   -- (an agent who opted out is rung by no bridge)
                                                   OR EXISTS (SELECT 1 FROM crefinder.opt_outs o
                                                              WHERE o.user_id = z.user_id AND o.contact = z.agent_number
                                                                AND o.revoked_at IS NULL AND o.channel <> 'email')))
                       OR (z.channel = 'email' AND ((z.variant ? 'body' AND z.body IS NULL)
                                                    OR (z.variant ? 'html' AND z.html_body IS NULL))) AS too_long
                FROM (
                    SELECT pl.*, dc.allowed, dc.reason, dc.next_allowed_at,
                           CASE WHEN pl.vi > 0 THEN pl.step -> 'variants' -> (pl.vi - 1) END AS variant,
                           CASE WHEN pl.vi > 0 AND pl.contact IS NOT NULL THEN
                               crefinder.render(pl.step -> 'variants' -> (pl.vi - 1) ->> 'body', pl.vars, false, 1048576)
                           END AS body,
                           CASE WHEN pl.vi > 0 AND pl.contact IS NOT NULL AND pl.channel = 'email' THEN
                               crefinder.render(pl.step -> 'variants' -> (pl.vi - 1) ->> 'html', pl.vars, true, 1048576)
                           END AS html_body
                    FROM planned pl
                    LEFT JOIN decided dc ON dc.enrollment_id = pl.id) AS z) AS y) AS x
    ),
    inserted AS (
        INSERT INTO crefinder.outbound_events
            (id, user_id, channel, to_contact, status, block_reason, hold_reason, campaign_id, property_id,
             enrollment_id, step, variant, payload, next_attempt_at)
        OVERRIDING SYSTEM VALUE
        SELECT m.message_id, m.user_id, m.channel, coalesce(m.contact, ''), m.status,
               CASE m.status WHEN 'skipped' THEN CASE WHEN m.vi = 0 THEN 'holdout'
                                                      WHEN m.contact IS NULL THEN 'no_contact'
                                                      ELSE 'provider_not_configured' END
                             WHEN 'blocked' THEN CASE WHEN m.too_long THEN 'invalid_content' ELSE m.reason END END,
               CASE WHEN m.status = 'queued' THEN
                   CASE WHEN m.paused_at IS NOT NULL THEN 'provider_paused'
                        WHEN NOT m.allowed THEN m.reason END END,
               m.campaign_id, m.property_id, m.id, m.message_step,
               CASE WHEN m.vi = 0 THEN 'holdout' ELSE m.variant ->> 'name' END,
               CASE WHEN m.status <> 'queued' THEN '{}'::jsonb
                    WHEN m.channel IN ('sms', 'whatsapp') THEN jsonb_build_object('body', m.body)
                    WHEN m.channel = 'voicemail' THEN jsonb_strip_nulls(jsonb_build_object(
                        'say_text', CASE WHEN NOT m.variant ? 'audio_url' THEN m.body END,
                        'audio_url', m.variant ->> 'audio_url',
                        'business_name', m.business_name, 'callback_number', m.callback_number))
                    WHEN m.channel = 'call' THEN jsonb_build_object(
                        'agent_number', m.agent_number,
                        'record', coalesce((m.step ->> 'record')::boolean, false),
                        'announce_recording', coalesce((m.step ->> 'record')::boolean, false)
                            AND crefinder.recording_announced(m.user_id, m.contact, m.property_id))
                    WHEN m.channel = 'email' THEN jsonb_strip_nulls(jsonb_build_object(
                        'subject', regexp_replace(crefinder.render(m.variant ->> 'subject', m.vars, false, 998),
                                                  '[\r\n]+', ' ', 'g'),
                        'html', m.html_body
                                || crefinder.render(E'\n<p style="font-size:12px;color:#666">{{b}}{{a}}</p>',
                                                    jsonb_build_object('b', m.business_name || ', ', 'a', m.postal_address), true),
                        'text', m.body || E'\n\n' || concat_ws(', ', m.business_name, m.postal_address),
                        'categories', jsonb_build_array('crefinder-campaign-' || m.campaign_id)))
                    ELSE jsonb_build_object(
                        'assistant_id', m.step ->> 'assistant_id',
                        'metadata', jsonb_strip_nulls(jsonb_build_object(
                            'crefinder_campaign_id', m.campaign_id, 'crefinder_property_id', m.property_id,
                            'owner_name', m.vars ->> 'owner_name', 'first_name', m.vars ->> 'first_name',
                            'property_address', m.vars ->> 'property_address',
                            'first_message', m.body)))
               END,
               m.goes_at
        FROM messages m
        WHERE m.status IS NOT NULL
        RETURNING status
    ),
    advanced AS (
        -- (a deferred step only waits a minute: it leaves the head of the
        -- queue, so that it never holds back the steps behind it)
        UPDATE crefinder.enrollments e SET
            current_step = e.current_step + CASE WHEN mv.deferred OR mv.guarded THEN 0 ELSE 1 END,
            attempts = e.attempts + mv.counts,
            last_message_id = CASE WHEN mv.status IN ('queued', 'blocked') THEN mv.message_id
                                   ELSE e.last_message_id END,
            resume_status = CASE WHEN mv.guarded THEN e.status ELSE e.resume_status END,
            status = CASE WHEN mv.guarded THEN 'paused'
                          WHEN mv.deferred THEN e.status
                          WHEN mv.finished THEN 'completed'
                          WHEN e.attempts + mv.counts >= mv.max_attempts THEN 'stopped'
                          ELSE e.status END,
            stop_reason = CASE WHEN mv.deferred OR mv.guarded THEN e.stop_reason
                               WHEN NOT mv.finished AND e.attempts + mv.counts >= mv.max_attempts
                               THEN 'attempt_cap' END,
            stopped_at = CASE WHEN mv.deferred OR mv.guarded THEN e.stopped_at
                              WHEN mv.finished OR e.attempts + mv.counts >= mv.max_attempts THEN at END,
            next_step_at = CASE WHEN mv.guarded THEN e.next_step_at
                                WHEN mv.deferred THEN at + interval '1 minute'
                                WHEN mv.finished OR e.attempts + mv.counts >= mv.max_attempts THEN NULL
                                ELSE greatest(at, mv.goes_at) + mv.next_delay END,
            updated_at = now()
        FROM (SELECT m.id, m.status, m.message_id, m.max_attempts, m.next_delay, m.goes_at,
                     coalesce((m.status = 'queued')::integer, 0) AS counts, coalesce(m.deferred, false) AS deferred,
                     coalesce(m.guarded, false) AS guarded,
                     m.step IS NULL OR m.current_step + 1 >= m.nsteps
                         OR m.step ->> 'on_no_response' = 'stop' AS finished
              FROM messages m) AS mv
        WHERE e.id = mv.id
          -- (true of every row here, as due_enrollments locked them: it lets
          -- the planner read the due ones by enrollments_due_idx, not all)
          AND e.status IN ('active', 'nurture') AND e.next_step_at <= at
        RETURNING e.id, mv.deferred OR mv.guarded AS deferred
    )
    SELECT (SELECT count(*) FROM advanced a WHERE NOT a.deferred),
           (SELECT count(*) FROM inserted i WHERE i.status = 'queued')
    INTO advanced, queued;

    IF queued > 0 THEN
        PERFORM crefinder.wake_dispatcher_on_commit();
    END IF;
    RETURN advanced;
END
$$;

-- ----------------------------------------------------------------------
-- Reactions
-- ----------------------------------------------------------------------

-- stop_enrollments: stops tenant's enrollments (those still going) with a
-- reason, and cancels their messages still waiting in the outbox (those of
-- completed enrollments too).  Returns how many stopped.
CREATE FUNCTION crefinder.stop_enrollments(tenant uuid, ids bigint[], reason text) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    stopped bigint[];
BEGIN
    WITH s AS (
        UPDATE crefinder.enrollments e
        SET status = 'stopped', stop_reason = reason, next_step_at = NULL, resume_status = NULL,
            stopped_at = now(), updated_at = now()
        WHERE e.user_id = tenant AND e.id = ANY (ids) AND e.status IN ('active', 'nurture', 'paused')
        RETURNING e.id)
    SELECT array_agg(s.id) INTO stopped FROM s;
    -- a completed enrollment's last message may still wait: it goes too
    UPDATE crefinder.outbound_events m
    SET status = 'cancelled', hold_reason = NULL, last_error = 'enrollment stopped: ' || reason, updated_at = now()
    WHERE m.user_id = tenant AND m.enrollment_id = ANY (ids) AND m.status = 'queued';
    RETURN coalesce(cardinality(stopped), 0);
END
$$;

-- react_to_response: what a reply or call outcome does to the campaigns of
-- its property.  An opt-out or a negative answer stops every enrollment of
-- the property; a positive one (interested, call back later) follows the
-- answered step's on_positive (stop, or nurture:<sequence>) and stops the
-- property's other campaigns; a wrong number marks the contact point and
-- stops the property's enrollments only when no usable contact point is
-- left.  Questions and unclear replies change nothing (a person answers).
CREATE FUNCTION crefinder.react_to_response() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    m record;
    reaction text;
    nurture bigint;
    nurture_delay interval;
    others bigint[];
BEGIN
    IF NEW.property_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT e.id, e.to_contact, e.channel, e.step, e.enrollment_id INTO m
    FROM crefinder.outbound_events e WHERE e.user_id = NEW.user_id AND e.id = NEW.message_id;
    IF NEW.kind IN ('opt_out', 'not_interested') THEN
        PERFORM crefinder.stop_enrollments(NEW.user_id,
            ARRAY(SELECT e.id FROM crefinder.enrollments e
                  WHERE e.user_id = NEW.user_id AND e.property_id = NEW.property_id),
            CASE NEW.kind WHEN 'opt_out' THEN 'opted_out' ELSE 'not_interested' END);
    ELSIF NEW.kind = 'wrong_number' THEN
        IF m.to_contact IS NOT NULL THEN
            UPDATE crefinder.property_contacts c
            SET status = 'wrong', status_reason = 'wrong-number reply', marked_at = now(), updated_at = now()
            WHERE c.user_id = NEW.user_id AND c.property_id = NEW.property_id AND c.value = m.to_contact
              AND c.status = 'active';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM crefinder.property_contacts c
                       WHERE c.user_id = NEW.user_id AND c.property_id = NEW.property_id AND c.status = 'active') THEN
            PERFORM crefinder.stop_enrollments(NEW.user_id,
                ARRAY(SELECT e.id FROM crefinder.enrollments e
                      WHERE e.user_id = NEW.user_id AND e.property_id = NEW.property_id),
                'wrong_number');
        END IF;
    ELSIF NEW.kind IN ('interested', 'callback_later') THEN
        IF NEW.enrollment_id IS NOT NULL THEN
            -- the answered step's reaction, from the sequence it belongs to
            -- (nurture steps are numbered from 1000)
            SELECT q.steps -> (m.step % 1000) ->> 'on_positive' INTO reaction
            FROM crefinder.enrollments e
            JOIN crefinder.campaigns c ON c.user_id = e.user_id AND c.id = e.campaign_id
            JOIN crefinder.sequences q ON q.user_id = e.user_id
                                      AND q.id = CASE WHEN m.step >= 1000 THEN e.sequence_id ELSE c.sequence_id END
            WHERE e.user_id = NEW.user_id AND e.id = NEW.enrollment_id
              AND e.status IN ('active', 'nurture', 'completed', 'paused') AND c.status IN ('active', 'paused');
            IF reaction LIKE 'nurture:%' AND NOT EXISTS (
                   SELECT 1 FROM crefinder.enrollments e
                   WHERE e.user_id = NEW.user_id AND e.id = NEW.enrollment_id AND e.sequence_id IS NOT NULL) THEN
                nurture := substr(reaction, 9)::bigint;
                SELECT (q.steps -> 0 ->> 'delay')::interval INTO nurture_delay
                FROM crefinder.sequences q WHERE q.user_id = NEW.user_id AND q.id = nurture;
                UPDATE crefinder.outbound_events x
                SET status = 'cancelled', hold_reason = NULL, last_error = 'owner answered: nurture', updated_at = now()
                WHERE x.user_id = NEW.user_id AND x.enrollment_id = NEW.enrollment_id AND x.status = 'queued';
                -- (tick() numbers the nurture steps from 1000 in the outbox)
                UPDATE crefinder.enrollments e
                SET status = CASE WHEN c.status = 'paused' THEN 'paused' ELSE 'nurture' END,
                    resume_status = CASE WHEN c.status = 'paused' THEN 'nurture' END,
                    sequence_id = nurture,
                    current_step = 0, next_step_at = now() + coalesce(nurture_delay, interval '0'),
                    stop_reason = NULL, stopped_at = NULL, updated_at = now()
                FROM crefinder.campaigns c
                WHERE e.user_id = NEW.user_id AND e.id = NEW.enrollment_id
                  AND c.user_id = e.user_id AND c.id = e.campaign_id;
            ELSIF reaction IS NOT NULL THEN
                PERFORM crefinder.stop_enrollments(NEW.user_id, ARRAY[NEW.enrollment_id], 'positive_reply');
            END IF;
        END IF;
        others := ARRAY(SELECT e.id FROM crefinder.enrollments e
                        WHERE e.user_id = NEW.user_id AND e.property_id = NEW.property_id
                          AND e.id IS DISTINCT FROM NEW.enrollment_id);
        PERFORM crefinder.stop_enrollments(NEW.user_id, others, 'positive_reply_elsewhere');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER react_to_response AFTER INSERT ON crefinder.responses
    FOR EACH ROW EXECUTE FUNCTION crefinder.react_to_response();

-- An opt-out, however it arrives (a STOP, an unsubscribe, by hand), stops
-- every enrollment of the properties with that contact point at once.
CREATE FUNCTION crefinder.stop_enrollments_on_opt_out() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM crefinder.stop_enrollments(NEW.user_id,
        ARRAY(SELECT e.id FROM crefinder.property_contacts c
              JOIN crefinder.enrollments e ON e.user_id = c.user_id AND e.property_id = c.property_id
              WHERE c.user_id = NEW.user_id AND c.value = NEW.contact
                AND (c.kind = 'email') = (NEW.channel = 'email')
                AND e.status IN ('active', 'nurture', 'paused', 'completed')),
        'opted_out');
    RETURN NULL;
END
$$;
CREATE TRIGGER stop_enrollments_on_opt_out AFTER INSERT ON crefinder.opt_outs
    FOR EACH ROW EXECUTE FUNCTION crefinder.stop_enrollments_on_opt_out();

-- A property whose lead is closed (not interested, do not contact,
-- converted) leaves its campaigns.  The tenant's own UPDATE fires it: it
-- runs with the owner's rights (tenants cannot write enrollments), for the
-- row's tenant, which row-level security made the tenant's own.
CREATE FUNCTION crefinder.stop_enrollments_on_lead_close() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM crefinder.stop_enrollments(NEW.user_id,
        ARRAY(SELECT e.id FROM crefinder.enrollments e
              WHERE e.user_id = NEW.user_id AND e.property_id = NEW.id
                AND e.status IN ('active', 'nurture', 'paused', 'completed')),
        'lead_' || NEW.lead_status);
    RETURN NULL;
END
$$;
CREATE TRIGGER stop_enrollments_on_lead_close AFTER UPDATE OF lead_status ON crefinder.property_records
    FOR EACH ROW
    WHEN (NEW.lead_status IN ('not_interested', 'do_not_contact', 'converted')
          AND OLD.lead_status IS DISTINCT FROM NEW.lead_status)
    EXECUTE FUNCTION crefinder.stop_enrollments_on_lead_close();

-- ----------------------------------------------------------------------
-- Pause, resume, cancel; the pg_cron job
-- ----------------------------------------------------------------------

-- campaign_for_change: locks the current tenant's campaign, or raises 22023.
CREATE FUNCTION crefinder.campaign_for_change(campaign bigint) RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    current text;
BEGIN
    PERFORM crefinder.require_argument(campaign IS NULL, 'campaign_id');
    SELECT c.status INTO current FROM crefinder.campaigns c
    WHERE c.user_id = crefinder.current_user_id() AND c.id = campaign FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'campaign % does not exist', campaign USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN current;
END
$$;

-- pause_campaign: no step of the campaign is taken and none of its queued
-- messages goes out until resume_campaign.  True when it was running.
CREATE FUNCTION crefinder.pause_campaign(campaign_id bigint) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    tenant uuid := crefinder.current_user_id();
BEGIN
    IF crefinder.campaign_for_change(campaign_id) <> 'active' THEN
        RETURN false;
    END IF;
    UPDATE crefinder.campaigns c SET status = 'paused', updated_at = now()
    WHERE c.user_id = tenant AND c.id = campaign_id;
    UPDATE crefinder.enrollments e SET resume_status = e.status, status = 'paused', updated_at = now()
    WHERE e.user_id = tenant AND e.campaign_id = campaign_id AND e.status IN ('active', 'nurture');
    UPDATE crefinder.outbound_events m
    SET hold_reason = 'campaign_paused', next_attempt_at = 'infinity', updated_at = now()
    WHERE m.user_id = tenant AND m.campaign_id = campaign_id AND m.status = 'queued'
      AND m.enrollment_id IS NOT NULL;
    RETURN true;
END
$$;

-- resume_campaign: a paused campaign goes on, and so do its channels a
-- guardrail paused; steps that fell due meanwhile are taken by the next
-- tick, and its held messages go out spread over the tenant's release
-- window, not in one burst.  True when it was paused (or had a channel
-- paused).
CREATE FUNCTION crefinder.resume_campaign(campaign_id bigint) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    tenant uuid := crefinder.current_user_id();
    release_window integer := coalesce((crefinder.settings_of(tenant) ->> 'release_window_minutes')::integer, 60);
    state text := crefinder.campaign_for_change(campaign_id);
    lifted integer;
BEGIN
    IF state NOT IN ('active', 'paused') THEN
        RETURN false;
    END IF;
    -- channels a guardrail paused go on too, judged from now on by what
    -- comes next
    WITH lifted_pauses AS (
        DELETE FROM crefinder.channel_pauses g WHERE g.user_id = tenant AND g.campaign_id = campaign_id
        RETURNING g.channel
    ),
    baselines AS (
        INSERT INTO crefinder.guardrail_baselines AS b
            (user_id, campaign_id, channel, sent, delivered, opted_out, complained, filtered)
        SELECT tenant, campaign_id, r.channel, sum(r.sent), sum(r.delivered), sum(r.opted_out), sum(r.complained),
               sum(r.filtered)
        FROM crefinder.rollups r
        WHERE r.user_id = tenant AND r.campaign_id = campaign_id AND r.channel IN (SELECT channel FROM lifted_pauses)
        GROUP BY r.channel
        ON CONFLICT ON CONSTRAINT guardrail_baselines_pkey DO UPDATE SET
            sent = excluded.sent, delivered = excluded.delivered, opted_out = excluded.opted_out,
            complained = excluded.complained, filtered = excluded.filtered, set_at = now()
    )
    SELECT count(*) INTO lifted FROM lifted_pauses;
    IF state = 'active' AND lifted = 0 THEN
        RETURN false;
    END IF;
    UPDATE crefinder.campaigns c SET status = 'active', updated_at = now()
    WHERE c.user_id = tenant AND c.id = campaign_id;
    UPDATE crefinder.enrollments e SET status = e.resume_status, resume_status = NULL, updated_at = now()
    WHERE e.user_id = tenant AND e.campaign_id = campaign_id AND e.status = 'paused';
    -- the queued messages are decided again when the dispatcher takes them
    UPDATE crefinder.outbound_events m
    SET hold_reason = NULL,
        next_attempt_at = now() + make_interval(secs => (hashint8(m.id) & 2147483647)
                                                         % greatest(release_window * 60, 1)),
        updated_at = now()
    WHERE m.user_id = tenant AND m.campaign_id = campaign_id AND m.status = 'queued'
      AND m.hold_reason IN ('campaign_paused', 'guardrail');
    PERFORM crefinder.wake_dispatcher_on_commit();
    RETURN true;
END
$$;

-- cancel_campaign: the campaign ends: every enrollment stops and every
-- message still waiting is cancelled.  True when it had not ended.
CREATE FUNCTION crefinder.cancel_campaign(campaign_id bigint) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    tenant uuid := crefinder.current_user_id();
BEGIN
    IF crefinder.campaign_for_change(campaign_id) IN ('cancelled', 'completed') THEN
        RETURN false;
    END IF;
    UPDATE crefinder.campaigns c SET status = 'cancelled', completed_at = now(), updated_at = now()
    WHERE c.user_id = tenant AND c.id = campaign_id;
    PERFORM crefinder.stop_enrollments(tenant,
        ARRAY(SELECT e.id FROM crefinder.enrollments e WHERE e.user_id = tenant AND e.campaign_id = campaign_id),
        'campaign_cancelled');
    RETURN true;
END
$$;

-- schedule: registers tick() as a pg_cron job that runs every minute, in
-- this database; returns the job id.  Where pg_cron lives in another
-- database (cron.database_name), it says what to run there.
CREATE FUNCTION crefinder.schedule() RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    job bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in database "%"', current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Where pg_cron lives in another database (cron.database_name = %s), run there: SELECT cron.schedule_in_database(''crefinder-tick'', ''* * * * *'', ''SELECT crefinder.tick()'', %L);',
                                  coalesce(current_setting('cron.database_name', true), 'unset'), current_database()),
                  HINT = 'Or CREATE EXTENSION pg_cron here (it must be in shared_preload_libraries, and cron.database_name must name this database).';
    END IF;
    EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job
        USING 'crefinder-tick', '* * * * *', 'SELECT crefinder.tick()';
    RETURN job;
END
$$;

-- unschedule: removes the job schedule() made; true when there was one.
CREATE FUNCTION crefinder.unschedule() RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    found boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = $1)' INTO found USING 'crefinder-tick';
    IF found THEN
        EXECUTE 'SELECT cron.unschedule($1)' USING 'crefinder-tick';
    END IF;
    RETURN found;
END
$$;

-- ----------------------------------------------------------------------
-- Preview
-- ----------------------------------------------------------------------

CREATE FUNCTION crefinder.preview_campaign(campaign_id bigint, at timestamptz DEFAULT now())
    RETURNS TABLE (step integer, channel text, enrollments bigint, send bigint, held bigint, blocked jsonb,
                   skipped jsonb, sms_segments bigint, estimated_cost_cents numeric)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    tenant uuid := crefinder.current_user_id();
    steps_ jsonb;
    tenant_prefs jsonb;
    s integer;
BEGIN
    PERFORM crefinder.require_argument(campaign_id IS NULL, 'campaign_id');
    PERFORM crefinder.require_argument(at IS NULL, 'at');
    SELECT q.steps INTO steps_ FROM crefinder.campaigns c
    JOIN crefinder.sequences q ON q.user_id = c.user_id AND q.id = c.sequence_id
    WHERE c.user_id = tenant AND c.id = preview_campaign.campaign_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'campaign % does not exist', preview_campaign.campaign_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    tenant_prefs := crefinder.settings_of(tenant);
    FOR s IN 0 .. jsonb_array_length(steps_) - 1 LOOP
        RETURN QUERY
        WITH st AS (
            SELECT steps_ -> s AS step,
                   ARRAY(SELECT w::float8 FROM jsonb_array_elements_text(steps_ -> s -> 'weights') AS w) AS weights,
                   coalesce((steps_ -> s ->> 'holdout')::float8, 0) AS holdout
        ),
        pending AS MATERIALIZED (
            SELECT e.id, e.property_id,
                   crefinder.variant_index(e.id, s, st.weights, st.holdout) AS vi,
                   pc.value AS contact,
                   jsonb_strip_nulls(jsonb_build_object(
                       'owner_name', p.owner_name, 'first_name', nm.first_name, 'last_name', nm.last_name,
                       'property_address', p.property_address, 'city', p.property_city,
                       'state', p.property_state, 'zip', p.property_zip,
                       'mailing_address', p.mailing_address,
                       'business_name', tenant_prefs ->> 'business_name'))
                       || coalesce(c.settings -> 'variables', '{}') AS vars
            FROM crefinder.enrollments e
            JOIN crefinder.campaigns c ON c.user_id = e.user_id AND c.id = e.campaign_id
            JOIN crefinder.property_records p ON p.user_id = e.user_id AND p.id = e.property_id
            CROSS JOIN st
            CROSS JOIN LATERAL crefinder.split_owner_name(p.owner_name) AS nm
            LEFT JOIN LATERAL (
                SELECT x.value FROM crefinder.property_contacts x
                WHERE x.user_id = e.user_id AND x.property_id = e.property_id AND x.status = 'active'
                  AND x.kind = CASE WHEN st.step ->> 'channel' = 'email' THEN 'email' ELSE 'phone' END
                  AND NOT EXISTS (SELECT 1 FROM crefinder.opt_outs o
                                  WHERE o.user_id = e.user_id AND o.contact = x.value AND o.revoked_at IS NULL
                                    AND (o.channel = 'email') = (x.kind = 'email'))
                  AND NOT EXISTS (SELECT 1 FROM crefinder.email_suppressions z
                                  WHERE x.kind = 'email' AND z.user_id = e.user_id AND z.email = x.value
                                    AND z.removed_at IS NULL)
                ORDER BY x.rank, x.id LIMIT 1) AS pc ON true
            WHERE e.user_id = tenant AND e.campaign_id = preview_campaign.campaign_id
              AND e.status IN ('active', 'paused') AND e.sequence_id IS NULL AND e.current_step <= s
        ),
        decided AS (
            SELECT t.*, d.allowed, d.reason, d.next_allowed_at
            FROM (SELECT array_agg(t.contact ORDER BY t.id) AS contacts, array_agg(t.property_id ORDER BY t.id) AS props,
                         array_agg(t.id ORDER BY t.id) AS ids
                  FROM pending t WHERE t.vi > 0 AND t.contact IS NOT NULL) g
            CROSS JOIN LATERAL crefinder.scrub_for(tenant, steps_ -> s ->> 'channel', coalesce(g.contacts, '{}'),
                                                   coalesce(g.props, '{}'), at)
                 WITH ORDINALITY AS d(allowed, reason, next_allowed_at, n)
            JOIN pending t ON t.id = g.ids[d.n]
        ),
        outcome AS (
            SELECT t.id, CASE WHEN t.vi = 0 THEN 'skipped:holdout' WHEN t.contact IS NULL THEN 'skipped:no_contact' END AS what,
                   NULL::text AS body
            FROM pending t WHERE t.vi = 0 OR t.contact IS NULL
            UNION ALL
            SELECT d.id, CASE WHEN d.allowed THEN 'send' WHEN d.next_allowed_at IS NOT NULL THEN 'held'
                              ELSE 'blocked:' || d.reason END,
                   crefinder.render(steps_ -> s -> 'variants' -> (d.vi - 1) ->> 'body', d.vars)
            FROM decided d
        ),
        counts AS (
            SELECT count(*) AS enrollments,
                   count(*) FILTER (WHERE o.what = 'send') AS send,
                   count(*) FILTER (WHERE o.what = 'held') AS held,
                   coalesce(sum(CASE WHEN o.what IN ('send', 'held') AND steps_ -> s ->> 'channel' = 'sms'
                                     THEN crefinder.sms_segments(coalesce(o.body, '')) END), 0)::bigint AS segments
            FROM outcome o
        )
        SELECT s, steps_ -> s ->> 'channel', k.enrollments, k.send, k.held,
               coalesce((SELECT jsonb_object_agg(r.why, r.n) FROM (
                   SELECT substr(o.what, 9) AS why, count(*) AS n FROM outcome o
                   WHERE o.what LIKE 'blocked:%' GROUP BY 1) r), '{}'),
               coalesce((SELECT jsonb_object_agg(r.why, r.n) FROM (
                   SELECT substr(o.what, 9) AS why, count(*) AS n FROM outcome o
                   WHERE o.what LIKE 'skipped:%' GROUP BY 1) r), '{}'),
               k.segments,
               round(CASE steps_ -> s ->> 'channel'
                         WHEN 'sms' THEN k.segments * (tenant_prefs ->> 'sms_segment_cost_cents')::numeric
                         WHEN 'whatsapp' THEN (k.send + k.held) * (tenant_prefs ->> 'whatsapp_cost_cents')::numeric
                         WHEN 'email' THEN (k.send + k.held) * (tenant_prefs ->> 'email_cost_cents')::numeric
                         -- (a drop: one leg of about a minute; a bridge: two legs of about 3 minutes)
                         WHEN 'voicemail' THEN (k.send + k.held) * (tenant_prefs ->> 'call_minute_cost_cents')::numeric
                         WHEN 'call' THEN (k.send + k.held) * 6 * (tenant_prefs ->> 'call_minute_cost_cents')::numeric
                         ELSE (k.send + k.held) * 2 * (tenant_prefs ->> 'voice_minute_cost_cents')::numeric END, 2)
        FROM counts k;
    END LOOP;
END
$$;
