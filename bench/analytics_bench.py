#!/usr/bin/python3
"""Analytics benchmarks: prints figures, asserts nothing.

--messages messages (default 10,000,000) across --campaigns campaigns and
--tenants tenants, in every status, with deliveries, opens, clicks,
replies, opt-outs and prices, are written straight into the outbox (the
rollup triggers off while loading), then rebuild_rollups() computes the
rollups once.  Then, as a tenant role under row-level security, each view
is timed (median of --repeat runs, after one warm-up):
campaign_performance for one campaign, campaign_overview and
channel_effectiveness for one tenant, ab_test_results for one campaign,
contact_time_performance and health for one tenant; beside them, the
seed's approach: read every message of the campaign into the client and
count there.

Usage: bench/analytics_bench.py [--messages N] [--campaigns N] [--tenants N] [--repeat N]
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test"))

from cluster import Cluster, TEST_DATABASE, stop_on_sigterm  # noqa: E402

import psycopg2.extras  # noqa: E402

# one chunk of messages: FIRST..LAST, spread over the CAMPAIGNS campaigns
# and their tenants' properties, in every status
MESSAGES = """
INSERT INTO crefinder.outbound_events
    (user_id, channel, to_contact, status, block_reason, campaign_id, property_id, step, variant,
     created_at, sent_at, delivered_at, opened_at, clicked_at, responded_at, opted_out_at, cost_cents, last_error,
     sender)
SELECT c.user_id, x.channel, CASE WHEN x.channel = 'email' THEN 'o' || x.g || '@example.com'
                                  ELSE '+1305' || (2000000 + x.g % 500000) END,
       x.status, CASE WHEN x.status = 'blocked' THEN 'dnc' END, c.id, pr.id, 0,
       CASE WHEN x.g % 2 = 0 THEN 'A' ELSE 'B' END, x.at,
       CASE WHEN x.sent THEN x.at END,
       CASE WHEN x.sent AND x.r < 0.9 THEN x.at + interval '1 minute' END,
       CASE WHEN x.sent AND x.channel = 'email' AND x.r < 0.4 THEN x.at + interval '1 hour' END,
       CASE WHEN x.sent AND x.channel = 'email' AND x.r < 0.05 THEN x.at + interval '2 hours' END,
       CASE WHEN x.sent AND x.r < 0.08 THEN x.at + interval '3 hours' END,
       CASE WHEN x.sent AND x.r > 0.99 THEN x.at + interval '3 hours' END,
       CASE WHEN x.sent AND x.r < 0.95 THEN round((x.r * 2)::numeric, 4) END,
       CASE WHEN x.status = 'failed' THEN 'twilio undelivered 30007: filtered' END,
       -- two numbers per tenant for texts and calls
       CASE WHEN x.sent AND x.channel <> 'email' THEN '+1305555' || lpad((x.g % 2)::text, 4, '0') END
FROM (SELECT g, (ARRAY['sms', 'sms', 'email', 'voice', 'whatsapp'])[1 + g % 5] AS channel,
             (ARRAY['delivered', 'delivered', 'delivered', 'delivered', 'sent', 'failed', 'blocked',
                    'delivered', 'delivered', 'queued'])[1 + (g / 7) % 10] AS status,
             (g / 7) % 10 NOT IN (6, 9) AS sent,
             ((g * 2654435761) % 1000) / 1000.0 AS r,
             now() - ((g % 60) || ' days')::interval - ((g % 1440) || ' minutes')::interval AS at
      FROM generate_series(FIRST, LAST) g) AS x
