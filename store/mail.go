package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"gqlauth/auth"
	"gqlauth/models"
)

// DB is the mail store too: e-mail tokens and the mail outbox.
var _ auth.MailStore = (*DB)(nil)

// maxLastError is the size of mail_outbox.last_error, in characters.
const maxLastError = 512

// mailTime is t as the store writes it: UTC, so that SQLite's text timestamps compare in time order,
// and to the microsecond, as Postgres keeps it.
func mailTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// outboxRow is m as a new pending message, due at at, under a new id.
func outboxRow(m auth.Mail, at time.Time) (*models.OutboxMail, error) {
	data, err := encodeMailData(m.Data)
	if err != nil {
		return nil, err
	}
	at = mailTime(at)
	return &models.OutboxMail{
		ID: uuid.NewString(), Kind: m.Kind, To: m.To, Data: data,
		Status: models.MailPending, NextAttemptAt: at, CreatedAt: at,
	}, nil
}

// encodeMailData is a message's data as stored: JSON, or "" when there is none.
func encodeMailData(data map[string]string) (string, error) {
	if len(data) == 0 {
		return "", nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return "", fmt.Errorf("store: mail data: %w", err)
	}
	return string(b), nil
}

// EnqueueMail implements auth.MailStore.
func (db *DB) EnqueueMail(ctx context.Context, m auth.Mail, at time.Time) error {
	row, err := outboxRow(m, at)
	if err != nil {
		return err
	}
	return db.ctx(ctx).Create(row).Error
}

// CreateEmailToken implements auth.MailStore. It returns auth.ErrNotFound when the user does not
// exist or was deleted, and auth.ErrConflict when replace is not a pending KindResetRequest message
// (another replica resolved it first, or it is gone), writing nothing in either case.
func (db *DB) CreateEmailToken(ctx context.Context, t *models.EmailToken, m auth.Mail, replace string) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now().UTC()
	}
	row, err := outboxRow(m, t.CreatedAt)
	if err != nil {
		return err
	}
	return db.ctx(ctx).Transaction(func(tx *gorm.DB) error {
		// A token of a deleted account would be refused when used; not mailing it is better. (The
		// foreign key only catches a user that is gone altogether.)
		var ids []string
		if err := scan(tx.Raw("SELECT id FROM users WHERE id = ? AND deleted_at IS NULL", t.UserID), &ids); err != nil {
			return err
		}
		if len(ids) == 0 {
			return auth.ErrNotFound
		}
		if t.Purpose == models.PurposePasswordReset {
			// Only the newest reset link works: the older ones are used up (superseded) here.
			if err := tx.Model(&models.EmailToken{}).
				Where("user_id = ? AND purpose = ? AND used_at IS NULL", t.UserID, models.PurposePasswordReset).
				Update("used_at", row.CreatedAt).Error; err != nil {
				return err
			}
		}
		if err := tx.Omit("User").Create(t).Error; err != nil {
			if errors.Is(err, gorm.ErrForeignKeyViolated) {
				return auth.ErrNotFound
			}
			return err
		}
		if replace == "" {
			return tx.Create(row).Error
		}
		// The request keeps its id, attempts and lease: the sender that holds it goes on with the mail
		// it resolved to. A request that is no longer pending, or was already resolved (by a replica
		// whose lease ran out), must not give a second token and a second mail.
		res := tx.Model(&models.OutboxMail{}).
			Where("id = ? AND status = ? AND kind = ?", replace, models.MailPending, auth.KindResetRequest).
			Updates(map[string]any{"kind": row.Kind, "to_address": row.To, "data": row.Data})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrConflict
		}
		return nil
	})
}

// EmailTokenByHash implements auth.MailStore.
func (db *DB) EmailTokenByHash(ctx context.Context, hash []byte) (*models.EmailToken, error) {
	var t models.EmailToken
	if err := db.ctx(ctx).Where("token_hash = ?", hash).Take(&t).Error; err != nil {
		return nil, notFound(err)
	}
	return &t, nil
}

