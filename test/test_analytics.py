"""Analytics: the rollups behind the views equal what rebuild_rollups()
computes from the outbox after a randomised workload of inserts, state
changes, retries, late and repeated events and deletions, from concurrent
writers; and each view equals a computation from the raw rows made here,
in Python, independently of crefinder's SQL.

The dispatcher is off: the workload writes the outbox the way every code
path does (statements of many rows), and the trigger sees them all alike.
"""
import datetime
import decimal
import json
import random
import threading
import zoneinfo

import psycopg2.extras

from cluster import TEST_DATABASE

A = "aaaaaaaa-3333-4333-8333-aaaaaaaaaaaa"
B = "bbbbbbbb-4444-4444-8444-bbbbbbbbbbbb"
CHANNELS = ("sms", "whatsapp", "email", "voice")
ROLLUP_COLUMNS = ("messages", "sent", "delivered", "opened", "clicked", "responded", "failed", "blocked",
                  "skipped", "priced", "opted_out", "complained", "filtered", "cost_cents")


def connect(cluster):
    conn = cluster.connect(dbname=TEST_DATABASE)
    return conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)


def setup(cluster):
    admin = cluster.connect(dbname="postgres")
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DATABASE,))
        if cur.fetchone() is None:
            cur.execute("CREATE DATABASE %s" % TEST_DATABASE)
        cur.execute("ALTER SYSTEM SET crefinder.dispatcher_enabled = off")
        cur.execute("SELECT pg_reload_conf()")
    admin.close()
    conn, cur = connect(cluster)
    cur.execute("DROP EXTENSION IF EXISTS crefinder CASCADE")
    cur.execute("CREATE EXTENSION crefinder")
    campaigns = {}
    for tenant in (A, B):
        cur.execute("SET crefinder.user_id = %s", (tenant,))
        cur.execute("SELECT crefinder.configure('twilio', %s)",
                    (json.dumps({"accountSid": "AC" + "a3" * 16, "authToken": "0123456789abcdef" * 2,
                                 "phoneNumber": "+13055550100"}),))
        cur.execute("SELECT crefinder.create_sequence('one', %s)",
                    (json.dumps([{"channel": "sms", "body": "Hi {{first_name | there}}"}]),))
        seq = list(cur.fetchone().values())[0]
        campaigns[tenant] = []
        for k in range(3):
            props = []
            for j in range(4):
                cur.execute("INSERT INTO crefinder.property_records (owner_name, owner_phone, property_zip) "
                            "VALUES ('DOE JANE', '+1305555%04d', %s) RETURNING id"
                            % (100 * k + j + 1000 * (tenant == B), ("'33101'", "'90001'", "'60601'", "NULL")[j]))
                props.append(cur.fetchone()["id"])
            cur.execute("SELECT crefinder.create_campaign(%s, %s, %s, '{}', '2030-01-01')",
                        ("c%d" % k, seq, props))
            campaigns[tenant].append(list(cur.fetchone().values())[0])
            PROPERTIES[campaigns[tenant][-1]] = props
    cur.execute("RESET crefinder.user_id")
    return conn, cur, campaigns


PROPERTIES = {}     # campaign -> its properties


