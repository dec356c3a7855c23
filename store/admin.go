package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"gqlauth/auth"
	"gqlauth/models"
)

// DB is the Admin's store too.
var _ auth.AdminStore = (*DB)(nil)

// Purge deletes rows that nothing needs any more, in batches of at most batch rows per statement,
// each batch in its own short transaction:
//
//   - sessions that expired before before, or were revoked before before, with all their refresh tokens;
//   - refresh tokens (of any session) that expired before before;
//   - e-mail tokens that expired before before, or were used (or superseded) before before;
//   - outbox messages that finished (sent, failed or dropped) before before: their data was emptied
//     then, so they are only a record;
//   - users deleted (DeleteUser) before before (their e-mail tokens go with them).
//
// before must be in the past by more than the access-token lifetime plus a revocation poll (the
// janitor passes now - JANITOR_RETENTION, which config keeps above ACCESS_TOKEN_TTL + 1m): a revoked
// session has to stay readable until every instance's revocation poll has seen it and its access
// tokens have expired. A rotated refresh token is kept until its own expiry, so presenting it again
// is still detected as reuse.
//
// Purge is safe to run on several replicas at once: the deletes are idempotent, and on Postgres each
// batch skips rows that another replica is deleting (FOR UPDATE SKIP LOCKED) instead of waiting on
// them. It returns the number of rows deleted (of every table above), also when it fails part-way.
func (db *DB) Purge(ctx context.Context, before time.Time, batch int) (deleted int64, err error) {
	if batch <= 0 {
		return 0, fmt.Errorf("store: purge: batch must be positive (got %d)", batch)
	}
	before = before.UTC()
	// Postgres: take the batch's rows with a row lock, skipping rows that a concurrent purge holds.
	// SQLite has one writer at a time (transactions begin IMMEDIATE), so it needs nothing.
	lock := ""
	if db.postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}

	// Sessions first, with their tokens. The tokens are deleted explicitly (not left to ON DELETE
	// CASCADE, although both engines have it) so that the count includes them.
	for {
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
		var n int
		err := db.ctx(ctx).Transaction(func(tx *gorm.DB) error {
			var ids []string
			if err := scan(tx.Raw("SELECT id FROM sessions WHERE expires_at < ? OR revoked_at < ? LIMIT ?"+lock,
				before, before, batch), &ids); err != nil {
				return err
			}
			n = len(ids)
			if n == 0 {
				return nil
			}
			res := tx.Exec("DELETE FROM refresh_tokens WHERE session_id IN ?", ids)
			if res.Error != nil {
				return res.Error
			}
			tokens := res.RowsAffected
			// The condition is repeated so that a row changed since the SELECT (on SQLite the
			// transaction holds the write lock, on Postgres the row lock) is never deleted by mistake.
			res = tx.Exec("DELETE FROM sessions WHERE id IN ? AND (expires_at < ? OR revoked_at < ?)", ids, before, before)
			if res.Error != nil {
				return res.Error
			}
			deleted += tokens + res.RowsAffected
			return nil
		})
		if err != nil {
			return deleted, fmt.Errorf("store: purge sessions: %w", err)
		}
		if n < batch {
			break
		}
	}

	// Then expired tokens of sessions that are still kept (a live session's rotation chain), e-mail
	// tokens and finished mail, and last the users deleted before before: their sessions were revoked
	// at deletion, so they went above (or go now, by ON DELETE CASCADE, if one was never revoked).
	// A finished message's next_attempt_at is when it finished (see MailSent), so the due index
	// (status, next_attempt_at) finds them.
	finished := fmt.Sprintf("status IN ('%s', '%s', '%s') AND next_attempt_at < ?", models.MailSent, models.MailFailed, models.MailDropped)
	for _, step := range []struct{ table, where, what string }{
		{"refresh_tokens", "expires_at < ?", "refresh tokens"},
		{"email_tokens", "expires_at < ?", "expired e-mail tokens"},
		{"email_tokens", "used_at < ?", "used e-mail tokens"},
		{"mail_outbox", finished, "finished mail"},
		{"auth_challenges", "expires_at < ?", "expired challenges"},
		{"users", "deleted_at < ?", "deleted users"},
	} {
		n, err := db.purgeRows(ctx, step.table, step.where+" LIMIT ?"+lock, before, batch)
		deleted += n
		if err != nil {
			return deleted, fmt.Errorf("store: purge %s: %w", step.what, err)
		}
	}
	return deleted, nil
}

// purgeRows deletes the rows of table that where selects (its two parameters are before and batch; it
// ends in LIMIT), one batch per short transaction, until a batch comes back short, and returns the
// number of rows deleted.
func (db *DB) purgeRows(ctx context.Context, table, where string, before time.Time, batch int) (int64, error) {
	var deleted int64
	for {
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
		var n int64
		err := db.ctx(ctx).Transaction(func(tx *gorm.DB) error {
			res := tx.Exec("DELETE FROM "+table+" WHERE id IN (SELECT id FROM "+table+" WHERE "+where+")", before, batch)
			n = res.RowsAffected
			return res.Error
		})
		if err != nil {
			return deleted, err
		}
		deleted += n
		if n < int64(batch) {
			return deleted, nil
		}
	}
}

// DeleteUser deletes an account for good, as far as clients can tell: in one transaction (see
// revokingTx) it revokes every live session of the user and their refresh tokens, so every instance
// refuses the user's access tokens once its revocation poll has run (about a second); frees the
// e-mail address for a new registration; erases the password hash; and marks the row deleted. The row
// itself, and the revoked sessions, stay until Purge removes them after the retention: deleting them
// at once would take the revocations with them, and an instance that had not polled yet (or starts
// later) would go on accepting the user's unexpired access tokens. It returns the revoked session ids,
// or auth.ErrNotFound when there is no such (undeleted) user.
func (db *DB) DeleteUser(ctx context.Context, userID string, now func() time.Time) ([]string, error) {
	var ids []string
	_, err := db.revokingTx(ctx, now, func(tx *gorm.DB, at time.Time) error {
		res := tx.Model(&models.User{}).Where("id = ? AND deleted_at IS NULL", userID).Updates(map[string]any{
			"deleted_at": at, "email": "deleted:" + userID, "password_hash": "",
			"credentials_version": gorm.Expr("credentials_version + 1"), "updated_at": at,
		})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrNotFound
		}
		var err error
		ids, err = revokeSessions(tx, auth.SessionFilter{UserID: userID}, at)
		return err
	})
	return ids, err
}

// CreateUserOnly stores a user without a session (an account made by an administrator). It returns
// auth.ErrEmailTaken when the e-mail is already registered.
func (db *DB) CreateUserOnly(ctx context.Context, u *models.User) error {
	if err := db.ctx(ctx).Create(u).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return auth.ErrEmailTaken
		}
		return err
	}
	return nil
}

// SetRole changes a user's role. It returns auth.ErrNotFound when there is no such user. The new role
// reaches the user's access tokens at their next refresh.
func (db *DB) SetRole(ctx context.Context, userID string, role models.Role) error {
	if !role.IsValid() {
		return fmt.Errorf("store: %q is not a valid role", role)
	}
	res := db.ctx(ctx).Model(&models.User{}).Where("id = ? AND deleted_at IS NULL", userID).
		Updates(map[string]any{"role": role, "updated_at": time.Now().UTC().Truncate(time.Microsecond)})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return auth.ErrNotFound
	}
	return nil
}
