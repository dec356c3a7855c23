package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gqlauth/internal/apptest"
)

// newServer serves the real wiring (the shared harness, internal/apptest) on an SQLite file, on the
// real clock, with cheap hashing and no rate limits; vars override the environment. It returns the
// GraphQL URL.
func newServer(t *testing.T, vars map[string]string) string {
	t.Helper()
	env := map[string]string{
		"LOGIN_RATE_LIMIT":    "off",
		"LOGIN_IP_RATE_LIMIT": "off",
		"REGISTER_RATE_LIMIT": "off",
		"LOG_LEVEL":           "error",
	}
	for k, v := range vars {
		env[k] = v
	}
	e := apptest.New(t, filepath.Join(t.TempDir(), "loadgen.db"), apptest.Options{Vars: env, RealTime: true})
	return e.Server.URL + "/graphql"
}

func baseOptions(url, scenario string) Options {
	return Options{
		URL:          url,
		Scenario:     scenario,
		Concurrency:  4,
		Duration:     300 * time.Millisecond,
		Password:     "loadgen password 1",
		TrivialQuery: "{ __typename }",
		Timeout:      10 * time.Second,
		Warmup:       50 * time.Millisecond,

		RegisterEvery: 4, // the flags' defaults
		MixedMe:       8,
		MixedRefresh:  3,
	}
}

// run runs o and decodes the one JSON line it prints.
func run(t *testing.T, o Options) Result {
	t.Helper()
	var out, diag bytes.Buffer
	if err := Run(context.Background(), o, &out, &diag); err != nil {
		t.Fatalf("Run: %v\nstderr:\n%s", err, diag.String())
	}
	line := out.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("stdout is not exactly one line: %q", line)
	}
	var res Result
	mustDecode(t, line, &res)
	t.Logf("%s\nstderr:\n%s", strings.TrimSpace(line), diag.String())
	return res
}

// mustDecode decodes the JSON line into v; a field that v does not have is an error.
func mustDecode(t *testing.T, line string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %q: %v", line, err)
	}
}

func checkClean(t *testing.T, res Result) {
	t.Helper()
	if res.OK <= 0 || res.RPS <= 0 || res.DurationS <= 0 {
		t.Errorf("ok=%d rps=%v duration_s=%v: want all > 0", res.OK, res.RPS, res.DurationS)
	}
	if len(res.Errors) != 0 {
		t.Errorf("errors = %v, want none", res.Errors)
	}
	l := res.LatencyMS
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max && l.Mean <= l.Max && l.Mean > 0) {
		t.Errorf("latencies not ordered: %+v", l)
	}
	if _, err := time.Parse(time.RFC3339Nano, res.StartedAt); err != nil {
		t.Errorf("started_at %q: %v", res.StartedAt, err)
	}
}

func TestScenarios(t *testing.T) {
	url := newServer(t, nil)
	for _, sc := range scenarios {
		t.Run(sc, func(t *testing.T) {
			o := baseOptions(url, sc)
			o.Label = "test " + sc
			res := run(t, o)
			checkClean(t, res)
			if res.Scenario != sc || res.Label != o.Label || res.URL != url || res.Concurrency != 4 {
				t.Errorf("echoed fields wrong: %+v", res)
			}
			wantAccounts := 4
			if sc == "trivial" || sc == "register" {
				wantAccounts = 0
			}
			if res.Accounts != wantAccounts {
				t.Errorf("accounts = %d, want %d", res.Accounts, wantAccounts)
			}
			if (sc == "mixed") != (res.Ops != nil) {
				t.Errorf("ops = %v: want them for mixed only", res.Ops)
			}
			if res.DurationS < 0.3 || res.DurationS > 5 {
				t.Errorf("duration_s = %v, want about 0.3", res.DurationS)
			}
		})
	}
}