def random_workload(cluster, campaigns, seed, rounds):
    """One writer's statements: batches of inserts, then updates that move
    messages forward (sent, delivered, opened, clicked, responded, priced),
    back to queued (a retry), to failed or blocked, events that come again
    or late, and deletions."""
    rng = random.Random(seed)
    conn, cur = connect(cluster)
    now = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    mine = []
    for _ in range(rounds):
        n = rng.randint(1, 40)
        rows = []
        for _ in range(n):
            tenant = rng.choice((A, B))
            campaign = rng.choice(campaigns[tenant] + [None])
            channel = rng.choice(CHANNELS)
            created = now - datetime.timedelta(days=rng.randint(0, 45), minutes=rng.randint(0, 1440))
            rows.append((tenant, channel, "+1305555%04d" % rng.randint(0, 30), campaign,
                         rng.choice((0, 1, None)) if campaign else None,
                         rng.choice(("A", "B", "holdout")) if campaign else None,
                         rng.choice(("queued", "queued", "blocked", "skipped")), created,
                         rng.choice(PROPERTIES[campaign] + [None]) if campaign else None))
        cur.execute("INSERT INTO crefinder.outbound_events (user_id, channel, to_contact, campaign_id, step, "
                    "variant, status, block_reason, created_at, property_id) "
                    "SELECT u, ch, c, camp, st, v, s, CASE WHEN s IN ('blocked', 'skipped') THEN 'dnc' END, t, p "
                    "FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::bigint[], %s::int[], %s::text[], "
                    "            %s::text[], %s::timestamptz[], %s::bigint[]) AS x(u, ch, c, camp, st, v, s, t, p) "
                    "RETURNING id", tuple(list(col) for col in zip(*rows)))
        mine += [r["id"] for r in cur.fetchall()]
        if not mine:
            continue
        for _ in range(rng.randint(1, 4)):
            batch = rng.sample(mine, min(len(mine), rng.randint(1, 30)))
            kind = rng.choice(("sent", "delivered", "opened", "clicked", "responded", "priced", "retry",
                               "failed", "again", "late", "delete", "claim", "reply", "unenroll", "optout",
                               "complaint", "sender"))
            if kind == "sent":
                cur.execute("UPDATE crefinder.outbound_events SET status = 'sent', block_reason = NULL, "
                            "sent_at = coalesce(sent_at, created_at + interval '3 minutes') "
                            "WHERE id = ANY(%s) AND status IN ('queued', 'sending')", (batch,))
            elif kind in ("delivered", "opened", "clicked", "responded", "again", "late"):
                column = {"again": "delivered", "late": "responded"}.get(kind, kind)
                # a repeated event changes nothing; a late one lands on
                # a message whatever its state
                cur.execute("UPDATE crefinder.outbound_events SET %s_at = coalesce(%s_at, sent_at + interval '1 hour'), "
                            "status = CASE WHEN status = 'sent' AND '%s' = 'delivered' THEN 'delivered' ELSE status END "
                            "WHERE id = ANY(%%s) AND sent_at IS NOT NULL" % (column, column, column), (batch,))
            elif kind == "priced":
                cur.execute("UPDATE crefinder.outbound_events SET cost_cents = round((random() * 20)::numeric, 4) "
                            "WHERE id = ANY(%s) AND sent_at IS NOT NULL", (batch,))
            elif kind == "retry":
                cur.execute("UPDATE crefinder.outbound_events SET status = 'queued', attempts = attempts + 1 "
                            "WHERE id = ANY(%s) AND status = 'failed'", (batch,))
            elif kind == "failed":
                # carrier filtering (30007, 30034) and other failures
                error = rng.choice(("twilio undelivered 30007: message filtered by the carrier",
                                    "twilio failed 30034: unregistered number", "twilio 400 21211: invalid To",
                                    "twilio 500", "sendgrid bounce: 550 5.1.1 user unknown 30007x"))
                cur.execute("UPDATE crefinder.outbound_events SET status = 'failed', last_error = %s "
                            "WHERE id = ANY(%s) AND status IN ('queued', 'sent')", (error, batch))
            elif kind == "optout":
                cur.execute("UPDATE crefinder.outbound_events SET opted_out_at = coalesce(opted_out_at, now()) "
                            "WHERE id = ANY(%s) AND sent_at IS NOT NULL", (batch[:4],))
            elif kind == "complaint":
                cur.execute("UPDATE crefinder.outbound_events SET complained_at = coalesce(complained_at, now()) "
                            "WHERE id = ANY(%s) AND sent_at IS NOT NULL AND channel = 'email'", (batch[:4],))
            elif kind == "sender":
                # the number it went from, learnt at the answer or later (a
                # callback, a lookup): a change of rollup key
                cur.execute("UPDATE crefinder.outbound_events SET sender = %s WHERE id = ANY(%s) AND channel <> 'email'",
                            (rng.choice(("+13055550100", "+13055550111", None)), batch))
            elif kind == "claim":
                cur.execute("UPDATE crefinder.outbound_events SET updated_at = now(), attempts = attempts + 1 "
                            "WHERE id = ANY(%s)", (batch,))
            elif kind == "reply":
                # replies of every kind on campaign messages (interested
                # ones count for the funnel)
                cur.execute("INSERT INTO crefinder.responses (user_id, message_id, campaign_id, property_id, channel, "
                            "kind, source) SELECT user_id, id, campaign_id, property_id, channel, "
                            "(ARRAY['interested', 'not_interested', 'question', 'interested'])[1 + (id %% 4)], 'manual' "
                            "FROM crefinder.outbound_events WHERE id = ANY(%s) AND campaign_id IS NOT NULL", (batch[:5],))
            elif kind == "unenroll" and rng.random() < 0.2:
                cur.execute("DELETE FROM crefinder.enrollments WHERE id = (SELECT min(id) FROM crefinder.enrollments "
                            "WHERE property_id = (SELECT property_id FROM crefinder.outbound_events WHERE id = %s))",
                            (batch[0],))
            elif kind == "delete":
                cur.execute("DELETE FROM crefinder.responses WHERE message_id = ANY(%s)", (batch[:3],))
                cur.execute("DELETE FROM crefinder.outbound_events WHERE id = ANY(%s)", (batch[:3],))
                mine = [m for m in mine if m not in batch[:3]]
        conn.commit()
    conn.close()


