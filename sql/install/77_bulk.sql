-- Bulk sends: send_many() queues one templated message per row of a JSON
-- array in a few statements (compliance decided for all rows at once by
-- scrub_for), and enqueue_trigger() does the same for the rows a statement
-- inserts into an application's table (FOR EACH STATEMENT with a transition
-- table, or FOR EACH ROW).  Unlike send_sms(), one bad row does not fail
-- the others: an invalid phone number or email becomes a blocked row with
-- reason invalid_contact.  Everything is in the caller's transaction: a
-- rollback sends nothing.

-- send_many: one message on channel per element of rows (JSON objects: the
-- template's variables, the contact in contact_field, by default "phone"
-- or, for email, "email", and optionally a property id in property_field),
-- rendered from the tenant's template of that name.  Returns how many
-- messages were stored (queued or blocked).
CREATE FUNCTION crefinder.send_many(channel text, rows jsonb, template text, contact_field text DEFAULT NULL,
                                    property_field text DEFAULT NULL, send_at timestamptz DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    -- (set-based statements over thousands of rows: JIT would compile
    -- them for longer than they run)
    SET jit = off
    AS $$
#variable_conflict use_variable
DECLARE
    tenant uuid := crefinder.current_user_id();
    tpl record;
    ready record;
    settings jsonb;
    field text;
    unknown text;
    due timestamptz := greatest(coalesce(send_at, now()), now());
    stored integer;
    queued integer;
BEGIN
    PERFORM crefinder.require_argument(rows IS NULL, 'rows');
    PERFORM crefinder.require_argument(template IS NULL, 'template');
    PERFORM crefinder.check_choice(channel, 'channel', '{sms,whatsapp,email}');
    IF jsonb_typeof(rows) <> 'array' THEN
        RAISE EXCEPTION 'rows must be a JSON array of objects' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_array_length(rows) > 1000000 THEN
        RAISE EXCEPTION 'at most 1,000,000 rows per call' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF send_at IS NOT NULL AND (send_at < now() - interval '1 second' OR send_at > now() + interval '5 years') THEN
        RAISE EXCEPTION 'send_at must be between now and 5 years ahead' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    field := coalesce(contact_field, CASE channel WHEN 'email' THEN 'email' ELSE 'phone' END);
    SELECT t.body, t.subject, t.html INTO tpl FROM crefinder.templates t
    WHERE t.user_id = tenant AND t.name = template AND t.channel = channel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no % template "%"', channel, template
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Create it with crefinder.save_template(name, channel, body, ...).';
    END IF;
    ready := crefinder.provider_ready(channel);
    settings := crefinder.settings_of(tenant);
    IF channel = 'email' AND settings ->> 'postal_address' IS NULL THEN
        RAISE EXCEPTION 'email needs the tenant''s postal_address'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Commercial email carries the sender''s postal address (CAN-SPAM).',
                  HINT = 'Set it with crefinder.set_tenant_settings(''{"postal_address": "..."}'').';
    END IF;
    IF jsonb_array_length(rows) = 0 THEN
        RETURN 0;
    END IF;
    -- a variable that is neither built in nor a field of the rows is a
    -- mistake in the template, for every row: refused at once
    SELECT string_agg(u, ', ') INTO unknown
    FROM unnest(crefinder.template_variables(coalesce(tpl.subject, '')) || crefinder.template_variables(tpl.body)
                || crefinder.template_variables(coalesce(tpl.html, ''))) AS u
    WHERE u <> ALL (crefinder.template_builtin_variables())
      AND NOT (jsonb_typeof(rows -> 0) = 'object' AND rows -> 0 ? u);
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'template "%" uses unknown variables: %', template, unknown
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A variable is a built-in one or a field of the rows.';
    END IF;

    WITH items AS MATERIALIZED (
        SELECT x.n, CASE WHEN jsonb_typeof(x.r) = 'object' THEN x.r ELSE '{}' END AS r,
               CASE WHEN jsonb_typeof(x.r) = 'object' THEN x.r ->> field END AS raw,
               crefinder.try_normalize_contact(channel,
                   CASE WHEN jsonb_typeof(x.r) = 'object' THEN x.r ->> field END) AS contact,
               CASE WHEN jsonb_typeof(x.r) = 'object' AND (x.r ->> property_field) ~ '^[0-9]{1,18}$'
                    THEN (x.r ->> property_field)::bigint END AS property_ref
        FROM jsonb_array_elements(rows) WITH ORDINALITY AS x(r, n)
    ),
    checked AS MATERIALIZED (
        SELECT i.n, i.raw, i.contact, p.id AS property_id,
               -- the same contact twice in one call: the second is a mistake
               i.contact IS NOT NULL
                   AND row_number() OVER (PARTITION BY i.contact ORDER BY i.n) > 1 AS duplicate,
               jsonb_strip_nulls(jsonb_build_object(
                   'first_name', nm.first_name, 'last_name', nm.last_name,
                   'business_name', settings ->> 'business_name')) || i.r AS vars
        FROM items i
        LEFT JOIN crefinder.property_records p ON p.user_id = tenant AND p.id = i.property_ref
        CROSS JOIN LATERAL crefinder.split_owner_name(i.r ->> 'owner_name') AS nm
    ),
    decided AS MATERIALIZED (
        SELECT d.n, d.allowed, d.reason, d.next_allowed_at
        FROM crefinder.scrub_for(tenant, channel,
                                 (SELECT array_agg(c.contact ORDER BY c.n) FROM checked c),
                                 (SELECT array_agg(c.property_id ORDER BY c.n) FROM checked c), due)
             WITH ORDINALITY AS d(allowed, reason, next_allowed_at, n)
    ),
    rendered AS (
        SELECT c.*, d.allowed, d.reason, d.next_allowed_at,
               CASE WHEN channel = 'email' THEN jsonb_strip_nulls(jsonb_build_object(
                        'subject', regexp_replace(crefinder.render(tpl.subject, c.vars, false, 998), '[\r\n]+', ' ', 'g'),
                        'html', crefinder.render(tpl.html, c.vars, true, 1048576)
                                || crefinder.render(E'\n<p style="font-size:12px;color:#666">{{b}}{{a}}</p>',
                                                    jsonb_build_object('b', (settings ->> 'business_name') || ', ',
                                                                       'a', settings ->> 'postal_address'), true),
                        'text', crefinder.render(tpl.body, c.vars, false, 1048576)
                                || E'\n\n' || concat_ws(', ', settings ->> 'business_name', settings ->> 'postal_address')))
                    ELSE jsonb_build_object('body', crefinder.render(tpl.body, c.vars, false, 1048576)) END AS payload
        FROM checked c JOIN decided d ON d.n = c.n
    ),
    inserted AS (
        INSERT INTO crefinder.outbound_events
            (user_id, channel, to_contact, status, block_reason, hold_reason, property_id, payload, next_attempt_at)
        SELECT tenant, channel, coalesce(r.contact, left(coalesce(r.raw, ''), 254)),
               CASE WHEN r.contact IS NULL OR r.duplicate THEN 'blocked'
                    WHEN channel <> 'email' AND (coalesce(char_length(r.payload ->> 'body'), 1601) > 1600
                                                 OR btrim(r.payload ->> 'body') = '') THEN 'blocked'
                    WHEN r.allowed OR r.next_allowed_at IS NOT NULL THEN 'queued'
                    ELSE 'blocked' END,
               CASE WHEN r.contact IS NULL THEN 'invalid_contact'
                    WHEN r.duplicate THEN 'duplicate'
                    WHEN channel <> 'email' AND (coalesce(char_length(r.payload ->> 'body'), 1601) > 1600
                                                 OR btrim(r.payload ->> 'body') = '') THEN 'invalid_content'
                    WHEN r.allowed OR r.next_allowed_at IS NOT NULL THEN NULL
                    ELSE r.reason END,
               CASE WHEN r.contact IS NULL OR r.duplicate
                         OR (channel <> 'email' AND (coalesce(char_length(r.payload ->> 'body'), 1601) > 1600
                                                     OR btrim(r.payload ->> 'body') = ''))
                         OR NOT (r.allowed OR r.next_allowed_at IS NOT NULL) THEN NULL
                    WHEN ready.paused THEN 'provider_paused'
                    WHEN NOT r.allowed THEN r.reason
                    WHEN send_at IS NOT NULL AND send_at > now() THEN 'scheduled' END,
               r.property_id, r.payload,
               CASE WHEN NOT r.allowed AND r.next_allowed_at IS NOT NULL THEN r.next_allowed_at ELSE due END
        FROM rendered r
        ORDER BY r.n
        RETURNING status
    )
    SELECT count(*), count(*) FILTER (WHERE i.status = 'queued') INTO stored, queued FROM inserted i;
    IF queued > 0 THEN
        PERFORM crefinder.wake_dispatcher_on_commit();
    END IF;
    RETURN stored;
END
$$;

-- enqueue_trigger: a trigger that queues a message for the rows a
-- statement inserts (or updates).  Arguments: channel, template name, and
-- optionally the contact column (default phone, or email) and a property
-- id column.  FOR EACH STATEMENT needs REFERENCING NEW TABLE AS new_rows
-- and is set-based (a COPY of many rows is one send_many); FOR EACH ROW
-- queues one message per row.  E.g.:
--   CREATE TRIGGER text_new_leads AFTER INSERT ON leads
--       REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
--       EXECUTE FUNCTION crefinder.enqueue_trigger('sms', 'welcome', 'phone');
CREATE FUNCTION crefinder.enqueue_trigger() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    AS $$
DECLARE
    rows jsonb;
BEGIN
    IF TG_NARGS < 2 THEN
        RAISE EXCEPTION 'crefinder.enqueue_trigger() needs a channel and a template'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'EXECUTE FUNCTION crefinder.enqueue_trigger(''sms'', ''template name'' [, ''contact column'' [, ''property id column'']])';
    END IF;
    IF TG_OP NOT IN ('INSERT', 'UPDATE') THEN
        RAISE EXCEPTION 'crefinder.enqueue_trigger() is for INSERT or UPDATE triggers'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF TG_LEVEL = 'ROW' THEN
        rows := jsonb_build_array(to_jsonb(NEW));
    ELSE
        BEGIN
            EXECUTE 'SELECT coalesce(jsonb_agg(to_jsonb(n)), ''[]'') FROM new_rows AS n' INTO rows;
        EXCEPTION WHEN undefined_table THEN
            RAISE EXCEPTION 'a statement-level crefinder.enqueue_trigger() needs REFERENCING NEW TABLE AS new_rows'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('CREATE TRIGGER ... AFTER %s ON %I.%I REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION crefinder.enqueue_trigger(...)',
                                    TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME);
        END;
    END IF;
    PERFORM crefinder.send_many(TG_ARGV[0], rows, TG_ARGV[1],
                                CASE WHEN TG_NARGS > 2 THEN TG_ARGV[2] END,
                                CASE WHEN TG_NARGS > 3 THEN TG_ARGV[3] END);
    IF TG_LEVEL = 'ROW' AND TG_WHEN = 'BEFORE' THEN
        RETURN NEW;
    END IF;
    RETURN NULL;
END
$$;
