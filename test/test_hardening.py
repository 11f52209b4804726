"""Hardening: what an attacker or a mistaken user tries must neither crash the
server, nor stop the dispatcher for the others, nor run their code as the
superuser.

- Every function of the extension is called with NULL in each argument
  position, with empty strings and empty arrays, as a tenant role and as the
  superuser: the server stays up and no call ends in XX000.
- Overloads of every function crefinder's SQL names without a schema are
  planted in public by a role that may create there; sending, dispatching,
  recording, dnc_load, scrub, configure and rotate_secret_key run none.
- Bad rows (a damaged secret envelope, a payload with a send time that is no
  time) among 1,000 good messages of another tenant: the good ones go out,
  the bad ones end with a reason, the worker's pid does not change; a
  missing or wrong server key holds messages and says so once; a tenant's
  lock on its own rows holds only that tenant's messages.
"""
import os
import re
import tempfile
import time

import psycopg2
import psycopg2.extras

import test_dispatcher as td
from cluster import Cluster, TEST_DATABASE, TEST_SECRET_KEY

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
TENANT_ROLE = "hardening_app"
OTHER = "99999999-0000-4000-8000-0000000000bb"

SAMPLES = {
    "text": "'sms'", "bigint": "1", "integer": "2026", "smallint": "1", "boolean": "true",
    "jsonb": "'{}'::jsonb", "timestamp with time zone": "now()", "uuid": "'%s'::uuid" % OTHER,
    "text[]": "'{+13055550123}'::text[]", "bigint[]": "'{1}'::bigint[]", "regrole": "'%s'" % TENANT_ROLE,
}
EMPTY = {"text": "''", "text[]": "'{}'::text[]", "bigint[]": "'{}'::bigint[]", "jsonb": "'{}'::jsonb"}


def extension_functions(cur):
    cur.execute("""
        SELECT p.oid::regprocedure::text, p.proname,
               coalesce(array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) AS t), '{}'),
               p.prorettype = 'trigger'::regtype OR p.prokind <> 'f'
        FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
        JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'crefinder'
        WHERE d.deptype = 'e' ORDER BY 1""")
    return cur.fetchall()


def sweep_calls(functions):
    """(label, sql) for every function: samples, NULL in each position, empties."""
    calls = []
    for signature, name, types, skip in functions:
        if skip or name in ("rotate_secret_key", "dnc_load"):
            # triggers cannot be called; the superuser-only key and file paths
            # are covered with NULLs below without valid samples
            if not skip:
                for i in range(len(types)):
                    args = ["NULL" if j == i else "'x'" for j in range(len(types))]
                    calls.append(("%s null %d" % (name, i), "crefinder.%s(%s)" % (name, ", ".join(args))))
            continue
        base = [SAMPLES.get(t, "NULL") for t in types]
        casts = ["%s::%s" % (v, t) for v, t in zip(base, types)]
        calls.append(("%s samples" % name, "crefinder.%s(%s)" % (name, ", ".join(casts))))
        for i, t in enumerate(types):
            args = list(casts)
            args[i] = "NULL::%s" % t
            calls.append(("%s null %d" % (name, i), "crefinder.%s(%s)" % (name, ", ".join(args))))
            if t in EMPTY:
                args[i] = "%s::%s" % (EMPTY[t], t)
                calls.append(("%s empty %d" % (name, i), "crefinder.%s(%s)" % (name, ", ".join(args))))
        if types:
            calls.append(("%s all null" % name,
                          "crefinder.%s(%s)" % (name, ", ".join("NULL::%s" % t for t in types))))
    return calls


def run_sweep(cluster, conn, calls):
    """Runs each call in a savepoint; returns {sqlstate: count}."""
    codes = {}
    cur = conn.cursor()
    for label, sql in calls:
        cur.execute("SAVEPOINT s")
        try:
            cur.execute("SELECT * FROM %s" % sql)
            cur.fetchall()
            code = "00000"
        except psycopg2.Error as e:
            if e.pgcode is None or conn.closed:
                raise AssertionError("the server died on %s: %s" % (sql, e))
            code = e.pgcode
        cur.execute("ROLLBACK TO SAVEPOINT s")
        assert code != "XX000", "%s ended in XX000" % sql
        codes[code] = codes.get(code, 0) + 1
    return codes


