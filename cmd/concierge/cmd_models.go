package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"concierge"
	"concierge/models"
)

const modelsUsage = `usage: concierge models fetch [--from DIR] [--mirror URL] [--set SET] [--dir DIR]
       concierge models verify [--set SET] [--dir DIR]
SET: dlib, shipped, paddlex, daemon, onnx or all`

func runModels(ctx context.Context, m *Main, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(m.Stderr, modelsUsage)
		return usagef("models: missing action (fetch or verify)")
	}
	switch args[0] {
	case "fetch":
		return m.modelsFetch(ctx, args[1:])
	case "verify":
		return m.modelsVerify(args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(m.Stderr, modelsUsage)
		return nil
	}
	fmt.Fprintln(m.Stderr, modelsUsage)
	return usagef("models: unknown action %q (want fetch or verify)", args[0])
}

// modelsFlags are the flags of models fetch and verify, with dir already
// defaulted from the configuration.
type modelsFlags struct {
	dir, set, from, mirror string
}

// parseModelsFlags also loads the configuration, which sets m.Logger.
func (m *Main) parseModelsFlags(action string, args []string, withFrom bool) (modelsFlags, error) {
	var mf modelsFlags
	fset := m.flags("models " + action)
	fset.StringVar(&mf.dir, "dir", "", "model directory (overrides the config's models.dir)")
	defaultSet := "dlib, plus the ONNX files already in --dir"
	if withFrom {
		defaultSet = "dlib and the shipped files, plus the ONNX files --from holds"
	}
	fset.StringVar(&mf.set, "set", "", "model set: dlib, shipped, paddlex, daemon, onnx or all (default: "+defaultSet+")")
	if withFrom {
		fset.StringVar(&mf.from, "from", "", "directory holding model files, tried before any download")
		fset.StringVar(&mf.mirror, "mirror", "", "base `URL` of the bank's artifact store serving the model files by name, tried after --from (overrides the config's models.mirror)")
	}
	pos, err := parse(fset, args)
	if err != nil {
		return mf, err
	}
	if len(pos) > 0 {
		return mf, usagef("models %s: unexpected argument %q", action, pos[0])
	}
	c, err := m.config()
	if err != nil {
		return mf, err
	}
	if mf.dir == "" {
		mf.dir = c.Models.Dir
	}
	if withFrom {
		if mf.mirror == "" {
			mf.mirror = c.Models.Mirror
		} else if _, err := models.MirrorURL(mf.mirror); err != nil {
			return mf, usagef("--mirror: %v", err)
		}
	}
	return mf, nil
}

// chooseSet resolves --set; without it, the dlib files are required and
// the ONNX ones are taken along only when present in optionalDir.
func chooseSet(name, optionalDir string) (models.Set, error) {
	if name == "" {
		return models.DefaultSet(optionalDir), nil
	}
	s, err := models.ParseSet(name)
	if err != nil {
		return s, usagef("--set: %v", err)
	}
	return s, nil
}

func (m *Main) modelsFetch(ctx context.Context, args []string) error {
	mf, err := m.parseModelsFlags("fetch", args, true)
	if err != nil {
		return err
	}
	set, err := chooseSet(mf.set, mf.from)
	if err != nil {
		return err
	}
	if mf.set == "" {
		// The default engine's files are in the binary: every box can
		// install them, whatever else it can reach.
		set = models.FetchSet(mf.from)
	}
	res, err := models.Fetch(ctx, mf.dir, set, models.Options{From: mf.from, Mirror: mf.mirror, Logger: m.Logger})
	tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	for _, r := range res {
		fmt.Fprintf(tw, "%s\t%s\tsha256 ok\n", r.File.Name, r.Source)
	}
	tw.Flush()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	return concierge.Errorf(models.FetchErrorCode(err), "models fetch into %s:\n%w", mf.dir, indented{err})
}

func (m *Main) modelsVerify(args []string) error {
	mf, err := m.parseModelsFlags("verify", args, false)
	if err != nil {
		return err
	}
	set, err := chooseSet(mf.set, mf.dir)
	if err != nil {
		return err
	}
	var bad []error
	for _, f := range set.Files() {
		if err := models.VerifyFile(mf.dir, f); err != nil {
			bad = append(bad, err)
			continue
		}
		fmt.Fprintf(m.Stdout, "ok %s\n", f.Name)
	}
	if len(bad) == 0 {
		return nil
	}
	return concierge.Errorf(models.VerifyErrorCode(bad), "models verify %s: %d of %d files bad (run `concierge models fetch`):\n%w",
		mf.dir, len(bad), len(set.Files()), indented{errors.Join(bad...)})
}

// indented is err with each line of its message on its own indented
// line (fetch and verify errors list one file, or one source, a line),
// kept in the chain.
type indented struct{ error }

func (e indented) Error() string {
	return "  " + strings.ReplaceAll(e.error.Error(), "\n", "\n  ")
}

func (e indented) Unwrap() error { return e.error }
