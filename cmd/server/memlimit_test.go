package main

import (
	"runtime/debug"
	"testing"

	"gqlauth/config"
)

// The soft memory limit grows with open WebSockets, in steps of socketStep, and comes back down as
// they close; GOMEMLIMIT set by the operator is left alone. (A fixed limit under the sockets' live
// memory kept the collector running without pause: docs/BENCHMARKS.md.)
func TestMemoryLimitFollowsSockets(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	limit := func() int64 { return debug.SetMemoryLimit(-1) }

	if f := setMemoryLimit(&config.Config{GoMemLimit: "1GiB", PasswordHashConcurrency: 2}); f != nil {
		t.Fatal("with GOMEMLIMIT set, the limit must not follow the sockets")
	}
	if got := limit(); got != before {
		t.Fatalf("with GOMEMLIMIT set, the limit changed to %d", got)
	}

	onSockets := setMemoryLimit(&config.Config{PasswordHashConcurrency: 2})
	base := int64(80<<20 + 2*19456<<10)
	if got := limit(); got != base {
		t.Fatalf("limit with no socket = %d, want %d", got, base)
	}
	step := int64(socketStep * socketBudget)
	for _, tc := range []struct {
		open int
		want int64
	}{
		{1, base + step}, {socketStep, base + step}, {socketStep + 1, base + 2*step},
		{10000, base + 40*step}, {socketStep, base + step}, {0, base},
	} {
		onSockets(tc.open)
		if got := limit(); got != tc.want {
			t.Fatalf("%d sockets: limit %d, want %d", tc.open, got, tc.want)
		}
	}
}
