package hub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"concierge/checkin"
	"concierge/enroll"
	"concierge/hub"
	"concierge/internal/testenv"
)

// doors is how many door templates the box holds of a customer, and from
// which branches ("" for its own).
func (b *box) doors(t *testing.T, id string) map[string]int {
	t.Helper()
	rows, err := b.db.SQL().Query(`SELECT origin, COUNT(*) FROM templates WHERE customer_id = ? AND source = 'door' GROUP BY origin`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var o string
		var n int
		if err := rows.Scan(&o, &n); err != nil {
			t.Fatal(err)
		}
		out[o] = n
	}
	return out
}

func wantDoors(t *testing.T, b *box, id, origin string, n int) func() error {
	return func() error {
		if got := b.doors(t, id)[origin]; got != n {
			return fmt.Errorf("%s holds %d door templates of %s from %q, want %d", b.id, got, id, origin, n)
		}
		return nil
	}
}

// learn stores door templates of a confirmed visit at the box, as the
// daemon's learner does.
func (b *box) learn(t *testing.T, customer, visit string, vs ...float32) {
	t.Helper()
	ctx := context.Background()
	at := time.Now().UTC()
	if err := b.db.RecordVisit(ctx, checkin.Arrival{ID: visit, Branch: b.id, Camera: "door-1", CustomerID: customer,
		At: at, Distance: 0.5, Margin: 0.1, Votes: 1}); err != nil {
		t.Fatal(err)
	}
	var ts []enroll.Template
	for _, v := range vs {
		ts = append(ts, enroll.Template{Embedding: vec(v), Model: "m", Created: at})
	}
	if _, err := b.db.SaveDoorTemplates(ctx, enroll.DoorConsents{"v1"}, customer, visit, ts, nil); err != nil {
		t.Fatal(err)
	}
}

