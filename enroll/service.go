package enroll

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"concierge"
	"concierge/face"
)

// QualityRule is the bar an enrollment photo's face must clear. Enrollment is
// stricter than recognition: a poor template makes every later match worse.
type QualityRule struct {
	MinFacePx    int     `json:"min_face_px"`
	MinSharpness float64 `json:"min_sharpness"`
	MinFrontal   float64 `json:"min_frontal"`
}

// DefaultQualityRule suits 1–2 MP kiosk and phone photos.
var DefaultQualityRule = QualityRule{MinFacePx: 80, MinSharpness: 100, MinFrontal: 0.35}

// Photo rejection reasons, stable strings that kiosks translate.
const (
	ReasonUnreadable = "unreadable"
	ReasonNoFace     = "no_face"
	ReasonManyFaces  = "several_faces"
	ReasonTooSmall   = "too_small"
	ReasonBlurry     = "too_blurry"
	ReasonNotFrontal = "not_frontal"
)

// Check returns "" when the face is good enough to enroll, or the reason.
func (r QualityRule) Check(q face.Quality) string {
	switch {
	case q.SizePx < r.MinFacePx:
		return ReasonTooSmall
	case q.Sharpness < r.MinSharpness:
		return ReasonBlurry
	case q.Frontal < r.MinFrontal:
		return ReasonNotFrontal
	}
	return ""
}

// Photo is one uploaded or file image.
type Photo struct {
	Name string
	Data []byte
}

// PhotoResult tells the customer (or operator) what happened to one photo.
type PhotoResult struct {
	Name    string          `json:"name"`
	OK      bool            `json:"ok"`
	Reason  string          `json:"reason,omitempty"`
	Detail  string          `json:"detail,omitempty"`
	Faces   int             `json:"faces"`
	Box     image.Rectangle `json:"-"`
	Quality *face.Quality   `json:"quality,omitempty"`
}

// Request is one enrollment of one customer.
type Request struct {
	CustomerID  string
	DisplayName string
	Consent     Consent
	Photos      []Photo
	// AllowDuplicate lets an operator enroll a face that matches another
	// customer (twins, a data fix); kiosks never set it.
	AllowDuplicate bool
}

// Result reports an enrollment.
type Result struct {
	CustomerID string        `json:"customer_id"`
	Templates  int           `json:"templates"`
	Model      string        `json:"model"`
	Photos     []PhotoResult `json:"photos"`
}

// Identification is one face found in a probe image.
type Identification struct {
	Box     image.Rectangle `json:"box"`
	Quality face.Quality    `json:"quality"`
	// Match is the best candidate whether accepted or not; Known says
	// whether the rule accepted it.
	Match Match `json:"match"`
	Known bool  `json:"known"`
}

// Service enrolls, forgets and identifies customers.
type Service struct {
	Store    Store
	Detector Detector
	Gallery  *Gallery
	Quality  QualityRule
	// Rule is the loosest recognition rule; enrollment's own checks (one
	// person per session) use it as it is.
	Rule Rule
	// OpenSet, when its Ceiling is set, tightens Rule's threshold to the
	// one that holds the false-alert budget at the gallery's current size
	// (see Recognition).
	OpenSet OpenSet
	// VerifyTarget is the budget of "please verify" cards per stranger
	// visit (OpenSet.Band); 0 turns the band off (Verification).
	VerifyTarget float64
	// DuplicateThreshold refuses a new face this close to another customer;
	// 0 means the recognition threshold in force (Recognition): a face that
	// would be recognised as someone else. A fixed threshold would refuse
	// ever more legitimate customers as the gallery grows.
	DuplicateThreshold float64
	Now                func() time.Time
	Logger             *slog.Logger
}

// Open fills in the defaults and loads the gallery from the store. Call it
// once before use: it sets fields the service then reads without a lock.
// Reload picks up later changes.
func (s *Service) Open(ctx context.Context) error {
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Gallery == nil {
		s.Gallery = NewGallery(s.Detector.Model())
	}
	return s.Reload(ctx)
}

