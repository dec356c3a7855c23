package mail

import (
	"context"
	"sync"
	"testing"
	"time"

	"gqlauth/auth"
	"gqlauth/internal/mailpit"
	"gqlauth/internal/testdb"
	"gqlauth/models"
	"gqlauth/store"
)

// Two replicas' senders on one real outbox (SQLite and Postgres) deliver every message through
// Mailpit exactly once, drop the reset request that resolves to nothing, and leave no data behind.
func TestSendersOnTheStore(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		tr, mp, _ := mailpitTransport(t, "")
		ctx := context.Background()
		db, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })

		var mu sync.Mutex
		sends := map[string]int{}
		counting := transportFunc(func(ctx context.Context, m *Message) error {
			mu.Lock()
			sends[m.ID]++
			mu.Unlock()
			return tr.Send(ctx, m)
		})
		var addrs []string
		for range 12 {
			to := mailpit.Address(t)
			addrs = append(addrs, to)
			if err := db.EnqueueMail(ctx, auth.Mail{Kind: auth.KindVerifyEmail, To: to, Data: verifyData()}, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.EnqueueMail(ctx, auth.Mail{Kind: auth.KindResetRequest, To: "unknown@example.com"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		o := fast(nil)
		o.Batch = 3
		o.Resolve = func(context.Context, auth.Mail) (auth.Mail, bool, error) { return auth.Mail{}, false, nil }
		for range 2 {
			start(t, NewSender(db, counting, MustLoadTemplates(), o))
		}

		pending := func() (n int64) {
			if err := db.Gorm().Model(&models.OutboxMail{}).Where("status = ?", models.MailPending).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		eventually(t, 20*time.Second, "the outbox is empty", func() bool { return pending() == 0 })
		for _, to := range addrs {
			mp.WaitOne(t, to, 5*time.Second)
		}
		time.Sleep(200 * time.Millisecond)
		for _, to := range addrs {
			if n := mp.Count(t, to); n != 1 {
				t.Fatalf("%d messages to %s, want 1", n, to)
			}
		}
		mu.Lock()
		for id, n := range sends {
			if n != 1 {
				t.Errorf("message %s sent %d times", id, n)
			}
		}
		mu.Unlock()

		var rows []models.OutboxMail
		if err := db.Gorm().Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		byStatus := map[models.MailStatus]int{}
		for _, r := range rows {
			byStatus[r.Status]++
			if r.Data != "" && r.Data != "{}" && r.Data != "null" {
				t.Errorf("finished message %s (%s) keeps data %q", r.ID, r.Status, r.Data)
			}
		}
		if byStatus[models.MailSent] != 12 || byStatus[models.MailDropped] != 1 {
			t.Fatalf("outcomes %v", byStatus)
		}
	})
}
