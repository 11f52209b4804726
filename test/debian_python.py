"""Imported first by test/run and test/demo: they need psycopg2, which
Debian's interpreter (/usr/bin/python3, with python3-psycopg2) has.  Run as
"python3 test/run" with another python3 first on PATH (pyenv, a venv), the
script starts again under /usr/bin/python3 instead of failing on the import.
"""
import os
import sys

DEBIAN_PYTHON = "/usr/bin/python3"

try:
    import psycopg2  # noqa: F401
except ImportError:
    if (os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON)
            and os.access(DEBIAN_PYTHON, os.X_OK)):
        sys.stdout.flush()
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON] + sys.argv)
    sys.exit("%s: %s cannot import psycopg2: run make test or make demo, which install "
             "python3-psycopg2 (tools/setup)" % (sys.argv[0], sys.executable))
