-- =============================================================================
-- 000003_presence_service (up)
--
-- Fits the presence schema to the statements the realtime gateway sends
-- (the design guide's TrackConnection and SetTyping) and makes it safe under
-- the gateway's concurrency:
--
--   * typing_indicators: device_id added, updated_at renamed last_updated_at
--     (the names SetTyping writes); the expires_at index dropped so a
--     refresh is a HOT update; fillfactor 70.
--   * connections: the heartbeat index dropped so a heartbeat is a HOT
--     update; fillfactor 80.  A heartbeat on a connection the sweep timed
--     out brings it back (trigger revive_connection), and gives the user
--     back the status the timeout took (trigger restore_status_on_revive).
--   * user_status.device_count is no longer stored: the statement-level
--     triggers that kept it locked the status rows of other users and
--     deadlocked, and it drifted when a connection and a first status
--     arrived together.  presence.user_presence derives it when read.
--   * cleanup_stale_connections() never waits for a lock (SKIP LOCKED), and
--     also ends the presence of users left without a live connection after
--     a 30 second grace period (a clean disconnect, or a status set without
--     any connection).
--   * set_typing() takes the device; subscriptions get a real UNIQUE NULLS
--     NOT DISTINCT constraint on their natural key, so ON CONFLICT can name it.
--
-- Requires 000002.  Idempotent (every change guarded); no BEGIN/COMMIT (the
-- runner wraps the file in a transaction; with psql use -1).
-- =============================================================================


-- -----------------------------------------------------------------------------
-- typing_indicators: the guide's column names, HOT refreshes
-- -----------------------------------------------------------------------------

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                WHERE attrelid = 'presence.typing_indicators'::regclass
                  AND attname  = 'updated_at' AND NOT attisdropped) THEN
        DROP TRIGGER IF EXISTS set_updated_at ON presence.typing_indicators;
        ALTER TABLE presence.typing_indicators RENAME COLUMN updated_at TO last_updated_at;
    END IF;
END
$$;

ALTER TABLE presence.typing_indicators ADD COLUMN IF NOT EXISTS device_id text;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                    WHERE conrelid = 'presence.typing_indicators'::regclass
                      AND conname  = 'typing_indicators_device_id_length_check') THEN
        ALTER TABLE presence.typing_indicators
            ADD CONSTRAINT typing_indicators_device_id_length_check CHECK (char_length(device_id) <= 128);
    END IF;
END
$$;

-- A refresh rewrites expires_at; with no index on it the update stays on its
-- page (HOT).  The table holds only the indicators of the last seconds, so
-- the expiry sweep reads it whole; readers go through the primary key.
DROP INDEX IF EXISTS presence.typing_indicators_expires_at_idx;
ALTER TABLE presence.typing_indicators SET (fillfactor = 70);

COMMENT ON TABLE  presence.typing_indicators IS 'Who is typing where right now; one row per (conversation_id, user_id) (the primary key). Refreshed by presence.set_typing() or the gateway''s upsert, removed by presence.clear_typing() or, once expired, by presence.cleanup_expired_typing(). Only participants can type (composite FK). No index besides the primary key, so a refresh is a HOT update.';
COMMENT ON COLUMN presence.typing_indicators.last_updated_at IS 'Last refresh (keystroke batch) from the client.';
COMMENT ON COLUMN presence.typing_indicators.device_id IS 'Device the user is typing on (at most 128 characters).';


-- -----------------------------------------------------------------------------
-- connections: HOT heartbeats, a late heartbeat revives a timed-out connection
-- -----------------------------------------------------------------------------

-- The sweep finds silent connections among the live ones through
-- connections_live_user_id_idx; an index on last_heartbeat_at would make
-- every heartbeat rewrite every index of the table.
DROP INDEX IF EXISTS presence.connections_live_heartbeat_idx;
ALTER TABLE presence.connections SET (fillfactor = 80);

CREATE OR REPLACE FUNCTION presence.revive_connection()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.disconnected_at   := NULL;
    NEW.disconnect_reason := NULL;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION presence.revive_connection() IS
    'BEFORE UPDATE OF last_heartbeat_at trigger on presence.connections, fired only for a connection that presence.cleanup_stale_connections() timed out and that now sends a newer heartbeat: the connection is live again (disconnected_at and disconnect_reason cleared). Connections closed for any other reason stay closed.';

