package checkin

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"concierge"
	"concierge/enroll"
	"concierge/face"
)

// EmbedFunc computes the embedding of detection i of the frame passed to
// Observe. The caller's closure holds the frame, so checkin never sees
// pixels; Observe calls it only for the faces it chose, before returning.
type EmbedFunc func(i int) (face.Embedding, error)

// Matcher is the 1:N search of the enrolled customers.
type Matcher interface {
	Search(probe *face.Embedding, exclude ...string) (enroll.Match, bool)
}

var _ Matcher = (*enroll.Gallery)(nil)

// Directory gives the name staff may see for a customer.
type Directory interface {
	DisplayName(ctx context.Context, customerID string) (string, error)
}

// TierLookup gives a customer's tier and risk flags on a date; nil tier and
// no flags for customers it does not know. It is called on the camera path
// and must be fast (tiering.Cache answers from memory).
type TierLookup interface {
	Lookup(customerID string, at time.Time) (*Tier, []RiskFlag)
}

// Service turns the faces the cameras of one branch see into arrivals.
// Observe may be called concurrently for different cameras; calls for one
// camera must come one at a time, in frame order.
//
// The collaborators below are optional and must be set before the first
// Observe and not changed after.
type Service struct {
	// Notifier gets every arrival, with the customer's risk flags.
	Notifier Notifier
	// VisitLog records every arrival before it is notified.
	VisitLog VisitLog
	// Directory supplies DisplayName; without it arrivals carry none.
	Directory Directory
	// Mask applies the branch's name-masking policy (e.g. "王女士" for
	// "王小明") before a name leaves checkin. Nil leaves names as they are.
	Mask func(name string) string
	// Tiers supplies the tier, risk flags and per-tier cooldown.
	Tiers TierLookup
	// Strictness tightens the rule for one customer, e.g. for the rest of
	// the day after staff answered "not this person" to an alert: the track
	// then needs extraVotes more votes, and thresholdDelta is added to the
	// threshold for that customer's votes and fused distance. It can only
	// tighten: negative extraVotes and positive thresholdDelta count as
	// zero, so a bug in feedback handling cannot make anyone easier to
	// match. It is called on the camera path and must be fast and safe for
	// concurrent use.
	Strictness func(customerID string, at time.Time) (extraVotes int, thresholdDelta float64)
	// Calibrated, when set, gives the distance threshold that keeps false
	// alerts within the bank's budget at the gallery's current size
	// (enroll.OpenSet.Threshold): a stranger is compared with every
	// customer, so a growing gallery needs a stricter threshold. The rule
	// uses the smaller of it and Config.Threshold. It is called on the
	// camera path and must be fast and safe for concurrent use.
	Calibrated func() float64
	// Band, when set with Cards, gives the outer threshold of the "please
	// verify" band now (enroll.Service.Verification): a finished track that
	// was not announced, whose fused embedding names one customer within
	// it, becomes a Card for Cards. 0 or less: no band. It is called on the
	// camera path and must be fast and safe for concurrent use.
	Band func() float64
	// Unlearned, when set, gives how much farther than the threshold and
	// than the band a match may lie when its customer holds no door row
	// (enroll.Rule.Unlearned: while learning, the calibration counts the
	// door rows' cost only against customers who have them). It is called
	// on the camera path and must be fast and safe for concurrent use.
	Unlearned func() (threshold, band float64)
	Cards     CardNotifier
	// CardThumbnailsOnly: the camera offers thumbnails for cards only
	// (the branch sends none with alerts), so arrivals go without.
	CardThumbnailsOnly bool
	// Held, when set, keeps each arrival's and card's faces for the claim
	// window, so that a visit staff confirm can teach the gallery
	// (match.door_templates; checkin/held.go).
	Held *HeldFaces
	// Logger is the parent logger; checkin logs under the group "checkin".
	// Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock of PurgeLoop's retention; frames carry their own
	// time. Nil means time.Now.
	Now func() time.Time

	// Stats counts tracks, embeddings and arrivals for the metrics endpoint.
	Stats Stats

	cfg     Config
	matcher Matcher

	logOnce sync.Once
	log     *slog.Logger

	mu      sync.Mutex
	cameras map[string]*camera

	// until holds, per recognised customer, the end of the cooldown: the
	// only per-person state that outlives a track, and only for enrolled
	// customers who were recognised.
	coolMu sync.Mutex
	until  map[string]time.Time

	idMu    sync.Mutex
	entropy *ulid.MonotonicEntropy

	// retry holds, in decision order, the arrivals a store failed to take
	// (RetryLoop); retryErr is the latest failure's text.
	retryMu   sync.Mutex
	retry     []*pendingArrival
	retryErr  string
	retryWake chan struct{}
}

