package hub

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nkeys"
)

// AccountsConfFile is what Init writes for a stock nats-server cluster
// (deploy/nats/hub-node.conf includes it).
const AccountsConfFile = "nats-accounts.conf"

// NATSAccounts renders the hub's account, identities and permissions as a
// nats-server configuration block: the same Permissions as the embedded
// hub, for a 3-node cluster of stock servers at HQ.
func NATSAccounts(c Config, adminPub string) ([]byte, error) {
	if !nkeys.IsValidPublicUserKey(adminPub) {
		return nil, fmt.Errorf("nats accounts: the hub's key is not a public user key")
	}
	var b bytes.Buffer
	b.WriteString("# Made by concierge hub init from hub.yaml: the network account, the hub's own\n")
	b.WriteString("# identity and one identity per branch with hub.Permissions. Regenerate, never edit.\n")
	fmt.Fprintf(&b, "accounts: {\n  %s: {\n    jetstream: enabled\n    users: [\n", Account)
	fmt.Fprintf(&b, "      {nkey: %s}\n", adminPub)
	for _, br := range c.Branches {
		p := Permissions(br.ID)
		pub, sub := list(p.Publish.Allow), list(p.Subscribe.Allow)
		fmt.Fprintf(&b, "      # %s\n      {nkey: %s, permissions: {publish: {allow: %s}, subscribe: {allow: %s}}}\n",
			br.ID, br.NKey, pub, sub)
	}
	b.WriteString("    ]\n  }\n}\n")
	return b.Bytes(), nil
}

// list is a quoted array; subjects hold '>' and '$', which must reach the
// server as they are.
func list(ss []string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(ss)
	return string(bytes.TrimSpace(b.Bytes()))
}
