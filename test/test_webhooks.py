"""Webhooks end to end in SQL: Twilio status callbacks and inbound texts,
SendGrid's Signed Event Webhook, Vapi's server messages.

Each request is signed here the way the provider signs it (HMAC-SHA1 with
the tenant's auth token; ECDSA P-256 with a key pair made for the test;
Vapi's shared secret or HMAC-SHA256) and handed to the handler the way an
application's route would.  What each event must change is checked row by
row, and what it must not: replays, out-of-order callbacks, bad
signatures, other tenants' ids.
"""
import base64
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import parse_qs, urlencode

import psycopg2
import psycopg2.extras
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

DB = "crefinder_webhooks_test"
A = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa"
B = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb"
ACCOUNT = {A: "AC" + "a1" * 16, B: "AC" + "b2" * 16}
TOKEN = {A: "0123456789abcdef" * 2, B: "fedcba9876543210" * 2}
NUMBER = {A: "+13055550100", B: "+13055550200"}
VAPI_SECRET = {A: "vapi-secret-of-tenant-a", B: "vapi-secret-of-tenant-b"}
URL = "https://app.example.com/webhooks/twilio"
OWNER = "+13055551234"


def twilio_signature(token, url, params):
    """X-Twilio-Signature of a form POST (params: list of (name, value))."""
    data = url
    by_name = {}
    for k, v in params:
        by_name.setdefault(k, set()).add(v)
    for k in sorted(by_name):
        for v in sorted(by_name[k]):
            data += k + v
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def ec_key():
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, base64.b64encode(public).decode()


def sendgrid_signature(key, timestamp, body):
    return base64.b64encode(key.sign((timestamp + body).encode(), ec.ECDSA(hashes.SHA256()))).decode()


class World:
    """A fresh database with two tenants, each with Twilio, SendGrid and
    Vapi settings, and helpers that sign and deliver webhooks."""

    def __init__(self, cluster, name):
        self.conn = cluster.fresh_database("%s_%s" % (DB, name))
        self.cur = self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
        self.keys = {}
        for tenant in (A, B):
            key, public = ec_key()
            self.keys[tenant] = key
            self.as_tenant(tenant)
            self.cur.execute("SELECT crefinder.configure('twilio', %s)",
                             (json.dumps({"accountSid": ACCOUNT[tenant], "authToken": TOKEN[tenant],
                                          "phoneNumber": NUMBER[tenant]}),))
            self.cur.execute("SELECT crefinder.configure('sendgrid', %s)",
                             (json.dumps({"apiKey": "SG.key" + tenant[:8] + ".secret", "fromEmail": "deals@example.com",
                                          "eventWebhookPublicKey": public}),))
            self.cur.execute("SELECT crefinder.configure('vapi', %s)",
                             (json.dumps({"apiKey": "vapi-" + tenant[:8], "orgId": "org-" + tenant[:8],
                                          "webhookSecret": VAPI_SECRET[tenant]}),))
        self.cur.execute("RESET crefinder.user_id")

    def as_tenant(self, tenant):
        self.cur.execute("SET crefinder.user_id = %s", (tenant,))

    def one(self, sql, args=None):
        self.cur.execute(sql, args)
        return self.cur.fetchone()

    def all(self, sql, args=None):
        self.cur.execute(sql, args)
        return self.cur.fetchall()

    # --- messages, as the dispatcher leaves them -------------------------

    def message(self, tenant, channel, to, provider_id, status="sent", provider_status="queued",
                property_id=None, **extra):
        cols = ["user_id", "channel", "to_contact", "status", "provider_message_id", "provider_status",
                "sent_at", "property_id"] + list(extra)
        vals = [tenant, channel, to, status, provider_id, provider_status,
                None if status in ("queued", "sending") else "now()", property_id] + list(extra.values())
        row = self.one("INSERT INTO crefinder.outbound_events (%s) VALUES (%s) RETURNING id"
                       % (", ".join(cols), ", ".join("now()" if v == "now()" else "%s" for v in vals)),
                       [v for v in vals if v != "now()"])
        return row["id"]

    def property(self, tenant, **fields):
        fields.setdefault("owner_name", "Pat Owner")
        return self.one("INSERT INTO crefinder.property_records (user_id, %s) VALUES (%%s, %s) RETURNING id"
                        % (", ".join(fields), ", ".join(["%s"] * len(fields))),
                        [tenant] + list(fields.values()))["id"]

    def row(self, message_id):
        return self.one("SELECT * FROM crefinder.outbound_events WHERE id = %s", (message_id,))

    def last_event(self, provider):
        return self.one("SELECT * FROM crefinder.webhook_events WHERE provider = %s ORDER BY id DESC LIMIT 1",
                        (provider,))

    # --- deliveries -------------------------------------------------------

    def twilio(self, params, tenant=A, url=URL, signature=None, token=None, signed_url=None):
        params = list(params.items()) if isinstance(params, dict) else list(params)
        if not any(k == "AccountSid" for k, _ in params):
            params.append(("AccountSid", ACCOUNT[tenant]))
        body = urlencode(params)
        if signature is None:
            signature = twilio_signature(token or TOKEN[tenant], signed_url or url, params)
        return self.one("SELECT crefinder.handle_twilio_webhook(%s, %s, %s, %s) AS r",
                        (url, body, signature, None))["r"]

    def status(self, sid, status, tenant=A, error=None, token_header=None, **more):
        params = [("MessageSid", sid), ("MessageStatus", status), ("SmsStatus", status),
                  ("AccountSid", ACCOUNT[tenant]), ("To", more.pop("to", OWNER)), ("From", NUMBER[tenant])]
        if error:
            params.append(("ErrorCode", error))
        params += list(more.items())
        body = urlencode(params)
        return self.one("SELECT crefinder.handle_twilio_webhook(%s, %s, %s, %s) AS r",
                        (URL, body, twilio_signature(TOKEN[tenant], URL, params), token_header))["r"]

    def inbound(self, text, sender=OWNER, tenant=A, sid=None, **more):
        params = [("MessageSid", sid or "SM" + uuid.uuid4().hex), ("AccountSid", ACCOUNT[tenant]),
                  ("From", sender), ("To", NUMBER[tenant]), ("Body", text), ("SmsStatus", "received"),
                  ("NumMedia", str(more.pop("num_media", 0)))]
        params += list(more.items())
        return self.twilio(params, tenant=tenant)

    def sendgrid(self, events, tenant=A, key_of=None, timestamp=None, signature=None, body=None):
        body = body if body is not None else json.dumps(events) + "\r\n"
        timestamp = timestamp or str(int(time.time()))
        if signature is None:
            signature = sendgrid_signature(self.keys[key_of or tenant], timestamp, body)
        return self.one("SELECT crefinder.handle_sendgrid_events(%s, %s, %s, %s) AS r",
                        (body, signature, timestamp, tenant))["r"]

    def vapi(self, message, tenant=A, secret=None, headers=None, body=None):
        body = body if body is not None else json.dumps({"message": message})
        if headers is None:
            headers = {"X-Vapi-Secret": secret or VAPI_SECRET[tenant], "Content-Type": "application/json"}
        return self.one("SELECT crefinder.handle_vapi_message(%s, %s) AS r", (body, json.dumps(headers)))["r"]

    def close(self):
        self.conn.close()