// Reload replaces the gallery's content with the templates the store holds
// now, so that what another process enrolled or erased is recognised or
// forgotten. It is safe while the service is in use: identifications see
// the old gallery or the new one, never a mix.
func (s *Service) Reload(ctx context.Context) error {
	if s.Gallery == nil {
		return errors.New("enroll: Reload before Open")
	}
	ts, err := s.Store.Templates(ctx, s.Gallery.Model())
	if err != nil {
		return fmt.Errorf("load gallery: %w", err)
	}
	s.Gallery.Load(ts)
	s.Logger.Debug("gallery loaded", "model", s.Gallery.Model(), "customers", s.Gallery.Customers(), "templates", len(ts))
	return nil
}

// Validate checks the fields of a request that do not need the photos.
func (r Request) Validate() error {
	if err := r.validateFields(); err != nil {
		return err
	}
	if len(r.Photos) == 0 {
		return concierge.Errorf(concierge.EINVALID, "at least one photo is required")
	}
	return nil
}

// validateFields checks everything but the photos.
func (r Request) validateFields() error {
	switch {
	case !ValidID(r.CustomerID):
		return concierge.Errorf(concierge.EINVALID, "customer id %q: want 1-64 letters, digits, '-', '_' or '.'", r.CustomerID)
	case strings.TrimSpace(r.DisplayName) == "" || utf8.RuneCountInString(r.DisplayName) > 100:
		return concierge.Errorf(concierge.EINVALID, "display name: must be 1-100 characters")
	case strings.TrimSpace(r.Consent.Reference) == "":
		return concierge.Errorf(concierge.EINVALID, "consent reference is required: only customers who consented may be enrolled")
	}
	return nil
}

// ValidID reports whether id is a customer (or device) id the system
// accepts: 1–64 ASCII letters, digits, '-', '_' or '.', so it is safe in
// logs, file names and NATS subjects.
func ValidID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// Assess detects faces in every photo and reports which are usable,
// without storing anything. Kiosks call it for live feedback.
func (s *Service) Assess(ctx context.Context, photos []Photo) ([]PhotoResult, []face.Face, error) {
	results := make([]PhotoResult, len(photos))
	var usable []face.Face
	for i, p := range photos {
		res := PhotoResult{Name: p.Name}
		faces, err := s.Detector.Detect(ctx, p.Data)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, nil, ctx.Err()
		case err != nil:
			if !IsBadInput(err) {
				return nil, nil, fmt.Errorf("detect %s: %w", p.Name, err)
			}
			res.Reason, res.Detail = ReasonUnreadable, err.Error()
		case len(faces) == 0:
			res.Reason = ReasonNoFace
		case len(faces) > 1:
			res.Reason, res.Faces = ReasonManyFaces, len(faces)
			res.Detail = fmt.Sprintf("%d faces found; each photo must show the customer alone", len(faces))
		default:
			f := faces[0]
			res.Faces, res.Box, res.Quality = 1, f.Box, &f.Quality
			if reason := s.Quality.Check(f.Quality); reason != "" {
				res.Reason = reason
				res.Detail = fmt.Sprintf("face %d px, sharpness %.0f, frontal %.2f", f.Quality.SizePx, f.Quality.Sharpness, f.Quality.Frontal)
			} else {
				res.OK = true
				usable = append(usable, f)
			}
		}
		results[i] = res
	}
	return results, usable, nil
}

// badInput is implemented by detector errors that describe an unusable
// image (vision.InputError) rather than a failure of the engine; the domain
// cannot import vision, so it asks the error.
type badInput interface{ BadInput() bool }

// IsBadInput reports whether err says the image itself is unusable.
func IsBadInput(err error) bool {
	var b badInput
	return errors.As(err, &b) && b.BadInput()
}

