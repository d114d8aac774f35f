//go:build matprofile

package vision_test

import (
	"bytes"
	"testing"

	"gocv.io/x/gocv"

	"concierge/vision"
)

// TestNoMatLeak runs the whole ONNX path repeatedly and checks that every Mat
// it creates is closed: gocv.MatProfile counts live Mats only when built
// with -tags matprofile.
//
//	go test ./vision -tags matprofile -run TestNoMatLeak
func TestNoMatLeak(t *testing.T) {
	img := photoMat(t, "sample6.jpg")
	before := gocv.MatProfile.Count()
	y := newYuNet(t)
	nets := []*vision.MobileFaceNet{newMFN(t, vision.MFNPaddleX), newMFN(t, vision.MFNFoamliu)}
	start := gocv.MatProfile.Count()
	for i := 0; i < 5; i++ {
		dets, err := y.Detect(img, vision.DefaultYuNetScore)
		if err != nil || len(dets) != 4 {
			t.Fatalf("detect: %d faces, %v", len(dets), err)
		}
		for _, m := range nets {
			embedAll(t, m, img, dets)
		}
	}
	if n := gocv.MatProfile.Count(); n != start {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Fatalf("%d Mats live after the loop, %d before it:\n%s", n, start, b.String())
	}
	y.Close()
	for _, m := range nets {
		m.Close()
	}
	if n := gocv.MatProfile.Count(); n != before {
		t.Fatalf("%d Mats live after Close, %d before the nets were made", n, before)
	}
}
