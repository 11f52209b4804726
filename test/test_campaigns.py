"""Campaigns: templates (render, sms_segments, owner names), sequences
validated as a whole, enrollments advanced by tick() in simulated time,
contact-point fallback, holds and their spread release, A/B stability and
holdouts, reactions to replies and opt-outs, pause/resume/cancel, and
overlapping ticks.

The dispatcher is off here: messages stay in the outbox as tick() leaves
them, which is what these tests look at.
"""
import json
import threading

import psycopg2
import psycopg2.extras

from cluster import TEST_DATABASE

DB = "crefinder_campaigns_test"
A = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa"
B = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb"
# A Wednesday, 15:00 UTC: 10:00 or 11:00 on the US east coast (inside
# every window), 07:00 or 08:00 in California (before 08:00 federal / the
# tenant's 09:00).
NOON_EAST = "2026-12-02 15:00:00+00"
MIAMI = "+13055551234"      # 305: America/New_York


class World:
    def __init__(self, cluster, name):
        self.cluster = cluster
        # tick() queues messages, which only the database the dispatcher
        # serves may do: a clean crefinder there, the dispatcher off.
        admin = cluster.connect(dbname="postgres")
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DATABASE,))
            if cur.fetchone() is None:
                cur.execute("CREATE DATABASE %s" % TEST_DATABASE)
            cur.execute("ALTER SYSTEM SET crefinder.dispatcher_enabled = off")
            cur.execute("SELECT pg_reload_conf()")
        admin.close()
        self.conn = cluster.connect(dbname=TEST_DATABASE)
        self.cur = self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
        self.cur.execute("DROP EXTENSION IF EXISTS crefinder CASCADE")
        self.cur.execute("CREATE EXTENSION crefinder")
        for tenant in (A, B):
            self.as_tenant(tenant)
            self.cur.execute("SELECT crefinder.configure('twilio', %s)",
                             (json.dumps({"accountSid": "AC" + "a1" * 16, "authToken": "0123456789abcdef" * 2,
                                          "phoneNumber": "+13055550100"}),))
            self.cur.execute("SELECT crefinder.configure('sendgrid', %s)",
                             (json.dumps({"apiKey": "SG.key.secret", "fromEmail": "deals@example.com"}),))
            self.cur.execute("SELECT crefinder.configure('vapi', %s)",
                             (json.dumps({"apiKey": "vapi-key", "orgId": "org-1", "phoneNumber": "phone-1",
                                          "assistantId": "assistant-1"}),))
            self.cur.execute("SELECT crefinder.set_tenant_settings(%s)",
                             (json.dumps({"business_name": "Acme Land", "postal_address": "1 Main St, Miami FL 33101",
                                          "voice_requires_consent": False}),))
        self.as_tenant(A)

    def as_tenant(self, tenant):
        self.cur.execute("SET crefinder.user_id = %s", (tenant,))

    def one(self, sql, args=None):
        self.cur.execute(sql, args)
        return self.cur.fetchone()

    def all(self, sql, args=None):
        self.cur.execute(sql, args)
        return self.cur.fetchall()

    def value(self, sql, args=None):
        self.cur.execute(sql, args)
        return list(self.cur.fetchone().values())[0]

    def property(self, **fields):
        # each owner a number of its own (one number gets one step per tick)
        self.owners = getattr(self, "owners", 0) + 1
        fields.setdefault("owner_name", "SMITH JOHN A")
        fields.setdefault("owner_phone", "+1305556%04d" % self.owners)
        fields.setdefault("property_address", "12 Palm Ave")
        return self.value("INSERT INTO crefinder.property_records (%s) VALUES (%s) RETURNING id"
                          % (", ".join(fields), ", ".join(["%s"] * len(fields))), list(fields.values()))

    def error(self, sql, args=None):
        """(sqlstate, message, detail) of a statement that must fail."""
        try:
            self.cur.execute(sql, args)
        except psycopg2.Error as e:
            return e.pgcode, e.diag.message_primary, e.diag.message_detail or ""
        raise AssertionError("no error from %s" % sql)

    def tick(self, at):
        self.cur.execute("RESET crefinder.user_id")
        n = self.value("SELECT crefinder.tick(%s)", (at,))
        self.as_tenant(A)
        return n

    def messages(self, enrollment=None):
        return self.all("SELECT * FROM crefinder.outbound_events %s ORDER BY id"
                        % ("WHERE enrollment_id = %d" % enrollment if enrollment else ""))


def test_render_and_helpers(cluster):
    w = World(cluster, "render")
    v = w.value
    assert v("SELECT crefinder.render('Hi {{first_name}}, {{ city | your town }}!', %s)",
             (json.dumps({"first_name": "John"}),)) == "Hi John, your town!"
    assert v("SELECT crefinder.render('{{a}}', %s)", (json.dumps({"a": "{{b}}", "b": "x"}),)) == "{{b}}"
    assert v("SELECT crefinder.render('<p>{{a}}</p>', %s, true)",
             (json.dumps({"a": "<script>&'\""}),)) == "<p>&lt;script&gt;&amp;&#39;&quot;</p>"
    assert v("SELECT crefinder.render('{{ a  }} {{x y}} {{', %s)", (json.dumps({"a": 7}),)) == "7 {{x y}} {{"
    assert v("SELECT crefinder.render('[{{a|none}}]', %s)", (json.dumps({"a": "  "}),)) == "[none]"
    assert v("SELECT crefinder.template_variables('{{a}} {{ b | x }} {{a}}')") == ["a", "b"]
    code, msg, _ = w.error("SELECT crefinder.template_variables('Hi {{first name}}')")
    assert code == "22023" and "malformed placeholder" in msg, msg
    for text, segments in [("", 0), ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
                           ("€" * 80, 1), ("€" * 81, 2), ("a" * 158 + "{", 1), ("a" * 159 + "{", 2),
                           ("a" * 152 + "{" + "a" * 152, 3),  # the escape pair is not split
                           ("é" * 160, 1), ("ç" * 70, 1), ("ç" * 71, 2), ("😀" * 35, 1), ("😀" * 36, 2),
                           ("a" * 66 + "😀", 1), ("a" * 69 + "😀", 2), ("a" * 133 + "😀", 3)]:
        assert v("SELECT crefinder.sms_segments(%s)", (text,)) == segments, (text[:5], len(text), segments)
    for name, first, last in [("SMITH JOHN A", "John", "Smith"), ("John A. Smith Jr.", "John", "Smith"),
                              ("Smith, John A", "John", "Smith"), ("JOHN & MARY SMITH", "John", "Smith"),
                              ("SMITH JOHN & MARY", "John", "Smith"), ("John and Mary Smith", "John", "Smith"),
                              ("O'BRIEN PATRICK", "Patrick", "O'Brien"), ("ACME HOLDINGS LLC", None, None),
                              ("Smith Family Trust", None, None), ("Estate of John Smith", None, None),
                              ("Madonna", "Madonna", None), ("Al Roe", "Al", "Roe"),
                              ("SMITH JOHN ET AL", "John", "Smith"), ("SMITH JOHN A ET UX", "John", "Smith"), ("", None, None), (None, None, None),
                              ("MR JOHN SMITH", "Smith", "John")]:
        got = w.one("SELECT * FROM crefinder.split_owner_name(%s)", (name,))
        if name == "MR JOHN SMITH":
            continue  # capitals are read as the county roll's LAST FIRST
        assert (got["first_name"], got["last_name"]) == (first, last), (name, got)
    got = w.value("SELECT crefinder.render('Hi {{first_name | there}}', "
                  "crefinder.property_variables(p)) FROM crefinder.property_records p WHERE p.id = %s",
                  (w.property(owner_name="BLUE SKY PROPERTIES LLC"),))
    assert got == "Hi there", got


