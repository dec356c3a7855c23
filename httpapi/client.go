package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"gqlauth/auth"
)

// BearerToken extracts the token of an Authorization header value "Bearer <token>" (the scheme is
// case-insensitive, RFC 7235). An absent value, or the scheme alone, is auth.ErrTokenMissing; any
// other scheme or shape is auth.ErrTokenInvalid. Pass the result to auth.Service.WithRequest; any
// transport that carries an Authorization value (a header, a graphql-ws connection_init payload) can
// use it.
func BearerToken(authorization string) (string, error) {
	authorization = strings.TrimSpace(authorization)
	if authorization == "" || strings.EqualFold(authorization, "Bearer") {
		return "", auth.ErrTokenMissing
	}
	scheme, tok, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", auth.ErrTokenInvalid
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", auth.ErrTokenMissing
	}
	return tok, nil
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
