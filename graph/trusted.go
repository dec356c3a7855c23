package graph

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// Trusted documents (persisted documents) and Apollo's automatic persisted queries (APQ).
//
// A request may name its document by hash instead of sending its text, in two forms: Apollo's
// extensions.persistedQuery {version: 1, sha256Hash: "<64 hex>"} (HTTP POST and GET, and the
// graphql-ws subscribe payload), and GraphQL-over-HTTP's documentId ("sha256:<64 hex>", a top-level
// body field or GET parameter, which the HTTP transports put in the context with WithDocumentID).
// The hash is looked up in the manifest (the trusted documents), then, outside require mode, among the
// documents registered by APQ. persistedDocuments does this as a gqlgen extension that runs before
// any other: before the operation limits parse the document, and for every transport, since each of
// them creates its operations through the executor.

// TrustedMode is what the server does with operations that are not in the manifest.
type TrustedMode string

// The modes (TRUSTED_DOCUMENTS).
const (
	// TrustedOff runs any operation; hashes are looked up in the manifest (if any), then APQ.
	TrustedOff TrustedMode = "off"
	// TrustedAllow runs any operation, but counts those whose document is not in the manifest
	// (Persisted.OnUntrusted): the step before require, to find the clients that would break.
	TrustedAllow TrustedMode = "allow"
	// TrustedRequire runs only the manifest's documents, refusing any other with
	// OPERATION_NOT_TRUSTED before it is parsed; APQ registers nothing.
	TrustedRequire TrustedMode = "require"
)

// Persisted configures trusted documents and APQ (Options.Persisted). The zero value is mode off,
// no manifest and no APQ: a hash-only request gets PERSISTED_QUERY_NOT_FOUND, and a hash sent with
// its query is checked against the query, which then runs.
type Persisted struct {
	Mode TrustedMode // "" means TrustedOff
	// Manifest holds the trusted documents; nil means none (allowed only in mode off).
	Manifest *Manifest
	// APQ, if set, keeps the documents that clients register by sending a hash with its query
	// (modes off and allow). Only documents that parsed and validated are added.
	APQ DocumentCache
	// MaxAPQBytes is the longest document APQ registers; a longer one runs but is not kept. 0 means
	// DefaultMaxAPQBytes.
	MaxAPQBytes int
	// OnUntrusted, if set, is called once for each operation that runs in mode allow although its
	// document is not in the manifest. It must be fast.
	OnUntrusted func()
}

// DefaultMaxAPQBytes is Persisted.MaxAPQBytes's default.
const DefaultMaxAPQBytes = 8 << 10

// DocumentCache is where APQ keeps registered documents, by the lower-case hex SHA-256 of their
// text. It must be bounded and safe for concurrent use; a failing cache (Redis down) misses.
type DocumentCache interface {
	Get(ctx context.Context, hash string) (doc string, ok bool)
	Add(ctx context.Context, hash, doc string)
}

// Manifest is a set of trusted documents, by the SHA-256 of their text.
type Manifest struct {
	docs map[string]string // lower-case hex SHA-256 → document
}

// ParseManifest reads a manifest as graphql-codegen's client preset writes it with
// persistedDocuments (persisted-documents.json): a JSON object of hash → document, each hash
// "sha256:<64 hex digits>" (the preset's default, GraphQL-over-HTTP's document identifier) or 64 bare
// hex digits (a custom hashAlgorithm function). Every document must hash to its key and parse; an
// empty manifest is refused (it would refuse every operation).
func ParseManifest(data []byte) (*Manifest, error) {
	var raw map[string]string
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("trusted documents: not a JSON object of hash → document: %w", err)
	}
	if len(raw) == 0 {
		return nil, errors.New("trusted documents: the manifest holds no documents")
	}
	m := &Manifest{docs: make(map[string]string, len(raw))}
	for key, doc := range raw {
		hash, ok := parseHash(key, true)
		if !ok {
			return nil, fmt.Errorf("trusted documents: key %q is not a SHA-256 hash (sha256:<64 hex digits>); set hashAlgorithm: 'sha256' in the client preset", clip(key))
		}
		if sum := hashOf(doc); sum != hash {
			return nil, fmt.Errorf("trusted documents: the document under %s hashes to %s: the manifest was edited or is corrupt; regenerate it", clip(key), sum)
		}
		if _, err := parser.ParseQuery(&ast.Source{Input: doc}); err != nil {
			return nil, fmt.Errorf("trusted documents: the document under %s does not parse: %w", clip(key), err)
		}
		m.docs[hash] = doc
	}
	return m, nil
}

// Len is the number of documents in m.
func (m *Manifest) Len() int {
	if m == nil {
		return 0
	}
	return len(m.docs)
}

func (m *Manifest) lookup(hash string) (string, bool) {
	if m == nil {
		return "", false
	}
	doc, ok := m.docs[hash]
	return doc, ok
}

// hashOf is the lower-case hex SHA-256 of doc.
func hashOf(doc string) string {
	sum := sha256.Sum256([]byte(doc))
	return hex.EncodeToString(sum[:])
}