CREATE OR REPLACE FUNCTION presence.restore_status_on_revive()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_previous  text;
    v_source    text;
BEGIN
    -- Only while the user is still offline because of a timeout; never wait:
    -- a status row locked by another transaction is being set right now.
    PERFORM 1
       FROM presence.user_status s
      WHERE s.user_id = NEW.user_id
        AND s.status  = 'offline'
        FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    SELECT h.old_status, h.source
      INTO v_previous, v_source
      FROM presence.status_history h
     WHERE h.user_id = NEW.user_id
     ORDER BY h.changed_at DESC, h.id DESC
     LIMIT 1;

    IF v_source IS DISTINCT FROM 'heartbeat_timeout' OR v_previous IS NULL THEN
        RETURN NULL;
    END IF;

    UPDATE presence.user_status s
       SET status       = v_previous,
           last_seen_at = now()
     WHERE s.user_id = NEW.user_id;

    INSERT INTO presence.status_history (user_id, old_status, new_status, device_id, source)
    VALUES (NEW.user_id, 'offline', v_previous, NEW.device_id, 'system');

    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION presence.restore_status_on_revive() IS
    'AFTER UPDATE trigger on presence.connections for a connection that came back to life: if its user is offline because of a heartbeat timeout (the latest status_history row), the status before the timeout is restored (history source system). Skips, without waiting, a status row another transaction holds.';

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                    WHERE tgrelid = 'presence.connections'::regclass
                      AND tgname  = 'revive_connection') THEN
        CREATE TRIGGER revive_connection
            BEFORE UPDATE OF last_heartbeat_at ON presence.connections
            FOR EACH ROW
            WHEN (OLD.disconnect_reason = 'heartbeat_timeout'
                  AND NEW.disconnect_reason IS NOT DISTINCT FROM OLD.disconnect_reason
                  AND NEW.last_heartbeat_at > OLD.last_heartbeat_at)
            EXECUTE FUNCTION presence.revive_connection();
    END IF;

    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                    WHERE tgrelid = 'presence.connections'::regclass
                      AND tgname  = 'restore_status_on_revive') THEN
        CREATE TRIGGER restore_status_on_revive
            AFTER UPDATE OF last_heartbeat_at ON presence.connections
            FOR EACH ROW
            WHEN (OLD.disconnected_at IS NOT NULL AND NEW.disconnected_at IS NULL)
            EXECUTE FUNCTION presence.restore_status_on_revive();
    END IF;
END
$$;

COMMENT ON TABLE  presence.connections IS 'Realtime (WebSocket) connections of user devices. A connection is live while disconnected_at IS NULL; closed rows are kept briefly for diagnostics and purged by a retention job. A heartbeat updates no indexed column (HOT update); a heartbeat after a timeout makes the connection live again.';
COMMENT ON COLUMN presence.connections.last_heartbeat_at IS 'Last heartbeat (ping) received; a live connection silent for more than 30 seconds is stale (presence.cleanup_stale_connections()). A newer heartbeat on a timed-out connection revives it. Not indexed, so heartbeats are HOT updates.';


-- -----------------------------------------------------------------------------
-- device_count: derived when read, no longer stored
-- -----------------------------------------------------------------------------

DROP TRIGGER IF EXISTS sync_device_count_on_insert ON presence.connections;
DROP TRIGGER IF EXISTS sync_device_count_on_update ON presence.connections;
DROP TRIGGER IF EXISTS sync_device_count_on_delete ON presence.connections;
DROP FUNCTION IF EXISTS presence.sync_device_count();
ALTER TABLE presence.user_status DROP COLUMN IF EXISTS device_count;

-- The sweep's candidates: users shown as present.  status is in the
-- predicate, so only an actual change of presence leaves the HOT path.
CREATE INDEX IF NOT EXISTS user_status_present_idx ON presence.user_status (user_id) WHERE status <> 'offline';

