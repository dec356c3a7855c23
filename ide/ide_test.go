package ide_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"gqlauth/ide"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(ide.Handler())
	t.Cleanup(srv.Close)
	res, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET / = %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	// Built for offline use: nothing in the page points to another origin.
	if strings.Contains(string(body), "http://") || strings.Contains(string(body), "https://") || strings.Contains(string(body), "//cdn") {
		t.Fatalf("the page refers to another origin:\n%s", body)
	}
	for _, p := range []string{"/index.html", "/assets/", "/assets/../index.html", "/package.json", "/assets/nope.js"} {
		res, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, res.StatusCode)
		}
	}
}
