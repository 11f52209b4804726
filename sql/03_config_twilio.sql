-- Twilio settings: every field's validation, good and bad values, defaults.
SET crefinder.user_id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';

-- Used by the three config tests; 05_config_vapi drops it.
CREATE SCHEMA regress_helpers;
-- regress_helpers.check_config(provider, base, field, value): configure base with field set
-- to value (removed when value is SQL NULL); 'ok' or SQLSTATE and detail.
CREATE FUNCTION regress_helpers.check_config(provider text, base jsonb, field text, value jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    detail text;
BEGIN
    PERFORM crefinder.configure(provider, CASE WHEN value IS NULL THEN base - field
                                               ELSE base || jsonb_build_object(field, value) END);
    RETURN 'ok';
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL;
    RETURN st || ' ' || coalesce(nullif(detail, ''), SQLERRM);
END
$$;

-- Only the required fields: defaults are applied, the secret is masked.
SELECT crefinder.configure('twilio', '{"accountSid": "AC0123456789abcdef0123456789abcdef",
                                       "authToken": "0123456789abcdef0123456789abcdef"}');

SELECT n, field, value, regress_helpers.check_config('twilio',
       '{"accountSid": "AC0123456789abcdef0123456789abcdef",
         "authToken": "0123456789abcdef0123456789abcdef"}', field, value) AS result
FROM (VALUES
    (1, 'accountSid', '"ACffffffffffffffffffffffffffffffff"'::jsonb),
    (2, 'accountSid', '"AB0123456789abcdef0123456789abcdef"'),
    (3, 'accountSid', '"AC0123"'),
    (4, 'accountSid', '"ACzz23456789abcdef0123456789abcdef"'),
    (5, 'accountSid', '12345'),
    (6, 'accountSid', 'null'),
    (7, 'accountSid', NULL),
    (8, 'accountSid', '""'),
    (9, 'authToken', '"ABCDEF0123456789abcdef0123456789"'),
    (10, 'authToken', '"0123456789abcdef"'),
    (11, 'authToken', '"0123456789abcdef0123456789abcdeg"'),
    (12, 'authToken', NULL),
    (13, 'authToken', 'true'),
    (14, 'phoneNumber', '"+13055550123"'),
    (15, 'phoneNumber', '"3055550123"'),
    (16, 'phoneNumber', '"+03055550123"'),
    (17, 'phoneNumber', '"+1234567890123456"'),
    (18, 'phoneNumber', '"+1 305 555 0123"'),
    (19, 'whatsappNumber', '"whatsapp:+13055550123"'),
    (20, 'whatsappNumber', '"+442079460958"'),
    (21, 'whatsappNumber', '"whatsapp:305"'),
    (22, 'messagingServiceSid', '"MG0123456789abcdef0123456789abcdef"'),
    (23, 'messagingServiceSid', '"AC0123456789abcdef0123456789abcdef"'),
    (24, 'messagingServiceSid', '"MG0123"'),
    (25, 'verifyServiceSid', '"VA0123456789abcdef0123456789abcdef"'),
    (26, 'verifyServiceSid', '"VB0123456789abcdef0123456789abcdef"'),
    (27, 'twimlAppSid', '"AP0123456789abcdef0123456789abcdef"'),
    (28, 'twimlAppSid', '"AP0123456789abcdef0123456789abcdeX"'),
    (29, 'smsWebhookUrl', '"https://app.example.com/api/webhooks/twilio/sms"'),
    (30, 'smsWebhookUrl', '"http://localhost:3000/hook?x=1"'),
    (31, 'smsWebhookUrl', '"app.example.com/hook"'),
    (32, 'smsWebhookUrl', '"ftp://app.example.com/hook"'),
    (33, 'smsWebhookUrl', '"https://my_app.example.com/hook"'),
    (34, 'smsWebhookUrl', '"https://app.example.com/a b"'),
    (35, 'voiceWebhookUrl', '"https://app.example.com/voice"'),
    (36, 'voiceWebhookUrl', '"not a url"'),
    (37, 'respectQuietHours', 'false'),
    (38, 'respectQuietHours', '"false"'),
    (39, 'timeZoneHandling', 'false'),
    (40, 'timeZoneHandling', '0'),
    (41, 'autoOptOutHandling', 'false'),
    (42, 'autoOptOutHandling', 'null'),
    (43, 'smsWebhookUrl', '""'),
    (44, 'phoneNumber', '"+1305555\n0123"'),
    (45, 'statusCallback', '"https://app.example.com/x"'),
    (46, 'phoneNumber', '{"number": "+13055550123"}'),
    (47, 'scheduleAtTwilio', 'true'),
    (48, 'scheduleAtTwilio', '"yes"')
) AS v(n, field, value)
ORDER BY n;

-- An API key comes with its secret; both have Twilio's formats.
SELECT n, regress_helpers.check_config('twilio',
       '{"accountSid": "AC0123456789abcdef0123456789abcdef",
         "authToken": "0123456789abcdef0123456789abcdef"}'::jsonb || extra, 'authToken',
       '"0123456789abcdef0123456789abcdef"') AS result
