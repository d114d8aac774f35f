package enroll

import (
	"image"
	"math"
	"testing"

	"concierge/face"
)

func TestFitHomographyRecoversMap(t *testing.T) {
	h := homography{1.1, 0.2, 30, -0.1, 0.9, 12, 0.0004, -0.0002, 1}
	src := []pt{{100, 100}, {160, 102}, {131, 140}, {110, 170}, {152, 171}}
	dst := make([]pt, len(src))
	for i, p := range src {
		dst[i], _ = h.apply(p)
	}
	got, ok := fitHomography(src, dst)
	if !ok {
		t.Fatal("no fit")
	}
	if r := transferRMS(got, src, dst); r > 1e-6 {
		t.Fatalf("residual %g for an exact homography", r)
	}
	if _, ok := fitHomography(src[:3], dst[:3]); ok {
		t.Fatal("three points fitted a homography")
	}
	same := []pt{{5, 5}, {5, 5}, {5, 5}, {5, 5}}
	if _, ok := fitHomography(same, same); ok {
		t.Fatal("coincident points fitted a homography")
	}
}

// head is a face in millimetres, x to the image's right, y down, z away
// from the camera: eye centres 63 mm apart, the nose tip 35 mm in front of
// them, mouth corners 10 mm in front. flat puts every point on the plane
// of the eyes, like a photo of the face.
func head(flat bool) [5][3]float64 {
	nose, mouth := -35.0, -10.0
	if flat {
		nose, mouth = 0, 0
	}
	return [5][3]float64{{-31.5, 0, 0}, {31.5, 0, 0}, {0, 35, nose}, {-25, 65, mouth}, {25, 65, mouth}}
}

// view projects the face turned by yaw and pitch (degrees) about its eye
// centre, at distance z mm, shifted by dx mm, through a camera of focal
// length f pixels centred at (320, 240).
func view(pts [5][3]float64, yawDeg, pitchDeg, rollDeg, z, dx float64) face.Landmarks {
	const f = 640.0
	a, b, c := yawDeg*math.Pi/180, pitchDeg*math.Pi/180, rollDeg*math.Pi/180
	var out [5]image.Point
	for i, p := range pts {
		x, y, zz := p[0]*math.Cos(c)-p[1]*math.Sin(c), p[0]*math.Sin(c)+p[1]*math.Cos(c), p[2]
		y, zz = y*math.Cos(b)-zz*math.Sin(b), y*math.Sin(b)+zz*math.Cos(b)
		x, zz = x*math.Cos(a)+zz*math.Sin(a), -x*math.Sin(a)+zz*math.Cos(a)
		x += dx
		zz += z
		out[i] = image.Pt(int(math.Round(320+f*x/zz)), int(math.Round(240+f*y/zz)))
	}
	return face.Landmarks{LeftEye: out[0], RightEye: out[1], Nose: out[2], LeftMouth: out[3], RightMouth: out[4]}
}

func frames(ls ...face.Landmarks) [][]face.Face {
	out := make([][]face.Face, len(ls))
	for i, l := range ls {
		out[i] = []face.Face{{Landmarks: l}}
	}
	return out
}

// turn is a head turning to one side and back over n frames, as the kiosk
// asks, while drifting sideways by drift mm.
func turn(pts [5][3]float64, maxYaw, pitch, roll, drift float64, n int) [][]face.Face {
	ls := make([]face.Landmarks, n)
	for i := range ls {
		s := math.Sin(math.Pi * float64(i) / float64(n-1))
		ls[i] = view(pts, maxYaw*s, pitch*s, roll*s, 300, drift*float64(i)/float64(n-1))
	}
	return frames(ls...)
}

func TestLivenessGeometry(t *testing.T) {
	r := DefaultLivenessRule
	for _, tc := range []struct {
		name   string
		frames [][]face.Face
		want   string // "" for live
	}{
		{"head turns 30° and back", turn(head(false), 30, 0, 0, 0, 10), ""},
		{"head turns -35° while drifting", turn(head(false), -35, 5, 3, 40, 10), ""},
		{"head held still", turn(head(false), 0, 0, 0, 0, 10), LivenessNoTurn},
		{"photo tilted like a turn", turn(head(true), 35, 0, 0, 0, 10), LivenessNoTurn},
		{"photo tilted, pitched, rolled, moved", turn(head(true), 40, 20, 15, 60, 10), LivenessNoTurn},
		{"too few frames", turn(head(false), 30, 0, 0, 0, 4), LivenessNoFace},
		{"face far away", frames(func() []face.Landmarks {
			var ls []face.Landmarks
			for i := 0; i < 8; i++ {
				ls = append(ls, view(head(false), float64(i*5), 0, 0, 1500, 0))
			}
			return ls
		}()...), LivenessTooSmall},
		{"never frontal", frames(func() []face.Landmarks {
			var ls []face.Landmarks
			for i := 0; i < 8; i++ {
				ls = append(ls, view(head(false), 40+float64(i*3), 0, 0, 300, 0))
			}
			return ls
		}()...), LivenessNoFrontal},
		{"second face", append(turn(head(false), 30, 0, 0, 0, 8), []face.Face{{}, {}}), LivenessManyFaces},
	} {
		res := r.Check(tc.frames)
		if res.Reason != tc.want || res.Live != (tc.want == "") {
			t.Errorf("%s: %+v, want reason %q", tc.name, res, tc.want)
		}
	}

	// A photo whose nose offset changes as much as a turn (as a noisy
	// detector may report) still fails: its landmarks move by one
	// homography. The check must not hinge on the turn alone.
	flat := turn(head(true), 35, 0, 0, 0, 10)
	res := LivenessRule{MinFrames: 6, MinEyePx: 80, MaxFrontalYaw: 0.12, MinTurn: 0, MinParallax: r.MinParallax}.Check(flat)
	if res.Live || res.Reason != LivenessFlat || res.Parallax > 0.02 {
		t.Fatalf("flat photo with the turn test disabled: %+v", res)
	}
	live := r.Check(turn(head(false), 30, 0, 0, 0, 10))
	if live.Parallax < 1.5*r.MinParallax || live.Turn < 1.5*r.MinTurn {
		t.Fatalf("a 30° turn of a modelled head should clear the thresholds by far: %+v", live)
	}
}