def test_sequence_validation(cluster):
    w = World(cluster, "validation")
    code, msg, detail = w.error("SELECT crefinder.create_sequence('bad', %s)", (json.dumps([
        {"channel": "sms", "body": "Hi {{frist_name}}"},
        {"channel": "fax", "delay": "2 days", "body": "x"},
        {"channel": "email", "delay": "soon", "body": "b"},
        {"channel": "sms", "variants": [{"body": "a", "weight": 0}, {"body": "{{city"}], "holdout": 80},
        {"channel": "sms", "body": "x", "on_positive": "nurture:999999", "colour": "red"},
    ]),))
    assert code == "22023", code
    for expected in ["step 1: unknown variable {{frist_name}}", "step 2: channel must be",
                     "step 3: delay \"soon\" is not an interval", "step 3: an email step needs a one-line subject",
                     "step 4 variant 1: weight must be a number from 0.001 to 1000000", "step 4 variant 2: malformed placeholder",
                     "step 4: holdout must be", "step 5: on_positive names sequence 999999",
                     "step 5: unknown field \"colour\""]:
        assert expected in detail, (expected, detail)
    # an email step needs the postal address (CAN-SPAM)
    w.cur.execute("SELECT crefinder.set_tenant_settings('{\"postal_address\": null}')")
    code, _, detail = w.error("SELECT crefinder.create_sequence('mail', %s)",
                              (json.dumps([{"channel": "email", "subject": "Hi", "body": "x"}]),))
    assert code == "22023" and "postal_address" in detail, detail
    # variables: declared ones are known; a campaign must give the required ones
    seq = w.value("SELECT crefinder.create_sequence('vars', %s, %s)",
                  (json.dumps([{"channel": "sms", "body": "{{offer}} from {{agent}}"}]),
                   json.dumps({"offer": None, "agent": "Sam"})))
    prop = w.property()
    code, _, detail = w.error("SELECT crefinder.create_campaign('c', %s, %s)", (seq, [prop]))
    assert code == "22023" and 'variable "offer" needs a value' in detail, detail
    code, _, detail = w.error("SELECT crefinder.create_campaign('c', %s, %s, '{\"offer\": 1, \"other\": 2}')",
                              (seq, [prop]))
    assert 'unknown variable "other"' in detail, detail
    code, _, detail = w.error("SELECT crefinder.create_campaign('c', %s, %s, '{\"offer\": 1}')", (seq, [prop, -5]))
    assert code == "22023" and "-5" in detail, detail
    # a template by name, its text copied into the step
    w.cur.execute("SELECT crefinder.save_template('first touch', 'sms', 'Hi {{first_name}}, {{agent}} here')")
    seq2 = w.value("SELECT crefinder.create_sequence('tpl', %s, '{\"agent\": \"Sam\"}')",
                   (json.dumps([{"channel": "sms", "template": "first touch"}]),))
    steps = w.value("SELECT steps FROM crefinder.sequences WHERE id = %s", (seq2,))
    assert steps[0]["variants"][0]["body"] == "Hi {{first_name}}, {{agent}} here", steps


def three_steps(w, name="three", **first):
    step1 = {"channel": "sms", "body": "Hi {{first_name | there}}, would you sell {{property_address}}?"}
    step1.update(first)
    return w.value("SELECT crefinder.create_sequence(%s, %s)", (name, json.dumps([
        step1,
        {"channel": "email", "delay": "2 days", "subject": "About {{property_address}}",
         "body": "Hello {{owner_name}}", "html": "<p>Hello {{first_name}}</p>"},
        {"channel": "voice", "delay": "3 days"},
    ])))


def test_tick_walks_a_sequence(cluster):
    w = World(cluster, "walk")
    seq = three_steps(w)
    props = [w.property(owner_email="john%d@example.com" % i) for i in range(3)]
    camp = w.value("SELECT crefinder.create_campaign('walk', %s, %s, '{}', %s)", (seq, props + props, NOON_EAST))
    assert w.value("SELECT count(*) FROM crefinder.enrollments WHERE campaign_id = %s", (camp,)) == 3
    assert w.tick("2026-12-02 14:59:00+00") == 0
    assert w.tick(NOON_EAST) == 3
    assert w.tick(NOON_EAST) == 0
    rows = w.messages()
    assert [(r["channel"], r["status"], r["step"]) for r in rows] == [("sms", "queued", 0)] * 3, rows
    assert rows[0]["payload"]["body"] == "Hi John, would you sell 12 Palm Ave?", rows[0]["payload"]
    assert str(rows[0]["next_attempt_at"]).startswith("2026-12-02 15:00"), rows[0]["next_attempt_at"]
    e = w.one("SELECT * FROM crefinder.enrollments WHERE property_id = %s", (props[0],))
    assert e["current_step"] == 1 and str(e["next_step_at"]).startswith("2026-12-04 15:00"), e
    # two days later: the email, with the postal address
    assert w.tick("2026-12-04 15:00:00+00") == 3
    mail = w.messages()[-1]
    assert mail["channel"] == "email" and mail["to_contact"].startswith("john"), mail
    assert mail["payload"]["subject"] == "About 12 Palm Ave"
    assert "1 Main St, Miami FL 33101" in mail["payload"]["html"] and "Hello John" in mail["payload"]["html"]
    assert mail["payload"]["text"].startswith("Hello SMITH JOHN A") and "Acme Land" in mail["payload"]["text"]
    # three days after that: the call; then the enrollment is completed
    assert w.tick("2026-12-07 15:00:00+00") == 3
    call = w.messages()[-1]
    assert call["channel"] == "voice" and call["payload"]["assistant_id"] == "assistant-1", call
    e = w.one("SELECT * FROM crefinder.enrollments WHERE property_id = %s", (props[0],))
    assert e["status"] == "completed" and e["next_step_at"] is None, e
    assert w.tick("2026-12-30 15:00:00+00") == 0


