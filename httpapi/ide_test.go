package httpapi_test

import (
	"io"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
	"testing"

	"gqlauth/ide"
	"gqlauth/internal/apptest"
	"gqlauth/internal/testdb"
)

// The embedded IDE in development: the page and every file of the build, with the CSP, the right
// content types and caching; nothing of it in production.
func TestIDE(t *testing.T) {
	t.Parallel()
	dev := apptest.New(t, testdb.SQLite(t), apptest.Options{})
	prod := apptest.New(t, testdb.SQLite(t), apptest.Options{Vars: map[string]string{"APP_ENV": "production", "JWT_SECRET": strings.Repeat("p", 32), "SMTP_URL": "smtp://127.0.0.1:1025", "TOTP_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}})
	get := func(url string) (*http.Response, string) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(b)
	}
	host := strings.TrimPrefix(dev.Server.URL, "http://")

	res, page := get(dev.Server.URL + "/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / in development = %d", res.StatusCode)
	}
	for name, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Cache-Control":          "no-cache",
	} {
		if got := res.Header.Get(name); got != want {
			t.Errorf("GET / %s = %q, want %q", name, got, want)
		}
	}
	csp := directives(res.Header.Get("Content-Security-Policy"))
	for name, want := range map[string]string{
		"default-src":     "'self'",
		"script-src":      "'self'", // no inline script, no eval
		"worker-src":      "'self'",
		"connect-src":     "'self' ws://" + host + " wss://" + host,
		"object-src":      "'none'",
		"frame-ancestors": "'none'",
		"base-uri":        "'none'",
	} {
		if got := csp[name]; got != want {
			t.Errorf("CSP %s = %q, want %q (header %q)", name, got, want, res.Header.Get("Content-Security-Policy"))
		}
	}
	// The page itself: no inline script, and everything it loads is one of the embedded assets.
	if !strings.Contains(page, `id="graphiql"`) {
		t.Fatalf("GET / is not the IDE page:\n%s", page)
	}
	for _, m := range regexp.MustCompile(`(?s)<script\b[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(m, ` src="`+ide.AssetsPrefix) {
			t.Errorf("inline or foreign script in the page: %s", m)
		}
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 2 {
		t.Fatalf("the page loads %d files; want its script and style", len(refs))
	}
	for _, ref := range refs {
		if !strings.HasPrefix(ref[1], ide.AssetsPrefix) {
			t.Errorf("the page loads %q, not an embedded asset", ref[1])
		}
	}

	// Every file of the build, with the type its extension calls for, the CSP, and a year of caching.
	types := map[string]string{
		".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".ttf": "font/ttf",
		".svg": "image/svg+xml", ".woff2": "font/woff2",
	}
	assets, err := fs.ReadDir(ide.Files(), strings.Trim(ide.AssetsPrefix, "/"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range assets {
		url := ide.AssetsPrefix + a.Name()
		res, body := get(dev.Server.URL + url)
		ext := path.Ext(a.Name())
		seen[ext] = true
		if res.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s = %d (%d bytes)", url, res.StatusCode, len(body))
		}
		if want, ok := types[ext]; !ok || res.Header.Get("Content-Type") != want {
			t.Errorf("GET %s Content-Type = %q, want %q", url, res.Header.Get("Content-Type"), want)
		}
		if res.Header.Get("Content-Security-Policy") == "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s without the IDE's security headers", url)
		}
		if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("GET %s Cache-Control = %q", url, cc)
		}
	}
	for _, ext := range []string{".js", ".css", ".ttf"} {
		if !seen[ext] {
			t.Errorf("no %s file in the build", ext)
		}
	}
	// Monaco's workers are files of the build (worker-src 'self'), not blobs.
	if !regexp.MustCompile(`\.worker-[^"]*\.js`).MatchString(strings.Join(names(assets), `"`)) {
		t.Errorf("no worker files in the build: %v", names(assets))
	}

	for _, url := range []string{ide.AssetsPrefix + "missing.js", ide.AssetsPrefix, "/index.html", "/src/main.tsx"} {
		if res, _ := get(dev.Server.URL + url); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s in development = %d, want 404", url, res.StatusCode)
		}
	}
	// Production: neither the page nor its assets.
	for _, url := range []string{"/", ide.AssetsPrefix + assets[0].Name()} {
		if res, _ := get(prod.Server.URL + url); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s in production = %d, want 404", url, res.StatusCode)
		}
	}
}

// directives splits a Content-Security-Policy into its directives' values.
func directives(csp string) map[string]string {
	out := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		if name != "" {
			out[name] = strings.TrimSpace(value)
		}
	}
	return out
}

func names(entries []fs.DirEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Name()
	}
	return out
}
