package mail

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/models"
)

// row is one outbox message of fakeStore.
type row struct {
	mail    auth.Mail
	status  models.MailStatus
	next    time.Time
	leased  time.Time
	lastErr string
	sentAt  time.Time
}

// fakeStore is an in-memory outbox: the ClaimMail/MailSent/MailRetry/MailDone part of
// auth.MailStore, following its contract (the rest is not used by the sender and panics).
type fakeStore struct {
	auth.MailStore

	mu        sync.Mutex
	rows      map[string]*row
	order     []string
	seq       int
	claims    int
	failClaim error
	failSent  int // MailSent fails this many more times
}

func newFakeStore() *fakeStore { return &fakeStore{rows: map[string]*row{}} }

// add queues a message due now and returns its id.
func (f *fakeStore) add(kind, to string, data map[string]string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	id := fmt.Sprintf("m%d-%d", f.seq, time.Now().UnixNano())
	f.rows[id] = &row{mail: auth.Mail{ID: id, Kind: kind, To: to, Data: data}, status: models.MailPending}
	f.order = append(f.order, id)
	return id
}

// get returns a copy of the row with id.
func (f *fakeStore) get(id string) row {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := *f.rows[id]
	return r
}

func (f *fakeStore) claimCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.claims
}

func (f *fakeStore) ClaimMail(_ context.Context, now time.Time, lease time.Duration, n int) ([]auth.Mail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claims++
	if f.failClaim != nil {
		return nil, f.failClaim
	}
	var out []auth.Mail
	for _, id := range f.order {
		r := f.rows[id]
		if len(out) == n {
			break
		}
		if r.status != models.MailPending || r.next.After(now) || r.leased.After(now) {
			continue
		}
		r.leased = now.Add(lease)
		m := r.mail
		m.Data = copyMap(r.mail.Data)
		out = append(out, m)
	}
	return out, nil
}

func (f *fakeStore) MailSent(_ context.Context, id string, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failSent > 0 {
		f.failSent--
		return errors.New("database is down")
	}
	r := f.rows[id]
	r.status, r.sentAt, r.mail.Data, r.leased = models.MailSent, at, nil, time.Time{}
	return nil
}

func (f *fakeStore) MailRetry(_ context.Context, id string, next time.Time, lastErr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rows[id]
	r.mail.Attempts++
	r.next, r.lastErr, r.leased = next, lastErr, time.Time{}
	return nil
}

func (f *fakeStore) MailDone(_ context.Context, id string, status models.MailStatus, _ time.Time, lastErr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rows[id]
	if status == models.MailFailed {
		r.mail.Attempts++
	}
	r.status, r.lastErr, r.mail.Data, r.leased = status, lastErr, nil, time.Time{}
	return nil
}

// replace does what CreateEmailToken's replace does to the outbox: the message with id becomes m.
func (f *fakeStore) replace(id string, m auth.Mail) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.rows[id]
	r.mail.Kind, r.mail.To, r.mail.Data = m.Kind, m.To, copyMap(m.Data)
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// recorder is a Transport that records what it is given and answers with fail (nil: success).
type recorder struct {
	mu   sync.Mutex
	sent []*Message
	fail func(*Message) error
	hold time.Duration // each send takes this long (ignoring ctx)
}

func (r *recorder) Send(_ context.Context, m *Message) error {
	time.Sleep(r.hold)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(m); err != nil {
			return err
		}
	}
	r.sent = append(r.sent, m)
	return nil
}

func (r *recorder) messages() []*Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Message(nil), r.sent...)
}

// results collects OnResult's calls.
type results struct {
	mu  sync.Mutex
	got []string
}

func (r *results) add(kind, outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, kind+":"+outcome)
}

func (r *results) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// start runs s until the test ends (or stop is called) and checks that Run returned.
func start(t *testing.T, s *Sender) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not return within 5s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually waits up to timeout for cond.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
