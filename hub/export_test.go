package hub

// EventSubject is where branch's events of kind ("c" or "d") about the
// customer go, for tests that read the hub's stream.
func (r *Replicator) EventSubject(branch, kind, customerID string) string {
	return r.subject(branch, kind, customerID)
}

// OpenEvent opens a network message as a box holding the network key
// does: its kind, customer and how many templates it carries.
func (r *Replicator) OpenEvent(subj string, data []byte) (kind, customerID string, templates int, err error) {
	ev, err := r.open(subj, data)
	return ev.Kind, ev.CustomerID, len(ev.Templates), err
}
