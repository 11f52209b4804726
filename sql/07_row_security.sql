-- Row-level security: an ordinary role acting for one tenant sees and
-- changes nothing of another's.
CREATE ROLE regress_crefinder_app;
SELECT crefinder.grant_access('regress_crefinder_app');
SET ROLE regress_crefinder_app;

-- Tenant A's rows: the application writes property_records and changes
-- the rest through crefinder's functions; campaign tables (filled by the
-- campaign functions) are written here by the superuser in A's name.
SET crefinder.user_id = 'aaaaaaaa-0000-4000-8000-000000000001';
SELECT crefinder.configure('twilio', '{"accountSid": "AC0123456789abcdef0123456789abcdef",
                                       "authToken": "0123456789abcdef0123456789abcdef",
                                       "phoneNumber": "+13055550100"}') ->> 'authToken';
INSERT INTO crefinder.property_records (owner_name, owner_phone, property_state)
VALUES ('Ada Owner', '+13055550123', 'FL');
SELECT crefinder.opt_out('sms', '+13055550199', 'STOP') > 0 AS opted_out;
SELECT crefinder.add_suppression('gone@example.com', 'bounce') > 0 AS suppressed;
SELECT crefinder.record_consent('+13055550123', 'voice', 'express_written', 'web form') > 0 AS consented;
SELECT crefinder.dnc_add('+13055550177') AS dnc_added;
SELECT crefinder.set_tenant_settings('{"max_messages_per_24h": 10}') ->> 'max_messages_per_24h' AS cap;
RESET ROLE;
INSERT INTO crefinder.templates (name, channel, body) VALUES ('intro', 'sms', 'Hi {{owner_name}}');
INSERT INTO crefinder.sequences (name, steps) VALUES ('default', '[]');
INSERT INTO crefinder.campaigns (name, sequence_id) SELECT 'spring', id FROM crefinder.sequences;
INSERT INTO crefinder.enrollments (campaign_id, property_id)
SELECT c.id, p.id FROM crefinder.campaigns c, crefinder.property_records p;
SET ROLE regress_crefinder_app;
SELECT crefinder.send_sms('+13055550123', 'Hi Ada', property_id => id, campaign_id => (SELECT id FROM crefinder.campaigns)) > 0 AS queued
FROM crefinder.property_records;

-- A tenant role writes no table but property_records, locks nothing the
-- dispatcher needs, and reads no sealed secret.
INSERT INTO crefinder.outbound_events (channel, to_contact, payload) VALUES ('sms', '+13055550123', '{"twilio_send_at": "x"}');
UPDATE crefinder.outbound_events SET status = 'queued';
DELETE FROM crefinder.outbound_events;
UPDATE crefinder.integration_configs SET config = config || '{"unsubscribeGroupId": "1}],\"x\":{"}';
INSERT INTO crefinder.integration_configs (provider, config, secrets) VALUES ('vapi', '{}', '{"apiKey": 1}');
SELECT secrets FROM crefinder.integration_configs;
UPDATE crefinder.opt_outs SET revoked_at = now();
DELETE FROM crefinder.consents;
INSERT INTO crefinder.tenant_settings (max_messages_per_24h) VALUES (1000);
SELECT id FROM crefinder.outbound_events FOR UPDATE;
SELECT id FROM crefinder.outbound_events FOR KEY SHARE;
BEGIN;
LOCK TABLE crefinder.outbound_events IN ACCESS EXCLUSIVE MODE;
ROLLBACK;
BEGIN;
LOCK TABLE crefinder.integration_configs IN SHARE MODE;
ROLLBACK;
BEGIN;
LOCK TABLE crefinder.property_records IN ACCESS EXCLUSIVE MODE;
ROLLBACK;
-- Internal helpers are not the tenant's to call.
SELECT crefinder.enqueue('sms', '+13055550123', '{}', NULL, NULL, NULL, '{}', false);
SELECT crefinder.cancel_at_twilio('aaaaaaaa-0000-4000-8000-000000000001', '{1}');
SELECT crefinder.wake_dispatcher_on_commit();
SELECT crefinder.grant_access('regress_crefinder_app');
-- What a tenant fills by hand is checked column by column.
INSERT INTO crefinder.property_records (owner_name, timezone) VALUES ('Tz Owner', 'ABC5DEF4,M3.2.0,M11.1.0');
INSERT INTO crefinder.property_records (owner_name, property_zip) VALUES ('Zip Owner', '3312');
INSERT INTO crefinder.property_records (owner_name, owner_phone) VALUES ('Phone Owner', 'call me maybe');
INSERT INTO crefinder.property_records (owner_name, skip_trace_data) VALUES ('Json Owner', '[1]');
INSERT INTO crefinder.property_records (owner_name, timezone) VALUES (E'Bad\nName', 'America/New_York');
INSERT INTO crefinder.property_records (owner_name, timezone) VALUES ('Tz Owner', 'america/chicago');
DELETE FROM crefinder.property_records WHERE owner_name = 'Tz Owner';

