-- Second factors and passkeys (issue 14): the TOTP secret of an account (sealed with the server's
-- TOTP key, never in the clear) and the last time step whose code was accepted; how each session was
-- authenticated and when (the amr and auth_time of its access tokens); single-use recovery codes
-- (only their SHA-256 is stored); the short-lived challenges of MFA logins and passkey ceremonies;
-- and the passkeys themselves. The schema is what AutoMigrate makes of the models (store's drift
-- test compares them); as in the first migration, text primary keys are not declared NOT NULL.
--
-- Existing rows are kept: every existing session was a password login (amr 'pwd'; a NULL auth_time
-- means its created_at), and every existing account starts without TOTP.

-- +goose Up
ALTER TABLE `users` ADD COLUMN `totp_secret` blob;
ALTER TABLE `users` ADD COLUMN `totp_enabled_at` datetime;
ALTER TABLE `users` ADD COLUMN `totp_last_step` integer NOT NULL DEFAULT 0;

ALTER TABLE `sessions` ADD COLUMN `amr` text NOT NULL DEFAULT 'pwd';
ALTER TABLE `sessions` ADD COLUMN `auth_time` datetime;

CREATE TABLE `recovery_codes` (
    `id` integer PRIMARY KEY AUTOINCREMENT,
    `user_id` text NOT NULL,
    `code_hash` blob NOT NULL,
    `created_at` datetime NOT NULL,
    `used_at` datetime,
    CONSTRAINT `fk_recovery_codes_user` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE CASCADE
);
CREATE INDEX `idx_recovery_codes_user_id` ON `recovery_codes`(`user_id`);

CREATE TABLE `auth_challenges` (
    `id` text,
    `kind` text NOT NULL,
    `user_id` text,
    `token_hash` blob,
    `data` text NOT NULL DEFAULT '',
    `credentials_version` integer NOT NULL DEFAULT 0,
    `attempts` integer NOT NULL DEFAULT 0,
    `created_at` datetime NOT NULL,
    `expires_at` datetime NOT NULL,
    `used_at` datetime,
    PRIMARY KEY (`id`),
    CONSTRAINT `fk_auth_challenges_user` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE CASCADE
);
CREATE UNIQUE INDEX `idx_auth_challenges_token_hash` ON `auth_challenges`(`token_hash`);
CREATE INDEX `idx_auth_challenges_user_id` ON `auth_challenges`(`user_id`);
CREATE INDEX `idx_auth_challenges_expires_at` ON `auth_challenges`(`expires_at`);

CREATE TABLE `passkeys` (
    `id` text,
    `user_id` text NOT NULL,
    `credential_id` blob NOT NULL,
    `credential` text NOT NULL,
    `sign_count` integer NOT NULL DEFAULT 0,
    `name` text NOT NULL,
    `created_at` datetime NOT NULL,
    `last_used_at` datetime,
    PRIMARY KEY (`id`),
    CONSTRAINT `fk_passkeys_user` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE CASCADE
);
CREATE UNIQUE INDEX `idx_passkeys_credential_id` ON `passkeys`(`credential_id`);
CREATE INDEX `idx_passkeys_user_id` ON `passkeys`(`user_id`);

-- +goose Down
-- Drops every passkey, recovery code and pending challenge, turns TOTP off for every account and
-- forgets how sessions were authenticated.
DROP TABLE IF EXISTS `passkeys`;
DROP TABLE IF EXISTS `auth_challenges`;
DROP TABLE IF EXISTS `recovery_codes`;
ALTER TABLE `sessions` DROP COLUMN `auth_time`;
ALTER TABLE `sessions` DROP COLUMN `amr`;
ALTER TABLE `users` DROP COLUMN `totp_last_step`;
ALTER TABLE `users` DROP COLUMN `totp_enabled_at`;
ALTER TABLE `users` DROP COLUMN `totp_secret`;
