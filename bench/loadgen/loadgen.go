package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// Options configure one run; the flags map onto them one to one.
type Options struct {
	URL          string
	Scenario     string
	Concurrency  int
	Duration     time.Duration // measured window after warm-up; 0 = no limit (needs Requests)
	Requests     int64         // cap on measured requests; 0 = none
	Accounts     int           // 0 = Concurrency
	Password     string
	TrivialQuery string
	Timeout      time.Duration
	Warmup       time.Duration
	Label        string
	EmailPrefix  string // "" = lg-<random>
	AllowRemote  bool
	Progress     time.Duration // 0 = no progress lines
	Interval     time.Duration // print a window line this often during the measured time; 0 = never

	// The mixed scenario's journey: every RegisterEvery-th journey of a VU registers (0 = never;
	// the others log in), then MixedMe × me, then MixedRefresh × (refreshToken, me), then logout.
	RegisterEvery int
	MixedMe       int
	MixedRefresh  int

	// reuseFirstRefreshToken breaks the refresh chain on purpose (tests only): every refresh
	// presents the token of the VU's login instead of the last one received.
	reuseFirstRefreshToken bool
}

// Result is the JSON line printed on stdout.
type Result struct {
	Label       string             `json:"label"`
	Scenario    string             `json:"scenario"`
	URL         string             `json:"url"`
	Concurrency int                `json:"concurrency"`
	DurationS   float64            `json:"duration_s"`
	OK          int64              `json:"ok"`
	Errors      map[string]int64   `json:"errors"`
	RPS         float64            `json:"rps"`
	LatencyMS   Latency            `json:"latency_ms"`
	Accounts    int                `json:"accounts"`
	StartedAt   string             `json:"started_at"`
	Ops         map[string]OpStats `json:"ops,omitempty"` // per operation; mixed scenario only
}

// OpStats are the counts and latencies of one operation of the mixed scenario.
type OpStats struct {
	OK     int64            `json:"ok"`
	Errors map[string]int64 `json:"errors"`
	P50    float64          `json:"p50"`
	P99    float64          `json:"p99"`
}

// Window is the line printed every -interval: the requests that completed in that part of the
// measured time, all operations together.
type Window struct {
	Kind      string           `json:"kind"` // always "window"
	Label     string           `json:"label"`
	Window    int              `json:"window"`     // 1, 2, …
	TS        float64          `json:"t_s"`        // seconds since the measure start, at the window's end
	DurationS float64          `json:"duration_s"` // length of this window
	OK        int64            `json:"ok"`
	Errors    map[string]int64 `json:"errors"`
	RPS       float64          `json:"rps"`
	LatencyMS WindowLatency    `json:"latency_ms"`
}

// WindowLatency summarizes the latencies of a window's OK requests, in milliseconds.
type WindowLatency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Latency summarizes the end-to-end latencies of the OK requests, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// usageError makes runMain exit with status 2; any other error from Run is a setup failure (1).
type usageError struct{ error }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// The operations sent. Their names go in operationName.
const (
	docMe       = `query Me { me { id email } }`
	docLogin    = `mutation Login($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }`
	docRegister = `mutation Register($i: RegisterInput!) { register(input: $i) { accessToken refreshToken } }`
	docRefresh  = `mutation Refresh($t: String) { refreshToken(refreshToken: $t) { accessToken refreshToken } }`
	docLogout   = `mutation Logout($t: String) { logout(refreshToken: $t) }`
)

// op is the operation of one request, for the per-operation statistics.
type op uint8

const (
	opMe op = iota
	opLogin
	opRegister
	opRefresh
	opLogout
	opTrivial
	numOps
)

var opNames = [numOps]string{"me", "login", "register", "refresh", "logout", "trivial"}

// mixedOps are the operations of the mixed scenario, reported under Result.Ops.
var mixedOps = []op{opRegister, opLogin, opMe, opRefresh, opLogout}

// Error codes of requests that got no usable GraphQL error code.
const (
	codeTransport  = "TRANSPORT"
	codeDecode     = "DECODE"
	codeCookieMode = "COOKIE_MODE"
)

