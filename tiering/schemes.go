package tiering

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"concierge"
)

//go:embed presets/*.yaml
var presetFS embed.FS

// Schemes is the set of schemes a box knows: the shipped presets plus the
// operator's files. It is read-only once loaded and safe for concurrent use.
type Schemes struct {
	// Default is the scheme for customers whose snapshots name none.
	Default    string
	byName     map[string]*Scheme
	indicators map[string]Indicator
}

// LoadSchemes loads the presets, then every *.yaml and *.yml file in dir
// (if dir is not empty). An operator file may replace a preset of the same
// name, which is how a bank adjusts thresholds (a private-banking line of 8M
// instead of 6M) without code. defaultScheme "" means DefaultSchemeName.
func LoadSchemes(dir, defaultScheme string) (*Schemes, error) {
	s := &Schemes{byName: map[string]*Scheme{}}
	presets, err := fs.Glob(presetFS, "presets/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("load presets: %w", err)
	}
	for _, p := range presets {
		data, err := presetFS.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load presets: %w", err)
		}
		sc, err := ParseScheme(p, data)
		if err != nil {
			return nil, err
		}
		sc.Source = "preset"
		s.byName[sc.Name] = sc
	}
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("load schemes: %w", err)
		}
		fromDir := map[string]string{}
		for _, e := range entries {
			ext := filepath.Ext(e.Name())
			if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
				continue
			}
			path := filepath.Join(dir, e.Name())
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("load schemes: %w", err)
			}
			sc, err := ParseScheme(path, data)
			if err != nil {
				return nil, err
			}
			if other, dup := fromDir[sc.Name]; dup {
				return nil, &SchemeError{File: path, Reason: fmt.Sprintf("scheme %q is also defined in %s", sc.Name, other)}
			}
			fromDir[sc.Name] = path
			s.byName[sc.Name] = sc
		}
	}
	if err := s.buildIndicators(); err != nil {
		return nil, err
	}
	if defaultScheme == "" {
		defaultScheme = DefaultSchemeName
	}
	if _, ok := s.byName[defaultScheme]; !ok {
		return nil, fmt.Errorf("tiering.scheme: unknown scheme %q (known: %s)", defaultScheme, strings.Join(s.Names(), ", "))
	}
	s.Default = defaultScheme
	return s, nil
}

// buildIndicators merges the schemes' indicator declarations; two schemes
// may share an indicator only if they agree on its unit, because the CSV
// import validates one column one way.
func (s *Schemes) buildIndicators() error {
	s.indicators = map[string]Indicator{}
	for _, b := range BaseIndicators {
		s.indicators[b.Name] = b
	}
	for _, name := range s.Names() {
		sc := s.byName[name]
		for _, in := range sc.Indicators {
			if prev, ok := s.indicators[in.Name]; ok && prev.Unit != in.Unit {
				return &SchemeError{File: sc.Source, Reason: fmt.Sprintf("indicator %q has unit %s here but %s in another scheme", in.Name, in.Unit, prev.Unit)}
			}
			if _, ok := s.indicators[in.Name]; !ok {
				s.indicators[in.Name] = in
			}
		}
	}
	return nil
}

// Names lists the scheme names in order.
func (s *Schemes) Names() []string {
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// List returns the schemes ordered by name.
func (s *Schemes) List() []*Scheme {
	var out []*Scheme
	for _, n := range s.Names() {
		out = append(out, s.byName[n])
	}
	return out
}

// Assigned is the status of a tier an operator set by hand (Scheme.Assigned)
// in scheme at level; ENOTFOUND when that scheme is not loaded or the
// level is no longer one of it.
func (s *Schemes) Assigned(customerID, scheme, level string) (Status, error) {
	sc, ok := s.Get(scheme)
	if !ok {
		return Status{}, concierge.Errorf(concierge.ENOTFOUND, "customer %q: tier set at enrollment in scheme %q, which is not loaded", customerID, scheme)
	}
	st, ok := sc.Assigned(customerID, level)
	if !ok {
		return Status{}, concierge.Errorf(concierge.ENOTFOUND, "customer %q: tier set at enrollment is %q, no longer a level of %s", customerID, level, scheme)
	}
	return st, nil
}

// Get returns the scheme named name.
func (s *Schemes) Get(name string) (*Scheme, bool) {
	sc, ok := s.byName[name]
	return sc, ok
}

// Resolve returns the scheme named name, or the default for "".
func (s *Schemes) Resolve(name string) (*Scheme, error) {
	if name == "" {
		name = s.Default
	}
	sc, ok := s.byName[name]
	if !ok {
		return nil, concierge.Errorf(concierge.EINVALID, "unknown tier scheme %q (known: %s)", name, strings.Join(s.Names(), ", "))
	}
	return sc, nil
}

// Indicator returns a known indicator: a base one or one a scheme declares.
func (s *Schemes) Indicator(name string) (Indicator, bool) {
	in, ok := s.indicators[name]
	return in, ok
}

// IndicatorValue parses value as the named indicator's (Indicator.Check):
// EINVALID for an unknown indicator, a value that is no number or one the
// indicator's unit refuses.
func (s *Schemes) IndicatorValue(name, value string) (Decimal, error) {
	in, ok := s.Indicator(name)
	if !ok {
		return 0, concierge.Errorf(concierge.EINVALID, "unknown indicator %q", name)
	}
	raw := strings.TrimSpace(value)
	d, err := ParseDecimal(raw)
	if err != nil {
		return 0, concierge.Errorf(concierge.EINVALID, "%s %q: %w", name, value, err)
	}
	if code, reason := in.Check(d, raw); code != "" {
		return 0, concierge.Errorf(concierge.EINVALID, "%s", reason)
	}
	return d, nil
}

// Indicators lists every known indicator, base ones first.
func (s *Schemes) Indicators() []Indicator {
	out := slices.Clone(BaseIndicators)
	var extra []Indicator
	for _, in := range s.indicators {
		if !slices.ContainsFunc(BaseIndicators, func(b Indicator) bool { return b.Name == in.Name }) {
			extra = append(extra, in)
		}
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].Name < extra[j].Name })
	return append(out, extra...)
}
