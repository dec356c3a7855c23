-- Account recovery and e-mail verification (issue 13): when a user's address was verified, the
-- single-use tokens mailed to users (only their SHA-256 is stored), and the outbox of mails that the
-- sender of every replica delivers. The schema is what AutoMigrate makes of the models, with
-- AutoMigrate's constraint names (store's drift test compares them through the catalogs).
--
-- Existing rows are kept: the new column is nullable (adding it rewrites nothing), so every existing
-- account starts unverified.
--
-- mail_outbox: idx_mail_outbox_due (status, next_attempt_at) serves both the sender's claim (pending
-- and due, FOR UPDATE SKIP LOCKED) and the janitor (a finished message's next_attempt_at is when it
-- finished). data holds the template's values as JSON, with a raw token in a link, only until the
-- message is sent or given up.

-- +goose Up
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

CREATE TABLE email_tokens (
    id varchar(36) NOT NULL,
    user_id varchar(36) NOT NULL,
    purpose varchar(16) NOT NULL,
    token_hash bytea NOT NULL,
    new_email varchar(254),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    CONSTRAINT email_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT fk_email_tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX idx_email_tokens_token_hash ON email_tokens (token_hash);
CREATE INDEX idx_email_tokens_user_id ON email_tokens (user_id);
CREATE INDEX idx_email_tokens_expires_at ON email_tokens (expires_at);

CREATE TABLE mail_outbox (
    id varchar(36) NOT NULL,
    kind varchar(32) NOT NULL,
    to_address varchar(254) NOT NULL,
    data text NOT NULL DEFAULT '',
    status varchar(16) NOT NULL,
    attempts bigint NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    leased_until timestamptz,
    last_error varchar(512) NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    sent_at timestamptz,
    CONSTRAINT mail_outbox_pkey PRIMARY KEY (id)
);
CREATE INDEX idx_mail_outbox_due ON mail_outbox (status, next_attempt_at);

-- +goose Down
-- Drops the tokens and the outbox (pending mail is lost, and links already mailed stop working) and
-- forgets which addresses were verified.
DROP TABLE IF EXISTS mail_outbox;
DROP TABLE IF EXISTS email_tokens;
ALTER TABLE users DROP COLUMN IF EXISTS email_verified_at;
