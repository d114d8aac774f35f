package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"concierge"
	"concierge/enroll"
	"concierge/sqlite"
	"concierge/tiering"
	"concierge/vision"
)

// faceApp is what the face subcommands share: the database, the engine and
// the enrollment service over them.
type faceApp struct {
	cfg Config
	db  *sqlite.DB
	// engine is dlib, loaded by dlib() when the configuration or a
	// command (demo, bench) needs it.
	engine *vision.Engine
	// dnn is the YuNet + MobileFaceNet engine when vision.engine selects it.
	dnn *vision.DNNEngine
	// embedder embeds camera detections with the configured engine.
	embedder vision.Embedder
	svc      *enroll.Service
	// tiers is opened by the commands that show tiers.
	tiers *tierLookup
}

func (a *faceApp) Close() error {
	var errs []error
	if a.engine != nil {
		errs = append(errs, a.engine.Close())
	}
	if a.dnn != nil {
		errs = append(errs, a.dnn.Close())
	}
	if a.db != nil {
		errs = append(errs, a.db.Close())
	}
	return errors.Join(errs...)
}

// dlib returns the dlib engine, loading it on first use: it is the engine of
// dlib boxes, and the demo and the naive benchmark use it on any box.
func (a *faceApp) dlib(log *slog.Logger) (*vision.Engine, error) {
	if a.engine != nil {
		return a.engine, nil
	}
	e, err := vision.NewEngine(vision.Config{
		ModelDir:  a.cfg.Models.Dir,
		Pool:      a.cfg.Vision.Pool,
		MaxPixels: a.cfg.Vision.MaxPixels,
		MinFacePx: a.cfg.Vision.MinFacePx,
		Logger:    log,
	})
	if err != nil {
		return nil, concierge.Errorf(concierge.EUNAVAILABLE, "%w (run `concierge models fetch` first)", err)
	}
	a.engine = e
	return e, nil
}

