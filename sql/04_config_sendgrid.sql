-- SendGrid settings: every field's validation, good and bad values, defaults.
SET crefinder.user_id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';

SELECT crefinder.configure('sendgrid', '{"apiKey": "SG.crefinder-test-key.not-a-real-secret-0001",
                                         "fromEmail": "deals@acme-capital.com"}');

SELECT n, field, value, regress_helpers.check_config('sendgrid',
       '{"apiKey": "SG.crefinder-test-key.not-a-real-secret-0001",
         "fromEmail": "deals@acme-capital.com"}', field, value) AS result
FROM (VALUES
    (1, 'apiKey', '"SG.abc_DEF-123.xyz_456-ABC"'::jsonb),
    (2, 'apiKey', '"sg.abc.def"'),
    (3, 'apiKey', '"SG.abcdef"'),
    (4, 'apiKey', '"SG..def"'),
    (5, 'apiKey', '"SG.abc.d ef"'),
    (6, 'apiKey', NULL),
    (7, 'apiKey', '42'),
    (8, 'fromEmail', '"Owner.Outreach+cre@mail.acme-capital.co.uk"'),
    (9, 'fromEmail', '"not-an-email"'),
    (10, 'fromEmail', '"deals@localhost"'),
    (11, 'fromEmail', '"deals..team@acme.com"'),
    (12, 'fromEmail', '".deals@acme.com"'),
    (13, 'fromEmail', '"deals@acme..com"'),
    (14, 'fromEmail', '"deals@-acme.com"'),
    (15, 'fromEmail', '"deals team@acme.com"'),
    (16, 'fromEmail', NULL),
    (17, 'fromName', '"Acme Capital Acquisitions"'),
    (18, 'fromName', '"Acme\r\nBcc: victim@example.com"'),
    (19, 'fromName', '7'),
    (20, 'replyToEmail', '"replies@acme-capital.com"'),
    (21, 'replyToEmail', '"replies@"'),
    (22, 'defaultTemplateId', '"d-0123456789abcdef0123456789abcdef"'),
    (23, 'defaultTemplateId', '"9c4b8a5e-3f1d-4a2b-8e6f-1a2b3c4d5e6f"'),
    (24, 'defaultTemplateId', '"d-123"'),
    (25, 'defaultTemplateId', '"welcome-template"'),
    (26, 'clickTracking', 'false'),
    (27, 'clickTracking', '"no"'),
    (28, 'openTracking', 'false'),
    (29, 'openTracking', '1'),
    (30, 'subscriptionTracking', 'false'),
    (31, 'subscriptionTracking', '[]'),
    (32, 'unsubscribeGroupId', '12345'),
    (33, 'unsubscribeGroupId', '0'),
    (34, 'unsubscribeGroupId', '1.5'),
    (35, 'unsubscribeGroupId', '"12345"'),
    (36, 'unsubscribeGroupId', '3000000000'),
    (37, 'customDomain', '"em.acme-capital.com"'),
    (38, 'customDomain', '"acme capital.com"'),
    (39, 'customDomain', '"https://acme.com"'),
    (40, 'customDomain', '"localhost"'),
    (41, 'ipPool', '"transactional-pool"'),
    (42, 'ipPool', to_jsonb(repeat('p', 65))),
    (43, 'ipPool', '"my pool"'),
    (44, 'eventWebhookPublicKey', '"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="'),
    (45, 'eventWebhookPublicKey', '"MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEYc06aJHFYEgWe89g9xsYAp/l0w+T0m8kkHH8lIsu9V5U2y2nMrPcUnRVw7+MSaGA8Oq0ZoB95wfLHJzbX7xisPRQCGyeN3oF3TPt1aq0M3m7oEwxoFVopMrU4Ni9iisd"'),
    (46, 'eventWebhookPublicKey', '"MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCYxE4lh/0twkVYt5v841fbzhgzAWzS1R1aVASgWLyWPB1i3Rkyhm/d6S/SuuIwm9ZqGJjnuXjiFr8YImElB00hVMsMRaPrf6/vX+wCWAz37lhlxX49alNKETlxgip8w+mymarLAN0wGr2lTpadqRVNqoS4izfY6GEWc1szFUotfQIDAQAB"'),
    (47, 'eventWebhookPublicKey', '"not base64 at all!"'),
    (48, 'eventWebhookPublicKey', '"-----BEGIN PUBLIC KEY-----"'),
    (49, 'webhookSecret', '"x"')
) AS v(n, field, value)
ORDER BY n;

SELECT jsonb_pretty(crefinder.configure('sendgrid', '{
    "apiKey": "SG.crefinder-test-key.not-a-real-secret-0001",
    "fromEmail": "deals@acme-capital.com",
    "fromName": "Acme Capital",
    "replyToEmail": "replies@acme-capital.com",
    "defaultTemplateId": "d-0123456789abcdef0123456789abcdef",
    "clickTracking": false,
    "openTracking": true,
    "subscriptionTracking": false,
    "unsubscribeGroupId": 4242,
    "customDomain": "em.acme-capital.com",
    "ipPool": "outreach",
    "eventWebhookPublicKey": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="}'));
SELECT secrets::text LIKE '%not-a-real-secret%' AS plaintext_stored FROM crefinder.integration_configs;
DELETE FROM crefinder.integration_configs;
RESET crefinder.user_id;
