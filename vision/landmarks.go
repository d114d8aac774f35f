package vision

import (
	"context"

	"concierge/enroll"
	"concierge/face"
)

// YuNetLandmarks finds faces and their five landmarks with YuNet, without
// embedding them: all the liveness check needs, at a fraction of the cost.
type YuNetLandmarks struct {
	Det *YuNet
	// MaxPixels bounds the decoded image (see Decode); 0 takes Decode's
	// default.
	MaxPixels int
}

var _ enroll.Detector = YuNetLandmarks{}

// Detect decodes one image and returns its faces with box, landmarks and
// the size and frontality the liveness rule reads.
func (l YuNetLandmarks) Detect(ctx context.Context, data []byte) ([]face.Face, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	img, err := Decode(data, l.MaxPixels)
	defer img.Close() // an empty Mat comes with the error too
	if err != nil {
		return nil, err
	}
	dets, err := l.Det.Detect(img, DefaultYuNetScore)
	if err != nil {
		return nil, err
	}
	out := make([]face.Face, len(dets))
	for i, dt := range dets {
		out[i] = face.Face{Box: dt.Box, Landmarks: dt.Landmarks, Score: dt.Score,
			Quality: face.Quality{SizePx: min(dt.Box.Dx(), dt.Box.Dy()), Frontal: dt.Landmarks.Frontal()}}
	}
	return out, nil
}

// Model names what made the faces, for the enrollment's records.
func (YuNetLandmarks) Model() string { return "yunet-landmarks" }
