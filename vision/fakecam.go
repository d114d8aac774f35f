package vision

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"

	"gocv.io/x/gocv"
)

// This file makes camera input for tests and for Chromium's fake camera:
// frames read from a real clip, a still photo held up to the camera as a
// flat picture, and the Y4M file Chromium plays as its webcam
// (--use-file-for-fake-video-capture).

// ClipFrames decodes n frames of the video file at path, starting at frame
// from and keeping every every-th frame, and returns them JPEG-encoded
// (quality 92). It stops early at the end of the file.
func ClipFrames(path string, from, n, every int) ([][]byte, error) {
	if from < 0 || n <= 0 || every <= 0 {
		return nil, fmt.Errorf("clip frames %s: bad range from=%d n=%d every=%d", path, from, n, every)
	}
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		return nil, fmt.Errorf("clip frames %s: %w", path, err)
	}
	defer vc.Close()
	if !vc.IsOpened() {
		return nil, fmt.Errorf("clip frames %s: cannot open", path)
	}
	img := gocv.NewMat()
	defer img.Close()
	var out [][]byte
	for i := 0; len(out) < n; i++ {
		if !vc.Read(&img) || img.Empty() {
			break
		}
		if i < from || (i-from)%every != 0 {
			continue
		}
		b, err := EncodeJPEG(img, 92)
		if err != nil {
			return nil, fmt.Errorf("clip frames %s frame %d: %w", path, i, err)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("clip frames %s: no frame at or after %d", path, from)
	}
	return out, nil
}

// Hold is one pose of a picture (a printed photo, a phone screen) held up
// to a camera: where it is, how large, and how it is tilted. The picture is
// a rigid plane, so every pose maps it to the frame by one homography.
type Hold struct {
	// X, Y move the picture's centre from the frame's centre, in fractions
	// of the frame's width and height.
	X, Y float64
	// Height is the picture's height at zero tilt, as a fraction of the
	// frame's height.
	Height float64
	// Roll turns the picture in the image plane; Yaw and Pitch tilt it
	// about its vertical and horizontal axes (degrees).
	Roll, Yaw, Pitch float64
}

// FlatClip renders n frames of size w×h of the photo held flat in front of
// a camera, moving linearly from one hold to the next (at least one hold).
// The background is a mid-grey wall. Frames are JPEG-encoded (quality 92).
func FlatClip(photo []byte, w, h, n int, holds []Hold) ([][]byte, error) {
	if w <= 0 || h <= 0 || n <= 0 || len(holds) == 0 {
		return nil, fmt.Errorf("flat clip: bad size %dx%d, %d frames, %d holds", w, h, n, len(holds))
	}
	pic, err := Decode(photo, 0)
	defer pic.Close() // Decode returns an empty Mat with its error
	if err != nil {
		return nil, fmt.Errorf("flat clip: %w", err)
	}
	frame := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer frame.Close()
	out := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		hold := holds[0]
		if len(holds) > 1 && n > 1 {
			t := float64(i) / float64(n-1) * float64(len(holds)-1)
			k := min(int(t), len(holds)-2)
			hold = lerpHold(holds[k], holds[k+1], t-float64(k))
		}
		if err := renderHold(pic, &frame, hold); err != nil {
			return nil, fmt.Errorf("flat clip frame %d: %w", i, err)
		}
		b, err := EncodeJPEG(frame, 92)
		if err != nil {
			return nil, fmt.Errorf("flat clip frame %d: %w", i, err)
		}
		out = append(out, b)
	}
	return out, nil
}

func lerpHold(a, b Hold, t float64) Hold {
	l := func(x, y float64) float64 { return x + (y-x)*t }
	return Hold{X: l(a.X, b.X), Y: l(a.Y, b.Y), Height: l(a.Height, b.Height),
		Roll: l(a.Roll, b.Roll), Yaw: l(a.Yaw, b.Yaw), Pitch: l(a.Pitch, b.Pitch)}
}

