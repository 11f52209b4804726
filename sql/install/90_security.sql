-- Row-level security: an ordinary role sees and writes only the current
-- tenant's rows.  Superusers and the extension's owner (the dispatcher,
-- pg_cron jobs) act on all tenants.  (SELECT crefinder.current_user_id())
-- is evaluated once per statement, not once per row.

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['property_records', 'templates', 'sequences', 'campaigns',
                             'enrollments', 'outbound_events', 'integration_configs',
                             'opt_outs', 'email_suppressions', 'consents', 'webhook_events',
                             'tenant_settings', 'inbound_messages', 'responses', 'call_results',
                             'property_contacts', 'message_rollups', 'rollup_deltas', 'campaign_reach',
                             'contact_reach', 'campaign_counts', 'reach_deltas', 'contact_time_rollups',
                             'contact_time_deltas', 'channel_pauses', 'alerts', 'guardrail_baselines',
                             'pruned_rollups', 'pruned_reach', 'pruned_contact_time', 'sender_pauses',
                             'sender_baselines']
    LOOP
        EXECUTE format('ALTER TABLE crefinder.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON crefinder.%I '
                       'USING (user_id = (SELECT crefinder.current_user_id())) '
                       'WITH CHECK (user_id = (SELECT crefinder.current_user_id()))', t);
    END LOOP;
END
$$;

-- Registry lists are visible to every tenant; a tenant writes only its own
-- internal lists and their numbers.
ALTER TABLE crefinder.dnc_lists ENABLE ROW LEVEL SECURITY;
CREATE POLICY dnc_lists_read ON crefinder.dnc_lists FOR SELECT
    USING (user_id IS NULL OR user_id = (SELECT crefinder.current_user_id()));
CREATE POLICY dnc_lists_write ON crefinder.dnc_lists FOR ALL
    USING (user_id = (SELECT crefinder.current_user_id()))
    WITH CHECK (kind = 'internal' AND user_id = (SELECT crefinder.current_user_id()));
ALTER TABLE crefinder.dnc_numbers ENABLE ROW LEVEL SECURITY;
CREATE POLICY dnc_numbers_read ON crefinder.dnc_numbers FOR SELECT
    USING (list_id IN (SELECT id FROM crefinder.dnc_lists));
CREATE POLICY dnc_numbers_write ON crefinder.dnc_numbers FOR ALL
    USING (list_id IN (SELECT id FROM crefinder.dnc_lists
                       WHERE user_id = (SELECT crefinder.current_user_id())))
    WITH CHECK (list_id IN (SELECT id FROM crefinder.dnc_lists
                            WHERE user_id = (SELECT crefinder.current_user_id())));

-- Tenant data lives in extension tables: mark them (and their identity
-- sequences) so that pg_dump keeps it.  Of calling_rules only the
-- operator's rows are dumped: the defaults come with the extension.
DO $$
DECLARE
    r regclass;
BEGIN
    FOR r IN SELECT c.oid::regclass FROM pg_catalog.pg_class c
             WHERE c.relnamespace = 'crefinder'::regnamespace AND c.relkind IN ('r', 'S')
               AND c.relname NOT IN ('calling_rules', 'recording_consent_states', 'tick_lock', 'maintenance')
             ORDER BY c.relkind, c.relname
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(r, '');
    END LOOP;
    PERFORM pg_catalog.pg_extension_config_dump('crefinder.calling_rules', 'WHERE source <> ''default''');
    PERFORM pg_catalog.pg_extension_config_dump('crefinder.recording_consent_states', 'WHERE source <> ''default''');
END
$$;

-- Nothing is granted to PUBLIC: the operator names the roles that act for
-- tenants (an application role; "authenticated" on Supabase).
REVOKE ALL ON ALL TABLES IN SCHEMA crefinder FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA crefinder FROM PUBLIC;

