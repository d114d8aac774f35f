package testenv

import (
	"context"
	"sync"
	"testing"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
)

// AlertBook is the daemon's record of the alerts it sent, as the desk
// (alert.Desk) reads it, for tests of the desk's callers that publish
// alerts without a visit log. The daemon's own book, its visit log
// (sqlite.DB.AlertRecord), is tested in sqlite and against the daemon.
type AlertBook struct {
	mu sync.Mutex
	m  map[string]alert.AlertRecord
}

var _ alert.AlertBook = (*AlertBook)(nil)

// NewAlertBook returns an empty book.
func NewAlertBook() *AlertBook { return &AlertBook{m: map[string]alert.AlertRecord{}} }

// Set records (or changes) what the daemon knows of an alert.
func (b *AlertBook) Set(id string, r alert.AlertRecord) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[id] = r
}

// AlertRecord implements alert.AlertBook: ENOTFOUND for an alert never set.
func (b *AlertBook) AlertRecord(_ context.Context, id string) (alert.AlertRecord, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.m[id]
	if !ok {
		return r, concierge.Errorf(concierge.ENOTFOUND, "no alert %s", id)
	}
	return r, nil
}

// StaffList maps staff names to their passwords, as the desk checks them;
// the daemon's own check is web.StaffDirectory (tested in web and against
// the daemon).
type StaffList map[string]string

var _ alert.StaffVerifier = StaffList(nil)

// VerifyStaff implements alert.StaffVerifier.
func (s StaffList) VerifyStaff(_ context.Context, name, secret string) error {
	if pw, ok := s[name]; ok && pw == secret {
		return nil
	}
	return concierge.Errorf(concierge.EUNAUTHORIZED, "wrong name or password")
}

// OpenCards opens verify cards (alert.Cards) wired as the daemon wires
// them: a confirmed card becomes an arrival through svc's check-in and is
// set in book, as the daemon's visit log records it for the desk. It sets
// cfg.Confirmed and closes the cards when the test ends.
func OpenCards(tb testing.TB, cfg alert.CardsConfig, svc *checkin.Service, book *AlertBook) *alert.Cards {
	tb.Helper()
	cfg.Confirmed = func(ctx context.Context, c checkin.Card, by string) error {
		if err := svc.ConfirmCard(ctx, c, by); err != nil {
			return err
		}
		book.Set(c.ID, alert.AlertRecord{CustomerID: c.CustomerID, At: c.At})
		return nil
	}
	cards, err := alert.NewCards(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := cards.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cards.Close() })
	return cards
}
