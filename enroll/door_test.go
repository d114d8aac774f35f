package enroll_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"concierge"
	"concierge/enroll"
	"concierge/eval"
	"concierge/face"
	"concierge/internal/testenv"
)

// TestDoorPolicyLearn selects door templates from real faces (one idol's
// dlib descriptors): quality-gated, no near-duplicate of a template or of
// another face of the visit, at most Max kept with the oldest dropped, and
// nothing at all when learning is off.
func TestDoorPolicyLearn(t *testing.T) {
	f, err := os.Open(testenv.Shared(t, "data/idols-descriptors.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	set, err := eval.ReadDescriptors(f)
	if err != nil {
		t.Fatal(err)
	}
	var faces []face.Embedding
	for _, s := range set.Samples {
		if s.Label == set.Samples[0].Label {
			faces = append(faces, s.Embedding)
		}
	}
	if len(faces) < 9 {
		t.Fatalf("%d faces of the first idol", len(faces))
	}
	good := face.Quality{SizePx: 200, Sharpness: 800, Frontal: 1, Brightness: 128}.Score()
	poor := face.Quality{SizePx: 40, Sharpness: 20, Frontal: 0.3, Brightness: 20}.Score()
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	var have []enroll.Template
	for _, e := range faces[:3] {
		have = append(have, enroll.Template{CustomerID: "c1", Embedding: e, Model: "m", Created: t0, Source: enroll.SourceEnrollment})
	}
	visit := []enroll.DoorFace{
		{faces[3], good}, {faces[4], good}, {faces[5], poor},
		{faces[0], good}, // an enrollment photo again
		{faces[4], face.Quality{SizePx: 190, Sharpness: 800, Frontal: 1, Brightness: 128}.Score()}, // the same face twice in the visit
		{faces[6], good},
	}
	p := enroll.DoorPolicy{Max: 10, MinQuality: 0.5, Dedupe: 0.05}
	at := t0.Add(24 * time.Hour)
	add, drop := p.Learn("c1", "m", have, visit, at)
	if len(add) != 3 || len(drop) != 0 {
		t.Fatalf("added %d, dropped %d; want 3 (faces 3, 4, 6), 0", len(add), len(drop))
	}
	for i, want := range []face.Embedding{faces[3], faces[4], faces[6]} {
		a := add[i]
		if a.Embedding != want || a.Source != enroll.SourceDoor || a.Group != enroll.DoorGroup || a.CustomerID != "c1" || a.Model != "m" || !a.Created.Equal(at) {
			t.Fatalf("template %d: %+v", i, a)
		}
	}

	// A customer at the cap: each new face replaces the oldest door face.
	have = have[:3]
	for i := range 9 {
		have = append(have, enroll.Template{CustomerID: "c1", Embedding: faces[7+i%2], Model: "m",
			Created: t0.Add(time.Duration(9-i) * time.Hour), Source: enroll.SourceDoor})
	}
	p.Dedupe = 0
	add, drop = p.Learn("c1", "m", have, visit[:2], at)
	if len(add) != 2 || len(drop) != 1 || !drop[0].Created.Equal(t0.Add(time.Hour)) {
		t.Fatalf("added %d, dropped %+v; want 2 added and the oldest door face dropped", len(add), drop)
	}
	if add, drop = (enroll.DoorPolicy{}).Learn("c1", "m", have, visit, at); add != nil || drop != nil {
		t.Fatal("learning off added or dropped templates")
	}
}

// TestOpenSetDoorFactor: door rows that multiply strangers' chances by f
// lower the threshold to where the rate times f meets the target (the
// shipped foamliu tails), and Expected counts them.
func TestOpenSetDoorFactor(t *testing.T) {
	base := enroll.OpenSet{Tail: enroll.Tail{Alpha: -12.104, Beta: 10.884}, Track: enroll.Tail{Alpha: -11.215, Beta: 10.838},
		Target: 1e-4, Ceiling: 0.76}
	door := base
	door.DoorFactor = 2.94
	strict := base
	strict.Target = 1e-4 / 2.94
	for _, n := range []int{100, 1000, 10000} {
		th, dth := base.Threshold(n), door.Threshold(n)
		if dth >= th || dth < strict.Threshold(n)-0.001 || dth > strict.Threshold(n)+0.001 {
			t.Errorf("%d customers: threshold %.4f with door rows, %.4f without, %.4f for the target / 2.94", n, dth, th, strict.Threshold(n))
		}
		if e := door.Expected(dth, n); e < 0.98e-4 || e > 1.02e-4 {
			t.Errorf("%d customers: expected %.3g at the door threshold, want 1e-4", n, e)
		}
		if b, db := base.Band(1e-2, n), door.Band(1e-2, n); db >= b {
			t.Errorf("%d customers: band %.4f with door rows, %.4f without", n, db, b)
		}
	}
}

// Which recorded consents cover door templates: the kiosk records the
// version with the text's hash, the CLI the version alone; an entry with
// a hash pins that text only; anything else, and an empty list, covers
// no one, and the refusal is an ECONFLICT that wraps ErrConsentNotCovered.
func TestDoorConsentsCover(t *testing.T) {
	v := enroll.DoorConsents{"2026-12-v3", "bank-2027@sha256:0123456789abcdef"}
	for rec, want := range map[string]bool{
		"2026-12-v3":                         true,
		"2026-12-v3@sha256:fedcba9876543210": true,
		"2026-12-v2":                         false,
		"2026-12-v2@sha256:fedcba9876543210": false,
		"2026-12-v3x":                        false,
		"bank-2027@sha256:0123456789abcdef":  true,
		"bank-2027@sha256:ffffffffffffffff":  false,
		"bank-2027":                          false,
		"":                                   false,
		"@sha256:0123456789abcdef":           false,
	} {
		if got := v.Covers(rec); got != want {
			t.Errorf("Covers(%q) = %v, want %v", rec, got, want)
		}
		if err := v.Check(rec); (err == nil) != want ||
			!want && (!errors.Is(err, enroll.ErrConsentNotCovered) || concierge.ErrorCode(err) != concierge.ECONFLICT) {
			t.Errorf("Check(%q) = %v", rec, err)
		}
	}
	if (enroll.DoorConsents{}).Covers("2026-12-v3") {
		t.Error("an empty list covers a consent")
	}
}
