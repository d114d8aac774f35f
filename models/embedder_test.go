package models

import (
	"strings"
	"testing"
)

// TestShippedDescriptions: each shipped MobileFaceNet's description pins the
// catalogue's file by name and digest.
func TestShippedDescriptions(t *testing.T) {
	for engine, file := range map[string]string{EngineMobileFaceNet: MobileFaceNetPaddleX, EngineFoamliu: MobileFaceNetFoamliu} {
		d, err := ShippedEmbedder(engine)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := Lookup(file)
		if d.Path != file || d.SHA256 != f.SHA256 {
			t.Errorf("%s: describes %s sha256 %s, catalogue %s", engine, d.Path, d.SHA256, f.SHA256)
		}
		if !IsONNXEngine(engine) {
			t.Errorf("%s is not an ONNX engine", engine)
		}
	}
	if _, err := ShippedEmbedder(EngineDlib); err == nil {
		t.Error("dlib has an ONNX description")
	}
}

func TestEmbedderValidate(t *testing.T) {
	good, err := ShippedEmbedder(EngineFoamliu)
	if err != nil {
		t.Fatal(err)
	}
	for want, edit := range map[string]func(*Embedder){
		"output_dim": func(e *Embedder) { e.OutputDim = 64 },
		"channels":   func(e *Embedder) { e.Channels = "grb" },
		"scale, std": func(e *Embedder) { e.Std = []float64{58} },
		"sha256":     func(e *Embedder) { e.SHA256 = "E8E1" },
		"template":   func(e *Embedder) { e.Size = [2]int{128, 128} },
		"points":     func(e *Embedder) { e.Template = ""; e.Points = [][2]float64{{1, 2}} },
		"normalize":  func(e *Embedder) { e.Normalize = "" },
		"model":      func(e *Embedder) { e.Model = "a model" },
	} {
		e := good
		edit(&e)
		if err := e.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	if _, err := ParseEmbedder(strings.NewReader("model: m\npaht: x.onnx\n")); err == nil {
		t.Error("misspelt key accepted")
	}
	if p := good.File("/models"); p != "/models/"+MobileFaceNetFoamliu {
		t.Errorf("relative path in /models: %s", p)
	}
}
