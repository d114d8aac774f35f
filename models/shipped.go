package models

import (
	"bytes"
	"context"
	"embed"
	"fmt"
)

// shipped holds the model files Concierge carries inside its binary, so
// that a box with no network, no shared folder and no mirror still gets a
// detector and an embedder far stronger than dlib's on East Asian faces.
// Provenance, licence and changes: dist/README.md, dist/NOTICE.
//
//go:embed dist/face_detection_yunet_2023mar.onnx dist/mobilefacenet_foamliu_ms1m_128d.onnx
var shipped embed.FS

// SourceShipped is Result.Source for a file installed from the copy
// compiled into the binary.
const SourceShipped = "shipped"

// shippedBytes returns the embedded copy of f, or false when Concierge
// does not ship f.
func shippedBytes(f File) ([]byte, bool) {
	if !f.Shipped {
		return nil, false
	}
	b, err := shipped.ReadFile("dist/" + f.Name)
	if err != nil {
		// The catalogue and the embed directive disagree: a build mistake
		// TestShipped catches, never something a box can cause.
		return nil, false
	}
	return b, true
}

// fromShipped installs the embedded copy of f. It goes through install
// like any download, so the embedded bytes are hashed against the
// catalogue too.
func (ft *fetcher) fromShipped(ctx context.Context, f File) error {
	b, ok := shippedBytes(f)
	if !ok {
		return fmt.Errorf("%s is not shipped with concierge", f.Name)
	}
	return install(ctx, ft.dir, f, bytes.NewReader(b))
}