// camera is the tracking state of one video source.
type camera struct {
	mu     sync.Mutex
	closed bool // removed by EndCamera; Observe must fetch a fresh one
	tracks []*track
	nextID uint64
	last   time.Time // time of the last frame
	// detected is the time of the last frame the detector ran on (an
	// Observe with an EmbedFunc); Awaiting only counts tracks seen there.
	detected time.Time
}

// NewService returns a service deciding with cfg against the gallery m.
func NewService(cfg Config, m Matcher) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, concierge.Errorf(concierge.EINVALID, "checkin: no matcher")
	}
	return &Service{
		cfg:       cfg,
		matcher:   m,
		cameras:   map[string]*camera{},
		until:     map[string]time.Time{},
		entropy:   ulid.Monotonic(crand.Reader, 0),
		retryWake: make(chan struct{}, 1),
	}, nil
}

// Config returns the rules the service decides with.
func (s *Service) Config() Config { return s.cfg }

func (s *Service) logger() *slog.Logger {
	s.logOnce.Do(func() {
		l := s.Logger
		if l == nil {
			l = slog.Default()
		}
		s.log = l.WithGroup("checkin")
	})
	return s.log
}

// seen is a detection of the current frame with the track it belongs to.
type seen struct {
	tr  *track
	det int
}

// decision is an arrival decided under the camera lock and published after
// it is released.
type decision struct {
	card      bool // a verify card, not an arrival
	camera    string
	trackID   uint64
	customer  string
	distance  float64
	margin    float64
	votes     int
	at        time.Time
	firstSeen time.Time
	tier      *Tier
	risk      []RiskFlag
	thumb     []byte
	faces     []enroll.DoorFace // for Held
}

// Observe processes one frame of a camera taken at time at: it links dets to
// the camera's tracks, ends tracks unseen for TrackTimeout, calls embed for
// the few faces worth embedding, and publishes the arrivals decided. Frame
// times, never the wall clock, drive tracking and cooldowns, so a recorded
// clip replays exactly.
//
// A nil embed tracks without embedding, for a loop that is behind and
// sheds the costly step for a frame.
//
// The returned error reports embed failures and a cancelled ctx; the frame
// is processed as far as possible either way. Failures to record or notify
// an arrival are logged and counted in Stats, not returned: the decision
// stands, the arrival is held for RetryLoop with its id, and a retry by
// the caller would decide it twice.
func (s *Service) Observe(ctx context.Context, cameraID string, at time.Time, dets []Detection, embed EmbedFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if cameraID == "" {
		return concierge.Errorf(concierge.EINVALID, "observe: empty camera id")
	}
	var cam *camera
	for {
		cam = s.camera(cameraID)
		cam.mu.Lock()
		if !cam.closed {
			break
		}
		cam.mu.Unlock()
	}
	var ended []*track
	if !cam.last.IsZero() && at.Before(cam.last) {
		// The camera's clock stepped back (NTP, stream restart): motion
		// and timeouts across the jump mean nothing, so start afresh.
		s.logger().Warn("frame time went backwards; tracks reset",
			slog.String("camera", cameraID), slog.Duration("jump", cam.last.Sub(at)))
		ended = append(ended, cam.tracks...)
		clear(cam.tracks)
		cam.tracks = cam.tracks[:0]
	}
	cam.last = at
	if embed != nil {
		cam.detected = at
	}
	ended = append(ended, cam.expire(at, s.cfg.TrackTimeout)...)

	// The rule of this frame: the calibrated threshold moves only with the
	// gallery's size, so one look per frame serves every face in it.
	unlearned, bandUnlearned := s.unlearned()
	base := enroll.Rule{Threshold: s.threshold(), Margin: s.cfg.Margin, FaceSlack: s.cfg.FaceSlack, Unlearned: unlearned}
	embedded, out, errs := s.track(ctx, cameraID, cam, at, dets, embed, base, bandUnlearned)
	for _, f := range embedded {
		d, ok := s.decide(cameraID, f.tr, at, base)
		if !ok {
			if c, ok := s.exhaust(cameraID, f.tr, at); ok {
				out = append(out, c)
			}
			continue
		}
		if th := dets[f.det].Thumbnail; th != nil && !s.CardThumbnailsOnly {
			// The arrival goes out without a picture rather than not at all.
			var err error
			if d.thumb, err = th(); err != nil {
				s.logger().Warn("face thumbnail", slog.String("camera", cameraID), slog.Any("error", err))
				d.thumb = nil
			}
		}
		out = append(out, d)
	}
	cam.mu.Unlock()

	out = append(out, s.ended(cameraID, ended, at)...)
	for _, d := range out {
		s.publish(ctx, d)
	}
	return errors.Join(errs...)
}

