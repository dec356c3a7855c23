package mail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gqlauth/auth"
)

// fullData is every key any template uses.
func fullData() map[string]string {
	return map[string]string{
		"link":       "https://app.example/x?token=T0K3N&v=1",
		"expires_in": "1 hour",
		"new_email":  "new@example.com",
	}
}

func TestDefaultTemplates(t *testing.T) {
	tpl, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind, subject string
		link          bool // the body carries the link and says how long it is valid
		newEmail      bool
	}{
		{auth.KindPasswordReset, "Reset your password", true, false},
		{auth.KindVerifyEmail, "Verify your e-mail address", true, false},
		{auth.KindChangeEmail, "Confirm your new e-mail address", true, true},
		{auth.KindPasswordChanged, "Your password was changed", false, false},
		{auth.KindEmailChanged, "Your e-mail address was changed", false, true},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			m, err := tpl.Render("id1", tc.kind, "to@example.com", fullData())
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != tc.subject || m.To != "to@example.com" || m.ID != "id1" {
				t.Fatalf("message %+v", m)
			}
			if !strings.HasPrefix(m.HTML, "<!DOCTYPE html>") || strings.TrimSpace(m.Text) == "" {
				t.Fatalf("bodies: text %q, html %q", m.Text, m.HTML)
			}
			if tc.link {
				if !strings.Contains(m.Text, "https://app.example/x?token=T0K3N&v=1") ||
					!strings.Contains(m.HTML, `href="https://app.example/x?token=T0K3N&amp;v=1"`) {
					t.Fatalf("link missing:\ntext %s\nhtml %s", m.Text, m.HTML)
				}
				if !strings.Contains(m.Text, "expires in 1 hour") || !strings.Contains(m.HTML, "expires in 1 hour") {
					t.Fatalf("validity missing:\ntext %s\nhtml %s", m.Text, m.HTML)
				}
			} else if strings.Contains(m.Text+m.HTML, "T0K3N") {
				t.Fatal("a notice carries a link")
			}
			if tc.newEmail != strings.Contains(m.Text, "new@example.com") || tc.newEmail != strings.Contains(m.HTML, "new@example.com") {
				t.Fatalf("new address shown: want %v:\ntext %s\nhtml %s", tc.newEmail, m.Text, m.HTML)
			}
			// A template that needs a key fails without it: never a mail with an empty link.
			if tc.link {
				d := fullData()
				delete(d, "link")
				if _, err := tpl.Render("id1", tc.kind, "to@example.com", d); !IsPermanent(err) {
					t.Fatalf("render without a link: %v", err)
				}
			}
		})
	}
}

func TestTemplatesEscapeHTML(t *testing.T) {
	d := fullData()
	d["new_email"] = `"><script>alert(1)</script>@example.com`
	d["link"] = "javascript:alert(1)"
	m, err := MustLoadTemplates().Render("id", auth.KindChangeEmail, "x@example.com", d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<script>") || strings.Contains(m.HTML, `href="javascript:`) {
		t.Fatalf("HTML not escaped:\n%s", m.HTML)
	}
}

func TestRenderRejectsMultiLineSubject(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "email_changed.subject.txt", "Changed to {{.new_email}}")
	tpl, err := LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpl.Render("id", auth.KindEmailChanged, "x@example.com", map[string]string{"new_email": "a\r\nBcc: b@example.com"}); !IsPermanent(err) {
		t.Fatalf("a subject with a line break: %v", err)
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTemplateOverrides(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "verify_email.subject.txt", "Welcome to Example: confirm your address\n")
	write(t, dir, "verify_email.html", `<p>Custom <a href="{{.link}}">link</a>, valid {{.expires_in}}</p>`)
	write(t, dir, ".DS_Store", "ignored: hidden files are not templates")
	tpl, err := LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tpl.Render("id", auth.KindVerifyEmail, "x@example.com", fullData())
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Welcome to Example: confirm your address" || !strings.HasPrefix(m.HTML, "<p>Custom <a href=") {
		t.Fatalf("override ignored: %+v", m)
	}
	if !strings.Contains(m.Text, "Please confirm that this e-mail address is yours") {
		t.Fatalf("the text part should stay the built-in one: %s", m.Text)
	}
	other, err := tpl.Render("id", auth.KindPasswordReset, "x@example.com", fullData())
	if err != nil || other.Subject != "Reset your password" {
		t.Fatalf("other kinds keep their defaults: %+v, %v", other, err)
	}

	for name, tc := range map[string]struct{ file, content, want string }{
		"misspelt file": {"verify_mail.html", "x", "no such template"},
		"broken text":   {"verify_email.txt", "{{.link", "verify_email.txt"},
		"broken html":   {"password_reset.html", "{{if}}", "password_reset.html"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, tc.file, tc.content)
			if _, err := LoadTemplates(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadTemplates: %v, want an error naming %q", err, tc.want)
			}
		})
	}
	if _, err := LoadTemplates(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing directory is accepted")
	}
}
