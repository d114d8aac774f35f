package kiosk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"concierge/enroll"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
	"concierge/sqlite"
	"concierge/vision"
	"concierge/web"
)

// The tests run the real thing: the YuNet + MobileFaceNet engine (the
// daemon's default), a SQLite file, real photos and clips, and the API
// over a real HTTP listener.

var (
	engineOnce sync.Once
	engine     *vision.DNNEngine
	engineErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if engine != nil {
		engine.Close()
	}
	os.Exit(code)
}

func mustEngine(tb testing.TB) *vision.DNNEngine {
	tb.Helper()
	dir := testenv.ModelsDir(tb)
	engineOnce.Do(func() { engine, engineErr = vision.NewDNNEngine(dir, 0, 40) })
	if engineErr != nil {
		tb.Skipf("the YuNet + MobileFaceNet models are needed (concierge models fetch --set onnx): %v", engineErr)
	}
	return engine
}

const (
	tokenA = "kiosk-a-token-0123456789abcdef0123"
	tokenB = "kiosk-b-token-0123456789abcdef0123"
)

// The members of staff of every fixture: a clerk who vouches for
// customers, and a supervisor who may approve what a kiosk may not do
// alone.
const (
	staffName          = "staff-17"
	staffPassword      = "clerk-password-17"
	supervisorName     = "主管 Wu"
	supervisorPassword = "supervisor-password"
)

type fixture struct {
	srv   *Server
	ts    *httptest.Server
	db    *sqlite.DB
	svc   *enroll.Service
	clock *testenv.Clock
	// steps is the challenge the server picks next; d12's and d3's
	// liveness sequences both turn left, then right.
	steps []enroll.Turn
}