def test_null_sweep_of_every_function(cluster):
    conn = cluster.fresh_database("crefinder_sweep")
    cur = conn.cursor()
    cur.execute("DROP ROLE IF EXISTS %s" % TENANT_ROLE)
    cur.execute("CREATE ROLE %s LOGIN" % TENANT_ROLE)
    cur.execute("SELECT crefinder.grant_access(%s)", (TENANT_ROLE,))
    cur.execute("SELECT cardinality(crefinder.tenant_functions())")
    public_functions = cur.fetchone()[0]
    functions = extension_functions(cur)
    calls = sweep_calls(functions)
    log_before = len(cluster.log())
    cur.execute("SELECT pg_postmaster_start_time()")
    started = cur.fetchone()[0]

    tenant = cluster.connect(dbname="crefinder_sweep", user=TENANT_ROLE, autocommit=False)
    tcur = tenant.cursor()
    tcur.execute("SET crefinder.user_id = %s", (OTHER,))
    as_tenant = run_sweep(cluster, tenant, calls)
    tenant.rollback()
    tenant.close()

    admin = cluster.connect(dbname="crefinder_sweep", autocommit=False)
    acur = admin.cursor()
    acur.execute("SET crefinder.user_id = %s", (OTHER,))
    as_superuser = run_sweep(cluster, admin, calls)
    admin.rollback()
    admin.close()

    cur.execute("SELECT pg_postmaster_start_time()")
    assert cur.fetchone()[0] == started, "the server restarted"
    log = cluster.log()[log_before:]
    assert "terminated by signal" not in log
    assert "XX000" not in log
    print("    %d functions (%d for tenants), %d calls each as a tenant and as the superuser; "
          "SQLSTATEs as tenant %r, as superuser %r"
          % (len(functions), public_functions, len(calls), as_tenant, as_superuser))
    cur.execute("SELECT crefinder.revoke_access(%s)", (TENANT_ROLE,))
    cur.execute("DROP ROLE %s" % TENANT_ROLE)
    conn.close()


def test_null_arguments_name_sqlstate_22004(cluster):
    s = td.Setup(cluster)
    conn = s.conn
    cur = s.cur
    for sql, code in [("crefinder.send_sms(NULL, 'x')", "22004"),
                      ("crefinder.send_sms('+13055550123', NULL)", "22004"),
                      ("crefinder.opt_out(NULL, '+13055550123')", "22004"),
                      ("crefinder.opt_out('sms', NULL)", "22004"),
                      ("crefinder.dnc_add(NULL)", "22004"),
                      ("crefinder.integration_config(NULL)", None),
                      ("crefinder.cancel(424242)", "22023"),
                      ("crefinder.send_sms('+13055550123', 'x', property_id => 424242)", "22023"),
                      ("crefinder.send_sms('+13055550123', 'x', campaign_id => 424242)", "22023"),
                      ("crefinder.record_consent('+13055550123', 'sms', 'bogus', 'form')", "22023"),
                      ("crefinder.set_tenant_settings('{\"sms_window_start\": \"25:99\", \"nope\": 1}')", "22023"),
                      ("crefinder.set_tenant_settings('{\"sms_window_start\": \"21:00\", \"sms_window_end\": \"20:00\"}')",
                       "22023")]:
        try:
            cur.execute("SELECT %s" % sql)
            got = None
        except psycopg2.Error as e:
            got = e.pgcode
            if code == "22023" and "record_consent" in sql:
                assert "express, express_written" in e.diag.message_detail, e.diag.message_detail
        assert got == code, "%s: %s, not %s" % (sql, got, code)
    s.close()


# ---------------------------------------------------------------------------
# Planted overloads

PLANT_SIGNATURES = ["text", "text, text", "text, integer[]", "text[]", "bigint[]", "bigint[], text[]",
                    "bigint[], text[], text[], text[], text[], text[], text[], text[], text[]",
                    "jsonb", "jsonb, text", "jsonb, text[]", "uuid", "timestamp with time zone",
                    "bigint", "integer", "numeric", "text, text, text", "anyelement", "interval"]