def sid():
    return "SM" + uuid.uuid4().hex


# ----------------------------------------------------------------------
# Twilio
# ----------------------------------------------------------------------

def test_twilio_status_callbacks(cluster):
    w = World(cluster, "twilio_status")
    try:
        # delivered: the message is delivered, once, with the first instant
        s1 = sid()
        m1 = w.message(A, "sms", OWNER, s1)
        r = w.status(s1, "sent")
        assert r["http_status"] == 200 and r["content_type"] == "text/xml", r
        assert w.row(m1)["provider_status"] == "sent"
        r = w.status(s1, "delivered")
        row = w.row(m1)
        assert (row["status"], row["provider_status"]) == ("delivered", "delivered"), row
        first = row["delivered_at"]
        assert first is not None
        # out of order and repeated: a late "sent", the same "delivered" again
        w.status(s1, "sent")
        w.status(s1, "delivered")
        assert w.last_event("twilio")["outcome"] == "duplicate"
        row = w.row(m1)
        assert (row["status"], row["provider_status"], row["delivered_at"]) == ("delivered", "delivered", first)
        # a late failure of a delivered message changes nothing either
        w.status(s1, "undelivered", error="30003")
        assert w.row(m1)["status"] == "delivered"

        # undelivered with a carrier filter code
        s2 = sid()
        m2 = w.message(A, "sms", "+13055551111", s2)
        w.status(s2, "undelivered", error="30007", to="+13055551111")
        row = w.row(m2)
        assert row["status"] == "failed" and "30007" in row["last_error"] and "filtered" in row["last_error"], row

        # 21610: failed, and the number is opted out on every phone channel
        s3 = sid()
        m3 = w.message(A, "sms", "+13055552222", s3)
        w.status(s3, "failed", error="21610", to="+13055552222")
        assert w.row(m3)["status"] == "failed"
        w.as_tenant(A)
        for channel in ("sms", "voice", "whatsapp"):
            allowed = w.one("SELECT allowed, reason FROM crefinder.can_contact(%s, '+13055552222')", (channel,))
            assert allowed["allowed"] is False and "opt" in allowed["reason"], (channel, allowed)
        w.cur.execute("RESET crefinder.user_id")

        # WhatsApp read after delivered: provider_status read, delivered_at kept
        s4 = sid()
        m4 = w.message(A, "whatsapp", "+13055553333", s4)
        w.status(s4, "delivered", to="whatsapp:+13055553333")
        at = w.row(m4)["delivered_at"]
        w.status(s4, "read", to="whatsapp:+13055553333")
        row = w.row(m4)
        assert (row["status"], row["provider_status"], row["delivered_at"]) == ("delivered", "read", at)

        # canceled at Twilio for a message scheduled there
        s5 = sid()
        m5 = w.message(A, "sms", "+13055554444", s5, provider_status="scheduled")
        w.status(s5, "canceled", to="+13055554444")
        assert w.row(m5)["status"] == "cancelled"
        # canceled for a message that was not scheduled: provider_status only
        s6 = sid()
        m6 = w.message(A, "sms", "+13055555555", s6, provider_status="sent")
        w.status(s6, "canceled", to="+13055555555")
        assert w.row(m6)["status"] == "sent"

        # an idempotency token seen before: nothing changes, whatever the body says
        s7 = sid()
        m7 = w.message(A, "sms", "+13055556666", s7)
        w.status(s7, "sent", token_header="idem-1")
        w.status(s7, "undelivered", error="30003", token_header="idem-1")
        assert w.row(m7)["status"] == "sent"
        assert w.last_event("twilio")["outcome"] == "duplicate"

        # unknown message: recorded, 200; a 21610 still opts the number out
        r = w.status(sid(), "failed", error="21610", to="+13055557777")
        assert r["http_status"] == 200
        assert w.last_event("twilio")["outcome"] == "unknown_message"
        assert w.one("SELECT count(*) AS n FROM crefinder.opt_outs WHERE user_id = %s AND contact = '+13055557777' "
                     "AND revoked_at IS NULL", (A,))["n"] == 1
    finally:
        w.close()


def test_twilio_rejections(cluster):
    w = World(cluster, "twilio_reject")
    try:
        s1 = sid()
        m1 = w.message(A, "sms", OWNER, s1)
        params = [("MessageSid", s1), ("MessageStatus", "delivered"), ("AccountSid", ACCOUNT[A])]
        # a bad signature: 401, recorded, nothing changes
        r = w.twilio(params, signature=twilio_signature(TOKEN[B], URL, params))
        assert r["http_status"] == 401, r
        ev = w.last_event("twilio")
        assert (ev["outcome"], ev["verified"], ev["user_id"]) == ("bad_signature", False, None)
        assert ev["payload"] and s1 in ev["payload"]
        assert w.row(m1)["status"] == "sent"
        # every single flipped byte of the signature, the URL or the body fails
        good = twilio_signature(TOKEN[A], URL, params)
        body = urlencode(params)
        for i in range(len(good)):
            bad = good[:i] + ("A" if good[i] != "A" else "B") + good[i + 1:]
            assert w.one("SELECT crefinder.handle_twilio_webhook(%s, %s, %s) ->> 'http_status' AS s",
                         (URL, body, bad))["s"] == "401"
        for i in range(len(URL)):
            bad_url = URL[:i] + chr(ord(URL[i]) ^ 1) + URL[i + 1:]
            assert w.one("SELECT crefinder.handle_twilio_webhook(%s, %s, %s) ->> 'http_status' AS s",
                         (bad_url, body, good))["s"] == "401", bad_url
        for i in range(len(body)):
            bad_body = body[:i] + chr(ord(body[i]) ^ 1) + body[i + 1:]
            status = w.one("SELECT crefinder.handle_twilio_webhook(%s, %s, %s) ->> 'http_status' AS s",
                           (URL, bad_body, good))["s"]
            assert status in ("400", "401"), (bad_body, status)
        assert w.row(m1)["status"] == "sent"
        # the signature over the URL with :443 is accepted for the URL without it, and back
        port_url = "https://app.example.com:443/webhooks/twilio"
        r = w.twilio(params, signature=twilio_signature(TOKEN[A], port_url, params))
        assert r["http_status"] == 200 and w.row(m1)["status"] == "delivered"
        s2 = sid()
        m2 = w.message(A, "sms", OWNER, s2)
        params2 = [("MessageSid", s2), ("MessageStatus", "delivered"), ("AccountSid", ACCOUNT[A])]
        r = w.twilio(params2, url=port_url, signature=twilio_signature(TOKEN[A], URL, params2))
        assert r["http_status"] == 200 and w.row(m2)["status"] == "delivered"
        # no signature at all
        r = w.one("SELECT crefinder.handle_twilio_webhook(%s, %s, NULL) AS r", (URL, urlencode(params2)))["r"]
        assert r["http_status"] == 401
        # unknown account, no account, malformed body, NULL body: 400
        other = [("MessageSid", s2), ("MessageStatus", "failed"), ("AccountSid", "AC" + "9" * 32)]
        assert w.twilio(other, signature="x")["http_status"] == 400
        assert w.last_event("twilio")["outcome"] == "unknown_tenant"
        assert w.one("SELECT crefinder.handle_twilio_webhook(%s, 'MessageSid=%%zz', 'x') AS r",
                     (URL,))["r"]["http_status"] == 400
        assert w.last_event("twilio")["outcome"] == "malformed"
        assert w.one("SELECT crefinder.handle_twilio_webhook(%s, NULL, NULL) AS r", (URL,))["r"]["http_status"] == 400
        # a signed callback whose fields are nonsense: 400, nothing changes
        r = w.twilio([("MessageSid", "nonsense"), ("MessageStatus", "delivered")])
        assert r["http_status"] == 400 and w.last_event("twilio")["outcome"] == "malformed"
        # oversized: 400 before anything is parsed
        w.cur.execute("SET crefinder.webhook_max_bytes = 2048")
        r = w.twilio(params2 + [("Body", "x" * 3000)])
        assert r["http_status"] == 400 and w.last_event("twilio")["outcome"] == "too_large"
        w.cur.execute("RESET crefinder.webhook_max_bytes")
        # JSON bodies: bodySHA256 in the URL, the HMAC over the URL only
        s3 = sid()
        m3 = w.message(A, "sms", OWNER, s3)
        doc = json.dumps({"MessageSid": s3, "MessageStatus": "delivered", "AccountSid": ACCOUNT[A]})
        json_url = URL + "?bodySHA256=" + hashlib.sha256(doc.encode()).hexdigest()
        sig = twilio_signature(TOKEN[A], json_url, [])
        r = w.one("SELECT crefinder.handle_twilio_webhook(%s, %s, %s) AS r", (json_url, doc, sig))["r"]
        assert r["http_status"] == 200 and w.row(m3)["status"] == "delivered", r
        r = w.one("SELECT crefinder.handle_twilio_webhook(%s, %s, %s) AS r", (json_url, doc + " ", sig))["r"]
        assert r["http_status"] == 401
        # JSON nested past the server's stack, unsigned: 400, not an error
        r = w.one("SELECT crefinder.handle_twilio_webhook(%s, repeat('[', 200000), 'x') AS r",
                  (URL + "?bodySHA256=00",))["r"]
        assert r["http_status"] == 400 and w.last_event("twilio")["outcome"] == "malformed"
    finally:
        w.close()


