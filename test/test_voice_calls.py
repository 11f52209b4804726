"""Twilio calls end to end: bridge calls and voicemail drops queued, checked
for compliance, dispatched by the dispatcher to the sandbox's Calls.json
(every request field by field against Twilio's CreateCallRequest), and
played out by the sandbox against README's webhook route over HTTP, signed
as Twilio signs; the campaign steps that use them, in simulated time.
"""
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs

import jsonschema

import test_campaigns as tc
import twiml
from cluster import TEST_DATABASE, free_port
from test_dispatcher import ACCOUNT, TOKEN, Setup, contract
from test_webhook_route import readme_route

NUMBER = "+13055550100"      # the tenant's number (Setup configures it)
AGENT = "+13055550111"
CALLBACK = "+13055550100"
NY_OWNER = "+12125550170"
CA_OWNER = "+14155550170"


def check_call_contract(form):
    """A Calls.json form body against Twilio's CreateCallRequest, field by field."""
    schema = contract("twilio_create_call.json")
    unknown = set(form) - set(schema["properties"])
    assert not unknown, "parameters Twilio does not have: %r" % unknown
    doc = {k: v if schema["properties"][k].get("type") == "array" else v[0] for k, v in form.items()}
    for k, v in list(doc.items()):
        if schema["properties"][k].get("type") == "integer":
            assert v.isdigit(), (k, v)
            doc[k] = int(v)
    jsonschema.Draft202012Validator(schema).validate(doc)
    return doc


class Route:
    """README's Python route on a free port, as the role grant_webhook_access() made."""

    def __init__(self, cluster, cur):
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'voice_route'")
        if cur.fetchone() is None:
            cur.execute("CREATE ROLE voice_route LOGIN")
        cur.execute("SELECT crefinder.grant_webhook_access('voice_route')")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(readme_route())
            self.script = f.name
        env = dict(os.environ, PORT=str(self.port), PUBLIC_URL=self.url,
                   DATABASE_URL="host=127.0.0.1 port=%d dbname=%s user=voice_route" % (cluster.port, TEST_DATABASE))
        self.proc = subprocess.Popen([sys.executable, self.script], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                urllib.request.urlopen(urllib.request.Request(self.url + "/nowhere", data=b"", method="POST"),
                                       timeout=2)
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the route did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.script)


def voice_setup(cluster):
    s = Setup(cluster)
    route = Route(cluster, s.cur)
    s.configure("twilio", {"accountSid": ACCOUNT, "authToken": TOKEN, "phoneNumber": NUMBER,
                           "voiceWebhookUrl": route.url + "/webhooks/twilio/voice"})
    s.cur.execute("SELECT crefinder.set_tenant_settings(%s)", (json.dumps({
        "call_window_start": "00:00", "call_window_end": "23:59:59",
        "voicemail_window_start": "00:00", "voicemail_window_end": "23:59:59",
        "business_name": "Acme Capital", "callback_number": CALLBACK, "agent_number": AGENT}),))
    return s, route


def played(s, sid):
    """The sandbox's record of a call, once it is over."""
    for _ in range(3):
        call = s.sandbox.call("GET", "/_sandbox/twilio/calls/%s?wait=8" % sid)
        if call["finished"]:
            return call
    raise AssertionError("the call is not over: %r" % call)


def check_twiml_of(call):
    """Every TwiML document the route answered in the call is what Twilio accepts."""
    answers = [e for e in call["log"] if e.get("kind") in ("fetch", "gather", "dial", "whisper")]
    assert answers, call
    for e in answers:
        assert e["status"] == 200 and e["content_type"] == "text/xml", e
        problems = twiml.validate(e["body"])
        assert not problems, (problems, e)
    assert not [e for e in call["log"] if "error" in e], call["log"]
    return answers


def behave(s, number, **behaviour):
    s.sandbox.call("POST", "/_sandbox/twilio/call_behaviour", dict(behaviour, to=number))


def value(cur, sql, args=None):
    cur.execute(sql, args)
    return cur.fetchone()[0]


