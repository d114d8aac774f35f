// Package hub is the HQ side of a bank's network of branches: an embedded
// NATS server with JetStream that branch boxes join as leaf nodes, one
// nkey identity per branch with the subjects of its job, and the stream
// that carries network-scope enrollments and withdrawals between them.
package hub

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/nats-io/nkeys"
	"gopkg.in/yaml.v3"

	"concierge"
)

// Default addresses: loopback only, since anything wider needs TLS.
const (
	DefaultListen     = "127.0.0.1:4223"
	DefaultLeafListen = "127.0.0.1:7422"
)

// Config is hub.yaml. Paths are relative to the file's directory.
type Config struct {
	// Listen is where HQ's own tools connect (nats://).
	Listen string `yaml:"listen"`
	// LeafListen is where branch boxes connect as leaf nodes.
	LeafListen string `yaml:"leaf_listen"`
	// StoreDir holds the hub's JetStream files, encrypted with StoreKeyFile.
	StoreDir     string `yaml:"store_dir"`
	StoreKeyFile string `yaml:"store_key_file"`
	// AdminSeedFile is the hub's own identity, which manages the stream.
	AdminSeedFile string `yaml:"admin_seed_file"`
	// TLSCert and TLSKey make both listeners speak TLS; either listener
	// beyond loopback is refused without them.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// Branches are the boxes allowed in, by their public nkey only: the
	// seeds live in the branches' .creds files, never at the hub.
	Branches []Branch `yaml:"branches"`

	dir string
}

// Branch is one box's identity at the hub.
type Branch struct {
	ID   string `yaml:"id"`
	NKey string `yaml:"nkey"`
}

var branchID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidBranchID reports whether id can be a branch's subject token and
// file name.
func ValidBranchID(id string) error {
	if id == HQ {
		return concierge.Errorf(concierge.EINVALID, "branch id %q is HQ's own (its tier files)", id)
	}
	if !branchID.MatchString(id) {
		return concierge.Errorf(concierge.EINVALID, "branch id %q: use 1-64 letters, digits, '-' or '_'", id)
	}
	return nil
}

// Validate names the first key that cannot work.
func (c Config) Validate() error {
	if c.Listen == "" {
		return concierge.Errorf(concierge.EINVALID, "hub listen: must be set")
	}
	if c.LeafListen == "" {
		return concierge.Errorf(concierge.EINVALID, "hub leaf_listen: must be set")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return concierge.Errorf(concierge.EINVALID, "hub tls_cert and tls_key: set both or neither")
	}
	if c.StoreDir == "" || c.StoreKeyFile == "" || c.AdminSeedFile == "" {
		return concierge.Errorf(concierge.EINVALID, "hub store_dir, store_key_file and admin_seed_file: must be set")
	}
	if len(c.Branches) == 0 {
		return concierge.Errorf(concierge.EINVALID, "hub branches: at least one branch")
	}
	seen := map[string]bool{}
	for i, b := range c.Branches {
		if err := ValidBranchID(b.ID); err != nil {
			return fmt.Errorf("hub branches[%d]: %w", i, err)
		}
		if seen[b.ID] {
			return concierge.Errorf(concierge.EINVALID, "hub branches[%d]: %q listed twice", i, b.ID)
		}
		seen[b.ID] = true
		if !nkeys.IsValidPublicUserKey(b.NKey) {
			return concierge.Errorf(concierge.EINVALID, "hub branches[%d] (%s): nkey is not a public user key", i, b.ID)
		}
	}
	return nil
}

// path resolves a path of the file against its directory.
func (c Config) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// ReadConfig reads and validates hub.yaml.
func ReadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("hub config: %w", err)
	}
	c := Config{Listen: DefaultListen, LeafListen: DefaultLeafListen}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return Config{}, concierge.Errorf(concierge.EINVALID, "hub config %s: %w", path, err)
	}
	c.dir = filepath.Dir(path)
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("hub config %s: %w", path, err)
	}
	return c, nil
}

// InitOptions are `concierge hub init`'s arguments.
type InitOptions struct {
	Dir        string
	Branches   []string
	Listen     string
	LeafListen string
}

// Files written by Init in its directory, beside hub.yaml.
const (
	ConfigFile     = "hub.yaml"
	NetworkKeyFile = "network.key"
)

