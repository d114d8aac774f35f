package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"concierge/web"
)

func TestKioskPageServesAssets(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/kiosk/", web.KioskPage())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/kiosk/", "text/html", `id="screen-consent"`},
		{"/kiosk/kiosk.js", "javascript", "getUserMedia"},
		{"/kiosk/i18n.js", "javascript", "刷脸识别登记"},
		{"/kiosk/kiosk.css", "text/css", ".guidance"},
	} {
		resp, body := get(tc.path)
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), tc.ctype) || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %d %q, body has %q: %v", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.contains, strings.Contains(body, tc.contains))
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", tc.path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", tc.path)
		}
	}
	if resp, _ := get("/kiosk/nothing.js"); resp.StatusCode != 404 {
		t.Errorf("missing file: %d", resp.StatusCode)
	}
	resp, err := http.Post(srv.URL+"/kiosk/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		t.Errorf("POST: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
