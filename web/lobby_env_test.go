package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/crypto/bcrypt"

	"concierge/alert"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

// The lobby's tests run against the real alert path: an embedded NATS
// server with JetStream in a temp dir, a Publisher with its SQLite outbox,
// and the lobby's own Subscriber and Claimer, served on a real listener.

const lobbyBranch = "b001"

// lobbyLogger shows the components' logs with -v only.
var lobbyLogger = testenv.Logger

// lobbyClock is a settable clock for session expiry and sign-in lockouts;
// it starts at the real time, because JetStream stamps messages with it.
type lobbyClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *lobbyClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *lobbyClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// lobbyEnv is a lobby served over HTTP with the alert path behind it.
type lobbyEnv struct {
	t     *testing.T
	srv   *alert.Server
	pub   *alert.Publisher
	lobby *Lobby
	http  *httptest.Server
	clock *lobbyClock
	book  *testenv.AlertBook
	cards *alert.Cards // confirmed cards become arrivals through check-in
}

const (
	zhangPassword = "correct horse battery"
	liPassword    = "staple-wrong-horse"
	tabletToken   = "tablet-token-0123456789abcdef"
)

// newLobbyEnv starts everything; edit may change the lobby's config.
func newLobbyEnv(t *testing.T, edit func(*LobbyConfig)) *lobbyEnv {
	t.Helper()
	log := lobbyLogger()
	srv := testenv.RunNATS(t)
	db := testdb.Open(t)
	conn := alert.ConnConfig{URL: srv.ClientURL(), ReconnectWait: 50 * time.Millisecond}
	pub, err := alert.NewPublisher(alert.PublisherConfig{Branch: lobbyBranch, Conn: conn, Logger: log,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	sub, err := alert.NewSubscriber(alert.SubscriberConfig{Branch: lobbyBranch, Conn: conn, RetryMax: 200 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	book := testenv.NewAlertBook()
	clock := &lobbyClock{}
	cc := checkin.DefaultConfig()
	cc.Branch = lobbyBranch
	svc, err := checkin.NewService(cc, enroll.NewGallery("m"))
	if err != nil {
		t.Fatal(err)
	}
	svc.Notifier, svc.Logger = pub, log
	cards := testenv.OpenCards(t, alert.CardsConfig{Branch: lobbyBranch, Conn: conn, Logger: log, Now: clock.Now}, svc, book)
	desk, err := alert.NewDesk(alert.DeskConfig{Branch: lobbyBranch, Conn: conn, Book: book, Cards: cards, Logger: log, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { desk.Close() })

	liHash, err := bcrypt.GenerateFromPassword([]byte(liPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := LobbyConfig{
		Staff: []Staff{
			{Name: "Zhang", Password: zhangPassword},
			{Name: "李经理", Password: string(liHash)},
			{Name: "lobby tablet", Token: tabletToken},
		},
		SessionKey: bytes.Repeat([]byte("k"), MinSessionKeyLen),
		Logger:     log,
		Now:        clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	l, err := NewLobby(cfg, sub, desk)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/lobby/", l)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	// Streams end before the server waits for its handlers.
	t.Cleanup(func() { l.Close() })
	return &lobbyEnv{t: t, srv: srv.Server, pub: pub, lobby: l, http: hs, clock: clock, book: book, cards: cards}
}

// arrival publishes the n-th arrival of a test, a 五星 VIP unless edit
// says otherwise, and returns it.
func (e *lobbyEnv) arrival(n int, risk []checkin.RiskFlag, edit func(*checkin.Arrival)) checkin.Arrival {
	e.t.Helper()
	at := time.Now().UTC()
	a := checkin.Arrival{
		ID: ulid.Make().String(), Branch: lobbyBranch, Camera: "door-1", At: at, FirstSeen: at.Add(-2 * time.Second),
		CustomerID: fmt.Sprintf("C%04d", 1000+n), DisplayName: "王*", Distance: 0.31, Margin: 0.12, Votes: 2,
		Tier: &checkin.Tier{Scheme: "icbc-stars", Level: "5", LevelName: "五星", VIP: true, RelationshipManager: "Li",
			FormOfAddress: "王女士", Service: &checkin.ServiceLevel{Priority: 2, Greeting: "王女士您好", Lane: "VIP room 1", NotifyRM: true}},
	}
	if edit != nil {
		edit(&a)
	}
	if err := e.pub.Notify(context.Background(), a, risk); err != nil {
		e.t.Fatal(err)
	}
	e.book.Set(a.ID, alert.AlertRecord{CustomerID: a.CustomerID, At: a.At})
	// Notify only writes the outbox; its sender publishes a moment later.
	// Wait, so that a claim made next is stored after the alert, as it is
	// when staff claim what they see.
	testenv.CheckFor(e.t, 5*time.Second, 5*time.Millisecond, func() error {
		if p, q := e.pub.Stats.Published.Load(), e.pub.Stats.Enqueued.Load(); p < q {
			return fmt.Errorf("%d of %d alert messages published", p, q)
		}
		return nil
	})
	return a
}

// lobbyClient is one browser: a cookie jar and the lobby's URL.
type lobbyClient struct {
	t    *testing.T
	base string
	http *http.Client
}

func (e *lobbyEnv) client() *lobbyClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &lobbyClient{t: e.t, base: e.http.URL + "/lobby/", http: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

// do sends a request; a non-nil body goes as JSON.
func (c *lobbyClient) do(method, path string, body any, header ...string) (*http.Response, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, data
}

// want checks a response's status and, for errors, the JSON error shape.
func want(t *testing.T, resp *http.Response, data []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, data)
	}
	if code == "" {
		return
	}
	var e errorBody
	if err := json.Unmarshal(data, &e); err != nil || e.Error.Code != code || e.Error.Message == "" {
		t.Fatalf("%s %s: body %s, want error code %q", resp.Request.Method, resp.Request.URL.Path, data, code)
	}
}

func (c *lobbyClient) signIn(name, password string) {
	c.t.Helper()
	resp, data := c.do("POST", "signin", map[string]string{"name": name, "password": password})
	want(c.t, resp, data, http.StatusOK, "")
}

// sseEvent is one parsed Server-Sent Event, or a comment line.
type sseEvent struct {
	ID, Name, Data, Comment string
}

// stream opens the event stream (after lastID when set) and returns its
// events; stop closes it.
func (c *lobbyClient) stream(lastID string) (events <-chan sseEvent, stop func()) {
	c.t.Helper()
	if lastID == "" {
		return c.streamPath("events")
	}
	return c.streamPath("events", "Last-Event-ID", lastID)
}

// streamPath opens the event stream at path with header pairs.
func (c *lobbyClient) streamPath(path string, header ...string) (events <-chan sseEvent, stop func()) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	// The stream outlives the client's overall timeout.
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		c.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		c.t.Fatalf("events: %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	ch := make(chan sseEvent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		send := func(e sseEvent) bool {
			select {
			case ch <- e:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for sc.Scan() {
			line := sc.Text()
			k, v, _ := strings.Cut(line, ": ")
			switch {
			case line == "":
				if ev.Name != "" && !send(ev) {
					return
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				if !send(sseEvent{Comment: line}) {
					return
				}
			case k == "id":
				ev.ID = v
			case k == "event":
				ev.Name = v
			case k == "data":
				ev.Data += v
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			resp.Body.Close()
			<-done
		})
	}
	c.t.Cleanup(stop)
	return ch, stop
}

// next returns the next event that is not a comment, failing the test
// after timeout or when the stream ends.
func next(t *testing.T, events <-chan sseEvent, timeout time.Duration) sseEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("event stream ended")
			}
			if ev.Comment != "" {
				continue
			}
			return ev
		case <-deadline:
			t.Fatalf("no event within %v", timeout)
		}
	}
}

// decode parses an event's data.
func decode[T any](t *testing.T, ev sseEvent) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(ev.Data), &v); err != nil {
		t.Fatalf("event %s data %q: %v", ev.Name, ev.Data, err)
	}
	return v
}
