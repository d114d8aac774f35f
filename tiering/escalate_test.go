package tiering

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// escalate_after is read like cooldown: a duration, or "never"; absent
// leaves the branch default (0).
func TestParseEscalateAfter(t *testing.T) {
	scheme := func(v string) string {
		return "name: x\nlevels:\n  - {id: a, name: A}\n  - id: b\n    name: B\n    qualify: [{card: gold}]\n    service:\n      priority: high\n" + v
	}
	for _, tc := range []struct {
		yaml string
		want Duration
		json string
	}{
		{"", 0, ""},
		{"      escalate_after: 90s\n", Duration(90 * time.Second), `"escalate_after":"1m30s"`},
		{"      escalate_after: never\n", NeverEscalate, `"escalate_after":"never"`},
	} {
		s, err := ParseScheme("x.yaml", []byte(scheme(tc.yaml)))
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		sl := s.Levels[1].Service
		if sl.EscalateAfter != tc.want {
			t.Errorf("%q: escalate_after %v, want %v", tc.yaml, sl.EscalateAfter, tc.want)
		}
		b, err := json.Marshal(sl)
		if err != nil {
			t.Fatal(err)
		}
		if tc.json == "" && strings.Contains(string(b), "escalate_after") || !strings.Contains(string(b), tc.json) {
			t.Errorf("%q: json %s, want %s", tc.yaml, b, tc.json)
		}
	}
	for _, bad := range []string{"soon", "0s", "-1m", "Never"} {
		_, err := ParseScheme("x.yaml", []byte(scheme("      escalate_after: "+bad+"\n")))
		if err == nil || !strings.Contains(err.Error(), "escalate_after") || !strings.Contains(err.Error(), "x.yaml:8") {
			t.Errorf("escalate_after %q: %v", bad, err)
		}
	}
}
