package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, tc := range []struct {
		name, remote, xff string
		trusted           []netip.Prefix
		want              string
	}{
		{"direct client", "203.0.113.9:4711", "", trusted, "203.0.113.9"},
		{"untrusted peer's X-Forwarded-For is ignored", "203.0.113.9:4711", "198.51.100.1", trusted, "203.0.113.9"},
		{"no trusted proxies", "127.0.0.1:4711", "198.51.100.1", nil, "127.0.0.1"},
		{"trusted proxy", "127.0.0.1:4711", "198.51.100.1", trusted, "198.51.100.1"},
		{"the last untrusted hop counts", "127.0.0.1:4711", "192.0.2.1, 198.51.100.1", trusted, "198.51.100.1"},
		{"our own proxies are skipped", "127.0.0.1:4711", "198.51.100.1, 10.1.2.3", trusted, "198.51.100.1"},
		{"a garbled hop stops the walk", "127.0.0.1:4711", "198.51.100.1, garbage, 10.1.2.3", trusted, "10.1.2.3"},
		{"only trusted hops", "127.0.0.1:4711", "10.1.2.3", trusted, "10.1.2.3"},
		{"IPv4-mapped IPv6 peer", "[::ffff:203.0.113.9]:4711", "", trusted, "203.0.113.9"},
		{"IPv6 behind an IPv6 proxy", "[fd00::1]:4711", "2001:db8::7", trusted, "2001:db8::7"},
		{"no port", "203.0.113.9", "", trusted, "203.0.113.9"},
		{"not an address", "pipe", "", trusted, "pipe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := clientIP(r, tc.trusted); got != tc.want {
				t.Errorf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
}
