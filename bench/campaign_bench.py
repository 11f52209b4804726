#!/usr/bin/python3
"""Campaign benchmarks: prints figures, asserts nothing.

1. tick() with --enrollments active enrollments of which --due are due:
   enrollments advanced per second, beside a plain INSERT of the same
   number of rows into a copy of the outbox (same columns, indexes and
   foreign keys) in the same run, over --rounds rounds (medians); then the
   time of a tick with nothing due.
2. enqueue_trigger(): rows per second for a COPY of --leads rows into a
   table with the statement-level trigger, beside the row-level form
   (--row-leads rows).

Every contact is allowed (windows all day), so each due step is queued:
the full path (render, scrub, insert, schedule).  The dispatcher is off.

Usage: bench/campaign_bench.py [--enrollments N] [--due N] [--rounds N] [--leads N] [--row-leads N] [--explain]
"""
import argparse
import io
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test"))

from cluster import Cluster, TEST_DATABASE, stop_on_sigterm  # noqa: E402

TENANT = "cccccccc-0000-4000-8000-0000000000c1"


def timed(cur, sql, args=None):
    started = time.perf_counter()
    cur.execute(sql, args)
    return time.perf_counter() - started


def main():
    stop_on_sigterm()
    parser = argparse.ArgumentParser()
    parser.add_argument("--enrollments", type=int, default=1000000)
    parser.add_argument("--due", type=int, default=100000)
    parser.add_argument("--leads", type=int, default=100000)
    parser.add_argument("--row-leads", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3, help="tick rounds (medians are reported)")
    parser.add_argument("--explain", action="store_true", help="log the tick's plans (auto_explain) and print them")
    args = parser.parse_args()

    cluster = Cluster(extra_conf={"shared_buffers": "1GB", "max_wal_size": "8GB",
                                  "checkpoint_timeout": "30min"})
    cluster.start()
    try:
        admin = cluster.connect(dbname="postgres")
        with admin.cursor() as cur:
            cur.execute("CREATE DATABASE %s" % TEST_DATABASE)
        admin.close()
        conn = cluster.connect(dbname=TEST_DATABASE)
        cur = conn.cursor()
        cur.execute("SELECT version()")
        print("%s; %d CPUs; fsync off (test cluster)" % (cur.fetchone()[0].split(" on ")[0], os.cpu_count()))
        cur.execute("CREATE EXTENSION crefinder")
        cur.execute("SET crefinder.user_id = %s", (TENANT,))
        cur.execute("SELECT crefinder.configure('twilio', %s)",
                    (json.dumps({"accountSid": "AC" + "c" * 32, "authToken": "0123456789abcdef" * 2,
                                 "phoneNumber": "+13055550100"}),))
        cur.execute("INSERT INTO crefinder.tenant_settings (sms_window_start, sms_window_end, business_name) "
                    "VALUES ('00:00', '23:59:59', 'Acme Land')")
        cur.execute("INSERT INTO crefinder.calling_rules (region, source, window_start, window_end) "
                    "SELECT region, 'operator', '00:00', '23:59:59' FROM crefinder.calling_rules "
                    "WHERE source = 'default' ON CONFLICT DO NOTHING")

        # --- 1: tick --------------------------------------------------
        n, due = args.enrollments, args.due
        started = time.perf_counter()
        cur.execute("INSERT INTO crefinder.property_records (owner_name, owner_phone, property_address, "
                    "property_city, property_state, property_zip) "
                    "SELECT 'SMITH JOHN ' || g, '+1305' || (2000000 + g), g || ' Palm Ave', 'Miami', 'FL', '33101' "
                    "FROM generate_series(1, %s) g", (n,))
        cur.execute("SELECT crefinder.create_sequence('bench', %s)", (json.dumps([
            {"channel": "sms", "body": "Hi {{first_name | there}}, would you sell {{property_address}}?"},
            {"channel": "sms", "delay": "3 days", "body": "Following up on {{property_address}}"}]),))
        seq = cur.fetchone()[0]
        setup = time.perf_counter() - started
        started = time.perf_counter()
        cur.execute("SELECT crefinder.create_campaign('bench', %s, "
                    "(SELECT array_agg(id ORDER BY id) FROM crefinder.property_records), '{}', "
                    "'2026-12-02 15:00+00')", (seq,))
        enroll = time.perf_counter() - started
        # all but `due` of them are due later
        cur.execute("UPDATE crefinder.enrollments SET next_step_at = '2027-06-01' WHERE id > %s", (due,))
        cur.execute("VACUUM ANALYZE crefinder.enrollments")
        cur.execute("VACUUM ANALYZE crefinder.property_records")
        cur.execute("VACUUM ANALYZE crefinder.property_contacts")
        cur.execute("VACUUM ANALYZE crefinder.outbound_events")
        print("setup: %d properties and a sequence in %.1f s; create_campaign enrolled %d in %.1f s (%.0f/s)"
              % (n, setup, n, enroll, n / enroll))

        # the plain INSERT: the same rows into a copy of the outbox
        # (with the outbox's foreign keys too: the same checks per row)
        cur.execute("CREATE TABLE public.outbox_copy (LIKE crefinder.outbound_events INCLUDING ALL)")
        cur.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = 'crefinder.outbound_events'::regclass AND contype = 'f'")
        for (definition,) in cur.fetchall():
            cur.execute("ALTER TABLE public.outbox_copy ADD " + definition)
        cur.execute("RESET crefinder.user_id")
        insert = ("INSERT INTO %s (user_id, channel, to_contact, status, campaign_id, "
                  "property_id, enrollment_id, step, variant, payload, next_attempt_at) "
                  "SELECT e.user_id, 'sms', p.owner_phone, 'queued', e.campaign_id, e.property_id, e.id, 0, 'A', "
                  "jsonb_build_object('body', 'Hi John, would you sell ' || p.property_address || '?'), "
                  "'2026-12-02 15:00+00' FROM crefinder.enrollments e "
                  "JOIN crefinder.property_records p ON p.id = e.property_id "
                  "WHERE e.next_step_at <= '2026-12-02 15:00+00'")
        cur.execute("CREATE TABLE public.outbox_bare (LIKE crefinder.outbound_events INCLUDING ALL)")
        if args.explain:
            cur.execute("LOAD 'auto_explain'")
            for setting in ("auto_explain.log_min_duration = 200", "auto_explain.log_nested_statements = on",
                            "auto_explain.log_analyze = on", "auto_explain.log_timing = on",
                            "auto_explain.log_triggers = on"):
                cur.execute("SET " + setting)
        # rounds: plain INSERT, tick, then the due steps are put back as
        # they were; this VM's speed drifts, so each round's ratio is taken
        # from figures measured seconds apart, and the medians reported
        rounds = []
        for r in range(args.rounds):
            cur.execute("TRUNCATE public.outbox_copy, public.outbox_bare")
            plain = timed(cur, insert % "public.outbox_copy")
            plain_rows = cur.rowcount
            # and without them, for comparison
            bare = timed(cur, insert % "public.outbox_bare")
            tick = timed(cur, "SELECT crefinder.tick('2026-12-02 15:00+00', %s)", (due + 1,))
            advanced = cur.fetchone()[0]
            cur.execute("SELECT status, count(*) FROM crefinder.outbound_events GROUP BY 1 ORDER BY 1")
            statuses = cur.fetchall()
            print("round %d: tick advanced %d of %d due (%d active) in %.2f s = %.0f/s, outbox by status %r; "
                  "plain INSERT of %d rows %.2f s = %.0f rows/s, without foreign keys %.2f s = %.0f rows/s"
                  % (r + 1, advanced, due, n, tick, advanced / tick, statuses, plain_rows, plain,
                     plain_rows / plain, bare, plain_rows / bare))
            rounds.append((advanced / tick, plain_rows / plain, plain_rows / bare))
            if args.explain and r == 0:
                cur.execute("SET auto_explain.log_min_duration = -1")
                time.sleep(0.5)
                log = cluster.log()
                i = log.find("Query Text: WITH due")
                print(log[i - 300:] if i >= 0 else "(no plan)")
            if r + 1 < args.rounds:
                cur.execute("DELETE FROM crefinder.outbound_events")
                cur.execute("UPDATE crefinder.enrollments SET current_step = 0, attempts = 0, last_message_id = NULL, "
                            "next_step_at = '2026-12-02 15:00+00' WHERE id <= %s", (due,))
                cur.execute("VACUUM ANALYZE crefinder.enrollments")
                cur.execute("VACUUM ANALYZE crefinder.outbound_events")
        tick_rate = statistics.median(x[0] for x in rounds)
        plain_rate = statistics.median(x[1] for x in rounds)
        bare_rate = statistics.median(x[2] for x in rounds)
        ratio = statistics.median(x[0] / x[1] for x in rounds)
        bare_ratio = statistics.median(x[0] / x[2] for x in rounds)
        cur.execute("VACUUM crefinder.enrollments")
        idle = []
        for _ in range(30):
            idle.append(timed(cur, "SELECT crefinder.tick('2026-12-02 15:01+00')") * 1000)
        print("tick with nothing due (%d active enrollments, after a VACUUM): median %.2f ms, max %.2f ms over 30"
              % (n, statistics.median(idle), max(idle)))

        # --- 2: enqueue_trigger ---------------------------------------
        cur.execute("SET crefinder.user_id = %s", (TENANT,))
        cur.execute("SELECT crefinder.save_template('welcome', 'sms', 'Hi {{first_name | there}}, about {{street}}')")
        for table, form in (("leads", "statement"), ("leads_row", "row")):
            cur.execute("CREATE TABLE public.%s (owner_name text, phone text, street text)" % table)
            if form == "statement":
                cur.execute("CREATE TRIGGER t AFTER INSERT ON public.%s REFERENCING NEW TABLE AS new_rows "
                            "FOR EACH STATEMENT EXECUTE FUNCTION crefinder.enqueue_trigger('sms', 'welcome')" % table)
            else:
                cur.execute("CREATE TRIGGER t AFTER INSERT ON public.%s FOR EACH ROW "
                            "EXECUTE FUNCTION crefinder.enqueue_trigger('sms', 'welcome')" % table)
        results = []
        for table, count in (("leads", args.leads), ("leads_row", args.row_leads)):
            data = io.StringIO("".join("DOE JANE %d\t+1786%d\t%d Elm St\n" % (i, 2000000 + i, i)
                                       for i in range(count)))
            cur.execute("SELECT count(*) FROM crefinder.outbound_events")
            before = cur.fetchone()[0]
            started = time.perf_counter()
            cur.copy_expert("COPY public.%s FROM STDIN" % table, data)
            elapsed = time.perf_counter() - started
            cur.execute("SELECT count(*) FROM crefinder.outbound_events")
            queued = cur.fetchone()[0] - before
            results.append((table, count, elapsed, queued))
            print("COPY of %d leads into a table with the %s-level trigger: %.2f s = %.0f rows/s, %d messages stored"
                  % (count, "statement" if table == "leads" else "row", elapsed, count / elapsed, queued))

        print()
        print("%-64s %12s" % ("", "figure"))
        print("%-64s %12s" % ("tick: enrollments advanced per second", "{:,.0f}".format(tick_rate)))
        print("%-64s %12s" % ("plain INSERT into a copy of the outbox, rows per second",
                              "{:,.0f}".format(plain_rate)))
        print("%-64s %12.2f" % ("tick / plain INSERT (median of the rounds' ratios)", ratio))
        print("%-64s %12s" % ("plain INSERT without foreign keys, rows per second",
                              "{:,.0f}".format(bare_rate)))
        print("%-64s %12.2f" % ("tick / plain INSERT without foreign keys", bare_ratio))
        print("%-64s %12.2f" % ("tick with nothing due, median ms", statistics.median(idle)))
        print("%-64s %12s" % ("COPY with statement-level trigger, rows per second",
                              "{:,.0f}".format(results[0][1] / results[0][2])))
        print("%-64s %12s" % ("COPY with row-level trigger, rows per second",
                              "{:,.0f}".format(results[1][1] / results[1][2])))
    finally:
        cluster.cleanup()


if __name__ == "__main__":
    main()