def rollups(cur, table_sql):
    cur.execute("SELECT user_id::text, campaign_id, channel, step, variant, day, sender, %s FROM (%s) r "
                "GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING %s ORDER BY 1, 2, 3, 4, 5, 6, 7"
                % (", ".join("sum(%s) AS %s" % (c, c) for c in ROLLUP_COLUMNS), table_sql,
                   " OR ".join("sum(%s) <> 0" % c for c in ROLLUP_COLUMNS)))
    return [tuple(r.values()) for r in cur.fetchall()]


def reach(cur, table):
    cur.execute("SELECT campaign_id, enrolled, contacted, delivered, responded, interested, contacts FROM %s "
                "WHERE (enrolled, contacted, delivered, responded, interested, contacts) <> (0, 0, 0, 0, 0, 0) "
                "ORDER BY 1" % table)
    return [tuple(r.values()) for r in cur.fetchall()]


def reach_from_raw(cur):
    cur.execute("""
        SELECT c.id, (SELECT count(*) FROM crefinder.enrollments e WHERE e.campaign_id = c.id) AS enrolled,
               count(DISTINCT m.property_id) AS contacted,
               count(DISTINCT m.property_id) FILTER (WHERE m.delivered_at IS NOT NULL) AS delivered,
               count(DISTINCT m.property_id) FILTER (WHERE m.responded_at IS NOT NULL) AS responded,
               (SELECT count(DISTINCT r.property_id) FROM crefinder.responses r
                WHERE r.campaign_id = c.id AND r.kind = 'interested' AND r.property_id IS NOT NULL) AS interested,
               count(DISTINCT m.to_contact) AS contacts
        FROM crefinder.campaigns c
        LEFT JOIN crefinder.outbound_events m
          ON m.campaign_id = c.id AND m.property_id IS NOT NULL AND m.sent_at IS NOT NULL
        GROUP BY c.id ORDER BY 1""")
    return [tuple(r.values()) for r in cur.fetchall() if any(list(r.values())[1:])]


