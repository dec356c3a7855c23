package graph

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"gqlauth/graph/model"
)

// Limits bound the work one GraphQL document may cause before any resolver runs. They are checked by
// operationGuard on the parsed document, before gqlgen validates it, so that neither validation nor
// execution ever sees a document that could cost more than its size suggests.
type Limits struct {
	// MaxTokens caps the lexical tokens of a document; parsing stops there.
	MaxTokens int
	// MaxDepth caps field nesting, fragments expanded (introspection included).
	MaxDepth int
	// MaxComplexity caps the fields an operation selects once every fragment spread is expanded, one
	// point per field, aliases included; introspection fields are counted apart (MaxIntrospection).
	MaxComplexity int
	// MaxIntrospection caps the expanded fields under __schema and __type. One __schema per operation.
	MaxIntrospection int
	// Introspection allows __schema and __type at all (development).
	Introspection bool
}

// Defaults of the limits.
const (
	DefaultMaxDepth      = 15
	DefaultMaxComplexity = 200
	DefaultMaxTokens     = 2000
	// DefaultMaxIntrospection leaves room for the IDEs' full introspection query (gqlgen's and
	// graphql-js's expand to about 230 fields) and refuses what only serves to inflate a response.
	DefaultMaxIntrospection = 500
	// maxOverlap caps the pairs of fields that share a response path (the sum over paths of k², k
	// fields at the path, fragments expanded). gqlparser's OverlappingFieldsCanBeMerged compares each
	// such pair, recursively, so `{ __typename __typename … }` or many composite fields of one name cost
	// quadratic time: about 0.3 µs a pair. An ordinary operation has one field per path (k² = 1 each);
	// the IDEs' introspection query sums to 226.
	maxOverlap = 1000
	// maxExpansion caps the selections that the overlap count visits with fragments expanded. judge has
	// bounded the expanded fields by then, but a long chain of fragments that only spread the next one
	// would still be walked once per field; nothing legitimate comes near (the introspection query: 300).
	maxExpansion = 20000
	// saturated is where counts stop growing: a fragment bomb's true count (2^n) would overflow.
	saturated = 1 << 40
)

// credentialList are the root fields that check a secret (a password, a refresh token, the token of
// a mailed link, a TOTP or recovery code, a passkey assertion), hash a password, or begin a ceremony
// that stores a challenge. One operation may hold at most one of them, so aliases cannot pack many
// guesses, many argon2id hashes or many stored challenges into one request.
var credentialList = []string{
	"login", "register", "refreshToken", "changePassword", "resetPassword", "changeEmail", "verifyEmail",
	"verifyMfa", "reauthenticate", "startTotpEnrollment", "confirmTotpEnrollment", "disableTotp",
	"regenerateRecoveryCodes", "beginPasskeyRegistration", "finishPasskeyRegistration", "beginPasskeyLogin",
	"finishPasskeyLogin",
}

var credentialFields = func() map[string]bool {
	m := make(map[string]bool, len(credentialList))
	for _, f := range credentialList {
		m[f] = true
	}
	return m
}()

var credentialMessage = "an operation may contain only one of " + strings.Join(credentialList, ", ") + "; this one has %s"

// operationGuard is a gqlgen extension that checks the raw query before gqlgen parses and validates
// it: it parses the document itself under the token limit, then measures every operation in one
// pass that visits each fragment definition once however often it is spread (a fragment whose
// spreads double at every level is 2^n fields but n visits), and refuses a document that is too
// deep, too costly, repeats a response name too often, uses introspection where it is disabled, or
// holds more than one credential field. A document already in the query cache passed these checks
// when it was added (the limits do not change), so it is not parsed again.
type operationGuard struct {
	limits Limits
	cache  graphql.Cache[*ast.QueryDocument]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = operationGuard{}

func (operationGuard) ExtensionName() string { return "OperationGuard" }

func (operationGuard) Validate(graphql.ExecutableSchema) error { return nil }

func (g operationGuard) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	if params.Query == "" {
		return nil // gqlgen answers "no operation provided"
	}
	if g.cache != nil {
		if _, ok := g.cache.Get(ctx, params.Query); ok {
			return nil
		}
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: params.Query}, g.limits.MaxTokens)
	if err != nil {
		var gqlErr *gqlerror.Error
		if !errors.As(err, &gqlErr) {
			gqlErr = gqlerror.Wrap(err)
		}
		if strings.HasPrefix(gqlErr.Message, "exceeded token limit") {
			return limitError(model.ErrorCodeComplexityLimitExceeded,
				"the document has more than %d tokens, the limit", g.limits.MaxTokens)
		}
		errcode.Set(gqlErr, errcode.ParseFailed)
		return gqlErr
	}
	return g.check(doc)
}

