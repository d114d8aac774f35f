package alert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"concierge"
)

// DefaultListen is where the embedded server listens when the config says
// nothing: loopback only, since lobby devices reach alerts through the
// daemon's web pages or a configured leaf node, never directly.
const DefaultListen = "127.0.0.1:4222"

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Listen is host:port for clients; port -1 picks a free one (tests).
	Listen string
	// StoreDir holds JetStream's files; alerts survive restarts there.
	StoreDir string
	// ConfigFile, when set, is a nats-server configuration file read first
	// (leaf node to HQ, accounts, TLS); Listen and StoreDir override it.
	ConfigFile string
	// ReadyTimeout bounds how long Open waits for the server to accept
	// clients (default 10s).
	ReadyTimeout time.Duration
	// Credentials, when set, close the server: only these identities may
	// connect, each with the permissions of its job on Branch's subjects
	// (Permissions). The daemon always sets them; tests of the library
	// may run an open server.
	Credentials *Credentials
	Branch      string
	// StoreKey, when set, encrypts the JetStream store on disk (AES-GCM);
	// an unencrypted store is converted at the first start with a key.
	StoreKey string
	// TLSCert and TLSKey make the server speak TLS to clients. Listening
	// on anything but loopback is refused without TLS (here or in
	// ConfigFile), since credentials and alerts would cross the network
	// in the clear.
	TLSCert, TLSKey string
	// HQURL and HQCredentials, when set, join the bank's hub as a leaf
	// node (nats-leaf://host:port) with the branch's .creds file from
	// `concierge hub init`. HQCA, when set, is the CA bundle of the hub's
	// TLS certificate. The box opens and serves its own clients whether or
	// not the hub answers, and the leaf reconnects on its own.
	HQURL, HQCredentials, HQCA string
	Logger                     *slog.Logger
}

// localOnly are the subjects that never cross the leaf connection to the
// hub, either way: the branch's alerts and its staff desk stay on the box,
// and nothing from HQ can pose as one of them. Network events use their own
// subjects and the hub's JetStream domain.
var localOnly = []string{"concierge.>", "concierge-desk.>"}

// hqRemote is the leaf connection to the hub. It binds the box's one
// account; the box's own identities keep their permissions, and the hub
// decides what the branch's credential may send and receive there.
func hqRemote(rawURL, credsFile, caFile string) (*server.RemoteLeafOpts, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, concierge.Errorf(concierge.EINVALID, "hq url %q: want nats-leaf://host:port", rawURL)
	}
	b, err := os.ReadFile(credsFile)
	if err != nil {
		return nil, concierge.Errorf(concierge.EINVALID, "hq credentials: %w", err)
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return nil, concierge.Errorf(concierge.EINVALID, "hq credentials %s: no user nkey seed: %w", credsFile, err)
	}
	defer kp.Wipe()
	seed, err := kp.Seed()
	if err != nil {
		return nil, concierge.Errorf(concierge.EINVALID, "hq credentials %s: %w", credsFile, err)
	}
	r := &server.RemoteLeafOpts{URLs: []*url.URL{u}, Nkey: string(seed),
		DenyExports: localOnly, DenyImports: localOnly}
	if caFile != "" {
		// The box is the client here: the CA verifies the hub (RootCAs),
		// which the server-side GenTLSConfig would not set.
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, concierge.Errorf(concierge.EINVALID, "hq ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, concierge.Errorf(concierge.EINVALID, "hq ca %s: no PEM certificate", caFile)
		}
		r.TLS, r.TLSConfig = true, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return r, nil
}

// Server is the embedded NATS server with JetStream on. Open starts it;
// Close shuts it down and waits until it is gone.
type Server struct {
	cfg  ServerConfig
	ns   *server.Server
	once sync.Once
}

// NewServer returns an unopened server.
func NewServer(cfg ServerConfig) *Server { return &Server{cfg: cfg} }

