package testenv_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"

	"concierge/internal/testenv"
)

func TestBrowserSmoke(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<html><body><h1 id=h>你好 hello</h1></body></html>"))
	}))
	defer srv.Close()
	ctx := testenv.Browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	txt, err := chromedp.Run(ctx, chromedp.Text("#h"))
	if err != nil || txt != "你好 hello" {
		t.Fatalf("text %q, %v", txt, err)
	}
}
