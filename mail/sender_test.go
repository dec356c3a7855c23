package mail

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/testlog"
	"gqlauth/models"
)

// fast are sender options for tests: short waits everywhere.
func fast(res *results) SenderOptions {
	o := SenderOptions{
		PollInterval: 20 * time.Millisecond,
		Backoff:      func(int) time.Duration { return 30 * time.Millisecond },
		MaxAttempts:  50,
		StopGrace:    200 * time.Millisecond,
		Logger:       slog.New(slog.DiscardHandler),
	}
	if res != nil {
		o.OnResult = res.add
	}
	return o
}

func verifyData() map[string]string {
	return map[string]string{"link": "https://app.example/verify?token=tok123", "expires_in": "24 hours"}
}

func TestSenderSendsAndEmptiesData(t *testing.T) {
	st, tr, res := newFakeStore(), &recorder{}, &results{}
	id := st.add(auth.KindVerifyEmail, "a@example.com", verifyData())
	var logs testlog.Buffer
	o := fast(res)
	o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	start(t, NewSender(st, tr, MustLoadTemplates(), o))
	eventually(t, 3*time.Second, "the mail is sent", func() bool { return st.get(id).status == models.MailSent })
	r := st.get(id)
	if r.mail.Data != nil || r.sentAt.IsZero() {
		t.Fatalf("sent row keeps data %v (sentAt %v)", r.mail.Data, r.sentAt)
	}
	msgs := tr.messages()
	if len(msgs) != 1 || msgs[0].ID != id || msgs[0].To != "a@example.com" || msgs[0].Subject != "Verify your e-mail address" ||
		!strings.Contains(msgs[0].Text, "tok123") || !strings.Contains(msgs[0].HTML, "tok123") {
		t.Fatalf("sent %+v", msgs)
	}
	wantResults(t, res, "verify_email:sent")
	if out := logs.String(); !strings.Contains(out, "mail sent") || strings.Contains(out, "tok123") || strings.Contains(out, "a@example.com") {
		t.Fatalf("the log must say the mail went, without its link or recipient:\n%s", out)
	}
}

