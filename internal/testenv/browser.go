package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is the browser the page tests drive: $CHROMIUM, else
// Debian's chromium (installed by `deploy/setup.sh --test`). It skips the
// test when there is none, or fails it when CI=true.
func ChromiumPath(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	need(tb, "/usr/bin/chromium", "Debian's chromium package (deploy/setup.sh --test)")
	return "/usr/bin/chromium"
}

// Browser starts a headless Chromium owned by tb and returns a tab's
// context; the browser is closed when the test ends. opts add flags, such
// as a fake camera.
func Browser(tb testing.TB, opts ...chromedp.ExecAllocatorOption) context.Context {
	tb.Helper()
	all := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath(tb)),
		// Root in containers and CI cannot use Chromium's sandbox.
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1024, 768),
		chromedp.UserDataDir(filepath.Join(tb.TempDir(), "chromium")),
	)
	all = append(all, opts...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), all...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(tb.Logf))
	// Start the browser now, so a missing or broken Chromium fails here
	// with its reason rather than inside the first action. The first call
	// must not carry a timeout: its context's end would stop the browser.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		tb.Fatalf("start chromium: %v", err)
	}
	tb.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return ctx
}

// Artifact is where a test saves a file worth keeping after the run (a
// screenshot): $CONCIERGE_ARTIFACTS, else artifacts/ at the repository
// root. The directory is created.
func Artifact(tb testing.TB, name string) string {
	tb.Helper()
	dir := os.Getenv("CONCIERGE_ARTIFACTS")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			tb.Fatal(err)
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(d, "artifacts")
				break
			}
			if filepath.Dir(d) == d {
				dir = filepath.Join(wd, "artifacts")
				break
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return filepath.Join(dir, name)
}
