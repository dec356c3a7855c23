package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"gqlauth/auth"
	"gqlauth/models"
)

// Outcomes reported to SenderOptions.OnResult (the outcome label of gqlauth_mail_total).
const (
	OutcomeSent    = "sent"    // the SMTP server accepted the message
	OutcomeRetry   = "retry"   // an attempt failed; the message is due again after a backoff
	OutcomeFailed  = "failed"  // given up: a permanent error, or the last attempt failed
	OutcomeDropped = "dropped" // nothing to send (a reset requested for an unknown address)
)

// SenderOptions configure a Sender; zero fields take the defaults named below.
type SenderOptions struct {
	Now    func() time.Time // time.Now
	Logger *slog.Logger     // slog.Default()
	// Resolve turns an auth.KindResetRequest into the mail to send (auth.Service.ResolveResetRequest:
	// a KindPasswordReset mail that replaced the request in the outbox), or reports false when there
	// is nothing to send (an unknown address). An error is retried like a failed send. Without
	// Resolve, a reset request fails.
	Resolve func(ctx context.Context, m auth.Mail) (auth.Mail, bool, error)
	// Lease is how long a claimed message is kept from other replicas (30s). A send starts only if it
	// can end, at SendTimeout, inside the lease, so two replicas never send the same message at once.
	Lease time.Duration
	// SendTimeout bounds one delivery, SMTP dialogue included (10s; at most half the lease).
	SendTimeout time.Duration
	// Batch is how many messages one round claims (10).
	Batch int
	// MaxAttempts is how many times a message is tried before it fails (10).
	MaxAttempts int
	// Backoff is the wait before attempt n+1 after n failed attempts (n ≥ 1): by default 1s doubling
	// up to 5m, jittered down to half so that replicas and messages spread out.
	Backoff func(n int) time.Duration
	// PollInterval is the wait between rounds that found nothing more to do (1s); Kick cuts it short.
	PollInterval time.Duration
	// StopGrace is how long a send in flight may go on once Run's context ends (2s), so that a mail
	// the server is accepting is recorded as sent rather than sent again by the next replica.
	StopGrace time.Duration
	// OnResult, when set, is called with the message kind and an Outcome* for each outcome (the
	// metrics: observe.Metrics.MailResult).
	OnResult func(kind, outcome string)
}

// Sender delivers the outbox: every replica runs one (Run); the store's leases keep them from
// sending the same message twice.
type Sender struct {
	store auth.MailStore
	tr    Transport
	tpl   *Templates
	o     SenderOptions
	kick  chan struct{}
}

// DefaultBackoff is 1s·2^(n-1) capped at 5m, jittered uniformly down to half of that.
func DefaultBackoff(n int) time.Duration {
	d := 5 * time.Minute
	if n >= 1 && n <= 9 { // 2^8 s > 5m
		d = min(d, time.Second<<(n-1))
	}
	return d/2 + rand.N(d/2+1)
}

// NewSender returns a sender of store's outbox through tr, rendering with tpl.
func NewSender(store auth.MailStore, tr Transport, tpl *Templates, o SenderOptions) *Sender {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 10 * time.Second
	}
	o.SendTimeout = min(o.SendTimeout, o.Lease/2)
	if o.Batch <= 0 {
		o.Batch = 10
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 2 * time.Second
	}
	if o.OnResult == nil {
		o.OnResult = func(string, string) {}
	}
	return &Sender{store: store, tr: tr, tpl: tpl, o: o, kick: make(chan struct{}, 1)}
}

// Kick wakes Run for a round now rather than at the end of its poll interval (call it after queueing
// a message). It never blocks; kicks that arrive before Run wakes count as one.
func (s *Sender) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run sends the outbox until ctx ends, then returns nil. Each round claims a batch of due messages
// and delivers them one by one; the next round starts at once when the batch was full and went
// well, otherwise after PollInterval or a Kick. Failed messages come back only after their backoff,
// so an unreachable SMTP server (or database) costs one attempt per due message per backoff, never a
// busy loop.
func (s *Sender) Run(ctx context.Context) error {
	claimFailing := false
	for ctx.Err() == nil {
		more, err := s.round(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			// Log an outage once, not every poll.
			if !claimFailing {
				s.o.Logger.WarnContext(ctx, "mail outbox: cannot claim messages", "err", err)
			}
			claimFailing = true
		case err == nil && claimFailing:
			s.o.Logger.InfoContext(ctx, "mail outbox: claiming messages again")
			claimFailing = false
		}
		if more && err == nil {
			continue
		}
		t := time.NewTimer(s.o.PollInterval)
		select {
		case <-ctx.Done():
		case <-s.kick:
		case <-t.C:
		}
		t.Stop()
	}
	return nil
}

// round claims one batch and handles it. It reports whether another round should follow at once
// (a full batch, all of it handled without a transient failure) and the claim's error.
func (s *Sender) round(ctx context.Context) (more bool, err error) {
	start := s.o.Now()
	batch, err := s.store.ClaimMail(ctx, start, s.o.Lease, s.o.Batch)
	if err != nil {
		return false, fmt.Errorf("claim: %w", err)
	}
	// A send may start only while it can end inside the lease; the rest of the batch waits for the
	// lease to lapse and is claimed again (by this replica or another).
	leaseEnd := start.Add(s.o.Lease - s.o.SendTimeout)
	clean := true
	for i, m := range batch {
		if done(ctx) || !s.o.Now().Before(leaseEnd) {
			s.o.Logger.DebugContext(ctx, "mail outbox: left to the next claim", "messages", len(batch)-i)
			return false, nil
		}
		if !s.deliver(ctx, m) {
			clean = false
		}
	}
	return clean && len(batch) == s.o.Batch, nil
}

