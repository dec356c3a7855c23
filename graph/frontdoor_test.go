package graph_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/introspection"

	"gqlauth/internal/testdb"
	"gqlauth/internal/testlog"
)

// Regression tests for the anonymous denial-of-service holes of issue 11: each hostile document is
// refused in milliseconds and leaves no memory behind. The requests carry a client timeout far above
// what the fixed server needs and far below what the old one took (hours for the fragment bomb), so
// a regression fails instead of hanging.

// fragmentBomb is a document of n fragments in which each spreads the next one twice: 2^(n-1) fields
// once expanded, in about 40 bytes per fragment.
func fragmentBomb(n int) string {
	var b strings.Builder
	b.WriteString("query Bomb { ...F0 }")
	for i := range n - 1 {
		fmt.Fprintf(&b, " fragment F%d on Query { ...F%d ...F%d }", i, i+1, i+1)
	}
	fmt.Fprintf(&b, " fragment F%d on Query { __typename }", n-1)
	return b.String()
}

// patience is how long a hostile document may take: far above what the fixed server needs, far
// below what the old one took.
const patience = 15 * time.Second

func TestFragmentBombIsRefused(t *testing.T) {
	e := newEnv(t, testdb.SQLite(t), envOpt{})
	bomb := fragmentBomb(40) // 2^39 fields: days of CPU for a walker that expands spreads
	if len(bomb) > 2048 {
		t.Fatalf("the bomb is %d bytes; the point is that it is small", len(bomb))
	}
	t.Run("POST", func(t *testing.T) {
		done := make(chan response, 1)
		go func() { done <- e.post(bomb, nil) }()
		select {
		case r := <-done:
			wantCode(t, r, "COMPLEXITY_LIMIT_EXCEEDED", "")
		case <-time.After(patience):
			t.Fatalf("fragment bomb still running after %s", patience)
		}
	})
	t.Run("GET", func(t *testing.T) {
		// Any web page can make its visitors' browsers send a GET.
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/graphql?query="+url.QueryEscape(bomb), nil)
		done := make(chan response, 1)
		go func() { done <- e.send(req) }()
		select {
		case r := <-done:
			wantCode(t, r, "COMPLEXITY_LIMIT_EXCEEDED", "")
		case <-time.After(patience):
			t.Fatalf("fragment bomb over GET still running after %s", patience)
		}
	})
	t.Run("nested", func(t *testing.T) {
		// The same doubling through nested fields: depth and count both explode.
		var b strings.Builder
		b.WriteString("{ me { ...U0 } }")
		for i := range 39 {
			fmt.Fprintf(&b, " fragment U%d on User { id ...U%d ...U%d }", i, i+1, i+1)
		}
		b.WriteString(" fragment U39 on User { id }")
		r := e.post(b.String(), nil)
		wantCode(t, r, "COMPLEXITY_LIMIT_EXCEEDED", "")
	})
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Large documents of distinct aliases were parsed, validated and cached (by count only) before any
// limit looked at them: 60 refused requests held 1.46 GB. Now the token limit stops the parser and
// nothing is cached. MAX_BODY_BYTES is raised to the old 1 MiB default so that the token limit and
// the cache bound are what is tested, not the smaller default body limit.
func TestLargeDocumentsDoNotFillMemory(t *testing.T) {
	e := newEnv(t, testdb.SQLite(t), envOpt{vars: map[string]string{"MAX_BODY_BYTES": "1048576"}})
	before := heapInUse()
	for i := range 30 {
		var b strings.Builder
		b.WriteString("{")
		for j := 0; b.Len() < 900<<10; j++ {
			fmt.Fprintf(&b, " a%d_%d: __typename", i, j)
		}
		b.WriteString(" }")
		wantCode(t, e.post(b.String(), nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
	}
	grown := int64(heapInUse()) - int64(before)
	t.Logf("heap grew by %d KiB after 30 refused 900 KiB documents", grown>>10)
	if grown > 64<<20 {
		t.Fatalf("heap grew by %d MiB after 30 refused documents; want it bounded (< 64 MiB)", grown>>20)
	}

	// With the default body limit such a body never reaches the parser.
	d := newEnv(t, testdb.SQLite(t), envOpt{})
	big := "{ __typename" + strings.Repeat(" ", 20<<10) + "}"
	wantCode(t, d.post(big, nil), "PAYLOAD_TOO_LARGE", "")
	wantOK(t, d.post(`{ __typename }`, nil))
}

// `{ __typename __typename … }` made gqlparser compare every pair of fields: 220 KB took 18 s.
func TestRepeatedFieldsAreRefusedBeforeValidation(t *testing.T) {
	e := newEnv(t, testdb.SQLite(t), envOpt{vars: map[string]string{"MAX_BODY_BYTES": "1048576"}})
	huge := "{" + strings.Repeat(" __typename", 20000) + " }" // 220 KB
	done := make(chan response, 1)
	go func() { done <- e.post(huge, nil) }()
	select {
	case r := <-done:
		wantCode(t, r, "COMPLEXITY_LIMIT_EXCEEDED", "")
	case <-time.After(patience):
		t.Fatalf("220 KB of repeated fields still being validated after %s", patience)
	}
	// Under the token limit and inside introspection's larger budget, one response name may still
	// not repeat without bound.
	wantCode(t, e.post("{ __schema {"+strings.Repeat(" __typename", 40)+" } }", nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
	wantCode(t, e.post("{"+strings.Repeat(" ... on Query { __typename }", 40)+" }", nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
	wantCode(t, e.post("{"+strings.Repeat(" ...F", 40)+" } fragment F on Query { __typename }", nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
	// A few repetitions are normal (fragments and the query overlap).
	wantOK(t, e.post("{ __typename __typename ...F } fragment F on Query { __typename }", nil))
}

// In development (the default) introspection was free of any limit: 2000 aliased __schema fields made
// a 7 MB response (100 fit in today's body limit). It now has a budget of its own, and the IDEs' introspection query fits in it.
func TestIntrospectionIsBounded(t *testing.T) {
	e := newEnv(t, testdb.SQLite(t), envOpt{})
	wantOK(t, e.post(introspection.Query, nil))

	var many strings.Builder
	many.WriteString("{")
	for i := range 100 { // within the body and token limits
		fmt.Fprintf(&many, " s%d: __schema { queryType { name } }", i)
	}
	many.WriteString(" }")
	wantCode(t, e.post(many.String(), nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
	wantCode(t, e.post(`{ a: __schema { queryType { name } } b: __schema { queryType { name } } }`, nil), "COMPLEXITY_LIMIT_EXCEEDED", "")

	var types strings.Builder
	types.WriteString("{")
	for i := range 150 {
		fmt.Fprintf(&types, ` t%d: __type(name: "User") { fields { name } }`, i)
	}
	types.WriteString(" }")
	wantCode(t, e.post(types.String(), nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
}

// In production introspection answered INTERNAL_SERVER_ERROR and logged an ERROR line per request
// (anyone could flood the log), and field suggestions spelled out the schema.
func TestProductionHidesTheSchemaQuietly(t *testing.T) {
	var logs testlog.Buffer
	e := newEnv(t, testdb.SQLite(t), envOpt{logger: slog.New(slog.NewTextHandler(&logs, nil)), vars: map[string]string{
		"APP_ENV": "production", "JWT_SECRET": strings.Repeat("s", 32),
	}})
	for _, q := range []string{
		`{ __schema { types { name } } }`,
		`{ __type(name: "User") { name } }`,
		`query { ...F } fragment F on Query { __schema { queryType { name } } }`,
	} {
		wantCode(t, e.post(q, nil), "GRAPHQL_VALIDATION_FAILED", "")
	}
	wantOK(t, e.post(`{ __typename }`, nil))
	r := e.post(`{ mee { id } }`, nil)
	wantCode(t, r, "GRAPHQL_VALIDATION_FAILED", "")
	if strings.Contains(r.Raw, "Did you mean") {
		t.Fatalf("production error suggests field names: %s", r.Raw)
	}
	if got := logs.String(); strings.Contains(got, "level=ERROR") {
		t.Fatalf("refused introspection logged an error:\n%s", got)
	}
}