FROM (VALUES
    (1, '{"apiKey": "SK0123456789abcdef0123456789abcdef", "apiSecret": "abcdEFGH0123456789ijklMNOPqrstUV"}'::jsonb),
    (2, '{"apiKey": "SK0123456789abcdef0123456789abcdef"}'),
    (3, '{"apiSecret": "abcdEFGH0123456789ijklMNOPqrstUV"}'),
    (4, '{"apiKey": "AC0123456789abcdef0123456789abcdef", "apiSecret": "abcdEFGH0123456789ijklMNOPqrstUV"}'),
    (5, '{"apiKey": "SK0123456789abcdef0123456789abcdef", "apiSecret": "short"}'),
    (6, '{"apiKey": "SK0123456789abcdef0123456789abcdef", "apiSecret": "abcdEFGH0123456789ijklMNOPqrst-+"}'),
    -- Twilio schedules messages (SendAt) only through a Messaging Service
    (7, '{"scheduleAtTwilio": true, "messagingServiceSid": "MG0123456789abcdef0123456789abcdef"}'),
    (8, '{"scheduleAtTwilio": false}')
) AS v(n, extra)
ORDER BY n;

-- Every failing field at once, one line each, in one 22023 error.
\set VERBOSITY default
SELECT crefinder.configure('twilio', '{"accountSid": "XX1", "authToken": "", "phoneNumber": "555",
                                       "respectQuietHours": "yes", "fax": 1, "apiKey": "SK0123456789abcdef0123456789abcdef"}');

-- Unknown providers, non-objects and NULLs are refused.
SELECT crefinder.configure('plivo', '{}');
SELECT crefinder.configure('twilio', '[1, 2]');
SELECT crefinder.configure('twilio', '"AC"');
SELECT crefinder.configure('twilio', NULL);

-- The full set, stored: plain fields as given (the WhatsApp prefix is
-- dropped), secrets masked.
SELECT jsonb_pretty(crefinder.configure('twilio', '{
    "accountSid": "AC0123456789abcdef0123456789abcdef",
    "authToken": "0123456789abcdef0123456789abcdef",
    "apiKey": "SK0123456789abcdef0123456789abcdef",
    "apiSecret": "abcdEFGH0123456789ijklMNOPqrstUV",
    "phoneNumber": "+13055550123",
    "whatsappNumber": "whatsapp:+13055550124",
    "messagingServiceSid": "MG0123456789abcdef0123456789abcdef",
    "verifyServiceSid": "VA0123456789abcdef0123456789abcdef",
    "twimlAppSid": "AP0123456789abcdef0123456789abcdef",
    "smsWebhookUrl": "https://app.example.com/api/webhooks/twilio/sms",
    "voiceWebhookUrl": "https://app.example.com/api/webhooks/twilio/voice",
    "respectQuietHours": false,
    "timeZoneHandling": true,
    "autoOptOutHandling": false}'));
SELECT crefinder.integration_config('twilio') = crefinder.configure('twilio', crefinder.integration_config('twilio'))
    AS masked_round_trip;
SELECT provider, config ? 'authToken' AS token_in_config, secrets ? 'authToken' AS token_sealed,
       secrets::text LIKE '%0123456789abcdef0123456789abcdef%' AS plaintext_stored,
       secrets::text LIKE '%abcdEFGH0123456789ijklMNOPqrstUV%' AS api_secret_stored
FROM crefinder.integration_configs;

-- A masked secret that is not the stored one is refused.
SELECT regress_helpers.check_config('twilio', crefinder.integration_config('twilio'), 'authToken', '"****0000"');
-- Reconfiguring replaces the whole document.
SELECT crefinder.configure('twilio', '{"accountSid": "AC0123456789abcdef0123456789abcdef",
                                       "authToken": "fedcba9876543210fedcba9876543210"}');
SELECT count(*) FROM crefinder.integration_configs;
DELETE FROM crefinder.integration_configs;
RESET crefinder.user_id;
