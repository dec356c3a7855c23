package mailpit_test

import (
	"net/smtp"
	"net/url"
	"strings"
	"testing"
	"time"

	"gqlauth/internal/mailpit"
	"gqlauth/internal/testdb"
)

// send delivers a plain mail to to through the SMTP server at smtpURL.
func send(t *testing.T, smtpURL, to, subject string) {
	t.Helper()
	u, err := url.Parse(smtpURL)
	if err != nil {
		t.Fatal(err)
	}
	msg := "From: test@example.com\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody of " + subject + "\r\n"
	if err := smtp.SendMail(u.Host, nil, "test@example.com", []string{to}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// Mailpit's to: search matches substrings; the client returns only the exact recipient's mail.
func TestSearchIsExact(t *testing.T) {
	smtpURL, apiURL := testdb.Mailpit(t)
	c := mailpit.New(apiURL)
	to := mailpit.Address(t)
	longer := "x" + to // contains to
	send(t, smtpURL, longer, "for the longer address")
	send(t, smtpURL, to, "first")
	send(t, smtpURL, strings.ToUpper(to), "second") // addresses compare case-insensitively
	ms := c.WaitFor(t, to, 2, 10*time.Second)
	if len(ms) != 2 || ms[0].Subject != "first" || ms[1].Subject != "second" || !strings.Contains(ms[0].Text, "body of first") {
		t.Fatalf("messages %+v", ms)
	}
	if n := c.Count(t, to); n != 2 {
		t.Fatalf("Count = %d, want 2", n)
	}
	if n := c.Count(t, mailpit.Address(t)); n != 0 {
		t.Fatalf("Count of an unused address = %d", n)
	}
}
