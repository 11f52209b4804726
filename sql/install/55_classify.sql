-- TEMPORARY LOCAL PLACEHOLDER (not committed)
CREATE FUNCTION crefinder.classify_reply(t text) RETURNS text LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp AS $$
SELECT CASE WHEN t ~* 'stop|remove|don''t text|alto' THEN 'opt_out' WHEN t ~* 'not interested|no me interesa' THEN 'not_interested'
 WHEN t ~* 'interested' THEN 'interested' WHEN t ~* 'next week' THEN 'callback_later' ELSE 'unknown' END $$;
CREATE FUNCTION crefinder.analyze_transcript(t text) RETURNS jsonb LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp AS $$
SELECT jsonb_build_object('interest_level', CASE WHEN t ~* 'do not call|don''t call' THEN 1 WHEN t ~* 'interested' THEN 4 ELSE 3 END,
 'needs_follow_up', t ~* 'interested', 'contains_interest', t ~* 'interested', 'wrong_number', false,
 'opted_out', t ~* 'do not call|don''t call', 'summary', 'placeholder') $$;
COMMENT ON FUNCTION crefinder.classify_reply(text) IS 'x';
COMMENT ON FUNCTION crefinder.analyze_transcript(text) IS 'x';
