package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"concierge/enroll"
	"concierge/face"
	"concierge/internal/testenv"
	"concierge/models"
	"concierge/sqlite"
	"concierge/vision"
)

const (
	kioskTestToken          = "kiosk-1-token-0123456789abcdef0123"
	kioskStaffPassword      = "staff-1-password"
	kioskSupervisorPassword = "supervisor-li-password"
)

// kioskDaemon starts the real daemon (no cameras, embedded NATS) with one
// kiosk, and returns it with the path of its config file, which the CLI
// commands of the test read too.
func kioskDaemon(t *testing.T) (*Daemon, string) {
	t.Helper()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`branch: t1
db: %s
models:
  dir: %s
vision:
  pool: 1
http:
  addr: 127.0.0.1:0
nats:
  listen: 127.0.0.1:-1
  store_dir: %s
kiosk:
  devices:
    - id: kiosk-1
      token: ${KIOSK_TEST_TOKEN}
web:
  staff:
    - {name: staff-1, password: "%s"}
    - {name: Supervisor Li, password: "%s", role: supervisor}
`, filepath.Join(dir, "c.db"), testenv.ModelsDir(t), filepath.Join(dir, "js"), kioskStaffPassword, kioskSupervisorPassword)
	path := filepath.Join(dir, "concierge.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KIOSK_TEST_TOKEN", kioskTestToken)
	cfg, err := ReadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.resolveEngine()
	d := NewDaemon(cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, path
}

