package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"concierge"
)

func TestLobbySignIn(t *testing.T) {
	env := newLobbyEnv(t, nil)

	anon := env.client()
	resp, data := anon.do("GET", "me", nil)
	want(t, resp, data, http.StatusUnauthorized, concierge.EUNAUTHORIZED)
	resp, data = anon.do("GET", "events", nil)
	want(t, resp, data, http.StatusUnauthorized, concierge.EUNAUTHORIZED)
	resp, data = anon.do("POST", "claim", map[string]string{"alert_id": "01J"})
	want(t, resp, data, http.StatusUnauthorized, concierge.EUNAUTHORIZED)

	for _, tc := range []struct {
		name string
		body map[string]string
	}{
		{"wrong password", map[string]string{"name": "Zhang", "password": "correct horse"}},
		{"unknown name", map[string]string{"name": "Wang", "password": zhangPassword}},
		{"someone else's password", map[string]string{"name": "李经理", "password": zhangPassword}},
		{"wrong token", map[string]string{"token": tabletToken + "x"}},
		{"password of a token-only device", map[string]string{"name": "lobby tablet", "password": tabletToken}},
	} {
		c := env.client()
		resp, data := c.do("POST", "signin", tc.body)
		want(t, resp, data, http.StatusUnauthorized, concierge.EUNAUTHORIZED)
		if len(resp.Cookies()) != 0 {
			t.Errorf("%s: cookie set on a refused sign-in", tc.name)
		}
		resp, data = c.do("GET", "me", nil)
		want(t, resp, data, http.StatusUnauthorized, concierge.EUNAUTHORIZED)
	}
	// The failures above came from one address: reset it for what follows.
	env.clock.Advance(5 * time.Minute)

	for _, tc := range []struct {
		who  string
		body map[string]string
	}{
		{"Zhang", map[string]string{"name": "Zhang", "password": zhangPassword}},
		{"李经理", map[string]string{"name": " 李经理 ", "password": liPassword}}, // bcrypt; the name as typed
		{"lobby tablet", map[string]string{"token": tabletToken}},
	} {
		c := env.client()
		resp, data := c.do("POST", "signin", tc.body)
		want(t, resp, data, http.StatusOK, "")
		ck := resp.Cookies()
		if len(ck) != 1 || ck[0].Name != sessionCookie || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode ||
			ck[0].Path != "/lobby/" || ck[0].MaxAge < int((12*time.Hour).Seconds())-2 || ck[0].MaxAge > int((12*time.Hour).Seconds()) {
			t.Fatalf("%s: session cookie %+v", tc.who, ck)
		}
		resp, data = c.do("GET", "me", nil)
		want(t, resp, data, http.StatusOK, "")
		if !strings.Contains(string(data), `"name":"`+tc.who+`"`) {
			t.Fatalf("me: %s, want %s", data, tc.who)
		}
	}

	// A session ends after its TTL.
	c := env.client()
	c.signIn("Zhang", zhangPassword)
	env.clock.Advance(12*time.Hour - time.Minute)
	resp, data = c.do("GET", "me", nil)
	want(t, resp, data, http.StatusOK, "")
	env.clock.Advance(time.Minute)
	resp, data = c.do("GET", "me", nil)
	want(t, resp, data, http.StatusUnauthorized, concierge.EUNAUTHORIZED)
	if !strings.Contains(string(data), "expired") {
		t.Errorf("expired session: %s", data)
	}

	// Signing out drops the cookie.
	c = env.client()
	c.signIn("Zhang", zhangPassword)
	resp, data = c.do("POST", "signout", map[string]string{})
	want(t, resp, data, http.StatusNoContent, "")
	resp, data = c.do("GET", "me", nil)
	want(t, resp, data, http.StatusUnauthorized, concierge.EUNAUTHORIZED)
}

