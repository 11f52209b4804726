#!/usr/bin/python3
"""Compliance benchmarks: prints figures, asserts nothing.

  - can_contact() one call at a time, from one connection (checks/s)
  - dnc_load() of a 10,000,000-number registry file (numbers/s)
  - scrub() of 1,000,000 contacts against those 10,000,000 DNC numbers

Usage: bench/compliance_bench.py [--dnc N] [--contacts N]
Starts its own throwaway cluster (test/cluster.py) and removes it.
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test"))

from cluster import Cluster, stop_on_sigterm  # noqa: E402

TENANT = "bbbbbbbb-0000-4000-8000-00000000be0c"


def write_registry(path, count, rng, sample_every=100):
    """A registry file like the FTC's: areacode,number lines, sorted.
    Returns every sample_every-th number written, as E.164."""
    npas = [a for a in range(201, 990) if a % 100 != 11]
    per = count // len(npas) + 1
    written = 0
    sample = []
    with open(path, "w") as f:
        for npa in npas:
            for n in sorted(rng.sample(range(2000000, 10000000), per)):
                f.write("%d,%07d\n" % (npa, n))
                if written % sample_every == 0:
                    sample.append("+1%d%07d" % (npa, n))
                written += 1
                if written == count:
                    return sample
    return sample


def main():
    stop_on_sigterm()
    parser = argparse.ArgumentParser()
    parser.add_argument("--dnc", type=int, default=10_000_000)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()

    subprocess.run(["make", "-s"], cwd=os.path.join(HERE, ".."), check=True)
    subprocess.run(["make", "-s", "install"] if os.geteuid() == 0 else
                   ["sudo", "-n", "make", "-s", "install"], cwd=os.path.join(HERE, ".."), check=True)
    rng = random.Random(7)
    cluster = Cluster(extra_conf={"shared_buffers": "1GB", "maintenance_work_mem": "512MB",
                                  "max_wal_size": "8GB", "checkpoint_timeout": "30min"}).start()
    workdir = tempfile.mkdtemp(prefix="crefinder-bench-")
    os.chmod(workdir, 0o755)
    try:
        conn = cluster.connect(dbname="postgres")
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION crefinder")
        cur.execute("SET crefinder.user_id = '%s'" % TENANT)
        print("machine: %d cores; PostgreSQL %s" % (os.cpu_count(), cur.connection.server_version))

        # can_contact, one at a time (a text at 11:00 ET on a Tuesday; voice needs consent
        # and is refused early, so sms exercises the whole path).
        numbers = ["+1%d%07d" % (rng.choice([212, 305, 850, 208, 214, 205, 907]), rng.randrange(2000000, 9999999))
                   for _ in range(args.calls)]
        cur.execute("PREPARE cc(text) AS SELECT allowed FROM crefinder.can_contact('sms', $1, "
                    "'2026-11-24 16:00+00')")
        for n in numbers[:500]:
            cur.execute("EXECUTE cc(%s)", (n,))
        t0 = time.perf_counter()
        for n in numbers:
            cur.execute("EXECUTE cc(%s)", (n,))
            cur.fetchone()
        elapsed = time.perf_counter() - t0
        print("can_contact, one at a time, 1 connection: %d checks in %.2f s = %.0f checks/s "
              "(%.0f us each, client round trip included)"
              % (len(numbers), elapsed, len(numbers) / elapsed, elapsed / len(numbers) * 1e6))

        # DNC load.
        path = os.path.join(workdir, "dnc.txt")
        t0 = time.perf_counter()
        on_list = write_registry(path, args.dnc, rng, sample_every=max(1, args.dnc // (args.contacts // 10 + 1)))
        os.chmod(path, 0o644)
        print("(wrote %d-line registry file in %.1f s)" % (args.dnc, time.perf_counter() - t0))
        t0 = time.perf_counter()
        cur.execute("SELECT crefinder.dnc_load(%s, 'national:bench')", (path,))
        loaded = cur.fetchone()[0]
        elapsed = time.perf_counter() - t0
        print("dnc_load: %d numbers in %.1f s = %.0f numbers/s" % (loaded, elapsed, loaded / elapsed))
        t0 = time.perf_counter()
        cur.execute("SELECT crefinder.dnc_load(%s, 'national:bench')", (path,))
        elapsed = time.perf_counter() - t0
        print("dnc_load again (all already listed): %.1f s" % elapsed)
        cur.execute("SELECT pg_size_pretty(pg_total_relation_size('crefinder.dnc_numbers'))")
        print("dnc_numbers size: %s" % cur.fetchone()[0])
        cur.execute("VACUUM ANALYZE crefinder.dnc_numbers")

        # scrub: 1M contacts, about 10% of them on the DNC list.
        npas = [212, 305, 850, 208, 214, 205, 907, 602, 808, 617]
        contacts = [rng.choice(on_list) if i % 10 == 0 else
                    "+1%d%07d" % (npas[i % len(npas)], rng.randrange(2000000, 9999999))
                    for i in range(args.contacts)]
        cur.execute("CREATE TEMP TABLE scrub_input AS SELECT %s::text[] AS a", (contacts,))
        for at in ["2026-11-24 16:00+00", "2026-11-22 16:00+00"]:
            t0 = time.perf_counter()
            cur.execute("SELECT reason, count(*) FROM scrub_input, crefinder.scrub('sms', a, %s) "
                        "GROUP BY reason ORDER BY 2 DESC", (at,))
            rows = cur.fetchall()
            elapsed = time.perf_counter() - t0
            print("scrub of %d contacts against %d DNC numbers (at %s): %.2f s = %.0f contacts/s; %s"
                  % (len(contacts), loaded, at, elapsed, len(contacts) / elapsed,
                     ", ".join("%s %d" % (r or "allowed", n) for r, n in rows)))
        conn.close()
    finally:
        cluster.cleanup()
        subprocess.run(["rm", "-rf", workdir])


if __name__ == "__main__":
    main()
