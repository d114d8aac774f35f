package checkin

import (
	"context"
	"log/slog"
	"math"
	"time"

	"concierge"
	"concierge/enroll"
)

// Card is a "please verify" card: a finished track that was not announced
// but whose fused embedding names one customer within the verify band
// (Service.Band). Staff see the live face beside the customer's masked
// name and answer yes (it becomes an arrival) or no.
type Card struct {
	ID          string    `json:"id"` // ULID, like an arrival's
	Branch      string    `json:"branch"`
	Camera      string    `json:"camera"`
	At          time.Time `json:"time"`
	CustomerID  string    `json:"customer_id"`
	DisplayName string    `json:"display_name"` // masked by policy
	Tier        *Tier     `json:"tier,omitempty"`
	Distance    float64   `json:"distance"` // fused distance to the customer
	Margin      float64   `json:"margin"`
	Votes       int       `json:"votes"` // embeddings naming the customer within the band
	FirstSeen   time.Time `json:"first_seen"`
	// Thumbnail is the live face, the point of a card: the best face of
	// the track that lay within the band. It is rendered only for such
	// faces and lives only as long as the card.
	Thumbnail []byte `json:"-"`
}

// LogValue keeps names and customer ids out of logs (see Arrival.LogValue).
func (c Card) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", c.ID),
		slog.String("camera", c.Camera),
		slog.Float64("distance", c.Distance),
	)
}

// CardNotifier delivers verify cards to staff. Cards are not held for
// retry: one that cannot be delivered now is stale before a retry.
type CardNotifier interface {
	NotifyCard(ctx context.Context, c Card) error
}

// band is the verify band's outer threshold now, 0 when it is off.
func (s *Service) band() float64 {
	if s.Band == nil || s.Cards == nil {
		return 0
	}
	return s.Band()
}

// keepThumb renders the thumbnail of a face whose embedding names a
// customer within the verify band, when it is the track's best such face
// so far (the band's face rule, margin included): a card needs the live face after the frame is gone, and no face
// outside the band is ever rendered for it. The caller holds the camera
// lock.
func (s *Service) keepThumb(cameraID string, tr *track, sm *sample, d *Detection, band, unlearned float64) {
	if band <= 0 || d.Thumbnail == nil || !sm.found {
		return
	}
	if r := (enroll.Rule{Threshold: band, Margin: s.cfg.Margin, FaceSlack: s.cfg.FaceSlack, Unlearned: unlearned}); !r.Face().Accept(sm.match) {
		return
	}
	if tr.thumb != nil && sm.quality <= tr.thumbQuality {
		return
	}
	th, err := d.Thumbnail()
	if err != nil {
		s.logger().Warn("face thumbnail", slog.String("camera", cameraID), slog.Any("error", err))
		return
	}
	tr.thumb, tr.thumbQuality = th, sm.quality
}

// card decides whether a track that ends unannounced (exhausted or gone)
// becomes a verify card: its fused embedding names one customer within the
// band, with the alert rule's margin, no embedding of the track names
// anyone else within the band, and the customer is not in cooldown. Like an
// arrival, a card starts the customer's cooldown: one card per visit, and
// no card after an arrival. The caller holds the track (under the camera
// lock or after removing it) and forgets its samples afterwards.
func (s *Service) card(cameraID string, tr *track, at time.Time) (decision, bool) {
	band := s.band()
	if band <= 0 || tr.state != pending || len(tr.samples) == 0 {
		return decision{}, false
	}
	fused := tr.fuse()
	fm, ok := s.matcher.Search(&fused)
	rule := s.cfg.Rule()
	_, rule.Match.Unlearned = s.unlearned()
	v := rule.Card(band, tr.matches(), fm, ok, s.tighten(at))
	if v.Verdict != Arrives {
		return decision{}, false
	}
	cand, votes := v.Customer, v.Votes
	tier, risk := s.lookup(cand, at)
	if s.cool(cand, at, s.cooldown(tier)) {
		s.Stats.Suppressed.Add(1)
		s.logger().Debug("card suppressed by cooldown", slog.String("camera", cameraID),
			slog.Uint64("track", tr.id), slog.String("customer", cand))
		return decision{}, false
	}
	tr.state = carded
	tr.customer = cand
	return decision{
		faces:     s.doorFaces(tr),
		card:      true,
		camera:    cameraID,
		trackID:   tr.id,
		customer:  cand,
		distance:  fm.Distance,
		margin:    fm.Margin,
		votes:     votes,
		at:        at,
		firstSeen: tr.firstUsable,
		tier:      tier,
		risk:      risk,
		thumb:     tr.thumb,
	}, true
}

