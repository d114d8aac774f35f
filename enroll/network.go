package enroll

import (
	"time"

	"concierge"
)

// WithdrawnInNetwork is why a consent ended at this box when the customer
// withdrew at another branch of the network: the box carries it out like
// its own withdrawal, but does not announce it to the network again.
const WithdrawnInNetwork = "withdrawn_network"

// Kinds of NetworkChange.
const (
	ChangeEnroll   = "enroll"
	ChangeWithdraw = "withdraw"
	// ChangeRetract: a network-scope consent given at this box ended for
	// another reason than the customer's withdrawal here (a withdrawal
	// made at another branch, retention): the box takes back what it told
	// the network, without asking other boxes to erase the customer.
	ChangeRetract = "retract"
	// ChangeDoor: the box's own door templates of a customer holding a
	// network-scope consent changed; the box sends its whole current set.
	ChangeDoor = "door"
)

// NetworkChange is a change made at this box that the bank's other
// branches must hear of: a network-scope enrollment (or re-enrollment),
// the withdrawal of a customer holding a network-scope consent, the end
// of a network consent given here (retract), or a change of the door
// templates the box learned of such a customer.
type NetworkChange struct {
	ID         int64
	CustomerID string
	Kind       string
	At         time.Time
}

// NetworkEnrollment is what the network learns of a customer: their name,
// the network-scope consent and the templates made under it. The latest
// one of a customer replaces what a box held from the network before.
type NetworkEnrollment struct {
	// Origin is the branch that sent it; empty for this box's own.
	Origin    string
	Customer  Customer
	Consent   Consent
	Templates []Template
}

// Check refuses an enrollment from the network that cannot be stored.
func (e NetworkEnrollment) Check() error {
	switch {
	case e.Origin == "":
		return concierge.Errorf(concierge.EINVALID, "network enrollment: no origin branch")
	case e.Customer.ID == "" || e.Consent.Reference == "":
		return concierge.Errorf(concierge.EINVALID, "network enrollment: customer id and consent reference must be set")
	case len(e.Templates) == 0:
		return concierge.Errorf(concierge.EINVALID, "network enrollment: no templates")
	}
	return nil
}

// NetworkDoorSet is one branch's whole current set of door templates of a
// customer (learned there from visits staff confirmed): a receiving box
// replaces what it held from that branch with it, and an empty set takes
// back everything the branch sent before.
type NetworkDoorSet struct {
	// Origin is the branch that learned them; empty for this box's own.
	Origin     string
	CustomerID string
	At         time.Time
	Templates  []NetworkDoorTemplate
}

// NetworkDoorTemplate is a door template as the network carries it, with
// the visit (alert id at its branch) it was learned from.
type NetworkDoorTemplate struct {
	Template
	VisitID string
}

// Check refuses a door set from the network that cannot be stored.
func (s NetworkDoorSet) Check() error {
	if s.Origin == "" || s.CustomerID == "" {
		return concierge.Errorf(concierge.EINVALID, "network door templates: origin branch and customer id must be set")
	}
	return nil
}
