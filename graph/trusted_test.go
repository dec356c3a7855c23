package graph_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
	"gqlauth/internal/wsclient"
)

// Trusted documents and APQ through the real server: hashes instead of queries (Apollo's
// extensions.persistedQuery and GraphQL-over-HTTP's documentId, over POST, GET and graphql-ws),
// TRUSTED_DOCUMENTS=require refusing other documents before anything runs, allow counting them, and
// APQ registering documents (shared between instances through Redis).

// The manifest's documents. registerDoc, loginDoc and meDoc are the texts apptest's Register, Login
// and Me send, so
// those helpers work in require mode too (a trusted document's full text is accepted).
var (
	registerDoc = `mutation($i: RegisterInput!) { register(input: $i) { ` + apptest.PayloadFields + ` } }`
	loginDoc    = `mutation($i: LoginInput!) { login(input: $i) { ` + apptest.PayloadFields + ` } }`
	meDoc       = `{ me { id email role createdAt } }`
	emailDoc    = `query Email { me { email } }`
	eventsDoc   = eventsQ
)

func sha(doc string) string {
	sum := sha256.Sum256([]byte(doc))
	return hex.EncodeToString(sum[:])
}

// writeManifest writes docs as graphql-codegen's client preset does ("sha256:<hex>": document) and
// returns the file's path.
func writeManifest(t *testing.T, docs ...string) string {
	t.Helper()
	m := map[string]string{}
	for _, d := range docs {
		m["sha256:"+sha(d)] = d
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "persisted-documents.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func trustedEnv(t *testing.T, dsn, mode string, more map[string]string) *apptest.Env {
	t.Helper()
	vars := map[string]string{
		"TRUSTED_DOCUMENTS":      mode,
		"TRUSTED_DOCUMENTS_FILE": writeManifest(t, registerDoc, loginDoc, meDoc, emailDoc, eventsDoc),
	}
	for k, v := range more {
		vars[k] = v
	}
	return apptest.New(t, dsn, apptest.Options{Vars: vars})
}

// postJSON sends body as a POST /graphql; headers are name, value pairs.
func postJSON(e *apptest.Env, body map[string]any, headers ...string) apptest.Response {
	e.T.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, e.Server.URL+"/graphql", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.Send(req)
}

// getQuery sends a GET /graphql with params.
func getQuery(e *apptest.Env, params url.Values, headers ...string) apptest.Response {
	e.T.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, e.Server.URL+"/graphql?"+params.Encode(), nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.Send(req)
}

func persistedQuery(hash string) map[string]any {
	return map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}
}

func persistedQueryJSON(hash string) string {
	b, _ := json.Marshal(persistedQuery(hash))
	return string(b)
}

func wantEmail(t *testing.T, r apptest.Response, email string) {
	t.Helper()
	apptest.WantOK(t, r)
	var me struct {
		Email string `json:"email"`
	}
	r.Decode(t, "me", &me)
	if me.Email != email {
		t.Fatalf("me.email = %q, want %q", me.Email, email)
	}
}

