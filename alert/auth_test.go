package alert_test

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

// closedServer is the daemon's embedded server: only the box's identities
// may connect.
func closedServer(tb testing.TB) (*alert.Server, alert.Credentials) {
	s, c, _ := closedServerIn(tb)
	return s, c
}

func closedServerIn(tb testing.TB) (*alert.Server, alert.Credentials, string) {
	tb.Helper()
	store := filepath.Join(tb.TempDir(), "js")
	s := testenv.RunNATS(tb, testenv.ClosedNATS(branch), testenv.JetStreamDir(store))
	if fi, err := os.Stat(store); err != nil || fi.Mode().Perm() != 0o700 {
		tb.Fatalf("JetStream store %v %v, want 0700", fi.Mode(), err)
	}
	return s.Server, s.Creds, store
}

// connectAs is a raw client of identity id, which reports permission
// errors instead of logging them.
func connectAs(tb testing.TB, url string, creds alert.Credentials, id alert.Identity) (*nats.Conn, jetstream.JetStream, chan error) {
	tb.Helper()
	opt, err := nats.NkeyOptionFromSeed(creds.SeedFile(id))
	if err != nil {
		tb.Fatal(err)
	}
	errs := make(chan error, 100)
	nc, err := nats.Connect(url, opt, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js, errs
}

func TestCredentialsFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats")
	creds, err := alert.EnsureCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("credentials dir: %v %v, want 0700", fi.Mode(), err)
	}
	keys := map[alert.Identity]string{}
	for _, id := range alert.Identities {
		fi, err := os.Stat(creds.SeedFile(id))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s seed: %v %v, want 0600", id, fi.Mode(), err)
		}
		if keys[id], err = creds.PublicKey(id); err != nil || !strings.HasPrefix(keys[id], "U") {
			t.Fatalf("%s public key %q: %v", id, keys[id], err)
		}
	}
	// A restart keeps the identities terminals were given.
	again, err := alert.EnsureCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	for id, k := range keys {
		if got, _ := again.PublicKey(id); got != k {
			t.Errorf("%s changed across starts", id)
		}
	}
	// A damaged seed is an error, never silently replaced.
	if err := os.WriteFile(creds.SeedFile(alert.IdentityLobby), []byte("not a seed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := alert.EnsureCredentials(dir); err == nil {
		t.Fatal("damaged seed accepted")
	}
}