// Door templates learned at a box travel to the boxes that learn, are
// scored there, go with a mark at the box that learned them, never reach
// a box that does not learn, and after a withdrawal the hub holds no
// template of the customer on any subject of any branch.
func TestDoorTemplatesTravel(t *testing.T) {
	ctx := context.Background()
	h, dir := testenv.RunHub(t, "a", "b", "c")
	a := startBoxWith(t, h, dir, "a", "", 10)
	b := startBoxWith(t, h, dir, "b", "", 10)
	c := startBoxWith(t, h, dir, "c", "", 0)
	stream := testenv.HubStream(t, dir, h.ClientURL())

	a.enroll(t, "C1", enroll.ScopeNetwork, 0.4)
	a.enroll(t, "C-branch", enroll.ScopeBranch, 0.1)
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, want(b, "C1", 1))
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, want(c, "C1", 1))

	// Learned at a: at b within seconds, and scored there.
	a.learn(t, "C1", "a-V1", 0.9, 0.92)
	a.learn(t, "C-branch", "a-V2", 0.3)
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, wantDoors(t, b, "C1", "a", 2))
	ts, err := b.db.Templates(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	g := enroll.NewGallery("m")
	g.Load(ts)
	probe := vec(0.9)
	if m, ok := g.Search(&probe); !ok || m.CustomerID != "C1" || m.Distance > 0.5 || g.Templates("C1") != 3 {
		t.Fatalf("b's gallery: %+v, %d templates of C1; want C1 near its door row and 3 templates", m, g.Templates("C1"))
	}
	// c does not learn: once it has read as far as a's door set, it holds
	// none of it.
	doorSubj := a.rep.EventSubject("a", "d", "C1")
	last, err := stream.GetLastMsgForSubject(ctx, doorSubj)
	if err != nil {
		t.Fatalf("a's door set is not in the hub: %v", err)
	}
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if p, _ := c.db.NetworkPosition(ctx); p < last.Sequence {
			return fmt.Errorf("c has read up to %d, a's door set is %d", p, last.Sequence)
		}
		return nil
	})
	if d := c.doors(t, "C1"); len(d) != 0 {
		t.Fatalf("c, which does not learn, holds door templates %v", d)
	}
	if d := b.doors(t, "C-branch"); len(d) != 0 {
		t.Fatalf("a branch-scope customer's door templates reached b: %v", d)
	}

	// A mark at a removes them at b; what a learns next replaces them.
	if _, _, err := a.db.RecordFalseMatch(ctx, "a-V1", "Li", "", time.Now()); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, wantDoors(t, b, "C1", "a", 0))
	a.learn(t, "C1", "a-V3", 0.8)
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, wantDoors(t, b, "C1", "a", 1))
	// b learns too, and a keeps b's set beside its own.
	b.learn(t, "C1", "b-V1", 0.7, 0.75)
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, wantDoors(t, a, "C1", "b", 2))
	if d := a.doors(t, "C1"); d[""] != 1 {
		t.Fatalf("a's own door templates: %v", d)
	}
	// The stream keeps one door message per customer and branch.
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(doorSubj))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[doorSubj]; n != 1 {
		t.Fatalf("the hub holds %d door messages of C1 from a, want 1", n)
	}

	// C1 enrolls at c too; then withdraws at b. Every box erases them and
	// overwrites what it published: a's enrollment and door set, b's door
	// set, c's enrollment.
	c.enroll(t, "C1", enroll.ScopeNetwork, 0.45)
	var enrolledAtC uint64
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		m, err := stream.GetLastMsgForSubject(ctx, c.rep.EventSubject("c", "c", "C1"))
		if err != nil {
			return fmt.Errorf("c's enrollment is not in the hub: %v", err)
		}
		enrolledAtC = m.Sequence
		return nil
	})
	// (A withdrawal at b before b read c's enrollment would be followed
	// by it: the customer ends enrolled, the rule of docs/branches.md.)
	for _, x := range []*box{a, b} {
		testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			if p, _ := x.db.NetworkPosition(ctx); p < enrolledAtC {
				return fmt.Errorf("%s has not read c's enrollment", x.id)
			}
			return nil
		})
	}
	if _, err := b.db.Forget(ctx, "C1", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*box{a, b, c} {
		testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			if n := count(t, x, "C1"); n != 0 {
				return fmt.Errorf("%s holds %d templates of C1", x.id, n)
			}
			return nil
		})
	}
	// What each branch's last word on C1 must be: a and c had enrolled
	// them (retracted when the withdrawal reached them), b took the
	// withdrawal, a and b had sent door sets (now empty), c never learned.
	wantLast := map[string]string{"a.c": enroll.ChangeRetract, "a.d": enroll.ChangeDoor, "b.c": enroll.ChangeWithdraw,
		"b.d": enroll.ChangeDoor, "c.c": enroll.ChangeRetract, "c.d": ""}
	testenv.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		for _, branch := range []string{"a", "b", "c"} {
			for _, kind := range []string{"c", "d"} {
				subj := a.rep.EventSubject(branch, kind, "C1")
				got := ""
				n := 0
				m, err := stream.GetLastMsgForSubject(ctx, subj)
				switch {
				case errors.Is(err, jetstream.ErrMsgNotFound):
				case err != nil:
					return err
				default:
					var id string
					got, id, n, err = a.rep.OpenEvent(subj, m.Data)
					if err != nil || id != "C1" {
						t.Fatalf("%s: %q, %v", subj, id, err)
					}
				}
				if w := wantLast[branch+"."+kind]; got != w || n != 0 {
					return fmt.Errorf("the hub's last %s event of C1 from %s is %q with %d templates, want %q with none", kind, branch, got, n, w)
				}
			}
		}
		return nil
	})
	if !strings.HasPrefix(doorSubj, hub.SubjectPrefix+".a.d.") {
		t.Fatalf("door subject %s", doorSubj)
	}
}

// count is how many templates of any source the box holds of a customer.
func count(t *testing.T, b *box, id string) int {
	t.Helper()
	var n int
	if err := b.db.SQL().QueryRow(`SELECT COUNT(*) FROM templates WHERE customer_id = ?`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