def test_rollups_equal_rebuild_after_a_random_concurrent_workload(cluster):
    conn, cur, campaigns = setup(cluster)
    conn.autocommit = True
    threads = [threading.Thread(target=random_workload, args=(cluster, campaigns, seed, 25)) for seed in range(4)]
    for t in threads:
        t.start()
    folds = 0
    while any(t.is_alive() for t in threads):
        cur.execute("SELECT crefinder.fold_rollups() AS n")
        folds += cur.fetchone()["n"]
    for t in threads:
        t.join()
    assert folds > 0
    # and some more, not folded yet
    random_workload(cluster, campaigns, 99, 5)
    cur.execute("SELECT count(*) AS n, count(DISTINCT status) AS statuses FROM crefinder.outbound_events")
    seen = cur.fetchone()
    assert seen["n"] > 500 and seen["statuses"] >= 5, seen
    # the writers appended deltas; a fold moved part of them mid-way
    cur.execute("SELECT count(*) AS n FROM crefinder.rollup_deltas")
    assert cur.fetchone()["n"] > 0
    kept = rollups(cur, "SELECT * FROM crefinder.rollups")
    assert kept, "no rollups kept"
    # the same from the raw rows, by an independent query
    raw = rollups(cur, """
        SELECT user_id, campaign_id, channel, step, variant,
               (coalesce(sent_at, created_at) AT TIME ZONE 'UTC')::date AS day, sender, 1 AS messages,
               (sent_at IS NOT NULL)::int AS sent, (delivered_at IS NOT NULL)::int AS delivered,
               (opened_at IS NOT NULL)::int AS opened, (clicked_at IS NOT NULL)::int AS clicked,
               (responded_at IS NOT NULL)::int AS responded, (status = 'failed')::int AS failed,
               (status = 'blocked')::int AS blocked, (status = 'skipped')::int AS skipped,
               (sent_at IS NOT NULL AND cost_cents IS NOT NULL)::int AS priced,
               (opted_out_at IS NOT NULL)::int AS opted_out, (complained_at IS NOT NULL)::int AS complained,
               (status = 'failed' AND (last_error LIKE 'twilio undelivered 30007%'
                                       OR last_error LIKE 'twilio failed 30034%'))::int AS filtered,
               coalesce(cost_cents, 0) AS cost_cents
        FROM crefinder.outbound_events""")
    assert kept == raw
    now_, raw_ = reach(cur, "crefinder.campaign_counts_now"), reach_from_raw(cur)
    assert now_ == raw_, (now_, raw_)
    hours = "SELECT channel, dow, hour, sent, responded FROM crefinder.contact_time_performance ORDER BY 1, 2, 3"
    cur.execute(hours)
    hours_kept = cur.fetchall()
    assert hours_kept
    # folded, the same
    cur.execute("SELECT crefinder.fold_rollups() AS n")
    assert cur.fetchone()["n"] > 0
    cur.execute("SELECT count(*) AS n FROM crefinder.rollup_deltas")
    assert cur.fetchone()["n"] == 0
    assert rollups(cur, "SELECT * FROM crefinder.message_rollups") == kept
    assert reach(cur, "crefinder.campaign_counts") == reach_from_raw(cur)
    assert reach(cur, "crefinder.campaign_counts_now") == reach_from_raw(cur)
    cur.execute(hours)
    assert cur.fetchall() == hours_kept
    cur.execute("SELECT crefinder.rebuild_rollups() AS n")
    assert cur.fetchone()["n"] == len(raw)
    assert rollups(cur, "SELECT * FROM crefinder.rollups") == kept
    assert reach(cur, "crefinder.campaign_counts") == reach_from_raw(cur)
    cur.execute(hours)
    assert cur.fetchall() == hours_kept
    conn.close()


def pct(a, b):
    if b == 0:
        return None
    return (decimal.Decimal(100) * a / b).quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP)


