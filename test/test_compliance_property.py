"""Property test of can_contact(): thousands of random (number, instant)
pairs checked against an independent computation written here, in Python
with its own time-zone code (zoneinfo) and its own holiday calendar.

The model: a text is allowed at instant t when, in every zone the number's
area code spans, the local time is inside the window of that local day
(the intersection of the federal rule, the area code state's rule and the
tenant's default 09:00-20:00) and the local day is not banned (Sundays,
holidays).  next_allowed_at is found by brute force, stepping through every
half hour (all zones sampled have whole-hour offsets)."""
import datetime
import random
from zoneinfo import ZoneInfo

DB = "crefinder_property_test"
TENANT = "dddddddd-0000-4000-8000-000000000001"
UTC = datetime.timezone.utc
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
SAMPLES = 3000


def nth_weekday(year, month, weekday, n):
    """weekday: Monday=0 as in Python."""
    d = datetime.date(year, month, 1)
    d += datetime.timedelta(days=(weekday - d.weekday()) % 7)
    return d + datetime.timedelta(weeks=n - 1)


def last_weekday(year, month, weekday):
    d = (datetime.date(year + (month == 12), month % 12 + 1, 1) - datetime.timedelta(days=1))
    return d - datetime.timedelta(days=(d.weekday() - weekday) % 7)


def federal_holidays(year):
    days = set()
    for month, day in [(1, 1), (6, 19), (7, 4), (11, 11), (12, 25)]:
        d = datetime.date(year, month, day)
        days.add(d)
        if d.weekday() == 5:
            days.add(d - datetime.timedelta(days=1))
        if d.weekday() == 6:
            days.add(d + datetime.timedelta(days=1))
    days |= {nth_weekday(year, 1, 0, 3), nth_weekday(year, 2, 0, 3), last_weekday(year, 5, 0),
             nth_weekday(year, 9, 0, 1), nth_weekday(year, 10, 0, 2), nth_weekday(year, 11, 3, 4)}
    return days


HOLIDAYS = set()
for y in range(2025, 2030):
    HOLIDAYS |= federal_holidays(y)


def load_rules(cur):
    cur.execute("SELECT region, window_start, window_end, day_windows, no_sundays, no_holidays "
                "FROM crefinder.calling_rules WHERE source = 'default'")
    rules = {}
    for region, start, end, day_windows, no_sundays, no_holidays in cur.fetchall():
        per_day = {}
        for i, name in enumerate(DAYS):
            if name in day_windows:
                s, e = (datetime.time.fromisoformat(x) for x in day_windows[name])
            else:
                s, e = start, end
            per_day[i] = (s, e)
        rules[region] = (per_day, no_sundays, no_holidays)
    return rules


def allowed_at(t, zones, rules):
    """Returns None when allowed, else 'quiet_hours' or 'day_restricted'."""
    quiet = day = False
    for zone in zones:
        local = t.astimezone(zone)
        dow = (local.weekday() + 1) % 7          # Sunday = 0
        start, end = datetime.time(9), datetime.time(20)
        banned = False
        for per_day, no_sundays, no_holidays in rules:
            s, e = per_day[dow]
            start, end = max(start, s), min(end, e)
            if (no_sundays and dow == 0) or (no_holidays and local.date() in HOLIDAYS):
                banned = True
        tod = local.time().replace(tzinfo=None)
        if not (start <= tod < end):
            quiet = True
        elif banned:
            day = True
    return "quiet_hours" if quiet else "day_restricted" if day else None


def expected(at, zones, rules):
    reason = allowed_at(at, zones, rules)
    if reason is None:
        return None, at
    t = at.replace(second=0, microsecond=0, minute=30 if at.minute >= 30 else 0)
    for _ in range(2 * 24 * 40):
        t += datetime.timedelta(minutes=30)
        if allowed_at(t, zones, rules) is None:
            return reason, t
    return reason, None


def test_random_numbers_and_instants(cluster):
    conn = cluster.fresh_database(DB)
    rng = random.Random(20261123)
    with conn.cursor() as cur:
        cur.execute("SET crefinder.user_id = %s", (TENANT,))
        rules = load_rules(cur)

        # Area codes with known zones, each zone a whole-hour offset.
        cur.execute("SELECT npa, crefinder.phone_timezones('+1' || npa || '5550123'), "
                    "crefinder.phone_region('+1' || npa || '5550123') "
                    "FROM generate_series(200, 999) AS npa "
                    "WHERE npa % 100 <> 11 AND crefinder.phone_timezones('+1' || npa || '5550123') IS NOT NULL")
        area_codes = []
        for npa, zones, region in cur.fetchall():
            tzs = [ZoneInfo(z) for z in zones]
            probe = datetime.datetime(2026, 1, 15, tzinfo=UTC)
            if all(z.utcoffset(probe).total_seconds() % 3600 == 0 for z in tzs):
                area_codes.append((npa, tzs, region))
        assert len(area_codes) > 300, len(area_codes)

        # Instants over two years, with extra weight on DST change days.
        start = datetime.datetime(2026, 1, 1, tzinfo=UTC)
        dst_days = [datetime.datetime(2026, 3, 8, tzinfo=UTC), datetime.datetime(2026, 11, 1, tzinfo=UTC),
                    datetime.datetime(2027, 3, 14, tzinfo=UTC), datetime.datetime(2027, 11, 7, tzinfo=UTC)]
        mismatches = []
        counts = {}
        for i in range(SAMPLES):
            npa, zones, region = rng.choice(area_codes)
            if i % 5 == 0:
                at = rng.choice(dst_days) + datetime.timedelta(seconds=rng.randrange(0, 2 * 86400))
            else:
                at = start + datetime.timedelta(seconds=rng.randrange(0, 2 * 365 * 86400))
            number = "+1%d%07d" % (npa, rng.randrange(2000000, 9999999))
            applicable = [rules["US"]] + ([rules[region]] if region in rules else [])
            want_reason, want_next = expected(at, zones, applicable)
            cur.execute("SELECT reason, next_allowed_at FROM crefinder.can_contact('sms', %s, %s)",
                        (number, at))
            got_reason, got_next = cur.fetchone()
            counts[got_reason] = counts.get(got_reason, 0) + 1
            if (got_reason, got_next) != (want_reason, want_next):
                mismatches.append((number, at.isoformat(), (got_reason, got_next), (want_reason, want_next)))
    conn.close()
    assert not mismatches, "%d mismatches, first: %r" % (len(mismatches), mismatches[:5])
    # The sample exercised every time-based outcome.
    assert counts.get(None, 0) > 100 and counts.get("quiet_hours", 0) > 100 \
        and counts.get("day_restricted", 0) > 10, counts
