-- Vapi settings: every field's validation, good and bad values, defaults.
SET crefinder.user_id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';

-- Defaults: maxCallDuration 300, maxConcurrentCalls 10, voiceSpeed 1.0, temperature 0.7.
SELECT crefinder.configure('vapi', '{"apiKey": "4f1c2b7e-8d3a-4e5f-9a0b-1c2d3e4f5a6b",
                                     "orgId": "7e9a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"}');

SELECT n, field, value, regress_helpers.check_config('vapi',
       '{"apiKey": "4f1c2b7e-8d3a-4e5f-9a0b-1c2d3e4f5a6b",
         "orgId": "7e9a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"}', field, value) AS result
FROM (VALUES
    (1, 'apiKey', '"sk_live_abc123"'::jsonb),
    (2, 'apiKey', '"has space"'),
    (3, 'apiKey', NULL),
    (4, 'apiKey', '""'),
    (5, 'orgId', '"org-123"'),
    (6, 'orgId', NULL),
    (7, 'orgId', 'false'),
    (8, 'publicKey', '"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"'),
    (9, 'publicKey', '"two words"'),
    (10, 'assistantId', '"5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"'),
    (11, 'assistantId', '123'),
    (12, 'webhookSecret', '"a shared secret, with spaces"'),
    (13, 'webhookSecret', '"tab\there"'),
    (14, 'phoneNumber', '"9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"'),
    (15, 'phoneNumber', '"+1 305"'),
    (16, 'serverUrl', '"https://app.example.com/api/webhooks/vapi"'),
    (17, 'serverUrl', '"app.example.com"'),
    (18, 'serverUrl', '"javascript:alert(1)"'),
    (19, 'maxCallDuration', '30'),
    (20, 'maxCallDuration', '1800'),
    (21, 'maxCallDuration', '29'),
    (22, 'maxCallDuration', '1801'),
    (23, 'maxCallDuration', '300.5'),
    (24, 'maxCallDuration', '"300"'),
    (25, 'voiceSpeed', '0.5'),
    (26, 'voiceSpeed', '2.0'),
    (27, 'voiceSpeed', '0.49'),
    (28, 'voiceSpeed', '2.01'),
    (29, 'voiceSpeed', '1'),
    (30, 'temperature', '0'),
    (31, 'temperature', '1'),
    (32, 'temperature', '-0.1'),
    (33, 'temperature', '1.5'),
    (34, 'temperature', 'true'),
    (35, 'maxDurationSeconds', '600'),
    (36, 'maxConcurrentCalls', '1'),
    (37, 'maxConcurrentCalls', '10000'),
    (38, 'maxConcurrentCalls', '0'),
    (39, 'maxConcurrentCalls', '2.5'),
    (40, 'maxConcurrentCalls', '"10"')
) AS v(n, field, value)
ORDER BY n;

SELECT jsonb_pretty(crefinder.configure('vapi', '{
    "apiKey": "4f1c2b7e-8d3a-4e5f-9a0b-1c2d3e4f5a6b",
    "orgId": "7e9a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c",
    "publicKey": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "assistantId": "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e",
    "webhookSecret": "whsec-7f3a9c2e1b",
    "phoneNumber": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
    "serverUrl": "https://app.example.com/api/webhooks/vapi",
    "maxCallDuration": 600,
    "voiceSpeed": 1.25,
    "temperature": 0.3}'));

-- A secret shorter than 8 characters shows no tail.
SELECT crefinder.configure('vapi', '{"apiKey": "k1", "orgId": "o1", "webhookSecret": "abcdefgh"}')
    -> 'apiKey' AS short_key, crefinder.integration_config('vapi') -> 'webhookSecret' AS secret;

-- Each tenant has its own settings; unconfigured providers are NULL.
SET crefinder.user_id = 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12';
SELECT crefinder.integration_config('vapi') IS NULL AS other_tenant_unconfigured;
SELECT crefinder.integration_config('twilio') IS NULL AS twilio_unconfigured;
SELECT crefinder.integration_config('nope');
DELETE FROM crefinder.integration_configs;
DROP SCHEMA regress_helpers CASCADE;
RESET crefinder.user_id;
