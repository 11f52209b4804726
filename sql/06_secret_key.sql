-- The encryption key: required, validated without being shown, bound to
-- each secret's place, and rotated in one transaction.
SET crefinder.user_id = '00000000-0000-4000-8000-00000000000a';

SET crefinder.secret_key = '';
SELECT crefinder.configure('twilio', '{"accountSid": "AC0123456789abcdef0123456789abcdef",
                                       "authToken": "0123456789abcdef0123456789abcdef"}');
SET crefinder.secret_key = 'not-a-key-0123456789';
SELECT crefinder.configure('twilio', '{"accountSid": "AC0123456789abcdef0123456789abcdef",
                                       "authToken": "0123456789abcdef0123456789abcdef"}');

-- Key A.
SET crefinder.secret_key = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
SELECT crefinder.configure('twilio', '{"accountSid": "AC0123456789abcdef0123456789abcdef",
                                       "authToken": "0123456789abcdef0123456789abcdef",
                                       "apiKey": "SK0123456789abcdef0123456789abcdef",
                                       "apiSecret": "abcdEFGH0123456789ijklMNOPqrstUV"}') ->> 'authToken';
-- The same secret never encrypts the same way twice (fresh nonce).
CREATE TEMP TABLE first_seal AS SELECT secrets FROM crefinder.integration_configs;
SELECT crefinder.configure('twilio', '{"accountSid": "AC0123456789abcdef0123456789abcdef",
                                       "authToken": "0123456789abcdef0123456789abcdef",
                                       "apiKey": "SK0123456789abcdef0123456789abcdef",
                                       "apiSecret": "abcdEFGH0123456789ijklMNOPqrstUV"}') ->> 'apiSecret';
SELECT c.secrets ->> 'authToken' <> f.secrets ->> 'authToken' AS fresh_nonce,
       c.secrets ->> 'authToken' LIKE 'v1:%' AS envelope
FROM crefinder.integration_configs c, first_seal f;

SET crefinder.user_id = '00000000-0000-4000-8000-00000000000b';
SELECT crefinder.configure('sendgrid', '{"apiKey": "SG.key-id.secret-part-9876", "fromEmail": "b@example.com"}') ->> 'apiKey';

-- An envelope moved to another tenant's row no longer opens.
UPDATE crefinder.integration_configs
SET secrets = jsonb_build_object('apiKey', (SELECT secrets ->> 'authToken' FROM crefinder.integration_configs
                                            WHERE provider = 'twilio'))
WHERE provider = 'sendgrid'
RETURNING provider;
SELECT crefinder.integration_config('sendgrid');
SELECT crefinder.configure('sendgrid', '{"apiKey": "SG.key-id.secret-part-9876", "fromEmail": "b@example.com"}') ->> 'apiKey';
-- A damaged envelope is detected.
UPDATE crefinder.integration_configs
SET secrets = jsonb_build_object('apiKey', overlay(secrets ->> 'apiKey' placing
                                 CASE WHEN substr(secrets ->> 'apiKey', 30, 1) = 'A' THEN 'B' ELSE 'A' END
                                 from 30 for 1))
WHERE provider = 'sendgrid';
SELECT crefinder.integration_config('sendgrid');
SELECT crefinder.configure('sendgrid', '{"apiKey": "SG.key-id.secret-part-9876", "fromEmail": "b@example.com"}') ->> 'apiKey';

-- Rotation from A to B re-encrypts every tenant's secrets (3 of them).
SELECT crefinder.rotate_secret_key('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
                                   'BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB') AS rotated;
-- Under the old key the secrets no longer open ...
SELECT crefinder.integration_config('sendgrid');
-- ... under the new one they do, unchanged.
SET crefinder.secret_key = 'BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
SELECT crefinder.integration_config('sendgrid') ->> 'apiKey' AS sendgrid_key;
SET crefinder.user_id = '00000000-0000-4000-8000-00000000000a';
SELECT crefinder.integration_config('twilio') ->> 'authToken' AS auth_token,
       crefinder.integration_config('twilio') ->> 'apiSecret' AS api_secret;
-- Running it again changes nothing; a key that opens nothing changes nothing.
SELECT crefinder.rotate_secret_key('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
                                   'BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB') AS rotated;
SELECT crefinder.rotate_secret_key('cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc',
                                   'dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd');
SELECT crefinder.integration_config('twilio') ->> 'authToken' AS still_under_b;
-- Malformed keys are named, never shown.
SELECT crefinder.rotate_secret_key('abc', 'dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd');
SELECT crefinder.rotate_secret_key('BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB', NULL);

-- Only superusers rotate keys or see the key.
CREATE ROLE regress_crefinder_nobody;
GRANT USAGE ON SCHEMA crefinder TO regress_crefinder_nobody;
SET ROLE regress_crefinder_nobody;
SELECT crefinder.rotate_secret_key('BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB',
                                   'dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd');
SHOW crefinder.secret_key;
SET crefinder.secret_key = 'dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd';
SET crefinder.twilio_api_url = 'http://127.0.0.1:1';
RESET ROLE;
REVOKE USAGE ON SCHEMA crefinder FROM regress_crefinder_nobody;
DROP ROLE regress_crefinder_nobody;

DELETE FROM crefinder.integration_configs;
RESET crefinder.secret_key;
RESET crefinder.user_id;
