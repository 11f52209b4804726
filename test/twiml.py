"""TwiML as the sandbox plays it: the voice verbs crefinder may answer with,
checked as strictly as Twilio checks them.

    validate(text)   -> list of problems, each "CODE: what"; empty when Twilio would accept it
    parse(text)      -> the verbs, or raises TwimlError(code, problems)

CODE is Twilio's: 12100 (Document parse failure: not XML, empty, a DTD) or
12200 (Schema validation warning: the root is not <Response>, an unknown
verb or attribute, a verb where Twilio does not allow it, a bad value).
A verb is {"verb": name, "attrs": {name: value}, "text": stripped text,
"children": [verbs]}.

The verbs, their attributes and where they may stand:
  <Response>                 the root; no attributes, no text of its own
  Say      voice language loop                      text required; no children
  Play     loop                                     text (the audio URL) required
  Pause    length                                   no text
  Gather   action method timeout numDigits finishOnKey input actionOnEmptyResult
           children: Say Play Pause only
  Dial     action method timeout callerId record timeLimit answerOnBridge hangupOnStar ringTone
           a bare number as its text, or <Number> children (not both)
  Number   url method statusCallback statusCallbackEvent statusCallbackMethod sendDigits
           only inside Dial; the number as text
  Hangup   nothing
Twilio knows more verbs (Redirect, Record, Reject, ...): the sandbox does not
play them, so they count as unknown here, and a test learns it at once.
A whisper (the TwiML of <Number url=...>) may hold only Say, Play, Pause and
Hangup: parse(text, WHISPER_VERBS).

Used by test/sandbox.py on every document it is given, and by tests on the
documents crefinder writes.
"""
import re
import xml.etree.ElementTree as ET

CALL_VERBS = ("Say", "Play", "Pause", "Gather", "Dial", "Hangup")
WHISPER_VERBS = ("Say", "Play", "Pause", "Hangup")

# per verb: allowed attributes, allowed children, what its text must be
# ("required", "none", or "dial": a number unless it has <Number> children)
SCHEMA = {
    "Say": ({"voice", "language", "loop"}, (), "required"),
    "Play": ({"loop"}, (), "required"),
    "Pause": ({"length"}, (), "none"),
    "Gather": ({"action", "method", "timeout", "numDigits", "finishOnKey", "input", "actionOnEmptyResult"},
               ("Say", "Play", "Pause"), "none"),
    "Dial": ({"action", "method", "timeout", "callerId", "record", "timeLimit", "answerOnBridge",
              "hangupOnStar", "ringTone"}, ("Number",), "dial"),
    "Number": ({"url", "method", "statusCallback", "statusCallbackEvent", "statusCallbackMethod", "sendDigits"},
               (), "required"),
    "Hangup": (set(), (), "none"),
}

# attribute values: a whole number at least this big
COUNTS = {"loop": 0, "length": 0, "timeout": 0, "numDigits": 1, "timeLimit": 1}
METHODS = {"method", "statusCallbackMethod"}
BOOLEANS = {"actionOnEmptyResult", "answerOnBridge", "hangupOnStar"}
RECORD = {"do-not-record", "record-from-answer", "record-from-ringing",
          "record-from-answer-dual", "record-from-ringing-dual"}
CALL_EVENTS = {"initiated", "ringing", "answered", "completed"}
PHONE = re.compile(r"\+?[0-9][0-9 ().-]*")


class TwimlError(ValueError):
    def __init__(self, code, problems):
        super().__init__("; ".join(problems))
        self.code = code
        self.problems = problems


def validate(text, verbs=CALL_VERBS):
    try:
        parse(text, verbs)
    except TwimlError as e:
        return e.problems
    return []


