"""Compliance across sessions: rule changes reach every backend's cache."""

DB = "crefinder_compliance_test"
TENANT = "eeeeeeee-0000-4000-8000-000000000001"


def test_rule_change_reaches_other_sessions(cluster):
    a = cluster.fresh_database(DB)
    b = cluster.connect(dbname=DB)
    query = ("SELECT reason FROM crefinder.can_contact('sms', '+12125550100', "
             "'2026-11-24 14:30+00')")  # 09:30 in New York
    with a.cursor() as ca, b.cursor() as cb:
        ca.execute("SET crefinder.user_id = %s", (TENANT,))
        ca.execute(query)
        assert ca.fetchone()[0] is None          # cached: allowed
        cb.execute("INSERT INTO crefinder.calling_rules (region, source, window_start, window_end) "
                   "VALUES ('NY', 'operator', '10:00', '19:00')")
        ca.execute(query)
        assert ca.fetchone()[0] == "quiet_hours"  # the other session's change is seen
        cb.execute("INSERT INTO crefinder.state_holidays VALUES ('NY', '2026-11-24', 'test')")
        cb.execute("UPDATE crefinder.calling_rules SET window_start = '09:00', no_holidays = true "
                   "WHERE region = 'NY'")
        ca.execute(query)
        assert ca.fetchone()[0] == "day_restricted"
        cb.execute("TRUNCATE crefinder.state_holidays")
        cb.execute("DELETE FROM crefinder.calling_rules WHERE source = 'operator'")
        ca.execute(query)
        assert ca.fetchone()[0] is None
    a.close()
    b.close()
