package hub

import "github.com/nats-io/nats-server/v2/server"

// The hub's names. Everything a branch shares with the network lives under
// SubjectPrefix in the one Account; branch alerts (concierge.<branch>.>)
// never reach the hub at all: the box does not export them over its leaf
// connection, and no branch identity may publish or read them here.
const (
	Account       = "CONCIERGE"
	Domain        = "hq"
	StreamName    = "CONCIERGE_NET"
	SubjectPrefix = "concierge-net"
)

// BranchSubjects is what branch may publish: its own events, so the
// stream records which box said what and no branch can speak for another,
// and of those only the two kinds a box sends about a customer (its
// enrollment or its end on c, its door set on d, each under the
// customer's token), so a branch credential cannot fill the stream with
// subjects of its own invention.
func BranchSubjects(branch string) []string {
	p := SubjectPrefix + "." + branch + "."
	return []string{p + subjectCustomer + ".*", p + subjectDoor + ".*"}
}

// Permissions is what a branch identity may do at the hub, whether it
// connects as a leaf node (the box's embedded server) or as a client: the
// server reverses the directions for a leaf itself. A branch publishes only
// its own events, reads the network stream through consumers of its own
// (the events are for every branch, their templates sealed with the
// network key that the hub does not hold) and cannot create, purge or
// delete the stream. Nothing else in the account is readable: replies come
// back on _INBOX.
func Permissions(branch string) *server.Permissions {
	pub := append(BranchSubjects(branch), "$JS.ACK."+StreamName+".>", "$JS.FC.>")
	// Over a leaf node JetStream's API is addressed by domain; the
	// server maps $JS.hq.API to $JS.API inside the account.
	for _, api := range []string{"$JS.API", "$JS." + Domain + ".API"} {
		pub = append(pub,
			api+".INFO",
			api+".STREAM.INFO."+StreamName,
			api+".CONSUMER.CREATE."+StreamName+".>",
			api+".CONSUMER.INFO."+StreamName+".>",
			api+".CONSUMER.DELETE."+StreamName+".>",
			api+".CONSUMER.MSG.NEXT."+StreamName+".>",
		)
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}