func TestSenderResetRequestDropped(t *testing.T) {
	st, tr, res := newFakeStore(), &recorder{}, &results{}
	id := st.add(auth.KindResetRequest, "nobody@example.com", map[string]string{"email": "nobody@example.com"})
	o := fast(res)
	o.Resolve = func(context.Context, auth.Mail) (auth.Mail, bool, error) { return auth.Mail{}, false, nil }
	start(t, NewSender(st, tr, MustLoadTemplates(), o))
	eventually(t, 3*time.Second, "the request is dropped", func() bool { return st.get(id).status == models.MailDropped })
	if r := st.get(id); r.mail.Data != nil {
		t.Fatalf("dropped row keeps data %v", r.mail.Data)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(tr.messages()); n != 0 {
		t.Fatalf("%d mails sent for a dropped request", n)
	}
	wantResults(t, res, "password_reset_request:dropped")
}

func TestSenderResetRequestResolved(t *testing.T) {
	st, tr, res := newFakeStore(), &recorder{}, &results{}
	id := st.add(auth.KindResetRequest, "known@example.com", map[string]string{})
	var calls atomic.Int32
	o := fast(res)
	o.Resolve = func(_ context.Context, m auth.Mail) (auth.Mail, bool, error) {
		if calls.Add(1) == 1 {
			return auth.Mail{}, false, errors.New("database hiccup") // retried like a failed send
		}
		r := auth.Mail{ID: m.ID, Kind: auth.KindPasswordReset, To: m.To,
			Data: map[string]string{"link": "https://app.example/reset?token=r1", "expires_in": "1 hour"}}
		st.replace(m.ID, r)
		return r, true, nil
	}
	start(t, NewSender(st, tr, MustLoadTemplates(), o))
	eventually(t, 3*time.Second, "the reset mail is sent", func() bool { return st.get(id).status == models.MailSent })
	msgs := tr.messages()
	if len(msgs) != 1 || msgs[0].Subject != "Reset your password" || !strings.Contains(msgs[0].Text, "expires in 1 hour") {
		t.Fatalf("sent %+v", msgs)
	}
	wantResults(t, res, "password_reset_request:retry", "password_reset:sent")
}

func TestSenderResetRequestWithoutResolverFails(t *testing.T) {
	st := newFakeStore()
	id := st.add(auth.KindResetRequest, "x@example.com", nil)
	start(t, NewSender(st, &recorder{}, MustLoadTemplates(), fast(nil)))
	eventually(t, 3*time.Second, "the request fails", func() bool { return st.get(id).status == models.MailFailed })
}

func TestSenderRenderFailureIsPermanent(t *testing.T) {
	st, tr, res := newFakeStore(), &recorder{}, &results{}
	noLink := st.add(auth.KindVerifyEmail, "a@example.com", map[string]string{"expires_in": "24 hours"})
	unknown := st.add("no_such_kind", "b@example.com", map[string]string{"link": "x"})
	start(t, NewSender(st, tr, MustLoadTemplates(), fast(res)))
	for _, id := range []string{noLink, unknown} {
		eventually(t, 3*time.Second, "the message fails", func() bool { return st.get(id).status == models.MailFailed })
		if r := st.get(id); r.mail.Data != nil || r.lastErr == "" {
			t.Fatalf("failed row: data %v, last error %q", r.mail.Data, r.lastErr)
		}
	}
	if n := len(tr.messages()); n != 0 {
		t.Fatalf("%d mails sent", n)
	}
	wantResults(t, res, "verify_email:failed", "no_such_kind:failed")
}

func TestSenderPermanentTransportError(t *testing.T) {
	st, res := newFakeStore(), &results{}
	tr := &recorder{fail: func(*Message) error { return Permanent(errors.New("550 no such user")) }}
	id := st.add(auth.KindVerifyEmail, "a@example.com", verifyData())
	start(t, NewSender(st, tr, MustLoadTemplates(), fast(res)))
	eventually(t, 3*time.Second, "the message fails", func() bool { return st.get(id).status == models.MailFailed })
	wantResults(t, res, "verify_email:failed")
	if r := st.get(id); !strings.Contains(r.lastErr, "550") || r.mail.Data != nil {
		t.Fatalf("row %+v", r)
	}
}

func TestSenderMaxAttempts(t *testing.T) {
	st, res := newFakeStore(), &results{}
	var tries atomic.Int32
	tr := &recorder{fail: func(*Message) error { tries.Add(1); return errors.New("connection refused") }}
	id := st.add(auth.KindVerifyEmail, "a@example.com", verifyData())
	o := fast(res)
	o.MaxAttempts = 3
	start(t, NewSender(st, tr, MustLoadTemplates(), o))
	eventually(t, 3*time.Second, "the message fails", func() bool { return st.get(id).status == models.MailFailed })
	time.Sleep(100 * time.Millisecond)
	if n := tries.Load(); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	r := st.get(id)
	if r.mail.Data != nil || !strings.Contains(r.lastErr, "after 3 attempts") || !strings.Contains(r.lastErr, "connection refused") {
		t.Fatalf("row %+v", r)
	}
	wantResults(t, res, "verify_email:retry", "verify_email:retry", "verify_email:failed")
}

func TestDefaultBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 9: 256 * time.Second,
		10: 5 * time.Minute, 64: 5 * time.Minute, 1000: 5 * time.Minute} {
		for range 20 {
			if d := DefaultBackoff(n); d < want/2 || d > want {
				t.Fatalf("DefaultBackoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestSenderKickWakesTheLoop(t *testing.T) {
	st, tr := newFakeStore(), &recorder{}
	o := fast(nil)
	o.PollInterval = time.Hour
	s := NewSender(st, tr, MustLoadTemplates(), o)
	start(t, s)
	eventually(t, 3*time.Second, "a first round", func() bool { return st.claimCount() >= 1 })
	id := st.add(auth.KindVerifyEmail, "a@example.com", verifyData())
	time.Sleep(50 * time.Millisecond)
	if st.get(id).status != models.MailPending {
		t.Fatal("sent before any kick")
	}
	for range 5 { // never blocks, coalesces
		s.Kick()
	}
	eventually(t, 2*time.Second, "the kicked round sends", func() bool { return st.get(id).status == models.MailSent })
}

func TestSenderStopsPromptly(t *testing.T) {
	st := newFakeStore()
	o := fast(nil)
	o.PollInterval = time.Hour
	stop := start(t, NewSender(st, &recorder{}, MustLoadTemplates(), o))
	eventually(t, 3*time.Second, "a first round", func() bool { return st.claimCount() >= 1 })
	began := time.Now()
	stop()
	if d := time.Since(began); d > time.Second {
		t.Fatalf("Run took %v to stop", d)
	}
}

// blocking is a Transport whose sends last until their context ends, or hold when set.
type blocking struct {
	started chan struct{}
	hold    time.Duration
	ended   atomic.Value // error: why the send's context ended
}

func (b *blocking) Send(ctx context.Context, _ *Message) error {
	close(b.started)
	if b.hold > 0 {
		time.Sleep(b.hold)
		return nil
	}
	<-ctx.Done()
	b.ended.Store(ctx.Err())
	return ctx.Err()
}

// A send in flight when Run's context ends goes on for StopGrace at most: one the server accepts
// meanwhile is recorded as sent (so no replica sends it again), one that hangs is cut off.
func TestSenderStopGrace(t *testing.T) {
	t.Run("completes", func(t *testing.T) {
		st := newFakeStore()
		tr := &blocking{started: make(chan struct{}), hold: 100 * time.Millisecond}
		id := st.add(auth.KindVerifyEmail, "a@example.com", verifyData())
		stop := start(t, NewSender(st, tr, MustLoadTemplates(), fast(nil)))
		<-tr.started
		stop()
		if r := st.get(id); r.status != models.MailSent {
			t.Fatalf("status %s: a send accepted during the grace was not recorded", r.status)
		}
	})
	t.Run("hangs", func(t *testing.T) {
		st := newFakeStore()
		tr := &blocking{started: make(chan struct{})}
		st.add(auth.KindVerifyEmail, "a@example.com", verifyData())
		o := fast(nil)
		o.SendTimeout = time.Hour // capped to half the lease: 15s
		stop := start(t, NewSender(st, tr, MustLoadTemplates(), o))
		<-tr.started
		began := time.Now()
		stop()
		if d := time.Since(began); d > 2*time.Second {
			t.Fatalf("Run took %v to stop with a hanging send (grace 200ms)", d)
		}
		if err, _ := tr.ended.Load().(error); !errors.Is(err, context.Canceled) {
			t.Fatalf("the hanging send ended with %v", err)
		}
	})
}

// A claim's lease covers only the sends that can finish inside it: the rest of a slow batch is left
// to lapse and claimed again, and every message is still sent exactly once.
func TestSenderLeaseBoundsTheBatch(t *testing.T) {
	st := newFakeStore()
	tr := &recorder{hold: 150 * time.Millisecond}
	var ids []string
	for range 4 {
		ids = append(ids, st.add(auth.KindVerifyEmail, "a@example.com", verifyData()))
	}
	o := fast(nil)
	o.Lease = 600 * time.Millisecond // SendTimeout becomes 300ms: only two sends fit in a claim
	o.Batch = 4
	start(t, NewSender(st, tr, MustLoadTemplates(), o))
	eventually(t, 5*time.Second, "all are sent", func() bool {
		for _, id := range ids {
			if st.get(id).status != models.MailSent {
				return false
			}
		}
		return true
	})
	seen := map[string]int{}
	for _, m := range tr.messages() {
		seen[m.ID]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("message %s sent %d times", id, seen[id])
		}
	}
	if n := st.claimCount(); n < 2 {
		t.Fatalf("%d claims: the batch should not fit one lease", n)
	}
}

// A database that fails just after the send is retried while the lease holds, so the mail is
// recorded as sent instead of being sent again.
func TestSenderRetriesMarkingSent(t *testing.T) {
	st, tr := newFakeStore(), &recorder{}
	st.failSent = 2
	id := st.add(auth.KindVerifyEmail, "a@example.com", verifyData())
	start(t, NewSender(st, tr, MustLoadTemplates(), fast(nil)))
	eventually(t, 3*time.Second, "the mail is recorded as sent", func() bool { return st.get(id).status == models.MailSent })
	if n := len(tr.messages()); n != 1 {
		t.Fatalf("sent %d times", n)
	}
}

// A failing claim (database down) is polled, not spun on, and logged once.
func TestSenderClaimFailureNoBusyLoop(t *testing.T) {
	st := newFakeStore()
	st.failClaim = errors.New("database is down")
	o := fast(nil)
	o.PollInterval = 50 * time.Millisecond
	var logs testlog.Buffer
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	start(t, NewSender(st, &recorder{}, MustLoadTemplates(), o))
	time.Sleep(500 * time.Millisecond)
	if n := st.claimCount(); n > 15 {
		t.Fatalf("%d claims in 500ms with a 50ms poll interval", n)
	}
	st.mu.Lock()
	st.failClaim = nil
	st.mu.Unlock()
	id := st.add(auth.KindVerifyEmail, "a@example.com", verifyData())
	eventually(t, 3*time.Second, "sent once the database is back", func() bool { return st.get(id).status == models.MailSent })
	out := logs.String()
	if strings.Count(out, "cannot claim messages") != 1 || strings.Count(out, "claiming messages again") != 1 {
		t.Fatalf("an outage should log once when it starts and once when it ends:\n%s", out)
	}
}

func TestErrText(t *testing.T) {
	long := strings.Repeat("é", 400) // 800 bytes
	got := errText(errors.New(long))
	if len(got) > maxErrLen || !strings.HasPrefix(long, got) || len(got) < maxErrLen-1 {
		t.Fatalf("errText cut to %d bytes", len(got))
	}
	if errText(nil) != "" {
		t.Fatal("errText(nil)")
	}
}

// wantResults waits a little for OnResult to have reported want (it runs after the store update
// that a test waits for), then compares.
func wantResults(t *testing.T, res *results, want ...string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for len(res.list()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := res.list(); !slices.Equal(got, want) {
		t.Fatalf("results %v, want %v", got, want)
	}
}
