// Package ide embeds the GraphQL IDE that the server shows at / in development: GraphiQL with an auth
// panel, built from this directory's front-end project (npm run build) into dist/, which is committed,
// so building the server needs no Node. Everything the page loads is in dist/: React, GraphiQL, Monaco
// and its workers, fonts. Package httpapi mounts Handler (development only) and sets the page's
// Content-Security-Policy.
package ide

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// AssetsPrefix is the path under which the page's scripts, styles, fonts and workers are served;
// their file names carry a hash of their content.
const AssetsPrefix = "/assets/"

// contentTypes fixes the type of every kind of file the build writes, so that it depends neither on
// the machine's MIME tables nor on sniffing (the page is served with X-Content-Type-Options: nosniff).
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".ttf":   "font/ttf",
	".woff":  "font/woff",
	".woff2": "font/woff2",
	".png":   "image/png",
	".json":  "application/json",
}

// Files returns the built IDE: index.html and assets/.
func Files() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // a constant, valid path: cannot happen
	}
	return sub
}

// Handler serves the IDE: GET / the page (revalidated on every load, so a new binary's page is seen at
// once) and GET /assets/… the hashed files (cached for a year: a new build has new names). Anything
// else, or a file of an unknown kind, is a 404.
func Handler() http.Handler {
	files := Files()
	server := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Path
		switch {
		case name == "/":
			name = "/index.html"
			w.Header().Set("Cache-Control", "no-cache")
		case strings.HasPrefix(name, AssetsPrefix):
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		default:
			http.NotFound(w, r)
			return
		}
		ctype, ok := contentTypes[path.Ext(name)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if _, err := fs.Stat(files, strings.TrimPrefix(name, "/")); err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", ctype)
		if name == "/index.html" {
			// FileServer redirects /index.html to /: serve the file itself.
			http.ServeFileFS(w, r, files, "index.html")
			return
		}
		server.ServeHTTP(w, r)
	})
}
