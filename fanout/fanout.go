// Package fanout spreads session revocations and live session events between server instances
// through Redis pub/sub, so a session revoked on one instance is refused by the others within
// milliseconds instead of at their next database poll, and a login or a password change reaches the
// account's open subscriptions on every instance at once. It implements auth.Broadcaster.
//
// Two channels, two formats:
//   - Channel (revocations): the session ids, comma-separated, as every version has sent them, with
//     one more token "u:<user id>" naming their account. An instance of an older version reads that
//     token as one more revoked session id, which no session has (harmless: its cache forgets it with
//     the others), and every real id as before; a message without the token (from an older instance,
//     or authctl) is delivered with UserID "".
//   - EventsChannel(channel) (SESSION_CREATED, PASSWORD_CHANGED): one JSON object per event. Older
//     instances do not subscribe to it, so it can never be mistaken for revoked ids.
//
// Redis is an accelerator here, never a dependency: while it is unreachable, revocations still reach
// every instance through the database poll (REVOCATION_POLL_INTERVAL), and nothing fails. The state
// changes are logged once each way and reported through OnChange (a metric).
package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"gqlauth/auth"
	"gqlauth/internal/degrade"
)

// Channel is the pub/sub channel of the server's revocations. Everything that revokes sessions of a
// deployment (the servers, authctl) must publish on the same one.
const Channel = "gqlauth:revocations"

// EventsChannel is the channel of the live session events that go with the revocations' channel.
func EventsChannel(channel string) string { return channel + ":events" }

// userPrefix marks the token of a revocation message that names the sessions' account.
const userPrefix = "u:"

// maxIDLength bounds the ids read from a message (session and user ids are UUIDs); maxEventSize
// bounds the event messages read, so a hostile publisher costs bounded work per message.
const (
	maxIDLength  = 64
	maxEventSize = 1024
)

// Redis publishes and receives revocations and live session events on two channels.
type Redis struct {
	// OnChange, if set, is called with true when Redis stops working for the fan-out and with false
	// when it works again. Set it before Subscribe.
	OnChange func(degraded bool)
	// HealthInterval is how long the subscription may stay silent before it is checked with a PING,
	// and RetryInterval how long to wait after a failure before trying again. NewRedis sets 2s and 1s.
	HealthInterval, RetryInterval time.Duration

	client  redis.UniversalClient
	channel string
	events  string           // EventsChannel(channel)
	health  *degrade.Tracker // degraded: Redis is failing, revocations travel by database polling
}

// NewRedis returns a broadcaster on channel. A nil log means slog.Default().
func NewRedis(client redis.UniversalClient, channel string, log *slog.Logger) *Redis {
	return &Redis{
		client: client, channel: channel, events: EventsChannel(channel), HealthInterval: 2 * time.Second, RetryInterval: time.Second,
		health: degrade.NewTracker(log,
			"revocation fan-out: Redis failed; revocations reach other instances by database polling until it is back",
			"revocation fan-out: Redis works again; revocations are broadcast at once"),
	}
}

var _ auth.Broadcaster = (*Redis)(nil)

// errDegraded is what Publish returns, without trying, while Redis is known to be failing.
var errDegraded = errors.New("fanout: Redis is failing; not publishing until the subscription works again")

// Publish sends m: a revocation on the revocations' channel, an event on the events' channel. While
// Redis is failing it returns at once instead of making each revocation wait for a timeout; the
// subscription notices the recovery (within a few seconds) and publishing resumes.
func (r *Redis) Publish(ctx context.Context, m auth.Broadcast) error {
	channel, payload, err := r.encode(m)
	if err != nil || payload == "" {
		return err
	}
	if r.health.Degraded() {
		return errDegraded
	}
	err = r.client.Publish(ctx, channel, payload).Err()
	if err != nil {
		r.health.Fail(r.OnChange, "err", err)
	}
	return err
}

// eventMessage is the JSON of an event on the events' channel.
type eventMessage struct {
	Type    auth.SessionEventType `json:"type"`
	UserID  string                `json:"user"`
	Session string                `json:"session,omitempty"`
	At      time.Time             `json:"at"`
	Version int64                 `json:"version,omitempty"` // PASSWORD_CHANGED: the new credentials version
}

func (r *Redis) encode(m auth.Broadcast) (channel, payload string, err error) {
	if m.Event != nil {
		b, err := json.Marshal(eventMessage{Type: m.Event.Type, UserID: m.Event.UserID, Session: m.Event.SessionID,
			At: m.Event.At, Version: m.Event.CredentialsVersion})
		return r.events, string(b), err
	}
	if len(m.SessionIDs) == 0 {
		return "", "", nil
	}
	ids := m.SessionIDs
	if m.UserID != "" {
		// Last, so that an older reader's view of the first ids is exactly what it always was.
		ids = append(ids[:len(ids):len(ids)], userPrefix+m.UserID)
	}
	// Ids never contain commas (UUIDs).
	return r.channel, strings.Join(ids, ","), nil
}

// Subscribe delivers every message published on both channels until ctx ends; malformed ones are
// dropped. go-redis reconnects and resubscribes by
// itself after a connection error. A connection that merely goes silent (Redis hung, or a network
// that drops packets without resetting) is caught here: after HealthInterval of silence it sends a
// PING, and if no answer comes within another HealthInterval it drops the connection and subscribes
// anew. Failures are reported once, retried every RetryInterval, and the recovery is reported at the
// first successful receive. Messages published while disconnected are lost, which only delays those
// revocations to the next database poll.
func (r *Redis) Subscribe(ctx context.Context, deliver func(auth.Broadcast)) {
	sub := r.client.Subscribe(ctx, r.channel, r.events)
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
				sub = r.client.Subscribe(ctx, r.channel, r.events)
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
			if b, ok := r.decode(m.Channel, m.Payload); ok {
				deliver(b)
			}
		}
	}
}

// decode reads a message of either channel; ok is false for one that carries nothing usable.
func (r *Redis) decode(channel, payload string) (auth.Broadcast, bool) {
	if channel == r.events {
		e, ok := decodeEvent(payload)
		return auth.Broadcast{Event: e}, ok
	}
	b := decodeRevocation(payload)
	return b, len(b.SessionIDs) > 0
}

// decodeRevocation reads the session ids, and the account when a "u:" token names it (its last one
// wins; older instances send none). Tokens that are empty or too long are skipped, as always.
func decodeRevocation(payload string) auth.Broadcast {
	var b auth.Broadcast
	for tok := range strings.SplitSeq(payload, ",") {
		tok = strings.TrimSpace(tok)
		switch {
		case tok == "" || len(tok) > maxIDLength:
		case strings.HasPrefix(tok, userPrefix):
			b.UserID = tok[len(userPrefix):]
		default:
			b.SessionIDs = append(b.SessionIDs, tok)
		}
	}
	return b
}

func decodeEvent(payload string) (*auth.SessionEvent, bool) {
	if len(payload) > maxEventSize {
		return nil, false
	}
	var m eventMessage
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		return nil, false
	}
	switch {
	case m.Type != auth.SessionCreated && m.Type != auth.PasswordChanged,
		m.UserID == "" || len(m.UserID) > maxIDLength || len(m.Session) > maxIDLength,
		m.Type == auth.SessionCreated && m.Session == "":
		return nil, false
	}
	return &auth.SessionEvent{Type: m.Type, UserID: m.UserID, SessionID: m.Session, At: m.At, CredentialsVersion: m.Version}, true
}
