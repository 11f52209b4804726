"""Inputs that used to go wrong: malformed configure() text that put a
secret into the server log, numbers compared as doubles, errors that
quoted whole arguments, instants at the ends of the timestamp range,
dnc_load() by a pg_read_server_files role, and NULL arguments that
crashed a backend."""
import json
import os
import pwd
import secrets

import psycopg2
import psycopg2.extras

from cluster import TEST_SECRET_KEY

DB = "crefinder_inputs_test"
TENANT = "dddddddd-4444-4444-8444-444444444444"
ACCOUNT_SID = "AC" + "3" * 32


def fresh(cluster, name):
    """A new database DB_name with crefinder and the tenant set."""
    conn = cluster.fresh_database("%s_%s" % (DB, name))
    with conn.cursor() as cur:
        cur.execute("SET crefinder.user_id = %s", (TENANT,))
    return conn


def failure(cur, sql, args=None):
    """Runs sql, which must fail; returns the psycopg2 error."""
    try:
        cur.execute(sql, args)
    except psycopg2.Error as e:
        return e
    raise AssertionError("should have failed: %s" % sql[:200])


def error_text(e):
    """Everything the client got with an error."""
    d = e.diag
    return "\n".join(x or "" for x in (e.pgerror, d.message_primary, d.message_detail,
                                       d.message_hint, d.context, d.internal_query))


def pieces(secret, size=12):
    """Every run of size characters of secret (any of them in a log is a leak)."""
    return {secret[i:i + size] for i in range(len(secret) - size + 1)}


def assert_no_piece(text, secret, where):
    for piece in pieces(secret):
        assert piece not in text, "part of a secret (%s) in %s" % (piece, where)


def write_file(cluster, name, text):
    """A file in the cluster's folder that the server can read."""
    path = os.path.join(cluster.root, name)
    with open(path, "w") as f:
        f.write(text)
    if cluster.run_as:
        pw = pwd.getpwnam(cluster.run_as)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o644)
    return path


# ----------------------------------------------------------------------
# 1. Malformed configure() text never brings a secret into a log line.
# ----------------------------------------------------------------------

def test_malformed_config_text_keeps_secrets_out_of_the_log(cluster):
    conn = fresh(cluster, "log")
    token = "7e" + secrets.token_hex(15)          # 32 hexadecimal characters
    others = ["Zq" + secrets.token_hex(14) for _ in range(4)]
    with conn.cursor() as cur:
        cur.execute("SHOW log_min_error_statement")
        assert cur.fetchone()[0] == "error"
        cur.execute("SHOW log_error_verbosity")
        assert cur.fetchone()[0] == "verbose"

        # The typo of the review, as a literal in the statement.
        typo = '{"accountSid":"%s","authToken":"%s", bad' % (ACCOUNT_SID, token)
        e = failure(cur, "SELECT crefinder.configure('twilio', '%s')" % typo)
        assert e.pgcode == "22P02", e.pgcode
        assert e.diag.message_primary == "config is not valid JSON", e.pgerror
        assert "line 1, character %d." % (typo.index("bad") + 1) in e.diag.message_detail, \
            e.diag.message_detail
        assert e.diag.context is None, e.diag.context
        assert_no_piece(error_text(e), token, "the error")

        # Over several lines: the detail names the line, nothing else.
        e = failure(cur, "SELECT crefinder.configure('vapi', '{\n  \"apiKey\": \"%s\",\n"
                         "  \"orgId\" \"o\"\n}')" % others[0])
        assert e.pgcode == "22P02" and "line 3, character 11" in e.diag.message_detail, \
            e.diag.message_detail
        assert_no_piece(error_text(e), others[0], "the error")

        # As a bind parameter (psycopg2 writes it as a literal).
        e = failure(cur, "SELECT crefinder.configure(%s, %s)",
                    ("sendgrid", '{"apiKey": "SG.x.%s" "fromEmail": 1}' % others[1]))
        assert e.pgcode == "22P02", e.pgcode
        assert_no_piece(error_text(e), others[1], "the error")

        # Valid JSON that jsonb cannot store.
        e = failure(cur, "SELECT crefinder.configure('vapi', "
                         "'{\"apiKey\": \"%s\\u0000\", \"orgId\": \"o\"}')" % others[2])
        assert e.pgcode == "22P02" and "cannot store" in e.diag.message_detail, e.pgerror
        assert_no_piece(error_text(e), others[2], "the error")

        # From PL/pgSQL: neither the DO statement nor a context line.
        e = failure(cur, "DO $$ BEGIN PERFORM crefinder.configure('vapi', "
                         "'{\"apiKey\": \"%s\", orgId: 1}'); END $$" % others[3])
        assert e.pgcode == "22P02" and e.diag.context is None, e.diag.context
        assert_no_piece(error_text(e), others[3], "the error")
        e = failure(cur, "DO $$ BEGIN PERFORM crefinder.configure('twilio', "
                         "'{\"accountSid\": \"XX\", \"authToken\": \"%s\"}'); END $$" % token)
        assert e.pgcode == "22023" and e.diag.context is None, e.diag.context
        assert_no_piece(error_text(e), token, "the error")

    log = cluster.log()
    assert "config is not valid JSON" in log   # the failures were logged...
    for secret in [token] + others:
        assert_no_piece(log, secret, "the server log")   # ...without any secret
    conn.close()


