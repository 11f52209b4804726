-- Functions that the tables' CHECK constraints use.

CREATE FUNCTION crefinder.is_time_zone(name text) RETURNS boolean
    LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'crefinder_is_time_zone';
COMMENT ON FUNCTION crefinder.is_time_zone(text) IS
    'Whether name is a zone of PostgreSQL''s time zone database (America/New_York, UTC; case-insensitive).  POSIX TZ strings are not zones here.';
