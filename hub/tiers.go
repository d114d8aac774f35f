package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"concierge"
)

// HQ is the origin of what HQ itself sends every box: core banking's tier
// files. No branch may take the id, and only the hub's own identity may
// publish under it.
const HQ = "hq"

// KindTiers is the kind of a tier-file event.
const KindTiers = "tiers"

// tiersSubject is where a tier file goes: one subject per file (by its
// hash), so the stream keeps every month's file for boxes yet to join.
func tiersSubject(data []byte) string {
	sum := sha256.Sum256(data)
	return SubjectPrefix + "." + HQ + ".tiers." + hex.EncodeToString(sum[:16])
}

// PublishTiers sends a core-banking tier file to every box through the
// hub's stream, sealed with the network key, as the hub's own identity.
// Each box imports it as `concierge tiers import` would.
func PublishTiers(ctx context.Context, c Config, networkKey []byte, source string, data []byte) (string, error) {
	if len(networkKey) != 32 {
		return "", concierge.Errorf(concierge.EINVALID, "tiers: the network key must be 32 bytes")
	}
	if len(data) == 0 {
		return "", concierge.Errorf(concierge.EINVALID, "tiers: empty file")
	}
	seed, err := ReadSeed(c.path(c.AdminSeedFile))
	if err != nil {
		return "", err
	}
	opts := []nats.Option{nats.Name("concierge-tiers"), nkeyOption(seed), nats.Timeout(5 * time.Second)}
	url := "nats://" + c.Listen
	if c.TLSCert != "" {
		url = "tls://" + c.Listen
		opts = append(opts, nats.RootCAs(c.path(c.TLSCert)))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return "", concierge.Errorf(concierge.EUNAVAILABLE, "tiers: the hub at %s: %w", c.Listen, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	s := &Replicator{sealKey: derive(networkKey, "concierge-net seal v1")}
	subj := tiersSubject(data)
	sealed, err := s.seal(subj, event{V: 1, Kind: KindTiers, At: time.Now().UTC(), Tiers: data, Source: source})
	if err != nil {
		return "", err
	}
	if _, err := js.Publish(ctx, subj, sealed, jetstream.WithMsgID(subj)); err != nil {
		return "", concierge.Errorf(concierge.EUNAVAILABLE, "tiers: publish to the hub: %w", err)
	}
	return subj, nil
}
