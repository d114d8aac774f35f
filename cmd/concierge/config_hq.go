package main

import (
	"fmt"
	"net/url"
	"path/filepath"
)

// HQConfig joins the box to the bank's hub (docs/branches.md). Without a
// url the box works alone.
type HQConfig struct {
	// URL is the hub's leaf-node listener, nats-leaf://host:port.
	URL string `yaml:"url"`
	// Credentials is the branch's .creds file from `concierge hub init`.
	Credentials string `yaml:"credentials"`
	// NetworkKey seals templates for the other branches; default:
	// network.key beside the credentials, as hub init writes them.
	NetworkKey string `yaml:"network_key"`
	// CA is the CA bundle of the hub's TLS certificate, for a hub
	// reached beyond loopback.
	CA string `yaml:"ca"`
}

// networkKey is the network key file the box uses.
func (h HQConfig) networkKey() string {
	if h.NetworkKey != "" || h.Credentials == "" {
		return h.NetworkKey
	}
	return filepath.Join(filepath.Dir(h.Credentials), "network.key")
}

func (c Config) validateHQ() error {
	h := c.HQ
	if h.URL == "" {
		if h.Credentials != "" || h.NetworkKey != "" || h.CA != "" {
			return fmt.Errorf("hq.url: must be set when hq.credentials, hq.network_key or hq.ca are")
		}
		return nil
	}
	u, err := url.Parse(h.URL)
	if err != nil || u.Host == "" || (u.Scheme != "nats-leaf" && u.Scheme != "tls") {
		return fmt.Errorf("hq.url: %q: want nats-leaf://HOST:PORT", h.URL)
	}
	if h.Credentials == "" {
		return fmt.Errorf("hq.credentials: must name the branch's .creds file from concierge hub init")
	}
	if c.NATS.URL != "" || c.NATS.ServerConfig != "" {
		return fmt.Errorf("hq.url: the box joins the hub through its embedded server; leave nats.url and nats.server_config empty")
	}
	return nil
}
