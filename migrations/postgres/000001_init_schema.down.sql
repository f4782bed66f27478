-- =============================================================================
-- 000001_init_schema (down)
--
-- Reverts the baseline: drops the seven schemas of 000001 with everything in
-- them (tables, indexes, sequences, row types, triggers and the shared
-- trigger function auth.set_updated_at()).  000001 creates nothing outside
-- these schemas, so public is left untouched apart from the tracking row.
--
-- Run 000002 down first: CASCADE would otherwise also remove the presence
-- schema's foreign keys and triggers that depend on objects dropped here.
-- No BEGIN/COMMIT: the migration runner wraps the file in a transaction.
-- =============================================================================

DROP SCHEMA IF EXISTS location      CASCADE;
DROP SCHEMA IF EXISTS analytics     CASCADE;
DROP SCHEMA IF EXISTS notifications CASCADE;
DROP SCHEMA IF EXISTS messages      CASCADE;
DROP SCHEMA IF EXISTS users         CASCADE;
DROP SCHEMA IF EXISTS media         CASCADE;
DROP SCHEMA IF EXISTS auth          CASCADE;

DELETE FROM public.schema_migrations WHERE version = 1;