// TestRequestCap: -n stops the run after exactly n measured requests, before -d.
func TestRequestCap(t *testing.T) {
	url := newServer(t, nil)
	for _, sc := range []string{"login", "me"} {
		t.Run(sc, func(t *testing.T) {
			o := baseOptions(url, sc)
			o.Duration, o.Requests, o.Warmup, o.Accounts = time.Minute, 50, 0, 2
			res := run(t, o)
			checkClean(t, res)
			if res.OK != 50 {
				t.Errorf("ok = %d, want 50", res.OK)
			}
			if res.Accounts != 2 {
				t.Errorf("accounts = %d, want 2", res.Accounts)
			}
			if res.DurationS > 30 {
				t.Errorf("duration_s = %v: -n did not stop the run", res.DurationS)
			}
		})
	}
}

// TestSharedAccountsReused: a second run with the same e-mail prefix finds its accounts taken
// and logs into them instead.
func TestSharedAccountsReused(t *testing.T) {
	url := newServer(t, nil)
	o := baseOptions(url, "me")
	o.EmailPrefix = "lg-reuse"
	checkClean(t, run(t, o))
	checkClean(t, run(t, o))
}

// TestRefreshChains: with no reuse grace, presenting any token but the last one received fails with
// INVALID_REFRESH_TOKEN, so a clean run proves that every refresh used the token it got last. The
// control run reuses the login's token and must fail. A request cap, not a duration, bounds the runs,
// so that a slow machine still sends enough requests.
func TestRefreshChains(t *testing.T) {
	url := newServer(t, map[string]string{"REFRESH_REUSE_GRACE": "0s"})
	o := baseOptions(url, "refresh")
	o.Duration, o.Requests = time.Minute, 40
	res := run(t, o)
	checkClean(t, res)
	if res.OK < 8 {
		t.Errorf("ok = %d: too few refreshes to show chaining", res.OK)
	}

	o.reuseFirstRefreshToken = true
	res = run(t, o)
	if res.Errors["INVALID_REFRESH_TOKEN"] == 0 {
		t.Errorf("control run without chaining: errors = %v, want INVALID_REFRESH_TOKEN", res.Errors)
	}
}

// TestCookieModeRefused: a server in cookie mode returns no refresh token in the body; the refresh
// scenario cannot chain and fails setup with a clear message.
func TestCookieModeRefused(t *testing.T) {
	url := newServer(t, map[string]string{"REFRESH_TOKEN_COOKIE": "true", "COOKIE_SECURE": "false"})
	var out, diag bytes.Buffer
	code := runMain(context.Background(), []string{"-url", url, "-scenario", "refresh", "-c", "2", "-d", "100ms", "-warmup", "0"}, &out, &diag)
	if code != 1 || out.Len() != 0 {
		t.Fatalf("exit %d, stdout %q: want 1 and nothing", code, out.String())
	}
	if !strings.Contains(diag.String(), "cookie mode") {
		t.Errorf("stderr does not explain cookie mode:\n%s", diag.String())
	}
}

// TestTrivialQueryChecked: a trivial query the server rejects fails setup (exit 1) instead of
// measuring errors.
func TestTrivialQueryChecked(t *testing.T) {
	url := newServer(t, nil)
	var out, diag bytes.Buffer
	code := runMain(context.Background(), []string{"-url", url, "-scenario", "trivial", "-trivial-query", "{ hello }", "-d", "100ms"}, &out, &diag)
	if code != 1 || out.Len() != 0 {
		t.Fatalf("exit %d, stdout %q: want 1 and nothing", code, out.String())
	}
	if !strings.Contains(diag.String(), "GRAPHQL_VALIDATION_FAILED") {
		t.Errorf("stderr:\n%s", diag.String())
	}
}

