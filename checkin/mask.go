package checkin

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Name-masking policies for screens in the lobby (checkin.name_mask).
const (
	MaskFull    = "full"    // the name as enrolled
	MaskSurname = "surname" // 王女士 → 王*, "Wang Xiaoming" → "Wang *"
	MaskInitial = "initial" // one character and a dot
)

// CheckNameMask refuses a policy MaskName does not know, so that a typo in
// the configuration does not fall back to the default silently.
func CheckNameMask(policy string) error {
	switch policy {
	case MaskFull, MaskSurname, MaskInitial:
		return nil
	}
	return fmt.Errorf("%q is not one of: %s, %s, %s", policy, MaskSurname, MaskInitial, MaskFull)
}

// MaskName returns the masking of a policy, for Service.Mask:
//   - MaskFull: the name as enrolled
//   - MaskSurname (and anything unknown): the first character of a Chinese
//     name or the first word of a Latin one, then "*"
//   - MaskInitial: one character and a dot
func MaskName(policy string) func(string) string {
	return func(name string) string {
		name = strings.TrimSpace(name)
		if name == "" {
			return ""
		}
		switch policy {
		case MaskFull:
			return name
		case MaskInitial:
			r, _ := utf8.DecodeRuneInString(name)
			return string(r) + "."
		}
		// CJK scripts start at U+2E80: there the first character is the
		// family name.
		if r, _ := utf8.DecodeRuneInString(name); r >= 0x2E80 {
			return string(r) + "*"
		}
		if i := strings.IndexByte(name, ' '); i > 0 {
			return name[:i] + " *"
		}
		r, _ := utf8.DecodeRuneInString(name)
		return string(r) + "*"
	}
}