// openFaceApp opens the database and the engine. The engine is skipped when
// withEngine is false (forget needs no models).
func (m *Main) openFaceApp(ctx context.Context, cfg Config, withEngine bool) (*faceApp, error) {
	db, err := sqlite.Open(ctx, cfg.DB, cfg.dbOptions()...)
	if err != nil {
		return nil, err
	}
	a := &faceApp{cfg: cfg, db: db}
	var det enroll.Detector
	model := vision.ModelDlib
	if withEngine {
		desc, ok, err := cfg.embedderDescription()
		if ok && err == nil {
			a.dnn, err = vision.NewDNNEngineFor(cfg.Models.Dir, desc, cfg.Vision.MaxPixels, cfg.Vision.MinFacePx)
		}
		if ok {
			if err != nil {
				a.Close()
				return nil, concierge.Errorf(concierge.EUNAVAILABLE, "%w (run `concierge models fetch`)", err)
			}
			det, a.embedder = a.dnn, a.dnn.Embedder()
		} else {
			e, err := a.dlib(m.Logger)
			if err != nil {
				a.Close()
				return nil, err
			}
			det, a.embedder = e, e
		}
		model = det.Model()
	}
	gallery := enroll.NewGallery(model)
	if err := gallery.SetGroupOffset(enroll.DoorGroup, cfg.doorOffset()); err != nil {
		a.Close()
		return nil, concierge.Errorf(concierge.EINVALID, "%w", err)
	}
	a.svc = &enroll.Service{
		Store:    db,
		Detector: det,
		Gallery:  gallery,
		Quality: enroll.QualityRule{
			MinFacePx:    max(cfg.Vision.MinFacePx, enroll.DefaultQualityRule.MinFacePx),
			MinSharpness: cfg.Vision.MinSharpness,
			MinFrontal:   cfg.Vision.MinFrontal,
		},
		Rule:               cfg.rule(),
		OpenSet:            cfg.openSet(),
		VerifyTarget:       cfg.Match.VerifyTarget,
		DuplicateThreshold: cfg.duplicateThreshold(),
		Logger:             m.Logger,
	}
	if err := a.svc.Open(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func runEnroll(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("enroll")
	id := fs.String("customer", "", "customer id (required)")
	name := fs.String("name", "", "display name shown to staff (required)")
	consentRef := fs.String("consent", "", "consent reference, e.g. the signed form's number (required)")
	consentText := fs.String("consent-text", "v1", "version of the consent text the customer agreed to; only versions listed in match.door_consent_versions let confirmed visits teach door templates")
	channel := fs.String("channel", "cli", "where consent was given: cli, counter, kiosk")
	lang := fs.String("lang", "", "language of the consent text (zh, en)")
	scope := fs.String("scope", "", "where the customer agreed to be recognised: branch (this box only) or network (every branch; default: enroll.default_scope)")
	allowDup := fs.Bool("allow-duplicate", false, "enroll even if the face matches another customer (operators only)")
	tierScheme := fs.String("tier-scheme", "", "tier scheme of --tier (default: the config's tiering.scheme)")
	tierLevel := fs.String("tier", "", "tier to assign by hand until core-banking data is imported (level id or name)")
	fs.Usage = func() {
		fmt.Fprintln(m.Stderr, "usage: concierge enroll --customer ID --name NAME --consent REF IMAGE...")
		fs.PrintDefaults()
	}
	files, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *id == "" || *name == "" || *consentRef == "" || len(files) == 0 {
		fs.Usage()
		return usagef("enroll needs --customer, --name, --consent and at least one image")
	}
	cfg, err := m.config()
	if err != nil {
		return err
	}
	if *scope == "" {
		*scope = cfg.Enroll.DefaultScope
	}
	if err := enroll.CheckScope(*scope); err != nil {
		return usagef("enroll --scope: %v", concierge.ErrorMessage(err))
	}
	photos := make([]enroll.Photo, 0, len(files))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return concierge.Errorf(concierge.EINVALID, "read %s: %w", f, errors.Unwrap(err))
		}
		photos = append(photos, enroll.Photo{Name: filepath.Base(f), Data: data})
	}
	var assign *sqlite.TierAssignment
	if *tierLevel != "" || *tierScheme != "" {
		if assign, err = tierAssignment(cfg, *id, *tierScheme, *tierLevel); err != nil {
			return err
		}
	}
	app, err := m.openFaceApp(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer app.Close()
	res, err := app.svc.Enroll(ctx, enroll.Request{
		CustomerID:  *id,
		DisplayName: *name,
		Consent: enroll.Consent{
			Reference: *consentRef, TextVersion: *consentText, Channel: *channel, Language: *lang, Scope: *scope,
		},
		Photos:         photos,
		AllowDuplicate: *allowDup,
	})
	if err != nil {
		// The per-photo reasons are the useful part of a refusal.
		if res.Photos != nil {
			writeJSON(m, res)
		}
		return err
	}
	// Enrolled from the other photos, but the operator should know which
	// one did not count and why (stdout is the JSON for scripts).
	for _, p := range res.Photos {
		if !p.OK {
			fmt.Fprintf(m.Stderr, "concierge: warning: %s refused: %s\n", p.Name, photoReason(p))
		}
	}
	// The recorded text decides whether confirmed visits may teach this
	// customer (match.door_consent_versions); say so while it can be put
	// right with the signed form at hand.
	if cfg.doorFactor() > 0 && !cfg.doorPolicy().Consents.Covers(*consentText) {
		fmt.Fprintf(m.Stderr, "concierge: warning: consent text %q is not listed in match.door_consent_versions: confirmed visits will not teach this customer door templates\n", *consentText)
	}
	if assign != nil {
		assign.AssignedAt = time.Now()
		if err := app.db.SetTierAssignment(ctx, *assign); err != nil {
			return err
		}
	}
	return writeJSON(m, res)
}

// tierAssignment checks a hand-assigned tier against the loaded schemes.
func tierAssignment(cfg Config, customerID, scheme, level string) (*sqlite.TierAssignment, error) {
	if level == "" {
		return nil, usagef("--tier-scheme needs --tier")
	}
	schemes, err := tiering.LoadSchemes(cfg.Tiering.SchemesDir, cfg.Tiering.Scheme)
	if err != nil {
		return nil, concierge.Errorf(concierge.EINVALID, "tiering: %w", err)
	}
	a, err := schemes.Assign(scheme, level)
	if err != nil {
		return nil, err
	}
	return &sqlite.TierAssignment{CustomerID: customerID, Scheme: a.Scheme, Level: a.Level}, nil
}

func photoReason(p enroll.PhotoResult) string {
	if p.Detail != "" {
		return p.Reason + " (" + p.Detail + ")"
	}
	return p.Reason
}

func runForget(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("forget")
	id := fs.String("customer", "", "customer id whose biometric data is deleted (required)")
	fs.Usage = func() {
		fmt.Fprintln(m.Stderr, "usage: concierge forget --customer ID")
		fmt.Fprintln(m.Stderr, "Deletes the customer's face templates everywhere and records the withdrawal of consent.")
		fs.PrintDefaults()
	}
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *id == "" || len(rest) > 0 {
		fs.Usage()
		return usagef("forget needs --customer ID (and no other arguments)")
	}
	cfg, err := m.config()
	if err != nil {
		return err
	}
	app, err := m.openFaceApp(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer app.Close()
	n, err := app.svc.Forget(ctx, *id)
	if err != nil {
		return err
	}
	return writeJSON(m, map[string]any{"customer_id": *id, "templates_deleted": n, "consent": "withdrawn"})
}

func writeJSON(m *Main, v any) error {
	enc := json.NewEncoder(m.Stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
