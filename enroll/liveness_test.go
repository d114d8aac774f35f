package enroll_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"concierge/enroll"
	"concierge/face"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testengine"
	"concierge/models"
	"concierge/vision"
)

var (
	yunetOnce sync.Once
	yunet     *vision.YuNet
	yunetErr  error
)

// landmarks finds the faces of each frame with YuNet, the detector whose
// five landmarks the kiosk's liveness check uses.
func landmarks(tb testing.TB, frames [][]byte) [][]face.Face {
	tb.Helper()
	dir := testenv.ModelsDir(tb)
	yunetOnce.Do(func() { yunet, yunetErr = vision.NewYuNet(models.Path(dir, models.YuNet)) })
	if yunetErr != nil {
		tb.Fatal(yunetErr)
	}
	out := make([][]face.Face, len(frames))
	for i, f := range frames {
		img, err := vision.Decode(f, 0)
		if err != nil {
			tb.Fatal(err)
		}
		dets, err := yunet.Detect(img, vision.DefaultYuNetScore)
		img.Close()
		if err != nil {
			tb.Fatal(err)
		}
		for _, d := range dets {
			out[i] = append(out[i], face.Face{Box: d.Box, Landmarks: d.Landmarks, Score: d.Score})
		}
	}
	return out
}

// clip returns 10 frames of a shared clip, one every 9 frames (0.3 s at
// 30 fps): what the kiosk page sends while the customer turns their head.
func clip(tb testing.TB, name string, from int) [][]byte {
	tb.Helper()
	frames, err := vision.ClipFrames(testenv.Shared(tb, filepath.Join("data/video", name)), from, 10, 9)
	if err != nil {
		tb.Fatal(err)
	}
	return frames
}

// The real clips: people turning their heads pass; a person who holds
// still does not (the kiosk asks them to turn).
func TestLivenessRealClips(t *testing.T) {
	r := enroll.DefaultLivenessRule
	for _, tc := range []struct {
		clip string
		from int
		want string
	}{
		{"d12.mp4", 0, ""},
		{"d3.mp4", 180, ""},
		{"d9.mp4", 234, ""},
		{"d10.mp4", 150, enroll.LivenessNoTurn},
		{"d14.mp4", 270, enroll.LivenessNoTurn},
	} {
		res := r.Check(landmarks(t, clip(t, tc.clip, tc.from)))
		t.Logf("%s from frame %d: live=%v %s %s", tc.clip, tc.from, res.Live, res.Reason, res.Detail())
		if res.Live != (tc.want == "") || res.Reason != tc.want {
			t.Errorf("%s from %d: %+v, want reason %q", tc.clip, tc.from, res, tc.want)
		}
	}
}

// flatMoves are ways of holding a picture up to the camera: still, moved,
// turned in its plane, brought closer, tilted like a head turn (about the
// vertical axis, out and back), pitched, and a hand-held wobble of all.
var flatMoves = []struct {
	name  string
	holds []vision.Hold
}{
	{"still", []vision.Hold{{Height: 1.0}}},
	{"moved", []vision.Hold{{X: -0.08, Height: 1.0}, {X: 0.08, Y: 0.04, Height: 1.0}}},
	{"rolled", []vision.Hold{{Height: 1.0, Roll: -15}, {Height: 1.0, Roll: 15}}},
	{"closer", []vision.Hold{{Height: 0.8}, {Height: 1.15}}},
	{"tilted", []vision.Hold{{Height: 1.0, Yaw: -35}, {Height: 1.0, Yaw: 35}}},
	{"tilted back", []vision.Hold{{Height: 1.0}, {Height: 1.0, Yaw: 40}, {Height: 1.0}}},
	{"pitched", []vision.Hold{{Height: 1.0, Pitch: -30}, {Height: 1.0, Pitch: 30}}},
	{"hand-held", []vision.Hold{{X: -0.04, Height: 0.8, Yaw: -20, Pitch: 10, Roll: -5},
		{X: 0.04, Y: 0.03, Height: 1.05, Yaw: 25, Pitch: -10, Roll: 8}, {Height: 0.85, Yaw: -10, Pitch: 15}}},
}