def parse(text, verbs=CALL_VERBS):
    probe = text.decode("latin-1") if isinstance(text, bytes) else text
    if not probe.strip():
        raise TwimlError(12100, ["12100: the document is empty"])
    if "<!DOCTYPE" in probe.upper():
        # a test tool has no use for entities; refusing DTDs keeps expat's
        # entity expansion out of the picture altogether
        raise TwimlError(12100, ["12100: a DOCTYPE is not accepted"])
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise TwimlError(12100, ["12100: not XML (%s)" % e])
    problems = []
    if root.tag != "Response":
        problems.append("12200: the root is <%s>, not <Response>" % root.tag)
    if root.attrib:
        problems.append("12200: <Response> takes no attributes (%s)" % ", ".join(sorted(root.attrib)))
    if (root.text or "").strip():
        problems.append("12200: text outside a verb in <Response>")
    out = [verb(child, "Response", verbs, problems) for child in root]
    if problems:
        raise TwimlError(12200, problems)
    return out


def verb(el, parent, allowed, problems):
    """el as a verb dict; its problems appended to problems."""
    name = el.tag
    if (el.tail or "").strip():
        problems.append("12200: text outside a verb after <%s>" % name)
    if name not in SCHEMA:
        problems.append("12200: <%s> is not a verb Twilio plays here" % name)
        return {"verb": name, "attrs": dict(el.attrib), "text": "", "children": []}
    if name not in allowed:
        problems.append("12200: <Number> may stand only inside <Dial>" if name == "Number"
                        else "12200: <%s> may not stand inside <%s>" % (name, parent))
    attrs_ok, children_ok, text_rule = SCHEMA[name]
    for attr, value in el.attrib.items():
        if attr not in attrs_ok:
            problems.append("12200: <%s> has no attribute %s" % (name, attr))
        else:
            problem = bad_value(attr, value)
            if problem:
                problems.append("12200: <%s %s=%r>: %s" % (name, attr, value, problem))
    text = (el.text or "").strip()
    children = [verb(child, name, children_ok, problems) for child in el]
    if text_rule == "required" and not text:
        problems.append("12200: <%s> needs text" % name)
    if text_rule == "none" and text:
        problems.append("12200: <%s> takes no text" % name)
    if text_rule == "dial" and bool(text) == bool(children):
        problems.append("12200: <Dial> needs a number as its text or <Number> children, not both"
                        if text else "12200: <Dial> has nothing to dial")
    if name == "Number" or (name == "Dial" and text):
        if text and not PHONE.fullmatch(text):
            problems.append("12200: <%s> %r is not a phone number" % (name, text))
    if name in ("Say", "Play", "Number") and len(el):
        problems.append("12200: <%s> takes no elements" % name)
    return {"verb": name, "attrs": dict(el.attrib), "text": text, "children": children}


def bad_value(attr, value):
    """Why value is not allowed for attr, or None."""
    if attr in COUNTS:
        if not re.fullmatch(r"[0-9]+", value):
            return "not a whole number"
        if int(value) < COUNTS[attr]:
            return "at least %d" % COUNTS[attr]
    elif attr in METHODS:
        if value.upper() not in ("GET", "POST"):
            return "GET or POST"
    elif attr in BOOLEANS:
        if value not in ("true", "false"):
            return "true or false"
    elif attr == "record":
        if value not in RECORD:
            return "one of " + ", ".join(sorted(RECORD))
    elif attr == "input":
        if not value.split() or not set(value.split()) <= {"dtmf", "speech"}:
            return "dtmf, speech or both"
    elif attr == "finishOnKey":
        if value not in ("",) + tuple("0123456789#*"):
            return "one key of 0-9, # or *, or empty"
    elif attr == "sendDigits":
        if not re.fullmatch(r"[0-9A-D#*wW]{1,32}", value):
            return "keys 0-9, A-D, #, * and pauses w, W"
    elif attr == "statusCallbackEvent":
        if not value.split() or not set(value.split()) <= CALL_EVENTS:
            return "of " + " ".join(sorted(CALL_EVENTS))
    elif attr in ("callerId", "voice", "language", "ringTone", "url", "action", "statusCallback"):
        if not value.strip():
            return "empty"
    return None
