-- =============================================================================
-- 000002_add_presence_schema (down)
--
-- Removes the presence schema with its tables, triggers and functions.
-- 000002 creates nothing outside that schema (its triggers use the shared
-- auth.set_updated_at() of 000001, which stays), so nothing else is touched.
-- No BEGIN/COMMIT: the migration runner wraps the file in a transaction.
-- =============================================================================

DROP SCHEMA IF EXISTS presence CASCADE;

DELETE FROM public.schema_migrations WHERE version = 2;
