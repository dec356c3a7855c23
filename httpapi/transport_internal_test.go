package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"gqlauth/auth"
	"gqlauth/graph"
	"gqlauth/password"
	"gqlauth/token"
)

// responseLog records what passes through gqlgen's executor: every response its response middleware
// sees, and every OnOperation report.
type responseLog struct {
	mu        sync.Mutex
	responses []*graphql.Response
	reports   []string // "name outcome"
}

func (l *responseLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.responses, l.reports = nil, nil
}

// newTestHandler is New's handler over a service whose store is never reached, with the error paths
// of gqlgen's executor recorded in log.
func newTestHandler(t *testing.T, log *responseLog) http.Handler {
	t.Helper()
	tokens, err := token.NewHS256Issuer([]byte(strings.Repeat("k", 32)), token.Options{Issuer: "i", Audience: "a", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	discard := slog.New(slog.DiscardHandler)
	svc, err := auth.NewService(struct{ auth.Store }{}, tokens, auth.Options{
		Password: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, Logger: discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	gql := graph.New(svc, graph.Options{Logger: discard, OnOperation: func(name, outcome string) {
		log.mu.Lock()
		defer log.mu.Unlock()
		log.reports = append(log.reports, name+" "+outcome)
	}})
	gql.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		resp := next(ctx)
		log.mu.Lock()
		defer log.mu.Unlock()
		log.responses = append(log.responses, resp)
		return resp
	})
	h, err := newHandler(svc, gql, Options{Logger: discard, MaxBodyBytes: 4096, CORSOrigins: []string{"https://app.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The errors that a transport finds itself go through gqlgen's executor (DispatchError): its error
// presenter gives them their code from graph's table, its response middleware sees them, and the
// operation metric counts each once. gqlgen's own transports wrote them straight to the client, with
// no code and past every extension. Status codes and messages are the ones clients have always seen.
func TestTransportErrorsGoThroughTheExecutor(t *testing.T) {
	t.Parallel()
	const secret = "hunter2 is my password"
	var log responseLog
	h := newTestHandler(t, &log)
	big := `{"query":"{ __typename }","variables":{"pad":"` + strings.Repeat("x", 8000) + `"}}`
	for _, tc := range []struct {
		name, method, target, contentType, accept, body string
		chunked                                         bool // no Content-Length: the limit is found while reading
		status                                          int
		code, message                                   string
	}{
		{"body not JSON", "POST", "/graphql", "application/json", "", `{"query": "mutation { login(input: {email: \"a@b.c\", password: \"` + secret,
			false, 400, "BAD_USER_INPUT", "the request body is not valid JSON"},
		{"empty body", "POST", "/graphql", "application/json", "", ``, false, 400, "BAD_USER_INPUT", "the request body is not valid JSON"},
		{"body not JSON, graphql-response accepted", "POST", "/graphql", "application/json", "application/graphql-response+json", `{"query":`,
			false, 400, "BAD_USER_INPUT", "the request body is not valid JSON"},
		{"batch", "POST", "/graphql", "application/json", "", ` [{"query":"{ __typename }"}]`,
			false, 400, "BAD_REQUEST", "batched requests (a JSON array) are not supported: send one operation per request"},
		{"batch as text/plain", "POST", "/graphql", "text/plain", "", `[{"query":"{ __typename }"}]`,
			false, 400, "BAD_REQUEST", "batched requests (a JSON array) are not supported: send one operation per request"},
		{"declared length over the limit", "POST", "/graphql", "application/json", "", big, false, 413, "PAYLOAD_TOO_LARGE", "the request body is larger than 4096 bytes"},
		{"declared length over the limit, text/plain", "POST", "/graphql", "text/plain", "", big, false, 413, "PAYLOAD_TOO_LARGE", "the request body is larger than 4096 bytes"},
		{"chunked body over the limit", "POST", "/graphql", "application/json", "", big, true, 413, "PAYLOAD_TOO_LARGE", "the request body is larger than 4096 bytes"},
		{"unsupported content type", "POST", "/graphql", "text/plain", "", `{"query":"{ __typename }"}`, false, 400, "BAD_REQUEST", "transport not supported"},
		{"mutation over GET", "GET", "/graphql?query=mutation%7BlogoutAll%7D", "", "", "", false, 406, "BAD_REQUEST", "GET requests only allow query operations"},
		{"named mutation over GET", "GET", "/graphql?query=mutation+X%7BlogoutAll%7D", "", "", "", false, 406, "BAD_REQUEST", "GET requests only allow query operations"},
		{"undecodable GET variables", "GET", "/graphql?query=%7B__typename%7D&variables=%7B", "", "", "", false, 400, "BAD_REQUEST", "variables could not be decoded"},
		{"undecodable GET extensions", "GET", "/graphql?query=%7B__typename%7D&extensions=%7B", "", "", "", false, 400, "BAD_REQUEST", "extensions could not be decoded"},
		{"unreadable query string", "GET", "/graphql?query=%zz", "", "", "", false, 400, "BAD_REQUEST", `invalid URL escape "%zz"`},
		// Errors gqlgen's executor found before, for comparison: the same path, the same single report.
		{"parse error", "POST", "/graphql", "application/json", "", `{"query":"{ me { "}`, false, 422, "GRAPHQL_PARSE_FAILED", "Expected Name, found <EOF>"},
		{"parse error, graphql-response accepted", "POST", "/graphql", "application/json", "application/graphql-response+json", `{"query":"{ me { "}`,
			false, 400, "GRAPHQL_PARSE_FAILED", "Expected Name, found <EOF>"},
		{"no operation", "POST", "/graphql", "application/json", "", `null`, false, 422, "GRAPHQL_VALIDATION_FAILED", "no operation provided"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log.reset()
			req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			if tc.chunked {
				req.ContentLength = -1
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var got struct {
				Errors []struct {
					Message    string         `json:"message"`
					Extensions map[string]any `json:"extensions"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got.Errors) != 1 {
				t.Fatalf("want one GraphQL error, got %d: %s", rec.Code, rec.Body)
			}
			if rec.Code != tc.status || got.Errors[0].Extensions["code"] != tc.code || got.Errors[0].Message != tc.message {
				t.Errorf("got %d %v %q, want %d %s %q", rec.Code, got.Errors[0].Extensions["code"], got.Errors[0].Message, tc.status, tc.code, tc.message)
			}
			if strings.Contains(rec.Body.String(), secret) {
				t.Errorf("the body came back: %s", rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/") || !strings.HasSuffix(ct, "json") {
				t.Errorf("Content-Type = %q", ct)
			}
			log.mu.Lock()
			defer log.mu.Unlock()
			if len(log.responses) != 1 || len(log.responses[0].Errors) != 1 || log.responses[0].Errors[0].Extensions["code"] != tc.code {
				t.Errorf("gqlgen's response middleware saw %d responses (%v), want the one with %s", len(log.responses), log.responses, tc.code)
			}
			if want := "anonymous " + tc.code; len(log.reports) != 1 || log.reports[0] != want {
				t.Errorf("operation reports %q, want [%s]", log.reports, want)
			}
		})
	}

	// A refused cross-origin request never reaches a transport: coded by the same table, and not
	// counted as an operation.
	log.reset()
	req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusForbidden || !strings.Contains(string(body), `"code":"FORBIDDEN"`) ||
		!strings.Contains(string(body), "cross-origin request refused: add the page's origin to CORS_ALLOWED_ORIGINS") {
		t.Errorf("cross-origin POST: %d %s", rec.Code, body)
	}
	if len(log.responses) != 0 || len(log.reports) != 0 {
		t.Errorf("a refused cross-origin request reached the executor: %v %q", log.responses, log.reports)
	}
}
