package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

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
	if b, _ := l.blocked("addr:a", "name:x"); b {
		t.Fatal("blocked after one failure")
	}
	l.fail("addr:a", "name:x")
	if b, _ := l.blocked("addr:a", "name:y"); !b {
		t.Fatal("an address that failed twice may go on guessing other names")
	}
	// Two addresses guessing one name slow it down; they do not lock it.
	l.fail("addr:b", "name:z")
	l.fail("addr:c", "name:z")
	b, until := l.blocked("addr:d", "name:z")
	if !b || until.Sub(clock.Now()) > nameSlowdown {
		t.Fatalf("name z from a fresh address: blocked %v until %v, want a slowdown of at most %v", b, until, nameSlowdown)
	}
	clock.Advance(nameSlowdown)
	if b, _ := l.blocked("addr:d", "name:z"); b {
		t.Fatal("name z still blocked from a fresh address after the slowdown")
	}
	// A success resets the name and the pair, not the address.
	l.reset("addr:a", "name:x")
	if b, _ := l.blocked("addr:a", "name:x"); !b {
		t.Fatal("a good password reset its address's failures")
	}
	clock.Advance(time.Minute)
	if b, _ := l.blocked("addr:a", "name:x"); b {
		t.Fatal("blocked after the window")
	}
}

