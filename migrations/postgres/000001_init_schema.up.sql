-- =============================================================================
-- 000001_init_schema (up)
--
-- Baseline schema of the Echo messaging backend: seven schemas
--   auth (6 tables), users (4), messages (20), media (2), notifications (2),
--   analytics (6), location (2)
-- plus one shared trigger function, auth.set_updated_at(), that keeps every
-- updated_at column current.
--
-- Conventions
--   * Entity keys are uuid (gen_random_uuid(), built in since PostgreSQL 13);
--     append-only, high-volume logs use bigint identity keys.
--   * All timestamps are timestamptz.  Enumerations are CHECK constraints.
--   * Every foreign key has a deliberate ON DELETE action and an index whose
--     leading columns are the referencing columns.
--   * No extensions are used.
--
-- Idempotent: safe to run again on a database where it has already run
-- (IF NOT EXISTS everywhere; constraints and triggers added by guarded DO
-- blocks).  No BEGIN/COMMIT: the migration runner wraps the file in a
-- transaction (with psql use -1).  The last statement records the migration
-- in public.schema_migrations.
-- =============================================================================


-- -----------------------------------------------------------------------------
-- Schemas
-- -----------------------------------------------------------------------------

CREATE SCHEMA IF NOT EXISTS auth;
CREATE SCHEMA IF NOT EXISTS users;
CREATE SCHEMA IF NOT EXISTS media;
CREATE SCHEMA IF NOT EXISTS messages;
CREATE SCHEMA IF NOT EXISTS notifications;
CREATE SCHEMA IF NOT EXISTS analytics;
CREATE SCHEMA IF NOT EXISTS location;

COMMENT ON SCHEMA auth          IS 'Identity and authentication: accounts, sessions, OAuth links, verification and reset tokens, login audit.';
COMMENT ON SCHEMA users         IS 'User-facing account data: public profiles, contacts, blocks and per-user settings.';
COMMENT ON SCHEMA media         IS 'Uploaded files (stored in object storage) and their generated thumbnails.';
COMMENT ON SCHEMA messages      IS 'Conversations, membership and messages with everything attached to them.';
COMMENT ON SCHEMA notifications IS 'In-app notifications and push-notification device tokens.';
COMMENT ON SCHEMA analytics     IS 'Product analytics: raw events, client sessions and daily aggregates.';
COMMENT ON SCHEMA location      IS 'IP geolocation ranges and user location history.';


-- -----------------------------------------------------------------------------
-- Shared trigger function
-- -----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION auth.set_updated_at()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION auth.set_updated_at() IS
    'BEFORE UPDATE row trigger shared by every table of the project that has an updated_at column: sets updated_at to the transaction timestamp.';


-- =============================================================================
-- auth
-- =============================================================================