def test_views_equal_a_computation_from_the_raw_rows(cluster):
    conn, cur, campaigns = setup(cluster)
    conn.autocommit = True
    random_workload(cluster, campaigns, 7, 40)
    cur.execute("INSERT INTO crefinder.tenant_settings (user_id, average_deal_value, conversion_rate) "
                "VALUES (%s, 80000, 0.02)", (B,))
    cur.execute("SELECT * FROM crefinder.outbound_events")
    messages = cur.fetchall()
    cur.execute("SELECT * FROM crefinder.enrollments")
    enrollments = cur.fetchall()
    cur.execute("SELECT * FROM crefinder.responses")
    responses = cur.fetchall()
    # some enrollments in nurture (what a positive reply does)
    cur.execute("UPDATE crefinder.enrollments SET status = 'nurture', sequence_id = "
                "(SELECT min(id) FROM crefinder.sequences s WHERE s.user_id = enrollments.user_id) "
                "WHERE id % 3 = 0 RETURNING id")
    nurtured = {r["id"] for r in cur.fetchall()}
    cur.execute("SELECT now() AS now")
    today = cur.fetchone()["now"].astimezone(datetime.timezone.utc).date()
    conn.close()

    for tenant in (A, B):
        conn, cur = connect(cluster)
        cur.execute("CREATE ROLE analytics_reader_%s LOGIN" % tenant[:4])
        cur.execute("SELECT crefinder.grant_access('analytics_reader_%s')" % tenant[:4])
        cur.execute("SET ROLE analytics_reader_%s" % tenant[:4])
        cur.execute("SET crefinder.user_id = %s", (tenant,))
        mine = [m for m in messages if m["user_id"] == tenant]

        # campaign_performance
        cur.execute("SELECT * FROM crefinder.campaign_performance ORDER BY campaign_id, channel")
        got = cur.fetchall()
        want = []
        for camp in sorted(campaigns[tenant]):
            for channel in sorted(CHANNELS):
                ms = [m for m in mine if m["campaign_id"] == camp and m["channel"] == channel]
                if not ms:
                    continue
                sent = sum(m["sent_at"] is not None for m in ms)
                delivered = sum(m["delivered_at"] is not None for m in ms)
                opened = sum(m["opened_at"] is not None for m in ms)
                clicked = sum(m["clicked_at"] is not None for m in ms)
                responded = sum(m["responded_at"] is not None for m in ms)
                cost = sum((m["cost_cents"] or 0) for m in ms)
                want.append({
                    "campaign_id": camp, "channel": channel, "messages": len(ms), "sent": sent,
                    "delivered": delivered, "opened": opened, "clicked": clicked, "responded": responded,
                    "failed": sum(m["status"] == "failed" for m in ms),
                    "blocked": sum(m["status"] == "blocked" for m in ms),
                    "skipped": sum(m["status"] == "skipped" for m in ms),
                    "delivery_rate": pct(delivered, sent), "open_rate": pct(opened, delivered),
                    "click_rate": pct(clicked, delivered), "response_rate": pct(responded, delivered),
                    "total_cost": (decimal.Decimal(cost) / 100).quantize(decimal.Decimal("0.01"),
                                                                          rounding=decimal.ROUND_HALF_UP),
                    "cost_per_contact": None if sent == 0 else (decimal.Decimal(cost) / 100 / sent).quantize(
                        decimal.Decimal("0.0001"), rounding=decimal.ROUND_HALF_UP),
                    "unpriced": sum(m["sent_at"] is not None and m["cost_cents"] is None for m in ms)})
        assert want and [dict((k, g[k]) for k in want[0]) for g in got] == want
        assert {g["campaign_name"] for g in got} <= {"c0", "c1", "c2"}

        # campaign_overview and campaign_funnel: distinct properties
        cur.execute("SELECT * FROM crefinder.campaign_overview ORDER BY campaign_id")
        overview = cur.fetchall()
        cur.execute("SELECT * FROM crefinder.campaign_funnel ORDER BY campaign_id, position")
        funnel = cur.fetchall()
        assert [o["campaign_id"] for o in overview] == sorted(campaigns[tenant])
        for o in overview:
            camp = o["campaign_id"]
            sent = [m for m in mine if m["campaign_id"] == camp and m["property_id"] and m["sent_at"]]
            contacted = len({m["property_id"] for m in sent})
            responded = len({m["property_id"] for m in sent if m["responded_at"]})
            interested = len({r["property_id"] for r in responses
                              if r["campaign_id"] == camp and r["kind"] == "interested" and r["property_id"]})
            enrolled = sum(e["campaign_id"] == camp for e in enrollments)
            cost = decimal.Decimal(sum((m["cost_cents"] or 0) for m in mine if m["campaign_id"] == camp)) / 100
            want = {"properties_enrolled": enrolled, "properties_contacted": contacted,
                    "properties_responded": responded, "properties_interested": interested,
                    "unique_contacts": len({m["to_contact"] for m in sent}),
                    "response_rate": pct(responded, contacted),
                    "total_cost": cost.quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP),
                    "cost_per_interested": None if not interested else (cost / interested).quantize(
                        decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP)}
            assert dict((k, o[k]) for k in want) == want, (o, want)
            stages = [enrolled, contacted, len({m["property_id"] for m in sent if m["delivered_at"]}), responded,
                      interested, sum(e["campaign_id"] == camp and e["id"] in nurtured for e in enrollments)]
            got = [(f["stage"], f["properties"]) for f in funnel if f["campaign_id"] == camp]
            assert got == list(zip(("enrolled", "contacted", "delivered", "responded", "interested", "nurture"),
                                   stages)), got

        # contact_time_performance: the hour of the week in the
        # recipient's zone (a phone's area code's, an email's property's)
        cur.execute("SELECT id, property_zip FROM crefinder.property_records")
        zips = dict((r["id"], r["property_zip"]) for r in cur.fetchall())
        cur.execute("SELECT * FROM crefinder.contact_time_performance ORDER BY channel, dow, hour")
        got = [(r["channel"], r["dow"], r["hour"], r["sent"], r["responded"], r["response_rate"])
               for r in cur.fetchall()]
        buckets = {}
        for m in mine:
            if m["sent_at"] is None:
                continue
            if m["channel"] == "email":
                zone = {"33101": "America/New_York", "90001": "America/Los_Angeles",
                        "60601": "America/Chicago"}.get(zips.get(m["property_id"]))
            else:
                zone = "America/New_York" if m["to_contact"].startswith("+1305") else None
            if zone is None:
                continue
            local = m["sent_at"].astimezone(zoneinfo.ZoneInfo(zone))
            key = (m["channel"], (local.weekday() + 1) % 7, local.hour)
            sent, responded = buckets.get(key, (0, 0))
            buckets[key] = (sent + 1, responded + (m["responded_at"] is not None))
        want = [k + v + (pct(v[1], v[0]),) for k, v in sorted(buckets.items())]
        assert want and got == want, (got, want)
        assert {g[0] for g in got} >= {"sms", "email"}

        # channel_effectiveness: the last 30 days, best response rate first
        deal, conversion = (decimal.Decimal(80000), decimal.Decimal("0.02")) if tenant == B else \
            (decimal.Decimal(50000), decimal.Decimal("0.05"))
        cur.execute("SELECT * FROM crefinder.channel_effectiveness")
        got = cur.fetchall()
        want = []
        for channel in CHANNELS:
            ms = [m for m in mine if m["channel"] == channel
                  and (m["sent_at"] or m["created_at"]).astimezone(datetime.timezone.utc).date()
                  > today - datetime.timedelta(days=30)]
            if not ms:
                continue
            sent = sum(m["sent_at"] is not None for m in ms)
            delivered = sum(m["delivered_at"] is not None for m in ms)
            responded = sum(m["responded_at"] is not None for m in ms)
            cost = decimal.Decimal(sum((m["cost_cents"] or 0) for m in ms)) / 100
            revenue = responded * deal * conversion
            want.append({"channel": channel, "sent": sent, "delivered": delivered, "responded": responded,
                         "response_rate": pct(responded, delivered),
                         "cost": cost.quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP),
                         "revenue": revenue.quantize(decimal.Decimal("0.01")),
                         "roi": None if cost == 0 else (100 * (revenue - cost) / cost).quantize(
                             decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP)})
        want.sort(key=lambda w: (w["response_rate"] is None, -(w["response_rate"] or 0), w["channel"]))
        assert want and [dict((k, g[k]) for k in want[0]) for g in got] == want
        # row-level security: only this tenant's rows
        cur.execute("SELECT count(*) AS n FROM crefinder.message_rollups WHERE user_id <> %s", (tenant,))
        assert cur.fetchone()["n"] == 0
        cur.execute("RESET ROLE")
        cur.execute("SELECT crefinder.revoke_access('analytics_reader_%s')" % tenant[:4])
        cur.execute("DROP ROLE analytics_reader_%s" % tenant[:4])
        conn.commit()
        conn.close()


