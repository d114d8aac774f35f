package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestHQConfig(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("db: /srv/c/concierge.db\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HQ != (HQConfig{}) {
		t.Fatalf("default: %+v, want a box alone", c.HQ)
	}
	t.Setenv("CONCIERGE_HQ_URL", "nats-leaf://10.1.0.5:7422")
	t.Setenv("CONCIERGE_HQ_CREDENTIALS", "/etc/concierge/b001.creds")
	c, err = ParseConfig(strings.NewReader("hq:\n  url: nats-leaf://x:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HQ.URL != "nats-leaf://10.1.0.5:7422" || c.HQ.networkKey() != filepath.Join("/etc/concierge", "network.key") {
		t.Fatalf("env overrides: %+v %q", c.HQ, c.HQ.networkKey())
	}
}

func TestHQConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"hq:\n  credentials: a.creds\n", "hq.url"},
		{"hq:\n  url: http://hq:7422\n  credentials: a.creds\n", "hq.url"},
		{"hq:\n  url: nats-leaf://hq:7422\n", "hq.credentials"},
		{"nats:\n  url: nats://x:4222\nhq:\n  url: nats-leaf://hq:7422\n  credentials: a.creds\n", "hq.url"},
	} {
		_, err := ParseConfig(strings.NewReader(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error naming %s", tc.yaml, err, tc.want)
		}
	}
}

func TestEnrollDefaultScope(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("db: /srv/c/concierge.db\n"))
	if err != nil || c.Enroll.DefaultScope != "branch" {
		t.Fatalf("default scope %q: %v", c.Enroll.DefaultScope, err)
	}
	t.Setenv("CONCIERGE_ENROLL_DEFAULT_SCOPE", "network")
	if c, err = ParseConfig(strings.NewReader("")); err != nil || c.Enroll.DefaultScope != "network" {
		t.Fatalf("env: %q %v", c.Enroll.DefaultScope, err)
	}
	t.Setenv("CONCIERGE_ENROLL_DEFAULT_SCOPE", "everywhere")
	if _, err := ParseConfig(strings.NewReader("")); err == nil || !strings.Contains(err.Error(), "enroll.default_scope") {
		t.Fatalf("bad scope: %v", err)
	}
}