-- tenant_functions: what grant_access() lets a tenant role execute.  Every
-- other function of the extension is internal (helpers, triggers) or the
-- operator's (grant_access, rotate_secret_key, dnc_load).
CREATE FUNCTION crefinder.tenant_functions() RETURNS regprocedure[]
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT ARRAY[
        'crefinder.current_user_id()',
        'crefinder.is_time_zone(text)',
        'crefinder.configure(text, jsonb)',
        'crefinder.configure(text, text)',
        'crefinder.integration_config(text)',
        'crefinder.test_connection(text)',
        'crefinder.twilio_phone_numbers()',
        'crefinder.sendgrid_templates()',
        'crefinder.sendgrid_unsubscribe_groups()',
        'crefinder.get_tenant_settings()',
        'crefinder.set_tenant_settings(jsonb)',
        'crefinder.normalize_phone(text)',
        'crefinder.phone_timezones(text)',
        'crefinder.phone_region(text)',
        'crefinder.zip_timezone(text)',
        'crefinder.normalize_contact(text, text)',
        'crefinder.try_normalize_contact(text, text)',
        'crefinder.us_federal_holidays(integer)',
        'crefinder.can_contact(text, text, timestamptz, bigint)',
        'crefinder.scrub(text, text[], timestamptz)',
        'crefinder.opt_out(text, text, text)',
        'crefinder.opt_in(text, text, text)',
        'crefinder.record_consent(text, text, text, text, jsonb)',
        'crefinder.revoke_consent(text, text, text)',
        'crefinder.add_suppression(text, text, text, text)',
        'crefinder.dnc_add(text, text)',
        'crefinder.send_sms(text, text, bigint, bigint, text[], timestamptz)',
        'crefinder.send_whatsapp(text, text, bigint, bigint, text[], timestamptz)',
        'crefinder.send_email(text, text, text, text, text, jsonb, bigint, bigint, timestamptz, text[])',
        'crefinder.start_call(text, text, jsonb, bigint, bigint)',
        'crefinder.bridge_call(text, text, bigint, bigint, boolean)',
        'crefinder.drop_voicemail(text, text, text, bigint, bigint)',
        'crefinder.cancel(bigint)',
        'crefinder.retry(bigint[])',
        'crefinder.retry_unknown(bigint[])',
        'crefinder.release_held_calls()',
        'crefinder.dispatcher_status_rows()',
        'crefinder.record_response(bigint, text, text)',
        'crefinder.classify_reply(text)',
        'crefinder.analyze_transcript(text)',
        'crefinder.handle_twilio_webhook(text, text, text, text)',
        'crefinder.handle_twilio_voice_webhook(text, text, text, text)',
        'crefinder.handle_sendgrid_events(text, text, text, uuid)',
        'crefinder.handle_vapi_message(text, jsonb)',
        'crefinder.render(text, jsonb, boolean, integer)',
        'crefinder.template_variables(text)',
        'crefinder.sms_segments(text)',
        'crefinder.split_owner_name(text)',
        'crefinder.template_builtin_variables()',
        'crefinder.property_variables(crefinder.property_records)',
        'crefinder.save_template(text, text, text, text, text)',
        'crefinder.create_sequence(text, jsonb, jsonb)',
        'crefinder.create_campaign(text, bigint, bigint[], jsonb, timestamptz)',
        'crefinder.add_to_campaign(bigint, bigint[])',
        'crefinder.pause_campaign(bigint)',
        'crefinder.resume_campaign(bigint)',
        'crefinder.resume_sender(text, text)',
        'crefinder.cancel_campaign(bigint)',
        'crefinder.send_many(text, jsonb, text, text, text, timestamptz)',
        'crefinder.enqueue_trigger()',
        'crefinder.preview_campaign(bigint, timestamptz)',
        'crefinder.proportion_test(bigint, bigint, bigint, bigint)',
        'crefinder.recipient_zone(text, text, text)',
        'crefinder.provider_of(text)',
        'crefinder.error_code(text)'
    ]::regprocedure[]
$$;

-- grant_access(role) gives role what a tenant-facing application needs:
-- the schema; reading the tenant tables (row-level security limits them to
-- the current tenant); writing only the tables a user fills by hand
-- (property_records); the tenant functions, which change everything else.
-- Run it as the extension's owner or a superuser.
CREATE FUNCTION crefinder.grant_access(role regrole) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    f regprocedure;
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA crefinder TO %s', role);
    EXECUTE format('GRANT SELECT ON '
                   'crefinder.property_records, crefinder.templates, crefinder.sequences, '
                   'crefinder.campaigns, crefinder.enrollments, crefinder.outbound_events, '
                   'crefinder.opt_outs, crefinder.email_suppressions, crefinder.consents, '
                   'crefinder.dnc_lists, crefinder.dnc_numbers, crefinder.tenant_settings, '
                   'crefinder.webhook_events, crefinder.inbound_messages, crefinder.responses, '
                   'crefinder.call_results, crefinder.property_contacts, crefinder.calling_rules, crefinder.state_holidays, '
                   'crefinder.recording_consent_states, '
                   'crefinder.dispatcher_status, crefinder.paused_providers, '
                   'crefinder.message_errors, crefinder.message_rollups, crefinder.rollup_deltas, crefinder.rollups, '
                   'crefinder.campaign_reach, crefinder.contact_reach, crefinder.campaign_counts, '
                   'crefinder.reach_deltas, crefinder.campaign_counts_now, crefinder.campaign_overview, '
                   'crefinder.contact_time_rollups, crefinder.contact_time_deltas, crefinder.contact_time_performance, '
                   'crefinder.health, crefinder.channel_pauses, crefinder.alerts, crefinder.campaign_guardrails, '
                   'crefinder.guardrail_baselines, crefinder.campaign_funnel, '
                   'crefinder.sender_pauses, crefinder.sender_baselines, crefinder.sender_guardrails, '
                   'crefinder.campaign_performance, '
                   'crefinder.channel_effectiveness, crefinder.ab_test_results TO %s', role);
    -- Settings are read through integration_config() (masked); the pause
    -- columns feed paused_providers.  Sealed secrets stay unreadable.
    EXECUTE format('GRANT SELECT (id, user_id, provider, paused_at, paused_reason, created_at, updated_at) '
                   'ON crefinder.integration_configs TO %s', role);
    EXECUTE format('GRANT INSERT, UPDATE, DELETE ON crefinder.property_records, crefinder.property_contacts TO %s', role);
    FOREACH f IN ARRAY crefinder.tenant_functions() LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', f, role);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION crefinder.grant_access(regrole) FROM PUBLIC;

-- revoke_access(role) takes back everything grant_access(role) gave.
CREATE FUNCTION crefinder.revoke_access(role regrole) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA crefinder FROM %s', role);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA crefinder FROM %s', role);
    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA crefinder FROM %s', role);
    EXECUTE format('REVOKE ALL ON SCHEMA crefinder FROM %s', role);
END
$$;
REVOKE ALL ON FUNCTION crefinder.revoke_access(regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION crefinder.tenant_functions() FROM PUBLIC;

-- The extension is meant for the database the dispatcher serves.
DO $$
BEGIN
    IF current_database() <> current_setting('crefinder.database') THEN
        RAISE WARNING 'the crefinder dispatcher does not serve database "%"', current_database()
            USING DETAIL = format('It serves database "%s" (crefinder.database): messages queued here would never be sent, so the send functions refuse them.',
                                  current_setting('crefinder.database')),
                  HINT = format('Set crefinder.database = ''%s'' in postgresql.conf and restart the server.',
                                current_database());
    END IF;
END
$$;
