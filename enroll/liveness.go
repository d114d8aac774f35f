package enroll

import (
	"fmt"
	"math"

	"concierge/face"
)

// The liveness check at enrollment tells a head turning in front of the
// kiosk camera from a picture of a face (a print, a phone or tablet
// screen) held up to it, from the five landmarks of a short sequence of
// frames. A picture is a plane, and every view of a plane is one
// homography (a 3×3 projective map) of any other view, however the
// picture is moved, turned or tilted. A turning head is not a plane: the
// nose tip stands out in front of the eyes and mouth corners and moves
// across them as the head turns (parallax), which no homography of the
// first view explains. docs/liveness.md has the measurements behind the
// thresholds and what the check does not stop.

// LivenessRule holds the thresholds of the liveness check.
type LivenessRule struct {
	// MinFrames is how many frames must show exactly one face.
	MinFrames int `json:"min_frames"`
	// MinEyePx is the least inter-ocular distance in pixels of the most
	// frontal frame. YuNet's
	// landmarks jitter by a pixel or two whatever the face's size, so on a
	// small face that jitter looks like parallax.
	MinEyePx float64 `json:"min_eye_px"`
	// MaxFrontalYaw is how far from facing the camera the most frontal
	// frame may be (nose offset in eye distances): the sequence starts or
	// passes through a frontal view, which is the reference.
	MaxFrontalYaw float64 `json:"max_frontal_yaw"`
	// MinTurn is the least range of the nose's offset between the eyes
	// over the sequence: the requested head turn. A picture tilted to
	// mimic it barely changes this offset.
	MinTurn float64 `json:"min_turn"`
	// MinParallax is the least RMS distance, in the reference frame's eye
	// distance, between the landmarks of some frame and the best
	// homography of the reference frame's landmarks onto them.
	MinParallax float64 `json:"min_parallax"`
	// MinStepYaw is how far (nose offset in eye distances, from the most
	// frontal frame) the head must turn to one side for a challenge's step
	// to count: facing the camera, YuNet's yaw wanders by about 0.06.
	MinStepYaw float64 `json:"min_step_yaw"`
}

// DefaultLivenessRule is calibrated on real clips of people turning their
// heads and on real photos held up flat (docs/liveness.md).
var DefaultLivenessRule = LivenessRule{
	MinFrames:     6,
	MinEyePx:      80,
	MaxFrontalYaw: 0.12,
	MinTurn:       0.22,
	MinParallax:   0.04,
	MinStepYaw:    0.10,
}

// Liveness failure reasons, stable strings that kiosks translate.
const (
	LivenessNoFace    = "no_face"       // too few frames with a face
	LivenessManyFaces = "several_faces" // a frame shows more than one face
	LivenessTooSmall  = "too_small"     // move closer
	LivenessNoFrontal = "not_frontal"   // no frame faces the camera
	LivenessNoTurn    = "no_turn"       // the head did not turn enough
	LivenessFlat      = "flat"          // the motion is that of a flat picture
)

// LivenessResult reports one check with the numbers it was decided on, for
// the audit log and for calibration.
type LivenessResult struct {
	Live   bool   `json:"live"`
	Reason string `json:"reason,omitempty"`
	// Frames is the number of frames that showed exactly one face.
	Frames int `json:"frames"`
	// Reference is the index in the input of the most frontal frame.
	Reference int `json:"reference"`
	// Turn is the range of the nose's offset between the eyes, in eye
	// distances; Parallax the largest homography residual, in eye
	// distances; EyePx the inter-ocular distance of the reference frame.
	Turn     float64 `json:"turn"`
	Parallax float64 `json:"parallax"`
	EyePx    float64 `json:"eye_px"`
	// Turns are the turns seen, in order (CheckChallenge only).
	Turns []Turn `json:"turns,omitempty"`
}

// Detail is a short summary for logs and audit rows.
func (r LivenessResult) Detail() string {
	d := fmt.Sprintf("frames=%d turn=%.3f parallax=%.3f eye_px=%.0f", r.Frames, r.Turn, r.Parallax, r.EyePx)
	if r.Turns != nil {
		d += fmt.Sprintf(" turns=%v", r.Turns)
	}
	return d
}

// Check decides whether the frames, each with the faces found in it, show
// a live head turning rather than a flat picture. Frames without a face
// are skipped (the head may turn too far for the detector); a frame with
// several faces fails the check, since a second face may be the picture.
func (r LivenessRule) Check(frames [][]face.Face) LivenessResult {
	var res LivenessResult
	var seq []face.Landmarks
	var index []int // frame of each entry of seq
	for i, faces := range frames {
		switch {
		case len(faces) > 1:
			res.Reason = LivenessManyFaces
			return res
		case len(faces) == 1 && faces[0].Landmarks != (face.Landmarks{}):
			seq = append(seq, faces[0].Landmarks)
			index = append(index, i)
		}
	}
	res.Frames = len(seq)
	if res.Frames < max(r.MinFrames, 2) {
		res.Reason = LivenessNoFace
		return res
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	refIdx := 0
	for i, l := range seq {
		y := yaw(l)
		lo, hi = math.Min(lo, y), math.Max(hi, y)
		if math.Abs(y) < math.Abs(yaw(seq[refIdx])) {
			refIdx = i
		}
	}
	res.Turn = hi - lo
	res.Reference = index[refIdx]
	// The frontal view sets the scale: a turned face's eyes come closer
	// together without the face getting any smaller.
	res.EyePx = eyeDistance(seq[refIdx])
	if res.EyePx < r.MinEyePx {
		res.Reason = LivenessTooSmall
		return res
	}
	ref := points(seq[refIdx])
	for i, l := range seq {
		if i == refIdx {
			continue
		}
		dst := points(l)
		h, ok := fitHomography(ref, dst)
		if !ok {
			continue
		}
		if p := transferRMS(h, ref, dst) / res.EyePx; p > res.Parallax && !math.IsInf(p, 1) {
			res.Parallax = p
		}
	}
	switch {
	case math.Abs(yaw(seq[refIdx])) > r.MaxFrontalYaw:
		res.Reason = LivenessNoFrontal
	case res.Turn < r.MinTurn:
		res.Reason = LivenessNoTurn
	case res.Parallax < r.MinParallax:
		res.Reason = LivenessFlat
	default:
		res.Live = true
	}
	return res
}
