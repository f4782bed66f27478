-- =============================================================================
-- Seed 001: users
--
-- Five test accounts with profiles, settings, contacts and one block.
--   alice  a1111111-1111-1111-1111-111111111111
--   bob    b2222222-2222-2222-2222-222222222222
--   carol  c3333333-3333-3333-3333-333333333333
--   dave   d4444444-4444-4444-4444-444444444444
--   erin   e5555555-5555-5555-5555-555555555555  (pending: not yet verified)
-- Accounts have no password (password_hash NULL): sign in through a
-- verification/magic-link flow in development.
--
-- Idempotent: fixed keys + ON CONFLICT DO NOTHING, so re-running changes
-- nothing.  Requires every migration (seeds follow the newest schema).
-- =============================================================================

INSERT INTO auth.users (id, email, phone, email_verified_at, status, created_at, updated_at)
VALUES
    ('a1111111-1111-1111-1111-111111111111', 'alice@echo.test', '+15550000001', '2024-04-01 08:00:00+00', 'active',  '2024-04-01 07:55:00+00', '2024-04-01 08:00:00+00'),
    ('b2222222-2222-2222-2222-222222222222', 'bob@echo.test',   '+15550000002', '2024-04-02 08:00:00+00', 'active',  '2024-04-02 07:55:00+00', '2024-04-02 08:00:00+00'),
    ('c3333333-3333-3333-3333-333333333333', 'carol@echo.test', '+15550000003', '2024-04-03 08:00:00+00', 'active',  '2024-04-03 07:55:00+00', '2024-04-03 08:00:00+00'),
    ('d4444444-4444-4444-4444-444444444444', 'dave@echo.test',  NULL,           '2024-04-04 08:00:00+00', 'active',  '2024-04-04 07:55:00+00', '2024-04-04 08:00:00+00'),
    ('e5555555-5555-5555-5555-555555555555', 'erin@echo.test',  NULL,           NULL,                     'pending', '2024-04-05 07:55:00+00', '2024-04-05 07:55:00+00')
ON CONFLICT (id) DO NOTHING;

INSERT INTO users.profiles (user_id, username, display_name, avatar_url, bio, created_at, updated_at)
VALUES
    ('a1111111-1111-1111-1111-111111111111', 'alice', 'Alice Anders', 'https://cdn.echo.test/avatars/alice.png', 'Organises the weekend hikes.', '2024-04-01 08:00:00+00', '2024-04-01 08:00:00+00'),
    ('b2222222-2222-2222-2222-222222222222', 'bob',   'Bob Brooks',   NULL,                                      NULL,                            '2024-04-02 08:00:00+00', '2024-04-02 08:00:00+00'),
    ('c3333333-3333-3333-3333-333333333333', 'carol', 'Carol Chen',   'https://cdn.echo.test/avatars/carol.png', 'Snack logistics.',              '2024-04-03 08:00:00+00', '2024-04-03 08:00:00+00'),
    ('d4444444-4444-4444-4444-444444444444', 'dave',  'Dave Diaz',    NULL,                                      NULL,                            '2024-04-04 08:00:00+00', '2024-04-04 08:00:00+00'),
    ('e5555555-5555-5555-5555-555555555555', 'erin',  NULL,           NULL,                                      NULL,                            '2024-04-05 08:00:00+00', '2024-04-05 08:00:00+00')
ON CONFLICT (user_id) DO NOTHING;

INSERT INTO users.settings (user_id, last_seen_visibility, read_receipts_enabled, allow_messages_from,
                            quiet_hours_start, quiet_hours_end, locale, timezone, theme, created_at, updated_at)
VALUES
    ('a1111111-1111-1111-1111-111111111111', 'everyone', true,  'everyone', NULL,    NULL,    'en',    'Europe/London',       'dark',   '2024-04-01 08:00:00+00', '2024-04-01 08:00:00+00'),
    ('b2222222-2222-2222-2222-222222222222', 'contacts', true,  'everyone', '22:00', '07:00', 'en-US', 'America/New_York',    'system', '2024-04-02 08:00:00+00', '2024-04-02 08:00:00+00'),
    ('c3333333-3333-3333-3333-333333333333', 'everyone', false, 'contacts', NULL,    NULL,    'de',    'Europe/Berlin',       'light',  '2024-04-03 08:00:00+00', '2024-04-03 08:00:00+00'),
    ('d4444444-4444-4444-4444-444444444444', 'nobody',   true,  'everyone', NULL,    NULL,    'pt-BR', 'America/Sao_Paulo',   'system', '2024-04-04 08:00:00+00', '2024-04-04 08:00:00+00'),
    ('e5555555-5555-5555-5555-555555555555', 'everyone', true,  'everyone', NULL,    NULL,    'en',    'UTC',                 'system', '2024-04-05 08:00:00+00', '2024-04-05 08:00:00+00')
ON CONFLICT (user_id) DO NOTHING;

INSERT INTO users.contacts (user_id, contact_user_id, nickname, is_favorite, source, created_at, updated_at)
VALUES
    ('a1111111-1111-1111-1111-111111111111', 'b2222222-2222-2222-2222-222222222222', NULL,      true,  'phone_book',   '2024-04-10 10:00:00+00', '2024-04-10 10:00:00+00'),
    ('a1111111-1111-1111-1111-111111111111', 'c3333333-3333-3333-3333-333333333333', NULL,      false, 'phone_book',   '2024-04-10 10:00:00+00', '2024-04-10 10:00:00+00'),
    ('a1111111-1111-1111-1111-111111111111', 'd4444444-4444-4444-4444-444444444444', 'Dave H.', false, 'manual',       '2024-04-11 10:00:00+00', '2024-04-11 10:00:00+00'),
    ('b2222222-2222-2222-2222-222222222222', 'a1111111-1111-1111-1111-111111111111', NULL,      true,  'phone_book',   '2024-04-10 11:00:00+00', '2024-04-10 11:00:00+00'),
    ('b2222222-2222-2222-2222-222222222222', 'c3333333-3333-3333-3333-333333333333', NULL,      false, 'conversation', '2024-04-12 11:00:00+00', '2024-04-12 11:00:00+00'),
    ('c3333333-3333-3333-3333-333333333333', 'a1111111-1111-1111-1111-111111111111', NULL,      false, 'invite',       '2024-04-10 12:00:00+00', '2024-04-10 12:00:00+00'),
    ('d4444444-4444-4444-4444-444444444444', 'a1111111-1111-1111-1111-111111111111', NULL,      false, 'manual',       '2024-04-11 12:00:00+00', '2024-04-11 12:00:00+00')
ON CONFLICT (user_id, contact_user_id) DO NOTHING;

INSERT INTO users.blocked_users (blocker_id, blocked_id, reason, created_at)
VALUES
    ('e5555555-5555-5555-5555-555555555555', 'd4444444-4444-4444-4444-444444444444', 'spam', '2024-04-15 09:00:00+00')
ON CONFLICT (blocker_id, blocked_id) DO NOTHING;
