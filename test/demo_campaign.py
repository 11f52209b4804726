"""The campaign part of the demo (test/demo): a few hundred generated
owners, a four-step sequence (a text, an email two days later, a voicemail
drop the next day and an AI call two days after that, both for owners who
consented), pg_cron's job, and simulated days: tick(at) takes each day's
steps, the dispatcher sends them to the sandbox, and the owners answer as
people do, through the real webhook functions with real signatures
(Twilio's HMAC with the tenant's auth token, SendGrid's ECDSA with the
demo's key pair, Vapi's secret; the sandbox's Twilio plays each voicemail
drop out against README's webhook route, signing as Twilio does).

Simulated days lie in the past (day 0 is five days ago, at this time of
day): the messages they queue are due at once, and the dispatcher decides
each again at the real hour, so no rule is bent: owners whose local time is
outside the windows now are held until it opens.  The owners live in zones
around the world, so at any hour some of them may be texted and called.
"""
import base64
import hashlib
import hmac
import json
import random
import textwrap
import time
import uuid
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

# area code (or country prefix), state, city, zip: owners' phones and properties
PLACES = [
    ("212", "NY", "New York", "10001"), ("305", "FL", "Miami", "33101"), ("404", "GA", "Atlanta", "30303"),
    ("312", "IL", "Chicago", "60601"), ("214", "TX", "Dallas", "75201"), ("303", "CO", "Denver", "80202"),
    ("602", "AZ", "Phoenix", "85004"), ("213", "CA", "Los Angeles", "90012"), ("206", "WA", "Seattle", "98101"),
    ("907", "AK", "Anchorage", "99501"), ("808", "HI", "Honolulu", "96813"), ("787", "PR", "San Juan", "00901"),
    ("671", "GU", "Hagatna", "96910"),
]
# owners who live abroad (the property is in Miami)
ABROAD = ["+4420794600", "+3314000", "+9122400", "+8135550", "+6129990"]
FIRST = ["JOHN", "MARIA", "JAMES", "LINDA", "ROBERT", "PATRICIA", "DAVID", "ELENA", "WEI", "AISHA", "KOFI", "SOFIA"]
LAST = ["SMITH", "GARCIA", "JOHNSON", "NGUYEN", "BROWN", "KIM", "PATEL", "OKAFOR", "ROSSI", "COHEN", "SILVA"]
ENTITIES = ["BLUE HERON HOLDINGS LLC", "SUNSET PROPERTIES INC", "THE MARTIN FAMILY TRUST", "OAKWOOD INVESTMENTS LP"]
STREETS = ["Palm Ave", "Main St", "Ocean Dr", "Elm St", "Bay Rd", "Cedar Ln", "Harbor Blvd", "Park Pl"]

REPLIES = {
    "interested": ["Maybe. What are you offering?", "Depends on the price, make me an offer",
                   "I might sell if the numbers work", "yes call me", "Im open to offers"],
    "not_interested": ["Not selling, thanks", "no thank you", "Not for sale", "We're keeping it in the family"],
    "opt_out": ["STOP", "stop texting me", "Remove me from your list", "please don't text this number again"],
    "wrong_number": ["Wrong number", "You have the wrong person", "I sold that place years ago"],
    "callback_later": ["Busy now, text me next week", "Try me after the holidays", "call me in the spring"],
    "question": ["Who is this?", "How did you get my number?", "Which property?"],
    "unknown": ["ok", "?", "👍"],
}
REPLY_MIX = [("interested", 22), ("not_interested", 22), ("opt_out", 16), ("wrong_number", 10),
             ("callback_later", 12), ("question", 12), ("unknown", 6)]
TRANSCRIPTS = {
    "interested": "AI: Hi, this is Sam with Acme Land about your property.\nUser: Yes, I'd consider selling if the price is right. Send me an offer.",
    "not_interested": "AI: Hi, this is Sam with Acme Land about your property.\nUser: No thanks, I'm not interested in selling.",
    "opt_out": "AI: Hi, this is Sam with Acme Land.\nUser: Put me on your do not call list and don't call me again.",
    "voicemail": "",
}


