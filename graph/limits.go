package graph

import (
	"context"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"gqlauth/graph/model"
)

// credentialFields are the root fields that check a secret (a password or a refresh token). One
// operation may hold at most one of them, so aliases cannot pack many guesses into one request.
var credentialFields = map[string]bool{"login": true, "register": true, "refreshToken": true, "changePassword": true}

// operationGuard is a gqlgen extension that refuses, after validation and before execution, an
// operation that is nested deeper than maxDepth or holds more than one credential field.
type operationGuard struct {
	maxDepth int
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = operationGuard{}

func (operationGuard) ExtensionName() string { return "OperationGuard" }

func (operationGuard) Validate(graphql.ExecutableSchema) error { return nil }

func (g operationGuard) MutateOperationContext(_ context.Context, op *graphql.OperationContext) *gqlerror.Error {
	if op.Operation == nil {
		return nil
	}
	if d := depth(op.Operation.SelectionSet, op.Doc.Fragments, 0); g.maxDepth > 0 && d > g.maxDepth {
		err := gqlerror.Errorf("operation is nested %d levels deep, more than the limit of %d", d, g.maxDepth)
		errcode.Set(err, string(model.ErrorCodeDepthLimitExceeded))
		return err
	}
	var found []string
	rootFields(op.Operation.SelectionSet, op.Doc.Fragments, func(name string) {
		if credentialFields[name] {
			found = append(found, name)
		}
	})
	if len(found) > 1 {
		err := gqlerror.Errorf("an operation may contain only one of login, register, refreshToken and changePassword; this one has %d (%s)",
			len(found), strings.Join(found, ", "))
		errcode.Set(err, string(model.ErrorCodeBadRequest))
		return err
	}
	return nil
}

// depth is the deepest field nesting of set; fragments count as their fields (validation has already
// rejected fragment cycles, and seen guards anyway).
func depth(set ast.SelectionSet, frags ast.FragmentDefinitionList, level int) int {
	max := level
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			d = depth(s.SelectionSet, frags, level+1)
		case *ast.InlineFragment:
			d = depth(s.SelectionSet, frags, level)
		case *ast.FragmentSpread:
			if f := frags.ForName(s.Name); f != nil && level < 1000 {
				d = depth(f.SelectionSet, frags, level)
			}
		}
		if d > max {
			max = d
		}
	}
	return max
}

// rootFields calls fn with the name of every root field of set, looking through fragments. Fields
// under @skip or @include are counted too: counting them is the safe side.
func rootFields(set ast.SelectionSet, frags ast.FragmentDefinitionList, fn func(string)) {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			fn(s.Name)
		case *ast.InlineFragment:
			rootFields(s.SelectionSet, frags, fn)
		case *ast.FragmentSpread:
			if f := frags.ForName(s.Name); f != nil {
				rootFields(f.SelectionSet, frags, fn)
			}
		}
	}
}
