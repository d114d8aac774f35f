// Package testenv finds the real models, photos and shared evaluation data
// that Concierge's tests run against. Nothing here is faked: when a resource
// is missing the test is skipped with the command that provides it, or fails
// under CI=true, where `make test` must have provided everything.
package testenv

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CacheDir is where deploy/setup.sh puts models and test photos.
func CacheDir() string {
	if d := os.Getenv("CONCIERGE_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "concierge")
}

// ModelsDir returns the directory holding the verified dlib models.
func ModelsDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("CONCIERGE_MODELS_DIR")
	if dir == "" {
		dir = filepath.Join(CacheDir(), "models")
	}
	need(tb, filepath.Join(dir, "dlib_face_recognition_resnet_model_v1.dat"), "deploy/setup.sh (or: concierge models fetch)")
	return dir
}

// DlibModelDirs is where tests look for the genuine dlib model files, in
// order: the models deploy/setup.sh fetched (CONCIERGE_MODELS_DIR, else
// the cache's) and the unpacked npm tarball in /tmp/npm. chosen is set
// when CONCIERGE_TEST_MODELS names the one directory to take as it is.
func DlibModelDirs() (dirs []string, chosen bool) {
	if d := os.Getenv("CONCIERGE_TEST_MODELS"); d != "" {
		return []string{d}, true
	}
	setup := os.Getenv("CONCIERGE_MODELS_DIR")
	if setup == "" {
		setup = filepath.Join(CacheDir(), "models")
	}
	return []string{setup, "/tmp/npm/x/package/models"}, false
}

// Photo returns the path of one of the face-api demo photos (sample1.jpg …
// sample6.jpg): real photos of people, fetched by deploy/setup.sh --test-data.
func Photo(tb testing.TB, name string) string {
	tb.Helper()
	dir := os.Getenv("CONCIERGE_TEST_PHOTOS")
	if dir == "" {
		dir = filepath.Join(CacheDir(), "testdata", "photos")
	}
	p := filepath.Join(dir, name)
	need(tb, p, "deploy/setup.sh --test-data")
	return p
}

// ReadPhoto returns the bytes of Photo(tb, name).
func ReadPhoto(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(Photo(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Shared returns a path inside the project's shared data folder (../shared
// next to the repository, or $CONCIERGE_SHARED). It exists in CI and in
// development sessions, not on a customer's machine.
func Shared(tb testing.TB, rel string) string {
	tb.Helper()
	base := os.Getenv("CONCIERGE_SHARED")
	if base == "" {
		base = findShared()
	}
	p := filepath.Join(base, rel)
	need(tb, p, "the project's shared data folder (../shared beside the repository, or CONCIERGE_SHARED)")
	return p
}

func findShared() string {
	wd, err := os.Getwd()
	if err != nil {
		return "shared"
	}
	// Walk up from the package directory to the repository root's parent.
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(d), "shared")
		}
		if filepath.Dir(d) == d {
			return filepath.Join(wd, "shared")
		}
	}
}

func need(tb testing.TB, path, provider string) {
	tb.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	msg := path + " is missing; it is provided by " + provider
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// CheckFor polls fn every interval until it returns nil, and fails the test
// with fn's last error once total has passed: asynchronous outcomes are
// waited for, never slept on.
func CheckFor(tb testing.TB, total, every time.Duration, fn func() error) {
	tb.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %v", total, err)
		}
		time.Sleep(every)
	}
}