// deliver handles one claimed message to its outcome and reports false after a transient failure.
func (s *Sender) deliver(ctx context.Context, m auth.Mail) bool {
	log := s.o.Logger.With("mail_id", m.ID, "kind", m.Kind, "attempt", m.Attempts+1)
	// Store updates after the send use a context that outlives ctx by StopGrace: a message that was
	// sent must be recorded as sent even when the server is stopping.
	sctx, cancel := s.graceContext(ctx, s.o.SendTimeout)
	defer cancel()

	if m.Kind == auth.KindResetRequest {
		if s.o.Resolve == nil {
			return s.finish(sctx, log, m, models.MailFailed, errors.New("no resolver for password reset requests"))
		}
		resolved, ok, err := s.o.Resolve(sctx, m)
		if err != nil {
			return s.retry(sctx, log, m, fmt.Errorf("resolve: %w", err))
		}
		if !ok {
			return s.finish(sctx, log, m, models.MailDropped, nil)
		}
		// The resolved mail replaced the request in the outbox, under the same id unless the store
		// says otherwise; it keeps the request's attempt count.
		if resolved.ID == "" {
			resolved.ID = m.ID
		}
		resolved.Attempts = m.Attempts
		m = resolved
		log = s.o.Logger.With("mail_id", m.ID, "kind", m.Kind, "attempt", m.Attempts+1) // the resolved kind, once
	}

	msg, err := s.tpl.Render(m.ID, m.Kind, m.To, m.Data)
	if err != nil {
		return s.finish(sctx, log, m, models.MailFailed, err)
	}
	if err := s.tr.Send(sctx, msg); err != nil {
		if IsPermanent(err) {
			return s.finish(sctx, log, m, models.MailFailed, err)
		}
		return s.retry(sctx, log, m, err)
	}
	// Mark it sent at once: until then, a lapse of the lease would send it again. A database that
	// fails here is retried for as long as the lease holds.
	at := s.o.Now()
	for {
		err := s.store.MailSent(sctx, m.ID, at)
		if err == nil {
			break
		}
		if errors.Is(err, auth.ErrNotFound) { // gone (deleted meanwhile): nothing to record
			break
		}
		if sctx.Err() != nil {
			log.ErrorContext(ctx, "mail outbox: sent, but cannot record it: it may be sent again", "err", err)
			return true
		}
		select {
		case <-sctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	log.InfoContext(ctx, "mail sent")
	s.o.OnResult(m.Kind, OutcomeSent)
	return true
}

// retry records a transient failure of m: it is due again after the backoff, or fails for good when
// this was its last attempt. It returns false (a transient failure happened).
func (s *Sender) retry(ctx context.Context, log *slog.Logger, m auth.Mail, cause error) bool {
	attempts := m.Attempts + 1
	if attempts >= s.o.MaxAttempts {
		s.finish(ctx, log, m, models.MailFailed, fmt.Errorf("after %d attempts: %w", attempts, cause))
		return false
	}
	next := s.o.Now().Add(s.o.Backoff(attempts))
	if err := s.store.MailRetry(ctx, m.ID, next, errText(cause)); err != nil {
		// The lease lapses and the message is claimed again: at worst an attempt too early.
		log.WarnContext(ctx, "mail outbox: cannot record a failed attempt", "err", err, "cause", cause)
		return false
	}
	log.WarnContext(ctx, "mail not sent; will retry", "err", cause, "next_attempt", next)
	s.o.OnResult(m.Kind, OutcomeRetry)
	return false
}

// finish ends m with status (MailFailed or MailDropped). It returns true: nothing transient.
func (s *Sender) finish(ctx context.Context, log *slog.Logger, m auth.Mail, status models.MailStatus, cause error) bool {
	if err := s.store.MailDone(ctx, m.ID, status, s.o.Now(), errText(cause)); err != nil {
		log.WarnContext(ctx, "mail outbox: cannot record the outcome", "status", status, "err", err, "cause", cause)
		return true
	}
	outcome := OutcomeDropped
	if status == models.MailFailed {
		outcome = OutcomeFailed
		log.ErrorContext(ctx, "mail given up", "err", cause)
	} else {
		log.DebugContext(ctx, "mail dropped: nothing to send")
	}
	s.o.OnResult(m.Kind, outcome)
	return true
}

// graceContext returns a context that ends after timeout, or StopGrace after ctx ends, whichever
// comes first.
func (s *Sender) graceContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(s.o.StopGrace, cancel)
		context.AfterFunc(c, func() { t.Stop() })
	})
	return c, func() { stop(); cancel() }
}

// done reports whether ctx has ended (a stop, not an error to report).
func done(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// maxErrLen bounds the error recorded with a message (the column holds 512 bytes).
const maxErrLen = 500

// errText is err's message, cut to maxErrLen bytes on a rune boundary ("" for nil).
func errText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) <= maxErrLen {
		return s
	}
	i := maxErrLen
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
