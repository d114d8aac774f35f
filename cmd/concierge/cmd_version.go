package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"concierge/models"
	"concierge/vision"
)

// version and commit are set by the build (deploy/setup.sh: -ldflags
// "-X main.version=... -X main.commit=..."); otherwise the module's build
// information says what it can.
var version, commit = "", ""

// buildVersion is what `concierge version` reports about the binary.
type buildVersion struct {
	Version  string        `json:"version"`
	Commit   string        `json:"commit,omitempty"`
	Time     string        `json:"commit_time,omitempty"`
	Modified bool          `json:"modified,omitempty"`
	Go       string        `json:"go"`
	Platform string        `json:"platform"`
	OpenCV   string        `json:"opencv"`
	GoCV     string        `json:"gocv"`
	Models   []modelStatus `json:"models"`
}

// modelStatus is one model file: the hash this binary expects, and
// whether the configured models directory holds exactly that file.
type modelStatus struct {
	Name    string `json:"name"`
	SHA256  string `json:"sha256"`
	Shipped bool   `json:"shipped,omitempty"`
	Status  string `json:"status"` // ok, missing, or what is wrong
}

func runVersion(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("version")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("version: unexpected argument %q", pos[0])
	}
	v := buildVersion{Version: version, Commit: commit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	v.OpenCV, v.GoCV = vision.OpenCVVersion()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	// The models directory comes from the config; a box without one still
	// gets the binary's facts.
	dir := DefaultConfig().Models.Dir
	if cfg, err := m.config(); err == nil {
		dir = cfg.Models.Dir
	}
	for _, f := range models.All.Files() {
		st := modelStatus{Name: f.Name, SHA256: f.SHA256, Shipped: f.Shipped, Status: "ok"}
		if err := models.VerifyFile(dir, f); err != nil {
			st.Status = err.Error()
		}
		v.Models = append(v.Models, st)
	}
	if *asJSON {
		return writeJSON(m, v)
	}
	fmt.Fprintf(m.Stdout, "concierge %s", v.Version)
	if v.Commit != "" {
		dirty := ""
		if v.Modified {
			dirty = ", modified"
		}
		fmt.Fprintf(m.Stdout, " (commit %.12s%s)", v.Commit, strings.TrimRight(" "+v.Time, " ")+dirty)
	}
	fmt.Fprintf(m.Stdout, "\n%s %s, OpenCV %s (gocv %s)\nmodels in %s:\n", v.Go, v.Platform, v.OpenCV, v.GoCV, dir)
	for _, s := range v.Models {
		fmt.Fprintf(m.Stdout, "  %-42s %.16s…  %s\n", s.Name, s.SHA256, s.Status)
	}
	return nil
}
