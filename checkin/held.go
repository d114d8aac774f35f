package checkin

import (
	"sync"
	"time"

	"concierge/enroll"
)

// HeldFaces keeps the embeddings of decided visits (an arrival or a verify
// card) for the claim window only, so that a visit staff confirm can teach
// the gallery (enroll.DoorPolicy). They are the customer's faces, never a
// stranger's: a track that names no one is forgotten as before. Take hands
// a visit's faces out once; Forget and ForgetAlerts drop them when staff
// answer "not this person" or the customer is erased; anything older than
// the TTL is dropped, at the latest on the next call or Expire. Dropped
// embeddings are overwritten, not just released. Safe for concurrent use.
type HeldFaces struct {
	ttl time.Duration
	now func() time.Time

	mu     sync.Mutex
	visits map[string]*heldVisit
}

type heldVisit struct {
	customer string
	faces    []enroll.DoorFace
	until    time.Time
}

// NewHeldFaces holds each visit's faces for ttl (the alert's, or the
// card's, time to answer); now is the wall clock (nil: time.Now).
func NewHeldFaces(ttl time.Duration, now func() time.Time) *HeldFaces {
	if now == nil {
		now = time.Now
	}
	return &HeldFaces{ttl: ttl, now: now, visits: map[string]*heldVisit{}}
}

// hold keeps the faces of visit id, decided for customer.
func (h *HeldFaces) hold(id, customer string, faces []enroll.DoorFace) {
	if h == nil || len(faces) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	h.expire(now)
	h.visits[id] = &heldVisit{customer: customer, faces: faces, until: now.Add(h.ttl)}
}

// Take returns and drops the faces of visit id and the customer it was
// decided for; ok is false when none are held (never held, answered
// already, expired or forgotten).
func (h *HeldFaces) Take(id string) (customer string, faces []enroll.DoorFace, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expire(h.now())
	v, ok := h.visits[id]
	if !ok {
		return "", nil, false
	}
	delete(h.visits, id)
	return v.customer, v.faces, true
}

// Forget drops the faces of the visits.
func (h *HeldFaces) Forget(ids ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if v, ok := h.visits[id]; ok {
			wipe(v.faces)
			delete(h.visits, id)
		}
	}
}

// ForgetCustomer drops every visit of the customer (an erasure).
func (h *HeldFaces) ForgetCustomer(customerID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, v := range h.visits {
		if v.customer == customerID {
			wipe(v.faces)
			delete(h.visits, id)
		}
	}
}

// Expire drops what is older than the TTL.
func (h *HeldFaces) Expire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expire(h.now())
}

// Len is the number of visits held.
func (h *HeldFaces) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.visits)
}

func (h *HeldFaces) expire(now time.Time) {
	for id, v := range h.visits {
		if now.After(v.until) {
			wipe(v.faces)
			delete(h.visits, id)
		}
	}
}

func wipe(fs []enroll.DoorFace) {
	for i := range fs {
		fs[i] = enroll.DoorFace{}
	}
}

// doorFaces copies the embeddings of a decided track for HeldFaces before
// the track forgets them: every face of the visit, as the return-visit
// simulation learns them (docs/accuracy.md). A decided track has no face
// naming another customer (that is a conflict), and every face was
// embedded because its quality passed MinQuality.
func (s *Service) doorFaces(tr *track) []enroll.DoorFace {
	if s.Held == nil {
		return nil
	}
	out := make([]enroll.DoorFace, len(tr.samples))
	for i := range tr.samples {
		out[i] = enroll.DoorFace{Embedding: tr.samples[i].emb, Quality: tr.samples[i].quality}
	}
	return out
}
