package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
	"concierge/internal/testenv"
	"concierge/sqlite"
)

// feedbackDaemonConfig enrolls the demo customers from real photos into a
// fresh database for a daemon without cameras: the test hands it arrivals
// the way check-in does.
func feedbackDaemonConfig(t *testing.T) Config {
	t.Helper()
	cfg, _ := enrolledConfig(t)
	cfg.Alerts.EscalateAfter = 2 * time.Second
	return cfg
}

// arrive does what check-in does with an arrival: record the visit, then
// notify.
func arrive(t *testing.T, d *Daemon, customer string) checkin.Arrival {
	t.Helper()
	a := checkin.Arrival{ID: ulid.Make().String(), Branch: d.cfg.Branch, Camera: "door-1", At: time.Now().UTC(),
		CustomerID: customer, DisplayName: "王*", Distance: 0.27, Margin: 0.15, Votes: 2}
	ctx := context.Background()
	if err := d.app.db.RecordVisit(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := d.notifier.Notify(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	return a
}

func metric(t *testing.T, d *Daemon, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		var v float64
		if _, err := fmt.Sscanf(l, name+" %g", &v); err == nil && strings.HasPrefix(l, name+" ") {
			return v
		}
	}
	t.Fatalf("metric %s not exposed", name)
	return 0
}

// escalationsOf lists the alert ids of the escalations in the stream.
func escalationsOf(t *testing.T, d *Daemon, branch string) []string {
	t.Helper()
	nc, err := natsConnect(t, d.alertConn("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	s, err := js.Stream(ctx, alert.StreamName(branch))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == alert.Subject(branch, alert.FeedEscalation) {
			var e alert.Escalation
			if err := json.Unmarshal(m.Data, &e); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, e.AlertID)
		}
	}
	return ids
}

// The daemon end to end: an unclaimed alert is escalated once, even
// across a restart; a "not this person" mark is recorded for the customer
// of our own visit record (not the one the client named), tightens that
// customer's rule in the running check-in, is counted in the metrics, and
// still holds after a restart; `feedback list` shows it; `forget` deletes
// it.
func TestDaemonFeedback(t *testing.T) {
	cfg := feedbackDaemonConfig(t)
	d := NewDaemon(cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tighten := cfg.rule().Threshold / 10

	wrong := arrive(t, d, "C1001")
	waiting := arrive(t, d, "C1002")
	ctx := context.Background()
	// A lobby terminal cannot put a mark into the stream past the desk: a
	// forged mark naming C1003 is refused by the server.
	lobby, err := natsConnect(t, d.natsCreds.Conn(d.NATSURL(), "lobby", alert.IdentityLobby))
	if err != nil {
		t.Fatal(err)
	}
	defer lobby.Close()
	ljs, _ := jetstream.New(lobby)
	forged := fmt.Sprintf(`{"schema":%q,"alert_id":%q,"branch":%q,"customer_id":"C1003","by":"Mallory","time":%q}`,
		alert.RejectionSchema, waiting.ID, cfg.Branch, time.Now().UTC().Format(time.RFC3339))
	fctx, fcancel := context.WithTimeout(ctx, time.Second)
	if _, err := ljs.Publish(fctx, alert.Subject(cfg.Branch, alert.FeedRejection), []byte(forged)); err == nil {
		t.Error("a lobby terminal published a mark into the stream")
	}
	fcancel()
	// The desk marks the customer of the daemon's own visit record, and
	// refuses an alert the daemon never sent.
	if err := d.desk.Reject(ctx, wrong.ID, "Li", "different person"); err != nil {
		t.Fatal(err)
	}
	if err := d.desk.Reject(ctx, ulid.Make().String(), "Li", ""); concierge.ErrorCode(err) != concierge.ENOTFOUND {
		t.Fatalf("mark of an unknown alert: %v", err)
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if v, dt := d.checkin.Strictness("C1001", time.Now()); v != 1 || math.Abs(dt+tighten) > 1e-9 {
			return fmt.Errorf("C1001's rule: +%d votes, threshold %+.3f", v, dt)
		}
		return nil
	})
	for _, other := range []string{"C1002", "C1003"} {
		if v, dt := d.checkin.Strictness(other, time.Now()); v != 0 || dt != 0 {
			t.Errorf("%s's rule tightened: %d %v", other, v, dt)
		}
	}
	testenv.CheckFor(t, 15*time.Second, 100*time.Millisecond, func() error {
		if n := metric(t, d, "concierge_escalations_total"); n < 1 {
			return fmt.Errorf("%v escalations", n)
		}
		return nil
	})
	if n := metric(t, d, "concierge_false_matches_total"); n != 1 {
		t.Errorf("false_matches_total %v", n)
	}
	if n := metric(t, d, "concierge_customers_strict"); n != 1 {
		t.Errorf("customers_strict %v", n)
	}
	if got := escalationsOf(t, d, cfg.Branch); !strings.Contains(fmt.Sprint(got), waiting.ID) {
		t.Fatalf("escalations %v, want one for %s", got, waiting.ID)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Restarted (on the same JetStream store): the rule holds, the marks
	// are not counted again, nothing is escalated again.
	again := NewDaemon(cfg, testLogger(t))
	if err := again.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if v, dt := again.checkin.Strictness("C1001", time.Now()); v != 1 || math.Abs(dt+tighten) > 1e-9 {
		t.Errorf("after restart C1001's rule: +%d votes, threshold %+.3f", v, dt)
	}
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if n := again.feedback.esc.Stats.Events.Load(); n < 4 {
			return fmt.Errorf("restarted escalator read %d of 4+ messages", n)
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond) // a tick or more of the escalator
	if n := metric(t, again, "concierge_escalations_total"); n != 0 {
		t.Errorf("escalated %v alerts again after the restart", n)
	}
	if n := metric(t, again, "concierge_false_matches_total"); n != 0 {
		t.Errorf("replayed marks counted as new: %v", n)
	}
	counts := map[string]int{}
	for _, id := range escalationsOf(t, again, cfg.Branch) {
		counts[id]++
	}
	if counts[waiting.ID] != 1 {
		t.Errorf("escalations per alert %v", counts)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}

	// Operators see it; forget deletes it.
	cfgFile := filepath.Join(t.TempDir(), "concierge.yaml")
	yaml := fmt.Sprintf("branch: t1\ndb: %s\nmodels: {dir: %s}\nvision: {pool: 1}\n", cfg.DB, cfg.Models.Dir)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONCIERGE_CONFIG", "")
	out, errOut, code := run(t, "feedback", "list", "--config", cfgFile)
	if code != 0 || !strings.Contains(out, "C1001") || !strings.Contains(out, fmt.Sprintf("+1 votes, threshold %+.3f", -tighten)) {
		t.Fatalf("feedback list: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := run(t, "forget", "--config", cfgFile, "--customer", "C1001"); code != 0 {
		t.Fatalf("forget: %d %s", code, errOut)
	}
	db, err := sqlite.Open(ctx, cfg.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM false_matches`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d false matches left after forget (%v)", n, err)
	}
	if out, _, code := run(t, "feedback", "list", "--config", cfgFile); code != 0 || !strings.Contains(out, "no false matches") {
		t.Errorf("feedback list after forget: %q", out)
	}
}
