package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"gqlauth/graph"
)

// gqlgen's HTTP transports, rewritten from its transport.GET and transport.POST so that the errors a
// transport finds itself (a body over the limit, a batch, a body that is not JSON, undecodable
// variables, a mutation over GET, an unsupported Content-Type) go through the executor's DispatchError
// like every other error: the error presenter gives them their extensions.code from graph's table,
// and the response interceptors (the operation metrics) see them. gqlgen's own transports write these
// errors straight to the client, without a code, and its message for an undecodable body quotes the
// body, passwords included. Everything else (response content type, status codes, how parameters
// are read) follows gqlgen's transports.

// addTransports gives srv its transports. gqlgen picks the first that supports a request, so the
// catch-all comes last; the WebSocket transport (for the upgrades sockets let through) comes first,
// with the operation interceptor that applies the per-socket subscription rules.
func addTransports(srv *handler.Server, maxBody int64, sockets *Sockets) {
	srv.AddTransport(wsTransport{sockets})
	srv.AroundOperations(sockets.aroundOperation)
	srv.AddTransport(getTransport{maxBody: maxBody})
	srv.AddTransport(postTransport{maxBody: maxBody})
	srv.AddTransport(unsupportedTransport{maxBody: maxBody})
}

// getTransport runs queries sent with GET (query or documentId, operationName, variables and
// extensions in the query string).
type getTransport struct{ maxBody int64 }

var _ graphql.Transport = getTransport{}

func (getTransport) Supports(r *http.Request) bool {
	return r.Header.Get("Upgrade") == "" && r.Method == http.MethodGet
}

func (t getTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if refused(w, r, exec, t.maxBody) {
		return
	}
	ctx := r.Context()
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		dispatchError(ctx, w, exec, http.StatusBadRequest, &graph.RequestError{Err: graph.ErrBadRequest, Message: err.Error()})
		return
	}
	w.Header().Set("Content-Type", responseContentType(r))
	raw := &graphql.RawParams{
		Query:         query.Get("query"),
		OperationName: query.Get("operationName"),
		Headers:       r.Header,
	}
	raw.ReadTime.Start = graphql.Now()
	if variables := query.Get("variables"); variables != "" {
		if err := jsonDecode(strings.NewReader(variables), &raw.Variables); err != nil {
			dispatchError(ctx, w, exec, http.StatusBadRequest, &graph.RequestError{Err: graph.ErrBadRequest, Message: "variables could not be decoded"})
			return
		}
	}
	if extensions := query.Get("extensions"); extensions != "" {
		if err := jsonDecode(strings.NewReader(extensions), &raw.Extensions); err != nil {
			dispatchError(ctx, w, exec, http.StatusBadRequest, &graph.RequestError{Err: graph.ErrBadRequest, Message: "extensions could not be decoded"})
			return
		}
	}
	raw.ReadTime.End = graphql.Now()
	if query.Has("documentId") {
		ctx = graph.WithDocumentID(ctx, query.Get("documentId"))
	}
	run(ctx, w, r, exec, raw, true)
}

// postTransport runs operations sent as a JSON object in a POST body.
type postTransport struct{ maxBody int64 }

var _ graphql.Transport = postTransport{}

func (postTransport) Supports(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" || r.Method != http.MethodPost {
		return false
	}
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mediaType == "application/json"
}

func (t postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if refused(w, r, exec, t.maxBody) {
		return
	}
	ctx := r.Context()
	contentType := responseContentType(r)
	w.Header().Set("Content-Type", contentType)
	start := graphql.Now()
	body, err := io.ReadAll(r.Body)
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		// A body sent without Content-Length (chunked) ran past the limit while being read.
		w.Header().Set("Content-Type", "application/json")
		dispatchError(ctx, w, exec, http.StatusRequestEntityTooLarge, tooLarge(mbe.Limit))
		return
	} else if err != nil {
		// The client went away or sent a broken chunk; gqlgen answers this one with status 200.
		dispatchError(ctx, w, exec, http.StatusOK, gqlerror.Errorf("could not read request body: %+v", err))
		return
	}
	// documentId (GraphQL-over-HTTP's persisted documents) has no place in gqlgen's RawParams: it
	// travels to graph's trusted-documents extension in the context.
	var req struct {
		graphql.RawParams
		DocumentID *string `json:"documentId"`
	}
	if err := jsonDecode(bytes.NewReader(body), &req); err != nil {
		dispatchError(ctx, w, exec, http.StatusBadRequest, graph.ErrBodyNotJSON)
		return
	}
	if req.DocumentID != nil {
		ctx = graph.WithDocumentID(ctx, *req.DocumentID)
	}
	params := &req.RawParams
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	run(ctx, w, r, exec, params, false)
}

// unsupportedTransport answers every request that no other transport supports (a POST whose
// Content-Type is not application/json, an Upgrade request) with BAD_REQUEST.
type unsupportedTransport struct{ maxBody int64 }

