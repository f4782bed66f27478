-- =============================================================================
-- 000006_roles_and_grants (up)
--
-- A privilege model, so the service does not connect as the owner:
--   echo_app       the backend: SELECT/INSERT/UPDATE/DELETE on the tables
--                  (SELECT/INSERT only on the append-only logs), the
--                  sequences, EXECUTE on the presence functions including the
--                  two cleanup sweeps it runs.
--   echo_readonly  reporting and support: SELECT on every table, except the
--                  credential columns (password and token hashes, push
--                  tokens).
-- Both are NOLOGIN group roles, created here if missing: give them to login
-- roles (GRANT echo_app TO echo_backend_login).  EXECUTE on the cleanup
-- functions and on analytics.create_monthly_partitions() is revoked from
-- PUBLIC.
--
-- Run by a non-superuser owner this works as long as the roles exist or the
-- owner has CREATEROLE; otherwise it stops and names the two statements a
-- superuser has to run first.  Tables added by later migrations need their
-- own GRANTs (MIGRATION_GUIDE.md, "Roles").
--
-- Requires 000001-000005.  Idempotent.  No BEGIN/COMMIT.
-- =============================================================================

DO $$
DECLARE
    v_role    text;
    v_missing text[];
BEGIN
    SELECT array_agg(r.name ORDER BY r.name)
      INTO v_missing
      FROM unnest(ARRAY['echo_app', 'echo_readonly']) AS r (name)
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r.name);

    IF v_missing IS NULL THEN
        RETURN;
    END IF;

    IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'roles % are missing and % may not create them (no CREATEROLE)',
                        array_to_string(v_missing, ', '), current_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT    = 'Have a superuser run: ' ||
                            (SELECT string_agg(format('CREATE ROLE %I NOLOGIN;', m), ' ') FROM unnest(v_missing) AS m) ||
                            ' Then apply this migration again.';
    END IF;

    FOREACH v_role IN ARRAY v_missing LOOP
        EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
        EXECUTE format('COMMENT ON ROLE %I IS %L', v_role,
                       CASE v_role
                           WHEN 'echo_app' THEN 'Echo backend: DML on the Echo tables, EXECUTE on the presence functions.'
                           ELSE 'Echo read-only access: SELECT on the Echo tables, credential columns excepted.'
                       END || ' Created by migration 000006_roles_and_grants.');
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA auth, users, media, messages, notifications, analytics, location, presence
    TO echo_app, echo_readonly;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA auth, users, media, messages, notifications,
                                                             analytics, location, presence TO echo_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA auth, users, media, messages, notifications,
                                               analytics, location, presence TO echo_app;

-- Append-only logs: the service adds rows, never rewrites them (retention
-- drops whole partitions as the owner).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS tbl
          FROM pg_catalog.pg_class c
         WHERE c.oid IN ('analytics.events'::regclass, 'presence.status_history'::regclass,
                         'presence.activity_log'::regclass, 'messages.message_edits'::regclass)
            OR c.oid IN (SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                          WHERE i.inhparent IN ('analytics.events'::regclass, 'presence.status_history'::regclass))
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE ON %s FROM echo_app', r.tbl);
    END LOOP;
END
$$;

-- echo_readonly: every table, but credential columns only through the owner.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS tbl,
               array_agg(quote_ident(a.attname) ORDER BY a.attnum)
                   FILTER (WHERE (n.nspname, c.relname, a.attname) NOT IN (
                               ('auth', 'users', 'password_hash'),
                               ('auth', 'sessions', 'refresh_token_hash'),
                               ('auth', 'verification_tokens', 'token_hash'),
                               ('auth', 'password_resets', 'token_hash'),
                               ('notifications', 'push_tokens', 'token'))) AS readable,
               count(*) AS all_columns
          FROM pg_catalog.pg_class     c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE n.nspname IN ('auth', 'users', 'media', 'messages', 'notifications', 'analytics', 'location', 'presence')
           AND c.relkind IN ('r', 'p', 'v')
         GROUP BY c.oid
    LOOP
        IF cardinality(r.readable) = r.all_columns THEN
            EXECUTE format('GRANT SELECT ON %s TO echo_readonly', r.tbl);
        ELSE
            EXECUTE format('GRANT SELECT (%s) ON %s TO echo_readonly', array_to_string(r.readable, ', '), r.tbl);
        END IF;
    END LOOP;
END
$$;

REVOKE EXECUTE ON FUNCTION presence.cleanup_expired_typing(),
                           presence.cleanup_stale_connections(),
                           analytics.create_monthly_partitions(regclass, integer) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION presence.update_user_status(uuid, text, text),
                          presence.set_typing(uuid, uuid, text),
                          presence.clear_typing(uuid, uuid),
                          presence.cleanup_expired_typing(),
                          presence.cleanup_stale_connections() TO echo_app;


-- -----------------------------------------------------------------------------
-- Record the migration (keeps tracking right when applied by hand with psql).
-- -----------------------------------------------------------------------------

INSERT INTO public.schema_migrations (version, description, applied_at, applied_by)
VALUES (6, 'roles_and_grants', now(), current_user)
ON CONFLICT (version) DO NOTHING;