// check measures every operation of doc against the limits. The first violation is returned.
func (g operationGuard) check(doc *ast.QueryDocument) *gqlerror.Error {
	return g.checkWith(newMeter(doc.Fragments), doc)
}

func (g operationGuard) checkWith(m *meter, doc *ast.QueryDocument) *gqlerror.Error {
	for _, op := range doc.Operations {
		c := m.selectionSet(op.SelectionSet, false)
		if m.cycle {
			// Validation refuses fragment cycles with a precise message; the counts mean nothing.
			return nil
		}
		if err := g.judge(c); err != nil {
			return err
		}
		// Only now is the operation known to be small enough to expand (the budget is the document's).
		n := m.overlap([]ast.SelectionSet{op.SelectionSet}, 0)
		switch {
		case m.expansion > maxExpansion:
			return limitError(model.ErrorCodeComplexityLimitExceeded,
				"the document's fragments expand to more than %d selections", maxExpansion)
		case n > maxOverlap:
			return limitError(model.ErrorCodeComplexityLimitExceeded,
				"too many fields share a response name: more than %d pairs to compare", maxOverlap)
		}
	}
	return nil
}

func (g operationGuard) judge(c cost) *gqlerror.Error {
	l := g.limits
	switch {
	case c.introspection > 0 && !l.Introspection:
		// A client error without a log line: in production anyone may probe for the schema.
		return limitError(model.ErrorCodeGraphqlValidationFailed, "introspection is disabled on this server")
	case c.depth > l.MaxDepth:
		return limitError(model.ErrorCodeDepthLimitExceeded,
			"operation is nested %s levels deep, more than the limit of %d", count(c.depth), l.MaxDepth)
	case c.fields > l.MaxComplexity:
		return limitError(model.ErrorCodeComplexityLimitExceeded,
			"operation has complexity %s, which exceeds the limit of %d", count(c.fields), l.MaxComplexity)
	case c.schemas > 1:
		return limitError(model.ErrorCodeComplexityLimitExceeded, "an operation may select __schema only once")
	case c.introspection > l.MaxIntrospection:
		return limitError(model.ErrorCodeComplexityLimitExceeded,
			"operation selects %s introspection fields, more than the limit of %d", count(c.introspection), l.MaxIntrospection)
	case c.credentials > 1:
		return limitError(model.ErrorCodeBadRequest, credentialMessage, count(c.credentials))
	}
	return nil
}

func limitError(code model.ErrorCode, format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	errcode.Set(err, string(code))
	return err
}

// count prints a saturated count as a lower bound.
func count(n int) string {
	if n >= saturated {
		return fmt.Sprintf("more than %d", saturated)
	}
	return fmt.Sprint(n)
}

// cost is what a selection set costs, its fragment spreads expanded.
type cost struct {
	fields        int // fields outside introspection
	introspection int // fields under __schema or __type (those two included)
	schemas       int // __schema fields
	depth         int // field levels, this one included
	credentials   int // credential fields at this level (meaningful at the root)
}

func (c *cost) add(o cost) {
	c.fields = sat(c.fields + o.fields)
	c.introspection = sat(c.introspection + o.introspection)
	c.schemas = sat(c.schemas + o.schemas)
	c.credentials = sat(c.credentials + o.credentials)
	c.depth = max(c.depth, o.depth)
}

func sat(n int) int { return min(n, saturated) }

