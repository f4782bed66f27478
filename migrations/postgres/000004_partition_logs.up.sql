-- =============================================================================
-- 000004_partition_logs (up)
--
-- The two append-only logs become range-partitioned by month, so old months
-- can be detached or dropped instead of deleted row by row:
--   analytics.events          by received_at (server time; occurred_at is the
--                             client's and may be anything)
--   presence.status_history   by changed_at
-- Each gets a DEFAULT partition for rows outside the monthly ones, and
-- analytics.create_monthly_partitions(parent, months_ahead) creates the
-- monthly partitions: the current month, the coming ones, and every month
-- with rows in the default partition (they move into it).  This migration
-- creates them for the months with data and three months ahead; a scheduler
-- must call the function before each month starts (MIGRATION_GUIDE.md,
-- "Monthly partitions").
--
-- A primary key of a partitioned table must contain the partition key, so
-- the keys become (id, received_at) and (id, changed_at); ids still come from
-- the same identity sequence and stay unique.
--
-- The conversion copies each table under an ACCESS EXCLUSIVE lock: on a
-- large table, plan a maintenance window (or copy in batches beforehand).
-- Requires 000001 and 000002.  Idempotent: tables already partitioned are
-- left alone.  No BEGIN/COMMIT (the runner wraps the file in a transaction).
-- =============================================================================


-- -----------------------------------------------------------------------------
-- The partition maker
-- -----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION analytics.create_monthly_partitions(
    p_parent       regclass,
    p_months_ahead integer DEFAULT 3
)
RETURNS SETOF text
LANGUAGE plpgsql
AS $$
DECLARE
    v_schema  text;
    v_table   text;
    v_key     text;
    v_default regclass;
    v_month   date;
    v_months  date[];
    v_name    text;
    v_lower   timestamptz;
    v_upper   timestamptz;
BEGIN
    IF p_months_ahead IS NULL OR p_months_ahead NOT BETWEEN 0 AND 120 THEN
        RAISE EXCEPTION 'months ahead must be between 0 and 120, not %', COALESCE(p_months_ahead::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT n.nspname::text, c.relname::text, a.attname::text
      INTO v_schema, v_table, v_key
      FROM pg_catalog.pg_partitioned_table pt
      JOIN pg_catalog.pg_class     c ON c.oid = pt.partrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_catalog.pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
     WHERE pt.partrelid = p_parent
       AND pt.partstrat = 'r'
       AND pt.partnatts = 1
       AND a.atttypid   = 'timestamptz'::regtype;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is not partitioned by range on one timestamptz column', p_parent
            USING ERRCODE = 'wrong_object_type';
    END IF;

    -- One caller at a time per table; reads and writes go on meanwhile.
    EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', p_parent);

    SELECT i.inhrelid::regclass
      INTO v_default
      FROM pg_catalog.pg_inherits i
      JOIN pg_catalog.pg_class    c ON c.oid = i.inhrelid
     WHERE i.inhparent = p_parent
       AND pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';

    -- The current month and the coming ones, and every month that has rows
    -- waiting in the default partition.
    SELECT array_agg(DISTINCT m.month ORDER BY m.month)
      INTO v_months
      FROM generate_series(0, p_months_ahead) AS g (n)
     CROSS JOIN LATERAL (SELECT (date_trunc('month', now() AT TIME ZONE 'UTC')
                                 + make_interval(months => g.n))::date) AS m (month);
    IF v_default IS NOT NULL THEN
        EXECUTE format('SELECT array_agg(DISTINCT m ORDER BY m) FROM (SELECT unnest($1) '
                       'UNION SELECT date_trunc(''month'', %I AT TIME ZONE ''UTC'')::date FROM %s) AS x (m)',
                       v_key, v_default)
           INTO v_months
          USING v_months;
    END IF;

    FOREACH v_month IN ARRAY v_months LOOP
        v_name  := format('%s_%s', v_table, to_char(v_month, 'YYYY_MM'));
        CONTINUE WHEN to_regclass(format('%I.%I', v_schema, v_name)) IS NOT NULL;
        v_lower := v_month::timestamp AT TIME ZONE 'UTC';
        v_upper := (v_month + interval '1 month')::timestamp AT TIME ZONE 'UTC';

        -- Built beside the table and attached, so that the month's rows in the
        -- default partition can move into it first.
        EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       v_schema, v_name, p_parent);
        IF v_default IS NOT NULL THEN
            EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= %L AND %I < %L RETURNING *) '
                           'INSERT INTO %I.%I SELECT * FROM moved',
                           v_default, v_key, v_lower, v_key, v_upper, v_schema, v_name);
        END IF;
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       p_parent, v_schema, v_name, v_lower, v_upper);
        RETURN NEXT format('%I.%I', v_schema, v_name);
    END LOOP;
