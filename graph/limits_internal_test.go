package graph

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

var testLimits = Limits{
	MaxTokens: DefaultMaxTokens, MaxDepth: DefaultMaxDepth, MaxComplexity: DefaultMaxComplexity,
	MaxIntrospection: DefaultMaxIntrospection, Introspection: true,
}

func guardCode(t *testing.T, g operationGuard, query string) string {
	t.Helper()
	err := g.MutateOperationParameters(context.Background(), &graphql.RawParams{Query: query})
	if err == nil {
		return ""
	}
	code, _ := err.Extensions["code"].(string)
	return code
}

func TestOperationGuard(t *testing.T) {
	t.Parallel()
	g := operationGuard{limits: testLimits}
	prod := operationGuard{limits: Limits{MaxTokens: 100, MaxDepth: 3, MaxComplexity: 5, MaxIntrospection: 10}}
	for _, tc := range []struct {
		name  string
		g     operationGuard
		query string
		want  string
	}{
		{"small", g, `{ me { id email } }`, ""},
		{"depth at the limit", prod, `{ me { id } sessions { id } }`, ""},
		{"too deep", prod, `{ a { b { c { d } } } }`, "DEPTH_LIMIT_EXCEEDED"},
		{"too deep through a fragment", prod, `{ a { ...F } } fragment F on X { b { c { d } } }`, "DEPTH_LIMIT_EXCEEDED"},
		{"too deep through an inline fragment", prod, `{ a { ... on X { b { c { d } } } } }`, "DEPTH_LIMIT_EXCEEDED"},
		{"too many fields", prod, `{ a b c d e f }`, "COMPLEXITY_LIMIT_EXCEEDED"},
		{"aliases count", prod, `{ a: me { id } b: me { id } c: me { id } }`, "COMPLEXITY_LIMIT_EXCEEDED"},
		{"fragments count once per spread", prod, `{ ...F ...G } fragment F on Q { a b } fragment G on Q { ...F c }`, ""},
		{"and add up", prod, `{ ...F ...G x } fragment F on Q { a b } fragment G on Q { ...F c }`, "COMPLEXITY_LIMIT_EXCEEDED"},
		{"token limit", prod, "{" + strings.Repeat(" a", 100) + " }", "COMPLEXITY_LIMIT_EXCEEDED"},
		{"syntax error", g, `{ me { id `, "GRAPHQL_PARSE_FAILED"},
		{"introspection disabled", prod, `{ __schema { queryType { name } } }`, "GRAPHQL_VALIDATION_FAILED"},
		{"__type disabled", prod, `{ __type(name: "X") { name } }`, "GRAPHQL_VALIDATION_FAILED"},
		{"__typename is not introspection", prod, `{ __typename }`, ""},
		{"introspection has its own budget", g, `{ __schema { types { name kind fields { name } } } }`, ""},
		{"one __schema", g, `{ __schema { queryType { name } } b: __schema { queryType { name } } }`, "COMPLEXITY_LIMIT_EXCEEDED"},
		{"two credential fields", g, `mutation { login(input: {}) { accessToken } register(input: {}) { accessToken } }`, "BAD_REQUEST"},
		{"credential fields through fragments", g, `mutation { ...A ...B } fragment A on Mutation { login { a } } fragment B on Mutation { a: login { a } }`, "BAD_REQUEST"},
		{"credential names below the root do not count", g, `{ me { login register } }`, ""},
		{"every operation is checked", prod, `query A { a } query B { a b c d e f }`, "COMPLEXITY_LIMIT_EXCEEDED"},
		{"a cycle is left to validation", g, `{ ...F } fragment F on Q { ...G } fragment G on Q { ...F }`, ""},
		{"unknown fragments are left to validation", g, `{ ...Nope }`, ""},
		{"repeated response name", g, "{" + strings.Repeat(" __typename", 45) + " }", "COMPLEXITY_LIMIT_EXCEEDED"},
		{"a few repeats", g, "{" + strings.Repeat(" __typename", 30) + " }", ""},
		{"repeated spread", g, "{" + strings.Repeat(" ...F", 45) + " } fragment F on Q { a }", "COMPLEXITY_LIMIT_EXCEEDED"},
		{"repeats through inline fragments", g, "{" + strings.Repeat(" ... { a }", 45) + " }", "COMPLEXITY_LIMIT_EXCEEDED"},
		{"repeats through distinct fragments", g, "{" + func() string {
			var b strings.Builder
			for i := range 45 {
				fmt.Fprintf(&b, " ...F%d", i)
			}
			b.WriteString(" }")
			for i := range 45 {
				fmt.Fprintf(&b, " fragment F%d on Q { a }", i)
			}
			return b.String()
		}(), "COMPLEXITY_LIMIT_EXCEEDED"},
		{"nested repeats multiply", g, "{ __schema { types {" + strings.Repeat(" fields {"+strings.Repeat(" name", 10)+" }", 10) + " } } }", "COMPLEXITY_LIMIT_EXCEEDED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := guardCode(t, tc.g, tc.query); got != tc.want {
				t.Fatalf("code = %q, want %q for %s", got, tc.want, tc.query)
			}
		})
	}
}