class People:
    """The owners, answering: signs and delivers provider callbacks."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.rand = random.Random(20261202)
        # how many texts and emails go out depends on the hour the demo runs at;
        # the first answers are these, so that every kind of reaction shows
        self.first_replies = ["interested", "not_interested", "opt_out"]
        self.first_unsubscribe = True
        self.web = ctx.connect()

    def sql(self, statement, args):
        with self.web.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchone()[0]

    # --- Twilio -----------------------------------------------------------

    def twilio(self, url, params):
        data = url + "".join(k + v for k, v in sorted(params))
        signature = base64.b64encode(hmac.new(self.ctx.token.encode(), data.encode(), hashlib.sha1).digest()).decode()
        return self.sql("SELECT crefinder.handle_twilio_webhook(%s, %s, %s)",
                        (url, urlencode(params), signature))

    def text_outcomes(self, texts):
        """Status callbacks for the texts sent, and the owners' replies."""
        replies = {}
        for n, (message_id, sid, to) in enumerate(texts):
            roll = self.rand.random()
            status, error = ("delivered", None) if roll < 0.86 else \
                ("undelivered", "30003") if roll < 0.92 else ("undelivered", "30005") if roll < 0.97 \
                else ("failed", "30007")
            url = self.ctx.sms_webhook_url + "?crefinder_message_id=%d" % message_id
            outcome = status if error is None else "%s %s" % (status, error)
            replies["status " + outcome] = replies.get("status " + outcome, 0) + 1
            self.ctx.twilio_moves(sid, {"status": status, "error_code": int(error) if error else None})
            # one text in twenty: Twilio's callbacks never come (reconciled later)
            lost = n % 20 == 7
            if lost:
                replies["callbacks lost"] = replies.get("callbacks lost", 0) + 1
            for step in (["sent", status] if status == "delivered" else [status]) if not lost else []:
                params = [("MessageSid", sid), ("MessageStatus", step), ("SmsStatus", step),
                          ("AccountSid", self.ctx.account), ("To", to), ("From", self.ctx.number)]
                if error and step == status:
                    params.append(("ErrorCode", error))
                self.twilio(url, params)
            if status == "delivered" and (self.first_replies or self.rand.random() < 0.45):
                kind = self.first_replies.pop(0) if self.first_replies else \
                    self.rand.choices([k for k, _ in REPLY_MIX], [w for _, w in REPLY_MIX])[0]
                text = self.rand.choice(REPLIES[kind])
                params = [("MessageSid", "SM" + uuid.uuid4().hex), ("AccountSid", self.ctx.account),
                          ("From", to), ("To", self.ctx.number), ("Body", text), ("SmsStatus", "received"),
                          ("NumMedia", "0")]
                self.twilio(self.ctx.sms_webhook_url, params)
                replies["reply " + kind] = replies.get("reply " + kind, 0) + 1
        return replies

    # --- Twilio calls -------------------------------------------------------

    def answer_drops(self, number):
        """How a consenting owner's phone answers a voicemail drop: mostly a machine (the message is
        left after the beep); sometimes a person, who may press 1 (the agent) or 9 (no more calls or
        texts); sometimes nobody.  The sandbox's Twilio plays it out against the webhook route."""
        roll = self.rand.random()
        behaviour = ({"answered_by": "machine_end_beep"} if roll < 0.5 else
                     {"answered_by": "human", "digits": ["1"]} if roll < 0.65 else
                     {"answered_by": "human", "digits": ["9"]} if roll < 0.75 else
                     {"answered_by": "human"} if roll < 0.85 else
                     {"outcome": "no-answer"} if roll < 0.95 else {"outcome": "busy"})
        self.ctx.call_behaviour(number, **behaviour)

    def drop_outcomes(self, campaign):
        """Waits for the drops the dispatcher placed to end, and counts how they went."""
        deadline = time.time() + 60
        while time.time() < deadline and self.ctx.query(
                "SELECT 1 FROM crefinder.outbound_events WHERE campaign_id = %s AND channel = 'voicemail' "
                "AND (status = 'sending' OR (status IN ('sent', 'delivered') AND "
                "     provider_status NOT IN ('completed', 'busy', 'no-answer', 'failed', 'canceled'))) LIMIT 1",
                (campaign,)):
            time.sleep(0.2)
        counts = {}
        for how, n in self.ctx.query(
                "SELECT CASE WHEN r.keypress = '9' THEN 'pressed 9 (opted out)' "
                "            WHEN r.keypress = '1' THEN 'pressed 1 (to the agent)' "
                "            WHEN r.answered_by LIKE 'machine%%' THEN 'message left on a machine' "
                "            WHEN r.answered_by = 'human' THEN 'heard by the owner' "
                "            ELSE 'call ' || m.provider_status END, count(*) "
                "FROM crefinder.outbound_events m LEFT JOIN crefinder.call_results r ON r.message_id = m.id "
                "WHERE m.campaign_id = %s AND m.channel = 'voicemail' AND m.sent_at IS NOT NULL GROUP BY 1",
                (campaign,)):
            counts[how] = n
        return counts

    # --- SendGrid -----------------------------------------------------------

    def email_outcomes(self, emails):
        events, counts = [], {}
        now = int(time.time())

        def event(kind, message_id, x_id, to, **more):
            e = {"email": to, "event": kind, "sg_event_id": uuid.uuid4().hex, "timestamp": now,
                 "sg_message_id": x_id + ".filter0001", "crefinder_message_id": str(message_id),
                 "crefinder_tenant": self.ctx.tenant}
            e.update(more)
            events.append(e)
            counts[kind] = counts.get(kind, 0) + 1
        for message_id, x_id, to in emails:
            event("processed", message_id, x_id, to)
            roll = self.rand.random()
            if roll < 0.05:
                event("bounce", message_id, x_id, to, type="bounce", reason="550 5.1.1 mailbox unavailable")
                continue
            if roll < 0.06:
                event("dropped", message_id, x_id, to, reason="Bounced Address")
                continue
            event("delivered", message_id, x_id, to)
            if self.rand.random() < 0.45:
                event("open", message_id, x_id, to)
                if self.rand.random() < 0.3:
                    event("click", message_id, x_id, to, url="https://acmeland.example/offer")
            if self.first_unsubscribe or self.rand.random() < 0.03:
                self.first_unsubscribe = False
                event("unsubscribe", message_id, x_id, to)
            elif self.rand.random() < 0.01:
                event("spamreport", message_id, x_id, to)
        if events:
            body = json.dumps(events) + "\r\n"
            stamp = str(int(time.time()))
            signature = base64.b64encode(self.ctx.sendgrid_key.sign((stamp + body).encode(),
                                                                    ec.ECDSA(hashes.SHA256()))).decode()
            answer = self.sql("SELECT crefinder.handle_sendgrid_events(%s, %s, %s, %s)",
                              (body, signature, stamp, self.ctx.tenant))
            assert answer["http_status"] == 200, answer
        return counts

    # --- Vapi ---------------------------------------------------------------

    def call_outcomes(self, calls):
        counts = {}
        for message_id, call_id, to in calls:
            kind = self.rand.choices(["interested", "not_interested", "opt_out", "voicemail"], [3, 3, 1, 3])[0]
            ended = "voicemail" if kind == "voicemail" else "customer-ended-call"
            report = {"message": {
                "type": "end-of-call-report", "endedReason": ended, "timestamp": int(time.time() * 1000),
                "call": {"id": call_id, "customer": {"number": to},
                         "assistantOverrides": {"metadata": {"crefinder_message_id": str(message_id),
                                                             "crefinder_tenant": self.ctx.tenant}}},
                "durationSeconds": 0 if kind == "voicemail" else self.rand.randint(40, 240),
                "cost": round(self.rand.uniform(0.05, 0.40), 4),
                "transcript": TRANSCRIPTS[kind], "summary": "Outreach call: %s." % kind.replace("_", " ")}}
            answer = self.sql("SELECT crefinder.handle_vapi_message(%s, %s)",
                              (json.dumps(report), json.dumps({"X-Vapi-Secret": self.ctx.vapi_secret})))
            assert answer["http_status"] == 200, answer
            counts[kind] = counts.get(kind, 0) + 1
        return counts


