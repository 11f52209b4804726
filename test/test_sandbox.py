"""The sandbox provider answers as the providers do (shapes, credentials,
faults), so that tests built on it mean something."""
import base64
import json
import re
import urllib.error
import urllib.request

from cluster import Sandbox

ACCOUNT = "AC" + "0" * 32
TOKEN = "ab" * 16


def http(sandbox, method, path, body=b"", headers=None):
    req = urllib.request.Request(sandbox.url + path, data=body if method == "POST" else None,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


def test_provider_shapes_credentials_and_faults(cluster):
    sandbox = Sandbox()
    try:
        sandbox.call("POST", "/_sandbox/credentials",
                     {"twilio": [[ACCOUNT, TOKEN]], "sendgrid": ["SG.k.s"], "vapi": ["vk"]})
        path = "/2010-04-01/Accounts/%s/Messages.json" % ACCOUNT
        form = b"To=%2B12125550101&From=%2B13055550100&Body=Hi"
        status, _, body = http(sandbox, "POST", path, form, basic(ACCOUNT, "wrong"))
        assert status == 401 and json.loads(body)["code"] == 20003
        status, _, body = http(sandbox, "POST", path, form,
                               dict(basic(ACCOUNT, TOKEN), **{"Content-Type": "application/x-www-form-urlencoded"}))
        msg = json.loads(body)
        assert status == 201 and re.fullmatch(r"SM[0-9a-f]{32}", msg["sid"]) and msg["to"] == "+12125550101"

        status, headers, body = http(sandbox, "POST", "/v3/mail/send", b'{"personalizations": []}',
                                     {"Authorization": "Bearer SG.k.s"})
        assert status == 202 and body == b"" and headers.get("X-Message-Id")
        status, _, _ = http(sandbox, "POST", "/v3/mail/send", b"{}", {"Authorization": "Bearer nope"})
        assert status == 401

        status, _, body = http(sandbox, "POST", "/call", b'{"assistantId": "a", "customer": {"number": "+1"}}',
                               {"Authorization": "Bearer vk"})
        call = json.loads(body)
        assert status == 201 and call["status"] == "queued" and call["assistantId"] == "a"

        sandbox.call("POST", "/_sandbox/faults", {"path": "/call", "fault": "429-retry-after", "count": 1})
        status, headers, _ = http(sandbox, "POST", "/call", b"{}", {"Authorization": "Bearer vk"})
        assert status == 429 and headers.get("Retry-After") == "2"
        status, _, _ = http(sandbox, "POST", "/call", b"{}", {"Authorization": "Bearer vk"})
        assert status == 201

        assert len(sandbox.requests()) == 7
        sandbox.call("POST", "/_sandbox/reset")
        assert sandbox.requests() == []
    finally:
        sandbox.stop()
