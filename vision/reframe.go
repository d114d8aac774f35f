package vision

import (
	"bytes"
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

// Thumbnail renders the face in box, with a quarter of its size around it,
// as a JPEG at most px pixels on a side: enough for staff to tell a
// look-alike, too small to be of use for recognition elsewhere.
func Thumbnail(img gocv.Mat, box image.Rectangle, px int) ([]byte, error) {
	if img.Empty() {
		return nil, &InputError{Kind: ErrEmpty}
	}
	r := box.Inset(-max(box.Dx(), box.Dy()) / 4).Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
	if r.Empty() || px < 1 {
		return nil, fmt.Errorf("thumbnail: box %v outside the %dx%d frame", box, img.Cols(), img.Rows())
	}
	region := img.Region(r)
	defer region.Close()
	k := min(1, float64(px)/float64(max(r.Dx(), r.Dy())))
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(region, &small, image.Pt(max(1, int(float64(r.Dx())*k)), max(1, int(float64(r.Dy())*k))), 0, 0, gocv.InterpolationArea)
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, small, []int{gocv.IMWriteJpegQuality, 80})
	if err != nil {
		return nil, fmt.Errorf("thumbnail: %w", err)
	}
	defer buf.Close()
	return bytes.Clone(buf.GetBytes()), nil
}
