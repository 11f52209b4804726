"""Crash safety of the outbox: with thousands of messages in flight, kill
the dispatcher (SIGKILL) and, separately, stop the server in immediate
mode.  After restart every message ends sent, failed, blocked or unknown,
none stays queued or sending, and the provider saw each message at most
once."""
import collections
import json
import os
import signal
import time

import psycopg2

from cluster import TEST_DATABASE
from test_dispatcher import TENANT, Setup

MESSAGES = 10000


def connect_again(cluster, deadline):
    while True:
        try:
            conn = cluster.connect(dbname=TEST_DATABASE)
            with conn.cursor() as cur:
                cur.execute("SET crefinder.user_id = %s", (TENANT,))
            return conn
        except psycopg2.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def counts(cluster, deadline):
    while True:
        try:
            conn = connect_again(cluster, deadline)
            with conn.cursor() as cur:
                cur.execute("SELECT status, count(*) FROM crefinder.outbound_events GROUP BY status")
                result = dict(cur.fetchall())
            conn.close()
            return result
        except psycopg2.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def wait_sent_at_least(cluster, n, deadline):
    while time.time() < deadline:
        c = counts(cluster, deadline)
        if c.get("sent", 0) >= n:
            return c
        time.sleep(0.05)
    raise AssertionError("fewer than %d sent: %r" % (n, counts(cluster, deadline)))


def wait_settled(cluster, deadline):
    while time.time() < deadline:
        c = counts(cluster, deadline)
        if c.get("queued", 0) == 0 and c.get("sending", 0) == 0:
            return c
        time.sleep(0.2)
    raise AssertionError("messages still queued or sending: %r" % counts(cluster, deadline))


def test_kill_and_immediate_stop_lose_and_repeat_nothing(cluster):
    s = Setup(cluster)
    deadline = time.time() + 600
    try:
        s.cur.execute("SELECT count(crefinder.send_email('owner' || i || '@example.com', 'Offer', "
                      "text_body => 'Hello')) FROM generate_series(1, %s) AS i", (MESSAGES,))
        assert s.cur.fetchone()[0] == MESSAGES

        # 1. SIGKILL the dispatcher mid-flight (the postmaster then restarts every process).
        wait_sent_at_least(cluster, 1000, deadline)
        s.cur.execute("SELECT pid FROM crefinder.dispatcher_status WHERE worker = 0")
        os.kill(s.cur.fetchone()[0], signal.SIGKILL)
        s.conn.close()

        # 2. An immediate stop of the whole server mid-flight.
        # Emails travel 1,000 to a request: the first phase may have left
        # fewer than 1,000 queued.  Stop once half of what is left is sent.
        left = counts(cluster, deadline)
        before = left.get("sent", 0)
        wait_sent_at_least(cluster, before + min(1000, left.get("queued", 0) // 2), deadline)
        cluster.crash_restart()

        final = wait_settled(cluster, deadline)
        assert set(final) <= {"sent", "failed", "blocked", "unknown"}, final
        assert sum(final.values()) == MESSAGES, final

        seen = collections.Counter()
        for r in s.sandbox.requests():
            if r["path"] == "/v3/mail/send":
                for p in json.loads(r["body"])["personalizations"]:
                    seen[int(p["custom_args"]["crefinder_message_id"])] += 1
        repeated = [m for m, n in seen.items() if n > 1]
        assert not repeated, "sent more than once: %r" % repeated[:10]
        conn = connect_again(cluster, deadline)
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM crefinder.outbound_events WHERE status = 'sent'")
            sent = {r[0] for r in cur.fetchall()}
        conn.close()
        assert sent <= set(seen), "recorded sent but never seen: %d" % len(sent - set(seen))
        print("crash test: %r; provider saw %d distinct messages" % (final, len(seen)))
    finally:
        s.close()