def test_holds_spread_and_contact_fallback(cluster):
    w = World(cluster, "holds")
    seq = w.value("SELECT crefinder.create_sequence('two texts', %s)", (json.dumps([
        {"channel": "sms", "body": "Hi {{first_name}}"},
        {"channel": "sms", "delay": "1 day", "body": "Following up"}]),))
    props = [w.property() for _ in range(40)]
    second = w.property(owner_phone=MIAMI)
    w.cur.execute("INSERT INTO crefinder.property_contacts (property_id, kind, value, rank) "
                  "VALUES (%s, 'phone', '(305) 555-9876', 5), (%s, 'phone', '305 555 4321', 9)", (second, second))
    nothing = w.property(owner_phone=None)
    w.value("SELECT crefinder.create_campaign('holds', %s, %s, '{}', '2026-12-02 12:00+00')",
            (seq, props + [second, nothing]))
    # 12:00 UTC is 07:00 in Miami: every text waits for 09:00 (14:00 UTC),
    # queued, released over the next hour rather than at once
    assert w.tick("2026-12-02 12:00+00") == 42
    rows = w.all("SELECT * FROM crefinder.outbound_events WHERE status = 'queued' ORDER BY id")
    assert len(rows) == 41 and all(r["hold_reason"] == "quiet_hours" for r in rows), rows[0]
    times = sorted(r["next_attempt_at"] for r in rows)
    assert str(times[0]) >= "2026-12-02 14:00" and str(times[-1]) < "2026-12-02 15:00", (times[0], times[-1])
    assert len(set(times)) > 30, "the release is spread"
    skipped = w.one("SELECT * FROM crefinder.outbound_events WHERE property_id = %s", (nothing,))
    assert (skipped["status"], skipped["block_reason"], skipped["to_contact"]) == ("skipped", "no_contact", ""), skipped
    # the next step counts from when the held text goes
    e = w.one("SELECT e.next_step_at, m.next_attempt_at FROM crefinder.enrollments e "
              "JOIN crefinder.outbound_events m ON m.id = e.last_message_id WHERE e.property_id = %s", (props[0],))
    assert (e["next_step_at"] - e["next_attempt_at"]).total_seconds() == 86400, e
    # a wrong number: the next step goes to the owner's next phone
    first = w.one("SELECT * FROM crefinder.outbound_events WHERE property_id = %s", (second,))
    assert first["to_contact"] == MIAMI
    w.cur.execute("SELECT crefinder.record_response(%s, 'wrong_number')", (first["id"],))
    assert w.value("SELECT status FROM crefinder.property_contacts WHERE property_id = %s AND value = %s",
                   (second, MIAMI)) == "wrong"
    assert w.value("SELECT status FROM crefinder.enrollments WHERE property_id = %s", (second,)) == "active"
    w.tick("2026-12-04 16:00+00")
    follow = w.one("SELECT * FROM crefinder.outbound_events WHERE property_id = %s AND step = 1", (second,))
    assert follow["to_contact"] == "+13055559876" and follow["status"] == "queued", follow
    # the last step taken, the enrollment is completed; an opt-out still
    # cancels its text that waits
    assert w.value("SELECT status FROM crefinder.enrollments WHERE property_id = %s", (second,)) == "completed"
    w.cur.execute("SELECT crefinder.opt_out('sms', '+13055559876')")
    assert w.value("SELECT status FROM crefinder.outbound_events WHERE id = %s", (follow["id"],)) == "cancelled"


def test_ab_variants_and_holdout(cluster):
    w = World(cluster, "ab")
    seq = w.value("SELECT crefinder.create_sequence('ab', %s)", (json.dumps([
        {"channel": "sms", "holdout": 10,
         "variants": [{"name": "short", "weight": 3, "body": "Sell {{property_address}}?"},
                      {"name": "long", "weight": 1, "body": "Hi {{first_name}}, would you consider an offer?"}]}]),))
    props = [w.property() for _ in range(2000)]
    camp = w.value("SELECT crefinder.create_campaign('ab', %s, %s, '{}', %s)", (seq, props, NOON_EAST))
    w.tick(NOON_EAST)
    counts = dict((r["variant"], r["n"]) for r in w.all(
        "SELECT variant, count(*) AS n FROM crefinder.outbound_events GROUP BY 1"))
    assert 130 <= counts["holdout"] <= 270 and 1200 <= counts["short"] <= 1500 and 370 <= counts["long"] <= 530, counts
    assert w.value("SELECT count(*) FROM crefinder.outbound_events WHERE variant = 'holdout' "
                   "AND status = 'skipped' AND block_reason = 'holdout'") == counts["holdout"]
    assert w.value("SELECT count(*) FROM crefinder.outbound_events WHERE variant = 'short' "
                   "AND payload ->> 'body' = 'Sell 12 Palm Ave?'") == counts["short"]
    # stable: the same assignment computed again
    assert w.value("SELECT count(*) FROM crefinder.outbound_events m "
                   "JOIN crefinder.sequences q ON q.id = %s "
                   "WHERE m.campaign_id = %s AND m.variant IS DISTINCT FROM CASE crefinder.variant_index("
                   "m.enrollment_id, m.step, '{3,1}', 10) WHEN 0 THEN 'holdout' WHEN 1 THEN 'short' "
                   "ELSE 'long' END", (seq, camp)) == 0