CREATE OR REPLACE VIEW presence.user_presence AS
SELECT s.user_id,
       s.status,
       s.custom_message,
       s.custom_emoji,
       s.custom_until,
       s.visibility,
       (SELECT count(*)::integer
          FROM presence.connections c
         WHERE c.user_id = s.user_id
           AND c.disconnected_at IS NULL) AS device_count,
       s.last_seen_at,
       s.updated_at
  FROM presence.user_status s;

COMMENT ON VIEW presence.user_presence IS 'presence.user_status with device_count, the number of live connections, counted when read (through connections_live_user_id_idx); always consistent, and writing a connection never locks a status row.';
COMMENT ON COLUMN presence.user_presence.device_count IS 'Live connections of the user (presence.connections with disconnected_at IS NULL), counted when read.';
COMMENT ON TABLE  presence.user_status IS 'Current presence of each user (one row, created on first status update). Change status through presence.update_user_status() so that status_history stays complete. Read it with device_count through presence.user_presence.';
COMMENT ON COLUMN presence.user_status.last_seen_at IS 'Last time the user was known to be active: set by every status update and, when presence ends for lack of a connection, to the newest heartbeat of the user''s connections.';
COMMENT ON COLUMN presence.user_status.updated_at IS 'Last change of the row; the sweep leaves a status alone for 30 seconds after it was set.';


-- -----------------------------------------------------------------------------
-- subscriptions: the natural key as a constraint (ON CONFLICT can name it)
-- -----------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                    WHERE conrelid = 'presence.subscriptions'::regclass
                      AND conname  = 'subscriptions_subscriber_target_key') THEN
        DROP INDEX IF EXISTS presence.subscriptions_subscriber_target_key;
        ALTER TABLE presence.subscriptions
            ADD CONSTRAINT subscriptions_subscriber_target_key
            UNIQUE NULLS NOT DISTINCT (subscriber_id, target_user_id, subscription_type, conversation_id);
    END IF;
END
$$;

COMMENT ON CONSTRAINT subscriptions_subscriber_target_key ON presence.subscriptions IS
    'One subscription per subscriber, target, type and conversation; NULL conversations are equal (NULLS NOT DISTINCT), so upsert with ON CONFLICT (subscriber_id, target_user_id, subscription_type, conversation_id).';


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
    INSERT INTO presence.user_status AS s (user_id, status, last_seen_at)
    VALUES (p_user_id, p_status, now())
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
    'Sets the presence status of a user (online, away, busy, offline), creating the user_status row on first use, and refreshes last_seen_at. Writes presence.status_history only when the status actually changes (the first status counts as a change from NULL). Locks only this user''s status row. Returns the resulting presence.user_status row. An unknown status raises SQLSTATE 22023 (invalid_parameter_value) with a hint listing the valid values; an unknown user raises 23503 (foreign_key_violation).';

DROP FUNCTION IF EXISTS presence.set_typing(uuid, uuid);

