-- Every function, table, view and column of schema crefinder has a comment
-- (\df+ and \d+ are documentation).  The extension was created by
-- 01_install; an object added without a comment is listed here and fails
-- the test: comment it where it is created or in sql/install/95_comments.sql.
SELECT kind, name
FROM (
    SELECT 'function' AS kind, p.oid::regprocedure::text AS name
    FROM pg_proc p
    WHERE p.pronamespace = 'crefinder'::regnamespace
      AND obj_description(p.oid, 'pg_proc') IS NULL
    UNION ALL
    SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                          WHEN 'f' THEN 'foreign table' ELSE 'table' END,
           c.oid::regclass::text
    FROM pg_class c
    WHERE c.relnamespace = 'crefinder'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND obj_description(c.oid, 'pg_class') IS NULL
    UNION ALL
    SELECT 'column', c.oid::regclass::text || '.' || quote_ident(a.attname)
    FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid
    WHERE c.relnamespace = 'crefinder'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND a.attnum > 0 AND NOT a.attisdropped
      AND col_description(c.oid, a.attnum) IS NULL
) AS uncommented
ORDER BY kind COLLATE "C", name COLLATE "C";

-- The query above does look at the schema's objects.
SELECT (SELECT count(*) > 0 FROM pg_proc WHERE pronamespace = 'crefinder'::regnamespace) AS has_functions,
       (SELECT count(*) > 0 FROM pg_class WHERE relnamespace = 'crefinder'::regnamespace
                                            AND relkind = 'r') AS has_tables,
       (SELECT count(*) > 0 FROM pg_class WHERE relnamespace = 'crefinder'::regnamespace
                                            AND relkind = 'v') AS has_views;
