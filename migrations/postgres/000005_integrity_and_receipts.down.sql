-- =============================================================================
-- 000005_integrity_and_receipts (down)
--
-- Drops the length limits and the unread-receipts index, and makes the
-- circular foreign keys NOT DEFERRABLE again, as 000001 made them.
-- No BEGIN/COMMIT: the migration runner wraps the file in a transaction.
-- =============================================================================

ALTER TABLE messages.conversations ALTER CONSTRAINT conversations_last_message_id_fkey NOT DEFERRABLE;
ALTER TABLE messages.messages ALTER CONSTRAINT messages_conversation_id_fkey NOT DEFERRABLE;
ALTER TABLE messages.messages ALTER CONSTRAINT messages_thread_fkey NOT DEFERRABLE;
ALTER TABLE messages.threads ALTER CONSTRAINT threads_root_message_fkey NOT DEFERRABLE;

DROP INDEX IF EXISTS messages.message_status_unread_idx;

DO $$
DECLARE
    r record;
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
        EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT IF EXISTS %I', r.schema_name, r.table_name,
                       format('%s_%s_length_check', r.table_name, r.column_name));
    END LOOP;
END
$$;

DELETE FROM public.schema_migrations WHERE version = 5;