CREATE OR REPLACE FUNCTION presence.set_typing(
    p_conversation_id uuid,
    p_user_id         uuid,
    p_device_id       text DEFAULT NULL
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

    INSERT INTO presence.typing_indicators AS t
           (conversation_id, user_id, device_id, started_at, last_updated_at, expires_at)
    VALUES (p_conversation_id, p_user_id, p_device_id, now(), now(), now() + interval '10 seconds')
    ON CONFLICT (conversation_id, user_id) DO UPDATE
       SET started_at      = CASE WHEN t.expires_at <= now() THEN now() ELSE t.started_at END,
           device_id       = COALESCE(EXCLUDED.device_id, t.device_id),
           last_updated_at = EXCLUDED.last_updated_at,
           expires_at      = EXCLUDED.expires_at
    RETURNING t.* INTO v_row;

    RETURN v_row;
END;
$$;

COMMENT ON FUNCTION presence.set_typing(uuid, uuid, text) IS
    'Marks a user as typing in a conversation (on a device, if given), or refreshes the indicator: expires_at becomes now() + 10 seconds. A new burst (previous indicator already expired) restarts started_at. Raises 22023 if the user is not a current participant. Returns the typing_indicators row. A refresh is a HOT update.';

CREATE OR REPLACE FUNCTION presence.cleanup_stale_connections()
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    c_timeout CONSTANT interval := interval '30 seconds';
    c_grace   CONSTANT interval := interval '30 seconds';
    v_marked  integer;
BEGIN
    -- 1. Declare dead every live connection silent for more than 30 seconds.
    --    A connection whose row another transaction holds (a heartbeat in
    --    flight) is skipped, not waited for: the sweep never blocks.
    UPDATE presence.connections c
       SET disconnected_at   = now(),
           disconnect_reason = 'heartbeat_timeout'
     WHERE c.id IN (SELECT l.id
                      FROM presence.connections l
                     WHERE l.disconnected_at IS NULL
                       AND l.last_heartbeat_at < now() - c_timeout
                       FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS v_marked = ROW_COUNT;

    -- 2. End the presence of users shown as present without a live connection:
    --    their connections timed out, or closed cleanly more than the grace
    --    period ago, or they never connected; a status set within the grace
    --    period is left alone (it may precede the first connection).  Status
    --    rows held by other transactions are skipped, not waited for.
    WITH gone AS (
        SELECT s.user_id, s.status AS old_status
          FROM presence.user_status s
         WHERE s.status <> 'offline'
           AND s.updated_at <= now() - c_grace
           AND NOT EXISTS (SELECT 1
                             FROM presence.connections c
                            WHERE c.user_id = s.user_id
                              AND (c.disconnected_at IS NULL
                                   OR (c.disconnected_at > now() - c_grace
                                       AND c.disconnect_reason IS DISTINCT FROM 'heartbeat_timeout')))
         ORDER BY s.user_id
           FOR NO KEY UPDATE OF s SKIP LOCKED
    ), last_conn AS (
        -- The connection that ended last (for a timeout, the one heard from
        -- last) and the newest heartbeat of any of the user's connections.
        SELECT g.user_id, g.old_status, l.device_id, l.disconnect_reason, b.last_beat
          FROM gone g
          LEFT JOIN LATERAL (SELECT c.device_id, c.disconnect_reason
                               FROM presence.connections c
                              WHERE c.user_id = g.user_id
                              ORDER BY c.disconnected_at DESC NULLS LAST, c.last_heartbeat_at DESC
                              LIMIT 1) l ON true
          LEFT JOIN LATERAL (SELECT max(c.last_heartbeat_at) AS last_beat
                               FROM presence.connections c
                              WHERE c.user_id = g.user_id) b ON true
    ), ended AS (
        UPDATE presence.user_status s
           SET status       = 'offline',
               last_seen_at = GREATEST(s.last_seen_at, lc.last_beat)
          FROM last_conn lc
         WHERE s.user_id = lc.user_id
        RETURNING s.user_id
    )
    INSERT INTO presence.status_history (user_id, old_status, new_status, device_id, source)
    SELECT lc.user_id, lc.old_status, 'offline', lc.device_id,
           CASE WHEN lc.disconnect_reason = 'heartbeat_timeout' THEN 'heartbeat_timeout' ELSE 'system' END
      FROM last_conn lc
      JOIN ended e ON e.user_id = lc.user_id
     ORDER BY lc.user_id;

    RETURN v_marked;
END;
$$;

COMMENT ON FUNCTION presence.cleanup_stale_connections() IS
    'Marks live connections whose last heartbeat is more than 30 seconds old as disconnected (reason heartbeat_timeout), then sets offline every user who is not offline, has no live connection, closed none cleanly in the last 30 seconds and set no status in the last 30 seconds (status_history source heartbeat_timeout when the last connection timed out, else system; last_seen_at = newest heartbeat). Skips rows other transactions hold instead of waiting, so it never blocks or deadlocks the gateway. Returns the number of connections marked. Meant to run every few seconds.';


-- -----------------------------------------------------------------------------
-- Record the migration (keeps tracking right when applied by hand with psql).
-- -----------------------------------------------------------------------------

INSERT INTO public.schema_migrations (version, description, applied_at, applied_by)
VALUES (3, 'presence_service', now(), current_user)
ON CONFLICT (version) DO NOTHING;