def test_text_overload_and_json_parameters_work(cluster):
    conn = fresh(cluster, "text")
    token = secrets.token_hex(16)
    config = {"accountSid": ACCOUNT_SID, "authToken": token, "phoneNumber": "+13055550100"}
    with conn.cursor() as cur:
        # An untyped literal resolves to configure(text, text).
        cur.execute("SELECT crefinder.configure('twilio', '%s')" % json.dumps(config))
        masked = cur.fetchone()[0]
        assert masked["authToken"] == "****" + token[-4:] and masked["respectQuietHours"] is True
        cur.execute("SELECT p.oid::regprocedure::text, pg_catalog.obj_description(p.oid, 'pg_proc') "
                    "FROM pg_proc p WHERE p.proname = 'configure' ORDER BY 1")
        overloads = cur.fetchall()
        assert [o[0] for o in overloads] == ["crefinder.configure(text,jsonb)",
                                             "crefinder.configure(text,text)"], overloads
        assert all(o[1] for o in overloads), "an overload without a comment"

        # psycopg2's Json adapter (an untyped literal), with and without a cast,
        # and a plain string.
        for sql, arg in [("SELECT crefinder.configure(%s, %s)", psycopg2.extras.Json(config)),
                         ("SELECT crefinder.configure(%s, %s::jsonb)", psycopg2.extras.Json(config)),
                         ("SELECT crefinder.configure(%s, %s)", json.dumps(config)),
                         ("SELECT crefinder.configure(%s, %s::text)", json.dumps(config))]:
            cur.execute(sql, ("twilio", arg))
            assert cur.fetchone()[0] == masked, sql

        # The masked round trip goes through the jsonb overload.
        cur.execute("SELECT crefinder.configure('twilio', crefinder.integration_config('twilio')) "
                    "= crefinder.integration_config('twilio')")
        assert cur.fetchone()[0] is True
        cur.execute("SELECT crefinder.configure('twilio', %s)",
                    (json.dumps(dict(config, authToken="****" + token[-4:])),))
        assert cur.fetchone()[0] == masked

        # Both overloads refuse what is not an object, and NULLs by name.
        for literal in ("'[1, 2]'", "'[1, 2]'::jsonb", "'\"AC\"'"):
            e = failure(cur, "SELECT crefinder.configure('twilio', %s)" % literal)
            assert e.pgcode == "22023" and "must be a JSON object" in e.pgerror, e.pgerror
        for sql, name in [("SELECT crefinder.configure(NULL, '{}')", "provider"),
                          ("SELECT crefinder.configure(NULL, '{}'::jsonb)", "provider"),
                          ("SELECT crefinder.configure('twilio', NULL)", "config"),
                          ("SELECT crefinder.configure('twilio', NULL::jsonb)", "config")]:
            e = failure(cur, sql)
            assert e.pgcode == "22004" and e.diag.message_primary == "%s must not be null" % name, \
                (sql, e.pgerror)
    conn.close()


