package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrivacyConfig(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("db: /srv/c/concierge.db\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Enroll.Retention != 2*365*24*time.Hour || c.Enroll.FilingWarnAt != 90_000 {
		t.Fatalf("defaults: %+v", c.Enroll)
	}
	if c.Report.Retention != 400*24*time.Hour {
		t.Fatalf("report.retention default %v, want 400 days", c.Report.Retention)
	}
	if got := c.templateKeyFile(); got != filepath.Join("/srv/c", "template.key") {
		t.Fatalf("default key file %q, want template.key beside db", got)
	}

	t.Setenv("CONCIERGE_ENROLL_RETENTION", "0s")
	t.Setenv("CONCIERGE_ENROLL_FILING_WARN_AT", "5000")
	t.Setenv("CONCIERGE_KEYS_TEMPLATE_FILE", "/run/keys/t.key")
	t.Setenv("CONCIERGE_REPORT_RETENTION", "2160h")
	c, err = ParseConfig(strings.NewReader("enroll:\n  retention: 8760h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Enroll.Retention != 0 || c.Enroll.FilingWarnAt != 5000 || c.templateKeyFile() != "/run/keys/t.key" || c.Report.Retention != 2160*time.Hour {
		t.Fatalf("env overrides: %+v %q", c.Enroll, c.templateKeyFile())
	}
}

func TestPrivacyConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"enroll:\n  retention: -1h\n", "enroll.retention"},
		{"enroll:\n  retention: 1h\n", "enroll.retention"},
		{"enroll:\n  filing_warn_at: -1\n", "enroll.filing_warn_at"},
		{"keys:\n  template: x\n", "template"},
		{"report:\n  retention: 1h\n", "report.retention"},
		{"report:\n  retention: 0s\n", "report.retention"},
	} {
		if _, err := ParseConfig(strings.NewReader(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%q: err = %v, want mention of %q", tc.yaml, err, tc.want)
		}
	}
}