// publishCard builds and delivers a card. A card that cannot be delivered
// is dropped and counted: it would be stale by the time a retry got through.
func (s *Service) publishCard(ctx context.Context, d decision) {
	log := s.logger()
	id, err := s.newID(d.at)
	if err != nil {
		log.Error("card id", slog.Any("error", err))
		s.Stats.NotifyErrors.Add(1)
		return
	}
	c := Card{
		ID:         id,
		Branch:     s.cfg.Branch,
		Camera:     d.camera,
		At:         d.at,
		CustomerID: d.customer,
		Tier:       d.tier,
		Distance:   d.distance,
		Margin:     math.Min(d.margin, maxMargin),
		Votes:      d.votes,
		FirstSeen:  d.firstSeen,
		Thumbnail:  d.thumb,
	}
	c.DisplayName = s.displayName(ctx, d.customer)
	s.Held.hold(c.ID, c.CustomerID, d.faces)
	s.Stats.Cards.Add(1)
	log.Info("verify card", slog.String("id", c.ID), slog.String("camera", c.Camera),
		slog.Float64("distance", c.Distance), slog.Uint64("track", d.trackID))
	log.Debug("verify card customer", slog.String("id", c.ID), slog.String("customer", c.CustomerID))
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DeliverTimeout)
	defer cancel()
	if err := s.Cards.NotifyCard(dctx, c); err != nil {
		s.Stats.NotifyErrors.Add(1)
		log.Warn("verify card not delivered", slog.String("id", c.ID), slog.Any("error", err))
	}
}

// ConfirmCard turns a card that by, a signed-in member of staff, confirmed
// into an arrival: recorded in the visit log and notified like any other
// (held for RetryLoop when either fails), with the card's id, so that it
// alerts, escalates and can be claimed. Tier, risk flags and name are
// looked up afresh: the card carries no risk flags. The caller has checked
// that the card is real and still open; the customer's cooldown runs on.
func (s *Service) ConfirmCard(ctx context.Context, c Card, by string) error {
	switch {
	case c.ID == "" || c.CustomerID == "" || c.At.IsZero():
		return concierge.Errorf(concierge.EINVALID, "confirm card: id, customer and time are required")
	case by == "":
		return concierge.Errorf(concierge.EINVALID, "confirm card %s: the member of staff is required", c.ID)
	}
	tier, risk := s.lookup(c.CustomerID, c.At)
	s.cool(c.CustomerID, c.At, s.cooldown(tier))
	a := Arrival{
		ID:          c.ID,
		Branch:      s.cfg.Branch,
		Camera:      c.Camera,
		At:          c.At,
		CustomerID:  c.CustomerID,
		DisplayName: s.displayName(ctx, c.CustomerID),
		Distance:    c.Distance,
		Margin:      math.Min(c.Margin, maxMargin),
		Votes:       c.Votes,
		Tier:        tier,
		FirstSeen:   c.FirstSeen,
		VerifiedBy:  by,
	}
	s.Stats.Arrivals.Add(1)
	log := s.logger()
	log.Info("arrival confirmed by staff", slog.String("id", a.ID), slog.String("camera", a.Camera),
		slog.Float64("distance", a.Distance), slog.Bool("risk", len(risk) > 0))
	log.Debug("arrival customer", slog.String("id", a.ID), slog.String("customer", a.CustomerID))
	p := &pendingArrival{a: a, risk: risk}
	if s.holding() {
		s.hold(p, nil)
		return nil
	}
	if err := s.deliver(ctx, p); err != nil {
		s.hold(p, err)
	}
	return nil
}
