package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMirrorURL(t *testing.T) {
	for _, tc := range []struct {
		raw, want, err string
	}{
		{"http://artifacts.bank.internal/models/", "http://artifacts.bank.internal/models", ""},
		{"https://artifacts.bank.internal:8443/ml/concierge", "https://artifacts.bank.internal:8443/ml/concierge", ""},
		{"https://artifacts.bank.internal", "https://artifacts.bank.internal", ""},
		{"", "", "http or https"},
		{"artifacts.bank.internal/models", "", "http or https"},
		{"ftp://artifacts.bank.internal/models", "", "http or https"},
		{"http:///models", "", "no host"},
		{"http://artifacts.bank.internal/models?token=x", "", "no query"},
		{"http://artifacts.bank.internal/models?", "", "no query"},
		{"http://artifacts.bank.internal/models#top", "", "no query or fragment"},
		{"https://user:secret@artifacts.bank.internal/models", "", "no credentials"},
		{"ftp://user:secret@artifacts.bank.internal/models", "", "no credentials"},
		{"http://[::1", "", "mirror"},
	} {
		got, err := MirrorURL(tc.raw)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("MirrorURL(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("MirrorURL(%q) error = %v; want it to mention %q", tc.raw, err, tc.err)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("MirrorURL(%q) error shows the password: %v", tc.raw, err)
		}
	}
}

// testFile is a small model-like file with its pinned hash and size.
func testFile(name string, content []byte) File {
	sum := sha256.Sum256(content)
	return File{Name: name, Set: SetONNX, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content))}
}

// TestFetchFromMirror runs Fetch against a real HTTP server standing in for
// a bank's artifact store. The files have no npm package or public URL,
// like the MobileFaceNet exports, unless a case gives one.
func TestFetchFromMirror(t *testing.T) {
	good := []byte("the right model bytes")
	served := t.TempDir()
	write := func(dir, name string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(served, "models"), "a.onnx", good)
	write(filepath.Join(served, "models"), "swapped.onnx", []byte("the wrong model bytes"))
	write(filepath.Join(served, "upstream"), "swapped.onnx", good)
	srv := httptest.NewServer(http.FileServer(http.Dir(served)))
	defer srv.Close()
	from := t.TempDir()
	write(from, "local.onnx", good)

	swapped := testFile("swapped.onnx", good)
	swapped.URL = srv.URL + "/upstream/swapped.onnx"
	for _, tc := range []struct {
		name    string
		file    File
		mirror  string
		from    string
		source  string   // on success
		wants   []string // error substrings on failure
		noDL    bool
		present bool
	}{
		{"served by the mirror", testFile("a.onnx", good), srv.URL + "/models", "", srv.URL + "/models/a.onnx", nil, false, true},
		{"a trailing slash joins once", testFile("a.onnx", good), srv.URL + "/models/", "", srv.URL + "/models/a.onnx", nil, false, true},
		{"--from comes first", testFile("local.onnx", good), srv.URL + "/models", from, "from " + from, nil, false, true},
		{"a wrong file on the mirror falls through to the upstream URL", swapped, srv.URL + "/models", "", swapped.URL, nil, false, true},
		{"a wrong file and no other source", testFile("swapped.onnx", good), srv.URL + "/models", "",
			"", []string{srv.URL + "/models/swapped.onnx", "sha256", "not on the mirror"}, true, false},
		{"not on the mirror", testFile("missing.onnx", good), srv.URL + "/models", from,
			"", []string{"not in " + from, srv.URL + "/models/missing.onnx", "404", "only --from DIR or a mirror"}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opt := Options{From: tc.from, Mirror: tc.mirror, NPM: filepath.Join(t.TempDir(), "no-npm-here"),
				Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
			res, err := Fetch(context.Background(), dir, Set{name: "test", files: []File{tc.file}}, opt)
			if tc.wants == nil {
				if err != nil || len(res) != 1 || res[0].Source != tc.source {
					t.Fatalf("Fetch = %+v, %v; want the file from %s", res, err, tc.source)
				}
			} else {
				if err == nil {
					t.Fatalf("Fetch succeeded from %+v", res)
				}
				for _, w := range tc.wants {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q: %v", w, err)
					}
				}
			}
			if got := errors.Is(err, ErrNoDownload); got != tc.noDL {
				t.Errorf("errors.Is(err, ErrNoDownload) = %v: %v", got, err)
			}
			switch err := VerifyFile(dir, tc.file); {
			case tc.present && err != nil:
				t.Error(err)
			case !tc.present && !errors.Is(err, fs.ErrNotExist):
				t.Errorf("a file is under the model's name: %v", err)
			}
			noTemps(t, dir)
		})
	}
	if _, err := Fetch(context.Background(), t.TempDir(), Set{name: "test", files: []File{testFile("a.onnx", good)}},
		Options{Mirror: "ftp://" + strings.TrimPrefix(srv.URL, "http://")}); err == nil || !strings.Contains(err.Error(), "http or https") {
		t.Errorf("a bad mirror URL: %v", err)
	}
}
