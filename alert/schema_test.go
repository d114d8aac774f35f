package alert_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"concierge/alert"
	"concierge/checkin"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

// schema is the subset of JSON Schema (draft 2020-12) that
// docs/arrival.v1.schema.json uses. Keywords outside it make the test fail
// rather than be ignored, so the file cannot drift past what is checked.
type schema struct {
	Type       string             `json:"type"`
	Required   []string           `json:"required"`
	Properties map[string]*schema `json:"properties"`
	Items      *schema            `json:"items"`
	Const      any                `json:"const"`
	Enum       []any              `json:"enum"`
	Format     string             `json:"format"`
	MinLength  *int               `json:"minLength"`
	MaxLength  *int               `json:"maxLength"`
	Minimum    *float64           `json:"minimum"`
}

var schemaKeywords = []string{"$schema", "$id", "title", "description",
	"type", "required", "properties", "items", "const", "enum", "format", "minLength", "maxLength", "minimum"}

func loadSchema(tb testing.TB) *schema {
	tb.Helper()
	return loadSchemaFile(tb, "../docs/arrival.v1.schema.json")
}

func loadSchemaFile(tb testing.TB, path string) *schema {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		tb.Fatal(err)
	}
	if err := knownKeywords(generic, "#"); err != nil {
		tb.Fatal(err)
	}
	var s schema
	if err := json.Unmarshal(raw, &s); err != nil {
		tb.Fatal(err)
	}
	return &s
}

// knownKeywords walks a schema document and rejects keywords the checker
// does not implement.
func knownKeywords(v any, at string) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: schema is not an object", at)
	}
	for k, sub := range obj {
		if !slices.Contains(schemaKeywords, k) {
			return fmt.Errorf("%s: keyword %q not supported by the test's checker", at, k)
		}
		switch k {
		case "properties":
			for name, p := range sub.(map[string]any) {
				if err := knownKeywords(p, at+"/properties/"+name); err != nil {
					return err
				}
			}
		case "items":
			if err := knownKeywords(sub, at+"/items"); err != nil {
				return err
			}
		}
	}
	return nil
}