END;
$$;

COMMENT ON FUNCTION analytics.create_monthly_partitions(regclass, integer) IS
    'Creates the missing monthly partitions <table>_YYYY_MM (UTC months) of a table range-partitioned on one timestamptz column: the current month, the p_months_ahead following ones, and every month that has rows in the default partition (those rows move into it). Returns the partitions created. Run it as the tables'' owner, daily or at least monthly: SELECT analytics.create_monthly_partitions(''analytics.events''); SELECT analytics.create_monthly_partitions(''presence.status_history'');';


-- -----------------------------------------------------------------------------
-- analytics.events
-- -----------------------------------------------------------------------------

DO $$
BEGIN
    IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = 'analytics.events'::regclass) = 'r' THEN
        -- The plain table steps aside with everything that has a name.
        ALTER TABLE analytics.events RENAME TO events_unpartitioned;
        ALTER TABLE analytics.events_unpartitioned RENAME CONSTRAINT events_pkey TO events_unpartitioned_pkey;
        ALTER INDEX analytics.events_session_id_idx RENAME TO events_unpartitioned_session_id_idx;
        ALTER INDEX analytics.events_user_id_idx RENAME TO events_unpartitioned_user_id_idx;
        ALTER INDEX analytics.events_name_occurred_at_idx RENAME TO events_unpartitioned_name_occurred_at_idx;
        ALTER INDEX analytics.events_received_at_brin_idx RENAME TO events_unpartitioned_received_at_brin_idx;
        ALTER SEQUENCE analytics.events_id_seq RENAME TO events_unpartitioned_id_seq;

        CREATE TABLE analytics.events (
            id           bigint      GENERATED ALWAYS AS IDENTITY,
            session_id   uuid,
            user_id      uuid,
            name         text        NOT NULL,
            properties   jsonb       NOT NULL DEFAULT '{}',
            occurred_at  timestamptz NOT NULL,
            received_at  timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT events_pkey PRIMARY KEY (id, received_at),
            CONSTRAINT events_session_id_fkey FOREIGN KEY (session_id)
                REFERENCES analytics.user_sessions (id) ON DELETE SET NULL,
            CONSTRAINT events_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users (id) ON DELETE SET NULL,
            CONSTRAINT events_name_check CHECK (name ~ '^[a-z][a-z0-9_.]{0,99}$'),
            CONSTRAINT events_properties_check CHECK (jsonb_typeof(properties) = 'object')
        ) PARTITION BY RANGE (received_at);

        CREATE INDEX events_session_id_idx ON analytics.events (session_id) WHERE session_id IS NOT NULL;
        CREATE INDEX events_user_id_idx ON analytics.events (user_id, occurred_at) WHERE user_id IS NOT NULL;
        CREATE INDEX events_name_occurred_at_idx ON analytics.events (name, occurred_at);
        CREATE INDEX events_received_at_brin_idx ON analytics.events USING brin (received_at);

        CREATE TABLE analytics.events_default PARTITION OF analytics.events DEFAULT;

        -- The coming months first, then the rows, then the months of older
        -- rows (which wait in the default partition until then).
        PERFORM analytics.create_monthly_partitions('analytics.events');
        INSERT INTO analytics.events OVERRIDING SYSTEM VALUE
        SELECT * FROM analytics.events_unpartitioned ORDER BY id;
        PERFORM analytics.create_monthly_partitions('analytics.events');
        PERFORM setval('analytics.events_id_seq', s.last_value, s.is_called)
           FROM analytics.events_unpartitioned_id_seq s;

        DROP TABLE analytics.events_unpartitioned;
    END IF;
END
$$;

