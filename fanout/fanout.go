// Package fanout spreads session revocations between server instances through Redis pub/sub, so a
// session revoked on one instance is refused by the others within milliseconds instead of at their
// next database poll. It implements auth.Broadcaster.
//
// Redis is an accelerator here, never a dependency: while it is unreachable, revocations still reach
// every instance through the database poll (REVOCATION_POLL_INTERVAL), and nothing fails. The state
// changes are logged once each way and reported through OnChange (a metric).
package fanout

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"gqlauth/internal/degrade"
)

// Channel is the pub/sub channel of the server's revocations. Everything that revokes sessions of a
// deployment (the servers, authctl) must publish on the same one.
const Channel = "gqlauth:revocations"

// Redis publishes and receives revocations on one channel.
type Redis struct {
	// OnChange, if set, is called with true when Redis stops working for the fan-out and with false
	// when it works again. Set it before Subscribe.
	OnChange func(degraded bool)
	// HealthInterval is how long the subscription may stay silent before it is checked with a PING,
	// and RetryInterval how long to wait after a failure before trying again. NewRedis sets 2s and 1s.
	HealthInterval, RetryInterval time.Duration

	client  redis.UniversalClient
	channel string
	health  *degrade.Tracker // degraded: Redis is failing, revocations travel by database polling
}

// NewRedis returns a broadcaster on channel. A nil log means slog.Default().
func NewRedis(client redis.UniversalClient, channel string, log *slog.Logger) *Redis {
	return &Redis{
		client: client, channel: channel, HealthInterval: 2 * time.Second, RetryInterval: time.Second,
		health: degrade.NewTracker(log,
			"revocation fan-out: Redis failed; revocations reach other instances by database polling until it is back",
			"revocation fan-out: Redis works again; revocations are broadcast at once"),
	}
}

// errDegraded is what Publish returns, without trying, while Redis is known to be failing.
var errDegraded = errors.New("fanout: Redis is failing; not publishing until the subscription works again")

// Publish sends the session ids as one comma-separated message (ids never contain commas). While
// Redis is failing it returns at once instead of making each revocation wait for a timeout; the
// subscription notices the recovery (within a few seconds) and publishing resumes.
func (r *Redis) Publish(ctx context.Context, sessionIDs []string) error {
	if r.health.Degraded() {
		return errDegraded
	}
	err := r.client.Publish(ctx, r.channel, strings.Join(sessionIDs, ",")).Err()
	if err != nil {
		r.health.Fail(r.OnChange, "err", err)
	}
	return err
}

// Subscribe delivers every published batch until ctx ends. go-redis reconnects and resubscribes by
// itself after a connection error. A connection that merely goes silent (Redis hung, or a network
// that drops packets without resetting) is caught here: after HealthInterval of silence it sends a
// PING, and if no answer comes within another HealthInterval it drops the connection and subscribes
// anew. Failures are reported once, retried every RetryInterval, and the recovery is reported at the
// first successful receive. Messages published while disconnected are lost, which only delays those
// revocations to the next database poll.
func (r *Redis) Subscribe(ctx context.Context, deliver func(sessionIDs []string)) {
	sub := r.client.Subscribe(ctx, r.channel)
	defer func() { _ = sub.Close() }()
	pinged := false // a PING is waiting for its PONG
	for ctx.Err() == nil {
		msg, err := sub.ReceiveTimeout(ctx, r.HealthInterval)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !pinged {
					// Silence: ask for a PONG, which the next receive reads.
					if err = sub.Ping(ctx); err == nil {
						pinged = true
						continue
					}
				} else {
					err = errors.New("no answer to PING within " + r.HealthInterval.String())
				}
				// go-redis keeps a connection that only timed out: replace it.
				_ = sub.Close()
				sub = r.client.Subscribe(ctx, r.channel)
			}
			pinged = false
			r.health.Fail(r.OnChange, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(r.RetryInterval):
			}
			continue
		}
		pinged = false
		r.health.Recover(r.OnChange)
		if m, ok := msg.(*redis.Message); ok {
			if ids := split(m.Payload); len(ids) > 0 {
				deliver(ids)
			}
		}
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
