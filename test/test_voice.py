"""Twilio voice in SQL: the TwiML of bridge calls and voicemail drops, the
keypad, the call status callbacks and the Call resource lookups.

Each request is signed as Twilio signs it (HMAC-SHA1 with the tenant's auth
token over the URL, crefinder's message id and step included, and the
sorted parameters) and handed to handle_twilio_voice_webhook() as the
application's route does.  Every TwiML document that comes back is parsed
as XML and checked against what Twilio accepts (test/twiml.py).  The calls
are rows as the dispatcher leaves them; test_voice_calls.py dials them.
"""
import json
import time
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import twiml
from test_webhooks import ACCOUNT, NUMBER, TOKEN, A, B, World, twilio_signature

VOICE_URL = "https://app.example.com/webhooks/twilio/voice"
OWNER = "+12125550123"         # New York: recordings need one party's consent
CA_OWNER = "+14155550123"      # California: every party's
AGENT = "+13055550111"
CALLBACK = "+13055550100"


def call_sid():
    return "CA" + uuid.uuid4().hex


def step_url(message_id, step):
    return "%s?crefinder_message_id=%d&crefinder_step=%s" % (VOICE_URL, message_id, step)


def voice(w, url, params, tenant=A, signature=None, token=None):
    params = list(params.items()) if isinstance(params, dict) else list(params)
    if not any(k == "AccountSid" for k, _ in params):
        params.append(("AccountSid", ACCOUNT[tenant]))
    body = urlencode(params)
    if signature is None:
        signature = twilio_signature(token or TOKEN[tenant], url, params)
    return w.one("SELECT crefinder.handle_twilio_voice_webhook(%s, %s, %s, %s) AS r",
                 (url, body, signature, None))["r"]


def verbs(answer):
    """The answer's TwiML, checked as Twilio would, as a tree."""
    assert answer["http_status"] == 200 and answer["content_type"] == "text/xml", answer
    problems = twiml.validate(answer["body"])
    assert not problems, (problems, answer["body"])
    return ET.fromstring(answer["body"])


def said(root):
    return " ".join((e.text or "") for e in root.iter("Say"))


def prepare(w):
    for tenant in (A, B):
        w.as_tenant(tenant)
        w.cur.execute("SELECT crefinder.set_tenant_settings(%s)",
                      ('{"business_name": "Acme Capital", "callback_number": "%s", "agent_number": "%s"}'
                       % (CALLBACK, AGENT),))
        # the owners these tests leave voicemail drops for consented in writing (the voice
        # URL checks compliance again when a drop is answered)
        for number in [OWNER] + ["+1212555%04d" % n for n in range(120, 160)]:
            w.cur.execute("SELECT crefinder.record_consent(%s, 'voicemail', 'express_written', 'web form')",
                          (number,))
    w.cur.execute("RESET crefinder.user_id")


def call_message(w, tenant, channel, to, sid, payload, status="sent", **extra):
    return w.message(tenant, channel, to, sid, status=status, provider_status="queued",
                     payload=payload, **extra)


