package kiosk

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"concierge/enroll"
	"concierge/face"
)

// session is one customer's enrollment at one kiosk, held in memory only:
// nothing reaches the database before finish, so an abort, an expiry or a
// crash leaves no trace but the audit log. Photos are never kept; the
// faces found in them (embeddings) live here until the session ends.
type session struct {
	id      string
	kiosk   string
	created time.Time
	expires time.Time

	// mu serialises the requests of one session: a kiosk uploads one
	// photo at a time, and finish must see every accepted photo.
	mu           sync.Mutex
	ended        bool
	customerID   string
	displayName  string
	verification string // who vouched for the customer's identity
	challenge    *challenge
	consent      *consentGiven
	faces        []face.Face // faces of accepted photos
	live         *face.Face  // the live face of a passed liveness check
	liveness     enroll.LivenessResult
	attempts     int // liveness checks tried
}

type consentGiven struct {
	text  ConsentText
	scope string
	at    time.Time
}

// wipe drops the biometric data of an ended session.
func (s *session) wipe() {
	for i := range s.faces {
		s.faces[i].Embedding = face.Embedding{}
	}
	s.faces = nil
	if s.live != nil {
		s.live.Embedding = face.Embedding{}
		s.live = nil
	}
	s.ended = true
}

// sessions indexes open sessions by id. Each kiosk has at most one open
// session: a kiosk serves one customer at a time, and starting anew ends
// what the last customer left behind.
type sessions struct {
	mu      sync.Mutex
	byID    map[string]*session
	byKiosk map[string]*session
}

func newSessions() *sessions {
	return &sessions{byID: map[string]*session{}, byKiosk: map[string]*session{}}
}

func newSessionID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("kiosk: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b[:])
}

// add registers s and returns the session it replaces at the same kiosk
// and any other open session of the same customer, both already removed.
func (ss *sessions) add(s *session) []*session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var ended []*session
	if old := ss.byKiosk[s.kiosk]; old != nil {
		ended = append(ended, old)
		delete(ss.byID, old.id)
	}
	for id, o := range ss.byID {
		if o.customerID == s.customerID {
			ended = append(ended, o)
			delete(ss.byID, id)
			if ss.byKiosk[o.kiosk] == o {
				delete(ss.byKiosk, o.kiosk)
			}
		}
	}
	ss.byID[s.id] = s
	ss.byKiosk[s.kiosk] = s
	return ended
}

// get returns the open, unexpired session with id.
func (ss *sessions) get(id string, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[id]
	if s == nil || now.After(s.expires) {
		return nil
	}
	return s
}

// remove drops the session from the index.
func (ss *sessions) remove(s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.byID[s.id] == s {
		delete(ss.byID, s.id)
	}
	if ss.byKiosk[s.kiosk] == s {
		delete(ss.byKiosk, s.kiosk)
	}
}

// removeCustomer drops every open session of the customer (consent
// withdrawn) and returns them.
func (ss *sessions) removeCustomer(customerID string) []*session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []*session
	for id, s := range ss.byID {
		if s.customerID == customerID {
			out = append(out, s)
			delete(ss.byID, id)
			if ss.byKiosk[s.kiosk] == s {
				delete(ss.byKiosk, s.kiosk)
			}
		}
	}
	return out
}

// expired removes and returns the sessions past their expiry.
func (ss *sessions) expired(now time.Time) []*session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []*session
	for id, s := range ss.byID {
		if now.After(s.expires) {
			out = append(out, s)
			delete(ss.byID, id)
			if ss.byKiosk[s.kiosk] == s {
				delete(ss.byKiosk, s.kiosk)
			}
		}
	}
	return out
}

// all removes and returns every session (shutdown).
func (ss *sessions) all() []*session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := make([]*session, 0, len(ss.byID))
	for _, s := range ss.byID {
		out = append(out, s)
	}
	ss.byID, ss.byKiosk = map[string]*session{}, map[string]*session{}
	return out
}
