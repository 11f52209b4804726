"""The dispatcher end to end against the sandbox provider: what it sends
(field by field), what it records, transactions, faults and retries.

The dispatcher serves crefinder.database (contrib_regression in the test
cluster); these tests point the provider URLs at the sandbox and enable it
for their duration."""
import base64
import decimal
import json
import os
import re
import time
from urllib.parse import parse_qs

import jsonschema
import psycopg2
import psycopg2.extras

from cluster import Sandbox, TEST_DATABASE

TENANT = "99999999-0000-4000-8000-000000000001"
ACCOUNT = "AC" + "1" * 32
TOKEN = "ab" * 16
SENDGRID_KEY = "SG.sandbox.key-0001"
VAPI_KEY = "vapi-sandbox-key-0001"
PHONE_ID = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"


CONTRACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "contracts")


def contract(name):
    with open(os.path.join(CONTRACTS, name)) as f:
        return json.load(f)


def check_twilio_contract(form):
    """A Messages.json form body against Twilio's CreateMessageRequest."""
    schema = contract("twilio_create_message.json")
    unknown = set(form) - set(schema["properties"])
    assert not unknown, "parameters Twilio does not have: %r" % unknown
    doc = {k: v if schema["properties"][k].get("type") == "array" else v[0] for k, v in form.items()}
    jsonschema.Draft202012Validator(schema).validate(doc)


def check_sendgrid_contract(body):
    jsonschema.Draft202012Validator(contract("sendgrid_mail_send.json")).validate(body)


def check_vapi_contract(body):
    jsonschema.Draft7Validator(contract("vapi_create_call.json")).validate(body)