def test_twilio_inbound_replies(cluster):
    w = World(cluster, "twilio_inbound")
    try:
        w.as_tenant(A)
        w.cur.execute("SELECT crefinder.set_tenant_settings('{\"business_name\": \"Acme Realty\"}')")
        w.cur.execute("RESET crefinder.user_id")
        prop = w.property(A, owner_phone=OWNER)
        old = w.message(A, "sms", OWNER, sid(), property_id=prop)
        latest = w.message(A, "sms", OWNER, sid(), property_id=prop)
        w.cur.execute("UPDATE crefinder.outbound_events SET sent_at = now() - interval '1 day' WHERE id = %s", (old,))

        # an interested reply: stored, attributed to the latest message, a response, the lead moves
        r = w.inbound("I might be interested, what's your offer?")
        assert r["http_status"] == 200 and r["body"].endswith("<Response/>"), r
        inbound = w.one("SELECT * FROM crefinder.inbound_messages ORDER BY id DESC LIMIT 1")
        assert (inbound["message_id"], inbound["classification"], inbound["property_id"]) == \
            (latest, "interested", prop), inbound
        assert w.row(latest)["responded_at"] is not None and w.row(old)["responded_at"] is None
        resp = w.one("SELECT * FROM crefinder.responses ORDER BY id DESC LIMIT 1")
        assert (resp["kind"], resp["message_id"], resp["source"]) == ("interested", latest, "reply")
        assert w.one("SELECT lead_status FROM crefinder.property_records WHERE id = %s", (prop,))["lead_status"] \
            == "interested"

        # media
        w.inbound("photo of the roof", num_media=2, MediaUrl0="https://api.twilio.com/m/1",
                  MediaUrl1="https://api.twilio.com/m/2")
        assert w.one("SELECT media_urls FROM crefinder.inbound_messages ORDER BY id DESC LIMIT 1")["media_urls"] == \
            ["https://api.twilio.com/m/1", "https://api.twilio.com/m/2"]

        # HELP: the tenant's help text, naming the sender
        r = w.inbound("help")
        assert "<Message>Acme Realty:" in r["body"] and "STOP" in r["body"], r

        # STOP: opted out on every phone channel, one confirmation
        r = w.inbound("Stop")
        assert "<Message>" in r["body"] and "unsubscribed" in r["body"], r
        w.as_tenant(A)
        for channel in ("sms", "voice", "whatsapp"):
            assert w.one("SELECT allowed FROM crefinder.can_contact(%s, %s)", (channel, OWNER))["allowed"] is False
        w.cur.execute("RESET crefinder.user_id")
        r = w.inbound("STOP")
        assert "<Message>" not in r["body"], r
        assert w.one("SELECT lead_status FROM crefinder.property_records WHERE id = %s", (prop,))["lead_status"] \
            == "do_not_contact"
        # START lifts it; a request not to be called stays
        w.as_tenant(A)
        w.cur.execute("SELECT crefinder.opt_out('voice', '+13055550777', 'asked on a call')")
        w.cur.execute("RESET crefinder.user_id")
        w.inbound("Yes!", sender="+13055550777")
        assert w.one("SELECT count(*) AS n FROM crefinder.opt_outs WHERE contact = '+13055550777' "
                     "AND revoked_at IS NULL")["n"] == 1
        w.inbound("START")
        w.as_tenant(A)
        assert w.one("SELECT allowed FROM crefinder.can_contact('sms', %s, '2026-06-02 15:00Z')",
                     (OWNER,))["allowed"] is True
        w.cur.execute("RESET crefinder.user_id")

        # a free-text opt-out counts; Advanced Opt-Out (OptOutType) already confirmed: no Message
        other = "+13055559876"
        r = w.inbound("wrong number, don't text again", sender=other)
        assert "<Message>" in r["body"]
        assert w.one("SELECT count(*) AS n FROM crefinder.opt_outs WHERE contact = %s AND revoked_at IS NULL",
                     (other,))["n"] == 1
        third = "+13055558765"
        r = w.inbound("STOP", sender=third, OptOutType="STOP")
        assert "<Message>" not in r["body"]
        assert w.one("SELECT count(*) AS n FROM crefinder.opt_outs WHERE contact = %s AND revoked_at IS NULL",
                     (third,))["n"] == 1
        # WhatsApp replies come with the whatsapp: prefix
        r = w.inbound("no me interesa", sender="whatsapp:+13055554321")
        inbound = w.one("SELECT * FROM crefinder.inbound_messages ORDER BY id DESC LIMIT 1")
        assert (inbound["channel"], inbound["from_contact"]) == ("whatsapp", "+13055554321")

        # the same inbound message twice: stored once
        s = sid()
        w.inbound("call me next week", sid=s)
        w.inbound("call me next week", sid=s)
        assert w.one("SELECT count(*) AS n FROM crefinder.inbound_messages WHERE provider_message_id = %s",
                     (s,))["n"] == 1
        assert w.last_event("twilio")["outcome"] == "duplicate"
    finally:
        w.close()


