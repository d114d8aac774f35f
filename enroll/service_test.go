package enroll_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"os"
	"testing"

	"concierge"
	"concierge/enroll"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
	"concierge/internal/testenv/testengine"
	"concierge/sqlite"
	"concierge/vision"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testengine.Close()
	os.Exit(code)
}

// newService opens a real database and the real engine.
func newService(t *testing.T) (*enroll.Service, *sqlite.DB) {
	t.Helper()
	e := testengine.Engine(t)
	db := testdb.Open(t)
	s := &enroll.Service{
		Store: db, Detector: e, Quality: enroll.DefaultQualityRule,
		Rule: enroll.Rule{Threshold: 0.4, Margin: 0.06}, DuplicateThreshold: 0.4,
	}
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, db
}

// person cuts enrollment shots of face i of a photo at several framings.
func person(t *testing.T, photo string, i int) (shots []enroll.Photo, src []byte, box image.Rectangle) {
	t.Helper()
	src = testenv.ReadPhoto(t, photo)
	faces, err := testengine.Engine(t).Detect(context.Background(), src)
	if err != nil || i >= len(faces) {
		t.Fatalf("%s: %d faces, %v", photo, len(faces), err)
	}
	box = faces[i].Box
	for k, f := range []struct{ m, s float64 }{{0.6, 1}, {0.9, 0.7}, {0.4, 1.3}} {
		b, err := vision.Reframe(src, box, f.m, f.s, 80)
		if err != nil {
			t.Fatal(err)
		}
		shots = append(shots, enroll.Photo{Name: photo + "-" + string(rune('a'+k)), Data: b})
	}
	return shots, src, box
}

func request(id string, photos []enroll.Photo) enroll.Request {
	return enroll.Request{CustomerID: id, DisplayName: "Customer " + id, Photos: photos,
		Consent: enroll.Consent{Reference: "FORM-" + id, TextVersion: "v1"}}
}