COMMENT ON TABLE  analytics.events IS 'Raw product-analytics events (append-only, high volume), range-partitioned by month on received_at (events_YYYY_MM, rows outside them in events_default; analytics.create_monthly_partitions() makes the months). Anonymised (user_id NULL) when the account is deleted.';
COMMENT ON COLUMN analytics.events.name IS 'Event name in snake/dot case, e.g. message.sent, call.started.';
COMMENT ON COLUMN analytics.events.properties IS 'Event properties as a JSON object; no message content or other personal data.';
COMMENT ON COLUMN analytics.events.occurred_at IS 'Client-side time of the event (may be skewed or late).';
COMMENT ON COLUMN analytics.events.received_at IS 'Server-side ingestion time: the partition key; monotonic enough for the BRIN index and retention.';
COMMENT ON TABLE  analytics.events_default IS 'Events outside every monthly partition of analytics.events; should stay empty (analytics.create_monthly_partitions() moves rows out of it).';


-- -----------------------------------------------------------------------------
-- presence.status_history
-- -----------------------------------------------------------------------------

DO $$
BEGIN
    IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = 'presence.status_history'::regclass) = 'r' THEN
        ALTER TABLE presence.status_history RENAME TO status_history_unpartitioned;
        ALTER TABLE presence.status_history_unpartitioned
            RENAME CONSTRAINT status_history_pkey TO status_history_unpartitioned_pkey;
        ALTER INDEX presence.status_history_user_id_idx RENAME TO status_history_unpartitioned_user_id_idx;
        ALTER SEQUENCE presence.status_history_id_seq RENAME TO status_history_unpartitioned_id_seq;

        CREATE TABLE presence.status_history (
            id          bigint      GENERATED ALWAYS AS IDENTITY,
            user_id     uuid        NOT NULL,
            old_status  text,
            new_status  text        NOT NULL,
            changed_at  timestamptz NOT NULL DEFAULT now(),
            device_id   text,
            source      text        NOT NULL DEFAULT 'client',
            CONSTRAINT status_history_pkey PRIMARY KEY (id, changed_at),
            CONSTRAINT status_history_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users (id) ON DELETE CASCADE,
            CONSTRAINT status_history_old_status_check
                CHECK (old_status IN ('online', 'away', 'busy', 'offline')),
            CONSTRAINT status_history_new_status_check
                CHECK (new_status IN ('online', 'away', 'busy', 'offline')),
            CONSTRAINT status_history_change_check CHECK (old_status IS DISTINCT FROM new_status),
            CONSTRAINT status_history_source_check
                CHECK (source IN ('client', 'heartbeat_timeout', 'system'))
        ) PARTITION BY RANGE (changed_at);

        CREATE INDEX status_history_user_id_idx ON presence.status_history (user_id, changed_at);

        CREATE TABLE presence.status_history_default PARTITION OF presence.status_history DEFAULT;

        -- The coming months first, then the rows, then the months of older
        -- rows (which wait in the default partition until then).
        PERFORM analytics.create_monthly_partitions('presence.status_history');
        INSERT INTO presence.status_history OVERRIDING SYSTEM VALUE
        SELECT * FROM presence.status_history_unpartitioned ORDER BY id;
        PERFORM analytics.create_monthly_partitions('presence.status_history');
        PERFORM setval('presence.status_history_id_seq', s.last_value, s.is_called)
           FROM presence.status_history_unpartitioned_id_seq s;

        DROP TABLE presence.status_history_unpartitioned;
    END IF;
END
$$;

COMMENT ON TABLE  presence.status_history IS 'Append-only log of presence status changes (one row per actual change), written by the presence functions; range-partitioned by month on changed_at (status_history_YYYY_MM, rows outside them in status_history_default; analytics.create_monthly_partitions() makes the months).';
COMMENT ON COLUMN presence.status_history.old_status IS 'Status before the change; NULL for the user''s first status.';
COMMENT ON COLUMN presence.status_history.device_id IS 'Device that caused the change (for timeouts: the last-heard-from device among the connections that timed out).';
COMMENT ON COLUMN presence.status_history.source IS 'client (explicit update), heartbeat_timeout (presence.cleanup_stale_connections()) or system.';
COMMENT ON COLUMN presence.status_history.changed_at IS 'When the status changed: the partition key.';
COMMENT ON TABLE  presence.status_history_default IS 'Status changes outside every monthly partition of presence.status_history; should stay empty (analytics.create_monthly_partitions() moves rows out of it).';


-- -----------------------------------------------------------------------------
-- Record the migration (keeps tracking right when applied by hand with psql).
-- -----------------------------------------------------------------------------

INSERT INTO public.schema_migrations (version, description, applied_at, applied_by)
VALUES (4, 'partition_logs', now(), current_user)
ON CONFLICT (version) DO NOTHING;