# ----------------------------------------------------------------------
# SendGrid
# ----------------------------------------------------------------------

def sg_event(event, email, message_id=None, tenant=A, at=None, **more):
    e = {"email": email, "event": event, "sg_event_id": uuid.uuid4().hex, "timestamp": at or int(time.time()),
         "sg_message_id": more.pop("sg_message_id", "xMsgId.filter0001")}
    if message_id is not None:
        e["crefinder_message_id"] = str(message_id)
        e["crefinder_tenant"] = tenant
    e.update(more)
    return e


def test_sendgrid_events(cluster):
    w = World(cluster, "sendgrid")
    try:
        now = int(time.time())
        m1 = w.message(A, "email", "one@example.com", "msgOne", provider_status="processed")
        m2 = w.message(A, "email", "two@example.com", "msgTwo", provider_status="processed")
        m3 = w.message(A, "email", "three@example.com", "msgBatch", provider_status="processed")
        m4 = w.message(A, "email", "four@example.com", "msgBatch", provider_status="processed")
        events = [
            sg_event("processed", "one@example.com", m1, at=now - 50),
            sg_event("delivered", "one@example.com", m1, at=now - 40),
            sg_event("open", "one@example.com", m1, at=now - 30),
            sg_event("open", "one@example.com", m1, at=now - 20),
            sg_event("click", "one@example.com", m1, at=now - 10, url="https://example.com/offer"),
            sg_event("bounce", "two@example.com", m2, at=now - 10, type="bounce", reason="550 no such user"),
            # found by sg_message_id's prefix and the address (one X-Message-Id, many recipients)
            sg_event("delivered", "four@example.com", sg_message_id="msgBatch.filter0002"),
            sg_event("dropped", "three@example.com", sg_message_id="msgBatch.filter0003", reason="Bounced Address"),
            # temporary: no suppression
            sg_event("bounce", "blocked@example.com", type="blocked", reason="421 try later"),
            sg_event("spamreport", "angry@example.com"),
            sg_event("unsubscribe", "gone@example.com"),
            sg_event("group_unsubscribe", "group@example.com", asm_group_id=7),
            sg_event("group_unsubscribe", "back@example.com", at=now - 30),
            sg_event("group_resubscribe", "back@example.com", at=now - 5),
            sg_event("deferred", "late@example.com"),
        ]
        r = w.sendgrid(events)
        assert r["http_status"] == 200, r
        row = w.row(m1)
        assert row["status"] == "delivered" and row["provider_status"] == "click", row
        assert int(row["opened_at"].timestamp()) == now - 30 and int(row["delivered_at"].timestamp()) == now - 40
        assert row["click_url"] == "https://example.com/offer" and int(row["clicked_at"].timestamp()) == now - 10
        row = w.row(m2)
        assert row["status"] == "failed" and "550" in row["last_error"], row
        assert w.row(m4)["status"] == "delivered" and w.row(m3)["status"] == "failed"

        def suppressed(email):
            return {r["reason"] for r in w.all("SELECT reason FROM crefinder.email_suppressions "
                                               "WHERE user_id = %s AND email = %s AND removed_at IS NULL", (A, email))}

        def opted_out(email):
            return w.one("SELECT count(*) AS n FROM crefinder.opt_outs WHERE user_id = %s AND contact = %s "
                         "AND channel = 'email' AND revoked_at IS NULL", (A, email))["n"] > 0

        assert suppressed("two@example.com") == {"bounce"}
        assert suppressed("three@example.com") == {"dropped"}
        assert suppressed("blocked@example.com") == set()
        assert suppressed("angry@example.com") == {"spamreport"}
        assert opted_out("gone@example.com") and opted_out("group@example.com")
        assert not opted_out("back@example.com") and suppressed("back@example.com") == set()
        w.as_tenant(A)
        assert w.one("SELECT allowed FROM crefinder.can_contact('email', 'angry@example.com')")["allowed"] is False
        w.cur.execute("RESET crefinder.user_id")
        n = w.one("SELECT count(*) AS n FROM crefinder.webhook_events WHERE provider = 'sendgrid'")["n"]
        assert n == len(events)

        # the same batch again (SendGrid retries): duplicates, nothing changes
        # (events about no known message count again: what they say of an
        # address is applied again, to the same effect)
        applied = w.one("SELECT count(*) AS n FROM crefinder.webhook_events WHERE provider = 'sendgrid' "
                        "AND outcome = 'applied'")["n"]
        assert applied == 8
        before = w.row(m1)
        r = w.sendgrid(events)
        assert r["http_status"] == 200
        assert w.row(m1) == before
        assert w.one("SELECT count(*) AS n FROM crefinder.webhook_events WHERE provider = 'sendgrid' "
                     "AND outcome = 'duplicate'")["n"] == applied
        assert suppressed("two@example.com") == {"bounce"} and opted_out("gone@example.com")
        # a later open of m2 proves delivery
        w.sendgrid([sg_event("open", "two@example.com", m2)])
        assert w.row(m2)["status"] == "delivered"
        # a group resubscribe lifts that group's unsubscribe only, and only one
        # made before it: not a global unsubscribe, not a newer one (an old
        # batch delivered again)
        w.sendgrid([sg_event("group_resubscribe", "gone@example.com", asm_group_id=7),
                    sg_event("group_resubscribe", "group@example.com", asm_group_id=7)])
        assert opted_out("gone@example.com") and not opted_out("group@example.com")
        assert suppressed("group@example.com") == set()
        w.sendgrid([sg_event("group_unsubscribe", "late@example.com", asm_group_id=7)])
        w.sendgrid([sg_event("group_resubscribe", "late@example.com", asm_group_id=7, at=now - 3600)])
        assert opted_out("late@example.com")
        w.sendgrid([sg_event("group_resubscribe", "late@example.com", asm_group_id=8, at=now + 60)])
        assert opted_out("late@example.com")
    finally:
        w.close()


