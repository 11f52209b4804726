-- Webhook handlers: what they answer to what cannot be verified or parsed
-- (the signed paths are tested end to end in test/test_webhooks.py).
SET crefinder.user_id = 'aaaaaaaa-0000-4000-8000-0000000000a1';

-- TwiML, escaped
SELECT crefinder.twiml(NULL) AS empty, crefinder.twiml('Reply <STOP> & "go" ''now''') AS message;

-- Twilio's keywords are whole messages, in any case, trimmed
SELECT body, crefinder.text_keyword(body) AS keyword
FROM unnest(ARRAY['STOP', ' stop ', 'Stop.', 'StopAll', 'unsubscribe', 'opt out', 'START', 'yes', 'unstop',
                  'HELP', 'info', 'stop texting me', 'nonstop', '']) AS body;

-- nothing to go by: 400, nothing raised
SELECT crefinder.handle_twilio_webhook(NULL, NULL, NULL) AS no_body;
SELECT crefinder.handle_twilio_webhook('https://app.example.com/t', 'MessageSid=%zz', 'x') AS malformed;
SELECT crefinder.handle_twilio_webhook('https://app.example.com/t', 'MessageSid=SM1&AccountSid=AC' || repeat('0', 32),
                                       'x') AS unknown_account;
SELECT crefinder.handle_sendgrid_events('[]', 'x', '1', NULL) AS no_tenant;
SELECT crefinder.handle_sendgrid_events('[]', 'x', '1', 'aaaaaaaa-0000-4000-8000-0000000000a1') AS unknown_tenant;
SELECT crefinder.handle_vapi_message('{', '{}') AS not_json;
SELECT crefinder.handle_vapi_message('{"message": {"type": "status-update"}}', '{}') AS no_tenant_named;
SET crefinder.webhook_max_bytes = 1024;
SELECT crefinder.handle_vapi_message(repeat(' ', 2000), '{}') AS too_large;
RESET crefinder.webhook_max_bytes;

-- each refusal is recorded, without a tenant
RESET crefinder.user_id;
SELECT provider, user_id, verified, http_status, outcome, error FROM crefinder.webhook_events ORDER BY id;

-- replays: timestamps further from now than crefinder.webhook_tolerance
SELECT crefinder.webhook_stale(extract(epoch FROM now())::bigint::text) AS now_stale,
       crefinder.webhook_stale((extract(epoch FROM now())::bigint - 600)::text) AS old_stale,
       crefinder.webhook_stale((extract(epoch FROM now())::bigint * 1000)::text) AS ms_stale,
       crefinder.webhook_stale('soon') AS garbage_stale;

-- only the handlers (and nothing else) for the web route's role
CREATE ROLE regress_webhook_route;
SELECT crefinder.grant_webhook_access('regress_webhook_route');
SELECT p.oid::regprocedure AS executable
FROM pg_proc p WHERE p.pronamespace = 'crefinder'::regnamespace
  AND has_function_privilege('regress_webhook_route', p.oid, 'EXECUTE') ORDER BY 1;
SELECT count(*) AS readable_tables FROM pg_class c
WHERE c.relnamespace = 'crefinder'::regnamespace AND c.relkind IN ('r', 'v')
  AND has_table_privilege('regress_webhook_route', c.oid, 'SELECT');
DROP OWNED BY regress_webhook_route;
DROP ROLE regress_webhook_route;
DELETE FROM crefinder.webhook_events;