# ----------------------------------------------------------------------
# 2. Numbers are compared as numerics.
# ----------------------------------------------------------------------

def test_numbers_are_compared_exactly(cluster):
    conn = fresh(cluster, "numbers")
    vapi = '{"apiKey": "k-1", "orgId": "o-1", %s}'
    cases = [
        ('"maxPerSecond": 1e400', "maxPerSecond: must be between 0.01 and 100000"),
        ('"maxPerSecond": -1e400', "maxPerSecond: must be between 0.01 and 100000"),
        ('"maxPerSecond": 1e-400', "maxPerSecond: must be between 0.01 and 100000"),
        ('"maxPerSecond": 100000.0000000000000001', "maxPerSecond: must be between 0.01 and 100000"),
        ('"maxPerSecond": 0.0099999999999999999999', "maxPerSecond: must be between 0.01 and 100000"),
        ('"maxCallDuration": 300.0000000000000000001', "maxCallDuration: must be a whole number"),
        ('"maxCallDuration": 1e400', "maxCallDuration: must be between 30 and 1800"),
        ('"maxCallDuration": 1800.00000000000000000001', "maxCallDuration: must be a whole number"),
        ('"voiceSpeed": 2.0000000000000000001', "voiceSpeed: must be between 0.5 and 2"),
        ('"temperature": -0.0000000000000000000001', "temperature: must be between 0 and 1"),
    ]
    with conn.cursor() as cur:
        for field, detail in cases:
            e = failure(cur, "SELECT crefinder.configure('vapi', %s)", (vapi % field,))
            assert e.pgcode == "22023" and e.diag.message_detail == detail, \
                (field, e.pgcode, e.diag.message_detail)
        for field in ['"maxPerSecond": 100000', '"maxPerSecond": 0.01', '"maxCallDuration": 300.0',
                      '"maxCallDuration": 1800', '"voiceSpeed": 2.0', '"temperature": 0']:
            cur.execute("SELECT crefinder.configure('vapi', %s)", (vapi % field,))
        e = failure(cur, "SELECT crefinder.configure('sendgrid', %s)",
                    ('{"apiKey": "SG.a.b", "fromEmail": "a@example.com", "unsubscribeGroupId": 2147483648}',))
        assert e.diag.message_detail == "unsubscribeGroupId: must be between 1 and 2147483647", \
            e.diag.message_detail
        cur.execute("SELECT crefinder.configure('sendgrid', %s) ->> 'unsubscribeGroupId'",
                    ('{"apiKey": "SG.a.b", "fromEmail": "a@example.com", "unsubscribeGroupId": 2147483647}',))
        assert cur.fetchone()[0] == "2147483647"
    conn.close()


# ----------------------------------------------------------------------
# 3. Errors quote at most a short prefix of an input.
# ----------------------------------------------------------------------

