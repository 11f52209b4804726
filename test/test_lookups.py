"""The dispatcher's lookups against the sandbox: Twilio's price fetched
once a text is final, texts and calls whose final callback was lost
brought up to date (reconciliation), the pace, the give-up, hostile
answers, and the health view's backlog.  The sandbox keeps every message
and call as the provider knows it; a test moves them on and sends the
callback, or "loses" it."""
import json
import re
import time
from decimal import Decimal
from urllib.parse import urlencode

import test_dispatcher as td
from test_webhooks import TRANSCRIPT_INTERESTED, twilio_signature

SID_PATH = re.compile(r"^/2010-04-01/Accounts/AC[0-9a-fA-F]{32}/Messages/(SM|MM)[0-9a-fA-F]{32}\.json$")
CALL_PATH = re.compile(r"^/call/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def set_system(cluster, **settings):
    admin = cluster.connect(dbname="postgres")
    with admin.cursor() as cur:
        for name, value in settings.items():
            if value is None:
                cur.execute("ALTER SYSTEM RESET crefinder.%s" % name)
            else:
                cur.execute("ALTER SYSTEM SET crefinder.%s = %%s" % name, (str(value),))
        cur.execute("SELECT pg_reload_conf()")
    admin.close()
    time.sleep(0.5)


def fields(s, message_id):
    s.cur.execute("SELECT status, provider_status, cost_cents, segments, sender, lookup_at, lookups, "
                  "last_error, delivered_at IS NOT NULL, lookup_at - now() "
                  "FROM crefinder.outbound_events WHERE id = %s", (message_id,))
    return dict(zip(["status", "provider_status", "cost", "segments", "sender", "lookup_at", "lookups",
                     "error", "delivered", "lookup_in"], s.cur.fetchone()))


def wait_for(s, message_id, check, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        f = fields(s, message_id)
        if check(f):
            return f
        time.sleep(0.1)
    raise AssertionError("message %s: %r" % (message_id, fields(s, message_id)))


def sid_of(s, message_id):
    s.cur.execute("SELECT provider_message_id FROM crefinder.outbound_events WHERE id = %s", (message_id,))
    return s.cur.fetchone()[0]


def twilio_moves(s, message_id, **changes):
    return s.sandbox.call("POST", "/_sandbox/twilio/messages/" + sid_of(s, message_id), changes)


def due_now(s, *ids):
    s.cur.execute("UPDATE crefinder.outbound_events SET lookup_at = now() WHERE id = ANY (%s)", (list(ids),))


def callback(s, message_id, status, **more):
    url = "https://app.example.com/hooks/twilio?crefinder_message_id=%d" % message_id
    params = [("MessageSid", sid_of(s, message_id)), ("MessageStatus", status), ("AccountSid", td.ACCOUNT),
              ("From", "+13055550100")] + list(more.items())
    s.cur.execute("SELECT crefinder.handle_twilio_webhook(%s, %s, %s) ->> 'http_status'",
                  (url, urlencode(params), twilio_signature(td.TOKEN, url, params)))
    assert s.cur.fetchone()[0] == "200"


def send(s, to, body="Hi, about 12 Main St"):
    s.cur.execute("SET crefinder.user_id = %s", (td.TENANT,))
    s.cur.execute("SELECT crefinder.send_sms(%s, %s)", (to, body))
    m = s.cur.fetchone()[0]
    s.cur.execute("RESET crefinder.user_id")
    return m


def test_twilio_prices_and_lost_callbacks(cluster):
    s = td.Setup(cluster)
    try:
        priced, lost_delivered, lost_filtered, late_price, long_text, still_sent, hostile = (
            send(s, "+1212555%04d" % (200 + i), body) for i, body in enumerate(
                ["Hi"] * 4 + ["x" * 200] + ["Hi"] * 2))
        for m in (priced, lost_delivered, lost_filtered, late_price, long_text, still_sent, hostile):
            assert s.wait_status(m, ("sent", "failed")) == "sent"
        f = fields(s, priced)
        # asked about 2 hours (crefinder.reconcile_after) after it went, unless its final status comes first
        assert f["lookups"] == 0 and 7100 <= f["lookup_in"].total_seconds() <= 7200, f
        assert f["sender"] == "+13055550100"

        # the callback comes: the price is asked for a minute later
        twilio_moves(s, priced, status="delivered")
        callback(s, priced, "delivered")
        f = fields(s, priced)
        assert f["status"] == "delivered" and f["cost"] is None
        assert 50 <= f["lookup_in"].total_seconds() <= 60, f
        due_now(s, priced)
        f = wait_for(s, priced, lambda f: f["cost"] is not None)
        assert f["cost"] == Decimal("0.79") and f["segments"] == 1 and f["lookup_at"] is None

        # callbacks that never come: the lookup brings the message up to date
        twilio_moves(s, lost_delivered, status="delivered")
        twilio_moves(s, lost_filtered, status="undelivered", error_code=30007)
        twilio_moves(s, late_price, status="delivered", price=None)
        twilio_moves(s, long_text, status="delivered")
        twilio_moves(s, still_sent, status="sent", price="-0.00790")
        # a hostile or broken answer: another message's resource
        twilio_moves(s, hostile, status="delivered", sid="SM" + "0" * 32)
        # two hours later, the dispatcher asks
        due_now(s, lost_delivered, lost_filtered, late_price, long_text, still_sent, hostile)
        f = wait_for(s, lost_delivered, lambda f: f["status"] == "delivered" and f["cost"] is not None)
        assert f["delivered"] and f["provider_status"] == "delivered" and f["lookup_at"] is None
        f = wait_for(s, lost_filtered, lambda f: f["status"] == "failed" and f["cost"] is not None)
        assert "30007" in f["error"] and f["cost"] == Decimal("0.79")
        f = wait_for(s, long_text, lambda f: f["cost"] is not None)
        assert f["cost"] == Decimal("1.58") and f["segments"] == 2
        # Twilio said no more than sent, with its price: settled as it is
        f = wait_for(s, still_sent, lambda f: f["lookup_at"] is None)
        assert f["status"] == "sent" and f["cost"] == Decimal("0.79")
        # delivered, the price not known yet: asked again later (a lease of minutes)
        f = wait_for(s, late_price, lambda f: f["status"] == "delivered")
        # the price is asked for again in a minute (a final status's own lookup)
        assert f["cost"] is None and f["lookups"] == 0 and 50 <= f["lookup_in"].total_seconds() <= 60, f
        twilio_moves(s, late_price, price="-0.00790")
        due_now(s, late_price)
        f = wait_for(s, late_price, lambda f: f["cost"] is not None)
        assert f["cost"] == Decimal("0.79") and f["lookup_at"] is None
        # the hostile answer changed nothing, and the others went on
        f = fields(s, hostile)
        # (leased for the next try: a minute)
        assert f["status"] == "sent" and f["cost"] is None and f["lookups"] == 1, f
        assert 20 <= f["lookup_in"].total_seconds() <= 60, f

        # the rollups saw the lookups' changes like any other
        s.cur.execute("SELECT sum(delivered), sum(failed), sum(filtered), sum(priced), sum(cost_cents) "
                      "FROM crefinder.rollups WHERE user_id = %s AND channel = 'sms'", (td.TENANT,))
        assert s.cur.fetchone() == (4, 1, 1, 6, Decimal("5.5300"))

        # every lookup is a GET of the message's own resource, with the tenant's credentials
        gets = [r for r in s.sandbox.requests() if r["method"] == "GET" and "/Messages/" in r["path"]]
        assert gets and all(SID_PATH.match(r["path"]) and r["body"] == "" for r in gets)
        assert all(r["headers"]["authorization"].startswith("Basic ") for r in gets)
        assert 8 <= len(gets) <= 9, len(gets)   # (9: the hostile one leased again after a minute)
    finally:
        s.close()


def test_lookups_survive_races_hostile_answers_and_refusals(cluster):
    s = td.Setup(cluster)
    try:
        # a "sent" callback faster than the dispatcher's record of the send:
        # the text is reconciled all the same
        s.sandbox.call("POST", "/_sandbox/faults", {"path": "/2010-04-01/Accounts/%s/Messages.json" % td.ACCOUNT,
                                                    "fault": "slow", "seconds": 1.5, "count": 1})
        raced = send(s, "+12125550171")
        deadline = time.time() + 10
        while time.time() < deadline and not [r for r in s.sandbox.requests() if "12125550171" in r["body"]]:
            time.sleep(0.05)
        url = "https://app.example.com/hooks/twilio?crefinder_message_id=%d" % raced
        params = [("MessageSid", "SM" + "7" * 32), ("MessageStatus", "sent"), ("AccountSid", td.ACCOUNT),
                  ("From", "+13055550100")]
        s.cur.execute("SELECT crefinder.handle_twilio_webhook(%s, %s, %s) ->> 'http_status'",
                      (url, urlencode(params), twilio_signature(td.TOKEN, url, params)))
        assert s.cur.fetchone()[0] == "200"
        s.wait_status(raced, ("sent",))
        time.sleep(2)
        f = fields(s, raced)
        assert f["status"] == "sent" and 7100 <= f["lookup_in"].total_seconds() <= 7200, f

        # the last reconciliation finds the text delivered without a price: the price keeps its lookups
        last = send(s, "+12125550172")
        s.wait_status(last, ("sent",))
        twilio_moves(s, last, status="delivered", price=None)
        s.cur.execute("UPDATE crefinder.outbound_events SET lookups = 9, lookup_at = now() WHERE id = %s", (last,))
        f = wait_for(s, last, lambda f: f["status"] == "delivered")
        assert f["lookups"] == 0 and 50 <= f["lookup_in"].total_seconds() <= 60, f

        # out-of-bounds numbers and a strange sender are no price and no number; the status holds
        odd = send(s, "+12125550173")
        s.wait_status(odd, ("sent",))
        s.cur.execute("UPDATE crefinder.outbound_events SET sender = NULL WHERE id = %s", (odd,))
        twilio_moves(s, odd, status="delivered", price="-99999999.99999999", num_segments="99999",
                     error_code="x" * 40, **{"from": "é" * 64})
        due_now(s, odd)
        f = wait_for(s, odd, lambda f: f["status"] == "delivered")
        assert f["cost"] is None and f["sender"] is None and f["segments"] is None, f

        # credentials refused, or a 404 that is not Twilio's: nothing changes, the lease brings it back
        refused = send(s, "+12125550174")
        s.wait_status(refused, ("sent",))
        twilio_moves(s, refused, status="delivered")
        for fault in ("401", "404-html"):
            s.sandbox.call("POST", "/_sandbox/faults", {"path": "/2010-04-01/Accounts/%s/Messages/" % td.ACCOUNT,
                                                        "fault": fault, "count": 1})
            before = fields(s, refused)["lookups"]
            due_now(s, refused)
            f = wait_for(s, refused, lambda f: f["lookups"] == before + 1 and f["lookup_in"].total_seconds() > 30)
            assert f["status"] == "sent" and f["cost"] is None, f
        s.cur.execute("SELECT paused_at FROM crefinder.integration_configs WHERE provider = 'twilio'")
        assert s.cur.fetchone()[0] is None
        due_now(s, refused)
        f = wait_for(s, refused, lambda f: f["lookup_at"] is None)
        assert f["status"] == "delivered" and f["cost"] == Decimal("0.79")

        # emails are never looked up (SendGrid has nothing to ask)
        s.cur.execute("SET crefinder.user_id = %s", (td.TENANT,))
        s.cur.execute("SELECT crefinder.send_email('owner@example.com', 'Hi', html => '<p>Hi</p>')")
        email = s.cur.fetchone()[0]
        s.cur.execute("RESET crefinder.user_id")
        s.wait_status(email, ("sent",))
        assert fields(s, email)["lookup_at"] is None
    finally:
        s.close()


def test_lookups_give_up_pace_and_show_in_health(cluster):
    s = td.Setup(cluster)
    try:
        set_system(cluster, lookups_per_second=0)
        ids = [send(s, "+1212555%04d" % (300 + i)) for i in range(10)]
        for m in ids:
            s.wait_status(m, ("sent",))
        unknown = send(s, "+12125550399")
        s.wait_status(unknown, ("sent",))
        for m in ids:
            twilio_moves(s, m, status="delivered")
        due_now(s, *ids)
        # the backlog: lookups due at the provider, seen by the tenant
        s.cur.execute("SET crefinder.user_id = %s", (td.TENANT,))
        s.cur.execute("SELECT reconciliation_backlog FROM crefinder.health WHERE provider = 'twilio'")
        assert s.cur.fetchone()[0] == 10
        s.cur.execute("RESET crefinder.user_id")

        # the last of its lookups, and one the provider does not know (404)
        s.cur.execute("UPDATE crefinder.outbound_events SET lookups = 9, lookup_at = now() WHERE id = %s",
                      (ids[0],))
        twilio_moves(s, ids[0], status="sent", price=None)
        s.cur.execute("UPDATE crefinder.outbound_events SET provider_message_id = %s, lookup_at = now() "
                      "WHERE id = %s", ("SM" + "f" * 32, unknown))

        started = time.time()
        set_system(cluster, lookups_per_second=3)
        for m in ids[1:]:
            wait_for(s, m, lambda f: f["cost"] is not None)
        f = wait_for(s, ids[0], lambda f: f["lookup_at"] is None)
        assert f["lookups"] == 10 and f["cost"] is None and f["status"] == "sent"
        wait_for(s, unknown, lambda f: f["lookup_at"] is None)
        # paced: 11 lookups at 3 a second (a bucket of 3 to start) take 2.5 s at least
        gets = sorted(r["at"] for r in s.sandbox.requests() if r["method"] == "GET" and r["at"] >= started)
        assert len(gets) == 11, len(gets)
        assert gets[-1] - gets[0] >= 2.5, gets
        assert max(sum(1 for g in gets if t <= g < t + 1.0) for t in gets) <= 6
        s.cur.execute("SELECT count(*) FROM crefinder.outbound_events WHERE lookup_at <= now()")
        assert s.cur.fetchone()[0] == 0
    finally:
        set_system(cluster, lookups_per_second=None)
        s.close()


def test_a_call_whose_report_was_lost(cluster):
    s = td.Setup(cluster)
    try:
        s.cur.execute("SET crefinder.user_id = %s", (td.TENANT,))
        s.configure("vapi", {"apiKey": td.VAPI_KEY, "orgId": "org-1", "phoneNumber": td.PHONE_ID,
                             "assistantId": "asst-default", "maxCallDuration": 600,
                             "webhookSecret": "lookup-secret"})
        s.cur.execute("SELECT crefinder.record_consent('+12125550104', 'voice', 'express_written', 'form', '{}')")
        s.cur.execute("SELECT crefinder.record_consent('+12125550105', 'voice', 'express_written', 'form', '{}')")
        s.cur.execute("SELECT crefinder.start_call('+12125550104')")
        call = s.cur.fetchone()[0]
        s.cur.execute("SELECT crefinder.start_call('+12125550105')")
        going_on = s.cur.fetchone()[0]
        s.cur.execute("RESET crefinder.user_id")
        for m in (call, going_on):
            assert s.wait_status(m, ("sent",)) == "sent"
        f = fields(s, call)
        # maxCallDuration (600 s) + 10 minutes
        assert 1100 <= f["lookup_in"].total_seconds() <= 1200, f
        assert f["sender"] == td.PHONE_ID
        call_id = sid_of(s, call)
        transcript = TRANSCRIPT_INTERESTED
        s.sandbox.call("POST", "/_sandbox/vapi/calls/" + call_id, {
            "status": "ended", "endedReason": "customer-ended-call", "cost": 0.42,
            "startedAt": "2026-12-02T15:00:00.000Z", "endedAt": "2026-12-02T15:02:30.000Z",
            "artifact": {"transcript": transcript}, "analysis": {"summary": "Open to an offer."}})
        s.sandbox.call("POST", "/_sandbox/vapi/calls/" + sid_of(s, going_on), {"status": "in-progress"})
        due_now(s, call, going_on)
        f = wait_for(s, call, lambda f: f["lookup_at"] is None)
        assert f["status"] == "delivered" and f["provider_status"] == "ended" and f["cost"] == Decimal("42")
        s.cur.execute("SELECT status, duration_seconds, transcript FROM crefinder.call_results WHERE call_id = %s",
                      (call_id,))
        assert s.cur.fetchone() == ("ended", 150, transcript)
        s.cur.execute("SELECT kind FROM crefinder.responses WHERE message_id = %s", (call,))
        assert s.cur.fetchall() == [("interested",)]
        # a call still going on: answered, asked about again later
        f = wait_for(s, going_on, lambda f: f["status"] == "delivered")
        assert f["provider_status"] == "in-progress" and f["lookup_in"].total_seconds() > 30

        # Vapi's report comes after all: the call's record is updated, the answer not counted twice
        report = {"message": {"type": "end-of-call-report", "endedReason": "customer-ended-call", "cost": 0.42,
                              "timestamp": int(time.time() * 1000),
                              "artifact": {"transcript": transcript},
                              "call": {"id": call_id, "assistantOverrides": {"metadata": {
                                  "crefinder_message_id": str(call), "crefinder_tenant": td.TENANT}}}}}
        s.cur.execute("SELECT crefinder.handle_vapi_message(%s, %s) ->> 'http_status'",
                      (json.dumps(report), json.dumps({"x-vapi-secret": "lookup-secret"})))
        assert s.cur.fetchone()[0] == "200"
        s.cur.execute("SELECT count(*) FROM crefinder.responses WHERE message_id = %s", (call,))
        assert s.cur.fetchone()[0] == 1
        gets = [r for r in s.sandbox.requests() if r["method"] == "GET" and r["path"].startswith("/call/")]
        assert gets and all(CALL_PATH.match(r["path"]) for r in gets)
        assert all(r["headers"]["authorization"] == "Bearer " + td.VAPI_KEY for r in gets)
    finally:
        s.close()