// The guard measures a fragment bomb in as many visits as the document has selections.
func TestOperationGuardVisitsEachFragmentOnce(t *testing.T) {
	t.Parallel()
	for _, n := range []int{10, 40, 200} {
		var b strings.Builder
		b.WriteString("{ ...F0 }")
		for i := range n - 1 {
			fmt.Fprintf(&b, " fragment F%d on Query { ...F%d a: me { ...F%d } }", i, i+1, i+1)
		}
		fmt.Fprintf(&b, " fragment F%d on Query { __typename }", n-1)
		doc, err := parser.ParseQuery(&ast.Source{Input: b.String()})
		if err != nil {
			t.Fatal(err)
		}
		m := newMeter(doc.Fragments)
		c := m.selectionSet(doc.Operations[0].SelectionSet, false)
		if c.fields < 1<<30 && n >= 40 {
			t.Fatalf("n=%d: fields = %d, want more than 2^30", n, c.fields)
		}
		if limit := 2 * selections(doc); m.visits > limit {
			t.Fatalf("n=%d: %d visits for a document of %d selections", n, m.visits, selections(doc))
		}
	}
}

// selections counts the selections written in doc (nothing expanded).
func selections(doc *ast.QueryDocument) int {
	var walk func(ast.SelectionSet) int
	walk = func(set ast.SelectionSet) int {
		n := 0
		for _, sel := range set {
			n++
			switch s := sel.(type) {
			case *ast.Field:
				n += walk(s.SelectionSet)
			case *ast.InlineFragment:
				n += walk(s.SelectionSet)
			}
		}
		return n
	}
	n := 0
	for _, op := range doc.Operations {
		n += walk(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		n += walk(f.SelectionSet)
	}
	return n
}

// randomDocument generates an operation with fragments (some spread many times, some cyclic), aliases,
// inline fragments, introspection fields and nesting.
func randomDocument(r *rand.Rand) string {
	nfrag := r.IntN(12)
	names := []string{"me", "id", "__typename", "__schema", "__type", "login", "sessions", "a", "types", "fields"}
	var set func(depth int) string
	set = func(depth int) string {
		var b strings.Builder
		b.WriteString("{")
		for range 1 + r.IntN(4) {
			switch k := r.IntN(10); {
			case k < 5 || nfrag == 0:
				if r.IntN(3) == 0 {
					fmt.Fprintf(&b, " x%d:", r.IntN(3))
				}
				b.WriteString(" " + names[r.IntN(len(names))])
				if depth < 6 && r.IntN(2) == 0 {
					b.WriteString(" " + set(depth+1))
				}
			case k < 7 && depth < 6:
				b.WriteString(" ... " + set(depth+1))
			default:
				for range 1 + r.IntN(3) {
					fmt.Fprintf(&b, " ...F%d", r.IntN(nfrag))
				}
			}
		}
		b.WriteString(" }")
		return b.String()
	}
	var doc strings.Builder
	doc.WriteString("query " + set(0))
	for i := range nfrag {
		fmt.Fprintf(&doc, " fragment F%d on T %s", i, set(1))
	}
	return doc.String()
}

// Property: whatever the document, the guard's work is linear in its size (at most two visits per
// written selection: each fragment is measured once inside introspection and once outside), however
// large the expanded operation is, and it never panics.
func TestOperationGuardCostIsBoundedByDocumentSize(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(11, 29))
	for i := range 3000 {
		q := randomDocument(r)
		checkGuardBound(t, q)
		if t.Failed() {
			t.Fatalf("document %d: %s", i, q)
		}
	}
}

func checkGuardBound(t *testing.T, query string) {
	t.Helper()
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		return
	}
	m := newMeter(doc.Fragments)
	for _, op := range doc.Operations {
		m.selectionSet(op.SelectionSet, false)
	}
	if limit := 2 * selections(doc); m.visits > limit {
		t.Errorf("%d visits for %d written selections", m.visits, selections(doc))
	}
	m.visits = 0
	_ = (operationGuard{limits: testLimits}).checkWith(m, doc)
	if limit := 2*selections(doc) + maxExpansion + 1; m.visits+m.expansion > limit {
		t.Errorf("check: %d visits + %d expanded for %d written selections", m.visits, m.expansion, selections(doc))
	}
}

// FuzzOperationGuard extends the property to arbitrary documents.
//
//	go test -run='^$' -fuzz=FuzzOperationGuard -fuzztime=1m ./graph/
func FuzzOperationGuard(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 5))
	for range 20 {
		f.Add(randomDocument(r))
	}
	f.Add("{ ...F0 } fragment F0 on Query { ...F1 ...F1 } fragment F1 on Query { __typename }")
	f.Fuzz(func(t *testing.T, query string) { checkGuardBound(t, query) })
}

func TestQueryCacheIsBoundedByBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newQueryCache(100, 1000)
	doc := &ast.QueryDocument{}
	for i := range 50 {
		c.Add(ctx, fmt.Sprintf("%03d", i)+strings.Repeat("x", 97), doc) // 100 bytes each
	}
	if n, b := c.size(); n != 10 || b != 1000 {
		t.Fatalf("entries %d, bytes %d; want 10 entries of 100 bytes", n, b)
	}
	if _, ok := c.Get(ctx, "049"+strings.Repeat("x", 97)); !ok {
		t.Fatal("the newest entry was evicted")
	}
	if _, ok := c.Get(ctx, "000"+strings.Repeat("x", 97)); ok {
		t.Fatal("the oldest entry was kept")
	}
	c.Add(ctx, "049"+strings.Repeat("x", 97), doc) // again: counted once
	c.Add(ctx, strings.Repeat("y", 1001), doc)     // larger than the budget: not cached
	if n, b := c.size(); n != 10 || b != 1000 {
		t.Fatalf("entries %d, bytes %d after re-adding", n, b)
	}
	small := newQueryCache(3, 1<<20)
	for i := range 5 {
		small.Add(ctx, fmt.Sprint(i), doc)
	}
	if n, b := small.size(); n != 3 || b != 3 {
		t.Fatalf("count bound: entries %d, bytes %d", n, b)
	}
}
