-- The compliance decision, rule by rule.  Instants are UTC; the comment on
-- each case gives the recipient's local time.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET crefinder.user_id = 'c0000000-0000-4000-8000-000000000001';

-- check(channel, contact, at[, property]) -> reason (or 'allowed') and next_allowed_at
CREATE FUNCTION pg_temp.check(channel text, contact text, at timestamptz, property bigint DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(reason, 'allowed') || ' ' || coalesce(next_allowed_at::text, '-')
    FROM crefinder.can_contact(channel, contact, at, property)
$$;

-- Permanent reasons, in order.
SELECT pg_temp.check('sms', '555-0123', '2026-11-24 16:00');                 -- invalid_contact
SELECT pg_temp.check('email', 'owner@', '2026-11-24 16:00');                 -- invalid_contact
SELECT pg_temp.check('sms', NULL, '2026-11-24 16:00');                       -- invalid_contact
SELECT pg_temp.check('sms', '(212) 555-0101', '2026-11-24 16:00');            -- allowed (11:00 ET)

-- STOP on SMS blocks every phone channel; START restores texting.
SELECT crefinder.opt_out('sms', '212-555-0101', 'STOP') IS NOT NULL AS opted_out;
SELECT crefinder.opt_out('sms', '+12125550101', 'STOP again') =
       (SELECT id FROM crefinder.opt_outs WHERE contact = '+12125550101') AS same_opt_out;
SELECT pg_temp.check(c, '+12125550101', '2026-11-24 16:00') FROM unnest(ARRAY['sms', 'voice', 'whatsapp']) c;
SELECT crefinder.opt_in('sms', '+12125550101', 'START') AS lifted;
SELECT pg_temp.check('sms', '+12125550101', '2026-11-24 16:00');
-- An email opt-out blocks email only.
SELECT crefinder.opt_out('email', 'Owner@Example.com', 'unsubscribe link') IS NOT NULL;
SELECT pg_temp.check('email', 'owner@example.com', '2026-11-24 03:00');     -- opted_out (no window for email)
SELECT pg_temp.check('email', 'other@example.com', '2026-11-24 03:00');     -- allowed at any hour
SELECT crefinder.add_suppression('Bounced@Example.com', 'bounce', 'sendgrid', '550 5.1.1') IS NOT NULL;
SELECT pg_temp.check('email', 'bounced@example.com', '2026-11-24 16:00');   -- suppressed
SELECT crefinder.opt_in('email', 'owner@example.com', 'resubscribed');
SELECT pg_temp.check('email', 'owner@example.com', '2026-11-24 16:00');     -- allowed again

-- Do-Not-Call: blocked unless the tenant holds a consent for the number.
SELECT crefinder.dnc_add('+1 212 555 0102') AS added, crefinder.dnc_add('2125550102') AS again;
SELECT pg_temp.check('sms', '+12125550102', '2026-11-24 16:00');            -- dnc
SELECT crefinder.record_consent('+12125550102', 'sms', 'express_written', 'web form',
                                '{"ip": "203.0.113.7"}') IS NOT NULL AS consent;
SELECT pg_temp.check('sms', '+12125550102', '2026-11-24 16:00');            -- allowed: consent overrides DNC
SELECT pg_temp.check('whatsapp', '+12125550102', '2026-11-24 16:00');       -- dnc: consent was for sms
-- A registry list (loaded by a superuser) applies to every tenant.
COPY (SELECT '212,5550103' UNION ALL SELECT '' UNION ALL SELECT '2125550104'
      UNION ALL SELECT 'not a number' UNION ALL SELECT '112,5550105' UNION ALL SELECT '212,5550103')
    TO '/tmp/crefinder_regress_dnc.txt';
SELECT crefinder.dnc_load('/tmp/crefinder_regress_dnc.txt', 'national:2026-11') AS loaded;
SELECT crefinder.dnc_load('/tmp/crefinder_regress_dnc.txt', 'national:2026-11') AS reloaded;
SELECT crefinder.dnc_load('/tmp/crefinder_regress_dnc.txt', 'federal');
SELECT crefinder.dnc_load('/tmp/no_such_file.txt', 'national');
SELECT kind, user_id IS NULL AS registry, source FROM crefinder.dnc_lists ORDER BY id;
SET crefinder.user_id = 'c0000000-0000-4000-8000-000000000002';
SELECT pg_temp.check('sms', c, '2026-11-24 16:00')
FROM unnest(ARRAY['+12125550103', '+12125550104', '+12125550102']) c;   -- dnc, dnc, allowed (other tenant's list)
SET crefinder.user_id = 'c0000000-0000-4000-8000-000000000001';

-- AI voice needs a consent by default; an opt-out revokes it.
SELECT pg_temp.check('voice', '+12125550106', '2026-11-24 16:00');          -- no_consent
SELECT crefinder.record_consent('+12125550106', 'voice', 'express_written', 'signed form', '{}') IS NOT NULL;
SELECT pg_temp.check('voice', '+12125550106', '2026-11-24 16:00');          -- allowed
SELECT crefinder.opt_out('sms', '+12125550106', 'STOP') IS NOT NULL;
SELECT crefinder.opt_in('sms', '+12125550106', 'START');
SELECT pg_temp.check('voice', '+12125550106', '2026-11-24 16:00');          -- no_consent: revoked by STOP
INSERT INTO crefinder.tenant_settings (voice_requires_consent) VALUES (false);
SELECT pg_temp.check('voice', '+12125550106', '2026-11-24 16:00');          -- allowed by tenant policy
DELETE FROM crefinder.tenant_settings;

-- No zone known for the number.
SELECT pg_temp.check('sms', '+18005550123', '2026-11-24 16:00');            -- unknown_timezone

-- Quiet hours: federal 08-21, tenant 09-20 (default), in the recipient's zone.
SELECT pg_temp.check('sms', '+12125550107', '2026-11-24 13:59');  -- 08:59 ET: quiet until 09:00 ET
SELECT pg_temp.check('sms', '+12125550107', '2026-11-24 14:00');  -- 09:00 ET: allowed
SELECT pg_temp.check('sms', '+12125550107', '2026-11-25 00:59');  -- 19:59 ET: allowed
SELECT pg_temp.check('sms', '+12125550107', '2026-11-25 01:00');  -- 20:00 ET: quiet until 09:00 next day
SELECT pg_temp.check('sms', '+12125550107', '2026-11-25 04:30');  -- 23:30 ET, across midnight

-- Multi-zone area codes: every zone must be inside the window.
SELECT pg_temp.check('sms', '+18505550123', '2026-11-24 14:30');  -- 850 FL: 09:30 ET but 08:30 CT
SELECT pg_temp.check('sms', '+18505550123', '2026-11-25 00:30');  -- 19:30 ET / 18:30 CT: allowed
SELECT pg_temp.check('sms', '+18505550123', '2026-11-25 01:05');  -- 20:05 ET: quiet until 09:00 CT
SELECT pg_temp.check('sms', '+12085550123', '2026-11-24 16:30');  -- 208 ID: 09:30 MT, 08:30 PT
SELECT pg_temp.check('sms', '+12085550123', '2026-11-25 02:30');  -- 19:30 MT, 18:30 PT: allowed
SELECT pg_temp.check('sms', '+12085550123', '2026-11-25 03:05');  -- 20:05 MT: quiet until 09:00 PT
SELECT pg_temp.check('sms', '+16055550123', '2026-11-24 15:30');  -- 605 SD: 09:30 CT, 08:30 MT
SELECT pg_temp.check('sms', '+16055550123', '2026-11-25 02:05');  -- 20:05 CT: quiet until 09:00 MT
SELECT pg_temp.check('sms', '+19285550123', '2026-07-01 15:30');  -- 928 AZ summer: 08:30 MST, 09:30 MDT
SELECT pg_temp.check('sms', '+19285550123', '2026-07-02 02:30');  -- 19:30 MST, 20:30 MDT
SELECT pg_temp.check('sms', '+19285550123', '2026-12-01 16:30');  -- 928 winter: both 09:30 MST: allowed

-- Arizona (no DST), Hawaii, Alaska.
SELECT pg_temp.check('sms', '+16025550123', '2026-07-01 15:30');  -- 08:30 MST in July
SELECT pg_temp.check('sms', '+16025550123', '2026-01-15 15:30');  -- 08:30 MST in January too
SELECT pg_temp.check('sms', '+18085550123', '2026-07-01 18:30');  -- 08:30 HST
SELECT pg_temp.check('sms', '+18085550123', '2026-07-02 05:59');  -- 19:59 HST: allowed
SELECT pg_temp.check('sms', '+19075550123', '2026-07-01 18:00');  -- 907: 10:00 AKDT but 08:00 in Honolulu
SELECT pg_temp.check('sms', '+19075550123', '2026-07-02 03:59');  -- 19:59 AKDT: allowed
SELECT pg_temp.check('sms', '+19075550123', '2026-07-02 04:00');  -- 20:00 AKDT: quiet

-- Both DST transitions (2026-03-08 and 2026-11-01 in the US).
SELECT pg_temp.check('sms', '+12125550107', '2026-03-08 03:00');  -- Sat 22:00 EST: next Sun 09:00 EDT = 13:00 UTC
SELECT pg_temp.check('sms', '+12125550107', '2026-03-08 13:30');  -- Sun 09:30 EDT: allowed
SELECT pg_temp.check('sms', '+12125550107', '2026-11-01 04:00');  -- Sun 00:00 EDT: next 09:00 EST = 14:00 UTC
SELECT pg_temp.check('sms', '+12125550107', '2026-11-01 13:30');  -- 08:30 EST (would be 09:30 EDT): quiet
SELECT pg_temp.check('sms', '+16025550123', '2026-03-08 15:30');  -- Arizona ignores the change: 08:30 MST

-- Texas: Sundays 12:00-21:00 (tenant 20:00).
SELECT pg_temp.check('sms', '+12145550123', '2026-11-22 16:00');  -- Sun 10:00 CT: quiet until 12:00 CT
SELECT pg_temp.check('sms', '+12145550123', '2026-11-22 18:30');  -- Sun 12:30 CT: allowed
SELECT pg_temp.check('sms', '+12145550123', '2026-11-23 15:30');  -- Mon 09:30 CT: allowed

-- Alabama: no Sundays, no holidays (federal ones computed, state ones listed).
SELECT pg_temp.check('sms', '+12055550123', '2026-11-21 15:30');  -- Sat 09:30 CT: allowed
SELECT pg_temp.check('sms', '+12055550123', '2026-11-22 16:00');  -- Sun: day_restricted until Mon 09:00
SELECT pg_temp.check('sms', '+12055550123', '2026-11-22 03:00');  -- Sat 21:00 CT: quiet, then Sunday: Mon 09:00
SELECT pg_temp.check('sms', '+12055550123', '2026-11-26 16:00');  -- Thanksgiving: until Fri 09:00
SELECT pg_temp.check('sms', '+12055550123', '2026-07-03 16:00');  -- Independence Day observed (Fri), then the
                                                                   -- holiday (Sat), then Sunday: Mon 09:00
INSERT INTO crefinder.state_holidays VALUES ('AL', '2026-11-23', 'test state holiday');
SELECT pg_temp.check('sms', '+12055550123', '2026-11-22 16:00');  -- Sun, then the state holiday: Tue 09:00
DELETE FROM crefinder.state_holidays;
SELECT pg_temp.check('sms', '+16015550123', '2026-11-22 16:00');  -- Mississippi: no Sundays
SELECT pg_temp.check('sms', '+16015550123', '2026-11-26 16:00');  -- but holidays are allowed

-- The tenant narrows the legal window, never widens it.
INSERT INTO crefinder.tenant_settings (sms_window_start, sms_window_end) VALUES ('10:00', '12:00');
SELECT pg_temp.check('sms', '+12125550107', '2026-11-24 14:30');  -- 09:30 ET: until 10:00
SELECT pg_temp.check('sms', '+12125550107', '2026-11-24 17:00');  -- 12:00 ET: until tomorrow 10:00
SELECT pg_temp.check('whatsapp', '+12125550107', '2026-11-24 14:30');  -- other channels keep their window
UPDATE crefinder.tenant_settings SET sms_window_start = '06:00', sms_window_end = '23:00';
SELECT pg_temp.check('sms', '+13055550123', '2026-11-24 12:00');  -- 07:00 ET: FL opens at 08:00
SELECT pg_temp.check('sms', '+13055550123', '2026-11-25 01:30');  -- 20:30 ET: FL closes at 20:00
DELETE FROM crefinder.tenant_settings;

-- Frequency caps: Florida allows 3 messages (calls and texts) in 24 hours.
INSERT INTO crefinder.outbound_events (channel, to_contact, status, sent_at, next_attempt_at)
VALUES ('sms', '+13055550124', 'delivered', '2026-11-24 14:00', '2026-11-24 14:00'),
       ('whatsapp', '+13055550124', 'sent', '2026-11-24 15:00', '2026-11-24 15:00');
SELECT pg_temp.check('sms', '+13055550124', '2026-11-24 16:00');  -- the third: allowed
INSERT INTO crefinder.outbound_events (channel, to_contact, status, sent_at, next_attempt_at)
VALUES ('sms', '+13055550124', 'sent', '2026-11-24 16:00', '2026-11-24 16:00');
SELECT pg_temp.check('sms', '+13055550124', '2026-11-24 17:00');  -- the fourth: until the first is 24 h old
SELECT pg_temp.check('sms', '+13055550124', '2026-11-25 14:00');  -- exactly then: allowed
-- Failed and cancelled messages do not count; queued ones count when they go out.
UPDATE crefinder.outbound_events SET status = 'failed' WHERE sent_at = '2026-11-24 15:00';
SELECT pg_temp.check('sms', '+13055550124', '2026-11-24 17:00');  -- allowed again
INSERT INTO crefinder.outbound_events (channel, to_contact, status, next_attempt_at)
VALUES ('sms', '+13055550124', 'queued', '2026-11-24 16:30');
SELECT pg_temp.check('sms', '+13055550124', '2026-11-24 17:00');  -- capped: until 14:00 tomorrow
-- The same number outside Florida's rules has no state cap (New York).
INSERT INTO crefinder.outbound_events (channel, to_contact, status, sent_at, next_attempt_at)
SELECT 'sms', '+12125550108', 'sent', t, t
FROM generate_series(timestamptz '2026-11-24 14:00', '2026-11-24 16:00', '30 minutes') t;
SELECT pg_temp.check('sms', '+12125550108', '2026-11-24 17:00');  -- 5 sent: allowed
-- The tenant's own cap.
INSERT INTO crefinder.tenant_settings (max_messages_per_24h) VALUES (5);
SELECT pg_temp.check('sms', '+12125550108', '2026-11-24 17:00');  -- until the first is 24 h old
DELETE FROM crefinder.tenant_settings;
-- Maine: one automated call per 8 hours; texts are not counted.
INSERT INTO crefinder.tenant_settings (voice_requires_consent) VALUES (false);
INSERT INTO crefinder.outbound_events (channel, to_contact, status, sent_at, next_attempt_at)
VALUES ('voice', '+12075550123', 'sent', '2026-11-24 15:00', '2026-11-24 15:00');
SELECT pg_temp.check('voice', '+12075550123', '2026-11-24 16:00');  -- until 23:00 UTC
SELECT pg_temp.check('sms', '+12075550123', '2026-11-24 16:00');    -- allowed
SELECT pg_temp.check('voice', '+12075550123', '2026-11-25 00:30');  -- 19:30 ET: allowed
DELETE FROM crefinder.tenant_settings;

-- The owner's mailing address adds its zone and its state's rules.
INSERT INTO crefinder.property_records (owner_name, owner_phone, mailing_state, mailing_zip)
VALUES ('Tex Owner', '+13055550125', 'TX', '75201'),
       ('Al Owner', '+13055550125', 'AL', '35203'),
       ('No Zone', '+18005550126', NULL, '33101');
SELECT pg_temp.check('sms', '+13055550125', '2026-11-22 16:00', id) FROM crefinder.property_records
WHERE owner_name = 'Tex Owner';  -- Sun 11:00 ET / 10:00 CT: TX Sundays open at 12:00 CT
SELECT pg_temp.check('sms', '+13055550125', '2026-11-22 16:00', id) FROM crefinder.property_records
WHERE owner_name = 'Al Owner';   -- Sunday under Alabama's rules
SELECT pg_temp.check('sms', '+18005550126', '2026-11-24 16:00', id) FROM crefinder.property_records
WHERE owner_name = 'No Zone';    -- toll-free number, zone from the mailing ZIP
SELECT pg_temp.check('sms', '+13055550125', '2026-11-22 16:00', -1);  -- no such property

-- Operator overrides of a state's rule win; shipped rules are read-only.
UPDATE crefinder.calling_rules SET window_start = '07:00' WHERE region = 'FL';
INSERT INTO crefinder.calling_rules (region, source, window_start, window_end)
VALUES ('NY', 'operator', '10:00', '19:00');
SELECT pg_temp.check('sms', '+12125550107', '2026-11-24 14:30');  -- 09:30 ET: until 10:00 (operator NY rule)
DELETE FROM crefinder.calling_rules WHERE source = 'operator';
INSERT INTO crefinder.calling_rules (region, source, window_start, window_end, day_windows)
VALUES ('NJ', 'operator', '09:00', '20:00', '{"sun": ["13:00", "12:00"]}');

-- Bad arguments.
SELECT * FROM crefinder.can_contact('fax', '+12125550107', '2026-11-24 16:00');
SELECT * FROM crefinder.can_contact('sms', '+12125550107', NULL);

-- scrub() answers exactly as can_contact() does, in input order.
SELECT s.contact, s.allowed, s.reason, s.next_allowed_at,
       (s.allowed, s.reason, s.next_allowed_at) IS NOT DISTINCT FROM
       (c.allowed, c.reason, c.next_allowed_at) AS same_as_can_contact
FROM crefinder.scrub('sms', ARRAY['+12125550101', '+12125550102', '+12125550103', 'bad', NULL,
                                  '+18505550123', '+13055550124', '+12055550123', '+18005550123',
                                  '+12125550101', '+442079460958'],
                     '2026-11-22 16:00') WITH ORDINALITY AS s
LEFT JOIN LATERAL crefinder.can_contact('sms', s.contact, '2026-11-22 16:00') c ON true
ORDER BY s.ordinality;
SELECT count(*) FROM crefinder.scrub('sms', '{}', now());

-- Clean up.
DELETE FROM crefinder.outbound_events;
DELETE FROM crefinder.property_records;
DELETE FROM crefinder.opt_outs;
DELETE FROM crefinder.consents;
DELETE FROM crefinder.email_suppressions;
DELETE FROM crefinder.dnc_lists;
SELECT count(*) AS dnc_numbers_left FROM crefinder.dnc_numbers;
RESET crefinder.user_id;
