package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge/alert"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/hub"
	"concierge/internal/testenv"
	"concierge/sqlite"
	"concierge/vision"
)

// hqBranch is a branch daemon joined to the hub, and its config file.
type hqBranch struct {
	id   string
	path string
	cfg  Config
	d    *Daemon
}

// startBranch starts branch id's daemon; extra is more of its YAML.
func startBranch(t *testing.T, hqDir, leaf, id string, extra ...string) *hqBranch {
	t.Helper()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`branch: %s
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
cameras: []
hq:
  url: nats-leaf://%s
  credentials: %s
`, id, filepath.Join(dir, "c.db"), testenv.ModelsDir(t), filepath.Join(dir, "js"), leaf, hub.CredsFile(hqDir, id)) +
		strings.Join(extra, "")
	b := &hqBranch{id: id, path: filepath.Join(dir, id+".yaml")}
	if err := os.WriteFile(b.path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadConfigFile(b.path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.resolveEngine()
	b.cfg = cfg
	b.d = NewDaemon(cfg, testLogger(t))
	if err := b.d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.d.Close() })
	return b
}

// holds reports whether the branch's database has active templates of
// the customer, read as another process would.
func (b *hqBranch) holds(t *testing.T, customer string) bool {
	t.Helper()
	db, err := sqlite.Open(context.Background(), b.cfg.DB, b.cfg.dbOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM templates t JOIN consents c ON c.id = t.consent_id
		WHERE t.customer_id = ? AND c.withdrawn_at IS NULL`, customer).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// learnDoor stores a door template of the customer at the branch, learned
// from a visit, as the daemon's learner does: a copy of their first
// enrollment template.
func (b *hqBranch) learnDoor(t *testing.T, customer, visit string) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, b.cfg.DB, b.cfg.dbOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ts, err := db.CustomerTemplates(ctx, customer, b.d.app.svc.Gallery.Model())
	if err != nil || len(ts) == 0 {
		t.Fatalf("%s's templates at %s: %d, %v", customer, b.id, len(ts), err)
	}
	if err := db.RecordVisit(ctx, checkin.Arrival{ID: visit, Branch: b.id, Camera: "door-1", CustomerID: customer,
		At: time.Now(), Distance: 0.5, Margin: 0.1, Votes: 1}); err != nil {
		t.Fatal(err)
	}
	// The learner's consent check is not what this test is about: the
	// consent in force covers learning here, whatever text it recorded.
	var version string
	if err := db.SQL().QueryRowContext(ctx, `SELECT text_version FROM consents WHERE customer_id = ? AND withdrawn_at IS NULL
		ORDER BY granted_at DESC, id DESC LIMIT 1`, customer).Scan(&version); err != nil {
		t.Fatal(err)
	}
	door := enroll.Template{Embedding: ts[0].Embedding, Model: ts[0].Model, Created: time.Now()}
	if _, err := db.SaveDoorTemplates(ctx, enroll.DoorConsents{version}, customer, visit, []enroll.Template{door}, nil); err != nil {
		t.Fatal(err)
	}
}

// doorsFrom is how many door templates of the customer the branch holds
// from branch origin.
func (b *hqBranch) doorsFrom(t *testing.T, customer, origin string) int {
	t.Helper()
	db, err := sqlite.Open(context.Background(), b.cfg.DB, b.cfg.dbOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM templates WHERE customer_id = ? AND source = 'door' AND origin = ?`,
		customer, origin).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// position is how far the branch has applied the hub's stream.
func (b *hqBranch) position(t *testing.T) uint64 {
	t.Helper()
	db, err := sqlite.Open(context.Background(), b.cfg.DB, b.cfg.dbOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := db.NetworkPosition(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (b *hqBranch) tierSnapshots(t *testing.T, customer string) int {
	t.Helper()
	db, err := sqlite.Open(context.Background(), b.cfg.DB, b.cfg.dbOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := db.TierSnapshots(context.Background(), customer)
	if err != nil {
		t.Fatal(err)
	}
	return len(s)
}

func (b *hqBranch) enroll(t *testing.T, customer, scope string, photos []string) {
	t.Helper()
	args := append([]string{"enroll", "--config", b.path, "--customer", customer, "--name", "Name " + customer,
		"--consent", "F-" + customer, "--scope", scope}, photos...)
	if _, errOut, code := run(t, args...); code != 0 {
		t.Fatalf("enroll %s at %s: exit %d: %s", customer, b.id, code, errOut)
	}
}

func (b *hqBranch) forget(t *testing.T, customer string) {
	t.Helper()
	if _, errOut, code := run(t, "forget", "--config", b.path, "--customer", customer); code != 0 {
		t.Fatalf("forget %s at %s: exit %d: %s", customer, b.id, code, errOut)
	}
}

// kioskEnroll enrolls customer through the branch's kiosk API, as the
// kiosk page does: a clerk signs the start, the customer accepts the
// consent text served to the kiosk with scope, three photos of them are
// accepted, they follow the server's liveness challenge (turning frames),
// and the kiosk finishes.
func (b *hqBranch) kioskEnroll(t *testing.T, customer, scope string, photos, turning [][]byte) {
	t.Helper()
	base := "http://" + b.d.HTTPAddr()
	call := func(method, path, ctype string, body []byte, status int) map[string]any {
		t.Helper()
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+kioskTestToken)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		json.Unmarshal(raw, &out)
		if resp.StatusCode != status {
			t.Fatalf("kiosk at %s: %s %s: %d, want %d: %s", b.id, method, path, resp.StatusCode, status, raw)
		}
		return out
	}
	js := func(v any) []byte { return []byte(testenv.MustJSON(t, v)) }
	txt := call("GET", "/v1/consent-text?lang=zh", "", nil, 200)
	sid, _ := call("POST", "/v1/enrollments", "application/json", js(map[string]any{"customer_id": customer,
		"display_name": "Name " + customer, "staff": map[string]string{"name": "staff-1", "password": kioskStaffPassword}}), 201)["session_id"].(string)
	call("POST", "/v1/enrollments/"+sid+"/consent", "application/json", js(map[string]any{"text_version": txt["version"],
		"language": "zh", "sha256": txt["sha256"], "accepted": true, "scope": scope}), 200)
	for _, ph := range photos {
		call("POST", "/v1/enrollments/"+sid+"/photos", "image/jpeg", ph, 201)
	}
	ch := call("POST", "/v1/enrollments/"+sid+"/liveness/challenge", "", nil, 201)
	if fmt.Sprint(ch["steps"]) != fmt.Sprint(leftThenRight) {
		t.Fatalf("challenge %v, want %v, the turns of the clip", ch["steps"], leftThenRight)
	}
	// The customer follows the challenge: the kiosk films for the
	// seconds it gives, and the server refuses frames sent sooner than a
	// person could have turned.
	secs, _ := ch["seconds"].(float64)
	time.Sleep(time.Duration(secs * float64(time.Second)))
	form, ctype := testenv.ImageForm(t, "frame", turning)
	if lv := call("POST", "/v1/enrollments/"+sid+"/liveness", ctype, form, 200); lv["live"] != true {
		t.Fatalf("liveness at %s: %v", b.id, lv)
	}
	if fin := call("POST", "/v1/enrollments/"+sid+"/finish", "application/json", []byte("{}"), 201); fin["templates"] != float64(len(photos)) {
		t.Fatalf("finish at %s: %v", b.id, fin)
	}
}

// hubSubjects counts the events the hub's stream holds per subject under
// filter, read with the hub's own identity.
func hubSubjects(t *testing.T, hqDir, listen, filter string) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := testenv.HubStream(t, hqDir, "nats://"+listen).Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects
}

func eventually(t *testing.T, total time.Duration, what string, ok func() bool) {
	t.Helper()
	testenv.CheckFor(t, total, 100*time.Millisecond, func() error {
		if !ok() {
			return fmt.Errorf("not yet: %s", what)
		}
		return nil
	})
}

// runHubProcess runs `concierge hub --config` until the returned stop is
// called, and waits until it listens.
func runHubProcess(t *testing.T, config, listen string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	errb := &syncBuffer{}
	go func() {
		m := &Main{Stdout: &strings.Builder{}, Stderr: errb, Stdin: strings.NewReader("")}
		done <- m.exitCode(m.Run(ctx, []string{"hub", "--config", config}))
	}()
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		select {
		case code := <-done:
			t.Fatalf("hub exited %d: %s", code, errb.String())
		default:
		}
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err
	})
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("hub: exit %d: %s", code, errb.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

// The acceptance: a hub and two branch daemons on loopback with
// credentials from hub init.
func TestHubTwoBranches(t *testing.T) {
	blair, chretien, powell, schroeder := lfw(t, "Tony_Blair"), lfw(t, "Jean_Chretien"), lfw(t, "Colin_Powell"), lfw(t, "Gerhard_Schroeder")
	hqDir := filepath.Join(t.TempDir(), "hq")
	listen, leaf := testenv.FreeAddr(t), testenv.FreeAddr(t)
	if _, errOut, code := run(t, "hub", "init", "--dir", hqDir, "--branch", "a", "--branch", "b",
		"--listen", listen, "--leaf-listen", leaf); code != 0 {
		t.Fatalf("hub init: %s", errOut)
	}
	config := filepath.Join(hqDir, "hub.yaml")
	stop := runHubProcess(t, config, listen)
	// A box given another branch's credential refuses to start.
	wrong := filepath.Join(t.TempDir(), "wrong.yaml")
	os.WriteFile(wrong, []byte(fmt.Sprintf("branch: b\ndb: %s\nmodels:\n  dir: %s\nhttp:\n  addr: 127.0.0.1:0\nnats:\n  listen: 127.0.0.1:-1\n  store_dir: %s\ncameras: []\nhq:\n  url: nats-leaf://%s\n  credentials: %s\n",
		filepath.Join(t.TempDir(), "c.db"), testenv.ModelsDir(t), filepath.Join(t.TempDir(), "js"), leaf, hub.CredsFile(hqDir, "a"))), 0o600)
	wcfg, err := ReadConfigFile(wrong)
	if err != nil {
		t.Fatal(err)
	}
	wcfg.resolveEngine()
	wd := NewDaemon(wcfg, testLogger(t))
	if err := wd.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "made for branch \"a\"") {
		wd.Close()
		t.Fatalf("a box with another branch's credential: %v", err)
	}

	// a serves a kiosk, whose challenge is the turns of the d12 clip.
	kioskChallenge = func() []enroll.Turn { return leftThenRight }
	t.Cleanup(func() { kioskChallenge = nil })
	t.Setenv("KIOSK_TEST_TOKEN", kioskTestToken)
	// a learns from confirmed visits (the default), so it keeps door
	// templates from the network; b is set not to, so it keeps none.
	learning := "match:\n  door_templates: 10\n"
	a := startBranch(t, hqDir, leaf, "a", fmt.Sprintf(`kiosk:
  devices:
    - id: kiosk-1
      token: ${KIOSK_TEST_TOKEN}
web:
  staff:
    - {name: staff-1, password: "%s"}
`, kioskStaffPassword), learning)
	b := startBranch(t, hqDir, leaf, "b", "match:\n  door_templates: 0\n")

	// Branch scope stays at a; network scope, from the CLI and from the
	// kiosk, is recognised at b.
	a.enroll(t, "C-chretien", "branch", chretien[:3])
	// Five photos: from three, Blair's nearest other photo lay 0.699 from
	// his centroid, on the calibrated threshold for one customer (0.704
	// kiosk-only, 0.698 while learning from confirmed visits).
	a.enroll(t, "C-blair", "network", blair[:5])
	eventually(t, 10*time.Second, "Blair at b", func() bool { return b.holds(t, "C-blair") })
	// Photos not enrolled: b names Blair in some and nobody else in any.
	var probes [][]byte
	for _, f := range blair[5:11] {
		img, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		probes = append(probes, img)
	}
	if n := recognised(t, identifyCLI(t, b.path, probes), "C-blair"); n == 0 {
		t.Fatal("b recognised Blair in none of his photos")
	}
	d12 := func(from, n, every int) [][]byte {
		f, err := vision.ClipFrames(testenv.Shared(t, "data/video/d12.mp4"), from, n, every)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a.kioskEnroll(t, "C-kiosk", "network", d12(0, 3, 3), d12(0, 10, 9))
	eventually(t, 10*time.Second, "the kiosk's customer at b", func() bool { return b.holds(t, "C-kiosk") })
	// Frames of the clip the kiosk never sent, where he faces the camera.
	if n := recognised(t, identifyCLI(t, b.path, append(d12(12, 3, 8), d12(105, 2, 10)...)), "C-kiosk"); n == 0 {
		t.Fatal("b recognised the customer enrolled at a's kiosk in none of the frames")
	}
	if b.holds(t, "C-chretien") {
		t.Fatal("a branch-scope enrollment reached b")
	}
	// The hub's store holds one event for each of a's network customers
	// (subjects are keyed hashes of the ids), none for Chrétien.
	if subj := hubSubjects(t, hqDir, listen, hub.SubjectPrefix+".a.>"); len(subj) != 2 {
		t.Fatalf("the hub holds events on %d of a's subjects, want 2 (Blair, the kiosk's customer): %v", len(subj), subj)
	}

	// A tier file imported once at HQ reaches both branches; a bad one is
	// refused at HQ.
	csv := filepath.Join(t.TempDir(), "2024-03.csv")
	os.WriteFile(csv, []byte("customer_id,month,points,rm_name,form_of_address,risk_flags\nC-tier,2024-03,2000,李经理,李先生,\n"), 0o600)
	if out, errOut, code := run(t, "tiers", "import", "--hub", config, csv); code != 0 || !strings.Contains(out, "concierge-net.hq.tiers.") {
		t.Fatalf("tiers import --hub: exit %d: %s %s", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("customer_id,month,points\nC-x,2024-13,abc\n"), 0o600)
	if _, errOut, code := run(t, "tiers", "import", "--hub", config, bad); code != 1 {
		t.Fatalf("a bad tier file at HQ: exit %d: %s", code, errOut)
	}
	for _, br := range []*hqBranch{a, b} {
		eventually(t, 10*time.Second, "tiers at "+br.id, func() bool { return br.tierSnapshots(t, "C-tier") == 1 })
	}

	// a's credential, stolen, reads none of b's alerts and speaks not for b.
	thief, violations := testenv.ConnectBranch(t, "nats://"+listen, hub.CredsFile(hqDir, "a"))
	violation := func(what, subject string) {
		t.Helper()
		select {
		case err := <-violations:
			if msg := strings.ToLower(err.Error()); !strings.Contains(msg, "permissions violation for "+what) || !strings.Contains(err.Error(), subject) {
				t.Fatalf("%s %s with a's credential: %v", what, subject, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("a's credential may %s %s", what, subject)
		}
	}
	for _, subj := range []string{alert.Subject("b", alert.FeedArrival), "concierge.b.>"} {
		thief.Subscribe(subj, func(*nats.Msg) {})
		thief.Flush()
		violation("subscription", subj)
	}
	forged := hub.SubjectPrefix + ".b.c.0123456789abcdef0123456789abcdef"
	tjs, _ := jetstream.NewWithDomain(thief, hub.Domain)
	pctx, cancel := context.WithTimeout(context.Background(), time.Second)
	if _, err := tjs.Publish(pctx, forged, []byte("x")); err == nil {
		t.Fatal("a's credential published an enrollment event as b")
	}
	cancel()
	violation("publish", forged)
	if subj := hubSubjects(t, hqDir, listen, forged); len(subj) != 0 {
		t.Fatalf("the hub stored a's forged event for b: %v", subj)
	}

	// A door template of Blair stored at b (as a learner stores one)
	// reaches a, which learns; one stored at a never stays at b, which
	// does not.
	b.learnDoor(t, "C-blair", "01B-VISIT")
	eventually(t, 10*time.Second, "b's door template of Blair at a", func() bool { return a.doorsFrom(t, "C-blair", "b") == 1 })
	if subj := hubSubjects(t, hqDir, listen, hub.SubjectPrefix+".b.d.>"); len(subj) != 1 {
		t.Fatalf("the hub holds door sets on %d of b's subjects, want 1 (Blair's): %v", len(subj), subj)
	}
	a.learnDoor(t, "C-blair", "01A-VISIT")
	eventually(t, 10*time.Second, "a's door set in the hub", func() bool {
		return len(hubSubjects(t, hqDir, listen, hub.SubjectPrefix+".a.d.>")) == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	info, err := testenv.HubStream(t, hqDir, "nats://"+listen).Info(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "b reading the stream to its end", func() bool { return b.position(t) >= info.State.LastSeq })
	if n := b.doorsFrom(t, "C-blair", "a"); n != 0 {
		t.Fatalf("b, which does not learn, keeps %d of a's door templates", n)
	}

	// A withdrawal at b reaches a: a names Blair no more.
	if !a.holds(t, "C-blair") {
		t.Fatal("a lost Blair before the withdrawal")
	}
	b.forget(t, "C-blair")
	eventually(t, 10*time.Second, "Blair gone from a", func() bool { return !a.holds(t, "C-blair") })
	if n := a.doorsFrom(t, "C-blair", "b"); n != 0 {
		t.Fatalf("a keeps %d of b's door templates of Blair after his withdrawal", n)
	}
	if n := recognised(t, identifyCLI(t, a.path, probes), "C-blair"); n != 0 {
		t.Fatalf("a still names Blair in %d photos after his withdrawal at b", n)
	}

	// With the hub stopped both branches work on; their changes cross
	// once it is back.
	b.enroll(t, "C-powell", "network", powell[:3])
	eventually(t, 10*time.Second, "Powell at a", func() bool { return a.holds(t, "C-powell") })
	hqDown := func() bool {
		for _, p := range a.d.problems(context.Background(), time.Now().Add(hqStaleAfter-3*time.Second)) {
			if p.Component == "hq" {
				return true
			}
		}
		return false
	}
	if hqDown() {
		t.Fatal("/healthz reports the hub down while it runs")
	}
	stop()
	eventually(t, 10*time.Second, "/healthz reporting the hub's silence", hqDown)
	a.enroll(t, "C-schroeder", "network", schroeder[:3])
	b.forget(t, "C-powell")
	if !a.holds(t, "C-powell") || b.holds(t, "C-schroeder") {
		t.Fatal("changes crossed without the hub")
	}
	runHubProcess(t, config, listen)
	eventually(t, 30*time.Second, "Schroeder at b", func() bool { return b.holds(t, "C-schroeder") })
	eventually(t, 30*time.Second, "Powell gone from a", func() bool { return !a.holds(t, "C-powell") })
	eventually(t, 10*time.Second, "/healthz clear again", func() bool { return !hqDown() })
	if b.holds(t, "C-chretien") {
		t.Fatal("a branch-scope enrollment reached b after the hub's restart")
	}
}
