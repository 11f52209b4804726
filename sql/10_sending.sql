-- Queueing messages: validation, provider settings, compliance at enqueue,
-- transactions, cancel.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
\set SHOW_CONTEXT never
SET crefinder.user_id = 'f0000000-0000-4000-8000-000000000001';

-- No settings for the provider: a clear error, nothing queued.
SELECT crefinder.send_sms('+12125550101', 'Hello');
SELECT crefinder.send_email('owner@example.com', 'Hello', text_body => 'Hi');
SELECT crefinder.start_call('+12125550101', 'asst-1');

SELECT crefinder.configure('twilio', '{"accountSid": "AC0123456789abcdef0123456789abcdef",
    "authToken": "0123456789abcdef0123456789abcdef"}') IS NOT NULL;
SELECT crefinder.send_sms('+12125550101', 'Hello');
SELECT crefinder.configure('twilio', '{"accountSid": "AC0123456789abcdef0123456789abcdef",
    "authToken": "0123456789abcdef0123456789abcdef", "phoneNumber": "+13055550100"}') IS NOT NULL;
SELECT crefinder.send_whatsapp('+12125550101', 'Hello');
SELECT crefinder.configure('sendgrid', '{"apiKey": "SG.test.key", "fromEmail": "deals@example.com"}') IS NOT NULL;
SELECT crefinder.configure('vapi', '{"apiKey": "vapi-key-1", "orgId": "org-1",
    "phoneNumber": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"}') IS NOT NULL;

-- Bad input: 22023 with the reason.
\set VERBOSITY default
SELECT crefinder.send_sms('555-0101', 'Hello');
SELECT crefinder.send_sms('+12125550101', '   ');
SELECT crefinder.send_sms('+12125550101', repeat('x', 1601));
SELECT crefinder.send_sms('+12125550101', 'Hello', media_urls => array_fill('https://cdn.example.com/a.jpg'::text, ARRAY[11]));
SELECT crefinder.send_sms('+12125550101', 'Hello', media_urls => ARRAY['http://cdn.example.com/a.jpg']);
SELECT crefinder.send_sms('+12125550101', 'Hello', send_at => now() - interval '1 hour');
SELECT crefinder.send_email('not-an-email', 'Hello', text_body => 'Hi');
SELECT crefinder.send_email('owner@example.com', E'Hello\r\nBcc: x@example.com', text_body => 'Hi');
SELECT crefinder.send_email('owner@example.com', 'Hello');
SELECT crefinder.send_email('owner@example.com', 'Hello', text_body => 'Hi', categories => ARRAY['a', 'a']);
SELECT crefinder.send_email('owner@example.com', 'Hello', text_body => 'Hi', template_data => '[1]');
SELECT crefinder.start_call('+12125550101');
SELECT crefinder.start_call('+12125550101', 'asst-1', metadata => '"x"');
SELECT count(*) AS nothing_queued FROM crefinder.outbound_events;

-- Allowed: queued for the instant asked (Tuesday 12:00 in New York).
SELECT crefinder.send_sms('(212) 555-0101', 'Hello from Acme', send_at => '2030-06-04 16:00',
                          media_urls => ARRAY['https://cdn.example.com/a.jpg']) > 0 AS queued;
-- Quiet hours: held until the window opens, not dropped.
SELECT crefinder.send_sms('+12125550102', 'Late hello', send_at => '2030-06-04 02:00') > 0 AS held;
-- Opted out: stored as blocked with the reason.
SELECT crefinder.opt_out('sms', '+12125550103', 'STOP') > 0;
SELECT crefinder.send_sms('+12125550103', 'Hello again', send_at => '2030-06-04 16:00') > 0 AS blocked;
-- WhatsApp, email and a call.
SELECT crefinder.configure('twilio', '{"accountSid": "AC0123456789abcdef0123456789abcdef",
    "authToken": "0123456789abcdef0123456789abcdef", "phoneNumber": "+13055550100",
    "whatsappNumber": "whatsapp:+13055550199"}') IS NOT NULL;
SELECT crefinder.send_whatsapp('whatsapp:+12125550104', 'Hola', send_at => '2030-06-04 16:00') > 0;
SELECT crefinder.send_email(' Owner@Example.COM ', 'About 12 Main St', html => '<p>Hi</p>',
                            text_body => 'Hi', categories => ARRAY['outreach'],
                            send_at => '2030-06-04 16:00') > 0;
SELECT crefinder.configure('sendgrid', '{"apiKey": "SG.test.key", "fromEmail": "deals@example.com",
    "defaultTemplateId": "d-0123456789abcdef0123456789abcdef"}') IS NOT NULL;
SELECT crefinder.send_email('owner2@example.com', 'Template', template_data => '{"owner_name": "Ada"}') > 0;
SELECT crefinder.start_call('+12125550105', 'asst-1', '{"note": "first call"}') > 0 AS no_consent;
SELECT crefinder.record_consent('+12125550105', 'voice', 'express_written', 'web form', '{}') > 0;
SELECT crefinder.start_call('+12125550105', 'asst-1', '{"note": "first call"}') > 0 AS with_consent;

SELECT channel, to_contact, status, block_reason,
       -- a call goes out now, which may be inside or outside quiet hours
       CASE WHEN channel = 'voice' THEN 'now or in the window' ELSE hold_reason END AS hold_reason,
       CASE WHEN next_attempt_at > now() + interval '1 year' THEN next_attempt_at::text ELSE 'now' END AS due,
       payload
FROM crefinder.outbound_events ORDER BY id;

-- A rolled-back transaction queues nothing.
BEGIN;
SELECT crefinder.send_sms('+12125550106', 'Never sent') > 0;
ROLLBACK;
SELECT count(*) FROM crefinder.outbound_events WHERE to_contact = '+12125550106';

-- Cancel: only a message still waiting.
SELECT crefinder.cancel(id) FROM crefinder.outbound_events WHERE to_contact = '+12125550101';
SELECT crefinder.cancel(id) FROM crefinder.outbound_events WHERE to_contact = '+12125550101';
SELECT crefinder.cancel(id) FROM crefinder.outbound_events WHERE to_contact = '+12125550103';
SELECT crefinder.cancel(-1);
SELECT crefinder.cancel(NULL);
SELECT crefinder.send_sms(NULL, 'x');
SELECT crefinder.send_sms('+12125550101', 'x', property_id => 424242);
SELECT crefinder.send_sms('+12125550101', 'x', campaign_id => 424242);
SELECT crefinder.record_consent('+12125550101', 'sms', 'bogus', 'web form');
SELECT crefinder.opt_out(NULL, '+12125550101');
SELECT crefinder.dnc_add(NULL);
SELECT to_contact, status FROM crefinder.outbound_events WHERE to_contact IN ('+12125550101', '+12125550103')
ORDER BY id;

DELETE FROM crefinder.outbound_events;
DELETE FROM crefinder.opt_outs;
DELETE FROM crefinder.consents;
DELETE FROM crefinder.integration_configs;
RESET crefinder.user_id;
