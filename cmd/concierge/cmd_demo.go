package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"concierge"
	"concierge/enroll"
	"concierge/vision"
)

// demoCustomer is one person the demo enrolls: a face in one of the demo
// photos, named like a bank's customer.
type demoCustomer struct {
	id, name, photo string
	face            int // index of the face in the photo, left to right
}

var demoCustomers = []demoCustomer{
	{"C1001", "王女士 Ms Wang", "sample2.jpg", 0},
	{"C1002", "李女士 Ms Li", "sample6.jpg", 2},
	{"C1003", "赵女士 Ms Zhao", "sample3.jpg", 1},
}

// demoShots are the kiosk-style enrollment shots cut from a photo: other
// framing, size and JPEG quality than the photo identified later.
var demoShots = []struct {
	margin, scale float64
	quality       int
}{{0.6, 1.0, 90}, {0.9, 0.75, 70}, {0.4, 1.3, 85}}

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
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(*photos, name))
		if err != nil {
			return nil, concierge.Errorf(concierge.ENOTFOUND, "demo photo %s: %v (deploy/setup.sh fetches them)", name, err)
		}
		return b, nil
	}
	app, err := m.openFaceApp(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer app.Close()

	out := m.Stdout
	fmt.Fprintf(out, "Concierge demo: enroll customers who consented, then recognise them in group photos.\n")
	fmt.Fprintf(out, "engine %s, match rule: distance <= %.2f and %.2f ahead of the runner-up; database %s\n\n",
		app.engine.Model(), cfg.Match.Threshold, cfg.Match.Margin, cfg.DB)

	fmt.Fprintln(out, "Enrollment (3 kiosk-style shots per customer, cut from a photo at other framing, size and JPEG quality):")
	for _, c := range demoCustomers {
		src, err := read(c.photo)
		if err != nil {
			return err
		}
		faces, err := app.engine.Detect(ctx, src)
		if err != nil {
			return fmt.Errorf("demo %s: %w", c.photo, err)
		}
		if c.face >= len(faces) {
			return fmt.Errorf("demo %s: expected at least %d faces, found %d", c.photo, c.face+1, len(faces))
		}
		var shots []enroll.Photo
		for i, s := range demoShots {
			b, err := vision.Reframe(src, faces[c.face].Box, s.margin, s.scale, s.quality)
			if err != nil {
				return err
			}
			shots = append(shots, enroll.Photo{Name: fmt.Sprintf("%s-shot%d.jpg", c.id, i+1), Data: b})
		}
		res, err := app.svc.Enroll(ctx, enroll.Request{
			CustomerID: c.id, DisplayName: c.name, Photos: shots,
			Consent: enroll.Consent{Reference: "DEMO-" + c.id, TextVersion: "v1", Channel: "demo"},
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %s  %-16s %d templates  (from %s)\n", c.id, c.name, res.Templates, c.photo)
	}

	fmt.Fprintln(out, "\nIdentification of every face in the six photos (everyone else was never enrolled):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  photo\tface box\tresult\tdistance\tmargin\t")
	var total time.Duration
	var faces int
	for i := 1; i <= 6; i++ {
		name := fmt.Sprintf("sample%d.jpg", i)
		b, err := read(name)
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
	fmt.Fprintln(out, strings.TrimSpace(`
Try it yourself: bin/concierge enroll --db my.db --customer C1 --name "Ms Wang" --consent FORM-1 photo.jpg
                 bin/concierge identify --db my.db other.jpg`))
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
