package vision_test

import (
	"context"
	"image"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"concierge/face"
	"concierge/internal/testenv"
	"concierge/models"
	"concierge/vision"
)

// legacyMFN is how each MobileFaceNet's input was made before embedders were
// described by data files: the constants vision/mobilefacenet.go held.
var legacyMFN = map[vision.MFNKind]struct {
	input  string
	scale  float64
	mean   gocv.Scalar
	swapRB bool
	batch  bool
}{
	vision.MFNPaddleX: {input: "x", scale: 1 / 127.5, mean: gocv.NewScalar(127.5, 127.5, 127.5, 0), batch: true},
	vision.MFNFoamliu: {input: "input0", scale: 1 / (255 * 0.226), mean: gocv.NewScalar(123.675, 116.28, 103.53, 0), swapRB: true},
}

// legacyEmbed is the former MobileFaceNet.Embed with flip, on its own net.
func legacyEmbed(t *testing.T, net *gocv.Net, kind vision.MFNKind, crop gocv.Mat) face.Embedding {
	t.Helper()
	spec := legacyMFN[kind]
	mirrored := gocv.NewMat()
	defer mirrored.Close()
	gocv.Flip(crop, &mirrored, 1)
	batches := [][]gocv.Mat{{crop, mirrored}}
	if !spec.batch {
		batches = [][]gocv.Mat{{crop}, {mirrored}}
	}
	var sum face.Embedding
	for _, b := range batches {
		blob := gocv.NewMat()
		gocv.BlobFromImages(b, &blob, spec.scale, image.Pt(112, 112), spec.mean, spec.swapRB, false, gocv.MatTypeCV32F)
		net.SetInput(blob, spec.input)
		out := net.Forward("")
		v, err := out.DataPtrFloat32()
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range v {
			sum[i%face.Dim] += x
		}
		out.Close()
		blob.Close()
	}
	sum.Normalize()
	return sum
}

// TestDescribedEmbeddersMatchLegacy: the shipped MobileFaceNets, now loaded
// from their descriptions in models/engines, give the embeddings the
// hard-coded specs gave on real photos, and a bank's description of the same
// file (given as YAML, per-channel std, explicit template points) goes
// through the same path to the same embeddings.
func TestDescribedEmbeddersMatchLegacy(t *testing.T) {
	y := newYuNet(t)
	photos := []string{"sample1.jpg", "sample2.jpg", "sample4.jpg"}
	for _, kind := range []vision.MFNKind{vision.MFNPaddleX, vision.MFNFoamliu} {
		t.Run(kind.String(), func(t *testing.T) {
			path := testenv.Shared(t, "models/"+mfnFiles[kind])
			described := newMFN(t, kind)
			legacy := gocv.ReadNetFromONNX(path)
			defer legacy.Close()

			// The same model written as a bank would: std instead of
			// scale, the template's points instead of its name.
			desc, err := kind.Description()
			if err != nil {
				t.Fatal(err)
			}
			desc.Path = path
			std := 1 / desc.Scale
			desc.Scale, desc.Std = 0, []float64{std, std, std}
			desc.Template = ""
			for _, p := range models.ArcFace112 {
				desc.Points = append(desc.Points, p)
			}
			bank, err := vision.NewONNXEmbedder(desc, "")
			if err != nil {
				t.Fatal(err)
			}
			defer bank.Close()

			n := 0
			for _, name := range photos {
				img := photoMat(t, name)
				dets, err := y.Detect(img, vision.DefaultYuNetScore)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range dets {
					crop, err := vision.Align(img, d.Landmarks)
					if err != nil {
						t.Fatal(err)
					}
					want := legacyEmbed(t, &legacy, kind, crop)
					got, err := described.Embed(crop, true)
					if err != nil {
						t.Fatal(err)
					}
					if got != want {
						t.Errorf("%s face at %v: described embedding differs from the legacy one by %.2g", name, d.Box, face.Distance(&got, &want))
					}
					bankCrop, err := bank.Align(img, d.Landmarks)
					if err != nil {
						t.Fatal(err)
					}
					b, err := bank.Embed(bankCrop, true)
					bankCrop.Close()
					crop.Close()
					if err != nil {
						t.Fatal(err)
					}
					if d := face.Distance(&b, &want); d > 1e-5 {
						t.Errorf("%s: the bank's description of the same model is %.2g away", name, d)
					}
					n++
				}
			}
			if n < 10 {
				t.Fatalf("only %d faces compared", n)
			}
			t.Logf("%d faces identical", n)
		})
	}
}

// TestDNNEngineFromDescription: the engine built from a description (as
// vision.embedder gives it) finds and embeds the same faces as the shipped
// engine of that kind.
func TestDNNEngineFromDescription(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{models.YuNet, models.MobileFaceNetFoamliu} {
		if err := os.Symlink(testenv.Shared(t, "models/"+f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	shipped, err := vision.NewDNNEngineKind(dir, vision.MFNFoamliu, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer shipped.Close()
	desc, _ := vision.MFNFoamliu.Description()
	desc.Model = "bank-model-v1"
	e, err := vision.NewDNNEngineFor(dir, desc, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	data := testenv.ReadPhoto(t, "sample1.jpg")
	a, err := shipped.Detect(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Detect(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%d faces against %d", len(b), len(a))
	}
	for i := range a {
		if a[i].Embedding != b[i].Embedding || b[i].Model != "bank-model-v1" || e.Model() != "bank-model-v1" {
			t.Errorf("face %d: model %q, embeddings equal %v", i, b[i].Model, a[i].Embedding == b[i].Embedding)
		}
	}

	// A description whose digest is not the file's is refused before
	// OpenCV reads the file; another output size without the projection
	// its calibration carries is refused.
	bad := desc
	bad.SHA256 = "0000000000000000000000000000000000000000000000000000000000000000"
	if _, err := vision.NewDNNEngineFor(dir, bad, 0, 0); err == nil {
		t.Error("wrong sha256 accepted")
	}
	bad = desc
	bad.OutputDim = 512
	if _, err := vision.NewONNXEmbedder(bad, dir); err == nil {
		t.Error("output_dim 512 accepted")
	}
	if models.Dim != face.Dim {
		t.Errorf("models.Dim %d, face.Dim %d", models.Dim, face.Dim)
	}
}
