#!/usr/bin/python3
"""The sandbox provider: a local stand-in for Twilio, SendGrid and Vapi.

Speaks the endpoints crefinder calls, with the providers' real response
shapes (Twilio 201 Message JSON with an SM + 32 hex sid, SendGrid 202 with
X-Message-Id, Vapi 201 Call JSON), checks credentials, records every
request, and injects faults on command.  Listens on 127.0.0.1 only.
Twilio scheduling as Twilio does it: SendAt + ScheduleType=fixed through a
messaging service gives a "scheduled" message (SendAt 15 minutes to 35 days
ahead, else 400 code 35114); POST .../Messages/{sid}.json Status=canceled
cancels a scheduled one (200), 404 code 20404 for an unknown sid.

Prices and lost callbacks: the sandbox keeps every message and call it
was given.  GET .../Messages/{sid}.json and GET /call/{id} answer with them
as the provider knows them; a test moves them on (the carrier delivered,
the call ended) through the control endpoints below and may then send the
matching webhook, or not: a callback the provider "lost".  A message moved
to sent or a final status gets Twilio's price (-0.0079 USD a segment; none
when failed) unless the test gives one (null: the price is not known yet).

Control endpoints (JSON):
  POST /_sandbox/credentials  {"twilio": [[user, password], ...], "sendgrid": [key, ...], "vapi": [key, ...]}
  POST /_sandbox/faults       {"path": prefix, "fault": kind, "count": n}   kinds: 429, 429-retry-after,
                              500, 503, slow, drop, malformed, 400, 21610, 401, 404-html
                              (slow: "seconds": s, else $SANDBOX_SLOW_SECONDS or 5)
  GET  /_sandbox/requests     every request so far: method, path, headers, body, at
  POST /_sandbox/reset        forget requests and faults (credentials stay)
  POST /_sandbox/twilio/messages/{sid}   fields to set on the message (status, error_code, price, ...)
  POST /_sandbox/vapi/calls/{id}         fields to set on the call (status, endedReason, cost, artifact, ...)

Run: test/sandbox.py [PORT]  (prints "listening PORT" once ready; PORT 0 picks a free one).
"""
import base64
import calendar
import json
import os
import secrets
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
STATE = {"requests": [], "faults": [], "twilio": set(), "sendgrid": set(), "vapi": set(),
         "messages": {},   # Twilio message sid -> its resource (status scheduled, canceled, ...)
         "calls": {}}      # Vapi call id -> the call
PRICE_PER_SEGMENT = 0.0079    # USD, as Twilio bills a US text
PRICED = {"delivered", "undelivered", "read", "sent"}    # Twilio does not charge failed messages