def test_ab_test_results_and_the_winner(cluster):
    import math
    conn, cur, campaigns = setup(cluster)
    conn.autocommit = True
    camp = campaigns[A][0]

    def arm(variant, n, responded, sent=True):
        cur.execute("INSERT INTO crefinder.outbound_events (user_id, channel, to_contact, campaign_id, step, variant, "
                    "status, block_reason, sent_at, delivered_at, responded_at) "
                    "SELECT %s, 'sms', '+13055550000', %s, 0, %s, CASE WHEN %s THEN 'delivered' ELSE 'skipped' END, "
                    "CASE WHEN %s THEN NULL ELSE 'holdout' END, "
                    "CASE WHEN %s THEN now() END, CASE WHEN %s THEN now() END, "
                    "CASE WHEN g <= %s THEN now() END FROM generate_series(1, %s) g",
                    (A, camp, variant, sent, sent, sent, sent, responded, n))

    def results():
        cur.execute("SELECT variant, assigned, sent, responded, response_rate, difference, z, p_value, "
                    "lift_over_holdout, winner FROM crefinder.ab_test_results WHERE campaign_id = %s "
                    "ORDER BY variant", (camp,))
        return dict((r["variant"], r) for r in cur.fetchall())

    # 90 sends per arm: B looks better but the arms are too small
    arm("A", 90, 9)
    arm("B", 90, 27)
    arm("holdout", 50, 1, sent=False)
    r = results()
    assert not any(x["winner"] for x in r.values()), r
    # 200 each: 20 against 45 responses
    arm("A", 110, 11)
    arm("B", 110, 18)
    r = results()
    assert (r["A"]["sent"], r["A"]["responded"], r["B"]["sent"], r["B"]["responded"]) == (200, 20, 200, 45)
    assert r["holdout"]["assigned"] == 50 and r["holdout"]["sent"] == 0 and r["holdout"]["response_rate"] == 2
    # the z-test, computed here
    p1, p2, pooled = 45 / 200, 20 / 200, 65 / 400
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / 200 + 1 / 200))
    assert abs(r["B"]["z"] - z) < 1e-9 and abs(r["B"]["p_value"] - math.erfc(abs(z) / math.sqrt(2))) < 1e-12
    assert r["A"]["z"] is None and r["A"]["difference"] == 0
    assert float(r["B"]["difference"]) == 12.5 and float(r["B"]["lift_over_holdout"]) == 20.5
    assert r["B"]["p_value"] < 0.05
    assert [v for v, x in r.items() if x["winner"]] == ["B"], r
    # a close race has no winner
    arm("A", 300, 90)
    r = results()
    assert r["B"]["p_value"] > 0.05 and not any(x["winner"] for x in r.values()), r
    # bad input to the test itself is a clear error
    try:
        cur.execute("SELECT * FROM crefinder.proportion_test(5, 3, 1, 10)")
        raise AssertionError("accepted more successes than trials")
    except psycopg2.Error as e:
        assert e.pgcode == "22023", e.pgcode
    cur.execute("SELECT * FROM crefinder.proportion_test(0, 10, 0, 10)")
    assert cur.fetchone() == {"z": None, "p_value": None}
    conn.close()