CREATE TEMP VIEW tenant_rows AS
SELECT 'property_records' AS t, count(*) FROM crefinder.property_records
UNION ALL SELECT 'templates', count(*) FROM crefinder.templates
UNION ALL SELECT 'sequences', count(*) FROM crefinder.sequences
UNION ALL SELECT 'campaigns', count(*) FROM crefinder.campaigns
UNION ALL SELECT 'enrollments', count(*) FROM crefinder.enrollments
UNION ALL SELECT 'outbound_events', count(*) FROM crefinder.outbound_events
UNION ALL SELECT 'integration_configs', count(*) FROM crefinder.integration_configs
UNION ALL SELECT 'opt_outs', count(*) FROM crefinder.opt_outs
UNION ALL SELECT 'email_suppressions', count(*) FROM crefinder.email_suppressions
UNION ALL SELECT 'consents', count(*) FROM crefinder.consents
UNION ALL SELECT 'dnc_lists', count(*) FROM crefinder.dnc_lists
UNION ALL SELECT 'dnc_numbers', count(*) FROM crefinder.dnc_numbers
UNION ALL SELECT 'tenant_settings', count(*) FROM crefinder.tenant_settings
UNION ALL SELECT 'webhook_events', count(*) FROM crefinder.webhook_events;
SELECT * FROM tenant_rows;
-- (held or not by quiet hours, depending on the hour the test runs)
SELECT status, coalesce(hold_reason, 'quiet_hours') = 'quiet_hours' AS not_held_otherwise FROM crefinder.outbound_events;
SELECT id AS a_message FROM crefinder.outbound_events \gset

-- Tenant B sees none of it ...
SET crefinder.user_id = 'bbbbbbbb-0000-4000-8000-000000000002';
SELECT * FROM tenant_rows;
SELECT crefinder.integration_config('twilio') IS NULL AS no_twilio_config;
-- ... changes none of it ...
UPDATE crefinder.property_records SET owner_name = 'Mallory';
DELETE FROM crefinder.property_records;
\set VERBOSITY sqlstate
SELECT crefinder.cancel(:a_message);
\set VERBOSITY default
SELECT crefinder.retry(ARRAY[:a_message]::bigint[]) AS retried;
SELECT crefinder.release_held_calls() AS released;
-- ... and cannot write rows in A's name, nor registry DNC rows.
INSERT INTO crefinder.property_records (user_id, owner_name)
VALUES ('aaaaaaaa-0000-4000-8000-000000000001', 'Mallory');
INSERT INTO crefinder.dnc_lists (kind, user_id, source) VALUES ('national', NULL, 'mine');
-- B's own rows are B's alone.
INSERT INTO crefinder.property_records (owner_name) VALUES ('Bea Owner');
SELECT owner_name FROM crefinder.property_records;
-- Without a tenant nothing is visible at all.
RESET crefinder.user_id;
SELECT count(*) FROM crefinder.property_records;
-- Raw deliveries are read-only.
SET crefinder.user_id = 'aaaaaaaa-0000-4000-8000-000000000001';
INSERT INTO crefinder.webhook_events (provider, verified, http_status, outcome)
VALUES ('twilio', true, 200, 'applied');

-- Registry DNC lists (loaded by a superuser) are visible to every tenant.
RESET ROLE;
INSERT INTO crefinder.dnc_lists (kind, user_id, source) VALUES ('national', NULL, 'national:test');
INSERT INTO crefinder.dnc_numbers (phone_number, list_id)
SELECT 13055550100, id FROM crefinder.dnc_lists WHERE source = 'national:test';
SET ROLE regress_crefinder_app;
SET crefinder.user_id = 'bbbbbbbb-0000-4000-8000-000000000002';
INSERT INTO crefinder.dnc_numbers (phone_number, list_id)
SELECT 13055550199, id FROM crefinder.dnc_lists WHERE source = 'national:test';
SELECT d.phone_number, l.kind FROM crefinder.dnc_numbers d JOIN crefinder.dnc_lists l ON l.id = d.list_id
ORDER BY d.phone_number;
SET crefinder.user_id = 'aaaaaaaa-0000-4000-8000-000000000001';
SELECT d.phone_number, l.kind FROM crefinder.dnc_numbers d JOIN crefinder.dnc_lists l ON l.id = d.list_id
ORDER BY d.phone_number;
-- Tenant A still has everything, unchanged.
SELECT * FROM tenant_rows;
SELECT owner_name FROM crefinder.property_records;
SELECT paused_at IS NULL AS not_paused FROM crefinder.integration_configs;
SELECT status FROM crefinder.outbound_events;
-- Superusers see all tenants.
RESET ROLE;
SELECT count(DISTINCT user_id) AS tenants_with_properties FROM crefinder.property_records;

-- Clean up.
DELETE FROM crefinder.outbound_events;
DELETE FROM crefinder.enrollments;
DELETE FROM crefinder.campaigns;
DELETE FROM crefinder.sequences;
DELETE FROM crefinder.templates;
DELETE FROM crefinder.property_records;
DELETE FROM crefinder.opt_outs;
DELETE FROM crefinder.email_suppressions;
DELETE FROM crefinder.consents;
DELETE FROM crefinder.dnc_lists;
DELETE FROM crefinder.tenant_settings;
DELETE FROM crefinder.integration_configs;
DROP VIEW tenant_rows;
SELECT crefinder.revoke_access('regress_crefinder_app');
DROP ROLE regress_crefinder_app;
RESET crefinder.user_id;
