"""Provider secrets never appear in plaintext: not in the table (nor its
file on disk), not in pg_dump's output, not in the server log, even when
configure() fails.  Rotation through the server's own setting works end to
end."""
import glob
import os
import pwd
import secrets
import subprocess

import psycopg2
import psycopg2.extras

from cluster import TEST_DATABASE, TEST_SECRET_KEY

DB = "crefinder_secrets_test"
TENANT_A = "aaaaaaaa-1111-4111-8111-111111111111"
TENANT_B = "bbbbbbbb-2222-4222-8222-222222222222"


def fresh_database(cluster):
    return cluster.fresh_database(DB)


def configure(cur, tenant, provider, config):
    cur.execute("SELECT set_config('crefinder.user_id', %s, false)", (tenant,))
    cur.execute("SELECT crefinder.configure(%s, %s::jsonb)", (provider, psycopg2.extras.Json(config)))
    return cur.fetchone()[0]


def make_secrets():
    return {
        "twilio_token": secrets.token_hex(16),
        "twilio_api_secret": secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")[:32],
        "sendgrid_key": "SG.%s.%s" % (secrets.token_urlsafe(16), secrets.token_urlsafe(32)),
        "vapi_key": secrets.token_hex(20),
        "vapi_webhook": secrets.token_hex(20),
    }


def store_all(cur, s):
    configure(cur, TENANT_A, "twilio", {
        "accountSid": "AC" + "1" * 32, "authToken": s["twilio_token"],
        "apiKey": "SK" + "2" * 32, "apiSecret": s["twilio_api_secret"]})
    configure(cur, TENANT_A, "sendgrid", {"apiKey": s["sendgrid_key"], "fromEmail": "a@example.com"})
    configure(cur, TENANT_B, "vapi", {"apiKey": s["vapi_key"], "orgId": "org-b",
                                      "webhookSecret": s["vapi_webhook"]})


def failing_configures(cur, conn, s):
    """Calls that fail for every kind of reason, each carrying a secret."""
    attempts = [
        ("twilio", {"accountSid": "XX", "authToken": s["twilio_token"]}),         # bad field
        ("twilio", {"accountSid": "AC" + "1" * 32, "authToken": s["twilio_token"], "x": 1}),
        ("nope", {"apiKey": s["vapi_key"]}),                                        # bad provider
    ]
    for provider, config in attempts:
        try:
            configure(cur, TENANT_A, provider, config)
            raise AssertionError("configure(%s) should have failed" % provider)
        except psycopg2.Error:
            conn.rollback() if not conn.autocommit else None
    # No key: the error must not log the statement either.
    cur.execute("SET crefinder.secret_key = ''")
    try:
        configure(cur, TENANT_A, "sendgrid", {"apiKey": s["sendgrid_key"], "fromEmail": "a@example.com"})
        raise AssertionError("configure without a key should have failed")
    except psycopg2.Error as e:
        assert e.pgcode == "55000", e.pgcode
    cur.execute("RESET crefinder.secret_key")
    # No tenant.
    cur.execute("RESET crefinder.user_id")
    try:
        cur.execute("SELECT crefinder.configure('vapi', %s::jsonb)",
                    (psycopg2.extras.Json({"apiKey": s["vapi_key"], "orgId": "o"}),))
        raise AssertionError("configure without a tenant should have failed")
    except psycopg2.Error as e:
        assert e.pgcode == "42501", e.pgcode


def plaintexts(s):
    return [v.encode() for v in s.values()]


def test_plaintext_absent_from_table_file_dump_and_log(cluster):
    conn = fresh_database(cluster)
    s = make_secrets()
    with conn.cursor() as cur:
        store_all(cur, s)
        failing_configures(cur, conn, s)

        # The masked views show only the last four characters.
        cur.execute("SELECT set_config('crefinder.user_id', %s, false)", (TENANT_A,))
        cur.execute("SELECT crefinder.integration_config('twilio') ->> 'authToken'")
        assert cur.fetchone()[0] == "****" + s["twilio_token"][-4:]

        # The table as SQL sees it.
        cur.execute("SELECT string_agg(t::text, '|') FROM crefinder.integration_configs t")
        table_text = cur.fetchone()[0].encode()
        assert b"v1:" in table_text and ("AC" + "1" * 32).encode() in table_text
        for p in plaintexts(s):
            assert p not in table_text, "plaintext secret in integration_configs"

        # The table's files on disk, TOAST included, after a checkpoint.
        cur.execute("CHECKPOINT")
        cur.execute("SELECT pg_relation_filepath('crefinder.integration_configs'), "
                    "pg_relation_filepath(reltoastrelid) FROM pg_class "
                    "WHERE oid = 'crefinder.integration_configs'::regclass")
        paths = [p for p in cur.fetchone() if p]
        data = b""
        for rel in paths:
            for f in glob.glob(os.path.join(cluster.datadir, rel) + "*"):
                with open(f, "rb") as fh:
                    data += fh.read()
        assert b"v1:" in data, "table file not read"
        for p in plaintexts(s):
            assert p not in data, "plaintext secret in the table's file"

    # pg_dump keeps the (encrypted) configuration, never the plaintext.
    dump = subprocess.run([os.path.join(cluster.bindir, "pg_dump"), "-d", DB],
                          env=cluster.env(), check=True, capture_output=True).stdout
    assert b"COPY crefinder.integration_configs" in dump
    assert ("AC" + "1" * 32).encode() in dump and b"v1:" in dump
    for p in plaintexts(s):
        assert p not in dump, "plaintext secret in pg_dump output"

    # The server log saw the failures (so the test can see a leak) but no secret.
    log = cluster.log().encode()
    assert b"invalid twilio configuration" in log and b"crefinder.secret_key is not set" in log
    for p in plaintexts(s):
        assert p not in log, "plaintext secret in the server log"
    conn.close()


