"""Webhook signatures through the internal SQL functions of
sql/install/56_signature.sql (src/signature.c, src/form.c):

- every Twilio and SendGrid vector of test/signature_vectors.json (published
  by the providers' SDK test suites): form bodies, the URL with its port as
  given, removed or the default one added, repeated parameters, JSON bodies
  signed through bodySHA256 (one of which only the :443 variant matches);
- changing any single byte of a body, URL, timestamp or signature makes
  validation fail;
- signatures minted here with fresh keys pass (hmac/hashlib for Twilio and
  Vapi, the openssl command for ECDSA P-256), and other keys, curves and
  spellings do not;
- parse_form() on the vectors' bodies, malformed bodies (22P02), %00, and
  bodies of 1,000 and 10,000 fields.
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import urllib.parse

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
DB = "crefinder_signatures"
VECTORS = json.load(open(os.path.join(HERE, "signature_vectors.json")))
TWILIO = VECTORS["twilio"]
SENDGRID = VECTORS["sendgrid_signed_event_webhook"]
DOCS_TOKEN = TWILIO["docs_example"]["auth_token"]      # the SDK tests' token (12345)
MAX_FIELDS = 1000

_ready = set()


def connect(cluster):
    """An autocommit connection to a database with crefinder (created once per cluster)."""
    if id(cluster) not in _ready:
        cluster.fresh_database(DB).close()
        _ready.add(id(cluster))
    return cluster.connect(dbname=DB)


def one(cur, sql, args=()):
    cur.execute(sql, args)
    return cur.fetchone()[0]


def failure(cur, sql, args=()):
    try:
        cur.execute(sql, args)
    except psycopg2.Error as e:
        return e
    raise AssertionError("should have failed: %s %r" % (sql, [str(a)[:80] for a in args]))


def form_body(params):
    """A form body of params (a dict or (name, value) pairs): '+' becomes %2B, ' ' '+'."""
    return urllib.parse.urlencode(list(params.items()) if isinstance(params, dict) else params)


def twilio_mint(token, url, params=()):
    """Twilio's signature as the SDKs compute it: names sorted, a repeated
    name's values sorted and de-duplicated."""
    pairs = list(params.items()) if isinstance(params, dict) else list(params)
    s = url
    for name in sorted({n for n, _ in pairs}):
        for value in sorted({v for n, v in pairs if n == name}):
            s += name + value
    return base64.b64encode(hmac.new(token.encode(), s.encode(), hashlib.sha1).digest()).decode()


def flipped(s, i):
    """s with the bit 0 of its byte i inverted (ASCII stays ASCII)."""
    b = bytearray(s.encode())
    b[i] ^= 0x01
    return b.decode()


def all_flips(s):
    return [flipped(s, i) for i in range(len(s.encode()))]


def count_valid(cur, function, rows):
    """How many of rows (4-tuples of arguments) function accepts, in one query."""
    cols = list(zip(*rows))
    cur.execute("SELECT count(*) FILTER (WHERE crefinder.%s(a, b, c, d)), count(*) "
                "FROM unnest(%%s::text[], %%s::text[], %%s::text[], %%s::text[]) AS t(a, b, c, d)"
                % function, [list(c) for c in cols])
    valid, total = cur.fetchone()
    assert total == len(rows)
    return valid


def twilio_valid(cur, token, url, body, signature):
    return one(cur, "SELECT crefinder.twilio_signature_valid(%s, %s, %s, %s)", (token, url, body, signature))


def twilio_sign(cur, token, url, body):
    return one(cur, "SELECT crefinder.twilio_signature(%s, %s, %s)", (token, url, body))


def sendgrid_valid(cur, key, timestamp, body, signature):
    return one(cur, "SELECT crefinder.sendgrid_signature_valid(%s, %s, %s, %s)",
               (key, timestamp, body, signature))


