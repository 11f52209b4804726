"""Twilio Programmable Voice in the sandbox: a call placed through Calls.json
plays out against a webhook route over HTTP as Twilio plays it (status
callbacks, the Url's TwiML, Gather and Dial actions, whispers), signed as
Twilio signs, and ends with the resource Twilio would show.

The route here is a small HTTP server on 127.0.0.1 standing in for
crefinder's: it checks X-Twilio-Signature with its own code, answers TwiML
from a script and records what it was sent.  No PostgreSQL is needed (the
cluster fixture is not used)."""
import base64
import contextlib
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode

import twiml
from cluster import Sandbox

ACCOUNT = "AC" + "1" * 32
TOKEN = "cd" * 16
TO = "+12125550101"
FROM = "+13055550100"
AGENT = "+13055550123"
RFC2822 = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000")
CALL_PARAMS = {"AccountSid", "ApiVersion", "CallSid", "CallStatus", "Called", "Caller", "Direction", "From", "To"}
STATUS_PARAMS = CALL_PARAMS | {"CallbackSource", "SequenceNumber", "Timestamp"}
ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]
OK = (200, "text/plain", "")


def sign(token, url, pairs):
    """Twilio's signature, computed here independently of the sandbox: the
    URL, then each name and value, sorted by name (a repeated name's values
    sorted too)."""
    data = url + "".join(name + value for name, value in sorted(pairs))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def xml(body):
    return (200, "text/xml", '<?xml version="1.0" encoding="UTF-8"?>' + body)