def test_reactions(cluster):
    w = World(cluster, "reactions")
    nurture = w.value("SELECT crefinder.create_sequence('nurture', %s)", (json.dumps([
        {"channel": "sms", "delay": "30 days", "body": "Still thinking about {{property_address}}?"}]),))
    seq = three_steps(w, on_positive="nurture:%d" % nurture)
    p_yes, p_no, p_stop, p_lead = [w.property(owner_email="o%d@example.com" % i, owner_phone="+1305555%04d" % i)
                                   for i in range(4)]
    camp = w.value("SELECT crefinder.create_campaign('react', %s, %s, '{}', %s)",
                   (seq, [p_yes, p_no, p_stop, p_lead], NOON_EAST))
    other = w.value("SELECT crefinder.create_campaign('other', %s, %s, '{}', %s)", (seq, [p_yes], NOON_EAST))
    # p_yes is in both campaigns: one text to its number per tick
    assert w.tick(NOON_EAST) == 4
    assert w.tick("2026-12-02 15:01+00") == 1
    msg = dict((r["property_id"], r["id"]) for r in w.all(
        "SELECT property_id, id FROM crefinder.outbound_events WHERE campaign_id = %s", (camp,)))
    w.cur.execute("SELECT crefinder.record_response(%s, 'interested', 'yes, make me an offer')", (msg[p_yes],))
    w.cur.execute("SELECT crefinder.record_response(%s, 'not_interested')", (msg[p_no],))
    w.cur.execute("SELECT crefinder.record_response(%s, 'opt_out', 'stop')", (msg[p_stop],))
    w.cur.execute("UPDATE crefinder.property_records SET lead_status = 'converted' WHERE id = %s", (p_lead,))
    state = dict(((r["campaign_id"], r["property_id"]), (r["status"], r["stop_reason"])) for r in w.all(
        "SELECT campaign_id, property_id, status, stop_reason FROM crefinder.enrollments"))
    assert state[(camp, p_yes)] == ("nurture", None), state
    assert state[(other, p_yes)] == ("stopped", "positive_reply_elsewhere"), state
    assert state[(camp, p_no)] == ("stopped", "not_interested"), state
    assert state[(camp, p_stop)] == ("stopped", "opted_out"), state
    assert state[(camp, p_lead)] == ("stopped", "lead_converted"), state
    # two days on: only the nurtured owner is still walking, in the nurture sequence, 30 days later
    assert w.tick("2026-12-04 15:00+00") == 0
    assert w.tick("2027-01-05 15:00+00") == 1
    last = w.one("SELECT * FROM crefinder.outbound_events ORDER BY id DESC LIMIT 1")
    assert (last["property_id"], last["step"], last["payload"]["body"]) == (
        p_yes, 1000, "Still thinking about 12 Palm Ave?"), last
    assert w.value("SELECT status FROM crefinder.enrollments WHERE campaign_id = %s AND property_id = %s",
                   (camp, p_yes)) == "completed"


def test_pause_resume_cancel_and_overlapping_ticks(cluster):
    w = World(cluster, "pause")
    seq = three_steps(w)
    props = [w.property(owner_email="p%d@example.com" % i) for i in range(300)]
    camp = w.value("SELECT crefinder.create_campaign('pause', %s, %s, '{}', %s)", (seq, props, NOON_EAST))
    # two ticks at once: each step of each enrollment is one message
    results = []

    def run():
        conn = w.cluster.connect(dbname=TEST_DATABASE)
        with conn.cursor() as cur:
            cur.execute("SELECT crefinder.tick(%s)", (NOON_EAST,))
            results.append(cur.fetchone()[0])
        conn.close()
    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.tick(NOON_EAST)
    assert sum(results) == 300, results
    assert w.value("SELECT count(*) FROM crefinder.outbound_events") == 300
    assert w.value("SELECT crefinder.pause_campaign(%s)", (camp,)) is True
    assert w.value("SELECT count(*) FROM crefinder.outbound_events WHERE hold_reason = 'campaign_paused' "
                   "AND next_attempt_at = 'infinity'") == 300
    assert w.tick("2026-12-04 15:00+00") == 0
    # a failed step retried while the campaign is paused waits too
    failed = w.value("UPDATE crefinder.outbound_events SET status = 'failed', hold_reason = NULL, "
                     "last_error = 'twilio 500' WHERE id = (SELECT min(id) FROM crefinder.outbound_events) "
                     "RETURNING id")
    assert w.value("SELECT crefinder.retry(ARRAY[%s]::bigint[])", (failed,)) == 1
    assert w.value("SELECT hold_reason FROM crefinder.outbound_events WHERE id = %s", (failed,)) == "campaign_paused"
    assert w.value("SELECT crefinder.resume_campaign(%s)", (camp,)) is True
    assert w.value("SELECT count(*) FROM crefinder.outbound_events WHERE hold_reason IS NULL AND status = 'queued'") == 300
    # the held messages go out over the release window (60 minutes), not
    # in one burst at the resume
    spread = w.one("SELECT min(next_attempt_at - now()) AS first, max(next_attempt_at - now()) AS last, "
                   "count(DISTINCT date_trunc('minute', next_attempt_at)) AS minutes "
                   "FROM crefinder.outbound_events")
    assert spread["first"].total_seconds() >= 0 and spread["last"].total_seconds() < 3600, spread
    assert spread["last"].total_seconds() > 3000 and spread["minutes"] > 40, spread
    assert w.tick("2026-12-04 15:00+00") == 300
    assert w.value("SELECT crefinder.cancel_campaign(%s)", (camp,)) is True
    assert w.value("SELECT count(*) FROM crefinder.outbound_events WHERE status = 'cancelled'") == 600
    assert w.value("SELECT count(*) FROM crefinder.enrollments WHERE status = 'stopped' "
                   "AND stop_reason = 'campaign_cancelled'") == 300
    assert w.tick("2026-12-30 15:00+00") == 0
    # tenant B cannot touch it
    w.as_tenant(B)
    code, _, _ = w.error("SELECT crefinder.pause_campaign(%s)", (camp,))
    assert code == "22023"