func TestTrustedDocumentsRequire(t *testing.T) {
	t.Parallel()
	testdb.ForEach(t, func(t *testing.T, dsn string) {
		e := trustedEnv(t, dsn, "require", nil)
		email := "trusted-" + uniq() + "@example.com"
		regVars := map[string]any{"i": map[string]any{"email": email, "password": pw}}

		// An ad-hoc register (valid, but not in the manifest) is refused before any resolver runs:
		// the account does not exist afterwards, so the trusted register below succeeds.
		adHoc := `mutation($i: RegisterInput!) { register(input: $i) { accessToken } }`
		apptest.WantCode(t, e.Post(adHoc, regVars), "OPERATION_NOT_TRUSTED", "")
		// Refused before parsing: a document that does not even parse gets the same answer.
		apptest.WantCode(t, e.Post(`{ me { `, nil), "OPERATION_NOT_TRUSTED", "")
		// APQ cannot register it either, and it stays unknown.
		apptest.WantCode(t, postJSON(e, map[string]any{"query": adHoc, "variables": regVars, "extensions": persistedQuery(sha(adHoc))}),
			"OPERATION_NOT_TRUSTED", "")
		apptest.WantCode(t, postJSON(e, map[string]any{"variables": regVars, "extensions": persistedQuery(sha(adHoc))}),
			"PERSISTED_QUERY_NOT_FOUND", "")

		// By hash (Apollo's form, POST): the trusted register runs.
		r := postJSON(e, map[string]any{"variables": regVars, "extensions": persistedQuery(sha(registerDoc))})
		access := e.MustPair(r, "register").AccessToken
		// The full text of a trusted document is accepted too (apptest's helpers send it).
		apptest.WantOK(t, e.Me(access))
		apptest.WantCode(t, e.Post(registerDoc, regVars), "EMAIL_TAKEN", "")

		bearer := apptest.Bearer(access)
		// documentId over POST, with and without the sha256: prefix.
		wantEmail(t, postJSON(e, map[string]any{"documentId": "sha256:" + sha(emailDoc)}, bearer...), email)
		wantEmail(t, postJSON(e, map[string]any{"documentId": sha(emailDoc), "operationName": "Email"}, bearer...), email)
		// Both forms over GET.
		wantEmail(t, getQuery(e, url.Values{"documentId": {"sha256:" + sha(emailDoc)}}, bearer...), email)
		wantEmail(t, getQuery(e, url.Values{"extensions": {persistedQueryJSON(sha(emailDoc))}}, bearer...), email)

		// Unknown hashes, in every form.
		unknown := sha("{ me { id } }")
		for name, r := range map[string]apptest.Response{
			"POST persistedQuery": postJSON(e, map[string]any{"extensions": persistedQuery(unknown)}),
			"POST documentId":     postJSON(e, map[string]any{"documentId": "sha256:" + unknown}),
			"GET persistedQuery":  getQuery(e, url.Values{"extensions": {persistedQueryJSON(unknown)}}),
			"GET documentId":      getQuery(e, url.Values{"documentId": {"sha256:" + unknown}}),
		} {
			t.Run(name, func(t *testing.T) {
				apptest.WantCode(t, r, "PERSISTED_QUERY_NOT_FOUND", "")
				if r.Errors[0].Message != "PersistedQueryNotFound" {
					t.Fatalf("message %q, want Apollo's PersistedQueryNotFound", r.Errors[0].Message)
				}
			})
		}
		// A mutation named by hash still cannot run over GET.
		r = getQuery(e, url.Values{"documentId": {"sha256:" + sha(registerDoc)}, "variables": {`{"i":{"email":"x@example.com","password":"` + pw + `"}}`}})
		apptest.WantCode(t, r, "BAD_REQUEST", "")
	})
}

// Malformed hashes and mismatches are typed errors, never a 500 or a lookup with an attacker's key.
func TestTrustedDocumentsBadHashes(t *testing.T) {
	t.Parallel()
	e := trustedEnv(t, testdb.SQLite(t), "allow", nil)
	long := strings.Repeat("a", 10000)
	for _, tc := range []struct {
		name string
		body map[string]any
		code string
	}{
		{"sha1 hash", map[string]any{"extensions": persistedQuery(strings.Repeat("a", 40))}, "BAD_REQUEST"},
		{"long hash", map[string]any{"extensions": persistedQuery(long)}, "BAD_REQUEST"},
		{"not hex", map[string]any{"extensions": persistedQuery(strings.Repeat("z", 64))}, "BAD_REQUEST"},
		{"version 2", map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 2, "sha256Hash": sha(meDoc)}}}, "BAD_REQUEST"},
		{"not an object", map[string]any{"extensions": map[string]any{"persistedQuery": "x"}}, "BAD_REQUEST"},
		{"documentId sha1", map[string]any{"documentId": "sha1:" + strings.Repeat("a", 40)}, "BAD_REQUEST"},
		{"documentId long", map[string]any{"documentId": long}, "BAD_REQUEST"},
		{"documentId and query", map[string]any{"documentId": "sha256:" + sha(meDoc), "query": meDoc}, "BAD_REQUEST"},
		{"both forms", map[string]any{"documentId": "sha256:" + sha(meDoc), "extensions": persistedQuery(sha(meDoc))}, "BAD_REQUEST"},
		{"hash of another query", map[string]any{"query": "{ __typename }", "extensions": persistedQuery(sha(meDoc))}, "BAD_REQUEST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := postJSON(e, tc.body)
			apptest.WantCode(t, r, tc.code, "")
			if strings.Contains(r.Raw, long) {
				t.Fatal("the error echoes the hash")
			}
		})
	}
}