def test_sendgrid_rejections(cluster):
    w = World(cluster, "sendgrid_reject")
    try:
        m1 = w.message(A, "email", "one@example.com", "msgOne")
        events = [sg_event("delivered", "one@example.com", m1)]
        body = json.dumps(events)
        stamp = str(int(time.time()))
        good = sendgrid_signature(w.keys[A], stamp, body)
        # signed with another key, or another tenant's: 401
        assert w.sendgrid(events, key_of=B)["http_status"] == 401
        assert w.last_event("sendgrid")["outcome"] == "bad_signature"
        # any flipped byte of body, timestamp or signature
        for i in range(0, len(body), 7):
            bad = body[:i] + chr(ord(body[i]) ^ 1) + body[i + 1:]
            assert w.sendgrid(None, body=bad, timestamp=stamp, signature=good)["http_status"] == 401
        for i in range(len(stamp)):
            bad = stamp[:i] + chr(ord(stamp[i]) ^ 1) + stamp[i + 1:]
            assert w.sendgrid(None, body=body, timestamp=bad, signature=good)["http_status"] == 401
        raw = base64.b64decode(good)
        for i in range(len(raw)):
            bad = base64.b64encode(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1:]).decode()
            assert w.sendgrid(None, body=body, timestamp=stamp, signature=bad)["http_status"] == 401
        assert w.row(m1)["status"] == "sent"
        # a replay: well signed, but the timestamp is old
        old = str(int(time.time()) - 3600)
        r = w.sendgrid(events, timestamp=old)
        assert r["http_status"] == 401 and w.last_event("sendgrid")["outcome"] == "stale"
        # unknown tenant, not an array, not JSON
        r = w.one("SELECT crefinder.handle_sendgrid_events(%s, %s, %s, %s) AS r",
                  (body, good, stamp, str(uuid.uuid4())))["r"]
        assert r["http_status"] == 400 and w.last_event("sendgrid")["outcome"] == "unknown_tenant"
        for bad_body in ['{"event": "delivered"}', "[{]", ""]:
            assert w.sendgrid(None, body=bad_body)["http_status"] == 400, bad_body
        # events that are no events are recorded, the rest of the batch applies
        count = "SELECT count(*) AS n FROM crefinder.webhook_events WHERE provider = 'sendgrid' AND outcome = 'malformed'"
        before = w.one(count)["n"]
        r = w.sendgrid([1, "x", {"event": "open"}, sg_event("delivered", "one@example.com", m1)])
        assert r["http_status"] == 200 and w.row(m1)["status"] == "delivered"
        assert w.one(count)["n"] == before + 1
        assert "3 elements" in w.last_event("sendgrid")["error"]
        # a batch larger than SendGrid ever sends: 400, nothing written
        r = w.sendgrid(None, body="[" + ",".join(["1"] * 10001) + "]")
        assert r["http_status"] == 400 and w.last_event("sendgrid")["outcome"] == "malformed"
        assert w.sendgrid(events)["http_status"] == 200
        assert w.sendgrid(events, signature="not base64!")["http_status"] == 401
    finally:
        w.close()


# ----------------------------------------------------------------------
# Vapi
# ----------------------------------------------------------------------

def vapi_call(call_id, message_id=None, tenant=A, number=OWNER):
    call = {"id": call_id, "orgId": "org-" + tenant[:8], "customer": {"number": number}}
    if message_id is not None:
        call["assistantOverrides"] = {"metadata": {"crefinder_message_id": str(message_id),
                                                   "crefinder_tenant": tenant}}
    return call


TRANSCRIPT_INTERESTED = ("AI: Hi, this is Sam with Acme Realty, calling about 12 Main Street.\n"
                         "User: Oh yes. I might be interested in selling if the price is right.\n"
                         "AI: Great, could we send you an offer?\n"
                         "User: Sure, send me an offer by email.")
TRANSCRIPT_STOP = ("AI: Hi, this is Sam with Acme Realty.\n"
                   "User: Put me on your do not call list and don't call me again.")


def test_vapi_messages(cluster):
    w = World(cluster, "vapi")
    try:
        prop = w.property(A, owner_phone=OWNER)
        call_id = str(uuid.uuid4())
        m1 = w.message(A, "voice", OWNER, call_id, provider_status="queued", property_id=prop)
        held = w.message(A, "voice", "+13055550001", None, status="queued", provider_status=None,
                         hold_reason="call_limit")
        w.cur.execute("UPDATE crefinder.outbound_events SET next_attempt_at = now() + interval '1 hour' "
                      "WHERE id = %s", (held,))
        call = vapi_call(call_id, m1)
        r = w.vapi({"type": "status-update", "status": "ringing", "call": call, "timestamp": 1})
        assert r["http_status"] == 200, r
        assert w.row(m1)["provider_status"] == "ringing"
        w.vapi({"type": "status-update", "status": "in-progress", "call": call, "timestamp": 2})
        row = w.row(m1)
        assert (row["status"], row["provider_status"]) == ("delivered", "in-progress") and row["delivered_at"]
        # a late "ringing" does not move it back
        w.vapi({"type": "status-update", "status": "ringing", "call": call, "timestamp": 3})
        assert w.row(m1)["provider_status"] == "in-progress"
        # final transcript lines are appended; partial ones are not
        w.vapi({"type": "transcript", "role": "assistant", "transcriptType": "final",
                "transcript": "Hi, this is Sam.", "call": call, "timestamp": 4})
        w.vapi({"type": "transcript", "role": "user", "transcriptType": "partial",
                "transcript": "Oh ye", "call": call, "timestamp": 5})
        w.vapi({"type": "transcript", "role": "user", "transcriptType": "final",
                "transcript": "Oh yes.", "call": call, "timestamp": 6})
        assert w.one("SELECT transcript FROM crefinder.call_results WHERE call_id = %s", (call_id,))["transcript"] \
            == "AI: Hi, this is Sam.\nUser: Oh yes."
        report = {"type": "end-of-call-report", "endedReason": "customer-ended-call", "cost": 0.1234,
                  "startedAt": "2026-11-30T15:00:00Z", "endedAt": "2026-11-30T15:02:30Z",
                  "artifact": {"transcript": TRANSCRIPT_INTERESTED, "recordingUrl": "https://rec.example/1.wav"},
                  "analysis": {"summary": "Owner open to an offer by email.",
                               "structuredData": {"interest_level": 5}, "successEvaluation": "true"},
                  "call": call, "timestamp": 7}
        r = w.vapi(report)
        assert r["http_status"] == 200
        row = w.row(m1)
        assert (row["status"], row["provider_status"], float(row["cost_cents"])) == ("delivered", "ended", 12.34), row
        assert row["responded_at"] is not None
        res = w.one("SELECT * FROM crefinder.call_results WHERE call_id = %s", (call_id,))
        assert res["ended_reason"] == "customer-ended-call" and float(res["duration_seconds"]) == 150
        assert res["recording_url"] == "https://rec.example/1.wav" and res["summary"] == "Owner open to an offer by email."
        assert res["analysis"]["interest_level"] == 5 and res["transcript"] == TRANSCRIPT_INTERESTED
        p = w.one("SELECT * FROM crefinder.property_records WHERE id = %s", (prop,))
        assert (p["interest_level"], p["last_call_result"], p["lead_status"]) == (5, "customer-ended-call", "interested")
        assert p["call_notes"] == "Owner open to an offer by email." and p["last_call_at"] is not None
        assert w.one("SELECT kind FROM crefinder.responses WHERE message_id = %s", (m1,))["kind"] == "interested"
        # the ended call released the held one
        held_row = w.row(held)
        assert held_row["next_attempt_at"] <= w.one("SELECT now() AS t")["t"]
        # the report again: a duplicate
        w.vapi(report)
        assert w.last_event("vapi")["outcome"] == "duplicate"
        assert w.one("SELECT count(*) AS n FROM crefinder.responses WHERE message_id = %s", (m1,))["n"] == 1

        # a call where the owner asks not to be called: opted out for that number
        call2 = str(uuid.uuid4())
        m2 = w.message(A, "voice", "+13055550002", call2)
        w.vapi({"type": "end-of-call-report", "endedReason": "customer-ended-call",
                "artifact": {"transcript": TRANSCRIPT_STOP}, "call": vapi_call(call2, m2, number="+13055550002"),
                "timestamp": 8})
        assert w.one("SELECT count(*) AS n FROM crefinder.opt_outs WHERE user_id = %s AND contact = '+13055550002' "
                     "AND revoked_at IS NULL", (A,))["n"] == 1
        # an unknown endedReason is a failure, its text kept
        call3 = str(uuid.uuid4())
        m3 = w.message(A, "voice", "+13055550003", call3)
        w.vapi({"type": "end-of-call-report", "endedReason": "pipeline-error-something-new",
                "call": vapi_call(call3, m3), "timestamp": 9})
        row = w.row(m3)
        assert row["status"] == "failed" and "pipeline-error-something-new" in row["last_error"]
        # found by call id alone (no metadata)
        call4 = str(uuid.uuid4())
        m4 = w.message(A, "voice", "+13055550004", call4)
        w.vapi({"type": "end-of-call-report", "endedReason": "customer-did-not-answer",
                "call": {"id": call4}, "timestamp": 10})
        row = w.row(m4)
        assert (row["status"], row["provider_status"]) == ("sent", "ended"), row

        # answers Vapi waits on
        r = w.vapi({"type": "tool-calls", "call": call,
                    "toolCallList": [{"id": "tc1", "type": "function", "function": {"name": "x"}}]})
        assert json.loads(r["body"]) == {"results": [{"toolCallId": "tc1",
                                                      "result": "No such tool is available for this call."}]}
        r = w.vapi({"type": "assistant-request", "call": call})
        assert "error" in json.loads(r["body"])
        # other types: accepted, ignored
        r = w.vapi({"type": "speech-update", "status": "started", "role": "user", "call": call, "timestamp": 11})
        assert r["http_status"] == 200 and w.last_event("vapi")["outcome"] == "ignored"
    finally:
        w.close()