def unqualified_function_names(cur):
    """Names of pg_catalog functions that crefinder's SQL and C code call."""
    words = set()
    for folder, ext in (("sql/install", ".sql"), ("src", ".c")):
        for name in os.listdir(os.path.join(TOP, folder)):
            if not name.endswith(ext) or name == "tzdata.c":
                continue
            with open(os.path.join(TOP, folder, name)) as f:
                text = f.read()
            if ext == ".c":   # only what is inside string literals
                text = " ".join(re.findall(r'"((?:[^"\\]|\\.)*)"', text))
            words.update(w.lower() for w in re.findall(r"(?<![.\w])([A-Za-z_][A-Za-z0-9_]*)\s*\(", text))
    cur.execute("SELECT DISTINCT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace "
                "AND proname = ANY (%s)", (sorted(words),))
    return sorted(r[0] for r in cur.fetchall())


def test_planted_overloads_never_run(cluster):
    s = td.Setup(cluster)
    try:
        cur = s.cur
        # what the code names, and array_fill, which the dispatcher once named unqualified
        names = sorted(set(unqualified_function_names(cur)) | {"array_fill"})
        assert {"unnest", "now", "jsonb_build_object", "count"} <= set(names), names
        cur.execute("DROP ROLE IF EXISTS planter")
        cur.execute("CREATE ROLE planter")
        cur.execute("GRANT CREATE, USAGE ON SCHEMA public TO planter")
        cur.execute("CREATE TABLE IF NOT EXISTS public.planted_ran (name text, role text)")
        cur.execute("GRANT INSERT ON public.planted_ran TO PUBLIC")
        cur.execute("TRUNCATE public.planted_ran")
        cur.execute("SET ROLE planter")
        planted = 0
        for name in names:
            for signature in PLANT_SIGNATURES:
                returns = "anyelement" if signature == "anyelement" else "text"
                try:
                    cur.execute("CREATE FUNCTION public.%s(%s) RETURNS %s LANGUAGE plpgsql AS $$ BEGIN "
                                "INSERT INTO public.planted_ran VALUES (%s, current_user); RETURN NULL; END $$"
                                % (psycopg2.extensions.quote_ident(name, cur), signature, returns,
                                   psycopg2.extensions.adapt(name).getquoted().decode()))
                    planted += 1
                except psycopg2.Error:
                    pass
        cur.execute("RESET ROLE")
        cur.execute("SET crefinder.user_id = %s", (td.TENANT,))

        # every path: configure, send, dispatch, record, scrub, compliance, dnc_load, rotate
        s.configure_all()
        ids = []
        cur.execute("SELECT crefinder.send_sms('+13055550161', 'planted?')")
        ids.append(cur.fetchone()[0])
        cur.execute("SELECT crefinder.send_whatsapp('+13055550162', 'planted?')")
        ids.append(cur.fetchone()[0])
        cur.execute("SELECT crefinder.send_email('planted@example.com', 'Subject', text_body => 'x', "
                    "categories => ARRAY['a'])")
        ids.append(cur.fetchone()[0])
        cur.execute("SELECT crefinder.record_consent('+13055550163', 'voice', 'express_written', 'form')")
        cur.execute("SELECT crefinder.start_call('+13055550163')")
        ids.append(cur.fetchone()[0])
        for m in ids:
            s.wait_status(m, ("sent",))
        s.sandbox.call("POST", "/_sandbox/faults", {"path": "/2010-04-01", "fault": "503", "count": 1})
        cur.execute("SELECT crefinder.send_sms('+13055550164', 'retried')")
        retried = cur.fetchone()[0]
        s.wait_status(retried, ("sent",))
        cur.execute("SELECT count(*) FROM crefinder.scrub('sms', ARRAY['+13055550161', '+13055550199'])")
        cur.execute("SELECT * FROM crefinder.can_contact('voice', '+13055550163')")
        cur.execute("SELECT crefinder.opt_out('sms', '+13055550165'), crefinder.opt_in('sms', '+13055550165')")
        cur.execute("SELECT crefinder.set_tenant_settings('{\"max_messages_per_24h\": 50}')")
        cur.execute("SELECT crefinder.get_tenant_settings(), crefinder.integration_config('twilio')")
        cur.execute("SELECT crefinder.dnc_add('+13055550166')")
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, dir="/tmp") as f:
            f.write("305,5550167\n3055550168\n")
        os.chmod(f.name, 0o644)
        cur.execute("SELECT crefinder.dnc_load(%s, 'state:FL planted test')", (f.name,))
        os.unlink(f.name)
        cur.execute("SELECT crefinder.rotate_secret_key(%s, %s)", (td_key(), td_key()))
        cur.execute("SELECT * FROM crefinder.dispatcher_status")
        cur.execute("SELECT * FROM crefinder.paused_providers")

        cur.execute("SELECT name, role FROM public.planted_ran")
        ran = cur.fetchall()
        assert ran == [], "planted functions ran: %r" % ran
        print("    %d overloads of %d functions named in crefinder's code planted, none ran: %s"
              % (planted, len(names), ", ".join(names)))
    finally:
        cur = s.cur
        cur.execute("RESET ROLE")
        cur.execute("SELECT 'DROP FUNCTION ' || p.oid::regprocedure FROM pg_proc p JOIN pg_roles r "
                    "ON r.oid = p.proowner WHERE p.pronamespace = 'public'::regnamespace AND r.rolname = 'planter'")
        for (drop,) in cur.fetchall():
            cur.execute(drop)
        cur.execute("DROP TABLE IF EXISTS public.planted_ran")
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'planter'")
        if cur.fetchone():
            cur.execute("REVOKE ALL ON SCHEMA public FROM planter")
            cur.execute("DROP ROLE planter")
        s.close()


