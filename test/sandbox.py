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

Twilio Programmable Voice, as Twilio does it (Basic auth as for Messages):
  POST .../Calls.json       form-urlencoded, keys may repeat (StatusCallbackEvent).  201 + Call
                            (sid CA + 32 hex, status queued, direction outbound-api, price null, ...),
                            or 400 with Twilio's codes: 21201 no To, 21213 no From, 21211 To not E.164,
                            21212 From not E.164, 21205 no Url/Twiml/ApplicationSid or Url (FallbackUrl)
                            not absolute http(s), 21218 ApplicationSid not registered (below), 21209
                            Method not GET/POST, 21208 Timeout not 1-600, 21206 SendDigits, 21234
                            MachineDetection not Enable/DetectMessageEnd, 21626 StatusCallbackEvent
                            not initiated/ringing/answered/completed, 21609 StatusCallback not a URL.
                            Url wins over Twiml, as Twilio documents; faults apply as to Messages.json.
  GET  .../Calls/{sid}.json the call as Twilio knows it now; 404 code 20404 (unknown, another account's)
  POST .../Calls/{sid}.json Status=canceled while queued or ringing, Status=completed while in progress
                            (hangs up) -> 200; else 400 code 21220.  The sandbox redirects no live call.
Each call then plays out in a thread of its own with at most STEP (10 ms) between steps: durations
are simulated numbers, so a 20 s call takes milliseconds, and its Timestamps and end_time are on a
simulated clock that starts when the call is created (they lie ahead of the wall clock).
  1. Status callbacks, to StatusCallback (StatusCallbackMethod, default POST) for the events of
     StatusCallbackEvent (none given: completed only, Twilio's default; no StatusCallback: none):
     initiated (CallStatus=initiated), ringing (CallStatus=ringing), answered (in-progress), and
     completed with CallStatus completed/busy/no-answer/failed/canceled, CallDuration (seconds)
     and Duration (minutes, rounded up; 0 when not answered).  busy and failed never ring.
     Parameters: AccountSid ApiVersion CallSid CallStatus Called Caller Direction From To
     CallbackSource=call-progress-events SequenceNumber (0, 1, ... per call, a lost one counted)
     Timestamp (RFC 2822), and AnsweredBy once machine detection has answered.
  2. Answered: the Url (Method, default POST) is asked for TwiML with AccountSid ApiVersion CallSid
     CallStatus=in-progress Called Caller Direction=outbound-api From To (+ AnsweredBy with
     MachineDetection, ApplicationSid for an application's call).  AnsweredBy: the behaviour's
     answered_by, which Enable reports as machine_start for any machine, and DetectMessageEnd
     as machine_end_other for machine_start.  A failed fetch goes to FallbackUrl, if any, with
     ErrorCode and ErrorUrl added.  Twiml (inline) is played without a fetch.
  3. The TwiML, checked by test/twiml.py as strictly as Twilio: Say, Play, Pause (logged; no audio
     fetched), Gather (its prompts; then the next entry of the behaviour's digits, cut at
     finishOnKey (default #) or numDigits: with digits its action (default the document's URL,
     relative ones resolved against it; method default POST) is posted the call's parameters +
     Digits + FinishedOnKey and its TwiML replaces the rest of the document; without, the next
     verb, or with actionOnEmptyResult=true the action without Digits), Dial (below), Hangup.
     The end of a document ends the call.  An application error ends it too, logged with
     Twilio's code and message and kept as the call's "error" (control view only): 12100 not
     XML, 12200 a verb, attribute, nesting or value Twilio refuses, 11200 a non-2xx answer,
     no answer, or a target the sandbox will not contact, 11205 no connection (after Twilio's
     one retry, same idempotency token), 12300 a Content-Type not text/xml or application/xml,
     11100 an action with no URL to resolve it against.  Redirects are not followed.
  4. Dial: each Number (or the bare number) is a child call, direction outbound-dial, with its
     own resource (parent_call_sid) and log, and the status callbacks of the Number's
     statusCallback / statusCallbackEvent (default completed) / statusCallbackMethod; it answers
     as the dialled number's behaviour says.  The sandbox tries the Numbers in turn (Twilio
     rings them at once) until one connects.  Answered with a url attribute: the whisper, posted
     AccountSid ApiVersion CallSid (the child's) ParentCallSid CallStatus=in-progress Called
     Caller Direction=outbound-dial From (callerId, else the parent's From) To (the number);
     its TwiML may hold Say, Play, Pause, Hangup; a Hangup leaves the party unconnected
     (DialCallStatus no-answer), an error there fails the leg (failed).  Then the Dial's action,
     if any, is posted the parent's parameters + DialCallSid DialCallStatus (completed, busy,
     no-answer, failed) DialCallDuration (the leg's talk, connected only) and, when record is
     not do-not-record, RecordingSid RecordingUrl (Twilio's address; not served) RecordingDuration; its TwiML
     goes on.  Without an action, the verb after the Dial.
  5. The end: status, duration (string; talk_seconds + the simulated time of the Dial legs, capped
     by TimeLimit; "0" when not answered; a hang-up through the API: the real seconds in
     progress), start_time, end_time, answered_by (null without MachineDetection), price
     "-0.01400" per started minute (null when not answered), for child calls too.
Every request the sandbox sends is signed as Twilio signs: X-Twilio-Signature = base64(HMAC-SHA1(auth
token, full URL + each POST parameter's name and value, sorted by name)) (a GET carries the
parameters in its URL and signs that alone), I-Twilio-Idempotency-Token (fresh per request, kept
by a retry), Content-Type application/x-www-form-urlencoded.  The auth token is the password paired
with the call's AccountSid in the credentials, or twilio_auth_tokens' (accounts that use an API key);
without one nothing is sent (logged).  Only 127.0.0.1, localhost and ::1 are ever contacted: any other
target is logged and not requested (a document: an application error; a status callback: dropped).

Control endpoints (JSON):
  POST /_sandbox/credentials  {"twilio": [[user, password], ...], "sendgrid": [key, ...], "vapi": [key, ...],
                               "twilio_auth_tokens": {"AC...": token}}
  POST /_sandbox/faults       {"path": prefix, "fault": kind, "count": n}   kinds: 429, 429-retry-after,
                              500, 503, slow, drop, malformed, 400, 21610, 401, 404-html
                              (slow: "seconds": s, else $SANDBOX_SLOW_SECONDS or 5)
  GET  /_sandbox/requests     every request so far: method, path, headers, body, at
  POST /_sandbox/reset        forget requests, faults, messages, calls (stopping their play-outs) and
                              call behaviours (credentials and applications stay)
  POST /_sandbox/twilio/messages/{sid}   fields to set on the message (status, error_code, price, ...)
  POST /_sandbox/vapi/calls/{id}         fields to set on the call (status, endedReason, cost, artifact, ...)
  POST /_sandbox/twilio/call_behaviour   {"to": "+1...", fields} how calls to that number go (replacing
                              what was set for it), or {"reset": true} to forget them all.  Fields (defaults):
                              outcome "answered" | "busy" | "no-answer" | "failed";
                              answered_by "human" | "machine_start" | "machine_end_beep" | "machine_end_silence"
                                | "machine_end_other" | "fax" | "unknown" (reported only with MachineDetection);
                              digits [] one string per Gather met, in order ("" or missing: no input);
                              talk_seconds 20; ring_seconds 4; lose_callbacks false (true: its status
                              callbacks are never sent, as if lost); hold_ringing 0, hold_in_progress 0
                              (real seconds, at most 10, the call waits ringing / in progress before it
                              goes on: time for a test to cancel it or hang it up)
  POST /_sandbox/twilio/applications     {"sid": "AP...", "voice_url": ..., "voice_method": "POST",
                              "status_callback": ..., "status_callback_method": "POST"} for ApplicationSid
  GET  /_sandbox/twilio/calls            every call's resource (Dial legs included), oldest first
  GET  /_sandbox/twilio/calls/{sid}[?wait=s]  {"resource": (+ "error"), "log": [...], "finished": bool};
                              wait: up to s seconds until the play-out is over.  The log, in order:
                              {"kind": status|fetch|fallback|gather|dial|whisper, "method", "url", "params",
                               "status", "content_type", "body", "signature", "idempotency_token",
                               "attempts"} (or "lost": true, or "failure": why it was not sent/answered),
                              {"verb": say (text, voice, ...)|play (url)|pause (length)|gather (digits,
                               pressed)|dial (number, outcome, call_sid)|send_digits|hangup, "leg": child sid
                               in a whisper}, {"error": code, "message"}

Run: test/sandbox.py [PORT]  (prints "listening PORT" once ready; PORT 0 picks a free one).
"""
import base64
import calendar
import hashlib
import hmac
import http.client
import json
import math
import os
import re
import secrets
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import twiml    # test/twiml.py: the TwiML checks, shared with the tests

LOCK = threading.Lock()
STATE = {"requests": [], "faults": [], "twilio": set(), "sendgrid": set(), "vapi": set(),
         "messages": {},   # Twilio message sid -> its resource (status scheduled, canceled, ...)
         "calls": {},      # Vapi call id -> the call
         "twilio_calls": {},         # Twilio call sid -> its entry (resource, log, ...): call_entry()
         "call_behaviour": {},       # number called -> how it answers (BEHAVIOUR's fields)
         "twilio_auth_tokens": {},   # account sid -> auth token, for accounts that use an API key
         "applications": {}}         # AP sid -> its voice_url, voice_method, status_callback, ...
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


# --- Twilio Programmable Voice ----------------------------------------------

CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
OUTCOMES = ("answered", "busy", "no-answer", "failed")
ANSWERED_BY = ("human", "machine_start", "machine_end_beep", "machine_end_silence",
               "machine_end_other", "fax", "unknown")
BEHAVIOUR = {"outcome": "answered", "answered_by": "human", "digits": [], "talk_seconds": 20,
             "ring_seconds": 4, "lose_callbacks": False, "hold_ringing": 0, "hold_in_progress": 0}
CALL_DEFAULTS = {"url": None, "method": "POST", "twiml": None, "fallback_url": None,
                 "fallback_method": "POST", "machine_detection": None, "send_digits": None,
                 "timeout": 60, "time_limit": 14400, "application": None, "base": "http://127.0.0.1"}
PRICE_PER_MINUTE = 0.014      # USD, as Twilio bills a started minute of a US outbound call
STEP = 0.01                   # real seconds between two steps of a play-out
HOLD_MAX = 10                 # real seconds a test may hold a call ringing or in progress
MAX_DOCUMENTS = 100           # TwiML documents in one call: a Gather loop ends somewhere
CONNECT_TIMEOUT, READ_TIMEOUT = 5, 15    # Twilio's defaults for its webhooks
LOOPBACK = ("127.0.0.1", "localhost", "::1")
XML_TYPES = ("text/xml", "application/xml")
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
APP_ERROR_SPEECH = "We are sorry, an application error has occurred. Goodbye."


def rfc2822(t):
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(t))


def twilio_error(code, message, status=400):
    return {"code": code, "message": message, "status": status,
            "more_info": "https://www.twilio.com/docs/errors/%d" % code}


def first(form, key):
    return form.get(key, [None])[0]


def absolute_http(url):
    try:
        parts = urlsplit(url or "")
        parts.port      # a port that is not a number is no URL
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def whole(value, default):
    # only ASCII digits: str.isdigit() also takes digits int() refuses
    return int(value) if value is not None and re.fullmatch(r"[0-9]+", value) else default


def call_events(form):
    # repeated keys as the API documents them; space-separated values as the SDKs also send them
    events = [e for value in form.get("StatusCallbackEvent", []) for e in value.split()]
    return events or ["completed"]     # Twilio's default: only the end of the call


def call_request_problem(form):
    """Twilio's 400 for a Calls.json request, as (code, message), or None."""
    to, from_ = first(form, "To"), first(form, "From")
    if not to:
        return 21201, "No 'To' number is specified"
    if not from_:
        return 21213, "No 'From' number is specified"
    if not E164.fullmatch(to):
        return 21211, "Invalid 'To' Phone Number: %s" % to
    if not E164.fullmatch(from_):
        return 21212, "Invalid 'From' Phone Number: %s" % from_
    app = first(form, "ApplicationSid")
    if app is not None:
        with LOCK:
            known = app in STATE["applications"]
        if not known:
            return 21218, "Invalid ApplicationSid"
    elif not first(form, "Url") and not first(form, "Twiml"):
        return 21205, "Url parameter is required"
    for key in ("Url", "FallbackUrl"):
        if first(form, key) and not absolute_http(first(form, key)):
            return 21205, "Url is not a valid URL: %s" % first(form, key)
    if first(form, "StatusCallback") and not absolute_http(first(form, "StatusCallback")):
        return 21609, "Invalid 'StatusCallback'"
    for key in ("Method", "FallbackMethod", "StatusCallbackMethod"):
        if (first(form, key) or "POST").upper() not in ("GET", "POST"):
            return 21209, "Invalid %s: %s" % (key, first(form, key))
    timeout = first(form, "Timeout")
    if timeout is not None and not 1 <= whole(timeout, 0) <= 600:
        return 21208, "Invalid Timeout value: %s" % timeout
    digits = first(form, "SendDigits")
    if digits is not None and not re.fullmatch(r"[0-9A-D#*wW]{1,32}", digits):
        return 21206, "Invalid SendDigits: %s" % digits
    if first(form, "MachineDetection") not in (None, "Enable", "DetectMessageEnd"):
        return 21234, "Invalid Machine Detection configuration value: %s" % first(form, "MachineDetection")
    if not set(call_events(form)) <= set(CALL_EVENTS):
        return 21626, "Invalid 'StatusCallbackEvent'"
    return None


def call_options(form, base):
    """How a call made through Calls.json is played: Url (it wins over
    Twiml, as Twilio documents), or its application's voice URL."""
    options = dict(CALL_DEFAULTS, base=base, twiml=first(form, "Twiml"),
                   timeout=whole(first(form, "Timeout"), 60),
                   time_limit=whole(first(form, "TimeLimit"), 14400),
                   send_digits=first(form, "SendDigits"))
    if first(form, "SendDigits") is None:
        # Twilio ignores MachineDetection when SendDigits is given
        options["machine_detection"] = first(form, "MachineDetection")
    app = first(form, "ApplicationSid")
    if app is not None:
        with LOCK:
            settings = dict(STATE["applications"][app])
        options.update(application=app, url=settings.get("voice_url"), twiml=None,
                       method=(settings.get("voice_method") or "POST").upper())
    elif first(form, "Url"):
        options.update(url=first(form, "Url"), method=(first(form, "Method") or "POST").upper(),
                       fallback_url=first(form, "FallbackUrl") or None,
                       fallback_method=(first(form, "FallbackMethod") or "POST").upper())
    return options


def call_callback(form):
    """(url, method, events) of a call's status callbacks, or None."""
    app = first(form, "ApplicationSid")
    if app is not None:
        # an application's own status callback, which hears only the end of the call
        with LOCK:
            settings = dict(STATE["applications"][app])
        if not settings.get("status_callback"):
            return None
        return (settings["status_callback"], (settings.get("status_callback_method") or "POST").upper(),
                ["completed"])
    if not first(form, "StatusCallback"):
        return None
    return (first(form, "StatusCallback"), (first(form, "StatusCallbackMethod") or "POST").upper(),
            call_events(form))


def call_resource(account, sid, to, from_, direction, parent=None):
    now = rfc2822(time.time())
    uri = "/2010-04-01/Accounts/%s/Calls/%s" % (account, sid)
    return {"sid": sid, "account_sid": account, "parent_call_sid": parent,
            "to": to, "to_formatted": to, "from": from_, "from_formatted": from_,
            "status": "queued", "direction": direction, "api_version": "2010-04-01",
            "answered_by": None, "start_time": None, "end_time": None, "duration": None,
            "price": None, "price_unit": "USD", "caller_name": None, "forwarded_from": None,
            "phone_number_sid": None, "group_sid": None, "trunk_sid": None, "queue_time": "0",
            "date_created": now, "date_updated": now, "uri": uri + ".json",
            "subresource_uris": {"notifications": uri + "/Notifications.json",
                                 "recordings": uri + "/Recordings.json"}}


def call_entry(resource, behaviour):
    # what the sandbox keeps of a call: the resource Twilio shows, the log of
    # its play-out, and what the play-out thread and the handlers share
    return {"resource": resource, "log": [], "error": None, "done": threading.Event(),
            "hangup": None, "stopped": False, "behaviour": behaviour}


def behaviour_for(number):
    with LOCK:
        behaviour = dict(BEHAVIOUR, **STATE["call_behaviour"].get(number, {}))
    behaviour["digits"] = [d or "" for d in behaviour["digits"]]
    return behaviour


def behaviour_problem(data):
    """What is wrong with a call_behaviour request, or None."""
    unknown = set(data) - set(BEHAVIOUR) - {"to"}
    if unknown:
        return "unknown fields: " + ", ".join(sorted(unknown))
    if not isinstance(data.get("to"), str) or not data["to"]:
        return "to: the number the behaviour is for"
    if data.get("outcome", "answered") not in OUTCOMES:
        return "outcome: one of " + ", ".join(OUTCOMES)
    if data.get("answered_by", "human") not in ANSWERED_BY:
        return "answered_by: one of " + ", ".join(ANSWERED_BY)
    digits = data.get("digits", [])
    if not isinstance(digits, list) or not all(d is None or isinstance(d, str) for d in digits):
        return "digits: a list of strings"
    for key in ("talk_seconds", "ring_seconds"):
        if not isinstance(data.get(key, 0), int) or data.get(key, 0) < 0:
            return key + ": a whole number of seconds"
    for key in ("hold_ringing", "hold_in_progress"):
        if not isinstance(data.get(key, 0), (int, float)) or not 0 <= data.get(key, 0) <= HOLD_MAX:
            return "%s: real seconds, 0 to %d" % (key, HOLD_MAX)
    if not isinstance(data.get("lose_callbacks", False), bool):
        return "lose_callbacks: true or false"
    return None


def auth_token(account):
    """The token Twilio signs account's requests with: an explicit one, else
    the password paired with the account sid (an API key has none)."""
    with LOCK:
        if account in STATE["twilio_auth_tokens"]:
            return STATE["twilio_auth_tokens"][account]
        passwords = sorted(p for user, p in STATE["twilio"] if user == account)
    return passwords[0] if passwords else None


def twilio_signature(token, url, params):
    # Twilio's: the full URL, then every parameter's name and value, sorted by name
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def loopback_problem(url):
    """Why the sandbox will not request url, or None: it contacts nothing
    but this machine."""
    if not absolute_http(url):
        return "not an absolute http(s) URL: %r" % url
    if urlsplit(url).hostname not in LOOPBACK:
        return "the sandbox requests only 127.0.0.1, localhost and ::1, not %s" % urlsplit(url).hostname
    return None


class Unreachable(Exception):
    """No connection could be made (Twilio retries these once)."""


def send(method, url, body, headers):
    """One HTTP request, redirects not followed: (status, content type, body)."""
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=CONNECT_TIMEOUT)
    try:
        try:
            conn.connect()
        except OSError as e:
            raise Unreachable(str(e))
        conn.sock.settimeout(READ_TIMEOUT)
        conn.request(method, (parts.path or "/") + ("?" + parts.query if parts.query else ""),
                     body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


class AppError(Exception):
    """What Twilio calls an application error: the call hears so and ends."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


class Playout:
    """One call as Twilio plays it out, in a thread of its own (a Dial leg
    is played by its parent's thread).  Times are simulated from t0 on."""

    def __init__(self, entry, options, callback, t0=None):
        self.entry, self.res, self.beh = entry, entry["resource"], entry["behaviour"]
        self.options = dict(CALL_DEFAULTS, **options)
        self.callback = callback
        self.account = self.res["account_sid"]
        self.t0 = time.time() if t0 is None else t0
        self.seq = 0                # SequenceNumber of the next status callback
        self.answered_at = None     # simulated
        self.answered_real = None   # wall clock, for a hang-up through the API
        self.answered_by = None
        self.talk = self.beh["talk_seconds"]
        self.extra = 0              # simulated seconds spent in Dial legs
        self.end = self.t0
        self.digits = list(self.beh["digits"])
        self.documents = 0

    # the shared state, always under LOCK

    def log(self, item):
        with LOCK:
            self.entry["log"].append(item)

    def set(self, **fields):
        with LOCK:
            self.res.update(fields, date_updated=rfc2822(time.time()))

    def advance(self, status, **fields):
        """Moves the resource on, unless the call was canceled or hung up meanwhile."""
        with LOCK:
            if self.entry["hangup"] is not None or self.entry["stopped"]:
                return False
            self.res.update(fields, status=status, date_updated=rfc2822(time.time()))
        return True

    def ended(self):
        with LOCK:
            return self.entry["hangup"] is not None or self.entry["stopped"]

    def hold(self, seconds):
        # the only real waiting: a test that cancels or hangs up a call asks for it
        until = time.time() + min(seconds, HOLD_MAX)
        while time.time() < until and not self.ended():
            time.sleep(STEP)

    # requests, as Twilio makes them

    def params(self, call_status="in-progress"):
        r = self.res
        params = {"AccountSid": self.account, "ApiVersion": "2010-04-01", "CallSid": r["sid"],
                  "CallStatus": call_status, "Called": r["to"], "Caller": r["from"],
                  "Direction": r["direction"], "From": r["from"], "To": r["to"]}
        if r["parent_call_sid"]:
            params["ParentCallSid"] = r["parent_call_sid"]
        if self.options["application"]:
            params["ApplicationSid"] = self.options["application"]
        if self.answered_by:
            params["AnsweredBy"] = self.answered_by
        return params

    def request(self, kind, method, url, params, lost=False):
        """One signed request; (status, content type, body), or None when
        lost.  Raises AppError when it cannot be made or got no answer."""
        method = (method or "POST").upper()
        url = (url or "").split("#", 1)[0]    # a fragment never leaves the client
        item = {"kind": kind, "method": method, "url": url, "params": dict(params)}
        problem = loopback_problem(url)
        token = auth_token(self.account)
        if problem is None and token is None:
            problem = "no auth token for %s: give /_sandbox/credentials twilio_auth_tokens" % self.account
        if problem:
            item["failure"] = problem
            self.log(item)
            raise AppError(11200, "HTTP retrieval failure: " + problem)
        if method == "GET":
            full = url + ("&" if urlsplit(url).query else "?") + urlencode(params)
            signed, body = {}, None
        else:
            full, signed, body = url, params, urlencode(params).encode()
        headers = {"X-Twilio-Signature": twilio_signature(token, full, signed),
                   "I-Twilio-Idempotency-Token": str(uuid.uuid4()),   # kept by the retry below
                   "User-Agent": "TwilioProxy/1.1", "Accept": "*/*"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        item.update(signature=headers["X-Twilio-Signature"],
                    idempotency_token=headers["I-Twilio-Idempotency-Token"])
        if lost:
            item["lost"] = True
            self.log(item)
            return None
        for attempt in (1, 2):
            try:
                status, ctype, data = send(method, full, body, headers)
                break
            except Unreachable as e:
                if attempt == 2:     # Twilio retries a failed connection once
                    item.update(failure="connection failed: %s" % e, attempts=attempt)
                    self.log(item)
                    raise AppError(11205, "HTTP connection failure: %s" % url)
            except (OSError, http.client.HTTPException) as e:
                item.update(failure="no answer: %r" % e, attempts=attempt)
                self.log(item)
                raise AppError(11200, "HTTP retrieval failure: %s" % url)
        item.update(status=status, content_type=ctype, body=data.decode("utf-8", "replace"), attempts=attempt)
        self.log(item)
        return status, ctype, data

    def status(self, event, call_status, at, extra=None):
        """The status callback of event, when the call asked for it."""
        if self.callback is None or event not in self.callback[2]:
            return
        params = self.params(call_status)
        params.update(CallbackSource="call-progress-events", SequenceNumber=str(self.seq),
                      Timestamp=rfc2822(at), **(extra or {}))
        self.seq += 1     # a lost callback was sent all the same: it keeps its number
        try:
            self.request("status", self.callback[1], self.callback[0], params, lost=self.beh["lose_callbacks"])
        except AppError:
            pass          # logged; a callback that fails never changes the call

    def load(self, kind, method, url, params, verbs=twiml.CALL_VERBS):
        """The TwiML answered at url, parsed: (verbs, url)."""
        status, ctype, body = self.request(kind, method, url, params)
        if not 200 <= status < 300:
            raise AppError(11200, "HTTP retrieval failure: %s answered %d" % (url, status))
        if ctype.split(";")[0].strip().lower() not in XML_TYPES:
            raise AppError(12300, "Invalid Content-Type %r from %s" % (ctype, url))
        try:
            return twiml.parse(body, verbs), url
        except twiml.TwimlError as e:
            raise AppError(e.code, "%s: %s" % (url, "; ".join(e.problems)))

    def target(self, action, url, what):
        """An action or url attribute as Twilio resolves it: against the
        document's URL, which it defaults to."""
        full = urljoin(url, action) if url and action else (action or url)
        if not absolute_http(full):
            raise AppError(11100, "Invalid URL format: %s %r (no document URL to resolve it against)"
                           % (what, action))
        return full

    # the call

    def run(self):
        try:
            self.play()
        except Exception as e:
            # a sandbox bug shows in the log rather than leave a test waiting
            self.log({"error": None, "message": "sandbox failure: %r" % e})
            raise
        finally:
            self.entry["done"].set()

    def play(self):
        time.sleep(STEP)
        if self.ended():
            return self.finish("canceled")       # canceled while queued
        outcome = self.ring()
        if outcome != "answered":
            return self.finish(outcome or "canceled")
        if self.options["send_digits"]:
            self.log({"verb": "send_digits", "digits": self.options["send_digits"]})
        self.hold(self.beh["hold_in_progress"])
        if not self.ended():
            self.execute()
        self.finish("completed")

    def ring(self):
        """From initiated to answered: "answered", busy, no-answer or failed,
        or None when the call was canceled meanwhile."""
        self.set(start_time=rfc2822(self.t0))
        self.status("initiated", "initiated", self.t0)
        outcome = self.beh["outcome"]
        if outcome in ("busy", "failed"):
            return outcome      # the carrier says so before anything rings
        if not self.advance("ringing"):
            return None
        self.status("ringing", "ringing", self.t0 + 1)
        self.hold(self.beh["hold_ringing"])
        if self.ended():
            return None
        if outcome == "no-answer":
            return outcome
        detection = self.options["machine_detection"]
        if detection:
            # Enable stops at the start of a machine; DetectMessageEnd waits for its end
            by = self.beh["answered_by"]
            if detection == "Enable" and by.startswith("machine_end"):
                by = "machine_start"
            elif detection == "DetectMessageEnd" and by == "machine_start":
                by = "machine_end_other"
            self.answered_by = by
        self.answered_at, self.answered_real = self.t0 + 1 + self.beh["ring_seconds"], time.time()
        if not self.advance("in-progress", answered_by=self.answered_by):
            return None
        self.status("answered", "in-progress", self.answered_at)
        return "answered"

    def finish(self, status):
        """The end: the resource as Twilio leaves it, then the completed callback."""
        with LOCK:
            if self.entry["stopped"]:
                return
            hung = self.entry["hangup"]
        if hung == "canceled":
            status = "canceled"
        if self.answered_at is not None:
            if hung == "completed":     # hung up through the API: as long as it really lasted
                duration = max(1, math.ceil(time.time() - self.answered_real))
            else:
                duration = self.talk + self.extra
            duration = min(duration, self.options["time_limit"])
            self.end = self.answered_at + duration
            minutes = max(1, math.ceil(duration / 60))
            price = "%.5f" % -(PRICE_PER_MINUTE * minutes)
        else:
            duration = minutes = 0
            price = None
            self.end = self.t0 + {"failed": 1, "busy": 2, "no-answer": 1 + self.options["timeout"]}.get(
                status, 1 + math.ceil(time.time() - self.t0))
        self.set(status=status, duration=str(duration), end_time=rfc2822(self.end), price=price)
        self.status("completed", status, self.end, {"CallDuration": str(duration), "Duration": str(minutes)})

    def execute(self):
        """The call's TwiML, document after document, until one ends the call."""
        try:
            doc = self.first_document()
            while doc is not None and not self.ended():
                self.documents += 1
                if self.documents > MAX_DOCUMENTS:
                    self.log({"error": None, "message": "the sandbox ends a call after %d documents"
                              % MAX_DOCUMENTS})
                    return
                doc = self.run_document(*doc)
        except AppError as e:
            self.log({"error": e.code, "message": e.message})
            with LOCK:
                self.entry["error"] = {"code": e.code, "message": e.message}
            self.log({"verb": "say", "text": APP_ERROR_SPEECH, "by": "twilio"})

    def first_document(self):
        o = self.options
        if o["url"]:
            try:
                return self.load("fetch", o["method"], o["url"], self.params())
            except AppError as e:
                if not o["fallback_url"]:
                    raise
                # Twilio tries the FallbackUrl, telling it what went wrong
                self.log({"error": e.code, "message": e.message, "fallback": o["fallback_url"]})
                params = dict(self.params(), ErrorCode=str(e.code), ErrorUrl=o["url"])
                return self.load("fallback", o["fallback_method"], o["fallback_url"], params)
        if o["twiml"]:
            try:
                return twiml.parse(o["twiml"]), None
            except twiml.TwimlError as e:
                raise AppError(e.code, "Twiml: " + "; ".join(e.problems))
        raise AppError(11100, "Invalid URL format: the application %s has no voice_url" % o["application"])

    def run_document(self, verbs, url):
        """Plays verbs; the next document (verbs, url), or None when the call ends."""
        for verb in verbs:
            if self.ended():
                return None
            time.sleep(STEP)
            if verb["verb"] == "Hangup":
                self.log({"verb": "hangup"})
                return None
            if verb["verb"] == "Gather":
                doc = self.gather(verb, url)
            elif verb["verb"] == "Dial":
                doc = self.dial(verb, url)
            else:
                doc = self.speak(verb, url)
            if doc is not None:
                return doc     # Twilio drops the rest of the document
        return None

    def speak(self, verb, url, leg=None):
        """Say, Play or Pause: only logged (the sandbox fetches no audio)."""
        attrs = verb["attrs"]
        if verb["verb"] == "Say":
            item = dict(attrs, verb="say", text=verb["text"])
        elif verb["verb"] == "Play":
            item = dict(attrs, verb="play", url=urljoin(url, verb["text"]) if url else verb["text"])
        else:
            item = {"verb": "pause", "length": int(attrs.get("length", "1"))}
        if leg:
            item["leg"] = leg
        self.log(item)
        return None

    def gather(self, verb, url):
        attrs = verb["attrs"]
        for prompt in verb["children"]:
            self.speak(prompt, url)
        pressed = self.digits.pop(0) if self.digits else ""
        if "dtmf" not in attrs.get("input", "dtmf").split():
            pressed = ""       # input="speech": the sandbox's callers do not speak
        digits, key = keys(pressed, attrs)
        self.log({"verb": "gather", "digits": digits, "pressed": pressed})
        if not digits and attrs.get("actionOnEmptyResult") != "true":
            return None        # no input: on to the next verb
        params = self.params()
        if digits:
            params.update(Digits=digits, FinishedOnKey=key)
        return self.load("gather", attrs.get("method"), self.target(attrs.get("action"), url, "Gather action"),
                         params)

    def dial(self, verb, url):
        attrs = verb["attrs"]
        nouns = verb["children"] or [{"verb": "Number", "attrs": {}, "text": verb["text"], "children": []}]
        caller = attrs.get("callerId") or self.res["from"]
        # Twilio rings every Number at once; the sandbox tries them in turn until one connects
        for noun in nouns:
            leg = self.leg(noun, caller, attrs, url)
            if leg["connected"]:
                break
        if not attrs.get("action"):
            return None
        params = dict(self.params(), DialCallSid=leg["sid"],
                      DialCallStatus="completed" if leg["connected"] else leg["outcome"])
        if leg["connected"]:
            params["DialCallDuration"] = str(leg["talk"])
            record = attrs.get("record", "do-not-record")
            if record != "do-not-record":
                sid = "RE" + secrets.token_hex(16)
                ringing = leg["ring"] if record.startswith("record-from-ringing") else 0
                params.update(RecordingSid=sid, RecordingDuration=str(leg["talk"] + ringing),
                              # Twilio's own address, as Twilio gives it (never fetched here)
                              RecordingUrl="https://api.twilio.com/2010-04-01/Accounts/%s/Recordings/%s"
                              % (self.account, sid))
        return self.load("dial", attrs.get("method"), self.target(attrs["action"], url, "Dial action"), params)

    def leg(self, noun, caller, dial, url):
        """One dialled number, a child call of its own: what became of it."""
        number = re.sub(r"[ ().-]", "", noun["text"])
        attrs = noun["attrs"]
        callback = None
        if attrs.get("statusCallback"):
            callback = (self.target(attrs["statusCallback"], url, "Number statusCallback"),
                        (attrs.get("statusCallbackMethod") or "POST").upper(),
                        (attrs.get("statusCallbackEvent") or "completed").split())
        sid = "CA" + secrets.token_hex(16)
        entry = call_entry(call_resource(self.account, sid, number, caller, "outbound-dial", self.res["sid"]),
                           behaviour_for(number))
        with LOCK:
            STATE["twilio_calls"][sid] = entry
        child = Playout(entry, {"timeout": whole(dial.get("timeout"), 30),
                                "time_limit": whole(dial.get("timeLimit"), 14400), "base": self.options["base"]},
                        callback, t0=self.answered_at + self.extra)
        try:
            outcome = child.ring() or "canceled"
            connected = outcome == "answered"
            if connected and attrs.get("sendDigits"):
                self.log({"verb": "send_digits", "digits": attrs["sendDigits"], "leg": sid})
            if connected and attrs.get("url"):
                connected, outcome = self.whisper(child, attrs, url)
            child.talk = min(child.talk, child.options["time_limit"]) if connected else 1
            child.finish("completed" if child.answered_at is not None else outcome)
        finally:
            entry["done"].set()
        self.extra += round(child.end - child.t0)     # whole simulated seconds, as Twilio counts them
        leg = {"sid": sid, "outcome": "completed" if connected else outcome, "connected": connected,
               "talk": child.talk, "ring": 1 + child.beh["ring_seconds"]}
        self.log({"verb": "dial", "number": number, "outcome": leg["outcome"], "call_sid": sid})
        return leg

    def whisper(self, child, attrs, url):
        """The TwiML of <Number url>, played to the dialled party before it is
        connected: (connected, outcome)."""
        sid = child.res["sid"]
        try:
            verbs, wurl = self.load("whisper", attrs.get("method"), self.target(attrs["url"], url, "Number url"),
                                    child.params(), twiml.WHISPER_VERBS)
        except AppError as e:
            self.log({"error": e.code, "message": e.message, "leg": sid})
            return False, "failed"
        for verb in verbs:
            time.sleep(STEP)
            if verb["verb"] == "Hangup":
                self.log({"verb": "hangup", "leg": sid})
                return False, "no-answer"     # the caller is never connected to it
            self.speak(verb, wurl, leg=sid)
        return True, "answered"


def keys(pressed, attrs):
    """What a Gather takes of the keys pressed: (Digits, FinishedOnKey)."""
    finish = attrs.get("finishOnKey", "#")
    limit = whole(attrs.get("numDigits"), None)
    digits = ""
    for key in pressed:
        if finish and key == finish:
            return digits, key
        digits += key
        if limit is not None and len(digits) >= limit:
            break
    return digits, ""


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
            return self.reply(201 if "Messages" in url.path or "Calls" in url.path or url.path == "/call" else 202,
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
            if parts[3:] == ["Calls.json"] and method == "POST":
                return self.create_call(account, parse_qs(body.decode(), keep_blank_values=True))
            if len(parts) == 5 and parts[3] == "Calls" and parts[4].endswith(".json") and method in ("GET", "POST"):
                return self.existing_call(method, account, parts[4][:-5], url.path, body)
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

    def create_call(self, account, form):
        problem = call_request_problem(form)
        if problem:
            return self.reply(400, twilio_error(*problem))
        sid = "CA" + secrets.token_hex(16)
        to, from_ = first(form, "To"), first(form, "From")
        entry = call_entry(call_resource(account, sid, to, from_, "outbound-api"), behaviour_for(to))
        playout = Playout(entry, call_options(form, "http://127.0.0.1:%d" % self.server.server_address[1]),
                          call_callback(form))
        with LOCK:
            STATE["twilio_calls"][sid] = entry
            resource = dict(entry["resource"])    # as created, before the play-out moves it on
        threading.Thread(target=playout.run, daemon=True).start()
        return self.reply(201, resource)

    def existing_call(self, method, account, sid, path, body):
        with LOCK:
            entry = STATE["twilio_calls"].get(sid)
            if entry is not None and entry["resource"]["account_sid"] != account:
                entry = None
            resource = dict(entry["resource"]) if entry else None
        if entry is None:
            return self.reply(404, twilio_error(20404, "The requested resource %s was not found" % path, 404))
        if method == "GET":
            return self.reply(200, resource)
        wanted = first(parse_qs(body.decode(), keep_blank_values=True), "Status")
        with LOCK:
            status = entry["resource"]["status"]
            allowed = (wanted == "canceled" and status in ("queued", "ringing")) or \
                      (wanted == "completed" and status == "in-progress")
            if allowed:
                # the play-out sees it at its next step and ends the call
                entry["hangup"] = wanted
                entry["resource"].update(status=wanted, date_updated=rfc2822(time.time()))
            resource = dict(entry["resource"])
        if not allowed:
            why = {"canceled": "Call is not queued or ringing. Cannot cancel.",
                   "completed": "Call is not in-progress. Cannot hang up."}.get(
                wanted, "Status must be canceled or completed (the sandbox does not redirect calls)")
            return self.reply(400, twilio_error(21220, why))
        return self.reply(200, resource)

    def control(self, method, path, body):
        if path == "/_sandbox/credentials" and method == "POST":
            data = json.loads(body)
            with LOCK:
                STATE["twilio"] |= {tuple(c) for c in data.get("twilio", [])}
                STATE["sendgrid"] |= set(data.get("sendgrid", []))
                STATE["vapi"] |= set(data.get("vapi", []))
                STATE["twilio_auth_tokens"].update(data.get("twilio_auth_tokens", {}))
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
        if path == "/_sandbox/twilio/call_behaviour" and method == "POST":
            data = json.loads(body or b"{}")
            if data.get("reset"):
                with LOCK:
                    STATE["call_behaviour"].clear()
                return self.reply(200, {"ok": True})
            problem = behaviour_problem(data)
            if problem:
                return self.reply(400, {"message": problem})
            with LOCK:
                STATE["call_behaviour"][data["to"]] = {k: v for k, v in data.items() if k != "to"}
            return self.reply(200, {"ok": True})
        if path == "/_sandbox/twilio/applications" and method == "POST":
            data = json.loads(body)
            if not re.fullmatch(r"AP[0-9a-fA-F]{32}", data.get("sid") or ""):
                return self.reply(400, {"message": "sid: AP + 32 hex"})
            with LOCK:
                STATE["applications"][data["sid"]] = {k: v for k, v in data.items() if k != "sid"}
            return self.reply(200, {"ok": True})
        if path == "/_sandbox/twilio/calls" and method == "GET":
            with LOCK:
                calls = [dict(e["resource"]) for e in STATE["twilio_calls"].values()]
            return self.reply(200, calls)
        if path.startswith("/_sandbox/twilio/calls/") and method == "GET":
            with LOCK:
                entry = STATE["twilio_calls"].get(path.rsplit("/", 1)[1])
            if entry is None:
                return self.reply(404, {"message": "no such call"})
            try:
                wait = float(first(parse_qs(urlsplit(self.path).query), "wait") or 0)
            except ValueError:
                return self.reply(400, {"message": "wait: seconds"})
            if wait > 0:
                # a test waits for the play-out here rather than poll
                entry["done"].wait(min(wait, 60))
            with LOCK:
                seen = json.dumps({"resource": dict(entry["resource"], error=entry["error"]),
                                   "log": entry["log"], "finished": entry["done"].is_set()})
            return self.reply(200, seen.encode())
        if path == "/_sandbox/reset" and method == "POST":
            with LOCK:
                STATE["requests"].clear()
                STATE["faults"].clear()
                STATE["messages"].clear()
                STATE["calls"].clear()
                for entry in STATE["twilio_calls"].values():
                    entry["stopped"] = True      # its play-out stops at its next step
                STATE["twilio_calls"].clear()
                STATE["call_behaviour"].clear()
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
