package vision

/*
#cgo !windows pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include "cvlog.h"
*/
import "C"

import (
	"os"
	"sync"
)

var quietOnce sync.Once

// quietOpenCV stops OpenCV printing its own warnings and errors to
// stderr. They bypass our logger and quote a failing source's URL as
// given, password included (a video capture tries its image-sequence
// backend on an RTSP URL and prints the URL when that fails); the same
// failures reach us as error values, which go through MaskCredentials.
// An operator who sets OPENCV_LOG_LEVEL keeps OpenCV's output, and with
// it that risk.
func quietOpenCV() {
	quietOnce.Do(func() {
		if _, set := os.LookupEnv("OPENCV_LOG_LEVEL"); set {
			return
		}
		C.concierge_cv_quiet()
	})
}
