package vision

import (
	"fmt"
	"image"

	"gocv.io/x/gocv"
)

// Reframe cuts the region around box (grown by margin times its size on
// every side, clipped to the image), scales it by scale and re-encodes it
// as JPEG at the given quality. The demo and tests use it to make a new
// photo of one person from a group photo, at another framing, size and
// compression than the original.
func Reframe(data []byte, box image.Rectangle, margin, scale float64, quality int) ([]byte, error) {
	img, err := Decode(data, 0)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	grow := image.Pt(int(float64(box.Dx())*margin), int(float64(box.Dy())*margin))
	r := image.Rectangle{Min: box.Min.Sub(grow), Max: box.Max.Add(grow)}.Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
	if r.Empty() {
		return nil, fmt.Errorf("reframe: box %v outside the %dx%d image", box, img.Cols(), img.Rows())
	}
	crop := img.Region(r)
	defer crop.Close()
	out := gocv.NewMat()
	defer out.Close()
	size := image.Pt(max(1, int(float64(r.Dx())*scale)), max(1, int(float64(r.Dy())*scale)))
	gocv.Resize(crop, &out, size, 0, 0, gocv.InterpolationArea)
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, out, []int{gocv.IMWriteJpegQuality, quality})
	if err != nil {
		return nil, fmt.Errorf("reframe: %w", err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...), nil
}

// EncodeJPEG encodes a BGR image, e.g. a frame kept as an enrollment photo.
func EncodeJPEG(img gocv.Mat, quality int) ([]byte, error) {
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, img, []int{gocv.IMWriteJpegQuality, quality})
	if err != nil {
		return nil, fmt.Errorf("encode jpeg: %w", err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...), nil
}
