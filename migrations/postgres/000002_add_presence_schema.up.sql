-- =============================================================================
-- 000002_add_presence_schema (up)
--
-- Real-time presence: schema presence with six tables
--   user_status, connections, activity_log, typing_indicators,
--   subscriptions, status_history
-- and the functions the realtime gateway calls:
--   presence.update_user_status(uuid, text, text)  -> presence.user_status
--   presence.set_typing(uuid, uuid)                -> presence.typing_indicators
--   presence.clear_typing(uuid, uuid)              -> boolean
--   presence.cleanup_expired_typing()              -> integer
--   presence.cleanup_stale_connections()           -> integer
-- presence.user_status.device_count is kept equal to the number of live
-- connections by statement-level triggers on presence.connections.
--
-- Requires 000001 (auth.users, messages.*, auth.set_updated_at()).
-- Idempotent; no BEGIN/COMMIT (the runner wraps the file in a transaction).
-- =============================================================================

CREATE SCHEMA IF NOT EXISTS presence;

COMMENT ON SCHEMA presence IS 'Real-time presence: online status, live gateway connections, typing indicators, presence subscriptions and status history.';


-- -----------------------------------------------------------------------------
-- Tables
-- -----------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS presence.user_status (
    user_id         uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    status          text        NOT NULL DEFAULT 'offline',
    custom_message  text,
    custom_emoji    text,
    custom_until    timestamptz,
    visibility      text        NOT NULL DEFAULT 'everyone',
    device_count    integer     NOT NULL DEFAULT 0,
    last_seen_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_status_pkey PRIMARY KEY (user_id),
    CONSTRAINT user_status_status_check CHECK (status IN ('online', 'away', 'busy', 'offline')),
    CONSTRAINT user_status_visibility_check CHECK (visibility IN ('everyone', 'contacts', 'nobody')),
    CONSTRAINT user_status_custom_message_check CHECK (char_length(custom_message) <= 140),
    CONSTRAINT user_status_custom_emoji_check CHECK (char_length(custom_emoji) BETWEEN 1 AND 32),
    CONSTRAINT user_status_device_count_check CHECK (device_count >= 0)
);

COMMENT ON TABLE  presence.user_status IS 'Current presence of each user (one row, created on first status update). Change status through presence.update_user_status() so that status_history stays complete.';
COMMENT ON COLUMN presence.user_status.status IS 'online, away, busy or offline.';
COMMENT ON COLUMN presence.user_status.custom_message IS 'User-set status text ("In a meeting"), at most 140 characters.';
COMMENT ON COLUMN presence.user_status.custom_emoji IS 'Emoji shown with the custom status.';
COMMENT ON COLUMN presence.user_status.custom_until IS 'When the custom message/emoji should be cleared; NULL = until changed.';
COMMENT ON COLUMN presence.user_status.visibility IS 'Who may see this presence: everyone, contacts or nobody (others see offline).';
COMMENT ON COLUMN presence.user_status.device_count IS 'Number of live connections (presence.connections with disconnected_at IS NULL); maintained by triggers on presence.connections.';
COMMENT ON COLUMN presence.user_status.last_seen_at IS 'Last time the user was known to be active: set by every status update and, when a connection times out, to its last heartbeat.';

CREATE TABLE IF NOT EXISTS presence.connections (
    id                 uuid        NOT NULL DEFAULT gen_random_uuid(),
    connection_id      text        NOT NULL,
    user_id            uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    device_id          text        NOT NULL,
    device_type        text        NOT NULL,
    ip_address         inet,
    user_agent         text,
    server_id          text        NOT NULL,
    connected_at       timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    disconnected_at    timestamptz,
    disconnect_reason  text,
    CONSTRAINT connections_pkey PRIMARY KEY (id),
    CONSTRAINT connections_connection_id_key UNIQUE (connection_id),
    CONSTRAINT connections_device_type_check
        CHECK (device_type IN ('ios', 'android', 'web', 'desktop')),
    CONSTRAINT connections_disconnected_at_check CHECK (disconnected_at >= connected_at),
    CONSTRAINT connections_disconnect_reason_check
        CHECK (disconnect_reason IN ('client_closed', 'heartbeat_timeout', 'server_shutdown', 'kicked')),
    CONSTRAINT connections_disconnect_check
        CHECK (disconnect_reason IS NULL OR disconnected_at IS NOT NULL)
);

