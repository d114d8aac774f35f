package tiering

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/text/language"
)

// translations checks a map of texts by language tag, as schemes give
// level names, greetings and default addresses in further languages, and
// returns it with canonical tags ("EN" becomes "en").
func translations(m map[string]string) (map[string]string, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		tag, err := language.Parse(k)
		if err != nil {
			return nil, fmt.Errorf("%q is not a language tag such as en or zh-Hant", k)
		}
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("%s: empty text", k)
		}
		out[tag.String()] = v
	}
	return out, nil
}

// pickLanguage finds lang's text in m: the exact tag first, then the tag's
// base language, so a customer recorded as en-GB gets the scheme's "en".
func pickLanguage(m map[string]string, lang string) (string, bool) {
	if len(m) == 0 || lang == "" {
		return "", false
	}
	tag, err := language.Parse(lang)
	if err != nil {
		return "", false
	}
	if v, ok := m[tag.String()]; ok {
		return v, true
	}
	base, _ := tag.Base()
	v, ok := m[base.String()]
	return v, ok
}

// NameIn is the level's name in language lang, or Name when the scheme
// gives none in it.
func (l Level) NameIn(lang string) string {
	if n, ok := pickLanguage(l.Names, lang); ok {
		return n
	}
	return l.Name
}

// CustomerLevelName is the level's name in the customer's own language
// (Language), as the lobby's badge shows it beside a greeting in that
// language; LevelName when the scheme has no name in it.
func (s Status) CustomerLevelName() string { return s.LevelNameIn(s.Language) }

// Assigned is the status of a customer whose level an operator set by hand
// (found by id or name), for customers with no core-banking data yet: the
// level's service, and greetings with the scheme's default address, as for
// an imported customer with no form of address on record.
func (s *Scheme) Assigned(customerID, level string) (Status, bool) {
	l, ok := s.LevelNamed(level)
	if !ok {
		return Status{}, false
	}
	return Status{
		CustomerID:       customerID,
		Scheme:           s.Name,
		Level:            l.ID,
		LevelName:        l.Name,
		LevelNames:       l.Names,
		Rank:             slices.IndexFunc(s.Levels, func(x Level) bool { return x.ID == l.ID }),
		VIP:              l.VIP,
		ServiceLevel:     l.Service,
		defaultAddress:   s.DefaultAddress,
		defaultAddresses: s.DefaultAddresses,
	}, true
}
