-- Provider settings: validated, secrets encrypted at rest (AES-256-GCM
-- under crefinder.secret_key), shown masked.

CREATE FUNCTION crefinder.configure(provider text, config jsonb) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'crefinder_configure';
COMMENT ON FUNCTION crefinder.configure(text, jsonb) IS
    'Validate, apply defaults, encrypt secrets and store the current tenant''s settings for vapi, twilio or sendgrid; returns them masked.';

-- The same for config given as text: an untyped literal resolves to this
-- one (text is the preferred string type), so JSON with a typo is parsed
-- inside configure(), whose error never quotes it, instead of by jsonb's
-- input function, whose error (and the statement it logs) would.
CREATE FUNCTION crefinder.configure(provider text, config text) RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'crefinder_configure_text';
COMMENT ON FUNCTION crefinder.configure(text, text) IS
    'configure(provider, config jsonb) for config as JSON text; malformed JSON is refused (22P02) without quoting it, since it may hold secrets.';

CREATE FUNCTION crefinder.integration_config(provider text) RETURNS jsonb
    LANGUAGE c STABLE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'crefinder_integration_config';
COMMENT ON FUNCTION crefinder.integration_config(text) IS
    'The current tenant''s settings for a provider, secrets shown as **** and their last 4 characters; NULL when not configured.';

CREATE FUNCTION crefinder.rotate_secret_key(old_key text, new_key text) RETURNS integer
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'crefinder_rotate_secret_key';
COMMENT ON FUNCTION crefinder.rotate_secret_key(text, text) IS
    'Superuser only: re-encrypt every stored provider secret from old_key to new_key in one transaction; then set crefinder.secret_key to new_key.';
REVOKE ALL ON FUNCTION crefinder.rotate_secret_key(text, text) FROM PUBLIC;
