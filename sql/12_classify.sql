-- Reply understanding: classify_reply() and analyze_transcript().
SELECT reply, crefinder.classify_reply(reply)
FROM unnest(ARRAY[
    'STOP', 'stop!!!', 'Unsubscribe', 'END', 'please stop texting me', 'Take me off your list',
    'lose my number', 'Wrong number, don''t text again', 'not interested, stop texting',
    'non-stop calls from you, quit it', 'stpo', 'S-T-O-P', 'no me escriba más', 'Piss off',
    'not interested', 'no thanks, not selling', 'nope', 'No me interesa', 'Not right now',
    'I might be interested', 'not opposed to an offer', 'not uninterested', 'I''m not saying no',
    'don''t stop, I''m interested', 'what''s your offer?', 'sí', 'im intrested',
    'call me next week', 'not right now, maybe next year', 'busy, try later', 'Busy rn, call me tmrw',
    'wrong number', 'I don''t own that', 'sold it years ago', 'número equivocado', 'No John here',
    'who is this?', 'how did you get my number?', 'what company?',
    'ok', 'lol', '👍', 'Liked "Would you consider an offer?"', '', '?!?!'
]) AS reply;

-- Transcripts: levels, follow-up, interest, wrong number, opt-out and a summary.
SELECT level, r.interest_level, r.needs_follow_up, r.contains_interest, r.wrong_number,
       r.opted_out, r.summary
FROM (VALUES
    ('interested', E'AI: Hi, is this Sam?\nUser: Yes.\nAI: Would you consider an offer on 12 Main St?\nUser: Maybe. How much would you pay?'),
    ('meeting', E'AI: Would you consider selling your building?\nUser: Yes! Can you come see it Friday? Bring a written offer.'),
    ('refusal', E'Assistant: Would you be open to an offer?\nCustomer: No thanks, I''m not selling.'),
    ('opt-out', E'AI: Hello, is this Dana?\nUser: Put me on your do not call list.'),
    ('wrong number', E'Bot: Hi, is this Mr. Lee?\nOwner: No.\nBot: Sorry, I was calling about 4 Elm Road.\nOwner: Never heard of it.'),
    ('callback', E'AI: Would you consider an offer?\nUser: I''m driving, call me back tomorrow.'),
    ('question', E'AI: Hi, I''m calling about your property on Oak Street.\nUser: Who is this?'),
    ('voicemail', E'AI: Hello?\nUser: You have reached Dana. Please leave a message after the tone.'),
    ('no owner', E'AI: Hello, is this Rita?\n[call ended]'),
    ('no prefix', E'hello?\nnot interested, don''t call me again'),
    ('empty', '')
) AS t(level, transcript), LATERAL jsonb_to_record(crefinder.analyze_transcript(t.transcript))
    AS r(interest_level int, needs_follow_up boolean, contains_interest boolean,
         wrong_number boolean, opted_out boolean, summary text);

-- Pure functions: IMMUTABLE, STRICT, PARALLEL SAFE, NULL in, NULL out.
SELECT p.oid::regprocedure AS function, p.provolatile, p.proisstrict, p.proparallel
FROM pg_proc p
WHERE p.oid IN ('crefinder.classify_reply(text)'::regprocedure,
                'crefinder.analyze_transcript(text)'::regprocedure)
ORDER BY p.proname;
SELECT crefinder.classify_reply(NULL) IS NULL AS reply_null,
       crefinder.analyze_transcript(NULL) IS NULL AS transcript_null;

-- Not granted to PUBLIC (90_security revokes every function of the schema).
SELECT has_function_privilege('public', 'crefinder.classify_reply(text)', 'EXECUTE') AS reply_public,
       has_function_privilege('public', 'crefinder.analyze_transcript(text)', 'EXECUTE') AS transcript_public;
