#!/usr/bin/python3
"""Webhook benchmarks: prints figures, asserts nothing.

  1. SendGrid: signed batches of 1,000 events (processed, delivered, open,
     click, bounce, a few deferred/dropped/spamreport/unsubscribe), each
     event naming one of 200,000 sent email messages by its custom args,
     one handle_sendgrid_events() call per batch (signed before the timer);
     events/s, and the time per batch of sendgrid_signature_valid() alone.
  2. The same events on a second, identical set of messages by a
     hand-written set-based statement (prepared; no verification, no
     dedupe bookkeeping): the baseline, its events/s, the ratio, and
     whether both sets end in the same state.
  3. Twilio status callbacks (sent, then delivered), one signed
     handle_twilio_webhook() call each, autocommit, one connection; then
     the same on fresh messages from --threads connections.
  4. Inbound replies from owners who were messaged (attribution,
     classification, opt-outs, responses, lead status).
  5. Vapi end-of-call reports with a ~2 kB transcript.
  6. Twilio voice webhooks (handle_twilio_voice_webhook(), signed): for each
     voicemail drop its status callbacks (initiated, ringing, answered,
     completed) and the TwiML of its answer (a machine for 6 in 10; a
     person otherwise, 1 in 10 of whom presses 9: one more request); for
     each bridge call its callbacks, the agent's answer, the 1 that
     connects, the <Dial>'s end; all requests/s, and the TwiML ones alone.

Usage: bench/webhook_bench.py [--emails N] [--batches N] [--batch-size N] [--sms N]
                              [--replies N] [--calls N] [--threads N] [--explain]
                              [--sendgrid-only] [--rollups-compare] [--voice-calls N]
--explain sends one more batch with auto_explain on (ANALYZE, BUFFERS,
nested statements of 1 ms or more) and prints the plan of sendgrid_apply's
statement from the server log, then EXPLAIN (ANALYZE, BUFFERS) of the
baseline on the same batch.  --sendgrid-only stops after parts 1 and 2.
--rollups-compare runs every other SendGrid batch, and every other chunk
of Twilio callbacks, with the analytics rollups' triggers off, prints both
rates, and stops after the Twilio callbacks.

classify_reply() and analyze_transcript() may still be the SQL placeholders
of an uncommitted sql/install/55_classify.sql: parts 4 and 5 say so.

Run it with crefinder installed (it builds nothing):
  flock /tmp/crefinder-install.lock sh -c 'make -s install >/dev/null && /usr/bin/python3 bench/webhook_bench.py'
Starts its own throwaway cluster (test/cluster.py) and removes it.
Needs python3-cryptography (ECDSA P-256 signatures, as SendGrid signs).
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import sys
import threading
import time
import uuid
from urllib.parse import urlencode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test"))

from cluster import Cluster, stop_on_sigterm  # noqa: E402

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

TENANT = "bbbbbbbb-0000-4000-8000-0000000000b7"
ACCOUNT = "AC" + "7b" * 16
AUTH_TOKEN = "0123456789abcdef" * 2
NUMBER = "+13055550100"
MESSAGING_SERVICE = "MG" + "5e" * 16
VAPI_SECRET = "vapi-bench-secret"
STATUS_URL = "https://app.example.com/webhooks/twilio/status"
VOICE_URL = "https://app.example.com/webhooks/twilio/voice"
INBOUND_URL = "https://app.example.com/webhooks/twilio/inbound"

# SendGrid event ranks, as the baseline writes them inline.
RANK = ("CASE %s WHEN 'processed' THEN 1 WHEN 'deferred' THEN 2 WHEN 'delivered' THEN 3 "
        "WHEN 'bounce' THEN 3 WHEN 'dropped' THEN 3 WHEN 'open' THEN 4 WHEN 'click' THEN 5 "
        "WHEN 'spamreport' THEN 6 WHEN 'unsubscribe' THEN 6 ELSE 0 END")

# The baseline: what an engineer would write by hand for the same events,
# set-based, with no signature, no webhook_events rows, no dedupe: the
# batch's events as rows, one UPDATE of the messages with each message's
# aggregated effects, the suppressions and opt-outs they call for.
BASELINE = """
PREPARE sg_baseline(text, uuid) AS
WITH ev AS (
    SELECT r.event, lower(r.email) AS email, to_timestamp(r."timestamp") AS at,
           r.crefinder_message_id::bigint AS message_id, r.url, r.reason, r.type
    FROM jsonb_to_recordset($1::jsonb) AS r(event text, email text, "timestamp" bigint,
                                            crefinder_message_id text, url text, reason text, type text)
),
per_message AS (
    SELECT message_id,
           min(at) FILTER (WHERE event IN ('delivered', 'open', 'click')) AS delivered_at,
           min(at) FILTER (WHERE event = 'open') AS opened_at,
           min(at) FILTER (WHERE event = 'click') AS clicked_at,
           (array_agg(url ORDER BY at) FILTER (WHERE event = 'click'))[1] AS click_url,
           (array_agg(event || coalesce(': ' || reason, '') ORDER BY at DESC)
                FILTER (WHERE event IN ('bounce', 'dropped')))[1] AS failure,
           (array_agg(event ORDER BY %(rank_event)s DESC, at DESC))[1] AS last_event
    FROM ev WHERE message_id IS NOT NULL
    GROUP BY message_id
),
updated AS (
    UPDATE crefinder.outbound_events e SET
        status = CASE
            WHEN p.delivered_at IS NOT NULL AND e.status IN ('sending', 'sent', 'unknown', 'failed') THEN 'delivered'
            WHEN p.failure IS NOT NULL AND e.status IN ('sending', 'sent', 'unknown') THEN 'failed'
            ELSE e.status END,
        provider_status = CASE WHEN %(rank_last)s >= %(rank_provider)s THEN p.last_event
                               ELSE e.provider_status END,
        delivered_at = coalesce(e.delivered_at, p.delivered_at),
        opened_at = coalesce(e.opened_at, p.opened_at),
        clicked_at = coalesce(e.clicked_at, p.clicked_at),
        click_url = coalesce(e.click_url, p.click_url),
        last_error = CASE WHEN p.failure IS NOT NULL AND p.delivered_at IS NULL
                               AND e.status IN ('sending', 'sent', 'unknown')
                          THEN 'sendgrid ' || p.failure ELSE e.last_error END,
        updated_at = now()
    FROM per_message p
    WHERE e.id = p.message_id AND e.user_id = $2 AND e.status <> 'queued'
),
suppressed AS (
    INSERT INTO crefinder.email_suppressions (user_id, email, reason, source, detail)
    SELECT DISTINCT ON (email, event) $2, email, event, 'sendgrid', reason
    FROM ev
    WHERE event IN ('dropped', 'spamreport', 'unsubscribe')
       OR (event = 'bounce' AND type IS DISTINCT FROM 'blocked')
    ORDER BY email, event, at DESC
    ON CONFLICT DO NOTHING
),
opted_out AS (
    INSERT INTO crefinder.opt_outs (user_id, channel, contact, source)
    SELECT DISTINCT $2, 'email', email, 'sendgrid unsubscribe' FROM ev WHERE event = 'unsubscribe'
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM ev
""" % {"rank_event": RANK % "event", "rank_last": RANK % "p.last_event",
       "rank_provider": RANK % "e.provider_status"}


def twilio_signature(url, params):
    """X-Twilio-Signature of a form POST (params: list of (name, value))."""
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(AUTH_TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


def phone(i):
    return "+1305%07d" % (2000000 + i)


def sendgrid_events(rng, messages, count, now):
    """count SendGrid events in arrival order for the messages 0, 1, ...
    (index k): (k, event dict without the ids).  Each message has its own
    story (processed, then delivered or a bounce, opens, a click, rarely a
    complaint or an unsubscribe); the events of all of them are sorted by
    time, so that one message's events fall into different batches, and
    taken from the time on when they arrive at a steady mix."""
    out = []
    base = now - 2 * 86400
    k = 0
    while k < messages:
        t = base + k // 4      # four emails handed over per second
        story = [("processed", t, {})]
        fate = rng.random()
        if fate < 0.03:
            story.append(("bounce", t + rng.randint(1, 30),
                          {"type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 The email account that you "
                                                                        "tried to reach does not exist."}))
        elif fate < 0.035:
            story.append(("bounce", t + rng.randint(1, 30),
                          {"type": "blocked", "status": "4.7.0", "reason": "421 4.7.0 Try again later"}))
        elif fate < 0.04:
            story.append(("dropped", t + 1, {"reason": "Bounced Address", "status": "5.0.0"}))
        else:
            d = t + rng.randint(1, 5)
            if fate < 0.055:
                story.append(("deferred", t + 1, {"response": "451 4.3.0 Mailbox temporarily unavailable",
                                                  "attempt": "1"}))
                d += 600
            story.append(("delivered", d, {"response": "250 2.0.0 OK  1700000000 x1si"}))
            if rng.random() < 0.40:
                o = d + rng.randint(60, 7200)
                story.append(("open", o, {"useragent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)",
                                          "ip": "203.0.113.%d" % rng.randint(1, 254), "sg_machine_open": False}))
                if rng.random() < 0.25:
                    story.append(("open", o + rng.randint(600, 20000),
                                  {"useragent": "Mozilla/5.0", "ip": "203.0.113.9", "sg_machine_open": False}))
                if rng.random() < 0.20:
                    story.append(("click", o + rng.randint(5, 300),
                                  {"url": "https://offers.example.com/p/%d?utm_source=email" % k,
                                   "url_offset": {"index": 0, "type": "html"},
                                   "useragent": "Mozilla/5.0", "ip": "203.0.113.9"}))
            x = rng.random()
            if x < 0.001:
                story.append(("spamreport", d + rng.randint(100, 9000), {}))
            elif x < 0.004:
                story.append(("unsubscribe", d + rng.randint(100, 9000), {}))
        for event, at, more in story:
            out.append((at, k, event, more))
        k += 1
    out.sort(key=lambda e: (e[0], e[1]))
    # a steady state: from the time when the opens and clicks of earlier
    # messages arrive as often as new messages are processed (8 hours in)
    start = next((i for i, e in enumerate(out) if e[0] >= base + 8 * 3600), 0)
    return out[max(0, min(start, len(out) - count)):][:count]


def sendgrid_body(events, first_id, domain, provider_ids):
    """The JSON body SendGrid would POST for these events, for the set of
    messages that starts at id first_id and mails owner<k>@<domain>."""
    doc = []
    for at, k, event, more in events:
        e = {"email": "owner%d@%s" % (k, domain), "timestamp": at, "event": event,
             "smtp-id": "<%s@ismtpd0001p1mdw1.sendgrid.net>" % provider_ids[k],
             "sg_event_id": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
             "sg_message_id": provider_ids[k] + ".filterdrecv-7bf5c69d5-2xl9h-1-6553A1F2-1B.0",
             "category": ["campaign"], "crefinder_message_id": str(first_id + k),
             "crefinder_tenant": TENANT}
        e.update(more)
        doc.append(e)
    return json.dumps(doc)


def ec_key():
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, base64.b64encode(public).decode()


def sign_sendgrid(key, body):
    stamp = str(int(time.time()))
    return stamp, base64.b64encode(key.sign((stamp + body).encode(), ec.ECDSA(hashes.SHA256()))).decode()


def status_callback(sid, status, to):
    params = [("SmsSid", sid), ("SmsStatus", status), ("MessageStatus", status), ("To", to),
              ("MessagingServiceSid", MESSAGING_SERVICE), ("MessageSid", sid), ("AccountSid", ACCOUNT),
              ("From", NUMBER), ("ApiVersion", "2010-04-01")]
    return (STATUS_URL, urlencode(params), twilio_signature(STATUS_URL, params), str(uuid.uuid4()))


REPLIES = [(25, "Yes I'm interested, what's your offer?"), (20, "Not interested, thanks"),
           (10, "Call me next week, I'm traveling"), (20, "Who is this?"),
           (10, "How did you get my number"), (8, "STOP"), (5, "please remove me from your list"),
           (2, "HELP")]


def inbound_text(sender, text):
    sid = "SM" + uuid.uuid4().hex
    params = [("ToCountry", "US"), ("ToState", "FL"), ("SmsMessageSid", sid), ("NumMedia", "0"),
              ("ToCity", "MIAMI"), ("FromZip", "33101"), ("SmsSid", sid), ("FromState", "FL"),
              ("SmsStatus", "received"), ("FromCity", "MIAMI"), ("Body", text), ("FromCountry", "US"),
              ("To", NUMBER), ("MessagingServiceSid", MESSAGING_SERVICE), ("ToZip", "33101"),
              ("NumSegments", "1"), ("MessageSid", sid), ("AccountSid", ACCOUNT), ("From", sender),
              ("ApiVersion", "2010-04-01")]
    return (INBOUND_URL, urlencode(params), twilio_signature(INBOUND_URL, params), str(uuid.uuid4()))


def transcript(rng, opt_out):
    lines = ["AI: Hi, this is Sam with Acme Realty. Am I speaking with the owner of the house on Main Street?",
             "User: Yes, this is them. What is this about?",
             "AI: We buy houses in your neighborhood for cash, as is, and we can close on your schedule. "
             "Have you thought about selling the property in the next few months?"]
    if opt_out:
        lines.append("User: No. Put me on your do not call list and don't call me again.")
        lines.append("AI: Understood, I'm sorry for the trouble. You won't hear from us again. Goodbye.")
    else:
        pool = ["User: Maybe. It depends on the price, the roof needs work and the tenants leave in March.",
                "AI: That makes sense. Could you tell me a little about the condition of the kitchen and baths?",
                "User: The kitchen was redone about ten years ago, the bathrooms are original from the eighties.",
                "AI: Thank you. And is the property currently occupied, or would it be vacant at closing?",
                "User: My tenants are there until the end of their lease, after that it would be empty.",
                "AI: Great. Would you be interested in getting a written cash offer by email this week?",
                "User: Sure, I'd be interested in seeing a number, send it to my email.",
                "AI: Perfect. One of our acquisition managers will follow up with the offer by Friday."]
        while sum(len(x) + 1 for x in lines) < 1900:
            lines.append(rng.choice(pool))
    return "\n".join(lines)


def end_of_call(rng, message_id, call_id, to, opt_out):
    text = transcript(rng, opt_out)
    msg = {"message": {
        "type": "end-of-call-report", "endedReason": "customer-ended-call", "cost": 0.1234,
        "startedAt": "2026-11-30T15:00:00.000Z", "endedAt": "2026-11-30T15:02:31.000Z",
        "timestamp": int(time.time() * 1000),
        "artifact": {"transcript": text, "recordingUrl": "https://storage.vapi.ai/%s-mono.wav" % call_id,
                     "stereoRecordingUrl": "https://storage.vapi.ai/%s-stereo.wav" % call_id},
        "analysis": {"summary": "The owner might sell if the price is right; wants an offer by email.",
                     "structuredData": {"interest_level": 2 if opt_out else 4},
                     "successEvaluation": "true"},
        "call": {"id": call_id, "orgId": "org-bench", "type": "outboundPhoneCall",
                 "customer": {"number": to},
                 "assistantOverrides": {"metadata": {"crefinder_message_id": str(message_id),
                                                     "crefinder_tenant": TENANT}}}}}
    return json.dumps(msg), json.dumps({"X-Vapi-Secret": VAPI_SECRET, "Content-Type": "application/json",
                                        "User-Agent": "Vapi/1.0"})


def rollups(cur, mode):
    """The analytics rollups' triggers on (kept) or off."""
    action = "ENABLE" if mode == "kept" else "DISABLE"
    cur.execute("ALTER TABLE crefinder.outbound_events %s TRIGGER roll_up_inserts, %s TRIGGER roll_up_updates, "
                "%s TRIGGER roll_up_deletes" % (action, action, action))


def timed_calls(conn, sql, calls):
    """Each call one statement in autocommit; returns (seconds, answers by http_status)."""
    cur = conn.cursor()
    statuses = {}
    t0 = time.perf_counter()
    for args in calls:
        cur.execute(sql, args)
        s = cur.fetchone()[0]
        statuses[s] = statuses.get(s, 0) + 1
    return time.perf_counter() - t0, statuses


def concurrent_calls(cluster, sql, chunks):
    """Each chunk on its own connection and thread, all started together."""
    conns = [cluster.connect(dbname="bench") for _ in chunks]
    results = [None] * len(chunks)
    barrier = threading.Barrier(len(chunks) + 1)

    def work(i):
        barrier.wait()
        results[i] = timed_calls(conns[i], sql, chunks[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(chunks))]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    statuses = {}
    for _, s in results:
        for k, v in s.items():
            statuses[k] = statuses.get(k, 0) + v
    return elapsed, statuses


def plans(log, marker):
    """auto_explain entries of the server log whose text contains marker."""
    entries, current = [], None
    for line in log.splitlines():
        if line[:1] in ("\t", " ") and current is not None:
            current.append(line)
            continue
        if current is not None:
            entries.append("\n".join(current))
        current = [line] if "plan:" in line else None
    if current is not None:
        entries.append("\n".join(current))
    return [e for e in entries if marker in e]


def print_table(figures):
    print()
    print("%-64s %12s" % ("", "figure"))
    for name, value, unit in figures:
        print("%-64s %12s %s" % (name, "{:,.0f}".format(value) if value >= 100 else "%.2f" % value, unit))
    print("%-64s %12.2f" % ("crefinder / baseline (SendGrid)", figures[0][1] / figures[1][1]))


def main():
    stop_on_sigterm()
    started = time.time()
    parser = argparse.ArgumentParser()
    parser.add_argument("--emails", type=int, default=200000, help="email messages per set (two sets)")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--sms", type=int, default=10000, help="SMS messages per status-callback run")
    parser.add_argument("--replies", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=5000, help="Vapi end-of-call reports")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--voice-calls", type=int, default=5000, help="Twilio calls (half drops, half bridges)")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--sendgrid-only", action="store_true", help="parts 1 and 2 only")
    parser.add_argument("--rollups-compare", action="store_true",
                        help="every other SendGrid batch and Twilio callback run with the analytics rollups off")
    args = parser.parse_args()
    rng = random.Random(10)
    figures = []

    cluster = Cluster(extra_conf={"shared_buffers": "1GB", "max_wal_size": "8GB",
                                  "checkpoint_timeout": "30min", "work_mem": "16MB"}).start()
    try:
        conn = cluster.fresh_database("bench")
        cur = conn.cursor()
        cur.execute("SELECT version()")
        print("%s; %d CPUs; fsync off (test cluster), synchronous_commit on" % (cur.fetchone()[0].split(",")[0],
                                                                              os.cpu_count()))
        key, public = ec_key()
        cur.execute("SET crefinder.user_id = %s", (TENANT,))
        for provider, config in [
                ("twilio", {"accountSid": ACCOUNT, "authToken": AUTH_TOKEN, "phoneNumber": NUMBER,
                            "messagingServiceSid": MESSAGING_SERVICE, "voiceWebhookUrl": VOICE_URL}),
                ("sendgrid", {"apiKey": "SG.bench.key", "fromEmail": "deals@example.com",
                              "eventWebhookPublicKey": public}),
                ("vapi", {"apiKey": "vapi-bench", "orgId": "org-bench", "webhookSecret": VAPI_SECRET})]:
            cur.execute("SELECT crefinder.configure(%s, %s)", (provider, json.dumps(config)))
        cur.execute("SELECT crefinder.set_tenant_settings('{\"business_name\": \"Acme Realty\", "
                    "\"callback_number\": \"+13055550100\", \"agent_number\": \"+13055550111\"}')")
        cur.execute("RESET crefinder.user_id")

        # --- the messages, as the dispatcher leaves them -----------------
        t0 = time.perf_counter()
        # X-Message-Id: 22 characters
        provider_ids = [base64.urlsafe_b64encode(hashlib.sha256(b"%d" % k).digest()[:16]).decode()[:22]
                        for k in range(args.emails)]
        first = {}
        for domain in ("a.example.com", "b.example.com"):
            cur.execute(
                "INSERT INTO crefinder.outbound_events (user_id, channel, to_contact, status, provider_message_id, "
                "provider_status, attempts, first_attempt_at, next_attempt_at, sent_at, created_at, updated_at, "
                "payload) "
                "SELECT %s, 'email', 'owner' || (k - 1) || '@' || %s, 'sent', p, 'processed', 1, "
                "now() - interval '2 days', now() - interval '2 days', now() - interval '2 days', "
                "now() - interval '2 days', now() - interval '2 days', "
                "jsonb_build_object('subject', 'About your property on Main Street', "
                "'text', repeat('We buy houses for cash, as is, on your schedule. ', 8), "
                "'categories', '[\"campaign\"]'::jsonb) "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS t(p, k) ORDER BY k RETURNING id",
                (TENANT, domain, provider_ids))
            ids = [r[0] for r in cur.fetchall()]
            first[domain] = min(ids)
        # properties for the SMS and voice owners, and their messages
        n_props = 2 * args.sms + args.calls
        cur.execute("INSERT INTO crefinder.property_records (user_id, owner_name, owner_phone, lead_status) "
                    "SELECT %s, 'Owner ' || i, '+1305' || (2000000 + i), 'contacted' "
                    "FROM generate_series(0, %s - 1) i ORDER BY i RETURNING id", (TENANT, n_props))
        prop = [r[0] for r in cur.fetchall()]
        sms_sids = ["SM" + uuid.uuid4().hex for _ in range(2 * args.sms)]
        cur.execute("INSERT INTO crefinder.outbound_events (user_id, channel, to_contact, status, provider_message_id, "
                    "provider_status, attempts, first_attempt_at, sent_at, property_id, payload) "
                    "SELECT %s, 'sms', '+1305' || (2000000 + i - 1), 'sent', s, 'queued', 1, now(), now(), "
                    "(%s::bigint[])[i], jsonb_build_object('body', 'Hi, this is Sam from Acme Realty. Would you "
                    "consider an offer for your property on Main St? Reply STOP to opt out.') "
                    "FROM unnest(%s::text[]) WITH ORDINALITY AS t(s, i) ORDER BY i",
                    (TENANT, prop[:2 * args.sms], sms_sids))
        call_ids = [str(uuid.uuid4()) for _ in range(args.calls)]
        cur.execute("INSERT INTO crefinder.outbound_events (user_id, channel, to_contact, status, provider_message_id, "
                    "provider_status, attempts, first_attempt_at, sent_at, property_id) "
                    "SELECT %s, 'voice', '+1305' || (2000000 + %s + i - 1), 'sent', c, 'in-progress', 1, now(), "
                    "now(), (%s::bigint[])[i] "
                    "FROM unnest(%s::text[]) WITH ORDINALITY AS t(c, i) ORDER BY i RETURNING id",
                    (TENANT, 2 * args.sms, prop[2 * args.sms:], call_ids))
        voice_ids = [r[0] for r in cur.fetchall()]
        # only the tables filled here: the ones the handlers fill stay never
        # analyzed (the planner assumes some pages), as empty statistics
        # would make every cached plan, foreign key checks included, scan them
        cur.execute("VACUUM ANALYZE crefinder.outbound_events, crefinder.property_records")
        cur.execute("SELECT count(*), pg_size_pretty(pg_total_relation_size('crefinder.outbound_events')) "
                    "FROM crefinder.outbound_events")
        n, size = cur.fetchone()
        print("setup: %d outbound_events (%s with indexes), %d properties, in %.1f s"
              % (n, size, n_props, time.perf_counter() - t0))

        # --- 1 and 2: SendGrid ------------------------------------------
        bs = args.batch_size
        extra = 1 if args.explain else 0
        stream = sendgrid_events(rng, args.emails, (args.batches + extra) * bs, int(time.time()))
        chunks = [stream[i * bs:(i + 1) * bs] for i in range(args.batches + extra)]
        bodies_a = [sendgrid_body(c, first["a.example.com"], "a.example.com", provider_ids) for c in chunks]
        bodies_b = [sendgrid_body(c, first["b.example.com"], "b.example.com", provider_ids) for c in chunks]
        mix = {}
        for _, _, e, _ in stream[:args.batches * bs]:
            mix[e] = mix.get(e, 0) + 1
        touched = len({k for _, k, _, _ in stream[:args.batches * bs]})
        print("sendgrid: %d batches of %d events (%.0f kB per body) over %d of the %d messages per set; mix %s"
              % (args.batches, bs, sum(len(b) for b in bodies_a) / len(bodies_a) / 1024, touched, args.emails,
                 ", ".join("%s %d" % kv for kv in sorted(mix.items(), key=lambda kv: -kv[1]))))
        cur.execute(BASELINE)
        handler_s, baseline_s, statuses = 0.0, 0.0, {}
        per_batch = []
        # crefinder and the baseline alternate batch by batch, so that both
        # see the same table state, autovacuum and checkpoints
        by_mode = {"kept": [0.0, 0], "off": [0.0, 0]}
        for i in range(args.batches):
            mode = "off" if args.rollups_compare and i % 2 else "kept"
            if args.rollups_compare:
                rollups(cur, mode)
            stamp, signature = sign_sendgrid(key, bodies_a[i])
            t0 = time.perf_counter()
            cur.execute("SELECT crefinder.handle_sendgrid_events(%s, %s, %s, %s) ->> 'http_status'",
                        (bodies_a[i], signature, stamp, TENANT))
            status = cur.fetchone()[0]
            t1 = time.perf_counter()
            by_mode[mode][0] += t1 - t0
            by_mode[mode][1] += bs
            cur.execute("EXECUTE sg_baseline(%s, %s)", (bodies_b[i], TENANT))
            cur.fetchone()
            t2 = time.perf_counter()
            handler_s += t1 - t0
            baseline_s += t2 - t1
            per_batch.append(t1 - t0)
            statuses[status] = statuses.get(status, 0) + 1
        events = args.batches * bs
        cur.execute("SELECT outcome, count(*) FROM crefinder.webhook_events WHERE provider = 'sendgrid' "
                    "GROUP BY 1 ORDER BY 1")
        outcomes = dict(cur.fetchall())
        per_batch.sort()
        print("sendgrid handle_sendgrid_events: %d events in %.2f s = %.0f events/s; per batch median %.1f ms, "
              "max %.1f ms; answers %r; webhook_events %r"
              % (events, handler_s, events / handler_s, per_batch[len(per_batch) // 2] * 1000,
                 per_batch[-1] * 1000, statuses, outcomes))
        if args.rollups_compare:
            rollups(cur, "kept")
            kept = by_mode["kept"][1] / by_mode["kept"][0]
            off = by_mode["off"][1] / by_mode["off"][0]
            print("sendgrid events with the rollups kept: %.0f/s, off: %.0f/s (alternate batches): cost %.1f%%"
                  % (kept, off, 100 * (1 - kept / off)))
        print("sendgrid baseline (hand-written set-based SQL, prepared): %d events in %.2f s = %.0f events/s; "
              "crefinder/baseline = %.2f"
              % (events, baseline_s, events / baseline_s, baseline_s / handler_s))
        figures.append(("SendGrid events (handle_sendgrid_events, batches of %d)" % bs, events / handler_s,
                        "events/s"))
        figures.append(("SendGrid events (baseline SQL)", events / baseline_s, "events/s"))

        # the signature check alone, and the body's round trip alone
        sig_s, trip_s = 0.0, 0.0
        for i in range(args.batches):
            stamp, signature = sign_sendgrid(key, bodies_a[i])
            t0 = time.perf_counter()
            cur.execute("SELECT crefinder.sendgrid_signature_valid(%s, %s, %s, %s)",
                        (public, stamp, bodies_a[i], signature))
            valid = cur.fetchone()[0]
            t1 = time.perf_counter()
            cur.execute("SELECT octet_length(%s)", (bodies_a[i],))
            cur.fetchone()
            t2 = time.perf_counter()
            sig_s += t1 - t0
            trip_s += t2 - t1
        print("sendgrid_signature_valid alone: %.2f ms per batch (valid: %s); the body's round trip alone "
              "(SELECT octet_length(body)): %.2f ms; so verification ~%.2f ms of the %.1f ms a batch takes"
              % (sig_s / args.batches * 1000, valid, trip_s / args.batches * 1000,
                 (sig_s - trip_s) / args.batches * 1000, handler_s / args.batches * 1000))
        figures.append(("  signature verification per batch", (sig_s - trip_s) / args.batches * 1000, "ms"))

        # both sets end in the same state?
        cur.execute("""
            SELECT count(*) FILTER (WHERE a.status IS DISTINCT FROM b.status
                                       OR a.provider_status IS DISTINCT FROM b.provider_status
                                       OR a.delivered_at IS DISTINCT FROM b.delivered_at
                                       OR a.opened_at IS DISTINCT FROM b.opened_at
                                       OR a.clicked_at IS DISTINCT FROM b.clicked_at
                                       OR a.click_url IS DISTINCT FROM b.click_url
                                       OR a.last_error IS DISTINCT FROM b.last_error),
                   count(*) FILTER (WHERE a.updated_at > a.created_at + interval '1 day')
            FROM crefinder.outbound_events a
            JOIN crefinder.outbound_events b ON b.id = a.id - %s + %s
            WHERE a.id BETWEEN %s AND %s + %s - 1""",
                    (first["a.example.com"], first["b.example.com"], first["a.example.com"],
                     first["a.example.com"], args.emails))
        differ, changed = cur.fetchone()
        cur.execute("SELECT split_part(email, '@', 2), reason, count(*) FROM crefinder.email_suppressions "
                    "GROUP BY 1, 2 ORDER BY 2, 1")
        sup = cur.fetchall()
        cur.execute("SELECT split_part(contact, '@', 2), count(*) FROM crefinder.opt_outs "
                    "WHERE channel = 'email' GROUP BY 1 ORDER BY 1")
        opt = cur.fetchall()
        cur.execute("SELECT status, count(*) FROM crefinder.outbound_events WHERE channel = 'email' "
                    "AND to_contact LIKE %s GROUP BY 1 ORDER BY 1", ("%@a.example.com",))
        print("end state: %d messages changed, %d differ between crefinder's set and the baseline's; "
              "crefinder's set by status %r; suppressions %r; email opt-outs %r"
              % (changed, differ, cur.fetchall(), sup, opt))

        if args.explain:
            cur.execute("LOAD 'auto_explain'")
            for setting in ("auto_explain.log_min_duration = 1", "auto_explain.log_nested_statements = on",
                            "auto_explain.log_analyze = on", "auto_explain.log_buffers = on",
                            "auto_explain.log_timing = on"):
                cur.execute("SET " + setting)
            i = args.batches
            stamp, signature = sign_sendgrid(key, bodies_a[i])
            cur.execute("SELECT crefinder.handle_sendgrid_events(%s, %s, %s, %s)",
                        (bodies_a[i], signature, stamp, TENANT))
            cur.execute("SET auto_explain.log_min_duration = -1")
            time.sleep(0.5)
            found = plans(cluster.log(), "recorded AS (")
            print("\n--- sendgrid_apply's statement, one batch of %d (auto_explain, ANALYZE, BUFFERS) ---" % bs)
            if found:
                lines = found[-1].splitlines()
                start = next((j for j, l in enumerate(lines) if "(actual" in l or "(cost=" in l), 0)
                print(lines[0].split("LOG:")[-1].strip())
                print("\n".join(lines[start:]))
            else:
                print("(no plan in the server log)")
            found = plans(cluster.log(), "handle_sendgrid_events(")
            if found:
                print("--- the whole call: %s" % found[-1].splitlines()[0].split("LOG:")[-1].strip())
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) EXECUTE sg_baseline(%s, %s)", (bodies_b[i], TENANT))
            print("--- baseline, the same batch on its set (EXPLAIN ANALYZE, BUFFERS) ---")
            print("\n".join(r[0] for r in cur.fetchall()))
            print()

        if args.sendgrid_only:
            print_table(figures)
            return
        # --- 3: Twilio status callbacks ----------------------------------
        twilio_sql = "SELECT crefinder.handle_twilio_webhook(%s, %s, %s, %s) ->> 'http_status'"

        def callbacks(first_msg, count, lag=100):
            """sent for each message, its delivered lag callbacks later."""
            out = []
            for i in range(count + lag):
                if i < count:
                    out.append(status_callback(sms_sids[first_msg + i], "sent", phone(first_msg + i)))
                if i >= lag:
                    j = i - lag
                    out.append(status_callback(sms_sids[first_msg + j], "delivered", phone(first_msg + j)))
            return out

        calls = callbacks(0, args.sms)
        if args.rollups_compare:
            # chunks of 500 callbacks, rollups kept and off in turn
            times = {"kept": [0.0, 0], "off": [0.0, 0]}
            for k in range(0, len(calls), 500):
                mode = "off" if (k // 500) % 2 else "kept"
                rollups(cur, mode)
                t, _ = timed_calls(conn, twilio_sql, calls[k:k + 500])
                times[mode][0] += t
                times[mode][1] += len(calls[k:k + 500])
            rollups(cur, "kept")
            kept, off = times["kept"][1] / times["kept"][0], times["off"][1] / times["off"][0]
            print("twilio status callbacks with the rollups kept: %.0f/s, off: %.0f/s (alternate chunks): cost %.1f%%"
                  % (kept, off, 100 * (1 - kept / off)))
            print_table(figures)
            return
        elapsed, statuses = timed_calls(conn, twilio_sql, calls)
        cur.execute("SELECT status, count(*) FROM crefinder.outbound_events WHERE channel = 'sms' "
                    "AND id <= (SELECT min(id) + %s - 1 FROM crefinder.outbound_events WHERE channel = 'sms') "
                    "GROUP BY 1", (args.sms,))
        print("twilio status callbacks, 1 connection: %d in %.2f s = %.0f/s (%.3f ms each); answers %r; "
              "messages %r" % (len(calls), elapsed, len(calls) / elapsed, elapsed / len(calls) * 1000, statuses,
                               cur.fetchall()))
        figures.append(("Twilio status callbacks, 1 connection", len(calls) / elapsed, "callbacks/s"))
        if args.threads > 1:
            per = args.sms // args.threads
            chunks = [callbacks(args.sms + t * per, per) for t in range(args.threads)]
            n = sum(len(c) for c in chunks)
            elapsed, statuses = concurrent_calls(cluster, twilio_sql, chunks)
            print("twilio status callbacks, %d connections: %d in %.2f s = %.0f/s; answers %r"
                  % (args.threads, n, elapsed, n / elapsed, statuses))
            figures.append(("Twilio status callbacks, %d connections" % args.threads, n / elapsed,
                            "callbacks/s"))

        def language(function):
            """Which classifier runs: the SQL placeholder (55_classify.sql, regular
            expressions), or the C one."""
            cur.execute("SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
                        "WHERE p.oid = %s::regprocedure", (function,))
            lang = cur.fetchone()[0]
            return {"sql": "SQL placeholder", "c": "C"}.get(lang, lang)

        # --- 4: inbound replies ------------------------------------------
        weights = [w for w, _ in REPLIES]
        owners = rng.sample(range(args.sms), min(args.replies, args.sms))
        replies = [inbound_text(phone(o), rng.choices([t for _, t in REPLIES], weights)[0]) for o in owners]
        elapsed, statuses = timed_calls(conn, twilio_sql, replies)
        cur.execute("SELECT classification, count(*), count(message_id) FROM crefinder.inbound_messages "
                    "GROUP BY 1 ORDER BY 2 DESC")
        classes = cur.fetchall()
        cur.execute("SELECT count(*) FROM crefinder.opt_outs WHERE channel <> 'email'")
        opted = cur.fetchone()[0]
        print("twilio inbound replies, 1 connection: %d in %.2f s = %.0f/s (%.3f ms each); answers %r; "
              "classification/count/attributed %r; phone opt-outs %d; classify_reply(): %s"
              % (len(replies), elapsed, len(replies) / elapsed, elapsed / len(replies) * 1000, statuses,
                 classes, opted, language("crefinder.classify_reply(text)")))
        figures.append(("Twilio inbound replies (classify_reply: %s)"
                        % language("crefinder.classify_reply(text)"), len(replies) / elapsed,
                        "replies/s"))

        # --- 5: Vapi end-of-call reports ---------------------------------
        reports = [end_of_call(rng, voice_ids[i], call_ids[i], phone(2 * args.sms + i), rng.random() < 0.05)
                   for i in range(args.calls)]
        size = sum(len(json.loads(b)["message"]["artifact"]["transcript"]) for b, _ in reports) / len(reports)
        elapsed, statuses = timed_calls(conn, "SELECT crefinder.handle_vapi_message(%s, %s) ->> 'http_status'",
                                        reports)
        cur.execute("SELECT count(*), count(*) FILTER (WHERE status = 'ended') FROM crefinder.call_results")
        results = cur.fetchone()
        cur.execute("SELECT status, count(*) FROM crefinder.outbound_events WHERE channel = 'voice' GROUP BY 1")
        print("vapi end-of-call reports (%.0f-character transcripts, %.1f kB bodies), 1 connection: %d in %.2f s "
              "= %.0f/s (%.3f ms each); answers %r; call_results %r; calls %r; analyze_transcript(): %s"
              % (size, sum(len(b) for b, _ in reports) / len(reports) / 1024, len(reports), elapsed,
                 len(reports) / elapsed, elapsed / len(reports) * 1000, statuses, results, cur.fetchall(),
                 language("crefinder.analyze_transcript(text)")))
        figures.append(("Vapi end-of-call reports (analyze_transcript: %s)"
                        % language("crefinder.analyze_transcript(text)"), len(reports) / elapsed,
                        "reports/s"))

        # --- 6: Twilio voice webhooks -------------------------------------
        n_calls = args.voice_calls
        if n_calls:
            half = n_calls // 2
            sids = ["CA" + uuid.uuid4().hex for _ in range(n_calls)]
            cur.execute("INSERT INTO crefinder.outbound_events (user_id, channel, to_contact, status, "
                        "provider_message_id, provider_status, attempts, first_attempt_at, sent_at, payload) "
                        "SELECT %s, CASE WHEN i <= %s THEN 'voicemail' ELSE 'call' END, '+1646' || (2000000 + i), "
                        "'sent', s, 'queued', 1, now(), now(), CASE WHEN i <= %s THEN "
                        "'{\"say_text\": \"We buy buildings for cash.\", \"business_name\": \"Acme Realty\", "
                        "\"callback_number\": \"+13055550100\"}'::jsonb ELSE "
                        "'{\"agent_number\": \"+13055550111\", \"record\": false}'::jsonb END "
                        "FROM unnest(%s::text[]) WITH ORDINALITY AS t(s, i) ORDER BY i RETURNING id",
                        (TENANT, half, half, sids))
            call_msgs = [r[0] for r in cur.fetchall()]
            # the drops' owners consented in writing (the answer step checks compliance again)
            cur.execute("INSERT INTO crefinder.consents (user_id, contact, channel, kind, source) "
                        "SELECT %s, '+1646' || (2000000 + i), 'voicemail', 'express_written', 'bench' "
                        "FROM generate_series(1, %s) i", (TENANT, half))
            cur.execute("ANALYZE crefinder.outbound_events, crefinder.consents")

            def voice_request(message_id, step, params):
                url = "%s?crefinder_message_id=%d&crefinder_step=%s" % (VOICE_URL, message_id, step)
                params = list(params) + [("AccountSid", ACCOUNT), ("ApiVersion", "2010-04-01"),
                                         ("From", NUMBER), ("Direction", "outbound-api")]
                return (url, urlencode(params), twilio_signature(url, params), str(uuid.uuid4()))

            requests = []      # (kind, args), in the order Twilio sends them, call by call
            for i, (m, sid) in enumerate(zip(call_msgs, sids)):
                drop = i < half
                to = "+1646%07d" % (2000001 + i)
                base = [("CallSid", sid), ("To", to)]
                for seq, s in enumerate(("initiated", "ringing")):
                    requests.append(("status", voice_request(m, "status", base + [
                        ("CallStatus", s), ("SequenceNumber", str(seq)), ("CallbackSource", "call-progress-events")])))
                if drop:
                    human = rng.random() < 0.4
                    requests.append(("twiml", voice_request(m, "answer", base + [
                        ("CallStatus", "in-progress"), ("AnsweredBy", "human" if human else "machine_end_beep")])))
                else:
                    requests.append(("twiml", voice_request(m, "answer", base + [("CallStatus", "in-progress")])))
                requests.append(("status", voice_request(m, "status", base + [
                    ("CallStatus", "in-progress"), ("SequenceNumber", "2"), ("CallbackSource", "call-progress-events")])))
                if drop and human and rng.random() < 0.1:
                    requests.append(("twiml", voice_request(m, "keypress", base + [("Digits", "9")])))
                elif not drop:
                    requests.append(("twiml", voice_request(m, "connect", base + [("Digits", "1")])))
                    requests.append(("twiml", voice_request(m, "dial", base + [
                        ("DialCallStatus", "completed"), ("DialCallDuration", "75"),
                        ("DialCallSid", "CA" + uuid.uuid4().hex)])))
                requests.append(("status", voice_request(m, "status", base + [
                    ("CallStatus", "completed"), ("CallDuration", "80"), ("SequenceNumber", "3"),
                    ("CallbackSource", "call-progress-events")])))
            voice_sql = "SELECT crefinder.handle_twilio_voice_webhook(%s, %s, %s, %s) ->> 'http_status'"
            spent = {"twiml": 0.0, "status": 0.0}
            count = {"twiml": 0, "status": 0}
            answers = {}
            vcur = conn.cursor()
            for kind, request_args in requests:
                t0 = time.perf_counter()
                vcur.execute(voice_sql, request_args)
                answer = vcur.fetchone()[0]
                spent[kind] += time.perf_counter() - t0
                count[kind] += 1
                answers[answer] = answers.get(answer, 0) + 1
            t_twiml, t_status = spent["twiml"], spent["status"]
            total = len(requests)
            cur.execute("SELECT channel, status, count(*) FROM crefinder.outbound_events "
                        "WHERE channel IN ('call', 'voicemail') GROUP BY 1, 2 ORDER BY 1, 2")
            states = cur.fetchall()
            print("twilio voice webhooks, 1 connection: %d calls (%d drops, %d bridges), %d requests in %.2f s "
                  "= %.0f/s; TwiML answers %d = %.0f/s (%.3f ms each), status callbacks %d = %.0f/s "
                  "(%.3f ms each); answers %r; messages %r"
                  % (n_calls, half, n_calls - half, total, t_twiml + t_status, total / (t_twiml + t_status),
                     count["twiml"], count["twiml"] / t_twiml, t_twiml / count["twiml"] * 1000,
                     count["status"], count["status"] / t_status, t_status / count["status"] * 1000,
                     answers, states))
            figures.append(("Twilio voice webhooks (TwiML and callbacks), 1 connection",
                            total / (t_twiml + t_status), "requests/s"))
            figures.append(("Twilio voice TwiML answers, 1 connection", count["twiml"] / t_twiml, "requests/s"))
            figures.append(("Twilio call status callbacks, 1 connection", count["status"] / t_status,
                            "callbacks/s"))

        print_table(figures)
        conn.close()
    finally:
        cluster.cleanup()
    print("(the whole run: %.0f s)" % (time.time() - started))


if __name__ == "__main__":
    main()
