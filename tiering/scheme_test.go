package tiering

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validScheme = `name: test-scheme
calendar:
  effective: month_start
  upgrade_window_months: 2
  downgrade_months: [12, 6]
  downgrade_buffer_months: 4
levels:
  - id: base
    name: Base
  - id: top
    name: Top
    vip: true
    downgrade_buffer_months: 7
    qualify:
      - {indicator: assets, at_least: 1_000}
    service:
      priority: high
      greeting: "Welcome {address}"
      room: Room 1
      notify_rm: true
      cooldown: 90m
`

func TestParseSchemeValid(t *testing.T) {
	s, err := ParseScheme("test.yaml", []byte(validScheme))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "test-scheme" || len(s.Levels) != 2 || s.Source != "test.yaml" {
		t.Fatalf("scheme = %+v", s)
	}
	c := s.Calendar
	if c.Effective != EffectiveMonthStart || c.UpgradeWindowMonths != 2 || c.DowngradeBufferMonths != 4 ||
		len(c.DowngradeMonths) != 2 || c.DowngradeMonths[0] != 6 {
		t.Errorf("calendar = %+v", c)
	}
	top := s.Levels[1]
	if !top.VIP || top.DowngradeBufferMonths != 7 || s.Levels[0].DowngradeBufferMonths != 4 {
		t.Errorf("levels = %+v", s.Levels)
	}
	sl := top.Service
	if sl.Priority != PriorityHigh || !sl.NotifyRM || sl.Room != "Room 1" || sl.Cooldown.String() != "1h30m0s" {
		t.Errorf("service = %+v", sl)
	}
	if s.Levels[0].Service.Priority != PriorityNone {
		t.Errorf("default priority = %q", s.Levels[0].Service.Priority)
	}
}

