package ratelimit

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	valid := []struct {
		in   string
		want Rate
		str  string
	}{
		{"10/15m", Rate{Limit: 10, Window: 15 * time.Minute}, "10/15m0s"},
		{"300/15m", Rate{Limit: 300, Window: 15 * time.Minute}, "300/15m0s"},
		{"1000/1h", Rate{Limit: 1000, Window: time.Hour}, "1000/1h0m0s"},
		{"1/1s", Rate{Limit: 1, Window: time.Second}, "1/1s"},
		{"off", Rate{}, "off"},
		{"OFF", Rate{}, "off"},
		{"Off", Rate{}, "off"},
	}
	for _, tc := range valid {
		t.Run("valid/"+tc.in, func(t *testing.T) {
			got, err := ParseRate(tc.in)
			if err != nil {
				t.Fatalf("ParseRate(%q) error: %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseRate(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if s := got.String(); s != tc.str {
				t.Fatalf("String() = %q, want %q", s, tc.str)
			}
			// String must round-trip so a logged config can be pasted back.
			back, err := ParseRate(got.String())
			if err != nil || back != got {
				t.Fatalf("round trip of %q = %+v, %v", got.String(), back, err)
			}
			if got.Enabled() != (tc.want != Rate{}) {
				t.Fatalf("Enabled() = %v", got.Enabled())
			}
		})
	}

	invalid := []string{"", "10", "0/1m", "-1/1m", "10/0s", "10/500ms", "x/1m", "10/abc", "10/15m/3", "/1m", "10/", "10/-1m"}
	for _, in := range invalid {
		t.Run("invalid/"+in, func(t *testing.T) {
			got, err := ParseRate(in)
			if err == nil {
				t.Fatalf("ParseRate(%q) = %+v, want error", in, got)
			}
			if !strings.Contains(err.Error(), `"`+in+`"`) {
				t.Fatalf("error %q does not name the input %q", err, in)
			}
		})
	}
}

func TestRateEnabled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		r    Rate
		want bool
	}{
		{Rate{}, false},
		{Rate{Limit: 1}, false},
		{Rate{Window: time.Minute}, false},
		{Rate{Limit: -1, Window: time.Minute}, false},
		{Rate{Limit: 1, Window: time.Minute}, true},
	} {
		t.Run(fmt.Sprintf("%d_per_%s", tc.r.Limit, tc.r.Window), func(t *testing.T) {
			if got := tc.r.Enabled(); got != tc.want {
				t.Fatalf("%+v.Enabled() = %v, want %v", tc.r, got, tc.want)
			}
		})
	}
}
