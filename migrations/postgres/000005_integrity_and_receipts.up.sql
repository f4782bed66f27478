-- =============================================================================
-- 000005_integrity_and_receipts (up)
--
--   * Length limits on every text column a client supplies that had none
--     (CHECK char_length(col) <= n, named <table>_<column>_length_check): an
--     over-long value is refused with a clear constraint error instead of an
--     index-row-size error or a bloated row.  Added NOT VALID and then
--     validated, so the validation scan does not block writes.
--   * messages.message_status_unread_idx: a user's unread receipts, without
--     reading all of the user's receipts.
--   * The circular foreign keys become DEFERRABLE (INITIALLY IMMEDIATE, so
--     nothing changes unless a transaction asks for SET CONSTRAINTS ...
--     DEFERRED): conversations <-> messages and messages <-> threads.
--
-- Requires 000001-000004.  Idempotent.  No BEGIN/COMMIT (the runner wraps
-- the file in a transaction; with psql use -1).
-- =============================================================================


-- -----------------------------------------------------------------------------
-- Length limits on client-supplied text
-- -----------------------------------------------------------------------------

DO $$
DECLARE
    r       record;
    v_name  text;
    v_table regclass;
BEGIN
    FOR r IN
        SELECT * FROM (VALUES
        ('analytics', 'error_reports',       'app_version',          32),
        ('analytics', 'error_reports',       'error_code',           64),
        ('analytics', 'error_reports',       'fingerprint',          128),
        ('analytics', 'error_reports',       'message',              4000),
        ('analytics', 'error_reports',       'stack_trace',          65536),
        ('analytics', 'user_sessions',       'app_version',          32),
        ('auth',      'login_attempts',      'identifier',           320),
        ('auth',      'login_attempts',      'user_agent',           512),
        ('auth',      'oauth_accounts',      'provider_user_id',     255),
        ('auth',      'oauth_accounts',      'provider_email',       320),
        ('auth',      'password_resets',     'requested_user_agent', 512),
        ('auth',      'sessions',            'device_id',            128),
        ('auth',      'sessions',            'device_name',          128),
        ('auth',      'sessions',            'user_agent',           512),
        ('auth',      'verification_tokens', 'sent_to',              320),
        ('media',     'files',               'original_filename',    255),
        ('messages',  'conversations',       'description',          1024),
        ('messages',  'link_previews',       'title',                512),
        ('messages',  'link_previews',       'description',          2048),
        ('messages',  'link_previews',       'site_name',            256),
        ('messages',  'message_edits',       'previous_body',        16000),
        ('messages',  'messages',            'client_message_id',    128),
        ('notifications', 'push_tokens',     'app_version',          32),
        ('notifications', 'push_tokens',     'device_id',            128),
        ('notifications', 'push_tokens',     'token',                4096),
        ('presence',  'activity_log',        'device_id',            128),
        ('presence',  'connections',         'connection_id',        128),
        ('presence',  'connections',         'device_id',            128),
        ('presence',  'connections',         'user_agent',           512),
        ('presence',  'connections',         'server_id',            64),
        ('presence',  'status_history',      'device_id',            128),
        ('users',     'blocked_users',       'reason',               500),
        ('users',     'settings',            'notification_sound',   64),
        ('users',     'settings',            'timezone',             64)
        ) AS v (schema_name, table_name, column_name, max_length)
    LOOP
        v_table := format('%I.%I', r.schema_name, r.table_name)::regclass;
        v_name  := format('%s_%s_length_check', r.table_name, r.column_name);
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                               WHERE conrelid = v_table AND conname = v_name);
        IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = v_table) = 'p' THEN
            -- A partitioned table takes no NOT VALID constraint; its
            -- partitions are checked as it is added.
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (char_length(%I) <= %s)',
                           v_table, v_name, r.column_name, r.max_length);
        ELSE
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (char_length(%I) <= %s) NOT VALID',
                           v_table, v_name, r.column_name, r.max_length);
            EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I', v_table, v_name);
        END IF;
    END LOOP;
END
$$;


-- -----------------------------------------------------------------------------
-- Unread receipts
-- -----------------------------------------------------------------------------

-- SELECT ... FROM messages.message_status WHERE user_id = $1 AND read_at IS NULL
-- (ORDER BY created_at) reads only the unread rows.  Receipts leave it when
-- read, so it stays small.
CREATE INDEX IF NOT EXISTS message_status_unread_idx
    ON messages.message_status (user_id, created_at) WHERE read_at IS NULL;

COMMENT ON INDEX messages.message_status_unread_idx IS
    'A user''s unread receipts (WHERE user_id = $1 AND read_at IS NULL), oldest first.';


-- -----------------------------------------------------------------------------
-- Circular foreign keys: DEFERRABLE INITIALLY IMMEDIATE
-- -----------------------------------------------------------------------------

ALTER TABLE messages.conversations ALTER CONSTRAINT conversations_last_message_id_fkey DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE messages.messages ALTER CONSTRAINT messages_conversation_id_fkey DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE messages.messages ALTER CONSTRAINT messages_thread_fkey DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE messages.threads ALTER CONSTRAINT threads_root_message_fkey DEFERRABLE INITIALLY IMMEDIATE;


-- -----------------------------------------------------------------------------
-- Record the migration (keeps tracking right when applied by hand with psql).
-- -----------------------------------------------------------------------------

INSERT INTO public.schema_migrations (version, description, applied_at, applied_by)
VALUES (5, 'integrity_and_receipts', now(), current_user)
ON CONFLICT (version) DO NOTHING;