// parseHash returns the lower-case hex digits of a SHA-256 hash written as 64 hex digits or, when
// prefixed is set, also as "sha256:" and 64 hex digits. Anything else (a SHA-1, a long string) is
// refused before it is used as a key anywhere.
func parseHash(s string, prefixed bool) (string, bool) {
	if prefixed {
		s = strings.TrimPrefix(s, "sha256:")
	}
	if len(s) != sha256.Size*2 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// clip shortens what a manifest holds for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

type documentIDKey struct{}

// WithDocumentID returns ctx carrying the documentId of a GraphQL-over-HTTP request (a top-level body
// field or GET parameter, which gqlgen's RawParams has no place for); the HTTP transports call it
// before they create the operation.
func WithDocumentID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, documentIDKey{}, id)
}

// persistedDocuments is the gqlgen extension of trusted documents and APQ (see the top of this file).
// It must be registered before operationGuard, which parses the query it may fill in.
type persistedDocuments struct{ Persisted }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.OperationContextMutator
} = persistedDocuments{}

func (persistedDocuments) ExtensionName() string { return "PersistedDocuments" }

func (persistedDocuments) Validate(graphql.ExecutableSchema) error { return nil }

// apqRegistration is a document to register once it has parsed and validated (Stats extension).
type apqRegistration struct{ hash, doc string }

const apqStat = "gqlauth.apq"

func (p persistedDocuments) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	hash, byID, gerr := requestedHash(ctx, params)
	if gerr != nil {
		return gerr
	}
	if hash == "" {
		if params.Query == "" {
			return nil // gqlgen answers "no operation provided"
		}
		return p.adHoc(params.Query, "")
	}
	if params.Query == "" {
		if doc, ok := p.Manifest.lookup(hash); ok {
			params.Query = doc
			return nil
		}
		if p.Mode != TrustedRequire && p.APQ != nil {
			if doc, ok := p.APQ.Get(ctx, hash); ok {
				p.untrusted()
				params.Query = doc
				return nil
			}
		}
		// Apollo's code and message: its clients then send the hash again with the query.
		return codedError(ErrPersistedQueryNotFound)
	}
	if byID {
		return codedError(&RequestError{Err: ErrBadRequest, Message: "send either documentId or query, not both"})
	}
	if hashOf(params.Query) != hash {
		return codedError(&RequestError{Err: ErrBadRequest, Message: "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query"})
	}
	if err := p.adHoc(params.Query, hash); err != nil {
		return err
	}
	if _, trusted := p.Manifest.lookup(hash); !trusted && p.APQ != nil && len(params.Query) <= p.maxAPQBytes() {
		// Registered only once the document has parsed and validated (MutateOperationContext).
		graphql.GetOperationContext(ctx).Stats.SetExtension(apqStat, &apqRegistration{hash: hash, doc: params.Query})
	}
	return nil
}

func (p persistedDocuments) maxAPQBytes() int {
	if p.MaxAPQBytes <= 0 {
		return DefaultMaxAPQBytes
	}
	return p.MaxAPQBytes
}

// adHoc decides on a request that sent its document's text (hash: its verified hash, or "").
func (p persistedDocuments) adHoc(query, hash string) *gqlerror.Error {
	if p.Mode == TrustedOff && hash == "" {
		return nil // nothing to count or register: skip hashing the text
	}
	if hash == "" {
		hash = hashOf(query)
	}
	if _, ok := p.Manifest.lookup(hash); ok {
		return nil // the text of a trusted document is as good as its hash
	}
	if p.Mode == TrustedRequire {
		return codedError(ErrOperationNotTrusted)
	}
	p.untrusted()
	return nil
}

func (p persistedDocuments) untrusted() {
	if p.Mode == TrustedAllow && p.OnUntrusted != nil {
		p.OnUntrusted()
	}
}

// MutateOperationContext registers an APQ document once gqlgen has parsed and validated it (and
// operationGuard has measured it), so the cache only ever holds documents that run.
func (p persistedDocuments) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	if reg, ok := opCtx.Stats.GetExtension(apqStat).(*apqRegistration); ok && reg.doc == opCtx.RawQuery {
		p.APQ.Add(ctx, reg.hash, reg.doc)
	}
	return nil
}

// requestedHash is the hash a request names its document by ("" for none), and whether it came as
// a documentId. A malformed persistedQuery extension or documentId is a BAD_REQUEST.
func requestedHash(ctx context.Context, params *graphql.RawParams) (hash string, byID bool, _ *gqlerror.Error) {
	pq, hasPQ := params.Extensions["persistedQuery"]
	if id, ok := ctx.Value(documentIDKey{}).(string); ok {
		if hasPQ {
			return "", false, codedError(&RequestError{Err: ErrBadRequest, Message: "send either documentId or extensions.persistedQuery, not both"})
		}
		h, ok := parseHash(id, true)
		if !ok {
			return "", false, codedError(&RequestError{Err: ErrBadRequest, Message: "documentId must be sha256:<64 hex digits>"})
		}
		return h, true, nil
	}
	if !hasPQ || pq == nil {
		return "", false, nil
	}
	ext, ok := pq.(map[string]any)
	if !ok {
		return "", false, codedError(&RequestError{Err: ErrBadRequest, Message: "extensions.persistedQuery must be an object"})
	}
	if v := fmt.Sprint(ext["version"]); v != "1" {
		return "", false, codedError(&RequestError{Err: ErrBadRequest, Message: "extensions.persistedQuery.version must be 1"})
	}
	s, _ := ext["sha256Hash"].(string)
	h, ok := parseHash(s, false)
	if !ok {
		return "", false, codedError(&RequestError{Err: ErrBadRequest, Message: "extensions.persistedQuery.sha256Hash must be 64 hex digits"})
	}
	return h, false, nil
}