// track updates the camera's tracks with the frame's detections, embeds the
// chosen faces and returns the tracks that got an embedding, and the cards
// of tracks that a failed embedding exhausted; base, the frame's rule, says
// which embeddings name someone. The caller holds cam.mu.
func (s *Service) track(ctx context.Context, cameraID string, cam *camera, at time.Time, dets []Detection, embed EmbedFunc, base enroll.Rule, bandUnlearned float64) ([]seen, []decision, []error) {
	cfg := &s.cfg
	band := s.band()
	idx := make([]int, 0, len(dets))
	boxes := make([]box, 0, len(dets))
	for i := range dets {
		d := &dets[i]
		if d.Box.Empty() || d.sizePx() < cfg.MinFacePx {
			continue
		}
		idx = append(idx, i)
		boxes = append(boxes, boxOf(d.Box))
	}
	link := associate(cam.tracks, boxes, at, cfg)
	frame := make([]seen, len(idx))
	for k, i := range idx {
		if link[k] >= 0 {
			tr := cam.tracks[link[k]]
			tr.update(boxes[k], at)
			frame[k] = seen{tr, i}
			continue
		}
		cam.nextID++
		tr := &track{id: cam.nextID, pos: boxes[k], first: at, last: at, hits: 1}
		cam.tracks = append(cam.tracks, tr)
		s.Stats.TracksStarted.Add(1)
		frame[k] = seen{tr, i}
	}

	var embedded []seen
	var cards []decision
	var errs []error
	for _, f := range frame {
		q := quality(&dets[f.det])
		if q >= cfg.MinQuality && f.tr.firstUsable.IsZero() {
			f.tr.firstUsable = at
		}
		if embed == nil || !f.tr.wantsEmbedding(q, at, cfg) {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		f.tr.embedCalls++
		f.tr.lastEmbed = at
		e, err := embed(f.det)
		if err != nil {
			s.Stats.EmbedErrors.Add(1)
			errs = append(errs, fmt.Errorf("embed face %d: %w", f.det, err))
			if c, ok := s.exhaust(cameraID, f.tr, at); ok {
				cards = append(cards, c)
			}
			continue
		}
		s.Stats.Embeddings.Add(1)
		m, ok := s.matcher.Search(&e)
		f.tr.samples = append(f.tr.samples, sample{emb: e, quality: q, match: m, found: ok})
		s.keepThumb(cameraID, f.tr, &f.tr.samples[len(f.tr.samples)-1], &dets[f.det], band, bandUnlearned)
		f.tr.bestQuality = max(f.tr.bestQuality, q)
		f.tr.named = f.tr.named || (ok && base.Face().Accept(m))
		embedded = append(embedded, f)
	}
	return embedded, cards, errs
}

// quality scores a detection. A caller that measured no frontality but
// passed landmarks gets it from the landmarks rather than a zero score.
func quality(d *Detection) float64 {
	q := d.Quality
	if q.SizePx == 0 {
		q.SizePx = d.sizePx()
	}
	if q.Frontal == 0 && d.Landmarks != (face.Landmarks{}) {
		q.Frontal = d.Landmarks.Frontal()
	}
	return q.Score()
}

// exhaust closes a pending track that has spent its embeddings: no decision
// can change any more, so its embeddings are forgotten now rather than when
// the person leaves, after the verify band had its look (a card).
func (s *Service) exhaust(cameraID string, tr *track, at time.Time) (decision, bool) {
	if tr.state != pending || tr.embedCalls < s.cfg.MaxEmbeddings {
		return decision{}, false
	}
	d, ok := s.card(cameraID, tr, at)
	if !ok {
		tr.state = exhausted
	}
	tr.forget()
	return d, ok
}

// decide applies the arrival rule (Rule.Decide) to a pending track that
// just got an embedding; base is the frame's rule before any per-customer
// tightening. The caller holds the camera lock.
func (s *Service) decide(cameraID string, tr *track, at time.Time, base enroll.Rule) (decision, bool) {
	if tr.state != pending {
		return decision{}, false
	}
	rule := Rule{Match: base, Votes: s.cfg.Votes}
	v := rule.Decide(tr.matches(), func() (enroll.Match, bool) {
		fused := tr.fuse()
		return s.matcher.Search(&fused)
	}, s.tighten(at))
	switch v.Verdict {
	case Conflict:
		tr.state = conflicted
		tr.forget()
		s.Stats.Conflicts.Add(1)
		s.logger().Debug("track conflict", slog.String("camera", cameraID), slog.Uint64("track", tr.id))
		return decision{}, false
	case Undecided:
		return decision{}, false
	}
	cand, fm, votes := v.Customer, v.Fused, v.Votes
	tier, risk := s.lookup(cand, at)
	tr.customer = cand
	faces := s.doorFaces(tr)
	tr.forget()
	if s.cool(cand, at, s.cooldown(tier)) {
		tr.state = suppressed
		s.Stats.Suppressed.Add(1)
		s.logger().Debug("arrival suppressed by cooldown", slog.String("camera", cameraID),
			slog.Uint64("track", tr.id), slog.String("customer", cand))
		return decision{}, false
	}
	tr.state = arrived
	return decision{
		faces:     faces,
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
	}, true
}

// cool reports whether the customer is in cooldown at time at, and starts
// or extends the cooldown. The window slides with every recognition, so a
// customer who waits in the lobby longer than the cooldown and is seen
// again is not announced as arriving a second time.
func (s *Service) cool(customerID string, at time.Time, cooldown time.Duration) bool {
	s.coolMu.Lock()
	defer s.coolMu.Unlock()
	until, cooling := s.until[customerID]
	s.until[customerID] = maxTime(until, at.Add(cooldown))
	return cooling && at.Before(until)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// unlearned is Unlearned now, zeros when it is not set.
func (s *Service) unlearned() (threshold, band float64) {
	if s.Unlearned == nil {
		return 0, 0
	}
	return s.Unlearned()
}

// threshold is the base distance threshold now: Config.Threshold, or the
// calibrated one when that is stricter.
func (s *Service) threshold() float64 {
	if s.Calibrated == nil {
		return s.cfg.Threshold
	}
	return min(s.cfg.Threshold, s.Calibrated())
}

// tighten is Strictness at time at, for Rule.Decide and Rule.Card, which
// clamp it so that it can only tighten.
func (s *Service) tighten(at time.Time) Tighten {
	if s.Strictness == nil {
		return nil
	}
	return func(customerID string) (int, float64) { return s.Strictness(customerID, at) }
}

func (s *Service) lookup(customerID string, at time.Time) (*Tier, []RiskFlag) {
	if s.Tiers == nil {
		return nil, nil
	}
	return s.Tiers.Lookup(customerID, at)
}

func (s *Service) cooldown(t *Tier) time.Duration {
	if t != nil && t.Service != nil && t.Service.Cooldown > 0 {
		return t.Service.Cooldown
	}
	return s.cfg.Cooldown
}

// Cooldown is the least time between two arrivals of the customer on the
// date at: the service level's cooldown when the customer's tier sets one,
// else Config.Cooldown.
func (s *Service) Cooldown(customerID string, at time.Time) time.Duration {
	t, _ := s.lookup(customerID, at)
	return s.cooldown(t)
}

// maxMargin stands for "no runner-up" in an Arrival: +Inf cannot travel in
// JSON, and no two faces of one model are this much further apart in
// practice.
const maxMargin = 1.0

// publish builds the arrival, records and notifies it, or holds it for
// RetryLoop when either fails. Each call is bounded by DeliverTimeout so a
// dead dependency slows the camera, never stops it.
func (s *Service) publish(ctx context.Context, d decision) {
	if d.card {
		s.publishCard(ctx, d)
		return
	}
	log := s.logger()
	id, err := s.newID(d.at)
	if err != nil {
		// Only a clock before 1970 or 2^80 ids in one millisecond get here.
		log.Error("arrival id", slog.Any("error", err))
		s.Stats.NotifyErrors.Add(1)
		return
	}
	a := Arrival{
		ID:         id,
		Branch:     s.cfg.Branch,
		Camera:     d.camera,
		At:         d.at,
		CustomerID: d.customer,
		Distance:   d.distance,
		Margin:     math.Min(d.margin, maxMargin),
		Votes:      d.votes,
		Tier:       d.tier,
		FirstSeen:  d.firstSeen,
		Thumbnail:  d.thumb,
	}
	a.DisplayName = s.displayName(ctx, d.customer)
	s.Stats.Arrivals.Add(1)
	log.Info("arrival", slog.String("id", a.ID), slog.String("camera", a.Camera), slog.Float64("distance", a.Distance),
		slog.Int("votes", a.Votes), slog.Uint64("track", d.trackID),
		slog.Duration("latency", d.at.Sub(d.firstSeen)), slog.Bool("risk", len(d.risk) > 0))
	log.Debug("arrival customer", slog.String("id", a.ID), slog.String("customer", a.CustomerID))
	s.Held.hold(a.ID, a.CustomerID, d.faces)
	p := &pendingArrival{a: a, risk: d.risk}
	if s.holding() {
		// Behind earlier failures: RetryLoop keeps the order.
		s.hold(p, nil)
		return
	}
	if err := s.deliver(ctx, p); err != nil {
		s.hold(p, err)
	}
}

// displayName is the customer's name as staff may see it, masked; empty
// when the Directory fails (staff still get the tier and the customer id).
func (s *Service) displayName(ctx context.Context, customerID string) string {
	if s.Directory == nil {
		return ""
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DeliverTimeout)
	name, err := s.Directory.DisplayName(dctx, customerID)
	cancel()
	if err != nil {
		log := s.logger()
		log.Warn("display name", slog.Any("error", err))
		log.Debug("display name failed", slog.String("customer", customerID))
	}
	if s.Mask != nil && name != "" {
		name = s.Mask(name)
	}
	return name
}

// newID returns a ULID for time at. The monotonic entropy keeps ids of one
// millisecond sorted; it is not safe for concurrent use, hence the lock.
func (s *Service) newID(at time.Time) (string, error) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	id, err := ulid.New(ulid.Timestamp(at), s.entropy)
	if err != nil {
		return "", fmt.Errorf("new arrival id: %w", err)
	}
	return id.String(), nil
}

func (s *Service) camera(id string) *camera {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cameras[id]
	if !ok {
		c = &camera{}
		s.cameras[id] = c
	}
	return c
}

// expire removes and returns the tracks unseen for timeout at time at.
// The caller holds c.mu.
func (c *camera) expire(at time.Time, timeout time.Duration) []*track {
	var ended []*track
	keep := c.tracks[:0]
	for _, t := range c.tracks {
		if at.Sub(t.last) >= timeout {
			ended = append(ended, t)
		} else {
			keep = append(keep, t)
		}
	}
	clear(c.tracks[len(keep):])
	c.tracks = keep
	return ended
}

// ended accounts for tracks that are gone, returns the verify cards of
// those that end in the band, and forgets their embeddings.
func (s *Service) ended(cameraID string, ts []*track, at time.Time) []decision {
	var cards []decision
	for _, t := range ts {
		if c, ok := s.card(cameraID, t, at); ok {
			cards = append(cards, c)
		}
		t.forget()
		s.Stats.TracksEnded.Add(1)
		if t.state != arrived && t.state != suppressed && t.state != carded {
			s.Stats.TracksDropped.Add(1)
		}
		s.logger().Debug("track ended", slog.String("camera", cameraID), slog.Uint64("track", t.id),
			slog.String("outcome", t.state.String()), slog.Int("embeddings", t.embedCalls),
			slog.Duration("seen", t.last.Sub(t.first)), slog.Duration("unseen", at.Sub(t.last)))
	}
	return cards
}

// publishAll publishes decisions made outside Observe (tracks ended by
// Tick or EndCamera), each bounded by DeliverTimeout.
func (s *Service) publishAll(ds []decision) {
	for _, d := range ds {
		s.publish(context.Background(), d)
	}
}

// Tick ends, on every camera, the tracks unseen for TrackTimeout at time at,
// and forgets expired cooldowns. The daemon calls it periodically so that a
// camera whose stream stalled does not keep its tracks, and their
// embeddings, until its next frame.
func (s *Service) Tick(at time.Time) {
	s.mu.Lock()
	cams := make(map[string]*camera, len(s.cameras))
	for id, c := range s.cameras {
		cams[id] = c
	}
	s.mu.Unlock()
	for id, c := range cams {
		c.mu.Lock()
		ended := c.expire(at, s.cfg.TrackTimeout)
		c.mu.Unlock()
		s.publishAll(s.ended(id, ended, at))
	}
	s.coolMu.Lock()
	for id, u := range s.until {
		if !at.Before(u) {
			delete(s.until, id)
		}
	}
	s.coolMu.Unlock()
	if s.Held != nil {
		s.Held.Expire()
	}
}

// EndCamera ends every track of the camera at time at and forgets the
// camera, at the end of a stream or when a camera is removed. A later
// Observe for the same id starts afresh. Cooldowns are kept: they are per
// branch, not per camera.
func (s *Service) EndCamera(cameraID string, at time.Time) {
	s.mu.Lock()
	c, ok := s.cameras[cameraID]
	delete(s.cameras, cameraID)
	s.mu.Unlock()
	if !ok {
		return
	}
	c.mu.Lock()
	c.closed = true
	ended := c.tracks
	c.tracks = nil
	c.mu.Unlock()
	s.publishAll(s.ended(cameraID, ended, at))
}

// Awaiting reports whether a frame of the camera taken at time at is worth
// detecting faces on at once: a track seen in the camera's last detected
// frame is undecided, already has an embedding naming a customer, and
// would take the embedding that may confirm it at time at
// (ConfirmInterval). A camera that detects only every few frames to save
// CPU detects on such a frame anyway, so that the vote that decides an
// arrival comes from the next frame rather than from the next scheduled
// detection. It is cheap and safe for concurrent use.
func (s *Service) Awaiting(cameraID string, at time.Time) bool {
	s.mu.Lock()
	cam, ok := s.cameras[cameraID]
	s.mu.Unlock()
	if !ok {
		return false
	}
	cam.mu.Lock()
	defer cam.mu.Unlock()
	for _, tr := range cam.tracks {
		if tr.awaiting(at, cam.detected, &s.cfg) {
			return true
		}
	}
	return false
}

// ActiveTracks is the number of live tracks over all cameras.
func (s *Service) ActiveTracks() int {
	s.mu.Lock()
	cams := make([]*camera, 0, len(s.cameras))
	for _, c := range s.cameras {
		cams = append(cams, c)
	}
	s.mu.Unlock()
	n := 0
	for _, c := range cams {
		c.mu.Lock()
		n += len(c.tracks)
		c.mu.Unlock()
	}
	return n
}
