"""Guardrails per sending number: a number carriers filter is paused
across every campaign and direct send of the tenant (an alert row, NOTIFY
crefinder_alerts with the number, the channel's queued messages held),
not below the threshold, not for another number or channel; the
dispatcher holds what is queued later by any path; resume_sender() lifts
it and the number is judged again from then on."""
import json
import select
import time

import test_dispatcher as td
from cluster import TEST_DATABASE
from test_campaigns import A, B, World

BAD, GOOD = "+13055550100", "+13055550111"
FILTERED = "twilio undelivered 30007: message filtered by the carrier"


def sent_texts(w, tenant, sender, n, filtered, channel="sms", days_ago=0):
    """n texts sent days_ago from sender, filtered of them failed with 30007."""
    w.cur.execute(
        "INSERT INTO crefinder.outbound_events (user_id, channel, to_contact, status, sender, sent_at, "
        "  delivered_at, last_error) "
        "SELECT %s, %s, '+1212555' || lpad(g::text, 4, '0'), CASE WHEN g <= %s THEN 'failed' ELSE 'delivered' END, "
        "  %s, now() - make_interval(days => %s), CASE WHEN g > %s THEN now() END, CASE WHEN g <= %s THEN %s END "
        "FROM generate_series(1, %s) AS g",
        (tenant, channel, filtered, sender, days_ago, filtered, filtered, FILTERED, n))


def queued(w, tenant, channel="sms", to="+13055559999"):
    return w.value("INSERT INTO crefinder.outbound_events (user_id, channel, to_contact, status) "
                   "VALUES (%s, %s, %s, 'queued') RETURNING id", (tenant, channel, to))


