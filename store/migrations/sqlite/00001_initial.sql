-- The schema as GORM's AutoMigrate created it before versioned migrations (users, sessions,
-- refresh_tokens, with the same column types, defaults, indexes and foreign keys), so that a database
-- created by AutoMigrate and a database created here are the same (store's drift test compares them).
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
-- SQLite keeps AutoMigrate's quirks on purpose: the text primary keys are not declared NOT NULL (as
-- AutoMigrate wrote them; the application never writes a NULL id), and refresh_tokens.id is
-- AUTOINCREMENT, so an id is never reused after a purge.

-- +goose Up
CREATE TABLE IF NOT EXISTS `users` (
    `id` text,
    `email` text NOT NULL,
    `password_hash` text NOT NULL,
    `role` text NOT NULL DEFAULT 'USER',
    `credentials_version` integer NOT NULL DEFAULT 0,
    `created_at` datetime NOT NULL,
    `updated_at` datetime NOT NULL,
    `deleted_at` datetime,
    PRIMARY KEY (`id`)
);
CREATE UNIQUE INDEX IF NOT EXISTS `idx_users_email` ON `users`(`email`);
CREATE INDEX IF NOT EXISTS `idx_users_deleted_at` ON `users`(`deleted_at`);

CREATE TABLE IF NOT EXISTS `sessions` (
    `id` text,
    `user_id` text NOT NULL,
    `created_at` datetime NOT NULL,
    `last_used_at` datetime NOT NULL,
    `expires_at` datetime NOT NULL,
    `revoked_at` datetime,
    `user_agent` text,
    `ip` text,
    PRIMARY KEY (`id`),
    CONSTRAINT `fk_sessions_user` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS `idx_sessions_user_id` ON `sessions`(`user_id`);
CREATE INDEX IF NOT EXISTS `idx_sessions_revoked_at` ON `sessions`(`revoked_at`);

CREATE TABLE IF NOT EXISTS `refresh_tokens` (
    `id` integer PRIMARY KEY AUTOINCREMENT,
    `token_hash` blob NOT NULL,
    `session_id` text NOT NULL,
    `user_id` text NOT NULL,
    `parent_id` integer,
    `created_at` datetime NOT NULL,
    `expires_at` datetime NOT NULL,
    `rotated_at` datetime,
    `revoked_at` datetime,
    CONSTRAINT `fk_refresh_tokens_session` FOREIGN KEY (`session_id`) REFERENCES `sessions`(`id`) ON DELETE CASCADE,
    CONSTRAINT `fk_refresh_tokens_user` FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON DELETE CASCADE
);
CREATE UNIQUE INDEX IF NOT EXISTS `idx_refresh_tokens_token_hash` ON `refresh_tokens`(`token_hash`);
CREATE INDEX IF NOT EXISTS `idx_refresh_tokens_session_id` ON `refresh_tokens`(`session_id`);
CREATE INDEX IF NOT EXISTS `idx_refresh_tokens_user_id` ON `refresh_tokens`(`user_id`);
CREATE INDEX IF NOT EXISTS `idx_refresh_tokens_expires_at` ON `refresh_tokens`(`expires_at`);

-- +goose Down
-- Drops every table and every row: authctl asks for -force before rolling back this migration.
DROP TABLE IF EXISTS `refresh_tokens`;
DROP TABLE IF EXISTS `sessions`;
DROP TABLE IF EXISTS `users`;
