package enroll

import "concierge/face"

// The scan's kernel in AVX2 (VPMADDUBSW: 32 byte products a cycle): Go
// does not vectorise, and its best scalar kernel took about 1.8 ms for
// 100,000 customers against the 2 ms p99 target; this one is bounded by
// memory, 12.8 MB at 100,000. Machines without AVX2 use dotBlocksGo.

//go:noescape
func dotBlocksAVX2(codes *uint64, blocks int, pat *[patLen]int8, out *int32)

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

func xgetbv() (eax uint32)

func init() {
	if hasAVX2() {
		dotBlocks = func(codes []uint64, pat *[patLen]int8, out []int32) {
			if blocks := len(out) / blk; blocks > 0 {
				_ = codes[blocks*face.Dim-1]
				dotBlocksAVX2(&codes[0], blocks, pat, &out[0])
			}
		}
	}
}

func hasAVX2() bool {
	if max, _, _, _ := cpuid(0, 0); max < 7 {
		return false
	}
	_, _, c, _ := cpuid(1, 0)
	const osxsave, avx = 1 << 27, 1 << 28
	if c&osxsave == 0 || c&avx == 0 || xgetbv()&6 != 6 { // the OS saves the YMM registers
		return false
	}
	_, b, _, _ := cpuid(7, 0)
	return b&(1<<5) != 0
}
