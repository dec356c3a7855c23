package fanout

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
)

// While Redis hangs, only the first revocation waits for the publish timeout: the next ones return
// at once, and publishing resumes when the subscription hears from Redis again.
func TestPublishSkipsAHungRedis(t *testing.T) {
	url, proxy := testdb.Proxied(t, testdb.Redis(t))
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	defer client.Close()
	r := NewRedis(client, "fanout-test:"+t.Name(), slog.New(slog.DiscardHandler))
	r.HealthInterval, r.RetryInterval = 200*time.Millisecond, 50*time.Millisecond
	states := make(chan bool, 16)
	r.OnChange = func(degraded bool) { states <- degraded }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Subscribe(ctx, func(auth.Broadcast) {})
	publish := func() error {
		pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		defer cancel()
		return r.Publish(pctx, auth.Broadcast{UserID: "u1", SessionIDs: []string{"s1"}})
	}
	if err := publish(); err != nil {
		t.Fatal(err)
	}

	proxy.Freeze()
	if err := publish(); err == nil || errors.Is(err, errDegraded) {
		t.Fatalf("first publish to a hung Redis: %v, want its timeout", err)
	}
	if err := publish(); !errors.Is(err, errDegraded) {
		t.Fatalf("second publish: %v, want errDegraded without trying", err)
	}
	if s := <-states; !s {
		t.Fatal("the outage was not reported")
	}

	proxy.Thaw()
	thawed := time.Now()
	select {
	case s := <-states:
		if s {
			t.Fatal("reported degraded again instead of recovered")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription did not report the recovery")
	}
	if err := publish(); err != nil {
		t.Fatalf("publish after the recovery: %v", err)
	}
	t.Logf("recovery reported %s after the thaw", time.Since(thawed).Round(time.Millisecond))
}
