package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"concierge/internal/testenv"
	"concierge/vision"
)

// kioskSizes are a landscape kiosk and a portrait tablet.
var kioskSizes = [][2]int64{{1280, 800}, {800, 1280}}

// insideJS is true when every element is laid out (non-zero size) wholly
// within the viewport, with the page not scrolled.
func insideJS(ids ...string) string {
	return fmt.Sprintf(`(() => scrollX === 0 && scrollY === 0 && %q.split(' ').every((id) => {
		const e = document.getElementById(id);
		if (!e) return false;
		const r = e.getBoundingClientRect();
		return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth;
	}))()`, strings.Join(ids, " "))
}

// rectsJS reports the elements' boxes for a failure message.
func rectsJS(ids ...string) string {
	return fmt.Sprintf(`JSON.stringify({viewport: [innerWidth, innerHeight, scrollY], boxes: %q.split(' ').map((id) => {
		const e = document.getElementById(id);
		if (!e) return id + ': missing';
		const r = e.getBoundingClientRect();
		return id + ': ' + [r.left, r.top, r.right, r.bottom].map(Math.round).join(',');
	})})`, strings.Join(ids, " "))
}

// fits checks, at each kiosk size, that the primary controls of the screen
// shown are inside the viewport, and keeps a screenshot of each.
func (k kioskPage) fits(screen string, ids ...string) {
	k.t.Helper()
	for _, s := range kioskSizes {
		k.do(chromedp.EmulateViewport(s[0], s[1]))
		ctx, cancel := context.WithTimeout(k.ctx, 10*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](insideJS(ids...),
			chromedp.WithPollingTimeout(3*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
		if err != nil {
			rects, _ := chromedp.Run(ctx, chromedp.Evaluate[string](rectsJS(ids...)))
			k.t.Errorf("%s at %dx%d: not all of %v inside the viewport: %s", screen, s[0], s[1], ids, rects)
		}
		if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
			os.WriteFile(testenv.Artifact(k.t, fmt.Sprintf("kiosk-%s-%dx%d.png", screen, s[0], s[1])), png, 0o644)
		}
		cancel()
	}
}

// eval runs a statement in the page.
func (k kioskPage) eval(js string) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(k.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js+"; true")); err != nil {
		k.t.Fatal(err)
	}
}

// TestKioskLayout walks the kiosk page, at 1280×800 and 800×1280, through
// provisioning by a #token= added to the open page (no reload), the home,
// start and consent screens, the capture screen, and a failed liveness try
// (a still photo held up to the camera), asserting on element geometry that
// the primary buttons, the guidance and the photo count are on screen, and
// that the failed try says how many tries are left.
func TestKioskLayout(t *testing.T) {
	frontal, err := vision.ClipFrames(testenv.Shared(t, "data/video/d12.mp4"), 60, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	held, err := vision.FlatClip(frontal[0], 640, 480, 50, []vision.Hold{
		{X: -0.03, Height: 1.1, Yaw: -15, Pitch: 5}, {X: 0.03, Y: 0.02, Height: 1.15, Yaw: 20, Roll: 4},
		{Height: 1.1, Yaw: -5, Pitch: -6}, {X: -0.03, Height: 1.1, Yaw: -15, Pitch: 5}})
	if err != nil {
		t.Fatal(err)
	}
	still := filepath.Join(t.TempDir(), "photo.y4m")
	if err := vision.WriteY4M(still, held, 640, 480, 25); err != nil {
		t.Fatal(err)
	}
	d, _ := kioskDaemon(t)
	base := "http://" + d.HTTPAddr()
	k := kioskPage{t: t, ctx: kioskBrowser(t, still)}
	defer k.close()

	// An unprovisioned page; staff add the token to its address.
	k.do(chromedp.Navigate(base + "/kiosk/"))
	k.wait("provision screen", 20*time.Second, `document.body.dataset.screen === 'provision'`)
	k.eval(`window.sameDocument = true; location.hash = '#token=wrong-token-0123456789abcdef'`)
	k.wait("a wrong token refused", 10*time.Second, `document.body.dataset.screen === 'provision' && document.querySelector('#provision-error').textContent !== ''`)
	k.eval(`location.hash = '#token=` + kioskTestToken + `'`)
	k.wait("home screen without a reload", 10*time.Second,
		`document.body.dataset.screen === 'home' && window.sameDocument === true && !location.href.includes('token')`)

	k.do(chromedp.Click(chromedp.ID("lang-en")))
	k.fits("home", "btn-enroll", "btn-withdraw", "lang-zh", "lang-en")
	k.do(chromedp.Click(chromedp.ID("btn-enroll")), chromedp.WaitVisible(chromedp.ID("start-form")))
	k.fits("start", "start-customer", "btn-start", "start-cancel")
	k.do(chromedp.EmulateViewport(1280, 800),
		chromedp.SendKeys(chromedp.ID("start-customer"), "C79"),
		chromedp.SendKeys(chromedp.ID("start-name"), "Mr Layout"),
		chromedp.SendKeys(chromedp.ID("start-staff"), "staff-1"),
		chromedp.SendKeys(chromedp.ID("start-staff-password"), kioskStaffPassword),
		chromedp.Click(chromedp.ID("btn-start")))
	k.wait("consent screen", 10*time.Second, `document.body.dataset.screen === 'consent' && document.querySelector('#consent-text').innerText.includes('128 numbers')`)
	k.fits("consent", "btn-agree", "btn-decline", "consent-text", "consent-scope")

	k.do(chromedp.Click(chromedp.ID("btn-agree")))
	k.wait("guidance shown", 30*time.Second, `document.body.dataset.screen === 'capture' && document.querySelector('#guidance').textContent !== ''`)
	k.fits("capture", "guidance", "photo-count", "liveness-state", "capture-cancel")

	k.wait("liveness refused", 3*time.Minute, `document.body.dataset.liveness === 'failed'`)
	k.fits("liveness-failed", "btn-liveness-retry", "liveness-state", "liveness-instruction", "capture-cancel")
	state, err := chromedp.Run(k.ctx, chromedp.Evaluate[string](
		`document.querySelector('#liveness-state').textContent + '|' + document.querySelector('#liveness-state').dataset.triesLeft`))
	if err != nil {
		t.Fatal(err)
	}
	text, left, _ := strings.Cut(state, "|")
	if left == "" || left == "0" || !strings.Contains(text, left+" tries left") || strings.Contains(text, "pending") {
		t.Errorf("after a failed try the page shows %q (tries left %q), want the tries left", text, left)
	}
}
