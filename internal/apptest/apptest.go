// Package apptest is the service's one test harness: it starts the real wiring (app.New) from a map
// of environment variables, behind a real HTTP listener, and sends it GraphQL requests. The GraphQL
// tests (package graph) and the HTTP tests (package httpapi) both use it, so both exercise the
// middleware, transports, directive and error presenter that production runs.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"gqlauth/app"
	"gqlauth/config"
	"gqlauth/internal/wsclient"
	"gqlauth/password"
)

// CheapPassword are argon2id parameters that keep the suites fast; production uses password.Default.
var CheapPassword = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// DiscardLogger is a logger that writes nowhere.
func DiscardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Clock is a fake clock, shared by the token issuer and the auth service of an Env.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock set to now (UTC, whole milliseconds).
func NewClock() *Clock { return &Clock{t: time.Now().UTC().Truncate(time.Millisecond)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Env is one running server (the real wiring, app.New) behind a real HTTP listener.
type Env struct {
	T      testing.TB
	App    *app.App // nil for an Env made by Serve
	Server *Server  // the listener; requests go to Server.URL
	Clock  *Clock   // nil when running on the real clock
	Config *config.Config
}

// Options configure New.
type Options struct {
	Vars     map[string]string // environment variables, over DATABASE_URL and DATA_DIR
	RealTime bool              // run on the real clock instead of a Clock
	Password *password.Params  // nil means CheapPassword
	DataDir  string            // "" means a fresh t.TempDir()
	Logger   *slog.Logger      // nil means DiscardLogger()
	// OnSockets is app.Options.OnSockets: told the number of open WebSockets when it changes.
	OnSockets func(open int)
	// TracerProvider is app.Options.TracerProvider: tracing on, into this provider (an in-memory
	// exporter's, say).
	TracerProvider trace.TracerProvider
}

// New starts a server on the database dsn, stopped when the test ends.
func New(t testing.TB, dsn string, o Options) *Env {
	t.Helper()
	vars := map[string]string{"DATABASE_URL": dsn, "DATA_DIR": o.DataDir}
	if vars["DATA_DIR"] == "" {
		vars["DATA_DIR"] = t.TempDir()
	}
	for k, v := range o.Vars {
		vars[k] = v
	}
	e := &Env{T: t, Config: LoadConfig(t, vars)}
	opts := app.Options{Password: &CheapPassword, Logger: DiscardLogger(), OnSockets: o.OnSockets, TracerProvider: o.TracerProvider}
	if o.Password != nil {
		opts.Password = o.Password
	}
	if o.Logger != nil {
		opts.Logger = o.Logger
	}
	if !o.RealTime {
		e.Clock = NewClock()
		opts.Now = e.Clock.Now
	}
	e.App, e.Server = Start(t, e.Config, opts)
	return e
}

// Server is a running server: App.Serve on a loopback listener, or an httptest server (Serve).
type Server struct {
	URL   string // http://127.0.0.1:port
	close func()
}

// Close shuts the server down (for App.Serve: the drain and graceful shutdown production runs) and
// waits until it has stopped. It is safe to call more than once; the test's cleanup calls it too.
func (s *Server) Close() { s.close() }

// LoadConfig loads the configuration from vars alone (not the process environment).
func LoadConfig(t testing.TB, vars map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.LoadFrom(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// Start builds the application and runs it as production does (App.Serve: revocation poller, key
// watcher, janitor, HTTP server) on a loopback listener; when the test ends it shuts it down and
// closes it. It is the harness's only start-up of the application: New, and the benchmarks that
// call the handler directly, go through it.
func Start(t testing.TB, cfg *config.Config, opts app.Options) (*app.App, *Server) {
	t.Helper()
	a, err := app.New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		_ = a.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	srv := &Server{URL: "http://" + ln.Addr().String(), close: sync.OnceFunc(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})}
	t.Cleanup(func() { srv.Close(); _ = a.Close() })
	return a, srv
}

// Serve puts h behind a real HTTP listener (closed when the test ends), for tests that wire a
// handler of their own (a store that fails, say).
func Serve(t testing.TB, h http.Handler) *Env {
	hs := httptest.NewServer(h)
	e := &Env{T: t, Server: &Server{URL: hs.URL, close: sync.OnceFunc(hs.Close)}}
	t.Cleanup(e.Server.Close)
	return e
}

// GQLError is one error of a GraphQL response.
type GQLError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Response is a decoded GraphQL response.
type Response struct {
	Status int
	Data   map[string]json.RawMessage
	Errors []GQLError
	Raw    string
}

// Code returns the first error's extensions.code ("" when there is no error).
func (r Response) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// Ext returns the first error's extensions[key] as a string ("" when absent).
func (r Response) Ext(key string) string {
	if len(r.Errors) == 0 {
		return ""
	}
	s, _ := r.Errors[0].Extensions[key].(string)
	return s
}

// Decode unmarshals data[field] into v.
func (r Response) Decode(t testing.TB, field string, v any) {
	t.Helper()
	raw, ok := r.Data[field]
	if !ok {
		t.Fatalf("no data.%s in %s", field, r.Raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode data.%s: %v (%s)", field, err, r.Raw)
	}
}

// Post sends a GraphQL request; headers are name, value pairs.
func (e *Env) Post(query string, vars map[string]any, headers ...string) Response {
	e.T.Helper()
	_, r := e.Do(query, vars, headers...) //nolint:bodyclose // RoundTrip closed it
	return r
}

// Do is Post that also returns the HTTP response (its body already read into the Response).
func (e *Env) Do(query string, vars map[string]any, headers ...string) (*http.Response, Response) {
	e.T.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, e.Server.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.RoundTrip(req)
}

// Send sends any request and decodes the GraphQL response.
func (e *Env) Send(req *http.Request) Response {
	e.T.Helper()
	_, r := e.RoundTrip(req) //nolint:bodyclose // RoundTrip closed it
	return r
}

// RoundTrip sends req and decodes the GraphQL response. It fails the test on a transport error, a
// 5xx or a body that is not JSON.
func (e *Env) RoundTrip(req *http.Request) (*http.Response, Response) {
	e.T.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatalf("http: %v", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := Response{Status: res.StatusCode, Raw: string(raw)}
	var out struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []GQLError                 `json:"errors"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		e.T.Fatalf("response is not JSON (status %d): %s", res.StatusCode, raw)
	}
	r.Data, r.Errors = out.Data, out.Errors
	if res.StatusCode >= 500 {
		e.T.Fatalf("status %d: %s", res.StatusCode, raw)
	}
	return res, r
}

// Get sends a GET to path and returns the status and the body.
func (e *Env) Get(path string) (int, string) {
	e.T.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, e.Server.URL+path, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// ResponseCookie returns the cookie named name that res sets, or nil.
func ResponseCookie(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Bearer returns the header pair for an access token.
func Bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// PayloadFields selects every field of an AuthPayload.
const PayloadFields = `accessToken tokenType expiresIn accessTokenExpiresAt refreshToken refreshTokenExpiresAt user { id email role createdAt emailVerified }`

// User is a User as PayloadFields selects it.
type User struct {
	ID            string `json:"id"`
	Email         string `json:"email"`
	Role          string `json:"role"`
	CreatedAt     string `json:"createdAt"`
	EmailVerified bool   `json:"emailVerified"`
}

// Pair is an AuthPayload as PayloadFields selects it.
type Pair struct {
	AccessToken           string `json:"accessToken"`
	TokenType             string `json:"tokenType"`
	ExpiresIn             int    `json:"expiresIn"`
	AccessTokenExpiresAt  string `json:"accessTokenExpiresAt"`
	RefreshToken          string `json:"refreshToken"`
	RefreshTokenExpiresAt string `json:"refreshTokenExpiresAt"`
	User                  User   `json:"user"`
}

// Register registers an account and fails the test unless it succeeds.
func (e *Env) Register(email, pw string, headers ...string) Pair {
	e.T.Helper()
	r := e.Post(`mutation($i: RegisterInput!) { register(input: $i) { `+PayloadFields+` } }`,
		map[string]any{"i": map[string]any{"email": email, "password": pw}}, headers...)
	return e.MustPair(r, "register")
}

// Login logs in and fails the test unless it succeeds.
func (e *Env) Login(email, pw string, headers ...string) Pair {
	e.T.Helper()
	r := e.Post(`mutation($i: LoginInput!) { login(input: $i) { `+PayloadFields+` } }`,
		map[string]any{"i": map[string]any{"email": email, "password": pw}}, headers...)
	return e.MustPair(r, "login")
}

// Refresh sends refreshToken with the refresh token rt.
func (e *Env) Refresh(rt string, headers ...string) Response {
	e.T.Helper()
	return e.Post(`mutation($t: String) { refreshToken(refreshToken: $t) { `+PayloadFields+` } }`, map[string]any{"t": rt}, headers...)
}

// Me queries me with the access token.
func (e *Env) Me(access string) Response {
	e.T.Helper()
	return e.Post(`{ me { id email role createdAt } }`, nil, Bearer(access)...)
}

// MustPair decodes data[field] as a Pair and fails the test if r has errors.
func (e *Env) MustPair(r Response, field string) Pair {
	e.T.Helper()
	if len(r.Errors) > 0 {
		e.T.Fatalf("%s failed: %s", field, r.Raw)
	}
	var p Pair
	r.Decode(e.T, field, &p)
	return p
}

// WantCode fails unless r has exactly one error with the given code (and reason, if not empty).
func WantCode(t testing.TB, r Response, code, reason string) {
	t.Helper()
	if len(r.Errors) != 1 || r.Code() != code || (reason != "" && r.Ext("reason") != reason) {
		t.Fatalf("want one error %s %s, got: %s", code, reason, r.Raw)
	}
}

// WantOK fails if r has errors.
func WantOK(t testing.TB, r Response) {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("want no error, got: %s", r.Raw)
	}
}

// Concurrently runs do(0) … do(n-1) at once (each in its own goroutine, released together so that
// they overlap as much as the scheduler allows) and returns their responses in order.
func Concurrently(n int, do func(i int) Response) []Response {
	results := make([]Response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i] = do(i)
		})
	}
	close(start)
	wg.Wait()
	return results
}

// WSWait bounds the WebSocket tests' waits that have no bound of their own in the issue: generous,
// so a slow machine never fails them.
const WSWait = 10 * time.Second

// WSContext is a context that ends after WSWait or with the test.
func WSContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), WSWait)
	t.Cleanup(cancel)
	return ctx
}

// DialWS opens a graphql-ws socket to the server's /graphql, closed when the test ends.
func (e *Env) DialWS(opts wsclient.Options) *wsclient.Conn {
	e.T.Helper()
	c, res, err := wsclient.Dial(WSContext(e.T), e.Server.URL+"/graphql", opts)
	if res != nil && res.Body != nil {
		_ = res.Body.Close()
	}
	if err != nil {
		e.T.Fatalf("dial: %v", err)
	}
	e.T.Cleanup(c.Close)
	return c
}

// InitWS dials and authenticates (connection_init) with access.
func (e *Env) InitWS(access string) *wsclient.Conn {
	e.T.Helper()
	c := e.DialWS(wsclient.Options{})
	if err := c.InitBearer(WSContext(e.T), access); err != nil {
		e.T.Fatalf("init: %v", err)
	}
	return c
}