def message(cur, message_id):
    cur.execute("SELECT status, provider_status, provider_message_id, delivered_at IS NOT NULL, "
                "responded_at IS NOT NULL, block_reason, hold_reason FROM crefinder.outbound_events WHERE id = %s",
                (message_id,))
    return cur.fetchone()


def wait_for(cur, message_id, predicate, timeout=20):
    deadline = time.time() + timeout
    while True:
        row = message(cur, message_id)
        if predicate(row):
            return row
        if time.time() > deadline:
            raise AssertionError("message %d: %r" % (message_id, row))
        time.sleep(0.05)


def test_calls_dispatched_and_played_out(cluster):
    s, route = voice_setup(cluster)
    try:
        cur = s.cur
        cur.execute("SELECT crefinder.record_consent(%s, 'voicemail', 'express_written', 'web form')", (NY_OWNER,))
        cur.execute("INSERT INTO crefinder.property_records (owner_name, owner_phone, property_address) "
                    "VALUES ('Lee Owner', %s, '9 Bay Rd') RETURNING id", (CA_OWNER,))
        prop = cur.fetchone()[0]
        # a machine answers the drop; the agent presses 1 on the bridge, the owner talks 40 s
        behave(s, NY_OWNER, answered_by="machine_end_beep")
        behave(s, AGENT, digits=["1"])
        behave(s, CA_OWNER, talk_seconds=40)
        drop = value(cur, "SELECT crefinder.drop_voicemail(%s, say_text => 'We buy buildings.')", (NY_OWNER,))
        bridge = value(cur, "SELECT crefinder.bridge_call(%s, property_id => %s, record => true)", (CA_OWNER, prop))

        # the requests, field by field
        for m in (drop, bridge):
            wait_for(cur, m, lambda r: r[2] is not None)
        calls = [r for r in s.sandbox.requests() if r["path"].endswith("/Calls.json")]
        assert len(calls) == 2
        basic = "Basic " + base64.b64encode(("%s:%s" % (ACCOUNT, TOKEN)).encode()).decode()
        forms = {}
        for r in calls:
            assert r["method"] == "POST" and r["path"] == "/2010-04-01/Accounts/%s/Calls.json" % ACCOUNT
            assert r["headers"]["authorization"] == basic
            assert r["headers"]["content-type"] == "application/x-www-form-urlencoded"
            form = parse_qs(r["body"])
            check_call_contract(form)
            forms[form["To"][0]] = form
        voice_url = route.url + "/webhooks/twilio/voice"
        d = forms[NY_OWNER]
        assert d["From"] == [NUMBER] and d["MachineDetection"] == ["DetectMessageEnd"]
        assert d["Url"] == ["%s?crefinder_message_id=%d&crefinder_step=answer" % (voice_url, drop)]
        assert d["StatusCallback"] == ["%s?crefinder_message_id=%d&crefinder_step=status" % (voice_url, drop)]
        assert d["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
        assert d["Method"] == ["POST"] and d["StatusCallbackMethod"] == ["POST"]
        assert d["TimeLimit"] == ["300"]
        b = forms[AGENT]        # a bridge rings the agent first, from the tenant's number
        assert b["From"] == [NUMBER] and "MachineDetection" not in b and b["TimeLimit"] == ["3600"]
        assert b["Url"] == ["%s?crefinder_message_id=%d&crefinder_step=answer" % (voice_url, bridge)]

        # the drop: left after the beep, delivered
        drop_sid = message(cur, drop)[2]
        call = played(s, drop_sid)
        check_twiml_of(call)
        heard = " ".join(e.get("text", "") for e in call["log"] if e.get("verb") == "say")
        assert "Acme Capital" in heard and "We buy buildings." in heard and "3 0 5, 5 5 5, 0 1 0 0" in heard
        row = wait_for(cur, drop, lambda r: r[1] == "completed")
        assert row[0] == "delivered" and row[3], row

        # the bridge: the agent heard who it is, pressed 1, the owner heard the recording notice
        bridge_sid = message(cur, bridge)[2]
        call = played(s, bridge_sid)
        answers = check_twiml_of(call)
        whisper = [e for e in answers if e["kind"] == "whisper"]
        assert whisper and "This call may be recorded." in whisper[0]["body"]
        row = wait_for(cur, bridge, lambda r: r[1] == "completed")
        assert row[0] == "delivered" and row[3] and row[4], row      # answered, and a 40 s conversation
        cur.execute("SELECT dial_status, bridged_seconds, recording_url IS NOT NULL FROM crefinder.call_results "
                    "WHERE call_id = %s", (bridge_sid,))
        assert cur.fetchone() == ("completed", 40, True)

        # the prices come by lookups: the drop's call, the bridge's two legs
        cur.execute("UPDATE crefinder.outbound_events SET lookup_at = now() WHERE id IN (%s, %s)", (drop, bridge))
        deadline = time.time() + 30
        while value(cur, "SELECT count(*) FROM crefinder.outbound_events WHERE id IN (%s, %s) "
                         "AND cost_cents IS NOT NULL", (drop, bridge)) < 2:
            assert time.time() < deadline, [message(cur, m) for m in (drop, bridge)]
            cur.execute("UPDATE crefinder.outbound_events SET lookup_at = now() "
                        "WHERE id IN (%s, %s) AND lookup_at > now()", (drop, bridge))
            time.sleep(0.2)
        cur.execute("SELECT id, cost_cents FROM crefinder.outbound_events WHERE id IN (%s, %s)", (drop, bridge))
        costs = {k: float(v) for k, v in cur.fetchall()}
        cur.execute("SELECT dial_call_sid FROM crefinder.call_results WHERE call_id = %s", (bridge_sid,))
        legs = {drop: [drop_sid], bridge: [bridge_sid, cur.fetchone()[0]]}
        for m, sids in legs.items():
            prices = [float(played(s, sid)["resource"]["price"]) for sid in sids]
            assert all(p < 0 for p in prices), prices
            assert round(costs[m], 4) == round(-100 * sum(prices), 4), (m, costs, prices)

        # Twilio's 503 and 429 are retried like any other request: the call goes out once
        s.sandbox.call("POST", "/_sandbox/faults", {"path": "/2010-04-01/Accounts/%s/Calls.json" % ACCOUNT,
                                                    "fault": "503", "count": 1})
        s.sandbox.call("POST", "/_sandbox/faults", {"path": "/2010-04-01/Accounts/%s/Calls.json" % ACCOUNT,
                                                    "fault": "429", "count": 1})
        behave(s, AGENT, digits=[])
        retried = value(cur, "SELECT crefinder.bridge_call(%s)", ("+12125550172",))
        row = wait_for(cur, retried, lambda r: r[2] is not None, timeout=30)
        assert value(cur, "SELECT attempts FROM crefinder.outbound_events WHERE id = %s", (retried,)) == 3
        call = played(s, row[2])
        assert not [e for e in call["log"] if "crefinder_step=connect" in e.get("url", "") or e.get("verb") == "dial"]
        row = wait_for(cur, retried, lambda r: r[1] == "completed")
        assert row[0] == "sent" and not row[3], row     # the agent pressed nothing: the owner was never dialled

        # unanswered calls: busy, no answer; no TwiML is fetched, nothing is delivered
        behave(s, "+12125550171", outcome="busy")
        behave(s, AGENT, outcome="no-answer")
        cur.execute("SELECT crefinder.record_consent('+12125550171', 'voicemail', 'express_written', 'web form')")
        busy = value(cur, "SELECT crefinder.drop_voicemail('+12125550171', say_text => 'Hi.')")
        missed = value(cur, "SELECT crefinder.bridge_call(%s)", (NY_OWNER,))
        for m, final in ((busy, "busy"), (missed, "no-answer")):
            row = wait_for(cur, m, lambda r: r[1] == final)
            assert row[0] == "sent" and not row[3], row
            call = played(s, row[2])
            assert not [e for e in call["log"] if e.get("kind") == "fetch"], call["log"]
    finally:
        route.stop()
        s.close()


def test_keypad_opt_out_stops_every_phone_channel(cluster):
    s, route = voice_setup(cluster)
    try:
        cur = s.cur
        owner = "+12125550180"
        cur.execute("INSERT INTO crefinder.property_records (owner_name, owner_phone, property_address) "
                    "VALUES ('Kim Owner', %s, '4 Elm St') RETURNING id", (owner,))
        prop = cur.fetchone()[0]
        cur.execute("SELECT crefinder.record_consent(%s, 'voicemail', 'express_written', 'web form')", (owner,))
        # a running campaign whose text to the owner waits in the outbox (quiet hours: the
        # tenant's sms window is set to the hour that is furthest from now)
        hour = (time.gmtime().tm_hour + 12) % 24
        cur.execute("SELECT crefinder.set_tenant_settings(%s)",
                    (json.dumps({"sms_window_start": "%02d:00" % hour, "sms_window_end": "%02d:30" % hour}),))
        seq = value(cur, "SELECT crefinder.create_sequence('texts', %s)",
                    (json.dumps([{"channel": "sms", "body": "Hi {{first_name}}, about {{property_address}}"},
                                 {"channel": "sms", "delay": "2 days", "body": "Still there?"}]),))
        camp = value(cur, "SELECT crefinder.create_campaign('c', %s, %s)", (seq, [prop]))
        cur.execute("RESET crefinder.user_id")
        cur.execute("SELECT crefinder.tick()")
        cur.execute("SET crefinder.user_id = %s", (value(cur, "SELECT user_id::text FROM crefinder.campaigns "
                                                               "WHERE id = %s", (camp,)),))
        text = value(cur, "SELECT id FROM crefinder.outbound_events WHERE campaign_id = %s", (camp,))
        assert message(cur, text)[0] == "queued" and message(cur, text)[6] == "quiet_hours", message(cur, text)
        # and a text queued by hand for an hour from now
        later = value(cur, "SELECT crefinder.send_sms(%s, 'Later', send_at => now() + interval '1 hour')", (owner,))

        # the owner answers a drop and presses 9
        behave(s, owner, answered_by="human", digits=["9"])
        drop = value(cur, "SELECT crefinder.drop_voicemail(%s, say_text => 'We buy buildings.', property_id => %s)",
                     (owner, prop))
        row = wait_for(cur, drop, lambda r: r[1] == "completed")
        call = played(s, row[2])
        check_twiml_of(call)
        heard = " ".join(e.get("text", "") for e in call["log"] if e.get("verb") == "say")
        assert "will not be called or texted" in heard, call["log"]
        assert row[0] == "delivered" and row[4], row
        # every phone channel at once
        for channel in ("sms", "whatsapp", "voice", "call", "voicemail"):
            cur.execute("SELECT reason FROM crefinder.can_contact(%s, %s, now(), NULL)", (channel, owner))
            assert cur.fetchone()[0] == "opted_out", channel
        # the campaign stopped and its queued text is cancelled; the hand-queued one is
        # blocked when the dispatcher takes it
        cur.execute("SELECT status, stop_reason FROM crefinder.enrollments WHERE campaign_id = %s", (camp,))
        assert cur.fetchone() == ("stopped", "opted_out")
        assert message(cur, text)[0] == "cancelled", message(cur, text)
        cur.execute("UPDATE crefinder.outbound_events SET next_attempt_at = now(), hold_reason = NULL "
                    "WHERE id = %s", (later,))
        cur.execute("SELECT crefinder.wake_dispatcher_on_commit()")
        row = wait_for(cur, later, lambda r: r[0] != "queued")
        assert (row[0], row[5]) == ("blocked", "opted_out"), row
        assert not [r for r in s.sandbox.requests() if r["path"].endswith("/Messages.json")]
    finally:
        route.stop()
        s.close()


def test_call_compliance(cluster):
    w = tc.World(cluster, "call_compliance")
    try:
        cur = w.cur
        w.value("SELECT crefinder.configure('twilio', %s)",
                (json.dumps({"accountSid": "AC" + "a1" * 16, "authToken": "0123456789abcdef" * 2,
                             "phoneNumber": NUMBER, "voiceWebhookUrl": "https://app.example.com/voice"}),))
        w.value("SELECT crefinder.set_tenant_settings(%s)", (json.dumps(
            {"callback_number": CALLBACK, "agent_number": AGENT, "agent_timezone": "America/New_York"}),))
        wed_10_et = "2026-12-02 15:00+00"
        # a drop needs a consent for the number; a bridge does not, but not to a number on DNC
        assert w.value("SELECT reason FROM crefinder.can_contact('voicemail', %s, %s, NULL)",
                       (NY_OWNER, wed_10_et)) == "no_consent"
        assert w.value("SELECT allowed FROM crefinder.can_contact('call', %s, %s, NULL)", (NY_OWNER, wed_10_et))
        m = w.value("SELECT crefinder.drop_voicemail(%s, say_text => 'Hi.')", (NY_OWNER,))
        assert w.one("SELECT status, block_reason FROM crefinder.outbound_events WHERE id = %s", (m,)) \
            == {"status": "blocked", "block_reason": "no_consent"}
        w.value("SELECT crefinder.dnc_add(%s, 'asked us')", ("+12125550190",))
        m = w.value("SELECT crefinder.bridge_call('+12125550190')")
        assert w.one("SELECT status, block_reason FROM crefinder.outbound_events WHERE id = %s", (m,)) \
            == {"status": "blocked", "block_reason": "dnc"}
        # quiet hours hold both (03:00 in New York)
        w.value("SELECT crefinder.record_consent(%s, 'voicemail', 'express_written', 'web form')", (NY_OWNER,))
        night = "2026-12-02 08:00+00"
        for channel in ("call", "voicemail"):
            row = w.one("SELECT * FROM crefinder.can_contact(%s, %s, %s, NULL)", (channel, NY_OWNER, night))
            assert row["reason"] == "quiet_hours" and str(row["next_allowed_at"]) == "2026-12-02 14:00:00+00:00", row
        # a bridge also waits for the agent's working window (09:00-17:00 weekdays, New York):
        # at 18:30 the owner may be called, the agent is off until Thursday 09:00
        row = w.one("SELECT * FROM crefinder.can_contact('call', %s, '2026-12-02 23:30+00', NULL)", (NY_OWNER,))
        assert row["reason"] == "agent_hours" and str(row["next_allowed_at"]) == "2026-12-03 14:00:00+00:00", row
        row = w.one("SELECT * FROM crefinder.can_contact('voicemail', %s, '2026-12-02 23:30+00', NULL)", (NY_OWNER,))
        assert row["allowed"], row
        # Friday 18:30: the next working day is Monday
        row = w.one("SELECT * FROM crefinder.can_contact('call', %s, '2026-12-04 23:30+00', NULL)", (NY_OWNER,))
        assert str(row["next_allowed_at"]) == "2026-12-07 14:00:00+00:00", row
        # a California agent window in its own zone
        w.value("SELECT crefinder.set_tenant_settings('{\"agent_timezone\": \"America/Los_Angeles\"}')")
        row = w.one("SELECT * FROM crefinder.can_contact('call', %s, '2026-12-02 15:00+00', NULL)", (NY_OWNER,))
        assert row["reason"] == "agent_hours" and str(row["next_allowed_at"]) == "2026-12-02 17:00:00+00:00", row

        w.value("SELECT crefinder.set_tenant_settings('{\"agent_timezone\": \"America/New_York\"}')")
        # caps count calls and texts together: Florida's 3 in 24 hours
        fl = "+13055550191"
        w.value("SELECT crefinder.record_consent(%s, 'voicemail', 'express_written', 'web form')", (fl,))
        for _ in range(2):
            cur.execute("INSERT INTO crefinder.outbound_events (channel, to_contact, status, sent_at) "
                        "VALUES ('sms', %s, 'sent', %s)", (fl, wed_10_et))
        cur.execute("INSERT INTO crefinder.outbound_events (channel, to_contact, status, sent_at) "
                    "VALUES ('voicemail', %s, 'sent', %s)", (fl, wed_10_et))
        for channel in ("sms", "call", "voicemail", "voice"):
            row = w.one("SELECT * FROM crefinder.can_contact(%s, %s, '2026-12-02 16:00+00', NULL)", (channel, fl))
            assert row["reason"] in ("frequency_cap", "no_consent"), (channel, row)
            if channel != "voice":
                assert row["reason"] == "frequency_cap" and str(row["next_allowed_at"]) == "2026-12-03 15:00:00+00:00"
        # Maine: one automated call in 8 hours counts drops and AI calls, not texts or bridges
        me = "+12075550192"
        w.value("SELECT crefinder.record_consent(%s, 'voicemail', 'express_written', 'web form')", (me,))
        cur.execute("INSERT INTO crefinder.outbound_events (channel, to_contact, status, sent_at) "
                    "VALUES ('voicemail', %s, 'sent', %s)", (me, wed_10_et))
        assert w.value("SELECT reason FROM crefinder.can_contact('voicemail', %s, '2026-12-02 16:00+00', NULL)",
                       (me,)) == "frequency_cap"
        assert w.value("SELECT allowed FROM crefinder.can_contact('sms', %s, '2026-12-02 16:00+00', NULL)", (me,))

        # recording: announced where the owner's state needs every party's consent, or is unknown;
        # an operator adds a state
        rec = {}
        for number in (NY_OWNER, CA_OWNER, "+441632960170"):
            m = w.value("SELECT crefinder.bridge_call(%s, record => true)", (number,))
            rec[number] = w.value("SELECT payload ->> 'announce_recording' FROM crefinder.outbound_events "
                                  "WHERE id = %s", (m,))
        assert rec == {NY_OWNER: "false", CA_OWNER: "true", "+441632960170": "true"}, rec
        code, _, _ = w.error("DELETE FROM crefinder.recording_consent_states WHERE region = 'CA'")
        assert code == "42501"
        cur.execute("INSERT INTO crefinder.recording_consent_states (region, note) VALUES ('NY', 'house rule')")
        m = w.value("SELECT crefinder.bridge_call(%s, record => true)", (NY_OWNER,))
        assert w.value("SELECT payload ->> 'announce_recording' FROM crefinder.outbound_events WHERE id = %s",
                       (m,)) == "true"
        cur.execute("DELETE FROM crefinder.recording_consent_states WHERE source = 'operator'")

        # both channels are Twilio's, everywhere a provider is named
        assert w.value("SELECT array_agg(crefinder.provider_of(c) ORDER BY c) FROM unnest('{call,voicemail}'::text[]) c") \
            == ["twilio", "twilio"]
        assert w.value("SELECT array_agg(crefinder.channel_provider(c) ORDER BY c) "
                       "FROM unnest('{call,voicemail}'::text[]) c") == ["twilio", "twilio"]

        # bad input
        assert w.error("SELECT crefinder.drop_voicemail(%s)", (NY_OWNER,))[0] == "22023"
        assert w.error("SELECT crefinder.drop_voicemail(%s, 'http://insecure.example.com/a.mp3')",
                       (NY_OWNER,))[0] == "22023"
        assert w.error("SELECT crefinder.drop_voicemail(%s, say_text => %s)", (NY_OWNER, "x" * 1001))[0] == "22023"
        assert w.error("SELECT crefinder.drop_voicemail(NULL, say_text => 'Hi')")[0] == "22004"
        assert w.error("SELECT crefinder.bridge_call(%s, %s)", (AGENT, AGENT))[0] == "22023"
        assert w.error("SELECT crefinder.bridge_call('not a number')")[0] == "22023"
        w.value("SELECT crefinder.set_tenant_settings('{\"callback_number\": null}')")
        code, message_, detail = w.error("SELECT crefinder.drop_voicemail(%s, say_text => 'Hi.')", (NY_OWNER,))
        assert code == "55000" and "callback_number" in message_, (code, message_)
        w.value("SELECT crefinder.configure('twilio', %s)",
                (json.dumps({"accountSid": "AC" + "a1" * 16, "authToken": "0123456789abcdef" * 2,
                             "phoneNumber": NUMBER}),))
        code, _, detail = w.error("SELECT crefinder.bridge_call(%s)", (NY_OWNER,))
        assert code == "55000" and "voiceWebhookUrl" in detail, detail
    finally:
        w.cur.close()


def test_campaign_call_steps(cluster):
    w = tc.World(cluster, "call_steps")
    try:
        w.value("SELECT crefinder.configure('twilio', %s)",
                (json.dumps({"accountSid": "AC" + "a1" * 16, "authToken": "0123456789abcdef" * 2,
                             "phoneNumber": NUMBER, "voiceWebhookUrl": "https://app.example.com/voice"}),))
        steps = [{"channel": "voicemail", "body": "Hi {{first_name}}, this is about {{property_address}}."},
                 {"channel": "call", "delay": "1 day", "record": True},
                 {"channel": "sms", "delay": "1 day", "body": "Hi {{first_name}}"}]
        # a drop needs the callback number, a bridge the agent and the agent's zone
        code, _, detail = w.error("SELECT crefinder.create_sequence('s', %s)", (json.dumps(steps),))
        assert code == "22023" and "callback_number" in detail and "agent_timezone" in detail, detail
        code, _, detail = w.error("SELECT crefinder.create_sequence('s', %s)", (json.dumps(
            [{"channel": "voicemail", "body": "x", "audio_url": "https://a.example.com/x.mp3"},
             {"channel": "call", "body": "x", "record": "yes"}]),))
        assert "not both" in detail and "no body" in detail and "record" in detail, detail
        w.value("SELECT crefinder.set_tenant_settings(%s)", (json.dumps(
            {"callback_number": CALLBACK, "agent_number": AGENT, "agent_timezone": "America/New_York"}),))
        seq = w.value("SELECT crefinder.create_sequence('s', %s)", (json.dumps(steps),))
        consenting = w.property(owner_name="SMITH JOHN A", owner_phone="+12125550201")
        other = w.property(owner_name="DOE JANE", owner_phone="+12125550202")
        w.value("SELECT crefinder.record_consent('+12125550201', 'voicemail', 'express_written', 'web form')")
        camp = w.value("SELECT crefinder.create_campaign('calls', %s, %s, '{}', %s)",
                       (seq, [consenting, other], tc.NOON_EAST))
        preview = w.all("SELECT step, channel, estimated_cost_cents FROM crefinder.preview_campaign(%s, %s)",
                        (camp, tc.NOON_EAST))
        assert [(p["step"], p["channel"]) for p in preview][:2] == [(0, "voicemail"), (1, "call")], preview
        w.tick(tc.NOON_EAST)
        drops = {r["property_id"]: r for r in w.all("SELECT * FROM crefinder.outbound_events WHERE campaign_id = %s",
                                                    (camp,))}
        assert drops[consenting]["status"] == "queued" and drops[consenting]["channel"] == "voicemail"
        assert drops[consenting]["payload"] == {"say_text": "Hi John, this is about 12 Palm Ave.",
                                                "business_name": "Acme Land", "callback_number": CALLBACK}
        assert (drops[other]["status"], drops[other]["block_reason"]) == ("blocked", "no_consent")
        # the bridge step: due on Thursday; at 18:30 New York the agent is off: held until 09:00 Friday
        w.tick("2026-12-03 23:30+00")
        bridges = w.all("SELECT * FROM crefinder.outbound_events WHERE campaign_id = %s AND channel = 'call' "
                        "ORDER BY property_id", (camp,))
        assert len(bridges) == 2
        for b in bridges:
            assert (b["status"], b["hold_reason"]) == ("queued", "agent_hours"), b
            assert b["next_attempt_at"].isoformat() >= "2026-12-04T14:00:00+00:00", b
            assert b["payload"] == {"agent_number": AGENT, "record": True, "announce_recording": False}, b
    finally:
        w.cur.close()


def test_one_bridge_per_agent_at_a_time(cluster):
    s, route = voice_setup(cluster)
    try:
        cur = s.cur
        # the agent stays on each call 2 s and confirms none: bridges end without the owner
        behave(s, AGENT, hold_in_progress=2, digits=[])
        cur.execute("BEGIN")
        first = value(cur, "SELECT crefinder.bridge_call('+12125550175')")
        second = value(cur, "SELECT crefinder.bridge_call('+12125550176')")
        cur.execute("COMMIT")
        seen = set()
        deadline = time.time() + 30
        while message(cur, second)[2] is None:
            seen.add(message(cur, second)[6])
            assert time.time() < deadline, (message(cur, first), message(cur, second))
            time.sleep(0.05)
        assert "agent_busy" in seen, seen
        # the second rang the agent only once the first had ended
        assert message(cur, first)[1] == "completed", message(cur, first)
        calls = {parse_qs(r["body"]).get("Url", [""])[0]: r["at"] for r in s.sandbox.requests()
                 if r["path"].endswith("/Calls.json")}
        ended = [e for e in played(s, message(cur, first)[2])["log"]
                 if e.get("kind") == "status" and e.get("params", {}).get("CallStatus") == "completed"]
        assert ended, "no completed callback"
        second_at = [at for url, at in calls.items() if "crefinder_message_id=%d&" % second in url]
        first_at = [at for url, at in calls.items() if "crefinder_message_id=%d&" % first in url]
        assert second_at and first_at and second_at[0] >= first_at[0] + 1.5, (first_at, second_at)
        # released when the first ended, not after the 30 s hold
        assert second_at[0] < first_at[0] + 15, (first_at, second_at)
        assert value(cur, "SELECT attempts FROM crefinder.outbound_events WHERE id = %s", (second,)) == 1
    finally:
        route.stop()
        s.close()


def test_calls_that_may_have_gone_are_never_sent_twice(cluster):
    s, route = voice_setup(cluster)
    try:
        cur = s.cur
        # the connection drops after Twilio read the request: unknown, never re-sent on its own
        s.sandbox.call("POST", "/_sandbox/faults", {"path": "/2010-04-01/Accounts/%s/Calls.json" % ACCOUNT,
                                                    "fault": "drop", "count": 1})
        lost = value(cur, "SELECT crefinder.bridge_call('+12125550177')")
        row = wait_for(cur, lost, lambda r: r[0] != "queued" and r[0] != "sending")
        assert row[0] == "unknown", row
        # ... and it keeps the agent's line: the next bridge to that agent waits
        nxt = value(cur, "SELECT crefinder.bridge_call('+12125550178')")
        row = wait_for(cur, nxt, lambda r: r[6] == "agent_busy")
        assert row[0] == "queued"
        cur.execute("DELETE FROM crefinder.outbound_events WHERE id IN (%s, %s)", (lost, nxt))
        # an agent who opted out after the bridge was queued is not rung
        cur.execute("BEGIN")
        late = value(cur, "SELECT crefinder.bridge_call('+12125550179')")
        cur.execute("SELECT crefinder.opt_out('call', %s)", (AGENT,))
        cur.execute("COMMIT")
        row = wait_for(cur, late, lambda r: r[0] != "queued" and r[0] != "sending")
        assert (row[0], row[5]) == ("blocked", "agent_opted_out"), row
        assert not [r for r in s.sandbox.requests() if r["path"].endswith("/Calls.json") and
                    "crefinder_message_id=%d&" % late in r["body"].replace("%3D", "=").replace("%26", "&")]
    finally:
        route.stop()
        s.close()
