package kiosk

import (
	"fmt"
	"math"
	"net/http"
	"sort"

	"concierge/enroll"
	"concierge/face"
)

// livenessHints say what to do after a failed check. A picture held up to
// the camera ("flat") gets the same hint as a head that did not turn: the
// kiosk is not told how the check saw through it.
var livenessHints = map[string]string{
	enroll.LivenessNoFace:     "no_face",
	enroll.LivenessManyFaces:  "one_person",
	enroll.LivenessTooSmall:   "move_closer",
	enroll.LivenessNoFrontal:  "face_camera",
	enroll.LivenessNoTurn:     "turn_head",
	enroll.LivenessFlat:       "turn_head",
	enroll.LivenessWrongOrder: "follow_steps",
	codeDifferentPerson:       "same_person",
}

type livenessResponse struct {
	Live         bool    `json:"live"`
	Frames       int     `json:"frames"`
	Turn         float64 `json:"turn"`
	AttemptsLeft int     `json:"liveness_attempts_left"`
}

// readFrames reads a liveness sequence: a multipart form of 6-16 "frame"
// parts (JPEG or PNG).
func (s *Server) readFrames(w http.ResponseWriter, r *http.Request) ([][]byte, *apiError) {
	limit := s.cfg.MaxUploadBytes
	if r.ContentLength > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "body of %d bytes exceeds the limit of %d", r.ContentLength, limit)
	}
	if mediaType(r) != "multipart/form-data" {
		return nil, errorf(http.StatusUnsupportedMediaType, codeMediaType, "content type %q: want multipart/form-data with \"frame\" parts", r.Header.Get("Content-Type"))
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	frames, e := s.readParts(r, "frame", s.cfg.MaxLivenessFrames)
	if e != nil {
		return nil, e
	}
	if len(frames) < s.cfg.MinLivenessFrames {
		return nil, errorf(http.StatusUnprocessableEntity, codeInvalid, "%d frames: send %d to %d", len(frames), s.cfg.MinLivenessFrames, s.cfg.MaxLivenessFrames)
	}
	return frames, nil
}

// checkLive finds the landmarks of every frame and checks them against the
// challenge: the non-planar motion of a real head, turning in the
// challenge's order.
func (s *Server) checkLive(r *http.Request, frames [][]byte, ch *challenge) (enroll.LivenessResult, [][]face.Face, *apiError) {
	faces := make([][]face.Face, len(frames))
	for i, f := range frames {
		found, err := s.marks.Detect(r.Context(), f)
		if err != nil {
			if enroll.IsBadInput(err) {
				return enroll.LivenessResult{}, nil, errorf(http.StatusUnprocessableEntity, "unreadable", "frame %d: %v", i, err)
			}
			return enroll.LivenessResult{}, nil, fromDomain(fmt.Errorf("liveness frame %d: %w", i, err))
		}
		faces[i] = found
	}
	return s.rule.CheckChallenge(faces, ch.steps), faces, nil
}

