// Command concierge is the Concierge edge service: one binary whose
// subcommands enroll customers, identify faces, manage tiers and models, and
// run the branch daemon. It only wires packages together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"concierge"
)

// command is one subcommand. run gets the arguments after the subcommand name.
type command struct {
	summary string
	run     func(ctx context.Context, m *Main, args []string) error
}

// commands lists every subcommand; each lives in its own cmd_*.go file.
var commands = map[string]command{
	"enroll":   {"enroll a consenting customer from photos", runEnroll},
	"identify": {"identify faces in photos against the gallery", runIdentify},
	"demo":     {"enroll people from real photos and recognise them (the README's demo)", runDemo},
	"models":   {"fetch or verify model files (models fetch|verify)", runModels},
	"bench":    {"benchmark the live pipeline against the naive loop (bench pipeline)", runBench},
	"run":      {"the branch daemon: cameras to arrival alerts over NATS", runRun},
	"forget":   {"delete a customer's biometric data (consent withdrawal)", runForget},
	"eval":     {"measure accuracy on labelled photos, descriptors or clips and recommend thresholds (eval folder|lfw|descriptors|clips)", runEval},
	"tiers":    {"import, show, evaluate tier data (tiers import|show|evaluate|schemes)", runTiers},
	"watch":    {"live arrival alerts for staff terminals", runWatch},
	"feedback": {"customers' \"not this person\" marks and stricter rules (feedback list)", runFeedback},
	"keys":     {"the keys that seal face templates (keys status|rotate)", runKeys},
	"version":  {"the binary's version, commit, Go, OpenCV and model files", runVersion},
	"backup":   {"a consistent copy of the database and keys, while the daemon runs", runBackup},
	"restore":  {"put a backup in place (--force to replace; withdrawals since are kept)", runRestore},

	"customers": {"what is held about customers, for auditors (customers list|show ID|export)", runCustomers},
	"report":    {"service quality per day and tier for the branch manager (aggregates only)", runReport},
}

// Main holds what every subcommand shares. Tests build one with their own
// streams and run it like the binary.
type Main struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	Logger         *slog.Logger

	// onOpen, when set, is called with the running daemon (tests use it to
	// learn the addresses it listens on).
	onOpen func(*Daemon)

	// configPath and dbPath are the common flags of every subcommand.
	configPath string
	dbPath     string

	// command is the subcommand being run: it decides which config
	// sections must be valid (sectionUsers).
	command string
	// calibrating: `eval --calibrate` measures the engine's calibration,
	// so a missing one is no error there.
	calibrating bool
}

// NewMain returns a Main bound to the process's streams.
func NewMain() *Main {
	return &Main{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin}
}

// exitError carries a specific exit status out of a subcommand, for
// commands such as identify that report some failures and go on.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		cancel() // first signal: shut down gracefully
		<-sig
		fmt.Fprintln(os.Stderr, "concierge: second signal, exiting now")
		os.Exit(130)
	}()
	m := NewMain()
	err := m.Run(ctx, os.Args[1:])
	signal.Stop(sig)
	os.Exit(m.exitCode(err))
}

// exitCode reports err on stderr and turns it into the process status:
// 2 for usage errors, 1 for everything else.
func (m *Main) exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(m.Stderr, "concierge: %s\n", ue.msg)
		return 2
	}
	code := concierge.ErrorCode(err)
	if code == concierge.EINTERNAL {
		fmt.Fprintf(m.Stderr, "concierge: %v\n", err)
	} else {
		fmt.Fprintf(m.Stderr, "concierge: %s\n", concierge.ErrorMessage(err))
	}
	return 1
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Run dispatches args to a subcommand.
func (m *Main) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		m.usage()
		if len(args) == 0 {
			return usagef("missing subcommand")
		}
		return nil
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version" // the spelling other tools taught operators
	}
	cmd, ok := commands[args[0]]
	if !ok {
		m.usage()
		return usagef("unknown subcommand %q", args[0])
	}
	m.command = args[0]
	return cmd.run(ctx, m, args[1:])
}

func (m *Main) usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: concierge SUBCOMMAND [--config FILE] [--db PATH] [flags] [args]\n\nsubcommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(m.Stderr, b.String())
}

// flags returns a FlagSet carrying the flags every subcommand accepts.
func (m *Main) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("concierge "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.StringVar(&m.configPath, "config", os.Getenv("CONCIERGE_CONFIG"), "configuration file (YAML)")
	fs.StringVar(&m.dbPath, "db", "", "SQLite database path (overrides the config's db)")
	return fs
}

// parse parses args with fs, allowing flags after positional arguments
// (`identify a.jpg --json`), and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// config loads the configuration named by --config and applies --db.
func (m *Main) config() (Config, error) {
	c, err := ReadConfigFile(m.configPath)
	if section, ok := ignorableFor(err, m.command); ok {
		fmt.Fprintf(m.Stderr, "concierge: warning: %v (`%s` does not use %s; `run` will refuse it)\n", err, m.command, section)
	} else if err != nil {
		return c, concierge.Errorf(concierge.EINVALID, "%w", err)
	}
	if m.dbPath != "" {
		c.DB = m.dbPath
	}
	if err := c.resolveEngine(); err != nil && !m.calibrating {
		// A withdrawal, a backup or a key rotation must not wait for
		// the engine's calibration to be fixed.
		err = &sectionError{calibrationSection, err}
		if section, ok := ignorableFor(err, m.command); ok {
			fmt.Fprintf(m.Stderr, "concierge: warning: %v (`%s` does not use %s; `run` will refuse it)\n", err, m.command, section)
		} else {
			return c, concierge.Errorf(concierge.EINVALID, "config: %w", err)
		}
	}
	m.Logger = newLogger(m.Stderr, c.Log)
	return c, nil
}

func newLogger(w io.Writer, lc LogConfig) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(lc.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