def test_errors_quote_a_short_prefix(cluster):
    conn = fresh(cluster, "quote")
    path = write_file(cluster, "inputs_dnc.txt", "2125550103\n")
    big = 10485760
    calls = [
        ("SELECT crefinder.normalize_phone(repeat('a', %d))" % big, "a"),
        ("SELECT crefinder.phone_timezones(repeat('b', %d))" % big, "b"),
        ("SELECT crefinder.phone_region(repeat('c', %d))" % big, "c"),
        ("SELECT crefinder.zip_timezone(repeat('d', %d))" % big, "d"),
        ("SELECT crefinder.normalize_contact('email', repeat('e', %d))" % big, "e"),
        ("SELECT crefinder.normalize_contact(repeat('f', %d), '+13055550123')" % big, "f"),
        ("SELECT * FROM crefinder.can_contact(repeat('g', %d), '+13055550123')" % big, "g"),
        ("SELECT * FROM crefinder.scrub(repeat('h', %d), '{}')" % big, "h"),
        ("SELECT crefinder.configure(repeat('i', %d), '{}')" % big, "i"),
        ("SELECT crefinder.configure('twilio', jsonb_build_object(repeat('j', %d), 1))" % big, "j"),
        ("SELECT crefinder.integration_config(repeat('k', %d))" % big, "k"),
        ("SELECT crefinder.dnc_load(repeat('l', 5000), 'national')", "l"),
        ("SELECT crefinder.dnc_load('%s', repeat('m', %d))" % (path, big), "m"),
        ("SELECT crefinder.test_connection(repeat('n', %d))" % big, "n"),
        ("SELECT crefinder.opt_out('sms', repeat('o', %d))" % big, "o"),
    ]
    before = os.path.getsize(cluster.logfile)
    with conn.cursor() as cur:
        for sql, c in calls:
            e = failure(cur, sql)
            text = error_text(e)
            assert len(text) < 2000, (sql, len(text))
            assert c * 40 + "\u2026" in text, (sql, text[:300])
            assert c * 41 not in text, (sql, text[:300])
        # Cut between characters, never inside one.
        e = failure(cur, "SELECT crefinder.normalize_phone(repeat('\u00e9', 100))")
        assert e.diag.message_primary == 'invalid phone number "%s\u2026"' % ("\u00e9" * 40), \
            e.diag.message_primary
        # Short inputs are quoted whole.
        e = failure(cur, "SELECT crefinder.normalize_phone('305-CALL-NOW')")
        assert e.diag.message_primary == 'invalid phone number "305-CALL-NOW"'
    grown = os.path.getsize(cluster.logfile) - before
    assert grown < 100000, "the log grew by %d bytes" % grown
    with open(cluster.logfile, errors="replace") as f:
        f.seek(before)
        log = f.read()
    for _, c in calls:
        assert c * 41 not in log, "a whole input in the log"
    conn.close()


# ----------------------------------------------------------------------
# 4. Instants at the ends of the timestamp range.
# ----------------------------------------------------------------------

