package fanout

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gqlauth/auth"
	"gqlauth/internal/testdb"
)

// oldSplit is how instances of the previous version read a revocation message.
func oldSplit(payload string) []string {
	var ids []string
	for _, id := range strings.Split(payload, ",") {
		if id = strings.TrimSpace(id); id != "" && len(id) <= 64 {
			ids = append(ids, id)
		}
	}
	return ids
}

// An older instance reads every session id of a new revocation message, in order (the user token
// comes last and names no session); a new instance reads old messages, without a user.
func TestRevocationFormatBothWays(t *testing.T) {
	r := NewRedis(nil, Channel, slog.New(slog.DiscardHandler))
	ch, payload, err := r.encode(auth.Broadcast{UserID: "u1", SessionIDs: []string{"s1", "s2"}})
	if err != nil || ch != Channel {
		t.Fatalf("encode: %q, %v", ch, err)
	}
	if got := oldSplit(payload); !slices.Equal(got[:2], []string{"s1", "s2"}) || len(got) != 3 || got[2] != "u:u1" {
		t.Fatalf("an older instance reads %v", got)
	}
	for payload, want := range map[string]auth.Broadcast{
		"s1, s2":                        {SessionIDs: []string{"s1", "s2"}},
		"s1,s2,u:u1":                    {UserID: "u1", SessionIDs: []string{"s1", "s2"}},
		"s1," + strings.Repeat("x", 65): {SessionIDs: []string{"s1"}},
	} {
		got, ok := r.decode(Channel, payload)
		if !ok || got.UserID != want.UserID || !slices.Equal(got.SessionIDs, want.SessionIDs) {
			t.Fatalf("decode(%q) = %+v, %v; want %+v", payload, got, ok, want)
		}
	}
	for _, bad := range []string{"", " , ", "u:u1", "{}", `{"type":"SESSION_REVOKED","user":"u","session":"s"}`,
		`{"type":"SESSION_CREATED","user":"u"}`, `{"type":"PASSWORD_CHANGED"}`, strings.Repeat("x", 2000)} {
		for _, channel := range []string{Channel, EventsChannel(Channel)} {
			if channel == Channel && strings.HasPrefix(bad, "{") {
				continue // an old-format reader takes JSON fragments for ids; nobody sends them there
			}
			if got, ok := r.decode(channel, bad); ok {
				t.Fatalf("decode(%s, %q) = %+v, want nothing", channel, bad, got)
			}
		}
	}
}

// Through a real Redis: revocations with their user, old-format revocations, and events, each
// delivered once to a subscriber; malformed event messages are dropped.
func TestRedisRoundTrip(t *testing.T) {
	opts, err := redis.ParseURL(testdb.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	defer client.Close()
	channel := "fanout-test:" + t.Name()
	r := NewRedis(client, channel, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan auth.Broadcast, 16)
	go r.Subscribe(ctx, func(m auth.Broadcast) { got <- m })
	waitSubscribed(t, client, channel)

	next := func() auth.Broadcast {
		t.Helper()
		select {
		case m := <-got:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("nothing delivered")
		}
		return auth.Broadcast{}
	}
	if err := r.Publish(ctx, auth.Broadcast{UserID: "u1", SessionIDs: []string{"s1", "s2"}}); err != nil {
		t.Fatal(err)
	}
	if m := next(); m.UserID != "u1" || !slices.Equal(m.SessionIDs, []string{"s1", "s2"}) || m.Event != nil {
		t.Fatalf("revocation delivered as %+v", m)
	}
	// An older instance (or authctl) publishes bare ids.
	if err := client.Publish(ctx, channel, "s3").Err(); err != nil {
		t.Fatal(err)
	}
	if m := next(); m.UserID != "" || !slices.Equal(m.SessionIDs, []string{"s3"}) {
		t.Fatalf("old-format revocation delivered as %+v", m)
	}
	// Garbage on the events channel is dropped; the event after it arrives.
	if err := client.Publish(ctx, EventsChannel(channel), "not json").Err(); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2031, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, e := range []auth.SessionEvent{
		{Type: auth.SessionCreated, UserID: "u1", SessionID: "s4", At: at},
		{Type: auth.PasswordChanged, UserID: "u1", SessionID: "s1", At: at, CredentialsVersion: 7},
	} {
		if err := r.Publish(ctx, auth.Broadcast{Event: &e}); err != nil {
			t.Fatal(err)
		}
		m := next()
		if m.Event == nil || *m.Event != e || len(m.SessionIDs) != 0 {
			t.Fatalf("event delivered as %+v, want %+v", m, e)
		}
	}
	select {
	case m := <-got:
		t.Fatalf("extra delivery %+v", m)
	default:
	}
}

// waitSubscribed waits until a subscriber listens on both channels.
func waitSubscribed(t *testing.T, client *redis.Client, channel string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := client.PubSubNumSub(t.Context(), channel, EventsChannel(channel)).Result()
		if err == nil && n[channel] > 0 && n[EventsChannel(channel)] > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no subscriber: %v, %v", n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
