"""Several dispatcher workers (crefinder.dispatcher_workers, 2 in the test
cluster): helpers share a backlog without sending anything twice, limits that
need a memory of what was sent (Vapi's concurrent calls) hold, a worker that
restarts recovers only the rows it left in flight, and a worker asked to stop
lets its requests in flight finish first."""
import collections
import time
from urllib.parse import parse_qs

from test_dispatcher import PHONE_ID, VAPI_KEY, Setup


def test_helpers_share_a_backlog(cluster):
    s = Setup(cluster)
    try:
        cur = s.cur
        cur.execute("SELECT count(crefinder.send_sms('+1212' || (5550000 + i)::text, 'Hello ' || i)) "
                    "FROM generate_series(1, 3000) AS i")
        deadline = time.time() + 120
        while time.time() < deadline:
            cur.execute("SELECT count(*) FROM crefinder.outbound_events WHERE status IN ('queued', 'sending')")
            if cur.fetchone()[0] == 0:
                break
            time.sleep(0.2)
        cur.execute("SELECT status, count(*) FROM crefinder.outbound_events GROUP BY status")
        assert dict(cur.fetchall()) == {"sent": 3000}
        seen = collections.Counter(parse_qs(r["body"])["To"][0] for r in s.requests_to("/Messages.json"))
        assert len(seen) == 3000 and max(seen.values()) == 1
        cur.execute("SELECT count(DISTINCT claimed_by) FROM crefinder.outbound_events")
        assert cur.fetchone()[0] == 2, "the helper took no part"
        cur.execute("SELECT count(*) FILTER (WHERE sent > 0) FROM crefinder.dispatcher_status")
        assert cur.fetchone()[0] == 2
    finally:
        s.close()


def test_concurrent_call_limit(cluster):
    s = Setup(cluster)
    try:
        cur = s.cur
        s.configure("vapi", {"apiKey": VAPI_KEY, "orgId": "org-1", "phoneNumber": PHONE_ID,
                             "assistantId": "asst-default", "maxCallDuration": 600, "maxConcurrentCalls": 2})
        cur.execute("SELECT crefinder.record_consent('+1212555' || (7000 + i)::text, 'voice', 'express_written', "
                    "'form', '{}') FROM generate_series(1, 5) AS i")
        cur.execute("SELECT crefinder.start_call('+1212555' || (7000 + i)::text) FROM generate_series(1, 5) AS i")
        calls = [r[0] for r in cur.fetchall()]

        def sent():
            cur.execute("SELECT id FROM crefinder.outbound_events WHERE channel = 'voice' AND status = 'sent' "
                        "AND provider_status IS DISTINCT FROM 'ended' ORDER BY id")
            return [r[0] for r in cur.fetchall()]

        started = []
        for expected in (2, 2, 1):
            deadline = time.time() + 15
            while time.time() < deadline and len(sent()) < expected:
                time.sleep(0.1)
            time.sleep(1.0)      # nothing more may start while these calls last
            now = sent()
            assert len(now) == expected, now
            assert len(s.requests_to("/call")) == len(started) + expected
            cur.execute("SELECT count(*), min(last_error), max(attempts) FROM crefinder.outbound_events "
                        "WHERE channel = 'voice' AND status = 'queued'")
            waiting, reason, attempts = cur.fetchone()
            assert waiting == 5 - len(started) - expected
            if waiting:
                assert reason == "held: the tenant's maxConcurrentCalls calls are in progress"
                assert attempts == 0   # waiting for a free line is no attempt
            started += now
            # Vapi reports the calls over (the webhook will record this)
            cur.execute("UPDATE crefinder.outbound_events SET provider_status = 'ended' WHERE id = ANY(%s)",
                        (now,))
            cur.execute("SELECT crefinder.release_held_calls()")
            assert cur.fetchone()[0] == 5 - len(started)
        assert sorted(started) == sorted(calls)
    finally:
        s.close()


def test_worker_restart_recovers_only_its_own_rows(cluster):
    s = Setup(cluster)
    try:
        cur = s.cur
        # two rows a crash left in flight, one claimed by each worker
        cur.execute("BEGIN")
        cur.execute("SELECT crefinder.send_sms('+12125557100', 'one'), crefinder.send_sms('+12125557101', 'two')")
        mine, theirs = cur.fetchone()
        cur.execute("UPDATE crefinder.outbound_events SET status = 'sending', claimed_by = 1 WHERE id = %s", (mine,))
        cur.execute("UPDATE crefinder.outbound_events SET status = 'sending', claimed_by = 0 WHERE id = %s",
                    (theirs,))
        cur.execute("COMMIT")
        cur.execute("SELECT worker, pid FROM crefinder.dispatcher_status ORDER BY worker")
        pids = dict(cur.fetchall())
        cur.execute("SELECT pg_terminate_backend(%s)", (pids[1],))
        deadline = time.time() + 30
        while time.time() < deadline and s.row(mine)[0] == "sending":
            time.sleep(0.2)
        assert s.row(mine)[0] == "unknown"
        assert s.row(theirs)[0] == "sending"     # worker 0 may be sending it right now
        cur.execute("SELECT worker, pid FROM crefinder.dispatcher_status ORDER BY worker")
        now = dict(cur.fetchall())
        assert now[0] == pids[0] and now[1] not in (None, pids[1])
        assert not s.requests_to("/Messages.json")
        cur.execute("UPDATE crefinder.outbound_events SET status = 'cancelled' WHERE id = %s", (theirs,))
    finally:
        s.close()



def test_stop_lets_requests_in_flight_finish(cluster):
    s = Setup(cluster)
    try:
        cur = s.cur
        s.sandbox.call("POST", "/_sandbox/faults", {"path": "/2010-04-01", "fault": "slow", "seconds": 1,
                                                    "count": 3})
        cur.execute("SELECT crefinder.send_sms('+1212555' || (7200 + i)::text, 'slow') FROM generate_series(1, 3) i")
        ids = [r[0] for r in cur.fetchall()]
        deadline = time.time() + 10
        while time.time() < deadline and len(s.requests_to("/Messages.json")) < 3:
            time.sleep(0.05)
        cur.execute("SELECT worker, pid FROM crefinder.dispatcher_status WHERE in_flight > 0")
        busy = cur.fetchall()
        assert busy, "no request in flight"
        for _, pid in busy:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for m in ids:   # answered within the stop's grace: recorded, not left unknown
            assert s.wait_status(m, ("sent", "unknown")) == "sent", s.row(m)
        assert len(s.requests_to("/Messages.json")) == 3
        deadline = time.time() + 30
        while time.time() < deadline:
            cur.execute("SELECT bool_and(pid IS NOT NULL AND pid <> ALL(%s)) FROM crefinder.dispatcher_status "
                        "WHERE worker = ANY(%s)", ([p for _, p in busy], [w for w, _ in busy]))
            if cur.fetchone()[0]:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the stopped worker did not start again")
    finally:
        s.close()