def test_decisions_at_the_ends_of_time(cluster):
    conn = fresh(cluster, "time")
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        for at in ["294276-12-31 00:00:00+00", "infinity", "-infinity",
                   "4714-11-24 00:00:00+00 BC", "4714-11-25 12:00:00+00 BC"]:
            for sql in ["SELECT * FROM crefinder.can_contact('sms', '+12125550100', %s)",
                        "SELECT * FROM crefinder.can_contact('email', 'a@example.com', %s)",
                        "SELECT * FROM crefinder.can_contact('voice', 'not a number', %s)",
                        "SELECT * FROM crefinder.scrub('sms', ARRAY['+12125550100', '+13055550123'], %s)"]:
                e = failure(cur, sql, (at,))
                assert e.pgcode == "22008", (at, sql, e.pgcode, e.pgerror)
                assert e.diag.message_primary.startswith("at "), e.diag.message_primary

        # The last instant that leaves room for the search (402 days before
        # 294277-01-01, the end of the range), and the one after.
        cur.execute("SELECT ('294276-12-31 00:00:00+00'::timestamptz - interval '401 days')::text")
        last = cur.fetchone()[0]
        cur.execute("SELECT allowed, reason FROM crefinder.can_contact('email', 'a@example.com', %s)",
                    (last,))
        assert cur.fetchone() == (True, None)
        for contact in ["+12125550100", "+19075550123", "+18085550123", "+442079460958"]:
            cur.execute("SELECT reason, next_allowed_at::text "
                        "FROM crefinder.can_contact('sms', %s, %s)", (contact, last))
            reason, next_at = cur.fetchone()
            assert reason in (None, "quiet_hours") and next_at.startswith("29427"), (contact, next_at)
        e = failure(cur, "SELECT * FROM crefinder.can_contact('email', 'a@example.com', "
                         "%s::timestamptz + interval '1 microsecond')", (last,))
        assert e.pgcode == "22008" and "end of the timestamp range" in e.pgerror, e.pgerror

        # Correct answers far from now: 23:00 in New York, allowed from 09:00.
        for year in ["2026", "294275"]:
            cur.execute("SELECT allowed, reason, next_allowed_at::text "
                        "FROM crefinder.can_contact('sms', '+12125550100', %s)",
                        ("%s-06-02 03:00:00+00" % year,))
            assert cur.fetchone() == (False, "quiet_hours", "%s-06-02 13:00:00+00" % year)
            cur.execute("SELECT allowed, reason, next_allowed_at::text "
                        "FROM crefinder.can_contact('sms', '+12125550100', %s)",
                        ("%s-06-02 15:00:00+00" % year,))
            assert cur.fetchone() == (True, None, "%s-06-02 15:00:00+00" % year)

        # A cap whose period reaches past the end of time: blocked, with no
        # next instant (the sum overflowed into the past and allowed it).
        cur.execute("INSERT INTO crefinder.calling_rules (region, source, window_start, window_end, "
                    "cap_count, cap_window) VALUES ('NY', 'operator', '08:00', '21:00', 1, "
                    "'292250 years')")
        cur.execute("INSERT INTO crefinder.outbound_events (channel, to_contact, status, sent_at, "
                    "next_attempt_at) VALUES ('sms', '+12125550100', 'sent', "
                    "'2026-06-01 15:00+00', '2026-06-01 15:00+00')")
        cur.execute("SELECT allowed, reason, next_allowed_at "
                    "FROM crefinder.can_contact('sms', '+12125550100', '2026-06-02 15:00+00')")
        assert cur.fetchone() == (False, "frequency_cap", None)
        cur.execute("SELECT allowed, reason, next_allowed_at "
                    "FROM crefinder.scrub('sms', ARRAY['+12125550100'], '2026-06-02 15:00+00')")
        assert cur.fetchone() == (False, "frequency_cap", None)
        cur.execute("DELETE FROM crefinder.calling_rules WHERE source = 'operator'")
    conn.close()


# ----------------------------------------------------------------------
# 5. dnc_load() by a role with pg_read_server_files.
# ----------------------------------------------------------------------

LOADER = "crefinder_inputs_loader"
OUTSIDER = "crefinder_inputs_outsider"