// POST /v1/enrollments/{id}/liveness: a multipart form of 6-16 "frame"
// parts (JPEG or PNG) taken while the customer follows the steps of the
// challenge that POST .../liveness/challenge returned.
func (s *Server) handleLiveness(w http.ResponseWriter, r *http.Request) *apiError {
	frames, e := s.readFrames(w, r)
	if e != nil {
		return e
	}
	ss, e := s.lockConsented(r)
	if e != nil {
		return e
	}
	defer ss.mu.Unlock()
	ch := ss.challenge
	if e := s.inTime(ch); e != nil {
		if ch != nil && e.Code == codeLivenessFailed {
			ss.challenge = nil
			s.record(r.Context(), AuditEntry{Actor: ss.kiosk, Action: "liveness", Session: ss.id, CustomerID: ss.customerID,
				Outcome: "fail", Detail: "too soon after the challenge: " + e.Message})
		}
		return e
	}
	// One submission per challenge, whatever its outcome: a second try at
	// the same steps would let a replay be adjusted to them.
	ss.challenge = nil
	res, faces, e := s.checkLive(r, frames, ch)
	if e != nil {
		if e.Status >= 500 {
			ss.attempts--
		}
		return e
	}
	reason := res.Reason
	var live *face.Face
	if res.Live {
		// The live face must be the face of the photos, or a customer could
		// turn their own head for someone else's pictures.
		var err error
		live, err = s.liveFace(r, ss, frames, faces)
		switch {
		case err != nil:
			ss.attempts--
			return fromDomain(fmt.Errorf("liveness identity: %w", err))
		case live == nil:
			reason = codeDifferentPerson
		}
	}
	audit := AuditEntry{Actor: ss.kiosk, Action: "liveness", Session: ss.id, CustomerID: ss.customerID,
		Outcome: "pass", Detail: stepsDetail(ch.steps) + "; " + res.Detail()}
	if live == nil {
		if reason == enroll.LivenessWrongOrder {
			// A head that turns, but not as asked, is what a replayed
			// recording looks like: no more draws at the challenge.
			ss.attempts = s.cfg.MaxLivenessAttempts
		}
		audit.Outcome, audit.Detail = "fail", reason+" "+audit.Detail
		s.record(r.Context(), audit)
		ae := errorf(http.StatusUnprocessableEntity, codeLivenessFailed, "liveness check failed: %s", livenessMessage(reason))
		ae.Detail = map[string]any{"hint": livenessHints[reason], "frames": res.Frames,
			"liveness_attempts_left": max(0, s.cfg.MaxLivenessAttempts-ss.attempts)}
		return ae
	}
	ss.live, ss.liveness = live, res
	s.record(r.Context(), audit)
	writeJSON(w, http.StatusOK, livenessResponse{Live: true, Frames: res.Frames, Turn: res.Turn,
		AttemptsLeft: max(0, s.cfg.MaxLivenessAttempts-ss.attempts)})
	return nil
}

// identityFrames is how many of the most frontal liveness frames are
// embedded to find the live face among the photos' faces.
const identityFrames = 6

// liveFace embeds the most frontal frames of a passed sequence and returns
// the face closest to the enrollment's photos if it is the same person by
// samePerson, else nil. Several frames, because one frame of a talking,
// turning face can sit far from every photo with a weak embedding model
// (MobileFaceNet's distances between photos of one person reach 0.9).
func (s *Server) liveFace(r *http.Request, ss *session, frames [][]byte, faces [][]face.Face) (*face.Face, error) {
	idx := make([]int, 0, len(frames))
	for i, f := range faces {
		if len(f) == 1 {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool {
		return faces[idx[a]][0].Landmarks.Frontal() > faces[idx[b]][0].Landmarks.Frontal()
	})
	var best *face.Face
	bestDist := math.Inf(1)
	for _, i := range idx[:min(len(idx), identityFrames)] {
		found, err := s.svc.Detector.Detect(r.Context(), frames[i])
		if err != nil && !enroll.IsBadInput(err) {
			return nil, err
		}
		if len(found) != 1 {
			continue
		}
		d := s.distanceToSession(ss, &found[0])
		if d < bestDist {
			best, bestDist = &found[0], d
		}
	}
	if best == nil || bestDist > s.svc.Rule.Threshold {
		return nil, nil
	}
	return best, nil
}

func livenessMessage(reason string) string {
	switch reason {
	case enroll.LivenessNoFace:
		return "the face was not seen in enough frames"
	case enroll.LivenessManyFaces:
		return "only the customer may be in view"
	case enroll.LivenessTooSmall:
		return "move closer to the camera"
	case enroll.LivenessNoFrontal:
		return "start by facing the camera"
	case codeDifferentPerson:
		return "the person turning is not the person of the photos"
	case enroll.LivenessWrongOrder:
		return "the head did not turn as the steps on screen asked; a member of staff must start again"
	}
	return "turn your head slowly to one side and back"
}
