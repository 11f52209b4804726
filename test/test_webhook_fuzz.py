"""Randomised mutation test of the three webhook handlers at the SQL level.

For each handler, 100,000 payloads are made by mutating realistic ones
(fields dropped, repeated, of the wrong JSON type, huge, empty, invalid
percent escapes and UTF-8, NUL escapes, deep nesting, truncation, flipped
bytes, headers of every shape) and most of them are signed correctly, so
that they get past the signature check into the parsers and the state
changes.  They are handed over in batches of one statement each.  Every
call must return an answer (200, 400 or 401): no call may raise (an
internal error, XX000, a crash), and the server must stay up.

The seed is printed; CREFINDER_FUZZ_SEED repeats a run, and
CREFINDER_FUZZ_COUNT changes the number of payloads per handler.
"""
import base64
import hashlib
import json
import os
import random
import time
import uuid
from urllib.parse import quote

import psycopg2

import test_webhooks as tw

COUNT = int(os.environ.get("CREFINDER_FUZZ_COUNT", "100000"))
BATCH = 500

STRANGE = ["", " ", "0", "-1", "99999999999999999999999", "1e400", "NaN", "null", "true", "[]", "{}",
           "\u00e9t\u00e9", "\U0001F600", "\u202e", "a" * 5000, "'; DROP TABLE x; --", "%", "%%", "%zz",
           "<xml/>", "\\", "\"", "whatsapp:", "whatsapp:+1305", "+", "+1", "+999999999999999999",
           "STOP", "stop texting me", "HELP", "START", "\t\r\n", "\u0000".encode("unicode_escape").decode()]
STATUSES = ["queued", "sending", "sent", "delivered", "undelivered", "failed", "read", "canceled",
            "scheduled", "accepted", "received", "receiving", "partially_delivered", "DELIVERED", "bogus"]


def pick_value(rng):
    r = rng.random()
    if r < 0.4:
        return rng.choice(STRANGE)
    if r < 0.7:
        return "".join(chr(rng.choice([rng.randint(32, 126), rng.randint(0xa0, 0x2fff)]))
                       for _ in range(rng.randint(0, 40)))
    return str(rng.randint(-10 ** 6, 10 ** 12))


# ----------------------------------------------------------------------
# Twilio
# ----------------------------------------------------------------------

def encode_form(rng, params):
    parts = []
    for k, v in params:
        ek, ev = quote(k, safe=""), quote(v, safe="")
        r = rng.random()
        if r < 0.02:
            ev += rng.choice(["%", "%0", "%zz", "%00", "%FF%FE", "%C3", "%ED%A0%80", "+%2B"])
        elif r < 0.03:
            parts.append(ek)        # no "="
            continue
        parts.append(ek + "=" + ev)
    if rng.random() < 0.03:
        parts.insert(rng.randint(0, len(parts)), rng.choice(["", "=", "==", "&", "=x", "%3D=%26"]))
    return "&".join(parts)


