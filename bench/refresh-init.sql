-- Seed for bench/refresh.pgbench: 64 users with one live session and one refresh token each, in the
-- tables the server created (run the server once against the database first). Idempotent.
DELETE FROM users WHERE id LIKE 'pgb-%';
INSERT INTO users (id, email, password_hash, role, created_at, updated_at)
SELECT 'pgb-' || n, 'pgb-' || n || '@example.com', 'x', 'USER', now(), now() FROM generate_series(1, 64) n;
INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at)
SELECT 'pgb-' || n, 'pgb-' || n, now(), now(), now() + interval '720 hours' FROM generate_series(1, 64) n;
INSERT INTO refresh_tokens (token_hash, session_id, user_id, created_at, expires_at)
SELECT decode(md5('pgb-' || n) || md5('pgb2-' || n), 'hex'), 'pgb-' || n, 'pgb-' || n, now(), now() + interval '720 hours'
FROM generate_series(1, 64) n;