// renderHold draws pic into frame as a rigid plane seen by a pinhole camera
// whose focal length is the frame's width (a typical webcam's 53° view).
func renderHold(pic gocv.Mat, frame *gocv.Mat, hd Hold) error {
	w, h := float64(frame.Cols()), float64(frame.Rows())
	f := w
	ph := hd.Height * h
	if ph <= 1 {
		return fmt.Errorf("picture height %.2f too small", hd.Height)
	}
	pw := ph * float64(pic.Cols()) / float64(pic.Rows())
	// Depth chosen so that the untilted picture is ph pixels high.
	z0 := f
	rad := math.Pi / 180
	cy, sy := math.Cos(hd.Yaw*rad), math.Sin(hd.Yaw*rad)
	cp, sp := math.Cos(hd.Pitch*rad), math.Sin(hd.Pitch*rad)
	cr, sr := math.Cos(hd.Roll*rad), math.Sin(hd.Roll*rad)
	corners := [4][2]float64{{-pw / 2, -ph / 2}, {pw / 2, -ph / 2}, {pw / 2, ph / 2}, {-pw / 2, ph / 2}}
	dst := make([]gocv.Point2f, 4)
	for i, c := range corners {
		x, y, z := c[0]*cr-c[1]*sr, c[0]*sr+c[1]*cr, 0.0 // roll
		y, z = y*cp-z*sp, y*sp+z*cp                      // pitch
		x, z = x*cy+z*sy, -x*sy+z*cy                     // yaw
		x += hd.X * w * (z0 + z) / f
		y += hd.Y * h * (z0 + z) / f
		z += z0
		if z <= 1 {
			return fmt.Errorf("picture behind the camera")
		}
		dst[i] = gocv.Point2f{X: float32(w/2 + f*x/z), Y: float32(h/2 + f*y/z)}
	}
	pc, pr := float32(pic.Cols()), float32(pic.Rows())
	src := []gocv.Point2f{{X: 0, Y: 0}, {X: pc, Y: 0}, {X: pc, Y: pr}, {X: 0, Y: pr}}
	srcV, dstV := gocv.NewPoint2fVectorFromPoints(src), gocv.NewPoint2fVectorFromPoints(dst)
	defer srcV.Close()
	defer dstV.Close()
	m := gocv.GetPerspectiveTransform2f(srcV, dstV)
	defer m.Close()
	frame.SetTo(gocv.NewScalar(128, 128, 128, 0))
	gocv.WarpPerspectiveWithParams(pic, frame, m, image.Pt(frame.Cols(), frame.Rows()),
		gocv.InterpolationLinear, gocv.BorderTransparent, color.RGBA{})
	return nil
}

// WriteY4M writes frames (JPEG or PNG) as a YUV4MPEG2 file of size w×h at
// fps frames per second, the format Chromium's fake camera plays in a loop.
// Each frame is scaled to cover w×h and centre-cropped.
func WriteY4M(path string, frames [][]byte, w, h, fps int) error {
	if w <= 0 || h <= 0 || w%2 != 0 || h%2 != 0 || fps <= 0 || len(frames) == 0 {
		return fmt.Errorf("write y4m: bad size %dx%d at %d fps, %d frames", w, h, fps, len(frames))
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write y4m: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(bw, "YUV4MPEG2 W%d H%d F%d:1 Ip A1:1 C420jpeg\n", w, h, fps)
	fitted := gocv.NewMat()
	defer fitted.Close()
	yuv := gocv.NewMat()
	defer yuv.Close()
	for i, data := range frames {
		img, err := Decode(data, 0)
		if err != nil {
			img.Close()
			f.Close()
			return fmt.Errorf("write y4m frame %d: %w", i, err)
		}
		cover(img, &fitted, w, h)
		img.Close()
		// I420 is the Y plane then the quarter-size U and V planes: the
		// frame payload of a C420 Y4M file.
		gocv.CvtColor(fitted, &yuv, gocv.ColorBGRToYUVI420)
		b, err := yuv.DataPtrUint8()
		if err != nil {
			f.Close()
			return fmt.Errorf("write y4m frame %d: %w", i, err)
		}
		bw.WriteString("FRAME\n")
		bw.Write(b)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write y4m: %w", err)
	}
	return f.Close()
}

// cover scales img to cover w×h and crops the centre into dst.
func cover(img gocv.Mat, dst *gocv.Mat, w, h int) {
	s := math.Max(float64(w)/float64(img.Cols()), float64(h)/float64(img.Rows()))
	sw, sh := max(w, int(math.Ceil(float64(img.Cols())*s))), max(h, int(math.Ceil(float64(img.Rows())*s)))
	scaled := gocv.NewMat()
	defer scaled.Close()
	gocv.Resize(img, &scaled, image.Pt(sw, sh), 0, 0, gocv.InterpolationArea)
	x, y := (sw-w)/2, (sh-h)/2
	roi := scaled.Region(image.Rect(x, y, x+w, y+h))
	defer roi.Close()
	roi.CopyTo(dst)
}