class Setup:
    def __init__(self, cluster):
        self.cluster = cluster
        self.sandbox = Sandbox()
        try:
            self.prepare()
        except BaseException:
            self.sandbox.stop()
            raise

    def prepare(self):
        cluster = self.cluster
        self.sandbox.call("POST", "/_sandbox/credentials",
                          {"twilio": [[ACCOUNT, TOKEN]], "sendgrid": [SENDGRID_KEY], "vapi": [VAPI_KEY]})
        admin = cluster.connect(dbname="postgres")
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DATABASE,))
            if cur.fetchone() is None:
                cur.execute("CREATE DATABASE %s" % TEST_DATABASE)
            for name in ["twilio", "sendgrid", "vapi"]:
                cur.execute("ALTER SYSTEM SET crefinder.%s_api_url = %%s" % name, (self.sandbox.url,))
            cur.execute("ALTER SYSTEM SET crefinder.dispatcher_enabled = on")
            cur.execute("ALTER SYSTEM SET crefinder.max_attempts = 3")
            cur.execute("SELECT pg_reload_conf()")
        admin.close()
        self.conn = cluster.connect(dbname=TEST_DATABASE)
        self.cur = self.conn.cursor()
        self.cur.execute("CREATE EXTENSION IF NOT EXISTS crefinder")
        self.cur.execute("DELETE FROM crefinder.outbound_events")
        self.cur.execute("DELETE FROM crefinder.property_records")
        self.cur.execute("DELETE FROM crefinder.integration_configs")
        self.cur.execute("DELETE FROM crefinder.opt_outs")
        self.cur.execute("DELETE FROM crefinder.consents")
        self.cur.execute("DELETE FROM crefinder.tenant_settings")
        self.cur.execute("SET crefinder.user_id = %s", (TENANT,))
        # Always inside the window: the tests are about sending, not quiet hours.
        self.cur.execute("INSERT INTO crefinder.tenant_settings (voice_window_start, voice_window_end, "
                         "sms_window_start, sms_window_end, whatsapp_window_start, whatsapp_window_end) "
                         "VALUES ('00:00', '23:59:59', '00:00', '23:59:59', '00:00', '23:59:59')")
        # Every region's window all day, whatever the hour the tests run at.
        self.cur.execute("INSERT INTO crefinder.calling_rules (region, source, window_start, window_end) "
                         "SELECT region, 'operator', '00:00', '23:59:59' FROM crefinder.calling_rules "
                         "WHERE source = 'default' ON CONFLICT DO NOTHING")
        self.configure_all()
        self.wait_dispatcher()

    def configure_all(self):
        self.configure("twilio", {"accountSid": ACCOUNT, "authToken": TOKEN, "phoneNumber": "+13055550100",
                                  "whatsappNumber": "+13055550199",
                                  "smsWebhookUrl": "https://app.example.com/hooks/twilio"})
        self.configure("sendgrid", {"apiKey": SENDGRID_KEY, "fromEmail": "deals@example.com",
                                    "fromName": "Example Capital", "replyToEmail": "replies@example.com",
                                    "unsubscribeGroupId": 4242, "clickTracking": False, "ipPool": "outreach"})
        self.configure("vapi", {"apiKey": VAPI_KEY, "orgId": "org-1", "phoneNumber": PHONE_ID,
                                "assistantId": "asst-default", "maxCallDuration": 600})

    def configure(self, provider, config):
        self.cur.execute("SELECT crefinder.configure(%s, %s)", (provider, psycopg2.extras.Json(config)))

    def wait_dispatcher(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.cur.execute("SELECT bool_and(state IN ('idle', 'sending')) FROM crefinder.dispatcher_status")
            if self.cur.fetchone()[0]:
                return
            time.sleep(0.1)
        raise AssertionError("the dispatcher did not start")

    def wait_status(self, message_id, statuses, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.cur.execute("SELECT status FROM crefinder.outbound_events WHERE id = %s", (message_id,))
            status = self.cur.fetchone()[0]
            if status in statuses:
                return status
            time.sleep(0.05)
        raise AssertionError("message %s still %s: %r" % (message_id, status, self.row(message_id)))

    def row(self, message_id):
        self.cur.execute("SELECT status, provider_message_id, provider_status, attempts, last_error "
                         "FROM crefinder.outbound_events WHERE id = %s", (message_id,))
        return self.cur.fetchone()

    def requests_to(self, path_part):
        return [r for r in self.sandbox.requests() if path_part in r["path"]]

    def close(self):
        self.conn.close()
        admin = self.cluster.connect(dbname="postgres")
        with admin.cursor() as cur:
            for name in ["twilio_api_url", "sendgrid_api_url", "vapi_api_url", "dispatcher_enabled", "max_attempts"]:
                cur.execute("ALTER SYSTEM RESET crefinder.%s" % name)
            cur.execute("SELECT pg_reload_conf()")
        admin.close()
        self.sandbox.stop()


def test_each_channel_end_to_end(cluster):
    s = Setup(cluster)
    try:
        cur = s.cur
        cur.execute("INSERT INTO crefinder.property_records (owner_name, owner_phone, property_address, "
                    "property_city, property_state, property_zip) VALUES "
                    "('Ada Owner', '+12125550101', '12 Main St', 'Miami', 'FL', '33101') RETURNING id")
        property_id = cur.fetchone()[0]
        cur.execute("SELECT crefinder.record_consent('+12125550104', 'voice', 'express_written', 'form', '{}')")
        cur.execute("SELECT crefinder.set_tenant_settings('{\"email_cost_cents\": 0.095}')")
        cur.execute("SELECT crefinder.send_sms('+12125550101', 'Hi Ada & co = 100%%', %s, NULL, "
                    "ARRAY['https://cdn.example.com/a.jpg', 'https://cdn.example.com/b.jpg'])", (property_id,))
        sms = cur.fetchone()[0]
        cur.execute("SELECT crefinder.send_whatsapp('+12125550102', 'Hola')")
        whatsapp = cur.fetchone()[0]
        cur.execute("SELECT crefinder.send_email('owner@example.com', 'About 12 Main St', "
                    "html => '<p>Hi</p>', text_body => 'Hi', categories => ARRAY['outreach'])")
        email = cur.fetchone()[0]
        cur.execute("SELECT crefinder.start_call('+12125550104', 'asst-1', '{\"note\": \"first\"}', %s)",
                    (property_id,))
        call = cur.fetchone()[0]
        for m in (sms, whatsapp, email, call):
            assert s.wait_status(m, ("sent", "failed")) == "sent", s.row(m)
        # an email's price is the tenant's email_cost_cents once sent; a
        # text's is Twilio's, not known yet
        cur.execute("SELECT id, cost_cents FROM crefinder.outbound_events WHERE id IN (%s, %s) ORDER BY id",
                    (sms, email))
        assert dict(cur.fetchall()) == {sms: None, email: decimal.Decimal("0.0950")}

        # Twilio SMS, field by field.
        basic = "Basic " + base64.b64encode(("%s:%s" % (ACCOUNT, TOKEN)).encode()).decode()
        twilio = s.requests_to("/Messages.json")
        assert len(twilio) == 2
        for r in twilio:
            assert r["method"] == "POST"
            assert r["path"] == "/2010-04-01/Accounts/%s/Messages.json" % ACCOUNT
            assert r["headers"]["authorization"] == basic
            assert r["headers"]["content-type"] == "application/x-www-form-urlencoded"
        form = {r_form["To"][0]: r_form for r_form in (parse_qs(r["body"]) for r in twilio)}
        for f in form.values():
            check_twilio_contract(f)
        f = form["+12125550101"]
        assert f["From"] == ["+13055550100"] and f["Body"] == ["Hi Ada & co = 100%"]
        assert f["MediaUrl"] == ["https://cdn.example.com/a.jpg", "https://cdn.example.com/b.jpg"]
        assert f["StatusCallback"] == ["https://app.example.com/hooks/twilio?crefinder_message_id=%d" % sms]
        w = form["whatsapp:+12125550102"]
        assert w["From"] == ["whatsapp:+13055550199"] and w["Body"] == ["Hola"]
        status, sid, pstatus, attempts, error = s.row(sms)
        assert re.fullmatch(r"SM[0-9a-f]{32}", sid) and pstatus == "queued" and attempts == 1 and error is None

        # SendGrid.
        (mail,) = s.requests_to("/v3/mail/send")
        assert mail["headers"]["authorization"] == "Bearer " + SENDGRID_KEY
        body = json.loads(mail["body"])
        check_sendgrid_contract(body)
        p = body["personalizations"][0]
        assert p["to"] == [{"email": "owner@example.com"}]
        assert p["custom_args"] == {"crefinder_message_id": str(email), "crefinder_tenant": TENANT}
        assert body["from"] == {"email": "deals@example.com", "name": "Example Capital"}
        assert body["reply_to"] == {"email": "replies@example.com"}
        assert body["subject"] == "About 12 Main St"
        assert body["content"] == [{"type": "text/plain", "value": "Hi"}, {"type": "text/html", "value": "<p>Hi</p>"}]
        assert body["categories"] == ["outreach"] and body["asm"] == {"group_id": 4242}
        assert body["ip_pool_name"] == "outreach"
        assert body["tracking_settings"] == {"click_tracking": {"enable": False},
                                             "open_tracking": {"enable": True},
                                             "subscription_tracking": {"enable": True}}
        assert s.row(email)[1]

        # Vapi.
        (vapi,) = s.requests_to("/call")
        assert vapi["headers"]["authorization"] == "Bearer " + VAPI_KEY
        body = json.loads(vapi["body"])
        check_vapi_contract(body)
        assert body["assistantId"] == "asst-1" and body["phoneNumberId"] == PHONE_ID
        assert body["customer"] == {"number": "+12125550104", "name": "Ada Owner"}
        o = body["assistantOverrides"]
        assert o["maxDurationSeconds"] == 600 if "maxDurationSeconds" in o else body["maxDurationSeconds"] == 600
        assert o["variableValues"]["property_address"] == "12 Main St"
        assert o["metadata"]["note"] == "first"
        assert o["metadata"]["crefinder_message_id"] == str(call)
        assert o["metadata"]["crefinder_tenant"] == TENANT
        assert o["metadata"]["crefinder_property_id"] == str(property_id)
        assert re.fullmatch(r"[0-9a-f-]{36}", s.row(call)[1])

        cur.execute("SELECT bool_and(pid IS NOT NULL), sum(sent) >= 4 FROM crefinder.dispatcher_status")
        assert cur.fetchone() == (True, True)
    finally:
        s.close()


def test_rollback_sends_nothing_and_commit_wakes(cluster):
    s = Setup(cluster)
    try:
        cur = s.cur
        s.conn.autocommit = False
        cur.execute("SELECT crefinder.send_sms('+12125550110', 'never')")
        s.conn.rollback()
        cur.execute("SELECT crefinder.send_sms('+12125550111', 'now')")
        committed = time.time()
        message = cur.fetchone()[0]
        s.conn.commit()
        s.conn.autocommit = True
        cur.execute("SET crefinder.user_id = %s", (TENANT,))
        assert s.wait_status(message, ("sent",)) == "sent"
        reqs = s.requests_to("/Messages.json")
        assert [parse_qs(r["body"])["To"][0] for r in reqs] == ["+12125550111"]
        # woken by the commit, not by a poll: well under the dispatcher's idle wait
        assert reqs[0]["at"] - committed < 5, reqs[0]["at"] - committed
    finally:
        s.close()


def test_faults_retries_and_final_states(cluster):
    s = Setup(cluster)
    try:
        cur = s.cur
        path = "/2010-04-01/Accounts/%s/Messages.json" % ACCOUNT

        def send(to):
            cur.execute("SELECT crefinder.send_sms(%s, 'fault test')", (to,))
            return cur.fetchone()[0]

        # 429 with Retry-After: retried, then sent.
        s.sandbox.call("POST", "/_sandbox/faults", {"path": path, "fault": "429-retry-after", "count": 1})
        m = send("+12125550120")
        assert s.wait_status(m, ("sent", "failed")) == "sent"
        assert s.row(m)[3] == 2
        # 503 every time: failed after max_attempts (3).
        s.sandbox.call("POST", "/_sandbox/faults", {"path": path, "fault": "503", "count": 3})
        m = send("+12125550121")
        assert s.wait_status(m, ("sent", "failed"), timeout=30) == "failed"
        status, _, _, attempts, error = s.row(m)
        assert attempts == 3 and "gave up after 3 attempts" in error, error
        # A dropped connection: retried (by libcurl itself when the connection
        # was a kept-alive one, else by the dispatcher), then sent.
        s.sandbox.call("POST", "/_sandbox/faults", {"path": path, "fault": "drop", "count": 1})
        m = send("+12125550122")
        assert s.wait_status(m, ("sent", "failed")) == "sent" and s.row(m)[3] <= 2
        # A permanent 4xx: failed at once with the provider's code and message.
        s.sandbox.call("POST", "/_sandbox/faults", {"path": path, "fault": "400", "count": 1})
        m = send("+12125550123")
        assert s.wait_status(m, ("sent", "failed")) == "failed"
        assert "21211" in s.row(m)[4] and s.row(m)[3] == 1
        # 21610: failed, and the recipient is opted out.
        s.sandbox.call("POST", "/_sandbox/faults", {"path": path, "fault": "21610", "count": 1})
        m = send("+12125550124")
        assert s.wait_status(m, ("sent", "failed")) == "failed"
        cur.execute("SELECT count(*) FROM crefinder.opt_outs WHERE contact = '+12125550124' AND revoked_at IS NULL")
        assert cur.fetchone()[0] == 1
        # 401: failed, the tenant's Twilio paused; the next message waits.
        s.sandbox.call("POST", "/_sandbox/faults", {"path": path, "fault": "401", "count": 1})
        m = send("+12125550125")
        assert s.wait_status(m, ("sent", "failed")) == "failed"
        assert "credentials rejected" in s.row(m)[4]
        cur.execute("SELECT provider FROM crefinder.paused_providers")
        assert cur.fetchall() == [("twilio",)]
        waiting = send("+12125550126")
        time.sleep(1.5)
        assert s.row(waiting)[0] == "queued"
        s.configure_all()          # a new configuration lifts the pause
        cur.execute("SELECT crefinder.retry_unknown(ARRAY[%s])", (waiting,))  # wakes the dispatcher
        assert s.wait_status(waiting, ("sent", "failed")) == "sent"
        # Malformed 201: sent (the provider took it), with the error noted.
        s.sandbox.call("POST", "/_sandbox/faults", {"path": path, "fault": "malformed", "count": 1})
        m = send("+12125550127")
        assert s.wait_status(m, ("sent", "failed")) == "sent"
        assert "could not be read" in s.row(m)[4]
    finally:
        s.close()


def test_cancel_and_opt_out_before_dispatch(cluster):
    s = Setup(cluster)
    try:
        cur = s.cur
        cur.execute("SELECT crefinder.send_sms('+12125550130', 'later', send_at => now() + interval '2 seconds')")
        cancelled = cur.fetchone()[0]
        cur.execute("SELECT crefinder.cancel(%s)", (cancelled,))
        assert cur.fetchone()[0] is True
        cur.execute("SELECT crefinder.send_sms('+12125550131', 'later', send_at => now() + interval '2 seconds')")
        opted = cur.fetchone()[0]
        cur.execute("SELECT crefinder.opt_out('sms', '+12125550131', 'STOP')")
        cur.execute("SELECT crefinder.send_sms('+12125550132', 'later', send_at => now() + interval '2 seconds')")
        control = cur.fetchone()[0]
        assert s.wait_status(control, ("sent",)) == "sent"
        assert s.wait_status(opted, ("blocked",)) == "blocked"
        cur.execute("SELECT block_reason FROM crefinder.outbound_events WHERE id = %s", (opted,))
        assert cur.fetchone()[0] == "opted_out"
        assert s.row(cancelled)[0] == "cancelled"
        tos = [parse_qs(r["body"])["To"][0] for r in s.requests_to("/Messages.json")]
        assert tos == ["+12125550132"], tos
    finally:
        s.close()


def check_twilio_update_contract(form):
    """A Messages/{Sid}.json form body against Twilio's UpdateMessageRequest."""
    schema = contract("twilio_update_message.json")
    unknown = set(form) - set(schema["properties"])
    assert not unknown, "parameters Twilio does not have: %r" % unknown
    jsonschema.Draft202012Validator(schema).validate({k: v[0] for k, v in form.items()})


SERVICE = "MG" + "2" * 32


def test_scheduled_at_twilio_and_cancelled_there(cluster):
    s = Setup(cluster)
    try:
        cur = s.cur
        basic = "Basic " + base64.b64encode(("%s:%s" % (ACCOUNT, TOKEN)).encode()).decode()
        try:
            s.configure("twilio", {"accountSid": ACCOUNT, "authToken": TOKEN, "scheduleAtTwilio": True})
            raise AssertionError("scheduleAtTwilio without a messaging service was accepted")
        except psycopg2.Error as e:
            assert e.pgcode == "22023" and "scheduleAtTwilio: needs messagingServiceSid" in e.pgerror, e.pgerror
        s.configure("twilio", {"accountSid": ACCOUNT, "authToken": TOKEN, "phoneNumber": "+13055550100",
                               "whatsappNumber": "+13055550199", "messagingServiceSid": SERVICE,
                               "scheduleAtTwilio": True})

        def send(to, ahead):
            cur.execute("SELECT crefinder.send_sms(%s, 'see you then', send_at => now() + %s::interval), "
                        "to_char(date_trunc('second', now() + %s::interval) AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')", (to, ahead, ahead))
            return cur.fetchone()

        def form_to(to):
            forms = [parse_qs(r["body"]) for r in s.requests_to("/Messages.json")]
            return [f for f in forms if f["To"] == [to]]

        # Two hours ahead: handed over now with SendAt, through the service.
        kept, kept_at = send("+12125550150", "2 hours")
        cancelled, _ = send("+12125550151", "3 hours")
        opted, _ = send("+12125550152", "4 hours")
        for m in (kept, cancelled, opted):
            assert s.wait_status(m, ("sent", "failed")) == "sent", s.row(m)
            assert s.row(m)[2] == "scheduled"
        (f,) = form_to("+12125550150")
        check_twilio_contract(f)
        assert f["MessagingServiceSid"] == [SERVICE] and "From" not in f
        assert f["SendAt"] == [kept_at] and f["ScheduleType"] == ["fixed"]
        assert f["Body"] == ["see you then"]

        # cancel(): the scheduled message is cancelled at Twilio.
        sid = s.row(cancelled)[1]
        cur.execute("SELECT crefinder.cancel(%s)", (cancelled,))
        assert cur.fetchone()[0] is True
        assert s.wait_status(cancelled, ("cancelled", "sent", "failed", "unknown")) == "cancelled", s.row(cancelled)
        assert s.row(cancelled)[1:3] == (sid, "canceled")
        (r,) = s.requests_to("/Messages/%s.json" % sid)
        assert r["method"] == "POST" and r["path"] == "/2010-04-01/Accounts/%s/Messages/%s.json" % (ACCOUNT, sid)
        assert r["headers"]["authorization"] == basic
        assert r["headers"]["content-type"] == "application/x-www-form-urlencoded"
        assert parse_qs(r["body"]) == {"Status": ["canceled"]}
        check_twilio_update_contract(parse_qs(r["body"]))
        cur.execute("SELECT crefinder.cancel(%s)", (cancelled,))
        assert cur.fetchone()[0] is False

        # A new opt-out cancels what waits at Twilio for that number.
        cur.execute("SELECT crefinder.opt_out('sms', '+12125550152', 'STOP')")
        assert s.wait_status(opted, ("cancelled", "failed", "unknown")) == "cancelled", s.row(opted)
        assert s.row(kept)[:3] == ("sent", s.row(kept)[1], "scheduled")

        # Twilio refusing a cancellation leaves the message sent, with why.
        refused, _ = send("+12125550153", "5 hours")
        assert s.wait_status(refused, ("sent", "failed")) == "sent"
        refused_sid = s.row(refused)[1]
        s.sandbox.call("POST", "/_sandbox/faults", {"path": "/2010-04-01/Accounts/%s/Messages/%s.json"
                                                    % (ACCOUNT, refused_sid), "fault": "400", "count": 1})
        cur.execute("SELECT crefinder.cancel(%s)", (refused,))
        assert cur.fetchone()[0] is True
        deadline = time.time() + 20
        while s.row(refused)[4] is None and time.time() < deadline:
            time.sleep(0.05)
        status, _, pstatus, _, error = s.row(refused)
        assert (status, pstatus) == ("sent", "scheduled"), s.row(refused)
        assert error.startswith("Twilio did not cancel the scheduled message: HTTP 400"), error

        # Too close for SendAt (Twilio wants 15 minutes): waits in the outbox
        # and goes out when due, without SendAt.
        soon, _ = send("+12125550154", "3 seconds")
        cur.execute("SELECT payload ? 'twilio_send_at' FROM crefinder.outbound_events WHERE id = %s", (soon,))
        assert cur.fetchone()[0] is False
        assert s.wait_status(soon, ("sent", "failed")) == "sent"
        (f,) = form_to("+12125550154")
        assert "SendAt" not in f and f["MessagingServiceSid"] == [SERVICE]
        cur.execute("SELECT sent_at >= created_at + interval '2.9 seconds' FROM crefinder.outbound_events "
                    "WHERE id = %s", (soon,))
        assert cur.fetchone()[0] is True

        # Beyond Twilio's 35 days: handed over 34 days ahead of its time.
        far, _ = send("+12125550155", "40 days")
        cur.execute("SELECT status, next_attempt_at - now() BETWEEN interval '5 days 23 hours' AND interval '6 days', "
                    "payload ->> 'twilio_send_at' FROM crefinder.outbound_events WHERE id = %s", (far,))
        status, six_days, send_at = cur.fetchone()
        assert status == "queued" and six_days is True and send_at.endswith("Z")

        # WhatsApp keeps its own sender unless it is scheduled at Twilio.
        cur.execute("SELECT crefinder.send_whatsapp('+12125550156', 'hola')")
        w = cur.fetchone()[0]
        assert s.wait_status(w, ("sent", "failed")) == "sent"
        (f,) = form_to("whatsapp:+12125550156")
        assert f["From"] == ["whatsapp:+13055550199"] and "MessagingServiceSid" not in f
    finally:
        s.close()


def test_pacing_per_tenant_and_provider(cluster):
    s = Setup(cluster)
    try:
        s.configure("twilio", {"accountSid": ACCOUNT, "authToken": TOKEN, "phoneNumber": "+13055550100",
                               "maxPerSecond": 2})
        s.cur.execute("SELECT array_agg(crefinder.send_sms('+1212555014' || i, 'paced')) "
                      "FROM generate_series(0, 5) AS i")
        ids = s.cur.fetchone()[0]
        for m in ids:
            assert s.wait_status(m, ("sent", "failed")) == "sent", s.row(m)
            assert s.row(m)[3] == 1          # waiting for a token is no attempt
        arrivals = sorted(r["at"] for r in s.requests_to("/Messages.json"))
        assert len(arrivals) == 6
        # a burst of 2, then 2 per second: the last leaves 2 s after the first
        assert arrivals[-1] - arrivals[0] >= 1.8, arrivals
        s.cur.execute("SELECT sum(retried) FROM crefinder.dispatcher_status")
    finally:
        s.close()


def test_emails_alike_share_one_request(cluster):
    s = Setup(cluster)
    try:
        s.conn.autocommit = False
        ids = []
        for to, data in [("a@example.com", {"owner_name": "Ada"}), ("b@example.com", {"owner_name": "Bo"}),
                         ("c@example.com", None)]:
            s.cur.execute("SELECT crefinder.send_email(%s, 'Same offer', text_body => 'Hello', "
                          "template_data => %s)", (to, psycopg2.extras.Json(data) if data else None))
            ids.append(s.cur.fetchone()[0])
        s.cur.execute("SELECT crefinder.send_email('a@example.com', 'Same offer', text_body => 'Hello')")
        again = s.cur.fetchone()[0]          # same recipient: a request of its own
        s.cur.execute("SELECT crefinder.send_email('d@example.com', 'Other offer', text_body => 'Hello')")
        other = s.cur.fetchone()[0]
        s.conn.commit()
        s.conn.autocommit = True
        for m in ids + [again, other]:
            assert s.wait_status(m, ("sent", "failed")) == "sent", s.row(m)
        bodies = [json.loads(r["body"]) for r in s.requests_to("/v3/mail/send")]
        assert len(bodies) == 3, bodies
        for b in bodies:
            check_sendgrid_contract(b)
        shared = [b for b in bodies if len(b["personalizations"]) == 3]
        assert len(shared) == 1
        p = shared[0]["personalizations"]
        assert [x["to"][0]["email"] for x in p] == ["a@example.com", "b@example.com", "c@example.com"]
        assert [x["custom_args"]["crefinder_message_id"] for x in p] == [str(i) for i in ids]
        assert p[0]["dynamic_template_data"] == {"owner_name": "Ada"} and "dynamic_template_data" not in p[2]
        s.cur.execute("SELECT count(DISTINCT provider_message_id) FROM crefinder.outbound_events "
                      "WHERE id = ANY(%s)", (ids,))
        assert s.cur.fetchone()[0] == 1      # one X-Message-Id for the request
    finally:
        s.close()