// untrustedCount reads gqlauth_graphql_untrusted_operations_total.
func untrustedCount(t *testing.T, e *apptest.Env) int {
	t.Helper()
	out := wantMetrics(t, e, "gqlauth_graphql_untrusted_operations_total ")
	m := regexp.MustCompile(`(?m)^gqlauth_graphql_untrusted_operations_total (\d+)`).FindStringSubmatch(out)
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestTrustedDocumentsAllowCountsUntrusted(t *testing.T) {
	t.Parallel()
	e := trustedEnv(t, testdb.SQLite(t), "allow", nil)
	access := e.Register("allow-"+uniq()+"@example.com", pw).AccessToken // the manifest's text: not counted
	if n := untrustedCount(t, e); n != 0 {
		t.Fatalf("untrusted = %d after a trusted document, want 0", n)
	}
	// An ad-hoc query runs, and is counted.
	r := e.Post(`{ me { email role } }`, nil, apptest.Bearer(access)...)
	apptest.WantOK(t, r)
	if n := untrustedCount(t, e); n != 1 {
		t.Fatalf("untrusted = %d after one ad-hoc query, want 1", n)
	}
	// Trusted documents by hash are not counted; an APQ-registered one is (it is not in the manifest).
	apptest.WantOK(t, postJSON(e, map[string]any{"extensions": persistedQuery(sha(meDoc))}, apptest.Bearer(access)...))
	q := `query AllowAPQ { me { id } }`
	apptest.WantOK(t, postJSON(e, map[string]any{"query": q, "extensions": persistedQuery(sha(q))}, apptest.Bearer(access)...))
	apptest.WantOK(t, postJSON(e, map[string]any{"extensions": persistedQuery(sha(q))}, apptest.Bearer(access)...))
	if n := untrustedCount(t, e); n != 3 {
		t.Fatalf("untrusted = %d, want 3 (ad-hoc, APQ registration, APQ by hash)", n)
	}
}

func TestAPQRegisterThenHash(t *testing.T) {
	t.Parallel()
	// Mode off, no manifest: APQ alone.
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"APQ_MAX_DOCUMENT_BYTES": "256"}})
	q := `query APQ` + uniq() + ` { __typename }`
	byHash := map[string]any{"extensions": persistedQuery(sha(q))}
	apptest.WantCode(t, postJSON(e, byHash), "PERSISTED_QUERY_NOT_FOUND", "")
	// A wrong hash is refused, and registers nothing.
	apptest.WantCode(t, postJSON(e, map[string]any{"query": q, "extensions": persistedQuery(sha(q + " "))}), "BAD_REQUEST", "")
	apptest.WantCode(t, postJSON(e, map[string]any{"extensions": persistedQuery(sha(q + " "))}), "PERSISTED_QUERY_NOT_FOUND", "")
	// Hash and query: it runs and is registered; then the hash alone runs, over POST and GET.
	apptest.WantOK(t, postJSON(e, map[string]any{"query": q, "extensions": persistedQuery(sha(q))}))
	apptest.WantOK(t, postJSON(e, byHash))
	apptest.WantOK(t, getQuery(e, url.Values{"extensions": {persistedQueryJSON(sha(q))}}))

	// A document that fails validation (or the limits) is not registered: the cache holds only
	// documents that run.
	bad := `query APQBad` + uniq() + ` { nope }`
	apptest.WantCode(t, postJSON(e, map[string]any{"query": bad, "extensions": persistedQuery(sha(bad))}), "GRAPHQL_VALIDATION_FAILED", "")
	apptest.WantCode(t, postJSON(e, map[string]any{"extensions": persistedQuery(sha(bad))}), "PERSISTED_QUERY_NOT_FOUND", "")
	// Nor is one over APQ_MAX_DOCUMENT_BYTES (it runs, but the client keeps sending its text).
	big := `query APQBig` + uniq() + ` { ` + strings.Repeat("__typename ", 30) + `}`
	apptest.WantOK(t, postJSON(e, map[string]any{"query": big, "extensions": persistedQuery(sha(big))}))
	apptest.WantCode(t, postJSON(e, map[string]any{"extensions": persistedQuery(sha(big))}), "PERSISTED_QUERY_NOT_FOUND", "")
}

// Two instances on one Redis: a document registered on one runs by hash on the other. When Redis
// is cut, a hash unknown locally is a miss (PERSISTED_QUERY_NOT_FOUND), never a failure.
func TestAPQSharedThroughRedis(t *testing.T) {
	t.Parallel()
	redisURL := testdb.Redis(t)
	proxied, proxy := testdb.Proxied(t, redisURL)
	a := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"REDIS_URL": redisURL}})
	b := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"REDIS_URL": proxied}})
	q := `query Shared` + uniq() + ` { __typename }`
	apptest.WantOK(t, postJSON(a, map[string]any{"query": q, "extensions": persistedQuery(sha(q))}))
	apptest.WantOK(t, postJSON(b, map[string]any{"extensions": persistedQuery(sha(q))}))

	proxy.Cut()
	q2 := `query Shared2` + uniq() + ` { __typename }`
	apptest.WantOK(t, postJSON(a, map[string]any{"query": q2, "extensions": persistedQuery(sha(q2))}))
	apptest.WantCode(t, postJSON(b, map[string]any{"extensions": persistedQuery(sha(q2))}), "PERSISTED_QUERY_NOT_FOUND", "")
	// b registers while Redis is down: kept in its memory, so its own clients still run by hash.
	q3 := `query Shared3` + uniq() + ` { __typename }`
	apptest.WantOK(t, postJSON(b, map[string]any{"query": q3, "extensions": persistedQuery(sha(q3))}))
	apptest.WantOK(t, postJSON(b, map[string]any{"extensions": persistedQuery(sha(q3))}))
	// What b already had stays served from its memory.
	apptest.WantOK(t, postJSON(b, map[string]any{"extensions": persistedQuery(sha(q))}))
	wantMetrics(t, b, `gqlauth_dependency_degraded{component="apq",dependency="redis"} 1`)
}

