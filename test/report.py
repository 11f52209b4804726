#!/usr/bin/python3
"""A campaign report from crefinder's analytics views, as one self-contained
HTML file: the funnel, the channels compared, the A/B test with its holdout
and the hours owners answer, drawn as inline SVG (no script, no external
resource: it opens offline and loads nothing).  The demo (test/demo) writes
one at its end; write_report() takes a connection whose session already
names its tenant (SET crefinder.user_id), so it shows what that tenant's
role sees.

    test/report.py DSN --tenant UUID [--campaign ID] [--output FILE]

Every value from the database is escaped before it goes into the page.
"""
import argparse
import html
import os
import sys

WIDTH = 540                  # every chart's width in pixels
FUNNEL_COLOUR = "#2f6fb0"
CHANNEL_COLOURS = {"sms": "#d9485f", "email": "#7a4fbf", "voice": "#e39b12", "whatsapp": "#2a9d8f",
                   "voicemail": "#3b7dd8", "call": "#8c564b"}
OTHER_CHANNEL_COLOUR = "#6c757d"
VARIANT_COLOUR = "#3a9d5d"
WINNER_COLOUR = "#1b6b3a"
HOLDOUT_COLOUR = "#9aa0a6"
NEGATIVE_COLOUR = "#c0392b"
# the heatmap: "nothing sent then", "sent, no response", then responses
# from few to many
EMPTY_CELL = "#f4f5f7"
NO_RESPONSE_CELL = "#dfe4ea"
HEAT_SCALE = ["#fde0c5", "#facba6", "#f8b58b", "#f59e72", "#f2855d", "#eb7053", "#de5a4b", "#c5443f"]
DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]       # dow 0 is Sunday


# --- reading the views ---------------------------------------------------

def rows(conn, sql, args=None):
    """The rows of a query, each a dict by column name."""
    with conn.cursor() as cur:
        cur.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def read_views(conn, campaign_id=None):
    """What the report shows, from the views as conn's session sees them;
    the campaign is campaign_id, or the newest one."""
    if campaign_id is None:
        newest = rows(conn, "SELECT max(campaign_id) AS id FROM crefinder.campaign_funnel")
        campaign_id = newest[0]["id"]
    funnel = rows(conn, """
        SELECT campaign_name, stage, properties, share_of_previous
        FROM crefinder.campaign_funnel WHERE campaign_id = %s ORDER BY position""", (campaign_id,))
    return {
        "campaign_id": campaign_id,
        "campaign_name": funnel[0]["campaign_name"] if funnel else None,
        "generated": rows(conn, "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC' AS t")[0]["t"],
        "funnel": funnel,
        "channels": rows(conn, """
            SELECT channel, sent, delivered, responded, response_rate, cost, revenue, roi, unpriced
            FROM crefinder.channel_effectiveness
            ORDER BY response_rate DESC NULLS LAST, channel"""),
        "ab": rows(conn, """
            SELECT step, variant, assigned, sent, responded, response_rate, difference, p_value,
                   lift_over_holdout, winner
            FROM crefinder.ab_test_results WHERE campaign_id = %s
            ORDER BY step, variant = 'holdout', variant""", (campaign_id,)),
        "hours": rows(conn, """
            SELECT channel, dow, hour, sent, responded FROM crefinder.contact_time_performance
            ORDER BY dow, hour, channel"""),
    }


# --- formatting: every value shown goes through one of these, then esc() --

def esc(value):
    return html.escape(str(value), quote=True)


def count(n):
    return "—" if n is None else "{:,}".format(n)


def percent(x):
    return "—" if x is None else "{:,.2f}%".format(x)


def dollars(x):
    return "—" if x is None else "${:,.2f}".format(x)


def p_value(p):
    return "—" if p is None else "{:.4f}".format(p)


# --- SVG pieces --------------------------------------------------------------

def text(x, y, content, cls=None, anchor=None, weight=None):
    attrs = ' x="%g" y="%g"' % (x, y)
    if cls:
        attrs += ' class="%s"' % cls
    if anchor:
        attrs += ' text-anchor="%s"' % anchor
    if weight:
        attrs += ' font-weight="%s"' % weight
    return "<text%s>%s</text>" % (attrs, esc(content))


def rect(x, y, width, height, fill, tooltip=None, extra=""):
    shape = '<rect x="%g" y="%g" width="%g" height="%g" fill="%s"%s' % (x, y, width, height, fill, extra)
    if tooltip is None:
        return shape + "/>"
    return shape + "><title>%s</title></rect>" % esc(tooltip)


