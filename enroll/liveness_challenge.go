package enroll

import (
	"crypto/rand"
	"math/big"
	"slices"

	"concierge/face"
)

// A liveness check that always asks for the same movement is passed by a
// video of the customer making it, replayed on a phone held up to the
// kiosk: the video shows a real head, so its landmarks move like one. The
// kiosk therefore asks for a movement picked at random per attempt, which
// a recording made before the attempt follows only by chance, and checks
// the order of the turns as well as their geometry. docs/liveness.md
// reasons about what that stops and what it does not.

// Turn is one step of a liveness challenge, as the customer moves: "left"
// is the customer's own left.
type Turn string

// The turns a challenge is made of. Only turns (yaw) are used: nods
// (pitch) move YuNet's five landmarks far less, and no clip to calibrate
// them on is at hand.
const (
	TurnLeft  Turn = "left"
	TurnRight Turn = "right"
)

// Challenges are the sequences a kiosk may ask for: both orders, once or
// twice over. A recording of one of them passes one challenge in
// len(Challenges).
var Challenges = [][]Turn{
	{TurnLeft, TurnRight},
	{TurnRight, TurnLeft},
	{TurnLeft, TurnRight, TurnLeft},
	{TurnRight, TurnLeft, TurnRight},
}

// PickChallenge returns one of Challenges, chosen with crypto/rand so that
// nobody can predict the next one.
func PickChallenge() []Turn {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(Challenges))))
	if err != nil {
		panic("enroll: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return slices.Clone(Challenges[n.Int64()])
}

// ValidChallenge reports whether steps is one of Challenges.
func ValidChallenge(steps []Turn) bool {
	for _, c := range Challenges {
		if slices.Equal(c, steps) {
			return true
		}
	}
	return false
}

// LivenessWrongOrder is the reason for frames that turn, but not as the
// challenge asked: the mark of a replayed recording.
const LivenessWrongOrder = "wrong_order"

// Turns returns the turns the frames show, in order: a frame whose yaw,
// measured from the most frontal frame's, is at least MinStepYaw to one
// side counts as a turn to that side, and repeats are merged.
func (r LivenessRule) Turns(frames [][]face.Face) []Turn {
	var yaws []float64
	ref := 0
	for _, faces := range frames {
		if len(faces) == 1 && faces[0].Landmarks != (face.Landmarks{}) {
			y := yaw(faces[0].Landmarks)
			yaws = append(yaws, y)
			if abs(y) < abs(yaws[ref]) {
				ref = len(yaws) - 1
			}
		}
	}
	step := r.MinStepYaw
	if step <= 0 {
		step = DefaultLivenessRule.MinStepYaw
	}
	var out []Turn
	for _, y := range yaws {
		var t Turn
		switch d := y - yaws[ref]; {
		case d >= step:
			// The nose moved towards the image's right: the customer's left.
			t = TurnLeft
		case d <= -step:
			t = TurnRight
		default:
			continue
		}
		if len(out) == 0 || out[len(out)-1] != t {
			out = append(out, t)
		}
	}
	return out
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// CheckChallenge is Check, and then the turns must be exactly the
// challenge's steps, in order: fewer is LivenessNoTurn (turn further),
// others or more are LivenessWrongOrder. The geometry comes first: a flat
// picture is refused as flat whichever way it was turned.
func (r LivenessRule) CheckChallenge(frames [][]face.Face, steps []Turn) LivenessResult {
	res := r.Check(frames)
	if !res.Live {
		return res
	}
	res.Turns = r.Turns(frames)
	switch {
	case slices.Equal(res.Turns, steps):
	case len(res.Turns) < len(steps) && slices.Equal(res.Turns, steps[:len(res.Turns)]):
		res.Live, res.Reason = false, LivenessNoTurn
	default:
		res.Live, res.Reason = false, LivenessWrongOrder
	}
	return res
}