// Enroll stores templates for the customer from the usable photos. Photos
// that fail are reported with their reason; when none is usable nothing is
// stored and the error is EINVALID. A face that matches a different
// customer is refused with ECONFLICT naming them, unless AllowDuplicate.
func (s *Service) Enroll(ctx context.Context, req Request) (Result, error) {
	res := Result{CustomerID: req.CustomerID, Model: s.Gallery.Model()}
	if err := req.Validate(); err != nil {
		return res, err
	}
	photos, usable, err := s.Assess(ctx, req.Photos)
	if err != nil {
		return res, fmt.Errorf("enroll %s: %w", req.CustomerID, err)
	}
	res.Photos = photos
	if len(usable) == 0 {
		e := concierge.Errorf(concierge.EINVALID, "no usable photo for customer %s: %s", req.CustomerID, reasons(photos))
		e.Detail = map[string]any{"photos": photos}
		return res, e
	}
	saved, err := s.EnrollFaces(ctx, req, usable)
	res.Templates = saved.Templates
	return res, err
}

// EnrollFaces stores templates for the customer from faces that Assess
// already found usable: a kiosk assesses each photo as it is taken, keeps
// the faces and drops the photos, and enrolls at the end. req.Photos is
// not used. A zero req.Consent.GrantedAt means now. The duplicate check and
// the single transaction are those of Enroll.
func (s *Service) EnrollFaces(ctx context.Context, req Request, usable []face.Face) (Result, error) {
	res := Result{CustomerID: req.CustomerID, Model: s.Gallery.Model()}
	if err := req.validateFields(); err != nil {
		return res, err
	}
	if len(usable) == 0 {
		return res, concierge.Errorf(concierge.EINVALID, "no usable face for customer %s", req.CustomerID)
	}
	if !req.AllowDuplicate {
		for _, f := range usable {
			if m, ok := s.Gallery.Search(&f.Embedding, req.CustomerID); ok && m.Distance <= s.duplicateThreshold() {
				e := concierge.Errorf(concierge.ECONFLICT,
					"this face already matches enrolled customer %s (distance %.3f); refused for staff review", m.CustomerID, m.Distance)
				e.Detail = map[string]any{"customer_id": m.CustomerID, "distance": m.Distance}
				return res, e
			}
		}
	}
	now := s.Now().UTC()
	consent := req.Consent
	consent.CustomerID = req.CustomerID
	if consent.GrantedAt.IsZero() {
		consent.GrantedAt = now
	}
	consent.WithdrawnAt = nil
	if consent.Channel == "" {
		consent.Channel = "cli"
	}
	// Only a consent that says so lets templates leave the box.
	if consent.Scope == "" {
		consent.Scope = ScopeBranch
	}
	if err := CheckScope(consent.Scope); err != nil {
		return res, err
	}
	ts := make([]Template, len(usable))
	for i, f := range usable {
		ts[i] = Template{CustomerID: req.CustomerID, Embedding: f.Embedding, Quality: f.Quality, Model: f.Model, Created: now}
	}
	cust := Customer{ID: req.CustomerID, DisplayName: strings.TrimSpace(req.DisplayName), Created: now}
	saved, err := s.Store.SaveEnrollment(ctx, cust, consent, ts)
	if err != nil {
		return res, fmt.Errorf("enroll %s: %w", req.CustomerID, err)
	}
	s.Gallery.Add(saved...)
	res.Templates = len(saved)
	// Customer ids are personal data: only at Debug.
	s.Logger.Info("customer enrolled", "templates", len(saved), "channel", consent.Channel)
	s.Logger.Debug("customer enrolled", "customer", req.CustomerID)
	return res, nil
}

func reasons(ps []PhotoResult) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", p.Name, p.Reason)
	}
	return b.String()
}

