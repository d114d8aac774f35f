package tiering

import (
	"strings"
	"testing"
)

// TestAssignedGreeting: a hand-set tier's greeting fills {address} with the
// scheme's default address, as an imported customer's would (the issue saw
// "“{address}您好…”" on a card).
func TestAssignedGreeting(t *testing.T) {
	s, _ := mustSchemes(t).Get("icbc-stars")
	st, ok := s.Assigned("C2002", "六星")
	if !ok || st.Level != "star6" || st.LevelName != "六星" || !st.VIP || st.Rank != 5 || st.ServiceLevel.Priority != PriorityHigh {
		t.Fatalf("Assigned by name = %+v, %v", st, ok)
	}
	if g := st.Greeting(); strings.Contains(g, "{") || !strings.HasPrefix(g, "尊敬的客户您好") {
		t.Errorf("greeting = %q", g)
	}
	if g := st.Staff().Greeting; strings.Contains(g, "{address}") {
		t.Errorf("staff view greeting = %q", g)
	}
	if _, ok := s.Assigned("C2002", "star9"); ok {
		t.Error("an unknown level was assigned")
	}
}

// TestGreetingLanguage: the greeting follows the customer's language where
// the scheme has one (a region tag falls back to its base language), with
// the default address in that language; level names are there for screens.
func TestGreetingLanguage(t *testing.T) {
	s, _ := mustSchemes(t).Get("icbc-stars")
	st, _ := s.Assigned("C1", "star6")
	for _, tc := range []struct{ lang, address, want string }{
		{"en", "", "Hello valued customer, welcome. Please have a seat in the VIP lounge."},
		{"en-GB", "Ms Wang", "Hello Ms Wang, welcome. Please have a seat in the VIP lounge."},
		{"zh-CN", "王女士", "王女士您好，欢迎光临，请到贵宾室稍坐"},
		{"fr", "", "尊敬的客户您好，欢迎光临，请到贵宾室稍坐"}, // no French: the scheme's own
		{"", "", "尊敬的客户您好，欢迎光临，请到贵宾室稍坐"},
	} {
		st.Language, st.FormOfAddress = tc.lang, tc.address
		if g := st.Greeting(); g != tc.want {
			t.Errorf("%q: greeting %q, want %q", tc.lang, g, tc.want)
		}
	}
	if n := st.LevelNameIn("en-US"); n != "Six stars" {
		t.Errorf("English level name = %q", n)
	}
	if n := st.LevelNameIn("de"); n != "六星" {
		t.Errorf("level name without a German one = %q", n)
	}
	if l, _ := s.Level("star5"); l.NameIn("en") != "Five stars" {
		t.Errorf("Level.NameIn = %q", l.NameIn("en"))
	}
	// Through a profile: an imported customer whose language is en.
	snaps := history(t, "C7", span{"2024-01", "2024-02", []string{"points", "2500"}})
	for i := range snaps {
		snaps[i].Attributes = Attributes{Language: "en"}
	}
	p, err := NewProfile(mustSchemes(t), "C7", snaps, "")
	if err != nil {
		t.Fatal(err)
	}
	feb, _ := p.On(day(t, "2024-02-15"))
	if feb.Greeting() != "Hello valued customer, welcome." || feb.Staff().LevelNames["en"] != "Five stars" {
		t.Errorf("imported en customer: greeting %q, names %v", feb.Greeting(), feb.Staff().LevelNames)
	}
	// The badge beside that greeting is in the customer's language too.
	for lang, want := range map[string]string{"en": "Five stars", "en-GB": "Five stars", "zh": "五星", "": "五星", "fr": "五星"} {
		feb.Language = lang
		if n := feb.CustomerLevelName(); n != want {
			t.Errorf("%q: badge %q, want %q", lang, n, want)
		}
	}
}

// TestTranslationsValidated: a scheme's language keys must be tags, and
// texts non-empty; the error names the file and line.
func TestTranslationsValidated(t *testing.T) {
	base := "name: t\nlevels:\n  - id: b\n    name: B\n  - id: a\n    name: A\n    qualify: [{indicator: points, at_least: 1}]\n"
	for _, tc := range []struct{ yaml, want string }{
		{base + "    names: {english!: A}\n", `names: "english!" is not a language tag`},
		{base + "    service: {priority: low, greeting: hi, greetings: {en: \"\"}}\n", "greetings: en: empty text"},
		{"default_addresses: {\"x y\": z}\n" + base, "default_addresses"},
	} {
		_, err := ParseScheme("t.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "t.yaml:") {
			t.Errorf("%q: err = %v, want %q with a line", tc.yaml, err, tc.want)
		}
	}
}