def test_voicemail_drop_flows(cluster):
    w = World(cluster, "voice_drop")
    try:
        prepare(w)
        # a machine: the message after the beep, naming the business and the number to call back
        sid = call_sid()
        m = call_message(w, A, "voicemail", OWNER, sid,
                         '{"say_text": "We buy buildings <fast> & pay cash.", "business_name": "Acme Capital", '
                         '"callback_number": "%s"}' % CALLBACK)
        root = verbs(voice(w, step_url(m, "answer"),
                           {"CallSid": sid, "CallStatus": "in-progress", "AnsweredBy": "machine_end_beep",
                            "To": OWNER, "From": NUMBER[A]}))
        assert [e.tag for e in root] == ["Say", "Say", "Say", "Hangup"], ET.tostring(root)
        assert "Acme Capital" in root[0].text and root[1].text == "We buy buildings <fast> & pay cash."
        assert "3 0 5, 5 5 5, 0 1 0 0" in root[2].text and "press 9" in root[2].text
        row = w.row(m)
        assert (row["status"], row["provider_status"]) == ("delivered", "in-progress"), row
        assert w.one("SELECT answered_by FROM crefinder.call_results WHERE call_id = %s", (sid,))["answered_by"] \
            == "machine_end_beep"

        # a person: the menu is announced at the outset and wraps the message
        sid2 = call_sid()
        m2 = call_message(w, A, "voicemail", OWNER, sid2,
                          '{"audio_url": "https://cdn.example.com/drop.mp3", "business_name": "Acme Capital", '
                          '"callback_number": "%s"}' % CALLBACK)
        root = verbs(voice(w, step_url(m2, "answer"),
                           {"CallSid": sid2, "CallStatus": "in-progress", "AnsweredBy": "human",
                            "To": OWNER, "From": NUMBER[A]}))
        gather = root.find("Gather")
        assert gather is not None and gather.get("numDigits") == "1"
        assert gather.get("action") == step_url(m2, "keypress")
        inside = [e.tag for e in gather]
        assert inside == ["Say", "Play", "Say"] and gather.find("Play").text == "https://cdn.example.com/drop.mp3"
        assert "press 9" in gather[0].text and "press 1" in gather[0].text
        assert root[-1].tag == "Hangup"

        # another key: the options again; 1: the agent, an interested owner (once)
        root = verbs(voice(w, step_url(m2, "keypress"), {"CallSid": sid2, "Digits": "5", "To": OWNER}))
        assert root.find("Gather") is not None
        for _ in range(2):
            root = verbs(voice(w, step_url(m2, "keypress"), {"CallSid": sid2, "Digits": "1", "To": OWNER}))
            dial = root.find("Dial")
            assert dial.get("callerId") == NUMBER[A] and dial.find("Number").text == AGENT
            assert dial.get("action") == step_url(m2, "dial")
        responses = w.all("SELECT kind, source FROM crefinder.responses WHERE message_id = %s", (m2,))
        assert [(r["kind"], r["source"]) for r in responses] == [("interested", "keypad")]
        assert w.row(m2)["responded_at"] is not None

        # 9: an opt-out of every phone channel, confirmed by voice; pressed twice, one opt-out
        for _ in range(2):
            root = verbs(voice(w, step_url(m2, "keypress"), {"CallSid": sid2, "Digits": "9", "To": OWNER}))
            assert "will not be called or texted" in said(root) and root[-1].tag == "Hangup"
        assert w.one("SELECT count(*) AS n FROM crefinder.opt_outs WHERE user_id = %s AND contact = %s "
                     "AND revoked_at IS NULL", (A, OWNER))["n"] == 1
        w.as_tenant(A)
        for channel in ("sms", "whatsapp", "voice", "call", "voicemail"):
            decision = w.one("SELECT * FROM crefinder.can_contact(%s, %s, now(), NULL)", (channel, OWNER))
            assert decision["reason"] == "opted_out", (channel, decision)
        w.cur.execute("RESET crefinder.user_id")
        assert w.one("SELECT keypress FROM crefinder.call_results WHERE call_id = %s", (sid2,))["keypress"] == "9"
        # the owner's other tenant is untouched
        assert w.one("SELECT count(*) AS n FROM crefinder.opt_outs WHERE user_id = %s", (B,))["n"] == 0

        # once opted out, a later drop answered by a person says only who called (never a
        # silent hang-up on a person); a machine hears nothing; neither is a delivery
        sid3 = call_sid()
        m3 = call_message(w, A, "voicemail", OWNER, sid3, '{"say_text": "Hello again."}')
        root = verbs(voice(w, step_url(m3, "answer"), {"CallSid": sid3, "AnsweredBy": "human", "To": OWNER}))
        assert [e.tag for e in root] == ["Say", "Hangup"] and said(root) == "This was a call from Acme Capital. Goodbye."
        sid3b = call_sid()
        m3b = call_message(w, A, "voicemail", OWNER, sid3b, '{"say_text": "Hello again."}')
        root = verbs(voice(w, step_url(m3b, "answer"), {"CallSid": sid3b, "AnsweredBy": "machine_end_beep"}))
        assert [e.tag for e in root] == ["Hangup"]
        assert (w.row(m3)["status"], w.row(m3b)["status"]) == ("sent", "sent")

        # whatever a tenant's texts hold is escaped; TwiML stays what Twilio accepts
        sid5 = call_sid()
        m5 = call_message(w, A, "voicemail", "+12125550125", sid5, json.dumps({
            "say_text": "]]></Say><Dial>+19005550000</Dial><Say>",
            "business_name": 'A&B <Land> "LLC" \u0007\ufffe', "callback_number": CALLBACK}))
        root = verbs(voice(w, step_url(m5, "answer"), {"CallSid": sid5, "AnsweredBy": "machine_end_silence"}))
        assert root.find("Dial") is None and [e.tag for e in root] == ["Say", "Say", "Say", "Hangup"]
        assert 'A&B <Land> "LLC"' in root[0].text and root[1].text.startswith("]]></Say><Dial>")

        # a fax: nothing is said, the drop is not delivered
        sid4 = call_sid()
        m4 = call_message(w, A, "voicemail", "+12125550124", sid4, '{"say_text": "Hello."}')
        root = verbs(voice(w, step_url(m4, "answer"), {"CallSid": sid4, "AnsweredBy": "fax"}))
        assert [e.tag for e in root] == ["Hangup"] and w.row(m4)["status"] == "sent"
    finally:
        w.close()


