"""README's webhook route (the Python one) runs as written: it is taken from
README.md, started as a real HTTP server on 127.0.0.1 connected as a role
that has only grant_webhook_access(), and sent signed Twilio, SendGrid and
Vapi requests over HTTP, as the providers would."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlencode

from cluster import free_port
import test_webhooks as tw

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(os.path.dirname(HERE), "README.md")


def readme_route():
    text = open(README).read()
    section = text[text.index("### A route"):]
    return re.search(r"^```python\n(.*?)^```\n", section, re.M | re.S).group(1)


def post(url, body, headers):
    req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def test_readme_route_serves_webhooks(cluster):
    w = tw.World(cluster, "route")
    w.cur.execute("CREATE ROLE webhook_route LOGIN")
    w.cur.execute("SELECT crefinder.grant_webhook_access('webhook_route')")
    dbname = w.one("SELECT current_database() AS d")["d"]
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(readme_route())
        script = f.name
    env = dict(os.environ, PORT=str(port), PUBLIC_URL="https://app.example.com",
               DATABASE_URL="host=127.0.0.1 port=%d dbname=%s user=webhook_route" % (cluster.port, dbname))
    proc = subprocess.Popen([sys.executable, script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = "http://127.0.0.1:%d" % port
    try:
        for _ in range(100):
            try:
                post(base + "/nowhere", "", {})
                break
            except OSError:
                time.sleep(0.05)
        s = tw.sid()
        m = w.message(tw.A, "sms", tw.OWNER, s)
        # a status callback, signed over the public URL Twilio called
        params = [("MessageSid", s), ("MessageStatus", "delivered"), ("AccountSid", tw.ACCOUNT[tw.A])]
        public = "https://app.example.com/webhooks/twilio?tenant=a"
        status, ctype, body = post(base + "/webhooks/twilio?tenant=a", urlencode(params),
                                   {"X-Twilio-Signature": tw.twilio_signature(tw.TOKEN[tw.A], public, params),
                                    "Content-Type": "application/x-www-form-urlencoded",
                                    "I-Twilio-Idempotency-Token": "tok-" + s})
        assert (status, ctype) == (200, "text/xml") and "<Response/>" in body, (status, ctype, body)
        assert w.row(m)["status"] == "delivered"
        # an inbound STOP: TwiML with the confirmation
        params = [("MessageSid", tw.sid()), ("AccountSid", tw.ACCOUNT[tw.A]), ("From", tw.OWNER),
                  ("To", tw.NUMBER[tw.A]), ("Body", "STOP")]
        status, ctype, body = post(base + "/webhooks/twilio", urlencode(params),
                                   {"X-Twilio-Signature": tw.twilio_signature(
                                       tw.TOKEN[tw.A], "https://app.example.com/webhooks/twilio", params)})
        assert status == 200 and "<Message>" in body, (status, body)
        # a forged one: 401
        status, _, _ = post(base + "/webhooks/twilio", urlencode(params), {"X-Twilio-Signature": "forged"})
        assert status == 401
        # SendGrid, for the tenant in the path
        em = w.message(tw.A, "email", "one@example.com", "msgRoute")
        events = json.dumps([tw.sg_event("delivered", "one@example.com", em)]) + "\r\n"
        stamp = str(int(time.time()))
        status, _, _ = post(base + "/webhooks/sendgrid/" + tw.A, events,
                            {"X-Twilio-Email-Event-Webhook-Signature": tw.sendgrid_signature(w.keys[tw.A], stamp, events),
                             "X-Twilio-Email-Event-Webhook-Timestamp": stamp, "Content-Type": "application/json"})
        assert status == 200 and w.row(em)["status"] == "delivered"
        status, _, _ = post(base + "/webhooks/sendgrid/not-a-uuid", events, {})
        assert status == 404
        # Vapi: the headers as the route sees them
        call = str(uuid.uuid4())
        vm = w.message(tw.A, "voice", tw.OWNER, call)
        msg = json.dumps({"message": {"type": "status-update", "status": "in-progress",
                                      "call": tw.vapi_call(call, vm), "timestamp": 1}})
        status, ctype, body = post(base + "/webhooks/vapi", msg,
                                   {"X-Vapi-Secret": tw.VAPI_SECRET[tw.A], "Content-Type": "application/json"})
        assert (status, ctype) == (200, "application/json") and w.row(vm)["status"] == "delivered", (status, body)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.unlink(script)
        w.close()