class Route:
    """The webhook route: script maps a path to (status, content type, body),
    or to a function of the parameters giving one."""

    def __init__(self, script, token=TOKEN):
        self.script, self.token, self.received = script, token, []
        route = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                route.handle(self, "GET")

            def do_POST(self):
                route.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, h, method):
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0)).decode()
        path, _, query = h.path.partition("?")
        pairs = parse_qsl(body if method == "POST" else query, keep_blank_values=True)
        # a POST signs its parameters; a GET carries them in the URL, which is signed alone
        expected = sign(self.token, self.url + h.path, pairs if method == "POST" else [])
        signed = hmac.compare_digest(h.headers.get("X-Twilio-Signature", ""), expected)
        params = dict(pairs)
        self.received.append({"method": method, "path": path, "params": params, "signed": signed,
                              "headers": {k.lower(): v for k, v in h.headers.items()}})
        if not signed:
            status, ctype, text = 403, "text/plain", "bad signature"
        else:
            answer = self.script.get(path, (404, "text/plain", "no such route"))
            status, ctype, text = answer(params) if callable(answer) else answer
        data = text.encode()
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def at(self, path):
        return [r for r in self.received if r["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def voice(script, credentials=None):
    sandbox = Sandbox()
    route = Route(script)
    try:
        sandbox.call("POST", "/_sandbox/credentials", credentials or {"twilio": [[ACCOUNT, TOKEN]]})
        yield sandbox, route
    finally:
        route.close()
        sandbox.stop()


def http(sandbox, method, path, form=None, user=ACCOUNT, password=TOKEN):
    headers = {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode(),
               "Content-Type": "application/x-www-form-urlencoded"}
    data = urlencode(form or [], doseq=True).encode() if method == "POST" else None
    req = urllib.request.Request(sandbox.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def place(sandbox, pairs, account=ACCOUNT, user=None, password=TOKEN, expect=201):
    """Calls.json with the (name, value) pairs (keys may repeat; To and From
    default to TO and FROM): the resource, or the error for expect != 201."""
    names = {name for name, _ in pairs}
    pairs = [(k, v) for k, v in (("To", TO), ("From", FROM)) if k not in names] + list(pairs)
    status, body = http(sandbox, "POST", "/2010-04-01/Accounts/%s/Calls.json" % account, pairs,
                        user or account, password)
    assert status == expect, (status, body)
    return json.loads(body)


def played(sandbox, sid):
    """The call once its play-out is over: {"resource", "log", "finished"}."""
    seen = sandbox.call("GET", "/_sandbox/twilio/calls/%s?wait=5" % sid)
    assert seen["finished"], seen
    return seen


def behave(sandbox, number, **fields):
    sandbox.call("POST", "/_sandbox/twilio/call_behaviour", dict(fields, to=number))


def verbs(log):
    return [(e["verb"], e.get("text") or e.get("digits") or e.get("url") or e.get("number"))
            for e in log if "verb" in e]


def requests_of(log, kind=None):
    return [e for e in log if "kind" in e and (kind is None or e["kind"] == kind)]


def all_events(route):
    return [("StatusCallbackEvent", e) for e in ALL_EVENTS] + [("StatusCallback", route.url + "/status")]


def test_twiml_validate(cluster):
    good = ['<Response/>',
            '<?xml version="1.0" encoding="UTF-8"?><Response><Say voice="alice" language="en-US" loop="2">Hi'
            '</Say><Play loop="1">https://example.com/a.mp3</Play><Pause length="2"/></Response>',
            '<Response><Gather action="/g" method="POST" timeout="5" numDigits="1" finishOnKey="#" input="dtmf"'
            ' actionOnEmptyResult="true"><Say>Press 9</Say><Pause/></Gather><Hangup/></Response>',
            '<Response><Dial action="/d" method="GET" timeout="20" callerId="+13055550100" record="record-from-answer"'
            ' timeLimit="600" answerOnBridge="true" hangupOnStar="false" ringTone="us"><Number url="/w"'
            ' method="POST" statusCallback="/s" statusCallbackEvent="initiated completed" statusCallbackMethod="POST"'
            ' sendDigits="ww1234">+1 305 555 0123</Number></Dial></Response>',
            '<Response><Dial>+13055550123</Dial></Response>',
            b'<?xml version="1.0" encoding="UTF-8"?><Response><Say>caf\xc3\xa9</Say></Response>']
    for doc in good:
        assert twiml.validate(doc) == [], (doc, twiml.validate(doc))
    assert twiml.validate('<Response><Hangup/></Response>', twiml.WHISPER_VERBS) == []
    bad = {'hello': "12100", '': "12100", '<Response><Say>x</Say>': "12100",
           '<!DOCTYPE r [<!ENTITY a "aa">]><Response/>': "12100",
           '<Reply/>': "12200: the root", '<Response><Shout>x</Shout></Response>': "<Shout>",
           '<Response><Number>+13055550123</Number></Response>': "<Number> may stand only inside <Dial>",
           '<Response><Gather><Dial>+13055550123</Dial></Gather></Response>': "<Dial> may not stand inside <Gather>",
           '<Response><Gather><Gather/></Gather></Response>': "<Gather> may not stand inside <Gather>",
           '<Response><Dial><Say>x</Say></Dial></Response>': "<Say> may not stand inside <Dial>",
           '<Response><Say loud="yes">x</Say></Response>': "no attribute loud",
           '<Response><Say>  </Say></Response>': "<Say> needs text",
           '<Response><Number/></Response>': "<Number> needs text",
           '<Response><Dial><Number></Number></Dial></Response>': "<Number> needs text",
           '<Response><Dial/></Response>': "nothing to dial",
           '<Response><Dial>+13055550123<Number>+13055550124</Number></Dial></Response>': "not both",
           '<Response><Dial>call me</Dial></Response>': "not a phone number",
           '<Response><Pause length="two"/></Response>': "not a whole number",
           '<Response><Say loop="-1">x</Say></Response>': "not a whole number",
           '<Response><Gather numDigits="0"/></Response>': "at least 1",
           '<Response><Gather method="PUT"/></Response>': "GET or POST",
           '<Response><Gather input="touch"/></Response>': "dtmf, speech",
           '<Response><Dial record="yes">+13055550123</Dial></Response>': "one of",
           '<Response><Hangup>now</Hangup></Response>': "takes no text",
           '<Response>hello<Hangup/></Response>': "text outside a verb",
           '<Response><Hangup/>bye</Response>': "text outside a verb",
           '<Response><Say>a<b/></Say></Response>': "<b>",
           '<Response><Redirect>/next</Redirect></Response>': "<Redirect>"}
    for doc, expected in bad.items():
        problems = twiml.validate(doc)
        assert problems and any(expected in p for p in problems), (doc, problems)
    assert twiml.validate('<Response><Gather/></Response>', twiml.WHISPER_VERBS) != []
    try:
        twiml.parse('<Response><Shout/><Number>+1</Number></Response>')
        assert False
    except twiml.TwimlError as e:
        assert e.code == 12200 and len(e.problems) == 2
    verbs_ = twiml.parse('<Response><Gather numDigits="1" action="/g"><Say>Press</Say></Gather><Hangup/></Response>')
    assert verbs_ == [{"verb": "Gather", "attrs": {"numDigits": "1", "action": "/g"}, "text": "",
                       "children": [{"verb": "Say", "attrs": {}, "text": "Press", "children": []}]},
                      {"verb": "Hangup", "attrs": {}, "text": "", "children": []}]


def test_signature_as_published(cluster):
    # the test's own signing against Twilio's documented example, so that
    # "signed" below means Twilio's algorithm and not the sandbox's
    vector = json.load(open(__file__.rsplit("/", 1)[0] + "/signature_vectors.json"))["twilio"]["docs_example"]
    assert sign(vector["auth_token"], vector["url"], vector["params"].items()) == vector["expected_signature"]


def test_human_answers_and_presses_9(cluster):
    def gathered(params):
        if params.get("Digits") == "9":
            return xml("<Response><Say>You pressed nine. Goodbye.</Say><Hangup/></Response>")
        return xml("<Response><Say>Something else</Say></Response>")

    script = {"/voice": xml('<Response><Gather numDigits="1" action="/gathered"><Say>Press 9 to stop calls.</Say>'
                            '</Gather><Say>We did not get that.</Say></Response>'),
              "/gathered": gathered, "/status": OK}
    with voice(script) as (sandbox, route):
        behave(sandbox, TO, digits=["9"])
        created = place(sandbox, [("Url", route.url + "/voice")] + all_events(route))
        sid = created["sid"]
        assert re.fullmatch(r"CA[0-9a-f]{32}", sid)
        assert {k: created[k] for k in ("account_sid", "to", "from", "status", "direction", "api_version", "price",
                                        "price_unit", "duration", "answered_by", "start_time", "end_time",
                                        "parent_call_sid")} == {
            "account_sid": ACCOUNT, "to": TO, "from": FROM, "status": "queued", "direction": "outbound-api",
            "api_version": "2010-04-01", "price": None, "price_unit": "USD", "duration": None,
            "answered_by": None, "start_time": None, "end_time": None, "parent_call_sid": None}
        assert RFC2822.fullmatch(created["date_created"])
        assert created["uri"] == "/2010-04-01/Accounts/%s/Calls/%s.json" % (ACCOUNT, sid)

        seen = played(sandbox, sid)
        statuses = route.at("/status")
        assert [s["params"]["CallStatus"] for s in statuses] == ["initiated", "ringing", "in-progress", "completed"]
        assert [s["params"]["SequenceNumber"] for s in statuses] == ["0", "1", "2", "3"]
        for s in statuses:
            p = s["params"]
            assert set(p) >= STATUS_PARAMS and "AnsweredBy" not in p, p
            assert (p["CallSid"], p["AccountSid"], p["Direction"], p["From"], p["To"], p["Caller"], p["Called"],
                    p["ApiVersion"], p["CallbackSource"]) == (sid, ACCOUNT, "outbound-api", FROM, TO, FROM, TO,
                                                              "2010-04-01", "call-progress-events")
            assert RFC2822.fullmatch(p["Timestamp"])
        assert statuses[-1]["params"]["CallDuration"] == "20" and statuses[-1]["params"]["Duration"] == "1"
        assert "CallDuration" not in statuses[2]["params"]

        fetch, = route.at("/voice")
        assert set(fetch["params"]) == CALL_PARAMS and fetch["params"]["CallStatus"] == "in-progress"
        gather, = route.at("/gathered")
        assert gather["params"]["Digits"] == "9" and gather["params"]["FinishedOnKey"] == ""
        assert set(gather["params"]) == CALL_PARAMS | {"Digits", "FinishedOnKey"}
        for r in route.received:
            assert r["signed"] and r["headers"]["content-type"] == "application/x-www-form-urlencoded", r
        tokens = [r["headers"]["i-twilio-idempotency-token"] for r in route.received]
        assert len(set(tokens)) == len(tokens) == 6

        assert verbs(seen["log"]) == [("say", "Press 9 to stop calls."), ("gather", "9"),
                                      ("say", "You pressed nine. Goodbye."), ("hangup", None)]
        assert [e["kind"] for e in requests_of(seen["log"])] == ["status", "status", "status", "fetch", "gather",
                                                                 "status"]
        assert all(e["status"] == 200 for e in requests_of(seen["log"]))
        assert seen["resource"]["error"] is None

        status, body = http(sandbox, "GET", "/2010-04-01/Accounts/%s/Calls/%s.json" % (ACCOUNT, sid))
        call = json.loads(body)
        assert status == 200 and call["status"] == "completed" and call["duration"] == "20"
        assert call["price"] == "-0.01400" and call["price_unit"] == "USD" and call["answered_by"] is None
        assert RFC2822.fullmatch(call["start_time"]) and RFC2822.fullmatch(call["end_time"])
        assert "error" not in call
        status, body = http(sandbox, "GET", "/2010-04-01/Accounts/%s/Calls/%s.json" % (ACCOUNT, sid),
                            user=ACCOUNT, password="wrong")
        assert status == 401


def test_machine_hears_a_message(cluster):
    def answer(params):
        if params.get("AnsweredBy", "").startswith("machine_end"):
            return xml("<Response><Say>This is crefinder, please call us back.</Say><Hangup/></Response>")
        return xml("<Response><Say>Hello there.</Say></Response>")

    with voice({"/voice": answer, "/status": OK}) as (sandbox, route):
        behave(sandbox, TO, answered_by="machine_end_beep", talk_seconds=35)
        sid = place(sandbox, [("Url", route.url + "/voice"), ("MachineDetection", "DetectMessageEnd")] +
                    all_events(route))["sid"]
        seen = played(sandbox, sid)
        fetch, = route.at("/voice")
        assert fetch["params"]["AnsweredBy"] == "machine_end_beep"
        assert verbs(seen["log"]) == [("say", "This is crefinder, please call us back."), ("hangup", None)]
        answered, completed = route.at("/status")[2:]
        assert answered["params"]["AnsweredBy"] == completed["params"]["AnsweredBy"] == "machine_end_beep"
        assert "AnsweredBy" not in route.at("/status")[0]["params"]
        assert completed["params"]["CallDuration"] == "35" and completed["params"]["Duration"] == "1"
        call = seen["resource"]
        assert (call["status"], call["answered_by"], call["duration"], call["price"]) == \
            ("completed", "machine_end_beep", "35", "-0.01400")

        # Enable reports any machine as soon as it is heard: machine_start
        sid = place(sandbox, [("Url", route.url + "/voice"), ("MachineDetection", "Enable")])["sid"]
        assert played(sandbox, sid)["resource"]["answered_by"] == "machine_start"
        assert route.at("/voice")[-1]["params"]["AnsweredBy"] == "machine_start"
        assert all(r["signed"] for r in route.received)


def test_busy_no_answer_and_failed(cluster):
    with voice({"/voice": xml("<Response><Say>Hi</Say></Response>"), "/status": OK}) as (sandbox, route):
        expected = {"+12125550102": ("busy", ["initiated", "busy"]),
                    "+12125550103": ("no-answer", ["initiated", "ringing", "no-answer"]),
                    "+12125550104": ("failed", ["initiated", "failed"])}
        for number, (outcome, _) in expected.items():
            behave(sandbox, number, outcome=outcome)
        sids = {number: place(sandbox, [("To", number), ("Url", route.url + "/voice")] + all_events(route))["sid"]
                for number in expected}
        for number, (outcome, callbacks) in expected.items():
            seen = played(sandbox, sids[number])
            statuses = [s["params"] for s in route.at("/status") if s["params"]["CallSid"] == sids[number]]
            assert [p["CallStatus"] for p in statuses] == callbacks, (number, statuses)
            assert [p["SequenceNumber"] for p in statuses] == [str(i) for i in range(len(callbacks))]
            assert statuses[-1]["CallDuration"] == "0" and "AnsweredBy" not in statuses[-1]
            call = seen["resource"]
            assert (call["status"], call["duration"], call["price"], call["answered_by"]) == \
                (outcome, "0", None, None), call
            assert call["end_time"] and verbs(seen["log"]) == []
        assert route.at("/voice") == []      # nobody answered: the Url is never asked
        assert all(r["signed"] for r in route.received)


def test_dial_with_whisper_and_action(cluster):
    def dialed(params):
        return xml("<Response><Say>The call ended: %s.</Say></Response>" % params["DialCallStatus"])

    script = {
        "/bridge": xml('<Response><Say>Connecting you.</Say><Dial action="/dialed" record="record-from-answer"'
                       ' callerId="+13055550199"><Number url="/whisper" statusCallback="/leg"'
                       ' statusCallbackEvent="initiated ringing answered completed">+1 305 555 0123</Number>'
                       '</Dial><Say>Never said: the action answers instead.</Say></Response>'),
        "/whisper": xml("<Response><Say>A lead from crefinder.</Say><Pause length=\"1\"/></Response>"),
        "/busy": xml('<Response><Dial action="/dialed" record="record-from-answer">+13055550124</Dial></Response>'),
        "/screened": xml('<Response><Dial action="/dialed"><Number url="/reject">+13055550125</Number></Dial>'
                         '</Response>'),
        "/reject": xml("<Response><Say>Not now.</Say><Hangup/></Response>"),
        "/noaction": xml('<Response><Dial>+13055550126</Dial><Say>After the dial.</Say></Response>'),
        "/dialed": dialed, "/leg": OK, "/status": OK}
    with voice(script) as (sandbox, route):
        behave(sandbox, AGENT, talk_seconds=30)
        behave(sandbox, "+13055550124", outcome="busy")
        sid = place(sandbox, [("Url", route.url + "/bridge")] + all_events(route))["sid"]
        seen = played(sandbox, sid)
        whisper, = route.at("/whisper")
        w = whisper["params"]
        assert re.fullmatch(r"CA[0-9a-f]{32}", w["CallSid"]) and w["CallSid"] != sid
        assert (w["ParentCallSid"], w["AccountSid"], w["From"], w["To"], w["CallStatus"], w["Direction"]) == \
            (sid, ACCOUNT, "+13055550199", AGENT, "in-progress", "outbound-dial")
        action, = route.at("/dialed")
        a = action["params"]
        assert (a["CallSid"], a["DialCallSid"], a["DialCallStatus"], a["DialCallDuration"], a["CallStatus"]) == \
            (sid, w["CallSid"], "completed", "30", "in-progress")
        assert a["RecordingUrl"].endswith("/Recordings/" + a["RecordingSid"]) and a["RecordingDuration"] == "30"
        assert re.fullmatch(r"RE[0-9a-f]{32}", a["RecordingSid"]) and a["RecordingUrl"].startswith("https://api.twilio.com/2010-04-01/Accounts/")
        assert verbs(seen["log"]) == [("say", "Connecting you."), ("say", "A lead from crefinder."), ("pause", None),
                                      ("dial", AGENT), ("say", "The call ended: completed.")]
        assert [e["kind"] for e in requests_of(seen["log"])] == ["status"] * 3 + ["fetch", "whisper", "dial",
                                                                                  "status"]
        # the leg: a child call with its own callbacks, resource and log
        legs = route.at("/leg")
        assert [p["params"]["CallStatus"] for p in legs] == ["initiated", "ringing", "in-progress", "completed"]
        assert all(p["params"]["ParentCallSid"] == sid and p["params"]["CallSid"] == w["CallSid"] for p in legs)
        assert legs[-1]["params"]["CallDuration"] == "30"
        child = played(sandbox, w["CallSid"])["resource"]
        assert (child["parent_call_sid"], child["direction"], child["from"], child["to"], child["status"],
                child["duration"], child["price"]) == (sid, "outbound-dial", "+13055550199", AGENT, "completed",
                                                       "30", "-0.01400")
        # the parent's time: its own 20 s and the leg's ringing (1 + 4 s) and 30 s of talk
        parent = seen["resource"]
        assert (parent["status"], parent["duration"], parent["price"]) == ("completed", "55", "-0.01400"), parent
        calls = sandbox.call("GET", "/_sandbox/twilio/calls")
        assert [c["sid"] for c in calls] == [sid, w["CallSid"]]

        sid = place(sandbox, [("Url", route.url + "/busy")])["sid"]
        played(sandbox, sid)
        a = route.at("/dialed")[-1]["params"]
        assert a["CallSid"] == sid and a["DialCallStatus"] == "busy"
        assert "DialCallDuration" not in a and "RecordingUrl" not in a and a["DialCallSid"].startswith("CA")

        sid = place(sandbox, [("Url", route.url + "/screened")])["sid"]
        seen = played(sandbox, sid)
        assert route.at("/dialed")[-1]["params"]["DialCallStatus"] == "no-answer"
        hangup, = [e for e in seen["log"] if e.get("verb") == "hangup"]
        assert hangup["leg"] == route.at("/reject")[0]["params"]["CallSid"]    # the whisper's, not the call's
        assert [v for v in verbs(seen["log"]) if v[0] == "say"][-1] == ("say", "The call ended: no-answer.")

        sid = place(sandbox, [("Url", route.url + "/noaction")])["sid"]
        assert verbs(played(sandbox, sid)["log"])[-1] == ("say", "After the dial.")
        assert all(r["signed"] for r in route.received)


def test_invalid_twiml_is_an_application_error(cluster):
    documents = {
        "/unknown-verb": (xml("<Response><Say>Hi</Say><Shout>HEY</Shout></Response>"), 12200),
        "/number-outside-dial": (xml("<Response><Number>+13055550123</Number></Response>"), 12200),
        "/dial-in-gather": (xml("<Response><Gather><Dial>+13055550123</Dial></Gather></Response>"), 12200),
        "/unknown-attribute": (xml('<Response><Say colour="red">Hi</Say></Response>'), 12200),
        "/not-response": (xml("<Reply><Say>Hi</Say></Reply>"), 12200),
        "/not-xml": ((200, "text/xml", "Hello, this is not XML"), 12100),
        "/html": ((200, "text/html", "<Response><Say>Hi</Say></Response>"), 12300),
        "/server-error": ((500, "text/xml", "<Response/>"), 11200),
    }
    script = {path: answer for path, (answer, _) in documents.items()}
    script["/status"] = OK
    with voice(script) as (sandbox, route):
        for path, (_, code) in documents.items():
            sid = place(sandbox, [("Url", route.url + path)] + all_events(route))["sid"]
            seen = played(sandbox, sid)
            errors = [e for e in seen["log"] if "error" in e]
            assert [e["error"] for e in errors] == [code], (path, seen["log"])
            assert seen["resource"]["error"]["code"] == code
            # nothing of a refused document is played: the caller hears Twilio's apology
            said = [e for e in seen["log"] if "verb" in e]
            assert len(said) == 1 and said[0].get("by") == "twilio", (path, said)
            assert seen["resource"]["status"] == "completed"
            assert route.at("/status")[-1]["params"]["CallStatus"] == "completed"
        # an action's TwiML is held to the same rules, after what was played before it
        script["/menu"] = xml('<Response><Say>Menu</Say><Gather action="/unknown-verb" numDigits="1"/></Response>')
        behave(sandbox, TO, digits=["1"])
        seen = played(sandbox, place(sandbox, [("Url", route.url + "/menu")])["sid"])
        assert verbs(seen["log"])[:2] == [("say", "Menu"), ("gather", "1")]
        assert seen["resource"]["error"]["code"] == 12200 and "Shout" in seen["resource"]["error"]["message"]


def test_lost_callbacks_keep_their_numbers(cluster):
    with voice({"/voice": xml("<Response><Say>Hi</Say></Response>"), "/status": OK}) as (sandbox, route):
        behave(sandbox, TO, lose_callbacks=True)
        sid = place(sandbox, [("Url", route.url + "/voice")] + all_events(route))["sid"]
        seen = played(sandbox, sid)
        assert route.at("/status") == [] and len(route.at("/voice")) == 1
        lost = requests_of(seen["log"], "status")
        assert [e.get("lost") for e in lost] == [True] * 4
        assert [e["params"]["SequenceNumber"] for e in lost] == ["0", "1", "2", "3"]
        assert seen["resource"]["status"] == "completed"
        # StatusCallback without StatusCallbackEvent: Twilio sends only the end
        sid = place(sandbox, [("To", "+12125550109"), ("Url", route.url + "/voice"),
                              ("StatusCallback", route.url + "/status")])["sid"]
        played(sandbox, sid)
        assert [(s["params"]["CallStatus"], s["params"]["SequenceNumber"]) for s in route.at("/status")] == \
            [("completed", "0")]
        # and without StatusCallback, none at all
        sid = place(sandbox, [("To", "+12125550109"), ("Url", route.url + "/voice")])["sid"]
        assert requests_of(played(sandbox, sid)["log"], "status") == []


def test_only_loopback_is_contacted(cluster):
    script = {"/voice": xml('<Response><Gather numDigits="1" action="http://192.0.2.10/next"/></Response>'),
              "/status": OK}
    with voice(script) as (sandbox, route):
        sid = place(sandbox, [("Url", "http://192.0.2.10/voice")] + all_events(route))["sid"]
        seen = played(sandbox, sid)
        fetch, = requests_of(seen["log"], "fetch")
        assert "status" not in fetch and "192.0.2.10" in fetch["failure"]
        assert seen["resource"]["error"]["code"] == 11200
        assert [s["params"]["CallStatus"] for s in route.at("/status")] == \
            ["initiated", "ringing", "in-progress", "completed"]

        behave(sandbox, TO, digits=["5"])
        seen = played(sandbox, place(sandbox, [("Url", route.url + "/voice")])["sid"])
        gather, = requests_of(seen["log"], "gather")
        assert "status" not in gather and "192.0.2.10" in gather["failure"]
        assert seen["resource"]["error"]["code"] == 11200

        # a status callback elsewhere is dropped; the call goes on
        script["/voice"] = xml("<Response><Say>Hi</Say></Response>")
        seen = played(sandbox, place(sandbox, [("Url", route.url + "/voice"),
                                               ("StatusCallback", "https://example.com/status")])["sid"])
        status, = requests_of(seen["log"], "status")
        assert "status" not in status and "example.com" in status["failure"]
        assert verbs(seen["log"]) == [("say", "Hi")] and seen["resource"]["error"] is None
        assert all(not r["params"].get("StatusCallback") for r in route.received)


def test_calls_json_validation_faults_and_lookups(cluster):
    with voice({}) as (sandbox, route):
        url = ("Url", route.url + "/voice")
        cases = [([("From", FROM), url], 21201), ([("To", TO), url], 21213),
                 ([("To", "2125550101"), url], 21211), ([("To", "+1 212 555 0101"), url], 21211),
                 ([], 21205), ([("Url", "/voice")], 21205), ([("Url", "ftp://127.0.0.1/voice")], 21205),
                 ([url, ("MachineDetection", "Yes")], 21234),
                 ([url, ("StatusCallbackEvent", "initiated"), ("StatusCallbackEvent", "hungup")], 21626),
                 ([url, ("Method", "PUT")], 21209), ([url, ("Timeout", "0")], 21208),
                 ([("ApplicationSid", "AP" + "0" * 32)], 21218)]
        for pairs, code in cases:
            names = {k for k, _ in pairs}
            full = [p for p in (("To", TO), ("From", FROM)) if p[0] not in names and
                    not (code == 21201 and p[0] == "To") and not (code == 21213 and p[0] == "From")] + pairs
            status, body = http(sandbox, "POST", "/2010-04-01/Accounts/%s/Calls.json" % ACCOUNT, full)
            error = json.loads(body)
            assert status == 400 and error["code"] == code and error["status"] == 400, (pairs, error)
            assert error["more_info"].endswith("/%d" % code) and error["message"]
        assert json.loads(http(sandbox, "POST", "/2010-04-01/Accounts/%s/Calls.json" % ACCOUNT, [])[1])["code"] \
            == 21201
        assert sandbox.call("GET", "/_sandbox/twilio/calls") == []
        status, _ = http(sandbox, "POST", "/2010-04-01/Accounts/%s/Calls.json" % ACCOUNT, [("To", TO)],
                         password="wrong")
        assert status == 401

        # inline Twiml needs no Url; Url wins when both are given, as Twilio documents
        sid = place(sandbox, [("Twiml", "<Response><Say>Inline</Say></Response>")])["sid"]
        seen = played(sandbox, sid)
        assert verbs(seen["log"]) == [("say", "Inline")] and requests_of(seen["log"]) == []

        # faults apply to Calls.json as to Messages.json
        path = "/2010-04-01/Accounts/%s/Calls.json" % ACCOUNT
        sandbox.call("POST", "/_sandbox/faults", {"path": path, "fault": "malformed", "count": 1})
        status, body = http(sandbox, "POST", path, [("To", TO), ("From", FROM), url])
        assert status == 201 and body == b"{not json"
        sandbox.call("POST", "/_sandbox/faults", {"path": path, "fault": "429", "count": 1})
        status, body = http(sandbox, "POST", path, [("To", TO), ("From", FROM), url])
        assert status == 429 and json.loads(body)["code"] == 20429

        status, body = http(sandbox, "GET", "/2010-04-01/Accounts/%s/Calls/CA%s.json" % (ACCOUNT, "0" * 32))
        assert status == 404 and json.loads(body)["code"] == 20404
        other = "AC" + "2" * 32
        sandbox.call("POST", "/_sandbox/credentials", {"twilio": [[other, "other-token"]]})
        status, body = http(sandbox, "GET", "/2010-04-01/Accounts/%s/Calls/%s.json" % (other, sid),
                             user=other, password="other-token")
        assert status == 404 and json.loads(body)["code"] == 20404


def wait_for(sandbox, sid, status):
    path = "/2010-04-01/Accounts/%s/Calls/%s.json" % (ACCOUNT, sid)
    for _ in range(200):
        call = json.loads(http(sandbox, "GET", path)[1])
        if call["status"] == status:
            return call
        time.sleep(0.01)
    raise AssertionError("%s never became %s: %r" % (sid, status, call))


def test_cancel_and_hang_up(cluster):
    with voice({"/voice": xml("<Response><Say>Hi</Say></Response>"), "/status": OK}) as (sandbox, route):
        behave(sandbox, TO, hold_ringing=5)
        sid = place(sandbox, [("Url", route.url + "/voice")] + all_events(route))["sid"]
        wait_for(sandbox, sid, "ringing")
        path = "/2010-04-01/Accounts/%s/Calls/%s.json" % (ACCOUNT, sid)
        status, body = http(sandbox, "POST", path, [("Status", "completed")])
        assert status == 400 and json.loads(body)["code"] == 21220
        status, body = http(sandbox, "POST", path, [("Status", "canceled")])
        assert status == 200 and json.loads(body)["status"] == "canceled"
        seen = played(sandbox, sid)
        assert [s["params"]["CallStatus"] for s in route.at("/status")] == ["initiated", "ringing", "canceled"]
        assert (seen["resource"]["status"], seen["resource"]["price"], seen["resource"]["duration"]) == \
            ("canceled", None, "0")
        assert route.at("/voice") == []
        status, _ = http(sandbox, "POST", path, [("Status", "canceled")])
        assert status == 400

        behave(sandbox, TO, hold_in_progress=5)
        sid = place(sandbox, [("Url", route.url + "/voice")] + all_events(route))["sid"]
        wait_for(sandbox, sid, "in-progress")
        path = "/2010-04-01/Accounts/%s/Calls/%s.json" % (ACCOUNT, sid)
        assert http(sandbox, "POST", path, [("Status", "canceled")])[0] == 400
        status, body = http(sandbox, "POST", path, [("Status", "completed")])
        assert status == 200 and json.loads(body)["status"] == "completed"
        seen = played(sandbox, sid)
        completed = route.at("/status")[-1]["params"]
        assert completed["CallSid"] == sid and completed["CallStatus"] == "completed"
        # as long as it really was in progress: well under the 5 s hold
        assert completed["CallDuration"] == seen["resource"]["duration"] and 1 <= int(completed["CallDuration"]) < 5
        assert seen["resource"]["price"] == "-0.01400" and len(route.at("/voice")) == 0


def test_api_key_accounts_and_signing_tokens(cluster):
    key, secret, token = "SK" + "3" * 32, "key-secret", "ef" * 16
    with voice({"/voice": xml("<Response><Say>Hi</Say></Response>")},
               credentials={"twilio": [[key, secret]]}) as (sandbox, route):
        # signed with the account's auth token, which an API key does not give
        sid = place(sandbox, [("Url", route.url + "/voice")], user=key, password=secret)["sid"]
        seen = played(sandbox, sid)
        fetch, = requests_of(seen["log"], "fetch")
        assert "no auth token" in fetch["failure"] and route.received == []
        sandbox.call("POST", "/_sandbox/credentials", {"twilio_auth_tokens": {ACCOUNT: token}})
        route.token = token
        sid = place(sandbox, [("Url", route.url + "/voice"), ("Method", "GET")], user=key, password=secret)["sid"]
        seen = played(sandbox, sid)
        fetch, = route.at("/voice")
        assert fetch["signed"] and fetch["method"] == "GET" and fetch["params"]["CallSid"] == sid
        assert verbs(seen["log"]) == [("say", "Hi")]


def test_reset_forgets_calls_and_behaviours(cluster):
    with voice({"/voice": xml("<Response><Say>Hi</Say></Response>")}) as (sandbox, route):
        behave(sandbox, TO, outcome="busy")
        sid = place(sandbox, [("Url", route.url + "/voice")])["sid"]
        assert played(sandbox, sid)["resource"]["status"] == "busy"
        sandbox.call("POST", "/_sandbox/reset")
        assert sandbox.call("GET", "/_sandbox/twilio/calls") == []
        sid = place(sandbox, [("Url", route.url + "/voice")])["sid"]
        assert played(sandbox, sid)["resource"]["status"] == "completed"
        sandbox.call("POST", "/_sandbox/twilio/call_behaviour", {"reset": True})
        try:
            sandbox.call("POST", "/_sandbox/twilio/call_behaviour", {"to": TO, "outcome": "maybe"})
            assert False
        except urllib.error.HTTPError as e:
            assert e.code == 400


def test_fallback_applications_keys_and_get(cluster):
    script = {"/broken": (500, "text/xml", "<Response/>"),
              "/fallback": lambda p: xml("<Response><Say>Fallback after %s</Say></Response>" % p["ErrorCode"]),
              "/menu": xml('<Response><Gather action="keys" finishOnKey="*"><Say>Keys, then star</Say></Gather>'
                           '</Response>'),
              "/keys": lambda p: xml("<Response><Say>%s %s</Say></Response>" % (p["Digits"], p["FinishedOnKey"])),
              "/empty": xml('<Response><Gather action="/none" actionOnEmptyResult="true"/></Response>'),
              "/none": lambda p: xml("<Response><Say>%s</Say></Response>" % ("Digits" in p)),
              "/app": xml("<Response><Say>Application</Say></Response>"), "/status": OK}
    with voice(script) as (sandbox, route):
        seen = played(sandbox, place(sandbox, [("Url", route.url + "/broken"),
                                               ("FallbackUrl", route.url + "/fallback")])["sid"])
        assert [e["kind"] for e in requests_of(seen["log"])] == ["fetch", "fallback"]
        assert route.at("/fallback")[0]["params"]["ErrorUrl"] == route.url + "/broken"
        assert verbs(seen["log"]) == [("say", "Fallback after 11200")] and seen["resource"]["error"] is None

        behave(sandbox, TO, digits=["12*9"])     # a relative action, finishOnKey: Digits 12, FinishedOnKey *
        seen = played(sandbox, place(sandbox, [("Url", route.url + "/menu")])["sid"])
        assert verbs(seen["log"])[1:] == [("gather", "12"), ("say", "12 *")]
        seen = played(sandbox, place(sandbox, [("To", "+12125550119"), ("Url", route.url + "/empty")])["sid"])
        assert verbs(seen["log"]) == [("gather", None), ("say", "False")]

        app = "AP" + "a" * 32
        sandbox.call("POST", "/_sandbox/twilio/applications",
                     {"sid": app, "voice_url": route.url + "/app", "status_callback": route.url + "/status"})
        sid = place(sandbox, [("ApplicationSid", app), ("StatusCallbackEvent", "initiated")])["sid"]
        assert verbs(played(sandbox, sid)["log"]) == [("say", "Application")]
        fetch, status = route.received[-2:]
        assert fetch["params"]["ApplicationSid"] == app and status["params"]["CallStatus"] == "completed"

        # a status callback by GET: its parameters in the URL, which alone is signed
        sid = place(sandbox, [("Url", route.url + "/app"), ("StatusCallback", route.url + "/status?tenant=7"),
                              ("StatusCallbackMethod", "GET")])["sid"]
        played(sandbox, sid)
        last = route.received[-1]
        assert (last["method"], last["path"], last["params"]["tenant"], last["params"]["CallSid"]) == \
            ("GET", "/status", "7", sid)
        assert all(r["signed"] for r in route.received)

        # nothing listening: Twilio's one retry, then 11205
        closed = Route({})
        closed.close()
        seen = played(sandbox, place(sandbox, [("Url", closed.url + "/voice")])["sid"])
        fetch, = requests_of(seen["log"], "fetch")
        assert fetch["attempts"] == 2 and "status" not in fetch and seen["resource"]["error"]["code"] == 11205