def test_bridge_call_flows(cluster):
    w = World(cluster, "voice_bridge")
    try:
        prepare(w)
        prop = w.property(A, owner_name="Pat Owner", property_address="12 Main St")
        sid = call_sid()
        m = call_message(w, A, "call", CA_OWNER, sid,
                         '{"agent_number": "%s", "record": true, "announce_recording": true}' % AGENT,
                         property_id=prop)
        # the agent answers and hears who is called; nothing is dialled without a 1
        root = verbs(voice(w, step_url(m, "answer"), {"CallSid": sid, "CallStatus": "in-progress", "To": AGENT}))
        gather = root.find("Gather")
        assert gather.get("action") == step_url(m, "connect")
        assert "Pat Owner" in said(root) and "12 Main St" in said(root)
        assert w.row(m)["status"] == "sent"      # the agent answering is no delivery
        root = verbs(voice(w, step_url(m, "connect"), {"CallSid": sid, "To": AGENT}))
        assert root.find("Dial") is None and root[-1].tag == "Hangup"
        # 1: the owner is dialled from the tenant's number, recorded, the recording announced first
        root = verbs(voice(w, step_url(m, "connect"), {"CallSid": sid, "Digits": "1", "To": AGENT}))
        dial = root.find("Dial")
        assert dial.get("callerId") == NUMBER[A] and dial.get("record") == "record-from-answer-dual"
        number = dial.find("Number")
        assert number.text == CA_OWNER and number.get("url") == step_url(m, "announce")
        # the announcement runs on the owner's leg, whose parent is the call
        child = call_sid()
        root = verbs(voice(w, step_url(m, "announce"), {"CallSid": child, "ParentCallSid": sid, "To": CA_OWNER}))
        assert said(root) == "This call may be recorded."
        # ... and only there: another parent is not this call
        root = verbs(voice(w, step_url(m, "announce"), {"CallSid": child, "ParentCallSid": call_sid()}))
        assert [e.tag for e in root] == ["Hangup"]
        # the owner answered and talked 45 s: delivered, and a response (past bridge_response_seconds)
        root = verbs(voice(w, step_url(m, "dial"),
                           {"CallSid": sid, "DialCallStatus": "completed", "DialCallDuration": "45",
                            "DialCallSid": child, "RecordingUrl": "https://api.twilio.com/rec/RE1"}))
        row = w.row(m)
        assert row["status"] == "delivered" and row["delivered_at"] is not None and row["responded_at"] is not None
        result = w.one("SELECT * FROM crefinder.call_results WHERE call_id = %s", (sid,))
        assert (result["dial_call_sid"], result["dial_status"], result["bridged_seconds"], result["recording_url"]) \
            == (child, "completed", 45, "https://api.twilio.com/rec/RE1")
        assert w.one("SELECT lead_status FROM crefinder.property_records WHERE id = %s", (prop,))["lead_status"] \
            == "responded"

        # without recording there is no announcement; an owner who does not answer is no delivery
        sid2 = call_sid()
        m2 = call_message(w, A, "call", OWNER, sid2, '{"agent_number": "%s", "record": false}' % AGENT)
        root = verbs(voice(w, step_url(m2, "connect"), {"CallSid": sid2, "Digits": "1"}))
        assert root.find("Dial").get("record") is None and root.find("Dial/Number").get("url") is None
        root = verbs(voice(w, step_url(m2, "dial"), {"CallSid": sid2, "DialCallStatus": "no-answer"}))
        assert "did not answer" in said(root)
        assert w.row(m2)["status"] == "sent" and w.row(m2)["responded_at"] is None
        # a short conversation is a delivery but no response
        sid3 = call_sid()
        m3 = call_message(w, A, "call", "+12125550125", sid3, '{"agent_number": "%s"}' % AGENT)
        verbs(voice(w, step_url(m3, "dial"), {"CallSid": sid3, "DialCallStatus": "completed", "DialCallDuration": "8"}))
        assert w.row(m3)["status"] == "delivered" and w.row(m3)["responded_at"] is None

        # settings that lost the number: the owner is dialled from the number the call came from
        w.cur.execute("UPDATE crefinder.integration_configs SET config = config - 'phoneNumber' "
                      "WHERE user_id = %s AND provider = 'twilio'", (A,))
        root = verbs(voice(w, step_url(m2, "connect"), {"CallSid": sid2, "Digits": "1", "From": NUMBER[A]}))
        assert root.find("Dial").get("callerId") == NUMBER[A]
        w.cur.execute("UPDATE crefinder.integration_configs SET config = config || %s "
                      "WHERE user_id = %s AND provider = 'twilio'", ('{"phoneNumber": "%s"}' % NUMBER[A], A))

        # an owner who opted out since: the agent is told, nobody is dialled
        w.as_tenant(A)
        w.cur.execute("SELECT crefinder.opt_out('sms', %s)", ("+12125550126",))
        w.cur.execute("RESET crefinder.user_id")
        sid4 = call_sid()
        m4 = call_message(w, A, "call", "+12125550126", sid4, '{"agent_number": "%s"}' % AGENT)
        root = verbs(voice(w, step_url(m4, "answer"), {"CallSid": sid4, "CallStatus": "in-progress"}))
        assert "asked not to be called" in said(root) and root.find("Gather") is None
        root = verbs(voice(w, step_url(m4, "connect"), {"CallSid": sid4, "Digits": "1"}))
        assert root.find("Dial") is None
    finally:
        w.close()