// TestParseSchemeErrors: every malformed scheme is refused with the file,
// the line of the offending entry and a reason an operator can act on.
func TestParseSchemeErrors(t *testing.T) {
	tests := []struct {
		name   string
		yaml   string
		line   int
		reason string
	}{
		{"syntax", "name: x\nlevels: [\n", 2, "did not find expected"},
		{"empty", "", 0, "empty file"},
		{"unknown top-level field", "name: x\nlevel: []\n", 2, `unknown field "level"`},
		{"bad name", "name: Bad Name\n", 1, "name \"Bad Name\""},
		{"one level", "name: x\nlevels:\n  - {id: a, name: A}\n", 1, "at least two levels"},
		{"floor qualifies", "name: x\nlevels:\n  - {id: a, name: A, qualify: [{card: gold}]}\n  - {id: b, name: B, qualify: [{card: gold}]}\n", 3, "first level is the floor"},
		{"no conditions", "name: x\nlevels:\n  - {id: a, name: A}\n  - {id: b, name: B}\n", 4, "qualify needs at least one condition"},
		{"duplicate level", "name: x\nlevels:\n  - {id: a, name: A}\n  - {id: a, name: B, qualify: [{card: gold}]}\n", 4, "already used on line 3"},
		{"missing level name", "name: x\nlevels:\n  - {id: a}\n  - {id: b, name: B, qualify: [{card: gold}]}\n", 3, "name is required"},
		{"misspelt bound", "name: x\nlevels:\n  - {id: a, name: A}\n  - id: b\n    name: B\n    qualify:\n      - {indicator: points, at_lest: 5}\n", 7, `unknown field "at_lest"`},
		{"unknown indicator", "name: x\nlevels:\n  - {id: a, name: A}\n  - id: b\n    name: B\n    qualify:\n      - {indicator: asset, at_least: 5}\n", 7, `unknown indicator "asset"`},
		{"no bound", "name: x\nlevels:\n  - {id: a, name: A}\n  - id: b\n    name: B\n    qualify:\n      - {indicator: assets}\n", 7, "needs at_least, above, below or at_most"},
		{"two kinds", "name: x\nlevels:\n  - {id: a, name: A}\n  - id: b\n    name: B\n    qualify:\n      - {indicator: assets, at_least: 1, card: gold}\n", 7, "exactly one of"},
		{"empty range", "name: x\nlevels:\n  - {id: a, name: A}\n  - id: b\n    name: B\n    qualify:\n      - {indicator: assets, at_least: 10, below: 10}\n", 7, "no value that qualifies"},
		{"two lower bounds", "name: x\nlevels:\n  - {id: a, name: A}\n  - id: b\n    name: B\n    qualify:\n      - {indicator: assets, at_least: 10, above: 5}\n", 7, "at most one lower bound"},
		{"not a number", "name: x\nlevels:\n  - {id: a, name: A}\n  - id: b\n    name: B\n    qualify:\n      - {indicator: assets, at_least: lots}\n", 7, `"lots": not a number`},
		{"too precise", "name: x\nlevels:\n  - {id: a, name: A}\n  - id: b\n    name: B\n    qualify:\n      - {indicator: assets, at_least: 1.000001}\n", 7, "decimal places"},
		{"private banking false", "name: x\nlevels:\n  - {id: a, name: A}\n  - {id: b, name: B, qualify: [{private_banking: false}]}\n", 4, "qualifies no one"},
		{"bad card", "name: x\nlevels:\n  - {id: a, name: A}\n  - {id: b, name: B, qualify: [{card: Gold Card}]}\n", 4, "card \"Gold Card\""},
		{"bad priority", "name: x\nlevels:\n  - {id: a, name: A}\n  - id: b\n    name: B\n    qualify: [{card: gold}]\n    service:\n      priority: asap\n", 8, `priority "asap"`},
		{"bad cooldown", "name: x\nlevels:\n  - {id: a, name: A}\n  - id: b\n    name: B\n    qualify: [{card: gold}]\n    service:\n      cooldown: soon\n", 8, `cooldown "soon"`},
		{"service is text", "name: x\nlevels:\n  - {id: a, name: A, service: fast}\n  - {id: b, name: B, qualify: [{card: gold}]}\n", 3, "`fast` should be a mapping"},
		{"levels not a list", "name: x\nlevels: many\n", 2, "`many` should be a list"},
		{"vip not bool", "name: x\nlevels:\n  - {id: a, name: A, vip: sometimes}\n  - {id: b, name: B, qualify: [{card: gold}]}\n", 3, "should be true or false"},
		{"bad effective", "name: x\ncalendar:\n  effective: yearly\n", 3, `effective "yearly"`},
		{"bad window", "name: x\ncalendar:\n  upgrade_window_months: 0\n", 3, "upgrade_window_months must be 1 to 24"},
		{"bad downgrade month", "name: x\ncalendar:\n  downgrade_months: [6, 13]\n", 3, "distinct months 1 to 12"},
		{"bad buffer", "name: x\ncalendar:\n  downgrade_buffer_months: 99\n", 3, "downgrade_buffer_months must be 0 to 60"},
		{"level buffer", "name: x\nlevels:\n  - {id: a, name: A}\n  - {id: b, name: B, downgrade_buffer_months: -1, qualify: [{card: gold}]}\n", 4, "downgrade_buffer_months must be 0 to 60"},
		{"indicator redefined", "name: x\nindicators:\n  - {name: assets, unit: cny}\n", 3, `indicator "assets" is already defined`},
		{"indicator unit", "name: x\nindicators:\n  - {name: growth, unit: euros}\n", 3, `unit "euros"`},
		{"indicator is column", "name: x\nindicators:\n  - {name: month, unit: count}\n", 3, "clashes with a CSV column"},
		{"score factor unknown", "name: x\nscore:\n  name: score\n  factors:\n    - {indicator: nope, weight: 1, bands: [{at_least: 0, score: 1}]}\n", 5, `unknown indicator "nope"`},
		{"score weight missing", "name: x\nscore:\n  name: score\n  factors:\n    - {indicator: assets, bands: [{at_least: 0, score: 1}]}\n", 5, "weight is required"},
		{"score weight too big", "name: x\nscore:\n  name: score\n  factors:\n    - {indicator: assets, weight: 5000, bands: [{at_least: 0, score: 1}]}\n", 5, "weight must be within"},
		{"score bands order", "name: x\nscore:\n  name: score\n  factors:\n    - indicator: assets\n      weight: 1\n      bands:\n        - {at_least: 10, score: 1}\n        - {at_least: 10, score: 2}\n", 9, "must be above the previous band"},
		{"score no factors", "name: x\nscore:\n  name: score\n", 3, "score needs 1 to 64 factors"},
		{"score name clash", "name: x\nscore:\n  name: assets\n  factors:\n    - {indicator: points, weight: 1, bands: [{at_least: 0, score: 1}]}\n", 3, "clashes"},
		{"duplicate key", "name: x\nname: y\n", 2, "already defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseScheme("ops/bad.yaml", []byte(tt.yaml))
			var se *SchemeError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *SchemeError", err)
			}
			if se.File != "ops/bad.yaml" || se.Line != tt.line || !strings.Contains(se.Reason, tt.reason) {
				t.Fatalf("err = %q (line %d), want line %d containing %q", err, se.Line, tt.line, tt.reason)
			}
			if tt.line > 0 && !strings.HasPrefix(err.Error(), "ops/bad.yaml:") {
				t.Fatalf("message %q does not start with file:line", err)
			}
		})
	}
}

