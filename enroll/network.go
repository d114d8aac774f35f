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
)

// NetworkChange is a change made at this box that the bank's other
// branches must hear of: a network-scope enrollment (or re-enrollment) or
// the withdrawal of a customer holding a network-scope consent.
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
