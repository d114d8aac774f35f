package kiosk

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"

	"concierge/enroll"
	"concierge/face"
)

// Reasons a photo is refused beyond enroll's quality rule. The kiosk
// translates every reason into a hint on screen.
const (
	reasonTooDark   = "too_dark"
	reasonTooBright = "too_bright"
)

// hints tell the customer what to do, by refusal reason; the page has the
// wording in both languages.
var hints = map[string]string{
	"":                      "ok",
	enroll.ReasonUnreadable: "camera_error",
	enroll.ReasonNoFace:     "no_face",
	enroll.ReasonManyFaces:  "one_person",
	enroll.ReasonTooSmall:   "move_closer",
	enroll.ReasonBlurry:     "hold_still",
	enroll.ReasonNotFrontal: "face_camera",
	reasonTooDark:           "too_dark",
	reasonTooBright:         "too_bright",
	codeDifferentPerson:     "same_person",
}

// feedback is the per-photo answer: what was found and what to do.
type feedback struct {
	Accepted bool          `json:"accepted"`
	Reason   string        `json:"reason,omitempty"`
	Detail   string        `json:"detail,omitempty"`
	Hint     string        `json:"hint"`
	Faces    int           `json:"faces"`
	Box      *[4]int       `json:"box,omitempty"` // x0, y0, x1, y1 in the photo's pixels
	Quality  *face.Quality `json:"quality,omitempty"`
	// Liveness is "pending" or "passed"; PhotosAccepted counts this
	// enrollment's usable photos so far.
	Liveness       string `json:"liveness"`
	PhotosAccepted int    `json:"photos_accepted"`
	PhotosNeeded   int    `json:"photos_needed"`
}

// readImage returns the one image of a request: a JPEG or PNG body, or the
// one file part of a multipart form.
func (s *Server) readImage(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	limit := s.cfg.MaxUploadBytes
	if r.ContentLength > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "body of %d bytes exceeds the limit of %d", r.ContentLength, limit)
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	switch mt := mediaType(r); mt {
	case "image/jpeg", "image/png":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, bodyError(err, limit)
		}
		if len(b) == 0 {
			return nil, errorf(http.StatusBadRequest, codeBadRequest, "empty body: send one JPEG or PNG photo")
		}
		return b, nil
	case "multipart/form-data":
		frames, e := s.readParts(r, "photo", 1)
		if e != nil {
			return nil, e
		}
		if len(frames) != 1 {
			return nil, errorf(http.StatusBadRequest, codeBadRequest, "multipart form: want one part named \"photo\"")
		}
		return frames[0], nil
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, codeMediaType, "content type %q: want image/jpeg, image/png or multipart/form-data", r.Header.Get("Content-Type"))
	}
}

// readParts reads up to n image parts named name from a multipart body
// already wrapped in a size limit. Other fields are refused, so a typo in
// a field name is an error rather than a silently missing frame.
func (s *Server) readParts(r *http.Request, name string, n int) ([][]byte, *apiError) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errorf(http.StatusBadRequest, codeBadRequest, "multipart form: %v", err)
	}
	var out [][]byte
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, bodyError(err, s.cfg.MaxUploadBytes)
		}
		if p.FormName() != name {
			p.Close()
			return nil, errorf(http.StatusBadRequest, codeBadRequest, "multipart form: unexpected part %q, want %q", p.FormName(), name)
		}
		if ct := p.Header.Get("Content-Type"); ct != "image/jpeg" && ct != "image/png" {
			p.Close()
			return nil, errorf(http.StatusUnsupportedMediaType, codeMediaType, "part %q has content type %q: want image/jpeg or image/png", name, ct)
		}
		if len(out) == n {
			p.Close()
			return nil, errorf(http.StatusUnprocessableEntity, codeInvalid, "at most %d %q parts", n, name)
		}
		b, err := io.ReadAll(p)
		p.Close()
		if err != nil {
			return nil, bodyError(err, s.cfg.MaxUploadBytes)
		}
		if len(b) == 0 {
			return nil, errorf(http.StatusBadRequest, codeBadRequest, "part %q is empty", name)
		}
		out = append(out, b)
	}
}

func bodyError(err error, limit int64) *apiError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "body exceeds the limit of %d bytes", limit)
	}
	return errorf(http.StatusBadRequest, codeBadRequest, "reading the body: %v", err)
}