def test_vapi_authentication(cluster):
    w = World(cluster, "vapi_auth")
    try:
        call_id = str(uuid.uuid4())
        m1 = w.message(A, "voice", OWNER, call_id)
        msg = {"type": "status-update", "status": "in-progress", "call": vapi_call(call_id, m1), "timestamp": 1}
        # wrong secret, another tenant's secret, none: 401, masked in the record
        for headers in ({"X-Vapi-Secret": "wrong"}, {"x-vapi-secret": VAPI_SECRET[B]}, {}):
            r = w.vapi(msg, headers=headers)
            assert r["http_status"] == 401, (headers, r)
        ev = w.last_event("vapi")
        assert ev["outcome"] == "bad_signature" and ev["user_id"] is None
        w.vapi(msg, headers={"X-Vapi-Secret": "wrong-but-recorded"})
        assert "wrong-but-recorded" not in json.dumps(w.last_event("vapi")["headers"])
        assert w.row(m1)["status"] == "sent"
        # header names in any case; Authorization: Bearer works too
        assert w.vapi(msg, headers={"X-VAPI-SECRET": VAPI_SECRET[A]})["http_status"] == 200
        assert w.row(m1)["status"] == "delivered"
        msg["timestamp"] = 2
        assert w.vapi(msg, headers={"authorization": "Bearer " + VAPI_SECRET[A]})["http_status"] == 200

        # HMAC mode
        w.as_tenant(A)
        w.cur.execute("SELECT crefinder.configure('vapi', %s)",
                      (json.dumps({"apiKey": "vapi-" + A[:8], "orgId": "org-" + A[:8],
                                   "webhookSecret": VAPI_SECRET[A], "webhookHmac": True}),))
        w.cur.execute("RESET crefinder.user_id")
        body = json.dumps({"message": dict(msg, timestamp=3)})

        def signed(stamp, secret=VAPI_SECRET[A], text=body):
            return {"x-timestamp": stamp, "x-signature": hmac.new(secret.encode(), ("%s.%s" % (stamp, text)).encode(),
                                                                  hashlib.sha256).hexdigest()}
        now = str(int(time.time()))
        assert w.vapi(None, body=body, headers=signed(now))["http_status"] == 200
        assert w.vapi(None, body=body, headers={"X-Vapi-Secret": VAPI_SECRET[A]})["http_status"] == 401
        assert w.vapi(None, body=body, headers=signed(now, secret=VAPI_SECRET[B]))["http_status"] == 401
        assert w.vapi(None, body=body + " ", headers=signed(now))["http_status"] == 401
        old = str(int(time.time()) - 3600)
        assert w.vapi(None, body=body, headers=signed(old))["http_status"] == 401
        assert w.last_event("vapi")["outcome"] == "stale"
        # milliseconds are accepted too
        ms = str(int(time.time() * 1000))
        body2 = json.dumps({"message": dict(msg, timestamp=4)})
        assert w.vapi(None, body=body2, headers=signed(ms, text=body2))["http_status"] == 200
        # malformed: not JSON, no message, no type, headers not an object
        for bad in ("{", "[]", '{"message": 1}', '{"message": {"call": {}}}'):
            assert w.vapi(None, body=bad, headers={})["http_status"] == 400, bad
        # a message of a known call but without a type: 400, whoever signed it
        untyped = json.dumps({"message": {"call": vapi_call(call_id, m1)}})
        assert w.vapi(None, body=untyped, headers=signed(now, text=untyped))["http_status"] == 400
        assert w.one("SELECT crefinder.handle_vapi_message(%s, '[1]') AS r", (body,))["r"]["http_status"] == 401
    finally:
        w.close()


# ----------------------------------------------------------------------
# Tenant proof and privileges
# ----------------------------------------------------------------------