// The embedded server is closed: no anonymous client, and each identity
// has only its job's permissions.
func TestClosedServerPermissions(t *testing.T) {
	srv, creds := closedServer(t)
	url := srv.ClientURL()

	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("an anonymous client was let in")
	} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("anonymous client: %v, want an authorization error", err)
	}

	db := testdb.Open(t)
	p := openPublisher(t, url, db, func(c *alert.PublisherConfig) { c.Conn = creds.Conn(url, "daemon", alert.IdentityDaemon) })
	a := vipArrival(1)
	if err := p.Notify(context.Background(), a, riskFlags); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if pending(t, db) > 0 {
			return errors.New("outbox not drained")
		}
		return nil
	})

	lobby := creds.Conn(url, "lobby", alert.IdentityLobby)
	lobby.ReconnectWait = 50 * time.Millisecond
	s, err := alert.NewSubscriber(alert.SubscriberConfig{Branch: branch, Conn: lobby, RetryMax: 100 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if got, _ := read(t, s, alert.FeedArrival, alert.Start{All: true}).next(t, 1); got[0] != a.ID {
		t.Fatalf("lobby's staff feed: %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	for m, err := range s.Alerts(ctx, alert.FeedManager, alert.Start{All: true}) {
		t.Fatalf("lobby read the manager feed: %s, %v", m.ID, err)
	}

	_, ljs, lerrs := connectAs(t, url, creds, alert.IdentityLobby)
	short := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 500*time.Millisecond)
	}
	c1, x1 := short()
	defer x1()
	if _, err := ljs.Publish(c1, alert.Subject(branch, alert.FeedArrival), []byte(`{"schema":"concierge.arrival.v1"}`)); err == nil {
		t.Error("lobby published an arrival")
	}
	c2, x2 := short()
	defer x2()
	if _, err := ljs.Publish(c2, alert.Subject(branch, alert.FeedClaim), []byte(`{"schema":"concierge.claim.v1"}`)); err == nil {
		t.Error("lobby published a claim into the stream, past the desk")
	}
	c3, x3 := short()
	defer x3()
	if _, err := ljs.Publish(c3, alert.Subject(branch, alert.FeedRejection), []byte(`{"schema":"concierge.rejection.v1"}`)); err == nil {
		t.Error("lobby published a mark into the stream, past the desk")
	}
	c4, x4 := short()
	defer x4()
	if err := ljs.DeleteStream(c4, alert.StreamName(branch)); err == nil {
		t.Error("lobby deleted the stream")
	}
	c5, x5 := short()
	defer x5()
	if st, err := ljs.Stream(c5, alert.StreamName(branch)); err == nil {
		if _, err := st.GetMsg(c5, 1); err == nil {
			t.Error("lobby fetched a stream message directly")
		}
	}
	c6, x6 := short()
	defer x6()
	if _, err := ljs.OrderedConsumer(c6, alert.StreamName(branch), jetstream.OrderedConsumerConfig{}); err == nil {
		t.Error("lobby made an unfiltered consumer (it would read the manager's subject)")
	}
	select {
	case err := <-lerrs:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(err.Error(), "Permissions Violation") {
			t.Errorf("lobby's refusals: %v", err)
		}
	case <-time.After(time.Second):
		t.Error("the server reported no permission violation to the lobby")
	}

	// The manager reads the manager's subject, with the risk flags.
	mgr := creds.Conn(url, "manager", alert.IdentityManager)
	ms, err := alert.NewSubscriber(alert.SubscriberConfig{Branch: branch, Conn: mgr, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ms.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	if _, as := read(t, ms, alert.FeedManager, alert.Start{All: true}).next(t, 1); as[0].ID != a.ID || len(as[0].RiskFlags) != 1 {
		t.Fatalf("manager's feed: %+v", as[0].Message)
	}
	_, mjs, _ := connectAs(t, url, creds, alert.IdentityManager)
	c7, x7 := short()
	defer x7()
	if err := mjs.DeleteStream(c7, alert.StreamName(branch)); err == nil {
		t.Error("manager deleted the stream")
	}
}

// Listening beyond loopback without TLS is refused.
func TestServerRefusesPlainNetworkListen(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:-1", ":-1"} {
		s := alert.NewServer(alert.ServerConfig{Listen: listen, StoreDir: t.TempDir(), Logger: testLogger()})
		if err := s.Open(); err == nil {
			s.Close()
			t.Errorf("listen %s without TLS was accepted", listen)
		} else if !strings.Contains(err.Error(), "TLS") {
			t.Errorf("listen %s: %v, want a reason naming TLS", listen, err)
		}
	}
}

// Claims and marks reach the stream only through the desk, which checks
// the staff member's credential and the alert.
func TestDesk(t *testing.T) {
	srv, creds := closedServer(t)
	url := srv.ClientURL()
	a, b := vipArrival(1), vipArrival(2)
	bk := testenv.NewAlertBook()
	bk.Set(a.ID, alert.AlertRecord{CustomerID: a.CustomerID, At: a.At})
	bk.Set(b.ID, alert.AlertRecord{CustomerID: b.CustomerID, At: b.At})
	// The publisher makes the stream, as the daemon's does.
	db := testdb.Open(t)
	p := openPublisher(t, url, db, func(c *alert.PublisherConfig) { c.Conn = creds.Conn(url, "daemon", alert.IdentityDaemon) })
	for _, x := range []checkin.Arrival{a, b} {
		if err := p.Notify(context.Background(), x, nil); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if pending(t, db) > 0 {
			return errors.New("outbox not drained")
		}
		return nil
	})
	_, djs, _ := connectAs(t, url, creds, alert.IdentityDaemon)
	now := a.At.Add(time.Minute)
	desk, err := alert.NewDesk(alert.DeskConfig{Branch: branch, Conn: creds.Conn(url, "desk", alert.IdentityDaemon), Book: bk,
		Staff: testenv.StaffList{"Zhang": "pin-1234"}, Logger: testLogger(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer desk.Close()
	if err := desk.Listen(); err != nil {
		t.Fatal(err)
	}
	lobby := creds.Conn(url, "terminal", alert.IdentityLobby)
	ask := func(verb string, r alert.DeskRequest) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return alert.AskDesk(ctx, lobby, branch, verb, r, testLogger())
	}
	for name, tc := range map[string]struct {
		verb string
		req  alert.DeskRequest
		code string
	}{
		"no password":     {"claim", alert.DeskRequest{AlertID: a.ID, By: "Zhang"}, concierge.EUNAUTHORIZED},
		"wrong password":  {"claim", alert.DeskRequest{AlertID: a.ID, By: "Zhang", Secret: "pin-0000"}, concierge.EUNAUTHORIZED},
		"unknown staff":   {"reject", alert.DeskRequest{AlertID: a.ID, By: "Mallory", Secret: "pin-1234"}, concierge.EUNAUTHORIZED},
		"unknown alert":   {"claim", alert.DeskRequest{AlertID: "01JP98PWCR5S2K33TS5K32AFDS", By: "Zhang", Secret: "pin-1234"}, concierge.ENOTFOUND},
		"forged mark":     {"reject", alert.DeskRequest{AlertID: "01JP98PWCR5S2K33TS5K32AFDS", By: "Zhang", Secret: "pin-1234"}, concierge.ENOTFOUND},
		"not an alert id": {"claim", alert.DeskRequest{AlertID: "a.>", By: "Zhang", Secret: "pin-1234"}, concierge.EINVALID},
	} {
		if err := ask(tc.verb, tc.req); concierge.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	js := djs
	ctx := context.Background()
	for _, f := range []alert.Feed{alert.FeedClaim, alert.FeedRejection} {
		if msgs, _ := streamMsgs(ctx, js, alert.Subject(branch, f)); len(msgs) != 0 {
			t.Fatalf("refused requests reached the stream: %d on %s", len(msgs), f)
		}
	}

	if err := ask("claim", alert.DeskRequest{AlertID: a.ID, By: "Zhang", Secret: "pin-1234"}); err != nil {
		t.Fatal(err)
	}
	if err := ask("claim", alert.DeskRequest{AlertID: a.ID, By: "Zhang", Secret: "pin-1234"}); !errors.Is(err, alert.ErrAlreadyClaimed) ||
		concierge.ErrorCode(err) != concierge.ECONFLICT {
		t.Fatalf("second claim: %v", err)
	}
	if err := ask("reject", alert.DeskRequest{AlertID: b.ID, By: "Zhang", Secret: "pin-1234", Reason: "older man"}); err != nil {
		t.Fatal(err)
	}
	msgs, err := streamMsgs(ctx, js, alert.Subject(branch, alert.FeedRejection))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("rejections in the stream: %d, %v", len(msgs), err)
	}
	// The mark names the customer of the daemon's record.
	if !strings.Contains(string(msgs[0].Data), `"customer_id":"`+b.CustomerID+`"`) {
		t.Fatalf("rejection %s does not name the recorded customer", msgs[0].Data)
	}
	// An expired alert is closed.
	now = a.At.Add(alert.DefaultAlertTTL + time.Second)
	if err := desk.Reject(ctx, a.ID, "Zhang", ""); concierge.ErrorCode(err) != concierge.ECONFLICT {
		t.Fatalf("mark of an expired alert: %v", err)
	}
}

// queue is the database's erasure queue as the eraser sees it; the real
// one (sqlite) is tested with the daemon in cmd/concierge.
type queue struct {
	mu       sync.Mutex
	reqs     []alert.ErasureRequest
	finished []int64
}

func (q *queue) PendingErasures(context.Context) ([]alert.ErasureRequest, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]alert.ErasureRequest(nil), q.reqs...), nil
}

