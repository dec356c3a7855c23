package httpapi

import (
	"net/http"
	"strings"
)

// ideCSP is the Content-Security-Policy of the embedded IDE (GET / and its assets in development).
// Everything comes from this origin; no inline or evaluated script runs. The exceptions are the ones
// GraphiQL needs, each named below:
//   - style-src 'unsafe-inline': Monaco (GraphiQL's editor) injects <style> elements for its themes and
//     decorations at run time, and React, Radix and framer-motion set style attributes. Styles cannot
//     run code; scripts stay 'self' only.
//   - font-src and img-src data:: GraphiQL's and Monaco's CSS carry their icon fonts and a few images
//     as data: URLs (bundled, not fetched).
//   - worker-src 'self': Monaco's language workers are files of this origin (assets/*.worker-*.js).
//   - connect-src: the GraphQL endpoint over fetch ('self') and its graphql-ws WebSocket (ws: or wss:
//     on this host; added explicitly because CSP Level 2 browsers do not count ws: as 'self').
const ideCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"font-src 'self' data:; img-src 'self' data:; worker-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// ideHeaders sets the IDE's security headers on every response of h: the CSP (with the WebSocket
// origin of the request's host), no MIME sniffing, no framing, no referrer.
func ideHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		connect := "connect-src 'self'"
		if validHost(r.Host) {
			connect += " ws://" + r.Host + " wss://" + r.Host
		}
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", ideCSP+"; "+connect)
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// validHost reports whether host is safe to put in the CSP as a source: a name or address and an
// optional port, nothing that could end the directive (the Host header may hold ';' or ',').
func validHost(host string) bool {
	if host == "" || len(host) > 255 {
		return false
	}
	return strings.IndexFunc(host, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c))
	}) < 0
}