def test_tenants_take_turns_when_more_is_due_than_a_tick_takes(cluster):
    w = World(cluster, "turns")
    w.as_tenant(A)
    seq_a = three_steps(w)
    big = [w.property() for _ in range(40)]
    w.value("SELECT crefinder.create_campaign('big', %s, %s, '{}', '2026-12-02 14:00+00')", (seq_a, big))
    w.as_tenant(B)
    seq_b = three_steps(w)
    small = [w.property() for _ in range(6)]
    w.value("SELECT crefinder.create_campaign('small', %s, %s, '{}', %s)", (seq_b, small, NOON_EAST))
    w.cur.execute("RESET crefinder.user_id")
    # A's 40 steps are older than B's 6: oldest first alone would give A
    # every one of the first two ticks
    assert w.value("SELECT crefinder.tick(%s, 10)", (NOON_EAST,)) == 10
    per_tenant = dict((r["user_id"], r["n"]) for r in w.all(
        "SELECT user_id::text, count(*) AS n FROM crefinder.outbound_events GROUP BY 1"))
    assert per_tenant == {A: 5, B: 5}, per_tenant
    assert w.value("SELECT crefinder.tick(%s, 10)", (NOON_EAST,)) == 10
    per_tenant = dict((r["user_id"], r["n"]) for r in w.all(
        "SELECT user_id::text, count(*) AS n FROM crefinder.outbound_events GROUP BY 1"))
    assert per_tenant == {A: 14, B: 6}, per_tenant
    # within a tenant, oldest first; and nothing is taken twice
    assert w.value("SELECT crefinder.tick(%s, 100)", (NOON_EAST,)) == 26
    assert w.value("SELECT count(*) FROM crefinder.outbound_events") == 46
    assert w.value("SELECT count(DISTINCT enrollment_id) FROM crefinder.outbound_events") == 46


def test_enqueue_trigger_and_send_many(cluster):
    w = World(cluster, "trigger")
    w.cur.execute("SELECT crefinder.save_template('welcome', 'sms', 'Hi {{first_name | there}}, about {{street}}')")
    w.cur.execute("CREATE TABLE leads (id serial, owner_name text, phone text, street text)")
    w.cur.execute("CREATE TABLE leads_one (id serial, owner_name text, phone text, street text)")
    w.cur.execute("CREATE TRIGGER text_leads AFTER INSERT ON leads REFERENCING NEW TABLE AS new_rows "
                  "FOR EACH STATEMENT EXECUTE FUNCTION crefinder.enqueue_trigger('sms', 'welcome')")
    w.cur.execute("CREATE TRIGGER text_lead AFTER INSERT ON leads_one "
                  "FOR EACH ROW EXECUTE FUNCTION crefinder.enqueue_trigger('sms', 'welcome', 'phone')")
    # one statement of many rows, one of them with a bad number: it is
    # blocked, the others queued (or held by the hour), nothing fails
    w.cur.execute("INSERT INTO leads (owner_name, phone, street) SELECT 'DOE JANE', '+1305555' || lpad(g::text, 4, '0'), "
                  "'Elm St' FROM generate_series(1, 500) g")
    w.cur.execute("INSERT INTO leads (owner_name, phone, street) VALUES ('X', 'not a phone', 'Oak St')")
    rows = w.all("SELECT status, block_reason, count(*) AS n FROM crefinder.outbound_events GROUP BY 1, 2 ORDER BY 1, 2")
    by = dict(((r["status"], r["block_reason"]), r["n"]) for r in rows)
    assert by.get(("blocked", "invalid_contact")) == 1, rows
    assert by.get(("queued", None), 0) == 500, rows
    assert w.value("SELECT payload ->> 'body' FROM crefinder.outbound_events ORDER BY id LIMIT 1") == \
        "Hi Jane, about Elm St"
    # the row form
    w.cur.execute("INSERT INTO leads_one (owner_name, phone, street) VALUES ('Al Roe', '+13055550999', 'Bay Rd')")
    last = w.one("SELECT * FROM crefinder.outbound_events ORDER BY id DESC LIMIT 1")
    assert last["payload"].get("body") == "Hi Al, about Bay Rd", last
    # a rollback sends nothing
    before = w.value("SELECT count(*) FROM crefinder.outbound_events")
    w.conn.autocommit = False
    w.cur.execute("INSERT INTO leads (owner_name, phone, street) VALUES ('Z', '+13055550998', 'Q St')")
    w.conn.rollback()
    w.conn.autocommit = True
    w.as_tenant(A)
    assert w.value("SELECT count(*) FROM crefinder.outbound_events") == before
    # opted-out numbers are blocked, not queued
    w.cur.execute("SELECT crefinder.opt_out('sms', '+13055550997')")
    w.cur.execute("INSERT INTO leads (owner_name, phone, street) VALUES ('Y', '+13055550997', 'R St')")
    assert w.value("SELECT block_reason FROM crefinder.outbound_events ORDER BY id DESC LIMIT 1") == "opted_out"
    # a template naming a field the rows lack is refused as a whole
    w.cur.execute("SELECT crefinder.save_template('typo', 'sms', 'Hi {{frist}}')")
    code, msg, _ = w.error("SELECT crefinder.send_many('sms', '[{\"phone\": \"+13055550996\"}]', 'typo')")
    assert code == "22023" and "frist" in msg, msg
    # a statement trigger without the transition table says what to write
    w.cur.execute("CREATE TABLE leads_bad (phone text)")
    w.cur.execute("CREATE TRIGGER t AFTER INSERT ON leads_bad FOR EACH STATEMENT "
                  "EXECUTE FUNCTION crefinder.enqueue_trigger('sms', 'welcome')")
    code, msg, _ = w.error("INSERT INTO leads_bad VALUES ('+13055550995')")
    assert code == "22023" and "new_rows" in msg, msg
    # send_many for applications
    n = w.value("SELECT crefinder.send_many('sms', %s, 'welcome')",
                (json.dumps([{"phone": "+13055550990", "street": "A St", "owner_name": "Kim Lee"},
                             {"phone": "", "street": "B St"}, 7]),))
    assert n == 3
    got = w.all("SELECT status, block_reason, payload ->> 'body' AS body FROM crefinder.outbound_events "
                "ORDER BY id DESC LIMIT 3")
    assert [g["block_reason"] for g in got] == ["invalid_contact", "invalid_contact", None], got
    assert got[2]["body"] == "Hi Kim, about A St", got


