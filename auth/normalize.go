package auth

import (
	"fmt"
	"net/mail"
	"strings"
)

// NormalizeEmail trims and lower-cases an e-mail address and checks that it is one plain address.
// It returns a *ValidationError for field "email".
func NormalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	bad := func(msg string) (string, error) { return "", &ValidationError{Field: "email", Message: msg} }
	if e == "" {
		return bad("is required")
	}
	if len(e) > maxEmailLength {
		return bad(fmt.Sprintf("must be at most %d characters", maxEmailLength))
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Address != e || addr.Name != "" {
		return bad("is not a valid e-mail address")
	}
	local, domain, _ := strings.Cut(e, "@")
	if local == "" || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.ContainsAny(e, " \t\r\n\"()<>[]\\,;:") {
		return bad("is not a valid e-mail address")
	}
	return e, nil
}
