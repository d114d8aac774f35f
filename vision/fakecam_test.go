package vision_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"concierge/internal/testenv"
	"concierge/internal/testenv/testengine"
	"concierge/vision"
)

// A photo held flat in front of the camera: the face stays detectable as
// the picture moves and tilts, frames differ as it moves, and the Y4M
// file Chromium plays holds exactly the frames given.
func TestFlatClipAndY4M(t *testing.T) {
	src := testenv.ReadPhoto(t, "sample3.jpg")
	faces, err := testengine.Engine(t).Detect(context.Background(), src)
	if err != nil || len(faces) == 0 {
		t.Fatalf("sample3.jpg: %d faces, %v", len(faces), err)
	}
	crop, err := vision.Reframe(src, faces[0].Box, 0.5, 1, 95)
	if err != nil {
		t.Fatal(err)
	}
	frames, err := vision.FlatClip(crop, 640, 480, 4, []vision.Hold{{Height: 0.9}, {X: 0.05, Height: 1.0, Yaw: 30, Roll: 10}})
	if err != nil || len(frames) != 4 {
		t.Fatalf("flat clip: %d frames, %v", len(frames), err)
	}
	if bytes.Equal(frames[0], frames[3]) {
		t.Fatal("a moving picture gave identical frames")
	}
	for i, f := range frames {
		got, err := testengine.Engine(t).Detect(context.Background(), f)
		if err != nil || len(got) != 1 {
			t.Fatalf("frame %d of the held photo: %d faces, %v", i, len(got), err)
		}
	}
	if _, err := vision.FlatClip(crop, 640, 480, 4, nil); err == nil {
		t.Fatal("flat clip without holds accepted")
	}

	path := filepath.Join(t.TempDir(), "cam.y4m")
	if err := vision.WriteY4M(path, frames, 320, 240, 10); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	header, _ := r.ReadString('\n')
	if header != "YUV4MPEG2 W320 H240 F10:1 Ip A1:1 C420jpeg\n" {
		t.Fatalf("header %q", header)
	}
	st, _ := f.Stat()
	if want := int64(len(header) + 4*(len("FRAME\n")+320*240*3/2)); st.Size() != want {
		t.Fatalf("y4m of %d bytes, want %d", st.Size(), want)
	}
	if err := vision.WriteY4M(path, frames, 321, 240, 10); err == nil {
		t.Fatal("odd width accepted: 4:2:0 needs even sizes")
	}
	if _, err := vision.ClipFrames(path, 0, 0, 1); err == nil {
		t.Fatal("zero frames asked and no error")
	}
}