def td_key():
    return TEST_SECRET_KEY


def test_planted_auth_uid_is_not_trusted(cluster):
    conn = cluster.fresh_database("crefinder_auth")
    cur = conn.cursor()
    cur.execute("DROP ROLE IF EXISTS schema_maker")
    cur.execute("CREATE ROLE schema_maker")
    cur.execute("GRANT CREATE ON DATABASE crefinder_auth TO schema_maker")
    cur.execute("SET ROLE schema_maker")
    cur.execute("CREATE SCHEMA auth")
    cur.execute("CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql AS "
                "$$ SELECT '11111111-0000-4000-8000-000000000001'::uuid $$")
    cur.execute("RESET ROLE")
    cur.execute("SET crefinder.user_id = %s", (OTHER,))
    cur.execute("SELECT crefinder.current_user_id()::text")
    assert cur.fetchone()[0] == OTHER, "a planted auth.uid() chose the tenant"
    # one a superuser owns (as on Supabase) decides
    cur.execute("ALTER SCHEMA auth OWNER TO postgres")
    cur.execute("SELECT crefinder.current_user_id()::text")
    assert cur.fetchone()[0] == "11111111-0000-4000-8000-000000000001"
    cur.execute("DROP SCHEMA auth CASCADE")
    conn.close()
    admin = cluster.connect(dbname="postgres")
    with admin.cursor() as c:
        c.execute("DROP DATABASE crefinder_auth")
        c.execute("DROP ROLE schema_maker")
    admin.close()


# ---------------------------------------------------------------------------
# One bad row or tenant never stops the others

def dispatcher_pids(cur):
    cur.execute("SELECT array_agg(pid ORDER BY worker) FROM crefinder.dispatcher_status")
    return cur.fetchone()[0]


def queue_good(cur, n):
    cur.execute("SET crefinder.user_id = %s", (td.TENANT,))
    cur.execute("SELECT array_agg(crefinder.send_sms('+1305555' || lpad(i::text, 4, '0'), 'good ' || i)) "
                "FROM generate_series(1, %s) AS i", (n,))
    return cur.fetchone()[0]


