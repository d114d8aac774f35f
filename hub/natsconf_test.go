package hub_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"concierge/hub"
)

// deploy/nats/ is the hub for stock nats-server: with the accounts file
// from hub init, nats-server reads the same identities and permissions as
// the embedded hub, in the same domain, and the stream file describes the
// same stream with three replicas.
func TestDeployNATSMatchesTheHub(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hq")
	cfg, err := hub.Init(hub.InitOptions{Dir: dir, Branches: []string{"b001", "b002"}})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile("../deploy/nats/hub-node.conf")
	if err != nil {
		t.Fatal(err)
	}
	crt, key := selfSigned(t)
	text := strings.NewReplacer("/etc/nats-hq/tls/node.crt", crt, "/etc/nats-hq/tls/node.key", key,
		"/etc/nats-hq/tls/ca.crt", crt, "/var/lib/nats-hq", filepath.Join(t.TempDir(), "js")).Replace(string(conf))
	path := filepath.Join(dir, "hub-node.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HUB_NODE", "hq1")
	t.Setenv("HUB_STORE_KEY", strings.Repeat("k", 40))
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if opts.JetStreamDomain != hub.Domain || opts.LeafNode.Port != 7422 || len(opts.Routes) != 3 || opts.JetStreamCipher != server.AES {
		t.Fatalf("domain %q leaf port %d routes %d cipher %v", opts.JetStreamDomain, opts.LeafNode.Port, len(opts.Routes), opts.JetStreamCipher)
	}
	if len(opts.Nkeys) != 3 {
		t.Fatalf("%d identities, want the hub's and two branches'", len(opts.Nkeys))
	}
	for _, b := range cfg.Branches {
		i := slices.IndexFunc(opts.Nkeys, func(u *server.NkeyUser) bool { return u.Nkey == b.NKey })
		if i < 0 {
			t.Fatalf("branch %s missing", b.ID)
		}
		got, want := opts.Nkeys[i].Permissions, hub.Permissions(b.ID)
		if got == nil || !slices.Equal(got.Publish.Allow, want.Publish.Allow) || !slices.Equal(got.Subscribe.Allow, want.Subscribe.Allow) {
			t.Fatalf("branch %s permissions %+v, want %+v", b.ID, got, want)
		}
		if opts.Nkeys[i].Account == nil || opts.Nkeys[i].Account.Name != hub.Account {
			t.Fatalf("branch %s not in the network account", b.ID)
		}
	}

	raw, err := os.ReadFile("../deploy/nats/concierge-net-stream.json")
	if err != nil {
		t.Fatal(err)
	}
	var sc jetstream.StreamConfig
	if err := json.Unmarshal(raw, &sc); err != nil {
		t.Fatal(err)
	}
	if sc.Name != hub.StreamName || !slices.Equal(sc.Subjects, []string{hub.SubjectPrefix + ".>"}) ||
		sc.MaxMsgsPerSubject != 1 || sc.Replicas != 3 || sc.Storage != jetstream.FileStorage {
		t.Fatalf("stream %+v", sc)
	}
}

func selfSigned(t *testing.T) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hq1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"hq1", "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA:        true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(k)
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	return crt, key
}