// A real photo held up flat fails however it is moved: a frame of each
// turning clip (the same people who pass above), and faces cut from the
// face-api photos.
func TestLivenessFlatPictures(t *testing.T) {
	r := enroll.DefaultLivenessRule
	var pictures []struct {
		name string
		data []byte
	}
	for _, c := range []string{"d12.mp4", "d3.mp4", "d9.mp4"} {
		f, err := vision.ClipFrames(testenv.Shared(t, filepath.Join("data/video", c)), 0, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		pictures = append(pictures, struct {
			name string
			data []byte
		}{c + " frame 0", f[0]})
	}
	for _, p := range []struct {
		photo string
		face  int
	}{{"sample1.jpg", 2}, {"sample3.jpg", 0}, {"sample4.jpg", 1}, {"sample6.jpg", 3}} {
		src := testenv.ReadPhoto(t, p.photo)
		faces, err := testengine.Engine(t).Detect(context.Background(), src)
		if err != nil || p.face >= len(faces) {
			t.Fatalf("%s: %d faces, %v", p.photo, len(faces), err)
		}
		crop, err := vision.Reframe(src, faces[p.face].Box, 0.35, 1, 95)
		if err != nil {
			t.Fatal(err)
		}
		pictures = append(pictures, struct {
			name string
			data []byte
		}{fmt.Sprintf("%s face %d", p.photo, p.face), crop})
	}
	reasons := map[string]int{}
	var maxTurn, maxParallax float64
	for _, pic := range pictures {
		for _, mv := range flatMoves {
			frames, err := vision.FlatClip(pic.data, 640, 480, 10, mv.holds)
			if err != nil {
				t.Fatal(err)
			}
			res := r.Check(landmarks(t, frames))
			t.Logf("%-22s %-11s live=%v %-10s %s", pic.name, mv.name, res.Live, res.Reason, res.Detail())
			if res.Live {
				t.Errorf("%s %s: a flat picture passed: %+v", pic.name, mv.name, res)
			}
			reasons[res.Reason]++
			if res.EyePx >= r.MinEyePx {
				maxTurn, maxParallax = max(maxTurn, res.Turn), max(maxParallax, res.Parallax)
			}
		}
	}
	t.Logf("reasons %v; largest turn %.3f and parallax %.3f of pictures seen large enough", reasons, maxTurn, maxParallax)
	// Most pictures must be judged on their motion, not refused for size:
	// otherwise this test would not test the geometry.
	if reasons[enroll.LivenessTooSmall]+reasons[enroll.LivenessNoFace] > len(pictures)*len(flatMoves)/4 {
		t.Fatalf("too many pictures refused before the geometry: %v", reasons)
	}
}

// A real head turn is accepted against the challenge it follows and
// refused against every other: the d12 clip's man turns to his left
// (frames 33-51, the nose towards the image's right) and then to his right
// (frames 78-93). Replayed to a kiosk that asks for another order, it fails.
func TestLivenessChallengeRealClip(t *testing.T) {
	r := enroll.DefaultLivenessRule
	faces := landmarks(t, clip(t, "d12.mp4", 0))
	if got := r.Turns(faces); !slices.Equal(got, []enroll.Turn{enroll.TurnLeft, enroll.TurnRight}) {
		t.Fatalf("d12 turns %v, want [left right]", got)
	}
	for _, steps := range enroll.Challenges {
		res := r.CheckChallenge(faces, steps)
		t.Logf("challenge %v: live=%v %s %s", steps, res.Live, res.Reason, res.Detail())
		follows := slices.Equal(steps, []enroll.Turn{enroll.TurnLeft, enroll.TurnRight})
		switch {
		case follows && !res.Live:
			t.Errorf("challenge %v, which the clip follows: refused (%s)", steps, res.Reason)
		case !follows && res.Live:
			t.Errorf("challenge %v, which the clip does not follow: accepted", steps)
		case !follows && steps[0] == enroll.TurnRight && res.Reason != enroll.LivenessWrongOrder:
			t.Errorf("challenge %v: reason %q, want %q", steps, res.Reason, enroll.LivenessWrongOrder)
		case !follows && steps[0] == enroll.TurnLeft && res.Reason != enroll.LivenessNoTurn:
			// [left right left]: the clip did the first two steps only.
			t.Errorf("challenge %v: reason %q, want %q", steps, res.Reason, enroll.LivenessNoTurn)
		}
	}
	// The clip cut before the second turn has done only the first step.
	first := r.CheckChallenge(landmarks(t, clip(t, "d12.mp4", 0)[:7]), []enroll.Turn{enroll.TurnLeft, enroll.TurnRight})
	if first.Live || (first.Reason != enroll.LivenessNoTurn && first.Reason != enroll.LivenessFlat) {
		t.Errorf("half the challenge: %+v", first)
	}
	// A flat picture stays flat whatever the challenge.
	flat := r.CheckChallenge(landmarks(t, clip(t, "d12.mp4", 0)[:1]), []enroll.Turn{enroll.TurnLeft, enroll.TurnRight})
	if flat.Live {
		t.Error("one frame passed")
	}
	for i := 0; i < 64; i++ {
		if c := enroll.PickChallenge(); !enroll.ValidChallenge(c) {
			t.Fatalf("picked %v", c)
		}
	}
}