func TestErrorsCountedNotThroughput(t *testing.T) {
	url := newServer(t, nil)
	o := baseOptions(url, "trivial")
	o.TrivialQuery = "{ me { id } }" // UNAUTHENTICATED: passes validation, fails every time
	var out, diag bytes.Buffer
	if err := Run(context.Background(), o, &out, &diag); err == nil {
		t.Fatalf("setup accepted a failing trivial query")
	}
	// The same failure during the run (bypassing the setup check) is counted as an error.
	r, err := newRunner(context.Background(), withDefaults(t, o), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := r.call(context.Background(), r.trivialBody, nil, r.trivialKey, nil, &bytes.Buffer{})
	if err != nil || code != "UNAUTHENTICATED" {
		t.Errorf("code %q, err %v; want UNAUTHENTICATED", code, err)
	}
}

func withDefaults(t *testing.T, o Options) Options {
	t.Helper()
	if err := validate(&o); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestRemoteURLRefused(t *testing.T) {
	for _, u := range []string{"http://10.1.2.3:8080/graphql", "http://example.com/graphql", "http://[2001:db8::1]/graphql", "http://0.0.0.0:8080/graphql"} {
		var out, diag bytes.Buffer
		code := runMain(context.Background(), []string{"-url", u, "-scenario", "trivial"}, &out, &diag)
		if code != 2 || out.Len() != 0 || !strings.Contains(diag.String(), "-allow-remote") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q: want 2, nothing, a hint at -allow-remote", u, code, out.String(), diag.String())
		}
		o := baseOptions(u, "trivial")
		o.AllowRemote = true
		if err := validate(&o); err != nil {
			t.Errorf("%s with -allow-remote: %v", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:1/graphql", "http://127.8.9.10/graphql", "http://[::1]:8080/graphql", "http://LocalHost:8080/graphql"} {
		o := baseOptions(u, "trivial")
		if err := validate(&o); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},                     // no scenario
		{"-scenario", "bogus"}, // unknown
		{"-scenario", "me", "-interval", "-1s"},
		{"-scenario", "mixed", "-mixed-me", "-1"},
		{"-scenario", "me", "-c", "0"}, // no VUs
		{"-scenario", "me", "-d", "0"}, // no limit at all
		{"-scenario", "me", "-email-prefix", "a b"},
		{"-scenario", "trivial", "-trivial-query", "fragment F on Query { x }"},
		{"-scenario", "me", "extra"},
		{"-bogus"},
	} {
		var out, diag bytes.Buffer
		if code := runMain(context.Background(), args, &out, &diag); code != 2 || out.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q; want 2 and nothing", args, code, out.String())
		}
	}
	var out, diag bytes.Buffer
	if code := runMain(context.Background(), []string{"-h"}, &out, &diag); code != 0 || !strings.Contains(diag.String(), "Scenarios:") {
		t.Errorf("-h: exit %d, stderr %q", code, diag.String())
	}
}

func TestSetupFailureExit1(t *testing.T) {
	var out, diag bytes.Buffer
	// Nothing listens on port 1.
	code := runMain(context.Background(), []string{"-url", "http://127.0.0.1:1/graphql", "-scenario", "login", "-c", "2", "-timeout", "2s"}, &out, &diag)
	if code != 1 || out.Len() != 0 {
		t.Errorf("exit %d, stdout %q: want 1 and nothing (stderr %q)", code, out.String(), diag.String())
	}
}

func TestPrepareQuery(t *testing.T) {
	for _, c := range []struct{ in, doc, op, key string }{
		{"{ __typename }", "query Trivial { __typename }", "Trivial", "__typename"},
		{"{ hello }", "query Trivial { hello }", "Trivial", "hello"},
		{`{ ping(id: "1") { id email } }`, `query Trivial { ping(id: "1") { id email } }`, "Trivial", "ping"},
		{"query { h: hello }", "query Trivial { h: hello }", "Trivial", "h"},
		{"query Hello { hello }", "query Hello { hello }", "Hello", "hello"},
		{`query P($id: ID! = "{x") { ping(id: $id) { id } }`, `query P($id: ID! = "{x") { ping(id: $id) { id } }`, "P", "ping"},
		{"# c\n  { ...F } fragment F on Query { hello }", "query Trivial { ...F } fragment F on Query { hello }", "Trivial", ""},
		{"# é\n{ ... on Query { hello } }", "query Trivial { ... on Query { hello } }", "Trivial", ""},
		{"# é\nmutation { logout }", "# é\nmutation Trivial { logout }", "Trivial", "logout"},
		{"query A { a } query B { b }", "query A { a } query B { b }", "A", "a"},
	} {
		doc, op, key, err := prepareQuery(c.in, "Trivial")
		if err != nil || doc != c.doc || op != c.op || key != c.key {
			t.Errorf("prepareQuery(%q) = %q, %q, %q, %v; want %q, %q, %q", c.in, doc, op, key, err, c.doc, c.op, c.key)
		}
	}
	for _, q := range []string{"", "# only a comment", "{ hello", "{ }", "subscription { tick }",
		"fragment F on Query { hello } { ...F }", "fragment F on Query { x }"} {
		if doc, _, _, err := prepareQuery(q, "Trivial"); err == nil {
			t.Errorf("prepareQuery(%q) = %q, want an error", q, doc)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		code   string
	}{
		{200, `{"data":{"me":{"id":"1"}}}`, ""},
		{200, `{"data":{"me":null},"errors":[{"message":"x","extensions":{"code":"UNAUTHENTICATED"}}]}`, "UNAUTHENTICATED"},
		{200, `{"data":null,"errors":[{"message":"x"}]}`, "HTTP_200"},
		{422, `{"errors":[{"message":"x","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}`, "GRAPHQL_VALIDATION_FAILED"},
		{502, `bad gateway`, "HTTP_502"},
		{500, `{}`, "HTTP_500"},
		{200, `not json`, "DECODE"},
		{200, `{"data":{}}`, "DECODE"},
		{200, `{"data":{"me":null}}`, "DECODE"},
	} {
		code, _, _ := classify(c.status, []byte(c.body), "me", nil)
		if code != c.code {
			t.Errorf("classify(%d, %s) = %q, want %q", c.status, c.body, code, c.code)
		}
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	if p := percentile(s, 50); p != 50*time.Millisecond {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(s, 99); p != 99*time.Millisecond {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(s[:1], 99); p != time.Millisecond {
		t.Errorf("p99 of one = %v", p)
	}
}

// TestMixed: journeys of register or login, me, a refresh chain and logout run without errors, and
// every operation is counted. Without a reuse grace, a clean run also proves that the chains present
// the token they got last.
func TestMixed(t *testing.T) {
	url := newServer(t, map[string]string{"REFRESH_REUSE_GRACE": "0s"})
	o := baseOptions(url, "mixed")
	o.Duration = 2 * time.Second
	o.RegisterEvery = 2
	res := run(t, o)
	checkClean(t, res)
	var sum int64
	for _, name := range []string{"register", "login", "me", "refresh", "logout"} {
		s, ok := res.Ops[name]
		if !ok || s.OK <= 0 || len(s.Errors) != 0 || s.P50 <= 0 || s.P99 < s.P50 {
			t.Errorf("ops[%s] = %+v (present %v): want ok > 0, no errors, 0 < p50 <= p99", name, s, ok)
		}
		sum += s.OK
	}
	if len(res.Ops) != 5 || sum != res.OK {
		t.Errorf("ops %v: want the five operations, ok summing to %d", res.Ops, res.OK)
	}
	// Per journey: 1 register or login, 8 + 3 me, 3 refreshes, 1 logout. The start of the measured
	// time and its end each cut at most one journey per VU.
	ops := res.Ops
	near := func(got, want, tolerance int64) bool { return want-tolerance <= got && got <= want+tolerance }
	n := ops["logout"].OK
	if !near(ops["register"].OK+ops["login"].OK, n, 2*4) || !near(ops["me"].OK, 11*n, 2*11*4) || !near(ops["refresh"].OK, 3*n, 2*3*4) {
		t.Errorf("operation counts do not fit the journey: %+v", ops)
	}
	if ops["register"].OK*3 < ops["login"].OK || ops["login"].OK*3 < ops["register"].OK {
		t.Errorf("-register-every 2: register %d and login %d should be about even", ops["register"].OK, ops["login"].OK)
	}
}

// TestMixedBrokenChainEndsJourney: when a refresh fails, the journey ends and the VU starts a new
// one (a login), instead of refreshing with a dead token over and over.
func TestMixedBrokenChainEndsJourney(t *testing.T) {
	url := newServer(t, map[string]string{"REFRESH_REUSE_GRACE": "0s"})
	o := baseOptions(url, "mixed")
	o.RegisterEvery, o.MixedMe, o.MixedRefresh = 0, 0, 2
	o.Duration, o.Requests = time.Minute, 80 // enough journeys however slow the machine
	o.reuseFirstRefreshToken = true          // the second refresh of a chain presents a retired token
	res := run(t, o)
	ops := res.Ops
	if ops["refresh"].Errors["INVALID_REFRESH_TOKEN"] == 0 || ops["logout"].OK != 0 || ops["login"].OK == 0 {
		t.Fatalf("ops = %+v: want INVALID_REFRESH_TOKEN on refresh, new logins, no logout", ops)
	}
	// Each journey: login, refresh (OK), me, refresh (fails): as many failures as journeys.
	if bad := ops["refresh"].Errors["INVALID_REFRESH_TOKEN"]; bad > ops["login"].OK+4 || ops["refresh"].OK > ops["login"].OK+4 {
		t.Errorf("ops = %+v: a failed refresh did not end the journey", ops)
	}
}

// TestWindows: -interval prints window lines before the result line; together they hold the same
// measured requests as the result (warm-up excluded from both), and summarize skips them.
func TestWindows(t *testing.T) {
	url := newServer(t, nil)
	var out, diag bytes.Buffer
	code := runMain(context.Background(), []string{"-url", url, "-scenario", "mixed", "-c", "4", "-d", "1200ms",
		"-warmup", "300ms", "-interval", "500ms", "-progress", "0", "-label", "win"}, &out, &diag)
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, diag.String())
	}
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), diag.String())
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("%d lines: want at least 2 window lines and the result", len(lines))
	}
	var res Result
	mustDecode(t, lines[len(lines)-1], &res)
	checkClean(t, res)
	var ok int64
	lastT := 0.0
	for i, l := range lines[:len(lines)-1] {
		var w Window
		mustDecode(t, l, &w)
		if w.Kind != "window" || w.Label != "win" || w.Window != i+1 || w.TS <= lastT || w.DurationS <= 0 || w.Errors == nil {
			t.Errorf("window line %d: %+v", i+1, w)
		}
		if w.OK <= 0 || w.RPS <= 0 || len(w.Errors) != 0 || !(0 < w.LatencyMS.P50 && w.LatencyMS.P50 <= w.LatencyMS.P99 && w.LatencyMS.P99 <= w.LatencyMS.Max) {
			t.Errorf("window %d: %+v: want ok > 0, no errors, ordered latencies", w.Window, w)
		}
		if i < len(lines)-2 && math.Abs(w.TS-0.5*float64(i+1)) > 0.25 {
			t.Errorf("window %d ends at %.3f s, want about %.1f", w.Window, w.TS, 0.5*float64(i+1))
		}
		ok += w.OK
		lastT = w.TS
	}
	if ok != res.OK { // at most the result's; equal, because the last window is flushed after the run
		t.Errorf("windows' ok sum to %d, the result's is %d: want equal", ok, res.OK)
	}
	if math.Abs(lastT-res.DurationS) > 0.05 {
		t.Errorf("last window ends at %.3f s, the run at %.3f s", lastT, res.DurationS)
	}

	path := filepath.Join(t.TempDir(), "runs.jsonl")
	if err := os.WriteFile(path, append(out.Bytes(), out.Bytes()...), 0o600); err != nil {
		t.Fatal(err)
	}
	var sum bytes.Buffer
	if err := summarize(path, &sum); err != nil {
		t.Fatalf("summarize: %v", err)
	}
	rows := strings.Split(strings.TrimSpace(sum.String()), "\n")
	if len(rows) != 3 || !strings.HasPrefix(rows[2], "| mixed | win | 2 |") {
		t.Errorf("summary:\n%s\nwant one row of 2 runs (window lines skipped)", sum.String())
	}
}

