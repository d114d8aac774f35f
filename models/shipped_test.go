package models

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestShipped checks that what the binary carries is what the catalogue
// pins, and that each shipped file travels with its licence, notice and
// provenance: a replaced file without its paperwork fails here.
func TestShipped(t *testing.T) {
	if got, want := strings.Join(Shipped.Names(), " "), YuNet+" "+MobileFaceNetFoamliu; got != want {
		t.Errorf("shipped set = %s, want %s", got, want)
	}
	readme, err := os.ReadFile(filepath.Join("dist", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	notice, err := os.ReadFile(filepath.Join("dist", "NOTICE"))
	if err != nil {
		t.Fatal(err)
	}
	license, err := os.ReadFile(filepath.Join("dist", "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(license, []byte("Apache License")) || !bytes.Contains(license, []byte("Version 2.0, January 2004")) {
		t.Error("dist/LICENSE is not the Apache License 2.0")
	}
	for _, f := range All.Files() {
		b, ok := shippedBytes(f)
		if ok != f.Shipped {
			t.Errorf("%s: embedded %v, catalogue says shipped %v", f.Name, ok, f.Shipped)
		}
		if !ok {
			continue
		}
		sum := sha256.Sum256(b)
		if int64(len(b)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
			t.Errorf("%s: embedded copy is %d bytes, sha256 %x; the catalogue pins %d, %s", f.Name, len(b), sum, f.Size, f.SHA256)
		}
		if !bytes.Contains(readme, []byte(f.SHA256)) {
			t.Errorf("dist/README.md does not give %s's sha256 %s", f.Name, f.SHA256)
		}
		if !bytes.Contains(notice, []byte(f.Name)) {
			t.Errorf("dist/NOTICE does not name %s", f.Name)
		}
	}
	// The upstream foamliu export, of which ours is the opset-10 form.
	if !bytes.Contains(readme, []byte("b7120c095d60094f28a4a54ba6a8bf51b297a6273fb40ef6350dfec1f63d9507")) {
		t.Error("dist/README.md lacks the upstream foamliu file's sha256")
	}
}

// TestFetchShippedOffline is a fresh box with no network, no npm, no
// folder and no mirror: the default engine's files still arrive, verified,
// and a damaged copy on disk is replaced from the binary.
func TestFetchShippedOffline(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "models")
	res, err := Fetch(ctx, dir, Shipped, offline(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("results %+v, want the two shipped files", res)
	}
	for _, r := range res {
		if r.Source != SourceShipped {
			t.Errorf("%s: source %q, want %q", r.File.Name, r.Source, SourceShipped)
		}
	}
	if err := Verify(dir, Shipped); err != nil {
		t.Fatal(err)
	}
	noTemps(t, dir)

	flipByte(t, Path(dir, MobileFaceNetFoamliu), 1000)
	if err := Verify(dir, Shipped); err == nil {
		t.Fatal("Verify accepted a damaged MobileFaceNet")
	}
	res, err = Fetch(ctx, dir, Shipped, offline(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Source != SourcePresent || res[1].Source != SourceShipped {
		t.Errorf("results %+v: want YuNet present and the MobileFaceNet from the binary again", res)
	}
	if err := Verify(dir, Shipped); err != nil {
		t.Fatal(err)
	}

	// The binary's copy comes before a --from folder, even a wrong one:
	// it is the genuine file whatever the folder holds.
	from := t.TempDir()
	if err := os.WriteFile(Path(from, YuNet), []byte("not a detector"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir2 := t.TempDir()
	if _, err := Fetch(ctx, dir2, Shipped, offline(t, from)); err != nil {
		t.Fatal(err)
	}
	if err := Verify(dir2, Shipped); err != nil {
		t.Fatal(err)
	}
}

func TestFetchSet(t *testing.T) {
	empty := t.TempDir()
	want := append(Dlib.Names(), YuNet, MobileFaceNetFoamliu)
	s := FetchSet(empty)
	if got := s.Names(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("FetchSet(empty) = %v, want %v", got, want)
	}
	if s.Name() != "dlib+shipped" {
		t.Errorf("FetchSet(empty).Name() = %q", s.Name())
	}
	// A folder with the PaddleX file adds it; YuNet is not listed twice.
	for _, n := range []string{YuNet, MobileFaceNetPaddleX} {
		if err := os.WriteFile(Path(empty, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want = append(Dlib.Names(), YuNet, MobileFaceNetPaddleX, MobileFaceNetFoamliu)
	if got := FetchSet(empty).Names(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("FetchSet(folder with PaddleX) = %v, want %v", got, want)
	}
}
