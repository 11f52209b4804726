-- The extension installs without pg_cron, creates its schema and tables,
-- and turns on row-level security for every tenant table.
CREATE EXTENSION crefinder;

SELECT extname, extversion, nspname AS schema
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE extname IN ('crefinder', 'pg_cron') ORDER BY extname;

SELECT c.relname, c.relrowsecurity AS rls,
       EXISTS (SELECT 1 FROM pg_attribute a
               WHERE a.attrelid = c.oid AND a.attname = 'user_id' AND a.attnotnull) AS user_id_not_null
FROM pg_class c
WHERE c.relnamespace = 'crefinder'::regnamespace AND c.relkind = 'r'
ORDER BY c.relname;

-- Every table's data is dumped by pg_dump (extension configuration tables).
SELECT count(*) AS dumped_relations
FROM pg_extension, unnest(extconfig) AS t
WHERE extname = 'crefinder';

-- outbound_events has the columns of DESIGN section 2.
SELECT string_agg(attname, ', ' ORDER BY attnum) AS outbound_events_columns
FROM pg_attribute
WHERE attrelid = 'crefinder.outbound_events'::regclass AND attnum > 0 AND NOT attisdropped;

SELECT string_agg(attname, ', ' ORDER BY attnum) AS property_records_columns
FROM pg_attribute
WHERE attrelid = 'crefinder.property_records'::regclass AND attnum > 0 AND NOT attisdropped;

-- Settings exist with their defaults; the key is hidden from SHOW ALL.
SELECT name, setting, context FROM pg_settings
WHERE name LIKE 'crefinder.%' AND name NOT IN ('crefinder.secret_key', 'crefinder.database')
ORDER BY name;
SELECT count(*) AS key_listed_in_show_all FROM pg_show_all_settings() WHERE name = 'crefinder.secret_key';
SELECT length(current_setting('crefinder.secret_key')) AS key_length;

-- A typo in a crefinder setting is caught.
SET crefinder.bacth_size = 10;

-- The outbox refuses what the state machine does not have.
\set VERBOSITY terse
SET crefinder.user_id = '00000000-0000-4000-8000-000000000001';
INSERT INTO crefinder.outbound_events (channel, to_contact, status) VALUES ('fax', '+13055550123', 'queued');
INSERT INTO crefinder.outbound_events (channel, to_contact, status) VALUES ('sms', '+13055550123', 'lost');
INSERT INTO crefinder.outbound_events (channel, to_contact, status) VALUES ('sms', '+13055550123', 'blocked');
INSERT INTO crefinder.outbound_events (channel, to_contact, status, block_reason)
VALUES ('sms', '+13055550123', 'blocked', 'opted_out') RETURNING user_id, status, attempts, payload;
-- A message cannot point at another tenant's property.
INSERT INTO crefinder.property_records (owner_name) VALUES ('Ada Owner') RETURNING user_id, lead_status;
SET crefinder.user_id = '00000000-0000-4000-8000-000000000002';
INSERT INTO crefinder.outbound_events (channel, to_contact, property_id)
SELECT 'sms', '+13055550123', id FROM crefinder.property_records;
\set VERBOSITY default
RESET crefinder.user_id;
DELETE FROM crefinder.outbound_events;
DELETE FROM crefinder.property_records;
