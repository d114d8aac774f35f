package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RTSPServe serves clip (an H.264 MP4) over RTSP on a free loopback port
// for the given seconds with ../shared/tools/rtsp-serve.py, a real IP
// camera with optional basic auth (userpass "USER:PASSWORD", or ""). It
// returns the stream's URL without credentials and its port; the server
// is stopped when the test ends. It needs Debian's python3-gi,
// gir1.2-gst-rtsp-server-1.0 and the GStreamer good and bad plugins
// (deploy/setup.sh --test).
func RTSPServe(tb testing.TB, clip string, seconds int, userpass string) (url string, port int) {
	tb.Helper()
	script := Shared(tb, "tools/rtsp-serve.py")
	// Debian's interpreter: the GObject bindings are its packages, not a
	// virtualenv's.
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')").Run(); err != nil {
		need(tb, "/nonexistent/gir1.2-gst-rtsp-server-1.0", "deploy/setup.sh --test (python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad)")
	}
	port = FreePort(tb)
	args := []string{script, clip, fmt.Sprint(port), fmt.Sprint(seconds)}
	if userpass != "" {
		args = append(args, userpass)
	}
	cmd := exec.Command(py, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if !strings.HasPrefix(line, "serving") {
			tb.Fatalf("rtsp-serve.py: %q", line)
		}
	case <-time.After(30 * time.Second):
		tb.Fatal("rtsp-serve.py did not start in 30 s")
	}
	return fmt.Sprintf("rtsp://127.0.0.1:%d/door", port), port
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
