package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"concierge/hub"
)

// Registered here rather than in main.go's table so that the multi-branch
// command stays in one file.
func init() {
	commands["hub"] = command{"the HQ hub that branch boxes join (hub init|hub --config hub.yaml)", runHub}
}

const hubUsage = `usage: concierge hub --config DIR/hub.yaml
       concierge hub init --dir DIR --branch ID [--branch ID ...] [--listen ADDR] [--leaf-listen ADDR]
       concierge hub add-branch|remove-branch --config DIR/hub.yaml --branch ID
init writes DIR/hub.yaml, the hub's own seed and store key, DIR/<ID>.creds for each branch and
DIR/network.key; give each branch its .creds and network.key (hq.credentials, hq.network_key) and
remove them from DIR. add-branch writes DIR/<ID>.creds and adds the branch to hub.yaml and
nats-accounts.conf; remove-branch takes it out; restart the hub after either. Without a verb, runs
the hub until interrupted.`

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runHub(ctx context.Context, m *Main, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "init":
			return runHubInit(m, args[1:])
		case "add-branch", "remove-branch":
			return runHubBranch(m, args[0], args[1:])
		}
	}
	fs := flag.NewFlagSet("concierge hub", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	path := fs.String("config", "", "the hub's configuration (DIR/hub.yaml from hub init)")
	fs.Usage = func() { fmt.Fprintln(m.Stderr, hubUsage); fs.PrintDefaults() }
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("hub: unexpected argument %q", pos[0])
	}
	if *path == "" {
		return usagef("hub: --config must name the hub's hub.yaml")
	}
	cfg, err := hub.ReadConfig(*path)
	if err != nil {
		return err
	}
	h := hub.New(cfg)
	if m.Logger == nil {
		m.Logger = newLogger(m.Stderr, DefaultConfig().Log)
	}
	h.Logger = m.Logger
	if err := h.Open(ctx); err != nil {
		return err
	}
	defer h.Close()
	<-ctx.Done()
	return nil
}

func runHubInit(m *Main, args []string) error {
	fs := flag.NewFlagSet("concierge hub init", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	var o hub.InitOptions
	var branches stringList
	fs.StringVar(&o.Dir, "dir", "", "directory to write hub.yaml and the branches' credentials into")
	fs.Var(&branches, "branch", "a branch id (repeat for each branch)")
	fs.StringVar(&o.Listen, "listen", hub.DefaultListen, "host:port for HQ's own clients")
	fs.StringVar(&o.LeafListen, "leaf-listen", hub.DefaultLeafListen, "host:port where branch boxes connect as leaf nodes")
	fs.Usage = func() { fmt.Fprintln(m.Stderr, hubUsage); fs.PrintDefaults() }
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("hub init: unexpected argument %q", pos[0])
	}
	if o.Dir == "" || len(branches) == 0 {
		return usagef("hub init: --dir and at least one --branch are required")
	}
	o.Branches = branches
	cfg, err := hub.Init(o)
	if err != nil {
		return err
	}
	out := struct {
		Config     string            `json:"config"`
		NetworkKey string            `json:"network_key"`
		Creds      map[string]string `json:"creds"`
		LeafURL    string            `json:"leaf_url"`
	}{filepath.Join(o.Dir, hub.ConfigFile), filepath.Join(o.Dir, hub.NetworkKeyFile), map[string]string{}, "nats-leaf://" + cfg.LeafListen}
	for _, b := range cfg.Branches {
		out.Creds[b.ID] = hub.CredsFile(o.Dir, b.ID)
	}
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func runHubBranch(m *Main, verb string, args []string) error {
	fs := flag.NewFlagSet("concierge hub "+verb, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	path := fs.String("config", "", "the hub's hub.yaml")
	id := fs.String("branch", "", "the branch id")
	fs.Usage = func() { fmt.Fprintln(m.Stderr, hubUsage); fs.PrintDefaults() }
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("hub %s: unexpected argument %q", verb, pos[0])
	}
	if *path == "" || *id == "" {
		return usagef("hub %s: --config and --branch are required", verb)
	}
	out := map[string]string{"branch": *id}
	if verb == "add-branch" {
		cfg, err := hub.AddBranch(*path, *id)
		if err != nil {
			return err
		}
		out["creds"] = hub.CredsFile(filepath.Dir(*path), *id)
		out["network_key"] = filepath.Join(filepath.Dir(*path), hub.NetworkKeyFile)
		out["leaf_url"] = "nats-leaf://" + cfg.LeafListen
	} else if _, err := hub.RemoveBranch(*path, *id); err != nil {
		return err
	}
	out["next"] = "restart the hub"
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