// ResetPassword implements auth.MailStore with the rules of ChangePassword: the password and the
// credentials version change together (a login that verified the old password cannot open a session
// after this commits, see CreateSession), and the sessions are revoked in a revokingTx, with their
// refresh tokens. The revocation time is r.At plus the time this call has waited, read inside the
// transaction (PasswordReset has no clock), so it is as late as revokingTx requires. It returns
// auth.ErrConflict when the token is used, expired, or not r.UserID's reset token, and auth.ErrNotFound
// when the user was deleted, writing nothing in either case.
func (db *DB) ResetPassword(ctx context.Context, r auth.PasswordReset) ([]string, time.Time, error) {
	notice, err := outboxRow(r.Notice, r.At)
	if err != nil {
		return nil, time.Time{}, err
	}
	now := mailTime(r.At)
	start := time.Now()
	clock := func() time.Time { return r.At.Add(time.Since(start)) }
	var ids []string
	at, err := db.revokingTx(ctx, clock, func(tx *gorm.DB, at time.Time) error {
		// The user row first, as ChangePassword and CreateSession lock it, then the token.
		res := tx.Model(&models.User{}).Where("id = ? AND deleted_at IS NULL", r.UserID).Updates(map[string]any{
			"password_hash":       r.NewHash,
			"credentials_version": gorm.Expr("credentials_version + 1"),
			"updated_at":          now,
			// The link reached the inbox, so the address is the user's.
			"email_verified_at": gorm.Expr("COALESCE(email_verified_at, ?)", now),
		})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrNotFound
		}
		// Conditional: of requests racing with one token, exactly one sees a row change.
		res = tx.Model(&models.EmailToken{}).
			Where("id = ? AND user_id = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?",
				r.TokenID, r.UserID, models.PurposePasswordReset, now).
			Update("used_at", now)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrConflict
		}
		var err error
		if ids, err = revokeSessions(tx, auth.SessionFilter{UserID: r.UserID}, at); err != nil {
			return err
		}
		if r.Session != nil {
			if err := createSession(tx, r.Session, r.Token); err != nil {
				return err
			}
		}
		if r.Challenge != nil {
			// The second factor is still owed: the challenge proves the new password, so its version
			// is the one just written (read back, not guessed: a concurrent change may have moved it).
			if err := tx.Model(&models.User{}).Where("id = ?", r.UserID).Select("credentials_version").
				Scan(&r.Challenge.CredentialsVersion).Error; err != nil {
				return err
			}
			if err := tx.Omit("User").Create(r.Challenge).Error; err != nil {
				return err
			}
		}
		return tx.Create(notice).Error
	})
	if err != nil {
		return nil, at, err
	}
	return ids, at, nil
}

// VerifyEmail implements auth.MailStore. It returns auth.ErrConflict when the token is used, expired
// or not the one stored, auth.ErrEmailTaken when another account has a change-email token's address,
// and auth.ErrNotFound when the user was deleted, writing nothing in each case.
func (db *DB) VerifyEmail(ctx context.Context, t *models.EmailToken, at time.Time, notice *auth.Mail) (*models.User, error) {
	at = mailTime(at)
	set := map[string]any{"updated_at": at}
	switch t.Purpose {
	case models.PurposeVerifyEmail:
		set["email_verified_at"] = gorm.Expr("COALESCE(email_verified_at, ?)", at)
	case models.PurposeChangeEmail:
		if t.NewEmail == nil || *t.NewEmail == "" {
			return nil, errors.New("store: verify email: a change-email token without its new address")
		}
		set["email"] = *t.NewEmail
		set["email_verified_at"] = at // the new address, just proven
	default:
		return nil, fmt.Errorf("store: verify email: a %q token", t.Purpose)
	}
	var row *models.OutboxMail
	if notice != nil {
		var err error
		if row, err = outboxRow(*notice, at); err != nil {
			return nil, err
		}
	}
	var u models.User
	err := db.ctx(ctx).Transaction(func(tx *gorm.DB) error {
		// The token first, so that a used token reports that and not the address. (Nothing else locks
		// a verification token and then the user row, so this order cannot deadlock.)
		res := tx.Model(&models.EmailToken{}).
			Where("id = ? AND user_id = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?", t.ID, t.UserID, t.Purpose, at).
			Update("used_at", at)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrConflict
		}
		res = tx.Model(&models.User{}).Where("id = ? AND deleted_at IS NULL", t.UserID).Updates(set)
		if res.Error != nil {
			if errors.Is(res.Error, gorm.ErrDuplicatedKey) {
				return auth.ErrEmailTaken
			}
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrNotFound
		}
		if row != nil {
			if err := tx.Create(row).Error; err != nil {
				return err
			}
		}
		return tx.Where("id = ?", t.UserID).Take(&u).Error
	})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// ClaimMail implements auth.MailStore. The due messages are read and leased in one transaction: on