def test_dnc_load_by_a_file_reader(cluster):
    conn = fresh(cluster, "dnc")
    path = write_file(cluster, "inputs_registry.txt", "212,5550103\n2125550104\n\nnot a number\n")
    more = write_file(cluster, "inputs_registry2.txt", "2125550105\n")
    with conn.cursor() as cur:
        for role in (LOADER, OUTSIDER):
            cur.execute("DROP ROLE IF EXISTS %s" % role)
            cur.execute("CREATE ROLE %s LOGIN" % role)
            cur.execute("GRANT USAGE ON SCHEMA crefinder TO %s" % role)
            cur.execute("GRANT EXECUTE ON FUNCTION crefinder.dnc_load(text, text) TO %s" % role)
        cur.execute("GRANT pg_read_server_files TO %s" % LOADER)
        cur.execute("CREATE SCHEMA evil AUTHORIZATION %s" % LOADER)
    db = "%s_dnc" % DB
    loader = outsider = None
    try:
        loader = cluster.connect(dbname=db, user=LOADER)
        with loader.cursor() as cur:
            cur.execute("SELECT crefinder.dnc_load(%s, 'national:inputs')", (path,))
            assert cur.fetchone()[0] == 2
            cur.execute("SELECT current_user, current_setting('search_path')")
            assert cur.fetchone() == (LOADER, '"$user", public')

            # The caller's schemas cannot slip a function into the owner's queries.
            cur.execute("CREATE FUNCTION evil.unnest(bigint[]) RETURNS SETOF bigint "
                        "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked as %', current_user; END $$")
            cur.execute("SET search_path = evil, pg_catalog")
            cur.execute("SELECT crefinder.dnc_load(%s, 'national:inputs')", (more,))
            assert cur.fetchone()[0] == 1
            cur.execute("SELECT current_user, current_setting('search_path')")
            assert cur.fetchone() == (LOADER, "evil, pg_catalog")

            # A failure while loading (a folder cannot be read) leaves the
            # caller who it was.
            cur.execute("""
                CREATE FUNCTION evil.try_load(path text) RETURNS text LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM crefinder.dnc_load(path, 'national:inputs');
                    RETURN 'loaded';
                EXCEPTION WHEN others THEN
                    RETURN SQLSTATE || ' ' || current_user;
                END $$""")
            cur.execute("SELECT evil.try_load(%s)", (cluster.root,))
            outcome = cur.fetchone()[0]
            assert outcome != "loaded" and outcome.endswith(" " + LOADER), outcome
            cur.execute("SELECT current_user")
            assert cur.fetchone()[0] == LOADER

        outsider = cluster.connect(dbname=db, user=OUTSIDER)
        with outsider.cursor() as cur:
            e = failure(cur, "SELECT crefinder.dnc_load(%s, 'national:inputs')", (path,))
            assert e.pgcode == "42501" and "pg_read_server_files" in e.pgerror, e.pgerror

        with conn.cursor() as cur:
            cur.execute("SELECT l.kind, l.user_id, count(d.*) FROM crefinder.dnc_lists l "
                        "JOIN crefinder.dnc_numbers d ON d.list_id = l.id "
                        "WHERE l.source = 'national:inputs' GROUP BY 1, 2")
            assert cur.fetchall() == [("national", None, 3)]
            # The numbers apply to every tenant.
            cur.execute("SELECT reason FROM crefinder.can_contact('sms', '+12125550105', "
                        "'2026-11-24 16:00+00')")
            assert cur.fetchone()[0] == "dnc"
            for sql, name in [("SELECT crefinder.dnc_load(NULL, 'national')", "path"),
                              ("SELECT crefinder.dnc_load(%s, NULL)" % ("'" + path + "'"), "source")]:
                e = failure(cur, sql)
                assert e.pgcode == "22004" and e.diag.message_primary == name + " must not be null"
    finally:
        for other in (loader, outsider):
            if other is not None:
                other.close()
        with conn.cursor() as cur:
            cur.execute("DROP SCHEMA evil CASCADE")
            for role in (LOADER, OUTSIDER):
                cur.execute("DROP OWNED BY %s" % role)
                cur.execute("DROP ROLE %s" % role)
        conn.close()


# ----------------------------------------------------------------------
# 6. NULL arguments never crash the C functions.
# ----------------------------------------------------------------------