CREATE TABLE IF NOT EXISTS auth.users (
    id                 uuid        NOT NULL DEFAULT gen_random_uuid(),
    email              text,
    phone              text,
    password_hash      text,
    email_verified_at  timestamptz,
    phone_verified_at  timestamptz,
    status             text        NOT NULL DEFAULT 'pending',
    last_login_at      timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_phone_key UNIQUE (phone),
    CONSTRAINT users_status_check
        CHECK (status IN ('pending', 'active', 'suspended', 'deactivated')),
    CONSTRAINT users_identifier_check
        CHECK (email IS NOT NULL OR phone IS NOT NULL),
    CONSTRAINT users_email_format_check
        CHECK (char_length(email) <= 254 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    CONSTRAINT users_phone_format_check
        CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    CONSTRAINT users_email_verified_check
        CHECK (email_verified_at IS NULL OR email IS NOT NULL),
    CONSTRAINT users_phone_verified_check
        CHECK (phone_verified_at IS NULL OR phone IS NOT NULL)
);

-- Case-insensitive uniqueness of e-mail addresses (instead of citext).
CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower_key ON auth.users (lower(email));

COMMENT ON TABLE  auth.users IS 'One row per account. The login identity; public profile data lives in users.profiles.';
COMMENT ON COLUMN auth.users.email IS 'Login e-mail as entered; unique case-insensitively (index users_email_lower_key). Look up with lower(email) = lower($1).';
COMMENT ON COLUMN auth.users.phone IS 'Login phone number in E.164 format (+ and up to 15 digits).';
COMMENT ON COLUMN auth.users.password_hash IS 'Password hash in PHC string format (e.g. argon2id); NULL for accounts that only sign in via OAuth, magic link or OTP.';
COMMENT ON COLUMN auth.users.email_verified_at IS 'When the current e-mail address was verified; NULL while unverified.';
COMMENT ON COLUMN auth.users.phone_verified_at IS 'When the current phone number was verified; NULL while unverified.';
COMMENT ON COLUMN auth.users.status IS 'Account state: pending (not yet verified), active, suspended (by moderation), deactivated (by the user).';

CREATE TABLE IF NOT EXISTS auth.sessions (
    id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id             uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    refresh_token_hash  text        NOT NULL,
    device_id           text,
    device_name         text,
    platform            text,
    ip_address          inet,
    user_agent          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_used_at        timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    revoked_at          timestamptz,
    revoked_reason      text,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_refresh_token_hash_key UNIQUE (refresh_token_hash),
    CONSTRAINT sessions_refresh_token_hash_check CHECK (refresh_token_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT sessions_platform_check CHECK (platform IN ('ios', 'android', 'web', 'desktop')),
    CONSTRAINT sessions_expiry_check CHECK (expires_at > created_at),
    CONSTRAINT sessions_revoked_reason_check
        CHECK (revoked_reason IN ('logout', 'password_change', 'admin', 'token_reuse')),
    CONSTRAINT sessions_revocation_check CHECK (revoked_reason IS NULL OR revoked_at IS NOT NULL)
);

CREATE INDEX IF NOT EXISTS sessions_user_id_idx ON auth.sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_expires_at_active_idx ON auth.sessions (expires_at) WHERE revoked_at IS NULL;

COMMENT ON TABLE  auth.sessions IS 'Refresh-token sessions, one per signed-in device. A session is valid while revoked_at IS NULL AND expires_at > now().';
COMMENT ON COLUMN auth.sessions.refresh_token_hash IS 'Lower-case hex SHA-256 of the refresh token; the token itself is never stored. Rotated on every refresh.';
COMMENT ON COLUMN auth.sessions.device_id IS 'Client-generated stable device identifier.';
COMMENT ON COLUMN auth.sessions.platform IS 'Client platform: ios, android, web or desktop.';
COMMENT ON COLUMN auth.sessions.last_used_at IS 'Last time the refresh token was exchanged.';
COMMENT ON COLUMN auth.sessions.expires_at IS 'Absolute expiry of the session; refreshing does not extend it beyond this.';
COMMENT ON COLUMN auth.sessions.ip_address IS 'IP address the session was last used from.';
COMMENT ON COLUMN auth.sessions.revoked_at IS 'When the session was revoked; NULL while it has not been.';
COMMENT ON COLUMN auth.sessions.revoked_reason IS 'Why it was revoked: logout, password_change, admin, or token_reuse (a rotated refresh token was replayed).';

CREATE TABLE IF NOT EXISTS auth.oauth_accounts (
    id                uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id           uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    provider          text        NOT NULL,
    provider_user_id  text        NOT NULL,
    provider_email    text,
    profile           jsonb       NOT NULL DEFAULT '{}',
    last_login_at     timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT oauth_accounts_pkey PRIMARY KEY (id),
    CONSTRAINT oauth_accounts_provider_user_key UNIQUE (provider, provider_user_id),
    CONSTRAINT oauth_accounts_user_provider_key UNIQUE (user_id, provider),
    CONSTRAINT oauth_accounts_provider_check
        CHECK (provider IN ('google', 'apple', 'github', 'facebook', 'microsoft')),
    CONSTRAINT oauth_accounts_profile_check CHECK (jsonb_typeof(profile) = 'object')
);

COMMENT ON TABLE  auth.oauth_accounts IS 'External identity-provider accounts linked to a user; at most one per provider and user.';
COMMENT ON COLUMN auth.oauth_accounts.provider_user_id IS 'The provider''s stable subject identifier (OIDC "sub"), unique per provider.';
COMMENT ON COLUMN auth.oauth_accounts.provider_email IS 'E-mail reported by the provider at link time; informational only, never used to log in.';
COMMENT ON COLUMN auth.oauth_accounts.profile IS 'Raw profile claims returned by the provider (JSON object). No access or refresh tokens are stored.';

CREATE TABLE IF NOT EXISTS auth.verification_tokens (
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    purpose     text        NOT NULL,
    token_hash  text        NOT NULL,
    sent_to     text        NOT NULL,
    attempts    smallint    NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    CONSTRAINT verification_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT verification_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT verification_tokens_token_hash_check CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT verification_tokens_purpose_check CHECK (purpose IN ('email', 'phone', 'magic_link')),
    CONSTRAINT verification_tokens_attempts_check CHECK (attempts >= 0),
    CONSTRAINT verification_tokens_expiry_check CHECK (expires_at > created_at),
    CONSTRAINT verification_tokens_used_check CHECK (used_at IS NULL OR used_at >= created_at)
);

CREATE INDEX IF NOT EXISTS verification_tokens_user_id_purpose_idx ON auth.verification_tokens (user_id, purpose);

COMMENT ON TABLE  auth.verification_tokens IS 'Single-use tokens/codes that verify an e-mail address or phone number, or sign in via magic link. Valid while used_at IS NULL AND expires_at > now(); consuming one sets used_at.';
COMMENT ON COLUMN auth.verification_tokens.purpose IS 'email (verify address), phone (verify number by OTP) or magic_link (password-less sign-in).';
COMMENT ON COLUMN auth.verification_tokens.token_hash IS 'Lower-case hex SHA-256 of the token or code; the raw value is only sent to the user.';
COMMENT ON COLUMN auth.verification_tokens.sent_to IS 'The e-mail address or phone number the token was sent to (it may differ from the account''s current one during a change).';
COMMENT ON COLUMN auth.verification_tokens.attempts IS 'Failed attempts to enter this code; the application invalidates the token past its limit.';
COMMENT ON COLUMN auth.verification_tokens.used_at IS 'When the token was consumed; a token is single use.';

CREATE TABLE IF NOT EXISTS auth.password_resets (
    id                    uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id               uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    token_hash            text        NOT NULL,
    requested_ip          inet,
    requested_user_agent  text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    expires_at            timestamptz NOT NULL,
    used_at               timestamptz,
    CONSTRAINT password_resets_pkey PRIMARY KEY (id),
    CONSTRAINT password_resets_token_hash_key UNIQUE (token_hash),
    CONSTRAINT password_resets_token_hash_check CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT password_resets_expiry_check CHECK (expires_at > created_at),
    CONSTRAINT password_resets_used_check CHECK (used_at IS NULL OR used_at >= created_at)
);

CREATE INDEX IF NOT EXISTS password_resets_user_id_idx ON auth.password_resets (user_id);

COMMENT ON TABLE  auth.password_resets IS 'Password-reset requests. Single use: valid while used_at IS NULL AND expires_at > now().';
COMMENT ON COLUMN auth.password_resets.token_hash IS 'Lower-case hex SHA-256 of the reset token sent by e-mail.';
COMMENT ON COLUMN auth.password_resets.requested_ip IS 'IP address the reset was requested from (abuse investigation).';

CREATE TABLE IF NOT EXISTS auth.login_attempts (
    id              bigint      GENERATED ALWAYS AS IDENTITY,
    user_id         uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    identifier      text        NOT NULL,
    method          text        NOT NULL,
    success         boolean     NOT NULL,
    failure_reason  text,
    ip_address      inet,
    user_agent      text,
    attempted_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT login_attempts_pkey PRIMARY KEY (id),
    CONSTRAINT login_attempts_method_check
        CHECK (method IN ('password', 'oauth', 'magic_link', 'otp')),
    CONSTRAINT login_attempts_failure_reason_check
        CHECK (failure_reason IN ('invalid_credentials', 'unknown_user', 'account_locked',
                                  'account_suspended', 'rate_limited')),
    CONSTRAINT login_attempts_outcome_check CHECK (success = (failure_reason IS NULL))
);

CREATE INDEX IF NOT EXISTS login_attempts_user_id_idx ON auth.login_attempts (user_id, attempted_at) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS login_attempts_identifier_idx ON auth.login_attempts (lower(identifier), attempted_at);
CREATE INDEX IF NOT EXISTS login_attempts_ip_address_idx ON auth.login_attempts (ip_address, attempted_at);

COMMENT ON TABLE  auth.login_attempts IS 'Append-only audit of sign-in attempts, successful or not; feeds rate limiting and account lock-out.';
COMMENT ON COLUMN auth.login_attempts.user_id IS 'The account the identifier resolved to; NULL when it matched none (or the account was deleted since).';
COMMENT ON COLUMN auth.login_attempts.identifier IS 'What the client submitted (e-mail, phone or OAuth subject), kept even when it matches no account.';
COMMENT ON COLUMN auth.login_attempts.method IS 'Sign-in method: password, oauth, magic_link or otp (SMS/e-mail code).';
COMMENT ON COLUMN auth.login_attempts.failure_reason IS 'Why the attempt failed; NULL exactly when success is true.';


-- =============================================================================
-- media  (created before users/messages, which reference it)
-- =============================================================================

CREATE TABLE IF NOT EXISTS media.files (
    id                 uuid        NOT NULL DEFAULT gen_random_uuid(),
    uploader_id        uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    storage_key        text        NOT NULL,
    original_filename  text,
    mime_type          text        NOT NULL,
    size_bytes         bigint      NOT NULL,
    sha256             text,
    width              integer,
    height             integer,
    duration_ms        integer,
    status             text        NOT NULL DEFAULT 'pending',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT files_pkey PRIMARY KEY (id),
    CONSTRAINT files_storage_key_key UNIQUE (storage_key),
    CONSTRAINT files_mime_type_check CHECK (mime_type ~ '^[a-z]+/[a-z0-9][a-z0-9.+-]*$'),
    CONSTRAINT files_size_bytes_check CHECK (size_bytes >= 0),
    CONSTRAINT files_sha256_check CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT files_dimensions_check
        CHECK ((width IS NULL) = (height IS NULL) AND width > 0 AND height > 0),
    CONSTRAINT files_duration_ms_check CHECK (duration_ms >= 0),
    CONSTRAINT files_status_check
        CHECK (status IN ('pending', 'processing', 'ready', 'failed', 'deleted'))
);

CREATE INDEX IF NOT EXISTS files_uploader_id_idx ON media.files (uploader_id) WHERE uploader_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS files_sha256_idx ON media.files (sha256) WHERE sha256 IS NOT NULL;

COMMENT ON TABLE  media.files IS 'Metadata of every uploaded file; the bytes live in object storage under storage_key.';
COMMENT ON COLUMN media.files.uploader_id IS 'Uploading user; set to NULL when the account is deleted so shared media stays reachable.';
COMMENT ON COLUMN media.files.storage_key IS 'Object-storage key (bucket-relative path) of the original file.';
COMMENT ON COLUMN media.files.original_filename IS 'File name as supplied by the client; display only, never used as a path.';
COMMENT ON COLUMN media.files.sha256 IS 'Lower-case hex SHA-256 of the content, for integrity checks and de-duplication; NULL until processed.';
COMMENT ON COLUMN media.files.width IS 'Pixel width of images and videos; NULL otherwise.';
COMMENT ON COLUMN media.files.height IS 'Pixel height of images and videos; NULL otherwise.';
COMMENT ON COLUMN media.files.duration_ms IS 'Playback length of audio and video in milliseconds; NULL otherwise.';
COMMENT ON COLUMN media.files.status IS 'Processing state: pending (upload started), processing (scanning/transcoding), ready, failed, deleted (object removed from storage).';

CREATE TABLE IF NOT EXISTS media.thumbnails (
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    file_id      uuid        NOT NULL REFERENCES media.files (id) ON DELETE CASCADE,
    storage_key  text        NOT NULL,
    mime_type    text        NOT NULL,
    width        integer     NOT NULL,
    height       integer     NOT NULL,
    size_bytes   bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT thumbnails_pkey PRIMARY KEY (id),
    CONSTRAINT thumbnails_storage_key_key UNIQUE (storage_key),
    CONSTRAINT thumbnails_file_size_key UNIQUE (file_id, width, height),
    CONSTRAINT thumbnails_mime_type_check CHECK (mime_type ~ '^image/[a-z0-9][a-z0-9.+-]*$'),
    CONSTRAINT thumbnails_dimensions_check CHECK (width > 0 AND height > 0),
    CONSTRAINT thumbnails_size_bytes_check CHECK (size_bytes >= 0)
);

COMMENT ON TABLE  media.thumbnails IS 'Downscaled preview images generated for a file, at most one per size.';
COMMENT ON COLUMN media.thumbnails.storage_key IS 'Object-storage key of the thumbnail image.';


-- =============================================================================
-- users
-- =============================================================================

CREATE TABLE IF NOT EXISTS users.profiles (
    user_id         uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    username        text        NOT NULL,
    display_name    text,
    avatar_url      text,
    bio             text,
    last_active_at  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT profiles_pkey PRIMARY KEY (user_id),
    CONSTRAINT profiles_username_check CHECK (username ~ '^[A-Za-z0-9_.]{3,32}$'),
    CONSTRAINT profiles_display_name_check CHECK (char_length(display_name) BETWEEN 1 AND 64),
    CONSTRAINT profiles_avatar_url_check CHECK (avatar_url ~ '^https://'),
    CONSTRAINT profiles_bio_check CHECK (char_length(bio) <= 500)
);

-- Case-insensitive uniqueness of usernames.
CREATE UNIQUE INDEX IF NOT EXISTS profiles_username_lower_key ON users.profiles (lower(username));

COMMENT ON TABLE  users.profiles IS 'Public profile of an account (1:1 with auth.users).';
COMMENT ON COLUMN users.profiles.username IS 'Public handle: 3-32 letters, digits, "_" or "."; unique case-insensitively (index profiles_username_lower_key).';
COMMENT ON COLUMN users.profiles.display_name IS 'Free-form display name; clients fall back to username when NULL.';
COMMENT ON COLUMN users.profiles.avatar_url IS 'HTTPS URL of the avatar image (CDN URL of a media.files object or external).';
COMMENT ON COLUMN users.profiles.last_active_at IS 'Coarse last activity (updated at most every few minutes); real-time presence is in the presence schema.';

CREATE TABLE IF NOT EXISTS users.contacts (
    user_id          uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    contact_user_id  uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    nickname         text,
    is_favorite      boolean     NOT NULL DEFAULT false,
    source           text        NOT NULL DEFAULT 'manual',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT contacts_pkey PRIMARY KEY (user_id, contact_user_id),
    CONSTRAINT contacts_no_self_check CHECK (user_id <> contact_user_id),
    CONSTRAINT contacts_nickname_check CHECK (char_length(nickname) BETWEEN 1 AND 64),
    CONSTRAINT contacts_source_check CHECK (source IN ('manual', 'phone_book', 'invite', 'conversation'))
);

CREATE INDEX IF NOT EXISTS contacts_contact_user_id_idx ON users.contacts (contact_user_id);

COMMENT ON TABLE  users.contacts IS 'Directed contact list: user_id has contact_user_id in their address book (the reverse row may or may not exist).';
COMMENT ON COLUMN users.contacts.nickname IS 'Private name the owner gave this contact, shown instead of the display name.';
COMMENT ON COLUMN users.contacts.source IS 'How the contact was added: manual, phone_book (address-book sync), invite, conversation.';

CREATE TABLE IF NOT EXISTS users.blocked_users (
    blocker_id  uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    blocked_id  uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT blocked_users_pkey PRIMARY KEY (blocker_id, blocked_id),
    CONSTRAINT blocked_users_no_self_check CHECK (blocker_id <> blocked_id)
);

CREATE INDEX IF NOT EXISTS blocked_users_blocked_id_idx ON users.blocked_users (blocked_id);

COMMENT ON TABLE  users.blocked_users IS 'blocker_id has blocked blocked_id: no direct messages, presence or profile details flow from blocker to blocked.';
COMMENT ON COLUMN users.blocked_users.reason IS 'Optional private note or report category given when blocking.';

CREATE TABLE IF NOT EXISTS users.settings (
    user_id                   uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    last_seen_visibility      text        NOT NULL DEFAULT 'everyone',
    profile_photo_visibility  text        NOT NULL DEFAULT 'everyone',
    read_receipts_enabled     boolean     NOT NULL DEFAULT true,
    allow_messages_from       text        NOT NULL DEFAULT 'everyone',
    allow_group_invites_from  text        NOT NULL DEFAULT 'everyone',
    notifications_enabled     boolean     NOT NULL DEFAULT true,
    notification_previews     boolean     NOT NULL DEFAULT true,
    notification_sound        text        NOT NULL DEFAULT 'default',
    quiet_hours_start         time,
    quiet_hours_end           time,
    locale                    text        NOT NULL DEFAULT 'en',
    timezone                  text        NOT NULL DEFAULT 'UTC',
    theme                     text        NOT NULL DEFAULT 'system',
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT settings_pkey PRIMARY KEY (user_id),
    CONSTRAINT settings_last_seen_visibility_check
        CHECK (last_seen_visibility IN ('everyone', 'contacts', 'nobody')),
    CONSTRAINT settings_profile_photo_visibility_check
        CHECK (profile_photo_visibility IN ('everyone', 'contacts', 'nobody')),
    CONSTRAINT settings_allow_messages_from_check
        CHECK (allow_messages_from IN ('everyone', 'contacts')),
    CONSTRAINT settings_allow_group_invites_from_check
        CHECK (allow_group_invites_from IN ('everyone', 'contacts', 'nobody')),
    CONSTRAINT settings_quiet_hours_check
        CHECK ((quiet_hours_start IS NULL) = (quiet_hours_end IS NULL)),
    CONSTRAINT settings_locale_check CHECK (locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
    CONSTRAINT settings_theme_check CHECK (theme IN ('system', 'light', 'dark'))
);

COMMENT ON TABLE  users.settings IS 'Per-user privacy, notification and locale preferences (1:1 with auth.users).';
COMMENT ON COLUMN users.settings.last_seen_visibility IS 'Who may see last-seen / online status: everyone, contacts or nobody.';
COMMENT ON COLUMN users.settings.profile_photo_visibility IS 'Who may see the avatar: everyone, contacts or nobody.';
COMMENT ON COLUMN users.settings.read_receipts_enabled IS 'Whether this user sends read receipts (and, reciprocally, sees others'').';
COMMENT ON COLUMN users.settings.allow_messages_from IS 'Who may start a direct conversation with this user: everyone or contacts.';
COMMENT ON COLUMN users.settings.allow_group_invites_from IS 'Who may add this user to groups: everyone, contacts or nobody.';
COMMENT ON COLUMN users.settings.notification_previews IS 'Whether push notifications include message text.';
COMMENT ON COLUMN users.settings.notifications_enabled IS 'Master switch for push notifications; per-conversation muting is in messages.conversation_settings.';
COMMENT ON COLUMN users.settings.notification_sound IS 'Name of the notification sound in the client''s sound set; ''default'' or ''none''.';
COMMENT ON COLUMN users.settings.quiet_hours_start IS 'Start of the daily do-not-disturb window, local time in timezone; both ends NULL when unused. The window may wrap past midnight.';
COMMENT ON COLUMN users.settings.quiet_hours_end IS 'End of the daily do-not-disturb window, local time in timezone.';
COMMENT ON COLUMN users.settings.locale IS 'BCP 47 language tag for UI and notifications, e.g. en, pt-BR.';
COMMENT ON COLUMN users.settings.timezone IS 'IANA time zone name, e.g. Europe/Berlin (validated by the application).';


-- =============================================================================
-- messages
-- =============================================================================

CREATE TABLE IF NOT EXISTS messages.conversations (
    id               uuid        NOT NULL DEFAULT gen_random_uuid(),
    type             text        NOT NULL,
    title            text,
    description      text,
    avatar_url       text,
    direct_key       text,
    is_public        boolean     NOT NULL DEFAULT false,
    created_by       uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    last_message_id  uuid,       -- FK to messages.messages added below (circular reference)
    last_message_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversations_pkey PRIMARY KEY (id),
    CONSTRAINT conversations_direct_key_key UNIQUE (direct_key),
    CONSTRAINT conversations_type_check CHECK (type IN ('direct', 'group', 'channel')),
    CONSTRAINT conversations_direct_key_check
        CHECK ((type = 'direct') = (direct_key IS NOT NULL)
               AND direct_key ~ '^[0-9a-f-]{36}:[0-9a-f-]{36}$'),
    CONSTRAINT conversations_title_check
        CHECK (CASE WHEN type = 'direct' THEN title IS NULL
                    ELSE char_length(title) BETWEEN 1 AND 128 END),
    CONSTRAINT conversations_public_check CHECK (NOT is_public OR type = 'channel'),
    CONSTRAINT conversations_avatar_url_check CHECK (avatar_url ~ '^https://')
);

CREATE INDEX IF NOT EXISTS conversations_created_by_idx ON messages.conversations (created_by) WHERE created_by IS NOT NULL;
CREATE INDEX IF NOT EXISTS conversations_last_message_id_idx ON messages.conversations (last_message_id) WHERE last_message_id IS NOT NULL;

COMMENT ON TABLE  messages.conversations IS 'A conversation: direct (exactly two users), group (invited members) or channel (broadcast; admins post).';
COMMENT ON COLUMN messages.conversations.title IS 'Name of a group or channel; always NULL for direct conversations (clients show the other user).';
COMMENT ON COLUMN messages.conversations.direct_key IS 'For direct conversations only: "<lower user uuid>:<higher user uuid>" (lexicographic order); UNIQUE, so two users share at most one direct conversation.';
COMMENT ON COLUMN messages.conversations.is_public IS 'Channels only: listed in search and joinable without an invite.';
COMMENT ON COLUMN messages.conversations.created_by IS 'Creator; NULL once that account is deleted. Ownership is the owner role in conversation_participants.';
COMMENT ON COLUMN messages.conversations.last_message_id IS 'Denormalised latest message, for conversation lists; maintained by the application, NULL on hard delete of that message.';
COMMENT ON COLUMN messages.conversations.last_message_at IS 'created_at of last_message_id; conversation lists sort on it.';

CREATE TABLE IF NOT EXISTS messages.messages (
    id                   uuid        NOT NULL DEFAULT gen_random_uuid(),
    conversation_id      uuid        NOT NULL REFERENCES messages.conversations (id) ON DELETE CASCADE,
    sender_id            uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    type                 text        NOT NULL DEFAULT 'text',
    body                 text,
    metadata             jsonb       NOT NULL DEFAULT '{}',
    reply_to_message_id  uuid        REFERENCES messages.messages (id) ON DELETE SET NULL,
    thread_id            uuid,       -- FK (conversation_id, thread_id) to messages.threads added below
    client_message_id    text,
    edited_at            timestamptz,
    deleted_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_pkey PRIMARY KEY (id),
    CONSTRAINT messages_conversation_id_id_key UNIQUE (conversation_id, id),
    CONSTRAINT messages_sender_client_message_id_key UNIQUE (sender_id, client_message_id),
    CONSTRAINT messages_type_check
        CHECK (type IN ('text', 'image', 'video', 'audio', 'voice', 'file', 'sticker',
                        'location', 'contact', 'poll', 'system')),
    CONSTRAINT messages_body_check CHECK (char_length(body) <= 16000),
    CONSTRAINT messages_text_body_check
        CHECK (type <> 'text' OR body IS NOT NULL OR deleted_at IS NOT NULL),
    CONSTRAINT messages_metadata_check CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT messages_not_own_thread_check CHECK (thread_id <> id),
    CONSTRAINT messages_edited_at_check CHECK (edited_at >= created_at),
    CONSTRAINT messages_deleted_at_check CHECK (deleted_at >= created_at)
);

CREATE INDEX IF NOT EXISTS messages_conversation_timeline_idx ON messages.messages (conversation_id, created_at, id);
CREATE INDEX IF NOT EXISTS messages_reply_to_message_id_idx ON messages.messages (reply_to_message_id) WHERE reply_to_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_thread_idx ON messages.messages (conversation_id, thread_id, created_at) WHERE thread_id IS NOT NULL;

COMMENT ON TABLE  messages.messages IS 'Every message of every conversation. Deletion is soft (deleted_at); hard deletes only happen with the conversation or by retention jobs.';
COMMENT ON COLUMN messages.messages.sender_id IS 'Author; NULL for system messages and after the author''s account is deleted.';
COMMENT ON COLUMN messages.messages.type IS 'Content kind; non-text kinds carry their payload in metadata and/or message_attachments.';
COMMENT ON COLUMN messages.messages.body IS 'Text content (or caption); the application may blank it on soft delete.';
COMMENT ON COLUMN messages.messages.metadata IS 'Type-specific payload as a JSON object (e.g. coordinates for location, vCard for contact, event data for system).';
COMMENT ON COLUMN messages.messages.reply_to_message_id IS 'Message quoted by this one; NULL if none or if the quoted message was hard-deleted.';
COMMENT ON COLUMN messages.messages.thread_id IS 'Root message id of the thread this message replies in (messages.threads.root_message_id); NULL for top-level messages. Hard-deleting the thread deletes its replies.';
COMMENT ON COLUMN messages.messages.client_message_id IS 'Client-generated idempotency key; UNIQUE per sender so a retried send cannot create a duplicate.';
COMMENT ON COLUMN messages.messages.edited_at IS 'Time of the latest edit; previous versions are in message_edits.';
COMMENT ON COLUMN messages.messages.deleted_at IS 'Soft-delete time; the row is kept so replies, receipts and threads stay consistent.';

CREATE TABLE IF NOT EXISTS messages.conversation_participants (
    conversation_id       uuid        NOT NULL REFERENCES messages.conversations (id) ON DELETE CASCADE,
    user_id               uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    role                  text        NOT NULL DEFAULT 'member',
    invited_by            uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    joined_at             timestamptz NOT NULL DEFAULT now(),
    left_at               timestamptz,
    last_read_message_id  uuid        REFERENCES messages.messages (id) ON DELETE SET NULL,
    last_read_at          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversation_participants_pkey PRIMARY KEY (conversation_id, user_id),
    CONSTRAINT conversation_participants_role_check CHECK (role IN ('owner', 'admin', 'member')),
    CONSTRAINT conversation_participants_left_at_check CHECK (left_at >= joined_at)
);

CREATE INDEX IF NOT EXISTS conversation_participants_user_id_idx ON messages.conversation_participants (user_id);
CREATE INDEX IF NOT EXISTS conversation_participants_invited_by_idx ON messages.conversation_participants (invited_by) WHERE invited_by IS NOT NULL;
CREATE INDEX IF NOT EXISTS conversation_participants_last_read_message_id_idx ON messages.conversation_participants (last_read_message_id) WHERE last_read_message_id IS NOT NULL;

COMMENT ON TABLE  messages.conversation_participants IS 'Membership of users in conversations. Rows are kept after leaving (left_at set) so history and re-joins keep working.';
COMMENT ON COLUMN messages.conversation_participants.role IS 'owner (one per group/channel), admin (manage members, post in channels) or member.';
COMMENT ON COLUMN messages.conversation_participants.invited_by IS 'Who added this member; NULL for creators, self-joins and deleted accounts.';
COMMENT ON COLUMN messages.conversation_participants.left_at IS 'When the user left or was removed; NULL while a current member.';
COMMENT ON COLUMN messages.conversation_participants.last_read_message_id IS 'Read marker: newest message this user has read here; unread count = messages after it.';
COMMENT ON COLUMN messages.conversation_participants.last_read_at IS 'When the read marker last moved.';

CREATE TABLE IF NOT EXISTS messages.conversation_settings (
    conversation_id     uuid        NOT NULL,
    user_id             uuid        NOT NULL,
    muted_until         timestamptz,
    notification_level  text        NOT NULL DEFAULT 'all',
    archived_at         timestamptz,
    pinned_at           timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversation_settings_pkey PRIMARY KEY (conversation_id, user_id),
    CONSTRAINT conversation_settings_participant_fkey FOREIGN KEY (conversation_id, user_id)
        REFERENCES messages.conversation_participants (conversation_id, user_id) ON DELETE CASCADE,
    CONSTRAINT conversation_settings_notification_level_check
        CHECK (notification_level IN ('all', 'mentions', 'none'))
);

COMMENT ON TABLE  messages.conversation_settings IS 'Per-user preferences for one conversation (mute, archive, pin); absent row = defaults.';
COMMENT ON COLUMN messages.conversation_settings.muted_until IS 'Notifications muted until this time; ''infinity'' = muted indefinitely; NULL = not muted.';
COMMENT ON COLUMN messages.conversation_settings.notification_level IS 'Which messages notify when not muted: all, mentions (only @-mentions and replies) or none.';
COMMENT ON COLUMN messages.conversation_settings.archived_at IS 'When the user archived the conversation; NULL = not archived.';
COMMENT ON COLUMN messages.conversation_settings.pinned_at IS 'When the user pinned the conversation to the top of the list; NULL = not pinned. Pinned conversations sort by it.';

CREATE TABLE IF NOT EXISTS messages.conversation_invites (
    id               uuid        NOT NULL DEFAULT gen_random_uuid(),
    conversation_id  uuid        NOT NULL REFERENCES messages.conversations (id) ON DELETE CASCADE,
    kind             text        NOT NULL,
    invitee_id       uuid        REFERENCES auth.users (id) ON DELETE CASCADE,
    code             text,
    created_by       uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    status           text        NOT NULL DEFAULT 'pending',
    max_uses         integer,
    use_count        integer     NOT NULL DEFAULT 0,
    expires_at       timestamptz,
    responded_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversation_invites_pkey PRIMARY KEY (id),
    CONSTRAINT conversation_invites_code_key UNIQUE (code),
    CONSTRAINT conversation_invites_kind_check CHECK (kind IN ('user', 'link')),
    CONSTRAINT conversation_invites_target_check
        CHECK (CASE kind WHEN 'user' THEN invitee_id IS NOT NULL AND code IS NULL
                         WHEN 'link' THEN code IS NOT NULL AND invitee_id IS NULL END),
    CONSTRAINT conversation_invites_code_format_check CHECK (code ~ '^[A-Za-z0-9_-]{8,64}$'),
    CONSTRAINT conversation_invites_status_check
        CHECK (status IN ('pending', 'accepted', 'declined', 'revoked', 'expired')),
    CONSTRAINT conversation_invites_uses_check
        CHECK (use_count >= 0 AND max_uses > 0 AND use_count <= max_uses),
    CONSTRAINT conversation_invites_link_uses_check CHECK (kind = 'link' OR max_uses IS NULL)
);

CREATE INDEX IF NOT EXISTS conversation_invites_conversation_id_idx ON messages.conversation_invites (conversation_id);
CREATE INDEX IF NOT EXISTS conversation_invites_invitee_id_idx ON messages.conversation_invites (invitee_id) WHERE invitee_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS conversation_invites_created_by_idx ON messages.conversation_invites (created_by) WHERE created_by IS NOT NULL;
-- At most one open invitation of a given user to a given conversation.
CREATE UNIQUE INDEX IF NOT EXISTS conversation_invites_pending_user_key
    ON messages.conversation_invites (conversation_id, invitee_id) WHERE status = 'pending' AND kind = 'user';

COMMENT ON TABLE  messages.conversation_invites IS 'Invitations to a group or channel: to a specific user (kind user) or by shareable link code (kind link).';
COMMENT ON COLUMN messages.conversation_invites.kind IS 'user: invitee_id is set; link: code is set and may be used by anyone holding it.';
COMMENT ON COLUMN messages.conversation_invites.code IS 'URL-safe secret of a link invite.';
COMMENT ON COLUMN messages.conversation_invites.status IS 'pending, accepted, declined (user invites), revoked (by an admin) or expired.';
COMMENT ON COLUMN messages.conversation_invites.max_uses IS 'Link invites only: how many joins the link allows; NULL = unlimited.';
COMMENT ON COLUMN messages.conversation_invites.use_count IS 'How many users have joined through this invite.';
COMMENT ON COLUMN messages.conversation_invites.responded_at IS 'When a user invite was accepted or declined.';
COMMENT ON COLUMN messages.conversation_invites.expires_at IS 'After this time the invite can no longer be used; NULL = no expiry.';

CREATE TABLE IF NOT EXISTS messages.message_status (
    message_id    uuid        NOT NULL REFERENCES messages.messages (id) ON DELETE CASCADE,
    user_id       uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    status        text        NOT NULL DEFAULT 'sent',
    delivered_at  timestamptz,
    read_at       timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_status_pkey PRIMARY KEY (message_id, user_id),
    CONSTRAINT message_status_status_check CHECK (status IN ('sent', 'delivered', 'read')),
    CONSTRAINT message_status_timestamps_check
        CHECK (CASE status
                   WHEN 'sent'      THEN delivered_at IS NULL AND read_at IS NULL
                   WHEN 'delivered' THEN delivered_at IS NOT NULL AND read_at IS NULL
                   WHEN 'read'      THEN delivered_at IS NOT NULL AND read_at IS NOT NULL
                                             AND read_at >= delivered_at
               END)
);

CREATE INDEX IF NOT EXISTS message_status_user_id_idx ON messages.message_status (user_id);

COMMENT ON TABLE  messages.message_status IS 'Per-recipient delivery state of a message (no row for the sender).';
COMMENT ON COLUMN messages.message_status.status IS 'sent (stored, not yet on the recipient''s device), delivered, read. Only moves forward.';
COMMENT ON COLUMN messages.message_status.delivered_at IS 'When a device of the recipient acknowledged the message.';
COMMENT ON COLUMN messages.message_status.read_at IS 'When the recipient read it; reading implies delivery, so delivered_at is set too.';

CREATE TABLE IF NOT EXISTS messages.message_reactions (
    message_id  uuid        NOT NULL REFERENCES messages.messages (id) ON DELETE CASCADE,
    user_id     uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    emoji       text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_reactions_pkey PRIMARY KEY (message_id, user_id, emoji),
    CONSTRAINT message_reactions_emoji_check CHECK (char_length(emoji) BETWEEN 1 AND 32)
);

CREATE INDEX IF NOT EXISTS message_reactions_user_id_idx ON messages.message_reactions (user_id);

COMMENT ON TABLE  messages.message_reactions IS 'Emoji reactions; a user can add several different emoji to one message, each once.';
COMMENT ON COLUMN messages.message_reactions.emoji IS 'The reaction: a Unicode emoji sequence or a custom emoji shortcode.';

CREATE TABLE IF NOT EXISTS messages.message_attachments (
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    message_id  uuid        NOT NULL REFERENCES messages.messages (id) ON DELETE CASCADE,
    file_id     uuid        NOT NULL REFERENCES media.files (id) ON DELETE RESTRICT,
    position    smallint    NOT NULL DEFAULT 0,
    caption     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_attachments_pkey PRIMARY KEY (id),
    CONSTRAINT message_attachments_message_position_key UNIQUE (message_id, position),
    CONSTRAINT message_attachments_position_check CHECK (position >= 0),
    CONSTRAINT message_attachments_caption_check CHECK (char_length(caption) <= 1024)
);

CREATE INDEX IF NOT EXISTS message_attachments_file_id_idx ON messages.message_attachments (file_id);

COMMENT ON TABLE  messages.message_attachments IS 'Files attached to a message, in display order. A file still attached to a message cannot be deleted (ON DELETE RESTRICT): media clean-up detaches first.';
COMMENT ON COLUMN messages.message_attachments.position IS 'Zero-based display order within the message (albums).';
COMMENT ON COLUMN messages.message_attachments.caption IS 'Per-attachment caption in albums; the message body is the overall caption.';

CREATE TABLE IF NOT EXISTS messages.message_mentions (
    message_id         uuid        NOT NULL REFERENCES messages.messages (id) ON DELETE CASCADE,
    mentioned_user_id  uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    offset_start       integer,
    offset_length      integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_mentions_pkey PRIMARY KEY (message_id, mentioned_user_id),
    CONSTRAINT message_mentions_offset_check
        CHECK ((offset_start IS NULL) = (offset_length IS NULL) AND offset_start >= 0 AND offset_length > 0)
);

CREATE INDEX IF NOT EXISTS message_mentions_mentioned_user_id_idx ON messages.message_mentions (mentioned_user_id, created_at);

COMMENT ON TABLE  messages.message_mentions IS '@-mentions of users in messages; drives mention notifications and the "mentions" inbox.';
COMMENT ON COLUMN messages.message_mentions.offset_start IS 'Start of the mention in body, in characters (code points).';
COMMENT ON COLUMN messages.message_mentions.offset_length IS 'Length of the mention in body, in characters.';

CREATE TABLE IF NOT EXISTS messages.message_edits (
    id                 bigint      GENERATED ALWAYS AS IDENTITY,
    message_id         uuid        NOT NULL REFERENCES messages.messages (id) ON DELETE CASCADE,
    editor_id          uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    previous_body      text,
    previous_metadata  jsonb,
    edited_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_edits_pkey PRIMARY KEY (id)
);

CREATE INDEX IF NOT EXISTS message_edits_message_id_idx ON messages.message_edits (message_id, edited_at);
CREATE INDEX IF NOT EXISTS message_edits_editor_id_idx ON messages.message_edits (editor_id) WHERE editor_id IS NOT NULL;

COMMENT ON TABLE  messages.message_edits IS 'Edit history: one row per edit, holding the content as it was before that edit.';
COMMENT ON COLUMN messages.message_edits.editor_id IS 'Who edited (the author, or an admin in channels); NULL after account deletion.';
COMMENT ON COLUMN messages.message_edits.previous_body IS 'Message body before this edit.';
COMMENT ON COLUMN messages.message_edits.previous_metadata IS 'Message metadata before this edit, when the edit changed it.';

CREATE TABLE IF NOT EXISTS messages.message_forwards (
    message_id                uuid        NOT NULL REFERENCES messages.messages (id) ON DELETE CASCADE,
    original_message_id       uuid        REFERENCES messages.messages (id) ON DELETE SET NULL,
    original_conversation_id  uuid        REFERENCES messages.conversations (id) ON DELETE SET NULL,
    original_sender_id        uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    original_sent_at          timestamptz NOT NULL,
    forward_depth             integer     NOT NULL DEFAULT 1,
    created_at                timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_forwards_pkey PRIMARY KEY (message_id),
    CONSTRAINT message_forwards_not_self_check CHECK (original_message_id <> message_id),
    CONSTRAINT message_forwards_forward_depth_check CHECK (forward_depth >= 1)
);

CREATE INDEX IF NOT EXISTS message_forwards_original_message_id_idx ON messages.message_forwards (original_message_id) WHERE original_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS message_forwards_original_conversation_id_idx ON messages.message_forwards (original_conversation_id) WHERE original_conversation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS message_forwards_original_sender_id_idx ON messages.message_forwards (original_sender_id) WHERE original_sender_id IS NOT NULL;

COMMENT ON TABLE  messages.message_forwards IS 'Provenance of forwarded messages: message_id is the new copy, the original_* columns point at the source (NULL once it is gone).';
COMMENT ON COLUMN messages.message_forwards.original_sent_at IS 'created_at of the original message, kept even after the original is deleted.';
COMMENT ON COLUMN messages.message_forwards.forward_depth IS 'How many forwards separate this copy from the first original ("forwarded many times" label).';

CREATE TABLE IF NOT EXISTS messages.link_previews (
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    message_id   uuid        NOT NULL REFERENCES messages.messages (id) ON DELETE CASCADE,
    url          text        NOT NULL,
    title        text,
    description  text,
    image_url    text,
    site_name    text,
    fetched_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT link_previews_pkey PRIMARY KEY (id),
    CONSTRAINT link_previews_message_url_key UNIQUE (message_id, url),
    CONSTRAINT link_previews_url_check CHECK (url ~ '^https?://'),
    CONSTRAINT link_previews_image_url_check CHECK (image_url ~ '^https?://')
);

COMMENT ON TABLE  messages.link_previews IS 'Open Graph style previews of URLs found in a message, fetched server-side.';
COMMENT ON COLUMN messages.link_previews.url IS 'The URL as it appears in the message body.';
COMMENT ON COLUMN messages.link_previews.image_url IS 'Preview image URL as published by the site (proxied by the media service before display).';

CREATE TABLE IF NOT EXISTS messages.pinned_messages (
    conversation_id  uuid        NOT NULL,
    message_id       uuid        NOT NULL,
    pinned_by        uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    pinned_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pinned_messages_pkey PRIMARY KEY (conversation_id, message_id),
    CONSTRAINT pinned_messages_message_fkey FOREIGN KEY (conversation_id, message_id)
        REFERENCES messages.messages (conversation_id, id) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS pinned_messages_pinned_by_idx ON messages.pinned_messages (pinned_by) WHERE pinned_by IS NOT NULL;

COMMENT ON TABLE  messages.pinned_messages IS 'Messages pinned to the top of a conversation for all members. The composite FK guarantees the message belongs to that conversation.';
COMMENT ON COLUMN messages.pinned_messages.pinned_by IS 'Member who pinned it; NULL after account deletion.';

CREATE TABLE IF NOT EXISTS messages.starred_messages (
    user_id     uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    message_id  uuid        NOT NULL REFERENCES messages.messages (id) ON DELETE CASCADE,
    starred_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT starred_messages_pkey PRIMARY KEY (user_id, message_id)
);

CREATE INDEX IF NOT EXISTS starred_messages_message_id_idx ON messages.starred_messages (message_id);

COMMENT ON TABLE  messages.starred_messages IS 'Private bookmarks: messages a user starred for later.';

CREATE TABLE IF NOT EXISTS messages.drafts (
    conversation_id      uuid        NOT NULL,
    user_id              uuid        NOT NULL,
    body                 text        NOT NULL,
    reply_to_message_id  uuid        REFERENCES messages.messages (id) ON DELETE SET NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT drafts_pkey PRIMARY KEY (conversation_id, user_id),
    CONSTRAINT drafts_participant_fkey FOREIGN KEY (conversation_id, user_id)
        REFERENCES messages.conversation_participants (conversation_id, user_id) ON DELETE CASCADE,
    CONSTRAINT drafts_body_check CHECK (char_length(body) <= 16000)
);

CREATE INDEX IF NOT EXISTS drafts_reply_to_message_id_idx ON messages.drafts (reply_to_message_id) WHERE reply_to_message_id IS NOT NULL;

COMMENT ON TABLE  messages.drafts IS 'Unsent composer text, one per user and conversation, synchronised across the user''s devices.';
COMMENT ON COLUMN messages.drafts.reply_to_message_id IS 'Message the draft is replying to, if any.';

CREATE TABLE IF NOT EXISTS messages.scheduled_messages (
    id                   uuid        NOT NULL DEFAULT gen_random_uuid(),
    conversation_id      uuid        NOT NULL,
    sender_id            uuid        NOT NULL,
    body                 text,
    metadata             jsonb       NOT NULL DEFAULT '{}',
    reply_to_message_id  uuid        REFERENCES messages.messages (id) ON DELETE SET NULL,
    scheduled_for        timestamptz NOT NULL,
    status               text        NOT NULL DEFAULT 'pending',
    sent_message_id      uuid        REFERENCES messages.messages (id) ON DELETE SET NULL,
    failure_reason       text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT scheduled_messages_pkey PRIMARY KEY (id),
    CONSTRAINT scheduled_messages_participant_fkey FOREIGN KEY (conversation_id, sender_id)
        REFERENCES messages.conversation_participants (conversation_id, user_id) ON DELETE CASCADE,
    CONSTRAINT scheduled_messages_status_check
        CHECK (status IN ('pending', 'sent', 'cancelled', 'failed')),
    CONSTRAINT scheduled_messages_failure_check
        CHECK ((status = 'failed') = (failure_reason IS NOT NULL)),
    CONSTRAINT scheduled_messages_body_check CHECK (char_length(body) <= 16000),
    CONSTRAINT scheduled_messages_metadata_check CHECK (jsonb_typeof(metadata) = 'object')
);

CREATE INDEX IF NOT EXISTS scheduled_messages_participant_idx ON messages.scheduled_messages (conversation_id, sender_id);
CREATE INDEX IF NOT EXISTS scheduled_messages_reply_to_message_id_idx ON messages.scheduled_messages (reply_to_message_id) WHERE reply_to_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS scheduled_messages_sent_message_id_idx ON messages.scheduled_messages (sent_message_id) WHERE sent_message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS scheduled_messages_due_idx ON messages.scheduled_messages (scheduled_for) WHERE status = 'pending';

COMMENT ON TABLE  messages.scheduled_messages IS 'Messages queued to be sent later. The dispatcher picks due rows (status pending, scheduled_for <= now()) with FOR UPDATE SKIP LOCKED.';
COMMENT ON COLUMN messages.scheduled_messages.sender_id IS 'Scheduling user; must be a participant (composite FK), the schedule disappears with the membership row.';
COMMENT ON COLUMN messages.scheduled_messages.metadata IS 'Same meaning as messages.messages.metadata, copied into the message when sent.';
COMMENT ON COLUMN messages.scheduled_messages.scheduled_for IS 'When the message should be sent.';
COMMENT ON COLUMN messages.scheduled_messages.status IS 'pending, sent (sent_message_id points at the result), cancelled or failed (see failure_reason).';
COMMENT ON COLUMN messages.scheduled_messages.sent_message_id IS 'The message created when this was dispatched.';

CREATE TABLE IF NOT EXISTS messages.polls (
    id               uuid        NOT NULL DEFAULT gen_random_uuid(),
    message_id       uuid        NOT NULL REFERENCES messages.messages (id) ON DELETE CASCADE,
    question         text        NOT NULL,
    allows_multiple  boolean     NOT NULL DEFAULT false,
    is_anonymous     boolean     NOT NULL DEFAULT false,
    closes_at        timestamptz,
    closed_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT polls_pkey PRIMARY KEY (id),
    CONSTRAINT polls_message_id_key UNIQUE (message_id),
    CONSTRAINT polls_question_check CHECK (char_length(question) BETWEEN 1 AND 300)
);

COMMENT ON TABLE  messages.polls IS 'A poll carried by a message of type poll (1:1).';
COMMENT ON COLUMN messages.polls.allows_multiple IS 'Whether a voter may choose several options (enforced by the application).';
COMMENT ON COLUMN messages.polls.is_anonymous IS 'Whether voter identities are hidden from other participants (they are still stored, to prevent double voting).';
COMMENT ON COLUMN messages.polls.closes_at IS 'Scheduled automatic close; NULL = open until closed manually.';
COMMENT ON COLUMN messages.polls.closed_at IS 'When the poll actually closed; no votes are accepted afterwards.';

CREATE TABLE IF NOT EXISTS messages.poll_options (
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    poll_id     uuid        NOT NULL REFERENCES messages.polls (id) ON DELETE CASCADE,
    position    smallint    NOT NULL,
    label       text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT poll_options_pkey PRIMARY KEY (id),
    CONSTRAINT poll_options_poll_position_key UNIQUE (poll_id, position),
    CONSTRAINT poll_options_poll_id_id_key UNIQUE (poll_id, id),
    CONSTRAINT poll_options_position_check CHECK (position >= 0),
    CONSTRAINT poll_options_label_check CHECK (char_length(label) BETWEEN 1 AND 100)
);

COMMENT ON TABLE  messages.poll_options IS 'Answer options of a poll, in display order.';
COMMENT ON COLUMN messages.poll_options.position IS 'Zero-based display order.';

CREATE TABLE IF NOT EXISTS messages.poll_votes (
    poll_id    uuid        NOT NULL,
    option_id  uuid        NOT NULL,
    user_id    uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    voted_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT poll_votes_pkey PRIMARY KEY (poll_id, option_id, user_id),
    CONSTRAINT poll_votes_option_fkey FOREIGN KEY (poll_id, option_id)
        REFERENCES messages.poll_options (poll_id, id) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS poll_votes_user_id_idx ON messages.poll_votes (user_id);
CREATE INDEX IF NOT EXISTS poll_votes_poll_user_idx ON messages.poll_votes (poll_id, user_id);

COMMENT ON TABLE  messages.poll_votes IS 'One row per chosen option and voter. poll_id is carried so the composite FK guarantees the option belongs to that poll.';

CREATE TABLE IF NOT EXISTS messages.threads (
    root_message_id  uuid        NOT NULL,
    conversation_id  uuid        NOT NULL,
    reply_count      integer     NOT NULL DEFAULT 0,
    last_reply_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT threads_pkey PRIMARY KEY (root_message_id),
    CONSTRAINT threads_conversation_root_key UNIQUE (conversation_id, root_message_id),
    CONSTRAINT threads_root_message_fkey FOREIGN KEY (conversation_id, root_message_id)
        REFERENCES messages.messages (conversation_id, id) ON DELETE CASCADE,
    CONSTRAINT threads_reply_count_check CHECK (reply_count >= 0)
);

CREATE INDEX IF NOT EXISTS threads_conversation_activity_idx ON messages.threads (conversation_id, last_reply_at);

COMMENT ON TABLE  messages.threads IS 'Reply threads, keyed by the message that started them; replies point here through messages.messages.thread_id.';
COMMENT ON COLUMN messages.threads.root_message_id IS 'Message the thread hangs off; must belong to conversation_id (composite FK).';
COMMENT ON COLUMN messages.threads.reply_count IS 'Denormalised number of live replies, maintained by the application.';
COMMENT ON COLUMN messages.threads.conversation_id IS 'Conversation of the root message (carried for the composite FKs and per-conversation thread lists).';
COMMENT ON COLUMN messages.threads.last_reply_at IS 'created_at of the newest reply; NULL while there is none.';

-- Circular references, added once both sides exist (guarded for re-runs).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1
                     FROM pg_catalog.pg_constraint
                    WHERE conrelid = 'messages.conversations'::regclass
                      AND conname  = 'conversations_last_message_id_fkey') THEN
        ALTER TABLE messages.conversations
            ADD CONSTRAINT conversations_last_message_id_fkey
            FOREIGN KEY (last_message_id) REFERENCES messages.messages (id) ON DELETE SET NULL;
    END IF;

    IF NOT EXISTS (SELECT 1
                     FROM pg_catalog.pg_constraint
                    WHERE conrelid = 'messages.messages'::regclass
                      AND conname  = 'messages_thread_fkey') THEN
        ALTER TABLE messages.messages
            ADD CONSTRAINT messages_thread_fkey
            FOREIGN KEY (conversation_id, thread_id)
            REFERENCES messages.threads (conversation_id, root_message_id) ON DELETE CASCADE;
    END IF;
END
$$;


-- =============================================================================
-- notifications
-- =============================================================================

CREATE TABLE IF NOT EXISTS notifications.notifications (
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    type        text        NOT NULL,
    actor_id    uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    payload     jsonb       NOT NULL DEFAULT '{}',
    read_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_pkey PRIMARY KEY (id),
    CONSTRAINT notifications_type_check
        CHECK (type IN ('message', 'mention', 'reaction', 'reply', 'contact_joined',
                        'conversation_invite', 'system')),
    CONSTRAINT notifications_payload_check CHECK (jsonb_typeof(payload) = 'object')
);

CREATE INDEX IF NOT EXISTS notifications_user_id_idx ON notifications.notifications (user_id, created_at);
CREATE INDEX IF NOT EXISTS notifications_unread_idx ON notifications.notifications (user_id, created_at) WHERE read_at IS NULL;
CREATE INDEX IF NOT EXISTS notifications_actor_id_idx ON notifications.notifications (actor_id) WHERE actor_id IS NOT NULL;

COMMENT ON TABLE  notifications.notifications IS 'In-app notification feed of a user (the bell); push delivery is a separate side effect.';
COMMENT ON COLUMN notifications.notifications.type IS 'Kind of event; determines the shape of payload.';
COMMENT ON COLUMN notifications.notifications.actor_id IS 'User who caused the notification, if any; NULL for system notices and deleted accounts.';
COMMENT ON COLUMN notifications.notifications.payload IS 'Type-specific data as a JSON object (e.g. conversation_id, message_id, excerpt).';
COMMENT ON COLUMN notifications.notifications.read_at IS 'When the user saw/dismissed it; NULL = unread.';

CREATE TABLE IF NOT EXISTS notifications.push_tokens (
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id         uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    session_id      uuid        REFERENCES auth.sessions (id) ON DELETE SET NULL,
    platform        text        NOT NULL,
    token           text        NOT NULL,
    device_id       text,
    app_version     text,
    last_used_at    timestamptz,
    invalidated_at  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT push_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT push_tokens_token_key UNIQUE (token),
    CONSTRAINT push_tokens_platform_check CHECK (platform IN ('apns', 'fcm', 'web_push'))
);

CREATE INDEX IF NOT EXISTS push_tokens_user_id_idx ON notifications.push_tokens (user_id);
CREATE INDEX IF NOT EXISTS push_tokens_session_id_idx ON notifications.push_tokens (session_id) WHERE session_id IS NOT NULL;

COMMENT ON TABLE  notifications.push_tokens IS 'Push-notification registrations of user devices. A token is unique across users: re-registering on another account moves it.';
COMMENT ON COLUMN notifications.push_tokens.session_id IS 'Auth session the token was registered under; NULL once that session row is gone.';
COMMENT ON COLUMN notifications.push_tokens.platform IS 'Push service: apns (Apple), fcm (Firebase) or web_push.';
COMMENT ON COLUMN notifications.push_tokens.token IS 'Device token / Web Push endpoint issued by the push service.';
COMMENT ON COLUMN notifications.push_tokens.invalidated_at IS 'When the push service reported the token invalid; such tokens are skipped and purged.';
COMMENT ON COLUMN notifications.push_tokens.device_id IS 'Client-generated stable device identifier (same value as auth.sessions.device_id).';
COMMENT ON COLUMN notifications.push_tokens.last_used_at IS 'Last time a push was accepted by the push service for this token.';


-- =============================================================================
-- analytics
-- =============================================================================

CREATE TABLE IF NOT EXISTS analytics.user_sessions (
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id      uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    platform     text        NOT NULL,
    app_version  text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    event_count  integer     NOT NULL DEFAULT 0,
    CONSTRAINT user_sessions_pkey PRIMARY KEY (id),
    CONSTRAINT user_sessions_platform_check CHECK (platform IN ('ios', 'android', 'web', 'desktop')),
    CONSTRAINT user_sessions_ended_at_check CHECK (ended_at >= started_at),
    CONSTRAINT user_sessions_event_count_check CHECK (event_count >= 0)
);

CREATE INDEX IF NOT EXISTS user_sessions_user_id_idx ON analytics.user_sessions (user_id, started_at) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS user_sessions_started_at_idx ON analytics.user_sessions (started_at);

COMMENT ON TABLE  analytics.user_sessions IS 'Client usage sessions (app foreground periods), not auth sessions. Anonymised (user_id NULL) when the account is deleted.';
COMMENT ON COLUMN analytics.user_sessions.ended_at IS 'End of the session; NULL while open or if the client never reported it.';
COMMENT ON COLUMN analytics.user_sessions.event_count IS 'Number of analytics.events recorded in the session.';

CREATE TABLE IF NOT EXISTS analytics.events (
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    session_id   uuid        REFERENCES analytics.user_sessions (id) ON DELETE SET NULL,
    user_id      uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    name         text        NOT NULL,
    properties   jsonb       NOT NULL DEFAULT '{}',
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_pkey PRIMARY KEY (id),
    CONSTRAINT events_name_check CHECK (name ~ '^[a-z][a-z0-9_.]{0,99}$'),
    CONSTRAINT events_properties_check CHECK (jsonb_typeof(properties) = 'object')
);

CREATE INDEX IF NOT EXISTS events_session_id_idx ON analytics.events (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_user_id_idx ON analytics.events (user_id, occurred_at) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_name_occurred_at_idx ON analytics.events (name, occurred_at);
CREATE INDEX IF NOT EXISTS events_received_at_brin_idx ON analytics.events USING brin (received_at);

COMMENT ON TABLE  analytics.events IS 'Raw product-analytics events (append-only, high volume). Anonymised (user_id NULL) when the account is deleted.';
COMMENT ON COLUMN analytics.events.name IS 'Event name in snake/dot case, e.g. message.sent, call.started.';
COMMENT ON COLUMN analytics.events.properties IS 'Event properties as a JSON object; no message content or other personal data.';
COMMENT ON COLUMN analytics.events.occurred_at IS 'Client-side time of the event (may be skewed or late).';
COMMENT ON COLUMN analytics.events.received_at IS 'Server-side ingestion time; monotonic enough for the BRIN index and retention.';

CREATE TABLE IF NOT EXISTS analytics.daily_active_users (
    activity_date  date        NOT NULL,
    user_id        uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    first_seen_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    session_count  integer     NOT NULL DEFAULT 1,
    message_count  integer     NOT NULL DEFAULT 0,
    CONSTRAINT daily_active_users_pkey PRIMARY KEY (activity_date, user_id),
    CONSTRAINT daily_active_users_seen_check CHECK (last_seen_at >= first_seen_at),
    CONSTRAINT daily_active_users_counts_check CHECK (session_count >= 0 AND message_count >= 0)
);

CREATE INDEX IF NOT EXISTS daily_active_users_user_id_idx ON analytics.daily_active_users (user_id);

COMMENT ON TABLE  analytics.daily_active_users IS 'One row per user and UTC day with any activity; DAU/WAU/MAU are counts over it. Rows go with the account (CASCADE), so historic counts are frozen into reports, not recomputed.';
COMMENT ON COLUMN analytics.daily_active_users.activity_date IS 'UTC calendar day.';
COMMENT ON COLUMN analytics.daily_active_users.session_count IS 'analytics.user_sessions started by the user that day.';
COMMENT ON COLUMN analytics.daily_active_users.message_count IS 'Messages the user sent that day.';

CREATE TABLE IF NOT EXISTS analytics.message_metrics (
    metric_date           date        NOT NULL,
    conversation_type     text        NOT NULL,
    messages_sent         bigint      NOT NULL DEFAULT 0,
    media_messages        bigint      NOT NULL DEFAULT 0,
    reactions_added       bigint      NOT NULL DEFAULT 0,
    active_senders        integer     NOT NULL DEFAULT 0,
    active_conversations  integer     NOT NULL DEFAULT 0,
    computed_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_metrics_pkey PRIMARY KEY (metric_date, conversation_type),
    CONSTRAINT message_metrics_conversation_type_check
        CHECK (conversation_type IN ('direct', 'group', 'channel')),
    CONSTRAINT message_metrics_counts_check
        CHECK (messages_sent >= 0 AND media_messages >= 0 AND reactions_added >= 0
               AND active_senders >= 0 AND active_conversations >= 0)
);

COMMENT ON TABLE  analytics.message_metrics IS 'Daily message-volume aggregates per conversation type, recomputed by a nightly job (UPSERT).';
COMMENT ON COLUMN analytics.message_metrics.metric_date IS 'UTC calendar day.';
COMMENT ON COLUMN analytics.message_metrics.media_messages IS 'Messages of a media type (image, video, audio, voice, file, sticker).';
COMMENT ON COLUMN analytics.message_metrics.active_senders IS 'Distinct users who sent at least one message that day.';
COMMENT ON COLUMN analytics.message_metrics.active_conversations IS 'Distinct conversations with at least one message that day.';
COMMENT ON COLUMN analytics.message_metrics.computed_at IS 'When the job last (re)computed the row.';

CREATE TABLE IF NOT EXISTS analytics.feature_usage (
    usage_date    date        NOT NULL,
    feature       text        NOT NULL,
    platform      text        NOT NULL,
    use_count     bigint      NOT NULL DEFAULT 0,
    unique_users  integer     NOT NULL DEFAULT 0,
    computed_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT feature_usage_pkey PRIMARY KEY (usage_date, feature, platform),
    CONSTRAINT feature_usage_feature_check CHECK (feature ~ '^[a-z][a-z0-9_.]{0,99}$'),
    CONSTRAINT feature_usage_platform_check CHECK (platform IN ('ios', 'android', 'web', 'desktop')),
    CONSTRAINT feature_usage_counts_check CHECK (use_count >= 0 AND unique_users >= 0)
);

COMMENT ON TABLE  analytics.feature_usage IS 'Daily usage counts per product feature and platform, aggregated from analytics.events.';
COMMENT ON COLUMN analytics.feature_usage.feature IS 'Feature key, e.g. polls.create, voice_message.send.';
COMMENT ON COLUMN analytics.feature_usage.unique_users IS 'Distinct users who used the feature that day.';

CREATE TABLE IF NOT EXISTS analytics.error_reports (
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    user_id      uuid        REFERENCES auth.users (id) ON DELETE SET NULL,
    session_id   uuid        REFERENCES analytics.user_sessions (id) ON DELETE SET NULL,
    platform     text        NOT NULL,
    app_version  text,
    severity     text        NOT NULL DEFAULT 'error',
    error_code   text,
    message      text        NOT NULL,
    stack_trace  text,
    context      jsonb       NOT NULL DEFAULT '{}',
    fingerprint  text,
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT error_reports_pkey PRIMARY KEY (id),
    CONSTRAINT error_reports_platform_check
        CHECK (platform IN ('ios', 'android', 'web', 'desktop', 'server')),
    CONSTRAINT error_reports_severity_check
        CHECK (severity IN ('debug', 'info', 'warning', 'error', 'fatal')),
    CONSTRAINT error_reports_context_check CHECK (jsonb_typeof(context) = 'object')
);

CREATE INDEX IF NOT EXISTS error_reports_user_id_idx ON analytics.error_reports (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS error_reports_session_id_idx ON analytics.error_reports (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS error_reports_fingerprint_idx ON analytics.error_reports (fingerprint, occurred_at);
CREATE INDEX IF NOT EXISTS error_reports_received_at_brin_idx ON analytics.error_reports USING brin (received_at);

COMMENT ON TABLE  analytics.error_reports IS 'Client and server error/crash reports.';
COMMENT ON COLUMN analytics.error_reports.error_code IS 'Machine-readable error code or exception class.';
COMMENT ON COLUMN analytics.error_reports.platform IS 'Where the error happened: a client platform (ios, android, web, desktop) or server.';
COMMENT ON COLUMN analytics.error_reports.occurred_at IS 'Time of the error as reported by its source (clients may be skewed).';
COMMENT ON COLUMN analytics.error_reports.context IS 'Extra diagnostic data as a JSON object (device model, OS, breadcrumbs).';
COMMENT ON COLUMN analytics.error_reports.fingerprint IS 'Grouping key (hash of normalised stack/code) that merges occurrences of the same error.';


-- =============================================================================
-- location
-- =============================================================================

CREATE TABLE IF NOT EXISTS location.ip_locations (
    id            bigint       GENERATED ALWAYS AS IDENTITY,
    start_ip      inet         NOT NULL,
    end_ip        inet         NOT NULL,
    country_code  char(2)      NOT NULL,
    region        text,
    city          text,
    latitude      numeric(8,6),
    longitude     numeric(9,6),
    time_zone     text,
    source        text         NOT NULL,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    updated_at    timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT ip_locations_pkey PRIMARY KEY (id),
    CONSTRAINT ip_locations_start_ip_key UNIQUE (start_ip),
    CONSTRAINT ip_locations_range_check
        CHECK (family(start_ip) = family(end_ip)
               AND masklen(start_ip) = CASE family(start_ip) WHEN 4 THEN 32 ELSE 128 END
               AND masklen(end_ip)   = CASE family(end_ip)   WHEN 4 THEN 32 ELSE 128 END
               AND start_ip <= end_ip),
    CONSTRAINT ip_locations_country_code_check CHECK (country_code ~ '^[A-Z]{2}$'),
    CONSTRAINT ip_locations_coordinates_check
        CHECK ((latitude IS NULL) = (longitude IS NULL)
               AND latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180)
);

COMMENT ON TABLE  location.ip_locations IS 'IP geolocation database: inclusive ranges start_ip..end_ip (same family, host addresses) mapped to a place. Ranges must not overlap (guaranteed by the import). Look up with: WHERE start_ip <= $1 ORDER BY start_ip DESC LIMIT 1, then check end_ip >= $1.';
COMMENT ON COLUMN location.ip_locations.start_ip IS 'First address of the range (host address, /32 or /128).';
COMMENT ON COLUMN location.ip_locations.end_ip IS 'Last address of the range, inclusive.';
COMMENT ON COLUMN location.ip_locations.country_code IS 'ISO 3166-1 alpha-2 country code, upper case.';
COMMENT ON COLUMN location.ip_locations.region IS 'First-level subdivision (state, province) name.';
COMMENT ON COLUMN location.ip_locations.latitude IS 'WGS84 latitude in degrees of the range''s approximate centre.';
COMMENT ON COLUMN location.ip_locations.longitude IS 'WGS84 longitude in degrees.';
COMMENT ON COLUMN location.ip_locations.time_zone IS 'IANA time zone of the location.';
COMMENT ON COLUMN location.ip_locations.source IS 'Provider and release of the imported data, e.g. geolite2-city:2024-05-01.';

CREATE TABLE IF NOT EXISTS location.user_locations (
    id              bigint       GENERATED ALWAYS AS IDENTITY,
    user_id         uuid         NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    source          text         NOT NULL,
    ip_address      inet,
    ip_location_id  bigint       REFERENCES location.ip_locations (id) ON DELETE SET NULL,
    country_code    char(2),
    region          text,
    city            text,
    latitude        numeric(8,6),
    longitude       numeric(9,6),
    accuracy_m      integer,
    recorded_at     timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT user_locations_pkey PRIMARY KEY (id),
    CONSTRAINT user_locations_source_check CHECK (source IN ('ip', 'gps', 'manual')),
    CONSTRAINT user_locations_ip_check CHECK (source <> 'ip' OR ip_address IS NOT NULL),
    CONSTRAINT user_locations_country_code_check CHECK (country_code ~ '^[A-Z]{2}$'),
    CONSTRAINT user_locations_coordinates_check
        CHECK ((latitude IS NULL) = (longitude IS NULL)
               AND latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180),
    CONSTRAINT user_locations_accuracy_m_check CHECK (accuracy_m >= 0)
);

CREATE INDEX IF NOT EXISTS user_locations_user_id_idx ON location.user_locations (user_id, recorded_at);
CREATE INDEX IF NOT EXISTS user_locations_ip_location_id_idx ON location.user_locations (ip_location_id) WHERE ip_location_id IS NOT NULL;

COMMENT ON TABLE  location.user_locations IS 'History of where a user was, from IP lookup, device GPS or manual entry. The place columns are copied at record time so history survives IP-database refreshes.';
COMMENT ON COLUMN location.user_locations.source IS 'ip (resolved through ip_locations), gps (device-reported) or manual (user-entered).';
COMMENT ON COLUMN location.user_locations.ip_location_id IS 'Range the IP resolved to; NULL for non-IP sources or once that range is replaced.';
COMMENT ON COLUMN location.user_locations.latitude IS 'WGS84 latitude in degrees.';
COMMENT ON COLUMN location.user_locations.longitude IS 'WGS84 longitude in degrees.';
COMMENT ON COLUMN location.user_locations.accuracy_m IS 'Estimated accuracy radius in metres.';


-- -----------------------------------------------------------------------------
-- updated_at triggers: one per table of this migration's schemas that has an
-- updated_at column, created only where missing (idempotent, no churn on
-- re-run).
-- -----------------------------------------------------------------------------

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT n.nspname, c.relname
          FROM pg_catalog.pg_class     c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
         WHERE n.nspname IN ('auth', 'users', 'media', 'messages',
                             'notifications', 'analytics', 'location')
           AND c.relkind = 'r'
           AND a.attname = 'updated_at'
           AND NOT a.attisdropped
           AND NOT EXISTS (SELECT 1
                             FROM pg_catalog.pg_trigger t
                            WHERE t.tgrelid = c.oid
                              AND t.tgname  = 'set_updated_at')
         ORDER BY n.nspname, c.relname
    LOOP
        EXECUTE format('CREATE TRIGGER set_updated_at BEFORE UPDATE ON %I.%I '
                       'FOR EACH ROW EXECUTE FUNCTION auth.set_updated_at()',
                       r.nspname, r.relname);
    END LOOP;
END
$$;


-- -----------------------------------------------------------------------------
-- Record the migration (keeps tracking right when applied by hand with psql).
-- -----------------------------------------------------------------------------

INSERT INTO public.schema_migrations (version, description, applied_at, applied_by)
VALUES (1, 'init_schema', now(), current_user)
ON CONFLICT (version) DO NOTHING;
