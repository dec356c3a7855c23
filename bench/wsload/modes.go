package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"sync/atomic"
	"time"
)

// idle opens -n sockets over -users accounts and measures the server at rest with them open.
func (t *tool) idle(ctx context.Context, out io.Writer) error {
	endpoint := t.o.urls[0]
	tokens := make([]string, t.o.users)
	for i := range tokens {
		tok, err := t.register(ctx, endpoint, t.email(i))
		if err != nil {
			return err
		}
		tokens[i] = tok
	}
	rssBefore, goBefore, err := t.sample(ctx)
	if err != nil {
		return err
	}

	targets := make([]target, t.o.n)
	for i := range targets {
		targets[i] = target{endpoint, tokens[i%len(tokens)]}
	}
	// In two halves, with a sample between them: the slope between the half and the whole leaves
	// out what the first sockets reuse of memory the server held already (the hashes' garbage).
	var events atomic.Int64
	start := time.Now()
	half := len(targets) / 2
	socks, errs := t.openAll(ctx, targets[:half], func() { events.Add(1) })
	opened := time.Since(start)
	defer func() { closeAll(socks) }()
	sleep(ctx, t.o.settle)
	rssHalf, goHalf, err := t.sample(ctx)
	if err != nil {
		return err
	}
	nHalf := len(socks)
	start = time.Now()
	more, errs2 := t.openAll(ctx, targets[half:], func() { events.Add(1) })
	opened += time.Since(start)
	socks = append(socks, more...)
	for k, v := range errs2 {
		errs[k] += v
	}
	t.logf("%d sockets open (%d failed: %v)", len(socks), t.o.n-len(socks), errs)
	if len(socks) == nHalf || nHalf == 0 {
		return errors.New("sockets failed to open")
	}

	sleep(ctx, t.o.settle)
	rssAfter, goAfter, err := t.sample(ctx)
	if err != nil {
		return err
	}
	var cpuBefore, cpuAfter time.Duration
	if t.o.pid != 0 {
		if cpuBefore, err = cpuTime(t.o.pid); err != nil {
			return err
		}
	}
	t.logf("idle for %s", t.o.idle)
	sleep(ctx, t.o.idle)
	if t.o.pid != 0 {
		if cpuAfter, err = cpuTime(t.o.pid); err != nil {
			return err
		}
	}
	stillOpen := 0
	closed := map[string]int{}
	for _, s := range socks {
		if s.open() {
			stillOpen++
		} else {
			closed[fmt.Sprintf("%d %s", s.code, s.reason)]++
		}
	}

	// Every subscription is live: one more login per account reaches each of its sockets.
	before := events.Load()
	for i := range tokens {
		if _, err := t.login(ctx, endpoint, t.email(i)); err != nil {
			return err
		}
	}
	delivered := stillOpen > 0 && waitUntil(ctx, t.o.timeout, func() bool { return events.Load()-before >= int64(stillOpen) })

	n := int64(len(socks))
	nSecond := float64(n) - float64(nHalf)
	fmt.Fprintf(out, "idle: %d sockets (%d accounts) open on %s in %s (two halves, with a GC wait between; the time excludes it), %d failed %v\n",
		n, t.o.users, endpoint, opened.Round(time.Millisecond), t.o.n-len(socks), errs)
	if t.o.pid != 0 {
		fmt.Fprintf(out, "  server VmRSS: %s before, %s at %d sockets, %s at %d → %.1f KiB per socket (whole), %.1f KiB per socket (second half)\n",
			mib(rssBefore), mib(rssHalf), nHalf, mib(rssAfter), n,
			float64(rssAfter-rssBefore)/1024/float64(n), float64(rssAfter-rssHalf)/1024/nSecond)
		idleCPU := cpuAfter - cpuBefore
		fmt.Fprintf(out, "  server CPU at idle: %s over %s = %.2f%% of one core\n",
			idleCPU, t.o.idle, 100*idleCPU.Seconds()/t.o.idle.Seconds())
	}
	if len(goBefore) > 0 && len(goAfter) > 0 {
		for _, g := range []struct{ name, key string }{
			{"Go heap in use", "go_memstats_heap_inuse_bytes"}, {"Go stacks in use", "go_memstats_stack_inuse_bytes"},
		} {
			fmt.Fprintf(out, "  server %s: %s → %s → %s (%.1f KiB per socket, whole; %.1f second half)\n", g.name,
				mib(int64(goBefore[g.key])), mib(int64(goHalf[g.key])), mib(int64(goAfter[g.key])),
				(goAfter[g.key]-goBefore[g.key])/1024/float64(n), (goAfter[g.key]-goHalf[g.key])/1024/nSecond)
		}
		fmt.Fprintf(out, "  server goroutines: %.0f → %.0f (%.2f per socket)  [from %s]\n",
			goBefore["go_goroutines"], goAfter["go_goroutines"], (goAfter["go_goroutines"]-goBefore["go_goroutines"])/float64(n), t.metricsURL)
	}
	fmt.Fprintf(out, "  after the idle window: %d/%d sockets still open (closes by code: %v); a login per account reached them: %v (%d events)\n",
		stillOpen, n, closed, delivered, events.Load()-before)
	if stillOpen != len(socks) || !delivered {
		return errors.New("sockets closed or subscriptions dead during the idle window")
	}
	return nil
}