const configHead = "# Concierge HQ hub (concierge hub --config " + ConfigFile + ").\n" +
	"# Branches are known by public keys only; their seeds are in <branch>.creds,\n" +
	"# which go to each branch with " + NetworkKeyFile + " and are then removed from here.\n"

// CredsFile is the file Init writes for a branch.
func CredsFile(dir, branch string) string { return filepath.Join(dir, branch+".creds") }

// Init provisions a hub in dir: hub.yaml, the hub's own seed and store
// key, one <branch>.creds per branch and the network key that seals
// templates between branches. It refuses to overwrite a provisioned
// directory, since new seeds would lock every branch out.
func Init(o InitOptions) (Config, error) {
	if o.Dir == "" {
		return Config{}, concierge.Errorf(concierge.EINVALID, "hub init: --dir must be set")
	}
	if len(o.Branches) == 0 {
		return Config{}, concierge.Errorf(concierge.EINVALID, "hub init: at least one --branch")
	}
	c := Config{Listen: o.Listen, LeafListen: o.LeafListen, StoreDir: "store",
		StoreKeyFile: "jetstream.key", AdminSeedFile: "hub.nk", dir: o.Dir}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.LeafListen == "" {
		c.LeafListen = DefaultLeafListen
	}
	if _, err := os.Stat(filepath.Join(o.Dir, ConfigFile)); err == nil {
		return Config{}, concierge.Errorf(concierge.ECONFLICT, "hub init: %s already exists; add branches by editing it", filepath.Join(o.Dir, ConfigFile))
	}
	seen := map[string]bool{}
	for _, id := range o.Branches {
		if err := ValidBranchID(id); err != nil {
			return Config{}, fmt.Errorf("hub init: %w", err)
		}
		if seen[id] {
			return Config{}, concierge.Errorf(concierge.EINVALID, "hub init: branch %q given twice", id)
		}
		seen[id] = true
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return Config{}, fmt.Errorf("hub init: %w", err)
	}
	if err := os.Chmod(o.Dir, 0o700); err != nil {
		return Config{}, fmt.Errorf("hub init: %w", err)
	}
	if _, err := NewBranchCreds(o.Dir, "hub"); err != nil {
		return Config{}, err
	}
	if err := os.Rename(CredsFile(o.Dir, "hub"), c.path(c.AdminSeedFile)); err != nil {
		return Config{}, fmt.Errorf("hub init: %w", err)
	}
	if err := writeSecret(c.path(c.StoreKeyFile), randomHex()); err != nil {
		return Config{}, err
	}
	if err := writeSecret(filepath.Join(o.Dir, NetworkKeyFile), randomHex()); err != nil {
		return Config{}, err
	}
	for _, id := range o.Branches {
		pub, err := NewBranchCreds(o.Dir, id)
		if err != nil {
			return Config{}, err
		}
		c.Branches = append(c.Branches, Branch{ID: id, NKey: pub})
	}
	adminSeed, err := ReadSeed(c.path(c.AdminSeedFile))
	if err != nil {
		return Config{}, fmt.Errorf("hub init: %w", err)
	}
	adminPub, err := publicKey(adminSeed)
	if err != nil {
		return Config{}, fmt.Errorf("hub init: %w", err)
	}
	acc, err := NATSAccounts(c, adminPub)
	if err != nil {
		return Config{}, err
	}
	if err := writeFile(filepath.Join(o.Dir, AccountsConfFile), acc, 0o600); err != nil {
		return Config{}, err
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		return Config{}, fmt.Errorf("hub init: %w", err)
	}
	if err := writeFile(filepath.Join(o.Dir, ConfigFile), append([]byte(configHead), out...), 0o600); err != nil {
		return Config{}, err
	}
	return c, nil
}

// NewBranchCreds writes DIR/<branch>.creds with a new user nkey seed and
// returns its public key, for adding a branch to an existing hub.
func NewBranchCreds(dir, branch string) (string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", fmt.Errorf("branch creds: %w", err)
	}
	defer kp.Wipe()
	seed, err := kp.Seed()
	if err != nil {
		return "", fmt.Errorf("branch creds: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("branch creds: %w", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Concierge branch %s: its identity at the HQ hub (hq.credentials). Keep it 0600.\n", branch)
	b.WriteString("-----BEGIN USER NKEY SEED-----\n")
	b.Write(seed)
	b.WriteString("\n------END USER NKEY SEED------\n")
	if err := writeFile(CredsFile(dir, branch), b.Bytes(), 0o600); err != nil {
		return "", err
	}
	return pub, nil
}