// Open starts the server and returns once it accepts connections.
func (s *Server) Open() error {
	if s.ns != nil {
		return errors.New("nats server: already open")
	}
	opts := &server.Options{}
	if s.cfg.ConfigFile != "" {
		o, err := server.ProcessConfigFile(s.cfg.ConfigFile)
		if err != nil {
			return concierge.Errorf(concierge.EINVALID, "nats server config %s: %w", s.cfg.ConfigFile, err)
		}
		opts = o
	}
	listen := s.cfg.Listen
	if listen == "" && s.cfg.ConfigFile == "" {
		listen = DefaultListen
	}
	if listen != "" {
		host, port, err := splitListen(listen)
		if err != nil {
			return err
		}
		opts.Host, opts.Port = host, port
	}
	if s.cfg.StoreDir != "" {
		opts.StoreDir = s.cfg.StoreDir
	}
	if opts.StoreDir == "" {
		return concierge.Errorf(concierge.EINVALID, "nats server: store dir must be set")
	}
	// JetStream keeps alerts with names and faces: the service's user only.
	if err := os.MkdirAll(opts.StoreDir, 0o700); err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "nats server: %w", err)
	}
	if err := os.Chmod(opts.StoreDir, 0o700); err != nil {
		return concierge.Errorf(concierge.EUNAVAILABLE, "nats server: %w", err)
	}
	if s.cfg.StoreKey != "" {
		opts.JetStreamKey, opts.JetStreamCipher = s.cfg.StoreKey, server.AES
	}
	if s.cfg.TLSCert != "" || s.cfg.TLSKey != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: s.cfg.TLSCert, KeyFile: s.cfg.TLSKey})
		if err != nil {
			return concierge.Errorf(concierge.EINVALID, "nats server tls: %w", err)
		}
		opts.TLSConfig, opts.TLS = tc, true
	}
	if !loopback(opts.Host) && opts.TLSConfig == nil {
		return concierge.Errorf(concierge.EINVALID, "nats server: listening on %q reaches beyond this machine and needs TLS "+
			"(nats.server_tls_cert and nats.server_tls_key), or listen on 127.0.0.1", opts.Host)
	}
	if c := s.cfg.Credentials; c != nil {
		if s.cfg.Branch == "" {
			return concierge.Errorf(concierge.EINVALID, "nats server: credentials need the branch")
		}
		users, err := c.users(s.cfg.Branch)
		if err != nil {
			return err
		}
		opts.Nkeys = append(opts.Nkeys, users...)
		opts.NoAuthUser = ""
	}
	if s.cfg.HQURL != "" {
		r, err := hqRemote(s.cfg.HQURL, s.cfg.HQCredentials, s.cfg.HQCA)
		if err != nil {
			return err
		}
		opts.LeafNode.Remotes = append(opts.LeafNode.Remotes, r)
	}
	opts.JetStream = true
	// The daemon owns signals: SIGINT must close cameras and flush the
	// outbox before the server goes, not kill the server under them.
	opts.NoSigs = true
	log := s.logger()
	ns, err := server.NewServer(opts)
	if err != nil {
		return concierge.Errorf(concierge.EINVALID, "nats server: %w", err)
	}
	ns.SetLoggerV2(serverLog{log}, log.Enabled(context.Background(), slog.LevelDebug), false, false)
	s.ns = ns
	ns.Start()
	timeout := s.cfg.ReadyTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if !ns.ReadyForConnections(timeout) {
		s.shutdown()
		return concierge.Errorf(concierge.EUNAVAILABLE, "nats server on %s: not ready after %v", listen, timeout)
	}
	log.Info("nats server ready", slog.String("url", ns.ClientURL()), slog.String("store_dir", opts.StoreDir))
	return nil
}

// ClientURL is the URL clients use to reach this server (nats://127.0.0.1:port).
func (s *Server) ClientURL() string {
	if s.ns == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Addr is the address the server listens on, with the real port when the
// config asked for any free one.
func (s *Server) Addr() string {
	if s.ns == nil || s.ns.Addr() == nil {
		return ""
	}
	return s.ns.Addr().String()
}

// Close shuts the server down and waits until it has; calling it again
// does nothing.
func (s *Server) Close() error {
	s.once.Do(s.shutdown)
	return nil
}

func (s *Server) shutdown() {
	if s.ns == nil {
		return
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

func (s *Server) logger() *slog.Logger {
	l := s.cfg.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.WithGroup("alert").With(slog.String("component", "nats-server"))
}

// splitListen parses host:port; port -1 asks the server for a free port,
// and an empty host means every interface, as in net.Listen.
func splitListen(listen string) (string, int, error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, concierge.Errorf(concierge.EINVALID, "nats listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, concierge.Errorf(concierge.EINVALID, "nats listen %q: bad port", listen)
	}
	return host, port, nil
}

// serverLog routes nats-server's printf-style log into slog.
type serverLog struct{ l *slog.Logger }

func (s serverLog) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }
func (s serverLog) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s serverLog) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLog) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLog) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLog) Tracef(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
