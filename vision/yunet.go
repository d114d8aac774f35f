package vision

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"sort"
	"sync"

	"gocv.io/x/gocv"

	"concierge/face"
	"concierge/models"
)

// yunetSide is the longer side of YuNet's input: frames are scaled so that
// their longer side is 640, which keeps the face sizes the model was trained
// on.
const yunetSide = 640

// yunetAlign is the multiple both input sides are padded to. The 2023mar
// export is declared 640×640, but OpenCV reshapes it to any input whose
// sides are multiples of its coarsest stride, 32 (others fail an assertion
// where the feature pyramid adds its levels). Padding a 16:9 frame's 640×360
// to 640×384 instead of 640×640 skips 40 % of the net's work on rows of
// black; measured on the 2-core VM, 13.5 ms against 22 ms per frame.
const yunetAlign = 32

// yunetNMS is the IoU above which a lower-scored box is taken for the same
// face; 0.3 is what OpenCV's FaceDetectorYN and the model zoo demo use.
const yunetNMS = 0.3

// yunetTopK bounds the candidates entering NMS, which is quadratic; a very
// low minScore on a busy frame would otherwise cost far more than the net.
const yunetTopK = 5000

// DefaultYuNetScore is a minimum score between the real faces of the test
// photos (all above 0.85) and the one background detection they hold (about
// 0.6); see docs/engines.md.
const DefaultYuNetScore = 0.7

// refineScore is the score YuNet.Refine's callers accept: the face was
// already found once, so a weaker answer in its own crop still places the
// landmarks better than the coarse first pass.
const refineScore = 0.3

// yunetOutputs are the output heads in the order ForwardLayers returns them.
var yunetOutputs = []string{
	"cls_8", "cls_16", "cls_32",
	"obj_8", "obj_16", "obj_32",
	"bbox_8", "bbox_16", "bbox_32",
	"kps_8", "kps_16", "kps_32",
}

var yunetStrides = [3]int{8, 16, 32}

// Detection is one face found by YuNet, in the coordinates of the image
// passed to Detect.
type Detection struct {
	// Box is clipped to the image, since callers crop with it.
	Box image.Rectangle
	// Landmarks are image-wise (LeftEye is the eye on the image's left),
	// rounded to whole pixels of the original image.
	Landmarks face.Landmarks
	// Score is sqrt(cls·obj) in [0,1].
	Score float64
}

// YuNet is OpenCV Zoo's YuNet face detector (2023mar) run by OpenCV's DNN
// module. An OpenCV Net is not safe for concurrent use, so calls on one YuNet
// are serialised by a mutex; to detect in parallel, create one YuNet per
// goroutine (each holds its own weights and activation buffers).
type YuNet struct {
	mu  sync.Mutex
	net gocv.Net
	// Scratch Mats reused across frames: a fresh 4.9 MB blob per frame is
	// a fresh mmap, whose page faults cost more than building the blob
	// (measured on the 2-core VM: about 30 ms against 1 ms reused).
	resized, padded, blob gocv.Mat
	ok                    bool // false once closed
}

// NewYuNet loads the detector from path. The file must be the one the models
// catalogue pins (face_detection_yunet_2023mar.onnx): the decoding below is
// written for exactly its twelve output heads.
func NewYuNet(path string) (*YuNet, error) {
	net, err := readPinnedONNX(path, models.YuNet)
	if err != nil {
		return nil, err
	}
	return &YuNet{net: net, resized: gocv.NewMat(), padded: gocv.NewMat(), blob: gocv.NewMat(), ok: true}, nil
}

// Close frees the network. It is safe to call twice.
func (y *YuNet) Close() error {
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.ok {
		y.net.Close()
		y.resized.Close()
		y.padded.Close()
		y.blob.Close()
		y.ok = false
	}
	return nil
}

