"""make demo runs end to end: a campaign over simulated days, with real
sends to the sandbox and answers through the real webhook functions; and
the report it writes at its end (test/report.py) renders in a real
browser, headless Chromium, with the views' numbers and nothing loaded
from the network."""
import atexit
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from decimal import Decimal
from html.parser import HTMLParser

import report

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
CHROMIUM = "/usr/bin/chromium"
SECTIONS = ("funnel", "channels", "ab-test", "heatmap")

_demo = {}


def demo_run():
    """make demo, once for all the tests of this file (it takes a while),
    its report written into a folder of its own: {"proc", "report", "folder"}."""
    if not _demo:
        folder = tempfile.mkdtemp(prefix="crefinder-demo-report-")
        atexit.register(shutil.rmtree, folder, True)
        path = os.path.join(folder, "report.html")
        env = dict(os.environ, CREFINDER_REPORT=path)
        proc = subprocess.run(["make", "demo"], cwd=TOP, env=env, capture_output=True, text=True, timeout=600)
        _demo.update(proc=proc, report=path, folder=folder)
    proc = _demo["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return _demo


def test_make_demo(cluster):
    proc = demo_run()["proc"]
    out = proc.stdout
    assert "Done: the cluster and the sandbox are stopped" in out, out[-2000:]
    # (the story is wrapped at 90 columns: any space may be a line break)
    for day in (0, 2, 3, 5):
        assert re.search(r"Day\s+%d\s+\(\d\s+days\s+ago\):\s+tick\(\)\s+advanced\s+[1-9]\d*\s+enrollments" % day,
                         out), day
    # real sends whatever the hour: some texts and emails went out
    sent = [int(n) for n in re.findall(r"step:\s+(\d+)\s+sent", out)]
    assert len(sent) == 4 and sent[0] > 0 and sent[1] > 0, sent
    # the voicemail drops go only to the owners who consented
    drops = re.search(r"The voicemail\s+drop\s+step:.*?blocked\s+\(([^)]*)\)", out, re.S)
    assert drops and "no_consent" in drops.group(1), out[-3000:]
    assert re.search(r"reply\s+opt_out", out) and "unsubscribe" in out and "not_interested" in out, out[-3000:]
    assert "crefinder-tick | * * * * *" in out
    # the analytics views: the funnel's stages and the A/B arms with the holdout
    for stage in ("enrolled", "contacted", "delivered", "responded", "interested", "nurture"):
        assert re.search(r"^ %s +\| +\d+" % stage, out, re.M), stage
    assert re.search(r"^ +0 \| holdout +\| +\d+", out, re.M), out[-3000:]
    assert "Traceback" not in out + proc.stderr


# --- the report ------------------------------------------------------------------

def printed_table(out, columns):
    """The rows psql printed (in the demo's output) under the header that
    names columns, each a dict of the strings shown."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if [c.strip() for c in line.split("|")] == columns:
            found = []
            for row in lines[i + 2:]:
                if re.match(r"\(\d+ rows?\)$", row):
                    return found
                found.append(dict(zip(columns, (c.strip() for c in row.split("|")))))
    raise AssertionError("the demo printed no table of %s" % columns)


def number(shown):
    """A numeric value as psql printed it (NULL: empty)."""
    return Decimal(shown) if shown else None


class ReportDom(HTMLParser):
    """What a (dumped) report holds, per section: its heading, its charts'
    titles, how many drawn SVG elements, their texts in order, the
    tooltips of the rects, the rects' attributes, the table rows."""
    DRAWN = {"rect", "path", "text", "line", "circle", "polygon", "polyline"}
    CAPTURED = {"h2", "text", "title", "td"}

    def __init__(self):
        super().__init__()
        self.sections = {}
        self.section = None
        self.open = []           # the elements open inside the section
        self.captured = None

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.section = self.sections.setdefault(dict(attrs).get("id"), {
                "h2": None, "svgs": 0, "svg_titles": [], "drawn": 0, "texts": [], "tooltips": [],
                "rects": [], "rows": []})
            self.open = []
            return
        if self.section is not None:
            self.open.append(tag)
            self.element(tag, dict(attrs))

    def handle_startendtag(self, tag, attrs):
        if self.section is not None:
            self.element(tag, dict(attrs))

    def element(self, tag, attrs):
        s = self.section
        if tag == "svg":
            s["svgs"] += 1
        if tag in self.DRAWN and "svg" in self.open:
            s["drawn"] += 1
        if tag == "rect":
            s["rects"].append(attrs)
        if tag == "tr":
            s["rows"].append([])
        if tag in self.CAPTURED:
            self.captured = []

    def handle_data(self, data):
        if self.captured is not None:
            self.captured.append(data)

    def handle_endtag(self, tag):
        if tag == "section":
            self.section = None
            return
        if self.section is None or tag not in self.open:
            return
        s = self.section
        if tag in self.CAPTURED and self.captured is not None:
            content = "".join(self.captured)
            parent = self.open[-2] if len(self.open) > 1 else None
            if tag == "h2":
                s["h2"] = content
            elif tag == "text":
                s["texts"].append(content)
            elif tag == "title":
                (s["svg_titles"] if parent == "svg" else s["tooltips"]).append(content)
            elif tag == "td" and s["rows"]:
                s["rows"][-1].append(content)
            self.captured = None
        while self.open and self.open.pop() != tag:
            pass


def run_chromium(folder, *args):
    """Headless Chromium with a profile of its own; its stdout."""
    assert os.access(CHROMIUM, os.X_OK), \
        "%s is missing: tools/setup installs chromium (apt-get install --no-install-recommends chromium)" % CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=folder)
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", "--user-data-dir=" + profile] + list(args),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def png_colours(path):
    """A PNG's width, height and {(r, g, b) bytes: pixels} (8-bit RGB or
    RGBA, not interlaced, as Chromium writes), decoded with zlib."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data[pos + 8:pos + 8 + length])
        elif kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    bpp = 3 if colour_type == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    assert len(raw) == height * (stride + 1), "truncated image data"
    colours, previous = {}, bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:                                   # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:                                 # Up
            line = bytearray((a + b) & 255 for a, b in zip(line, previous))
        elif kind == 3:                                 # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 255
        elif kind == 4:                                 # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = previous[i], previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for i in range(0, stride, bpp):
            pixel = bytes(line[i:i + 3])
            colours[pixel] = colours.get(pixel, 0) + 1
        previous = line
    return width, height, colours


def rgb(colour):
    return bytes.fromhex(colour.lstrip("#"))


def test_demo_report_renders_in_chromium(cluster):
    demo = demo_run()
    out, path, folder = demo["proc"].stdout, demo["report"], demo["folder"]
    assert re.search(r"^ +Report: %s$" % re.escape(path), out, re.M), out[-1500:]
    with open(path, encoding="utf-8") as f:
        page = f.read()

    # self-contained: nothing that could make a request, and a policy that forbids any
    assert "default-src 'none'" in page
    for pattern in (r"https?:", r"\b(?:src|href|action|srcset)\s*=\s*[\"']?(?!data:)", r"url\((?!#)",
                    r"@import", r"<(?:script|link|img|iframe|object|embed|image|use|base|form)\b"):
        found = re.search(pattern, page, re.I)
        assert not found, "the report may load something: %r" % page[max(0, found.start() - 60):found.end() + 60]

    # what Chromium made of it: the four sections, each with a drawn chart
    dom = run_chromium(folder, "--dump-dom", "file://" + path)
    assert "</html>" in dom, dom[:500]
    parsed = ReportDom()
    parsed.feed(dom)
    sections = parsed.sections
    least = {"funnel": 18, "channels": 30, "ab-test": 9, "heatmap": 7 * 24 + 7}
    for sid in SECTIONS:
        s = sections.get(sid)
        assert s, "no section %s: %s" % (sid, sorted(sections))
        assert s["h2"] and s["svgs"] >= 1 and s["svg_titles"], (sid, s["h2"], s["svgs"], s["svg_titles"])
        assert s["drawn"] >= least[sid], (sid, s["drawn"])

    # the funnel: each stage's properties, as the view gave them (the demo printed them)
    texts = sections["funnel"]["texts"]
    for row in printed_table(out, ["stage", "properties", "share_of_previous"]):
        i = texts.index(row["stage"])
        assert texts[i + 1] == report.count(int(row["properties"])), (row, texts[i:i + 3])
        if row["share_of_previous"]:
            assert texts[i + 2] == report.percent(number(row["share_of_previous"])), (row, texts[i:i + 3])

    # the channels: the table and each panel's bars
    channels = {r["channel"]: r for r in printed_table(
        out, ["channel", "sent", "responded", "response_rate", "cost", "revenue", "roi"])}
    assert channels, "the demo printed no channel"
    shown = {cells[0]: cells for cells in sections["channels"]["rows"] if cells}
    assert sorted(shown) == sorted(channels), (sorted(shown), sorted(channels))
    texts = sections["channels"]["texts"]
    for channel, row in channels.items():
        cells = shown[channel]
        assert cells[1] == report.count(int(row["sent"])) and cells[3] == report.count(int(row["responded"])), cells
        assert cells[4] == report.percent(number(row["response_rate"])), cells
        assert cells[5] == report.dollars(number(row["cost"])) and cells[6] == report.dollars(number(row["revenue"]))
        assert cells[7] == report.percent(number(row["roi"])), cells
    for name, column, show in report.CHANNEL_METRICS:
        i = texts.index(name)
        bars = dict(zip(texts[i + 1:i + 1 + 2 * len(channels):2], texts[i + 2:i + 2 + 2 * len(channels):2]))
        expected = {c: show(int(r[column]) if column == "sent" else number(r[column])) for c, r in channels.items()}
        assert bars == expected, (name, bars, expected)

    # the A/B test: per step (a heading), each arm's label, rate and details
    arms, step, texts = {}, None, list(sections["ab-test"]["texts"])
    while texts:
        heading = re.match(r"Step (\d+)$", texts[0])
        if heading:
            step = heading.group(1)
            texts = texts[1:]
        else:
            arms[(step, texts[0])] = tuple(texts[1:3])
            texts = texts[3:]
    printed = printed_table(out, ["step", "variant", "assigned", "sent", "responded", "response_rate", "difference",
                                  "p_value", "lift_over_holdout", "winner"])
    assert any(r["variant"] == "holdout" for r in printed), printed
    assert len(arms) == len(printed), (sorted(arms), printed)
    for row in printed:
        rate, detail = arms[(row["step"], row["variant"])]
        assert rate == report.percent(number(row["response_rate"])), (row, rate)
        if row["variant"] == "holdout":
            want = "%s held out · %s responded" % (report.count(int(row["assigned"])), report.count(int(row["responded"])))
        else:
            want = "%s sent · %s responded" % (report.count(int(row["sent"])), report.count(int(row["responded"])))
            if row["p_value"]:
                want += " · p %s" % row["p_value"]
            if row["winner"] == "t":
                want += " · winner"
        assert detail == want, (row, detail, want)

    # the heatmap: 7 x 24 cells whose tooltips, summed over the days, give
    # each channel's sends and responses per hour that the demo printed
    heat = sections["heatmap"]
    cells = [t for t in heat["tooltips"] if re.match(r"(%s) \d\d:00: " % "|".join(report.DAYS), t)]
    assert len(cells) == 7 * 24, len(cells)
    by_hour, totals = {}, [0, 0]
    for t in cells:
        m = re.match(r"\w+ (\d\d):00: ([\d,]+) sent, ([\d,]+) responded \([^)]*\); (.*)$", t)
        if not m:
            assert t.endswith("nothing sent"), t
            continue
        totals[0] += int(m.group(2).replace(",", ""))
        totals[1] += int(m.group(3).replace(",", ""))
        for channel, sent, responded in re.findall(r"(\w+) ([\d,]+) sent, ([\d,]+) responded", m.group(4)):
            counts = by_hour.setdefault((channel, int(m.group(1))), [0, 0])
            counts[0] += int(sent.replace(",", ""))
            counts[1] += int(responded.replace(",", ""))
    printed = {(r["channel"], int(r["hour"])): [int(r["sent"]), int(r["responded"])]
               for r in printed_table(out, ["channel", "hour", "sent", "responded", "response_rate"])}
    assert printed, "the demo printed no hour"
    assert {k: v for k, v in by_hour.items() if v[0] >= 5} == printed, (by_hour, printed)
    assert "%s responded of %s sent whose recipient's time zone is known" % (
        report.count(totals[1]), report.count(totals[0])) in heat["texts"], (totals, heat["texts"][-3:])
    if totals[1]:
        assert report.HEAT_SCALE[-1] in [r.get("fill") for r in heat["rects"] if r.get("data-responded")]

    # and drawn: a screenshot with the charts' colours in it
    shot = os.path.join(folder, "report.png")
    run_chromium(folder, "--window-size=1200,1100", "--screenshot=" + shot, "file://" + path)
    assert os.path.getsize(shot) > 10000, os.path.getsize(shot)
    width, height, colours = png_colours(shot)
    assert (width, height) == (1200, 1100), (width, height)
    assert len(colours) > 50, "the screenshot has only %d colours" % len(colours)
    assert max(colours.values()) < 0.95 * width * height, "the screenshot is nearly uniform"
    expected = {"funnel": [report.FUNNEL_COLOUR],
                "channels": list(report.CHANNEL_COLOURS.values()) + [report.OTHER_CHANNEL_COLOUR],
                "ab-test": [report.VARIANT_COLOUR, report.WINNER_COLOUR],
                "heatmap": [report.HEAT_SCALE[-1]] if totals[1] else [report.NO_RESPONSE_CELL]}
    for sid, fills in expected.items():
        pixels = sum(colours.get(rgb(f), 0) for f in fills)
        assert pixels >= 50, "the screenshot shows no %s chart (%d pixels of %s)" % (sid, pixels, fills)


def test_report_escapes_what_it_shows(cluster):
    """Names come from tenants' data: every one is text in the page, never markup."""
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&amp;"
    data = {
        "campaign_id": 1, "campaign_name": hostile, "generated": "today",
        "funnel": [{"campaign_name": hostile, "stage": hostile, "properties": 3, "share_of_previous": None}],
        "channels": [{"channel": hostile, "sent": 2, "delivered": 1, "responded": 1, "response_rate": Decimal("100.00"),
                      "cost": Decimal("-1.00"), "revenue": None, "roi": None, "unpriced": 0}],
        "ab": [{"step": 0, "variant": hostile, "assigned": 1, "sent": 1, "responded": 0,
                "response_rate": Decimal("0.00"), "difference": None, "p_value": None,
                "lift_over_holdout": None, "winner": True}],
        "hours": [{"channel": hostile, "dow": 1, "hour": 9, "sent": 2, "responded": 1}],
    }
    page = report.render(data)
    tags = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append((tag, dict(attrs)))
    Tags().feed(page)
    assert not [t for t, _ in tags if t in ("script", "img")], "markup from the data got into the page"
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")], "an event handler got into the page"
    parsed = ReportDom()
    parsed.feed(page)
    assert hostile in parsed.sections["funnel"]["texts"]
    assert [r[0] for r in parsed.sections["channels"]["rows"] if r] == [hostile]
    assert hostile in parsed.sections["ab-test"]["texts"]
    assert any(hostile in t for t in parsed.sections["heatmap"]["tooltips"])
    # and with nothing to show, every section still has its (empty) chart
    empty = report.render({"campaign_id": None, "campaign_name": None, "generated": "today",
                           "funnel": [], "channels": [], "ab": [], "hours": []})
    parsed = ReportDom()
    parsed.feed(empty)
    assert all(parsed.sections[sid]["svgs"] == 1 for sid in SECTIONS), parsed.sections