def test_health(cluster):
    conn, cur, campaigns = setup(cluster)
    conn.autocommit = True

    def message(tenant, channel, status, **columns):
        columns.setdefault("block_reason", "dnc" if status in ("blocked", "skipped") else None)
        names = ["user_id", "channel", "to_contact", "status"] + list(columns)
        cur.execute("INSERT INTO crefinder.outbound_events (%s) VALUES (%s)"
                    % (", ".join(names), ", ".join(["%s"] * len(names))),
                    [tenant, channel, "+13055550100", status] + list(columns.values()))

    for _ in range(3):
        message(A, "sms", "queued", next_attempt_at="2020-01-01")       # due, waiting since 2020
    message(A, "sms", "queued", next_attempt_at="2999-01-01")           # held
    message(A, "sms", "sending", updated_at="2020-01-01")               # stuck
    message(A, "sms", "sending")
    message(A, "voice", "unknown")
    message(A, "sms", "failed", last_error="twilio undelivered 30007: message filtered by the carrier")
    message(A, "sms", "failed", last_error="twilio undelivered 30007: message filtered by the carrier")
    message(A, "sms", "failed", last_error="twilio 400 21211: invalid 'To' phone number")
    message(A, "email", "failed", last_error="sendgrid 500")
    message(A, "sms", "failed", last_error="twilio 500", updated_at="2020-01-01")     # long ago
    message(A, "email", "sent", sent_at="2020-01-01")          # never confirmed: SendGrid has nothing to ask
    message(A, "sms", "sent", sent_at="2020-01-01", lookup_at="2020-01-01 02:00")   # to reconcile, due
    message(A, "sms", "delivered", lookup_at="2020-01-01")                          # its price, due
    message(A, "voice", "sent", lookup_at="2999-01-01")                             # not due yet
    message(B, "sms", "queued", next_attempt_at="2020-01-01")
    for tenant, outcome in ((A, "bad_signature"), (A, "stale"), (None, "unknown_tenant"), (A, "applied")):
        cur.execute("INSERT INTO crefinder.webhook_events (user_id, provider, verified, http_status, outcome) "
                    "VALUES (%s, 'twilio', false, 401, %s)", (tenant, outcome))
    for tenant in (A, B):
        cur.execute("INSERT INTO crefinder.alerts (user_id, campaign_id, channel, kind, rate, threshold, sends, detail) "
                    "VALUES (%s, %s, 'sms', 'opt_out_rate', 3.2, 3, 250, '{}')", (tenant, campaigns[tenant][0]))
    cur.execute("CREATE ROLE health_reader LOGIN")
    cur.execute("SELECT crefinder.grant_access('health_reader')")
    cur.execute("SET ROLE health_reader")
    cur.execute("SET crefinder.user_id = %s", (A,))
    cur.execute("SELECT * FROM crefinder.health ORDER BY provider")
    rows = dict((r["provider"], r) for r in cur.fetchall())
    assert set(rows) == {"sendgrid", "twilio", "vapi"}, rows
    t = rows["twilio"]
    assert (t["queued"], t["due"], t["sending"], t["stuck_sending"], t["unknown"], t["failed_last_hour"],
            t["reconciliation_backlog"]) == (4, 3, 2, 1, 0, 3, 2), t
    assert t["errors_last_hour"] == {"30007": 2, "21211": 1}, t
    assert t["oldest_due_age"].days > 365 and t["webhook_rejections_last_hour"] == 2, t
    assert rows["vapi"]["unknown"] == 1 and rows["vapi"]["reconciliation_backlog"] == 0
    assert rows["sendgrid"]["errors_last_hour"] == {"500": 1} and rows["sendgrid"]["reconciliation_backlog"] == 0
    assert all(r["user_id"] == A for r in rows.values())
    # alerts, like every table, are the tenant's own
    cur.execute("SELECT user_id::text FROM crefinder.alerts")
    assert [r["user_id"] for r in cur.fetchall()] == [A]
    cur.execute("RESET ROLE")
    # the operator sees every tenant, and the rejections no tenant was proven for
    cur.execute("SELECT user_id::text, provider, queued, webhook_rejections_last_hour FROM crefinder.health "
                "WHERE user_id IS DISTINCT FROM %s ORDER BY 1", (A,))
    assert [tuple(r.values()) for r in cur.fetchall()] == [(B, "twilio", 1, 0), (None, "twilio", 0, 1)]
    cur.execute("SELECT crefinder.revoke_access('health_reader')")
    cur.execute("DROP ROLE health_reader")
    conn.close()