CREATE INDEX IF NOT EXISTS connections_user_id_idx ON presence.connections (user_id, device_id);
CREATE INDEX IF NOT EXISTS connections_live_user_id_idx ON presence.connections (user_id) WHERE disconnected_at IS NULL;
CREATE INDEX IF NOT EXISTS connections_live_heartbeat_idx ON presence.connections (last_heartbeat_at) WHERE disconnected_at IS NULL;
CREATE INDEX IF NOT EXISTS connections_live_server_id_idx ON presence.connections (server_id) WHERE disconnected_at IS NULL;

COMMENT ON TABLE  presence.connections IS 'Realtime (WebSocket) connections of user devices. A connection is live while disconnected_at IS NULL; closed rows are kept briefly for diagnostics and purged by a retention job.';
COMMENT ON COLUMN presence.connections.connection_id IS 'Gateway-assigned connection identifier, unique across the fleet.';
COMMENT ON COLUMN presence.connections.device_id IS 'Client-generated stable device identifier (same value as auth.sessions.device_id).';
COMMENT ON COLUMN presence.connections.device_type IS 'ios, android, web or desktop.';
COMMENT ON COLUMN presence.connections.server_id IS 'Gateway node holding the socket; used to route events to the user and to close all its connections when a node dies.';
COMMENT ON COLUMN presence.connections.last_heartbeat_at IS 'Last heartbeat (ping) received; a live connection silent for more than 30 seconds is stale (presence.cleanup_stale_connections()).';
COMMENT ON COLUMN presence.connections.disconnected_at IS 'When the connection closed or was declared dead; NULL while live.';
COMMENT ON COLUMN presence.connections.disconnect_reason IS 'client_closed, heartbeat_timeout, server_shutdown or kicked.';

CREATE TABLE IF NOT EXISTS presence.activity_log (
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    user_id       uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    activity      text        NOT NULL,
    context_type  text        NOT NULL,
    context_id    uuid        NOT NULL,
    device_id     text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    duration      interval    GENERATED ALWAYS AS (ended_at - started_at) STORED,
    CONSTRAINT activity_log_pkey PRIMARY KEY (id),
    CONSTRAINT activity_log_activity_check CHECK (activity IN ('typing', 'viewing', 'recording')),
    CONSTRAINT activity_log_context_type_check
        CHECK (context_type IN ('conversation', 'thread', 'message', 'profile')),
    CONSTRAINT activity_log_ended_at_check CHECK (ended_at >= started_at)
);

CREATE INDEX IF NOT EXISTS activity_log_user_id_idx ON presence.activity_log (user_id, started_at);
CREATE INDEX IF NOT EXISTS activity_log_context_idx ON presence.activity_log (context_type, context_id, started_at);

COMMENT ON TABLE  presence.activity_log IS 'Append-only log of ephemeral user activities (typing, viewing, recording) for analytics and abuse detection.';
COMMENT ON COLUMN presence.activity_log.activity IS 'typing, viewing or recording (a voice/video message).';
COMMENT ON COLUMN presence.activity_log.context_type IS 'Kind of object context_id refers to: conversation, thread, message or profile.';
COMMENT ON COLUMN presence.activity_log.context_id IS 'Id of the object the activity happened in (polymorphic; no FK, the log outlives its objects).';
COMMENT ON COLUMN presence.activity_log.ended_at IS 'End of the activity; NULL while ongoing.';
COMMENT ON COLUMN presence.activity_log.device_id IS 'Client device the activity came from.';
COMMENT ON COLUMN presence.activity_log.duration IS 'ended_at - started_at (generated); NULL while ongoing.';

