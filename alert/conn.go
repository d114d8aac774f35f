package alert

import (
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"concierge"
)

// ConnConfig says how to reach NATS and who to be there. At most one of
// User, Token, NKeySeedFile and CredsFile is meant to be set; the TLS files
// are independent of them.
type ConnConfig struct {
	URL  string // nats://host:port, or several comma-separated
	Name string // shown in the server's connection list

	User, Password string
	Token          string
	NKeySeedFile   string // a user nkey seed (SU...)
	CredsFile      string // a JWT + seed .creds file (NGS, operator mode)

	TLSCA   string // CA bundle that signs the server's certificate
	TLSCert string // client certificate and key, when the server wants one
	TLSKey  string

	// ReconnectWait is the pause between connection attempts (default 2s).
	ReconnectWait time.Duration
}

// Validate names the first field that cannot work.
func (c ConnConfig) Validate() error {
	auth := 0
	for _, set := range []bool{c.User != "", c.Token != "", c.NKeySeedFile != "", c.CredsFile != ""} {
		if set {
			auth++
		}
	}
	switch {
	case c.URL == "":
		return concierge.Errorf(concierge.EINVALID, "nats url: must be set")
	case auth > 1:
		return concierge.Errorf(concierge.EINVALID, "nats credentials: set only one of user, token, nkey seed file, creds file")
	case c.Password != "" && c.User == "":
		return concierge.Errorf(concierge.EINVALID, "nats password: needs a user")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return concierge.Errorf(concierge.EINVALID, "nats tls: client certificate and key must be set together")
	case c.ReconnectWait < 0:
		return concierge.Errorf(concierge.EINVALID, "nats reconnect wait: must be >= 0")
	}
	return nil
}

// connect dials NATS. The connection never gives up: it retries the first
// connection as well as later ones, because the box boots before the
// network or the hub is up and the alert path must recover on its own.
// onConnect, when set, runs whenever a connection is (re)established;
// extra options come last so callers can tune them.
func (c ConnConfig) connect(log *slog.Logger, onConnect func(), extra ...nats.Option) (*nats.Conn, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	wait := c.ReconnectWait
	if wait == 0 {
		wait = 2 * time.Second
	}
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(wait),
		nats.ReconnectJitter(wait/10, wait/10),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", slog.Any("error", err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", slog.String("url", nc.ConnectedUrlRedacted()))
			if onConnect != nil {
				onConnect()
			}
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("nats connected", slog.String("url", nc.ConnectedUrlRedacted()))
			if onConnect != nil {
				onConnect()
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats error", slog.String("subject", subj), slog.Any("error", err))
		}),
	}
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, concierge.Errorf(concierge.EINVALID, "nats nkey seed file: %w", err)
		}
		opts = append(opts, o)
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	opts = append(opts, extra...)
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, concierge.Errorf(concierge.EUNAVAILABLE, "connect nats: %w", err)
	}
	if !nc.IsConnected() {
		log.Warn("nats not reachable yet; retrying in the background", slog.String("url", redactURL(c.URL)))
	}
	return nc, nil
}

// redactURL hides credentials written into the URLs themselves, so the
// URL can be logged.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "(unparsable url)"
			continue
		}
		if u.User != nil {
			u.User = url.User("redacted")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
