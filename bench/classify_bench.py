#!/usr/bin/python3
"""Reply understanding benchmark: prints figures, asserts nothing.

  - classify_reply() over N replies in one SQL statement (replies/s)
  - analyze_transcript() over N/10 short call transcripts (transcripts/s)

The replies are the labelled ones of test/replies.tsv and
test/classify_dev.tsv, each with a random prefix and suffix so that no two
are the same.

Usage: bench/classify_bench.py [--replies N]
Starts its own throwaway cluster (test/cluster.py) and removes it.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test"))

import debian_python  # noqa: E402,F401
from cluster import Cluster, stop_on_sigterm  # noqa: E402
from test_classify import read_replies, read_transcripts  # noqa: E402


def main():
    stop_on_sigterm()
    parser = argparse.ArgumentParser()
    parser.add_argument("--replies", type=int, default=100_000)
    args = parser.parse_args()

    top = os.path.join(HERE, "..")
    subprocess.run(["make", "-s"], cwd=top, check=True)
    subprocess.run(["make", "-s", "install"] if os.geteuid() == 0 else
                   ["sudo", "-n", "make", "-s", "install"], cwd=top, check=True)
    rng = random.Random(7)
    texts = [t for _, t, _ in read_replies(os.path.join(top, "test", "replies.tsv"))]
    texts += [t for _, t, _ in read_replies(os.path.join(top, "test", "classify_dev.tsv"))]
    prefixes = ["", "", "Hi. ", "hey ", "Sorry, ", "Ok so ", "Re 123 Main St: "]
    suffixes = ["", "", " thanks", "!", " 🙂", ". Sent from my phone", " -J"]
    replies = [rng.choice(prefixes) + rng.choice(texts) + rng.choice(suffixes)
               for _ in range(args.replies)]
    calls = [t["transcript"] for t in read_transcripts(os.path.join(top, "test", "transcripts.jsonl"))]
    transcripts = [rng.choice(calls) for _ in range(max(1, args.replies // 10))]

    cluster = Cluster().start()
    try:
        conn = cluster.connect(dbname="postgres")
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION crefinder")
        print("machine: %d cores; PostgreSQL %s" % (os.cpu_count(), conn.server_version))
        cur.execute("CREATE TEMP TABLE replies AS SELECT r FROM unnest(%s::text[]) AS r", (replies,))
        cur.execute("CREATE TEMP TABLE calls AS SELECT c FROM unnest(%s::text[]) AS c", (transcripts,))
        cur.execute("SET max_parallel_workers_per_gather = 0")
        cur.execute("SELECT count(crefinder.classify_reply(r)) FROM replies LIMIT 1000")  # warm up

        t0 = time.perf_counter()
        cur.execute("SELECT crefinder.classify_reply(r) AS c, count(*) FROM replies GROUP BY c ORDER BY 2 DESC")
        rows = cur.fetchall()
        elapsed = time.perf_counter() - t0
        print("classify_reply: %d replies in %.2f s = %.0f replies/s (one backend, %.1f us each); %s"
              % (len(replies), elapsed, len(replies) / elapsed, elapsed / len(replies) * 1e6,
                 ", ".join("%s %d" % r for r in rows)))

        t0 = time.perf_counter()
        cur.execute("SELECT (crefinder.analyze_transcript(c) ->> 'interest_level') AS l, count(*) "
                    "FROM calls GROUP BY l ORDER BY l")
        rows = cur.fetchall()
        elapsed = time.perf_counter() - t0
        print("analyze_transcript: %d transcripts in %.2f s = %.0f transcripts/s (one backend); "
              "interest levels %s" % (len(transcripts), elapsed, len(transcripts) / elapsed,
                                      json.dumps({r[0]: r[1] for r in rows})))
        conn.close()
    finally:
        cluster.cleanup()


if __name__ == "__main__":
    main()