// validate checks v (decoded with encoding/json into any) against s.
func (s *schema) validate(v any, at string) error {
	if s.Type != "" {
		if err := checkType(s.Type, v); err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
	}
	if s.Const != nil && fmt.Sprint(v) != fmt.Sprint(s.Const) {
		return fmt.Errorf("%s: %v, want const %v", at, v, s.Const)
	}
	if s.Enum != nil && !slices.ContainsFunc(s.Enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		return fmt.Errorf("%s: %v not in %v", at, v, s.Enum)
	}
	switch v := v.(type) {
	case string:
		n := len([]rune(v))
		if s.MinLength != nil && n < *s.MinLength || s.MaxLength != nil && n > *s.MaxLength {
			return fmt.Errorf("%s: length %d out of bounds", at, n)
		}
		if s.Format == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				return fmt.Errorf("%s: not an RFC 3339 date-time: %w", at, err)
			}
		}
	case float64:
		if s.Minimum != nil && v < *s.Minimum {
			return fmt.Errorf("%s: %v below minimum %v", at, v, *s.Minimum)
		}
	case map[string]any:
		for _, r := range s.Required {
			if _, ok := v[r]; !ok {
				return fmt.Errorf("%s: required property %q missing", at, r)
			}
		}
		names := make([]string, 0, len(v))
		for k := range v {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if p := s.Properties[k]; p != nil {
				if err := p.validate(v[k], at+"/"+k); err != nil {
					return err
				}
			}
		}
	case []any:
		if s.Items != nil {
			for i, e := range v {
				if err := s.Items.validate(e, fmt.Sprintf("%s/%d", at, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func checkType(t string, v any) error {
	ok := false
	switch t {
	case "object":
		_, ok = v.(map[string]any)
	case "array":
		_, ok = v.([]any)
	case "string":
		_, ok = v.(string)
	case "boolean":
		_, ok = v.(bool)
	case "number":
		_, ok = v.(float64)
	case "integer":
		f, isNum := v.(float64)
		ok = isNum && f == math.Trunc(f)
	case "null":
		ok = v == nil
	default:
		return fmt.Errorf("type %q not supported by the test's checker", t)
	}
	if !ok {
		return fmt.Errorf("%v (%T) is not of type %s", v, v, t)
	}
	return nil
}

func validateJSON(s *schema, data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	return s.validate(v, "#")
}

// Every message the publisher puts on the wire matches the published
// schema: staff and manager messages, with and without a tier.
func TestMessagesMatchSchema(t *testing.T) {
	s := loadSchema(t)
	srv := testenv.RunNATS(t)
	nc, _ := connect(t, srv.ClientURL())
	all := collect(t, nc, "concierge.b001.>")
	p := openPublisher(t, srv.ClientURL(), testdb.Open(t), nil)
	ctx := context.Background()

	full := vipArrival(1)
	bare := vipArrival(2)
	bare.Tier, bare.DisplayName, bare.FirstSeen = nil, "", time.Time{}
	noService := vipArrival(3)
	noService.Tier.Service = nil
	tierTimes := vipArrival(4)
	tierTimes.Tier.Service = &checkin.ServiceLevel{Priority: 1, EscalateAfter: 90 * time.Second}
	never := vipArrival(5)
	never.Tier.Service = &checkin.ServiceLevel{Priority: 1, EscalateAfter: -1}
	for _, n := range []struct {
		a    checkin.Arrival
		risk []checkin.RiskFlag
	}{{full, riskFlags}, {bare, nil}, {noService, riskFlags}, {tierTimes, nil}, {never, nil}} {
		if err := p.Notify(ctx, n.a, n.risk); err != nil {
			t.Fatal(err)
		}
	}
	msgs := all(12)
	// The escalator's manager copy of an unclaimed alert.
	esc, err := alert.NewEscalator(alert.EscalatorConfig{Branch: branch, Conn: connConfig(srv.ClientURL()),
		Tick: time.Hour, Now: func() time.Time { return tierTimes.At.Add(time.Minute) }, Lookback: 365 * 24 * time.Hour, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := esc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer esc.Close()
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if esc.Pending() == 0 {
			return errors.New("escalator has not read the alerts")
		}
		return nil
	})
	if _, err := esc.Check(ctx); err != nil {
		t.Fatal(err)
	}
	msgs = all(len(msgs) + 1)
	mgr := msgs[len(msgs)-1]
	if mgr.Subject != alert.Subject(branch, alert.FeedManager) || !strings.Contains(string(mgr.Data), `"escalated":{"after_s":60,"time":`) {
		t.Errorf("escalated copy %s: %s", mgr.Subject, mgr.Data)
	}
	for _, want := range []string{`"escalate_after_s":90`, `"escalate_after_s":0`} {
		if !slices.ContainsFunc(msgs, func(m *nats.Msg) bool { return strings.Contains(string(m.Data), want) }) {
			t.Errorf("no message with %s", want)
		}
	}
	for _, m := range msgs {
		if err := validateJSON(s, m.Data); err != nil {
			t.Errorf("%s: %v\n%s", m.Subject, err, m.Data)
		}
	}
	if !strings.Contains(string(msgs[1].Data), `"risk_flags":[{"kind":"aml","reason":"R042"}]`) {
		t.Errorf("manager message: %s", msgs[1].Data)
	}
}

// The checker must reject what the schema forbids, or the test above
// proves nothing.
func TestSchemaCheckerRejects(t *testing.T) {
	s := loadSchema(t)
	good, err := json.Marshal(alert.NewMessage(vipArrival(1), time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := validateJSON(s, good); err != nil {
		t.Fatalf("good message rejected: %v", err)
	}
	for name, edit := range map[string]func(m map[string]any){
		"no id":             func(m map[string]any) { delete(m, "id") },
		"short id":          func(m map[string]any) { m["id"] = "01ABC" },
		"other schema":      func(m map[string]any) { m["schema"] = "concierge.arrival.v2" },
		"local time":        func(m map[string]any) { m["time"] = "10:42:07" },
		"votes not integer": func(m map[string]any) { m["match"].(map[string]any)["votes"] = 1.5 },
		"vip a string":      func(m map[string]any) { m["tier"].(map[string]any)["vip"] = "yes" },
		"no customer id":    func(m map[string]any) { delete(m["customer"].(map[string]any), "id") },
		"bad risk kind":     func(m map[string]any) { m["risk_flags"] = []any{map[string]any{"kind": "gossip", "reason": "x"}} },
		"priority zero":     func(m map[string]any) { m["service_level"].(map[string]any)["priority"] = 0 },
		"escalate after -1": func(m map[string]any) { m["service_level"].(map[string]any)["escalate_after_s"] = -1 },
		"escalate after 1m": func(m map[string]any) { m["service_level"].(map[string]any)["escalate_after_s"] = "1m" },
		"escalated no time": func(m map[string]any) { m["escalated"] = map[string]any{"after_s": 60} },
		"escalated bad time": func(m map[string]any) {
			m["escalated"] = map[string]any{"after_s": 60, "time": "yesterday"}
		},
	} {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		data, _ := json.Marshal(m)
		if err := validateJSON(s, data); err == nil {
			t.Errorf("%s: accepted %s", name, data)
		}
	}
	if err := knownKeywords(map[string]any{"type": "object", "oneOf": []any{}}, "#"); err == nil {
		t.Error("unsupported keyword accepted")
	}
	if err := checkType("tuple", nil); err == nil {
		t.Error("unsupported type accepted")
	}
}

// Cards as Cards publishes them match docs/verify.v1.schema.json, a
// confirmed card's arrival (verified_by) matches the arrival schema, and
// the checker rejects a card without its face's expiry or its customer.
func TestCardsMatchSchema(t *testing.T) {
	s := loadSchemaFile(t, "../docs/verify.v1.schema.json")
	srv := testenv.RunNATS(t)
	nc, _ := connect(t, srv.ClientURL())
	got := collect(t, nc, alert.Subject(branch, alert.FeedVerify))
	cards, err := alert.NewCards(alert.CardsConfig{Branch: branch, Conn: connConfig(srv.ClientURL()), Logger: testLogger(),
		Confirmed: func(context.Context, checkin.Card, string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := cards.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer cards.Close()
	full := testCard(1, time.Now())
	bare := testCard(2, time.Now())
	bare.Tier, bare.DisplayName, bare.FirstSeen, bare.Thumbnail, bare.Votes = nil, "", time.Time{}, nil, 0
	for _, c := range []checkin.Card{full, bare} {
		if err := cards.NotifyCard(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range got(2) {
		if err := validateJSON(s, m.Data); err != nil {
			t.Errorf("%v\n%s", err, m.Data)
		}
	}
	a := vipArrival(1)
	a.VerifiedBy = "Zhang"
	data, _ := json.Marshal(alert.NewMessage(a, time.Minute))
	if err := validateJSON(loadSchema(t), data); err != nil || !strings.Contains(string(data), `"verified_by":"Zhang"`) {
		t.Errorf("confirmed arrival: %v\n%s", err, data)
	}
	good, _ := json.Marshal(alert.NewCardMessage(full, time.Minute))
	for name, edit := range map[string]func(m map[string]any){
		"no expiry":      func(m map[string]any) { delete(m, "expires_at") },
		"arrival schema": func(m map[string]any) { m["schema"] = alert.Schema },
		"no customer id": func(m map[string]any) { delete(m["customer"].(map[string]any), "id") },
	} {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		data, _ := json.Marshal(m)
		if err := validateJSON(s, data); err == nil {
			t.Errorf("%s: accepted %s", name, data)
		}
	}
}
