package alert

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"concierge"
)

// Identity is one kind of client of a branch's embedded NATS server. The
// server knows no anonymous user: every connection is one of these, with
// the subject permissions of its job (Permissions).
type Identity string

const (
	// IdentityDaemon is `concierge run` itself: it owns the stream,
	// publishes arrivals, claims, marks and escalations, and answers the
	// desk's requests. Only the daemon manages the stream.
	IdentityDaemon Identity = "daemon"
	// IdentityLobby is a staff terminal (`concierge watch` on the box, a
	// lobby device): it reads the staff feeds and asks the daemon's desk to
	// claim or mark an alert; it can publish nothing into the stream and
	// never reads the manager's subject.
	IdentityLobby Identity = "lobby"
	// IdentityManager is the lobby's rights plus the manager's subject,
	// where risk flags and escalated copies go.
	IdentityManager Identity = "manager"
)

// Identities is every identity the box makes credentials for.
var Identities = []Identity{IdentityDaemon, IdentityLobby, IdentityManager}

// Credentials are the box's own NATS identities: one user nkey seed per
// identity in Dir, readable only by the service's user (0600 in a 0700
// directory). The server is told only the public keys; a client proves
// its identity by signing the server's nonce with the seed, so nothing
// secret crosses the connection.
type Credentials struct {
	Dir string
}

// SeedFile is where the identity's seed is kept.
func (c Credentials) SeedFile(id Identity) string {
	return filepath.Join(c.Dir, string(id)+".nk")
}

// EnsureCredentials makes the directory and any missing seed, keeping the
// seeds already there, so restarts keep the identities that terminals use.
func EnsureCredentials(dir string) (Credentials, error) {
	c := Credentials{Dir: dir}
	if dir == "" {
		return c, concierge.Errorf(concierge.EINVALID, "nats credentials: directory must be set")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return c, concierge.Errorf(concierge.EUNAVAILABLE, "nats credentials: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone: tighten it.
	if err := os.Chmod(dir, 0o700); err != nil {
		return c, concierge.Errorf(concierge.EUNAVAILABLE, "nats credentials: %w", err)
	}
	for _, id := range Identities {
		path := c.SeedFile(id)
		if _, err := c.PublicKey(id); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return c, err
		}
		kp, err := nkeys.CreateUser()
		if err != nil {
			return c, concierge.Errorf(concierge.EUNAVAILABLE, "nats credentials: %w", err)
		}
		seed, err := kp.Seed()
		if err != nil {
			return c, concierge.Errorf(concierge.EUNAVAILABLE, "nats credentials: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // another process made it first
		}
		if err != nil {
			return c, concierge.Errorf(concierge.EUNAVAILABLE, "nats credentials: %w", err)
		}
		_, err = f.Write(append(seed, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return c, concierge.Errorf(concierge.EUNAVAILABLE, "nats credentials %s: %w", path, err)
		}
	}
	return c, nil
}

// StoreKeyFile holds the key JetStream encrypts the branch's stream with
// on disk (alerts carry masked names and, when the branch sends them, face
// thumbnails).
func (c Credentials) StoreKeyFile() string { return filepath.Join(c.Dir, "jetstream.key") }

// StoreKey returns the stream's encryption key, making it on first use.
// It is never rotated by Concierge: nats-server re-encrypts a store only
// when given the old key beside the new one.
func (c Credentials) StoreKey() (string, error) {
	path := c.StoreKeyFile()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return "", concierge.Errorf(concierge.EUNAVAILABLE, "jetstream key: %w", err)
		}
		key := hex.EncodeToString(raw)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return c.StoreKey() // another process made it first
		}
		if err != nil {
			return "", concierge.Errorf(concierge.EUNAVAILABLE, "jetstream key: %w", err)
		}
		_, err = f.WriteString(key + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return "", concierge.Errorf(concierge.EUNAVAILABLE, "jetstream key %s: %w", path, err)
		}
		return key, nil
	}
	if err != nil {
		return "", concierge.Errorf(concierge.EUNAVAILABLE, "jetstream key: %w", err)
	}
	key := string(bytes.TrimSpace(b))
	if len(key) < 32 {
		return "", concierge.Errorf(concierge.EINVALID, "jetstream key %s: shorter than 32 characters", path)
	}
	return key, nil
}