def mutate_twilio(rng, w, sids):
    tenant = tw.A if rng.random() < 0.85 else tw.B
    kind = rng.random()
    if kind < 0.5:
        params = [("MessageSid", rng.choice(sids) if rng.random() < 0.7 else "SM" + uuid.uuid4().hex),
                  ("MessageStatus", rng.choice(STATUSES)), ("AccountSid", tw.ACCOUNT[tenant]),
                  ("To", rng.choice([tw.OWNER, "whatsapp:" + tw.OWNER, "+13055550999"])),
                  ("From", tw.NUMBER[tenant])]
        if rng.random() < 0.4:
            params.append(("ErrorCode", rng.choice(["30003", "30007", "21610", "63016", "x", "", "-1",
                                                    "99999999999"])))
    else:
        params = [("MessageSid", "SM" + uuid.uuid4().hex), ("AccountSid", tw.ACCOUNT[tenant]),
                  ("From", rng.choice([tw.OWNER, "whatsapp:+13055554321", "+44 20 7946 0958", "12345", "ACME"])),
                  ("To", tw.NUMBER[tenant]), ("SmsStatus", "received"),
                  ("Body", rng.choice(["STOP", "yes", "HELP", "who is this", "no thanks", "call me tmrw",
                                       "I might be interested", "\U0001F44D", "", "x" * 1600])),
                  ("NumMedia", rng.choice(["0", "1", "2", "10", "11", "-1", "999", "abc"]))]
        for i in range(rng.randint(0, 3)):
            params.append(("MediaUrl%d" % i, "https://api.twilio.com/media/%d" % i))
        if rng.random() < 0.2:
            params.append(("OptOutType", rng.choice(["STOP", "START", "HELP", "stop", "", "OTHER"])))
    # structural mutations
    for _ in range(rng.randint(0, 3)):
        op = rng.random()
        if op < 0.25 and params:
            params.pop(rng.randrange(len(params)))
        elif op < 0.5 and params:
            k, _v = rng.choice(params)
            params.append((k, pick_value(rng)))
        elif op < 0.8 and params:
            i = rng.randrange(len(params))
            params[i] = (params[i][0], pick_value(rng))
        else:
            params.append((pick_value(rng)[:30] or "X", pick_value(rng)))
    params = [(k, v.replace("\x00", "")) for k, v in params]
    url = tw.URL
    if rng.random() < 0.05:
        # a JSON body: bodySHA256 in the URL, the HMAC over the URL only
        body = json.dumps(dict(params)) if rng.random() < 0.8 else rng.choice(["[1]", "{", "null", "\"x\""])
        url = tw.URL + "?bodySHA256=" + hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()
        signature = tw.twilio_signature(tw.TOKEN[tenant], url, [])
    else:
        body = encode_form(rng, params)
        signature = tw.twilio_signature(tw.TOKEN[tenant], url, params)
    r = rng.random()
    if r < 0.05 and body:
        i = rng.randrange(len(body))
        body = body[:i] + chr(rng.randint(32, 126)) + body[i + 1:]
    elif r < 0.08:
        body = body[:rng.randint(0, len(body))]
    elif r < 0.10:
        signature = pick_value(rng)
    elif r < 0.11:
        url = pick_value(rng)
    return url, body, signature


# ----------------------------------------------------------------------
# SendGrid
# ----------------------------------------------------------------------

SG_EVENTS = ["processed", "delivered", "deferred", "bounce", "dropped", "open", "click", "spamreport",
             "unsubscribe", "group_unsubscribe", "group_resubscribe", "bogus"]


