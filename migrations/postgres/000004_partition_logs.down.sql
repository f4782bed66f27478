-- =============================================================================
-- 000004_partition_logs (down)
--
-- analytics.events and presence.status_history become plain tables again,
-- exactly as 000001 and 000002 define them, with every row (ids kept, the
-- identity sequences continuing where they were); the partitions and
-- analytics.create_monthly_partitions() are dropped.
-- No BEGIN/COMMIT: the migration runner wraps the file in a transaction.
-- =============================================================================

DO $$
BEGIN
    IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = 'analytics.events'::regclass) = 'p' THEN
        ALTER TABLE analytics.events RENAME TO events_partitioned;
        ALTER TABLE analytics.events_partitioned RENAME CONSTRAINT events_pkey TO events_partitioned_pkey;
        ALTER INDEX analytics.events_session_id_idx RENAME TO events_partitioned_session_id_idx;
        ALTER INDEX analytics.events_user_id_idx RENAME TO events_partitioned_user_id_idx;
        ALTER INDEX analytics.events_name_occurred_at_idx RENAME TO events_partitioned_name_occurred_at_idx;
        ALTER INDEX analytics.events_received_at_brin_idx RENAME TO events_partitioned_received_at_brin_idx;
        ALTER SEQUENCE analytics.events_id_seq RENAME TO events_partitioned_id_seq;

        CREATE TABLE analytics.events (
            id           bigint      GENERATED ALWAYS AS IDENTITY,
            session_id   uuid,
            user_id      uuid,
            name         text        NOT NULL,
            properties   jsonb       NOT NULL DEFAULT '{}',
            occurred_at  timestamptz NOT NULL,
            received_at  timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT events_pkey PRIMARY KEY (id),
            CONSTRAINT events_session_id_fkey FOREIGN KEY (session_id)
                REFERENCES analytics.user_sessions (id) ON DELETE SET NULL,
            CONSTRAINT events_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users (id) ON DELETE SET NULL,
            CONSTRAINT events_name_check CHECK (name ~ '^[a-z][a-z0-9_.]{0,99}$'),
            CONSTRAINT events_properties_check CHECK (jsonb_typeof(properties) = 'object')
        );

        INSERT INTO analytics.events OVERRIDING SYSTEM VALUE
        SELECT * FROM analytics.events_partitioned ORDER BY id;
        PERFORM setval('analytics.events_id_seq', s.last_value, s.is_called)
           FROM analytics.events_partitioned_id_seq s;

        DROP TABLE analytics.events_partitioned;
    END IF;

    IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = 'presence.status_history'::regclass) = 'p' THEN
        ALTER TABLE presence.status_history RENAME TO status_history_partitioned;
        ALTER TABLE presence.status_history_partitioned
            RENAME CONSTRAINT status_history_pkey TO status_history_partitioned_pkey;
        ALTER INDEX presence.status_history_user_id_idx RENAME TO status_history_partitioned_user_id_idx;
        ALTER SEQUENCE presence.status_history_id_seq RENAME TO status_history_partitioned_id_seq;

        CREATE TABLE presence.status_history (
            id          bigint      GENERATED ALWAYS AS IDENTITY,
            user_id     uuid        NOT NULL,
            old_status  text,
            new_status  text        NOT NULL,
            changed_at  timestamptz NOT NULL DEFAULT now(),
            device_id   text,
            source      text        NOT NULL DEFAULT 'client',
            CONSTRAINT status_history_pkey PRIMARY KEY (id),
            CONSTRAINT status_history_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users (id) ON DELETE CASCADE,
            CONSTRAINT status_history_old_status_check
                CHECK (old_status IN ('online', 'away', 'busy', 'offline')),
            CONSTRAINT status_history_new_status_check
                CHECK (new_status IN ('online', 'away', 'busy', 'offline')),
            CONSTRAINT status_history_change_check CHECK (old_status IS DISTINCT FROM new_status),
            CONSTRAINT status_history_source_check
                CHECK (source IN ('client', 'heartbeat_timeout', 'system'))
        );

        INSERT INTO presence.status_history OVERRIDING SYSTEM VALUE
        SELECT * FROM presence.status_history_partitioned ORDER BY id;
        PERFORM setval('presence.status_history_id_seq', s.last_value, s.is_called)
           FROM presence.status_history_partitioned_id_seq s;

        DROP TABLE presence.status_history_partitioned;
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS events_session_id_idx ON analytics.events (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_user_id_idx ON analytics.events (user_id, occurred_at) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_name_occurred_at_idx ON analytics.events (name, occurred_at);
CREATE INDEX IF NOT EXISTS events_received_at_brin_idx ON analytics.events USING brin (received_at);

COMMENT ON TABLE  analytics.events IS 'Raw product-analytics events (append-only, high volume). Anonymised (user_id NULL) when the account is deleted.';
COMMENT ON COLUMN analytics.events.name IS 'Event name in snake/dot case, e.g. message.sent, call.started.';
COMMENT ON COLUMN analytics.events.properties IS 'Event properties as a JSON object; no message content or other personal data.';
COMMENT ON COLUMN analytics.events.occurred_at IS 'Client-side time of the event (may be skewed or late).';
COMMENT ON COLUMN analytics.events.received_at IS 'Server-side ingestion time; monotonic enough for the BRIN index and retention.';

CREATE INDEX IF NOT EXISTS status_history_user_id_idx ON presence.status_history (user_id, changed_at);

COMMENT ON TABLE  presence.status_history IS 'Append-only log of presence status changes (one row per actual change), written by the presence functions.';
COMMENT ON COLUMN presence.status_history.old_status IS 'Status before the change; NULL for the user''s first status.';
COMMENT ON COLUMN presence.status_history.device_id IS 'Device that caused the change (for timeouts: the last-heard-from device among the connections that timed out).';
COMMENT ON COLUMN presence.status_history.source IS 'client (explicit update), heartbeat_timeout (presence.cleanup_stale_connections()) or system.';

DROP FUNCTION IF EXISTS analytics.create_monthly_partitions(regclass, integer);

DELETE FROM public.schema_migrations WHERE version = 4;