// Postgres the read locks them and skips those another replica is claiming (FOR UPDATE SKIP LOCKED),
// so two replicas never claim the same message; on SQLite the transaction holds the only write lock
// from its start (BEGIN IMMEDIATE), and the lease is a conditional UPDATE all the same.
func (db *DB) ClaimMail(ctx context.Context, now time.Time, lease time.Duration, n int) ([]auth.Mail, error) {
	if n <= 0 {
		return nil, nil
	}
	now = mailTime(now)
	const due = "status = ? AND next_attempt_at <= ? AND (leased_until IS NULL OR leased_until <= ?)"
	var rows []models.OutboxMail
	err := db.ctx(ctx).Transaction(func(tx *gorm.DB) error {
		q := tx.Where(due, models.MailPending, now, now).Order("created_at, id").Limit(n)
		if db.postgres {
			q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked})
		}
		if err := q.Find(&rows).Error; err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		ids := make([]string, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		res := tx.Model(&models.OutboxMail{}).Where("id IN ? AND "+due, ids, models.MailPending, now, now).
			Update("leased_until", now.Add(lease))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != int64(len(rows)) {
			// Cannot happen under the row locks or the write lock; refuse rather than double-send.
			return fmt.Errorf("store: claim mail: leased %d of %d messages", res.RowsAffected, len(rows))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim mail: %w", err)
	}
	mails := make([]auth.Mail, 0, len(rows))
	for _, r := range rows {
		m := auth.Mail{ID: r.ID, Kind: r.Kind, To: r.To, Attempts: r.Attempts}
		if r.Data != "" {
			if err := json.Unmarshal([]byte(r.Data), &m.Data); err != nil {
				// One bad row must not stop the queue: it goes to the sender without data, whose
				// template then fails and the message ends as failed.
				m.Data = nil
			}
		}
		mails = append(mails, m)
	}
	return mails, nil
}

// MailSent implements auth.MailStore. It counts the attempt, and records the time in sent_at and in
// next_attempt_at (a finished message has no next attempt: the janitor purges finished messages by
// it, through the due index). It is unconditional: a message that a replica whose lease ran out has
// sent is sent, whatever another replica recorded meanwhile. It returns auth.ErrNotFound for an
// unknown id.
func (db *DB) MailSent(ctx context.Context, id string, at time.Time) error {
	at = mailTime(at)
	return db.updateMail(ctx, id, false, map[string]any{
		"status": models.MailSent, "sent_at": at, "next_attempt_at": at, "data": "", "leased_until": nil,
		"attempts": gorm.Expr("attempts + 1"),
	})
}

// MailRetry implements auth.MailStore: it counts the attempt, releases the lease and makes the
// message due at next. It returns auth.ErrConflict when the message is no longer pending (another
// replica finished it) and auth.ErrNotFound for an unknown id.
func (db *DB) MailRetry(ctx context.Context, id string, next time.Time, lastErr string) error {
	return db.updateMail(ctx, id, true, map[string]any{
		"attempts": gorm.Expr("attempts + 1"), "next_attempt_at": mailTime(next), "leased_until": nil,
		"last_error": clipError(lastErr),
	})
}

// MailDone implements auth.MailStore. MailFailed counts the last attempt; MailDropped made none. The
// time goes to next_attempt_at (see MailSent). It returns auth.ErrConflict when the message is no
// longer pending (another replica finished it: a sent message stays sent) and auth.ErrNotFound for an
// unknown id.
func (db *DB) MailDone(ctx context.Context, id string, status models.MailStatus, at time.Time, lastErr string) error {
	set := map[string]any{
		"status": status, "next_attempt_at": mailTime(at), "data": "", "leased_until": nil,
		"last_error": clipError(lastErr),
	}
	switch status {
	case models.MailFailed:
		set["attempts"] = gorm.Expr("attempts + 1")
	case models.MailDropped:
	default:
		return fmt.Errorf("store: mail done: status %q does not end a message", status)
	}
	return db.updateMail(ctx, id, true, set)
}

// updateMail applies set to the message id (only while it is pending when pendingOnly) and tells an
// unknown id (auth.ErrNotFound) from a finished message (auth.ErrConflict).
func (db *DB) updateMail(ctx context.Context, id string, pendingOnly bool, set map[string]any) error {
	q := db.ctx(ctx).Model(&models.OutboxMail{}).Where("id = ?", id)
	if pendingOnly {
		q = q.Where("status = ?", models.MailPending)
	}
	res := q.Updates(set)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected > 0 {
		return nil
	}
	var n int64
	if err := db.ctx(ctx).Model(&models.OutboxMail{}).Where("id = ?", id).Count(&n).Error; err != nil {
		return err
	}
	if n == 0 {
		return auth.ErrNotFound
	}
	return auth.ErrConflict
}

// clipError keeps an error message within last_error's size, as valid UTF-8 (Postgres refuses
// anything else in a text column).
func clipError(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= maxLastError {
		return s
	}
	r := []rune(s)
	return string(r[:maxLastError-1]) + "…"
}

// PendingMail counts the outbox's pending messages (for the gqlauth_mail_queued gauge).
func (db *DB) PendingMail(ctx context.Context) (int64, error) {
	var n int64
	err := db.gorm.WithContext(ctx).Model(&models.OutboxMail{}).Where("status = ?", models.MailPending).Count(&n).Error
	return n, err
}