func (q *queue) FinishErasure(_ context.Context, id int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, r := range q.reqs {
		if r.ID == id {
			q.reqs = append(q.reqs[:i], q.reqs[i+1:]...)
			q.finished = append(q.finished, id)
		}
	}
	return nil
}

// A withdrawn customer's alerts leave the stream (every feed, faces
// included) and the screens; other customers' stay.
func TestEraser(t *testing.T) {
	srv, creds, store := closedServerIn(t)
	url := srv.ClientURL()
	db := testdb.Open(t)
	p := openPublisher(t, url, db, func(c *alert.PublisherConfig) {
		c.Conn = creds.Conn(url, "daemon", alert.IdentityDaemon)
		c.AlertTTL = 100 * 365 * 24 * time.Hour // the test's arrivals are from 2025
	})
	gone, kept := vipArrival(1), vipArrival(2)
	gone.Thumbnail, kept.Thumbnail = []byte("\xff\xd8face-of-gone"), []byte("\xff\xd8face-of-kept")
	for _, x := range []checkin.Arrival{gone, kept} {
		if err := p.Notify(context.Background(), x, riskFlags); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if pending(t, db) > 0 {
			return errors.New("outbox not drained")
		}
		return nil
	})
	cl, err := alert.NewClaimer(creds.Conn(url, "daemon", alert.IdentityDaemon), branch, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := cl.Claim(ctx, gone.ID, "Zhang", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := cl.Reject(ctx, kept.ID, kept.CustomerID, "Li", "", time.Now()); err != nil {
		t.Fatal(err)
	}

	// A screen (the lobby identity) is open while the customer withdraws.
	lobby := creds.Conn(url, "lobby", alert.IdentityLobby)
	s, err := alert.NewSubscriber(alert.SubscriberConfig{Branch: branch, Conn: lobby, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	erased := make(chan alert.Erasure, 1)
	go func() {
		for ev, err := range s.Events(sctx, alert.Start{}, alert.FeedErasure) {
			if err == nil && ev.Erasure != nil {
				erased <- *ev.Erasure
				return
			}
		}
	}()

	q := &queue{reqs: []alert.ErasureRequest{{ID: 7, CustomerID: gone.CustomerID}}}
	e, err := alert.NewEraser(alert.EraserConfig{Branch: branch, Conn: creds.Conn(url, "eraser", alert.IdentityDaemon), Queue: q,
		Every: 20 * time.Millisecond, Settle: 50 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Open(); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	select {
	case x := <-erased:
		if len(x.AlertIDs) != 1 || x.AlertIDs[0] != gone.ID {
			t.Fatalf("erasure names %v, want [%s]", x.AlertIDs, gone.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no erasure reached the screen")
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		q.mu.Lock()
		defer q.mu.Unlock()
		if len(q.finished) != 1 {
			return errors.New("erasure not finished")
		}
		return nil
	})

	// What is left in the stream names only the other customer (and the
	// erasure, which names alerts, not people).
	_, js, _ := connectAs(t, url, creds, alert.IdentityDaemon)
	st, err := js.Stream(ctx, alert.StreamName(branch))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	left := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		left++
		if strings.Contains(string(m.Data), gone.CustomerID) || strings.Contains(string(m.Data), "face-of-gone") ||
			m.Subject != alert.Subject(branch, alert.FeedErasure) && strings.Contains(string(m.Data), gone.ID) {
			t.Errorf("seq %d on %s still names the withdrawn customer: %s", seq, m.Subject, m.Data)
		}
	}
	// Secure delete overwrote the messages where they lay on disk: the
	// store holds the other customer (once flushed) and never this one.
	goneFace := base64.StdEncoding.EncodeToString(gone.Thumbnail)
	testenv.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		var all []byte
		err := filepath.WalkDir(store, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			all = append(all, b...)
			return err
		})
		if err != nil {
			return err
		}
		for _, needle := range []string{gone.CustomerID, goneFace} {
			if strings.Contains(string(all), needle) {
				t.Fatalf("the JetStream store still holds %q", needle)
			}
		}
		if !strings.Contains(string(all), kept.CustomerID) {
			return errors.New("the store's files do not hold the kept customer yet (not flushed)")
		}
		return nil
	})
	// kept: arrival, manager copy, visit, rejection; plus the erasure.
	if left != 5 {
		t.Errorf("%d messages left, want 5", left)
	}
	if e.Stats.Deleted.Load() != 4 { // gone: arrival, manager copy, visit, claim
		t.Errorf("deleted %d messages, want 4", e.Stats.Deleted.Load())
	}
}

// With a store key the stream's files hold no alert in the clear, and an
// unencrypted store is converted, its alerts still readable.
func TestStoreEncrypted(t *testing.T) {
	creds, err := alert.EnsureCredentials(filepath.Join(t.TempDir(), "nats"))
	if err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	open := func(key string) *alert.Server {
		s := alert.NewServer(alert.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: store, Credentials: &creds, Branch: branch,
			StoreKey: key, Logger: testLogger()})
		if err := s.Open(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	publish := func(s *alert.Server, a checkin.Arrival) {
		db := testdb.Open(t)
		p := openPublisher(t, s.ClientURL(), db, func(c *alert.PublisherConfig) { c.Conn = creds.Conn(s.ClientURL(), "daemon", alert.IdentityDaemon) })
		if err := p.Notify(context.Background(), a, nil); err != nil {
			t.Fatal(err)
		}
		testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			if pending(t, db) > 0 {
				return errors.New("outbox not drained")
			}
			return nil
		})
		p.Close()
	}
	plainFiles := func(needle string) []string {
		var out []string
		filepath.WalkDir(store, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, _ := os.ReadFile(path); strings.Contains(string(b), needle) {
					out = append(out, path)
				}
			}
			return nil
		})
		return out
	}
	before := vipArrival(1)
	s := open("")
	publish(s, before)
	s.Close()
	if len(plainFiles(before.CustomerID)) == 0 {
		t.Fatal("control: an unencrypted store should hold the alert in the clear")
	}
	key, err := creds.StoreKey()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(creds.StoreKeyFile()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("store key file %v %v", fi.Mode(), err)
	}
	if again, _ := creds.StoreKey(); again != key {
		t.Fatal("the store key changed")
	}
	s = open(key)
	defer s.Close()
	after := vipArrival(2)
	publish(s, after)
	_, js, _ := connectAs(t, s.ClientURL(), creds, alert.IdentityDaemon)
	if err := wantStream(context.Background(), js, alert.Subject(branch, alert.FeedArrival), []string{before.ID, after.ID}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, id := range []string{before.CustomerID, after.CustomerID} {
		if f := plainFiles(id); len(f) > 0 {
			t.Errorf("%s in the clear in %v", id, f)
		}
	}
}