const maxResponseBytes = 1 << 20

var scenarios = []string{"me", "refresh", "login", "register", "trivial", "mixed"}

// validate checks o and fills in defaults.
func validate(o *Options) error {
	if o.Scenario == "" {
		return usageErrorf("-scenario is required (%s)", strings.Join(scenarios, " | "))
	}
	if !slices.Contains(scenarios, o.Scenario) {
		return usageErrorf("-scenario %q: want one of %s", o.Scenario, strings.Join(scenarios, " | "))
	}
	if o.Concurrency < 1 {
		return usageErrorf("-c must be at least 1")
	}
	if o.Duration < 0 || o.Requests < 0 || o.Warmup < 0 || o.Accounts < 0 || o.Progress < 0 || o.Interval < 0 {
		return usageErrorf("-d, -n, -warmup, -accounts, -progress and -interval must not be negative")
	}
	if o.RegisterEvery < 0 || o.MixedMe < 0 || o.MixedRefresh < 0 {
		return usageErrorf("-register-every, -mixed-me and -mixed-refresh must not be negative")
	}
	if o.Duration == 0 && o.Requests == 0 {
		return usageErrorf("-d 0 (no time limit) needs -n")
	}
	if o.Timeout <= 0 {
		return usageErrorf("-timeout must be positive")
	}
	if o.Accounts == 0 {
		o.Accounts = o.Concurrency
	}
	if o.Password == "" {
		return usageErrorf("-password must not be empty")
	}
	if o.EmailPrefix == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.EmailPrefix = "lg-" + hex.EncodeToString(b[:])
	}
	if len(o.EmailPrefix) > 64 || strings.IndexFunc(o.EmailPrefix, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._+-", r))
	}) >= 0 {
		return usageErrorf("-email-prefix %q: use at most 64 of the characters a-z A-Z 0-9 . _ + -", o.EmailPrefix)
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return usageErrorf("-url: %v", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageErrorf("-url %q: want http://host:port/path or https://…", o.URL)
	}
	if !o.AllowRemote && !isLoopback(u.Hostname()) {
		return usageErrorf("-url %q: host %q is not a loopback address (127.0.0.0/8, ::1, localhost); load tests target loopback only, pass -allow-remote to override", o.URL, u.Hostname())
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// runner is the state shared by the virtual users of one run.
type runner struct {
	o      Options
	ctx    context.Context
	hc     *http.Client
	url    *url.URL
	diag   io.Writer
	diagMu sync.Mutex

	loginBodies [][]byte // per account
	meBody      []byte
	trivialBody []byte
	trivialKey  string // response key the trivial query must produce ("" = any)
	registerPre []byte // body without its variables (see credentialsBody)
	refreshPre  []byte // body up to the value of variable t
	logoutPre   []byte // body up to the value of variable t
	passwordJS  []byte // the password as a JSON string

	measureStart time.Time
	deadline     time.Time // zero: no time limit
	issued       atomic.Int64
	rr           atomic.Uint64 // round robin over accounts
	loggedOnce   sync.Map      // messages printed once
}

// vu is one virtual user: one request at a time, its own buffers and statistics.
type vu struct {
	id     int
	r      *runner
	buf    bytes.Buffer // response body
	body   []byte       // request body scratch
	auth   []string     // Authorization header value, nil before login
	rt     string       // refresh token to present next
	firstR string       // refresh token of the last login or register (reuseFirstRefreshToken)
	seq    int64

	journeys int64 // mixed: journeys started
	jstep    int   // mixed: the next step of the current journey (0 = register or login)

	lat  [numOps][]time.Duration  // measured OK requests, by operation
	errs [numOps]map[string]int64 // measured errors by code, by operation; nil until the first
	win  *window                  // the current window's requests; nil without -interval
	ok   atomic.Int64             // for progress lines
	bad  atomic.Int64
}

// Run validates o, sets up accounts and sessions, runs the load and writes one JSON line to out.
// Progress and diagnostics go to diag. A usageError means bad options; other errors are setup
// failures. Request errors during the run are not errors of Run: they are in the output.
func Run(ctx context.Context, o Options, out, diag io.Writer) error {
	if err := validate(&o); err != nil {
		return err
	}
	r, err := newRunner(ctx, o, diag)
	if err != nil {
		return err
	}
	defer r.hc.CloseIdleConnections()

	vus := make([]*vu, o.Concurrency)
	for i := range vus {
		vus[i] = &vu{id: i, r: r}
		if o.Interval > 0 {
			vus[i].win = &window{}
		}
	}
	setupStart := time.Now()
	if err := r.setup(vus); err != nil {
		return err
	}
	if d := time.Since(setupStart); d > 100*time.Millisecond {
		r.logf("setup done in %s", d.Round(time.Millisecond))
	}

	start := time.Now()
	r.measureStart = start.Add(o.Warmup)
	if o.Duration > 0 {
		r.deadline = r.measureStart.Add(o.Duration)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.ctx = runCtx
	if o.Progress > 0 {
		go r.progress(runCtx, vus, start)
	}
	var ws *windows
	var wsDone sync.WaitGroup
	if o.Interval > 0 {
		ws = &windows{r: r, vus: vus, out: out, last: r.measureStart}
		wsDone.Go(func() { ws.run(runCtx) })
	}
	var wg sync.WaitGroup
	for _, v := range vus {
		wg.Go(v.loop)
	}
	wg.Wait()
	end := time.Now()
	cancel()
	if ws != nil {
		wsDone.Wait()
		ws.flush(end, true) // the rest since the last window line
	}

	res := r.result(vus, end)
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if _, err := out.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("writing the result: %w", err)
	}
	return nil
}

func newRunner(ctx context.Context, o Options, diag io.Writer) (*runner, error) {
	u, _ := url.Parse(o.URL) // validated
	tr := &http.Transport{
		// Proxy nil: loopback targets never go through a proxy. An empty TLSNextProto: HTTP/1.1 only.
		DialContext:         (&net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        o.Concurrency + 16,
		MaxIdleConnsPerHost: o.Concurrency + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		TLSHandshakeTimeout: o.Timeout,
	}
	r := &runner{
		o:    o,
		ctx:  ctx,
		hc:   &http.Client{Transport: tr, Timeout: o.Timeout},
		url:  u,
		diag: diag,
	}
	r.passwordJS = appendJSONString(nil, o.Password)
	r.meBody = append(bodyPrefix("Me", docMe), '}')
	r.registerPre = bodyPrefix("Register", docRegister)
	r.refreshPre = append(bodyPrefix("Refresh", docRefresh), `,"variables":{"t":`...)
	r.logoutPre = append(bodyPrefix("Logout", docLogout), `,"variables":{"t":`...)
	switch o.Scenario {
	case "trivial":
		doc, op, key, err := prepareQuery(o.TrivialQuery, "Trivial")
		if err != nil {
			return nil, usageErrorf("-trivial-query: %v", err)
		}
		r.trivialBody, r.trivialKey = append(bodyPrefix(op, doc), '}'), key
	case "me", "login", "refresh", "mixed": // the scenarios on the -accounts shared accounts
		r.loginBodies = make([][]byte, o.Accounts)
		pre := bodyPrefix("Login", docLogin)
		for i := range r.loginBodies {
			r.loginBodies[i] = r.credentialsBody(pre, r.accountEmail(i))
		}
	}
	return r, nil
}

func (r *runner) accountEmail(i int) string {
	return r.o.EmailPrefix + "-" + strconv.Itoa(i) + "@example.com"
}

// credentialsBody appends `,"variables":{"i":{"email":…,"password":…}}}` to prefix.
func (r *runner) credentialsBody(prefix []byte, email string) []byte {
	b := append(prefix, `,"variables":{"i":{"email":`...)
	b = appendJSONString(b, email)
	b = append(b, `,"password":`...)
	b = append(b, r.passwordJS...)
	return append(b, "}}}"...)
}

func (r *runner) logf(format string, args ...any) {
	r.diagMu.Lock()
	defer r.diagMu.Unlock()
	fmt.Fprintf(r.diag, "loadgen: "+format+"\n", args...)
}

// logOnce prints a message the first time its key is seen.
func (r *runner) logOnce(key, format string, args ...any) {
	if _, seen := r.loggedOnce.LoadOrStore(key, true); !seen {
		r.logf(format, args...)
	}
}

// setup registers the shared accounts and logs each VU in, as its scenario needs. Nothing here is
// timed or counted.
func (r *runner) setup(vus []*vu) error {
	switch r.o.Scenario {
	case "trivial":
		code, msg, err := r.call(r.ctx, r.trivialBody, nil, r.trivialKey, nil, &bytes.Buffer{})
		if err != nil {
			return fmt.Errorf("setup: trivial query: %w", err)
		}
		if code != "" {
			return fmt.Errorf("setup: the trivial query %q failed with %s: %s (check -trivial-query: { __typename } works everywhere, { hello } only on the gqlgen baseline)", r.o.TrivialQuery, code, msg)
		}
		return nil
	case "register":
		return nil
	}

	t0 := time.Now()
	var created, existing atomic.Int64
	err := r.parallel(r.o.Accounts, func(i int, buf *bytes.Buffer) error {
		email := r.accountEmail(i)
		code, msg, err := r.call(r.ctx, r.credentialsBody(r.registerPre, email), nil, "register", nil, buf)
		if err != nil {
			return fmt.Errorf("registering %s: %w", email, err)
		}
		switch code {
		case "":
			created.Add(1)
			return nil
		case "EMAIL_TAKEN":
			code, msg, err = r.call(r.ctx, r.loginBodies[i], nil, "login", nil, buf)
			if err != nil {
				return fmt.Errorf("logging in as existing %s: %w", email, err)
			}
			if code != "" {
				return fmt.Errorf("%s exists but login failed with %s: %s (another -password? use another -email-prefix)", email, code, msg)
			}
			existing.Add(1)
			return nil
		default:
			return fmt.Errorf("registering %s failed with %s: %s", email, code, msg)
		}
	})
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	r.logf("setup: %d accounts %s-<i>@example.com ready (%d registered, %d existed) in %s",
		r.o.Accounts, r.o.EmailPrefix, created.Load(), existing.Load(), time.Since(t0).Round(time.Millisecond))

	switch r.o.Scenario {
	case "login":
		return nil
	case "mixed":
		// The journeys log in themselves; one login here only checks that the pair comes in the body.
		if err := vus[0].login(); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		return nil
	}
	t0 = time.Now()
	err = r.parallel(len(vus), func(i int, _ *bytes.Buffer) error {
		return vus[i].login()
	})
	if err != nil {
		return fmt.Errorf("setup: VU login: %w", err)
	}
	r.logf("setup: %d VU sessions logged in in %s", len(vus), time.Since(t0).Round(time.Millisecond))
	return nil
}

// parallel runs f(0..n-1) on up to Concurrency goroutines and returns the first error.
func (r *runner) parallel(n int, f func(i int, buf *bytes.Buffer) error) error {
	ctx, cancel := context.WithCancelCause(r.ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, r.o.Concurrency) {
		wg.Go(func() {
			var buf bytes.Buffer
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i, &buf); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// payload is the part of an AuthPayload that chains need.
type payload struct {
	AccessToken  *string `json:"accessToken"`
	RefreshToken *string `json:"refreshToken"`
}

// login starts a new session for the VU on its account (not counted).
func (v *vu) login() error {
	r := v.r
	acct := v.id % r.o.Accounts
	code, msg, err := v.pair(r.loginBodies[acct], "login")
	switch {
	case err != nil:
		return fmt.Errorf("login as %s: %w", r.accountEmail(acct), err)
	case code == codeCookieMode && r.o.Scenario == "me": // me needs only the access token
	case code != "":
		return fmt.Errorf("login as %s failed with %s: %s", r.accountEmail(acct), code, msg)
	}
	return nil
}

// loop sends requests until the deadline, the request cap or cancellation.
func (v *vu) loop() {
	r := v.r
	needsSession := r.o.Scenario == "me" || r.o.Scenario == "refresh"
	for r.ctx.Err() == nil {
		if needsSession && v.auth == nil {
			if err := v.login(); err != nil {
				if r.ctx.Err() != nil {
					return
				}
				r.logOnce("relogin", "VU %d could not log in again (retrying; further failures not shown): %v", v.id, err)
				select {
				case <-r.ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
		}
		t0 := time.Now()
		if !r.deadline.IsZero() && !t0.Before(r.deadline) {
			return
		}
		measured := !t0.Before(r.measureStart)
		if measured && r.o.Requests > 0 && r.issued.Add(1) > r.o.Requests {
			return
		}
		o, code, msg, err := v.step()
		lat := time.Since(t0)
		if r.ctx.Err() != nil {
			return // interrupted: the request says nothing about the server
		}
		if err != nil {
			code, msg = codeTransport, err.Error()
		}
		if measured {
			v.record(o, lat, code)
		}
		if code == "" {
			continue
		}
		what := r.o.Scenario
		if what == "mixed" {
			what += " " + opNames[o]
		}
		r.logOnce("code "+code, "first %s error (VU %d, %s): %s", code, v.id, what, msg)
		switch {
		case r.o.Scenario == "refresh":
			v.auth, v.rt = nil, "" // the chain is broken: log in again
		case r.o.Scenario == "me" && code == "UNAUTHENTICATED":
			v.auth = nil
		}
	}
}

// record counts a measured request: its latency when it is OK (code ""), else its error code; and
// adds it to the current window.
func (v *vu) record(o op, lat time.Duration, code string) {
	if code == "" {
		v.lat[o] = append(v.lat[o], lat)
		v.ok.Add(1)
	} else {
		if v.errs[o] == nil {
			v.errs[o] = map[string]int64{}
		}
		v.errs[o][code]++
		v.bad.Add(1)
	}
	if v.win != nil {
		v.win.add(lat, code)
	}
}

// step sends the scenario's next request once. code is "" for an OK answer.
func (v *vu) step() (o op, code, msg string, err error) {
	switch v.r.o.Scenario {
	case "me":
		o = opMe
		code, msg, err = v.me()
	case "trivial":
		o = opTrivial
		code, msg, err = v.r.call(v.r.ctx, v.r.trivialBody, nil, v.r.trivialKey, nil, &v.buf)
	case "login":
		r := v.r
		o = opLogin
		i := int((r.rr.Add(1) - 1) % uint64(len(r.loginBodies)))
		code, msg, err = r.call(r.ctx, r.loginBodies[i], nil, "login", nil, &v.buf)
	case "register":
		o = opRegister
		code, msg, err = v.r.call(v.r.ctx, v.registerBody(), nil, "register", nil, &v.buf)
	case "refresh":
		o = opRefresh
		code, msg, err = v.refresh()
	case "mixed":
		return v.mixedStep()
	default:
		panic("unknown scenario " + v.r.o.Scenario)
	}
	return o, code, msg, err
}

// mixedStep sends the next request of the VU's journey (see Options) and advances the journey. An
// error ends the journey early: the next step starts a new one.
func (v *vu) mixedStep() (o op, code, msg string, err error) {
	o = v.journeyOp()
	switch o {
	case opRegister:
		code, msg, err = v.pair(v.registerBody(), "register")
	case opLogin:
		code, msg, err = v.journeyLogin()
	case opMe:
		code, msg, err = v.me()
	case opRefresh:
		code, msg, err = v.refresh()
	case opLogout:
		code, msg, err = v.logout()
	}
	if err != nil || code != "" || o == opLogout {
		v.journeys++
		v.jstep = 0
	} else {
		v.jstep++
	}
	return o, code, msg, err
}

// journeyOp is the operation of the journey's next step: register or login, MixedMe × me,
// MixedRefresh × (refresh, me), logout. A VU registers on every RegisterEvery-th journey, offset
// by its id so that the VUs do not all hash a new password at the same moment.
func (v *vu) journeyOp() op {
	nMe, nRefresh := v.r.o.MixedMe, v.r.o.MixedRefresh
	switch s := v.jstep; {
	case s == 0:
		if every := int64(v.r.o.RegisterEvery); every > 0 && (v.journeys+int64(v.id))%every == 0 {
			return opRegister
		}
		return opLogin
	case s <= nMe:
		return opMe
	case s <= nMe+2*nRefresh:
		if (s-nMe)%2 == 1 {
			return opRefresh
		}
		return opMe
	}
	return opLogout
}

// me sends the Me query with the VU's bearer token.
func (v *vu) me() (code, msg string, err error) {
	return v.r.call(v.r.ctx, v.r.meBody, v.auth, "me", nil, &v.buf)
}

// registerBody is the body registering a fresh e-mail, <prefix>-reg-<vu>-<seq>@example.com.
func (v *vu) registerBody() []byte {
	v.seq++
	email := v.r.o.EmailPrefix + "-reg-" + strconv.Itoa(v.id) + "-" + strconv.FormatInt(v.seq, 10) + "@example.com"
	v.body = v.r.credentialsBody(append(v.body[:0], v.r.registerPre...), email)
	return v.body
}

// journeyLogin logs in to a shared account (each journey of a VU the next one it owns, when there
// are more accounts than VUs) and makes the pair the VU's session.
func (v *vu) journeyLogin() (code, msg string, err error) {
	r := v.r
	acct := (int64(v.id) + v.journeys*int64(r.o.Concurrency)) % int64(r.o.Accounts)
	return v.pair(r.loginBodies[acct], "login")
}

// refresh presents the VU's last refresh token (the login's with reuseFirstRefreshToken) and makes
// the new pair its session.
func (v *vu) refresh() (code, msg string, err error) {
	tok := v.rt
	if v.r.o.reuseFirstRefreshToken {
		tok = v.firstR
	}
	return v.pair(v.tokenBody(v.r.refreshPre, tok), "refreshToken")
}

// logout ends the VU's session with its refresh token; the answer must be true.
func (v *vu) logout() (code, msg string, err error) {
	var done bool
	code, msg, err = v.r.call(v.r.ctx, v.tokenBody(v.r.logoutPre, v.rt), nil, "logout", &done, &v.buf)
	if err != nil || code != "" {
		return code, msg, err
	}
	v.auth, v.rt = nil, ""
	if !done {
		return codeDecode, "logout returned false", nil
	}
	return "", "", nil
}

// tokenBody is pre, the token as a JSON string and the closing braces.
func (v *vu) tokenBody(pre []byte, tok string) []byte {
	v.body = append(appendJSONString(append(v.body[:0], pre...), tok), "}}"...)
	return v.body
}

// pair sends body, which answers data[key] with a token pair, and makes the pair the VU's session.
// code is DECODE when the access token is missing, and COOKIE_MODE when the refresh token is: the
// server then sends it in a cookie, which loadgen does not support.
func (v *vu) pair(body []byte, key string) (code, msg string, err error) {
	var p payload
	code, msg, err = v.r.call(v.r.ctx, body, nil, key, &p, &v.buf)
	switch {
	case err != nil || code != "":
		return code, msg, err
	case p.AccessToken == nil || *p.AccessToken == "":
		return codeDecode, "no accessToken in the response", nil
	}
	v.auth = []string{"Bearer " + *p.AccessToken}
	if p.RefreshToken == nil || *p.RefreshToken == "" {
		return codeCookieMode, "refreshToken came back null: the server is in cookie mode (REFRESH_TOKEN_COOKIE=true), which loadgen does not support; run it without", nil
	}
	v.rt = *p.RefreshToken
	if key != "refreshToken" {
		v.firstR = v.rt // the first token of a new session, for reuseFirstRefreshToken
	}
	return "", "", nil
}

var (
	hdrJSON      = []string{"application/json"}
	hdrUserAgent = []string{"gqlauth-loadgen/1"}
)

// call POSTs body and classifies the answer: err for a transport failure, else code "" when the
// status is 200, there are no errors and data[key] is present and not null (any non-null field
// when key is ""); then into, if not nil, receives data[key]. Otherwise code is the first error's
// extensions.code, HTTP_<status> or DECODE, and msg says more.
func (r *runner) call(ctx context.Context, body []byte, auth []string, key string, into any, buf *bytes.Buffer) (code, msg string, err error) {
	h := http.Header{"Content-Type": hdrJSON, "Accept": hdrJSON, "User-Agent": hdrUserAgent}
	if auth != nil {
		h["Authorization"] = auth
	}
	req := (&http.Request{
		Method:        http.MethodPost,
		URL:           r.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Host:          r.url.Host,
	}).WithContext(ctx)
	resp, err := r.hc.Do(req)
	if err != nil {
		return "", "", err
	}
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, maxResponseBytes))
	_ = resp.Body.Close()
	if err != nil {
		return "", "", err
	}
	return classify(resp.StatusCode, buf.Bytes(), key, into)
}

type gqlResponse struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string `json:"message"`
		Extensions struct {
			Code string `json:"code"`
		} `json:"extensions"`
	} `json:"errors"`
}

func classify(status int, body []byte, key string, into any) (code, msg string, err error) {
	var resp gqlResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		if status != http.StatusOK {
			return "HTTP_" + strconv.Itoa(status), snippet(body), nil
		}
		return codeDecode, "response is not GraphQL JSON: " + snippet(body), nil
	}
	if len(resp.Errors) > 0 {
		e := resp.Errors[0]
		if e.Extensions.Code != "" {
			return e.Extensions.Code, e.Message, nil
		}
		return "HTTP_" + strconv.Itoa(status), e.Message, nil
	}
	if status != http.StatusOK {
		return "HTTP_" + strconv.Itoa(status), snippet(body), nil
	}
	var raw json.RawMessage
	if key == "" {
		for _, v := range resp.Data {
			if !isNull(v) {
				raw = v
				break
			}
		}
	} else {
		raw = resp.Data[key]
	}
	if isNull(raw) {
		return codeDecode, fmt.Sprintf("no data.%s in the response: %s", key, snippet(body)), nil
	}
	if into != nil {
		if err := json.Unmarshal(raw, into); err != nil {
			return codeDecode, fmt.Sprintf("data.%s: %v", key, err), nil
		}
	}
	return "", "", nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "…"
	}
	return strconv.Quote(string(b))
}

// progress prints counts every o.Progress until ctx ends.
func (r *runner) progress(ctx context.Context, vus []*vu, start time.Time) {
	t := time.NewTicker(r.o.Progress)
	defer t.Stop()
	var lastOK int64
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var ok, bad int64
			for _, v := range vus {
				ok += v.ok.Load()
				bad += v.bad.Load()
			}
			if now.Before(r.measureStart) {
				r.logf("%5.1fs warming up", now.Sub(start).Seconds())
				continue
			}
			// Counts are of measured requests only: the rate is over the measured part of the interval.
			from := last
			if from.Before(r.measureStart) {
				from = r.measureStart
			}
			r.logf("%5.1fs measuring: ok=%d errors=%d (%.0f ok/s)", now.Sub(start).Seconds(), ok, bad,
				float64(ok-lastOK)/now.Sub(from).Seconds())
			lastOK, last = ok, now
		}
	}
}