def test_preview_campaign(cluster):
    w = World(cluster, "preview")
    seq = three_steps(w)
    props = [w.property(owner_email="v%d@example.com" % i, owner_phone="+1305555%04d" % i) for i in range(10)]
    props.append(w.property(owner_phone=None, owner_email=None))
    w.cur.execute("SELECT crefinder.dnc_add('+13055550003')")
    w.cur.execute("SELECT crefinder.opt_out('email', 'v4@example.com')")
    camp = w.value("SELECT crefinder.create_campaign('preview', %s, %s, '{}', %s)", (seq, props, NOON_EAST))
    rows = w.all("SELECT * FROM crefinder.preview_campaign(%s, %s)", (camp, NOON_EAST))
    assert [r["channel"] for r in rows] == ["sms", "email", "voice"], rows
    sms, email, voice = rows
    assert (sms["enrollments"], sms["send"], sms["blocked"], sms["skipped"]) == (
        11, 9, {"dnc": 1}, {"no_contact": 1}), sms
    assert sms["sms_segments"] == 9 and float(sms["estimated_cost_cents"]) == round(9 * 0.83, 2), sms
    assert (email["send"], email["skipped"]) == (9, {"no_contact": 2}), email
    # at 07:00 in Miami the texts would be held, not sent
    early = w.all("SELECT * FROM crefinder.preview_campaign(%s, '2026-12-02 12:00+00')", (camp,))[0]
    assert (early["send"], early["held"]) == (0, 9), early
    # the preview changed nothing
    assert w.value("SELECT count(*) FROM crefinder.outbound_events") == 0


def test_failures_caps_and_locks(cluster):
    w = World(cluster, "failures")
    w.cur.execute("SELECT crefinder.set_tenant_settings('{\"max_attempts_per_property\": 2}')")
    seq = w.value("SELECT crefinder.create_sequence('four texts', %s, '{\"pitch\": \"an offer\"}')", (json.dumps([
        {"channel": "sms", "body": "Hi {{first_name}}, {{pitch}}. {{pitch}}?"},
        {"channel": "sms", "delay": "1 day", "body": "Again: {{pitch}}"},
        {"channel": "sms", "delay": "1 day", "body": "Third"},
        {"channel": "sms", "delay": "1 day", "body": "Fourth"}]),))
    short = w.value("SELECT crefinder.create_sequence('one then stop', %s)", (json.dumps([
        {"channel": "sms", "body": "Only once", "on_no_response": "stop"},
        {"channel": "sms", "delay": "1 day", "body": "never sent"}]),))
    failing = w.property(owner_phone="+13055550201")
    w.cur.execute("INSERT INTO crefinder.property_contacts (property_id, kind, value, rank) "
                  "VALUES (%s, 'phone', '+13055550202', 3)", (failing,))
    capped = w.property(owner_phone="+13055550203")
    locked = w.property(owner_phone="+13055550204")
    huge = w.property(owner_phone="+13055550205")
    once = w.property(owner_phone="+13055550206")
    camp = w.value("SELECT crefinder.create_campaign('caps', %s, %s, '{}', %s)",
                   (seq, [failing, capped, locked], NOON_EAST))
    code, _, detail = w.error("SELECT crefinder.create_campaign('big', %s, %s, %s)",
                              (seq, [huge], json.dumps({"pitch": "x" * 1001})))
    assert code == "22023" and "more than 1000 characters" in detail, detail
    big = w.value("SELECT crefinder.create_campaign('big', %s, %s, %s, %s)",
                  (seq, [huge], json.dumps({"pitch": "€" * 900}), NOON_EAST))
    w.value("SELECT crefinder.create_campaign('once', %s, %s, '{}', %s)", (short, [once], NOON_EAST))
    # a tenant holding its own property row delays that enrollment only
    other = w.cluster.connect(dbname=TEST_DATABASE, autocommit=False)
    with other.cursor() as cur:
        cur.execute("SET crefinder.user_id = %s", (A,))
        cur.execute("SELECT 1 FROM crefinder.property_records WHERE id = %s FOR UPDATE", (locked,))
        assert w.tick(NOON_EAST) == 4
    other.rollback()
    other.close()
    assert w.value("SELECT count(*) FROM crefinder.outbound_events WHERE property_id = %s", (locked,)) == 0
    assert w.tick(NOON_EAST) == 1
    # a text longer than 1600 characters once rendered is blocked, not sent
    assert w.value("SELECT block_reason FROM crefinder.outbound_events WHERE campaign_id = %s", (big,)) == \
        "invalid_content"
    # on_no_response stop: the enrollment ends after its step
    assert w.value("SELECT status FROM crefinder.enrollments WHERE property_id = %s", (once,)) == "completed"
    # a permanent failure (30005, unknown number) moves the next step to the next phone
    w.cur.execute("UPDATE crefinder.outbound_events SET status = 'failed', last_error = "
                  "'twilio undelivered 30005: unknown destination handset' WHERE property_id = %s", (failing,))
    w.tick("2026-12-03 15:00+00")
    assert w.value("SELECT status FROM crefinder.property_contacts WHERE value = '+13055550201'") == "undeliverable"
    assert w.value("SELECT to_contact FROM crefinder.outbound_events WHERE property_id = %s AND step = 1",
                   (failing,)) == "+13055550202"
    # the cap: two messages per enrollment, then it stops
    e = w.one("SELECT status, stop_reason, attempts FROM crefinder.enrollments WHERE property_id = %s", (capped,))
    assert (e["status"], e["stop_reason"], e["attempts"]) == ("stopped", "attempt_cap", 2), e
    assert w.tick("2026-12-04 15:00+00") <= 1
    assert w.value("SELECT count(*) FROM crefinder.outbound_events WHERE property_id = %s", (capped,)) == 2
    # a tenant closing a lead (its own UPDATE) stops the enrollment
    closing = w.property(owner_phone="+13055550207")
    w.value("SELECT crefinder.create_campaign('closing', %s, %s, '{}', %s)", (seq, [closing], NOON_EAST))
    w.cur.execute("CREATE ROLE campaign_app")
    w.cur.execute("SELECT crefinder.grant_access('campaign_app')")
    w.cur.execute("SET ROLE campaign_app")
    w.cur.execute("UPDATE crefinder.property_records SET lead_status = 'converted' WHERE id = %s", (closing,))
    w.cur.execute("RESET ROLE")
    assert w.value("SELECT stop_reason FROM crefinder.enrollments WHERE property_id = %s", (closing,)) == \
        "lead_converted"
    w.cur.execute("DROP OWNED BY campaign_app")
    w.cur.execute("DROP ROLE campaign_app")