def test_voice_signatures_and_tenants(cluster):
    w = World(cluster, "voice_proof")
    try:
        prepare(w)
        sid = call_sid()
        m = call_message(w, A, "voicemail", OWNER, sid, '{"say_text": "Hi."}')
        params = {"CallSid": sid, "CallStatus": "in-progress", "AnsweredBy": "human"}
        # tampered: another step, another message, another body, no signature, another token
        good = twilio_signature(TOKEN[A], step_url(m, "answer"), list(params.items()) + [("AccountSid", ACCOUNT[A])])
        assert voice(w, step_url(m, "keypress"), params, signature=good)["http_status"] == 401
        assert voice(w, step_url(m + 1, "answer"), params, signature=good)["http_status"] == 401
        assert voice(w, step_url(m, "answer"), dict(params, AnsweredBy="machine_end_beep"),
                     signature=good)["http_status"] == 401
        assert voice(w, step_url(m, "answer"), params, signature="")["http_status"] == 401
        assert voice(w, step_url(m, "answer"), params, token=TOKEN[B])["http_status"] == 401
        assert w.one("SELECT count(*) AS n FROM crefinder.webhook_events WHERE outcome = 'bad_signature'")["n"] == 5
        assert w.row(m)["status"] == "sent"
        # tenant B, signing with its own account, cannot reach tenant A's call
        root = verbs(voice(w, step_url(m, "answer"), params, tenant=B))
        assert [e.tag for e in root] == ["Hangup"] and w.row(m)["status"] == "sent"
        root = verbs(voice(w, step_url(m, "keypress"), {"CallSid": sid, "Digits": "9", "To": OWNER}, tenant=B))
        assert [e.tag for e in root] == ["Hangup"]
        assert w.one("SELECT count(*) AS n FROM crefinder.opt_outs")["n"] == 0
        # another call of tenant A's account is not this message's call
        root = verbs(voice(w, step_url(m, "keypress"), {"CallSid": call_sid(), "Digits": "9"}))
        assert [e.tag for e in root] == ["Hangup"]
        assert w.one("SELECT count(*) AS n FROM crefinder.opt_outs")["n"] == 0
        # malformed: no CallSid
        assert voice(w, step_url(m, "answer"), {"CallStatus": "in-progress"})["http_status"] == 400
        # the same request again (a replay) answers the same and changes nothing more
        first = voice(w, step_url(m, "answer"), params)
        again = voice(w, step_url(m, "answer"), params)
        assert first["body"] == again["body"]
        assert w.row(m)["status"] == "delivered"
    finally:
        w.close()