def wait_all(cur, ids, statuses, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        cur.execute("SELECT count(*) FROM crefinder.outbound_events WHERE id = ANY (%s) "
                    "AND status <> ALL (%s)", (ids, list(statuses)))
        if cur.fetchone()[0] == 0:
            return
        time.sleep(0.2)
    cur.execute("SELECT status, count(*) FROM crefinder.outbound_events WHERE id = ANY (%s) GROUP BY 1", (ids,))
    raise AssertionError("not all %s: %r" % (statuses, cur.fetchall()))


def wait_hold(cur, message_id, expected, timeout=20):
    """Waits until the message's (status, hold_reason) is expected."""
    deadline = time.time() + timeout
    seen = None
    while time.time() < deadline and seen != expected:
        cur.execute("SELECT status, hold_reason FROM crefinder.outbound_events WHERE id = %s", (message_id,))
        seen = cur.fetchone()
        if seen != expected:
            time.sleep(0.05)
    assert seen == expected, "message %s is %r, not %r" % (message_id, seen, expected)


def configure_other(s):
    s.cur.execute("SET crefinder.user_id = %s", (OTHER,))
    s.configure("twilio", {"accountSid": td.ACCOUNT, "authToken": td.TOKEN, "phoneNumber": "+13055550100"})
    s.cur.execute("INSERT INTO crefinder.tenant_settings (user_id, sms_window_start, sms_window_end) "
                  "VALUES (%s, '00:00', '23:59:59') ON CONFLICT (user_id) DO NOTHING", (OTHER,))


def test_bad_rows_fail_alone_and_the_worker_stays(cluster):
    s = td.Setup(cluster)
    try:
        cur = s.cur
        configure_other(s)
        pids = dispatcher_pids(cur)
        cur.execute("ALTER SYSTEM SET crefinder.dispatcher_enabled = off")
        cur.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)

        # the other tenant's bad rows, planted the way a table write would
        cur.execute("SET crefinder.user_id = %s", (OTHER,))
        cur.execute("SELECT crefinder.send_sms('+13055550171', 'bad time')")
        bad_time = cur.fetchone()[0]
        cur.execute("UPDATE crefinder.outbound_events SET payload = payload || "
                    "'{\"twilio_send_at\": \"not a time\"}' WHERE id = %s", (bad_time,))
        cur.execute("SELECT crefinder.send_sms('+13055550172', 'bad payload')")
        bad_payload = cur.fetchone()[0]
        cur.execute("UPDATE crefinder.outbound_events SET payload = '[1, 2]' WHERE id = %s", (bad_payload,))
        good = queue_good(cur, 1000)
        cur.execute("ALTER SYSTEM SET crefinder.dispatcher_enabled = on")
        cur.execute("SELECT pg_reload_conf()")
        wait_all(cur, good, ("sent",))
        wait_all(cur, [bad_time, bad_payload], ("failed",))
        cur.execute("SELECT last_error FROM crefinder.outbound_events WHERE id = %s", (bad_time,))
        assert "send time" in cur.fetchone()[0]
        cur.execute("SELECT last_error FROM crefinder.outbound_events WHERE id = %s", (bad_payload,))
        assert "payload" in cur.fetchone()[0]

        # a damaged envelope pauses that tenant's provider, with the reason it can see
        cur.execute("SET crefinder.user_id = %s", (OTHER,))
        cur.execute("UPDATE crefinder.integration_configs SET secrets = '{\"authToken\": \"v1:garbage\"}' "
                    "WHERE user_id = %s AND provider = 'twilio'", (OTHER,))
        cur.execute("SELECT crefinder.send_sms('+13055550173', 'damaged secret')")
        damaged = cur.fetchone()[0]
        good = queue_good(cur, 1000)
        wait_all(cur, good, ("sent",))
        wait_hold(cur, damaged, ("queued", "provider_paused"))
        tenant = cluster.connect(dbname=TEST_DATABASE)
        with tenant.cursor() as tc:
            tc.execute("DROP ROLE IF EXISTS hardening_viewer")
            tc.execute("CREATE ROLE hardening_viewer")
            tc.execute("SELECT crefinder.grant_access('hardening_viewer')")
            tc.execute("SET ROLE hardening_viewer")
            tc.execute("SET crefinder.user_id = %s", (OTHER,))
            tc.execute("SELECT provider, paused_reason FROM crefinder.paused_providers")
            paused = tc.fetchall()
            assert len(paused) == 1 and "authToken" in paused[0][1], paused
            tc.execute("SELECT count(*) FROM crefinder.dispatcher_status WHERE last_error LIKE '%%+1305%%'")
            assert tc.fetchone()[0] == 0, "a message error in the shared status"
            tc.execute("RESET ROLE")
            tc.execute("SELECT crefinder.revoke_access('hardening_viewer')")
            tc.execute("DROP ROLE hardening_viewer")
        tenant.close()
        # configure() again lifts the pause and the message goes
        s.cur.execute("SET crefinder.user_id = %s", (OTHER,))
        s.configure("twilio", {"accountSid": td.ACCOUNT, "authToken": td.TOKEN, "phoneNumber": "+13055550100"})
        s.wait_status(damaged, ("sent",))
        assert dispatcher_pids(cur) == pids, "a dispatcher worker restarted"
    finally:
        s.close()