def generate_owners(rand, count):
    """count owners: (name, phones, email, address, city, state, zip)."""
    owners = []
    for i in range(count):
        if i % 40 == 7:
            prefix, state, city, zip_ = rand.choice(ABROAD), "FL", "Miami", "33139"
            phones = [prefix + "%04d" % (1000 + i)]
        else:
            area, state, city, zip_ = PLACES[i % len(PLACES)]
            # 555-01xx is reserved for fiction; the rest of 555 is not
            # assigned, so the demo's numbers reach nobody
            phones = ["+1%s555%04d" % (area, 100 + i)]
            for extra in range(rand.choice([0, 0, 1, 2])):
                phones.append("+1%s555%04d" % (area, 3000 + i * 3 + extra))
        name = rand.choice(ENTITIES) if i % 17 == 3 else "%s %s %s" % (
            rand.choice(LAST), rand.choice(FIRST), rand.choice("ABCDEFGHJKLM"))
        email = None if i % 9 == 4 else "owner%03d@example.com" % i
        owners.append((name, phones, email, "%d %s" % (100 + i, rand.choice(STREETS)), city, state, zip_))
    return owners


def run(ctx):
    say, psql, query = ctx.say, ctx.psql, ctx.query
    rand = random.Random(7)
    people = People(ctx)

    say("9. Campaigns.  The demo generates 300 owners: properties across the US and its territories "
        "(and a few owners abroad), one to three phones each (skip tracing gives several), an email "
        "for most, some numbers on the tenant's Do-Not-Call list, some owners who consented to AI "
        "calls.  The tenant's settings name the business and its postal address, which every "
        "campaign email carries (CAN-SPAM).")
    owners = generate_owners(rand, 300)
    app = ctx.connect()
    with app.cursor() as cur:
        cur.execute("SET crefinder.user_id = %s", (ctx.tenant,))
        for i, (name, phones, email, address, city, state, zip_) in enumerate(owners):
            cur.execute("INSERT INTO crefinder.property_records (owner_name, owner_phone, owner_email, "
                        "property_address, property_city, property_state, property_zip) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                        (name, phones[0], email, address, city, state, zip_))
            pid = cur.fetchone()[0]
            for rank, phone in enumerate(phones[1:], start=1):
                cur.execute("INSERT INTO crefinder.property_contacts (property_id, kind, value, rank) "
                            "VALUES (%s, 'phone', %s, %s)", (pid, phone, rank))
            if i % 23 == 5:
                cur.execute("SELECT crefinder.dnc_add(%s, 'internal')", (phones[0],))
            if i % 3 == 0:
                # the web form's consent covers AI calls and prerecorded messages alike
                for channel in ("voice", "voicemail"):
                    cur.execute("SELECT crefinder.record_consent(%s, %s, 'express_written', 'web form', "
                                "'{\"form\": \"sell-my-house\"}')", (phones[0], channel))
                people.answer_drops(phones[0])
    app.close()
    psql("""
SET crefinder.user_id = '%s';
SELECT crefinder.set_tenant_settings('{"business_name": "Acme Land", "postal_address": "100 Biscayne Blvd, Miami, FL 33132",
                                       "callback_number": "+13055550100", "agent_number": "+13055550111"}')
       ->> 'postal_address' AS postal_address;
SELECT count(*) AS owners, count(DISTINCT property_state) AS states,
       (SELECT count(*) FROM crefinder.property_contacts) AS extra_phones,
       (SELECT count(DISTINCT contact) FROM crefinder.consents) AS consented_to_calls,
       (SELECT count(*) FROM crefinder.dnc_numbers) AS on_dnc
FROM crefinder.property_records;
""" % ctx.tenant)

    say("10. Templates and a sequence: a text (two variants, 10% held out to measure lift), an email "
        "two days later, a voicemail drop the next day (only the owners who consented get one: the "
        "others are blocked no_consent; a drop names the business and the number to call back), an AI "
        "call two days after that.  The sequence is checked as a whole when it "
        "is created: a misspelt variable is refused, with the step named.")
    psql("""
SET crefinder.user_id = '%s';
SELECT crefinder.create_sequence('typo', '[{"channel": "sms", "body": "Hi {{frist_name}}"}]');
\\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT crefinder.save_template('intro text', 'sms',
    'Hi {{first_name | there}}, this is Sam with {{business_name}}. Would you consider an offer for {{property_address}}? Reply STOP to opt out.');
SELECT crefinder.create_sequence('four touches', '[
  {"channel": "sms", "holdout": 10, "variants": [
      {"name": "A", "template": "intro text"},
      {"name": "B", "body": "{{first_name | Hello}}, quick question: is {{property_address}} for sale? Reply STOP to opt out."}]},
  {"channel": "email", "delay": "2 days", "subject": "An offer for {{property_address}}",
   "body": "Hi {{first_name | there}},\\n\\nWe buy properties like {{property_address}} for cash.\\n\\nSam",
   "html": "<p>Hi {{first_name | there}},</p><p>We buy properties like {{property_address}} for cash.</p><p>Sam</p>"},
  {"channel": "voicemail", "delay": "1 day",
   "body": "Hi {{first_name | there}}, this is Sam with {{business_name}} about {{property_address}}. We would like to make you a cash offer."},
  {"channel": "voice", "delay": "2 days"}]') AS sequence_id \\gset
""" % ctx.tenant, stop_on_error=False)
    psql("""
SET crefinder.user_id = '%s';
SELECT crefinder.create_campaign('Spring outreach', (SELECT id FROM crefinder.sequences WHERE name = 'four touches'),
                                 (SELECT array_agg(id ORDER BY id) FROM crefinder.property_records),
                                 starts_at => now() - interval '5 days') AS campaign_id;
SELECT step, channel, enrollments, send, held, blocked, skipped, sms_segments, estimated_cost_cents
FROM crefinder.preview_campaign((SELECT id FROM crefinder.campaigns WHERE name = 'Spring outreach'),
                                now() - interval '5 days');
""" % ctx.tenant)

    say("11. In production pg_cron runs crefinder.tick() every minute.  Here the demo calls tick(at) "
        "itself first, for simulated days: day 0 is five days ago at this time of day, so what a day "
        "queues is due at once and the dispatcher sends it now (each message decided again at the real "
        "hour).  pg_cron's job is registered after the simulated days (it would take their steps in "
        "real time).")

    campaign = query("SELECT id FROM crefinder.campaigns WHERE name = 'Spring outreach'")[0][0]
    days = [(0, "5 days"), (2, "3 days"), (3, "2 days"), (5, "0 days")]
    for day, ago in days:
        moved = query("SELECT crefinder.tick(now() - %s::interval)", (ago,))[0][0]
        ctx.wait_dispatcher()
        story = {"day": day, "advanced": moved}
        if day == 0:
            texts = query("SELECT id, provider_message_id, to_contact FROM crefinder.outbound_events "
                          "WHERE campaign_id = %s AND channel = 'sms' AND status = 'sent' ORDER BY id", (campaign,))
            story["answers"] = people.text_outcomes(texts)
        elif day == 2:
            emails = query("SELECT id, provider_message_id, to_contact FROM crefinder.outbound_events "
                           "WHERE campaign_id = %s AND channel = 'email' AND status = 'sent' ORDER BY id",
                           (campaign,))
            story["answers"] = people.email_outcomes(emails)
        elif day == 3:
            story["answers"] = people.drop_outcomes(campaign)
        else:
            answered = {}
            deadline = time.time() + 60
            while time.time() < deadline:
                calls = query("SELECT id, provider_message_id, to_contact FROM crefinder.outbound_events "
                              "WHERE campaign_id = %s AND channel = 'voice' AND status = 'sent' "
                              "AND provider_status IS DISTINCT FROM 'ended' ORDER BY id", (campaign,))
                if not calls:
                    if not query("SELECT 1 FROM crefinder.outbound_events WHERE campaign_id = %s "
                                 "AND channel = 'voice' AND status = 'queued' AND next_attempt_at <= now() + "
                                 "interval '1 minute' AND hold_reason IS DISTINCT FROM 'quiet_hours'", (campaign,)):
                        break
                    time.sleep(0.2)
                    continue
                for kind, n in people.call_outcomes(calls).items():
                    answered[kind] = answered.get(kind, 0) + n
                ctx.wait_dispatcher()
            story["answers"] = answered
        tell(ctx, campaign, day, ago, story)

    say("16. Now pg_cron's job takes over: schedule() registers tick() every minute, in this database.")
    psql("""
CREATE EXTENSION pg_cron;
SELECT crefinder.schedule() > 0 AS scheduled;
SELECT jobname, schedule, command FROM cron.job;
""", user="postgres")

    say("17. True costs.  Twilio gives a text's or a call's price only after its final status: the "
        "dispatcher asks for it (GET .../Messages/{sid}.json, .../Calls/{sid}.json) a minute later, and "
        "asks about texts whose callbacks never came once crefinder.reconcile_after (2 hours) has passed.  "
        "The demo moves that time forward.")
    query("ALTER SYSTEM SET crefinder.lookups_per_second = 50")
    query("SELECT pg_reload_conf()")
    # until each text and drop is settled: its final status and price known
    deadline = time.time() + 60
    while query("SELECT 1 FROM crefinder.outbound_events WHERE campaign_id = %s AND lookup_at IS NOT NULL "
                "AND channel IN ('sms', 'whatsapp', 'voicemail') LIMIT 1", (campaign,)) and time.time() < deadline:
        query("UPDATE crefinder.outbound_events SET lookup_at = now() WHERE campaign_id = %s "
              "AND lookup_at > now() AND channel IN ('sms', 'whatsapp', 'voicemail')", (campaign,))
        time.sleep(0.2)
    query("ALTER SYSTEM RESET crefinder.lookups_per_second")
    query("SELECT pg_reload_conf()")
    psql("""
SET crefinder.user_id = '%(tenant)s';
SELECT channel, status, provider_status, count(*) AS messages, count(cost_cents) AS priced, sum(cost_cents) AS cost_cents
FROM crefinder.outbound_events WHERE campaign_id = %(campaign)d AND channel IN ('sms', 'voicemail') AND sent_at IS NOT NULL
GROUP BY 1, 2, 3 ORDER BY 1 DESC, 4 DESC;
""" % {"tenant": ctx.tenant, "campaign": campaign})

    say("18. What the campaign did, from the analytics views (rollups kept current by every message's "
        "changes): per channel, the funnel, the A/B test against the holdout, the channels compared "
        "with cost and ROI, the hours owners answer, the guardrails; then replies and where each owner stands.")
    psql("""
SET crefinder.user_id = '%(tenant)s';
SELECT channel, sent, delivered, opened, clicked, responded, failed, blocked, skipped,
       delivery_rate, open_rate, response_rate, total_cost, unpriced
FROM crefinder.campaign_performance WHERE campaign_id = %(campaign)d ORDER BY channel;
SELECT properties_enrolled AS enrolled, properties_contacted AS contacted, properties_responded AS responded,
       properties_interested AS interested, unique_contacts, response_rate, total_cost, cost_per_interested
FROM crefinder.campaign_overview WHERE campaign_id = %(campaign)d;
SELECT stage, properties, share_of_previous FROM crefinder.campaign_funnel
WHERE campaign_id = %(campaign)d ORDER BY position;
SELECT step, variant, assigned, sent, responded, response_rate, difference, round(p_value::numeric, 4) AS p_value,
       lift_over_holdout, winner
FROM crefinder.ab_test_results WHERE campaign_id = %(campaign)d ORDER BY step, variant;
SELECT channel, sent, responded, response_rate, cost, revenue, roi FROM crefinder.channel_effectiveness;
SELECT channel, hour, sum(sent) AS sent, sum(responded) AS responded,
       round(100.0 * sum(responded) / nullif(sum(sent), 0), 1) AS response_rate
FROM crefinder.contact_time_performance GROUP BY 1, 2 HAVING sum(sent) >= 5 ORDER BY 1, 2;
SELECT channel, opt_out_rate, complaint_rate, filtered_rate, opt_out_tripped, paused_at IS NOT NULL AS paused
FROM crefinder.campaign_guardrails WHERE campaign_id = %(campaign)d ORDER BY channel;
SELECT block_reason AS why_blocked_or_skipped, count(*) FROM crefinder.outbound_events
WHERE campaign_id = %(campaign)d AND block_reason IS NOT NULL GROUP BY 1 ORDER BY 2 DESC;
SELECT source, kind, count(*) FROM crefinder.responses WHERE campaign_id = %(campaign)d
GROUP BY 1, 2 ORDER BY 1, 3 DESC;
SELECT status, coalesce(stop_reason, '') AS stop_reason, count(*) FROM crefinder.enrollments
WHERE campaign_id = %(campaign)d GROUP BY 1, 2 ORDER BY 3 DESC;
SELECT lead_status, count(*) FROM crefinder.property_records GROUP BY 1 ORDER BY 2 DESC;
""" % {"tenant": ctx.tenant, "campaign": campaign})
    psql("SELECT crefinder.unschedule() AS unscheduled;", user="postgres")
    people.web.close()


def tell(ctx, campaign, day, ago, story):
    """A short readable account of one simulated day."""
    rows = ctx.query("""
        SELECT m.channel, m.status, m.block_reason, m.hold_reason, count(*)
        FROM crefinder.outbound_events m
        WHERE m.campaign_id = %s AND m.step = (SELECT max(step) FROM crefinder.outbound_events
                                                WHERE campaign_id = %s)
        GROUP BY 1, 2, 3, 4""", (campaign, campaign))
    channel = rows[0][0] if rows else "-"
    by = {}
    for _, status, block, hold, n in rows:
        key = {"sent": "sent", "delivered": "sent", "failed": "sent", "queued": "held",
               "blocked": "blocked", "skipped": "skipped", "cancelled": "cancelled"}.get(status, status)
        by[key] = by.get(key, 0) + n
        if block:
            reasons = by.setdefault("%s_reasons" % key, {})
            reasons[block] = reasons.get(block, 0) + n
    stopped = ctx.query("SELECT coalesce(stop_reason, status), count(*) FROM crefinder.enrollments "
                        "WHERE campaign_id = %s AND status IN ('stopped', 'nurture') GROUP BY 1 ORDER BY 2 DESC",
                        (campaign,))
    optouts = ctx.query("SELECT count(*) FROM crefinder.opt_outs WHERE revoked_at IS NULL")[0][0]
    label = {0: "12", 2: "13", 3: "14", 5: "15"}[day]
    def why(key):
        reasons = by.get("%s_reasons" % key)
        return " (%s)" % ", ".join("%s %d" % kv for kv in sorted(reasons.items())) if reasons else ""
    ctx.say("%s. Day %d (%s ago): tick() advanced %d enrollments.  The %s step: %d sent, %d held until the "
            "owner's window opens, %d blocked%s, %d skipped%s." % (
                label, day, ago, story["advanced"], {"sms": "text", "email": "email", "voice": "AI call", "voicemail": "voicemail drop"}
                .get(channel, channel), by.get("sent", 0), by.get("held", 0), by.get("blocked", 0),
                why("blocked"), by.get("skipped", 0), why("skipped")))
    answers = story.get("answers") or {}
    if answers:
        print(textwrap.fill("The providers and the owners answered: %s." % ", ".join(
            "%s %d" % kv for kv in sorted(answers.items())), width=90, initial_indent="    ",
            subsequent_indent="    "))
    print(textwrap.fill("Opt-outs on file: %d.  Enrollments stopped or moved so far: %s." % (
        optouts, ", ".join("%s %d" % tuple(r) for r in stopped) or "none"), width=90,
        initial_indent="    ", subsequent_indent="    "))