def odd_json(rng, depth=0):
    r = rng.random()
    if r < 0.2 or depth > 3:
        return rng.choice([None, True, False, 0, -1, 1.5, 10 ** 30, -10 ** 30, 1e300, "", "x"])
    if r < 0.5:
        return pick_value(rng)
    if r < 0.75:
        return [odd_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {pick_value(rng)[:20]: odd_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def mutate_sendgrid(rng, email_ids):
    events = []
    for _ in range(rng.randint(1, 12)):
        mid = rng.choice(email_ids)
        e = {"email": rng.choice(["one@example.com", "Two@Example.com", "x@y", "not an email", ""]),
             "event": rng.choice(SG_EVENTS), "sg_event_id": uuid.uuid4().hex if rng.random() < 0.95 else "dup",
             "timestamp": int(time.time()) - rng.randint(0, 1000),
             "sg_message_id": rng.choice(["msgA.filter1", "msgB.f", "", ".", "..", "nodot"]),
             "crefinder_message_id": str(mid), "crefinder_tenant": rng.choice([tw.A, tw.B, "x"])}
        if e["event"] == "bounce":
            e["type"] = rng.choice(["bounce", "blocked", 1, None])
        if e["event"] == "click":
            e["url"] = rng.choice(["https://example.com", "", "x" * 3000, 5])
        for _ in range(rng.randint(0, 3)):
            key = rng.choice(list(e) + ["reason", "status", "response", "asm_group_id", "category"])
            op = rng.random()
            if op < 0.3:
                e.pop(key, None)
            else:
                e[key] = odd_json(rng)
        events.append(e if rng.random() < 0.97 else odd_json(rng))
    body = json.dumps(events, ensure_ascii=rng.random() < 0.5)
    r = rng.random()
    if r < 0.03:
        body = body[:rng.randint(0, len(body))]
    elif r < 0.05:
        body = json.dumps(odd_json(rng))
    elif r < 0.06:
        body = body.replace("\"x\"", "\"\\u0000\"", 1) if "\"x\"" in body else "[\"\\u0000\"]"
    elif r < 0.07:
        body = "[" * 2000 + "]" * 2000
    body += rng.choice(["", "\r\n", "\n"])
    stamp = str(int(time.time())) if rng.random() < 0.95 else pick_value(rng)
    return body, stamp


# ----------------------------------------------------------------------
# Vapi
# ----------------------------------------------------------------------

VAPI_TYPES = ["status-update", "end-of-call-report", "transcript", "tool-calls", "assistant-request", "hang",
              "speech-update", "conversation-update", "bogus"]


def mutate_vapi(rng, calls):
    call_id, message_id = rng.choice(calls)
    msg = {"type": rng.choice(VAPI_TYPES), "timestamp": rng.randint(0, 10 ** 13),
           "call": tw.vapi_call(call_id, message_id if rng.random() < 0.8 else None,
                                tenant=tw.A if rng.random() < 0.9 else tw.B)}
    if msg["type"] == "status-update":
        msg["status"] = rng.choice(["ringing", "in-progress", "ended", "forwarding", "queued", "x", 5])
        msg["endedReason"] = rng.choice(["customer-ended-call", "voicemail", "pipeline-error-x", None])
    elif msg["type"] == "end-of-call-report":
        msg.update({"endedReason": rng.choice(["customer-ended-call", "customer-busy", "weird", 7]),
                    "cost": rng.choice([0.12, -1, 1e12, "0.5", None]),
                    "startedAt": rng.choice(["2026-11-30T15:00:00Z", "garbage", 12, "2026-13-45T99:99:99Z"]),
                    "endedAt": rng.choice(["2026-11-30T15:01:00Z", "9999-12-31T23:59:59Z", None]),
                    "artifact": rng.choice([{"transcript": rng.choice([tw.TRANSCRIPT_INTERESTED,
                                                                       tw.TRANSCRIPT_STOP, "", 5])},
                                            "x", None]),
                    "analysis": rng.choice([{"summary": "s", "structuredData": {"interest_level": rng.choice(
                        [1, 5, 9, "3", 2.7, None]), "opted_out": rng.choice([True, "yes", None])}}, [], None])})
    elif msg["type"] == "transcript":
        msg.update({"role": rng.choice(["user", "assistant", 1]), "transcriptType": rng.choice(["final", "partial"]),
                    "transcript": rng.choice(["hello", "", "stop calling me", 3, "x" * 20000])})
    elif msg["type"] == "tool-calls":
        msg["toolCallList"] = rng.choice([[{"id": "t1"}, {"id": 5}, "x"], "x", None, [{"id": "t" * 300}]])
    for _ in range(rng.randint(0, 3)):
        target = msg if rng.random() < 0.6 or not isinstance(msg.get("call"), dict) else msg["call"]
        key = rng.choice(list(target) + ["id", "orgId", "assistantOverrides", "customer"])
        if rng.random() < 0.3:
            target.pop(key, None)
        else:
            target[key] = odd_json(rng)
    doc = {"message": msg} if rng.random() < 0.95 else odd_json(rng)
    body = json.dumps(doc)
    if rng.random() < 0.03:
        body = body[:rng.randint(0, len(body))]
    secret = tw.VAPI_SECRET[tw.A]
    r = rng.random()
    if r < 0.6:
        headers = {rng.choice(["X-Vapi-Secret", "x-vapi-secret", "X-VAPI-SECRET"]): secret}
    elif r < 0.7:
        headers = {"Authorization": "Bearer " + secret}
    elif r < 0.8:
        headers = {"x-vapi-secret": [secret, "other"]}
    elif r < 0.9:
        headers = odd_json(rng)
    else:
        headers = {"x-vapi-secret": pick_value(rng), "x-signature": pick_value(rng), "x-timestamp": pick_value(rng)}
    return body, json.dumps(headers)


# ----------------------------------------------------------------------

def run_batches(w, label, make, sql, count, rng):
    """Hands count payloads to the handler, BATCH per statement; returns
    (payloads, answers by status).  A statement that raises is redone one
    payload at a time to name the payload."""
    statuses = {}
    done = 0
    started = time.time()
    failures = []
    while done < count:
        n = min(BATCH, count - done)
        payloads = [make() for _ in range(n)]
        columns = [list(c) for c in zip(*payloads)]
        try:
            w.cur.execute(sql, columns)
            rows = w.cur.fetchall()
        except psycopg2.Error as e:
            assert not w.conn.closed, "%s: the server went away: %s" % (label, e)
            for p in payloads:
                try:
                    w.cur.execute(sql, [[x] for x in p])
                    w.cur.fetchall()
                except psycopg2.Error as one:
                    failures.append((one.pgcode, str(one).splitlines()[0], repr(p)[:300]))
            assert not failures, "%s: calls raised instead of answering: %r" % (label, failures[:5])
            raise
        for row in rows:
            statuses[row["s"]] = statuses.get(row["s"], 0) + 1
        done += n
    elapsed = time.time() - started
    print("  %s: %d mutated payloads in %.1f s (%.0f/s), answers %s"
          % (label, done, elapsed, done / elapsed, dict(sorted(statuses.items()))))
    assert sum(statuses.values()) == count
    assert set(statuses) <= {"200", "400", "401"}, statuses
    return statuses


def test_handlers_survive_mutated_payloads(cluster):
    seed = int(os.environ.get("CREFINDER_FUZZ_SEED", str(int(time.time()))))
    print("  seed %d (CREFINDER_FUZZ_SEED to repeat)" % seed)
    rng = random.Random(seed)
    w = tw.World(cluster, "fuzz")
    try:
        prop = w.property(tw.A, owner_phone=tw.OWNER)
        sids = []
        for i in range(50):
            s = tw.sid()
            sids.append(s)
            w.message(tw.A if i % 5 else tw.B, "sms" if i % 3 else "whatsapp", tw.OWNER, s, property_id=None)
        email_ids = [w.message(tw.A, "email", "one@example.com", "msgA") for _ in range(20)] + \
            [w.message(tw.B, "email", "two@example.com", "msgB") for _ in range(5)] + [0, -1, 10 ** 17]
        calls = []
        for i in range(20):
            c = str(uuid.uuid4())
            calls.append((c, w.message(tw.A, "voice", tw.OWNER, c, property_id=prop)))
        calls.append((str(uuid.uuid4()), None))

        twilio = run_batches(
            w, "handle_twilio_webhook", lambda: mutate_twilio(rng, w, sids),
            "SELECT crefinder.handle_twilio_webhook(u, b, s) ->> 'http_status' AS s "
            "FROM unnest(%s::text[], %s::text[], %s::text[]) AS x(u, b, s)", COUNT, rng)

        def sendgrid_payload():
            body, stamp = mutate_sendgrid(rng, email_ids)
            signature = tw.sendgrid_signature(w.keys[tw.A], stamp, body) if rng.random() < 0.9 else pick_value(rng)
            return body, signature, stamp, tw.A if rng.random() < 0.97 else str(uuid.uuid4())
        sendgrid = run_batches(
            w, "handle_sendgrid_events", sendgrid_payload,
            "SELECT crefinder.handle_sendgrid_events(b, s, t, u::uuid) ->> 'http_status' AS s "
            "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS x(b, s, t, u)", COUNT, rng)

        vapi = run_batches(
            w, "handle_vapi_message", lambda: mutate_vapi(rng, calls),
            "SELECT crefinder.handle_vapi_message(b, h::jsonb) ->> 'http_status' AS s "
            "FROM unnest(%s::text[], %s::text[]) AS x(b, h)", COUNT, rng)

        # every handler got well past its signature check, most of the time
        for label, statuses in (("twilio", twilio), ("sendgrid", sendgrid), ("vapi", vapi)):
            assert statuses.get("200", 0) > COUNT // 4, (label, statuses)
        # nothing recorded an internal error, and the server is up
        bad = w.one("SELECT count(*) AS n FROM crefinder.webhook_events WHERE error ~ '^XX'")["n"]
        assert bad == 0, "internal errors recorded"
        w.one("SELECT 1 AS one")
    finally:
        w.close()