def svg(chart_id, title, height, body):
    return ('<svg role="img" aria-labelledby="%s-title" width="%d" height="%d" viewBox="0 0 %d %d">'
            '<title id="%s-title">%s</title>%s</svg>'
            % (chart_id, WIDTH, height, WIDTH, height, chart_id, esc(title), "".join(body)))


def bar_length(value, largest, room):
    """The length of value's bar where largest fills room (a sliver for a
    non-zero value, so that it shows)."""
    if not value or not largest:
        return 0
    return max(2.0, room * abs(float(value)) / float(largest))


def no_data(chart_id, title, message):
    return svg(chart_id, title, 40, [text(10, 25, message, cls="muted")])


def table(headers, body_rows):
    head = "".join("<th>%s</th>" % esc(h) for h in headers)
    body = "".join("<tr>%s</tr>" % "".join("<td>%s</td>" % esc(c) for c in r) for r in body_rows)
    return '<div class="table"><table><thead><tr>%s</tr></thead><tbody>%s</tbody></table></div>' % (head, body)


# --- the charts ----------------------------------------------------------------

def funnel_chart(data):
    """Horizontal bars: properties at each stage, with the share of the stage before."""
    title = "Campaign funnel: properties at each stage"
    stages = data["funnel"]
    if not stages:
        return no_data("funnel", title, "No campaign yet.")
    label_width, room, row, top = 90, 280, 34, 22
    share_x = label_width + room + 60
    largest = max(s["properties"] for s in stages)
    body = [text(label_width, 13, "properties", cls="small"),
            text(share_x, 13, "of the stage before", cls="small")]
    for i, s in enumerate(stages):
        y = top + i * row
        length = bar_length(s["properties"], largest, room)
        body.append(text(label_width - 8, y + 17, s["stage"], anchor="end"))
        body.append(rect(label_width, y, length, 24, FUNNEL_COLOUR,
                         "%s: %s properties" % (s["stage"], count(s["properties"]))))
        body.append(text(label_width + length + 6, y + 17, count(s["properties"]), weight="bold"))
        if s["share_of_previous"] is not None:
            body.append(text(share_x, y + 17, percent(s["share_of_previous"]), cls="muted"))
    return svg("funnel", title, top + 10 + len(stages) * row, body)


CHANNEL_METRICS = [("Sent", "sent", count), ("Response rate", "response_rate", percent),
                   ("Cost", "cost", dollars), ("Revenue expected", "revenue", dollars), ("ROI", "roi", percent)]