def test_pruned_history_keeps_its_counts(cluster):
    conn, cur, campaigns = setup(cluster)
    conn.autocommit = True
    random_workload(cluster, campaigns, 11, 30)
    # half of the history is old: created long before the retention
    cur.execute("UPDATE crefinder.outbound_events SET created_at = created_at - interval '3 years', "
                "sent_at = sent_at - interval '3 years' WHERE id % 2 = 0")
    cur.execute("INSERT INTO crefinder.webhook_events (user_id, provider, verified, http_status, outcome, received_at) "
                "SELECT %s, 'twilio', true, 200, 'applied', now() - g * interval '1 day' FROM generate_series(1, 60) g",
                (A,))
    views = ("SELECT * FROM crefinder.campaign_performance ORDER BY campaign_id, channel",
             "SELECT * FROM crefinder.campaign_overview ORDER BY campaign_id",
             "SELECT channel, dow, hour, sent, responded FROM crefinder.contact_time_performance ORDER BY 1, 2, 3",
             "SELECT campaign_id, step, variant, assigned, sent, responded FROM crefinder.ab_test_results ORDER BY 1, 2, 3")

    def snapshot():
        out = []
        for sql in views:
            cur.execute(sql)
            out.append([tuple(r.values()) for r in cur.fetchall()])
        return out
    before = snapshot()
    cur.execute("SELECT count(*) AS n FROM crefinder.outbound_events WHERE status NOT IN ('queued', 'sending') "
                "AND created_at < now() - interval '400 days'")
    old = cur.fetchone()["n"]
    assert old > 50
    cur.execute("SELECT count(*) AS n FROM crefinder.webhook_events WHERE received_at < now() - interval '30 days'")
    old_deliveries = cur.fetchone()["n"]
    assert old_deliveries >= 30
    cur.execute("SELECT crefinder.prune_history(20) AS r")
    assert cur.fetchone()["r"] == {"messages": 20, "webhook_events": 20}
    cur.execute("SELECT crefinder.prune_history() AS r")
    r = cur.fetchone()["r"]
    assert r == {"messages": old - 20, "webhook_events": old_deliveries - 20}, (r, old, old_deliveries)
    cur.execute("SELECT count(*) AS n FROM crefinder.outbound_events WHERE status NOT IN ('queued', 'sending') "
                "AND created_at < now() - interval '400 days'")
    assert cur.fetchone()["n"] == 0
    cur.execute("SELECT min(received_at) > now() - interval '31 days' AS recent FROM crefinder.webhook_events")
    assert cur.fetchone()["recent"] is True
    # the views count what was pruned, folded or not, and so does a rebuild
    assert snapshot() == before
    cur.execute("SELECT crefinder.fold_rollups()")
    assert snapshot() == before
    cur.execute("SELECT crefinder.rebuild_rollups()")
    assert snapshot() == before
    # a tenant cannot turn the pruning flag on (its deletes would keep counts)
    cur.execute("CREATE ROLE prune_tester LOGIN")
    cur.execute("SET ROLE prune_tester")
    try:
        cur.execute("SET crefinder.pruning = on")
        raise AssertionError("a plain role set crefinder.pruning")
    except psycopg2.Error as e:
        assert e.pgcode == "42501", e.pgcode
    cur.execute("RESET ROLE")
    cur.execute("DROP ROLE prune_tester")
    conn.close()
