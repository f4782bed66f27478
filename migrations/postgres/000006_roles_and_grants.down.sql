-- =============================================================================
-- 000006_roles_and_grants (down)
--
-- Takes back every privilege this database gave echo_app and echo_readonly,
-- gives EXECUTE on the cleanup functions back to PUBLIC, and drops the two
-- roles if 000006 created them (their comment says so) and no database of
-- the cluster still uses them: roles belong to the cluster, so another Echo
-- database may hold grants to them, and then they stay (a NOTICE says so).
-- No BEGIN/COMMIT: the migration runner wraps the file in a transaction.
-- =============================================================================

DO $$
DECLARE
    v_role text;
BEGIN
    FOR v_role IN
        SELECT rolname FROM pg_catalog.pg_roles WHERE rolname IN ('echo_app', 'echo_readonly') ORDER BY 1
    LOOP
        -- A table-level REVOKE also takes back the column privileges.
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA auth, users, media, messages, notifications, '
                       'analytics, location, presence FROM %I', v_role);
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA auth, users, media, messages, notifications, '
                       'analytics, location, presence FROM %I', v_role);
        EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA auth, users, media, messages, notifications, '
                       'analytics, location, presence FROM %I', v_role);
        EXECUTE format('REVOKE ALL ON SCHEMA auth, users, media, messages, notifications, '
                       'analytics, location, presence FROM %I', v_role);
    END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION presence.cleanup_expired_typing(),
                          presence.cleanup_stale_connections(),
                          analytics.create_monthly_partitions(regclass, integer) TO PUBLIC;

DO $$
DECLARE
    v_role text;
BEGIN
    FOR v_role IN
        SELECT r.rolname
          FROM pg_catalog.pg_roles r
         WHERE r.rolname IN ('echo_app', 'echo_readonly')
           AND shobj_description(r.oid, 'pg_authid') LIKE '%Created by migration 000006_roles_and_grants.'
         ORDER BY 1
    LOOP
        IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
            RAISE NOTICE 'role % stays: % may not drop roles', v_role, current_user;
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format('DROP ROLE %I', v_role);
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'role % stays: another database still grants it privileges', v_role;
        END;
    END LOOP;
END
$$;

DELETE FROM public.schema_migrations WHERE version = 6;
