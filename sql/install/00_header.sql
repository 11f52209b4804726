-- crefinder install script, assembled by the Makefile from sql/install/*.sql.
-- Each part holds one concern: tenancy, tables, row-level security, settings.

\echo Use "CREATE EXTENSION crefinder" to load this file. \quit
