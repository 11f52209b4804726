"""A throwaway PostgreSQL cluster for crefinder's tests.

initdb in a temporary folder, a free port on 127.0.0.1 only, crefinder and
pg_cron preloaded, a test secret key.  Everything it starts it stops by pid.
When run as root the server runs as the postgres user (initdb refuses root).
"""
import atexit
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psycopg2

TEST_DATABASE = "contrib_regression"
TEST_SECRET_KEY = "e951c1d7f34d155d121a3e2c4a062a41ad8d48e2f84e4eb3205f2797c1b1a0b7"


def pg_bindir():
    out = subprocess.run(["pg_config", "--bindir"], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def stop_on_sigterm():
    """Turn SIGTERM into SystemExit so that finally blocks stop clusters."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, extra_conf=None, postgres=None):
        self.bindir = pg_bindir()
        self.root = tempfile.mkdtemp(prefix="crefinder-test-")
        self.datadir = os.path.join(self.root, "data")
        self.logfile = os.path.join(self.root, "server.log")
        self.port = free_port()
        self.pid = None
        self.extra_conf = extra_conf or {}
        self.postgres = postgres    # another server executable (a valgrind wrapper)
        self.run_as = None
        if os.geteuid() == 0:
            self.run_as = "postgres"
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o755)

    def _cmd(self, args):
        if self.run_as:
            return ["runuser", "-u", self.run_as, "--"] + args
        return args

    def conf(self):
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "'%s'" % self.root,
            "shared_preload_libraries": "'pg_cron,crefinder'",
            "cron.database_name": "'%s'" % TEST_DATABASE,
            "crefinder.database": "'%s'" % TEST_DATABASE,
            "crefinder.secret_key": "'%s'" % TEST_SECRET_KEY,
            # Never a real provider: nothing listens on port 1.  Tests that
            # send point these at the sandbox and enable the dispatcher.
            "crefinder.twilio_api_url": "'http://127.0.0.1:1'",
            "crefinder.sendgrid_api_url": "'http://127.0.0.1:1'",
            "crefinder.vapi_api_url": "'http://127.0.0.1:1'",
            "crefinder.dispatcher_enabled": "off",
            "log_error_verbosity": "verbose",
            "log_min_error_statement": "error",
            "fsync": "off",
            "max_connections": "50",
        }
        conf.update(self.extra_conf)
        return conf

    def start(self):
        subprocess.run(self._cmd([os.path.join(self.bindir, "initdb"), "-D", self.datadir,
                                  "-A", "trust", "-U", "postgres", "-E", "UTF8",
                                  "--locale=C", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# crefinder test cluster\n")
            for k, v in self.conf().items():
                f.write("%s = %s\n" % (k, v))
        self.start_server()
        return self

    def start_server(self):
        """pg_ctl start (with the other executable, if any); remembers the pid."""
        start = ["start", "-w", "-t", "600", "-l", self.logfile]
        if self.postgres:
            start += ["-p", self.postgres]
        self.pg_ctl(*start)
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            self.pid = int(f.readline())

    def pg_ctl(self, *args):
        subprocess.run(self._cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir] +
                                 list(args)), check=True, stdout=subprocess.DEVNULL)

    def crash_restart(self):
        """Immediate shutdown (no checkpoint, like a crash), then start again."""
        self.pg_ctl("stop", "-m", "immediate", "-w")
        self.start_server()

    def stop(self):
        """Fast shutdown by pid; SIGKILL if it does not go within 30 s."""
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGINT)
            for _ in range(300):
                os.kill(self.pid, 0)
                time.sleep(0.1)
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.pid = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def env(self):
        env = dict(os.environ)
        env.update(PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER="postgres")
        return env

    def connect(self, dbname=TEST_DATABASE, user="postgres", autocommit=True):
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=user, dbname=dbname)
        conn.autocommit = autocommit
        return conn

    def fresh_database(self, name, extension=True):
        """Drops and creates database name; returns an autocommit
        connection to it, with crefinder created unless extension=False."""
        admin = self.connect(dbname="postgres")
        with admin.cursor() as cur:
            cur.execute('DROP DATABASE IF EXISTS "%s"' % name)
            cur.execute('CREATE DATABASE "%s"' % name)
        admin.close()
        conn = self.connect(dbname=name)
        if extension:
            with conn.cursor() as cur:
                cur.execute("CREATE EXTENSION crefinder")
        return conn

    def psql(self, sql, dbname=TEST_DATABASE):
        return subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-v", "ON_ERROR_STOP=1",
                               "-d", dbname, "-c", sql],
                              env=self.env(), check=True, capture_output=True, text=True).stdout

    def log(self):
        with open(self.logfile, errors="replace") as f:
            return f.read()


class Sandbox:
    """The sandbox provider (test/sandbox.py) as a child process."""

    def __init__(self):
        here = os.path.dirname(os.path.abspath(__file__))
        self.proc = subprocess.Popen([sys.executable, os.path.join(here, "sandbox.py"), "0"],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.proc.kill()
            raise RuntimeError("sandbox did not start: %r" % line)
        self.port = int(line.split()[1])
        self.url = "http://127.0.0.1:%d" % self.port
        atexit.register(self.stop)     # whatever happens to the test, it stops

    def call(self, method, path, body=None):
        import urllib.request
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def requests(self):
        return self.call("GET", "/_sandbox/requests")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