def test_server_key_missing_or_wrong_holds_and_says_so_once(cluster):
    s = td.Setup(cluster)
    try:
        cur = s.cur
        pids = dispatcher_pids(cur)
        log_before = len(cluster.log())
        for key in ["", "00" * 32]:
            cur.execute("ALTER SYSTEM SET crefinder.secret_key = %s", (key,))
            cur.execute("SELECT pg_reload_conf()")
            time.sleep(0.5)
            ids = queue_good(cur, 20)
            deadline = time.time() + 20
            while time.time() < deadline:
                cur.execute("SELECT count(*) FROM crefinder.outbound_events WHERE id = ANY (%s) "
                            "AND status = 'queued' AND hold_reason = 'server_key'", (ids,))
                if cur.fetchone()[0] == len(ids):
                    break
                time.sleep(0.2)
            cur.execute("SELECT status, hold_reason, count(*) FROM crefinder.outbound_events "
                        "WHERE id = ANY (%s) GROUP BY 1, 2", (ids,))
            assert cur.fetchall() == [("queued", "server_key", len(ids))]
            cur.execute("SELECT last_error FROM crefinder.dispatcher_status WHERE worker = 0")
            assert "key" in (cur.fetchone()[0] or ""), "dispatcher_status says nothing"
            time.sleep(6)   # past the 5 s a restarting worker would take
            said = re.findall(r"crefinder dispatcher (\d+) holds messages", cluster.log()[log_before:])
            assert said and len(said) == len(set(said)), "said %r" % said
            log_before = len(cluster.log())
            cur.execute("ALTER SYSTEM RESET crefinder.secret_key")
            cur.execute("SELECT pg_reload_conf()")
            wait_all(cur, ids, ("sent",))
        assert dispatcher_pids(cur) == pids, "a dispatcher worker restarted"
    finally:
        s.cur.execute("ALTER SYSTEM RESET crefinder.secret_key")
        s.cur.execute("SELECT pg_reload_conf()")
        s.close()


def test_a_lock_on_a_tenants_rows_holds_only_its_messages(cluster):
    s = td.Setup(cluster)
    try:
        cur = s.cur
        configure_other(s)
        cur.execute("ALTER SYSTEM SET crefinder.dispatcher_enabled = off")
        cur.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        cur.execute("SET crefinder.user_id = %s", (OTHER,))
        cur.execute("INSERT INTO crefinder.property_records (owner_name) VALUES ('Locked Owner') RETURNING id")
        prop = cur.fetchone()[0]
        cur.execute("SELECT crefinder.send_sms('+13055550181', 'locked', property_id => %s)", (prop,))
        locked = cur.fetchone()[0]
        good = queue_good(cur, 200)

        # a tenant role may not take a table lock at all ...
        cur.execute("DROP ROLE IF EXISTS hardening_locker")
        cur.execute("CREATE ROLE hardening_locker LOGIN")
        cur.execute("SELECT crefinder.grant_access('hardening_locker')")
        tenant = cluster.connect(dbname=TEST_DATABASE, user="hardening_locker", autocommit=False)
        tc = tenant.cursor()
        tc.execute("SET crefinder.user_id = %s", (OTHER,))
        try:
            tc.execute("LOCK TABLE crefinder.property_records IN ACCESS EXCLUSIVE MODE")
            raise AssertionError("a tenant locked a shared table")
        except psycopg2.Error as e:
            assert e.pgcode == "42501", e.pgcode
        tenant.rollback()
        # ... only its own rows, which holds up nobody else
        tc.execute("SET crefinder.user_id = %s", (OTHER,))
        tc.execute("SELECT id FROM crefinder.property_records FOR UPDATE")
        assert len(tc.fetchall()) == 1
        tenant.rollback()

        # even a table lock (the operator's) holds only that tenant's messages
        holder = cluster.connect(dbname=TEST_DATABASE, autocommit=False)
        hc = holder.cursor()
        hc.execute("LOCK TABLE crefinder.property_records IN ACCESS EXCLUSIVE MODE")
        try:
            cur.execute("ALTER SYSTEM SET crefinder.dispatcher_enabled = on")
            cur.execute("SELECT pg_reload_conf()")
            wait_all(cur, good, ("sent",))
            wait_hold(cur, locked, ("queued", "locked"), timeout=10)
        finally:
            holder.rollback()
            holder.close()
            tenant.rollback()
            tenant.close()
            cur.execute("SELECT crefinder.revoke_access('hardening_locker')")
            cur.execute("DROP ROLE hardening_locker")
        s.wait_status(locked, ("sent",))
    finally:
        s.close()