def test_a_filtered_number_pauses_and_resume_sender_lifts_it(cluster):
    w = World(cluster, "senders")
    w.cur.execute("RESET crefinder.user_id")
    listener = w.cluster.connect(dbname=TEST_DATABASE)
    listener.autocommit = True
    listener.cursor().execute("LISTEN crefinder_alerts")
    # 6 of 250 filtered (2.4%) from BAD; 4 of 250 (1.6%) from GOOD; B's
    # number as bad as A's but too few sends (150)
    sent_texts(w, A, BAD, 250, 6)
    sent_texts(w, A, GOOD, 150, 4)
    sent_texts(w, A, GOOD, 100, 0, days_ago=6)       # inside the 7 days
    sent_texts(w, A, GOOD, 300, 60, days_ago=7)      # outside: 64 of 550 would trip it
    sent_texts(w, B, BAD, 150, 10)
    held_sms = queued(w, A)
    # a text scheduled a week ahead keeps its time: held when it falls due
    scheduled = w.value("INSERT INTO crefinder.outbound_events (user_id, channel, to_contact, status, hold_reason, "
                        "next_attempt_at) VALUES (%s, 'sms', '+13055559998', 'queued', 'scheduled', "
                        "now() + interval '7 days') RETURNING id", (A,))
    other_channel = queued(w, A, "whatsapp")
    other_tenant = queued(w, B)
    # as the tenant's role sees them: row-level security keeps B's number out
    w.cur.execute("DROP ROLE IF EXISTS sender_reader")
    w.cur.execute("CREATE ROLE sender_reader")
    w.cur.execute("SELECT crefinder.grant_access('sender_reader')")
    w.cur.execute("SET ROLE sender_reader")
    w.as_tenant(A)
    rates = {r["sender"]: r for r in w.all("SELECT * FROM crefinder.sender_guardrails WHERE channel = 'sms'")}
    w.cur.execute("RESET ROLE")
    assert set(rates) == {BAD, GOOD} and {r["user_id"] for r in rates.values()} == {A}
    assert float(rates[BAD]["filtered_rate"]) == 2.4 and rates[BAD]["filtered_tripped"]
    assert rates[GOOD]["sent"] == 250 and float(rates[GOOD]["filtered_rate"]) == 1.6
    assert not rates[GOOD]["filtered_tripped"]
    w.cur.execute("RESET crefinder.user_id")
    assert w.value("SELECT crefinder.fold_rollups()") > 0
    alerts = w.all("SELECT user_id::text, campaign_id, channel, sender, kind, rate, sends FROM crefinder.alerts")
    assert [(a["user_id"], a["campaign_id"], a["channel"], a["sender"], a["kind"], float(a["rate"]), a["sends"])
            for a in alerts] == [(A, None, "sms", BAD, "filtered_rate", 2.4, 250)], alerts
    # (a notification comes once the fold has committed: wait for it)
    deadline = time.time() + 10
    while not listener.notifies and time.time() < deadline:
        select.select([listener], [], [], 0.5)
        listener.poll()
    notes = [json.loads(n.payload) for n in listener.notifies]
    assert len(notes) == 1 and notes[0]["sender"] == BAD and notes[0]["action"] == "paused", notes
    waits = "SELECT hold_reason, next_attempt_at = 'infinity' AS waits FROM crefinder.outbound_events WHERE id = %s"
    assert w.one(waits, (held_sms,)) == {"hold_reason": "sender_paused", "waits": True}
    assert w.one(waits, (other_channel,))["hold_reason"] is None
    assert w.one(waits, (scheduled,)) == {"hold_reason": "scheduled", "waits": False}
    assert w.one(waits, (other_tenant,))["hold_reason"] is None

    # a text queued afterwards, by any path: held when the dispatcher would take it
    later = queued(w, A)
    assert w.value("SELECT crefinder.hold_for_paused_senders()") == 1
    assert w.one(waits, (later,)) == {"hold_reason": "sender_paused", "waits": True}
    # folding again pauses nothing more
    sent_texts(w, A, BAD, 10, 1)
    w.value("SELECT crefinder.fold_rollups()")
    assert w.value("SELECT count(*) FROM crefinder.alerts") == 1

    # the tenant resumes the number: held texts go out spread, the same
    # filtering does not pause it again, new filtering does
    w.as_tenant(B)
    assert w.value("SELECT crefinder.resume_sender('sms', %s)", (BAD,)) is False   # not B's pause
    w.as_tenant(A)
    assert w.value("SELECT crefinder.resume_sender('sms', %s)", (BAD,)) is True
    assert w.value("SELECT crefinder.resume_sender('sms', %s)", (BAD,)) is False
    soon = ("SELECT hold_reason, next_attempt_at < now() + interval '61 minutes' AS soon "
            "FROM crefinder.outbound_events WHERE id = %s")
    assert w.one(soon, (held_sms,)) == {"hold_reason": None, "soon": True}
    assert w.one(soon, (later,)) == {"hold_reason": None, "soon": True}
    assert w.one(soon, (scheduled,)) == {"hold_reason": "scheduled", "soon": False}
    w.cur.execute("RESET crefinder.user_id")
    # the day's 7 filtered of 260 (2.7%) would trip it again without the baseline
    sent_texts(w, A, BAD, 10, 0)
    w.value("SELECT crefinder.fold_rollups()")
    assert w.value("SELECT count(*) FROM crefinder.sender_pauses") == 0
    sent_texts(w, A, BAD, 250, 2)         # 2 of 260 since the resume: under 1%
    w.value("SELECT crefinder.fold_rollups()")
    assert w.value("SELECT count(*) FROM crefinder.sender_pauses") == 0
    sent_texts(w, A, BAD, 150, 9)         # 11 of 410 since the resume: 2.7%
    w.value("SELECT crefinder.fold_rollups()")
    assert w.value("SELECT count(*) FROM crefinder.sender_pauses WHERE sender = %s", (BAD,)) == 1
    assert w.value("SELECT count(*) FROM crefinder.alerts") == 2
    w.cur.execute("SELECT crefinder.revoke_access('sender_reader')")
    w.cur.execute("DROP ROLE sender_reader")
    # a message left held for a number no longer paused (a resume beside a
    # hold) goes on at the next tick
    w.cur.execute("RESET ROLE")
    stranded = w.value("INSERT INTO crefinder.outbound_events (user_id, channel, to_contact, status, hold_reason, "
                       "next_attempt_at) VALUES (%s, 'whatsapp', '+13055559997', 'queued', 'sender_paused', "
                       "'infinity') RETURNING id", (A,))
    assert w.value("SELECT crefinder.release_unpaused_senders()") == 1
    assert w.one(soon, (stranded,)) == {"hold_reason": None, "soon": True}
    # the rollups keep the number: a rebuild agrees
    before = w.all("SELECT user_id, channel, sender, sum(sent) AS sent, sum(filtered) AS filtered "
                   "FROM crefinder.rollups GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    w.value("SELECT crefinder.rebuild_rollups()")
    assert w.all("SELECT user_id, channel, sender, sum(sent) AS sent, sum(filtered) AS filtered "
                 "FROM crefinder.rollups GROUP BY 1, 2, 3 ORDER BY 1, 2, 3") == before
    listener.close()


def test_the_dispatcher_sends_nothing_from_a_paused_number(cluster):
    s = td.Setup(cluster)
    try:
        s.cur.execute("DELETE FROM crefinder.sender_pauses")
        s.cur.execute("INSERT INTO crefinder.alerts (user_id, channel, sender, kind, rate, threshold, sends, detail) "
                      "VALUES (%s, 'sms', '+13055550100', 'filtered_rate', 5, 2, 300, '{}') RETURNING id",
                      (td.TENANT,))
        alert = s.cur.fetchone()[0]
        s.cur.execute("INSERT INTO crefinder.sender_pauses (user_id, channel, sender, alert_id) "
                      "VALUES (%s, 'sms', '+13055550100', %s)", (td.TENANT, alert))
        s.cur.execute("SET crefinder.user_id = %s", (td.TENANT,))
        s.cur.execute("SELECT crefinder.send_sms('+12125550141', 'Hi')")
        text = s.cur.fetchone()[0]
        s.cur.execute("SELECT crefinder.send_whatsapp('+12125550142', 'Hola')")
        whatsapp = s.cur.fetchone()[0]
        assert s.wait_status(whatsapp, ("sent",)) == "sent"
        deadline = time.time() + 5
        while time.time() < deadline:
            s.cur.execute("SELECT status, hold_reason FROM crefinder.outbound_events WHERE id = %s", (text,))
            row = s.cur.fetchone()
            if row[1] == "sender_paused":
                break
            time.sleep(0.1)
        assert row == ("queued", "sender_paused"), row
        assert not [r for r in s.requests_to("/Messages.json") if "12125550141" in r["body"]]
        s.cur.execute("SELECT crefinder.resume_sender('sms', '+13055550100')")
        assert s.cur.fetchone()[0] is True
        s.cur.execute("RESET crefinder.user_id")
        s.cur.execute("UPDATE crefinder.outbound_events SET next_attempt_at = now() WHERE id = %s", (text,))
        s.cur.execute("SELECT crefinder.wake_dispatcher_on_commit()")
        assert s.wait_status(text, ("sent",)) == "sent"
    finally:
        s.cur.execute("RESET crefinder.user_id")
        s.cur.execute("DELETE FROM crefinder.sender_pauses")
        s.close()