// Forget withdraws the customer's consent and deletes their templates from
// the store and the gallery at once.
func (s *Service) Forget(ctx context.Context, customerID string) (int, error) {
	if !ValidID(customerID) {
		return 0, concierge.Errorf(concierge.EINVALID, "customer id %q is not valid", customerID)
	}
	n, err := s.Store.Forget(ctx, customerID, s.Now().UTC())
	if err != nil {
		return 0, fmt.Errorf("forget %s: %w", customerID, err)
	}
	s.Gallery.Remove(customerID)
	s.Logger.Info("customer forgotten", "templates_deleted", n)
	s.Logger.Debug("customer forgotten", "customer", customerID)
	return n, nil
}

func (s *Service) duplicateThreshold() float64 {
	if s.DuplicateThreshold > 0 {
		return s.DuplicateThreshold
	}
	return s.Recognition().Threshold
}

// Recognition is the rule in force for recognising customers now: Rule,
// with the OpenSet threshold for the gallery's size when that is stricter.
//
// While learning (OpenSet.DoorFactor above 1) the threshold holds the
// budget with every customer's door rows counted; Unlearned widens it back
// to the kiosk-only calibration for customers who hold none (Rule.Unlearned).
func (s *Service) Recognition() Rule {
	r := s.Rule
	if s.OpenSet.Ceiling > 0 {
		n := s.Gallery.Customers()
		r.Threshold = min(r.Threshold, s.OpenSet.Threshold(n))
		if k := s.kioskOnly(); k != nil {
			r.Unlearned = max(0, min(s.Rule.Threshold, k.Threshold(n))-r.Threshold)
		}
	}
	return r
}

// Unlearned is how much farther than the recognition threshold and the
// verify band a customer who holds no door row may match
// (Rule.Unlearned of Recognition and Verification): check-in's per-frame
// view of both.
func (s *Service) Unlearned() (threshold, band float64) {
	r := s.Recognition()
	if v, ok := s.verification(r); ok {
		band = v.Unlearned
	}
	return r.Unlearned, band
}

// kioskOnly is the open-set calibration without the door factor, nil when
// there is none: what a customer without door rows is calibrated with.
func (s *Service) kioskOnly() *OpenSet {
	if s.OpenSet.DoorFactor <= 1 {
		return nil
	}
	k := s.OpenSet
	k.DoorFactor = 0
	return &k
}

// Verification is the rule of the "please verify" band now: the rule in
// force with its threshold widened to OpenSet.Band for the gallery's size.
// ok is false when there is no band: VerifyTarget 0, an uncalibrated
// threshold, or a band no wider than the recognition threshold.
func (s *Service) Verification() (r Rule, ok bool) {
	return s.verification(s.Recognition())
}

// verification widens r, the rule in force, into the band's rule.
func (s *Service) verification(r Rule) (Rule, bool) {
	if s.VerifyTarget <= 0 || s.OpenSet.Ceiling <= 0 {
		return r, false
	}
	n := s.Gallery.Customers()
	b := s.OpenSet.Band(s.VerifyTarget, n)
	if b <= r.Threshold {
		return r, false
	}
	r.Threshold = b
	if k := s.kioskOnly(); k != nil {
		r.Unlearned = max(0, k.Band(s.VerifyTarget, n)-b)
	}
	return r, true
}

// Identify finds every face in the image and matches it against the gallery
// under the rule in force (Recognition).
func (s *Service) Identify(ctx context.Context, img []byte) ([]Identification, error) {
	faces, err := s.Detector.Detect(ctx, img)
	if err != nil {
		return nil, err
	}
	out := make([]Identification, 0, len(faces))
	rule := s.Recognition()
	for _, f := range faces {
		id := Identification{Box: f.Box, Quality: f.Quality}
		if m, ok := s.Gallery.Search(&f.Embedding); ok {
			id.Match = m
			id.Known = rule.Accept(m)
		}
		out = append(out, id)
	}
	return out, nil
}