def vapi_valid(cur, secret, timestamp, body, signature):
    return one(cur, "SELECT crefinder.vapi_signature_valid(%s, %s, %s, %s)",
               (secret, timestamp, body, signature))


def with_port(url, port):
    """url with :port after its host (which must not have one)."""
    scheme, rest = url.split("://", 1)
    host, slash, path = rest.partition("/")
    return "%s://%s:%s%s%s" % (scheme, host, port, slash, path)


# ----------------------------------------------------------------------
# Twilio
# ----------------------------------------------------------------------

def test_twilio_form_vectors(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    for name in ("docs_example", "sdk_form_params"):
        v = TWILIO[name]
        body = form_body(v["params"])
        assert "%2B" in body and "+" not in body, body
        assert twilio_mint(v["auth_token"], v["url"], v["params"]) == v["expected_signature"], name
        if "string_to_sign" in v:
            mac = hmac.new(v["auth_token"].encode(), v["string_to_sign"].encode(), hashlib.sha1).digest()
            assert base64.b64encode(mac).decode() == v["expected_signature"]
        assert twilio_sign(cur, v["auth_token"], v["url"], body) == v["expected_signature"], name
        assert twilio_valid(cur, v["auth_token"], v["url"], body, v["expected_signature"]), name
        # the order of the body's fields does not matter
        reordered = form_body(list(reversed(list(v["params"].items()))))
        assert twilio_valid(cur, v["auth_token"], v["url"], reordered, v["expected_signature"]), name
        assert not twilio_valid(cur, v["auth_token"] + "0", v["url"], body, v["expected_signature"])
        assert not twilio_valid(cur, "", v["url"], body, v["expected_signature"])
        assert not twilio_valid(cur, v["auth_token"], v["url"], "", v["expected_signature"])
    conn.close()


def test_twilio_port_variants(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    v = TWILIO["sdk_form_params"]
    token, url, body = v["auth_token"], v["url"], form_body(v["params"])
    http_url = url.replace("https://", "http://")
    for variant_url, signature in v["port_variants"].items():
        # each published signature is that of its URL as given
        assert twilio_sign(cur, token, variant_url, body) == signature, variant_url
        assert twilio_valid(cur, token, variant_url, body, signature), variant_url
        # ... and Twilio may have signed it with the port removed
        no_port = twilio_sign(cur, token, variant_url.replace(":443", "").replace(":80", "")
                              .replace(":1234", ""), body)
        assert twilio_valid(cur, token, variant_url, body, no_port), variant_url
    https_443 = v["port_variants"]["https://mycompany.com:443/myapp.php?foo=1&bar=2"]
    http_80 = v["port_variants"]["http://mycompany.com:80/myapp.php?foo=1&bar=2"]
    http_1234 = v["port_variants"]["http://mycompany.com:1234/myapp.php?foo=1&bar=2"]
    # a URL without a port: its signature, or the one with the default port
    assert twilio_valid(cur, token, url, body, v["expected_signature"])
    assert twilio_valid(cur, token, url, body, https_443)
    assert twilio_valid(cur, token, http_url, body, http_80)
    # a URL with the default port: its signature, or the one without
    assert twilio_valid(cur, token, with_port(url, 443), body, v["expected_signature"])
    assert twilio_valid(cur, token, with_port(http_url, 80), body, twilio_sign(cur, token, http_url, body))
    # a port that is not the default one is never added, and schemes do not mix
    assert not twilio_valid(cur, token, http_url, body, http_1234)
    assert not twilio_valid(cur, token, url, body, http_80)
    assert not twilio_valid(cur, token, http_url, body, https_443)
    assert not twilio_valid(cur, token, with_port(url, 8443), body, https_443)

    # URLs of other shapes, minted here
    params = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered", "Body": "hi there +1 & more"}
    body = form_body(params)
    for given, signed in [
            ("https://[::1]:443/hook?x=1", "https://[::1]/hook?x=1"),
            ("https://[::1]/hook?x=1", "https://[::1]:443/hook?x=1"),
            ("https://user:pw@example.com/hook", "https://user:pw@example.com:443/hook"),
            ("https://user:pw@example.com:8443/hook", "https://user:pw@example.com/hook"),
            ("https://example.com?x=1", "https://example.com:443?x=1"),
            ("HTTP://example.com/a#frag", "HTTP://example.com:80/a#frag"),
            ("https://example.com:/hook", "https://example.com/hook"),
            ("https://example.com:/hook", "https://example.com:443/hook")]:
        sig = twilio_mint(token, signed, params)
        assert twilio_valid(cur, token, given, body, sig), (given, signed)
        assert twilio_valid(cur, token, signed, body, twilio_mint(token, signed, params))
    for odd in ["example.com/hook", "//example.com:443/x", "https://[::1/x", "https://h:4x3/",
                "", "?", "https://", "\u20ac://x:1/"]:
        sig = twilio_mint(token, odd, params)
        assert twilio_valid(cur, token, odd, body, sig), odd
        assert twilio_sign(cur, token, odd, body) == sig, odd
    conn.close()


def test_twilio_duplicate_params(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    v = TWILIO["sdk_duplicate_params"]
    url = TWILIO["sdk_form_params"]["url"]
    pairs = [tuple(p) for p in v["params_multi"]]
    body = form_body(pairs)
    mac = hmac.new(DOCS_TOKEN.encode(), v["string_to_sign"].encode(), hashlib.sha1).digest()
    assert base64.b64encode(mac).decode() == v["expected_signature"]
    assert twilio_mint(DOCS_TOKEN, url, pairs) == v["expected_signature"]
    assert twilio_sign(cur, DOCS_TOKEN, url, body) == v["expected_signature"]
    assert twilio_valid(cur, DOCS_TOKEN, url, body, v["expected_signature"])
    assert twilio_valid(cur, DOCS_TOKEN, url, form_body(list(reversed(pairs))), v["expected_signature"])
    # the values of a repeated name are sorted and an exact repeat counts once:
    # a signature over every value in body order is not the one
    s = url + "".join(n + val for n, val in sorted(pairs, key=lambda p: p[0]))
    undeduped = base64.b64encode(hmac.new(DOCS_TOKEN.encode(), s.encode(), hashlib.sha1).digest()).decode()
    assert not twilio_valid(cur, DOCS_TOKEN, url, body, undeduped)
    # dropping one of the repeats changes nothing; dropping the other value does
    assert twilio_valid(cur, DOCS_TOKEN, url, form_body(pairs[:4]), v["expected_signature"])
    assert not twilio_valid(cur, DOCS_TOKEN, url, form_body(pairs[:3] + pairs[4:] + [("Digits", "9")]),
                            v["expected_signature"])
    conn.close()


def test_twilio_json_bodies(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    for name in ("sdk_json_body", "sdk_json_body_only_sha_param"):
        v = TWILIO[name]
        url, body = v["url"], v["body"]
        assert twilio_mint(DOCS_TOKEN, url) == v["expected_signature"], name
        assert twilio_sign(cur, DOCS_TOKEN, url, body) == v["expected_signature"], name
        # the body is not part of the HMAC, its hash is
        assert twilio_sign(cur, DOCS_TOKEN, url, "anything") == v["expected_signature"], name
        assert twilio_valid(cur, DOCS_TOKEN, url, body, v["expected_signature"]), name
        assert not twilio_valid(cur, DOCS_TOKEN, url, body + " ", v["expected_signature"]), name
        assert not twilio_valid(cur, DOCS_TOKEN, url, "", v["expected_signature"]), name
        # the hash in the URL may be in capitals
        upper = url.replace(hashlib.sha256(body.encode()).hexdigest(),
                            hashlib.sha256(body.encode()).hexdigest().upper())
        assert upper != url
        assert twilio_valid(cur, DOCS_TOKEN, upper, body, twilio_mint(DOCS_TOKEN, upper)), name
    # the empty-object body: only the :443 variant of the URL matches
    v = TWILIO["sdk_json_empty_body"]
    url, body = v["url_as_given"], v["body"]
    assert hashlib.sha256(body.encode()).hexdigest() == v["body_sha256_hex"]
    url_443 = with_port(url, 443)
    assert twilio_sign(cur, DOCS_TOKEN, url_443, body) == v["expected_signature"]
    assert twilio_sign(cur, DOCS_TOKEN, url, body) != v["expected_signature"]
    assert twilio_sign(cur, DOCS_TOKEN, url, body) == "rw/jVviOgicj2+kHZULvebnA4ag="
    assert twilio_valid(cur, DOCS_TOKEN, url, body, v["expected_signature"])
    assert twilio_valid(cur, DOCS_TOKEN, url_443, body, v["expected_signature"])
    assert twilio_valid(cur, DOCS_TOKEN, url_443, body, "rw/jVviOgicj2+kHZULvebnA4ag=")
    assert not twilio_valid(cur, DOCS_TOKEN, url, "{ }", v["expected_signature"])
    # a JSON body whose hash parameter is no SHA-256
    bad = url.replace(v["body_sha256_hex"], v["body_sha256_hex"][:-1])
    assert not twilio_valid(cur, DOCS_TOKEN, bad, body, twilio_mint(DOCS_TOKEN, bad))
    conn.close()


def test_twilio_single_byte_changes_fail(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    cases = []
    for name in ("docs_example", "sdk_form_params"):
        v = TWILIO[name]
        cases.append((v["auth_token"], v["url"], form_body(v["params"]), v["expected_signature"]))
    for name in ("sdk_json_body", "sdk_json_empty_body"):
        v = TWILIO[name]
        cases.append((DOCS_TOKEN, v.get("url") or v["url_as_given"], v["body"], v["expected_signature"]))
    checked = 0
    for token, url, body, sig in cases:
        assert count_valid(cur, "twilio_signature_valid", [(token, url, body, sig)]) == 1
        rows = [(token, u, body, sig) for u in all_flips(url)] + \
               [(token, url, b, sig) for b in all_flips(body)] + \
               [(token, url, body, s) for s in all_flips(sig)] + \
               [(t, url, body, sig) for t in all_flips(token)]
        assert count_valid(cur, "twilio_signature_valid", rows) == 0, url
        checked += len(rows)
    # signatures that are not 28 characters of base64
    v = TWILIO["docs_example"]
    body = form_body(v["params"])
    for sig in ["", v["expected_signature"][:-1], v["expected_signature"] + "=",
                " " + v["expected_signature"], v["expected_signature"].lower()]:
        assert not twilio_valid(cur, v["auth_token"], v["url"], body, sig), sig
    print("    %d changed bodies, URLs, tokens and signatures refused" % checked)
    conn.close()


def test_twilio_fresh_tokens(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    for i in range(20):
        token = os.urandom(16).hex()
        url = "https://hooks.example.com/twilio/%d/status?tenant=%s&x=%%2F" % (i, os.urandom(4).hex())
        params = {"MessageSid": "SM" + os.urandom(16).hex(), "MessageStatus": "delivered",
                  "From": "+1305555%04d" % i, "To": "whatsapp:+13055550100",
                  "Body": "caf\u00e9 & cr\u00e8me 100%% + %d" % i, "Empty": ""}
        pairs = list(params.items()) + [("MediaUrl0", "https://x/%d?a=b&c=d" % i)] * (i % 3)
        body = form_body(pairs)
        sig = twilio_mint(token, url, pairs)
        assert twilio_sign(cur, token, url, body) == sig
        assert twilio_valid(cur, token, url, body, sig)
        assert twilio_valid(cur, token, with_port(url, 443), body, sig)
        assert not twilio_valid(cur, os.urandom(16).hex(), url, body, sig)
        # JSON
        jbody = json.dumps({"i": i, "s": "\u20ac"})
        jurl = url + "&bodySHA256=" + hashlib.sha256(jbody.encode()).hexdigest()
        assert twilio_valid(cur, token, jurl, jbody, twilio_mint(token, jurl))
        assert not twilio_valid(cur, token, jurl, jbody + "\n", twilio_mint(token, jurl))
    conn.close()


def test_twilio_malformed_bodies_do_not_validate(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    v = TWILIO["docs_example"]
    token, url = v["auth_token"], v["url"]
    for body in ["a=%", "a=%4", "a=%zz&b=1", "%G0=1", "a=%00", "%00", "a=1&b=%0"]:
        # what the signature would be over the body read naively
        sig = twilio_mint(token, url, urllib.parse.parse_qsl(body, keep_blank_values=True))
        assert not twilio_valid(cur, token, url, body, sig), body
        e = failure(cur, "SELECT crefinder.twilio_signature(%s, %s, %s)", (token, url, body))
        assert e.pgcode == "22P02", (body, e.pgcode)
    conn.close()


# ----------------------------------------------------------------------
# SendGrid
# ----------------------------------------------------------------------

def test_sendgrid_vectors(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    for name in ("single_event", "multi_event", "go_sdk_with_private_key"):
        v = SENDGRID[name]
        if "payload_bytes" in v:
            assert len(v["payload"].encode()) == v["payload_bytes"], name
            assert hashlib.sha256(v["payload"].encode()).hexdigest() == v["payload_sha256_hex"], name
        assert sendgrid_valid(cur, v["public_key"], v["timestamp"], v["payload"], v["signature"]) is v["expected"]
        # the trailing CRLF is signed too
        if v["payload"].endswith("\r\n"):
            assert not sendgrid_valid(cur, v["public_key"], v["timestamp"], v["payload"][:-2], v["signature"])
    v = SENDGRID["single_event"]
    neg = v["negative_cases"]
    assert not sendgrid_valid(cur, neg["wrong_key"], v["timestamp"], v["payload"], v["signature"])
    assert not sendgrid_valid(cur, v["public_key"], v["timestamp"], neg["wrong_payload"], v["signature"])
    assert not sendgrid_valid(cur, v["public_key"], v["timestamp"], v["payload"], neg["wrong_signature"])
    assert not sendgrid_valid(cur, v["public_key"], neg["wrong_timestamp"], v["payload"], v["signature"])
    # another vector's key, and malformed keys and signatures
    other = SENDGRID["multi_event"]
    assert not sendgrid_valid(cur, other["public_key"], v["timestamp"], v["payload"], v["signature"])
    for key in ["", "not base64!", v["public_key"][:-4], v["public_key"] + "AAAA",
                v["public_key"].rstrip("="), " " + v["public_key"], base64.b64encode(b"\x30\x00").decode(),
                "A" * 2000]:
        assert not sendgrid_valid(cur, key, v["timestamp"], v["payload"], v["signature"]), key
    for sig in ["", "MEUC", v["signature"][:-4], v["signature"] + "AAAA", v["signature"].rstrip("="),
                v["signature"] + "\n", "A" * 5000]:
        assert not sendgrid_valid(cur, v["public_key"], v["timestamp"], v["payload"], sig), sig
    # another spelling of the same signature bytes is refused: the unused
    # bits of the last base64 character must be zero
    raw = base64.b64decode(v["signature"])
    assert len(raw) % 3 == 2           # one "=": two unused bits
    last = v["signature"][-2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    other_spelling = v["signature"][:-2] + alphabet[alphabet.index(last) | 1] + "="
    assert other_spelling != v["signature"] and base64.b64decode(other_spelling) == raw
    assert not sendgrid_valid(cur, v["public_key"], v["timestamp"], v["payload"], other_spelling)
    # the same signature in BER (a long-form length) rather than DER is refused
    assert raw[0] == 0x30 and raw[1] < 0x80 and raw[1] == len(raw) - 2
    ber = base64.b64encode(b"\x30\x81" + raw[1:]).decode()
    assert not sendgrid_valid(cur, v["public_key"], v["timestamp"], v["payload"], ber)
    conn.close()


def test_sendgrid_single_byte_changes_fail(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    checked = 0
    for name in ("single_event", "go_sdk_with_private_key"):
        v = SENDGRID[name]
        key, ts, body, sig = v["public_key"], v["timestamp"], v["payload"], v["signature"]
        assert count_valid(cur, "sendgrid_signature_valid", [(key, ts, body, sig)]) == 1
        rows = [(key, t, body, sig) for t in all_flips(ts)] + \
               [(key, ts, b, sig) for b in all_flips(body)] + \
               [(key, ts, body, s) for s in all_flips(sig)]
        assert count_valid(cur, "sendgrid_signature_valid", rows) == 0, name
        checked += len(rows)
    print("    %d changed timestamps, bodies and signatures refused" % checked)
    conn.close()


def openssl(*args, data=None):
    return subprocess.run(["openssl"] + list(args), input=data, check=True, capture_output=True).stdout


class Signer:
    """An EC private key in a PEM file (a fresh one of curve, or a DER SEC1 key)."""

    def __init__(self, folder, name, curve="prime256v1", sec1_der=None):
        self.pem = os.path.join(folder, name + ".pem")
        if sec1_der is not None:
            openssl("ec", "-inform", "DER", "-out", self.pem, data=sec1_der)
        elif curve == "rsa":
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.pem)
        else:
            openssl("ecparam", "-genkey", "-noout", "-name", curve, "-out", self.pem)
        der = openssl("pkey", "-in", self.pem, "-pubout", "-outform", "DER")
        self.public_key = base64.b64encode(der).decode()

    def sign(self, message):
        return base64.b64encode(openssl("dgst", "-sha256", "-sign", self.pem, data=message)).decode()


def test_sendgrid_fresh_keys(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    with tempfile.TemporaryDirectory() as folder:
        fresh = Signer(folder, "fresh")
        other = Signer(folder, "other")
        go = SENDGRID["go_sdk_with_private_key"]
        published = Signer(folder, "published", sec1_der=base64.b64decode(go["private_key_sec1_der_base64"]))
        assert published.public_key == go["public_key"]
        for i in range(8):
            ts = str(1700000000 + i)
            body = json.dumps([{"email": "a%d@example.com" % i, "event": "delivered",
                                "sg_event_id": os.urandom(8).hex(), "note": "\u20ac\u00e9"}]) + "\r\n"
            for signer in (fresh, published):
                sig = signer.sign((ts + body).encode())
                assert sendgrid_valid(cur, signer.public_key, ts, body, sig), i
                assert not sendgrid_valid(cur, other.public_key, ts, body, sig), i
                assert not sendgrid_valid(cur, signer.public_key, str(int(ts) + 1), body, sig), i
                # timestamp and body are one run of bytes: moving the boundary keeps it
                assert sendgrid_valid(cur, signer.public_key, ts + body[:2], body[2:], sig), i
        # the empty body
        sig = fresh.sign(b"1700000000")
        assert sendgrid_valid(cur, fresh.public_key, "1700000000", "", sig)
        # keys of another curve or algorithm, even with their own signatures, are refused
        for curve in ("secp384r1", "secp256k1", "rsa"):
            signer = Signer(folder, curve, curve=curve)
            sig = signer.sign(b"1700000000{}")
            assert not sendgrid_valid(cur, signer.public_key, "1700000000", "{}", sig), curve
    conn.close()


# ----------------------------------------------------------------------
# Vapi and shared secrets
# ----------------------------------------------------------------------

def vapi_mint(secret, timestamp, body):
    return hmac.new(secret.encode(), ("%s.%s" % (timestamp, body)).encode(), hashlib.sha256).hexdigest()


def test_vapi_hmac(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    secret = os.urandom(24).hex()
    ts = "1724000000123"
    body = json.dumps({"message": {"type": "status-update", "status": "ended", "call": {"id": "c1"},
                                   "note": "\u20ac"}})
    sig = vapi_mint(secret, ts, body)
    assert vapi_valid(cur, secret, ts, body, sig)
    assert vapi_valid(cur, secret, ts, body, sig.upper())
    assert not vapi_valid(cur, secret + "x", ts, body, sig)
    assert not vapi_valid(cur, "", ts, body, vapi_mint("", ts, body))
    assert not vapi_valid(cur, secret, ts, body, sig[:-1])
    assert not vapi_valid(cur, secret, ts, body, sig + "0")
    assert not vapi_valid(cur, secret, ts, body, "sha256=" + sig)
    assert not vapi_valid(cur, secret, ts, body, "")
    # the dot is signed
    assert not vapi_valid(cur, secret, ts, body, hmac.new(secret.encode(), (ts + body).encode(),
                                                          hashlib.sha256).hexdigest())
    assert vapi_valid(cur, secret, "", body, vapi_mint(secret, "", body))
    rows = [(secret, t, body, sig) for t in all_flips(ts)] + \
           [(secret, ts, b, sig) for b in all_flips(body)] + \
           [(secret, ts, body, s) for s in all_flips(sig)]
    assert count_valid(cur, "vapi_signature_valid", rows) == 0
    for i in range(10):
        secret = os.urandom(8 + i).hex()
        body = json.dumps({"i": i}) + "\n" * (i % 2)
        assert vapi_valid(cur, secret, str(i), body, vapi_mint(secret, i, body))
    conn.close()


def test_secret_equal(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    secret = os.urandom(20).hex()
    eq = "SELECT crefinder.secret_equal(%s, %s)"
    assert one(cur, eq, (secret, secret))
    assert not one(cur, eq, (secret, secret[:-1]))
    assert not one(cur, eq, (secret, secret + "0"))
    assert not one(cur, eq, (secret, secret.upper()))
    assert not one(cur, eq, (secret, ""))
    assert not one(cur, eq, ("", ""))           # no secret set matches nothing
    for i in range(len(secret)):
        assert not one(cur, eq, (secret, flipped(secret, i)))
    assert one(cur, eq, ("\u20ac s\u00e9cret", "\u20ac s\u00e9cret"))
    conn.close()


# ----------------------------------------------------------------------
# Form bodies
# ----------------------------------------------------------------------

def parse(cur, body):
    return one(cur, "SELECT crefinder.parse_form(%s)", (body,))


def test_parse_form(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    for name in ("docs_example", "sdk_form_params"):
        params = TWILIO[name]["params"]
        assert parse(cur, form_body(params)) == params, name
    pairs = [tuple(p) for p in TWILIO["sdk_duplicate_params"]["params_multi"]]
    assert parse(cur, form_body(pairs)) == {"Sid": "CA123", "SidAccount": "AC123", "Digits": "5678"}
    assert parse(cur, form_body(list(reversed(pairs)))) == {"Sid": "CA123", "SidAccount": "AC123",
                                                           "Digits": "1234"}
    for body, expected in [
            ("", {}), ("&&", {}), ("a", {"a": ""}), ("a=", {"a": ""}), ("=x", {"": "x"}),
            ("&&a=1&&b&", {"a": "1", "b": ""}), ("a=1=2", {"a": "1=2"}),
            ("a+b=c+d", {"a b": "c d"}), ("%2B=%2b%20", {"+": "+ "}),
            ("x=%E2%82%AC%c3%a9", {"x": "\u20ac\u00e9"}), ("x=\u20ac", {"x": "\u20ac"}),
            ("a=1&a=2&a=3", {"a": "1"}), ("k=%26%3D%25", {"k": "&=%"}),
            ("Body=line1%0D%0Aline2", {"Body": "line1\r\nline2"}), ("a;b=c", {"a;b": "c"})]:
        assert parse(cur, body) == expected, (body, parse(cur, body))
    # a body of the inbound-message kind
    inbound = {"MessageSid": "SM" + "1" * 32, "From": "+13055550123", "To": "+13055550100",
               "Body": "STOP please & thanks = 100%", "NumMedia": "0", "OptOutType": "STOP"}
    assert parse(cur, form_body(inbound)) == inbound
    conn.close()


def test_parse_form_malformed_bodies(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    for body, where in [("a=%", 3), ("a=%4", 3), ("a=%zz", 3), ("%G1=2", 1), ("ok=1&b=%4g", 8),
                        ("a=100%", 6), ("%%41", 1)]:
        e = failure(cur, "SELECT crefinder.parse_form(%s)", (body,))
        assert e.pgcode == "22P02", (body, e.pgcode)
        assert e.diag.message_primary == "malformed form body", e.diag.message_primary
        assert e.diag.message_detail == ("At byte %d: \"%%\" is not followed by two hexadecimal digits."
                                         % where), (body, e.diag.message_detail)
    # a NUL byte, which text cannot hold, is refused
    for body in ["%00", "a=%00", "a%00b=1", "a=b%00", "ok=1&x=%00"]:
        e = failure(cur, "SELECT crefinder.parse_form(%s)", (body,))
        assert e.pgcode == "22P02", (body, e.pgcode)
        assert "NUL" in e.diag.message_detail, e.diag.message_detail
    # bytes that are not UTF-8
    e = failure(cur, "SELECT crefinder.parse_form(%s)", ("x=%FF",))
    assert e.pgcode == "22021", e.pgcode
    e = failure(cur, "SELECT crefinder.parse_form(%s)", ("%C3=1",))
    assert e.pgcode == "22021", e.pgcode
    conn.close()


def test_parse_form_many_fields(cluster):
    conn = connect(cluster)
    cur = conn.cursor()
    most = "&".join("f%d=%d" % (i, i) for i in range(MAX_FIELDS))
    parsed = parse(cur, most)
    assert len(parsed) == MAX_FIELDS and parsed["f999"] == "999"
    # empty pairs do not count
    assert len(parse(cur, most.replace("&", "&&") + "&")) == MAX_FIELDS
    for n in (MAX_FIELDS + 1, 10000):
        body = "&".join("f%d=%d" % (i, i) for i in range(n))
        e = failure(cur, "SELECT crefinder.parse_form(%s)", (body,))
        assert e.pgcode == "22P02", e.pgcode
        assert e.diag.message_primary == "form body has more than %d fields" % MAX_FIELDS, \
            e.diag.message_primary
        e = failure(cur, "SELECT crefinder.twilio_signature('t', 'https://x/', %s)", (body,))
        assert e.pgcode == "22P02", e.pgcode
        # validation says no rather than raising
        assert not twilio_valid(cur, "t", "https://x/", body, "A" * 27 + "=")
    # 10,000 repeats of one field are 10,000 fields too
    e = failure(cur, "SELECT crefinder.parse_form(%s)", ("&".join(["a=1"] * 10000),))
    assert e.pgcode == "22P02"
    # a signature over 1,000 fields validates
    params = [("f%d" % i, "v %d" % i) for i in range(MAX_FIELDS)]
    url = "https://example.com/many"
    assert twilio_valid(cur, DOCS_TOKEN, url, form_body(params), twilio_mint(DOCS_TOKEN, url, params))
    conn.close()
