package vision

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"os"
	"sync"

	"gocv.io/x/gocv"

	"concierge/face"
	"concierge/models"
)

// Model ids of the MobileFaceNet embeddings; templates carry them so that
// embeddings of different models are never compared. The descriptions in
// models/engines say the same (TestShippedDescriptions).
const (
	ModelPaddleX = "mobilefacenet-paddlex-ms1mv3"
	ModelFoamliu = "mobilefacenet-foamliu-ms1m"
)

// MFNKind names one of the two shipped MobileFaceNets, whose descriptions
// (models.ShippedEmbedder) say how each export wants its input.
type MFNKind int

const (
	// MFNPaddleX is mobilefacenet_paddlex_ms1mv3_128d.onnx, the better of
	// the two on East Asian faces (docs/engines.md).
	MFNPaddleX MFNKind = iota + 1
	// MFNFoamliu is mobilefacenet_foamliu_ms1m_128d.onnx.
	MFNFoamliu
)

// mfnEngines are the engine names (models/engines/NAME.embedder.yaml) of
// the kinds.
var mfnEngines = map[MFNKind]string{MFNPaddleX: "mobilefacenet", MFNFoamliu: "mobilefacenet-foamliu"}

// Description is the shipped description of kind.
func (k MFNKind) Description() (models.Embedder, error) {
	name, ok := mfnEngines[k]
	if !ok {
		return models.Embedder{}, fmt.Errorf("unknown MobileFaceNet %d", int(k))
	}
	return models.ShippedEmbedder(name)
}

// Model is the embedding model id of kind, or "" for an unknown kind.
func (k MFNKind) Model() string {
	d, err := k.Description()
	if err != nil {
		return ""
	}
	return d.Model
}

// String names the kind by its model id.
func (k MFNKind) String() string {
	if m := k.Model(); m != "" {
		return m
	}
	return fmt.Sprintf("MFNKind(%d)", int(k))
}

// ONNXEmbedder computes 128-d face embeddings with an ONNX network run by
// OpenCV, on crops aligned to its description's template: the shipped
// MobileFaceNets and a bank's own model go through this one type, so a
// description is all that tells them apart. Calls are serialised by a
// mutex (an OpenCV Net is not safe for concurrent use); create one per
// goroutine to embed in parallel.
type ONNXEmbedder struct {
	desc   models.Embedder
	tmpl   [5][2]float64
	size   image.Point
	mean   gocv.Scalar
	scale  float64
	invStd []float32 // per channel, when the description gives std
	mu     sync.Mutex
	net    gocv.Net
	blob   gocv.Mat // reused: a fresh one per face is a fresh mmap (see YuNet)
	ok     bool     // false once closed
	// raw is a projected model's summed output (OutputDim values), reused
	// under mu; nil for a 128-d model, whose outputs sum straight into the
	// embedding, as they always have.
	raw []float32
	// fitting: loaded without its projection, to fit one (EmbedRaw only).
	fitting bool
}

// MobileFaceNet is the name the shipped embedders had before any ONNX
// embedder could be described.
type MobileFaceNet = ONNXEmbedder

// NewMobileFaceNet loads the shipped MobileFaceNet of the given kind from
// path. The file must be the one its description pins, so that a swapped
// file is refused here rather than aborting inside OpenCV.
func NewMobileFaceNet(path string, kind MFNKind) (*MobileFaceNet, error) {
	desc, err := kind.Description()
	if err != nil {
		return nil, fmt.Errorf("mobilefacenet: %w", err)
	}
	desc.Path = path
	return NewONNXEmbedder(desc, "")
}

// NewONNXEmbedder loads the embedder desc describes; a relative path in it
// is inside dir. A file whose SHA-256 is not desc's is refused with
// ErrModelFile before OpenCV reads it. A model whose output_dim is not 128
// needs desc.Projection, from its calibration.
func NewONNXEmbedder(desc models.Embedder, dir string) (*ONNXEmbedder, error) {
	if desc.OutputDim != face.Dim && desc.Projection == nil {
		return nil, fmt.Errorf("embedder %s: output_dim %d needs the projection to %d its calibration carries "+
			"(`concierge eval folder DIR --calibrate OUT` fits one)", desc.Model, desc.OutputDim, face.Dim)
	}
	return newONNXEmbedder(desc, dir, false)
}