# Valid arguments for every C function with arguments; each test call puts
# NULL in one position (then in all).
SAMPLES = {
    "configure(text,jsonb)": ["'twilio'", "'{}'::jsonb"],
    "configure(text,text)": ["'twilio'", "'{}'::text"],
    "integration_config(text)": ["'twilio'"],
    "rotate_secret_key(text,text)": ["'%s'" % TEST_SECRET_KEY, "'%s'" % TEST_SECRET_KEY],
    "normalize_phone(text)": ["'+13055550123'"],
    "phone_timezones(text)": ["'+13055550123'"],
    "phone_region(text)": ["'+13055550123'"],
    "zip_timezone(text)": ["'33101'"],
    "normalize_contact(text,text)": ["'sms'", "'+13055550123'"],
    "try_normalize_contact(text,text)": ["'sms'", "'+13055550123'"],
    "can_contact(text,text,timestamp with time zone,bigint)":
        ["'sms'", "'+13055550123'", "'2026-11-24 16:00+00'::timestamptz", "NULL::bigint"],
    "scrub(text,text[],timestamp with time zone)":
        ["'sms'", "ARRAY['+13055550123']", "'2026-11-24 16:00+00'::timestamptz"],
    "dnc_load(text,text)": ["%(path)s", "'national:nulls'"],
    "us_federal_holidays(integer)": ["2026"],
    "test_connection(text)": ["'twilio'"],
    "render(text,jsonb,boolean,integer)": ["'Hi {{a}}'", "'{\"a\": 1}'::jsonb", "true", "100"],
    "split_owner_name(text)": ["'SMITH JOHN A'"],
    "scrub_for(uuid,text,text[],bigint[],timestamp with time zone)":
        ["'aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa'", "'sms'", "ARRAY['+13055550123']", "ARRAY[1]::bigint[]", "now()"],
    "recipient_zone(text,text,text)": ["'email'", "'a@example.com'", "'33101'"],
}


def test_null_arguments_never_crash(cluster):
    conn = fresh(cluster, "nulls")
    path = "'%s'" % write_file(cluster, "inputs_nulls.txt", "2125550106\n")
    with conn.cursor() as cur:
        cur.execute("""
            SELECT regexp_replace(p.oid::regprocedure::text, '^crefinder\\.', ''),
                   p.prosrc, p.probin, p.proisstrict, p.pronargs,
                   pg_get_function_identity_arguments(p.oid), pg_get_function_result(p.oid)
            FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE l.lanname = 'c' AND p.pronamespace = 'crefinder'::regnamespace
            ORDER BY 1""")
        functions = cur.fetchall()
        cur.execute("CREATE SCHEMA nullcheck")
        for n, (sig, src, binary, strict, nargs, args, result) in enumerate(functions):
            if nargs == 0:
                continue
            if not strict:
                assert sig in SAMPLES, "%s takes NULL: add it to SAMPLES" % sig
            if sig not in SAMPLES:
                continue
            # The same C function, never STRICT: the C code itself must cope.
            cur.execute("CREATE FUNCTION nullcheck.f%d(%s) RETURNS %s LANGUAGE c AS '%s', '%s'"
                        % (n, args, result, binary, src))
            sample = [a % {"path": path} for a in SAMPLES[sig]]
            variants = [[("NULL::%s" % t if i == k else a) for i, (a, t) in
                         enumerate(zip(sample, arg_types(args)))] for k in range(nargs)]
            variants.append(["NULL::%s" % t for t in arg_types(args)])
            for values in variants:
                sql = "SELECT * FROM nullcheck.f%d(%s)" % (n, ", ".join(values))
                try:
                    cur.execute(sql)
                    cur.fetchall()
                except psycopg2.Error as e:
                    assert e.pgcode == "22004", (sig, sql, e.pgcode, e.pgerror)
                    assert e.diag.message_primary.endswith(" must not be null"), e.pgerror
        covered = {f[0] for f in functions}
        assert set(SAMPLES) <= covered, set(SAMPLES) - covered
        cur.execute("SELECT 1")       # the backend is still there
        cur.execute("DROP SCHEMA nullcheck CASCADE")
    conn.close()


def arg_types(identity_args):
    """The types of "name type, name type" (pg_get_function_identity_arguments)."""
    types = []
    for part in identity_args.split(", "):
        if part.startswith("OUT "):
            continue
        words = part.split(" ", 1)
        types.append(words[1] if len(words) > 1 else words[0])
    return types
