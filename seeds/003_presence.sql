-- =============================================================================
-- Seed 003: presence
--
-- Presence state for the seeded users: alice online on her phone, bob away
-- in a browser (one live connection each), carol and dave offline; erin has
-- never connected (no row).  Matching first-status history rows, two
-- presence subscriptions, a typing indicator bob left in the direct
-- conversation (long expired: the first presence.cleanup_expired_typing()
-- removes it) and a few activity_log entries.  device_count is not stored:
-- presence.user_presence counts the live connections.
--
-- The connections get last_heartbeat_at = now() at insert time, so after 30
-- seconds presence.cleanup_stale_connections() will time them out, which is
-- what a real idle client would see.
--
-- Idempotent: fixed keys + ON CONFLICT DO NOTHING (history and activity
-- rows, which have identity keys, are guarded with NOT EXISTS).  Requires
-- seeds 001 and 002 and migration 000003 (typing_indicators.device_id, no
-- stored device_count).
-- =============================================================================

INSERT INTO presence.user_status (user_id, status, custom_message, custom_emoji, visibility,
                                  last_seen_at, updated_at)
VALUES
    ('a1111111-1111-1111-1111-111111111111', 'online',  NULL,             NULL,          'everyone', '2024-05-01 09:12:00+00', '2024-05-01 09:12:00+00'),
    ('b2222222-2222-2222-2222-222222222222', 'away',    'Packing my bag', U&'\+01F392', 'contacts', '2024-05-01 09:08:00+00', '2024-05-01 09:08:00+00'),
    ('c3333333-3333-3333-3333-333333333333', 'offline', NULL,             NULL,          'everyone', '2024-05-01 09:13:00+00', '2024-05-01 09:13:00+00'),
    ('d4444444-4444-4444-4444-444444444444', 'offline', NULL,             NULL,          'nobody',   '2024-05-01 09:12:30+00', '2024-05-01 09:12:30+00')
ON CONFLICT (user_id) DO NOTHING;

INSERT INTO presence.connections (id, connection_id, user_id, device_id, device_type, ip_address,
                                  user_agent, server_id)
VALUES
    ('30000000-0000-0000-0000-000000000001', 'gw-1:conn-alice-0001', 'a1111111-1111-1111-1111-111111111111',
     'device-alice-iphone', 'ios', '203.0.113.10', 'Echo/3.2.0 (iPhone; iOS 17.4)', 'gw-1'),
    ('30000000-0000-0000-0000-000000000002', 'gw-2:conn-bob-0001',   'b2222222-2222-2222-2222-222222222222',
     'device-bob-laptop',   'web', '198.51.100.7', 'Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0', 'gw-2')
ON CONFLICT (id) DO NOTHING;

INSERT INTO presence.status_history (user_id, old_status, new_status, changed_at, device_id, source)
SELECT v.user_id, NULL, v.new_status, v.changed_at, v.device_id, 'client'
  FROM (VALUES
            ('a1111111-1111-1111-1111-111111111111'::uuid, 'online',  '2024-05-01 08:59:00+00'::timestamptz, 'device-alice-iphone'),
            ('b2222222-2222-2222-2222-222222222222'::uuid, 'away',    '2024-05-01 09:08:00+00'::timestamptz, 'device-bob-laptop'),
            ('c3333333-3333-3333-3333-333333333333'::uuid, 'offline', '2024-05-01 09:13:00+00'::timestamptz, 'device-carol-android'),
            ('d4444444-4444-4444-4444-444444444444'::uuid, 'offline', '2024-05-01 09:12:30+00'::timestamptz, 'device-dave-desktop')
       ) AS v (user_id, new_status, changed_at, device_id)
 WHERE NOT EXISTS (SELECT 1 FROM presence.status_history h WHERE h.user_id = v.user_id);

INSERT INTO presence.subscriptions (id, subscriber_id, target_user_id, subscription_type, conversation_id,
                                    created_at, expires_at)
VALUES
    ('40000000-0000-0000-0000-000000000001', 'a1111111-1111-1111-1111-111111111111', 'b2222222-2222-2222-2222-222222222222',
     'contact', NULL, '2024-04-10 10:00:00+00', NULL),
    ('40000000-0000-0000-0000-000000000002', 'c3333333-3333-3333-3333-333333333333', 'a1111111-1111-1111-1111-111111111111',
     'conversation', '10000000-0000-0000-0000-000000000002', '2024-05-01 09:05:00+00', NULL)
ON CONFLICT (id) DO NOTHING;

INSERT INTO presence.typing_indicators (conversation_id, user_id, device_id, started_at, last_updated_at, expires_at)
VALUES
    ('10000000-0000-0000-0000-000000000001', 'b2222222-2222-2222-2222-222222222222', 'device-bob-laptop',
     '2024-05-01 09:03:00+00', '2024-05-01 09:03:04+00', '2024-05-01 09:03:14+00')
ON CONFLICT (conversation_id, user_id) DO NOTHING;

INSERT INTO presence.activity_log (user_id, activity, context_type, context_id, device_id, started_at, ended_at)
SELECT v.user_id, v.activity, v.context_type, v.context_id, v.device_id, v.started_at, v.ended_at
  FROM (VALUES
            ('a1111111-1111-1111-1111-111111111111'::uuid, 'typing',    'conversation', '10000000-0000-0000-0000-000000000002'::uuid,
             'device-alice-iphone', '2024-05-01 09:05:40+00'::timestamptz, '2024-05-01 09:05:52+00'::timestamptz),
            ('b2222222-2222-2222-2222-222222222222'::uuid, 'recording', 'conversation', '10000000-0000-0000-0000-000000000001'::uuid,
             'device-bob-laptop',   '2024-05-01 09:03:00+00'::timestamptz, '2024-05-01 09:03:09+00'::timestamptz),
            ('c3333333-3333-3333-3333-333333333333'::uuid, 'viewing',   'profile',      'a1111111-1111-1111-1111-111111111111'::uuid,
             'device-carol-android', '2024-05-01 09:06:00+00'::timestamptz, NULL::timestamptz)
       ) AS v (user_id, activity, context_type, context_id, device_id, started_at, ended_at)
 WHERE NOT EXISTS (SELECT 1 FROM presence.activity_log a
                    WHERE a.user_id = v.user_id AND a.started_at = v.started_at);
