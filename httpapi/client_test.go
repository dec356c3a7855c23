package httpapi_test

import (
	"errors"
	"testing"

	"gqlauth/auth"
	"gqlauth/httpapi"
)

func TestBearerToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header, token string
		err           error
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", nil},
		{"bearer abc", "abc", nil}, // the scheme is case-insensitive (RFC 7235)
		{"BEARER   abc  ", "abc", nil},
		{"  Bearer abc", "abc", nil},
		{"", "", auth.ErrTokenMissing},
		{"   ", "", auth.ErrTokenMissing},
		{"Bearer", "", auth.ErrTokenMissing},
		{"Bearer    ", "", auth.ErrTokenMissing},
		{"Basic dXNlcjpwYXNz", "", auth.ErrTokenInvalid},
		{"abc.def.ghi", "", auth.ErrTokenInvalid},
		{"Bearerabc", "", auth.ErrTokenInvalid},
	} {
		got, err := httpapi.BearerToken(tc.header)
		if got != tc.token || !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tc.header, got, err, tc.token, tc.err)
		}
	}
}
