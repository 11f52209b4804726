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
                             'tenant_settings']
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
               AND c.relname <> 'calling_rules'
             ORDER BY c.relkind, c.relname
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(r, '');
    END LOOP;
    PERFORM pg_catalog.pg_extension_config_dump('crefinder.calling_rules', 'WHERE source <> ''default''');
END
$$;

-- Nothing is granted to PUBLIC: the operator names the roles that act for
-- tenants (an application role; "authenticated" on Supabase).
REVOKE ALL ON ALL TABLES IN SCHEMA crefinder FROM PUBLIC;

-- grant_access(role) gives role what a tenant-facing application needs:
-- the schema, the tenant tables (row-level security still applies), their
-- sequences and the tenant-facing functions.  Run it as the extension's
-- owner or a superuser.
CREATE FUNCTION crefinder.grant_access(role regrole) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA crefinder TO %s', role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON '
                   'crefinder.property_records, crefinder.templates, crefinder.sequences, '
                   'crefinder.campaigns, crefinder.enrollments, crefinder.outbound_events, '
                   'crefinder.opt_outs, crefinder.email_suppressions, crefinder.consents, '
                   'crefinder.dnc_lists, crefinder.dnc_numbers, crefinder.tenant_settings TO %s', role);
    EXECUTE format('GRANT SELECT ON crefinder.calling_rules, crefinder.state_holidays TO %s', role);
    -- Settings change only through configure(); deliveries only through the handlers.
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON crefinder.integration_configs TO %s', role);
    EXECUTE format('GRANT SELECT ON crefinder.webhook_events TO %s', role);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA crefinder TO %s', role);
END
$$;
REVOKE ALL ON FUNCTION crefinder.grant_access(regrole) FROM PUBLIC;
