-- Tenancy: every tenant-owned row carries user_id uuid, defaulting to the
-- current tenant.  On Supabase that is auth.uid(); elsewhere the
-- application sets crefinder.user_id per transaction.

CREATE FUNCTION crefinder.current_user_id() RETURNS uuid
    LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_current_user_id';

COMMENT ON FUNCTION crefinder.current_user_id() IS
    'The current tenant: auth.uid() when that function exists, else the setting crefinder.user_id; raises an error when neither names one.';
