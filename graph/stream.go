package graph

import (
	"context"
	"sync/atomic"
)

// StreamSignal lets a subscription's resolver tell its transport when the stream has something to
// read, so that no goroutine has to wait on an idle stream: the transport reads the stream once per
// Notify (an event queued, or the stream closed) and not otherwise. A transport that does not offer
// one, or a resolver that does not use it, falls back to gqlgen's way: a goroutine that reads until
// the stream ends.
//
// The contract for a resolver that calls Use: Notify exactly once for each value it puts on its
// channel and once when it closes it, never for a value that replaces one it dropped (the count of
// notifications not yet read must equal the number of reads that will not block).
type StreamSignal struct {
	notify func()
	used   atomic.Bool
}

type streamSignalKey struct{}

// WithStreamSignal returns ctx carrying a StreamSignal that calls notify.
func WithStreamSignal(ctx context.Context, notify func()) (context.Context, *StreamSignal) {
	s := &StreamSignal{notify: notify}
	return context.WithValue(ctx, streamSignalKey{}, s), s
}

// Used reports whether the resolver took the signal (then the transport must not read the stream
// except when notified).
func (s *StreamSignal) Used() bool { return s.used.Load() }

// streamNotify returns the notify function of ctx's StreamSignal, marking it used, or nil when the
// transport offers none.
func streamNotify(ctx context.Context) func() {
	s, _ := ctx.Value(streamSignalKey{}).(*StreamSignal)
	if s == nil {
		return nil
	}
	s.used.Store(true)
	return s.notify
}