// NewONNXEmbedderForFit loads a model whose output_dim is not 128 without
// a projection, to fit one on its raw outputs (EmbedRaw); Embed refuses.
func NewONNXEmbedderForFit(desc models.Embedder, dir string) (*ONNXEmbedder, error) {
	if desc.OutputDim == face.Dim || desc.Projection != nil {
		return nil, fmt.Errorf("embedder %s: only a model with output_dim other than %d and no projection yet is fitted", desc.Model, face.Dim)
	}
	return newONNXEmbedder(desc, dir, true)
}

func newONNXEmbedder(desc models.Embedder, dir string, fitting bool) (*ONNXEmbedder, error) {
	if err := desc.Validate(); err != nil {
		return nil, fmt.Errorf("embedder %s: %w", desc.Model, err)
	}
	tmpl, _ := desc.TemplatePoints() // Validate checked it
	e := &ONNXEmbedder{desc: desc, tmpl: tmpl, size: image.Pt(desc.Size[0], desc.Size[1]), scale: desc.Scale, fitting: fitting}
	if desc.OutputDim != face.Dim {
		e.raw = make([]float32, desc.OutputDim)
	}
	var mean [3]float64
	for i := range mean {
		mean[i] = desc.Mean[min(i, len(desc.Mean)-1)]
	}
	// blobFromImages subtracts the mean after swapping the channels, so
	// the mean is in the network's order, as the description gives it.
	e.mean = gocv.NewScalar(mean[0], mean[1], mean[2], 0)
	if len(desc.Std) > 0 {
		e.scale = 1
		for i := range 3 {
			e.invStd = append(e.invStd, float32(1/desc.Std[min(i, len(desc.Std)-1)]))
		}
	}
	net, err := readONNX(desc.File(dir), desc.Model, desc.SHA256)
	if err != nil {
		return nil, err
	}
	e.net, e.blob, e.ok = net, gocv.NewMat(), true
	return e, nil
}

// Model is the id stamped on this net's embeddings: a projected model's
// carries the projection's digest (models.Embedder.EmbeddingModel).
func (m *ONNXEmbedder) Model() string { return m.desc.EmbeddingModel() }

// Description is what the embedder was loaded from.
func (m *ONNXEmbedder) Description() models.Embedder { return m.desc }

// Close frees the network. It is safe to call twice.
func (m *ONNXEmbedder) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ok {
		m.net.Close()
		m.blob.Close()
		m.ok = false
	}
	return nil
}

// Align warps the face with landmarks lm onto this embedder's template and
// size; the caller owns the Mat.
func (m *ONNXEmbedder) Align(img gocv.Mat, lm face.Landmarks) (gocv.Mat, error) {
	return alignTo(img, lm, m.tmpl, m.size)
}

// Embed returns the unit-length embedding of a BGR crop aligned by Align.
// With flip, the embedding of the mirrored crop is added before
// normalising, the usual ArcFace test-time augmentation: it costs a second
// inference and lowered the error rate on the kpop set (docs/engines.md).
// Compare embeddings with face.Distance; on unit vectors d = sqrt(2 − 2·cos).
func (m *ONNXEmbedder) Embed(aligned gocv.Mat, flip bool) (face.Embedding, error) {
	var emb face.Embedding
	if m.fitting {
		return emb, fmt.Errorf("embedder %s: loaded without its projection, to fit one", m.desc.Model)
	}
	if m.raw != nil {
		m.mu.Lock()
		defer m.mu.Unlock()
		raw, err := m.embedRaw(aligned, flip)
		if err != nil {
			return emb, err
		}
		return m.desc.Projection.Apply(raw), nil
	}
	if err := m.checkCrop(aligned); err != nil {
		return emb, err
	}
	crops, done := m.crops(aligned, flip)
	defer done()
	if m.desc.Batch {
		if err := m.infer(crops, emb[:]); err != nil {
			return face.Embedding{}, err
		}
	} else {
		for _, c := range crops {
			if err := m.infer([]gocv.Mat{c}, emb[:]); err != nil {
				return face.Embedding{}, err
			}
		}
	}
	emb.Normalize()
	return emb, nil
}

