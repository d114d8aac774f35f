// Package testengine shares one dlib engine (vision.Engine) among the
// tests of a test binary: loading its models takes seconds. It is apart
// from testenv because vision is cgo, and testenv's users build without a
// C compiler.
package testengine

import (
	"sync"
	"testing"

	"concierge/internal/testenv"
	"concierge/vision"
)

var (
	once   sync.Once
	engine *vision.Engine
	err    error
)

// Engine is the shared engine on the verified dlib models (testenv.ModelsDir
// skips the test without them, or fails it under CI=true).
func Engine(tb testing.TB) *vision.Engine {
	tb.Helper()
	dir := testenv.ModelsDir(tb)
	once.Do(func() { engine, err = vision.NewEngine(vision.Config{ModelDir: dir, Pool: 2}) })
	if err != nil {
		tb.Fatal(err)
	}
	return engine
}

// Close closes the engine if a test opened it; TestMain calls it after
// m.Run.
func Close() {
	if engine != nil {
		engine.Close()
	}
}
