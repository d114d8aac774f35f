package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"concierge/alert"
)

func runDemo(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("demo")
	photos := fs.String("photos", defaultPhotosDir(), "folder holding the demo photos sample1.jpg … sample6.jpg")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := m.config()
	if err != nil {
		return err
	}
	// The demo's own output tells the story; routine logs would drown it.
	m.Logger = newLogger(m.Stderr, LogConfig{Level: "warn", Format: cfg.Log.Format})
	if m.dbPath == "" {
		dir, err := os.MkdirTemp("", "concierge-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.DB = filepath.Join(dir, "concierge.db")
	}
	app, err := m.openFaceApp(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer app.Close()

	out := m.Stdout
	fmt.Fprintf(out, "Concierge demo: enroll customers who consented, then recognise them in group photos.\n")
	fmt.Fprintf(out, "engine %s; database %s\n\n", app.svc.Gallery.Model(), cfg.DB)

	fmt.Fprintln(out, "Enrollment (3 kiosk-style shots per customer, cut from a photo at other framing, size and JPEG quality):")
	world, err := loadDemoWorld(ctx, app, *photos)
	if err != nil {
		return err
	}
	results, err := world.enroll(ctx, app.svc)
	if err != nil {
		return err
	}
	for i, c := range demoCustomers {
		fmt.Fprintf(out, "  %s  %-16s %d templates  (from %s)\n", c.id, c.name, results[i].Templates, c.photo)
	}
	n, r := app.svc.Gallery.Customers(), app.svc.Recognition()
	fmt.Fprintf(out, "Match rule for %d customers: distance to the customer's centroid <= %.3f and %.2f ahead of the runner-up\n"+
		"(about %.1g false alerts per stranger visit; the threshold tightens as the gallery grows, docs/accuracy.md).\n",
		n, r.Threshold, r.Margin, cfg.expectedFalseAlerts(n))

	fmt.Fprintln(out, "\nIdentification of every face in the six photos (everyone else was never enrolled):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  photo\tface box\tresult\tdistance\tmargin\t")
	var total time.Duration
	var faces int
	for i := 1; i <= 6; i++ {
		name := fmt.Sprintf("sample%d.jpg", i)
		b, err := world.read(name)
		if err != nil {
			return err
		}
		t0 := time.Now()
		ids, err := app.svc.Identify(ctx, b)
		if err != nil {
			return fmt.Errorf("demo %s: %w", name, err)
		}
		total += time.Since(t0)
		faces += len(ids)
		for _, id := range ids {
			result := "unknown"
			if id.Known {
				c, _ := app.db.Customer(ctx, id.Match.CustomerID)
				result = fmt.Sprintf("%s %s", c.ID, c.DisplayName)
			}
			margin := "-"
			if id.Match.RunnerUp != "" {
				margin = fmt.Sprintf("%.3f", id.Match.Margin)
			}
			fmt.Fprintf(tw, "  %s\t%v\t%s\t%.3f\t%s\t\n", name, id.Box, result, id.Match.Distance, margin)
		}
	}
	tw.Flush()
	fmt.Fprintf(out, "\n%d faces in 6 photos (about 1920x1400 each) in %v: %.0f ms per photo on average.\n",
		faces, total.Round(time.Millisecond), float64(total.Milliseconds())/6)
	app.Close()
	if err := demoDaemon(ctx, m, cfg, world); err != nil {
		return err
	}
	fmt.Fprintln(out, strings.TrimSpace(`
Try it yourself: bin/concierge enroll --db my.db --customer C1 --name "Ms Wang" --consent FORM-1 photo.jpg
                 bin/concierge identify --db my.db other.jpg
                 bin/concierge run --config deploy/concierge.yaml     (cameras, NATS and HTTP from the file)`))
	return nil
}

// demoDaemon runs the real daemon on an entrance clip made from the demo
// photos, with the embedded NATS server, and prints the alerts a lobby
// terminal subscribed to NATS receives.
func demoDaemon(ctx context.Context, m *Main, cfg Config, world *demoWorld) error {
	out := m.Stdout
	dir := filepath.Dir(cfg.DB)
	clip := filepath.Join(dir, "door.avi")
	seconds, err := world.doorClip(clip)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nThe live daemon: a %.0f s entrance clip (1280x720, 15 fps) in which Ms Wang, a stranger, Ms Li,\n"+
		"a second stranger beside Ms Zhao, and Ms Wang again walk in. Alerts as a NATS subscriber receives them:\n", seconds)
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.NATS.URL = ""
	cfg.NATS.Listen = "127.0.0.1:-1"
	cfg.NATS.StoreDir = filepath.Join(dir, "jetstream")
	cfg.Cameras = []Camera{{ID: "door-1", Source: clip}}
	// The alerts are the output here; reconnect notices would only clutter it.
	d := NewDaemon(cfg, newLogger(m.Stderr, LogConfig{Level: "error", Format: cfg.Log.Format}))
	if err := d.Open(ctx); err != nil {
		return err
	}
	defer d.Close()
	// A lobby terminal on the box: the box's lobby identity.
	term := d.alertConn("demo-terminal")
	if d.natsCreds != nil {
		term = d.natsCreds.Conn(d.NATSURL(), "demo-terminal", alert.IdentityLobby)
	}
	sub, err := alert.NewSubscriber(alert.SubscriberConfig{Branch: cfg.Branch, Conn: term, Logger: d.log})
	if err != nil {
		return err
	}
	if err := sub.Open(); err != nil {
		return err
	}
	defer sub.Close()
	// Read until the clip has played and the last track has timed out.
	wctx, cancel := context.WithTimeout(ctx, time.Duration(seconds*float64(time.Second))+3*time.Second)
	defer cancel()
	n := 0
	for a, err := range sub.Alerts(wctx, alert.FeedArrival, alert.Start{All: true}) {
		if err != nil {
			if wctx.Err() != nil {
				break
			}
			return err
		}
		n++
		votes := "votes"
		if a.Match.Votes == 1 {
			votes = "vote"
		}
		fmt.Fprintf(out, "  %s  %s  %-8s %-6s distance %.3f, %d %s  (%s)\n", a.Time.Local().Format("15:04:05.000"), a.Camera,
			a.Customer.ID, a.Customer.DisplayName, a.Match.Distance, a.Match.Votes, votes, a.Subject)
	}
	st := d.checkin.Stats.Snapshot()
	fmt.Fprintf(out, "%d alerts; %d face tracks, %d embeddings, %d arrivals suppressed by the 30-minute cooldown.\n\n",
		n, st.TracksStarted, st.Embeddings, st.Suppressed)
	return nil
}

func defaultPhotosDir() string {
	if d := os.Getenv("CONCIERGE_TEST_PHOTOS"); d != "" {
		return d
	}
	base := os.Getenv("CONCIERGE_CACHE")
	if base == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			d = os.TempDir()
		}
		base = filepath.Join(d, "concierge")
	}
	return filepath.Join(base, "testdata", "photos")
}
