package alert_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"concierge/alert"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

func openClaimer(tb testing.TB, url string) *alert.Claimer {
	tb.Helper()
	c, err := alert.NewClaimer(connConfig(url), branch, testLogger())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// A lobby screen reads arrivals and the feedback on them through one
// position: in the order they happened, and resumable after any of them.
func TestEventsAcrossFeeds(t *testing.T) {
	srv := testenv.RunNATS(t)
	p := openPublisher(t, srv.ClientURL(), testdb.Open(t), nil)
	ids := notifyN(t, p, 1, 2)
	_, js := connect(t, srv.ClientURL())
	ctx := context.Background()
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		return wantStream(ctx, js, alert.Subject(branch, alert.FeedVisit), ids)
	})
	c := openClaimer(t, srv.ClientURL())
	at := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	if err := c.Claim(ctx, ids[0], "Zhang", at); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Escalate(ctx, alert.Escalation{AlertID: ids[1], CustomerID: "C2", After: alert.Seconds(time.Minute), At: at}); err != nil || !ok {
		t.Fatalf("escalate: %v, %v", ok, err)
	}
	if ok, err := c.Escalate(ctx, alert.Escalation{AlertID: ids[1], CustomerID: "C2", At: at}); err != nil || ok {
		t.Fatalf("second escalation: %v, %v; want refused", ok, err)
	}
	if err := c.Reject(ctx, ids[1], "C2", "Li", "different person", at); err != nil {
		t.Fatal(err)
	}
	if err := c.Reject(ctx, ids[1], "C2", "Wang", "", at); !errors.Is(err, alert.ErrAlreadyRejected) {
		t.Fatalf("second rejection: %v", err)
	}
	if err := c.Reject(ctx, ids[1], "", "Wang", "", at); err == nil {
		t.Fatal("rejection without customer accepted")
	}

	s := openSubscriber(t, srv.ClientURL())
	feeds := []alert.Feed{alert.FeedArrival, alert.FeedClaim, alert.FeedEscalation, alert.FeedRejection}
	collect := func(start alert.Start, n int) []alert.Event {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var got []alert.Event
		for e, err := range s.Events(ctx, start, feeds...) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
			if len(got) == n {
				break
			}
		}
		return got
	}
	got := collect(alert.Start{All: true}, 5)
	var kinds []string
	for _, e := range got {
		switch {
		case e.Arrival != nil:
			kinds = append(kinds, "arrival "+e.Arrival.ID)
		case e.Claim != nil:
			kinds = append(kinds, "claim "+e.Claim.AlertID+" "+e.Claim.By)
		case e.Escalation != nil:
			kinds = append(kinds, fmt.Sprintf("escalation %s %s %v", e.Escalation.AlertID, e.Escalation.CustomerID, time.Duration(e.Escalation.After)))
		case e.Rejection != nil:
			kinds = append(kinds, "rejection "+e.Rejection.AlertID+" "+e.Rejection.By+" "+e.Rejection.Reason)
		}
	}
	want := fmt.Sprint([]string{"arrival " + ids[0], "arrival " + ids[1], "claim " + ids[0] + " Zhang",
		"escalation " + ids[1] + " C2 1m0s", "rejection " + ids[1] + " Li different person"})
	if fmt.Sprint(kinds) != want {
		t.Fatalf("events\n got %v\nwant %v", kinds, want)
	}
	if got[3].Feed != alert.FeedEscalation || got[3].Subject != "concierge.b001.arrival.escalated" {
		t.Errorf("escalation feed %q subject %q", got[3].Feed, got[3].Subject)
	}
	rest := collect(alert.Start{AfterSeq: got[2].Seq}, 2)
	if rest[0].Escalation == nil || rest[1].Rejection == nil {
		t.Fatalf("resumed at %d: %+v", got[2].Seq, rest)
	}
}