// Detect finds the faces in a BGR image whose score is at least minScore
// (DefaultYuNetScore is a sensible start), ordered left to right like
// Engine.DetectMat. The Mat is only read.
func (y *YuNet) Detect(img gocv.Mat, minScore float64) ([]Detection, error) {
	if img.Empty() {
		return nil, &InputError{Kind: ErrEmpty}
	}
	if img.Type() != gocv.MatTypeCV8UC3 {
		return nil, &InputError{Kind: ErrNotImage, Detail: "want an 8-bit BGR image"}
	}
	w, h := img.Cols(), img.Rows()
	// Letterbox: scale the longer side to 640 and pad the bottom and right
	// up to a multiple of 32, so that mapping back is a pure per-axis scale.
	scale := float64(yunetSide) / float64(max(w, h))
	nw := min(yunetSide, max(1, int(math.Round(float64(w)*scale))))
	nh := min(yunetSide, max(1, int(math.Round(float64(h)*scale))))
	sx, sy := float64(nw)/float64(w), float64(nh)/float64(h)

	cands, err := y.run(img, nw, nh, minScore)
	if err != nil {
		return nil, err
	}
	kept := nms(cands, yunetNMS)

	bounds := image.Rect(0, 0, w, h)
	out := make([]Detection, 0, len(kept))
	for _, c := range kept {
		box := image.Rect(
			int(math.Floor(c.x1/sx)), int(math.Floor(c.y1/sy)),
			int(math.Ceil(c.x2/sx)), int(math.Ceil(c.y2/sy)),
		).Intersect(bounds)
		if box.Empty() {
			continue
		}
		var pts [5]image.Point
		for j := range pts {
			pts[j] = image.Pt(int(math.Round(c.kps[2*j]/sx)), int(math.Round(c.kps[2*j+1]/sy)))
		}
		out = append(out, Detection{Box: box, Landmarks: imageWise(pts), Score: c.score})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Box.Min.X < out[j].Box.Min.X })
	return out, nil
}

// Refine finds the face of d again at a finer scale than the detection
// that found it: in a crop three times the face's size, at full resolution
// (shrunk only as far as the net's 640 px need), so that the five
// landmarks that alignment, and so the embedding, rest on come from the
// frame's own pixels rather than from the frame shrunk to 640 px. On a
// 720p door camera a 60 px face is 30 px in the detector's input; its
// landmarks are then off by a pixel or two of the real face, which moves
// MobileFaceNet's embedding further than a change of person can
// (docs/engines.md). ok is false, and d is to be used as it is, when the
// crop would not be at least 1.5 times finer or the face is not found in it
// again. The Mat is only read.
func (y *YuNet) Refine(img gocv.Mat, d Detection, minScore float64) (r Detection, ok bool, err error) {
	w, h := img.Cols(), img.Rows()
	if w == 0 || h == 0 || d.Box.Empty() {
		return d, false, nil
	}
	frameScale := float64(yunetSide) / float64(max(w, h))
	fw := max(d.Box.Dx(), d.Box.Dy())
	c := d.Box.Inset(-fw).Intersect(image.Rect(0, 0, w, h))
	// No finer than the aligned crop needs: a face larger than
	// AlignedSide in the net's input buys no better landmarks, only a
	// larger pass.
	cropScale := min(1, float64(yunetSide)/float64(max(c.Dx(), c.Dy())), float64(AlignedSide)/float64(fw))
	if cropScale < 1.5*frameScale {
		return d, false, nil
	}
	region := img.Region(c)
	defer region.Close()
	nw := max(1, int(math.Round(float64(c.Dx())*cropScale)))
	nh := max(1, int(math.Round(float64(c.Dy())*cropScale)))
	cands, err := y.run(region, nw, nh, minScore)
	if err != nil {
		return d, false, err
	}
	// The candidate that overlaps the first detection most is the face.
	want := candidate{
		x1: float64(d.Box.Min.X-c.Min.X) * cropScale, y1: float64(d.Box.Min.Y-c.Min.Y) * cropScale,
		x2: float64(d.Box.Max.X-c.Min.X) * cropScale, y2: float64(d.Box.Max.Y-c.Min.Y) * cropScale,
	}
	best, bestIoU := -1, 0.3
	for i, cd := range cands {
		if iou := boxIoU(cd, want); iou > bestIoU {
			best, bestIoU = i, iou
		}
	}
	if best < 0 {
		return d, false, nil
	}
	var pts [5]image.Point
	for j := range pts {
		pts[j] = image.Pt(c.Min.X+int(math.Round(cands[best].kps[2*j]/cropScale)),
			c.Min.Y+int(math.Round(cands[best].kps[2*j+1]/cropScale)))
	}
	r = d
	r.Landmarks = imageWise(pts)
	return r, true, nil
}

