package testenv

import (
	"context"
	"sync"

	"concierge"
	"concierge/alert"
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