// sample reads the server's VmRSS (with -pid) and the Go gauges of its /metrics, after the server's
// next garbage collection (Go forces one every 2 minutes) when -gc-wait allows: the argon2id hashes
// of the logins and the handshakes leave tens of MiB of garbage that would otherwise swamp the figure.
func (t *tool) sample(ctx context.Context) (int64, map[string]float64, error) {
	const gcs = "go_gc_duration_seconds_count"
	if n, ok := goStats(ctx, t.hc, t.metricsURL)[gcs]; ok && t.o.gcWait > 0 {
		t.logf("waiting (at most %s) for the server's next GC", t.o.gcWait)
		if !waitUntil(ctx, t.o.gcWait, func() bool { return goStats(ctx, t.hc, t.metricsURL)[gcs] > n }) {
			t.logf("no GC within %s; sampling anyway", t.o.gcWait)
		}
		sleep(ctx, time.Second) // the scavenger's first pass
	}
	var rss int64
	if t.o.pid != 0 {
		var err error
		if rss, err = vmRSS(t.o.pid); err != nil {
			return 0, nil, err
		}
	}
	return rss, goStats(ctx, t.hc, t.metricsURL), ctx.Err()
}

func metricsURLOf(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	u.Path = "/metrics"
	return u.String()
}

// logoutAll runs the rounds of "a user with -sockets open sockets logs out everywhere".
func (t *tool) logoutAll(ctx context.Context, out io.Writer) error {
	var lasts, all, replies []time.Duration
	for r := range t.o.rounds {
		last, closes, reply, err := t.logoutAllRound(ctx, r)
		if err != nil {
			return fmt.Errorf("round %d: %w", r+1, err)
		}
		t.logf("round %d: logoutAll answered in %s, last of %d closes after %s", r+1, reply.Round(time.Microsecond), len(closes), last.Round(time.Microsecond))
		lasts, all, replies = append(lasts, last), append(all, closes...), append(replies, reply)
	}
	fmt.Fprintf(out, "logoutall: %d rounds, %d sockets over %d sessions per round, on %v (logoutAll sent to the first)\n",
		t.o.rounds, t.o.sockets, t.o.sessions, t.o.urls)
	line := func(name string, xs []time.Duration) {
		sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
		fmt.Fprintf(out, "  %-32s p50 %8s  p99 %8s  max %8s  (n=%d)\n", name,
			ms(percentile(xs, 50)), ms(percentile(xs, 99)), ms(xs[len(xs)-1]), len(xs))
	}
	line("logoutAll → last close", lasts)
	line("logoutAll → each close", all)
	line("logoutAll → its HTTP answer", replies)
	fmt.Fprintf(out, "  closes: %v\n", t.tally)
	if len(t.missing) > 0 {
		fmt.Fprintf(out, "  sockets closed without their own SESSION_REVOKED, by how many of the other sessions' they got first: %v\n", t.missing)
	}
	for k := range t.tally {
		if k != "4403 SESSION_REVOKED, SESSION_REVOKED event first: true" {
			return errors.New("some sockets did not get the SESSION_REVOKED event and then 4403 SESSION_REVOKED")
		}
	}
	return nil
}

// logoutAllRound registers a fresh account, opens its sockets, proves every subscription live, then
// times logoutAll against the closes. It returns the latency to the last close, every close's
// latency, and the logoutAll answer's latency; a socket still open after -timeout is an error. The
// close codes, and whether the SESSION_REVOKED event came first, are tallied in t.tally.
func (t *tool) logoutAllRound(ctx context.Context, r int) (time.Duration, []time.Duration, time.Duration, error) {
	email := t.email(r)
	first := t.o.urls[0]
	tokens := make([]string, t.o.sessions)
	var err error
	if tokens[0], err = t.register(ctx, first, email); err != nil {
		return 0, nil, 0, err
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i], err = t.login(ctx, t.o.urls[i%len(t.o.urls)], email); err != nil {
			return 0, nil, 0, err
		}
	}
	targets := make([]target, t.o.sockets)
	for i := range targets {
		targets[i] = target{t.o.urls[i%len(t.o.urls)], tokens[i%len(tokens)]}
	}
	socks, errs := t.openAll(ctx, targets, nil)
	defer closeAll(socks)
	if len(socks) != len(targets) {
		return 0, nil, 0, fmt.Errorf("%d of %d sockets failed to open: %v", len(targets)-len(socks), len(targets), errs)
	}

	// One login on every instance: each socket sees a SESSION_CREATED event whether or not the
	// instances share them, so every subscription is known to be live before logoutAll. The last
	// login's token sends logoutAll.
	var tok string
	for i := len(t.o.urls) - 1; i >= 0; i-- {
		if tok, err = t.login(ctx, t.o.urls[i], email); err != nil {
			return 0, nil, 0, err
		}
	}
	if !waitUntil(ctx, t.o.timeout, func() bool {
		for _, s := range socks {
			if s.events.Load() == 0 {
				return false
			}
		}
		return true
	}) {
		return 0, nil, 0, errors.New("not every subscription received the SESSION_CREATED event")
	}

	start := time.Now()
	var n int
	if err := t.gql(ctx, first, tok, `mutation { logoutAll }`, nil, "logoutAll", &n); err != nil {
		return 0, nil, 0, err
	}
	reply := time.Since(start)
	deadline := time.After(t.o.timeout)
	var last time.Duration
	closes := make([]time.Duration, 0, len(socks))
	for _, s := range socks {
		select {
		case <-s.done:
		case <-deadline:
			return 0, nil, 0, fmt.Errorf("sockets still open %s after logoutAll", t.o.timeout)
		case <-ctx.Done():
			return 0, nil, 0, ctx.Err()
		}
		t.tally[fmt.Sprintf("%d %s, SESSION_REVOKED event first: %v", s.code, s.reason, s.revoked.Load())]++
		if !s.revoked.Load() {
			t.missing[s.others.Load()]++
		}
		d := s.closedAt.Sub(start)
		closes = append(closes, d)
		last = max(last, d)
	}
	return last, closes, reply, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