// run letterboxes img (resized to nw×nh, padded to multiples of 32), runs
// the net and decodes every grid cell scoring at least minScore.
func (y *YuNet) run(img gocv.Mat, nw, nh int, minScore float64) ([]candidate, error) {
	y.mu.Lock()
	defer y.mu.Unlock()
	if !y.ok {
		return nil, ErrClosed
	}
	src := img
	if nw != img.Cols() || nh != img.Rows() {
		interp := gocv.InterpolationArea // anti-aliases when shrinking
		if nw > img.Cols() {
			interp = gocv.InterpolationLinear
		}
		gocv.Resize(img, &y.resized, image.Pt(nw, nh), 0, 0, interp)
		src = y.resized
	}
	// Black padding, as FaceDetectorYN pads; the net sees no faces there.
	pw, ph := alignUp(nw, yunetAlign), alignUp(nh, yunetAlign)
	gocv.CopyMakeBorder(src, &y.padded, 0, ph-nh, 0, pw-nw, gocv.BorderConstant, color.RGBA{})
	gocv.BlobFromImages([]gocv.Mat{y.padded}, &y.blob, 1, image.Pt(pw, ph),
		gocv.NewScalar(0, 0, 0, 0), false, false, gocv.MatTypeCV32F)

	y.net.SetInput(y.blob, "")
	outs := y.net.ForwardLayers(yunetOutputs)
	defer func() {
		for i := range outs {
			outs[i].Close()
		}
	}()
	if len(outs) != len(yunetOutputs) {
		return nil, fmt.Errorf("yunet: %d outputs, want %d", len(outs), len(yunetOutputs))
	}
	return decodeYuNet(outs, minScore, pw, ph)
}

// alignUp rounds v up to a multiple of a.
func alignUp(v, a int) int { return (v + a - 1) / a * a }

// imageWise turns YuNet's ArcFace-ordered points (eye, eye, nose, mouth
// corner, mouth corner) into face.Landmarks. The pairs are sorted by x rather
// than trusted by index, so a face seen in a mirror or upside down still
// yields LeftEye on the image's left, which is what alignment expects.
func imageWise(p [5]image.Point) face.Landmarks {
	le, re := p[0], p[1]
	if le.X > re.X {
		le, re = re, le
	}
	lm, rm := p[3], p[4]
	if lm.X > rm.X {
		lm, rm = rm, lm
	}
	return face.Landmarks{LeftEye: le, RightEye: re, Nose: p[2], LeftMouth: lm, RightMouth: rm}
}

// candidate is a decoded box in letterboxed input coordinates.
type candidate struct {
	x1, y1, x2, y2 float64
	kps            [10]float64
	score          float64
}