CREATE TABLE IF NOT EXISTS presence.typing_indicators (
    conversation_id  uuid        NOT NULL,
    user_id          uuid        NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL DEFAULT now() + interval '10 seconds',
    CONSTRAINT typing_indicators_pkey PRIMARY KEY (conversation_id, user_id),
    CONSTRAINT typing_indicators_participant_fkey FOREIGN KEY (conversation_id, user_id)
        REFERENCES messages.conversation_participants (conversation_id, user_id) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS typing_indicators_expires_at_idx ON presence.typing_indicators (expires_at);

COMMENT ON TABLE  presence.typing_indicators IS 'Who is typing where right now; one row per (conversation_id, user_id) (the primary key). Refreshed by presence.set_typing(), removed by presence.clear_typing() or, once expired, by presence.cleanup_expired_typing(). Only participants can type (composite FK).';
COMMENT ON COLUMN presence.typing_indicators.started_at IS 'Start of the current typing burst (kept across refreshes).';
COMMENT ON COLUMN presence.typing_indicators.updated_at IS 'Last refresh (keystroke batch) from the client.';
COMMENT ON COLUMN presence.typing_indicators.expires_at IS 'Ten seconds after the last update; readers must ignore rows with expires_at <= now().';

CREATE TABLE IF NOT EXISTS presence.subscriptions (
    id                 uuid        NOT NULL DEFAULT gen_random_uuid(),
    subscriber_id      uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    target_user_id     uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    subscription_type  text        NOT NULL,
    conversation_id    uuid        REFERENCES messages.conversations (id) ON DELETE CASCADE,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz,
    CONSTRAINT subscriptions_pkey PRIMARY KEY (id),
    CONSTRAINT subscriptions_type_check
        CHECK (subscription_type IN ('contact', 'conversation', 'temporary')),
    CONSTRAINT subscriptions_no_self_check CHECK (subscriber_id <> target_user_id),
    CONSTRAINT subscriptions_conversation_check
        CHECK ((subscription_type = 'conversation') = (conversation_id IS NOT NULL)),
    CONSTRAINT subscriptions_temporary_check
        CHECK (subscription_type <> 'temporary' OR expires_at IS NOT NULL),
    CONSTRAINT subscriptions_expires_at_check CHECK (expires_at > created_at)
);

-- One subscription per subscriber, target, type and conversation (NULL
-- conversation folded to the nil UUID: NULLS NOT DISTINCT needs PG15).
CREATE UNIQUE INDEX IF NOT EXISTS subscriptions_subscriber_target_key
    ON presence.subscriptions (subscriber_id, target_user_id, subscription_type,
                               COALESCE(conversation_id, '00000000-0000-0000-0000-000000000000'::uuid));
CREATE INDEX IF NOT EXISTS subscriptions_target_user_id_idx ON presence.subscriptions (target_user_id);
CREATE INDEX IF NOT EXISTS subscriptions_conversation_id_idx ON presence.subscriptions (conversation_id) WHERE conversation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS subscriptions_expires_at_idx ON presence.subscriptions (expires_at) WHERE expires_at IS NOT NULL;

COMMENT ON TABLE  presence.subscriptions IS 'Who receives presence updates of whom: fan-out of a status change goes to the subscribers of target_user_id.';
COMMENT ON COLUMN presence.subscriptions.subscription_type IS 'contact (standing, from the contact list), conversation (while both are in conversation_id) or temporary (e.g. profile open; requires expires_at).';
COMMENT ON COLUMN presence.subscriptions.conversation_id IS 'Set exactly for conversation subscriptions.';
COMMENT ON COLUMN presence.subscriptions.expires_at IS 'When the subscription lapses; required for temporary ones, NULL = no expiry.';

CREATE TABLE IF NOT EXISTS presence.status_history (
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    user_id     uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    old_status  text,
    new_status  text        NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    device_id   text,
    source      text        NOT NULL DEFAULT 'client',
    CONSTRAINT status_history_pkey PRIMARY KEY (id),
    CONSTRAINT status_history_old_status_check
        CHECK (old_status IN ('online', 'away', 'busy', 'offline')),
    CONSTRAINT status_history_new_status_check
        CHECK (new_status IN ('online', 'away', 'busy', 'offline')),
    CONSTRAINT status_history_change_check CHECK (old_status IS DISTINCT FROM new_status),
    CONSTRAINT status_history_source_check
        CHECK (source IN ('client', 'heartbeat_timeout', 'system'))
);

CREATE INDEX IF NOT EXISTS status_history_user_id_idx ON presence.status_history (user_id, changed_at);

COMMENT ON TABLE  presence.status_history IS 'Append-only log of presence status changes (one row per actual change), written by the presence functions.';
COMMENT ON COLUMN presence.status_history.old_status IS 'Status before the change; NULL for the user''s first status.';
COMMENT ON COLUMN presence.status_history.device_id IS 'Device that caused the change (for timeouts: the last-heard-from device among the connections that timed out).';
COMMENT ON COLUMN presence.status_history.source IS 'client (explicit update), heartbeat_timeout (presence.cleanup_stale_connections()) or system.';


-- -----------------------------------------------------------------------------
-- Triggers
-- -----------------------------------------------------------------------------

-- updated_at maintenance with the shared function of 000001.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT n.nspname, c.relname
          FROM pg_catalog.pg_class     c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
         WHERE n.nspname = 'presence'
           AND c.relkind = 'r'
           AND a.attname = 'updated_at'
           AND NOT a.attisdropped
           AND NOT EXISTS (SELECT 1
                             FROM pg_catalog.pg_trigger t
                            WHERE t.tgrelid = c.oid
                              AND t.tgname  = 'set_updated_at')
         ORDER BY c.relname
    LOOP
        EXECUTE format('CREATE TRIGGER set_updated_at BEFORE UPDATE ON %I.%I '
                       'FOR EACH ROW EXECUTE FUNCTION auth.set_updated_at()',
                       r.nspname, r.relname);
    END LOOP;
END
$$;

-- device_count maintenance.  Statement-level with transition tables, so a
-- bulk change (e.g. the stale-connection sweep) recounts each user once, and
-- heartbeats (which do not change liveness) never write user_status.
CREATE OR REPLACE FUNCTION presence.sync_device_count()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_users uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT n.user_id)
          INTO v_users
          FROM new_rows n
         WHERE n.disconnected_at IS NULL;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT o.user_id)
          INTO v_users
          FROM old_rows o
         WHERE o.disconnected_at IS NULL;
    ELSE
        SELECT array_agg(DISTINCT u.user_id)
          INTO v_users
          FROM old_rows o
          JOIN new_rows n ON n.id = o.id
         CROSS JOIN LATERAL (VALUES (o.user_id), (n.user_id)) AS u (user_id)
         WHERE o.disconnected_at IS DISTINCT FROM n.disconnected_at
            OR o.user_id <> n.user_id;
    END IF;

    IF v_users IS NULL THEN
        RETURN NULL;
    END IF;

    -- Lock the affected status rows in a fixed order first; the recount below
    -- is a new statement, so (in READ COMMITTED) it sees connections committed
    -- by transactions that held those locks before us.
    PERFORM 1
       FROM presence.user_status s
      WHERE s.user_id = ANY (v_users)
      ORDER BY s.user_id
        FOR NO KEY UPDATE;

    UPDATE presence.user_status s
       SET device_count = live.n
      FROM (SELECT u.user_id,
                   (SELECT count(*)::integer
                      FROM presence.connections c
                     WHERE c.user_id = u.user_id
                       AND c.disconnected_at IS NULL) AS n
              FROM unnest(v_users) AS u (user_id)) AS live
     WHERE s.user_id = live.user_id
       AND s.device_count <> live.n;

    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION presence.sync_device_count() IS
    'AFTER statement trigger on presence.connections: recounts live connections of the users whose connections were added, removed or changed liveness, and stores it in presence.user_status.device_count (users without a status row are skipped).';

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                    WHERE tgrelid = 'presence.connections'::regclass
                      AND tgname  = 'sync_device_count_on_insert') THEN
        CREATE TRIGGER sync_device_count_on_insert
            AFTER INSERT ON presence.connections
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION presence.sync_device_count();
    END IF;

    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                    WHERE tgrelid = 'presence.connections'::regclass
                      AND tgname  = 'sync_device_count_on_update') THEN
        CREATE TRIGGER sync_device_count_on_update
            AFTER UPDATE ON presence.connections
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION presence.sync_device_count();
    END IF;

    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                    WHERE tgrelid = 'presence.connections'::regclass
                      AND tgname  = 'sync_device_count_on_delete') THEN
        CREATE TRIGGER sync_device_count_on_delete
            AFTER DELETE ON presence.connections
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION presence.sync_device_count();
    END IF;
