package alert_test

import (
	"testing"
	"time"

	"concierge/alert"
	"concierge/checkin"
)

func TestFormatAlert(t *testing.T) {
	at := time.Date(2025, 3, 14, 2, 42, 7, 0, time.UTC)
	shanghai := time.FixedZone("CST", 8*3600)
	a := alert.Alert{Message: alert.Message{
		Time: at, Camera: "door-1",
		Customer:            alert.Customer{ID: "C1001", DisplayName: "王*", FormOfAddress: "王女士"},
		Tier:                &alert.Tier{LevelName: "五星", VIP: true},
		RelationshipManager: "Li",
		Match:               alert.Match{Distance: 0.3149},
	}}
	if got, want := a.Line(shanghai), "10:42:07  door-1  VIP 五星  王女士  (C1001)  RM Li  distance 0.31"; got != want {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
	a.Tier, a.RelationshipManager, a.Customer.FormOfAddress = nil, "", ""
	a.RiskFlags = []checkin.RiskFlag{{Kind: "credit", Reason: "C9"}}
	if got, want := a.Line(time.UTC), "02:42:07  door-1  王*  (C1001)  distance 0.31  RISK credit:C9"; got != want {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
}

func TestFormatEvent(t *testing.T) {
	at := time.Date(2025, 3, 14, 2, 43, 7, 0, time.UTC)
	for _, tc := range []struct {
		e    alert.Event
		want string
	}{
		{alert.Event{Claim: &alert.Claim{AlertID: "A1", By: "Li", At: at}}, "02:43:07  claimed  A1  by Li"},
		{alert.Event{Escalation: &alert.Escalation{AlertID: "A1", CustomerID: "C1", After: alert.Seconds(time.Minute), At: at}},
			"02:43:07  ESCALATED  A1  (C1)  unclaimed for 60s"},
		{alert.Event{Escalation: &alert.Escalation{AlertID: "A1", CustomerID: "C1", After: alert.Seconds(5 * time.Minute), At: at}},
			"02:43:07  ESCALATED  A1  (C1)  unclaimed for 5m"},
		{alert.Event{Rejection: &alert.Rejection{AlertID: "A1", By: "Li", At: at}}, "02:43:07  withdrawn  A1  not this person, by Li"},
		{alert.Event{Rejection: &alert.Rejection{AlertID: "A1", By: "Li", Reason: "older", At: at}},
			"02:43:07  withdrawn  A1  not this person, by Li: older"},
	} {
		if got := tc.e.Line(time.UTC); got != tc.want {
			t.Errorf("\n got %q\nwant %q", got, tc.want)
		}
	}
	// The manager's copy of an escalated alert says so.
	a := alert.Alert{Message: alert.Message{Time: at, Camera: "door-1", Customer: alert.Customer{ID: "C1", DisplayName: "王*"},
		Match: alert.Match{Distance: 0.3}, Escalated: &alert.Escalated{After: alert.Seconds(150 * time.Second), At: at}}}
	if got, want := a.Line(time.UTC), "02:43:07  door-1  王*  (C1)  distance 0.30  ESCALATED: unclaimed for 2m30s"; got != want {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
}