// graphql-ws: the subscribe payload carries the hash (Apollo's form) instead of the query.
func TestTrustedSubscriptionByHash(t *testing.T) {
	t.Parallel()
	e := trustedEnv(t, testdb.SQLite(t), "require", nil)
	email := "ws-trusted-" + uniq() + "@example.com"
	access := e.Register(email, pw).AccessToken
	c := e.InitWS(access)
	ctx := apptest.WSContext(t)

	// An ad-hoc subscription is refused with the code, and nothing starts.
	if err := c.Subscribe(ctx, "adhoc", `subscription { sessionEvents { type } }`, nil); err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "adhoc" || !strings.Contains(string(m.Payload), `"OPERATION_NOT_TRUSTED"`) {
		t.Fatalf("got %s %s %s, want the ad-hoc subscription refused with OPERATION_NOT_TRUSTED", m.Type, m.ID, m.Payload)
	}
	if n := e.App.Sockets.Subscriptions(); n != 0 {
		t.Fatalf("%d subscriptions after a refused one", n)
	}

	payload, _ := json.Marshal(map[string]any{"extensions": persistedQuery(sha(eventsDoc))})
	if err := c.Send(ctx, wsclient.Message{Type: "subscribe", ID: "ev", Payload: payload}); err != nil {
		t.Fatal(err)
	}
	// The documentId form too (as over HTTP); graphql-ws clients send query "" with it.
	payload, _ = json.Marshal(map[string]any{"documentId": "sha256:" + sha(eventsDoc), "query": ""})
	if err := c.Send(ctx, wsclient.Message{Type: "subscribe", ID: "ev2", Payload: payload}); err != nil {
		t.Fatal(err)
	}
	eventually(t, apptest.WSWait, "the subscriptions by hash to start", func() bool { return e.App.Sockets.Subscriptions() == 2 })
	// They work: a login of the same account is an event on each.
	e.Login(email, pw)
	seen := map[string]bool{}
	for {
		m, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for an event: %v", err)
		}
		if (m.ID == "ev" || m.ID == "ev2") && m.Type == "next" && strings.Contains(string(m.Payload), "sessionEvents") {
			seen[m.ID] = true
			if seen["ev"] && seen["ev2"] {
				break
			}
			continue
		}
		if m.ID == "adhoc" && m.Type == "complete" {
			continue
		}
		t.Fatalf("got %s %s %s", m.Type, m.ID, m.Payload)
	}
}

// The cost of trusted documents per request, on the cheapest operation (compare BenchmarkTrivial):
// off with text (no hashing), require by hash (a map lookup), require with a manifest document's text
// (one SHA-256), allow with ad-hoc text (one SHA-256 and the counter), and APQ by hash.
func BenchmarkTrustedDocuments(b *testing.B) {
	doc := `query Trivial { __typename }`
	sum := sha256.Sum256([]byte(doc))
	hash := hex.EncodeToString(sum[:])
	path := filepath.Join(b.TempDir(), "persisted-documents.json")
	if err := os.WriteFile(path, []byte(`{"sha256:`+hash+`": "`+doc+`"}`), 0o600); err != nil {
		b.Fatal(err)
	}
	byHash := `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + hash + `"}}}`
	for _, tc := range []struct {
		name, mode, body string
		file             bool
	}{
		{"off/text", "off", `{"query":"` + doc + `"}`, false},
		{"off/apq-hash", "off", byHash, false},
		{"require/hash", "require", byHash, true},
		{"require/manifest-text", "require", `{"query":"` + doc + `"}`, true},
		{"allow/ad-hoc-text", "allow", `{"query":"{ __typename }"}`, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			vars := map[string]string{"TRUSTED_DOCUMENTS": tc.mode}
			if tc.file {
				vars["TRUSTED_DOCUMENTS_FILE"] = path
			}
			a := benchApp(b, testdb.SQLite(b), vars)
			if tc.name == "off/apq-hash" {
				serve(b, a.Handler, `{"query":"`+doc+`","extensions":{"persistedQuery":{"version":1,"sha256Hash":"`+hash+`"}}}`)
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					serve(b, a.Handler, tc.body)
				}
			})
		})
	}
}
