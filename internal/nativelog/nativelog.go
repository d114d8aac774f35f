// Package nativelog keeps what C libraries write straight to file
// descriptor 2 out of the structured log's lines. OpenCV's video backends
// (FFmpeg's "[tcp @ 0x…] Connection refused", GStreamer's multi-line
// GStreamer-CRITICAL blocks) print there, beneath any Go logger, so a log
// shipper reading one JSON record per line meets text it cannot parse, and
// a camera URL in it would escape the credential masking. Capture moves fd
// 2 onto a pipe and turns each line read from it into a log record; the
// logger writes to the original stderr, which Capture hands back.
package nativelog

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxLine bounds one record's text; a longer line is cut.
const maxLine = 4096

// Capture holds fd 2 on a pipe until Close.
type Capture struct {
	orig    *os.File // the process's stderr as it was, for the logger
	r       *os.File
	running atomic.Bool
	done    chan struct{}
	once    sync.Once
	err     error
}

// Start moves fd 2 onto a pipe. Stderr is then the original stderr: the
// structured log must write there, never to os.Stderr (which is fd 2, the
// pipe). The pipe does not block its writers: a line written while it is
// full is lost rather than stalling a camera's thread, or a crashing Go
// runtime, whose output also goes to the original stderr.
func Start() (*Capture, error) {
	origFD, err := syscall.Dup(2)
	if err != nil {
		return nil, fmt.Errorf("native log: dup stderr: %w", err)
	}
	syscall.CloseOnExec(origFD)
	orig := os.NewFile(uintptr(origFD), "/dev/stderr")
	r, w, err := os.Pipe()
	if err != nil {
		orig.Close()
		return nil, fmt.Errorf("native log: %w", err)
	}
	wfd := int(w.Fd()) // Fd puts it in blocking mode: undone below
	err = syscall.SetNonblock(wfd, true)
	if err == nil {
		// Dup3 rather than Dup2, which linux/arm64 lacks.
		err = syscall.Dup3(wfd, 2, 0)
	}
	w.Close() // on success fd 2 is the pipe's only write end
	if err != nil {
		orig.Close()
		r.Close()
		return nil, fmt.Errorf("native log: move stderr: %w", err)
	}
	if err := debug.SetCrashOutput(orig, debug.CrashOptions{}); err != nil {
		fmt.Fprintf(orig, "concierge: a crash would print only into the native log's pipe: %v\n", err)
	}
	return &Capture{orig: orig, r: r, done: make(chan struct{})}, nil
}

// Stderr is the original stderr, for the logger and the command's own
// messages; it stays open after Close.
func (c *Capture) Stderr() *os.File { return c.orig }

// Log starts logging each non-blank line written to fd 2 as a warning,
// its text put through mask (the camera credentials); a line is cut at
// 4 KiB. The goroutine is the Capture's: Close waits for it to log what
// was left in the pipe. Call it once.
func (c *Capture) Log(log *slog.Logger, mask func(string) string) {
	c.running.Store(true)
	go c.run(log, mask)
}

func (c *Capture) run(log *slog.Logger, mask func(string) string) {
	defer close(c.done)
	br := bufio.NewReaderSize(c.r, maxLine)
	for {
		line, err := readLine(br)
		if text := strings.TrimSpace(line); text != "" {
			log.LogAttrs(context.Background(), slog.LevelWarn, "native library output", slog.String("text", mask(text)))
		}
		if err != nil {
			return
		}
	}
}

// readLine reads one line, keeping at most maxLine bytes of it.
func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		frag, isPrefix, err := br.ReadLine()
		if b.Len() < maxLine {
			b.Write(frag[:min(len(frag), maxLine-b.Len())])
		}
		if err != nil || !isPrefix {
			return b.String(), err
		}
	}
}

// Close puts the original stderr back on fd 2, which closes the pipe's
// write end, lets Log's goroutine log what was left (a second at most) and closes the
// pipe. Safe twice.
func (c *Capture) Close() error {
	c.once.Do(func() {
		if err := syscall.Dup3(int(c.orig.Fd()), 2, 0); err != nil {
			c.err = fmt.Errorf("native log: restore stderr: %w", err)
		}
		debug.SetCrashOutput(nil, debug.CrashOptions{})
		if c.running.Load() {
			select {
			case <-c.done:
			case <-time.After(time.Second):
			}
		}
		c.r.Close()
	})
	return c.err
}
