package testenv

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// Freeze makes the existing paths among paths immutable (chattr +i), so
// that writing to them fails even for root, who ignores file modes: the
// tests run as root, and a chmod 0400 database is written anyway. An
// immutable file refuses writes through descriptors opened before, too,
// and an immutable directory refuses new files (a journal, a WAL). The
// returned thaw undoes it; it runs at the end of the test in any case, or
// t.TempDir could not be removed. Where chattr is missing or the
// filesystem has no immutable flag (tmpfs, overlayfs) the test is
// skipped, naming the reason, or fails under CI=true.
//
// Freeze a database's file, its -wal and its directory, never its -shm:
// SQLite maps the WAL index into memory, and a write to a mapped page of
// an immutable file is a fault that kills the test binary (seen under
// -race).
func Freeze(tb testing.TB, paths ...string) (thaw func()) {
	tb.Helper()
	var frozen []string
	var once sync.Once
	thaw = func() {
		once.Do(func() {
			for _, p := range frozen {
				if out, err := exec.Command("chattr", "-i", p).CombinedOutput(); err != nil {
					tb.Errorf("chattr -i %s: %v %s", p, err, out)
				}
			}
		})
	}
	tb.Cleanup(thaw)
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		out, err := exec.Command("chattr", "+i", p).CombinedOutput()
		if err != nil {
			thaw()
			msg := "chattr +i " + p + ": " + strings.TrimSpace(string(out)) + " (" + err.Error() + "): " +
				"this filesystem or user cannot make a file immutable, so a really unwritable database cannot be produced"
			if os.Getenv("CI") == "true" {
				tb.Fatal(msg)
			}
			tb.Skip(msg)
		}
		frozen = append(frozen, p)
	}
	return thaw
}
