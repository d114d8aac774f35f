package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
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
	"concierge/sqlite"
)

// The manager's panel of the lobby page, in a real Chromium against the
// real daemon: a claim made through the daemon's desk is counted in the
// report (recorded without ids), a manager sees the panel with it, and a
// member of staff neither sees the panel nor can read the report (403).
func TestLobbyManagerReportInBrowser(t *testing.T) {
	browser := testenv.Browser(t)
	const branch = "t1"
	d, base := lobbyDaemon(t, branch, nil)

	// Ms Wang arrives and Zhang claims her through the desk, as the page
	// and terminals do.
	a := msWang.arrival(branch)
	a.Tier.Level = "star5" // the preset's id, so the report names it
	if err := d.notifier.Notify(context.Background(), a, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.app.db.RecordVisit(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		return d.desk.Claim(context.Background(), a.ID, "Zhang")
	})

	// Over HTTP: staff get 403 JSON, the manager the report.
	report := func(name string) (int, []byte) {
		t.Helper()
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		body := `{"name":"` + name + `","password":"lobby-password-1"}`
		resp, err := c.Post(base+"signin", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("sign in %s: %v %v", name, resp, err)
		}
		resp.Body.Close()
		resp, err = c.Get(base + "report")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}
	if code, data := report("Zhang"); code != http.StatusForbidden || !strings.Contains(string(data), `"code":"unauthorized"`) {
		t.Fatalf("staff read the report: %d %s", code, data)
	}
	code, data := report("李经理")
	var rep alert.ServiceReport
	if code != http.StatusOK || json.Unmarshal(data, &rep) != nil || len(rep.Totals) != 1 || rep.Totals[0].Arrivals != 1 ||
		rep.Totals[0].Claims != 1 || rep.Totals[0].Level != "star5" || rep.Totals[0].LevelName != "五星" {
		t.Fatalf("manager's report: %d %s", code, data)
	}
	if strings.Contains(string(data), a.CustomerID) || strings.Contains(string(data), a.ID) || strings.Contains(string(data), "王") {
		t.Fatalf("the report names the customer or the alert: %s", data)
	}

	run := func(steps ...chromedp.Action[chromedp.Void]) { t.Helper(); browserRun(t, browser, steps...) }
	waitJS := func(what string, expr string) { t.Helper(); browserWait(t, browser, what, expr) }
	signIn := func(name string) { t.Helper(); lobbySignIn(t, browser, base, name) }

	// The manager sees the panel with today's row and the total.
	signIn("李经理")
	waitJS("report panel", `!document.querySelector('#report').hidden && document.querySelectorAll('#report tbody tr').length === 2`)
	rows, err := chromedp.Run(browser, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#report tbody tr')].map(r => r.innerText.replace(/\s+/g, ' ').trim())`))
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().Format(time.DateOnly)
	if len(rows) != 2 || !strings.HasPrefix(rows[0], today+" 五星 1 1 ") || !strings.HasPrefix(rows[1], "Total 五星 1 1 ") {
		t.Fatalf("report rows: %q", rows)
	}
	visible, err := chromedp.Run(browser, chromedp.Evaluate[bool](`(() => { const r = document.querySelector('#report').getBoundingClientRect(); return r.width > 0 && r.height > 0; })()`))
	if err != nil || !visible {
		t.Fatalf("report panel has no size: %v", err)
	}
	// On a landscape and a portrait tablet the panel and its table fit the
	// page's width (screenshots in the artifacts).
	for _, size := range [][2]int64{{1280, 800}, {800, 1280}} {
		run(chromedp.EmulateViewport(size[0], size[1]))
		fits, err := chromedp.Run(browser, chromedp.Evaluate[bool](`(() => {
			const r = document.querySelector('#report').getBoundingClientRect();
			const box = document.querySelector('#report');
			return document.documentElement.scrollWidth <= window.innerWidth && r.left >= 0 && r.right <= window.innerWidth &&
				box.scrollWidth <= box.clientWidth; })()`))
		if err != nil || !fits {
			t.Errorf("%dx%d: the report panel or its table is wider than the page (%v)", size[0], size[1], err)
		}
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(testenv.Artifact(t, fmt.Sprintf("lobby-manager-%dx%d.png", size[0], size[1])), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("signin-form")))
	waitJS("panel gone on sign-out", `document.querySelector('#report').hidden`)

	// Staff: no panel.
	signIn("Zhang")
	waitJS("staff page", `document.querySelector('#who').textContent.includes('Zhang')`)
	hidden, err := chromedp.Run(browser, chromedp.Evaluate[bool](`document.querySelector('#report').hidden && document.querySelector('#report').getBoundingClientRect().height === 0`))
	if err != nil || !hidden {
		t.Fatalf("staff see the manager's panel: %v", err)
	}
}

// lobbyDaemon runs the daemon (no cameras) with the branch's NATS beside
// it and two accounts: Zhang (staff) and 李经理 (manager), both with the
// password lobby-password-1. before runs on the config first.
func lobbyDaemon(t *testing.T, branch string, before func(*Config)) (*Daemon, string) {
	t.Helper()
	nats := newAlertEnv(t, branch)
	cfg := DefaultConfig()
	cfg.Branch = branch
	cfg.DB = filepath.Join(t.TempDir(), "c.db")
	cfg.Models.Dir = testenv.ModelsDir(t)
	cfg.Vision.Pool = 1
	cfg.resolveEngine()
	cfg.NATS.URL = nats.srv.ClientURL()
	cfg.NATS.NKeySeedFile = nats.creds.SeedFile(alert.IdentityDaemon)
	cfg.HTTP.Addr = "127.0.0.1:0"
	hash, err := bcrypt.GenerateFromPassword([]byte("lobby-password-1"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Web.Staff = []WebStaff{
		{Name: "Zhang", Password: string(hash)},
		{Name: "李经理", Password: string(hash), Role: "manager"},
	}
	if before != nil {
		before(&cfg)
	}
	d := NewDaemon(cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, "http://" + d.HTTPAddr() + "/lobby/"
}

func browserRun(t *testing.T, browser context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// browserWait waits up to 10 s until expr is true in the page.
func browserWait(t *testing.T, browser context.Context, what, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 15*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr,
		chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: %v\npage:\n%s", what, err, page)
	}
}

func lobbySignIn(t *testing.T, browser context.Context, base, name string) {
	t.Helper()
	browserRun(t, browser, chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.ID("signin-form")),
		chromedp.SendKeys(chromedp.ID("signin-name"), name),
		chromedp.SendKeys(chromedp.ID("signin-password"), "lobby-password-1"),
		chromedp.Click(chromedp.ID("signin-submit")),
		chromedp.WaitVisible(chromedp.ID("lobby")))
	browserWait(t, browser, "stream live", `document.querySelector('#conn').dataset.state === 'live'`)
}

// An arrival card names the tier and greets in the customer's language:
// a customer whose tier data says en gets "Five stars" and an English
// greeting, one who says zh "五星" and the Chinese one, whatever language
// the page itself is in. The tier comes from imported data through the
// daemon's own lookup, as check-in gets it.
func TestLobbyBadgeInCustomerLanguage(t *testing.T) {
	browser := testenv.Browser(t)
	const branch = "t1"
	var b strings.Builder
	b.WriteString("customer_id,month,points,form_of_address,language\n")
	for i := 4; i >= 1; i-- {
		month := time.Now().AddDate(0, -i, 0).Format("2006-01")
		fmt.Fprintf(&b, "C2001,%s,2000,Mr Brown,en\nC2002,%s,2000,王女士,zh\n", month, month)
	}
	d, base := lobbyDaemon(t, branch, func(cfg *Config) {
		csvPath := filepath.Join(t.TempDir(), "tiers.csv")
		if err := os.WriteFile(csvPath, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := runTiersCmd(t, "tiers", "import", "--db", cfg.DB, csvPath); r.code != 0 {
			t.Fatalf("tiers import: %d %s", r.code, r.stderr)
		}
	})
	lobbySignIn(t, browser, base, "Zhang")
	for _, c := range []struct{ id, badge, greeting string }{
		{"C2001", "Five stars", "“Hello Mr Brown, welcome.”"},
		{"C2002", "五星", "“王女士您好，欢迎光临”"},
	} {
		tier, _ := d.tiers.Lookup(c.id, time.Now())
		if tier == nil {
			t.Fatalf("%s: no tier from the imported data", c.id)
		}
		a := checkin.Arrival{ID: ulid.Make().String(), Branch: branch, Camera: "door-1", At: time.Now().UTC(),
			CustomerID: c.id, DisplayName: "x*", Distance: 0.5, Margin: 0.2, Votes: 2, Tier: tier}
		if err := d.notifier.Notify(context.Background(), a, nil); err != nil {
			t.Fatal(err)
		}
		card := fmt.Sprintf(`document.querySelector('.card[data-id="%s"]')`, a.ID)
		for _, lang := range []string{"en", "zh"} {
			browserWait(t, browser, c.id+" badge and greeting ("+lang+" page)", fmt.Sprintf(
				`(() => { const c = %s; if (!c) return false;
					if (document.documentElement.lang.slice(0, 2) !== %q) { document.querySelector('#lang').click(); return false; }
					return c.querySelector('.badge').textContent === %q && c.querySelector('.greeting').textContent.startsWith(%q.slice(0, -1)); })()`,
				card, lang, c.badge, c.greeting))
		}
	}
}

// The daemon purges service events older than report.retention at start
// and keeps the younger ones for the report.
func TestDaemonPurgesServiceEvents(t *testing.T) {
	now := time.Now()
	d, _ := lobbyDaemon(t, "t1", func(cfg *Config) {
		cfg.Report.Retention = 48 * time.Hour
		db, err := sqlite.Open(context.Background(), cfg.DB, cfg.dbOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, age := range []time.Duration{72 * time.Hour, time.Hour} {
			e := alert.ServiceEvent{Kind: alert.ServiceEscalation, Tier: &alert.Tier{Scheme: "icbc-stars", Level: "star5"}, At: now.Add(-age)}
			if err := db.RecordService(context.Background(), e); err != nil {
				t.Fatal(err)
			}
		}
	})
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		rep, err := d.app.db.ServiceReport(context.Background(), now.Add(-30*24*time.Hour), time.UTC)
		if err != nil {
			return err
		}
		if len(rep.Totals) != 1 || rep.Totals[0].Escalations != 1 {
			return fmt.Errorf("service events after the purge: %+v, want the one younger than 48h", rep.Totals)
		}
		return nil
	})
}