// decodeYuNet turns the twelve heads, in yunetOutputs order, of a w×h input
// into boxes in letterboxed coordinates: for stride s and grid cell (r, c),
// numbered row-major on the (w/s)×(h/s) grid, the centre is ((c+b0)·s,
// (r+b1)·s), the size (e^b2·s, e^b3·s) and landmark j ((k2j+c)·s, (k2j+1+r)·s).
func decodeYuNet(outs []gocv.Mat, minScore float64, w, h int) ([]candidate, error) {
	var cands []candidate
	for si, s := range yunetStrides {
		n := (w / s) * (h / s)
		cls, err := floats(outs[si], n, "cls")
		if err != nil {
			return nil, err
		}
		obj, err := floats(outs[3+si], n, "obj")
		if err != nil {
			return nil, err
		}
		bbox, err := floats(outs[6+si], 4*n, "bbox")
		if err != nil {
			return nil, err
		}
		kps, err := floats(outs[9+si], 10*n, "kps")
		if err != nil {
			return nil, err
		}
		cols, fs := w/s, float64(s)
		for i := 0; i < n; i++ {
			// The heads are already sigmoid outputs; clamping guards the
			// square root against values a hair outside [0,1].
			score := math.Sqrt(clampUnit(cls[i]) * clampUnit(obj[i]))
			if score < minScore {
				continue
			}
			r, c := float64(i/cols), float64(i%cols)
			b := bbox[4*i : 4*i+4]
			cx, cy := (c+float64(b[0]))*fs, (r+float64(b[1]))*fs
			bw, bh := math.Exp(float64(b[2]))*fs, math.Exp(float64(b[3]))*fs
			cd := candidate{x1: cx - bw/2, y1: cy - bh/2, x2: cx + bw/2, y2: cy + bh/2, score: score}
			k := kps[10*i : 10*i+10]
			for j := 0; j < 5; j++ {
				cd.kps[2*j] = (float64(k[2*j]) + c) * fs
				cd.kps[2*j+1] = (float64(k[2*j+1]) + r) * fs
			}
			cands = append(cands, cd)
		}
	}
	return cands, nil
}

// floats views an output blob as n float32s. The slice aliases C memory and
// must not outlive the Mat.
func floats(m gocv.Mat, n int, head string) ([]float32, error) {
	v, err := m.DataPtrFloat32()
	if err != nil {
		return nil, fmt.Errorf("yunet %s head: %w", head, err)
	}
	if len(v) != n {
		return nil, fmt.Errorf("yunet %s head: %d values, want %d", head, len(v), n)
	}
	return v, nil
}

// nms keeps the best-scored candidate of every group overlapping by more
// than iou. Written in Go because gocv v0.31.0's NMSBoxes takes integer
// boxes and does not report how many indices it kept.
func nms(cands []candidate, iou float64) []candidate {
	sort.Slice(cands, func(i, j int) bool { return cands[i].score > cands[j].score })
	if len(cands) > yunetTopK {
		cands = cands[:yunetTopK]
	}
	var kept []candidate
next:
	for _, c := range cands {
		for _, k := range kept {
			if boxIoU(c, k) > iou {
				continue next
			}
		}
		kept = append(kept, c)
	}
	return kept
}

func clampUnit(v float32) float64 { return math.Max(0, math.Min(1, float64(v))) }

func boxIoU(a, b candidate) float64 {
	iw := math.Min(a.x2, b.x2) - math.Max(a.x1, b.x1)
	ih := math.Min(a.y2, b.y2) - math.Max(a.y1, b.y1)
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	union := (a.x2-a.x1)*(a.y2-a.y1) + (b.x2-b.x1)*(b.y2-b.y1) - inter
	return inter / union
}

// ErrModelFile marks a model file that is missing, unreadable or not the
// pinned file an engine was written for.
var ErrModelFile = errors.New("model file rejected")

// readPinnedONNX loads an ONNX network after checking the file's SHA-256
// against the models catalogue entry called name (readONNX).
func readPinnedONNX(path, name string) (gocv.Net, error) {
	want, ok := models.Lookup(name)
	if !ok {
		return gocv.Net{}, fmt.Errorf("%w: %s is not in the models catalogue", ErrModelFile, name)
	}
	return readONNX(path, name, want.SHA256)
}
