package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"concierge/alert"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

// syncBuffer is a bytes.Buffer the command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimRight(s.b.String(), "\n"), "\n")
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// alertEnv is the daemon's half of the alert path: its closed embedded
// NATS server, a publisher and the desk that takes claims and marks.
type alertEnv struct {
	srv   *alert.Server
	pub   *alert.Publisher
	creds alert.Credentials
	book  *testenv.AlertBook
	cards *alert.Cards // verify cards; confirmed ones become arrivals through check-in
}

const staffPIN = "pin-2468"

func newAlertEnv(t *testing.T, branch string) *alertEnv {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := testenv.RunNATS(t, testenv.ClosedNATS(branch))
	creds := srv.Creds
	db := testdb.Open(t)
	daemon := creds.Conn(srv.ClientURL(), "daemon", alert.IdentityDaemon)
	pub, err := alert.NewPublisher(alert.PublisherConfig{Branch: branch, Conn: daemon, Logger: quiet}, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	book := testenv.NewAlertBook()
	cc := checkin.DefaultConfig()
	cc.Branch = branch
	svc, err := checkin.NewService(cc, enroll.NewGallery("m"))
	if err != nil {
		t.Fatal(err)
	}
	svc.Notifier, svc.Logger = pub, quiet
	cards := testenv.OpenCards(t, alert.CardsConfig{Branch: branch, Conn: daemon, Logger: quiet}, svc, book)
	desk, err := alert.NewDesk(alert.DeskConfig{Branch: branch, Conn: daemon, Book: book,
		Staff: testenv.StaffList{"Li": staffPIN, "Wang": staffPIN}, Cards: cards, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { desk.Close() })
	if err := desk.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONCIERGE_STAFF_PASSWORD", staffPIN)
	return &alertEnv{srv: srv.Server, pub: pub, creds: creds, book: book, cards: cards}
}

// config is a terminal's config for this box: nats.url with the lobby's
// (or the manager's) nkey seed, as a terminal off the box would have.
func (e *alertEnv) config(t *testing.T, branch string, id alert.Identity) string {
	t.Helper()
	return writeWatchConfig(t, "branch: "+branch+"\nnats:\n  url: "+e.srv.ClientURL()+"\n  nkey_seed_file: "+e.creds.SeedFile(id)+"\n")
}

func (e *alertEnv) notify(t *testing.T, branch, customer string, risk []checkin.RiskFlag) checkin.Arrival {
	t.Helper()
	at := time.Now().UTC()
	a := checkin.Arrival{
		ID: ulid.Make().String(), Branch: branch, Camera: "door-1", At: at, CustomerID: customer,
		DisplayName: "王*", Distance: 0.31, Margin: 0.1, Votes: 2,
		Tier: &checkin.Tier{Scheme: "icbc-stars", Level: "5", LevelName: "五星", VIP: true, RelationshipManager: "Li", FormOfAddress: "王女士"},
	}
	if err := e.pub.Notify(context.Background(), a, risk); err != nil {
		t.Fatal(err)
	}
	e.book.Set(a.ID, alert.AlertRecord{CustomerID: customer, At: at})
	return a
}

func writeWatchConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "concierge.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startWatch runs the command like the binary until the returned stop
// function cancels it; stop returns Run's error.
func startWatch(t *testing.T, args ...string) (*syncBuffer, *syncBuffer, func() error) {
	t.Helper()
	t.Setenv("CONCIERGE_CONFIG", "")
	t.Setenv("CONCIERGE_NATS_URL", "") // restored after the test ...
	os.Unsetenv("CONCIERGE_NATS_URL")  // ... but unset during it: empty would override nats.url
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Stdin: strings.NewReader("")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, append([]string{"watch"}, args...)) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("watch did not stop within 10s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return &stdout, &stderr, stop
}

func TestWatchJSON(t *testing.T) {
	env := newAlertEnv(t, "b001")
	first := env.notify(t, "b001", "C1001", nil)
	cfg := env.config(t, "b001", alert.IdentityLobby)
	stdout, stderr, stop := startWatch(t, "--config", cfg, "--json", "--since", "all")

	second := env.notify(t, "b001", "C1002", []checkin.RiskFlag{{Kind: "fraud", Reason: "F1"}})
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := len(stdout.lines()); stdout.String() == "" || n < 2 {
			return fmt.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatalf("watch: %v\nstderr: %s", err, stderr.String())
	}
	lines := stdout.lines()
	if len(lines) != 2 {
		t.Fatalf("stdout lines %q", lines)
	}
	for i, want := range []checkin.Arrival{first, second} {
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i+1, err, lines[i])
		}
		if m["schema"] != alert.Schema || m["id"] != want.ID || m["customer"].(map[string]any)["id"] != want.CustomerID {
			t.Errorf("line %d: %s", i+1, lines[i])
		}
		if _, ok := m["risk_flags"]; ok {
			t.Errorf("staff feed shows risk flags: %s", lines[i])
		}
	}
	// --json prints the message byte for byte as it was published.
	want, err := json.Marshal(alert.NewMessage(first, 30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if lines[0] != string(want) {
		t.Errorf("line 1\n got %s\nwant %s", lines[0], want)
	}
}

// With nats.url empty, watch reaches the daemon's embedded server at
// nats.listen, and by default shows only alerts from now on, readably.
func TestWatchEmbeddedReadable(t *testing.T) {
	env := newAlertEnv(t, "b007")
	old := env.notify(t, "b007", "C0001", nil)
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := env.pub.Stats.Published.Load(); n < 2 {
			return fmt.Errorf("%d of 2 messages of the old arrival published", n)
		}
		return nil
	})
	// On the box, watch reads the box's own lobby identity.
	cfg := writeWatchConfig(t, "branch: b007\nnats:\n  url: \"\"\n  listen: "+env.srv.Addr()+"\n  credentials_dir: "+env.creds.Dir+"\n")
	stdout, stderr, stop := startWatch(t, "--config", cfg)

	// When the subscription began cannot be observed: notify until it
	// shows one.
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if stdout.String() != "" {
			return nil
		}
		env.notify(t, "b007", "C1001", nil)
		return fmt.Errorf("nothing printed; stderr %q", stderr.String())
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, l := range stdout.lines() {
		if strings.Contains(l, old.CustomerID) {
			t.Errorf("an alert from before the watch started was printed: %s", l)
		}
		if !strings.Contains(l, "  door-1  VIP 五星  王女士  (C1001)  RM Li  distance 0.31") {
			t.Errorf("line %q", l)
		}
	}
}

