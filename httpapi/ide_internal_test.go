package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A Host header that could end the connect-src directive never reaches the CSP.
func TestIDEHeadersHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host, wantConnect string
	}{
		{"localhost:8080", "connect-src 'self' ws://localhost:8080 wss://localhost:8080"},
		{"[::1]:8080", "connect-src 'self' ws://[::1]:8080 wss://[::1]:8080"},
		{"evil;script-src *", "connect-src 'self'"},
		{"a b", "connect-src 'self'"},
		{"", "connect-src 'self'"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = tc.host
		w := httptest.NewRecorder()
		ideHeaders(http.NotFoundHandler()).ServeHTTP(w, r)
		csp := w.Header().Get("Content-Security-Policy")
		if !strings.HasSuffix(csp, "; "+tc.wantConnect) || strings.Count(csp, "script-src") != 1 {
			t.Errorf("Host %q: CSP %q, want it to end with %q", tc.host, csp, tc.wantConnect)
		}
	}
}
