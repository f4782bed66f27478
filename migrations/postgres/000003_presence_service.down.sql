-- =============================================================================
-- 000003_presence_service (down)
--
-- Restores the presence schema of 000002: the stored device_count (column in
-- its old place, recounted from the live connections, kept by the statement
-- triggers again), typing_indicators.updated_at without device_id, the
-- expires_at and heartbeat indexes, the expression index of subscriptions,
-- the default fillfactor, and the functions and comments of 000002.
-- user_status is rebuilt so that its columns are in their old order.
-- Data in typing_indicators.device_id is dropped with the column.
-- No BEGIN/COMMIT: the migration runner wraps the file in a transaction.
-- =============================================================================

DROP VIEW IF EXISTS presence.user_presence;
DROP TRIGGER IF EXISTS restore_status_on_revive ON presence.connections;
DROP TRIGGER IF EXISTS revive_connection ON presence.connections;
DROP FUNCTION IF EXISTS presence.restore_status_on_revive();
DROP FUNCTION IF EXISTS presence.revive_connection();
DROP FUNCTION IF EXISTS presence.set_typing(uuid, uuid, text);
DROP INDEX IF EXISTS presence.user_status_present_idx;


-- -----------------------------------------------------------------------------
-- user_status with device_count in its place (a rebuild: a column added back
-- would come last)
-- -----------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                    WHERE attrelid = 'presence.user_status'::regclass
                      AND attname  = 'device_count' AND NOT attisdropped) THEN
        DROP FUNCTION IF EXISTS presence.update_user_status(uuid, text, text);
        ALTER TABLE presence.user_status RENAME TO user_status_000003;
        ALTER TABLE presence.user_status_000003 RENAME CONSTRAINT user_status_pkey TO user_status_000003_pkey;

        CREATE TABLE presence.user_status (
            user_id         uuid        NOT NULL,
            status          text        NOT NULL DEFAULT 'offline',
            custom_message  text,
            custom_emoji    text,
            custom_until    timestamptz,
            visibility      text        NOT NULL DEFAULT 'everyone',
            device_count    integer     NOT NULL DEFAULT 0,
            last_seen_at    timestamptz,
            updated_at      timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT user_status_pkey PRIMARY KEY (user_id),
            CONSTRAINT user_status_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users (id) ON DELETE CASCADE,
            CONSTRAINT user_status_status_check CHECK (status IN ('online', 'away', 'busy', 'offline')),
            CONSTRAINT user_status_visibility_check CHECK (visibility IN ('everyone', 'contacts', 'nobody')),
            CONSTRAINT user_status_custom_message_check CHECK (char_length(custom_message) <= 140),
            CONSTRAINT user_status_custom_emoji_check CHECK (char_length(custom_emoji) BETWEEN 1 AND 32),
            CONSTRAINT user_status_device_count_check CHECK (device_count >= 0)
        );

        INSERT INTO presence.user_status (user_id, status, custom_message, custom_emoji, custom_until,
                                          visibility, device_count, last_seen_at, updated_at)
        SELECT s.user_id, s.status, s.custom_message, s.custom_emoji, s.custom_until, s.visibility,
               (SELECT count(*)
                  FROM presence.connections c
                 WHERE c.user_id = s.user_id
                   AND c.disconnected_at IS NULL),
               s.last_seen_at, s.updated_at
          FROM presence.user_status_000003 s;

        DROP TABLE presence.user_status_000003;

        CREATE TRIGGER set_updated_at BEFORE UPDATE ON presence.user_status
            FOR EACH ROW EXECUTE FUNCTION auth.set_updated_at();
    END IF;
END
$$;

COMMENT ON TABLE  presence.user_status IS 'Current presence of each user (one row, created on first status update). Change status through presence.update_user_status() so that status_history stays complete.';
COMMENT ON COLUMN presence.user_status.status IS 'online, away, busy or offline.';
COMMENT ON COLUMN presence.user_status.custom_message IS 'User-set status text ("In a meeting"), at most 140 characters.';
COMMENT ON COLUMN presence.user_status.custom_emoji IS 'Emoji shown with the custom status.';
COMMENT ON COLUMN presence.user_status.custom_until IS 'When the custom message/emoji should be cleared; NULL = until changed.';
COMMENT ON COLUMN presence.user_status.visibility IS 'Who may see this presence: everyone, contacts or nobody (others see offline).';
COMMENT ON COLUMN presence.user_status.device_count IS 'Number of live connections (presence.connections with disconnected_at IS NULL); maintained by triggers on presence.connections.';
COMMENT ON COLUMN presence.user_status.last_seen_at IS 'Last time the user was known to be active: set by every status update and, when a connection times out, to its last heartbeat.';


-- -----------------------------------------------------------------------------
-- typing_indicators and connections as 000002 left them
-- -----------------------------------------------------------------------------

ALTER TABLE presence.typing_indicators DROP COLUMN IF EXISTS device_id;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                WHERE attrelid = 'presence.typing_indicators'::regclass
                  AND attname  = 'last_updated_at' AND NOT attisdropped) THEN
        ALTER TABLE presence.typing_indicators RENAME COLUMN last_updated_at TO updated_at;
        CREATE TRIGGER set_updated_at BEFORE UPDATE ON presence.typing_indicators
            FOR EACH ROW EXECUTE FUNCTION auth.set_updated_at();
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS typing_indicators_expires_at_idx ON presence.typing_indicators (expires_at);
ALTER TABLE presence.typing_indicators RESET (fillfactor);

COMMENT ON TABLE  presence.typing_indicators IS 'Who is typing where right now; one row per (conversation_id, user_id) (the primary key). Refreshed by presence.set_typing(), removed by presence.clear_typing() or, once expired, by presence.cleanup_expired_typing(). Only participants can type (composite FK).';
COMMENT ON COLUMN presence.typing_indicators.started_at IS 'Start of the current typing burst (kept across refreshes).';
COMMENT ON COLUMN presence.typing_indicators.updated_at IS 'Last refresh (keystroke batch) from the client.';
COMMENT ON COLUMN presence.typing_indicators.expires_at IS 'Ten seconds after the last update; readers must ignore rows with expires_at <= now().';

CREATE INDEX IF NOT EXISTS connections_live_heartbeat_idx ON presence.connections (last_heartbeat_at) WHERE disconnected_at IS NULL;
ALTER TABLE presence.connections RESET (fillfactor);

COMMENT ON TABLE  presence.connections IS 'Realtime (WebSocket) connections of user devices. A connection is live while disconnected_at IS NULL; closed rows are kept briefly for diagnostics and purged by a retention job.';
COMMENT ON COLUMN presence.connections.last_heartbeat_at IS 'Last heartbeat (ping) received; a live connection silent for more than 30 seconds is stale (presence.cleanup_stale_connections()).';


-- -----------------------------------------------------------------------------
-- subscriptions: the expression index of 000002
-- -----------------------------------------------------------------------------

ALTER TABLE presence.subscriptions DROP CONSTRAINT IF EXISTS subscriptions_subscriber_target_key;

-- One subscription per subscriber, target, type and conversation (NULL
-- conversation folded to the nil UUID: NULLS NOT DISTINCT needs PG15).
CREATE UNIQUE INDEX IF NOT EXISTS subscriptions_subscriber_target_key
    ON presence.subscriptions (subscriber_id, target_user_id, subscription_type,
                               COALESCE(conversation_id, '00000000-0000-0000-0000-000000000000'::uuid));


-- -----------------------------------------------------------------------------
-- device_count triggers and the functions of 000002
-- -----------------------------------------------------------------------------

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


DELETE FROM public.schema_migrations WHERE version = 3;
