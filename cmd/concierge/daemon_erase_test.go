package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"concierge/alert"
	"concierge/checkin"
	"concierge/internal/testenv"
	"concierge/sqlite"
)

// sseEvent is one event of the lobby's stream.
type sseEvent struct{ name, data string }

// lobbyStream signs in to the daemon's lobby page and reads its event
// stream into a channel until the test ends.
func lobbyStream(t *testing.T, base, name, password string) <-chan sseEvent {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	body, _ := json.Marshal(map[string]string{"name": name, "password": password})
	resp, err := c.Post(base+"/lobby/signin", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign in: %s", resp.Status)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/lobby/events", nil)
	resp, err = c.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	ch := make(chan sseEvent, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			switch l := sc.Text(); {
			case strings.HasPrefix(l, "event: "):
				ev.name = strings.TrimPrefix(l, "event: ")
			case strings.HasPrefix(l, "data: "):
				ev.data = strings.TrimPrefix(l, "data: ")
			case l == "" && ev.name != "":
				ch <- ev
				ev = sseEvent{}
			}
		}
	}()
	return ch
}

// awaitEvent returns the first event of the stream that pred accepts.
func awaitEvent(t *testing.T, ch <-chan sseEvent, within time.Duration, pred func(sseEvent) bool) sseEvent {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("the lobby's event stream ended")
			}
			if pred(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no such event within %v", within)
		}
	}
}

// Withdrawal while the daemon runs with faces on: the customer's name and
// face leave every file under the database and JetStream directories, no
// stream message names them, the open lobby page drops the card, and a
// page opened afterwards never gets it.
func TestDaemonWithdrawalErasesEverywhere(t *testing.T) {
	cfg, _ := enrolledConfig(t)
	cfg.Alerts.ThumbnailPx = 96
	cfg.Web.Staff = []WebStaff{{Name: "Zhang", Password: "lobby-password-1"}}
	d := NewDaemon(cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	base := "http://" + d.HTTPAddr()
	page := lobbyStream(t, base, "Zhang", "lobby-password-1")

	ctx := context.Background()
	face := faceThumbnail(t, "sample2.jpg", image.Rect(1437, 160, 1653, 394))
	send := func(customer string, thumb []byte) checkin.Arrival {
		a := checkin.Arrival{ID: ulid.Make().String(), Branch: cfg.Branch, Camera: "door-1", At: time.Now().UTC(),
			CustomerID: customer, DisplayName: "王*", Distance: 0.27, Margin: 0.15, Votes: 2, Thumbnail: thumb}
		if err := d.app.db.RecordVisit(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := d.notifier.Notify(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
		return a
	}
	gone, kept := send("C1001", face), send("C1002", nil)
	awaitEvent(t, page, 10*time.Second, func(e sseEvent) bool { return e.name == "arrival" && strings.Contains(e.data, gone.ID) })
	if err := d.desk.Claim(ctx, gone.ID, "Zhang"); err != nil {
		t.Fatal(err)
	}

	// `concierge forget`, another process on the same database.
	cfgFile := filepath.Join(t.TempDir(), "concierge.yaml")
	yaml := fmt.Sprintf("branch: t1\ndb: %s\nmodels: {dir: %s}\nvision: {pool: 1}\n", cfg.DB, cfg.Models.Dir)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONCIERGE_CONFIG", "")
	if _, errOut, code := run(t, "forget", "--config", cfgFile, "--customer", "C1001"); code != 0 {
		t.Fatalf("forget: %d %s", code, errOut)
	}
	ev := awaitEvent(t, page, 15*time.Second, func(e sseEvent) bool { return e.name == "erasure" })
	if !strings.Contains(ev.data, gone.ID) || strings.Contains(ev.data, kept.ID) || strings.Contains(ev.data, "C1001") {
		t.Fatalf("erasure event %s", ev.data)
	}
	testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if n, err := d.app.db.PendingErasures(ctx); err != nil || len(n) > 0 {
			return fmt.Errorf("%d erasures pending (%v)", len(n), err)
		}
		return nil
	})

	// No stream message names the customer; the other one's are there.
	nc, err := natsConnect(t, d.alertConn("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, alert.StreamName(cfg.Branch))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keptSeen := false
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(m.Data), "C1001") || m.Subject != alert.Subject(cfg.Branch, alert.FeedErasure) && strings.Contains(string(m.Data), gone.ID) {
			t.Errorf("stream message %d on %s still names the customer", seq, m.Subject)
		}
		keptSeen = keptSeen || strings.Contains(string(m.Data), kept.ID)
	}
	if !keptSeen {
		t.Error("the other customer's alerts left the stream too")
	}

	// A page opened now is never sent the card or the face.
	late := lobbyStream(t, base, "Zhang", "lobby-password-1")
	awaitEvent(t, late, 10*time.Second, func(e sseEvent) bool {
		if strings.Contains(e.data, gone.ID) && e.name != "erasure" {
			t.Fatalf("a new page was sent %s of the withdrawn customer: %.200s", e.name, e.data)
		}
		return e.name == "arrival" && strings.Contains(e.data, kept.ID)
	})

	// Every file under the database's and JetStream's directories, the WAL
	// included, while the daemon runs and after it stopped: the name and the
	// face are in none; the customer id only in the database's consent record.
	// A run from the middle of the face's base64 (a JPEG's header is the
	// same in every face).
	faceB64 := []byte(strings.Trim(testenv.MustJSON(t, face), `"`))
	faceB64 = faceB64[len(faceB64)/2 : len(faceB64)/2+64]
	scan := func(when string) {
		t.Helper()
		for _, dir := range []string{filepath.Dir(cfg.DB), cfg.NATS.StoreDir} {
			filepath.WalkDir(dir, func(path string, de os.DirEntry, err error) error {
				if err != nil || de.IsDir() {
					return err
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				for _, needle := range [][]byte{[]byte("Ms Wang"), []byte("王女士"), faceB64} {
					if bytes.Contains(b, needle) {
						t.Errorf("%s: %s still holds %q", when, path, needle[:min(len(needle), 20)])
					}
				}
				if strings.HasPrefix(path, cfg.NATS.StoreDir) && bytes.Contains(b, []byte("C1001")) {
					t.Errorf("%s: %s (JetStream) still holds the customer id", when, path)
				}
				return nil
			})
		}
	}
	scan("daemon running")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	scan("daemon stopped")
	db, err := sqlite.Open(ctx, cfg.DB, cfg.dbOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`SELECT COUNT(*) FROM visits WHERE customer_id = 'C1001'`,
		`SELECT COUNT(*) FROM alert_outbox WHERE CAST(payload AS TEXT) LIKE '%C1001%'`,
		`SELECT COUNT(*) FROM templates WHERE customer_id = 'C1001'`,
		`SELECT COUNT(*) FROM customers WHERE id = 'C1001' AND display_name <> ''`,
	} {
		var n int
		if err := db.SQL().QueryRow(q).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d (%v)", q, n, err)
		}
	}
	var consents int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM consents WHERE customer_id = 'C1001' AND withdrawn_at IS NOT NULL`).Scan(&consents); err != nil || consents == 0 {
		t.Errorf("the consent record proving the withdrawal is gone: %d %v", consents, err)
	}
}
