#!/usr/bin/python3
"""README's SQL examples, run in order in one psql session against a fresh
database of a throwaway cluster that serves it.

Every ```sql block of README.md runs; a ```text block right after it is the
output psql must print for it (command tags, tables, errors).  Used by
test/test_readme.py; `test/readme.py --write` puts the current outputs into
README.md (read the diff before committing it).

psql variables the examples may use: :'old_key' and :'new_key' (the test
cluster's key and another), :'registry_file' (a small Do-Not-Call file).
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
README = os.path.join(TOP, "README.md")
sys.path.insert(0, HERE)

import debian_python  # noqa: E402,F401
from cluster import Cluster, TEST_SECRET_KEY  # noqa: E402

DATABASE = "readme"
NEW_KEY = "7" * 64
MARK = "@@readme block %d@@"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)


def blocks(text):
    """[(sql, expected output or None, (start, end) of the output block)]."""
    found = [(m.group(1), m.group(2), m.span()) for m in FENCE.finditer(text)]
    result = []
    for i, (kind, body, span) in enumerate(found):
        if kind != "sql":
            continue
        expected = None
        where = None
        if i + 1 < len(found) and found[i + 1][0] == "text" and \
                text[span[1]:found[i + 1][2][0]].strip() == "":
            expected = found[i + 1][1]
            where = found[i + 1][2]
        result.append((body, expected, where))
    return result


def run(cluster, sqls):
    """Runs the blocks in one psql session; returns each block's output."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, dir="/tmp") as f:
        f.write("2125550188\n305,5550189\n")
        registry = f.name
    os.chmod(registry, 0o644)
    script = []
    for i, sql in enumerate(sqls):
        script.append("\\echo '%s'" % (MARK % i))
        script.append(sql)
    env = cluster.env()
    env["PGTZ"] = "UTC"
    env["PGDATABASE"] = DATABASE
    proc = subprocess.run([os.path.join(cluster.bindir, "psql"), "-X", "-v", "old_key=" + TEST_SECRET_KEY,
                           "-v", "new_key=" + NEW_KEY, "-v", "registry_file=" + registry,
                           "-v", "VERBOSITY=default", "-v", "SHOW_CONTEXT=never"],
                          input="\n".join(script) + "\n", env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    os.unlink(registry)
    out = re.sub(r"^psql:<stdin>:\d+: ", "", proc.stdout, flags=re.M)
    parts = re.split(r"^@@readme block (\d+)@@\n", out, flags=re.M)
    outputs = [""] * len(sqls)
    for k in range(1, len(parts), 2):
        outputs[int(parts[k])] = parts[k + 1]
    return outputs


def readme_cluster():
    cluster = Cluster(extra_conf={"crefinder.database": "'%s'" % DATABASE})
    cluster.start()
    admin = cluster.connect(dbname="postgres")
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE %s" % DATABASE)
    admin.close()
    return cluster


def check(cluster):
    """[(block number, sql, expected, got)] for every block whose output differs."""
    with open(README) as f:
        text = f.read()
    found = blocks(text)
    outputs = run(cluster, [sql for sql, _, _ in found])
    wrong = []
    for i, ((sql, expected, _), got) in enumerate(zip(found, outputs)):
        if expected is None:
            if "ERROR:" in got:
                wrong.append((i, sql, "(no error)", got))
        elif got != expected:
            wrong.append((i, sql, expected, got))
    return len(found), wrong


def write():
    cluster = readme_cluster()
    try:
        with open(README) as f:
            text = f.read()
        found = blocks(text)
        outputs = run(cluster, [sql for sql, _, _ in found])
        for (sql, expected, where), got in reversed(list(zip(found, outputs))):
            if where is not None:
                text = text[:where[0]] + "```text\n" + got + "```\n" + text[where[1]:]
        with open(README, "w") as f:
            f.write(text)
    finally:
        cluster.cleanup()


if __name__ == "__main__":
    if "--write" in sys.argv:
        write()
    else:
        c = readme_cluster()
        try:
            n, wrong = check(c)
            for i, sql, expected, got in wrong:
                print("block %d:\n%s\nexpected:\n%s\ngot:\n%s" % (i, sql, expected, got))
            print("%d blocks, %d differ" % (n, len(wrong)))
        finally:
            c.cleanup()
