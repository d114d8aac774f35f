package nativelog_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"concierge/internal/nativelog"
)

// lockedBuffer is the log's output, read while Run writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// What a C library writes to fd 2 (written here with write(2), as C
// does, beneath os.Stderr) comes out as JSON records, one per non-blank
// line, with the mask applied and long lines cut; after Close, fd 2 is
// the original stderr again.
func TestCapture(t *testing.T) {
	c, err := nativelog.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out lockedBuffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	c.Log(log, func(s string) string { return strings.ReplaceAll(s, "S3cret", "***") })
	// GStreamer's block and FFmpeg's line, as seen on a real RTSP camera.
	noise := "\n(concierge:26303): GStreamer-CRITICAL **: 19:56:25.021: \n" +
		"Trying to dispose element videoconvert0, but it is in PLAYING instead of the NULL state.\n\n" +
		"[tcp @ 0x7ff3001b2040] Connection to tcp://cam:S3cret@127.0.0.1:33235?timeout=0 failed: Connection refused\n" +
		strings.Repeat("x", 10_000) + "\nno newline at the end"
	if _, err := syscall.Write(2, []byte(noise)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	var texts []string
	for i, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var rec struct{ Level, Msg, Text string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("record %d is not JSON: %v: %q", i, err, line)
		}
		if rec.Level != "WARN" || rec.Msg != "native library output" {
			t.Errorf("record %d: %+v", i, rec)
		}
		texts = append(texts, rec.Text)
	}
	want := []string{
		"(concierge:26303): GStreamer-CRITICAL **: 19:56:25.021:",
		"Trying to dispose element videoconvert0, but it is in PLAYING instead of the NULL state.",
		"[tcp @ 0x7ff3001b2040] Connection to tcp://cam:***@127.0.0.1:33235?timeout=0 failed: Connection refused",
		strings.Repeat("x", 4096),
		"no newline at the end",
	}
	if fmt.Sprint(texts) != fmt.Sprint(want) {
		t.Fatalf("records:\n%q\nwant:\n%q", texts, want)
	}

	// fd 2 is stderr again: a write no longer reaches the log.
	before := out.String()
	fmt.Fprintln(os.Stderr, "(TestCapture: this line belongs on the test's stderr)")
	if out.String() != before {
		t.Fatal("fd 2 still feeds the log after Close")
	}
}