// staffDirectory is the daemon's real credential check, as the kiosk sees it.
func staffDirectory(t testing.TB, now func() time.Time) StaffVerifier {
	t.Helper()
	dir, err := web.NewStaffDirectory([]web.Staff{
		{Name: staffName, Password: staffPassword},
		{Name: supervisorName, Password: supervisorPassword, Role: web.RoleSupervisor},
	}, web.DirectoryConfig{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return StaffVerifierFunc(func(ctx context.Context, name, secret, from string) (StaffMember, error) {
		s, err := dir.Verify(ctx, name, secret, from)
		return StaffMember{Name: s.Name, Supervisor: s.Role.Supervises()}, err
	})
}

// newFixture starts the API over a fresh database with two kiosks, A and
// B; opts adjust the options before the server is built.
func newFixture(t testing.TB, opts ...func(*Options)) *fixture {
	t.Helper()
	eng := mustEngine(t)
	db := testdb.Open(t)
	svc := &enroll.Service{Store: db, Detector: eng, Quality: enroll.DefaultQualityRule,
		Rule: enroll.Rule{Threshold: 0.80, Margin: 0.08}, DuplicateThreshold: 0.80}
	if err := svc.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	texts, err := LoadConsentTexts("", "")
	if err != nil {
		t.Fatal(err)
	}
	clk := testenv.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	fx := &fixture{db: db, svc: svc, clock: clk, steps: []enroll.Turn{enroll.TurnLeft, enroll.TurnRight}}
	o := Options{
		// The clock stands still unless a test moves it, so the buckets
		// would not refill: a large burst keeps the limit out of the way.
		Config:    Config{Devices: []Device{{ID: "kiosk-a", Token: tokenA}, {ID: "kiosk-b", Token: tokenB}}, Burst: 1000},
		Service:   svc,
		Landmarks: eng,
		Consent:   texts,
		Audit: AuditFunc(func(ctx context.Context, e AuditEntry) error {
			return db.AppendAudit(ctx, sqlite.AuditEntry(e))
		}),
		Now:           clk.Now,
		Staff:         staffDirectory(t, clk.Now),
		PickChallenge: func() []enroll.Turn { return fx.steps },
	}
	for _, f := range opts {
		f(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv.Open()
	t.Cleanup(func() { srv.Close() })
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	fx.srv, fx.ts = srv, ts
	return fx
}

// reply is a decoded response.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// code is the error code of an error reply.
func (r reply) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// do sends a request; header holds extra name, value pairs.
func (f *fixture) do(t testing.TB, method, path, token, contentType string, body []byte, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	rep := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &rep.body); err != nil {
			t.Fatalf("%s %s: %d, body is not JSON: %q", method, path, resp.StatusCode, raw)
		}
	}
	return rep
}

func (f *fixture) json(t testing.TB, method, path, token string, v any) reply {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return f.do(t, method, path, token, "application/json", b)
}

// want fails the test unless the reply has the status (and error code).
func want(t testing.TB, what string, r reply, status int, code string) reply {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Fatalf("%s: got %d %q, want %d %q: %s", what, r.status, r.code(), status, code, r.raw)
	}
	return r
}

// start opens an enrollment at kiosk A and returns its id.
func (f *fixture) start(t testing.TB, customer string) string {
	t.Helper()
	r := want(t, "start", f.json(t, "POST", "/v1/enrollments", tokenA, startBody(customer, "王女士")), 201, "")
	return r.body["session_id"].(string)
}

// startBody is a start request signed by the clerk.
func startBody(customer, name string) map[string]any {
	return map[string]any{"customer_id": customer, "display_name": name,
		"staff": map[string]string{"name": staffName, "password": staffPassword}}
}

// supervisor is the supervisor's credential in a request body.
func supervisor() map[string]string {
	return map[string]string{"name": supervisorName, "password": supervisorPassword}
}

// liveness runs the liveness step at kiosk A: the challenge (steps as
// f.steps), the time a person takes to follow it, the frames.
func (f *fixture) liveness(t testing.TB, sid string, frames [][]byte) reply {
	t.Helper()
	ch := want(t, "challenge", f.do(t, "POST", "/v1/enrollments/"+sid+"/liveness/challenge", tokenA, "", nil), 201, "")
	if fmt.Sprint(ch.body["steps"]) != fmt.Sprint(f.steps) || ch.body["expires_at"] == nil {
		t.Fatalf("challenge: %s, want steps %v", ch.raw, f.steps)
	}
	f.clock.Add(3 * time.Second)
	body, ct := testenv.ImageForm(t, "frame", frames)
	return f.do(t, "POST", "/v1/enrollments/"+sid+"/liveness", tokenA, ct, body)
}

// access asks for access to a customer at kiosk A with their liveness
// frames (after a presence challenge).
func (f *fixture) access(t testing.TB, customer string, frames [][]byte) reply {
	t.Helper()
	want(t, "presence challenge", f.do(t, "POST", "/v1/customers/"+customer+"/challenge", tokenA, "", nil), 201, "")
	f.clock.Add(3 * time.Second)
	body, ct := testenv.ImageForm(t, "frame", frames)
	return f.do(t, "POST", "/v1/customers/"+customer+"/access", tokenA, ct, body)
}

// consent records the customer's consent to the current Chinese text.
func (f *fixture) consent(t testing.TB, sid string) {
	t.Helper()
	txt := f.srv.consent["zh"]
	want(t, "consent", f.json(t, "POST", "/v1/enrollments/"+sid+"/consent", tokenA, map[string]any{
		"text_version": txt.Version, "language": "zh", "sha256": txt.SHA256, "accepted": true}), 200, "")
}

// clipFrames returns n frames of a shared clip, one every `every`.
func clipFrames(t testing.TB, clip string, from, n, every int) [][]byte {
	t.Helper()
	frames, err := vision.ClipFrames(testenv.Shared(t, filepath.Join("data/video", clip)), from, n, every)
	if err != nil {
		t.Fatal(err)
	}
	return frames
}

// person is someone from a shared clip: enrollment photos (frames where
// they face the camera) and the liveness sequence of them turning.
type person struct {
	photos   [][]byte
	liveness [][]byte
}

// d12 is the man of LivePortrait's d12 clip, who turns his head far to
// both sides in its first four seconds.
func d12(t testing.TB) person {
	t.Helper()
	return person{photos: clipFrames(t, "d12.mp4", 0, 4, 3), liveness: clipFrames(t, "d12.mp4", 0, 10, 9)}
}

// d3 is the person of the d3 clip, someone else, who also turns to the
// left (frames 240-276) and then to the right (303-321).
func d3(t testing.TB) person {
	t.Helper()
	return person{photos: clipFrames(t, "d3.mp4", 60, 4, 4), liveness: clipFrames(t, "d3.mp4", 240, 10, 9)}
}

// blankPNG is a real image with no face in it.
func blankPNG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 320, 240))
	for y := 0; y < 240; y++ {
		for x := 0; x < 320; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rows counts a customer's rows in a table.
func (f *fixture) rows(t testing.TB, table, customer string) int {
	t.Helper()
	col := "customer_id"
	if table == "customers" {
		col = "id"
	}
	var n int
	if err := f.db.SQL().QueryRow(`SELECT COUNT(*) FROM `+table+` WHERE `+col+` = ?`, customer).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// nothingStored fails unless the database holds nothing of the customer.
func (f *fixture) nothingStored(t testing.TB, customer string) {
	t.Helper()
	for _, table := range []string{"customers", "consents", "templates"} {
		if n := f.rows(t, table, customer); n != 0 {
			t.Fatalf("%d rows of %s in %s: a half enrollment was stored", n, customer, table)
		}
	}
	if f.svc.Gallery.Templates(customer) != 0 {
		t.Fatalf("%s is in the gallery", customer)
	}
}

// audit returns the actions/outcomes audited for a customer.
func (f *fixture) audit(t testing.TB, customer string) []sqlite.AuditEntry {
	t.Helper()
	es, err := f.db.Audit(context.Background(), sqlite.AuditFilter{CustomerID: customer})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// flatPhoto is a photo held up to the camera and moved like a hand would:
// shifted, tilted and turned, ten frames.
func flatPhoto(t testing.TB, photo []byte) [][]byte {
	t.Helper()
	frames, err := vision.FlatClip(photo, 640, 480, 10, []vision.Hold{
		{X: -0.04, Height: 1.0, Yaw: -25, Pitch: 8, Roll: -5},
		{X: 0.04, Y: 0.03, Height: 1.1, Yaw: 30, Pitch: -8, Roll: 6},
		{Height: 1.0, Yaw: -10, Pitch: 12},
	})
	if err != nil {
		t.Fatal(err)
	}
	return frames
}
