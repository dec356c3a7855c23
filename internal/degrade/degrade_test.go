package degrade

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"gqlauth/internal/testlog"
)

// lines returns the log lines written to buf so far.
func lines(buf *testlog.Buffer) []string {
	return strings.Split(strings.TrimSpace(buf.String()), "\n")
}

func newTestTracker() (*Tracker, *testlog.Buffer) {
	var buf testlog.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	return NewTracker(log, "dependency down", "dependency back"), &buf
}

// Each change is reported once, in order, with its log line; repeated states report nothing.
func TestTrackerReportsChangesOnly(t *testing.T) {
	tr, buf := newTestTracker()
	var got []bool
	report := func(d bool) { got = append(got, d) }
	if tr.Degraded() {
		t.Fatal("a new tracker is degraded")
	}
	steps := []struct {
		fail    bool
		changed bool
	}{
		{false, false}, // healthy and working: nothing to say
		{true, true},   // the outage
		{true, false},  // still down
		{true, false},
		{false, true}, // the recovery
		{false, false},
		{true, true}, // a second outage is reported again
	}
	for i, s := range steps {
		var changed bool
		if s.fail {
			changed = tr.Fail(report, "err", errors.New("boom"))
		} else {
			changed = tr.Recover(report)
		}
		if changed != s.changed || tr.Degraded() != s.fail {
			t.Fatalf("step %d: changed=%v degraded=%v, want %v %v", i, changed, tr.Degraded(), s.changed, s.fail)
		}
	}
	if want := []bool{true, false, true}; !slices.Equal(got, want) {
		t.Fatalf("reports = %v, want %v", got, want)
	}
	want := []string{
		`level=WARN msg="dependency down" err=boom`,
		`level=INFO msg="dependency back"`,
		`level=WARN msg="dependency down" err=boom`,
	}
	if got := lines(buf); !slices.Equal(got, want) {
		t.Fatalf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A burst of concurrent failures degrades once: one report, one warning.
func TestTrackerOneReportPerBurst(t *testing.T) {
	tr, buf := newTestTracker()
	var mu sync.Mutex
	reports := 0
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			tr.Fail(func(bool) { mu.Lock(); reports++; mu.Unlock() }, "err", "down")
		})
	}
	wg.Wait()
	if reports != 1 || len(lines(buf)) != 1 {
		t.Fatalf("%d reports and %d log lines for 100 concurrent failures, want 1 and 1", reports, len(lines(buf)))
	}
}

// The callback is optional, and a nil log means slog.Default().
func TestTrackerDefaults(t *testing.T) {
	tr := NewTracker(nil, "down", "up")
	if tr.log == nil {
		t.Fatal("nil log not replaced by slog.Default()")
	}
	tr, _ = newTestTracker()
	if !tr.Fail(nil) || !tr.Recover(nil) {
		t.Fatal("changes without a callback not reported")
	}
}