def segments(body):
    # GSM-7 sizes are close enough here: 160 in one, 153 per part beyond
    return "1" if len(body) <= 160 else str(-(-len(body) // 153))
SENDAT_MIN, SENDAT_MAX = 900, 35 * 86400   # Twilio schedules 15 minutes to 35 days ahead


def take_fault(path):
    with LOCK:
        for f in STATE["faults"]:
            if path.startswith(f["path"]) and f["count"] > 0:
                f["count"] -= 1
                return f
    return {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "crefinder-sandbox/1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body=b"", content_type="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self, method):
        body = self.read_body()
        if len(body) < int(self.headers.get("Content-Length") or 0):
            # the client went away in the middle of its request (a killed
            # dispatcher): like a real provider, never process half a request
            self.close_connection = True
            return
        url = urlsplit(self.path)
        if url.path.startswith("/_sandbox/"):
            return self.control(method, url.path, body)
        with LOCK:
            STATE["requests"].append({"method": method, "path": self.path,
                                      "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": body.decode("utf-8", "replace"), "at": time.time()})
        taken = take_fault(url.path)
        fault = taken.get("fault")
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault == "slow":
            time.sleep(float(taken.get("seconds") or os.environ.get("SANDBOX_SLOW_SECONDS", "5")))
        elif fault == "429":
            return self.reply(429, {"code": 20429, "message": "Too Many Requests", "status": 429})
        elif fault == "429-retry-after":
            return self.reply(429, {"code": 20429, "message": "Too Many Requests", "status": 429},
                              headers={"Retry-After": "2", "X-RateLimit-Reset": str(int(time.time()) + 2)})
        elif fault in ("500", "503"):
            return self.reply(int(fault), {"message": "Service unavailable", "status": int(fault)})
        elif fault == "malformed":
            return self.reply(201 if "Messages" in url.path or url.path == "/call" else 202,
                              b"{not json", headers={})
        elif fault == "400":
            return self.reply(400, {"code": 21211, "message": "The 'To' number is not a valid phone number.",
                                    "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400})
        elif fault == "21610":
            return self.reply(400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                                    "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400})
        elif fault == "404-html":
            return self.reply(404, b"<html><body>Not Found</body></html>", content_type="text/html")
        elif fault == "401":
            return self.reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
        return self.route(method, url, body)

    def basic_auth(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return None
        return (user, password)

    def bearer(self):
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def route(self, method, url, body):
        parts = url.path.strip("/").split("/")
        # Twilio
        if parts[:2] == ["2010-04-01", "Accounts"] and len(parts) >= 3:
            creds = self.basic_auth()
            if creds is None or tuple(creds) not in STATE["twilio"]:
                return self.reply(401, {"code": 20003, "message": "Authenticate",
                                        "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})
            account = parts[2].removesuffix(".json")
            if len(parts) == 3 and method == "GET":
                return self.reply(200, {"sid": account, "status": "active", "friendly_name": "sandbox"})
            if parts[3:] == ["Messages.json"] and method == "POST":
                form = parse_qs(body.decode(), keep_blank_values=True)
                sid = "SM" + secrets.token_hex(16)
                scheduled = False
                if "ScheduleType" in form and "MessagingServiceSid" in form:
                    # without a messaging service Twilio sends at once
                    try:
                        at = calendar.timegm(time.strptime(form["SendAt"][0], "%Y-%m-%dT%H:%M:%SZ"))
                    except (KeyError, ValueError):
                        return self.reply(400, {"code": 35111, "message": "SendAt timestamp is missing",
                                                "status": 400})
                    if form["ScheduleType"][0] != "fixed" or not SENDAT_MIN <= at - time.time() <= SENDAT_MAX:
                        return self.reply(400, {"code": 35114, "status": 400,
                                                "message": "Scheduling does not support this timestamp"})
                    scheduled = True
                resource = {
                    "sid": sid, "account_sid": account, "status": "scheduled" if scheduled else "queued",
                    "to": form.get("To", [None])[0], "from": form.get("From", [None])[0],
                    "messaging_service_sid": form.get("MessagingServiceSid", [None])[0],
                    "body": form.get("Body", [""])[0], "num_segments": segments(form.get("Body", [""])[0]),
                    "num_media": str(len(form.get("MediaUrl", []))),
                    "price": None, "price_unit": "USD", "error_code": None, "error_message": None,
                    "direction": "outbound-api", "api_version": "2010-04-01",
                    "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
                    "uri": "/2010-04-01/Accounts/%s/Messages/%s.json" % (account, sid)}
                with LOCK:
                    STATE["messages"][sid] = resource
                return self.reply(201, resource)
            if len(parts) == 5 and parts[3] == "Messages" and parts[4].endswith(".json") and method == "GET":
                with LOCK:
                    resource = dict(STATE["messages"].get(parts[4][:-5]) or {})
                if not resource or resource["account_sid"] != account:
                    return self.reply(404, {"code": 20404, "message": "The requested resource %s was not found"
                                            % url.path, "status": 404})
                return self.reply(200, resource)
            if len(parts) == 5 and parts[3] == "Messages" and parts[4].endswith(".json") and method == "POST":
                form = parse_qs(body.decode(), keep_blank_values=True)
                with LOCK:
                    resource = STATE["messages"].get(parts[4][:-5])
                    if resource is not None and resource["account_sid"] != account:
                        resource = None
                    cancelable = resource is not None and resource["status"] == "scheduled"
                    if cancelable and form.get("Status") == ["canceled"]:
                        resource["status"] = "canceled"
                    resource = dict(resource or {})
                if not resource:
                    return self.reply(404, {"code": 20404, "message": "The requested resource %s was not found"
                                            % url.path, "status": 404})
                if not cancelable or form.get("Status") != ["canceled"]:
                    return self.reply(400, {"code": 21220, "status": 400,
                                            "message": "Invalid parameter: the message cannot be canceled"})
                return self.reply(200, resource)
            if parts[3:] == ["IncomingPhoneNumbers.json"] and method == "GET":
                return self.reply(200, {"incoming_phone_numbers": [
                    {"phone_number": "+13055550100", "capabilities": {"sms": True, "voice": True, "mms": True}},
                    {"phone_number": "+13055550199", "capabilities": {"sms": True, "voice": False, "mms": False}}],
                    "next_page_uri": None})
            return self.reply(404, {"code": 20404, "message": "Not found", "status": 404})
        # SendGrid
        if parts[:1] == ["v3"]:
            if self.bearer() not in STATE["sendgrid"]:
                return self.reply(401, {"errors": [{"field": None, "message": "authorization required"}]})
            if parts == ["v3", "mail", "send"] and method == "POST":
                try:
                    json.loads(body)
                except ValueError:
                    return self.reply(400, {"errors": [{"field": None, "message": "Bad Request"}]})
                return self.reply(202, b"", headers={"X-Message-Id": secrets.token_urlsafe(16)})
            if parts == ["v3", "scopes"]:
                return self.reply(200, {"scopes": ["mail.send"]})
            if parts == ["v3", "templates"]:
                return self.reply(200, {"result": [{"id": "d-" + "1" * 32, "name": "Intro"}]})
            if parts == ["v3", "asm", "groups"]:
                return self.reply(200, [{"id": 4242, "name": "Outreach"}])
            return self.reply(404, {"errors": [{"message": "not found"}]})
        # Vapi
        if parts == ["call"] and method == "POST":
            if self.bearer() not in STATE["vapi"]:
                return self.reply(401, {"message": "Invalid Key. Hot tip, make sure you're using the private key.",
                                        "error": "Unauthorized", "statusCode": 401})
            req = json.loads(body or b"{}")
            now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            call = {"id": str(uuid.uuid4()), "orgId": str(uuid.uuid4()),
                    "type": "outboundPhoneCall", "status": "queued",
                    "assistantId": req.get("assistantId"),
                    "phoneNumberId": req.get("phoneNumberId"),
                    "customer": req.get("customer"),
                    "assistantOverrides": req.get("assistantOverrides"),
                    "createdAt": now, "updatedAt": now}
            with LOCK:
                STATE["calls"][call["id"]] = call
            return self.reply(201, call)
        if len(parts) == 2 and parts[0] == "call" and method == "GET":
            if self.bearer() not in STATE["vapi"]:
                return self.reply(401, {"message": "Invalid Key", "error": "Unauthorized", "statusCode": 401})
            with LOCK:
                call = STATE["calls"].get(parts[1])
                call = json.loads(json.dumps(call)) if call is not None else None
            if call is None:
                return self.reply(404, {"message": "Couldn't Get Call. Call Not Found.", "error": "Not Found",
                                        "statusCode": 404})
            return self.reply(200, call)
        if parts == ["assistant"] and method == "GET":
            if self.bearer() not in STATE["vapi"]:
                return self.reply(401, {"message": "Invalid Key", "statusCode": 401})
            return self.reply(200, [])
        return self.reply(404, {"message": "not found"})

    def control(self, method, path, body):
        if path == "/_sandbox/credentials" and method == "POST":
            data = json.loads(body)
            with LOCK:
                STATE["twilio"] |= {tuple(c) for c in data.get("twilio", [])}
                STATE["sendgrid"] |= set(data.get("sendgrid", []))
                STATE["vapi"] |= set(data.get("vapi", []))
            return self.reply(200, {"ok": True})
        if path == "/_sandbox/faults" and method == "POST":
            with LOCK:
                STATE["faults"].append(json.loads(body))
            return self.reply(200, {"ok": True})
        if path == "/_sandbox/requests":
            with LOCK:
                return self.reply(200, STATE["requests"])
        if path.startswith("/_sandbox/twilio/messages/") and method == "POST":
            changes = json.loads(body)
            with LOCK:
                resource = STATE["messages"].get(path.rsplit("/", 1)[1])
                if resource is None:
                    return self.reply(404, {"message": "no such message"})
                if changes.get("status") in PRICED and "price" not in changes:
                    changes["price"] = "%.5f" % -(PRICE_PER_SEGMENT * int(resource["num_segments"]))
                resource.update(changes)
                resource["date_updated"] = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
                return self.reply(200, resource)
        if path.startswith("/_sandbox/vapi/calls/") and method == "POST":
            changes = json.loads(body)
            with LOCK:
                call = STATE["calls"].get(path.rsplit("/", 1)[1])
                if call is None:
                    return self.reply(404, {"message": "no such call"})
                call.update(changes)
                return self.reply(200, call)
        if path == "/_sandbox/reset" and method == "POST":
            with LOCK:
                STATE["requests"].clear()
                STATE["faults"].clear()
                STATE["messages"].clear()
                STATE["calls"].clear()
            return self.reply(200, {"ok": True})
        return self.reply(404, {"message": "no such control endpoint"})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # every dispatcher worker opens up to crefinder.max_connections at once: a
    # short accept queue would leave requests waiting in the kernel until the
    # dispatcher has given up on them
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # a client that goes away (a killed dispatcher) is no error here
        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = Server(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("listening %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