// result merges the VUs' statistics.
func (r *runner) result(vus []*vu, end time.Time) Result {
	res := Result{
		Label:       r.o.Label,
		Scenario:    r.o.Scenario,
		URL:         r.o.URL,
		Concurrency: r.o.Concurrency,
		Errors:      map[string]int64{},
		StartedAt:   r.measureStart.UTC().Format(time.RFC3339Nano),
	}
	if r.o.Scenario != "trivial" && r.o.Scenario != "register" {
		res.Accounts = r.o.Accounts
	}
	if r.o.Scenario == "mixed" {
		res.Ops = map[string]OpStats{}
	}
	var lat []time.Duration
	for o := range numOps {
		from := len(lat)
		errs := map[string]int64{}
		for _, v := range vus {
			lat = append(lat, v.lat[o]...)
			for c, k := range v.errs[o] {
				errs[c] += k
				res.Errors[c] += k
			}
		}
		if res.Ops != nil && slices.Contains(mixedOps, o) {
			res.Ops[opNames[o]] = opStats(lat[from:], errs)
		}
	}
	slices.Sort(lat)
	d := end.Sub(r.measureStart)
	if d < 0 {
		d = 0
	}
	res.DurationS = round(d.Seconds(), 3)
	res.OK = int64(len(lat))
	if d > 0 {
		res.RPS = round(float64(res.OK)/d.Seconds(), 1)
	}
	if len(lat) > 0 {
		var sum time.Duration
		for _, l := range lat {
			sum += l
		}
		res.LatencyMS = Latency{
			P50:  ms(percentile(lat, 50)),
			P90:  ms(percentile(lat, 90)),
			P99:  ms(percentile(lat, 99)),
			Max:  ms(lat[len(lat)-1]),
			Mean: ms(sum / time.Duration(len(lat))),
		}
	}
	return res
}

