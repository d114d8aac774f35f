package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"concierge/internal/testenv"
	"concierge/models"
)

// version names the binary, Go, OpenCV and every model file with the hash
// it expects and whether the configured directory holds exactly that file.
func TestVersion(t *testing.T) {
	t.Setenv("CONCIERGE_CONFIG", "")
	empty := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("models: {dir: "+empty+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "version", "--json", "--config", cfg)
	if code != 0 {
		t.Fatalf("version: exit %d: %s", code, errOut)
	}
	var v buildVersion
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %s", out)
	}
	if v.Go != runtime.Version() || !strings.HasPrefix(v.OpenCV, "4.") || v.GoCV == "" || v.Version == "" {
		t.Errorf("version %+v", v)
	}
	if len(v.Models) != len(models.All.Files()) {
		t.Fatalf("%d models listed, want %d", len(v.Models), len(models.All.Files()))
	}
	for _, s := range v.Models {
		if s.Status == "ok" || len(s.SHA256) != 64 {
			t.Errorf("model %+v in an empty directory", s)
		}
	}
	// The real models directory: every file there verifies.
	if err := os.WriteFile(cfg, []byte("models: {dir: "+testenv.ModelsDir(t)+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, code = run(t, "version", "--config", cfg)
	if code != 0 || !strings.Contains(out, "OpenCV 4.") || !strings.Contains(out, "face_detection_yunet_2023mar.onnx") {
		t.Fatalf("version: exit %d\n%s", code, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "yunet") && !strings.HasSuffix(l, "ok") {
			t.Errorf("YuNet in the real models directory: %s", l)
		}
	}

	// What setup.sh and build.sh stamp (-X main.version, main.commit) is
	// printed, by `version` and by `--version` alike.
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "v1.2.3", "0123456789abcdef0123456789abcdef01234567"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, _, code = run(t, append(args, "--config", cfg)...)
		if code != 0 || !strings.HasPrefix(out, "concierge v1.2.3 (commit 0123456789ab") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
	}
	out, _, _ = run(t, "--version", "--json", "--config", cfg)
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version != "v1.2.3" || v.Commit != commit {
		t.Errorf("--version --json: %v %s", err, out)
	}
}