def test_one_owner_in_two_campaigns_shares_the_caps(cluster):
    w = World(cluster, "twocampaigns")
    w.cur.execute("SELECT crefinder.set_tenant_settings('{\"max_messages_per_24h\": 1}')")
    seq = w.value("SELECT crefinder.create_sequence('one text', %s)",
                  (json.dumps([{"channel": "sms", "body": "Hi {{first_name}}"}]),))
    first, second = w.property(owner_phone="+13055550301"), w.property(owner_phone="+13055550301")
    w.value("SELECT crefinder.create_campaign('one', %s, %s, '{}', %s)", (seq, [first], NOON_EAST))
    w.value("SELECT crefinder.create_campaign('two', %s, %s, '{}', %s)", (seq, [first, second], NOON_EAST))
    # three enrollments reach one number: one text now, the others at the
    # next ticks, each decided with the texts before it counted
    assert w.tick(NOON_EAST) == 1
    assert w.tick("2026-12-02 15:01+00") == 1
    assert w.tick("2026-12-02 15:02+00") == 1
    rows = w.all("SELECT status, hold_reason, next_attempt_at FROM crefinder.outbound_events ORDER BY id")
    assert [(r["status"], r["hold_reason"]) for r in rows] == [
        ("queued", None), ("queued", "frequency_cap"), ("queued", "frequency_cap")], rows
    assert all(str(r["next_attempt_at"]) >= "2026-12-03 15:00" for r in rows[1:]), rows


def test_a_hostile_tenant_cannot_stop_or_stall_tick(cluster):
    """What an outside review found: each of these once stopped or held
    up every tenant's campaigns."""
    w = World(cluster, "hostile")
    seq = w.value("SELECT crefinder.create_sequence('s', %s)", (json.dumps([
        {"channel": "sms", "body": "Hi {{first_name}}", "holdout": 1e-300},
        {"channel": "sms", "delay": "1 day", "body": "again"}]),))
    props = [w.property() for _ in range(3)]
    camp = w.value("SELECT crefinder.create_campaign('c', %s, %s, '{}', %s)", (seq, props, NOON_EAST))
    # 1. the advisory lock tick once used is anyone's to take
    hostile = w.cluster.connect(dbname=TEST_DATABASE, autocommit=False)
    hcur = hostile.cursor()
    hcur.execute("SELECT pg_advisory_lock(1667592814, 1)")
    # 2. and a tenant holding its own campaign row (add_to_campaign locks it)
    hcur.execute("SET crefinder.user_id = %s", (A,))
    hcur.execute("SELECT crefinder.add_to_campaign(%s, '{}')", (camp,))
    assert w.tick(NOON_EAST) == 3
    hostile.rollback()
    hostile.close()
    # 3. one owner with many properties does not hold back the queue:
    # one step per tick for that number, the others go on
    same = [w.property(owner_phone="+13055550401") for _ in range(30)]
    other = w.property()
    w.value("SELECT crefinder.create_campaign('same owner', %s, %s, '{}', '2026-12-01 15:00+00')",
            (seq, same + [other]))
    assert w.tick(NOON_EAST) == 2
    assert w.value("SELECT count(*) FROM crefinder.enrollments WHERE property_id = ANY (%s) "
                   "AND next_step_at = '2026-12-02 15:01+00'", (same,)) == 29
    assert w.tick("2026-12-02 15:01+00") == 1
    # 4. a render over its limit gives NULL, not an error
    assert w.value("SELECT crefinder.render(repeat('{{a}}', 100), '{\"a\": \"abcdefghij\"}', false, 500)") is None
    assert w.value("SELECT length(crefinder.render(repeat('{{a|', 100000), '{}'))") == 400000
    # 5. send_many: the same number twice in one call, the second blocked
    w.cur.execute("SELECT crefinder.save_template('t', 'sms', 'Hello')")
    w.cur.execute("SELECT crefinder.send_many('sms', '[{\"phone\": \"+13055550402\"}, {\"phone\": \"(305) 555-0402\"}]', 't')")
    assert [r["block_reason"] for r in w.all(
        "SELECT block_reason FROM crefinder.outbound_events WHERE to_contact = '+13055550402' ORDER BY id")] == \
        [None, "duplicate"]
    # 6. closing a lead whose enrollment completed cancels its queued text
    last = w.property()
    one = w.value("SELECT crefinder.create_sequence('one', %s)",
                  (json.dumps([{"channel": "sms", "body": "only"}]),))
    w.value("SELECT crefinder.create_campaign('one', %s, %s, '{}', %s)", (one, [last], NOON_EAST))
    w.tick("2026-12-02 15:02+00")
    queued = w.one("SELECT id, status FROM crefinder.outbound_events WHERE property_id = %s", (last,))
    assert queued["status"] == "queued"
    w.cur.execute("UPDATE crefinder.property_records SET lead_status = 'do_not_contact' WHERE id = %s", (last,))
    assert w.value("SELECT status FROM crefinder.outbound_events WHERE id = %s", (queued["id"],)) == "cancelled"
    # and a closed lead is not enrolled again
    w.value("SELECT crefinder.add_to_campaign(%s, %s)", (camp, [last]))
    assert w.value("SELECT count(*) FROM crefinder.enrollments WHERE campaign_id = %s AND property_id = %s",
                   (camp, last)) == 0


def test_a_positive_reply_in_nurture_follows_the_nurture_step(cluster):
    w = World(cluster, "nurture2")
    nurture = w.value("SELECT crefinder.create_sequence('n', %s)", (json.dumps([
        {"channel": "sms", "body": "nurture one"}, {"channel": "sms", "delay": "7 days", "body": "nurture two"}]),))
    seq = w.value("SELECT crefinder.create_sequence('m', %s)", (json.dumps([
        {"channel": "sms", "body": "hi", "on_positive": "nurture:%d" % nurture}]),))
    prop = w.property()
    w.value("SELECT crefinder.create_campaign('c', %s, %s, '{}', %s)", (seq, [prop], NOON_EAST))
    w.tick(NOON_EAST)
    first = w.value("SELECT id FROM crefinder.outbound_events WHERE property_id = %s", (prop,))
    w.cur.execute("SELECT crefinder.record_response(%s, 'interested')", (first,))
    w.cur.execute("UPDATE crefinder.enrollments SET next_step_at = %s WHERE property_id = %s", (NOON_EAST, prop))
    w.tick(NOON_EAST)
    nurtured = w.value("SELECT id FROM crefinder.outbound_events WHERE property_id = %s AND step = 1000", (prop,))
    w.cur.execute("SELECT crefinder.record_response(%s, 'callback_later')", (nurtured,))
    e = w.one("SELECT status, stop_reason FROM crefinder.enrollments WHERE property_id = %s", (prop,))
    assert (e["status"], e["stop_reason"]) == ("stopped", "positive_reply"), e