var _ graphql.Transport = unsupportedTransport{}

func (unsupportedTransport) Supports(*http.Request) bool { return true }

func (t unsupportedTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if refused(w, r, exec, t.maxBody) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	dispatchError(r.Context(), w, exec, http.StatusBadRequest, &graph.RequestError{Err: graph.ErrBadRequest, Message: "transport not supported"})
}

// refused answers, before any transport reads the body, the requests that no transport may run: a
// body whose declared length is over the limit, and a POST whose body is a JSON array (a batch). It
// reports whether it answered.
func refused(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, maxBody int64) bool {
	var err error
	status := http.StatusBadRequest
	switch {
	case r.ContentLength > maxBody:
		status, err = http.StatusRequestEntityTooLarge, tooLarge(maxBody)
	case r.Method == http.MethodPost && startsWithArray(r):
		// A batch could carry many login attempts past per-request limits; gqlgen would refuse it
		// too, but with a message that echoes the body back.
		err = &graph.RequestError{Err: graph.ErrBadRequest,
			Message: "batched requests (a JSON array) are not supported: send one operation per request"}
	default:
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	dispatchError(r.Context(), w, exec, status, err)
	return true
}

func tooLarge(limit int64) error {
	return &graph.RequestError{Err: graph.ErrPayloadTooLarge, Message: fmt.Sprintf("the request body is larger than %d bytes", limit)}
}

// startsWithArray reports whether the first non-space byte of r's body is '['. It peeks without
// consuming: r.Body becomes a buffered reader over the same bytes.
func startsWithArray(r *http.Request) bool {
	br := bufio.NewReaderSize(r.Body, 512)
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}
	for i := 0; ; i++ {
		buf, err := br.Peek(i + 1)
		if err != nil || i >= 511 {
			return false
		}
		switch buf[i] {
		case ' ', '\t', '\r', '\n':
			continue
		case '[':
			return true
		default:
			return false
		}
	}
}

// run creates the operation from raw and executes it, as gqlgen's transports do. Over GET (queryOnly)
// only queries run: a mutation a page could trigger with a link or an image must not.
func run(ctx context.Context, w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, raw *graphql.RawParams, queryOnly bool) {
	opCtx, errs := exec.CreateOperationContext(ctx, raw)
	if errs != nil {
		w.WriteHeader(statusFor(w.Header().Get("Content-Type"), errs))
		writeJSON(w, exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs))
		return
	}
	if queryOnly && opCtx.Operation.Operation != ast.Query {
		// ctx, not the operation's: the refusal is counted under "anonymous", as it always was.
		dispatchError(ctx, w, exec, http.StatusNotAcceptable, &graph.RequestError{Err: graph.ErrBadRequest, Message: "GET requests only allow query operations"})
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, opCtx)
	writeJSON(w, responses(ctx))
}

// dispatchError sends err through the executor (its presenter and response interceptors) and writes
// the response with status. The caller has set the Content-Type.
func dispatchError(ctx context.Context, w http.ResponseWriter, exec graphql.GraphExecutor, status int, err error) {
	resp := exec.DispatchError(ctx, gqlerror.List{gqlerror.WrapIfUnwrapped(err)})
	w.WriteHeader(status)
	writeJSON(w, resp)
}

// statusFor is the status of a response whose operation could not be created (parse, validation or
// variable errors), as gqlgen's transports choose it: 422 for protocol errors (400 when the client
// asked for application/graphql-response+json), 200 for the others.
func statusFor(contentType string, errs gqlerror.List) int {
	if errcode.GetErrorKind(errs) != errcode.KindProtocol {
		return http.StatusOK
	}
	if contentType == graphQLResponseJSON {
		return http.StatusBadRequest
	}
	return http.StatusUnprocessableEntity
}

const graphQLResponseJSON = "application/graphql-response+json"

// responseContentType picks the response's media type from the Accept header as gqlgen's transports
// do by default: application/json when there is none or it takes anything, the first of
// application/json and application/graphql-response+json it names, else the latter.
func responseContentType(r *http.Request) string {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return "application/json"
	}
	for part := range strings.SplitSeq(accept, ",") {
		mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mediaType {
		case "*/*", "application/*", "application/json":
			return "application/json"
		case graphQLResponseJSON:
			return graphQLResponseJSON
		}
	}
	return graphQLResponseJSON
}

// jsonDecode decodes one JSON value, keeping numbers as json.Number (as gqlgen does, so that large
// integers survive).
func jsonDecode(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	return dec.Decode(v)
}

// writeJSON writes resp. A response always marshals (its data is JSON already), so a failure is a bug:
// it panics, and gqlgen's server recovers it into a 500.
func writeJSON(w io.Writer, resp *graphql.Response) {
	b, err := json.Marshal(resp)
	if err != nil {
		panic(fmt.Errorf("unable to marshal %s: %w", string(resp.Data), err))
	}
	_, _ = w.Write(b)
}