// opStats summarizes one operation; it sorts lat in place.
func opStats(lat []time.Duration, errs map[string]int64) OpStats {
	s := OpStats{OK: int64(len(lat)), Errors: errs}
	if len(lat) > 0 {
		slices.Sort(lat)
		s.P50, s.P99 = ms(percentile(lat, 50)), ms(percentile(lat, 99))
	}
	return s
}

// percentile is the nearest-rank percentile of sorted (non-empty).
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return round(float64(d)/1e6, 3) }

func round(x float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(x*p) / p
}

// bodyPrefix is the JSON request body {"operationName":…,"query":…} without its closing brace. Its
// capacity is its length, so that every append copies it: the VUs share it.
func bodyPrefix(op, doc string) []byte {
	b := appendJSONString([]byte(`{"operationName":`), op)
	b = append(b, `,"query":`...)
	return slices.Clip(appendJSONString(b, doc))
}

// appendJSONString appends s as a JSON string; tokens (base64url, JWTs) take the fast path.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// prepareQuery parses q with gqlparser and names its first operation so that operationName can be
// sent: an anonymous `{ … }` becomes `query <name> { … }` (without what precedes it, which can only
// be comments), `query { … }` becomes `query <name> { … }`; a named operation keeps its document
// as is. key is the response key of the operation's first root field (its alias, if any), "" when
// the selection starts with a fragment.
func prepareQuery(q, name string) (doc, op, key string, err error) {
	d, err := parser.ParseQuery(&ast.Source{Input: q})
	if err != nil {
		return "", "", "", err
	}
	if len(d.Operations) == 0 {
		return "", "", "", fmt.Errorf("%q: no operation; want `{ … }` or `query Name { … }`", q)
	}
	o := d.Operations[0]
	for _, f := range d.Fragments {
		if f.Position.Start < o.Position.Start {
			return "", "", "", fmt.Errorf("%q: want the operation before the fragments", q)
		}
	}
	if o.Operation == ast.Subscription {
		return "", "", "", fmt.Errorf("%q: want a query or a mutation", q)
	}
	if f, ok := o.SelectionSet[0].(*ast.Field); ok {
		key = f.Alias // the parser sets it to the name when there is no alias
	}
	if o.Name != "" {
		return q, o.Name, key, nil
	}
	at := len(string([]rune(q)[:o.Position.Start])) // gqlparser counts runes, slices take bytes
	if q[at] == '{' {
		return "query " + name + " " + q[at:], name, key, nil
	}
	at += len(o.Operation) // after the keyword
	return q[:at] + " " + name + q[at:], name, key, nil
}
