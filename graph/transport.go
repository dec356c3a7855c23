package graph

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"gqlauth/graph/model"
)

// HTTP-level helpers of the GraphQL endpoint: body limits, batch refusal, client IP, and codes for
// the errors gqlgen's transports write themselves.

func tooLargeMessage(max int64) string {
	return fmt.Sprintf("the request body is larger than %d bytes", max)
}

// writeError writes a GraphQL-shaped error response.
func writeError(w http.ResponseWriter, status int, code model.ErrorCode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{"message": msg, "extensions": map[string]any{"code": string(code)}}},
		"data":   nil,
	})
}

// limitedBody remembers whether the body hit its size cap, so the response can say 413.
type limitedBody struct {
	io.ReadCloser
	br       *bufio.Reader
	tooLarge bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	var n int
	var err error
	if b.br != nil {
		n, err = b.br.Read(p)
	} else {
		n, err = b.ReadCloser.Read(p)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		b.tooLarge = true
	}
	return n, err
}

// startsWithArray peeks at the first non-space byte of the body without consuming it.
func startsWithArray(b *limitedBody) bool {
	b.br = bufio.NewReaderSize(b.ReadCloser, 512)
	for i := 0; ; i++ {
		buf, err := b.br.Peek(i + 1)
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

// clientIP is the socket's peer address or, when the peer is a trusted proxy, the nearest address in
// X-Forwarded-For that is not itself a trusted proxy. Anyone can send X-Forwarded-For, so it is read
// only from the proxies the operator listed; otherwise a client could pick its own rate-limit key.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = strings.TrimSpace(r.RemoteAddr)
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		addr, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a garbled hop: trust nothing to its left
		}
		addr = addr.Unmap()
		if !isTrusted(addr, trusted) {
			return addr.String()
		}
		peer = addr
	}
	return peer.String()
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// codedErrorWriter gives a code to the few errors that gqlgen's transports write themselves, before
// any resolver or presenter runs (a mutation over GET, undecodable variables, an unsupported
// Content-Type), so that every error a client sees carries extensions.code. Such responses always have
// an error status, so successful responses pass straight through, unbuffered.
type codedErrorWriter struct {
	http.ResponseWriter
	status  int
	buf     *bytes.Buffer
	sent    bool // the header went out unbuffered
	body    *limitedBody
	maxBody int64
}

func (w *codedErrorWriter) WriteHeader(status int) {
	if w.buf != nil || w.sent {
		return
	}
	// gqlgen answers an over-long chunked body with 200 and its own message: rewrite that too.
	if status >= 400 || (w.body != nil && w.body.tooLarge) {
		w.status, w.buf = status, new(bytes.Buffer)
		return
	}
	w.sent = true
	w.ResponseWriter.WriteHeader(status)
}

func (w *codedErrorWriter) Write(b []byte) (int, error) {
	if w.buf == nil && !w.sent {
		w.WriteHeader(http.StatusOK)
	}
	if w.buf != nil {
		return w.buf.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// finish sends a buffered error response, rewritten as needed, and returns its first error's code
// ("" when nothing was buffered, or the body is not a GraphQL error response).
func (w *codedErrorWriter) finish() (code string) {
	if w.buf == nil {
		return ""
	}
	if w.body != nil && w.body.tooLarge {
		w.Header().Del("Content-Length")
		writeError(w.ResponseWriter, http.StatusRequestEntityTooLarge, model.ErrorCodePayloadTooLarge, tooLargeMessage(w.maxBody))
		return string(model.ErrorCodePayloadTooLarge)
	}
	body := w.buf.Bytes()
	var resp struct {
		Errors []map[string]any `json:"errors"`
		Data   json.RawMessage  `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err == nil && len(resp.Errors) > 0 {
		changed := false
		for _, e := range resp.Errors {
			ext, _ := e["extensions"].(map[string]any)
			if ext == nil {
				ext = map[string]any{}
				e["extensions"] = ext
			}
			if ext["code"] == nil {
				ext["code"] = string(model.ErrorCodeBadRequest)
				changed = true
			}
			// gqlgen's message for undecodable JSON quotes the whole body, passwords included.
			if msg, _ := e["message"].(string); strings.HasPrefix(msg, "json request body could not be decoded") {
				e["message"] = "the request body is not valid JSON"
				changed = true
			}
		}
		if ext, ok := resp.Errors[0]["extensions"].(map[string]any); ok {
			code, _ = ext["code"].(string)
		}
		if changed {
			if b, err := json.Marshal(resp); err == nil {
				body = b
				w.Header().Del("Content-Length")
			}
		}
	}
	w.ResponseWriter.WriteHeader(w.status)
	_, _ = w.ResponseWriter.Write(body)
	return code
}
