package vision

import "gocv.io/x/gocv"

// OpenCVVersion is the OpenCV library the binary runs against, and the gocv
// binding that calls it, for `concierge version`.
func OpenCVVersion() (opencv, gocvVersion string) {
	return gocv.OpenCVVersion(), gocv.Version()
}
