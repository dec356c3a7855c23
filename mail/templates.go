package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"

	"gqlauth/auth"
)

// defaults holds the built-in templates: for each kind K, K.subject.txt, K.txt and K.html.
//
//go:embed templates/*
var defaults embed.FS

// Kinds are the mail kinds that have templates (auth.KindResetRequest is resolved into
// auth.KindPasswordReset before rendering, so it has none).
var Kinds = []string{
	auth.KindPasswordReset,
	auth.KindVerifyEmail,
	auth.KindChangeEmail,
	auth.KindPasswordChanged,
	auth.KindEmailChanged,
}

// Template file suffixes, after the kind's name.
const (
	suffixSubject = ".subject.txt" // text/template; one line once trimmed
	suffixText    = ".txt"         // text/template
	suffixHTML    = ".html"        // html/template: data is escaped for its context
)

// kindTemplates are one kind's parsed templates.
type kindTemplates struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
}

// Templates render each kind's subject, text body and HTML body from its data.
// A *Templates is safe for concurrent use.
type Templates struct {
	kinds map[string]kindTemplates
}

// LoadTemplates parses the built-in templates, each replaced by the file of the same name in dir
// when dir is not "" and holds one (MAIL_TEMPLATES_DIR): an override can be a single file, such as
// verify_email.html. It returns an error for a template that does not parse, and for a file in dir
// that matches no template (a misspelt override would otherwise be ignored without a word).
//
// Templates see the message's data as a map, e.g. {{.link}}, {{.expires_in}}, {{.new_email}}; a
// key that the message lacks is a render error (missingkey=error), not an empty string.
func LoadTemplates(dir string) (*Templates, error) {
	known := map[string]bool{}
	for _, k := range Kinds {
		for _, sfx := range []string{suffixSubject, suffixText, suffixHTML} {
			known[k+sfx] = true
		}
	}
	var override fs.FS
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("mail templates: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() && !known[e.Name()] && !strings.HasPrefix(e.Name(), ".") {
				return nil, fmt.Errorf("mail templates: %s: no such template (want <kind>%s, <kind>%s or <kind>%s; kinds: %s)",
					filepath.Join(dir, e.Name()), suffixSubject, suffixText, suffixHTML, strings.Join(Kinds, ", "))
			}
		}
		override = os.DirFS(dir)
	}
	read := func(name string) (string, string, error) {
		if override != nil {
			b, err := fs.ReadFile(override, name)
			if err == nil {
				return string(b), filepath.Join(dir, name), nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return "", "", fmt.Errorf("mail templates: %w", err)
			}
		}
		b, err := defaults.ReadFile("templates/" + name)
		if err != nil {
			return "", "", fmt.Errorf("mail templates: built-in %s: %w", name, err)
		}
		return string(b), "built-in " + name, nil
	}
	t := &Templates{kinds: make(map[string]kindTemplates, len(Kinds))}
	for _, k := range Kinds {
		var kt kindTemplates
		src, from, err := read(k + suffixSubject)
		if err != nil {
			return nil, err
		}
		if kt.subject, err = texttemplate.New(from).Option("missingkey=error").Parse(src); err != nil {
			return nil, fmt.Errorf("mail templates: %w", err)
		}
		if src, from, err = read(k + suffixText); err != nil {
			return nil, err
		}
		if kt.text, err = texttemplate.New(from).Option("missingkey=error").Parse(src); err != nil {
			return nil, fmt.Errorf("mail templates: %w", err)
		}
		if src, from, err = read(k + suffixHTML); err != nil {
			return nil, err
		}
		if kt.html, err = htmltemplate.New(from).Option("missingkey=error").Parse(src); err != nil {
			return nil, fmt.Errorf("mail templates: %w", err)
		}
		t.kinds[k] = kt
	}
	return t, nil
}

// MustLoadTemplates is LoadTemplates("") for the built-in templates, which always parse (a test
// proves it); it panics otherwise.
func MustLoadTemplates() *Templates {
	t, err := LoadTemplates("")
	if err != nil {
		panic(err)
	}
	return t
}

// Render returns the message of kind for recipient to with data. Its error (an unknown kind, a key
// missing from data, a template that fails, a subject that is empty or spans lines) is permanent:
// the same message would fail the same way on every attempt.
func (t *Templates) Render(id, kind, to string, data map[string]string) (*Message, error) {
	kt, ok := t.kinds[kind]
	if !ok {
		return nil, Permanent(fmt.Errorf("render: no template for mail kind %q", kind))
	}
	if data == nil {
		data = map[string]string{}
	}
	var subject, text, html bytes.Buffer
	if err := kt.subject.Execute(&subject, data); err != nil {
		return nil, Permanent(fmt.Errorf("render %s subject: %w", kind, err))
	}
	if err := kt.text.Execute(&text, data); err != nil {
		return nil, Permanent(fmt.Errorf("render %s text: %w", kind, err))
	}
	if err := kt.html.Execute(&html, data); err != nil {
		return nil, Permanent(fmt.Errorf("render %s html: %w", kind, err))
	}
	s := strings.TrimSpace(subject.String())
	// A subject is one header line: a line break in it would be a template mistake (or, from data,
	// an attempt at header injection), so it fails rather than being folded silently.
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return nil, Permanent(fmt.Errorf("render %s subject: empty or more than one line", kind))
	}
	return &Message{ID: id, To: to, Subject: s, Text: text.String(), HTML: html.String()}, nil
}