// assess detects the face of one photo and checks it against the quality
// rule, the light, and the face already accepted in this enrollment, so
// that every photo and the liveness check show one person.
func (s *Server) assess(r *http.Request, ss *session, data []byte) (feedback, *face.Face, *apiError) {
	fb := feedback{PhotosNeeded: s.cfg.PhotosNeeded, PhotosAccepted: len(ss.faces), Liveness: "pending"}
	if ss.live != nil {
		fb.Liveness = "passed"
	}
	results, usable, err := s.svc.Assess(r.Context(), []enroll.Photo{{Name: "photo", Data: data}})
	if err != nil {
		return fb, nil, fromDomain(fmt.Errorf("assess photo: %w", err))
	}
	pr := results[0]
	fb.Reason, fb.Detail, fb.Faces, fb.Quality = pr.Reason, pr.Detail, pr.Faces, pr.Quality
	if !pr.Box.Empty() {
		fb.Box = &[4]int{pr.Box.Min.X, pr.Box.Min.Y, pr.Box.Max.X, pr.Box.Max.Y}
	}
	var f *face.Face
	if len(usable) == 1 {
		f = &usable[0]
		switch q := f.Quality; {
		case q.Brightness < s.cfg.MinBrightness:
			fb.Reason, fb.Detail = reasonTooDark, fmt.Sprintf("face brightness %.0f of 255", q.Brightness)
		case q.Brightness > s.cfg.MaxBrightness:
			fb.Reason, fb.Detail = reasonTooBright, fmt.Sprintf("face brightness %.0f of 255", q.Brightness)
		case !s.samePerson(ss, f):
			fb.Reason, fb.Detail = codeDifferentPerson, "this is not the person of the earlier photos"
		}
	}
	fb.Accepted = f != nil && fb.Reason == ""
	fb.Hint = hints[fb.Reason]
	if !fb.Accepted {
		f = nil
	}
	return fb, f, nil
}

// samePerson reports whether f is the person already seen in this
// enrollment (its accepted photos and its live face), by the daemon's own
// match threshold against the closest of them: photos seconds apart at one
// kiosk differ in pose and expression, and the closest is the fair test.
func (s *Server) samePerson(ss *session, f *face.Face) bool {
	return s.distanceToSession(ss, f) <= s.svc.Rule.Threshold
}

// distanceToSession is the distance from f to the closest face seen in the
// enrollment; 0 when none was seen yet.
func (s *Server) distanceToSession(ss *session, f *face.Face) float64 {
	seen := make([]*face.Face, 0, len(ss.faces)+1)
	for i := range ss.faces {
		seen = append(seen, &ss.faces[i])
	}
	if ss.live != nil {
		seen = append(seen, ss.live)
	}
	if len(seen) == 0 {
		return 0
	}
	best := math.Inf(1)
	for _, o := range seen {
		best = min(best, face.Distance(&o.Embedding, &f.Embedding))
	}
	return best
}

// POST /v1/enrollments/{id}/guidance: live feedback on a camera frame,
// about three a second while the customer settles. Nothing is kept and
// nothing is audited: it decides nothing.
func (s *Server) handleGuidance(w http.ResponseWriter, r *http.Request) *apiError {
	data, e := s.readImage(w, r)
	if e != nil {
		return e
	}
	ss, e := s.lockConsented(r)
	if e != nil {
		return e
	}
	defer ss.mu.Unlock()
	fb, _, e := s.assess(r, ss, data)
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, fb)
	return nil
}

// POST /v1/enrollments/{id}/photos: one enrollment photo. A usable photo's
// face is kept for finish (201); a refused one is 422 with the reason.
func (s *Server) handlePhoto(w http.ResponseWriter, r *http.Request) *apiError {
	data, e := s.readImage(w, r)
	if e != nil {
		return e
	}
	ss, e := s.lockConsented(r)
	if e != nil {
		return e
	}
	defer ss.mu.Unlock()
	if len(ss.faces) >= s.cfg.MaxPhotos {
		return errorf(http.StatusConflict, codeTooManyPhotos, "%d photos are already accepted; finish the enrollment", len(ss.faces))
	}
	fb, f, e := s.assess(r, ss, data)
	if e != nil {
		return e
	}
	audit := AuditEntry{Actor: ss.kiosk, Action: "photo", Session: ss.id, CustomerID: ss.customerID}
	if !fb.Accepted {
		audit.Outcome, audit.Detail = "refused", fb.Reason
		if fb.Faces > 1 {
			audit.Detail = fmt.Sprintf("%s (%d faces)", fb.Reason, fb.Faces)
		}
		s.record(r.Context(), audit)
		ae := errorf(http.StatusUnprocessableEntity, fb.Reason, "photo refused: %s", describeReason(fb))
		ae.Detail = map[string]any{"feedback": fb}
		return ae
	}
	ss.faces = append(ss.faces, *f)
	fb.PhotosAccepted = len(ss.faces)
	q := f.Quality
	audit.Outcome = "ok"
	audit.Detail = fmt.Sprintf("face %d px, sharpness %.0f, frontal %.2f, brightness %.0f", q.SizePx, q.Sharpness, q.Frontal, q.Brightness)
	s.record(r.Context(), audit)
	writeJSON(w, http.StatusCreated, fb)
	return nil
}

func describeReason(fb feedback) string {
	switch fb.Reason {
	case enroll.ReasonNoFace:
		return "no face found"
	case enroll.ReasonManyFaces:
		return fmt.Sprintf("%d faces found; the photo must show the customer alone", fb.Faces)
	case enroll.ReasonTooSmall:
		return "the face is too small: move closer"
	case enroll.ReasonBlurry:
		return "the photo is blurred: hold still"
	case enroll.ReasonNotFrontal:
		return "the face is turned away: face the camera"
	case enroll.ReasonUnreadable:
		return "not a readable JPEG or PNG image: " + fb.Detail
	case reasonTooDark:
		return "the face is too dark"
	case reasonTooBright:
		return "the face is too bright"
	case codeDifferentPerson:
		return "this is not the person of the earlier photos"
	}
	return fb.Reason
}
