-- Phone numbers in the forms people type, to E.164; zones and regions.
SELECT input, crefinder.normalize_phone(input)
FROM unnest(ARRAY['(305) 555-0123', '305.555.0123', '1-305-555-0123', '+1 305 555 0123',
                  '3055550123', '+44 20 7946 0958', '+33 1 23 45 67 89', ' +1 (212) 555-0199 ']) AS input;

-- What cannot be a real number is refused with 22023 and the reason.
CREATE FUNCTION pg_temp.try_phone(input text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    detail text;
BEGIN
    RETURN crefinder.normalize_phone(input);
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL;
    RETURN st || ' ' || detail;
END
$$;
SELECT input, pg_temp.try_phone(input)
FROM unnest(ARRAY['(105) 555-0123', '(305) 155-0123', '(305) 055-0123', '(911) 555-0123',
                  '555-0123', '305-555-012', '13055550123', '23055550123', '305-555-CALL',
                  '+1 305 555 01234', '+1234567890123456', '+0044 20 7946 0958', '+999 1234 5678',
                  '+44 20#7946', '+1 305 +555', '', '   ', '+']) AS input;

-- Zones: every zone an area code spans; other countries by longest prefix.
SELECT input, crefinder.phone_timezones(input) AS zones, crefinder.phone_region(input) AS region
FROM unnest(ARRAY['+13055550123', '+18505550123', '+12085550123', '+16055550123',
                  '+19285550123', '+16025550123', '+18085550123', '+19075550123',
                  '+12145550123', '+14165550123', '+16045550123', '+17875550123',
                  '+18765550123', '+18005550123', '+442079460958', '+33123456789',
                  '+61291234567', '+74951234567']) AS input;

SELECT zip, crefinder.zip_timezone(zip)
FROM unnest(ARRAY['33101', '99501', '96813', '85001', '75201', '10001-1234', '00601', '99999']) AS zip;
SELECT crefinder.zip_timezone('3310');
SELECT crefinder.zip_timezone('ABCDE');

-- Contacts as crefinder stores them, per channel.
SELECT crefinder.normalize_contact('whatsapp', 'whatsapp:+1 305 555 0123'),
       crefinder.normalize_contact('email', '  Owner@Example.COM '),
       crefinder.normalize_contact('voice', '305-555-0123');
SELECT crefinder.normalize_contact('email', 'not an email');
SELECT crefinder.normalize_contact('fax', '305-555-0123');

-- Federal holidays, computed for any year (observed dates move off weekends).
SELECT * FROM crefinder.us_federal_holidays(2026);
SELECT day, observed, name FROM crefinder.us_federal_holidays(2027)
WHERE day <> observed;
SELECT count(*) FROM crefinder.us_federal_holidays(2020);
SELECT * FROM crefinder.us_federal_holidays(1800);
