package vision

import (
	"context"
	"fmt"

	"gocv.io/x/gocv"

	"concierge/face"
	"concierge/models"
)

// DNNEngine finds faces with YuNet and embeds them with an ONNX embedder
// (a MobileFaceNet, or a bank's own) on aligned crops: the engine measured stronger than dlib on East
// Asian faces (docs/engines.md, docs/accuracy.md). It offers the same
// Detect as Engine, so enrollment and identification work with either.
type DNNEngine struct {
	det       *YuNet
	emb       AlignedEmbedder
	maxPixels int
	minFacePx int
}

// NewDNNEngine loads YuNet and the PaddleX MobileFaceNet from dir.
func NewDNNEngine(dir string, maxPixels, minFacePx int) (*DNNEngine, error) {
	return NewDNNEngineKind(dir, MFNPaddleX, maxPixels, minFacePx)
}

// NewDNNEngineKind loads YuNet and the shipped MobileFaceNet of the given
// kind from dir: MFNFoamliu is the default engine, whose files ship with
// Concierge; MFNPaddleX is the opt-in one.
func NewDNNEngineKind(dir string, kind MFNKind, maxPixels, minFacePx int) (*DNNEngine, error) {
	desc, err := kind.Description()
	if err != nil {
		return nil, err
	}
	return NewDNNEngineFor(dir, desc, maxPixels, minFacePx)
}

// NewDNNEngineFor loads YuNet from dir and the ONNX embedder desc
// describes (a relative path in it is inside dir too): the one constructor
// behind the shipped MobileFaceNets and a bank's own embedder.
func NewDNNEngineFor(dir string, desc models.Embedder, maxPixels, minFacePx int) (*DNNEngine, error) {
	return newDNNEngine(dir, desc, maxPixels, minFacePx, NewONNXEmbedder)
}

// NewDNNEngineForFit loads YuNet and desc's embedder, whose output_dim is
// not 128, without a projection (NewONNXEmbedderForFit): DetectRaw gives
// the outputs a projection is fitted on; Detect refuses.
func NewDNNEngineForFit(dir string, desc models.Embedder, maxPixels, minFacePx int) (*DNNEngine, error) {
	return newDNNEngine(dir, desc, maxPixels, minFacePx, NewONNXEmbedderForFit)
}

func newDNNEngine(dir string, desc models.Embedder, maxPixels, minFacePx int,
	load func(models.Embedder, string) (*ONNXEmbedder, error)) (*DNNEngine, error) {
	det, err := NewYuNet(models.Path(dir, models.YuNet))
	if err != nil {
		return nil, err
	}
	net, err := load(desc, dir)
	if err != nil {
		det.Close()
		return nil, err
	}
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	return &DNNEngine{det: det, emb: AlignedEmbedder{Net: net, Flip: desc.Flip, Refiner: det}, maxPixels: maxPixels, minFacePx: minFacePx}, nil
}

// Close frees both networks.
func (e *DNNEngine) Close() error {
	e.det.Close()
	return e.emb.Net.Close()
}

// Model names the embedding model.
func (e *DNNEngine) Model() string { return e.emb.Model() }

// Embedder is the camera-side embedder of this engine.
func (e *DNNEngine) Embedder() Embedder { return e.emb }

// Detect finds and embeds every face in a JPEG or PNG image.
func (e *DNNEngine) Detect(ctx context.Context, data []byte) ([]face.Face, error) {
	img, err := Decode(data, e.maxPixels)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	return e.DetectMat(ctx, img)
}

// DetectMat finds and embeds every face in a BGR image.
func (e *DNNEngine) DetectMat(ctx context.Context, img gocv.Mat) ([]face.Face, error) {
	dets, err := e.det.Detect(img, DefaultYuNetScore)
	if err != nil {
		return nil, err
	}
	out := make([]face.Face, 0, len(dets))
	for _, d := range dets {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f := face.Face{Box: d.Box, Landmarks: d.Landmarks, Score: d.Score, Model: e.Model()}
		f.Quality.SizePx = min(d.Box.Dx(), d.Box.Dy())
		if f.Quality.SizePx < e.minFacePx {
			continue
		}
		measure(img, &f)
		if f.Embedding, err = e.emb.EmbedDetection(ctx, img, d); err != nil {
			return nil, fmt.Errorf("embed face at %v: %w", d.Box, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// DetectRaw finds every face in a JPEG or PNG image, as Detect, and gives
// each face's raw embedder output (ONNXEmbedder.EmbedRaw) instead of an
// embedding: what a projection is fitted on.
func (e *DNNEngine) DetectRaw(ctx context.Context, data []byte) ([]face.Face, [][]float32, error) {
	img, err := Decode(data, e.maxPixels)
	if err != nil {
		return nil, nil, err
	}
	defer img.Close()
	dets, err := e.det.Detect(img, DefaultYuNetScore)
	if err != nil {
		return nil, nil, err
	}
	var faces []face.Face
	var raws [][]float32
	for _, d := range dets {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		f := face.Face{Box: d.Box, Landmarks: d.Landmarks, Score: d.Score, Model: e.emb.Net.desc.Model}
		f.Quality.SizePx = min(d.Box.Dx(), d.Box.Dy())
		if f.Quality.SizePx < e.minFacePx {
			continue
		}
		crop, err := e.emb.align(img, d)
		if err != nil {
			return nil, nil, fmt.Errorf("align face at %v: %w", d.Box, err)
		}
		raw, err := e.emb.Net.EmbedRaw(crop, e.emb.Flip)
		crop.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("embed face at %v: %w", d.Box, err)
		}
		faces, raws = append(faces, f), append(raws, raw)
	}
	return faces, raws, nil
}