// identifyCLI runs `concierge identify` on images of one face each and
// returns the customer id printed for each, "" for null.
func identifyCLI(t *testing.T, cfg string, imgs [][]byte) []string {
	t.Helper()
	args := []string{"identify", "--config", cfg}
	for i, img := range imgs {
		p := filepath.Join(t.TempDir(), fmt.Sprintf("probe%d.jpg", i))
		if err := os.WriteFile(p, img, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	out, stderr, code := run(t, args...)
	lines := parseLines(t, out)
	if code != 0 || len(lines) != len(imgs) {
		t.Fatalf("identify: exit %d, %d faces in %d images: %s %s", code, len(lines), len(imgs), out, stderr)
	}
	ids := make([]string, len(lines))
	for i, l := range lines {
		if l.CustomerID != nil {
			ids[i] = *l.CustomerID
		}
	}
	return ids
}

// recognised counts the ids equal to want and fails on any other id.
func recognised(t *testing.T, ids []string, want string) int {
	t.Helper()
	n := 0
	for _, id := range ids {
		switch id {
		case want:
			n++
		case "":
		default:
			t.Fatalf("identified as %q, want %q or null: %v", id, want, ids)
		}
	}
	return n
}

// turningClip is the fake camera's picture of a person at the kiosk: the
// man of the d12 clip facing the camera (frames 0-30, forward and back:
// 2.4 s at 25 fps), turning to his left (33-51) and then to his right
// (75-100), and facing the camera again (105-117, held for about ten
// seconds). The page restarts the camera for each liveness attempt, after
// the challenge is on screen, so Chromium plays the clip from its start
// then: the page's get-ready pause falls on the frontal lead and its
// frames on the turns.
func turningClip(t *testing.T) [][]byte {
	t.Helper()
	frames, err := vision.ClipFrames(testenv.Shared(t, "data/video/d12.mp4"), 0, 118, 1)
	if err != nil {
		t.Fatal(err)
	}
	loop := append([][]byte(nil), frames[:31]...)
	for i := 29; i >= 0; i-- {
		loop = append(loop, frames[i])
	}
	loop = append(loop, frames[31:]...)
	for len(loop) < 61+87+250 {
		for i := 116; i >= 105; i-- {
			loop = append(loop, frames[i])
		}
		loop = append(loop, frames[106:]...)
	}
	return loop
}

// leftThenRight is the challenge the daemon asks for in the browser test,
// the order of the clip's turns.
var leftThenRight = []enroll.Turn{enroll.TurnLeft, enroll.TurnRight}

// checkLoopFollows makes sure the fake camera's clip follows the challenge
// wherever the page's 16 frames, one every 250 ms (6 or 7 frames of the
// 25 fps clip) plus the time a grab takes, start within the first second
// after the get-ready pause: otherwise the browser test would depend on
// timing. It runs the rule on YuNet's landmarks, as the daemon does.
func checkLoopFollows(t *testing.T, loop [][]byte, steps []enroll.Turn) {
	t.Helper()
	y, err := vision.NewYuNet(models.Path(testenv.ModelsDir(t), models.YuNet))
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	marks := vision.YuNetLandmarks{Det: y}
	faces := make([][]face.Face, len(loop))
	for i, f := range loop {
		if faces[i], err = marks.Detect(context.Background(), f); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []int{6, 7} {
		for start := 38; start <= 63; start++ { // 1.5 s to 2.5 s after the camera starts
			seq := make([][]face.Face, 16)
			for i := range seq {
				seq[i] = faces[(start+i*step)%len(loop)]
			}
			if res := enroll.DefaultLivenessRule.CheckChallenge(seq, steps); !res.Live {
				t.Fatalf("the fake camera clip fails challenge %v from frame %d, step %d: %s %s", steps, start, step, res.Reason, res.Detail())
			}
		}
	}
}

// The acceptance test of the kiosk: a customer enrolled through the page,
// with Chromium's fake camera playing a real clip of a person turning
// their head, is recognised by `concierge identify` and by the running
// daemon; after withdrawal through the page, by neither. A still photo
// shown to the camera fails the liveness check.
func TestKioskPageInBrowser(t *testing.T) {
	loop := turningClip(t)
	checkLoopFollows(t, loop, leftThenRight)
	kioskChallenge = func() []enroll.Turn { return leftThenRight }
	t.Cleanup(func() { kioskChallenge = nil })
	dir := t.TempDir()
	live := filepath.Join(dir, "turning.y4m")
	if err := vision.WriteY4M(live, loop, 640, 480, 25); err != nil {
		t.Fatal(err)
	}
	// Frames of the clip at each pose it holds, for identify: the engine's
	// distances between frames of this talking, turning face reach 0.9,
	// so a probe far in pose from every photo the page happened to take
	// may rightly stay unknown; one near them must not.
	var probes [][]byte
	for _, n := range []int{56, 66, 76, 86, 97} {
		f, err := vision.ClipFrames(testenv.Shared(t, "data/video/d12.mp4"), n, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		probes = append(probes, f[0])
	}

	d, cfg := kioskDaemon(t)
	base := "http://" + d.HTTPAddr()
	if n := recognised(t, identifyCLI(t, cfg, probes), "C77"); n != 0 {
		t.Fatalf("recognised before enrollment")
	}

	browser := kioskBrowser(t, live)
	k := kioskPage{t: t, ctx: browser}
	// Provisioning: the token travels in the fragment once, then lives in
	// the browser's storage, not in the address.
	k.do(chromedp.Navigate(base + "/kiosk/#token=" + kioskTestToken))
	k.wait("home screen", 20*time.Second, `document.body.dataset.screen === 'home'`)
	k.wait("token out of the address bar", time.Second, `!location.href.includes('token')`)

	k.do(chromedp.Click(chromedp.ID("lang-zh")))
	k.enroll("C77", "Ms Test", "staff-1", kioskStaffPassword)
	k.wait("consent text", 10*time.Second, `document.querySelector('#consent-text').innerText.includes('128 个数字')`)
	k.screenshot("kiosk-consent.png")
	k.do(chromedp.Click(chromedp.ID("btn-agree")))
	k.wait("enrolled", 3*time.Minute, `document.body.dataset.outcome === 'enrolled'`)
	k.screenshot("kiosk-enrolled.png")

	// Recognised by a separate `concierge identify` and by the running
	// daemon's own gallery, at once.
	// Which poses the page photographed depends on when the fake camera's
	// loop was caught (runs give 2 to 5 of the 5 probes), so the test asks
	// for the customer in at least one pose (recognised fails on anyone else).
	ids := identifyCLI(t, cfg, probes)
	if n := recognised(t, ids, "C77"); n < 1 {
		t.Fatalf("identify after enrollment through the page: %q, want C77 in at least one pose", ids)
	}
	t.Logf("identify after enrollment: %q", ids)
	if n := d.app.svc.Gallery.Templates("C77"); n != 3 {
		t.Fatalf("the daemon's gallery holds %d templates of C77, want 3", n)
	}
	known := 0
	for _, p := range probes {
		ids, err := d.app.svc.Identify(context.Background(), p)
		if err != nil || len(ids) != 1 {
			t.Fatalf("the daemon's service: %d faces, %v", len(ids), err)
		}
		if ids[0].Known && ids[0].Match.CustomerID == "C77" {
			known++
		}
	}
	if known == 0 {
		t.Fatal("the running daemon does not recognise the customer enrolled at its kiosk")
	}
	var health struct{ Customers int }
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if health.Customers != 1 {
		t.Fatalf("/healthz customers = %d", health.Customers)
	}

	// Withdrawal through the page, the customer confirming with his face:
	// a clerk's signature is not enough, the confirmation box is needed.
	k.do(chromedp.Click(chromedp.ID("result-done")))
	k.wait("home again", 5*time.Second, `document.body.dataset.screen === 'home'`)
	k.do(chromedp.Click(chromedp.ID("btn-withdraw")),
		chromedp.WaitVisible(chromedp.ID("withdraw-form")),
		chromedp.SendKeys(chromedp.ID("wd-customer"), "C77"),
		chromedp.SendKeys(chromedp.ID("wd-staff"), "staff-1"),
		chromedp.SendKeys(chromedp.ID("wd-password"), kioskStaffPassword),
		chromedp.Click(chromedp.ID("wd-confirm")),
		chromedp.Click(chromedp.ID("btn-wd-submit")))
	k.wait("clerk refused", 10*time.Second, `document.querySelector('#withdraw-error').textContent.includes('supervisor')`)
	if n := d.app.svc.Gallery.Templates("C77"); n != 3 {
		t.Fatalf("a clerk's signature withdrew the customer: %d templates left", n)
	}
	k.do(chromedp.Click(chromedp.ID("btn-wd-face")))
	k.wait("withdrawn", time.Minute, `document.body.dataset.outcome === 'withdrawn'`)
	k.screenshot("kiosk-withdrawn.png")
	if ids := identifyCLI(t, cfg, probes); recognised(t, ids, "C77") != 0 {
		t.Fatalf("identify after withdrawal through the page: %q, want null", ids)
	}
	if n := d.app.svc.Gallery.Templates("C77"); n != 0 {
		t.Fatalf("the daemon still holds %d templates of C77", n)
	}
	k.close()

	// A still photo of him held up to the camera: photos pass, liveness
	// does not, and nothing is stored.
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
	still := filepath.Join(dir, "photo.y4m")
	if err := vision.WriteY4M(still, held, 640, 480, 25); err != nil {
		t.Fatal(err)
	}
	k = kioskPage{t: t, ctx: kioskBrowser(t, still)}
	k.do(chromedp.Navigate(base + "/kiosk/#token=" + kioskTestToken))
	k.wait("home screen", 20*time.Second, `document.body.dataset.screen === 'home'`)
	k.do(chromedp.Click(chromedp.ID("lang-en")))
	k.enroll("C78", "Mr Photo", "staff-1", kioskStaffPassword)
	k.wait("consent text", 10*time.Second, `document.querySelector('#consent-text').innerText.includes('128 numbers')`)
	k.do(chromedp.Click(chromedp.ID("btn-agree")))
	k.wait("liveness refused", 3*time.Minute, `document.body.dataset.liveness === 'failed'`)
	k.wait("told to turn", time.Second, `document.querySelector('#guidance').dataset.hint === 'turn_head'`)
	k.screenshot("kiosk-liveness-failed.png")
	if n := d.app.svc.Gallery.Templates("C78"); n != 0 {
		t.Fatalf("a still photo was enrolled: %d templates", n)
	}
	es, err := d.app.db.Audit(context.Background(), sqlite.AuditFilter{CustomerID: "C78"})
	if err != nil {
		t.Fatal(err)
	}
	var trail []string
	for _, e := range es {
		trail = append(trail, e.Action+":"+e.Outcome)
	}
	if got := strings.Join(trail, " "); !strings.Contains(got, "photo:ok") || !strings.Contains(got, "liveness:fail") || strings.Contains(got, "finish") {
		t.Fatalf("audit trail of the still photo: %s", got)
	}
}

// kioskBrowser starts Chromium with its fake camera playing clip.
func kioskBrowser(t *testing.T, clip string) context.Context {
	t.Helper()
	return testenv.Browser(t,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-video-capture", clip),
	)
}

// kioskPage drives the kiosk page in one browser tab.
type kioskPage struct {
	t   *testing.T
	ctx context.Context
}

func (k kioskPage) do(steps ...chromedp.Action[chromedp.Void]) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(k.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		k.t.Fatal(err)
	}
}

// wait polls expr until it is true, and fails with the page's text.
func (k kioskPage) wait(what string, timeout time.Duration, expr string) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(k.ctx, timeout+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr,
		chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.screen + ' | ' + document.body.innerText`))
		k.screenshot("kiosk-failure.png")
		k.t.Fatalf("%s: not within %v: %v\npage: %s", what, timeout, err, page)
	}
}

// enroll fills the staff's start form, signed with their password.
func (k kioskPage) enroll(customer, name, staff, password string) {
	k.t.Helper()
	k.do(chromedp.Click(chromedp.ID("btn-enroll")),
		chromedp.WaitVisible(chromedp.ID("start-form")),
		chromedp.SendKeys(chromedp.ID("start-customer"), customer),
		chromedp.SendKeys(chromedp.ID("start-name"), name),
		chromedp.SendKeys(chromedp.ID("start-staff"), staff),
		chromedp.SendKeys(chromedp.ID("start-staff-password"), password),
		chromedp.Click(chromedp.ID("btn-start")))
	k.wait("consent screen", 10*time.Second, `document.body.dataset.screen === 'consent'`)
}

func (k kioskPage) screenshot(name string) {
	ctx, cancel := context.WithTimeout(k.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		k.t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(testenv.Artifact(k.t, name), png, 0o644); err != nil {
		k.t.Logf("screenshot %s: %v", name, err)
	}
}

// close ends the tab's browser before the next one starts: two Chromiums
// at once are too much for a two-core box.
func (k kioskPage) close() {
	chromedp.Cancel(k.ctx)
}

func TestKioskConfig(t *testing.T) {
	t.Setenv("KIOSK_A", "a-token-from-the-environment-0123456789")
	t.Setenv("CONCIERGE_KIOSK_RATE_PER_SECOND", "2.5")
	t.Setenv("CONCIERGE_KIOSK_CHALLENGE_TTL", "45s")
	c, err := ParseConfig(strings.NewReader(`
kiosk:
  session_ttl: 5m
  devices:
    - {id: kiosk-a, token: "${KIOSK_A}"}
    - {id: kiosk-b, token: "b-token-0123456789abcdef0123456789"}
`))
	if err != nil {
		t.Fatal(err)
	}
	// The error cases below are about the file alone.
	os.Unsetenv("CONCIERGE_KIOSK_CHALLENGE_TTL")
	k := c.Kiosk
	if len(k.Devices) != 2 || k.Devices[0].Token != "a-token-from-the-environment-0123456789" || k.SessionTTL != 5*time.Minute ||
		k.RatePerSecond != 2.5 || k.Burst != 30 || k.PhotosNeeded != 3 || k.MaxUploadBytes != 8<<20 || k.ChallengeTTL != 45*time.Second {
		t.Fatalf("kiosk config %+v", k)
	}
	if api := k.api(); len(api.Devices) != 2 || api.RatePerSecond != 2.5 || api.MaxPhotos < api.PhotosNeeded || api.ChallengeTTL != 45*time.Second {
		t.Fatalf("kiosk API config %+v", api)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"kiosk:\n  devices:\n    - {id: k1, token: short}\n", "kiosk.devices[0].token"},
		{"kiosk:\n  devices:\n    - {token: 0123456789abcdef0123456789abcdef}\n", "kiosk.devices[0].id"},
		{"kiosk:\n  devices:\n    - {id: k1, token: 0123456789abcdef0123456789abcdef}\n    - {id: k1, token: x123456789abcdef0123456789abcdef}\n", "duplicate"},
		{"kiosk:\n  devices:\n    - {id: k1, token: 0123456789abcdef0123456789abcdef}\n    - {id: k2, token: 0123456789abcdef0123456789abcdef}\n", "own token"},
		{"kiosk:\n  consent_dir: /etc/concierge/consent\n", "kiosk.consent_version"},
		{"kiosk:\n  consent_version: v9\n", "kiosk.consent_version"},
		{"kiosk:\n  session_ttl: 10s\n", "kiosk.session_ttl"},
		{"kiosk:\n  burst: 0\n", "kiosk.burst"},
		{"kiosk:\n  max_upload_bytes: 1000\n", "kiosk.max_upload_bytes"},
		{"kiosk:\n  challenge_ttl: 1s\n", "kiosk.challenge_ttl"},
		{"web:\n  staff:\n    - {name: Wu, password: long-enough, role: boss}\n", "web.staff[0].role"},
		{"kiosk:\n  devices: []\n  tokens: []\n", "tokens"},
	} {
		if _, err := ParseConfig(strings.NewReader(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want mention of %q", tc.yaml, err, tc.want)
		}
	}
}

// Without kiosks the API and page answer 404 with the reason; with kiosks
// but no YuNet model they answer 503, and the daemon goes on.
func TestKioskMountFallbacks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		devices []KioskDevice
		status  int
		code    string
	}{
		{"no kiosks", nil, http.StatusNotFound, "kiosk_disabled"},
		{"no model", []KioskDevice{{ID: "k1", Token: kioskTestToken}}, http.StatusServiceUnavailable, "unavailable"},
	} {
		cfg := DefaultConfig()
		cfg.Models.Dir = t.TempDir() // holds no model
		cfg.Kiosk.Devices = tc.devices
		d := NewDaemon(cfg, testLogger(t))
		mux := http.NewServeMux()
		d.mountKiosk(mux)
		srv := httptestServer(t, mux)
		for _, path := range []string{"/v1/enrollments", "/kiosk/"} {
			resp, err := http.Get(srv + path)
			if err != nil {
				t.Fatal(err)
			}
			var body struct{ Error struct{ Code string } }
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || body.Error.Code != tc.code {
				t.Errorf("%s: GET %s = %d %q, want %d %q", tc.name, path, resp.StatusCode, body.Error.Code, tc.status, tc.code)
			}
		}
	}
}

// The daemon checks a kiosk's staff sign-off against web.staff, with roles:
// a clerk may start an enrollment, not approve a withdrawal; a wrong
// password is refused; a supervisor may approve.
func TestKioskDaemonChecksStaff(t *testing.T) {
	d, _ := kioskDaemon(t)
	base := "http://" + d.HTTPAddr()
	post := func(path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+kioskTestToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Error struct{ Code string } }
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error.Code
	}
	for _, tc := range []struct {
		what, path, body string
		status           int
		code             string
	}{
		{"clerk starts", "/v1/enrollments", `{"customer_id":"C9","display_name":"x","staff":{"name":"staff-1","password":"` + kioskStaffPassword + `"}}`, 201, ""},
		{"wrong password", "/v1/enrollments", `{"customer_id":"C9","display_name":"x","staff":{"name":"staff-1","password":"guess-guess"}}`, 403, "staff_unauthorized"},
		{"free text", "/v1/enrollments", `{"customer_id":"C9","display_name":"x","verified_by":"staff-1"}`, 422, "invalid"},
		{"clerk withdraws", "/v1/customers/C9/withdraw", `{"confirm":true,"supervisor":{"name":"staff-1","password":"` + kioskStaffPassword + `"}}`, 403, "supervisor_required"},
		{"supervisor withdraws", "/v1/customers/C9/withdraw", `{"confirm":true,"supervisor":{"name":"Supervisor Li","password":"` + kioskSupervisorPassword + `"}}`, 404, "not_found"},
	} {
		if status, code := post(tc.path, tc.body); status != tc.status || code != tc.code {
			t.Errorf("%s: %d %q, want %d %q", tc.what, status, code, tc.status, tc.code)
		}
	}
}

func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