def test_call_status_callbacks(cluster):
    w = World(cluster, "voice_status")
    try:
        prepare(w)
        sid = call_sid()
        m = call_message(w, A, "voicemail", OWNER, sid, '{"say_text": "Hi."}')
        url = step_url(m, "status")

        def status(s, seq, **more):
            return voice(w, url, dict({"CallSid": sid, "CallStatus": s, "SequenceNumber": str(seq),
                                       "CallbackSource": "call-progress-events"}, **more))

        assert status("initiated", 0)["http_status"] == 200
        assert w.row(m)["provider_status"] == "initiated"
        # out of order: completed before ringing and answered
        status("completed", 3, CallDuration="42", AnsweredBy="machine_end_beep")
        status("ringing", 1)
        status("in-progress", 2, AnsweredBy="machine_end_beep")
        row = w.row(m)
        # (the callbacks alone deliver no drop: its answer step, which plays the message, does)
        assert (row["status"], row["provider_status"], row["delivered_at"]) == ("sent", "completed", None), row
        assert row["lookup_at"] is not None and row["lookups"] == 0     # the price comes by a lookup
        outcomes = [e["outcome"] for e in w.all("SELECT outcome FROM crefinder.webhook_events "
                                                 "WHERE event_type LIKE 'call:%%' ORDER BY id")]
        assert outcomes == ["applied", "applied", "ignored", "ignored"], outcomes
        # a replay counts once
        status("completed", 3, CallDuration="42")
        assert w.last_event("twilio")["outcome"] == "duplicate"
        result = w.one("SELECT * FROM crefinder.call_results WHERE call_id = %s", (sid,))
        assert result["duration_seconds"] == 42 and result["answered_by"] == "machine_end_beep"

        # busy and no-answer: sent, not delivered; failed: failed
        for final, expected in (("busy", "sent"), ("no-answer", "sent"), ("failed", "failed")):
            s = call_sid()
            mm = call_message(w, A, "call", "+12125550130", s, '{"agent_number": "%s"}' % AGENT)
            voice(w, step_url(mm, "status"), {"CallSid": s, "CallStatus": final})
            row = w.row(mm)
            assert (row["status"], row["provider_status"], row["delivered_at"]) == (expected, final, None), row
        # a callback that beats the dispatcher's record finds the call by the signed URL
        s = call_sid()
        mm = call_message(w, A, "call", "+12125550131", None, '{"agent_number": "%s"}' % AGENT, status="sending")
        voice(w, step_url(mm, "status"), {"CallSid": s, "CallStatus": "ringing"})
        row = w.row(mm)
        assert (row["status"], row["provider_message_id"]) == ("sent", s) and row["lookup_at"] is not None
        # an unknown status is malformed
        assert voice(w, url, {"CallSid": sid, "CallStatus": "exploded"})["http_status"] == 400
    finally:
        w.close()


def test_inbound_call_menu(cluster):
    w = World(cluster, "voice_inbound")
    try:
        prepare(w)
        caller = "+12125550140"
        root = verbs(voice(w, VOICE_URL, {"CallSid": call_sid(), "From": caller, "To": NUMBER[A],
                                          "Direction": "inbound", "CallStatus": "ringing"}))
        gather = root.find("Gather")
        assert "Acme Capital" in said(root) and "press 9" in said(root)
        action = gather.get("action")
        assert action == VOICE_URL + "?crefinder_step=inbound_keypress"
        root = verbs(voice(w, action, {"CallSid": call_sid(), "From": caller, "To": NUMBER[A], "Digits": "9"}))
        assert "will not be called or texted" in said(root)
        assert w.one("SELECT channel FROM crefinder.opt_outs WHERE user_id = %s AND contact = %s",
                     (A, caller))["channel"] == "call"
        root = verbs(voice(w, action, {"CallSid": call_sid(), "From": caller, "To": NUMBER[A], "Digits": "1"}))
        assert root.find("Dial/Number").text == AGENT
    finally:
        w.close()


def test_call_lookups_price_every_leg(cluster):
    w = World(cluster, "voice_lookup")
    try:
        prepare(w)
        sid, child = call_sid(), call_sid()
        m = call_message(w, A, "call", OWNER, sid, '{"agent_number": "%s"}' % AGENT)
        voice(w, step_url(m, "status"), {"CallSid": sid, "CallStatus": "in-progress"})
        voice(w, step_url(m, "dial"), {"CallSid": sid, "DialCallStatus": "completed", "DialCallDuration": "70",
                                       "DialCallSid": child})

        def fetched(resource):
            return w.one("SELECT crefinder.twilio_call_fetched(%s, %s::jsonb) AS r",
                         (m, __import__("json").dumps(resource)))["r"]

        # the call ended but Twilio has no price yet
        assert fetched({"sid": sid, "status": "completed", "duration": "95", "price": None}) == "pending"
        assert w.row(m)["provider_status"] == "completed" and w.row(m)["cost_cents"] is None
        # the agent's leg priced: the owner's leg is asked about next, at once
        assert fetched({"sid": sid, "status": "completed", "price": "-0.02800", "price_unit": "USD"}) == "pending"
        assert w.row(m)["cost_cents"] is None
        w.cur.execute("UPDATE crefinder.outbound_events SET lookup_at = now() WHERE id = %s", (m,))
        # a resource of another call is refused
        try:
            fetched({"sid": call_sid(), "status": "completed", "price": "-1.00", "price_unit": "USD"})
            raise AssertionError("another call's resource was taken")
        except Exception as e:   # psycopg2 raises; the connection is autocommit
            assert "another call" in str(e), e
        assert fetched({"sid": child, "status": "completed", "price": "-0.02100", "price_unit": "USD"}) == "settled"
        row = w.row(m)
        assert float(row["cost_cents"]) == 4.9 and row["lookup_at"] is None
        # an unanswered drop without a price costs nothing
        s = call_sid()
        mm = call_message(w, A, "voicemail", OWNER, s, '{"say_text": "Hi."}')
        assert w.one("SELECT crefinder.twilio_call_fetched(%s, %s::jsonb) AS r",
                     (mm, '{"sid": "%s", "status": "no-answer", "price": null}' % s))["r"] == "settled"
        assert float(w.row(mm)["cost_cents"]) == 0
    finally:
        w.close()


