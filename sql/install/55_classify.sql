-- Reply understanding: what an owner's answer to an outreach text or an
-- AI call means (src/classify.c, src/transcript.c).  Pure functions of
-- their argument: they read no table and need no tenant.

CREATE FUNCTION crefinder.classify_reply(reply text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_classify_reply';
COMMENT ON FUNCTION crefinder.classify_reply(text) IS
    'The class of an owner''s reply to an outreach text: opt_out, not_interested, interested, callback_later, wrong_number, question or unknown.  Any request to stop, by any reasonable means, is opt_out, even alongside something milder.  Reads the first 4 kB.';

CREATE FUNCTION crefinder.analyze_transcript(transcript text) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_analyze_transcript';
COMMENT ON FUNCTION crefinder.analyze_transcript(text) IS
    'What an AI call''s transcript ("AI: ..." / "User: ..." lines; a line without a prefix is the owner''s) says about the owner: {interest_level 1-5, needs_follow_up, contains_interest, wrong_number, opted_out, summary}.  Reads the first 64 kB.';
