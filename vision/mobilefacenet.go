package vision

import (
	"fmt"
	"image"
	"sync"

	"gocv.io/x/gocv"

	"concierge/face"
	"concierge/models"
)

// Model ids of the MobileFaceNet embeddings; templates carry them so that
// embeddings of different models are never compared.
const (
	ModelPaddleX = "mobilefacenet-paddlex-ms1mv3"
	ModelFoamliu = "mobilefacenet-foamliu-ms1m"
)

// MFNKind says which MobileFaceNet file is loaded: the two were exported
// with different input names, colour orders and normalisations.
type MFNKind int

const (
	// MFNPaddleX is mobilefacenet_paddlex_ms1mv3_128d.onnx, the better of
	// the two on East Asian faces (docs/engines.md).
	MFNPaddleX MFNKind = iota + 1
	// MFNFoamliu is mobilefacenet_foamliu_ms1m_128d.onnx.
	MFNFoamliu
)

// mfnSpec is how one export wants its input.
type mfnSpec struct {
	model  string
	file   string // name in the models catalogue, which pins its hash
	input  string
	scale  float64
	mean   gocv.Scalar
	swapRB bool
	// batch says the export accepts N>1; the foamliu export fails in
	// OpenCV 4.6 with a batch, so its flipped crop runs separately.
	batch bool
}

var mfnSpecs = map[MFNKind]mfnSpec{
	MFNPaddleX: {
		model: ModelPaddleX,
		file:  models.MobileFaceNetPaddleX,
		input: "x",
		scale: 1 / 127.5,
		mean:  gocv.NewScalar(127.5, 127.5, 127.5, 0),
		batch: true,
	},
	MFNFoamliu: {
		model: ModelFoamliu,
		file:  models.MobileFaceNetFoamliu,
		input: "input0",
		// ImageNet normalisation with the mean of the three standard
		// deviations (0.229, 0.224, 0.225): blobFromImage has one scale.
		scale:  1 / (255 * 0.226),
		mean:   gocv.NewScalar(123.675, 116.28, 103.53, 0), // R, G, B after the swap
		swapRB: true,
	},
}

// Model is the embedding model id of kind, or "" for an unknown kind.
func (k MFNKind) Model() string { return mfnSpecs[k].model }

// String names the kind by its model id.
func (k MFNKind) String() string {
	if s, ok := mfnSpecs[k]; ok {
		return s.model
	}
	return fmt.Sprintf("MFNKind(%d)", int(k))
}

// MobileFaceNet computes 128-d face embeddings from 112×112 crops made by
// Align. Calls on one MobileFaceNet are serialised by a mutex (an OpenCV Net
// is not safe for concurrent use); create one per goroutine to embed in
// parallel.
type MobileFaceNet struct {
	spec mfnSpec
	mu   sync.Mutex
	net  gocv.Net
	blob gocv.Mat // reused: a fresh one per face is a fresh mmap (see YuNet)
	ok   bool     // false once closed
}

// NewMobileFaceNet loads the MobileFaceNet of the given kind from path. The
// file must be the export of that kind the models catalogue pins, so that a
// swapped file is refused here rather than aborting inside OpenCV.
func NewMobileFaceNet(path string, kind MFNKind) (*MobileFaceNet, error) {
	spec, ok := mfnSpecs[kind]
	if !ok {
		return nil, fmt.Errorf("mobilefacenet: unknown kind %d", int(kind))
	}
	net, err := readPinnedONNX(path, spec.file)
	if err != nil {
		return nil, err
	}
	return &MobileFaceNet{spec: spec, net: net, blob: gocv.NewMat(), ok: true}, nil
}

// Model is the id stamped on this net's embeddings.
func (m *MobileFaceNet) Model() string { return m.spec.model }

// Close frees the network. It is safe to call twice.
func (m *MobileFaceNet) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ok {
		m.net.Close()
		m.blob.Close()
		m.ok = false
	}
	return nil
}

// Embed returns the unit-length embedding of an aligned 112×112 BGR crop.
// With flip, the embedding of the mirrored crop is added before
// normalising, the usual ArcFace test-time augmentation: it costs a second
// inference and lowered the error rate on the kpop set (docs/engines.md).
// Compare embeddings with face.Distance; on unit vectors d = sqrt(2 − 2·cos).
func (m *MobileFaceNet) Embed(aligned gocv.Mat, flip bool) (face.Embedding, error) {
	var emb face.Embedding
	if aligned.Empty() {
		return emb, &InputError{Kind: ErrEmpty}
	}
	if aligned.Type() != gocv.MatTypeCV8UC3 || aligned.Cols() != AlignedSide || aligned.Rows() != AlignedSide {
		return emb, &InputError{Kind: ErrNotImage,
			Detail: fmt.Sprintf("want an aligned %dx%d BGR crop, got %dx%d type %v",
				AlignedSide, AlignedSide, aligned.Cols(), aligned.Rows(), aligned.Type())}
	}
	crops := []gocv.Mat{aligned}
	if flip {
		mirrored := gocv.NewMat()
		defer mirrored.Close()
		gocv.Flip(aligned, &mirrored, 1)
		crops = append(crops, mirrored)
	}
	if m.spec.batch {
		if err := m.infer(crops, &emb); err != nil {
			return face.Embedding{}, err
		}
	} else {
		for _, c := range crops {
			if err := m.infer([]gocv.Mat{c}, &emb); err != nil {
				return face.Embedding{}, err
			}
		}
	}
	emb.Normalize()
	return emb, nil
}

// infer runs one batch and adds each output row to sum.
func (m *MobileFaceNet) infer(crops []gocv.Mat, sum *face.Embedding) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ok {
		return ErrClosed
	}
	gocv.BlobFromImages(crops, &m.blob, m.spec.scale, image.Pt(AlignedSide, AlignedSide),
		m.spec.mean, m.spec.swapRB, false, gocv.MatTypeCV32F)
	m.net.SetInput(m.blob, m.spec.input)
	out := m.net.Forward("")
	defer out.Close()
	v, err := out.DataPtrFloat32()
	if err != nil {
		return fmt.Errorf("%s output: %w", m.spec.model, err)
	}
	if len(v) != len(crops)*face.Dim {
		return fmt.Errorf("%s output: %d values for %d crops, want %d each", m.spec.model, len(v), len(crops), face.Dim)
	}
	for i, x := range v {
		sum[i%face.Dim] += x
	}
	return nil
}
