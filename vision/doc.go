// Package vision is Concierge's only cgo boundary: it decodes images and
// frames with OpenCV (gocv), finds faces, their landmarks and quality, and
// computes 128-d embeddings with dlib (go-face). Everything it returns is a
// plain Go value from package face; no C memory outlives a call.
package vision
