package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"concierge/alert"
	"concierge/checkin"
	"concierge/internal/testenv"
	"concierge/internal/testenv/testdb"
)

// escalateEnv is a branch's stream fed by a publisher, with a clock that
// starts at the wall clock's now, since the escalator reads the stream
// from its Now minus the look-back.
type escalateEnv struct {
	url   string
	pub   *alert.Publisher
	js    jetstream.JetStream
	clock *testenv.Clock
	start time.Time
}

func newEscalateEnv(t *testing.T) *escalateEnv {
	t.Helper()
	srv := testenv.RunNATS(t)
	_, js := connect(t, srv.ClientURL())
	now := time.Now()
	return &escalateEnv{url: srv.ClientURL(), pub: openPublisher(t, srv.ClientURL(), testdb.Open(t), nil),
		js: js, clock: testenv.NewClock(now), start: now}
}

// at moves the clock to d after the start.
func (e *escalateEnv) at(d time.Duration) { e.clock.Set(e.start.Add(d)) }

// arrive publishes an arrival at the clock's start whose tier escalates
// after tierAfter (0: the branch default; negative: never), and waits
// until the stream holds it.
func (e *escalateEnv) arrive(t *testing.T, tierAfter time.Duration) string {
	t.Helper()
	a := vipArrival(1)
	a.ID = ulid.Make().String()
	a.At, a.FirstSeen = e.start, e.start.Add(-time.Second)
	svc := *a.Tier.Service
	svc.EscalateAfter = tierAfter
	a.Tier.Service = &svc
	if err := e.pub.Notify(context.Background(), a, nil); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		msgs, err := streamMsgs(context.Background(), e.js, alert.Subject(branch, alert.FeedVisit))
		for _, m := range msgs {
			if d, _ := alert.Decode(m.Data); d.ID == a.ID {
				return nil
			}
		}
		return fmt.Errorf("arrival %s not in the stream yet (%v)", a.ID, err)
	})
	return a.ID
}

// open starts an escalator whose deadlines are checked only when the
// test calls Check.
func (e *escalateEnv) open(t *testing.T) *alert.Escalator {
	t.Helper()
	esc, err := alert.NewEscalator(alert.EscalatorConfig{Branch: branch, Conn: connConfig(e.url),
		Tick: time.Hour, Now: e.clock.Now, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := esc.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { esc.Close() })
	return esc
}

// escalations returns the escalations and the escalated manager copies
// in the stream, as "alert-id after" strings.
func (e *escalateEnv) escalations(t *testing.T) (events, copies []string) {
	t.Helper()
	ctx := context.Background()
	msgs, err := streamMsgs(ctx, e.js, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		switch m.Subject {
		case alert.Subject(branch, alert.FeedEscalation):
			var x alert.Escalation
			if err := json.Unmarshal(m.Data, &x); err != nil {
				t.Fatal(err)
			}
			events = append(events, fmt.Sprintf("%s %v", x.AlertID, time.Duration(x.After)))
		case alert.Subject(branch, alert.FeedManager):
			mm, err := alert.Decode(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if mm.Escalated == nil {
				t.Errorf("manager copy of %s is not marked escalated: %s", mm.ID, m.Data)
				continue
			}
			if len(mm.RiskFlags) > 0 {
				t.Errorf("escalated copy of %s carries risk flags", mm.ID)
			}
			if got := m.Header.Get(jetstream.MsgIDHeader); got != alert.EscalatedMsgID(mm.ID) {
				t.Errorf("manager copy of %s has message id %q", mm.ID, got)
			}
			copies = append(copies, fmt.Sprintf("%s %v", mm.ID, time.Duration(mm.Escalated.After)))
		}
	}
	return events, copies
}

func waitPending(t *testing.T, esc *alert.Escalator, n int) {
	t.Helper()
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := esc.Pending(); got != n {
			return fmt.Errorf("%d alerts pending, want %d", got, n)
		}
		return nil
	})
}

func check(t *testing.T, esc *alert.Escalator, want int) {
	t.Helper()
	n, err := esc.Check(context.Background())
	if err != nil || n != want {
		t.Fatalf("check: %d escalated, %v; want %d", n, err, want)
	}
}