def write_key_file(cluster, name, key, mode):
    path = os.path.join(cluster.root, name)
    with open(path, "w") as f:
        f.write(key + "\n")
    if cluster.run_as:
        pw = pwd.getpwnam(cluster.run_as)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, mode)
    return path


def test_rotation_through_key_file(cluster):
    """Rotate to a new key and move the server to it by reload, through
    crefinder.secret_key_file: the key never reaches the log (PostgreSQL logs
    the new value of a plain setting changed by reload)."""
    conn = fresh_database(cluster)
    s = make_secrets()
    new_key = secrets.token_hex(32)
    key_file = write_key_file(cluster, "crefinder.key", new_key, 0o600)
    open_file = write_key_file(cluster, "open.key", new_key, 0o644)
    with conn.cursor() as cur:
        store_all(cur, s)
        cur.execute("SELECT crefinder.rotate_secret_key(%s, %s)", (TEST_SECRET_KEY, new_key))
        assert cur.fetchone()[0] == 5
        cur.execute("ALTER SYSTEM SET crefinder.secret_key_file = %s", (key_file,))
        cur.execute("SELECT pg_reload_conf()")
    conn.close()
    try:
        conn = cluster.connect(dbname=DB)
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('crefinder.user_id', %s, false)", (TENANT_B,))
            cur.execute("SELECT crefinder.integration_config('vapi') ->> 'webhookSecret'")
            assert cur.fetchone()[0] == "****" + s["vapi_webhook"][-4:]
            # New secrets are sealed under the file's key too.
            configure(cur, TENANT_B, "sendgrid", {"apiKey": s["sendgrid_key"], "fromEmail": "b@example.com"})
            # Nothing is left under the old key.
            cur.execute("SELECT crefinder.rotate_secret_key(%s, %s)", (TEST_SECRET_KEY, new_key))
            assert cur.fetchone()[0] == 0
            assert new_key.encode() not in cluster.log().encode()
        conn.close()
        # A key file others may read is refused.
        conn = cluster.connect(dbname=DB)
        with conn.cursor() as cur:
            cur.execute("ALTER SYSTEM SET crefinder.secret_key_file = %s", (open_file,))
            cur.execute("SELECT pg_reload_conf()")
        conn.close()
        conn = cluster.connect(dbname=DB)
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('crefinder.user_id', %s, false)", (TENANT_B,))
            try:
                cur.execute("SELECT crefinder.integration_config('vapi')")
                raise AssertionError("a world-readable key file should be refused")
            except psycopg2.Error as e:
                assert e.pgcode == "55000" and "accessible to other users" in str(e), str(e)
        conn.close()
    finally:
        conn = cluster.connect(dbname=DB)
        with conn.cursor() as cur:
            cur.execute("ALTER SYSTEM RESET crefinder.secret_key_file")
            cur.execute("SELECT pg_reload_conf()")
        conn.close()


def test_login_role_sees_only_its_tenant(cluster):
    conn = fresh_database(cluster)
    s = make_secrets()
    with conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS crefinder_it_app")
        cur.execute("CREATE ROLE crefinder_it_app LOGIN")
        cur.execute("SELECT crefinder.grant_access('crefinder_it_app')")
    app = cluster.connect(dbname=DB, user="crefinder_it_app")
    with app.cursor() as cur:
        store_all(cur, s)
        cur.execute("SELECT set_config('crefinder.user_id', %s, false)", (TENANT_B,))
        cur.execute("SELECT provider FROM crefinder.integration_configs")
        assert [r[0] for r in cur.fetchall()] == ["vapi"]
        assert_fails(cur, "SELECT crefinder.rotate_secret_key(%s, %s)", "42501")
        assert_fails(cur, "SET crefinder.secret_key = ''", "42501")
        assert_fails(cur, "SHOW crefinder.secret_key", "42501")
    app.close()
    with conn.cursor() as cur:
        cur.execute("DROP OWNED BY crefinder_it_app")
        cur.execute("DROP ROLE crefinder_it_app")
    conn.close()


def assert_fails(cur, sql, sqlstate):
    try:
        cur.execute(sql, ("a" * 64, "b" * 64) if "%s" in sql else None)
    except psycopg2.Error as e:
        assert e.pgcode == sqlstate, (sql, e.pgcode, str(e))
        return
    raise AssertionError("%s should have failed" % sql)


def test_coexists_with_pg_cron(cluster):
    """pg_cron is a soft dependency: both extensions live in one database
    (pg_cron's own, cron.database_name)."""
    admin = cluster.connect(dbname="postgres")
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DATABASE,))
        if cur.fetchone() is None:
            cur.execute("CREATE DATABASE %s" % TEST_DATABASE)
    admin.close()
    conn = cluster.connect(dbname=TEST_DATABASE)
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS crefinder")
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        cur.execute("SELECT extname FROM pg_extension WHERE extname IN ('pg_cron', 'crefinder') "
                    "ORDER BY 1")
        assert [r[0] for r in cur.fetchall()] == ["crefinder", "pg_cron"]
        cur.execute("DROP EXTENSION pg_cron")
    conn.close()
