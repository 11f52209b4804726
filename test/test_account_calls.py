"""Synchronous provider calls: test_connection, phone numbers, templates,
unsubscribe groups; bounded, cancellable, and silent about secrets."""
import time

import psycopg2

from test_dispatcher import ACCOUNT, TOKEN, Setup


def test_account_calls(cluster):
    s = Setup(cluster)
    try:
        cur = s.cur
        for provider in ("twilio", "sendgrid", "vapi"):
            cur.execute("SELECT crefinder.test_connection(%s)", (provider,))
            assert cur.fetchone()[0] == {"ok": True, "http_status": 200, "detail": "credentials accepted"}
        cur.execute("SELECT * FROM crefinder.twilio_phone_numbers()")
        assert [r[0] for r in cur.fetchall()] == ["+13055550100", "+13055550199"]
        cur.execute("SELECT * FROM crefinder.sendgrid_templates()")
        assert cur.fetchall() == [("d-" + "1" * 32, "Intro")]
        cur.execute("SELECT * FROM crefinder.sendgrid_unsubscribe_groups()")
        assert cur.fetchall() == [(4242, "Outreach")]

        # Rejected credentials: ok false, and no secret in the answer or the error.
        s.configure("twilio", {"accountSid": ACCOUNT, "authToken": "cd" * 16, "phoneNumber": "+13055550100"})
        cur.execute("SELECT crefinder.test_connection('twilio')")
        result = cur.fetchone()[0]
        assert result == {"ok": False, "http_status": 401, "detail": "credentials rejected"}
        try:
            cur.execute("SELECT * FROM crefinder.twilio_phone_numbers()")
            raise AssertionError("expected an error")
        except psycopg2.Error as e:
            assert e.pgcode == "28000" and "cd" * 16 not in str(e), str(e)

        # A provider that does not answer: statement_timeout stops the call.
        s.sandbox.call("POST", "/_sandbox/faults", {"path": "/v3/scopes", "fault": "slow", "count": 1})
        cur.execute("SET statement_timeout = '300ms'")
        started = time.time()
        try:
            cur.execute("SELECT crefinder.test_connection('sendgrid')")
            raise AssertionError("expected a timeout")
        except psycopg2.Error as e:
            assert e.pgcode == "57014", e.pgcode
        assert time.time() - started < 3
        cur.execute("RESET statement_timeout")
        # Nothing listening: ok false with the reason.
        admin = cluster.connect(dbname="postgres")
        with admin.cursor() as a:
            a.execute("ALTER SYSTEM SET crefinder.vapi_api_url = 'http://127.0.0.1:1'")
            a.execute("SELECT pg_reload_conf()")
        admin.close()
        time.sleep(0.3)
        cur.execute("SELECT crefinder.test_connection('vapi')")
        result = cur.fetchone()[0]
        assert result["ok"] is False and result["http_status"] is None and "could not reach vapi" in result["detail"]
    finally:
        s.close()