// TestSoakReport: the report joins each window with the sample taken at its end and shows the
// totals, the operations and the start, end and idle samples.
func TestSoakReport(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	jsonl := `{"kind":"window","label":"","window":1,"t_s":15.001,"duration_s":15.001,"ok":1500,"errors":{},"rps":100,"latency_ms":{"p50":1.5,"p99":9.25,"max":20}}
{"kind":"window","label":"","window":2,"t_s":30.002,"duration_s":15.001,"ok":1400,"errors":{"INTERNAL_SERVER_ERROR":2},"rps":93.3,"latency_ms":{"p50":1.6,"p99":9.5,"max":21}}
{"label":"","scenario":"mixed","url":"u","concurrency":64,"duration_s":30.01,"ok":2900,"errors":{"INTERNAL_SERVER_ERROR":2},"rps":96.6,"latency_ms":{"p50":1.5,"p90":4,"p99":9.3,"max":21,"mean":2},"accounts":64,"started_at":"` + start.Format(time.RFC3339Nano) + `","ops":{"me":{"ok":2000,"errors":{},"p50":1,"p99":3},"login":{"ok":100,"errors":{},"p50":50,"p99":90},"register":{"ok":30,"errors":{"INTERNAL_SERVER_ERROR":2},"p50":55,"p99":95},"refresh":{"ok":500,"errors":{},"p50":2,"p99":5},"logout":{"ok":270,"errors":{},"p50":1.2,"p99":4}}}
`
	at := func(s float64) string { return strconv.FormatFloat(float64(start.Unix())+s, 'f', 3, 64) }
	tsv := "label\tunix_s\trss_mib\tgoroutines\tpool_in_use\tpool_open\tpg_backends\n" +
		"start\t" + at(-7) + "\t20.5\t12\t0\t1\t1\n" +
		"w1\t" + at(15.3) + "\t40.0\t150\t5\t20\t20\n" +
		"end\t" + at(30.4) + "\t41.2\t14\t0\t20\t20\n" +
		"idle\t" + at(40.5) + "\t41.0\t13\t\t\t2\n"
	jp, sp := filepath.Join(dir, "run.jsonl"), filepath.Join(dir, "samples.tsv")
	if err := os.WriteFile(jp, []byte(jsonl), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sp, []byte(tsv), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, diag bytes.Buffer
	if code := runMain(context.Background(), []string{"-soak-report", "-commit", "abc1234", "-duration", "30s", jp, sp}, &out, &diag); code != 0 {
		t.Fatalf("exit %d: %s", code, diag.String())
	}
	report := out.String()
	t.Log(report)
	for _, want := range []string{
		"- Date: 2026-05-01 12:00:00 UTC",
		"- Commit: abc1234",
		"C=64, DURATION=30s, measured 30.0 s, windows of 15 s",
		"| 15 | 100 | 1.50 | 9.25 | 20.00 | 0 | 40.0 (15) | 150 | 5 / 20 | 20 |",
		"| 30 | 93 | 1.60 | 9.50 | 21.00 | INTERNAL_SERVER_ERROR 2 | 41.2 (30) | 14 | 0 / 20 | 20 |",
		"- Errors: 2 (INTERNAL_SERVER_ERROR 2)",
		"| register | 30 | INTERNAL_SERVER_ERROR 2 | 55.00 | 95.00 |",
		"| logout | 270 | 0 | 1.20 | 4.00 |",
		"| start | -7 | 20.5 | 12 | 0 / 1 | 1 |",
		"| idle | 40 | 41.0 | 13 | ? / ? | 2 |",
		"| end − start | | +20.7 | +2 | | +19 |",
		"| idle − start | | +20.5 | +1 | | +1 |",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