func TestWatchManagerFeed(t *testing.T) {
	env := newAlertEnv(t, "b001")
	env.notify(t, "b001", "C1001", nil)
	env.notify(t, "b001", "C1002", []checkin.RiskFlag{{Kind: "aml", Reason: "R042"}})
	cfg := env.config(t, "b001", alert.IdentityManager)
	stdout, _, stop := startWatch(t, "--config", cfg, "--feed", "manager", "--since", "1h")
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if stdout.String() == "" {
			return errors.New("nothing printed")
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	lines := stdout.lines()
	if len(lines) != 1 || !strings.Contains(lines[0], "(C1002)") || !strings.HasSuffix(lines[0], "RISK aml:R042") {
		t.Fatalf("manager feed %q", lines)
	}
}

func TestWatchUsageErrors(t *testing.T) {
	t.Setenv("CONCIERGE_CONFIG", "")
	cfg := writeWatchConfig(t, "branch: b001\nnats:\n  url: \"\"\n  listen: 127.0.0.1:-1\n")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--since", "yesterday"}, 2, "--since"},
		{[]string{"--since", "-5m"}, 2, "--since"},
		{[]string{"--feed", "ack"}, 2, "feed"},
		{[]string{"extra"}, 2, "unexpected argument"},
		{[]string{"--config", cfg}, 1, "random port"},
	} {
		_, stderr, code := run(t, append([]string{"watch"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("watch %v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

func TestWatchURL(t *testing.T) {
	for _, tc := range []struct {
		cfg  NATSConfig
		want string
	}{
		{NATSConfig{URL: "nats://hq:4222", Listen: "127.0.0.1:4222"}, "nats://hq:4222"},
		{NATSConfig{Listen: "127.0.0.1:4333"}, "nats://127.0.0.1:4333"},
		{NATSConfig{Listen: "0.0.0.0:4222"}, "nats://127.0.0.1:4222"},
		{NATSConfig{Listen: ":4222"}, "nats://127.0.0.1:4222"},
		{NATSConfig{Listen: "[::]:4222"}, "nats://127.0.0.1:4222"},
	} {
		if url, err := watchURL(tc.cfg); err != nil || url != tc.want {
			t.Errorf("%+v: %q, %v; want %q", tc.cfg, url, err, tc.want)
		}
	}
	for _, listen := range []string{"127.0.0.1:-1", "nohost"} {
		if _, err := watchURL(NATSConfig{Listen: listen}); err == nil {
			t.Errorf("listen %q: no error", listen)
		}
	}
	cc := natsClient(NATSConfig{User: "lobby", Password: "pw", TLSCA: "ca.pem", CredsFile: "x.creds"}, "tls://hq:4222", "t")
	if cc.URL != "tls://hq:4222" || cc.Name != "t" || cc.User != "lobby" || cc.Password != "pw" || cc.TLSCA != "ca.pem" || cc.CredsFile != "x.creds" {
		t.Errorf("client settings not carried: %+v", cc)
	}
}

// A claim from one terminal is seen by another; the second claim of the
// same alert is refused, so every screen agrees on who took it.
func TestWatchClaims(t *testing.T) {
	env := newAlertEnv(t, "b001")
	a := env.notify(t, "b001", "C1001", nil)
	cfg := env.config(t, "b001", alert.IdentityLobby)
	stdout, stderr, stop := startWatch(t, "--config", cfg, "--since", "all")
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(stdout.String(), "(C1001)") {
			return fmt.Errorf("alert not shown yet: %q %q", stdout.String(), stderr.String())
		}
		return nil
	})
	out, errOut, code := run(t, "watch", "--config", cfg, "--claim", a.ID, "--by", "Li")
	if code != 0 || !strings.Contains(out, "claimed "+a.ID+" as Li") {
		t.Fatalf("claim: exit %d, %q %q", code, out, errOut)
	}
	_, errOut, code = run(t, "watch", "--config", cfg, "--claim", a.ID, "--by", "Wang")
	if code != 1 || !strings.Contains(errOut, "already claimed") {
		t.Fatalf("second claim: exit %d, %q", code, errOut)
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(stdout.String(), "claimed  "+a.ID+"  by Li") {
			return fmt.Errorf("claim not shown: %q", stdout.String())
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout.String(), "Wang") {
		t.Errorf("the refused claim was shown: %q", stdout.String())
	}
	if _, _, code := run(t, "watch", "--config", cfg, "--claim", a.ID); code != 2 {
		t.Errorf("--claim without --by: exit %d, want 2", code)
	}
}

// Holding the box's NATS credentials is not enough to act as staff: the
// desk checks the staff member's password, read from standard input when
// the environment has none, and refuses claims of alerts it never sent.
func TestWatchClaimNeedsStaff(t *testing.T) {
	env := newAlertEnv(t, "b001")
	a := env.notify(t, "b001", "C1001", nil)
	cfg := env.config(t, "b001", alert.IdentityLobby)
	os.Unsetenv("CONCIERGE_STAFF_PASSWORD")
	runIn := func(stdin string, args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(stdin)}
		code := m.exitCode(m.Run(context.Background(), args))
		return out.String(), errb.String(), code
	}
	if _, errOut, code := runIn("", "watch", "--config", cfg, "--claim", a.ID, "--by", "Li"); code == 0 || !strings.Contains(errOut, "password") {
		t.Errorf("claim without a password: exit %d, %q", code, errOut)
	}
	if _, errOut, code := runIn("wrong\n", "watch", "--config", cfg, "--claim", a.ID, "--by", "Li"); code == 0 || !strings.Contains(errOut, "unauthorized") && !strings.Contains(errOut, "wrong") {
		t.Errorf("claim with a wrong password: exit %d, %q", code, errOut)
	}
	if _, errOut, code := runIn(staffPIN+"\n", "watch", "--config", cfg, "--claim", a.ID, "--by", "Mallory"); code == 0 {
		t.Errorf("claim by someone not on the staff: exit %d, %q", code, errOut)
	}
	unknown := ulid.Make().String()
	if _, errOut, code := runIn(staffPIN+"\n", "watch", "--config", cfg, "--claim", unknown, "--by", "Li"); code != 1 || !strings.Contains(errOut, "no such alert") {
		t.Errorf("claim of an alert the daemon never sent: exit %d, %q", code, errOut)
	}
	if out, errOut, code := runIn(staffPIN+"\n", "watch", "--config", cfg, "--claim", a.ID, "--by", "Li"); code != 0 || !strings.Contains(out, "claimed") {
		t.Fatalf("claim: exit %d, %q %q", code, out, errOut)
	}
}

// Every terminal shows which alerts went to the manager and which were
// withdrawn as "not this person"; --reject marks an alert once, and the
// mark names the alert's customer as the stream holds it.
func TestWatchEscalationsAndRejections(t *testing.T) {
	env := newAlertEnv(t, "b001")
	first := env.notify(t, "b001", "C1001", nil)
	second := env.notify(t, "b001", "C1002", nil)
	cfg := env.config(t, "b001", alert.IdentityLobby)
	stdout, stderr, stop := startWatch(t, "--config", cfg, "--since", "all")
	jsonOut, _, stopJSON := startWatch(t, "--config", cfg, "--since", "all", "--json")

	// The daemon's escalator publishes through the same Claimer call.
	c, err := alert.NewClaimer(env.creds.Conn(env.srv.ClientURL(), "escalator", alert.IdentityDaemon), "b001", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, err := c.Escalate(context.Background(), alert.Escalation{AlertID: first.ID, CustomerID: first.CustomerID,
		After: alert.Seconds(time.Minute), At: first.At.Add(time.Minute)}); err != nil || !ok {
		t.Fatalf("escalate: %v %v", ok, err)
	}
	out, errOut, code := run(t, "watch", "--config", cfg, "--reject", second.ID, "--by", "Li", "--reason", "different person")
	if code != 0 || !strings.Contains(out, "marked "+second.ID+" not this person as Li") {
		t.Fatalf("reject: exit %d, %q %q", code, out, errOut)
	}
	_, errOut, code = run(t, "watch", "--config", cfg, "--reject", second.ID, "--by", "Wang")
	if code != 1 || !strings.Contains(errOut, "already marked") {
		t.Fatalf("second mark: exit %d, %q", code, errOut)
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		s := stdout.String()
		if !strings.Contains(s, "  ESCALATED  "+first.ID+"  (C1001)  unclaimed for 60s") ||
			!strings.Contains(s, "  withdrawn  "+second.ID+"  not this person, by Li: different person") {
			return fmt.Errorf("stdout %q, stderr %q", s, stderr.String())
		}
		return nil
	})
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := len(jsonOut.lines()); n < 4 {
			return fmt.Errorf("%d JSON lines", n)
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := stopJSON(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout.String(), "Wang") {
		t.Errorf("the refused mark was shown: %q", stdout.String())
	}
	schemas := map[string]int{}
	for _, l := range jsonOut.lines() {
		var m struct {
			Schema     string `json:"schema"`
			AlertID    string `json:"alert_id"`
			CustomerID string `json:"customer_id"`
			By         string `json:"by"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		schemas[m.Schema]++
		if m.Schema == alert.RejectionSchema && (m.AlertID != second.ID || m.CustomerID != "C1002" || m.By != "Li") {
			t.Errorf("rejection %s", l)
		}
	}
	if want := map[string]int{alert.Schema: 2, alert.EscalationSchema: 1, alert.RejectionSchema: 1}; fmt.Sprint(schemas) != fmt.Sprint(want) {
		t.Errorf("JSON lines by schema %v, want %v", schemas, want)
	}

	// Bad marks: no staff name, not an alert id, an alert the stream
	// does not hold (made two minutes before the first one).
	unknown := ulid.MustNew(ulid.Timestamp(first.At.Add(-2*time.Minute)), ulid.DefaultEntropy()).String()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--reject", first.ID}, 2, "--by"},
		{[]string{"--reject", "nope", "--by", "Li"}, 2, "not an alert id"},
		{[]string{"--reject", first.ID, "--claim", first.ID, "--by", "Li"}, 2, "exclude"},
		{[]string{"--reason", "x"}, 2, "--reason goes with --reject"},
		{[]string{"--claim", first.ID, "--by", "Li", "--reason", "x"}, 2, "--reason goes with --reject"},
		{[]string{"--reject", unknown, "--by", "Li"}, 1, "no such alert"},
	} {
		_, errOut, code := run(t, append([]string{"watch", "--config", cfg}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("watch %v: exit %d, %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

// card publishes a verify card as the daemon's check-in would.
func (e *alertEnv) card(t *testing.T, branch, customer string) checkin.Card {
	t.Helper()
	c := checkin.Card{ID: ulid.Make().String(), Branch: branch, Camera: "door-1", At: time.Now().UTC(), CustomerID: customer,
		DisplayName: "王女士", Distance: 0.71, Margin: 0.1, Votes: 1, Thumbnail: []byte("jpeg")}
	if err := e.cards.NotifyCard(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

// Terminals print verify cards (--json: the message, face included);
// --confirm makes one a normal arrival verified by the member of staff,
// once; --dismiss deletes one; bad requests exit 2.
func TestWatchVerifyCards(t *testing.T) {
	env := newAlertEnv(t, "b001")
	cfg := env.config(t, "b001", alert.IdentityLobby)
	stdout, stderr, stop := startWatch(t, "--config", cfg, "--since", "all")
	jsonOut, _, stopJSON := startWatch(t, "--config", cfg, "--since", "all", "--json")
	c1 := env.card(t, "b001", "C2001")
	c2 := env.card(t, "b001", "C2002")
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(stdout.String(), "VERIFY  "+c1.ID) || !strings.Contains(stdout.String(), "is this 王女士 (C2001)?") {
			return fmt.Errorf("card not shown yet: %q %q", stdout.String(), stderr.String())
		}
		for _, l := range jsonOut.lines() {
			var m alert.CardMessage
			if json.Unmarshal([]byte(l), &m) == nil && m.Schema == alert.VerifySchema && m.ID == c1.ID && string(m.Thumbnail) == "jpeg" {
				return nil
			}
		}
		return fmt.Errorf("--json printed no card message: %q", jsonOut.String())
	})
	out, errOut, code := run(t, "watch", "--config", cfg, "--confirm", c1.ID, "--by", "Li")
	if code != 0 || !strings.Contains(out, "confirmed "+c1.ID) {
		t.Fatalf("confirm: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code := run(t, "watch", "--config", cfg, "--confirm", c1.ID, "--by", "Wang"); code != 1 || !strings.Contains(errOut, "no open card") {
		t.Fatalf("second confirm: exit %d, %q", code, errOut)
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, l := range stdout.lines() {
			if strings.Contains(l, "(C2001)") && strings.Contains(l, "verified by Li") && !strings.Contains(l, "VERIFY") {
				return nil
			}
		}
		return fmt.Errorf("confirmed arrival not shown: %q", stdout.String())
	})
	// The confirmed card is a normal alert: it can be claimed.
	if out, errOut, code := run(t, "watch", "--config", cfg, "--claim", c1.ID, "--by", "Li"); code != 0 {
		t.Fatalf("claim of a confirmed card: exit %d, %q %q", code, out, errOut)
	}
	if out, errOut, code := run(t, "watch", "--config", cfg, "--dismiss", c2.ID, "--by", "Li"); code != 0 || !strings.Contains(out, "dismissed "+c2.ID) {
		t.Fatalf("dismiss: exit %d, %q %q", code, out, errOut)
	}
	if _, _, code := run(t, "watch", "--config", cfg, "--confirm", c2.ID, "--by", "Li"); code != 1 {
		t.Fatalf("confirm of a dismissed card: exit %d", code)
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(stdout.String(), "confirmed  "+c1.ID+"  by Li") || !strings.Contains(stdout.String(), "dismissed  "+c2.ID+"  by Li") {
			return fmt.Errorf("answers not shown: %q", stdout.String())
		}
		return nil
	})
	for _, args := range [][]string{
		{"--confirm", c2.ID},                                   // no --by
		{"--confirm", "not-an-id", "--by", "Li"},               // not a card id
		{"--confirm", c2.ID, "--dismiss", c2.ID, "--by", "Li"}, // both
	} {
		if _, _, code := run(t, append([]string{"watch", "--config", cfg}, args...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := stopJSON(); err != nil {
		t.Fatal(err)
	}
}