def test_retries_ride_out_an_outage_then_give_up_and_retry_requeues(cluster):
    s = td.Setup(cluster)
    try:
        cur = s.cur
        cur.execute("SELECT boot_val::int FROM pg_settings WHERE name = 'crefinder.max_attempts'")
        assert cur.fetchone()[0] >= 20
        cur.execute("SELECT boot_val::int FROM pg_settings WHERE name = 'crefinder.retry_max_age'")
        assert cur.fetchone()[0] >= 3600, "the default gives up within an hour"
        # a scaled-down schedule: backoff at most 1 s, give up after 4 s
        cur.execute("ALTER SYSTEM SET crefinder.max_attempts = 1000")
        cur.execute("ALTER SYSTEM SET crefinder.retry_max_backoff = '1s'")
        cur.execute("ALTER SYSTEM SET crefinder.retry_max_age = '4s'")
        cur.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        s.sandbox.call("POST", "/_sandbox/faults", {"path": "/2010-04-01", "fault": "503", "count": 1000})
        cur.execute("SELECT crefinder.send_sms('+13055550191', 'outage')")
        m = cur.fetchone()[0]
        wait_hold(cur, m, ("queued", "retry"), timeout=3)
        s.wait_status(m, ("failed",), timeout=20)
        cur.execute("SELECT attempts, last_error FROM crefinder.outbound_events WHERE id = %s", (m,))
        attempts, error = cur.fetchone()
        assert attempts >= 3 and "retry_max_age" in error, (attempts, error)
        s.sandbox.call("POST", "/_sandbox/reset")
        s.sandbox.call("POST", "/_sandbox/credentials", {"twilio": [[td.ACCOUNT, td.TOKEN]],
                                                         "sendgrid": [td.SENDGRID_KEY], "vapi": [td.VAPI_KEY]})
        cur.execute("SELECT crefinder.retry(ARRAY[%s]::bigint[])", (m,))
        assert cur.fetchone()[0] == 1
        s.wait_status(m, ("sent",))
    finally:
        for name in ("max_attempts", "retry_max_backoff", "retry_max_age"):
            s.cur.execute("ALTER SYSTEM RESET crefinder.%s" % name)
        s.cur.execute("SELECT pg_reload_conf()")
        s.close()


# ---------------------------------------------------------------------------
# A new user's mistakes

def test_other_database_warns_and_refuses_to_send(cluster):
    conn = cluster.fresh_database("crefinder_elsewhere", extension=False)
    notices = []
    conn.notices = notices
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION crefinder")
    assert any("does not serve database" in n for n in conn.notices), conn.notices
    cur.execute("SET crefinder.user_id = %s", (OTHER,))
    cur.execute("SELECT crefinder.configure('twilio', %s)",
                (psycopg2.extras.Json({"accountSid": "AC" + "1" * 32, "authToken": "ab" * 16,
                                       "phoneNumber": "+13055550100"}),))
    try:
        cur.execute("SELECT crefinder.send_sms('+13055550123', 'never sent')")
        raise AssertionError("queued in a database nobody serves")
    except psycopg2.Error as e:
        assert e.pgcode == "55000" and "crefinder.database" in e.diag.message_detail, e
    cur.execute("SELECT DISTINCT database FROM crefinder.dispatcher_status")
    assert cur.fetchone()[0] == TEST_DATABASE
    conn.close()
    admin = cluster.connect(dbname="postgres")
    with admin.cursor() as c:
        c.execute("DROP DATABASE crefinder_elsewhere")
    admin.close()


def test_create_extension_without_preload_is_a_clean_error(cluster):
    other = Cluster(extra_conf={"shared_preload_libraries": "''"})
    try:
        other.start()
        conn = other.connect(dbname="postgres")
        cur = conn.cursor()
        try:
            cur.execute("CREATE EXTENSION crefinder")
            raise AssertionError("created without the library preloaded")
        except psycopg2.Error as e:
            assert e.pgcode == "55000", e.pgcode
            assert "shared_preload_libraries" in e.diag.message_hint and "restart" in e.diag.message_hint
        cur.execute("SELECT 1")     # the connection is still there
        assert cur.fetchone()[0] == 1
        conn.close()
        assert "FATAL" not in other.log()
    finally:
        other.cleanup()


