package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"gqlauth/app"
	"gqlauth/config"
	"gqlauth/password"
)

// cheap argon2id parameters keep the suite fast; production uses password.Default.
var cheap = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// clock is a fake clock shared by the token issuer and the auth service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is one running server (the real wiring, app.New) behind a real HTTP listener.
type env struct {
	t     *testing.T
	app   *app.App
	srv   *server
	clock *clock // nil when running on the real clock
	cfg   *config.Config
}

type envOpt struct {
	vars     map[string]string
	realTime bool
	params   *password.Params
	dataDir  string
	logger   *slog.Logger
}

// newEnv starts a server on the database dsn. vars override environment variables.
func newEnv(t *testing.T, dsn string, o envOpt) *env {
	t.Helper()
	vars := map[string]string{"DATABASE_URL": dsn, "DATA_DIR": o.dataDir}
	if vars["DATA_DIR"] == "" {
		vars["DATA_DIR"] = t.TempDir()
	}
	for k, v := range o.vars {
		vars[k] = v
	}
	cfg, err := config.LoadFrom(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	e := &env{t: t, cfg: cfg}
	opts := app.Options{Password: &cheap, Logger: discardLogger()}
	if o.params != nil {
		opts.Password = o.params
	}
	if o.logger != nil {
		opts.Logger = o.logger
	}
	if !o.realTime {
		e.clock = newClock()
		opts.Now = e.clock.Now
	}
	a, err := app.New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	e.app = a
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	e.srv = &server{URL: "http://" + ln.Addr().String(), close: sync.OnceFunc(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})}
	t.Cleanup(func() { e.srv.Close(); _ = a.Close() })
	return e
}

// server is the env's running App.Serve.
type server struct {
	URL   string // http://127.0.0.1:port
	close func()
}

// Close shuts the server down and waits for Serve to return.
func (s *server) Close() { s.close() }

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type response struct {
	Status int
	Data   map[string]json.RawMessage
	Errors []gqlError
	Raw    string
}

// code returns the single error's extensions.code ("" when there is no error).
func (r response) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

func (r response) ext(key string) string {
	if len(r.Errors) == 0 {
		return ""
	}
	s, _ := r.Errors[0].Extensions[key].(string)
	return s
}

// decode unmarshals data[field] into v.
func (r response) decode(t *testing.T, field string, v any) {
	t.Helper()
	raw, ok := r.Data[field]
	if !ok {
		t.Fatalf("no data.%s in %s", field, r.Raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode data.%s: %v (%s)", field, err, r.Raw)
	}
}

// post sends a GraphQL request; headers are name, value pairs.
func (e *env) post(query string, vars map[string]any, headers ...string) response {
	e.t.Helper()
	_, r := e.do(query, vars, headers...)
	return r
}

// do is post that also returns the HTTP response (its body already read into the response).
func (e *env) do(query string, vars map[string]any, headers ...string) (*http.Response, response) {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.roundTrip(req)
}

// send sends any request and decodes the GraphQL response.
func (e *env) send(req *http.Request) response {
	e.t.Helper()
	_, r := e.roundTrip(req)
	return r
}

// roundTrip fails the test on a transport error, a 5xx or a body that is not JSON.
func (e *env) roundTrip(req *http.Request) (*http.Response, response) {
	e.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("http: %v", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{Status: res.StatusCode, Raw: string(raw)}
	var out struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []gqlError                 `json:"errors"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("response is not JSON (status %d): %s", res.StatusCode, raw)
	}
	r.Data, r.Errors = out.Data, out.Errors
	if res.StatusCode >= 500 {
		e.t.Fatalf("status %d: %s", res.StatusCode, raw)
	}
	return res, r
}

// bearer returns the header pair for an access token.
func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

const payloadFields = `accessToken tokenType expiresIn accessTokenExpiresAt refreshToken refreshTokenExpiresAt user { id email role createdAt }`

type user struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	Role      string `json:"role"`
	CreatedAt string `json:"createdAt"`
}

type pair struct {
	AccessToken           string `json:"accessToken"`
	TokenType             string `json:"tokenType"`
	ExpiresIn             int    `json:"expiresIn"`
	AccessTokenExpiresAt  string `json:"accessTokenExpiresAt"`
	RefreshToken          string `json:"refreshToken"`
	RefreshTokenExpiresAt string `json:"refreshTokenExpiresAt"`
	User                  user   `json:"user"`
}

func (e *env) register(email, pw string, headers ...string) pair {
	e.t.Helper()
	r := e.post(`mutation($i: RegisterInput!) { register(input: $i) { `+payloadFields+` } }`,
		map[string]any{"i": map[string]any{"email": email, "password": pw}}, headers...)
	return e.mustPair(r, "register")
}

func (e *env) login(email, pw string, headers ...string) pair {
	e.t.Helper()
	r := e.post(`mutation($i: LoginInput!) { login(input: $i) { `+payloadFields+` } }`,
		map[string]any{"i": map[string]any{"email": email, "password": pw}}, headers...)
	return e.mustPair(r, "login")
}

func (e *env) refresh(rt string, headers ...string) response {
	e.t.Helper()
	return e.post(`mutation($t: String) { refreshToken(refreshToken: $t) { `+payloadFields+` } }`, map[string]any{"t": rt}, headers...)
}

func (e *env) me(access string) response {
	e.t.Helper()
	return e.post(`{ me { id email role createdAt } }`, nil, bearer(access)...)
}

func (e *env) mustPair(r response, field string) pair {
	e.t.Helper()
	if len(r.Errors) > 0 {
		e.t.Fatalf("%s failed: %s", field, r.Raw)
	}
	var p pair
	r.decode(e.t, field, &p)
	return p
}

// wantCode fails unless r has exactly one error with the given code (and reason, if not empty).
func wantCode(t *testing.T, r response, code, reason string) {
	t.Helper()
	if len(r.Errors) != 1 || r.code() != code || (reason != "" && r.ext("reason") != reason) {
		t.Fatalf("want one error %s %s, got: %s", code, reason, r.Raw)
	}
}

func wantOK(t *testing.T, r response) {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("want no error, got: %s", r.Raw)
	}
}