def test_review_findings(cluster):
    """What a hostile review found, each tried."""
    w = World(cluster, "voice_review")
    try:
        prepare(w)
        # a dialled leg that is the call itself is no leg: the lookups never loop on it
        sid = call_sid()
        m = call_message(w, A, "call", OWNER, sid, '{"agent_number": "%s"}' % AGENT)
        voice(w, step_url(m, "status"), {"CallSid": sid, "CallStatus": "busy"})
        voice(w, step_url(m, "dial"), {"CallSid": sid, "DialCallStatus": "completed", "DialCallSid": sid})
        assert w.one("SELECT dial_call_sid FROM crefinder.call_results WHERE call_id = %s", (sid,))["dial_call_sid"] is None
        assert w.one("SELECT crefinder.twilio_call_fetched(%s, %s::jsonb) AS r",
                     (m, json.dumps({"sid": sid, "status": "busy", "price": None})))["r"] == "settled"
        # a dialled leg whose price does not come: asked about at once once, then at the lookups' pace
        sid2, child = call_sid(), call_sid()
        m2 = call_message(w, A, "call", OWNER, sid2, '{"agent_number": "%s"}' % AGENT)
        voice(w, step_url(m2, "dial"), {"CallSid": sid2, "DialCallStatus": "completed", "DialCallSid": child})
        w.cur.execute("UPDATE crefinder.outbound_events SET lookup_at = now() + interval '4 minutes' WHERE id = %s", (m2,))
        fetched = json.dumps({"sid": sid2, "status": "completed", "price": "-0.014", "price_unit": "USD"})
        assert w.one("SELECT crefinder.twilio_call_fetched(%s, %s::jsonb) AS r", (m2, fetched))["r"] == "pending"
        assert w.one("SELECT lookup_at <= now() AS due FROM crefinder.outbound_events WHERE id = %s", (m2,))["due"]
        w.cur.execute("UPDATE crefinder.outbound_events SET lookup_at = now() + interval '8 minutes' WHERE id = %s", (m2,))
        pending = json.dumps({"sid": child, "status": "completed", "price": None})
        assert w.one("SELECT crefinder.twilio_call_fetched(%s, %s::jsonb) AS r", (m2, pending))["r"] == "pending"
        assert w.one("SELECT crefinder.twilio_call_fetched(%s, %s::jsonb) AS r", (m2, fetched))["r"] == "pending"
        assert w.one("SELECT lookup_at > now() + interval '7 minutes' AS later FROM crefinder.outbound_events "
                     "WHERE id = %s", (m2,))["later"]
        w.cur.execute("UPDATE crefinder.outbound_events SET lookup_at = NULL WHERE id = %s", (m2,))   # spent
        w.one("SELECT crefinder.twilio_call_fetched(%s, %s::jsonb) AS r", (m2, fetched))
        assert w.row(m2)["lookup_at"] is None

        # the agent is never an owner, nor a number that opted out
        w.as_tenant(A)
        w.cur.execute("SELECT crefinder.configure('twilio', %s)", (json.dumps({
            "accountSid": ACCOUNT[A], "authToken": TOKEN[A], "phoneNumber": NUMBER[A],
            "voiceWebhookUrl": VOICE_URL}),))
        w.cur.execute("INSERT INTO crefinder.property_records (owner_name, owner_phone) VALUES ('Ann', '+12125550150')")
        w.cur.execute("SELECT crefinder.opt_out('call', '+12125550151')")
        for agent, why in (("+12125550150", "an owner"), ("+12125550151", "opted out")):
            try:
                w.cur.execute("SELECT crefinder.bridge_call(%s, %s)", (OWNER, agent))
                raise AssertionError("agent %s was accepted" % agent)
            except Exception as e:
                assert getattr(e, "pgcode", None) == "22023" and why in str(e), e
        # a voicemail drop needs a written consent: an express one is not enough
        w.cur.execute("SELECT crefinder.record_consent('+12125550199', 'voicemail', 'express', 'phone call')")
        assert w.one("SELECT reason FROM crefinder.can_contact('voicemail', '+12125550199', now(), NULL)")["reason"] \
            == "no_consent"
        # nothing to say is refused
        for text in ("\ufffe", "\n\n", "   "):
            try:
                w.cur.execute("SELECT crefinder.drop_voicemail(%s, say_text => %s)", (OWNER, text))
                raise AssertionError("said %r" % text)
            except Exception as e:
                assert getattr(e, "pgcode", None) == "22023", e
        w.cur.execute("RESET crefinder.user_id")

        # a keypad 9 cancels the texts that wait at Twilio, as a texted STOP does
        later = w.message(A, "sms", OWNER, "SM" + uuid.uuid4().hex, provider_status="scheduled",
                          payload='{"body": "Later", "twilio_send_at": "2099-01-01T00:00:00Z"}')
        w.cur.execute("UPDATE crefinder.outbound_events SET provider_status = 'scheduled' WHERE id = %s", (later,))
        sid3 = call_sid()
        m3 = call_message(w, A, "voicemail", OWNER, sid3, '{"say_text": "Hi."}')
        verbs(voice(w, step_url(m3, "keypress"), {"CallSid": sid3, "Digits": "9"}))
        row = w.row(later)
        assert row["status"] == "queued" and row["payload"].get("twilio_cancel") is True, row

        # a drop is delivered when its message is played, not by a callback; a fax undoes it
        sid4 = call_sid()
        m4 = call_message(w, A, "voicemail", "+12125550153", sid4, '{"say_text": "Hi."}')
        voice(w, step_url(m4, "status"), {"CallSid": sid4, "CallStatus": "in-progress", "AnsweredBy": "human"})
        assert w.row(m4)["status"] == "sent"
        verbs(voice(w, step_url(m4, "answer"), {"CallSid": sid4, "CallStatus": "in-progress", "AnsweredBy": "human"}))
        assert w.row(m4)["status"] == "delivered"
        voice(w, step_url(m4, "status"), {"CallSid": sid4, "CallStatus": "completed", "CallDuration": "3",
                                          "AnsweredBy": "fax"})
        row = w.row(m4)
        assert (row["status"], row["delivered_at"]) == ("sent", None), row

        # a call that was never placed answers nothing, whoever signs
        m5 = call_message(w, A, "call", "+12125550154", None, '{"agent_number": "%s"}' % AGENT, status="blocked",
                          block_reason="dnc")
        root = verbs(voice(w, step_url(m5, "connect"), {"CallSid": call_sid(), "Digits": "1"}))
        assert [e.tag for e in root] == ["Hangup"]
        row = w.row(m5)
        assert (row["status"], row["provider_message_id"], row["provider_status"]) == ("blocked", None, "queued"), row
        # a number put on DNC after the drop was placed hears nothing
        sid6 = call_sid()
        m6 = call_message(w, A, "voicemail", "+12125550155", sid6, '{"say_text": "Hi."}')
        w.as_tenant(A)
        w.cur.execute("SELECT crefinder.record_consent('+12125550155', 'voicemail', 'express_written', 'form')")
        w.cur.execute("SELECT crefinder.revoke_consent('+12125550155', 'voicemail')")
        w.cur.execute("RESET crefinder.user_id")
        root = verbs(voice(w, step_url(m6, "answer"), {"CallSid": sid6, "AnsweredBy": "machine_end_beep"}))
        assert [e.tag for e in root] == ["Hangup"]

        # Twilio's retry of a voice request (the same idempotency token) gets the same TwiML
        sid7 = call_sid()
        m7 = call_message(w, A, "call", "+12125550156", sid7, '{"agent_number": "%s"}' % AGENT)
        params = [("CallSid", sid7), ("Digits", "1"), ("AccountSid", ACCOUNT[A])]
        url = step_url(m7, "connect")
        answers = [w.one("SELECT crefinder.handle_twilio_voice_webhook(%s, %s, %s, 'token-7') AS r",
                         (url, urlencode(params), twilio_signature(TOKEN[A], url, params)))["r"] for _ in range(2)]
        assert answers[0] == answers[1] and answers[0]["http_status"] == 200
        verbs(answers[1])

        # a call to a number of a tenant that shares another's Twilio account opts out with that tenant
        w.as_tenant(B)
        w.cur.execute("SELECT crefinder.configure('twilio', %s)", (json.dumps({
            "accountSid": ACCOUNT[A], "authToken": TOKEN[A], "phoneNumber": NUMBER[B]}),))
        w.cur.execute("SELECT crefinder.set_tenant_settings('{\"callback_number\": \"+13055550299\"}')")
        w.cur.execute("RESET crefinder.user_id")
        caller = "+12125550157"
        url = VOICE_URL + "?crefinder_step=inbound_keypress"
        verbs(voice(w, url, {"CallSid": call_sid(), "From": caller, "To": "+13055550299", "Digits": "9"}))
        assert [r["user_id"] for r in w.all("SELECT user_id::text FROM crefinder.opt_outs WHERE contact = %s",
                                             (caller,))] == [B]
        # a number that is neither's: both tenants that signed
        caller2 = "+12125550158"
        verbs(voice(w, url, {"CallSid": call_sid(), "From": caller2, "To": "+13055550777", "Digits": "9"}))
        assert sorted(r["user_id"] for r in w.all("SELECT user_id::text FROM crefinder.opt_outs WHERE contact = %s",
                                                   (caller2,))) == sorted([A, B])
        # a hidden number cannot be opted out: said so
        root = verbs(voice(w, url, {"CallSid": call_sid(), "From": "anonymous", "To": NUMBER[A], "Digits": "9"}))
        assert "hidden" in said(root)
    finally:
        w.close()


