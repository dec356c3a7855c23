package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{"  Alice@Example.COM\t", "alice@example.com"},
		{"a.b+tag@sub.example.org", "a.b+tag@sub.example.org"},
		{"", ""}, {"alice", ""}, {"alice@", ""}, {"@example.com", ""}, {"alice@example", ""},
		{"Alice <alice@example.com>", ""}, {"a b@example.com", ""}, {"alice@example.com.", ""},
		{"\"a\"@example.com", ""}, {strings.Repeat("a", 250) + "@example.com", ""},
	} {
		got, err := NormalizeEmail(tc.in)
		var verr *ValidationError
		if tc.want == "" {
			if !errors.As(err, &verr) || verr.Field != "email" {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want a ValidationError for email", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pw string
		ok bool
	}{
		{"1234567", false}, {"12345678", true}, {strings.Repeat("x", 256), true}, {strings.Repeat("x", 257), false},
		{strings.Repeat("é", 8), true}, {strings.Repeat("é", 256), true}, {strings.Repeat("é", 257), false},
	} {
		err := ValidatePassword("password", tc.pw)
		if (err == nil) != tc.ok {
			t.Errorf("ValidatePassword(%d runes) = %v, want ok=%v", len([]rune(tc.pw)), err, tc.ok)
		}
	}
}
