-- Account recovery and e-mail verification (issue 13): when a user's address was verified, the
-- single-use tokens mailed to users (only their SHA-256 is stored), and the outbox of mails that the
-- sender of every replica delivers. The schema is what AutoMigrate makes of the models (store's drift
-- test compares them); as in the first migration, text primary keys are not declared NOT NULL.
--
-- Existing rows are kept: the new column is nullable, so every existing account starts unverified.
--
-- mail_outbox: idx_mail_outbox_due (status, next_attempt_at) serves both the sender's claim (pending
-- and due) and the janitor (a finished message's next_attempt_at is when it finished). data holds the
-- template's values as JSON, with a raw token in a link, only until the message is sent or given up.

-- +goose Up
ALTER TABLE `users` ADD COLUMN `email_verified_at` datetime;

CREATE TABLE `email_tokens` (
    `id` text,
    `user_id` text NOT NULL,
    `purpose` text NOT NULL,
    `token_hash` blob NOT NULL,
    `new_email` text,
    `created_at` datetime NOT NULL,
    `expires_at` datetime NOT NULL,
    `used_at` datetime,
    PRIMARY KEY (`id`),
    CONSTRAINT `fk_email_tokens_user` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE CASCADE
);
CREATE UNIQUE INDEX `idx_email_tokens_token_hash` ON `email_tokens`(`token_hash`);
CREATE INDEX `idx_email_tokens_user_id` ON `email_tokens`(`user_id`);
CREATE INDEX `idx_email_tokens_expires_at` ON `email_tokens`(`expires_at`);

CREATE TABLE `mail_outbox` (
    `id` text,
    `kind` text NOT NULL,
    `to_address` text NOT NULL,
    `data` text NOT NULL DEFAULT '',
    `status` text NOT NULL,
    `attempts` integer NOT NULL DEFAULT 0,
    `next_attempt_at` datetime NOT NULL,
    `leased_until` datetime,
    `last_error` text NOT NULL DEFAULT '',
    `created_at` datetime NOT NULL,
    `sent_at` datetime,
    PRIMARY KEY (`id`)
);
CREATE INDEX `idx_mail_outbox_due` ON `mail_outbox`(`status`, `next_attempt_at`);

-- +goose Down
-- Drops the tokens and the outbox (pending mail is lost, and links already mailed stop working) and
-- forgets which addresses were verified.
DROP TABLE IF EXISTS `mail_outbox`;
DROP TABLE IF EXISTS `email_tokens`;
ALTER TABLE `users` DROP COLUMN `email_verified_at`;