def test_second_review_findings(cluster):
    """What the second hostile review found, each tried."""
    w = World(cluster, "voice_review2")
    try:
        prepare(w)
        w.as_tenant(A)
        # press 1 connects whether compliance has a time-based word for the owner or none at all
        sid = call_sid()
        m = call_message(w, A, "voicemail", OWNER, sid, '{"say_text": "Hi."}')
        hour = (time.gmtime().tm_hour + 12) % 24
        for window in (('00:00', '23:59:59'), ('%02d:00' % hour, '%02d:30' % hour)):
            w.cur.execute("SELECT crefinder.set_tenant_settings(%s)", (json.dumps(
                {"voicemail_window_start": window[0], "voicemail_window_end": window[1]}),))
            w.cur.execute("RESET crefinder.user_id")
            root = verbs(voice(w, step_url(m, "keypress"), {"CallSid": sid, "Digits": "1"}))
            assert root.find("Dial/Number") is not None and root.find("Dial/Number").text == AGENT, window
            w.as_tenant(A)
        # only a written consent lifts a DNC listing
        w.cur.execute("SELECT crefinder.dnc_add('+12125550190')")
        w.cur.execute("SELECT crefinder.record_consent('+12125550190', 'sms', 'express', 'phone call')")
        assert w.one("SELECT reason FROM crefinder.can_contact('sms', '+12125550190', now(), NULL)")["reason"] == "dnc"
        w.cur.execute("SELECT crefinder.record_consent('+12125550190', 'sms', 'express_written', 'web form')")
        assert w.one("SELECT reason FROM crefinder.can_contact('sms', '+12125550190', now(), NULL)")["reason"] \
            in (None, "quiet_hours")
        # an agent that is an owner's phone however it was typed, or that opted out, is refused everywhere
        w.cur.execute("SELECT crefinder.configure('twilio', %s)", (json.dumps({
            "accountSid": ACCOUNT[A], "authToken": TOKEN[A], "phoneNumber": NUMBER[A],
            "voiceWebhookUrl": VOICE_URL}),))
        w.cur.execute("INSERT INTO crefinder.property_records (owner_name, owner_phone) VALUES ('Bo', '(305) 555-0161')")
        w.cur.execute("SELECT crefinder.opt_out('sms', '+13055550162')")
        for agent in ("(305) 555-0161", "+13055550162"):
            for sql, args in (("SELECT crefinder.bridge_call(%s, %s)", (OWNER, agent)),
                              ("SELECT crefinder.set_tenant_settings(%s)",
                               (json.dumps({"agent_number": w.one("SELECT crefinder.normalize_phone(%s) AS n",
                                                                  (agent,))["n"]}),))):
                try:
                    w.cur.execute(sql, args)
                    raise AssertionError("%s accepted %s" % (sql, agent))
                except Exception as e:
                    assert getattr(e, "pgcode", None) == "22023", e
        w.cur.execute("RESET crefinder.user_id")

        # Twilio's stand-in for a withheld number is no one's number
        url = VOICE_URL + "?crefinder_step=inbound_keypress"
        root = verbs(voice(w, url, {"CallSid": call_sid(), "From": "+266696687", "To": NUMBER[A], "Digits": "9"}))
        assert "hidden" in said(root)
        assert w.one("SELECT count(*) AS n FROM crefinder.opt_outs WHERE contact = '+266696687'")["n"] == 0
        # a call to a number that is none of the signers': no tenant's name, no agent
        root = verbs(voice(w, VOICE_URL, {"CallSid": call_sid(), "From": "+12125550191", "To": "+13055550777"}))
        assert "Acme" not in said(root) and "press 1" not in said(root) and "press 9" in said(root)
    finally:
        w.close()
