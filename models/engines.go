package models

import (
	"bytes"
	"embed"
	"fmt"
)

// engineData holds the data files of the engines Concierge ships: the
// embedder descriptions and the calibrations (enroll.Calibration).
//
//go:embed engines/*.yaml
var engineData embed.FS

// EngineData returns the shipped data file called name in models/engines,
// e.g. "mobilefacenet-foamliu.calibration.yaml".
func EngineData(name string) ([]byte, error) {
	b, err := engineData.ReadFile("engines/" + name)
	if err != nil {
		return nil, fmt.Errorf("models/engines/%s: Concierge ships no such file", name)
	}
	return b, nil
}

// ShippedEmbedder returns the description of a shipped embedder by its
// engine name ("mobilefacenet", "mobilefacenet-foamliu"). Its sha256 must
// be the catalogue's for its file (TestShippedEmbedders).
func ShippedEmbedder(engine string) (Embedder, error) {
	b, err := EngineData(engine + ".embedder.yaml")
	if err != nil {
		return Embedder{}, err
	}
	return ParseEmbedder(bytes.NewReader(b))
}

// The face engines vision.engine selects.
const (
	// EngineAuto is the PaddleX MobileFaceNet when its files are there,
	// else foamliu's, else dlib (ResolveEngine).
	EngineAuto = "auto"
	EngineDlib = "dlib"
	// EngineMobileFaceNet is the PaddleX MobileFaceNet: the strongest
	// engine measured, opt-in because its export came without a licence
	// file; the name predates the second MobileFaceNet.
	EngineMobileFaceNet = "mobilefacenet"
	// EngineFoamliu is foamliu's MobileFaceNet (Apache-2.0), whose files
	// ship inside the binary: the default of a fresh install.
	EngineFoamliu = "mobilefacenet-foamliu"
	// EngineEmbedder is the bank's own ONNX embedder, described by
	// vision.embedder and calibrated by `concierge eval --calibrate`.
	EngineEmbedder = "embedder"
)

// shippedONNX are the YuNet + MobileFaceNet engines Concierge describes in
// models/engines, with the model files each needs.
var shippedONNX = map[string]Set{
	EngineMobileFaceNet: PaddleX,
	EngineFoamliu:       Shipped,
}

// Engines lists the vision.engine values, in the order a message names them.
var Engines = []string{EngineAuto, EngineFoamliu, EngineMobileFaceNet, EngineDlib, EngineEmbedder}

// IsONNXEngine says the engine is YuNet + an ONNX embedder.
func IsONNXEngine(name string) bool {
	_, ok := shippedONNX[name]
	return ok || name == EngineEmbedder
}

// ResolveEngine turns "auto" into the engine a box with model directory
// dir can run; other names come back as they are. The PaddleX MobileFaceNet
// measured best (docs/engines.md), and its files are only there when
// someone put them there (--from, the mirror), so they win; else
// foamliu's, which `models fetch` installs from the binary; dlib only on a
// box whose models were never fetched since, which fellBack reports.
func ResolveEngine(name, dir string) (engine string, fellBack bool) {
	if name != EngineAuto {
		return name, false
	}
	for _, e := range []string{EngineMobileFaceNet, EngineFoamliu} {
		if Verify(dir, shippedONNX[e]) == nil {
			return e, false
		}
	}
	return EngineDlib, true
}

// ShippedCalibration returns the calibration file of a shipped engine
// (dlib and the two MobileFaceNets) for enroll.ParseCalibration.
func ShippedCalibration(engine string) ([]byte, error) {
	return EngineData(engine + ".calibration.yaml")
}