// PublicKey reads an identity's seed and returns its public user key.
func (c Credentials) PublicKey(id Identity) (string, error) {
	path := c.SeedFile(id)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", concierge.Errorf(concierge.EUNAVAILABLE, "nats credentials: %w", err)
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(b))
	if err != nil {
		return "", concierge.Errorf(concierge.EINVALID, "nats credentials %s: not a user nkey seed: %w", path, err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return "", concierge.Errorf(concierge.EUNAVAILABLE, "nats credentials %s: %w", path, err)
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return "", concierge.Errorf(concierge.EINVALID, "nats credentials %s: not a user nkey seed", path)
	}
	return pub, nil
}

// Conn is how identity id connects to the box's server at url.
func (c Credentials) Conn(url, name string, id Identity) ConnConfig {
	return ConnConfig{URL: url, Name: name, NKeySeedFile: c.SeedFile(id)}
}

// users are the server's view of the credentials: public keys with the
// permissions of each identity.
func (c Credentials) users(branch string) ([]*server.NkeyUser, error) {
	out := make([]*server.NkeyUser, 0, len(Identities))
	for _, id := range Identities {
		pub, err := c.PublicKey(id)
		if err != nil {
			return nil, err
		}
		out = append(out, &server.NkeyUser{Nkey: pub, Permissions: Permissions(branch, id)})
	}
	return out, nil
}

// DeskSubject is where staff terminals send their claims and "not this
// person" marks for the daemon to check. It lies outside the branch's
// stream (concierge.<branch>.>), so a request is answered by the daemon
// and never stored as if it were a claim.
func DeskSubject(branch, verb string) string {
	return "concierge-desk." + branch + "." + verb
}

// staffFeeds are what every screen shows: arrivals, claims, escalations,
// "not this person" marks and erasures.
var staffFeeds = []Feed{FeedArrival, FeedClaim, FeedEscalation, FeedRejection, FeedErasure}

// Permissions is what identity id may do on branch's server. A lobby
// reads each staff feed through its own consumer filtered on that one
// subject: JetStream puts the filter into the API subject that creates a
// consumer, so the permission can name it, and an unfiltered consumer, a
// direct get or a stream-message get, each of which would read the
// manager's subject, is never allowed. Nobody but the daemon may publish
// into the stream or manage it.
func Permissions(branch string, id Identity) *server.Permissions {
	if id == IdentityDaemon {
		// The stream's owner: nil permissions are everything.
		return nil
	}
	stream := StreamName(branch)
	feeds := staffFeeds
	if id == IdentityManager {
		feeds = append(append([]Feed(nil), staffFeeds...), FeedManager)
	}
	pub := []string{
		"$JS.API.INFO",
		"$JS.API.STREAM.NAMES",
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.CONSUMER.MSG.NEXT." + stream + ".>",
		"$JS.API.CONSUMER.INFO." + stream + ".>",
		"$JS.API.CONSUMER.DELETE." + stream + ".>",
		DeskSubject(branch, "*"),
	}
	for _, f := range feeds {
		pub = append(pub, "$JS.API.CONSUMER.CREATE."+stream+".*."+Subject(branch, f))
	}
	// Verify cards have their own stream (FeedVerify): read through a
	// consumer filtered on the feed, answered through the desk only.
	verify := VerifyStreamName(branch)
	pub = append(pub,
		"$JS.API.STREAM.INFO."+verify,
		"$JS.API.CONSUMER.MSG.NEXT."+verify+".>",
		"$JS.API.CONSUMER.INFO."+verify+".>",
		"$JS.API.CONSUMER.DELETE."+verify+".>",
		"$JS.API.CONSUMER.CREATE."+verify+".*."+Subject(branch, FeedVerify))
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}

// loopback reports whether host names only this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