END
$$;


-- -----------------------------------------------------------------------------
-- Functions
-- -----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION presence.update_user_status(
    p_user_id   uuid,
    p_status    text,
    p_device_id text DEFAULT NULL
)
RETURNS presence.user_status
LANGUAGE plpgsql
AS $$
DECLARE
    c_valid_statuses CONSTANT text[] := ARRAY['online', 'away', 'busy', 'offline'];
    v_old_status     text;
    v_row            presence.user_status;
BEGIN
    IF p_user_id IS NULL THEN
        RAISE EXCEPTION 'user id must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;

    IF p_status IS NULL OR NOT (p_status = ANY (c_valid_statuses)) THEN
        RAISE EXCEPTION 'invalid presence status: %', COALESCE(quote_literal(p_status), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT    = 'Valid statuses are: ' || array_to_string(c_valid_statuses, ', ') || '.';
    END IF;

    -- First status of this user: create the row; that counts as a change
    -- from NULL.  ON CONFLICT makes concurrent first calls safe.
    INSERT INTO presence.user_status AS s (user_id, status, device_count, last_seen_at)
    VALUES (p_user_id,
            p_status,
            (SELECT count(*)
               FROM presence.connections c
              WHERE c.user_id = p_user_id
                AND c.disconnected_at IS NULL),
            now())
    ON CONFLICT (user_id) DO NOTHING
    RETURNING s.* INTO v_row;

    IF FOUND THEN
        INSERT INTO presence.status_history (user_id, old_status, new_status, device_id, source)
        VALUES (p_user_id, NULL, p_status, p_device_id, 'client');
        RETURN v_row;
    END IF;

    -- Existing row: lock it, so concurrent updates of one user serialise and
    -- each compares against the status the previous one left.
    SELECT s.status
      INTO v_old_status
      FROM presence.user_status s
     WHERE s.user_id = p_user_id
       FOR NO KEY UPDATE;

    UPDATE presence.user_status s
       SET status       = p_status,
           last_seen_at = now()
     WHERE s.user_id = p_user_id
    RETURNING s.* INTO v_row;

    IF v_old_status IS DISTINCT FROM p_status THEN
        INSERT INTO presence.status_history (user_id, old_status, new_status, device_id, source)
        VALUES (p_user_id, v_old_status, p_status, p_device_id, 'client');
    END IF;

    RETURN v_row;
END;
$$;

COMMENT ON FUNCTION presence.update_user_status(uuid, text, text) IS
    'Sets the presence status of a user (online, away, busy, offline), creating the user_status row on first use, and refreshes last_seen_at. Writes presence.status_history only when the status actually changes (the first status counts as a change from NULL). Returns the resulting presence.user_status row. An unknown status raises SQLSTATE 22023 (invalid_parameter_value) with a hint listing the valid values; an unknown user raises 23503 (foreign_key_violation).';

CREATE OR REPLACE FUNCTION presence.set_typing(
    p_conversation_id uuid,
    p_user_id         uuid
)
RETURNS presence.typing_indicators
LANGUAGE plpgsql
AS $$
DECLARE
    v_row presence.typing_indicators;
BEGIN
    IF NOT EXISTS (SELECT 1
                     FROM messages.conversation_participants p
                    WHERE p.conversation_id = p_conversation_id
                      AND p.user_id         = p_user_id
                      AND p.left_at IS NULL) THEN
        RAISE EXCEPTION 'user % is not a current participant of conversation %',
                        p_user_id, p_conversation_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    INSERT INTO presence.typing_indicators AS t (conversation_id, user_id, started_at, expires_at)
    VALUES (p_conversation_id, p_user_id, now(), now() + interval '10 seconds')
    ON CONFLICT (conversation_id, user_id) DO UPDATE
       SET started_at = CASE WHEN t.expires_at <= now() THEN now() ELSE t.started_at END,
           expires_at = EXCLUDED.expires_at
    RETURNING t.* INTO v_row;

    RETURN v_row;
END;
$$;

COMMENT ON FUNCTION presence.set_typing(uuid, uuid) IS
    'Marks a user as typing in a conversation, or refreshes the indicator: expires_at becomes now() + 10 seconds. A new burst (previous indicator already expired) restarts started_at. Raises 22023 if the user is not a current participant. Returns the typing_indicators row.';

CREATE OR REPLACE FUNCTION presence.clear_typing(
    p_conversation_id uuid,
    p_user_id         uuid
)
RETURNS boolean
LANGUAGE plpgsql
AS $$
BEGIN
    DELETE FROM presence.typing_indicators t
     WHERE t.conversation_id = p_conversation_id
       AND t.user_id         = p_user_id;
    RETURN FOUND;
END;
$$;

COMMENT ON FUNCTION presence.clear_typing(uuid, uuid) IS
    'Removes the typing indicator of a user in a conversation (stopped typing or sent the message). Returns true if there was one.';

CREATE OR REPLACE FUNCTION presence.cleanup_expired_typing()
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_deleted integer;
BEGIN
    DELETE FROM presence.typing_indicators t
     WHERE t.expires_at <= now();
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$$;

COMMENT ON FUNCTION presence.cleanup_expired_typing() IS
    'Deletes typing indicators whose expires_at has passed (expires_at <= now()). Returns the number deleted. Meant to run every few seconds.';

CREATE OR REPLACE FUNCTION presence.cleanup_stale_connections()
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_marked      integer;
    v_users       uuid[];
    v_user_id     uuid;
    v_old_status  text;
    v_device_id   text;
    v_last_beat   timestamptz;
BEGIN
    -- 1. Declare dead every live connection silent for more than 30 seconds.
    --    The triggers on connections bring device_count up to date at the end
    --    of this statement.
    WITH stale AS (
        UPDATE presence.connections c
           SET disconnected_at   = now(),
               disconnect_reason = 'heartbeat_timeout'
         WHERE c.disconnected_at IS NULL
           AND c.last_heartbeat_at < now() - interval '30 seconds'
        RETURNING c.user_id
    )
    SELECT count(*)::integer, array_agg(DISTINCT stale.user_id)
      INTO v_marked, v_users
      FROM stale;

    IF v_marked = 0 THEN
        RETURN 0;
    END IF;

    -- 2. Users left without any live connection go offline.
    FOR v_user_id IN
        SELECT u.user_id FROM unnest(v_users) AS u (user_id) ORDER BY u.user_id
    LOOP
        SELECT s.status
          INTO v_old_status
          FROM presence.user_status s
         WHERE s.user_id = v_user_id
           FOR NO KEY UPDATE;

        CONTINUE WHEN NOT FOUND OR v_old_status = 'offline';
        CONTINUE WHEN EXISTS (SELECT 1
                                FROM presence.connections c
                               WHERE c.user_id = v_user_id
                                 AND c.disconnected_at IS NULL);

        -- The device recorded is the one among the connections timed out by
        -- this sweep that was heard from last; last_seen_at is the newest
        -- heartbeat of any of the user's connections.
        SELECT c.device_id
          INTO v_device_id
          FROM presence.connections c
         WHERE c.user_id = v_user_id
           AND c.disconnect_reason = 'heartbeat_timeout'
           AND c.disconnected_at = now()
         ORDER BY c.last_heartbeat_at DESC
         LIMIT 1;

        SELECT max(c.last_heartbeat_at)
          INTO v_last_beat
          FROM presence.connections c
         WHERE c.user_id = v_user_id;

        UPDATE presence.user_status s
           SET status       = 'offline',
               device_count = 0,
               last_seen_at = GREATEST(s.last_seen_at, v_last_beat)
         WHERE s.user_id = v_user_id;

        INSERT INTO presence.status_history (user_id, old_status, new_status, device_id, source)
        VALUES (v_user_id, v_old_status, 'offline', v_device_id, 'heartbeat_timeout');
    END LOOP;

    RETURN v_marked;
END;
$$;

COMMENT ON FUNCTION presence.cleanup_stale_connections() IS
    'Marks live connections whose last heartbeat is more than 30 seconds old as disconnected (reason heartbeat_timeout); every user left with no live connection and not already offline is set offline (status_history source heartbeat_timeout, device_count 0, last_seen_at = last heartbeat). Returns the number of connections marked. Meant to run every few seconds.';


-- -----------------------------------------------------------------------------
-- Record the migration (keeps tracking right when applied by hand with psql).
-- -----------------------------------------------------------------------------

INSERT INTO public.schema_migrations (version, description, applied_at, applied_by)
VALUES (2, 'add_presence_schema', now(), current_user)
ON CONFLICT (version) DO NOTHING;
