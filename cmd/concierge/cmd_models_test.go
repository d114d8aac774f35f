package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"concierge/internal/testenv"
	"concierge/models"
)

// genuineDlib returns a directory holding the real dlib model files,
// looked for where testenv.DlibModelDirs says.
func genuineDlib(t *testing.T) string {
	t.Helper()
	dirs, chosen := testenv.DlibModelDirs()
	if chosen {
		return dirs[0]
	}
	for _, d := range dirs {
		if models.Verify(d, models.Dlib) == nil {
			return d
		}
	}
	msg := "genuine dlib model files not found; run deploy/setup.sh or set CONCIERGE_TEST_MODELS to a directory holding " +
		strings.Join(models.Dlib.Names(), ", ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

type runResult struct {
	code           int
	stdout, stderr string
}

func runConcierge(t *testing.T, args ...string) runResult {
	t.Helper()
	t.Setenv("CONCIERGE_CONFIG", "") // the defaults, whatever the developer's shell says
	var stdout, stderr bytes.Buffer
	m := &Main{Stdout: &stdout, Stderr: &stderr}
	code := m.exitCode(m.Run(context.Background(), args))
	return runResult{code, stdout.String(), stderr.String()}
}

func TestModelsCommand(t *testing.T) {
	src := genuineDlib(t)
	names := models.Dlib.Names()

	// One fetched directory serves the verify cases, each on its own copy.
	fetched := filepath.Join(t.TempDir(), "models")
	r := runConcierge(t, "models", "fetch", "--set", "dlib", "--from", src, "--dir", fetched)
	if r.code != 0 {
		t.Fatalf("fetch: exit %d\n%s", r.code, r.stderr)
	}
	for _, n := range names {
		if !strings.Contains(r.stdout, n) || !strings.Contains(r.stdout, "from "+src) {
			t.Errorf("fetch output lacks %s from %s:\n%s", n, src, r.stdout)
		}
	}
	if got := strings.Count(r.stdout, "sha256 ok"); got != len(names) {
		t.Errorf("fetch printed %d ok lines, want %d:\n%s", got, len(names), r.stdout)
	}
	r = runConcierge(t, "models", "fetch", "--set", "dlib", "--dir", fetched)
	if r.code != 0 || strings.Count(r.stdout, models.SourcePresent) != len(names) {
		t.Errorf("re-fetch: exit %d, want every file present:\n%s%s", r.code, r.stdout, r.stderr)
	}

	copyDir := func(t *testing.T) string {
		d := t.TempDir()
		for _, n := range names {
			b, err := os.ReadFile(models.Path(fetched, n))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(models.Path(d, n), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}

	for _, tc := range []struct {
		name string
		// args damages d as the case needs and returns the command line,
		// plus any stderr text only known once the damage is done.
		args       func(t *testing.T, d string) (args, stderr []string)
		code       int
		wantStdout []string
		wantStderr []string
	}{
		{
			name: "verify ok",
			args: func(t *testing.T, d string) ([]string, []string) {
				return []string{"models", "verify", "--dir", d}, nil
			},
			wantStdout: []string{"ok " + names[0], "ok " + names[1], "ok " + names[2]},
		},
		{
			name: "verify flipped byte",
			args: func(t *testing.T, d string) ([]string, []string) {
				p := models.Path(d, models.DlibResNet)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 1
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(b)
				return []string{"models", "verify", "--dir", d}, []string{hex.EncodeToString(sum[:])}
			},
			code:       1,
			wantStdout: []string{"ok " + models.DlibShapePredictor5, "ok " + models.DlibMMOD},
			wantStderr: []string{models.DlibResNet, "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"},
		},
		{
			name: "verify missing file",
			args: func(t *testing.T, d string) ([]string, []string) {
				if err := os.Remove(models.Path(d, models.DlibMMOD)); err != nil {
					t.Fatal(err)
				}
				return []string{"models", "verify", "--dir", d}, nil
			},
			code:       1,
			wantStderr: []string{models.DlibMMOD, "missing"},
		},
		{
			name: "fetch refuses a corrupt --from file",
			args: func(t *testing.T, d string) ([]string, []string) {
				p := models.Path(d, models.DlibMMOD)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b[100] ^= 1
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return []string{"models", "fetch", "--from", d, "--dir", filepath.Join(d, "out")}, nil
			},
			code:       1,
			wantStderr: []string{models.DlibMMOD, "be467b1a76f482693de3b0f6a1ff91d092319be71523d4d4b0628f6a53fcb87a"},
		},
		{
			name: "unknown set",
			args: func(t *testing.T, d string) ([]string, []string) {
				return []string{"models", "verify", "--set", "tflite", "--dir", d}, nil
			},
			code:       2,
			wantStderr: []string{`"tflite"`},
		},
		{
			name:       "unknown action",
			args:       func(t *testing.T, d string) ([]string, []string) { return []string{"models", "download"}, nil },
			code:       2,
			wantStderr: []string{`"download"`, "fetch or verify"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, more := tc.args(t, copyDir(t))
			want := append(append([]string(nil), tc.wantStderr...), more...)
			r := runConcierge(t, args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, w := range tc.wantStdout {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

// TestModelsFetchMirror fetches the real ONNX set from a bank mirror (an
// HTTP server holding copies of the shared model files), from the flag and
// from CONCIERGE_MODELS_MIRROR, and refuses a mirror that is not a base URL.
func TestModelsFetchMirror(t *testing.T) {
	shared := testenv.Shared(t, "models")
	served := t.TempDir()
	for _, n := range models.ONNX.Names() {
		b, err := os.ReadFile(models.Path(shared, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(served, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// /elsewhere holds only the detector, so that a mirror without the
	// MobileFaceNets fails on them alone and never reaches for the
	// detector's public download.
	elsewhere := filepath.Join(served, "elsewhere")
	if err := os.Mkdir(elsewhere, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(served, models.YuNet), filepath.Join(elsewhere, models.YuNet)); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/concierge/models/", http.StripPrefix("/concierge/models", http.FileServer(http.Dir(served))))
	mux.Handle("/elsewhere/", http.StripPrefix("/elsewhere", http.FileServer(http.Dir(elsewhere))))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	mirror := srv.URL + "/concierge/models/"

	dir := filepath.Join(t.TempDir(), "models")
	r := runConcierge(t, "models", "fetch", "--set", "onnx", "--mirror", mirror, "--dir", dir)
	if r.code != 0 {
		t.Fatalf("fetch: exit %d\n%s", r.code, r.stderr)
	}
	for _, f := range models.ONNX.Files() {
		// The files the binary carries never need the mirror.
		want := srv.URL + "/concierge/models/" + f.Name
		if f.Shipped {
			want = " " + models.SourceShipped + " "
		}
		if !strings.Contains(fetchLine(r.stdout, f.Name), want) {
			t.Errorf("fetch output lacks %q:\n%s", want, r.stdout)
		}
	}
	if err := models.Verify(dir, models.ONNX); err != nil {
		t.Fatal(err)
	}

	t.Setenv("CONCIERGE_MODELS_MIRROR", mirror)
	dir2 := filepath.Join(t.TempDir(), "models")
	if r := runConcierge(t, "models", "fetch", "--set", "onnx", "--dir", dir2); r.code != 0 || models.Verify(dir2, models.ONNX) != nil {
		t.Fatalf("fetch with CONCIERGE_MODELS_MIRROR: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	for _, tc := range []struct {
		name string
		env  string
		args []string
		code int
		want string
	}{
		{"flag with a query", "", []string{"--mirror", mirror + "?token=x"}, 2, "no query"},
		{"flag without a scheme", "", []string{"--mirror", "artifacts.bank.internal/models"}, 2, "http or https"},
		{"config with credentials", "https://u:secret@artifacts.bank.internal/models", nil, 1, "models.mirror"},
		{"mirror without the files", srv.URL + "/elsewhere", nil, 1, "not on the mirror"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CONCIERGE_MODELS_MIRROR", tc.env)
			args := append([]string{"models", "fetch", "--set", "onnx", "--dir", filepath.Join(t.TempDir(), "m")}, tc.args...)
			r := runConcierge(t, args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "secret") {
				t.Errorf("exit %d, want %d with %q:\n%s", r.code, tc.code, tc.want, r.stderr)
			}
		})
	}
}
