// Package web is the operator page: one HTML page, its stylesheet and its
// script, embedded in the binary and served under /ui/, that shows the
// cascades (searched by workspace and time) and their members live, why
// for any workspace, and the audit trail of the controls (of all, and of
// each cascade), and gives the operate role the controls, all through the
// operator API (docs/api.md).
//
// It guarantees that the page itself carries no data: every cascade it
// shows comes from an API request that the browser makes with the bearer
// token a person pasted (kept in the tab's session storage, sent only in
// the Authorization header, never in a URL), so without a token it shows
// nothing. Every answer carries a Content-Security-Policy that allows
// scripts, styles and requests from the daemon itself only (no inline
// script, no other origin, no framing), with nosniff and no referrer.
// Nothing is fetched from a CDN, and there is no build step: the files
// under assets/ are what the browser gets.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Path is where the page is served.
const Path = "/ui/"

// securityHeaders are sent with every answer of the page.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	// The files are small and change with the binary: always revalidated.
	"Cache-Control": "no-cache",
}

// Handler serves the page under Path and sends GET / there. apiOn says
// whether the operator API has tokens: without it the page only says that
// the API is off, as the API does.
func Handler(apiOn bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Path, http.StatusFound)
	})
	if !apiOn {
		mux.HandleFunc(Path, off)
		return headers(mux)
	}
	files, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree has the folder: checked by the tests
	}
	files = onlyFiles{files}
	mux.Handle("GET "+Path, http.StripPrefix(Path, http.FileServerFS(files)))
	mux.HandleFunc(Path, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the page only answers GET", http.StatusMethodNotAllowed)
	})
	return headers(mux)
}

func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range securityHeaders {
			h.Set(k, v)
		}
		next.ServeHTTP(w, r)
	})
}

// offPage is the page without API tokens: it says so, as the API does.
const offPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Operator page off · TFE orchestrator</title></head>
<body><h1>The operator API is off</h1>
<p>This page needs the operator API: start <code>orchestrator serve</code> with
<code>--api-read-token</code> or <code>--api-operate-token</code> (or their files or environment variables).</p>
</body></html>
`

func off(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(offPage))
}

// onlyFiles hides directory listings: a folder answers as if absent.
type onlyFiles struct{ fs.FS }

func (o onlyFiles) Open(name string) (fs.File, error) {
	f, err := o.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err == nil && st.IsDir() && name != "." {
		f.Close()
		return nil, fs.ErrNotExist
	}
	return f, nil
}
