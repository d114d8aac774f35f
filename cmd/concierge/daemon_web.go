package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"concierge"
	"concierge/alert"
	"concierge/internal/httpjson"
	"concierge/web"
)

// sessionKeyFile holds the lobby's generated session key, beside the
// database: the box's state directory.
const sessionKeyFile = "lobby-session.key"

// mountWeb puts the staff lobby page on the daemon's mux at /lobby/ and
// sends / there. A lobby that cannot start is logged and answers 503 with
// the reason: cameras and alerts go on, and `concierge watch` still works.
func (d *Daemon) mountWeb(mux *http.ServeMux) {
	mux.Handle("GET /{$}", http.RedirectHandler("/lobby/", http.StatusSeeOther))
	l, err := d.openLobby()
	if err != nil {
		d.log.Error("lobby page unavailable", "err", err)
		mux.HandleFunc("/lobby/", func(w http.ResponseWriter, r *http.Request) {
			httpjson.WriteError(w, httpjson.Errorf(http.StatusServiceUnavailable, concierge.EUNAVAILABLE,
				"the lobby page could not start; see the daemon's log"))
		})
		return
	}
	mux.Handle("/lobby/", l)
}

// openLobby builds the lobby from the config, with its own NATS reader; its
// claims and marks go through the daemon's desk. The reader is closed with
// the daemon's other NATS clients. It reads as the daemon: the page reads
// its feeds through one ordered consumer, which NATS cannot limit by
// subject, and the page's code reads only the staff feeds (web.lobbyFeeds).
func (d *Daemon) openLobby() (*web.Lobby, error) {
	cfg := d.cfg.Web
	lc := web.LobbyConfig{
		Staff:             cfg.staff(),
		SessionTTL:        cfg.SessionTTL,
		SecureCookies:     cfg.SecureCookies,
		Backlog:           cfg.Backlog,
		MaxSignInFailures: cfg.MaxSignInFailures,
		SignInLockout:     cfg.SignInLockout,
		Cards:             d.cards != nil,
		Reports:           d.serviceReports(),
		Logger:            d.log,
	}
	if len(lc.Staff) == 0 {
		d.log.Info("lobby page disabled: no staff are configured (web.staff)")
		return web.NewLobby(lc, nil, nil)
	}
	key, err := d.sessionKey()
	if err != nil {
		return nil, err
	}
	lc.SessionKey = key
	sub, err := alert.NewSubscriber(alert.SubscriberConfig{Branch: d.cfg.Branch,
		Conn: d.alertConn("concierge-" + d.cfg.Branch + "-lobby"), Logger: d.log})
	if err != nil {
		return nil, err
	}
	if err := sub.Open(); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, sub.Close)
	l, err := web.NewLobby(lc, sub, d.desk)
	if err != nil {
		return nil, err
	}
	// Open event streams never end by themselves, and http.Server's
	// Shutdown waits for handlers: end them as soon as the daemon closes.
	d.goRun("lobby", func(ctx context.Context) error {
		<-ctx.Done()
		return l.Close()
	})
	d.log.Info("lobby page enabled", "path", "/lobby/", "staff", len(lc.Staff))
	return l, nil
}

// sessionKey is web.session_key, or else the key kept in the state
// directory, made on first use. A key that outlives restarts keeps the
// tablets signed in when the daemon restarts.
func (d *Daemon) sessionKey() ([]byte, error) {
	if k := d.cfg.Web.SessionKey; k != "" {
		return []byte(k), nil
	}
	path := filepath.Join(filepath.Dir(d.cfg.DB), sessionKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw := make([]byte, 32)
		rand.Read(raw)
		b = []byte(hex.EncodeToString(raw))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return d.sessionKey() // another process made it first
		}
		if err != nil {
			return nil, fmt.Errorf("lobby session key: %w", err)
		}
		_, err = f.Write(append(b, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("lobby session key %s: %w", path, err)
		}
		d.log.Info("lobby session key created", "path", path)
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lobby session key: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if len(key) < web.MinSessionKeyLen {
		return nil, fmt.Errorf("lobby session key %s: shorter than %d characters", path, web.MinSessionKeyLen)
	}
	return []byte(key), nil
}

// staffDirectory checks terminals' staff credentials for the desk, with
// the lobby's rules and a limiter of its own; nil when no staff are
// configured, and the desk then refuses terminals.
func (d *Daemon) staffDirectory() (alert.StaffVerifier, error) {
	if len(d.cfg.Web.Staff) == 0 {
		return nil, nil
	}
	dir, err := web.NewStaffDirectory(d.cfg.Web.staff(), web.DirectoryConfig{
		MaxFailures: d.cfg.Web.MaxSignInFailures, Lockout: d.cfg.Web.SignInLockout})
	if err != nil {
		return nil, fmt.Errorf("desk staff: %w", err)
	}
	return deskStaff{dir}, nil
}

// deskStaff is web.StaffDirectory as the desk sees it. A request over NATS
// has no address of its own, so failures count per staff name: guessing
// one member's password locks out terminal claims in that name only, and
// never their sign-in on the lobby page.
type deskStaff struct{ dir *web.StaffDirectory }

var _ alert.StaffVerifier = deskStaff{}

func (s deskStaff) VerifyStaff(ctx context.Context, name, secret string) error {
	_, err := s.dir.Verify(ctx, name, secret, "desk:"+name)
	return err
}
