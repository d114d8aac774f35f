package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"concierge/seal"
)

// The daemon counts the people whose face data it stores on /metrics,
// flags the filing threshold, and refuses to start with a wrong key.
func TestDaemonFaceDataMetricsAndWrongKey(t *testing.T) {
	t.Setenv(seal.EnvVar, "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	cfg, _ := enrolledConfig(t)
	cfg.Cameras = nil
	d := NewDaemon(cfg, testLogger(t))
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := d.app.svc.Gallery.Customers()
	if n == 0 {
		t.Fatal("nobody enrolled: the count proves nothing")
	}
	cfg.Enroll.FilingWarnAt = n
	d.cfg.Enroll.FilingWarnAt = n
	resp, err := http.Get("http://" + d.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{fmt.Sprintf("concierge_face_data_subjects %d\n", n), "concierge_face_data_filing_warning 1\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	k, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(seal.EnvVar, keyString(t, k))
	d = NewDaemon(cfg, testLogger(t))
	err = d.Open(context.Background())
	d.Close()
	if err == nil || !strings.Contains(err.Error(), "wrong or missing template key") {
		t.Fatalf("daemon with a wrong key: %v", err)
	}
}
