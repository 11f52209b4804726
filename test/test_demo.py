"""make demo runs end to end: a campaign over simulated days, with real
sends to the sandbox and answers through the real webhook functions."""
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)


def test_make_demo(cluster):
    proc = subprocess.run(["make", "demo"], cwd=TOP, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "Done: the cluster and the sandbox are stopped" in out, out[-2000:]
    for day in (0, 2, 5):
        assert re.search(r"Day %d \(\d days ago\): tick\(\) advanced [1-9]\d* enrollments" % day, out), day
    # real sends whatever the hour: some texts and emails went out
    sent = [int(n) for n in re.findall(r"step: (\d+) sent", out)]
    assert len(sent) == 3 and sent[0] > 0 and sent[1] > 0, sent
    assert "reply opt_out" in out and "unsubscribe" in out and "not_interested" in out, out[-3000:]
    assert "crefinder-tick | * * * * *" in out
    # the analytics views: the funnel's stages and the A/B arms with the holdout
    for stage in ("enrolled", "contacted", "delivered", "responded", "interested", "nurture"):
        assert re.search(r"^ %s +\| +\d+" % stage, out, re.M), stage
    assert re.search(r"^ +0 \| holdout +\| +\d+", out, re.M), out[-3000:]
    assert "Traceback" not in out + proc.stderr