def test_guardrails_pause_a_channel_and_resume_lifts_it(cluster):
    w = World(cluster, "guardrails")
    seq = w.value("SELECT crefinder.create_sequence('two texts', %s)", (json.dumps([
        {"channel": "sms", "body": "Hi {{first_name | there}}"},
        {"channel": "sms", "delay": "1 day", "body": "Following up"}]),))
    camps = {}
    for name, n in (("loud", 250), ("quiet", 250), ("small", 150)):
        props = [w.property() for _ in range(n)]
        camps[name] = w.value("SELECT crefinder.create_campaign(%s, %s, %s, '{}', %s)", (name, seq, props, NOON_EAST))
    listener = w.cluster.connect(dbname=TEST_DATABASE)
    listener.autocommit = True
    listener.cursor().execute("LISTEN crefinder_alerts")
    assert w.tick(NOON_EAST) == 650
    w.cur.execute("RESET crefinder.user_id")
    # the provider took them all and delivered them; then opt-outs: 8 of
    # 250 delivered (3.2%) in "loud", 7 (2.8%) in "quiet", 20 of 150 in
    # "small" (too few sends to judge)
    w.cur.execute("UPDATE crefinder.outbound_events SET status = 'delivered', sent_at = now(), delivered_at = now()")
    for name, k in (("loud", 8), ("quiet", 7), ("small", 20)):
        w.cur.execute("UPDATE crefinder.outbound_events SET opted_out_at = now() WHERE id IN "
                      "(SELECT id FROM crefinder.outbound_events WHERE campaign_id = %s ORDER BY id LIMIT %s)",
                      (camps[name], k))
    # a queued message of "loud" still waiting (a retry, say)
    held = w.value("INSERT INTO crefinder.outbound_events (user_id, channel, to_contact, campaign_id, status) "
                   "VALUES (%s, 'sms', '+13055559999', %s, 'queued') RETURNING id", (A, camps["loud"]))
    w.as_tenant(A)
    rates = dict((r["campaign_id"], r) for r in w.all("SELECT * FROM crefinder.campaign_guardrails"))
    assert float(rates[camps["loud"]]["opt_out_rate"]) == 3.2 and rates[camps["loud"]]["opt_out_tripped"]
    assert not rates[camps["quiet"]]["opt_out_tripped"] and not rates[camps["small"]]["opt_out_tripped"]
    # the next minute's tick folds the counts and trips the guardrail
    assert w.tick("2026-12-02 15:01+00") == 0
    alerts = w.all("SELECT campaign_id, channel, kind, rate, threshold, sends FROM crefinder.alerts")
    assert [(a["campaign_id"], a["channel"], a["kind"], float(a["rate"]), float(a["threshold"]), a["sends"])
            for a in alerts] == [(camps["loud"], "sms", "opt_out_rate", 3.2, 3.0, 250)], alerts
    listener.poll()
    notes = [json.loads(n.payload) for n in listener.notifies]
    assert len(notes) == 1 and notes[0]["campaign_id"] == camps["loud"] and notes[0]["action"] == "paused", notes
    assert notes[0]["kind"] == "opt_out_rate" and notes[0]["tenant"] == A
    assert w.one("SELECT status, hold_reason, next_attempt_at = 'infinity' AS waits FROM crefinder.outbound_events "
                 "WHERE id = %s", (held,)) == {"status": "queued", "hold_reason": "guardrail", "waits": True}
    # the second step: "loud" waits (paused), the others go on
    assert w.tick("2026-12-03 15:01+00") == 400
    by_campaign = dict((r["campaign_id"], r) for r in w.all(
        "SELECT campaign_id, count(*) FILTER (WHERE status = 'paused') AS paused, "
        "count(*) FILTER (WHERE current_step = 1) AS first_step_done FROM crefinder.enrollments GROUP BY 1"))
    assert by_campaign[camps["loud"]]["paused"] == 250 and by_campaign[camps["quiet"]]["paused"] == 0
    assert w.value("SELECT count(*) FROM crefinder.outbound_events WHERE campaign_id = %s AND step = 1",
                   (camps["loud"],)) == 0
    # the tenant resumes: the channel goes on, the held message is released
    assert w.value("SELECT crefinder.resume_campaign(%s)", (camps["loud"],)) is True
    assert w.value("SELECT crefinder.resume_campaign(%s)", (camps["loud"],)) is False
    assert w.value("SELECT count(*) FROM crefinder.channel_pauses") == 0
    assert w.one("SELECT hold_reason, next_attempt_at < now() + interval '61 minutes' AS soon "
                 "FROM crefinder.outbound_events WHERE id = %s", (held,)) == {"hold_reason": None, "soon": True}
    assert w.tick("2026-12-03 15:02+00") == 250
    # resumed, the channel is judged by what comes after: the old opt-outs
    # do not pause it again ...
    w.cur.execute("RESET crefinder.user_id")
    w.cur.execute("UPDATE crefinder.outbound_events SET status = 'delivered', sent_at = now(), delivered_at = now() "
                  "WHERE campaign_id = %s AND step = 1", (camps["loud"],))
    w.tick("2026-12-03 15:03+00")
    w.as_tenant(A)
    assert w.value("SELECT count(*) FROM crefinder.alerts") == 1
    assert w.value("SELECT count(*) FROM crefinder.channel_pauses") == 0
    # ... new ones do
    w.cur.execute("RESET crefinder.user_id")
    w.cur.execute("UPDATE crefinder.outbound_events SET opted_out_at = now() WHERE id IN "
                  "(SELECT id FROM crefinder.outbound_events WHERE campaign_id = %s AND step = 1 ORDER BY id LIMIT 9)",
                  (camps["loud"],))
    w.tick("2026-12-03 15:04+00")
    w.as_tenant(A)
    assert w.value("SELECT count(*) FROM crefinder.alerts") == 2
    assert w.value("SELECT count(*) FROM crefinder.channel_pauses WHERE campaign_id = %s", (camps["loud"],)) == 1
    # tenant B cannot resume it
    w.as_tenant(B)
    code, _, _ = w.error("SELECT crefinder.resume_campaign(%s)", (camps["loud"],))
    assert code == "22023"
    listener.close()