// ReadSeed returns the nkey seed in a .creds (or bare seed) file.
func ReadSeed(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return "", concierge.Errorf(concierge.EINVALID, "credentials %s: no user nkey seed: %w", path, err)
	}
	defer kp.Wipe()
	seed, err := kp.Seed()
	if err != nil {
		return "", concierge.Errorf(concierge.EINVALID, "credentials %s: %w", path, err)
	}
	if pub, _ := kp.PublicKey(); !nkeys.IsValidPublicUserKey(pub) {
		return "", concierge.Errorf(concierge.EINVALID, "credentials %s: not a user nkey seed", path)
	}
	return string(seed), nil
}

func randomHex() string {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(raw)
}

func writeSecret(path, s string) error { return writeFile(path, []byte(s+"\n"), 0o600) }

// writeFile creates path and never replaces one: a key or seed once given
// out must not silently change.
func writeFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return concierge.Errorf(concierge.ECONFLICT, "%s already exists", path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadKey reads a hex key file written by Init.
func ReadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	k, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(k) != 32 {
		return nil, concierge.Errorf(concierge.EINVALID, "key %s: want 64 hex digits", path)
	}
	return k, nil
}

// AddBranch provisions another branch in the hub at configPath: its
// <branch>.creds beside hub.yaml, its public key in hub.yaml and in
// nats-accounts.conf. The running hub admits it after a restart; the
// branch also needs the existing network.key.
func AddBranch(configPath, id string) (Config, error) {
	c, err := ReadConfig(configPath)
	if err != nil {
		return Config{}, err
	}
	if err := ValidBranchID(id); err != nil {
		return Config{}, fmt.Errorf("hub add-branch: %w", err)
	}
	for _, b := range c.Branches {
		if b.ID == id {
			return Config{}, concierge.Errorf(concierge.ECONFLICT, "hub add-branch: branch %q is already in %s", id, configPath)
		}
	}
	pub, err := NewBranchCreds(c.dir, id)
	if err != nil {
		return Config{}, err
	}
	c.Branches = append(c.Branches, Branch{ID: id, NKey: pub})
	if err := c.rewrite(configPath); err != nil {
		os.Remove(CredsFile(c.dir, id))
		return Config{}, err
	}
	return c, nil
}

// RemoveBranch retires a branch: its key leaves hub.yaml and
// nats-accounts.conf, so its credential no longer gets in once the hub
// has restarted.
func RemoveBranch(configPath, id string) (Config, error) {
	c, err := ReadConfig(configPath)
	if err != nil {
		return Config{}, err
	}
	i := slices.IndexFunc(c.Branches, func(b Branch) bool { return b.ID == id })
	if i < 0 {
		return Config{}, concierge.Errorf(concierge.ENOTFOUND, "hub remove-branch: no branch %q in %s", id, configPath)
	}
	if len(c.Branches) == 1 {
		return Config{}, concierge.Errorf(concierge.EINVALID, "hub remove-branch: %q is the last branch", id)
	}
	c.Branches = slices.Delete(c.Branches, i, i+1)
	if err := c.rewrite(configPath); err != nil {
		return Config{}, err
	}
	return c, nil
}

// rewrite replaces hub.yaml and nats-accounts.conf, each by a rename so
// that a crash leaves the old or the new file, never half of one.
func (c Config) rewrite(configPath string) error {
	seed, err := ReadSeed(c.path(c.AdminSeedFile))
	if err != nil {
		return err
	}
	adminPub, err := publicKey(seed)
	if err != nil {
		return err
	}
	acc, err := NATSAccounts(c, adminPub)
	if err != nil {
		return err
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{configPath, append([]byte(configHead), out...)}, {filepath.Join(c.dir, AccountsConfFile), acc}} {
		tmp := f.path + ".new"
		os.Remove(tmp)
		if err := writeFile(tmp, f.data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, f.path); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("hub config: %w", err)
		}
	}
	return nil
}

// CredsBranch is the branch a .creds file from Init or AddBranch was made
// for, read from its first line; "" when the file does not say.
func CredsBranch(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	rest, ok := bytes.CutPrefix(line, []byte("# Concierge branch "))
	if !ok {
		return "", nil
	}
	id, _, ok := bytes.Cut(rest, []byte(":"))
	if !ok {
		return "", nil
	}
	return string(id), nil
}
