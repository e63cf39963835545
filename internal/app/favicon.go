package app

import (
	_ "embed"
	"net/http"
)

// faviconICO is the icon browsers ask for at /favicon.ico, for the
// operator page.
//
//go:embed favicon.ico
var faviconICO []byte

// favicon answers a browser's /favicon.ico with the icon, so that opening
// the page is not a refused request in the log.
func favicon(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "image/x-icon")
	h.Set("Cache-Control", "public, max-age=86400")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(faviconICO)
}
