-- Webhook signatures: internal functions that run the checks of
-- src/signature.c with plain keys (Twilio's X-Twilio-Signature, SendGrid's
-- Signed Event Webhook, Vapi's HMAC) and show how a form body is read.
-- Tests feed them the providers' published vectors; they are not tenant
-- functions (90_security revokes them from PUBLIC like every other).

CREATE FUNCTION crefinder.twilio_signature(auth_token text, url text, body text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_twilio_signature';
COMMENT ON FUNCTION crefinder.twilio_signature(text, text, text) IS
    'Internal: the X-Twilio-Signature Twilio would send for a POST of the form body (name=value&...) to url exactly as given: base64 of HMAC-SHA1 under auth_token of url followed by the sorted names and values.  For a url with a bodySHA256 query parameter (a JSON body) it signs the URL alone.  Raises 22P02 for a malformed body.';

CREATE FUNCTION crefinder.twilio_signature_valid(auth_token text, url text, body text, signature text)
    RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_twilio_signature_valid_sql';
COMMENT ON FUNCTION crefinder.twilio_signature_valid(text, text, text, text) IS
    'Internal: whether signature is a valid X-Twilio-Signature for a POST of body to url under auth_token, with the port as given, removed, or the default one added.  With a bodySHA256 query parameter the body is JSON and must have that SHA-256.  False for a malformed body or signature; compared in constant time.';

CREATE FUNCTION crefinder.sendgrid_signature_valid(public_key text, "timestamp" text, body text, signature text)
    RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_sendgrid_signature_valid_sql';
COMMENT ON FUNCTION crefinder.sendgrid_signature_valid(text, text, text, text) IS
    'Internal: whether signature (base64 DER, the X-Twilio-Email-Event-Webhook-Signature header) is a valid ECDSA P-256 SHA-256 signature of timestamp followed by body under public_key (base64 DER SubjectPublicKeyInfo).  False for anything malformed.';

CREATE FUNCTION crefinder.vapi_signature_valid(secret text, "timestamp" text, body text, signature text)
    RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_vapi_signature_valid_sql';
COMMENT ON FUNCTION crefinder.vapi_signature_valid(text, text, text, text) IS
    'Internal: whether signature (x-signature, hexadecimal in either case) is the HMAC-SHA256 under secret of timestamp, ".", body, as Vapi signs server messages; compared in constant time.';

CREATE FUNCTION crefinder.secret_equal(expected text, given text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_secret_equal_sql';
COMMENT ON FUNCTION crefinder.secret_equal(text, text) IS
    'Internal: whether given (a shared secret sent in a header, such as X-Vapi-Secret) is expected, compared in time that depends on the two lengths only.  An empty expected matches nothing.';

CREATE FUNCTION crefinder.parse_form(body text) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_parse_form';
COMMENT ON FUNCTION crefinder.parse_form(text) IS
    'Internal: an application/x-www-form-urlencoded body as a JSON object of names and values (+ is a space, %XX a byte; the first value of a repeated name).  Raises 22P02 for a bad % escape, %00, or more than 1000 fields.';

REVOKE ALL ON FUNCTION crefinder.twilio_signature(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crefinder.twilio_signature_valid(text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crefinder.sendgrid_signature_valid(text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crefinder.vapi_signature_valid(text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crefinder.secret_equal(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION crefinder.parse_form(text) FROM PUBLIC;
