package main

import (
	"context"
	"fmt"
	"net/http"

	"concierge/enroll"
	"concierge/internal/httpjson"
	"concierge/kiosk"
	"concierge/models"
	"concierge/sqlite"
	"concierge/vision"
	"concierge/web"
)

// mountKiosk puts the enrollment kiosks' API at /v1/ and their page at
// /kiosk/. The API works on the daemon's own enroll.Service, so an
// enrollment or a withdrawal changes what the cameras recognise at once.
// Without kiosk.devices both answer 404 with the reason; a kiosk API that
// cannot start (no YuNet model) is logged and answers 503, and the
// cameras go on.
func (d *Daemon) mountKiosk(mux *http.ServeMux) {
	unavailable := func(status int, code, msg string) {
		h := func(w http.ResponseWriter, r *http.Request) {
			httpjson.WriteError(w, httpjson.Errorf(status, code, "%s", msg))
		}
		mux.HandleFunc("/v1/", h)
		mux.HandleFunc("/kiosk/", h)
	}
	if len(d.cfg.Kiosk.Devices) == 0 {
		d.log.Info("enrollment kiosks disabled: no kiosk.devices configured")
		unavailable(http.StatusNotFound, "kiosk_disabled", "no enrollment kiosk is configured on this box (kiosk.devices)")
		return
	}
	srv, err := d.openKiosk()
	if err != nil {
		d.log.Error("kiosk API unavailable", "err", err)
		unavailable(http.StatusServiceUnavailable, "unavailable", "the kiosk API could not start; see the daemon's log")
		return
	}
	mux.Handle("/v1/", srv.Handler())
	mux.Handle("/kiosk/", web.KioskPage())
	d.log.Info("enrollment kiosks enabled", "kiosks", len(d.cfg.Kiosk.Devices), "page", "/kiosk/")
}

// openKiosk builds the kiosk API over the daemon's service and database.
func (d *Daemon) openKiosk() (*kiosk.Server, error) {
	texts, err := kiosk.LoadConsentTexts(d.cfg.Kiosk.ConsentDir, d.cfg.Kiosk.ConsentVersion)
	if err != nil {
		return nil, err
	}
	// The liveness check needs five landmarks with the mouth corners,
	// which YuNet gives whichever engine embeds the faces.
	y, err := vision.NewYuNet(models.Path(d.cfg.Models.Dir, models.YuNet))
	if err != nil {
		return nil, fmt.Errorf("liveness landmarks: %w (run `concierge models fetch`)", err)
	}
	// Kiosks check staff against web.staff with the lobby's rules; their
	// limiter is their own, so guessing at a kiosk never locks the lobby.
	staff, err := web.NewStaffDirectory(d.cfg.Web.staff(), web.DirectoryConfig{
		MaxFailures: d.cfg.Web.MaxSignInFailures, Lockout: d.cfg.Web.SignInLockout})
	if err != nil {
		y.Close()
		return nil, fmt.Errorf("kiosk staff: %w", err)
	}
	if len(d.cfg.Web.Staff) == 0 {
		d.log.Warn("kiosks enabled but web.staff is empty: no member of staff can sign an enrollment or a withdrawal")
	}
	db := d.app.db
	srv, err := kiosk.New(kiosk.Options{
		Config:    d.kioskConfig(),
		Service:   d.app.svc,
		Landmarks: vision.YuNetLandmarks{Det: y, MaxPixels: d.cfg.Vision.MaxPixels},
		Consent:   texts,
		Staff:     kioskStaff{dir: staff},
		// nil outside tests: a random challenge per attempt.
		PickChallenge: kioskChallenge,
		Audit: kiosk.AuditFunc(func(ctx context.Context, e kiosk.AuditEntry) error {
			return db.AppendAudit(ctx, sqlite.AuditEntry(e))
		}),
		Logger: d.log,
	})
	if err != nil {
		y.Close()
		return nil, err
	}
	srv.Open()
	// Closed before the database: the daemon's closers run last-in first.
	d.closers = append(d.closers, y.Close, srv.Close)
	return srv, nil
}

// kioskChallenge fixes the kiosks' liveness challenges in tests that
// drive the page with a recorded clip; nil picks at random.
var kioskChallenge func() []enroll.Turn

// kioskStaff is web.StaffDirectory as the kiosk API sees it: a name and
// whether that person may approve (supervisor or manager).
type kioskStaff struct{ dir *web.StaffDirectory }

var _ kiosk.StaffVerifier = kioskStaff{}

func (k kioskStaff) VerifyStaff(ctx context.Context, name, secret, from string) (kiosk.StaffMember, error) {
	s, err := k.dir.Verify(ctx, name, secret, from)
	if err != nil {
		return kiosk.StaffMember{}, err
	}
	return kiosk.StaffMember{Name: s.Name, Supervisor: s.Role.Supervises()}, nil
}

// kioskConfig is the kiosk section with the consent scope of enroll.
func (d *Daemon) kioskConfig() kiosk.Config {
	c := d.cfg.Kiosk.api()
	c.DefaultScope = d.cfg.Enroll.DefaultScope
	return c
}
