-- The schema as GORM's AutoMigrate created it before versioned migrations (users, sessions,
-- refresh_tokens, with the same column types, defaults, indexes, constraint names and foreign keys),
-- so that a database created by AutoMigrate and a database created here are the same (store's drift
-- test compares them through the catalogs).
--
-- Adoption: a database that AutoMigrate created already has every table and index below, under these
-- names. Every statement is therefore IF NOT EXISTS: on such a database this migration creates nothing,
-- touches no row, and only records version 1, so nothing is lost; on an empty database it creates the
-- schema. (Detect-and-skip would need a Go migration for the same result; IF NOT EXISTS keeps the
-- migration plain SQL, and it also completes a schema that AutoMigrate left half-created.) A table
-- that exists but lacks a column (a database last opened by a release older than AutoMigrate's last
-- model change) is not repaired here: store.Open checks for that before adopting and refuses with the
-- missing column named.
--
-- refresh_tokens.id is bigserial (a sequence owned by the column), as AutoMigrate made it, not an
-- identity column: an adopted database keeps its sequence and its next value.

-- +goose Up
CREATE TABLE IF NOT EXISTS users (
    id varchar(36) NOT NULL,
    email varchar(254) NOT NULL,
    password_hash varchar(255) NOT NULL,
    role varchar(16) NOT NULL DEFAULT 'USER',
    credentials_version bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz,
    CONSTRAINT users_pkey PRIMARY KEY (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_users_email ON users (email);
CREATE INDEX IF NOT EXISTS idx_users_deleted_at ON users (deleted_at);

CREATE TABLE IF NOT EXISTS sessions (
    id varchar(36) NOT NULL,
    user_id varchar(36) NOT NULL,
    created_at timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    user_agent varchar(512),
    ip varchar(64),
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT fk_sessions_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions (user_id);
CREATE INDEX IF NOT EXISTS idx_sessions_revoked_at ON sessions (revoked_at);

CREATE TABLE IF NOT EXISTS refresh_tokens (
    id bigserial NOT NULL,
    token_hash bytea NOT NULL,
    session_id varchar(36) NOT NULL,
    user_id varchar(36) NOT NULL,
    parent_id bigint,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz,
    revoked_at timestamptz,
    CONSTRAINT refresh_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT fk_refresh_tokens_session FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE,
    CONSTRAINT fk_refresh_tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_refresh_tokens_token_hash ON refresh_tokens (token_hash);
CREATE INDEX IF NOT EXISTS idx_refresh_tokens_session_id ON refresh_tokens (session_id);
CREATE INDEX IF NOT EXISTS idx_refresh_tokens_user_id ON refresh_tokens (user_id);
CREATE INDEX IF NOT EXISTS idx_refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- +goose Down
-- Drops every table and every row: authctl asks for -force before rolling back this migration.
DROP TABLE IF EXISTS refresh_tokens;
DROP TABLE IF EXISTS sessions;
DROP TABLE IF EXISTS users;