// A cookie is only as good as its MAC: a changed name, expiry or key, or
// a changed password, ends it.
func TestLobbySessionForgery(t *testing.T) {
	env := newLobbyEnv(t, nil)
	c := env.client()
	resp, data := c.do("POST", "signin", map[string]string{"name": "Zhang", "password": zhangPassword})
	want(t, resp, data, http.StatusOK, "")
	good := resp.Cookies()[0].Value
	parts := strings.Split(good, ".")
	tampered := map[string]string{
		"other name":  strings.Join([]string{parts[0], parts[1], "5p2O57uP55CG", parts[3]}, "."), // 李经理
		"later":       strings.Join([]string{parts[0], "9999999999", parts[2], parts[3]}, "."),
		"no mac":      strings.Join(parts[:3], "."),
		"garbage":     "x",
		"other field": strings.Join([]string{"2", parts[1], parts[2], parts[3]}, "."),
	}
	for name, v := range tampered {
		req, _ := http.NewRequest("GET", env.http.URL+"/lobby/me", nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: v})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s cookie: status %d", name, resp.StatusCode)
		}
	}

	// The same cookie against a lobby whose password for Zhang changed,
	// or whose key changed: refused.
	r, _ := http.NewRequest("GET", "/lobby/me", nil)
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: good})
	check := func(staff []Staff, key string) error {
		s := &sessions{key: []byte(key), ttl: time.Hour, byName: map[string]*credential{}, now: env.clock.Now}
		for _, st := range staff {
			s.add(newCredential(st))
		}
		_, err := s.check(r)
		return err
	}
	key := strings.Repeat("k", MinSessionKeyLen)
	if err := check([]Staff{{Name: "Zhang", Password: zhangPassword}}, key); err != nil {
		t.Fatalf("same password and key: %v", err)
	}
	if err := check([]Staff{{Name: "Zhang", Password: "a new password"}}, key); err == nil {
		t.Error("cookie still valid after the password changed")
	}
	if err := check([]Staff{{Name: "Zhang", Password: zhangPassword}}, strings.Repeat("j", MinSessionKeyLen)); err == nil {
		t.Error("cookie valid under another key")
	}
	if err := check(nil, key); err == nil {
		t.Error("cookie valid after the person was removed")
	}
}

// Failed sign-ins lock an address, and a name, out for a while; even the
// right password waits.
func TestLobbySignInRateLimit(t *testing.T) {
	env := newLobbyEnv(t, nil)
	c := env.client()
	for i := 0; i < 5; i++ {
		resp, data := c.do("POST", "signin", map[string]string{"name": "Zhang", "password": "guess"})
		want(t, resp, data, http.StatusUnauthorized, concierge.EUNAUTHORIZED)
	}
	resp, data := c.do("POST", "signin", map[string]string{"name": "Zhang", "password": zhangPassword})
	want(t, resp, data, http.StatusTooManyRequests, concierge.EUNAUTHORIZED)
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
	// Tokens from the same address wait too.
	resp, data = c.do("POST", "signin", map[string]string{"token": tabletToken})
	want(t, resp, data, http.StatusTooManyRequests, concierge.EUNAUTHORIZED)

	env.clock.Advance(5 * time.Minute)
	c.signIn("Zhang", zhangPassword)
}

func TestLimiterKeys(t *testing.T) {
	clock := &lobbyClock{}
	l := newLimiter(2, time.Minute, clock.Now)
	l.fail("addr:a", "name:x")
	if b, _ := l.blocked("addr:a"); b {
		t.Fatal("blocked after one failure")
	}
	l.fail("addr:b", "name:x")
	if b, _ := l.blocked("addr:c", "name:x"); !b {
		t.Fatal("a name guessed from two addresses is not blocked")
	}
	if b, _ := l.blocked("addr:a"); b {
		t.Fatal("address a blocked after one failure of its own")
	}
	l.reset("name:x")
	if b, _ := l.blocked("name:x"); b {
		t.Fatal("still blocked after reset")
	}
	l.fail("addr:a")
	if b, until := l.blocked("addr:a"); !b || until.Sub(clock.Now()) > time.Minute {
		t.Fatalf("addr:a blocked %v until %v", b, until)
	}
	clock.Advance(time.Minute)
	if b, _ := l.blocked("addr:a"); b {
		t.Fatal("blocked after the window")
	}
}

func TestValidateStaff(t *testing.T) {
	for _, tc := range []struct {
		staff []Staff
		want  string
	}{
		{[]Staff{{Name: "", Password: "longenough"}}, "staff[0].name"},
		{[]Staff{{Name: " Zhang", Password: "longenough"}}, "staff[0].name"},
		{[]Staff{{Name: "Zhang", Password: "longenough"}, {Name: "Zhang", Token: tabletToken}}, "duplicate"},
		{[]Staff{{Name: "Zhang"}}, "password or a token"},
		{[]Staff{{Name: "Zhang", Password: "short"}}, "at least 8"},
		{[]Staff{{Name: "Zhang", Token: "short"}}, "staff[0].token"},
		{[]Staff{{Name: "Zhang", Password: "$2a$10$notahash"}}, "bcrypt"},
	} {
		err := ValidateStaff(tc.staff)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.staff, err, tc.want)
		}
	}
	if err := ValidateStaff([]Staff{{Name: "Zhang", Password: "longenough", Token: tabletToken}}); err != nil {
		t.Error(err)
	}
}
