package alert_test

import (
	"errors"
	"io/fs"
	"testing"

	"concierge"
	"concierge/alert"
)

// alert sets the code where it knows the error, so that the daemon and the
// CLI pass it on instead of relabelling it: a bad configuration is
// invalid, files the box cannot read are unavailable, and the cause stays
// in the chain.
func TestErrorCodes(t *testing.T) {
	invalid := map[string]error{}
	_, invalid["subscriber without branch"] = alert.NewSubscriber(alert.SubscriberConfig{Conn: connConfig("nats://127.0.0.1:1")})
	_, invalid["escalator without url"] = alert.NewEscalator(alert.EscalatorConfig{Branch: branch})
	_, invalid["publisher without outbox"] = alert.NewPublisher(alert.PublisherConfig{Branch: branch, Conn: connConfig("nats://127.0.0.1:1")}, nil)
	_, invalid["feedback without book"] = alert.NewFeedback(alert.FeedbackConfig{Branch: branch, Conn: connConfig("nats://127.0.0.1:1")})
	_, invalid["credentials without dir"] = alert.EnsureCredentials("")
	invalid["password without user"] = alert.ConnConfig{URL: "nats://127.0.0.1:1", Password: "x"}.Validate()
	invalid["plain listen beyond loopback"] = alert.NewServer(alert.ServerConfig{Listen: "0.0.0.0:-1", StoreDir: t.TempDir()}).Open()
	for what, err := range invalid {
		if concierge.ErrorCode(err) != concierge.EINVALID {
			t.Errorf("%s: %v, want code %s", what, err, concierge.EINVALID)
		}
	}

	// A seed missing from the box: unavailable, and the os error is still
	// in the chain (watch tells a missing seed from an unreadable one).
	creds := alert.Credentials{Dir: t.TempDir()}
	_, err := creds.PublicKey(alert.IdentityLobby)
	if concierge.ErrorCode(err) != concierge.EUNAVAILABLE || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing seed: %v (code %s)", err, concierge.ErrorCode(err))
	}
}
