package web

import (
	"embed"
	"io/fs"
	"net/http"
)

// The kiosk page is static: everything it knows comes from the kiosk API
// under /v1 (package kiosk), with the kiosk's bearer token. Serving it
// needs no sign-in; using it needs the token.

//go:embed kiosk
var kioskAssets embed.FS

// kioskCSP lets the page talk to its own origin only, show the camera and
// the frames it captures, and never be framed by another site.
const kioskCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// KioskPage serves the enrollment kiosk page; mount it at /kiosk/.
func KioskPage() http.Handler {
	sub, err := fs.Sub(kioskAssets, "kiosk")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/kiosk/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSONError(w, http.StatusMethodNotAllowed, "method_not_allowed", "the kiosk page is read-only")
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", kioskCSP)
		h.Set("Permissions-Policy", "camera=(self), microphone=()")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
