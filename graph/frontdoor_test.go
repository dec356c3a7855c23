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

	"gqlauth/internal/apptest"
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
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	bomb := fragmentBomb(40) // 2^39 fields: days of CPU for a walker that expands spreads
	if len(bomb) > 2048 {
		t.Fatalf("the bomb is %d bytes; the point is that it is small", len(bomb))
	}
	t.Run("POST", func(t *testing.T) {
		done := make(chan apptest.Response, 1)
		go func() { done <- e.Post(bomb, nil) }()
		select {
		case r := <-done:
			apptest.WantCode(t, r, "COMPLEXITY_LIMIT_EXCEEDED", "")
		case <-time.After(patience):
			t.Fatalf("fragment bomb still running after %s", patience)
		}
	})
	t.Run("GET", func(t *testing.T) {
		// Any web page can make its visitors' browsers send a GET.
		req, _ := http.NewRequest(http.MethodGet, e.Server.URL+"/graphql?query="+url.QueryEscape(bomb), nil)
		done := make(chan apptest.Response, 1)
		go func() { done <- e.Send(req) }()
		select {
		case r := <-done:
			apptest.WantCode(t, r, "COMPLEXITY_LIMIT_EXCEEDED", "")
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
		r := e.Post(b.String(), nil)
		apptest.WantCode(t, r, "COMPLEXITY_LIMIT_EXCEEDED", "")
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
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"MAX_BODY_BYTES": "1048576"}})
	before := heapInUse()
	for i := range 30 {
		var b strings.Builder
		b.WriteString("{")
		for j := 0; b.Len() < 900<<10; j++ {
			fmt.Fprintf(&b, " a%d_%d: __typename", i, j)
		}
		b.WriteString(" }")
		apptest.WantCode(t, e.Post(b.String(), nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
	}
	grown := int64(heapInUse()) - int64(before)
	t.Logf("heap grew by %d KiB after 30 refused 900 KiB documents", grown>>10)
	if grown > 64<<20 {
		t.Fatalf("heap grew by %d MiB after 30 refused documents; want it bounded (< 64 MiB)", grown>>20)
	}

	// With the default body limit such a body never reaches the parser.
	d := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	big := "{ __typename" + strings.Repeat(" ", 20<<10) + "}"
	apptest.WantCode(t, d.Post(big, nil), "PAYLOAD_TOO_LARGE", "")
	apptest.WantOK(t, d.Post(`{ __typename }`, nil))
}

// `{ __typename __typename … }` made gqlparser compare every pair of fields: 220 KB took 18 s.
func TestRepeatedFieldsAreRefusedBeforeValidation(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"MAX_BODY_BYTES": "1048576"}})
	huge := "{" + strings.Repeat(" __typename", 20000) + " }" // 220 KB
	done := make(chan apptest.Response, 1)
	go func() { done <- e.Post(huge, nil) }()
	select {
	case r := <-done:
		apptest.WantCode(t, r, "COMPLEXITY_LIMIT_EXCEEDED", "")
	case <-time.After(patience):
		t.Fatalf("220 KB of repeated fields still being validated after %s", patience)
	}
	// Under the token limit and inside introspection's larger budget, one response name may still
	// not repeat without bound.
	apptest.WantCode(t, e.Post("{ __schema {"+strings.Repeat(" __typename", 40)+" } }", nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
	apptest.WantCode(t, e.Post("{"+strings.Repeat(" ... on Query { __typename }", 40)+" }", nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
	apptest.WantCode(t, e.Post("{"+strings.Repeat(" ...F", 40)+" } fragment F on Query { __typename }", nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
	// A few repetitions are normal (fragments and the query overlap).
	apptest.WantOK(t, e.Post("{ __typename __typename ...F } fragment F on Query { __typename }", nil))
}

// In development (the default) introspection was free of any limit: 2000 aliased __schema fields made
// a 7 MB response (100 fit in today's body limit). It now has a budget of its own, and the IDEs' introspection query fits in it.
func TestIntrospectionIsBounded(t *testing.T) {
	t.Parallel()
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	apptest.WantOK(t, e.Post(introspection.Query, nil))

	var many strings.Builder
	many.WriteString("{")
	for i := range 100 { // within the body and token limits
		fmt.Fprintf(&many, " s%d: __schema { queryType { name } }", i)
	}
	many.WriteString(" }")
	apptest.WantCode(t, e.Post(many.String(), nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
	apptest.WantCode(t, e.Post(`{ a: __schema { queryType { name } } b: __schema { queryType { name } } }`, nil), "COMPLEXITY_LIMIT_EXCEEDED", "")

	var types strings.Builder
	types.WriteString("{")
	for i := range 150 {
		fmt.Fprintf(&types, ` t%d: __type(name: "User") { fields { name } }`, i)
	}
	types.WriteString(" }")
	apptest.WantCode(t, e.Post(types.String(), nil), "COMPLEXITY_LIMIT_EXCEEDED", "")
}

// In production introspection answered INTERNAL_SERVER_ERROR and logged an ERROR line per request
// (anyone could flood the log), and field suggestions spelled out the schema.
func TestProductionHidesTheSchemaQuietly(t *testing.T) {
	t.Parallel()
	var logs testlog.Buffer
	e := apptest.New(t, testdb.SQLite(t), apptest.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Vars: map[string]string{
		"APP_ENV": "production", "JWT_SECRET": strings.Repeat("s", 32), "SMTP_URL": "smtp://127.0.0.1:1025", "TOTP_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
	}})
	for _, q := range []string{
		`{ __schema { types { name } } }`,
		`{ __type(name: "User") { name } }`,
		`query { ...F } fragment F on Query { __schema { queryType { name } } }`,
	} {
		apptest.WantCode(t, e.Post(q, nil), "GRAPHQL_VALIDATION_FAILED", "")
	}
	apptest.WantOK(t, e.Post(`{ __typename }`, nil))
	r := e.Post(`{ mee { id } }`, nil)
	apptest.WantCode(t, r, "GRAPHQL_VALIDATION_FAILED", "")
	if strings.Contains(r.Raw, "Did you mean") {
		t.Fatalf("production error suggests field names: %s", r.Raw)
	}
	if got := logs.String(); strings.Contains(got, "level=ERROR") {
		t.Fatalf("refused introspection logged an error:\n%s", got)
	}
}
