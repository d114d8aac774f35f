package vision_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"concierge/internal/testenv"
	"concierge/vision"
)

func TestMaskCredentials(t *testing.T) {
	src := "rtsp://cam:S3cret%2Fpw@10.0.0.7:554/live"
	for _, c := range []struct{ text, want string }{
		{src, "rtsp://***@10.0.0.7:554/live"},
		{"Error opening file: " + src, "Error opening file: rtsp://***@10.0.0.7:554/live"},
		// OpenCV's exception text: the URL in the middle of a sentence.
		{"CAP_IMAGES: can't find starting number (in the name of file): " + src + " in function 'icvExtractPattern'",
			"CAP_IMAGES: can't find starting number (in the name of file): rtsp://***@10.0.0.7:554/live in function 'icvExtractPattern'"},
		// The password quoted outside a URL, as written and decoded.
		{"auth S3cret%2Fpw refused; S3cret/pw", "auth *** refused; ***"},
		// Another URL with credentials than the source's own.
		{"fallback http://u:p@h/x failed", "fallback http://***@h/x failed"},
		{"no credentials rtsp://10.0.0.7/live", "no credentials rtsp://10.0.0.7/live"},
		{"/var/clips/door.mp4 ended", "/var/clips/door.mp4 ended"},
	} {
		if got := vision.MaskCredentials(c.text, src); got != c.want {
			t.Errorf("MaskCredentials(%q) = %q, want %q", c.text, got, c.want)
		}
	}
	// A password of a few characters is left to the URL rule.
	if got := vision.MaskCredentials("a camera at rtsp://u:a@h", "rtsp://u:a@h"); got != "a camera at rtsp://***@h" {
		t.Errorf("short password: %q", got)
	}
}

// A real RTSP camera with basic auth: with a wrong password, and on a port
// where nothing listens, the source's error and its Err never carry the
// password; with the right one, frames come and the rate is measured.
func TestSourceRTSPCredentialsMasked(t *testing.T) {
	clip := testenv.Shared(t, "data/video/d11.mp4")
	base, port := testenv.RTSPServe(t, clip, 60, "cam:S3cretPW1")
	withPass := func(pw string, url string) string { return strings.Replace(url, "rtsp://", "rtsp://cam:"+pw+"@", 1) }
	dead := withPass("WrongPW22", strings.Replace(base, fmtPort(port), fmtPort(testenv.FreePort(t)), 1))
	for _, src := range []string{withPass("WrongPW22", base), dead} {
		s, err := vision.NewSource(vision.SourceConfig{Source: src})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = s.Run(ctx, func(vision.Frame) {})
		cancel()
		if err == nil {
			t.Fatalf("%s: no error", vision.MaskCredentials(src))
		}
		for _, text := range []string{err.Error(), s.Err()} {
			if strings.Contains(text, "WrongPW22") || !strings.Contains(text, "***") {
				t.Errorf("error text not masked: %q", text)
			}
		}
	}

	s, err := vision.NewSource(vision.SourceConfig{Source: withPass("S3cretPW1", base)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(vision.Frame) {}) }()
	defer func() { cancel(); <-done }()
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if fps := s.Stats.FPS(time.Now()); fps < 5 {
			return fmt.Errorf("%d frames, %.1f fps", s.Stats.Frames.Load(), fps)
		}
		return nil
	})
	if age := time.Since(s.Stats.LastFrame()); age > 2*time.Second {
		t.Errorf("last frame %v ago", age)
	}
	if s.Err() != "" {
		t.Errorf("Err after frames: %q", s.Err())
	}
}

func fmtPort(p int) string { return ":" + strconv.Itoa(p) + "/" }