func TestLoadSchemesDir(t *testing.T) {
	dir := t.TempDir()
	// An operator's file replaces a preset: an 8M private-banking line.
	boc8m := strings.Replace(mustPreset(t, "boc-wealth"), "at_least: 6_000_000", "at_least: 8_000_000", 1)
	write(t, dir, "boc8m.yaml", boc8m)
	write(t, dir, "mine.yml", validScheme)
	write(t, dir, "README.txt", "not a scheme")
	s, err := LoadSchemes(dir, "test-scheme")
	if err != nil {
		t.Fatal(err)
	}
	if s.Default != "test-scheme" {
		t.Errorf("default = %q", s.Default)
	}
	boc, _ := s.Get("boc-wealth")
	if boc.Source != filepath.Join(dir, "boc8m.yaml") {
		t.Errorf("boc source = %q", boc.Source)
	}
	if r := boc.Rate(facts("assets", "6000000")); r.Level != "wealth-management" {
		t.Errorf("6M under the 8M scheme = %s", r.Level)
	}
	if got := strings.Join(s.Names(), ","); got != "boc-wealth,composite-score,generic-four,icbc-stars,test-scheme" {
		t.Errorf("names = %s", got)
	}

	t.Run("bad file names file and line", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "broken.yaml", "name: broken\nlevels:\n  - {id: a, name: A}\n  - {id: b, name: B, qualify: [{indicator: points, at_least: x}]}\n")
		_, err := LoadSchemes(dir, "")
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "broken.yaml")+":4:") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("same name twice", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "a.yaml", validScheme)
		write(t, dir, "b.yaml", validScheme)
		if _, err := LoadSchemes(dir, ""); err == nil || !strings.Contains(err.Error(), "also defined") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unit conflict", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "g.yaml", "name: g\nindicators:\n  - {name: income_growth, unit: count}\nlevels:\n  - {id: a, name: A}\n  - {id: b, name: B, qualify: [{indicator: income_growth, at_least: 1}]}\n")
		if _, err := LoadSchemes(dir, ""); err == nil || !strings.Contains(err.Error(), `indicator "income_growth" has unit`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unknown default", func(t *testing.T) {
		if _, err := LoadSchemes("", "nope"); err == nil || !strings.Contains(err.Error(), "tiering.scheme") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing dir", func(t *testing.T) {
		if _, err := LoadSchemes(filepath.Join(dir, "absent"), ""); err == nil {
			t.Fatal("no error")
		}
	})
}

func mustPreset(t *testing.T, name string) string {
	t.Helper()
	b, err := presetFS.ReadFile("presets/" + name + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