def channels_chart(data):
    """Small multiples: one panel of bars per metric, one bar per channel."""
    title = "Channels compared (last 30 days)"
    channels = data["channels"]
    if not channels:
        return no_data("channels", title, "Nothing sent in the last 30 days.")
    panel_width, label_width, bar_room, row = WIDTH // 2, 62, 120, 20
    panel_height = 26 + row * len(channels) + 10
    body = []
    for k, (name, column, show) in enumerate(CHANNEL_METRICS):
        left, top = (k % 2) * panel_width, (k // 2) * panel_height
        body.append(text(left + 4, top + 16, name, weight="bold"))
        largest = max((abs(c[column]) for c in channels if c[column] is not None), default=0)
        for i, c in enumerate(channels):
            y = top + 24 + i * row
            value = c[column]
            fill = NEGATIVE_COLOUR if value is not None and value < 0 else \
                CHANNEL_COLOURS.get(c["channel"], OTHER_CHANNEL_COLOUR)
            length = bar_length(value, largest, bar_room)
            body.append(text(left + label_width - 6, y + 13, c["channel"], anchor="end"))
            body.append(rect(left + label_width, y, length, 15, fill, "%s, %s: %s" % (c["channel"], name, show(value))))
            body.append(text(left + label_width + length + 5, y + 13, show(value), cls="value"))
    panels_down = (len(CHANNEL_METRICS) + 1) // 2
    return svg("channels", title, panels_down * panel_height, body)


def channels_table(data):
    return table(["channel", "sent", "delivered", "responded", "response rate", "cost", "revenue", "ROI",
                  "unpriced"],
                 [[c["channel"], count(c["sent"]), count(c["delivered"]), count(c["responded"]),
                   percent(c["response_rate"]), dollars(c["cost"]), dollars(c["revenue"]), percent(c["roi"]),
                   count(c["unpriced"])] for c in data["channels"]])


def ab_chart(data):
    """Per step, a bar per arm: its response rate, what it was sent and
    answered, the p-value against the step's first variant, the winner."""
    title = "A/B test: response rate per variant and the holdout"
    arms = data["ab"]
    if not arms:
        return no_data("ab-test", title, "No A/B results yet.")
    label_width, room, row, heading = 62, 120, 24, 26
    largest = max((a["response_rate"] for a in arms if a["response_rate"] is not None), default=0)
    body, y, step = [], 0, None
    for a in arms:
        if a["step"] != step:
            step = a["step"]
            y += 6
            body.append(text(4, y + 16, "Step %s" % step, weight="bold"))
            y += heading
        holdout = a["variant"] == "holdout"
        fill = HOLDOUT_COLOUR if holdout else WINNER_COLOUR if a["winner"] else VARIANT_COLOUR
        length = bar_length(a["response_rate"], largest, room)
        if holdout:
            detail = "%s held out · %s responded" % (count(a["assigned"]), count(a["responded"]))
        else:
            detail = "%s sent · %s responded" % (count(a["sent"]), count(a["responded"]))
            if a["p_value"] is not None:
                detail += " · p %s" % p_value(a["p_value"])
            if a["winner"]:
                detail += " · winner"
        body.append(text(label_width - 8, y + 14, a["variant"], anchor="end"))
        body.append(rect(label_width, y, length, 18, fill,
                         "step %s, %s: %s" % (a["step"], a["variant"], percent(a["response_rate"]))))
        body.append(text(label_width + length + 5, y + 14, percent(a["response_rate"]), weight="bold"))
        body.append(text(label_width + room + 72, y + 14, detail, cls="detail"))
        y += row
    return svg("ab-test", title, y + 8, body)


def ab_table(data):
    return table(["step", "arm", "assigned", "sent", "responded", "response rate", "difference", "p-value",
                  "lift over holdout", "winner"],
                 [[a["step"], a["variant"], count(a["assigned"]), count(a["sent"]), count(a["responded"]),
                   percent(a["response_rate"]), percent(a["difference"]), p_value(a["p_value"]),
                   percent(a["lift_over_holdout"]), "yes" if a["winner"] else ""] for a in data["ab"]])


def heat_colour(responded, largest):
    """The shade of a cell with responded responses (1 the lightest, largest the darkest)."""
    return HEAT_SCALE[(responded - 1) * (len(HEAT_SCALE) - 1) // max(1, largest - 1)]


def heatmap_chart(data):
    """Day of the week by hour of the day (the recipient's local time), all
    channels: a cell's colour is how many of the messages sent then were
    responded to; its tooltip gives each channel's counts."""
    title = "Responses by the recipient's local hour and day of the week"
    cells = {}
    for r in data["hours"]:
        cell = cells.setdefault((r["dow"], r["hour"]), {"sent": 0, "responded": 0, "channels": []})
        cell["sent"] += r["sent"]
        cell["responded"] += r["responded"]
        cell["channels"].append(r)
    largest = max((c["responded"] for c in cells.values()), default=0)
    left, top, size_x, size_y = 40, 22, 20, 22
    body = [text(left + h * size_x + size_x / 2, top - 6, "%02d" % h, cls="small", anchor="middle")
            for h in range(0, 24, 3)]
    for dow, day in enumerate(DAYS):
        y = top + dow * size_y
        body.append(text(left - 6, y + 15, day, anchor="end"))
        for hour in range(24):
            cell = cells.get((dow, hour))
            x = left + hour * size_x
            if cell is None:
                body.append(rect(x, y, size_x - 1, size_y - 1, EMPTY_CELL, "%s %02d:00: nothing sent" % (day, hour)))
                continue
            fill = heat_colour(cell["responded"], largest) if cell["responded"] else NO_RESPONSE_CELL
            rate = 100.0 * cell["responded"] / cell["sent"] if cell["sent"] else None
            tooltip = "%s %02d:00: %s sent, %s responded (%s); %s" % (
                day, hour, count(cell["sent"]), count(cell["responded"]), percent(rate),
                "; ".join("%s %s sent, %s responded" % (c["channel"], count(c["sent"]), count(c["responded"]))
                          for c in cell["channels"]))
            body.append(rect(x, y, size_x - 1, size_y - 1, fill, tooltip,
                             ' data-sent="%d" data-responded="%d"' % (cell["sent"], cell["responded"])))
            if cell["responded"]:
                light = HEAT_SCALE.index(fill) < len(HEAT_SCALE) // 2
                body.append(text(x + size_x / 2, y + 15, count(cell["responded"]),
                                 cls="cell-light" if light else "cell-dark", anchor="middle"))
    # the legend: the two kinds of cell without responses, then the scale
    y = top + 7 * size_y + 16
    x = left
    for fill, label in [(EMPTY_CELL, "nothing sent"), (NO_RESPONSE_CELL, "sent, no response")]:
        body.append(rect(x, y, 14, 14, fill, label, ' stroke="#c9ced6"'))
        body.append(text(x + 19, y + 11, label, cls="small"))
        x += 130
    if largest:
        body.append(text(x, y + 11, "1", cls="small"))
        x += 10
        for fill in HEAT_SCALE:
            body.append(rect(x, y, 16, 14, fill))
            x += 16
        body.append(text(x + 5, y + 11, "%s responses" % count(largest), cls="small"))
    total_sent = sum(c["sent"] for c in cells.values())
    total_responded = sum(c["responded"] for c in cells.values())
    body.append(text(left, y + 36, "%s responded of %s sent whose recipient's time zone is known"
                     % (count(total_responded), count(total_sent)), cls="muted"))
    return svg("heatmap", title, y + 46, body)


# --- the page --------------------------------------------------------------------

STYLE = """
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; margin: 16px 20px; color: #1f2933;
       background: #ffffff; }
header h1 { font-size: 21px; margin: 0 0 4px; }
header p { margin: 0 0 14px; color: #52606d; font-size: 13px; }
main { display: grid; align-items: start; grid-template-columns: repeat(auto-fill, minmax(566px, 1fr)); gap: 14px; }
section { border: 1px solid #d9dee4; border-radius: 6px; padding: 10px 12px; }
h2 { font-size: 15px; margin: 0 0 6px; }
svg { display: block; max-width: 100%; height: auto; font-size: 12px; fill: #1f2933; }
svg .muted { fill: #616e7c; }
svg .small { font-size: 10px; fill: #52606d; }
svg .value { font-size: 11px; }
svg .detail { font-size: 11px; fill: #616e7c; }
svg .cell-dark { font-size: 10px; fill: #ffffff; }
svg .cell-light { font-size: 10px; fill: #1f2933; }
.table { overflow-x: auto; }
table { border-collapse: collapse; font-size: 10.5px; margin-top: 8px; width: 100%; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 2px 4px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { font-weight: 600; color: #3e4c59; }
"""


def render(data):
    """The page, as a string."""
    name = data["campaign_name"]
    subtitle = ("Campaign %s (id %s), as the tenant's role sees it" % (name, data["campaign_id"])
                if name is not None else "No campaign yet")
    sections = [
        ("funnel", "Funnel", funnel_chart(data), ""),
        ("channels", "Channels", channels_chart(data), channels_table(data)),
        ("ab-test", "A/B test", ab_chart(data), ab_table(data)),
        ("heatmap", "When owners answer", heatmap_chart(data), ""),
    ]
    parts = ['<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
             # nothing may be loaded: no script, no image, no font, no request
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">\n',
             "<title>crefinder report: %s</title>\n" % esc(name if name is not None else "no campaign"),
             "<style>%s</style>\n</head>\n<body>\n" % STYLE,
             "<header><h1>crefinder campaign report</h1><p>%s · generated %s from crefinder's analytics views</p>"
             "</header>\n<main>\n" % (esc(subtitle), esc(data["generated"]))]
    for section_id, heading, chart, extra in sections:
        parts.append('<section id="%s"><h2>%s</h2>%s%s</section>\n' % (section_id, esc(heading), chart, extra))
    parts.append("</main>\n</body>\n</html>\n")
    return "".join(parts)


def write_report(conn, path, campaign_id=None):
    """Writes the report of campaign_id (default: the newest campaign) to
    path, from the views as conn's session sees them; returns path."""
    page = render(read_views(conn, campaign_id))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


def main():
    parser = argparse.ArgumentParser(description="Writes crefinder's campaign report (HTML, inline SVG).")
    parser.add_argument("dsn", help='a libpq connection string, e.g. "host=127.0.0.1 dbname=mydb user=app"')
    parser.add_argument("--tenant", help="the tenant's id (SET crefinder.user_id); default: the session's")
    parser.add_argument("--campaign", type=int, help="the campaign's id; default: the newest")
    parser.add_argument("--output", default="crefinder-report.html", help="default: %(default)s")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import debian_python  # noqa: F401  (before psycopg2)
    import psycopg2
    conn = psycopg2.connect(args.dsn)
    conn.autocommit = True
    try:
        if args.tenant:
            with conn.cursor() as cur:
                cur.execute("SET crefinder.user_id = %s", (args.tenant,))
        print(write_report(conn, args.output, args.campaign))
    finally:
        conn.close()


if __name__ == "__main__":
    main()
