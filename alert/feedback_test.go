package alert_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"concierge"
	"concierge/alert"
	"concierge/checkin"
	"concierge/enroll"
	"concierge/face"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
	"concierge/sqlite"
)

// openFeedback starts a Feedback on the branch's stream at url with the
// default rule of a 0.4 threshold.
func openFeedback(t *testing.T, url string, db *sqlite.DB) *alert.Feedback {
	t.Helper()
	f, err := alert.NewFeedback(alert.FeedbackConfig{Branch: branch, Conn: connConfig(url), Book: db,
		Policy: checkin.DefaultFeedbackConfig(0.4), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// A "not this person" mark on the stream tightens the rule of the
// customer of the box's own visit record (not the one the mark names),
// once; a mark of an alert the box never sent changes nothing; a
// restarted Feedback keeps the rule from the database and does not count
// the replayed marks again.
func TestFeedback(t *testing.T) {
	srv := testenv.RunNATS(t)
	url := srv.ClientURL()
	db := testdb.Open(t)
	openPublisher(t, url, db, nil) // makes the branch's stream
	ctx := context.Background()
	_, js := connect(t, url)
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := js.Stream(ctx, alert.StreamName(branch))
		return err
	})
	now := time.Now().UTC()
	for _, id := range []string{"C1", "C2"} {
		var e face.Embedding
		for i := range e {
			e[i] = float32(i) / 1000
		}
		if _, err := db.SaveEnrollment(ctx, enroll.Customer{ID: id, DisplayName: "x", Created: now.Add(-time.Hour)},
			enroll.Consent{Reference: "F-" + id, TextVersion: "v1", Channel: "cli", GrantedAt: now.Add(-time.Hour)},
			[]enroll.Template{{Embedding: e, Model: "m", Created: now.Add(-time.Hour)}}); err != nil {
			t.Fatal(err)
		}
	}
	a := vipArrival(1)
	a.CustomerID, a.At = "C1", now
	if err := db.RecordVisit(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := alert.NewFeedback(alert.FeedbackConfig{Branch: branch, Conn: connConfig(url)}); concierge.ErrorCode(err) != concierge.EINVALID {
		t.Errorf("a feedback without a book: %v", err)
	}

	f := openFeedback(t, url, db)
	if v, dt := f.Strictness("C1", time.Now()); v != 0 || dt != 0 {
		t.Fatalf("C1 strict before any mark: %d %v", v, dt)
	}
	claimer, err := alert.NewClaimer(connConfig(url), branch, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer claimer.Close()
	// The mark names C2; the visit says C1.
	if err := claimer.Reject(ctx, a.ID, "C2", "Li", "different person", now); err != nil {
		t.Fatal(err)
	}
	if err := claimer.Reject(ctx, "01NOSUCHALERT0000000000000", "C2", "Li", "", now); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if v, dt := f.Strictness("C1", time.Now()); v != 1 || math.Abs(dt+0.04) > 1e-9 {
			return fmt.Errorf("C1's rule: +%d votes, threshold %+.3f", v, dt)
		}
		return nil
	})
	if v, dt := f.Strictness("C2", time.Now()); v != 0 || dt != 0 {
		t.Errorf("C2, named by the mark, tightened: %d %v", v, dt)
	}
	if n := f.Stats.Recorded.Load(); n != 1 {
		t.Errorf("%d marks recorded, want 1", n)
	}
	if strict, _ := f.Counts(time.Now()); strict != 1 {
		t.Errorf("%d customers strict", strict)
	}
	if err := f.Close(); err != nil || f.Close() != nil {
		t.Fatal("Close twice failed")
	}

	again := openFeedback(t, url, db)
	if v, _ := again.Strictness("C1", time.Now()); v != 1 {
		t.Errorf("after a restart C1's rule: +%d votes", v)
	}
	// Both marks come back from the stream; neither is new.
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := again.Stats.Read.Load(); n < 2 {
			return fmt.Errorf("restarted feedback read %d of 2 marks", n)
		}
		return nil
	})
	if n := again.Stats.Recorded.Load(); n != 0 {
		t.Errorf("replayed marks counted as new: %d", n)
	}
}