// EmbedRaw returns the network's summed output (output_dim values, the
// mirrored crop's added with flip) before any projection or
// normalisation: what a projection is fitted on. The slice is the
// caller's.
func (m *ONNXEmbedder) EmbedRaw(aligned gocv.Mat, flip bool) ([]float32, error) {
	if m.raw == nil {
		return nil, fmt.Errorf("embedder %s: outputs %d values, it needs no projection", m.desc.Model, face.Dim)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	raw, err := m.embedRaw(aligned, flip)
	if err != nil {
		return nil, err
	}
	return append([]float32(nil), raw...), nil
}

// embedRaw sums the crops' outputs into m.raw; the caller holds mu.
func (m *ONNXEmbedder) embedRaw(aligned gocv.Mat, flip bool) ([]float32, error) {
	if err := m.checkCrop(aligned); err != nil {
		return nil, err
	}
	crops, done := m.crops(aligned, flip)
	defer done()
	clear(m.raw)
	if m.desc.Batch {
		return m.raw, m.inferLocked(crops, m.raw)
	}
	for _, c := range crops {
		if err := m.inferLocked([]gocv.Mat{c}, m.raw); err != nil {
			return nil, err
		}
	}
	return m.raw, nil
}

// checkCrop refuses what Align did not make.
func (m *ONNXEmbedder) checkCrop(aligned gocv.Mat) error {
	if aligned.Empty() {
		return &InputError{Kind: ErrEmpty}
	}
	if aligned.Type() != gocv.MatTypeCV8UC3 || aligned.Cols() != m.size.X || aligned.Rows() != m.size.Y {
		return &InputError{Kind: ErrNotImage,
			Detail: fmt.Sprintf("want an aligned %dx%d BGR crop, got %dx%d type %v",
				m.size.X, m.size.Y, aligned.Cols(), aligned.Rows(), aligned.Type())}
	}
	return nil
}

// crops is the aligned crop and, with flip, its mirror; done frees the
// mirror.
func (m *ONNXEmbedder) crops(aligned gocv.Mat, flip bool) ([]gocv.Mat, func()) {
	if !flip {
		return []gocv.Mat{aligned}, func() {}
	}
	mirrored := gocv.NewMat()
	gocv.Flip(aligned, &mirrored, 1)
	return []gocv.Mat{aligned, mirrored}, func() { mirrored.Close() }
}

// infer runs one batch and adds each output row to sum.
func (m *ONNXEmbedder) infer(crops []gocv.Mat, sum []float32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inferLocked(crops, sum)
}

// inferLocked is infer with mu held; sum has output_dim values.
func (m *ONNXEmbedder) inferLocked(crops []gocv.Mat, sum []float32) error {
	if !m.ok {
		return ErrClosed
	}
	gocv.BlobFromImages(crops, &m.blob, m.scale, m.size,
		m.mean, m.desc.Channels == "rgb", false, gocv.MatTypeCV32F)
	if m.invStd != nil {
		// blobFromImages has one scale; a per-channel deviation divides
		// each N×C plane of the NCHW blob here.
		v, err := m.blob.DataPtrFloat32()
		if err != nil {
			return fmt.Errorf("%s input: %w", m.desc.Model, err)
		}
		plane := m.size.X * m.size.Y
		for i := range v {
			v[i] *= m.invStd[(i/plane)%3]
		}
	}
	m.net.SetInput(m.blob, m.desc.Input)
	out := m.net.Forward("")
	defer out.Close()
	v, err := out.DataPtrFloat32()
	if err != nil {
		return fmt.Errorf("%s output: %w", m.desc.Model, err)
	}
	d := len(sum)
	if len(v) != len(crops)*d {
		return fmt.Errorf("%s output: %d values for %d crops, want %d each (output_dim)", m.desc.Model, len(v), len(crops), d)
	}
	for i, x := range v {
		sum[i%d] += x
	}
	return nil
}

// readONNX loads an ONNX network after checking the file's SHA-256
// against want. The check matters twice over: OpenCV reports a corrupt or
// mismatched model by throwing a C++ exception that gocv does not catch,
// which would abort the whole service instead of returning an error; and
// embeddings are labelled with a model id, which must mean exactly these
// weights. The bytes hashed are the bytes loaded, so the file cannot change
// in between.
func readONNX(path, name, want string) (gocv.Net, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return gocv.Net{}, fmt.Errorf("%w: load %s: %w", ErrModelFile, name, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != want {
		return gocv.Net{}, fmt.Errorf("%w: %s is not %s (sha256 %s, want %s)", ErrModelFile, path, name, got, want)
	}
	net, err := gocv.ReadNetFromONNXBytes(data)
	if err != nil {
		return gocv.Net{}, fmt.Errorf("load %s from %s: %w", name, path, err)
	}
	if net.Empty() {
		net.Close()
		return gocv.Net{}, fmt.Errorf("load %s from %s: OpenCV built an empty network", name, path)
	}
	return net, nil
}
