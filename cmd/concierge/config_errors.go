package main

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// sectionError is a problem in a section of the file that only some
// subcommands use (the daemon's web and kiosk): a branch IT person fixing
// tier data should not be stopped by a lobby password not set yet.
type sectionError struct {
	section string
	err     error
}

func (e *sectionError) Error() string { return e.err.Error() }
func (e *sectionError) Unwrap() error { return e.err }

// sectionUsers names the subcommands that use each such section.
var sectionUsers = map[string][]string{
	"web":   {"run"},
	"kiosk": {"run"},
	// The engine's calibration: the commands that recognise or measure.
	calibrationSection: {"run", "enroll", "identify", "eval", "bench", "demo"},
}

// calibrationSection is the key a calibration error is reported under.
const calibrationSection = "vision.embedder.calibration"

// ignorableFor reports whether err is only a problem in a section that
// subcommand cmd does not use, and names that section.
func ignorableFor(err error, cmd string) (string, bool) {
	var se *sectionError
	if !errors.As(err, &se) {
		return "", false
	}
	for _, u := range sectionUsers[se.section] {
		if u == cmd {
			return "", false
		}
	}
	return se.section, true
}

// envRef is a ${NAME} in the file that the environment does not set.
type envRef struct {
	name string
	line int
}

// unsetRefs lists the ${NAME} references outside comments whose variable
// is not set, so that a validation error caused by an empty value can name
// the variable rather than only the key it emptied.
func unsetRefs(raw string, lookup func(string) (string, bool)) []envRef {
	var refs []envRef
	for n, line := range strings.Split(raw, "\n") {
		if i := commentStart(line); i >= 0 {
			line = line[:i]
		}
		for _, m := range envRefPattern.FindAllStringSubmatch(line, -1) {
			if _, ok := lookup(m[1]); !ok {
				refs = append(refs, envRef{m[1], n + 1})
			}
		}
	}
	return refs
}

var envRefPattern = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// commentStart finds a YAML comment: '#' at the start or after a space.
// A '#' inside a quoted value followed by a space is taken for a comment
// too; that only hides a reference from the message, never changes a value.
func commentStart(line string) int {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return i
		}
	}
	return -1
}

// withUnset adds the unset variables to err's message, keeping err's chain.
func withUnset(err error, refs []envRef) error {
	if err == nil || len(refs) == 0 {
		return err
	}
	parts := make([]string, len(refs))
	for i, r := range refs {
		parts[i] = fmt.Sprintf("${%s} (line %d)", r.name, r.line)
	}
	return fmt.Errorf("%w; not set in the environment: %s", err, strings.Join(parts, ", "))
}

// unknownField matches yaml.v3's message for a key the struct lacks.
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)

// explainYAML rewrites yaml.v3's unknown-field messages ("field camera not
// found in type main.Config") into the file's terms: the key, its line and
// the nearest key that exists at that place.
func explainYAML(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	keys := yamlKeysByType(reflect.TypeOf(Config{}))
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		m := unknownField.FindStringSubmatch(e)
		if m == nil {
			msgs = append(msgs, e)
			continue
		}
		msg := fmt.Sprintf("unknown key `%s` at line %s", m[2], m[1])
		if s := nearest(m[2], keys[m[3]]); s != "" {
			msg += fmt.Sprintf("; did you mean `%s`?", s)
		}
		msgs = append(msgs, msg)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// yamlKeysByType maps each struct type reachable from t (by the name yaml.v3
// prints, e.g. "main.NATSConfig") to its YAML keys.
func yamlKeysByType(t reflect.Type) map[string][]string {
	out := map[string][]string{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		if _, done := out[t.String()]; done {
			return
		}
		out[t.String()] = nil
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			out[t.String()] = append(out[t.String()], name)
			walk(f.Type)
		}
	}
	walk(t)
	return out
}

// nearest returns the candidate closest to s by edit distance, when it is
// close enough to be a likely typo.
func nearest(s string, candidates []string) string {
	best, bestD := "", len(s)/2+2
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
