package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/oklog/ulid/v2"
	"golang.org/x/crypto/bcrypt"

	"concierge/alert"
	"concierge/checkin"
	"concierge/internal/testenv"
	"concierge/vision"
)

// lobbyCustomer is who walks in, as the lobby shows them.
type lobbyCustomer struct {
	id, masked, address, level, levelName string
	vip                                   bool
	priority                              int
	lane, rm                              string
	waited                                time.Duration
}

func (c lobbyCustomer) arrival(branch string) checkin.Arrival {
	at := time.Now().UTC()
	return checkin.Arrival{
		ID: ulid.Make().String(), Branch: branch, Camera: "door-1", At: at, FirstSeen: at.Add(-c.waited),
		CustomerID: c.id, DisplayName: c.masked, Distance: 0.5, Margin: 0.2, Votes: 2,
		Tier: &checkin.Tier{Scheme: "icbc-stars", Level: c.level, LevelName: c.levelName, VIP: c.vip,
			RelationshipManager: c.rm, FormOfAddress: c.address,
			Service: &checkin.ServiceLevel{Priority: c.priority, Greeting: c.address + "您好", Lane: c.lane, NotifyRM: c.vip}},
	}
}

var (
	msWang   = lobbyCustomer{"C1001", "王*", "王女士", "5", "五星", true, 2, "VIP room 1", "Li", 20 * time.Second}
	mrChen   = lobbyCustomer{"C1002", "陈*", "陈先生", "7", "七星", true, 1, "私人银行室", "周经理", 3 * time.Minute}
	msLi     = lobbyCustomer{"C1003", "李*", "李女士", "6", "六星", true, 1, "VIP room 2", "王经理", 2 * time.Minute}
	mrZhao   = lobbyCustomer{"C1004", "赵*", "赵先生", "3", "三星", false, 4, "Counter 3", "", 40 * time.Second}
	stranger = lobbyCustomer{"C1005", "孙*", "孙先生", "5", "五星", true, 2, "VIP room 1", "Li", 10 * time.Second}
)