def test_one_tenant_cannot_touch_another(cluster):
    w = World(cluster, "tenant_proof")
    try:
        sa = sid()
        ma = w.message(A, "sms", OWNER, sa)
        ea = w.message(A, "email", "owner@example.com", "msgA")
        call_a = str(uuid.uuid4())
        va = w.message(A, "voice", OWNER, call_a)
        before = {m: w.row(m) for m in (ma, ea, va)}

        # B signs, with its own account and token, a callback naming A's message
        r = w.status(sa, "undelivered", tenant=B, error="21610")
        assert r["http_status"] == 200
        assert w.last_event("twilio")["outcome"] == "unknown_message"
        # an inbound STOP to B changes B's opt-outs only
        w.inbound("STOP", tenant=B)
        assert w.one("SELECT count(*) AS n FROM crefinder.opt_outs WHERE user_id = %s", (A,))["n"] == 0
        assert w.one("SELECT count(*) AS n FROM crefinder.opt_outs WHERE user_id = %s AND contact = %s",
                     (B, OWNER))["n"] == 1

        # B's SendGrid batch naming A's message and tenant, and A's X-Message-Id
        events = [sg_event("bounce", "owner@example.com", ea, tenant=A, type="bounce"),
                  sg_event("spamreport", "owner@example.com", sg_message_id="msgA.f1")]
        r = w.sendgrid(events, tenant=B)
        assert r["http_status"] == 200
        assert w.one("SELECT count(*) AS n FROM crefinder.email_suppressions WHERE user_id = %s", (A,))["n"] == 0
        # ... and B's batch signed by B but sent as A's: 401
        assert w.sendgrid(events, tenant=A, key_of=B)["http_status"] == 401

        # Vapi: B's secret with metadata claiming A: 401; B's own metadata naming A's call id and message
        msg = {"type": "end-of-call-report", "endedReason": "pipeline-error-x", "call": vapi_call(call_a, va)}
        assert w.vapi(msg, secret=VAPI_SECRET[B])["http_status"] == 401
        forged = {"type": "end-of-call-report", "endedReason": "pipeline-error-x", "cost": 99,
                  "call": {"id": call_a, "assistantOverrides": {"metadata": {"crefinder_message_id": str(va),
                                                                             "crefinder_tenant": B}}}}
        assert w.vapi(forged, tenant=B)["http_status"] == 200
        assert w.one("SELECT count(*) AS n FROM crefinder.call_results WHERE user_id = %s", (A,))["n"] == 0

        for m, row in before.items():
            assert w.row(m) == row, "tenant A's message %d changed" % m
        # what B's deliveries recorded is B's to read, not A's
        w.cur.execute("CREATE ROLE webhook_tenant_reader")
        w.cur.execute("SELECT crefinder.grant_access('webhook_tenant_reader')")
        w.cur.execute("SET ROLE webhook_tenant_reader")
        w.as_tenant(A)
        tenants = {r["user_id"] for r in w.all("SELECT user_id FROM crefinder.webhook_events")}
        assert tenants <= {A}, tenants
        assert w.one("SELECT count(*) AS n FROM crefinder.inbound_messages")["n"] == 0
        w.cur.execute("RESET ROLE")
    finally:
        w.close()


def test_web_role_needs_no_table_access(cluster):
    w = World(cluster, "web_role")
    try:
        s = sid()
        m = w.message(A, "sms", OWNER, s)
        w.cur.execute("CREATE ROLE webhook_web")
        w.cur.execute("SELECT crefinder.grant_webhook_access('webhook_web')")
        w.cur.execute("SET ROLE webhook_web")
        r = w.status(s, "delivered")
        assert r["http_status"] == 200
        r = w.inbound("STOP")
        assert "<Message>" in r["body"]
        for sql in ("SELECT 1 FROM crefinder.outbound_events LIMIT 1",
                    "SELECT 1 FROM crefinder.webhook_events LIMIT 1",
                    "SELECT crefinder.record_opt_out('%s', 'sms', '+13055550000', 'x')" % A,
                    "SELECT crefinder.twilio_request_verified('%s', 'x', 'u', 'b', 's')" % A,
                    "SELECT crefinder.opt_in('sms', '+13055551234')"):
            try:
                w.cur.execute(sql)
                raise AssertionError("the web role could run: " + sql)
            except psycopg2.Error as e:
                assert e.pgcode == "42501", (sql, e.pgcode, e)
        w.cur.execute("RESET ROLE")
        assert w.row(m)["status"] == "delivered"
    finally:
        w.close()


def test_dispatcher_to_webhooks_end_to_end(cluster):
    """A text, an email and a call go out through the dispatcher to the
    sandbox; the webhooks that come back find them by what the dispatcher
    sent (Twilio's sid, SendGrid's custom args, Vapi's metadata)."""
    import test_dispatcher as td
    s = td.Setup(cluster)
    try:
        cur = s.cur
        key, public = ec_key()
        s.configure("sendgrid", {"apiKey": td.SENDGRID_KEY, "fromEmail": "deals@example.com",
                                 "eventWebhookPublicKey": public})
        s.configure("vapi", {"apiKey": td.VAPI_KEY, "orgId": "org-1", "phoneNumber": td.PHONE_ID,
                             "assistantId": "asst-default", "webhookSecret": "e2e-secret"})
        cur.execute("SELECT crefinder.record_consent('+12125550104', 'voice', 'express_written', 'form', '{}')")
        cur.execute("SELECT crefinder.send_sms('+12125550101', 'Hi Ada')")
        sms = cur.fetchone()[0]
        cur.execute("SELECT crefinder.send_email('owner@example.com', 'About 12 Main St', html => '<p>Hi</p>')")
        email = cur.fetchone()[0]
        cur.execute("SELECT crefinder.start_call('+12125550104')")
        call = cur.fetchone()[0]
        for m in (sms, email, call):
            assert s.wait_status(m, ("sent", "failed")) == "sent", s.row(m)
        cur.execute("RESET crefinder.user_id")

        # Twilio: the status callback to the URL the dispatcher gave as StatusCallback
        sid_ = s.row(sms)[1]
        (sent,) = [r for r in s.requests_to("/Messages.json")
                   if parse_qs(r["body"]).get("To") == ["+12125550101"]][-1:]
        url = parse_qs(sent["body"])["StatusCallback"][0]
        assert url == "https://app.example.com/hooks/twilio?crefinder_message_id=%d" % sms
        params = [("MessageSid", sid_), ("MessageStatus", "delivered"), ("AccountSid", td.ACCOUNT),
                  ("To", "+12125550101"), ("From", "+13055550100")]
        cur.execute("SELECT crefinder.handle_twilio_webhook(%s, %s, %s) ->> 'http_status'",
                    (url, urlencode(params), twilio_signature(td.TOKEN, url, params)))
        assert cur.fetchone()[0] == "200"
        assert s.row(sms)[0] == "delivered"
        # the owner answers (to the messaging webhook of the number)
        url = "https://app.example.com/hooks/twilio"
        params = [("MessageSid", "SM" + uuid.uuid4().hex), ("AccountSid", td.ACCOUNT), ("From", "+12125550101"),
                  ("To", "+13055550100"), ("Body", "how much would you offer?")]
        cur.execute("SELECT crefinder.handle_twilio_webhook(%s, %s, %s) ->> 'http_status'",
                    (url, urlencode(params), twilio_signature(td.TOKEN, url, params)))
        cur.execute("SELECT message_id, classification FROM crefinder.inbound_messages")
        assert cur.fetchall() == [(sms, "interested")]

        # SendGrid: the custom args of the request the sandbox received
        (mail,) = s.requests_to("/v3/mail/send")
        args = json.loads(mail["body"])["personalizations"][0]["custom_args"]
        events = [dict(args, email="owner@example.com", event=e, sg_event_id=uuid.uuid4().hex,
                       timestamp=int(time.time()), sg_message_id=s.row(email)[1] + ".filter1")
                  for e in ("processed", "delivered", "open")]
        body = json.dumps(events)
        stamp = str(int(time.time()))
        cur.execute("SELECT crefinder.handle_sendgrid_events(%s, %s, %s, %s) ->> 'http_status'",
                    (body, sendgrid_signature(key, stamp, body), stamp, td.TENANT))
        assert cur.fetchone()[0] == "200"
        cur.execute("SELECT status, provider_status, opened_at IS NOT NULL FROM crefinder.outbound_events "
                    "WHERE id = %s", (email,))
        assert cur.fetchone() == ("delivered", "open", True)

        # Vapi: the metadata of the call the sandbox received
        (vapi,) = s.requests_to("/call")
        metadata = json.loads(vapi["body"])["assistantOverrides"]["metadata"]
        report = {"message": {"type": "end-of-call-report", "endedReason": "customer-ended-call", "cost": 0.25,
                              "artifact": {"transcript": TRANSCRIPT_INTERESTED},
                              "call": {"id": s.row(call)[1], "assistantOverrides": {"metadata": metadata}}}}
        cur.execute("SELECT crefinder.handle_vapi_message(%s, %s) ->> 'http_status'",
                    (json.dumps(report), json.dumps({"x-vapi-secret": "e2e-secret"})))
        assert cur.fetchone()[0] == "200"
        cur.execute("SELECT status, provider_status, cost_cents FROM crefinder.outbound_events WHERE id = %s",
                    (call,))
        assert cur.fetchone() == ("delivered", "ended", 25)
    finally:
        s.close()


