package vision

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig reads JPEG headers
	_ "image/png"  // and PNG headers

	"gocv.io/x/gocv"
)

// InputError says why an image cannot be used. Callers branch on Kind.
type InputError struct {
	Kind   error
	Detail string
}

func (e *InputError) Error() string {
	if e.Detail == "" {
		return e.Kind.Error()
	}
	return e.Kind.Error() + ": " + e.Detail
}

func (e *InputError) Unwrap() error { return e.Kind }

// BadInput marks the error as the caller's image being unusable, as opposed
// to a failure of the engine.
func (e *InputError) BadInput() bool { return true }

// The kinds of bad input. errors.Is(err, vision.ErrTooLarge) works on any
// error the engine returns.
var (
	ErrEmpty     = errors.New("empty image")
	ErrNotImage  = errors.New("not a JPEG or PNG image")
	ErrTruncated = errors.New("truncated or corrupt image")
	ErrTooLarge  = errors.New("image too large")
)

// DefaultMaxPixels is the largest image accepted when the config says nothing.
const DefaultMaxPixels = 40_000_000

// checkHeader validates the container before any pixel is decoded, so that a
// decompression bomb or a text file never reaches OpenCV.
func checkHeader(data []byte, maxPixels int) (image.Config, string, error) {
	if len(data) == 0 {
		return image.Config{}, "", &InputError{Kind: ErrEmpty}
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return cfg, "", &InputError{Kind: ErrNotImage}
		}
		return cfg, format, &InputError{Kind: ErrTruncated, Detail: err.Error()}
	}
	if format != "jpeg" && format != "png" {
		return cfg, format, &InputError{Kind: ErrNotImage, Detail: format}
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return cfg, format, &InputError{Kind: ErrTruncated, Detail: "zero size"}
	}
	if px := cfg.Width * cfg.Height; px > maxPixels {
		return cfg, format, &InputError{Kind: ErrTooLarge,
			Detail: fmt.Sprintf("%dx%d is %d pixels, limit %d", cfg.Width, cfg.Height, px, maxPixels)}
	}
	// Decoders fill a missing tail with grey instead of failing, which would
	// give silently wrong faces; insist on the end marker.
	switch format {
	case "jpeg":
		if !bytes.Contains(data[max(0, len(data)-64):], []byte{0xFF, 0xD9}) {
			return cfg, format, &InputError{Kind: ErrTruncated, Detail: "JPEG end marker missing"}
		}
	case "png":
		if !bytes.Contains(data[max(0, len(data)-64):], []byte("IEND")) {
			return cfg, format, &InputError{Kind: ErrTruncated, Detail: "PNG end chunk missing"}
		}
	}
	return cfg, format, nil
}

// Decode turns JPEG or PNG bytes into a BGR Mat after validating them. The
// caller owns the Mat and must Close it.
func Decode(data []byte, maxPixels int) (gocv.Mat, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	cfg, _, err := checkHeader(data, maxPixels)
	if err != nil {
		return gocv.NewMat(), err
	}
	m, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil {
		m.Close()
		return gocv.NewMat(), &InputError{Kind: ErrTruncated, Detail: err.Error()}
	}
	if m.Empty() || m.Cols() != cfg.Width || m.Rows() != cfg.Height {
		m.Close()
		return gocv.NewMat(), &InputError{Kind: ErrTruncated, Detail: "decoder returned no pixels"}
	}
	return m, nil
}
