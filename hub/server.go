package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// Hub is the running HQ server. Open starts it and makes the network
// stream; Close shuts it down and is safe to call twice.
type Hub struct {
	cfg    Config
	Logger *slog.Logger

	ns   *server.Server
	opts *server.Options
	once sync.Once
}

// New returns an unopened hub.
func New(cfg Config) *Hub { return &Hub{cfg: cfg} }

// Open starts the server and returns once the network stream exists.
func (h *Hub) Open(ctx context.Context) error {
	if h.ns != nil {
		return errors.New("hub: already open")
	}
	c := h.cfg
	if err := c.Validate(); err != nil {
		return err
	}
	opts := &server.Options{JetStream: true, JetStreamDomain: Domain, NoSigs: true, ServerName: "concierge-hq"}
	var err error
	if opts.Host, opts.Port, err = splitListen(c.Listen); err != nil {
		return fmt.Errorf("hub listen: %w", err)
	}
	if opts.LeafNode.Host, opts.LeafNode.Port, err = splitListen(c.LeafListen); err != nil {
		return fmt.Errorf("hub leaf_listen: %w", err)
	}
	if c.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.path(c.TLSCert), KeyFile: c.path(c.TLSKey)})
		if err != nil {
			return fmt.Errorf("hub tls: %w", err)
		}
		opts.TLSConfig, opts.TLS = tc, true
		opts.LeafNode.TLSConfig = tc
	} else if !loopback(opts.Host) || !loopback(opts.LeafNode.Host) {
		return fmt.Errorf("hub: listening beyond loopback (%s, %s) needs tls_cert and tls_key", c.Listen, c.LeafListen)
	}
	opts.StoreDir = c.path(c.StoreDir)
	if err := os.MkdirAll(opts.StoreDir, 0o700); err != nil {
		return fmt.Errorf("hub store: %w", err)
	}
	key, err := os.ReadFile(c.path(c.StoreKeyFile))
	if err != nil {
		return fmt.Errorf("hub store key: %w", err)
	}
	opts.JetStreamKey, opts.JetStreamCipher = strings.TrimSpace(string(key)), server.AES
	adminSeed, err := ReadSeed(c.path(c.AdminSeedFile))
	if err != nil {
		return fmt.Errorf("hub admin seed: %w", err)
	}
	adminPub, err := publicKey(adminSeed)
	if err != nil {
		return err
	}
	acc := server.NewAccount(Account)
	opts.Accounts = []*server.Account{acc}
	opts.Nkeys = []*server.NkeyUser{{Nkey: adminPub, Account: acc}}
	for _, b := range c.Branches {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: b.NKey, Account: acc, Permissions: Permissions(b.ID)})
	}
	log := h.logger()
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	ns.SetLoggerV2(serverLog{log}, false, false, false)
	h.ns, h.opts = ns, opts
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		h.shutdown()
		return errors.New("hub: server not ready after 10s")
	}
	// Accounts from options start without JetStream; the network account
	// is the one that needs it, without limits of its own.
	live, err := ns.LookupAccount(Account)
	if err != nil {
		h.shutdown()
		return fmt.Errorf("hub account: %w", err)
	}
	if err := live.EnableJetStream(map[string]server.JetStreamAccountLimits{
		"": {MaxMemory: -1, MaxStore: -1, MaxStreams: -1, MaxConsumers: -1}}, nil); err != nil {
		h.shutdown()
		return fmt.Errorf("hub jetstream: %w", err)
	}
	if err := h.ensureStream(ctx, adminSeed); err != nil {
		h.shutdown()
		return err
	}
	log.Info("hub ready", slog.String("url", ns.ClientURL()), slog.String("leaf", h.LeafAddr()),
		slog.Int("branches", len(c.Branches)))
	return nil
}

// ensureStream makes the network stream. It keeps the last event of each
// customer per origin branch (a customer's subject), so the history a new
// box reads is the current state rather than every change ever made, and
// a withdrawal stays there for boxes that were offline.
func (h *Hub) ensureStream(ctx context.Context, seed string) error {
	// In process: no TCP, so no TLS the hub would have to trust itself.
	nc, err := nats.Connect("", nats.InProcessServer(h.ns), nats.Name("concierge-hub"), nkeyOption(seed))
	if err != nil {
		return fmt.Errorf("hub connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("hub jetstream: %w", err)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              StreamName,
		Subjects:          []string{SubjectPrefix + ".>"},
		Storage:           jetstream.FileStorage,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("hub stream %s: %w", StreamName, err)
	}
	return nil
}

// ClientURL is where HQ tools connect.
func (h *Hub) ClientURL() string {
	if h.ns == nil {
		return ""
	}
	return h.ns.ClientURL()
}

// LeafAddr is host:port of the leaf-node listener, with the real port.
func (h *Hub) LeafAddr() string {
	if h.ns == nil {
		return ""
	}
	// The server writes the port it picked back into its options.
	return net.JoinHostPort(h.opts.LeafNode.Host, strconv.Itoa(h.opts.LeafNode.Port))
}

// LeafURL is what a branch puts in hq.url.
func (h *Hub) LeafURL() string { return "nats-leaf://" + h.LeafAddr() }

// Close shuts the server down and waits until it has.
func (h *Hub) Close() error {
	h.once.Do(h.shutdown)
	return nil
}

func (h *Hub) shutdown() {
	if h.ns == nil {
		return
	}
	h.ns.Shutdown()
	h.ns.WaitForShutdown()
}

func (h *Hub) logger() *slog.Logger {
	l := h.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.WithGroup("hub")
}

func publicKey(seed string) (string, error) {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return "", fmt.Errorf("nkey seed: %w", err)
	}
	defer kp.Wipe()
	return kp.PublicKey()
}

// nkeyOption signs the server's nonce with seed.
func nkeyOption(seed string) nats.Option {
	pub, _ := publicKey(seed)
	return nats.Nkey(pub, func(nonce []byte) ([]byte, error) {
		kp, err := nkeys.FromSeed([]byte(seed))
		if err != nil {
			return nil, err
		}
		defer kp.Wipe()
		return kp.Sign(nonce)
	})
}

func splitListen(listen string) (string, int, error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %w", listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", listen)
	}
	return host, port, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type serverLog struct{ l *slog.Logger }

func (s serverLog) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }
func (s serverLog) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s serverLog) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLog) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s serverLog) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s serverLog) Tracef(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
