package deploy_test

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// vmx are the mnemonics starting with "v" that are not AVX.
var vmx = map[string]bool{"verr": true, "verw": true, "vmcall": true, "vmlaunch": true, "vmresume": true,
	"vmxoff": true, "vmxon": true, "vmread": true, "vmwrite": true, "vmptrld": true, "vmptrst": true,
	"vmclear": true, "vmfunc": true}

// aboveV2 are x86-64-v3's scalar additions (BMI1, BMI2, LZCNT, MOVBE). tzcnt
// is left out: GCC emits it as "rep bsf" for generic tuning, which CPUs
// without BMI1 run as bsf.
var aboveV2 = map[string]bool{"andn": true, "bextr": true, "blsi": true, "blsmsk": true, "blsr": true,
	"bzhi": true, "mulx": true, "pdep": true, "pext": true, "rorx": true, "sarx": true, "shlx": true,
	"shrx": true, "lzcnt": true, "movbe": true}

// hostRanges are the executable address ranges of path that hold C and C++
// code: everything but Go's own text, which the Go linker brackets with
// runtime.text and runtime.etext. Go's runtime and crypto do hold AVX2 and
// AVX-512 code, but only behind CPU feature checks; cgo's C and C++ has no
// such checks (go-face's glue is compiled for one CPU as a whole).
func hostRanges(t *testing.T, path string) [][2]uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var goText, goEtext uint64
	syms, _ := f.Symbols()
	for _, s := range syms {
		switch s.Name {
		case "runtime.text":
			goText = s.Value
		case "runtime.etext":
			goEtext = s.Value
		}
	}
	var out [][2]uint64
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_EXECINSTR == 0 || s.Size == 0 {
			continue
		}
		lo, hi := s.Addr, s.Addr+s.Size
		if goText != 0 && goText < hi && goEtext > lo {
			if lo < goText {
				out = append(out, [2]uint64{lo, goText})
			}
			if goEtext < hi {
				out = append(out, [2]uint64{goEtext, hi})
			}
			continue
		}
		out = append(out, [2]uint64{lo, hi})
	}
	return out
}

// aboveBaseline disassembles the C and C++ code of path and counts, per
// symbol, the instructions above x86-64-v2: anything on ymm, zmm or mask
// registers, any VEX or EVEX instruction (AVX and later), BMI, LZCNT, MOVBE.
func aboveBaseline(t *testing.T, path string) (total int, bySym map[string]int, sample []string) {
	t.Helper()
	bySym = map[string]int{}
	for _, r := range hostRanges(t, path) {
		cmd := exec.Command("objdump", "-d", "--no-show-raw-insn", "-M", "suffix",
			fmt.Sprintf("--start-address=%#x", r[0]), fmt.Sprintf("--stop-address=%#x", r[1]), path)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("objdump: %v", err)
		}
		sym := ""
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasSuffix(line, ">:") {
				if i := strings.IndexByte(line, '<'); i >= 0 {
					sym = line[i+1 : len(line)-2]
				}
				continue
			}
			_, insn, ok := strings.Cut(line, ":\t")
			if !ok {
				continue
			}
			fields := strings.Fields(insn)
			if len(fields) == 0 {
				continue
			}
			m := fields[0]
			base := strings.TrimRight(m, "bwlq")
			bad := strings.Contains(insn, "%ymm") || strings.Contains(insn, "%zmm") ||
				(strings.HasPrefix(m, "v") && !vmx[m] && !vmx[base]) || aboveV2[m] || aboveV2[base]
			for _, f := range fields[1:] {
				for _, op := range strings.Split(f, ",") {
					if len(op) == 3 && strings.HasPrefix(op, "%k") && op[2] >= '0' && op[2] <= '7' {
						bad = true
					}
				}
			}
			if bad {
				total++
				bySym[sym]++
				if len(sample) < 5 {
					sample = append(sample, sym+": "+strings.TrimSpace(insn))
				}
			}
		}
	}
	return total, bySym, sample
}

func top(bySym map[string]int, n int) string {
	names := make([]string, 0, len(bySym))
	for s := range bySym {
		names = append(names, s)
	}
	sort.Slice(names, func(i, j int) bool { return bySym[names[i]] > bySym[names[j]] })
	var b strings.Builder
	for i, s := range names {
		if i == n {
			break
		}
		fmt.Fprintf(&b, "\n  %6d  %.100s", bySym[s], s)
	}
	return b.String()
}

// TestBaselineChecker: the checker finds AVX-512 in code built with
// -march=x86-64-v4, and cc-baseline turns -march=native into code it finds
// clean (so the release test below cannot pass by checking nothing).
func TestBaselineChecker(t *testing.T) {
	for _, tool := range []string{"gcc", "objdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (Debian's gcc and binutils)", tool)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "sum.c")
	// A loop GCC vectorises with the widest registers -march allows.
	os.WriteFile(src, []byte(`float dot(const float *a, const float *b, int n) {
	float s = 0; for (int i = 0; i < n; i++) s += a[i] * b[i]; return s; }
unsigned shl(unsigned a, unsigned b) { return a << b; }
float x[1024], y[1024];
int main(void) { for (int i = 0; i < 1024; i++) x[i] = y[i] = i; return (int)dot(x, y, 1024) + shl(3, x[1]); }
`), 0o644)
	build := func(name string, args ...string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command(args[0], append(args[1:], "-O3", "-ffast-math", "-o", out, src)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, b)
		}
		return out
	}
	if n, _, _ := aboveBaseline(t, build("v4", "gcc", "-march=x86-64-v4")); n == 0 {
		t.Error("the checker found nothing above x86-64-v2 in a -march=x86-64-v4 build")
	}
	if n, _, _ := aboveBaseline(t, build("v3", "gcc", "-march=x86-64-v3")); n == 0 {
		t.Error("the checker found nothing above x86-64-v2 in a -march=x86-64-v3 build")
	}
	if n, by, sample := aboveBaseline(t, build("wrapped", "./cc-baseline", "x86-64-v2", "gcc", "-march=native")); n != 0 {
		t.Errorf("cc-baseline's -march=native build has %d instructions above v2: %v%s", n, sample, top(by, 5))
	}
}

// TestReleaseBaseline builds the release binary with deploy/build.sh (a few
// minutes on two cores when Go's cache is cold) and fails if its C and C++
// hold any instruction above x86-64-v2: go-face's -march=native gave ~6,900
// AVX-512 instructions on the build box.
func TestReleaseBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release binary; run without -short")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "build.sh", "--arch", "amd64", "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	bin := filepath.Join(out, "concierge-linux-amd64-v2")
	n, by, sample := aboveBaseline(t, bin)
	if n != 0 {
		t.Fatalf("%s: %d instructions above x86-64-v2 in its C/C++ code, e.g. %v; by symbol:%s", bin, n, sample, top(by, 10))
	}
	// The binary runs and says what it is.
	if b, err := exec.Command(bin, "version").CombinedOutput(); err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, b)
	}
}
