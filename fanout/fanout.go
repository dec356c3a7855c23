// Package fanout spreads session revocations between server instances through Redis pub/sub, so a
// session revoked on one instance is refused by the others within milliseconds instead of at their
// next database poll. It implements auth.Broadcaster.
package fanout

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis publishes and receives revocations on one channel.
type Redis struct {
	client  redis.UniversalClient
	channel string
	log     *slog.Logger
}

// NewRedis returns a broadcaster on channel. A nil log means slog.Default().
func NewRedis(client redis.UniversalClient, channel string, log *slog.Logger) *Redis {
	if log == nil {
		log = slog.Default()
	}
	return &Redis{client: client, channel: channel, log: log}
}

// Publish sends the session ids as one comma-separated message (ids never contain commas).
func (r *Redis) Publish(ctx context.Context, sessionIDs []string) error {
	return r.client.Publish(ctx, r.channel, strings.Join(sessionIDs, ",")).Err()
}

// Subscribe delivers every published batch until ctx ends. go-redis reconnects a subscription by
// itself; if subscribing fails outright (Redis down at start), it retries every few seconds. Messages
// published while disconnected are lost, which only delays those revocations to the next poll.
func (r *Redis) Subscribe(ctx context.Context, deliver func(sessionIDs []string)) {
	for ctx.Err() == nil {
		sub := r.client.Subscribe(ctx, r.channel)
		if _, err := sub.Receive(ctx); err != nil { // waits for the subscription confirmation
			_ = sub.Close()
			if ctx.Err() == nil {
				r.log.Warn("revocation fan-out: cannot subscribe to Redis; relying on database polling", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Second):
				}
			}
			continue
		}
		ch := sub.Channel()
	recv:
		for {
			select {
			case <-ctx.Done():
				break recv
			case msg, ok := <-ch:
				if !ok {
					break recv
				}
				if ids := split(msg.Payload); len(ids) > 0 {
					deliver(ids)
				}
			}
		}
		_ = sub.Close()
	}
}

func split(payload string) []string {
	var ids []string
	for _, id := range strings.Split(payload, ",") {
		if id = strings.TrimSpace(id); id != "" && len(id) <= 64 {
			ids = append(ids, id)
		}
	}
	return ids
}
