package testenv

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"concierge/alert"
)

// Logger shows the components' logs with -v only: callbacks of a closed
// NATS connection may still log after the test has ended, which t.Log
// would turn into a panic.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// NATS is the daemon's own embedded server (alert.Server) with JetStream,
// run by a test on a free loopback port and closed when the test ends.
type NATS struct {
	*alert.Server
	// Creds are the box's identities when the server is closed
	// (ClosedNATS); the zero value otherwise.
	Creds alert.Credentials

	tb  testing.TB
	cfg alert.ServerConfig
}

// NATSOption changes how RunNATS starts the server.
type NATSOption func(*NATS)

// JetStreamDir keeps JetStream's files in dir instead of a fresh temp dir,
// for a test that looks at them or starts a second server on them.
func JetStreamDir(dir string) NATSOption { return func(n *NATS) { n.cfg.StoreDir = dir } }

// ClosedNATS closes the server as the daemon does: only the identities of
// the box of branch (credentials written to a temp dir, in n.Creds) may
// connect, each with the permissions of its job (alert.Permissions).
func ClosedNATS(branch string) NATSOption {
	return func(n *NATS) {
		creds, err := alert.EnsureCredentials(filepath.Join(n.tb.TempDir(), "nats"))
		if err != nil {
			n.tb.Fatal(err)
		}
		n.Creds = creds
		n.cfg.Credentials = &n.Creds
		n.cfg.Branch = branch
	}
}

// NATSConfig edits the rest of the server's config (a nats-server
// config file, a store key, a hub to join, the logger).
func NATSConfig(edit func(*alert.ServerConfig)) NATSOption {
	return func(n *NATS) { edit(&n.cfg) }
}

// RunNATS starts a server on a port the system picks and returns it once
// it accepts clients.
func RunNATS(tb testing.TB, opts ...NATSOption) *NATS {
	tb.Helper()
	n := &NATS{tb: tb, cfg: alert.ServerConfig{Listen: "127.0.0.1:-1", Logger: Logger()}}
	for _, o := range opts {
		o(n)
	}
	if n.cfg.StoreDir == "" {
		n.cfg.StoreDir = filepath.Join(tb.TempDir(), "js")
	}
	n.Start()
	// A restart listens where the first server did, as nats-server's own
	// tests do: clients keep their URL, and no port is closed and
	// guessed free in between.
	n.cfg.Listen = n.Addr()
	return n
}

// Start opens the server (again, after Stop) on the same port and store.
func (n *NATS) Start() {
	n.tb.Helper()
	s := alert.NewServer(n.cfg)
	if err := s.Open(); err != nil {
		n.tb.Fatal(err)
	}
	n.tb.Cleanup(func() { s.Close() })
	n.Server = s
}

// Stop shuts the server down, as a crash or an upgrade of the NATS box
// would; Start brings it back.
func (n *NATS) Stop() {
	n.tb.Helper()
	if err := n.Server.Close(); err != nil {
		n.tb.Fatal(err)
	}
}

// Restart stops the server and starts it again on the same port and store.
func (n *NATS) Restart() {
	n.tb.Helper()
	n.Stop()
	n.Start()
}

// URL is the client URL, valid across restarts and while stopped.
func (n *NATS) URL() string { return "nats://" + n.cfg.Listen }

// FreeAddr is a loopback address nothing listened on a moment ago
// (FreePort), for a peer that is down (a hub not running). A server that
// a test restarts keeps the port it was given (NATS.Start), rather than
// one closed here and guessed free.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(tb)))
}
