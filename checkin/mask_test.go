package checkin_test

import (
	"testing"

	"concierge/checkin"
)

func TestMaskName(t *testing.T) {
	for _, c := range []struct{ policy, name, want string }{
		{checkin.MaskSurname, "王女士", "王*"},
		{checkin.MaskSurname, "Wang Xiaoming", "Wang *"},
		{checkin.MaskSurname, "Madonna", "M*"},
		{checkin.MaskSurname, "  ", ""},
		{checkin.MaskInitial, "王女士", "王."},
		{checkin.MaskInitial, " Wang Xiaoming", "W."},
		{checkin.MaskFull, " Wang Xiaoming ", "Wang Xiaoming"},
	} {
		if got := checkin.MaskName(c.policy)(c.name); got != c.want {
			t.Errorf("%s(%q) = %q, want %q", c.policy, c.name, got, c.want)
		}
	}
	for _, p := range []string{checkin.MaskFull, checkin.MaskSurname, checkin.MaskInitial} {
		if err := checkin.CheckNameMask(p); err != nil {
			t.Error(err)
		}
	}
	if err := checkin.CheckNameMask("surnames"); err == nil {
		t.Error("unknown policy accepted")
	}
}
