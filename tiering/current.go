package tiering

import (
	"strings"

	"concierge"
)

// Assignment is a tier an operator set by hand at enrollment, with the
// language of the customer's consent: the only language on record for a
// customer without imported data.
type Assignment struct {
	Scheme, Level, Language string
}

// Current is the one rule for the tier staff see for a customer on day:
// the imported data's (p, nil without any) when it gives one by then,
// else the tier set by hand at enrollment (a, nil without one), in the
// consent's language; assigned says it is the latter. ENOTFOUND when
// neither gives a tier, or the hand-set tier's scheme or level is gone
// (Schemes.Assigned).
func (s *Schemes) Current(customerID string, p *Profile, a *Assignment, day Date) (st Status, assigned bool, err error) {
	if p != nil {
		if st, ok := p.On(day); ok {
			return st, false, nil
		}
	}
	if a == nil {
		return Status{}, false, concierge.Errorf(concierge.ENOTFOUND,
			"no tier data for customer %q (none imported, none set at enrollment)", customerID)
	}
	if st, err = s.Assigned(customerID, a.Scheme, a.Level); err != nil {
		return Status{}, false, err
	}
	st.Language = a.Language
	return st, true, nil
}

// Assign checks a tier an operator sets by hand: scheme is a loaded
// scheme ("" the default one), level one of its levels by id or name
// (Scheme.LevelNamed). The Assignment names them by scheme name and level
// id; EINVALID names what is wrong, with the scheme's levels.
func (s *Schemes) Assign(scheme, level string) (Assignment, error) {
	if scheme == "" {
		scheme = s.Default
	}
	sc, ok := s.Get(scheme)
	if !ok {
		return Assignment{}, concierge.Errorf(concierge.EINVALID, "tier scheme %q: no such scheme", scheme)
	}
	l, ok := sc.LevelNamed(level)
	if !ok {
		names := make([]string, len(sc.Levels))
		for i, l := range sc.Levels {
			names[i] = l.ID
		}
		return Assignment{}, concierge.Errorf(concierge.EINVALID, "tier %q: not a level of %s (%s)", level, scheme, strings.Join(names, ", "))
	}
	return Assignment{Scheme: sc.Name, Level: l.ID}, nil
}
