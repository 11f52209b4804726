#!/usr/bin/python3
"""Dispatcher benchmarks: prints figures, asserts nothing.

A fast local sink (nginx from Debian, canned Twilio/SendGrid/Vapi answers)
stands in for the providers; wrk measures the sink's own capacity in the
same run.  Then, per channel: N messages queued in one transaction, and the
time from commit until every one is recorded sent.  Also: commit-to-request
latency when idle (nginx logs each request's arrival time), and the
dispatcher's resident memory during the run.

Usage: bench/dispatch_bench.py [--sms N] [--email N] [--calls N] [--twilio-calls N] [--explain-ms MS]
(--calls: Vapi's AI calls; --twilio-calls: Twilio bridge calls and voicemail drops, half each, then
the same number of texts again, so that calls and texts are measured side by side in one run)
Needs nginx and wrk (apt-get install nginx-light wrk).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test"))

from cluster import Cluster, free_port, stop_on_sigterm  # noqa: E402

import psycopg2.extras  # noqa: E402

TENANT = "bbbbbbbb-0000-4000-8000-0000000000b1"
ACCOUNT = "AC" + "1" * 32

NGINX_CONF = """
daemon off;
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 4096; }
http {
    log_format arrival '$msec $request_uri $request_length';
    access_log %(dir)s/access.log arrival buffer=64k flush=100ms;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_buffer_size 64k;
    server {
        listen 127.0.0.1:%(port)d;
        location ~ ^/2010-04-01/Accounts/[^/]+/Messages\\.json$ {
            default_type application/json;
            return 201 '{"sid":"SM$request_id","status":"queued"}';
        }
        location ~ ^/2010-04-01/Accounts/[^/]+/Calls\\.json$ {
            default_type application/json;
            return 201 '{"sid":"CA$request_id","status":"queued"}';
        }
        location = /v3/mail/send {
            add_header X-Message-Id $request_id;
            return 202;
        }
        location = /call {
            default_type application/json;
            return 201 '{"id":"$request_id","status":"queued"}';
        }
    }
}
"""


def rss_kb(pid):
    """Private resident memory (RssAnon): shared buffers the worker touches
    also count in VmRSS and would hide a leak or fake one."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def main():
    stop_on_sigterm()
    parser = argparse.ArgumentParser()
    parser.add_argument("--sms", type=int, default=100000)
    parser.add_argument("--explain-ms", type=int, default=-1,
                        help="log the plan of every statement slower than this (auto_explain)")
    parser.add_argument("--email", type=int, default=100000)
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--twilio-calls", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--rollup-rounds", type=int, default=2,
                        help="rounds of --sms texts with the analytics rollups kept and without (0: skip)")
    args = parser.parse_args()

    subprocess.run(["make", "-s"], cwd=os.path.join(HERE, ".."), check=True)
    subprocess.run(["make", "-s", "install"] if os.geteuid() == 0 else
                   ["sudo", "-n", "make", "-s", "install"], cwd=os.path.join(HERE, ".."), check=True)
    workdir = tempfile.mkdtemp(prefix="crefinder-sink-")
    port = free_port()
    with open(os.path.join(workdir, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF % {"dir": workdir, "port": port})
    sink = subprocess.Popen(["nginx", "-c", os.path.join(workdir, "nginx.conf"), "-p", workdir],
                            stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    sink_url = "http://127.0.0.1:%d" % port
    cluster = None
    try:
        # The sink's own capacity, POSTing like the dispatcher does.
        lua = os.path.join(workdir, "post.lua")
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = "To=%2B12125550101&From=%2B13055550100&Body=Hello"\n'
                    'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n')
        out = subprocess.run(["wrk", "-t1", "-c64", "-d5s", "-s", lua,
                              sink_url + "/2010-04-01/Accounts/%s/Messages.json" % ACCOUNT],
                             capture_output=True, text=True).stdout
        rps = [l for l in out.splitlines() if "Requests/sec" in l]
        print("sink capacity (wrk, 1 thread, 64 connections, POST): %s"
              % (rps[0].split(":")[1].strip() if rps else "?"))

        cluster = Cluster(extra_conf={
            "crefinder.twilio_api_url": "'%s'" % sink_url, "crefinder.sendgrid_api_url": "'%s'" % sink_url,
            "crefinder.vapi_api_url": "'%s'" % sink_url, "crefinder.dispatcher_enabled": "on",
            "crefinder.database": "'bench'", "crefinder.batch_size": str(args.batch_size),
            "shared_buffers": "512MB", "max_wal_size": "4GB", "synchronous_commit": "off",
            **({"shared_preload_libraries": "'pg_cron,crefinder,auto_explain'",
                "auto_explain.log_min_duration": str(args.explain_ms)} if args.explain_ms >= 0 else {})}).start()
        conn = cluster.fresh_database("bench")
        cur = conn.cursor()
        cur.execute("SET crefinder.user_id = %s", (TENANT,))
        cur.execute("INSERT INTO crefinder.tenant_settings (voice_window_start, voice_window_end, sms_window_start, "
                    "sms_window_end, whatsapp_window_start, whatsapp_window_end, voice_requires_consent, "
                    "call_window_start, call_window_end, voicemail_window_start, voicemail_window_end, "
                    "business_name, callback_number, agent_number) "
                    "VALUES ('00:00', '23:59:59', '00:00', '23:59:59', '00:00', '23:59:59', false, "
                    "'00:00', '23:59:59', '00:00', '23:59:59', 'Bench Capital', '+13055550100', '+13055550111')")
        # voicemail drops need a consent per number
        cur.execute("INSERT INTO crefinder.consents (contact, channel, kind, source) "
                    "SELECT '+1646' || (2000000 + i)::text, 'voicemail', 'express_written', 'bench' "
                    "FROM generate_series(1, %s) i", (args.twilio_calls,))
        # a sink takes calls at any hour: the operator lifts every region's window
        cur.execute("INSERT INTO crefinder.calling_rules (region, source, window_start, window_end) "
                    "SELECT DISTINCT region, 'operator', time '00:00', time '23:59:59' FROM crefinder.calling_rules")
        for provider, config in [
                ("twilio", {"accountSid": ACCOUNT, "authToken": "ab" * 16, "phoneNumber": "+13055550100",
                            "voiceWebhookUrl": "https://app.example.com/webhooks/twilio/voice"}),
                ("sendgrid", {"apiKey": "SG.bench.key", "fromEmail": "deals@example.com"}),
                ("vapi", {"apiKey": "vapi-bench", "orgId": "o", "phoneNumber": "p", "assistantId": "a",
                          "maxConcurrentCalls": 10000})]:
            cur.execute("SELECT crefinder.configure(%s, %s)", (provider, psycopg2.extras.Json(config)))
        worker = None
        deadline = time.time() + 30    # the worker retries every 5 s until its database exists
        while worker is None and time.time() < deadline:
            time.sleep(0.2)
            cur.execute("SELECT array_agg(pid ORDER BY worker) FROM crefinder.dispatcher_status "
                        "HAVING bool_and(state IN ('idle', 'sending'))")
            row = cur.fetchone()
            worker = row[0] if row else None
        print("dispatcher workers %r, private resident kB at start %r" % (worker, [rss_kb(w) for w in worker]))

        # Idle commit-to-request latency.
        log = os.path.join(workdir, "access.log")
        samples = []
        for i in range(40):
            time.sleep(0.2)
            size = os.path.getsize(log) if os.path.exists(log) else 0
            cur.execute("SELECT crefinder.send_sms(%s, 'latency')", ("+1212555%04d" % i,))
            committed = time.time()   # autocommit: committed when execute returns
            deadline = time.time() + 5
            while time.time() < deadline:
                time.sleep(0.12)      # nginx flushes its log every 100 ms
                if os.path.exists(log) and os.path.getsize(log) > size:
                    with open(log) as f:
                        f.seek(size)
                        line = f.readline()
                    samples.append((float(line.split()[0]) - committed) * 1000)
                    break
        print("idle commit-to-request latency over %d sends: median %.2f ms, p90 %.2f ms "
              "(nginx $msec has millisecond resolution)"
              % (len(samples), statistics.median(samples), sorted(samples)[int(len(samples) * 0.9)]))

        def outcomes():
            """Messages the dispatcher has recorded since it started: read from
            shared memory, so that watching costs the server nothing."""
            cur.execute("SELECT sum(sent + failed + blocked), sum(failed) FROM crefinder.dispatcher_status")
            return cur.fetchone()

        def run(channel, n, sql):
            if n == 0:
                return
            before, failed_before = outcomes()
            cur.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            xacts_before = cur.fetchone()[0]
            t0 = time.time()
            cur.execute(sql, (n,))
            queued = time.time() - t0
            committed = time.time()
            rss = []
            while True:
                recorded, failed = outcomes()
                rss.append([rss_kb(w) for w in worker])
                if recorded - before >= n:
                    break
                time.sleep(0.02)
            elapsed = time.time() - committed
            cur.execute("SELECT count(*) FROM crefinder.outbound_events "
                        "WHERE channel = %s AND status IN ('queued', 'sending')", (channel,))
            left = cur.fetchone()[0]
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            xacts = cur.fetchone()[0] - xacts_before
            print("%s: %d queued in %.1f s (%.0f/s enqueue, compliance included); "
                  "commit -> all recorded sent: %.2f s = %.0f messages/s; failed %d; left %d; "
                  "%d transactions; dispatcher private resident kB per worker at start %r, middle %r, end %r"
                  % (channel, n, queued, n / queued, elapsed, n / elapsed, failed - failed_before, left,
                     xacts, rss[0], rss[len(rss) // 2], rss[-1]))
            return n / queued, n / elapsed

        run("sms", args.sms, "SELECT count(crefinder.send_sms('+1212' || (2000000 + i)::text, 'Hello')) "
                             "FROM generate_series(1, %s) i")
        run("email", args.email, "SELECT count(crefinder.send_email('owner' || i || '@example.com', 'Offer', "
                                 "text_body => 'Hello')) FROM generate_series(1, %s) i")
        run("voice", args.calls, "SELECT count(crefinder.start_call('+1305' || (2000000 + i)::text)) "
                                 "FROM generate_series(1, %s) i")
        # Twilio calls beside texts, in the same run: bridges and drops, then as many texts
        half = args.twilio_calls // 2
        # (an agent takes one bridge at a time: each bridge its own agent here)
        run("call", half, "SELECT count(crefinder.bridge_call('+1718' || (2000000 + i)::text, "
                          "'+1917' || (2000000 + i)::text)) FROM generate_series(1, %s) i")
        run("voicemail", half, "SELECT count(crefinder.drop_voicemail('+1646' || (2000000 + i)::text, "
                               "say_text => 'We buy buildings.')) FROM generate_series(1, %s) i")
        run("sms", args.twilio_calls, "SELECT count(crefinder.send_sms('+1347' || (2000000 + i)::text, 'Hello')) "
                                      "FROM generate_series(1, %s) i")
        # the analytics rollups' cost: the same texts with the rollup
        # triggers on and off, in alternating rounds of one run
        rates = {"kept": [], "off": []}
        for r in range(args.rollup_rounds):
            for mode in ("kept", "off"):
                cur.execute("ALTER TABLE crefinder.outbound_events %s TRIGGER roll_up_inserts, "
                            "%s TRIGGER roll_up_updates, %s TRIGGER roll_up_deletes"
                            % ((("ENABLE" if mode == "kept" else "DISABLE"),) * 3))
                print("rollups %s, round %d:" % (mode, r + 1), end=" ")
                rates[mode].append(run("sms", args.sms, "SELECT count(crefinder.send_sms('+1212' || (3000000 + i)::text, "
                                                        "'Hello')) FROM generate_series(1, %s) i"))
        cur.execute("ALTER TABLE crefinder.outbound_events ENABLE TRIGGER roll_up_inserts, "
                    "ENABLE TRIGGER roll_up_updates, ENABLE TRIGGER roll_up_deletes")
        if args.rollup_rounds:
            for i, what in ((0, "enqueue (send_sms)"), (1, "dispatch (commit -> recorded sent)")):
                kept = statistics.median(x[i] for x in rates["kept"])
                off = statistics.median(x[i] for x in rates["off"])
                print("%s with rollups kept: %.0f/s, without: %.0f/s, cost %.1f%%"
                      % (what, kept, off, 100 * (1 - kept / off)))
        cur.execute("SELECT worker, sent, failed, retried FROM crefinder.dispatcher_status ORDER BY worker")
        print("dispatcher_status worker/sent/failed/retried: %r" % (cur.fetchall(),))
        conn.close()
    finally:
        if cluster:
            cluster.cleanup()
        sink.terminate()
        sink.wait()
        subprocess.run(["rm", "-rf", workdir])


if __name__ == "__main__":
    main()
