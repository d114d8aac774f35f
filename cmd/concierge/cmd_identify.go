package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"concierge"
	"concierge/enroll"
)

// identifyLine is the stable JSON shape of `concierge identify`: one object
// per detected face.
type identifyLine struct {
	Image      string   `json:"image"`
	Box        [4]int   `json:"box"`
	CustomerID *string  `json:"customer_id"`
	Name       *string  `json:"name"`
	Distance   *float64 `json:"distance"`
	Margin     *float64 `json:"margin"`
	Tier       any      `json:"tier"`
	Quality    float64  `json:"quality"`
}

type identifyTier struct {
	Scheme    string `json:"scheme"`
	Level     string `json:"level"`
	LevelName string `json:"level_name"`
	VIP       bool   `json:"vip"`
}

func runIdentify(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("identify")
	asJSON := fs.Bool("json", false, "also print an object for each image with no face ({\"image\":...,\"faces\":0,\"error\":\"no face found\"}); faces are always one JSON object per line")
	fs.Usage = func() {
		fmt.Fprintln(m.Stderr, "usage: concierge identify [--json] IMAGE...")
		fs.PrintDefaults()
	}
	files, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		fs.Usage()
		return usagef("identify needs at least one image")
	}
	cfg, err := m.config()
	if err != nil {
		return err
	}
	app, err := m.openFaceApp(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer app.Close()
	tiers, err := openTiers(ctx, cfg, app.db, m.Logger, 0)
	if err != nil {
		return err
	}
	defer tiers.Close()
	app.tiers = tiers

	failed := 0
	for _, f := range files {
		if err := m.identifyOne(ctx, app, f, *asJSON); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if concierge.ErrorCode(err) == concierge.EINTERNAL && !enroll.IsBadInput(err) {
				return err
			}
			failed++
			fmt.Fprintf(m.Stderr, "concierge: %s: %s\n", f, describe(err))
		}
	}
	if failed > 0 {
		return exitError{1}
	}
	return nil
}

// noFaceLine is printed with --json for an image in which no face was
// found, so that a script reading stdout sees every image it passed.
type noFaceLine struct {
	Image string `json:"image"`
	Faces int    `json:"faces"`
	Error string `json:"error"`
}

func (m *Main) identifyOne(ctx context.Context, app *faceApp, path string, asJSON bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "%w", errors.Unwrap(err))
	}
	ids, err := app.svc.Identify(ctx, data)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		// Not a failure (the exit status stays 0), but silence would read
		// as "nobody known here".
		fmt.Fprintf(m.Stderr, "concierge: %s: no face found\n", path)
		if asJSON {
			return writeJSON(m, noFaceLine{Image: filepath.Base(path), Error: "no face found"})
		}
		return nil
	}
	names := map[string]string{}
	for _, id := range ids {
		line := identifyLine{
			Image:   filepath.Base(path),
			Box:     [4]int{id.Box.Min.X, id.Box.Min.Y, id.Box.Max.X, id.Box.Max.Y},
			Quality: round3(id.Quality.Score()),
		}
		if id.Match.CustomerID != "" {
			d := round3(id.Match.Distance)
			line.Distance = &d
		}
		if id.Match.RunnerUp != "" {
			mg := round3(id.Match.Margin)
			line.Margin = &mg
		}
		if id.Known {
			cid := id.Match.CustomerID
			line.CustomerID = &cid
			name, ok := names[cid]
			if !ok {
				if c, err := app.db.Customer(ctx, cid); err == nil {
					name = c.DisplayName
				}
				names[cid] = name
			}
			line.Name = &name
			// Operators see the tier; risk flags stay with the branch manager.
			if tier, _ := app.tiers.Lookup(cid, time.Now()); tier != nil {
				line.Tier = identifyTier{Scheme: tier.Scheme, Level: tier.Level, LevelName: tier.LevelName, VIP: tier.VIP}
			}
		}
		if err := writeJSON(m, line); err != nil {
			return err
		}
	}
	return nil
}

func describe(err error) string {
	if enroll.IsBadInput(err) {
		return err.Error()
	}
	return concierge.ErrorMessage(err)
}

func round3(v float64) float64 {
	if v != v || v > 1e9 {
		return 0
	}
	return float64(int64(v*1000+0.5)) / 1000
}
