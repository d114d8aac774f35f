package main

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"concierge/alert"
)

// validate names the first nats key that cannot work. The embedded
// server is closed by default: it refuses to listen beyond this machine
// without TLS, since the box's credentials and its alerts would cross the
// network in the clear.
func (n NATSConfig) validate() error {
	if (n.ServerTLSCert == "") != (n.ServerTLSKey == "") {
		return errors.New("nats.server_tls_cert and nats.server_tls_key: set both or neither")
	}
	if n.URL != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(n.Listen)
	if err != nil {
		return fmt.Errorf("nats.listen: %q: %w", n.Listen, err)
	}
	if !isLoopback(host) && n.ServerTLSCert == "" && n.ServerConfig == "" {
		return fmt.Errorf("nats.listen: %q reaches beyond this machine; set nats.server_tls_cert and nats.server_tls_key, "+
			"or listen on 127.0.0.1", n.Listen)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// natsCredentials is the directory of the box's own NATS identities:
// nats.credentials_dir, else nats/ beside the database, in the state
// directory that only the service's user can read.
func (c Config) natsCredentials() alert.Credentials {
	if c.NATS.CredentialsDir != "" {
		return alert.Credentials{Dir: c.NATS.CredentialsDir}
	}
	return alert.Credentials{Dir: filepath.Join(filepath.Dir(c.DB), "nats")}
}
