#include "textflag.h"

// PAIR multiplies two quads (4 dimensions of the block's 8 rows, 32
// bytes each) by the probe's patterns and adds the rows' sums to acc.
// Products are at most 127·63, so a pair of products and two quads of
// pairs fit an int16 lane without saturating.
#define PAIR(a, b, acc, r0, r1) \
	VMOVDQU a(SI), r0; \
	VMOVDQU b(SI), r1; \
	VPMADDUBSW a(DX), r0, r0; \
	VPMADDUBSW b(DX), r1, r1; \
	VPADDW r1, r0, r0; \
	VPMADDWD Y15, r0, r0; \
	VPADDD r0, acc, acc

// func dotBlocksAVX2(codes *uint64, blocks int, pat *[1024]int8, out *int32)
TEXT ·dotBlocksAVX2(SB), NOSPLIT, $0-32
	MOVQ codes+0(FP), SI
	MOVQ blocks+8(FP), CX
	MOVQ pat+16(FP), DX
	MOVQ out+24(FP), DI
	VPCMPEQW Y15, Y15, Y15
	VPSRLW $15, Y15, Y15 // int16 ones
	TESTQ CX, CX
	JZ done

loop:
	VPXOR Y14, Y14, Y14
	VPXOR Y13, Y13, Y13
	PAIR(0, 32, Y14, Y0, Y1)
	PAIR(64, 96, Y13, Y2, Y3)
	PAIR(128, 160, Y14, Y4, Y5)
	PAIR(192, 224, Y13, Y6, Y7)
	PAIR(256, 288, Y14, Y0, Y1)
	PAIR(320, 352, Y13, Y2, Y3)
	PAIR(384, 416, Y14, Y4, Y5)
	PAIR(448, 480, Y13, Y6, Y7)
	PAIR(512, 544, Y14, Y0, Y1)
	PAIR(576, 608, Y13, Y2, Y3)
	PAIR(640, 672, Y14, Y4, Y5)
	PAIR(704, 736, Y13, Y6, Y7)
	PAIR(768, 800, Y14, Y0, Y1)
	PAIR(832, 864, Y13, Y2, Y3)
	PAIR(896, 928, Y14, Y4, Y5)
	PAIR(960, 992, Y13, Y6, Y7)
	VPADDD Y13, Y14, Y14
	VMOVDQU Y14, (DI)
	ADDQ $1024, SI
	ADDQ $32, DI
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv() (eax uint32)
TEXT ·xgetbv(SB), NOSPLIT, $0-4
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	RET
