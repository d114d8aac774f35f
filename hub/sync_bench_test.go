package hub

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge/alert"
	"concierge/enroll"
	"concierge/face"
	"concierge/sqlite"
)

// BenchmarkSync measures how long a new box takes to catch up with a
// network of n customers (three templates each) held by the hub, and the
// process's peak RSS afterwards (hub and box share the process, so it is
// an upper bound for the box). CONCIERGE_SYNC_N overrides n;
// CONCIERGE_SYNC_DOORS=k gives each customer a door set of k templates
// too, which the box, learning, keeps.
func BenchmarkSync(b *testing.B) {
	ns := []int{1000, 10000}
	if v, err := strconv.Atoi(os.Getenv("CONCIERGE_SYNC_N")); err == nil && v > 0 {
		ns = []int{v}
	}
	for _, n := range ns {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchSync(b, n) })
	}
}

func benchSync(b *testing.B, n int) {
	doors, _ := strconv.Atoi(os.Getenv("CONCIERGE_SYNC_DOORS"))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	dir := filepath.Join(b.TempDir(), "hq")
	cfg, err := Init(InitOptions{Dir: dir, Branches: []string{"a", "b"}, Listen: "127.0.0.1:-1", LeafListen: "127.0.0.1:-1"})
	if err != nil {
		b.Fatal(err)
	}
	h := New(cfg)
	h.Logger = quiet
	if err := h.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	key, err := ReadKey(filepath.Join(dir, NetworkKeyFile))
	if err != nil {
		b.Fatal(err)
	}
	seed, _ := ReadSeed(filepath.Join(dir, "hub.nk"))
	admin, err := nats.Connect(h.ClientURL(), nkeyOption(seed))
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	js, _ := jetstream.New(admin)
	// Sealed as box a would: the replicator's own sealing, published
	// asynchronously for speed.
	sealer := &Replicator{cfg: ReplicatorConfig{Branch: "a"}, sealKey: derive(key, "concierge-net seal v1"),
		idKey: derive(key, "concierge-net subject v1")}
	at := time.Now().UTC()
	for i := range n {
		id := fmt.Sprintf("C%07d", i)
		e := enroll.NetworkEnrollment{Customer: enroll.Customer{ID: id, DisplayName: "Name " + id, Created: at},
			Consent: enroll.Consent{Reference: "F-" + id, TextVersion: "v", Channel: "kiosk", GrantedAt: at}}
		for k := range 3 {
			var emb face.Embedding
			for j := range emb {
				emb[j] = float32((i*7+k*13+j)%97) / 97
			}
			e.Templates = append(e.Templates, enroll.Template{Model: "m", Embedding: emb, Created: at})
		}
		ev := event{V: 1, Kind: enroll.ChangeEnroll, CustomerID: id, At: at}
		ev.fill(e)
		subj := sealer.subject("a", subjectCustomer, id)
		data, err := sealer.seal(subj, ev)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishAsync(subj, data); err != nil {
			b.Fatal(err)
		}
		if doors <= 0 {
			continue
		}
		ds := enroll.NetworkDoorSet{CustomerID: id}
		for k := range doors {
			t := enroll.NetworkDoorTemplate{Template: enroll.Template{Model: "m", Created: at}, VisitID: fmt.Sprintf("V%d-%d", i, k)}
			for j := range t.Embedding {
				t.Embedding[j] = float32((i*5+k*11+j)%89) / 89
			}
			ds.Templates = append(ds.Templates, t)
		}
		ev = event{V: 1, Kind: enroll.ChangeDoor, CustomerID: id, At: at}
		ev.fillDoor(ds)
		subj = sealer.subject("a", subjectDoor, id)
		if data, err = sealer.seal(subj, ev); err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishAsync(subj, data); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatal("publishing timed out")
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		box := b.TempDir()
		db, err := sqlite.Open(context.Background(), filepath.Join(box, "c.db"))
		if err != nil {
			b.Fatal(err)
		}
		creds, _ := alert.EnsureCredentials(filepath.Join(box, "nats"))
		srv := alert.NewServer(alert.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(box, "js"),
			Credentials: &creds, Branch: "b", Logger: quiet, HQURL: h.LeafURL(), HQCredentials: CredsFile(dir, "b")})
		if err := srv.Open(); err != nil {
			b.Fatal(err)
		}
		opt, _ := nats.NkeyOptionFromSeed(creds.SeedFile(alert.IdentityDaemon))
		nc, err := nats.Connect(srv.ClientURL(), opt)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := NewReplicator(ReplicatorConfig{Branch: "b", Conn: nc, Store: db, NetworkKey: key, Logger: quiet,
			DoorTemplates: 10})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		if err := rep.CatchUp(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		b.StopTimer()
		b.ReportMetric(time.Since(start).Seconds(), "sync-s")
		ts, err := db.Templates(context.Background(), "m")
		if err != nil || len(ts) != (3+max(doors, 0))*n {
			b.Fatalf("%d templates after sync, want %d: %v", len(ts), (3+max(doors, 0))*n, err)
		}
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-rss-MB")
		nc.Close()
		srv.Close()
		db.Close()
		b.StartTimer()
	}
}
