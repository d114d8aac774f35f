package vision

/*
#cgo !windows pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include "threads.h"
*/
import "C"

// SetThreads sets how many threads OpenCV may use for one operation (a
// net's forward pass, a resize) in this process; n < 1 restores OpenCV's
// default, one per CPU. On the 2-core VM two threads made a YuNet pass
// 30 % faster in wall time but cost 25 % more CPU (28.5 against 22.8 ms),
// and a MobileFaceNet pass with its mirror 40 % more (27 against 19 ms):
// for a camera pipeline, whose budget is CPU per frame and which shares the
// cores with other cameras, one thread is the better trade
// (docs/benchmarks.md). It is process-wide and safe to call at any time.
func SetThreads(n int) {
	if n < 1 {
		n = -1 // OpenCV: back to the default
	}
	C.concierge_cv_set_threads(C.int(n))
}

// Threads is how many threads OpenCV may use for one operation.
func Threads() int { return int(C.concierge_cv_threads()) }
