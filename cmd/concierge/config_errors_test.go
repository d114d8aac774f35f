package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigUnknownKey: a misspelt key is named with its line and the key
// meant, at the top level and inside a section.
func TestConfigUnknownKey(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"branch: b1\ncamera:\n  - {id: a, source: '0'}\n", "unknown key `camera` at line 2; did you mean `cameras`?"},
		{"nats:\n  url: ''\n  lisen: 127.0.0.1:4222\n", "unknown key `lisen` at line 3; did you mean `listen`?"},
		{"cameras:\n  - {id: a, sorce: '0'}\n", "unknown key `sorce` at line 2; did you mean `source`?"},
		// Nothing close: no guess.
		{"branch: b1\nzzzzzzzzzzzz: 1\n", "unknown key `zzzzzzzzzzzz` at line 2"},
	} {
		_, err := ParseConfig(strings.NewReader(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "main.") {
			t.Errorf("%q: the message shows Go type names: %v", tc.yaml, err)
		}
		if strings.HasPrefix(tc.yaml, "branch: b1\nzzz") && strings.Contains(err.Error(), "did you mean") {
			t.Errorf("a far-off key got a guess: %v", err)
		}
	}
}

const unsetStaffYAML = `branch: b1
# an example in a comment: ${CONCIERGE_TEST_IN_COMMENT}
web:
  staff:
    - name: zhang
      password: ${CONCIERGE_TEST_LOBBY_PW}
`

// TestConfigUnsetVariable: when a value is empty because its ${VAR} is not
// set, the error names the variable and its line (not one in a comment).
func TestConfigUnsetVariable(t *testing.T) {
	os.Unsetenv("CONCIERGE_TEST_LOBBY_PW")
	os.Unsetenv("CONCIERGE_TEST_IN_COMMENT")
	_, err := ParseConfig(strings.NewReader(unsetStaffYAML))
	if err == nil || !strings.Contains(err.Error(), "web.staff[0]") ||
		!strings.Contains(err.Error(), "${CONCIERGE_TEST_LOBBY_PW} (line 6)") {
		t.Fatalf("err = %v, want web.staff[0] and ${CONCIERGE_TEST_LOBBY_PW} (line 6)", err)
	}
	if strings.Contains(err.Error(), "IN_COMMENT") {
		t.Errorf("a reference in a comment was reported: %v", err)
	}
	t.Setenv("CONCIERGE_TEST_LOBBY_PW", "a-long-enough-password-1")
	if _, err := ParseConfig(strings.NewReader(unsetStaffYAML)); err != nil {
		t.Fatalf("with the variable set: %v", err)
	}
}

// TestConfigSectionOnlyBlocksItsUsers: a problem in web stops `run` but not
// `tiers import`, which warns and imports.
func TestConfigSectionOnlyBlocksItsUsers(t *testing.T) {
	os.Unsetenv("CONCIERGE_TEST_LOBBY_PW")
	dir := t.TempDir()
	db := filepath.Join(dir, "c.db")
	cfg := writeTiersFile(t, dir, "concierge.yaml", []byte(unsetStaffYAML+"db: "+db+"\n"))
	csv := writeTiersFile(t, dir, "june.csv", []byte("customer_id,month,assets,scheme\nC1,2024-06,1200000,boc-wealth\n"))

	r := runTiersCmd(t, "tiers", "import", "--config", cfg, csv)
	if r.code != 0 {
		t.Fatalf("tiers import with a bad web section: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "warning: config ") || !strings.Contains(r.stderr, "web.staff[0]") || !strings.Contains(r.stderr, "CONCIERGE_TEST_LOBBY_PW") ||
		!strings.Contains(r.stderr, "`tiers` does not use web") {
		t.Errorf("tiers import should warn about the web section, naming the variable: %s", r.stderr)
	}
	if v := decodeTiers(t, r); v["inserted"] != 1.0 {
		t.Errorf("import = %v", v)
	}

	r = runTiersCmd(t, "run", "--config", cfg)
	if r.code == 0 || !strings.Contains(r.stderr, "web.staff[0]") || strings.Contains(r.stderr, "warning") {
		t.Fatalf("run with a bad web section: exit %d\n%s", r.code, r.stderr)
	}

	// A problem outside the daemon's sections still stops every command.
	bad := writeTiersFile(t, dir, "bad.yaml", []byte("branch: b.1\ndb: "+db+"\n"))
	if r := runTiersCmd(t, "tiers", "import", "--config", bad, csv); r.code == 0 || !strings.Contains(r.stderr, "branch") {
		t.Fatalf("tiers import with a bad branch: exit %d\n%s", r.code, r.stderr)
	}
}
