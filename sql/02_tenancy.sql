-- crefinder.current_user_id(): auth.uid() when it exists, else the setting
-- crefinder.user_id, else a clear error.
SELECT crefinder.current_user_id();

SET crefinder.user_id = 'not-a-uuid';
SET crefinder.user_id = '{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}';
SELECT crefinder.current_user_id();

BEGIN;
SELECT set_config('crefinder.user_id', '11111111-1111-4111-8111-111111111111', true);
SELECT crefinder.current_user_id();
COMMIT;
-- set_config(..., true) lasts for the transaction only.
SELECT crefinder.current_user_id();

-- A new row takes the current tenant.
SET crefinder.user_id = '22222222-2222-4222-8222-222222222222';
INSERT INTO crefinder.templates (name, channel, body) VALUES ('hello', 'sms', 'Hi {{owner_name}}')
RETURNING user_id, name;

-- Supabase: auth.uid() decides when it exists, and the setting is ignored.
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
SELECT crefinder.current_user_id();
SET request.jwt.claim.sub = '33333333-3333-4333-8333-333333333333';
SELECT crefinder.current_user_id();
DROP FUNCTION auth.uid();
CREATE FUNCTION auth.uid() RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;
SELECT crefinder.current_user_id();
DROP SCHEMA auth CASCADE;
SELECT crefinder.current_user_id();
DELETE FROM crefinder.templates;
RESET crefinder.user_id;
