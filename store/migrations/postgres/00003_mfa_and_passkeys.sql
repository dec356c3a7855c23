-- Second factors and passkeys (issue 14): the TOTP secret of an account (sealed with the server's
-- TOTP key, never in the clear) and the last time step whose code was accepted; how each session was
-- authenticated and when (the amr and auth_time of its access tokens); single-use recovery codes
-- (only their SHA-256 is stored); the short-lived challenges of MFA logins and passkey ceremonies;
-- and the passkeys themselves. The schema is what AutoMigrate makes of the models (store's drift
-- test compares them).
--
-- Existing rows are kept: every existing session was a password login (amr 'pwd'; a NULL auth_time
-- means its created_at), and every existing account starts without TOTP.

-- +goose Up
ALTER TABLE users ADD COLUMN totp_secret bytea;
ALTER TABLE users ADD COLUMN totp_enabled_at timestamptz;
ALTER TABLE users ADD COLUMN totp_last_step bigint NOT NULL DEFAULT 0;

ALTER TABLE sessions ADD COLUMN amr varchar(64) NOT NULL DEFAULT 'pwd';
ALTER TABLE sessions ADD COLUMN auth_time timestamptz;

CREATE TABLE recovery_codes (
    id bigserial NOT NULL,
    user_id varchar(36) NOT NULL,
    code_hash bytea NOT NULL,
    created_at timestamptz NOT NULL,
    used_at timestamptz,
    CONSTRAINT recovery_codes_pkey PRIMARY KEY (id),
    CONSTRAINT fk_recovery_codes_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX idx_recovery_codes_user_id ON recovery_codes (user_id);

CREATE TABLE auth_challenges (
    id varchar(36) NOT NULL,
    kind varchar(24) NOT NULL,
    user_id varchar(36),
    token_hash bytea,
    data text NOT NULL DEFAULT '',
    credentials_version bigint NOT NULL DEFAULT 0,
    attempts bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    CONSTRAINT auth_challenges_pkey PRIMARY KEY (id),
    CONSTRAINT fk_auth_challenges_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX idx_auth_challenges_token_hash ON auth_challenges (token_hash);
CREATE INDEX idx_auth_challenges_user_id ON auth_challenges (user_id);
CREATE INDEX idx_auth_challenges_expires_at ON auth_challenges (expires_at);

CREATE TABLE passkeys (
    id varchar(36) NOT NULL,
    user_id varchar(36) NOT NULL,
    credential_id bytea NOT NULL,
    credential text NOT NULL,
    sign_count bigint NOT NULL DEFAULT 0,
    name varchar(64) NOT NULL,
    created_at timestamptz NOT NULL,
    last_used_at timestamptz,
    CONSTRAINT passkeys_pkey PRIMARY KEY (id),
    CONSTRAINT fk_passkeys_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX idx_passkeys_credential_id ON passkeys (credential_id);
CREATE INDEX idx_passkeys_user_id ON passkeys (user_id);

-- +goose Down
-- Drops every passkey, recovery code and pending challenge, turns TOTP off for every account and
-- forgets how sessions were authenticated.
DROP TABLE IF EXISTS passkeys;
DROP TABLE IF EXISTS auth_challenges;
DROP TABLE IF EXISTS recovery_codes;
ALTER TABLE sessions DROP COLUMN IF EXISTS auth_time;
ALTER TABLE sessions DROP COLUMN IF EXISTS amr;
ALTER TABLE users DROP COLUMN IF EXISTS totp_last_step;
ALTER TABLE users DROP COLUMN IF EXISTS totp_enabled_at;
ALTER TABLE users DROP COLUMN IF EXISTS totp_secret;