def test_a_webhook_faster_than_the_dispatcher_loses_nothing(cluster):
    """Vapi calls back ("ringing") before its answer to POST /call has been
    recorded: the webhook moves the row on, and the dispatcher's record
    still adds the call's id without moving it back."""
    import test_dispatcher as td
    s = td.Setup(cluster)
    try:
        cur = s.cur
        s.configure("vapi", {"apiKey": td.VAPI_KEY, "orgId": "org-1", "phoneNumber": td.PHONE_ID,
                             "assistantId": "asst-default", "webhookSecret": "race-secret"})
        cur.execute("SELECT crefinder.record_consent('+12125550105', 'voice', 'express_written', 'form', '{}')")
        s.sandbox.call("POST", "/_sandbox/faults", {"path": "/call", "fault": "slow", "seconds": 2, "count": 1})
        cur.execute("SELECT crefinder.start_call('+12125550105')")
        call = cur.fetchone()[0]
        assert s.wait_status(call, ("sending",)) == "sending"
        cur.execute("RESET crefinder.user_id")
        message = {"message": {"type": "status-update", "status": "ringing", "timestamp": 1,
                               "call": {"id": "not-known-yet", "assistantOverrides": {"metadata": {
                                   "crefinder_message_id": str(call), "crefinder_tenant": td.TENANT}}}}}
        cur.execute("SELECT crefinder.handle_vapi_message(%s, %s) ->> 'http_status'",
                    (json.dumps(message), json.dumps({"x-vapi-secret": "race-secret"})))
        assert cur.fetchone()[0] == "200"
        assert s.row(call)[:3] == ("sent", None, "ringing"), s.row(call)
        deadline = time.time() + 20
        while s.row(call)[1] is None and time.time() < deadline:
            time.sleep(0.05)
        status, pmid, pstatus, attempts, error = s.row(call)
        assert (status, pstatus, error) == ("sent", "ringing", None) and pmid, s.row(call)
    finally:
        s.close()


def test_a_twilio_callback_faster_than_the_dispatcher_finds_its_message(cluster):
    """Twilio's callback comes before the dispatcher has recorded the sid
    (its answer to POST Messages.json is slow): the callback finds the
    message by the crefinder_message_id of the signed StatusCallback URL,
    records the sid and the status, and the dispatcher's late record moves
    nothing back."""
    import test_dispatcher as td
    s = td.Setup(cluster)
    try:
        cur = s.cur
        s.sandbox.call("POST", "/_sandbox/faults", {"path": "/2010-04-01/Accounts/%s/Messages.json" % td.ACCOUNT,
                                                    "fault": "slow", "seconds": 2, "count": 1})
        cur.execute("SELECT crefinder.send_sms('+12125550106', 'Hi')")
        sms = cur.fetchone()[0]
        assert s.wait_status(sms, ("sending",)) == "sending"
        cur.execute("RESET crefinder.user_id")
        sid_ = "SM" + uuid.uuid4().hex
        url = "https://app.example.com/hooks/twilio?crefinder_message_id=%d" % sms
        params = [("MessageSid", sid_), ("MessageStatus", "delivered"), ("AccountSid", td.ACCOUNT),
                  ("To", "+12125550106")]
        cur.execute("SELECT crefinder.handle_twilio_webhook(%s, %s, %s) ->> 'http_status'",
                    (url, urlencode(params), twilio_signature(td.TOKEN, url, params)))
        assert cur.fetchone()[0] == "200"
        assert s.row(sms)[:3] == ("delivered", sid_, "delivered"), s.row(sms)
        time.sleep(3)   # the sandbox answers, the dispatcher records
        assert s.row(sms)[:3] == ("delivered", sid_, "delivered"), s.row(sms)
        # another tenant's id in the URL finds nothing of this tenant's
        params[0] = ("MessageSid", "SM" + uuid.uuid4().hex)
        other = "https://app.example.com/hooks/twilio?crefinder_message_id=999999999"
        cur.execute("SELECT crefinder.handle_twilio_webhook(%s, %s, %s) ->> 'http_status'",
                    (other, urlencode(params), twilio_signature(td.TOKEN, other, params)))
        assert cur.fetchone()[0] == "200"
    finally:
        s.close()


def test_vapi_tenant_is_the_one_whose_secret_verifies(cluster):
    """A tenant that sets its orgId (or phone number) to another's gains
    nothing and blocks nothing: every tenant the message may be for is
    tried, and only the secret decides."""
    w = World(cluster, "vapi_org")
    try:
        # A, the older config, claims B's org and phone number
        w.as_tenant(A)
        w.cur.execute("SELECT crefinder.configure('vapi', %s)",
                      (json.dumps({"apiKey": "vapi-a", "orgId": "org-" + B[:8], "phoneNumber": "pn-b",
                                   "webhookSecret": VAPI_SECRET[A]}),))
        w.as_tenant(B)
        w.cur.execute("SELECT crefinder.configure('vapi', %s)",
                      (json.dumps({"apiKey": "vapi-b", "orgId": "org-" + B[:8], "phoneNumber": "pn-b",
                                   "assistantId": "asst-b", "webhookSecret": VAPI_SECRET[B]}),))
        w.cur.execute("RESET crefinder.user_id")
        inbound = {"type": "assistant-request", "call": {"id": str(uuid.uuid4()), "orgId": "org-" + B[:8],
                                                          "phoneNumberId": "pn-b"}}
        r = w.vapi(inbound, tenant=B)
        assert r["http_status"] == 200 and json.loads(r["body"]) == {"assistantId": "asst-b"}, r
        assert w.last_event("vapi")["user_id"] == B
        # and A's own secret still works for A
        assert w.vapi(inbound, tenant=A)["http_status"] == 200
        assert w.last_event("vapi")["user_id"] == A
        assert w.vapi(inbound, secret="nobody's")["http_status"] == 401
    finally:
        w.close()