// meter computes costs, each fragment once per context (inside introspection or not): the work is
// linear in the size of the document. visits counts the selections the memoized pass looks at,
// expansion those the overlap count looks at (for the bounds and for tests).
type meter struct {
	frags     ast.FragmentDefinitionList
	memo      map[fragKey]cost
	active    map[fragKey]bool
	cycle     bool
	visits    int
	expansion int
}

type fragKey struct {
	name  string
	intro bool
}

func newMeter(frags ast.FragmentDefinitionList) *meter {
	return &meter{frags: frags, memo: map[fragKey]cost{}, active: map[fragKey]bool{}}
}

// selectionSet is the cost of set, whose fields are introspection fields when intro is set.
func (m *meter) selectionSet(set ast.SelectionSet, intro bool) cost {
	var c cost
	m.walk(set, intro, &c)
	return c
}

// walk adds the cost of set's selections to c.
func (m *meter) walk(set ast.SelectionSet, intro bool, c *cost) {
	for _, sel := range set {
		m.visits++
		switch s := sel.(type) {
		case *ast.Field:
			inner := intro || s.Name == "__schema" || s.Name == "__type"
			child := m.selectionSet(s.SelectionSet, inner)
			child.depth++
			child.credentials = 0 // only this level's credential fields matter
			if inner {
				child.introspection = sat(child.introspection + 1)
			} else {
				child.fields = sat(child.fields + 1)
			}
			if !intro && s.Name == "__schema" {
				child.schemas = sat(child.schemas + 1)
			}
			if credentialFields[s.Name] {
				child.credentials = 1
			}
			c.add(child)
		case *ast.InlineFragment:
			m.walk(s.SelectionSet, intro, c)
		case *ast.FragmentSpread:
			c.add(m.fragment(s.Name, intro))
		}
	}
}

// overlap is the number of pairs of fields that share a response path below the merged selection
// sets: the sum over response names of k², k the fields of that name (inline fragments and fragment
// spreads expanded), plus the same below each name over its fields' merged selection sets. It
// expands fragments, so it runs only on an operation whose expanded size judge has bounded; it stops
// counting past maxOverlap.
func (m *meter) overlap(sets []ast.SelectionSet, sum int) int {
	type group struct {
		k    int
		subs []ast.SelectionSet
	}
	var order []string
	groups := map[string]*group{}
	var collect func(ast.SelectionSet)
	collect = func(set ast.SelectionSet) {
		for _, sel := range set {
			if m.expansion++; m.expansion > maxExpansion {
				return
			}
			switch s := sel.(type) {
			case *ast.Field:
				name := s.Alias
				if name == "" {
					name = s.Name
				}
				g := groups[name]
				if g == nil {
					g = &group{}
					groups[name] = g
					order = append(order, name)
				}
				g.k++
				if len(s.SelectionSet) > 0 {
					g.subs = append(g.subs, s.SelectionSet)
				}
			case *ast.InlineFragment:
				collect(s.SelectionSet)
			case *ast.FragmentSpread:
				if def := m.frags.ForName(s.Name); def != nil {
					collect(def.SelectionSet)
				}
			}
		}
	}
	for _, set := range sets {
		collect(set)
	}
	for _, name := range order {
		g := groups[name]
		if sum += g.k * g.k; sum > maxOverlap || m.expansion > maxExpansion {
			return sum
		}
		if len(g.subs) > 0 {
			if sum = m.overlap(g.subs, sum); sum > maxOverlap || m.expansion > maxExpansion {
				return sum
			}
		}
	}
	return sum
}

// fragment is the memoized cost of a named fragment. An unknown fragment costs nothing (validation
// refuses it); a cycle sets m.cycle (validation refuses it too).
func (m *meter) fragment(name string, intro bool) cost {
	k := fragKey{name, intro}
	if c, ok := m.memo[k]; ok {
		return c
	}
	def := m.frags.ForName(name)
	if def == nil {
		return cost{}
	}
	if m.active[k] {
		m.cycle = true
		return cost{}
	}
	m.active[k] = true
	c := m.selectionSet(def.SelectionSet, intro)
	delete(m.active, k)
	m.memo[k] = c
	return c
}