// An unclaimed alert is escalated once, after the branch's or its tier's
// time; a claimed or rejected one, or one whose tier says never, is not;
// and a restarted escalator does not escalate anything again.
func TestEscalator(t *testing.T) {
	env := newEscalateEnv(t)
	unclaimed := env.arrive(t, 0)
	claimed := env.arrive(t, 0)
	rejected := env.arrive(t, 0)
	slow := env.arrive(t, 2*time.Minute)
	env.arrive(t, -1) // never
	esc := env.open(t)
	waitPending(t, esc, 4)

	c := openClaimer(t, env.url)
	ctx := context.Background()
	if err := c.Claim(ctx, claimed, "Li", env.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := c.Reject(ctx, rejected, "C1001", "Wang", "", env.clock.Now()); err != nil {
		t.Fatal(err)
	}
	waitPending(t, esc, 2)

	env.at(59 * time.Second)
	check(t, esc, 0)
	env.at(62 * time.Second)
	check(t, esc, 1)
	check(t, esc, 0)
	env.at(119 * time.Second)
	check(t, esc, 0)
	env.at(122 * time.Second)
	check(t, esc, 1)
	env.at(time.Hour)
	check(t, esc, 0)
	if esc.Pending() != 0 || esc.Stats.Escalated.Load() != 2 {
		t.Errorf("pending %d, escalated %d", esc.Pending(), esc.Stats.Escalated.Load())
	}
	want := fmt.Sprint([]string{unclaimed + " 1m0s", slow + " 2m0s"})
	events, copies := env.escalations(t)
	if fmt.Sprint(events) != want || fmt.Sprint(copies) != want {
		t.Fatalf("escalations %v, manager copies %v; want %v", events, copies, want)
	}

	// A restart within the look-back reads the escalations back.
	esc.Close()
	env.at(3 * time.Minute)
	again := env.open(t)
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		// 5 arrivals, a claim, a rejection, 2 escalations.
		if n := again.Stats.Events.Load(); n < 9 {
			return fmt.Errorf("%d of 9 messages read", n)
		}
		return nil
	})
	waitPending(t, again, 0)
	check(t, again, 0)
	if events, copies := env.escalations(t); fmt.Sprint(events) != want || fmt.Sprint(copies) != want {
		t.Fatalf("after restart: escalations %v, manager copies %v", events, copies)
	}
}

// An alert whose deadline passed while the daemon was down is escalated
// when it comes back; two escalators (a restart racing the old process)
// escalate it once between them, manager copy included; an expired alert
// is dropped.
func TestEscalatorOnceAcrossProcesses(t *testing.T) {
	env := newEscalateEnv(t)
	id := env.arrive(t, 0)
	env.at(90 * time.Second)
	one, two := env.open(t), env.open(t)
	waitPending(t, one, 1)
	waitPending(t, two, 1)
	var wg sync.WaitGroup
	for _, esc := range []*alert.Escalator{one, two} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := esc.Check(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := one.Stats.Escalated.Load() + two.Stats.Escalated.Load(); n != 1 {
		t.Fatalf("escalated %d times", n)
	}
	// The loser either read the winner's escalation before its own Check
	// (nothing to do) or published and was de-duplicated by JetStream;
	// which one is a matter of timing, so both are right.
	if n := one.Stats.Duplicates.Load() + two.Stats.Duplicates.Load(); n > 1 {
		t.Errorf("duplicates %d, want at most 1", n)
	}
	want := fmt.Sprint([]string{id + " 1m0s"})
	if events, copies := env.escalations(t); fmt.Sprint(events) != want || fmt.Sprint(copies) != want {
		t.Fatalf("escalations %v, manager copies %v; want %v", events, copies, want)
	}

	late := env.arrive(t, 0)
	waitPending(t, one, 1)
	env.at(31 * time.Minute) // past expires_at (30 minutes)
	check(t, one, 0)
	if one.Pending() != 0 {
		t.Errorf("expired alert %s still pending", late)
	}
}

// Escalation is off by default when After is negative, but a tier that
// sets a time still escalates.
func TestEscalatorBranchDefaultOff(t *testing.T) {
	env := newEscalateEnv(t)
	env.arrive(t, 0)
	tiered := env.arrive(t, 5*time.Minute)
	esc, err := alert.NewEscalator(alert.EscalatorConfig{Branch: branch, Conn: connConfig(env.url),
		After: -1, Tick: time.Hour, Now: env.clock.Now, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := esc.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer esc.Close()
	waitPending(t, esc, 1)
	env.at(10 * time.Minute)
	check(t, esc, 1)
	if events, _ := env.escalations(t); fmt.Sprint(events) != fmt.Sprint([]string{tiered + " 5m0s"}) {
		t.Fatalf("escalations %v", events)
	}
	if _, err := alert.NewEscalator(alert.EscalatorConfig{Conn: connConfig(env.url)}); err == nil {
		t.Error("escalator without a branch accepted")
	}
}

// The tier's escalate_after reaches the wire as escalate_after_s: absent
// for the branch default, 0 for never.
func TestMessageEscalateAfter(t *testing.T) {
	for _, tc := range []struct {
		after time.Duration
		want  string
	}{{0, "<nil>"}, {90 * time.Second, "1m30s"}, {-1, "0s"}} {
		a := vipArrival(1)
		a.Tier.Service = &checkin.ServiceLevel{Priority: 1, EscalateAfter: tc.after}
		got := "<nil>"
		if s := alert.NewMessage(a, time.Minute).ServiceLevel.EscalateAfter; s != nil {
			got = time.Duration(*s).String()
		}
		if got != tc.want {
			t.Errorf("escalate after %v: %s, want %s", tc.after, got, tc.want)
		}
	}
}