// The lobby page in a real headless Chromium against the real daemon (no
// cameras): a member of staff signs in, an alert appears within a second
// of being published, they claim it and see the claim. The daemon then
// restarts on the same address while alerts are published; the open page
// shows them without a reload. Escalated alerts are marked, "not this
// person" withdraws one, and the page switches to Chinese for the
// screenshot (CONCIERGE_UPDATE_SCREENSHOTS=1 also writes docs/img/lobby.png).
func TestLobbyPageInBrowser(t *testing.T) {
	browser := testenv.Browser(t)
	const branch = "t1"
	// The branch's NATS lives outside the daemon here, so that alerts can
	// be published while the daemon is down.
	nats := newAlertEnv(t, branch)

	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Branch = branch
	cfg.DB = filepath.Join(dir, "c.db")
	cfg.Models.Dir = testenv.ModelsDir(t)
	cfg.Vision.Pool = 1
	cfg.resolveEngine()
	cfg.NATS.URL = nats.srv.ClientURL()
	cfg.NATS.NKeySeedFile = nats.creds.SeedFile(alert.IdentityDaemon) // an external server that authorizes
	cfg.HTTP.Addr = "127.0.0.1:0"
	hash, err := bcrypt.GenerateFromPassword([]byte("lobby-password-1"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Web.Staff = []WebStaff{{Name: "Zhang", Password: string(hash)}}

	open := func() *Daemon {
		t.Helper()
		d := NewDaemon(cfg, testLogger(t))
		if err := d.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	d := open()
	cfg.HTTP.Addr = d.HTTPAddr() // the restart listens here again
	base := "http://" + d.HTTPAddr()

	// The generated session key is private to the daemon's user.
	if st, err := os.Stat(filepath.Join(dir, sessionKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("session key file: %v %v", st, err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(base + "/")
	if err != nil || resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/lobby/" {
		t.Fatalf("GET /: %v %v", resp, err)
	}
	resp.Body.Close()

	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	// waitJS waits until expr is true in the page.
	waitJS := func(what string, timeout time.Duration, expr string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, timeout+5*time.Second)
		defer cancel()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr,
			chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(10*time.Millisecond))); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("%s: not within %v: %v\npage:\n%s", what, timeout, err, page)
		}
	}
	card := func(a checkin.Arrival) string {
		return fmt.Sprintf(`document.querySelector('.card[data-id="%s"]')`, a.ID)
	}

	// Sign in. A wrong password first: the page says so.
	run(chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("signin-form")),
		chromedp.SendKeys(chromedp.ID("signin-name"), "Zhang"),
		chromedp.SendKeys(chromedp.ID("signin-password"), "wrong-password"),
		chromedp.Click(chromedp.ID("signin-submit")))
	waitJS("refusal shown", 5*time.Second, `document.querySelector('#signin-error').textContent.includes('Wrong name or password')`)
	if _, err := chromedp.Run(browser, chromedp.Evaluate[bool](`(document.querySelector('#signin-password').value = '') === ''`)); err != nil {
		t.Fatal(err)
	}
	run(chromedp.SendKeys(chromedp.ID("signin-password"), "lobby-password-1"),
		chromedp.Click(chromedp.ID("signin-submit")),
		chromedp.WaitVisible(chromedp.ID("lobby")))
	waitJS("stream live", 10*time.Second, `document.querySelector('#conn').dataset.state === 'live'`)

	// An arrival published by the daemon's own publisher appears within 1 s.
	a := msWang.arrival(branch)
	a.Thumbnail = faceThumbnail(t, "sample2.jpg", image.Rect(1437, 160, 1653, 394))
	start := time.Now()
	if err := d.notifier.Notify(context.Background(), a, nil); err != nil {
		t.Fatal(err)
	}
	// The desk takes claims of alerts the daemon's visit log holds, as
	// check-in records them beside every alert.
	if err := d.app.db.RecordVisit(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	waitJS("arrival card", time.Second, card(a)+` !== null`)
	t.Logf("alert on the page %v after it was published", time.Since(start).Round(time.Millisecond))
	text := func(sel string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 10*time.Second)
		defer cancel()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](sel+`.innerText`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, want := range []string{"王女士", "王*", "五星", "VIP room 1", "RM: Li", "door-1", "I'm on it"} {
		if got := text(card(a)); !strings.Contains(got, want) {
			t.Fatalf("card lacks %q:\n%s", want, got)
		}
	}

	// The branch sends face thumbnails: the card shows the JPEG.
	waitJS("face thumbnail", 5*time.Second, card(a)+`.querySelector('.face').naturalWidth > 40 && !`+card(a)+`.querySelector('.face').hidden`)

	// Claim it: the claim comes back through the stream.
	run(chromedp.Click(chromedp.CSS(fmt.Sprintf(`.card[data-id="%s"] button.claim`, a.ID))))
	waitJS("claim shown", 5*time.Second, card(a)+`.querySelector('.claimed').textContent === 'Claimed by Zhang'`)

	// The daemon goes down; two VIPs arrive meanwhile; it comes back on the
	// same address. The page reconnects by itself and catches up.
	if _, err := chromedp.Run(browser, chromedp.Evaluate[bool](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	waitJS("page notices the outage", 10*time.Second, `document.querySelector('#conn').dataset.state !== 'live'`)
	b, c := mrChen.arrival(branch), msLi.arrival(branch)
	for _, x := range []checkin.Arrival{b, c} {
		if err := nats.pub.Notify(context.Background(), x, nil); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := nats.pub.Stats.Published.Load(); n < 4 { // two messages each: arrival and visit
			return fmt.Errorf("%d messages in JetStream", n)
		}
		return nil
	})
	d = open()
	waitJS("alerts published during the outage", 30*time.Second, card(b)+` !== null && `+card(c)+` !== null`)
	waitJS("stream live again", 10*time.Second, `document.querySelector('#conn').dataset.state === 'live'`)
	waitJS("no reload", time.Second, `window.notReloaded === true`)
	if got := text(card(a)); !strings.Contains(got, "Claimed by Zhang") {
		t.Fatalf("claim lost after the restart:\n%s", got)
	}

	// An escalation, as the daemon's escalator publishes it, marks a card;
	// "not this person" withdraws another on every screen.
	claims, err := alert.NewClaimer(nats.creds.Conn(nats.srv.ClientURL(), "escalator", alert.IdentityDaemon), branch, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer claims.Close()
	if _, err := claims.Escalate(context.Background(), alert.Escalation{AlertID: c.ID, CustomerID: c.CustomerID,
		After: alert.Seconds(2 * time.Minute), At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	dz, e := mrZhao.arrival(branch), stranger.arrival(branch)
	for _, x := range []checkin.Arrival{dz, e} {
		if err := d.notifier.Notify(context.Background(), x, nil); err != nil {
			t.Fatal(err)
		}
		if err := d.app.db.RecordVisit(context.Background(), x); err != nil {
			t.Fatal(err)
		}
	}
	waitJS("escalation marked", 5*time.Second, card(c)+`.classList.contains('escalated')`)
	waitJS("more arrivals", 5*time.Second, card(dz)+` !== null && `+card(e)+` !== null`)
	run(chromedp.Click(chromedp.CSS(fmt.Sprintf(`.card[data-id="%s"] button.reject`, e.ID))),
		chromedp.WaitVisible(chromedp.ID("reject-dialog")),
		chromedp.Click(chromedp.ID("reject-confirm")))
	waitJS("rejected alert withdrawn", 5*time.Second, card(e)+` === null`)

	// Unclaimed first, most urgent first, longest waiting first.
	order, err := chromedp.Run(browser, chromedp.Evaluate[[]string](`[...document.querySelectorAll('.card')].map(c => c.dataset.id)`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{b.ID, c.ID, dz.ID, a.ID}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("cards in order %v, want %v", order, want)
	}

	// 中文.
	run(chromedp.Click(chromedp.ID("lang")))
	waitJS("Chinese page", 5*time.Second, `document.querySelector('h1').textContent === '大堂到店提醒' && `+
		card(a)+`.querySelector('.claimed').textContent === 'Zhang 已接待'`)
	waitJS("new-VIP flashes over", 5*time.Second, `document.querySelector('.card.flash') === null`)
	ctx, cancel := context.WithTimeout(browser, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(testenv.Artifact(t, "lobby.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("CONCIERGE_UPDATE_SCREENSHOTS") == "1" {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", "lobby.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A customer withdraws consent: the eraser's message removes the card
	// and its face from the open page.
	nc, err := natsConnect(t, nats.creds.Conn(nats.srv.ClientURL(), "eraser", alert.IdentityDaemon))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	erasure, _ := json.Marshal(alert.Erasure{Schema: alert.ErasureSchema, Branch: branch, AlertIDs: []string{dz.ID}, At: time.Now()})
	if err := nc.Publish(alert.Subject(branch, alert.FeedErasure), erasure); err != nil {
		t.Fatal(err)
	}
	waitJS("erased customer's card removed", 5*time.Second, card(dz)+` === null`)
}

func TestWebConfig(t *testing.T) {
	// A bcrypt hash written in the file stays as it is; ${VAR} expands.
	t.Setenv("LOBBY_PW", "from-the-environment")
	c, err := ParseConfig(strings.NewReader(`
web:
  session_ttl: 8h
  staff:
    - {name: Zhang, password: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"}
    - {name: 李经理, password: "${LOBBY_PW}"}
    - {name: lobby tablet, token: "${LOBBY_PW}-and-more-to-be-long"}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Web.Staff
	if len(s) != 3 || s[0].Password != "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy" ||
		s[1].Password != "from-the-environment" || s[2].Token != "from-the-environment-and-more-to-be-long" || c.Web.SessionTTL != 8*time.Hour {
		t.Fatalf("web config %+v", c.Web)
	}
	if c.Web.Backlog != 30*time.Minute || c.Web.MaxSignInFailures != 5 {
		t.Fatalf("defaults lost: %+v", c.Web)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"web:\n  session_ttl: 0s\n", "web.session_ttl"},
		{"web:\n  session_key: short\n", "web.session_key"},
		{"web:\n  staff:\n    - {name: Zhang}\n", "web.staff[0]"},
		{"web:\n  staff:\n    - {name: Zhang, password: 1234}\n", "web.staff[0].password"},
		{"web:\n  staff:\n    - {name: Zhang, password: \"$2a$10$broken\"}\n", "bcrypt"},
		{"web:\n  staf: []\n", "staf"},
	} {
		if _, err := ParseConfig(strings.NewReader(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want mention of %q", tc.yaml, err, tc.want)
		}
	}
	for in, want := range map[string]string{
		"a ${LOBBY_PW} b":    "a from-the-environment b",
		"$LOBBY_PW $1 $$ $":  "$LOBBY_PW $1 $$ $",
		"${not closed":       "${not closed",
		"${1BAD} ${}":        "${1BAD} ${}",
		"${LOBBY_PW}${NOPE}": "from-the-environment",
	} {
		if got := expandBraced(in, os.Getenv); got != want {
			t.Errorf("expandBraced(%q) = %q, want %q", in, got, want)
		}
	}
}

// faceThumbnail renders the face in box of one of the real photos as the
// camera does when alerts.thumbnail_px is set.
func faceThumbnail(t *testing.T, photo string, box image.Rectangle) []byte {
	t.Helper()
	img, err := vision.Decode(testenv.ReadPhoto(t, photo), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	b, err := vision.Thumbnail(img, box, 96)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