JOIN c ON c.n = x.g % CAMPAIGNS
JOIN p pr ON pr.user_id = c.user_id AND pr.n = (x.g / CAMPAIGNS) % c.properties
"""


def timed(cur, sql, args=None):
    t = time.perf_counter()
    cur.execute(sql, args)
    rows = cur.fetchall()
    return (time.perf_counter() - t) * 1000, rows


def main():
    stop_on_sigterm()
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10000000)
    parser.add_argument("--campaigns", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    per_campaign = args.campaigns // args.tenants

    cluster = Cluster(extra_conf={"shared_buffers": "2GB", "max_wal_size": "16GB", "checkpoint_timeout": "30min",
                                  "maintenance_work_mem": "1GB", "work_mem": "64MB"})
    cluster.start()
    try:
        admin = cluster.connect(dbname="postgres")
        admin.cursor().execute("CREATE DATABASE %s" % TEST_DATABASE)
        admin.close()
        conn = cluster.connect(dbname=TEST_DATABASE)
        cur = conn.cursor()
        cur.execute("SELECT version()")
        print("%s; %d CPUs; fsync off (test cluster)" % (cur.fetchone()[0].split(" on ")[0], os.cpu_count()))
        cur.execute("CREATE EXTENSION crefinder")
        started = time.perf_counter()
        # tenants, a sequence each, campaigns, properties (one per 10 messages)
        cur.execute("CREATE TEMPORARY TABLE t AS SELECT g AS n, ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid "
                    "AS id FROM generate_series(1, %s) g", (args.tenants,))
        cur.execute("INSERT INTO crefinder.sequences (user_id, name, steps) SELECT id, 's', "
                    "'[{\"channel\": \"sms\", \"variants\": [{\"name\": \"A\"}, {\"name\": \"B\"}]}]' FROM t")
        cur.execute("INSERT INTO crefinder.campaigns (user_id, name, sequence_id) "
                    "SELECT t.id, 'campaign ' || c, s.id FROM t JOIN crefinder.sequences s ON s.user_id = t.id "
                    "CROSS JOIN generate_series(1, %s) c", (per_campaign,))
        properties = max(args.messages // 10, 1)
        cur.execute("INSERT INTO crefinder.property_records (user_id, owner_name, owner_phone, property_zip) "
                    "SELECT t.id, 'OWNER ' || g, '+1305' || (2000000 + g), '33101' "
                    "FROM generate_series(1, %s) g JOIN t ON t.n = 1 + g %% %s", (properties, args.tenants))
        cur.execute("CREATE TEMPORARY TABLE pc AS SELECT user_id, count(*) AS properties "
                    "FROM crefinder.property_records GROUP BY 1")
        cur.execute("CREATE TEMPORARY TABLE c AS SELECT row_number() OVER (ORDER BY x.id) - 1 AS n, x.id, x.user_id, "
                    "pc.properties FROM crefinder.campaigns x JOIN pc ON pc.user_id = x.user_id")
        cur.execute("CREATE TEMPORARY TABLE p AS SELECT row_number() OVER (PARTITION BY user_id ORDER BY id) - 1 AS n, "
                    "id, user_id FROM crefinder.property_records")
        cur.execute("CREATE INDEX ON p (user_id, n)")
        cur.execute("ANALYZE p")
        cur.execute("INSERT INTO crefinder.enrollments (user_id, campaign_id, property_id, status) "
                    "SELECT c.user_id, c.id, p.id, 'completed' "
                    "FROM c JOIN p ON p.user_id = c.user_id AND p.n %% %s = (c.n / %s) %% %s",
                    (per_campaign, args.tenants, per_campaign))
        setup = time.perf_counter() - started

        # the messages: rollups off while loading, rebuilt once after
        cur.execute("ALTER TABLE crefinder.outbound_events DISABLE TRIGGER roll_up_inserts")
        started = time.perf_counter()
        chunk = 1000000
        for first in range(0, args.messages, chunk):
            n = min(chunk, args.messages - first)
            cur.execute(MESSAGES.replace("FIRST", str(first + 1)).replace("LAST", str(first + n))
                        .replace("CAMPAIGNS", str(args.campaigns)))
            print("  %d messages loaded (%.0f s)" % (first + n, time.perf_counter() - started), flush=True)
        load = time.perf_counter() - started
        cur.execute("ALTER TABLE crefinder.outbound_events ENABLE TRIGGER roll_up_inserts")
        started = time.perf_counter()
        cur.execute("SELECT crefinder.rebuild_rollups()")
        rebuild = time.perf_counter() - started
        cur.execute("VACUUM ANALYZE")
        cur.execute("SELECT pg_size_pretty(pg_total_relation_size('crefinder.outbound_events')), "
                    "(SELECT count(*) FROM crefinder.message_rollups), (SELECT count(*) FROM crefinder.campaign_reach)")
        size, rollup_rows, reach_rows = cur.fetchone()
        print("setup %.0f s; %d messages loaded in %.0f s (outbox %s); rebuild_rollups() in %.0f s: %d rollup rows, "
              "%d reach rows" % (setup, args.messages, load, size, rebuild, rollup_rows, reach_rows))

        # as a tenant, under row-level security
        cur.execute("CREATE ROLE analyst LOGIN")
        cur.execute("SELECT crefinder.grant_access('analyst')")
        cur.execute("SELECT id, user_id FROM crefinder.campaigns ORDER BY id LIMIT 1 OFFSET %s", (args.campaigns // 2,))
        campaign, tenant = cur.fetchone()
        tc = conn.cursor(cursor_factory=psycopg2.extras.DictCursor)
        tc.execute("SET ROLE analyst")
        tc.execute("SET crefinder.user_id = %s", (tenant,))
        queries = [
            ("campaign_performance, one campaign",
             "SELECT * FROM crefinder.campaign_performance WHERE campaign_id = %s" % campaign, 10),
            ("campaign_overview, one tenant", "SELECT * FROM crefinder.campaign_overview", 10),
            ("channel_effectiveness, one tenant", "SELECT * FROM crefinder.channel_effectiveness", 50),
            ("campaign_funnel, one campaign",
             "SELECT * FROM crefinder.campaign_funnel WHERE campaign_id = %s" % campaign, None),
            ("ab_test_results, one campaign",
             "SELECT * FROM crefinder.ab_test_results WHERE campaign_id = %s" % campaign, None),
            ("contact_time_performance, one tenant", "SELECT * FROM crefinder.contact_time_performance", None),
            ("campaign_guardrails, one tenant", "SELECT * FROM crefinder.campaign_guardrails", None),
            ("sender_guardrails, one tenant", "SELECT * FROM crefinder.sender_guardrails", None),
            ("health, one tenant", "SELECT * FROM crefinder.health", None),
        ]
        figures = []
        for name, sql, target in queries:
            timed(tc, sql)
            times = [timed(tc, sql)[0] for _ in range(args.repeat)]
            rows = len(timed(tc, sql)[1])
            figures.append((name, statistics.median(times), max(times), rows, target))
        # the seed's approach: every message of the campaign to the client
        seed_sql = ("SELECT channel, status, cost_cents, payload FROM crefinder.outbound_events "
                    "WHERE campaign_id = %s" % campaign)
        seed_times = []
        for _ in range(max(args.repeat // 4, 3)):
            t = time.perf_counter()
            tc.execute(seed_sql)
            events = tc.fetchall()
            counts = {}
            for e in events:
                c = counts.setdefault(e["channel"], [0, 0, 0.0])
                c[0] += 1
                c[1] += e["status"] in ("delivered", "sent")
                c[2] += float(e["cost_cents"] or 0)
            seed_times.append((time.perf_counter() - t) * 1000)
        tc.execute("RESET ROLE")
        print()
        print("%-44s %10s %10s %6s %10s" % ("query (as a tenant, row-level security)", "median ms", "max ms", "rows",
                                             "target ms"))
        for name, median, worst, rows, target in figures:
            print("%-44s %10.2f %10.2f %6d %10s" % (name, median, worst, rows, target or ""))
        print("%-44s %10.2f %10.2f %6d" % ("seed: read the campaign's messages, count", statistics.median(seed_times),
                                            max(seed_times), len(events)))
    finally:
        cluster.cleanup()


if __name__ == "__main__":
    main()