func rows(t *testing.T, db *sqlite.DB, table, id string) int {
	t.Helper()
	var n int
	col := "customer_id"
	if table == "customers" {
		col = "id"
	}
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM `+table+` WHERE `+col+` = ?`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEnrollIdentifyForget(t *testing.T) {
	s, db := newService(t)
	ctx := context.Background()
	shots, src, box := person(t, "sample6.jpg", 2)
	res, err := s.Enroll(ctx, request("C1", shots))
	if err != nil || res.Templates != 3 {
		t.Fatalf("enroll: %+v, %v", res, err)
	}
	other, _, _ := person(t, "sample2.jpg", 0)
	if _, err := s.Enroll(ctx, request("C2", other)); err != nil {
		t.Fatal(err)
	}

	// The enrolled person is found in the original group photo; the three
	// others in it are unknown.
	ids, err := s.Identify(ctx, src)
	if err != nil || len(ids) != 4 {
		t.Fatalf("identify: %d faces, %v", len(ids), err)
	}
	for _, id := range ids {
		isC1 := id.Box == box
		if isC1 != (id.Known && id.Match.CustomerID == "C1") || (!isC1 && id.Known) {
			t.Errorf("face %v: known=%v match=%+v (C1 is at %v)", id.Box, id.Known, id.Match, box)
		}
	}
	// Faces in photos of other people stay unknown.
	for _, p := range []string{"sample1.jpg", "sample4.jpg", "sample5.jpg"} {
		ids, err := s.Identify(ctx, testenv.ReadPhoto(t, p))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if id.Known {
				t.Errorf("%s: stranger at %v identified as %+v", p, id.Box, id.Match)
			}
		}
	}

	n, err := s.Forget(ctx, "C1")
	if err != nil || n != 3 {
		t.Fatalf("forget: %d, %v", n, err)
	}
	if k := rows(t, db, "templates", "C1"); k != 0 {
		t.Fatalf("%d templates left in the database", k)
	}
	if s.Gallery.Templates("C1") != 0 {
		t.Fatal("gallery still holds C1")
	}
	ids, _ = s.Identify(ctx, src)
	for _, id := range ids {
		if id.Known && id.Match.CustomerID == "C1" {
			t.Fatal("C1 still identified after forget")
		}
	}
	// A restart loads the gallery from the database: still forgotten, C2 kept.
	s2 := &enroll.Service{Store: db, Detector: testengine.Engine(t), Rule: s.Rule}
	if err := s2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if s2.Gallery.Templates("C1") != 0 || s2.Gallery.Templates("C2") != 3 {
		t.Fatalf("reloaded gallery: C1 %d, C2 %d", s2.Gallery.Templates("C1"), s2.Gallery.Templates("C2"))
	}
}

// Reload picks up what another process (another Service on the same
// database) enrolled and forgot, without a second Open.
func TestReloadSeesOtherProcess(t *testing.T) {
	s, db := newService(t)
	ctx := context.Background()
	if err := (&enroll.Service{Store: db, Detector: testengine.Engine(t)}).Reload(ctx); err == nil {
		t.Error("Reload before Open succeeded")
	}
	other := &enroll.Service{Store: db, Detector: testengine.Engine(t), Rule: s.Rule}
	if err := other.Open(ctx); err != nil {
		t.Fatal(err)
	}
	shots, src, _ := person(t, "sample6.jpg", 2)
	if _, err := other.Enroll(ctx, request("C1", shots)); err != nil {
		t.Fatal(err)
	}
	if s.Gallery.Templates("C1") != 0 {
		t.Fatal("the gallery changed before Reload")
	}
	known := func() bool {
		ids, err := s.Identify(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if id.Known && id.Match.CustomerID == "C1" {
				return true
			}
		}
		return false
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Gallery.Templates("C1") != 3 || !known() {
		t.Fatalf("after Reload: %d templates of C1, identified %v", s.Gallery.Templates("C1"), known())
	}
	if _, err := other.Forget(ctx, "C1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Gallery.Templates("C1") != 0 || known() {
		t.Fatal("C1 still recognised after another process forgot them and Reload")
	}
}

func TestEnrollRejectsPhotos(t *testing.T) {
	s, db := newService(t)
	ctx := context.Background()
	group := testenv.ReadPhoto(t, "sample1.jpg")
	shots, src, box := person(t, "sample2.jpg", 0)
	tiny, err := vision.Reframe(src, box, 1, 0.3, 90)
	if err != nil {
		t.Fatal(err)
	}
	blurry := blur(t, shots[0].Data, 12)
	for _, tc := range []struct {
		name  string
		data  []byte
		want  string
		faces int
	}{
		{"group photo", group, enroll.ReasonManyFaces, 4},
		{"text file", []byte("not a photo"), enroll.ReasonUnreadable, 0},
		{"truncated", shots[0].Data[:len(shots[0].Data)/2], enroll.ReasonUnreadable, 0},
		{"tiny face", tiny, enroll.ReasonTooSmall, 1},
		{"blurry", blurry, enroll.ReasonBlurry, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Enroll(ctx, request("C9", []enroll.Photo{{Name: tc.name, Data: tc.data}}))
			if concierge.ErrorCode(err) != concierge.EINVALID {
				t.Fatalf("err = %v, want EINVALID", err)
			}
			if len(res.Photos) != 1 || res.Photos[0].Reason != tc.want || res.Photos[0].OK {
				t.Fatalf("photo result %+v, want reason %s", res.Photos, tc.want)
			}
			for _, table := range []string{"customers", "consents", "templates"} {
				if k := rows(t, db, table, "C9"); k != 0 {
					t.Fatalf("%s has %d rows for a customer whose photos all failed", table, k)
				}
			}
		})
	}

	// One good photo among bad ones: enrolled from the good one, the bad
	// ones reported.
	res, err := s.Enroll(ctx, request("C9", []enroll.Photo{{Name: "group", Data: group}, shots[0]}))
	if err != nil || res.Templates != 1 || res.Photos[0].OK || !res.Photos[1].OK {
		t.Fatalf("mixed photos: %+v, %v", res, err)
	}
}

func TestEnrollRequiresConsentAndValidID(t *testing.T) {
	s, db := newService(t)
	shots, _, _ := person(t, "sample2.jpg", 0)
	for _, tc := range []struct {
		name string
		req  enroll.Request
	}{
		{"no consent", enroll.Request{CustomerID: "C1", DisplayName: "x", Photos: shots}},
		{"blank consent", enroll.Request{CustomerID: "C1", DisplayName: "x", Photos: shots, Consent: enroll.Consent{Reference: "  "}}},
		{"bad id", request("C 1; DROP", shots)},
		{"no name", enroll.Request{CustomerID: "C1", Photos: shots, Consent: enroll.Consent{Reference: "F"}}},
		{"no photos", request("C1", nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Enroll(context.Background(), tc.req); concierge.ErrorCode(err) != concierge.EINVALID {
				t.Fatalf("err = %v, want EINVALID", err)
			}
			if k := rows(t, db, "customers", "C1"); k != 0 {
				t.Fatal("customer stored without a valid request")
			}
		})
	}
}

func TestEnrollRefusesDuplicateFace(t *testing.T) {
	s, db := newService(t)
	ctx := context.Background()
	shots, _, _ := person(t, "sample6.jpg", 2)
	if _, err := s.Enroll(ctx, request("C1", shots[:2])); err != nil {
		t.Fatal(err)
	}
	_, err := s.Enroll(ctx, request("C2", shots[2:]))
	var ae *concierge.Error
	if !errors.As(err, &ae) || ae.Code != concierge.ECONFLICT || ae.Detail["customer_id"] != "C1" {
		t.Fatalf("err = %v, want a conflict naming C1", err)
	}
	if rows(t, db, "customers", "C2") != 0 {
		t.Fatal("refused customer was stored")
	}
	// The same customer may add photos; an operator may override.
	if _, err := s.Enroll(ctx, request("C1", shots[2:])); err != nil {
		t.Fatalf("re-enroll same customer: %v", err)
	}
	req := request("C2", shots[2:])
	req.AllowDuplicate = true
	if _, err := s.Enroll(ctx, req); err != nil {
		t.Fatalf("override: %v", err)
	}
}

// Without a duplicate threshold of its own, a face is a duplicate when it
// would be recognised as the other customer: the rule in force decides.
func TestDuplicateFollowsRecognition(t *testing.T) {
	shots, _, _ := person(t, "sample6.jpg", 2)
	for _, tc := range []struct {
		name      string
		threshold float64
		refused   bool
	}{
		{"recognised as the other customer", 0.4, true},
		{"too far for the rule in force", 0.01, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newService(t)
			ctx := context.Background()
			s.DuplicateThreshold = 0
			s.Rule.Threshold = tc.threshold
			if _, err := s.Enroll(ctx, request("C1", shots[:2])); err != nil {
				t.Fatal(err)
			}
			_, err := s.Enroll(ctx, request("C2", shots[2:]))
			if refused := concierge.ErrorCode(err) == concierge.ECONFLICT; refused != tc.refused || (!refused && err != nil) {
				t.Fatalf("err = %v, want refused %v", err, tc.refused)
			}
		})
	}
}

// blur box-blurs a JPEG with the given radius, the way a moving or
// out-of-focus face looks.
func blur(t *testing.T, data []byte, r int) []byte {
	t.Helper()
	src, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b := src.Bounds()
	dst := image.NewRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			var sr, sg, sb, n uint32
			for dy := -r; dy <= r; dy++ {
				for dx := -r; dx <= r; dx++ {
					p := image.Pt(x+dx, y+dy)
					if !p.In(b) {
						continue
					}
					cr, cg, cb, _ := src.At(p.X, p.Y).RGBA()
					sr, sg, sb, n = sr+cr, sg+cg, sb+cb, n+1
				}
			}
			i := dst.PixOffset(x, y)
			dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = uint8(sr/n>>8), uint8(sg/n>>8), uint8(sb/n>>8), 255
		}
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