def test_every_sql_function_pins_its_search_path(cluster):
    conn = cluster.fresh_database("crefinder_pinned")
    cur = conn.cursor()
    cur.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
        JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
        JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'crefinder'
        JOIN pg_language l ON l.oid = p.prolang
        WHERE (l.lanname <> 'c' OR p.prosecdef)
          AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)""")
    unpinned = [r[0] for r in cur.fetchall()]
    assert unpinned == [], "functions without search_path = pg_catalog, pg_temp: %r" % unpinned
    # and what runs with the owner's rights is never executable by PUBLIC
    cur.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
        JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
        JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'crefinder'
        WHERE has_function_privilege('public', p.oid, 'EXECUTE')""")
    public = [r[0] for r in cur.fetchall()]
    assert public == [], "executable by PUBLIC: %r" % public
    conn.close()


def test_an_error_in_a_round_keeps_requests_in_flight_and_their_outcomes(cluster):
    """The operator locks the whole outbox while requests are on the wire:
    claims and records fail on the lock for a few seconds; the worker goes
    on, the answers are recorded once the lock is gone, nothing is lost or
    unknown, and the worker's pid is the same."""
    s = td.Setup(cluster)
    try:
        cur = s.cur
        pids = dispatcher_pids(cur)
        s.sandbox.call("POST", "/_sandbox/faults", {"path": "/2010-04-01", "fault": "slow",
                                                    "seconds": 2, "count": 20})
        first = queue_good(cur, 20)
        deadline = time.time() + 10
        while time.time() < deadline:
            cur.execute("SELECT sum(in_flight) FROM crefinder.dispatcher_status")
            if cur.fetchone()[0] >= 20:
                break
            time.sleep(0.05)
        holder = cluster.connect(dbname=TEST_DATABASE, autocommit=False)
        hc = holder.cursor()
        hc.execute("LOCK TABLE crefinder.outbound_events IN ACCESS EXCLUSIVE MODE")
        time.sleep(4)       # the answers come back while the table is locked
        holder.rollback()
        holder.close()
        second = queue_good(cur, 20)
        wait_all(cur, first + second, ("sent",))
        cur.execute("SELECT count(*) FROM crefinder.outbound_events WHERE status IN ('unknown', 'sending')")
        assert cur.fetchone()[0] == 0
        # what was kept for the retry is intact: each message has its own sid
        cur.execute("SELECT count(*), count(DISTINCT provider_message_id) FILTER "
                    "(WHERE provider_message_id ~ '^SM[0-9a-f]{32}$' AND provider_status = 'queued') "
                    "FROM crefinder.outbound_events WHERE id = ANY (%s)", (first + second,))
        total, good_sids = cur.fetchone()
        assert good_sids == total == 40, (total, good_sids)
        assert dispatcher_pids(cur) == pids, "a dispatcher worker restarted"
    finally:
        s.close()


def test_a_tenant_holding_its_settings_row_holds_up_nobody(cluster):
    s = td.Setup(cluster)
    try:
        cur = s.cur
        configure_other(s)
        # the other tenant's token is one the sandbox rejects: 401, pause
        cur.execute("SET crefinder.user_id = %s", (OTHER,))
        s.configure("twilio", {"accountSid": "AC" + "2" * 32, "authToken": "cd" * 16,
                               "phoneNumber": "+13055550100"})
        holder = cluster.connect(dbname=TEST_DATABASE, autocommit=False)
        hc = holder.cursor()
        hc.execute("SET crefinder.user_id = %s", (OTHER,))
        hc.execute("SELECT crefinder.configure('twilio', %s)",
                   (psycopg2.extras.Json({"accountSid": "AC" + "2" * 32, "authToken": "cd" * 16,
                                          "phoneNumber": "+13055550100"}),))
        try:
            cur.execute("SELECT crefinder.send_sms('+13055550191', 'rejected')")
            rejected = cur.fetchone()[0]
            good = queue_good(cur, 300)
            wait_all(cur, good, ("sent",))
            s.wait_status(rejected, ("failed",))
            cur.execute("SELECT last_error FROM crefinder.outbound_events WHERE id = %s", (rejected,))
            assert "credentials rejected" in cur.fetchone()[0]
        finally:
            holder.rollback()
            holder.close()
    finally:
        s.close()