// A table full of live lockouts still tracks a new address: the old
// limiter stopped counting there, so the 10,001st address guessed freely.
func TestLimiterFullTable(t *testing.T) {
	clock := &lobbyClock{}
	l := newLimiter(3, time.Hour, clock.Now)
	for i := 0; i < maxLimiterKeys; i++ {
		l.fail(fmt.Sprintf("addr:10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	if n := l.size(); n != maxLimiterKeys {
		t.Fatalf("%d keys, want %d", n, maxLimiterKeys)
	}
	clock.Advance(time.Second)
	for i := 0; i < 3; i++ {
		l.fail("addr:attacker", "name:Zhang")
	}
	if b, _ := l.blocked("addr:attacker", "name:Li"); !b {
		t.Fatal("a new address is not tracked once the table is full")
	}
	if n := l.size(); n > maxLimiterKeys+2 {
		t.Fatalf("%d keys: memory is not bounded", n)
	}
	// The oldest went first; expired keys go before any live one.
	l.mu.Lock()
	_, oldest := l.keys["addr:10.0.0.0"]
	_, newest := l.keys[fmt.Sprintf("addr:10.0.%d.%d", (maxLimiterKeys-1)>>8&255, (maxLimiterKeys-1)&255)]
	l.mu.Unlock()
	if oldest || !newest {
		t.Errorf("oldest kept %v, newest kept %v: eviction must drop the oldest", oldest, newest)
	}
	clock.Advance(time.Hour)
	l.fail("addr:late")
	if n := l.size(); n != 1 {
		t.Errorf("%d keys after every window ended, want 1", n)
	}
}

// signInFrom posts a sign-in to the lobby as if from addr.
func signInFrom(env *lobbyEnv, addr, name, password string) *httptest.ResponseRecorder {
	b, _ := json.Marshal(map[string]string{"name": name, "password": password})
	req := httptest.NewRequest("POST", "/lobby/signin", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = addr + ":50000"
	rec := httptest.NewRecorder()
	env.lobby.ServeHTTP(rec, req)
	return rec
}

// Wrong passwords typed under Zhang's name from one address lock that
// address out, not Zhang: Zhang signs in from the lobby tablet.
func TestLobbySignInNoLockoutByName(t *testing.T) {
	env := newLobbyEnv(t, nil)
	for i := 0; i < 5; i++ {
		if rec := signInFrom(env, "10.1.1.66", "Zhang", "guess"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	if rec := signInFrom(env, "10.1.1.66", "Zhang", zhangPassword); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("the guessing address is not locked out: %d %s", rec.Code, rec.Body)
	}
	if rec := signInFrom(env, "10.1.1.66", "李经理", liPassword); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("the guessing address may try other names: %d %s", rec.Code, rec.Body)
	}
	// From elsewhere Zhang waits at most the slowdown.
	env.clock.Advance(nameSlowdown)
	if rec := signInFrom(env, "10.1.1.20", "Zhang", zhangPassword); rec.Code != http.StatusOK {
		t.Fatalf("Zhang locked out from another address: %d %s", rec.Code, rec.Body)
	}
}

// Signing out revokes the session on the server: the cookie, replayed,
// is refused; another session of the same person lives on.
func TestLobbySignOutRevokes(t *testing.T) {
	env := newLobbyEnv(t, nil)
	a, b := env.client(), env.client()
	resp, data := a.do("POST", "signin", map[string]string{"name": "Zhang", "password": zhangPassword})
	want(t, resp, data, http.StatusOK, "")
	stolen := resp.Cookies()[0].Value
	b.signIn("Zhang", zhangPassword)

	resp, data = a.do("POST", "signout", map[string]string{})
	want(t, resp, data, http.StatusNoContent, "")
	req, _ := http.NewRequest("GET", env.http.URL+"/lobby/me", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: stolen})
	replay, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(replay.Body)
	replay.Body.Close()
	want(t, replay, body, http.StatusUnauthorized, concierge.EUNAUTHORIZED)

	resp, data = b.do("GET", "me", nil)
	want(t, resp, data, http.StatusOK, "")
}

// Verify is the one credential check for kiosks and terminals: roles, the
// same wrong-password answer for unknown names, the limiter per address.
func TestStaffDirectoryVerify(t *testing.T) {
	clock := &lobbyClock{}
	hash, err := bcrypt.GenerateFromPassword([]byte(liPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewStaffDirectory([]Staff{
		{Name: "Zhang", Password: zhangPassword},
		{Name: "李经理", Password: string(hash), Role: RoleManager},
		{Name: "Wu", Password: "supervisor-pw", Role: RoleSupervisor},
		{Name: "lobby tablet", Token: tabletToken},
	}, DirectoryConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name, pw  string
		role      Role
		supervise bool
	}{
		{"Zhang", zhangPassword, RoleStaff, false},
		{" 李经理 ", liPassword, RoleManager, true},
		{"Wu", "supervisor-pw", RoleSupervisor, true},
	} {
		s, err := d.Verify(ctx, tc.name, tc.pw, "10.0.0.1")
		if err != nil || s.Role != tc.role || s.Role.Supervises() != tc.supervise || s.Password != "" {
			t.Errorf("%s: %+v %v", tc.name, s, err)
		}
	}
	for _, tc := range [][2]string{{"Zhang", "wrong"}, {"Nobody", zhangPassword}, {"lobby tablet", tabletToken}, {"Zhang", ""}} {
		_, err := d.Verify(ctx, tc[0], tc[1], "10.0.0.2")
		if concierge.ErrorCode(err) != concierge.EUNAUTHORIZED {
			t.Errorf("%q/%q: %v, want unauthorized", tc[0], tc[1], err)
		}
	}
	for i := 0; i < 5; i++ {
		d.Verify(ctx, "Wu", "guess", "10.0.0.3")
	}
	_, err = d.Verify(ctx, "Wu", "supervisor-pw", "10.0.0.3")
	if concierge.ErrorCode(err) != concierge.EUNAUTHORIZED || !strings.Contains(err.Error(), "try again") {
		t.Fatalf("locked-out address: %v", err)
	}
	clock.Advance(nameSlowdown)
	if _, err := d.Verify(ctx, "Wu", "supervisor-pw", "10.0.0.4"); err != nil {
		t.Fatalf("Wu from another address: %v", err)
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
		{[]Staff{{Name: "Zhang", Password: "longenough", Role: "admin"}}, "staff[0].role"},
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

// An event stream already open when its session signs out ends at the
// next heartbeat with "expired": a signed-out tablet stops receiving
// alerts, faces included.
func TestLobbySignOutEndsOpenStreams(t *testing.T) {
	env := newLobbyEnv(t, func(c *LobbyConfig) { c.Heartbeat = 50 * time.Millisecond })
	c := env.client()
	c.signIn("Zhang", zhangPassword)
	events, _ := c.stream("")
	if ev := next(t, events, 5*time.Second); ev.Name != "hello" {
		t.Fatalf("first event %+v", ev)
	}
	resp, data := c.do("POST", "signout", map[string]string{})
	want(t, resp, data, http.StatusNoContent, "")
	for {
		ev := next(t, events, 5*time.Second)
		if ev.Name == "expired" {
			return
		}
		if ev.Name != "" {
			t.Fatalf("after sign-out the stream sent %+v", ev)
		}
	}
}
