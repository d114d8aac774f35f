#!/usr/bin/env bash
# Release build: binaries for stated CPU baselines rather than for the build
# machine's CPU (docs/operations.md, "Release build").
#
#   deploy/build.sh                      both binaries below, into bin/release
#   deploy/build.sh --arch amd64         only bin/release/concierge-linux-amd64-v2
#   deploy/build.sh --arch arm64         only bin/release/concierge-linux-arm64 (armv8-a)
#   deploy/build.sh --level v3           the amd64 one for x86-64-v3 (AVX2, FMA, BMI2)
#   deploy/build.sh --out DIR            write into DIR
#
# amd64: Go code is built with GOAMD64=LEVEL; the C and C++ of cgo (gocv's
# glue, go-face's dlib glue) through deploy/cc-baseline, which turns
# go-face's -march=native into -march=x86-64-LEVEL. OpenCV and dlib's shared
# libraries are Debian's, built for the distribution's baseline with their
# own run-time dispatch. TestReleaseBaseline (go test ./deploy/) builds it and
# disassembles the result.
#
# arm64: cross-compiled with Debian's aarch64-linux-gnu-gcc against an arm64
# sysroot of Debian's -dev packages, both made by `deploy/setup.sh --release`
# (CONCIERGE_ARM64_SYSROOT overrides where the sysroot is). cc-baseline turns
# -march=native into -march=armv8-a. When qemu-aarch64 is installed the binary
# is run once (`version`) on an emulated Cortex-A53, the armv8.0 baseline.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CACHE=${CONCIERGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/concierge}
SYSROOT=${CONCIERGE_ARM64_SYSROOT:-$CACHE/sysroot-arm64}
LEVEL=v2
OUT=$ROOT/bin/release
ARCHS="amd64 arm64"
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCHS=${2:?--arch needs amd64 or arm64}; shift 2 ;;
    --level) LEVEL=${2:?--level needs v1, v2, v3 or v4}; shift 2 ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$ARCHS" in
  "amd64 arm64"|amd64|arm64) ;;
  *) echo "build: --arch $ARCHS is not one of amd64, arm64" >&2; exit 2 ;;
esac
case "$LEVEL" in
  v1) MARCH=x86-64 ;;
  v2|v3|v4) MARCH=x86-64-$LEVEL ;;
  *) echo "build: --level $LEVEL is not one of v1, v2, v3, v4" >&2; exit 2 ;;
esac
command -v go >/dev/null 2>&1 || export PATH=$PATH:/usr/local/go/bin
mkdir -p "$OUT"

VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT=$(git rev-parse HEAD 2>/dev/null || true)
LDFLAGS="-X main.version=$VERSION -X main.commit=$COMMIT"

build_amd64() {
  local bin=$OUT/concierge-linux-amd64-$LEVEL
  echo "== building $bin (-march=$MARCH, GOAMD64=$LEVEL)"
  CC="$ROOT/deploy/cc-baseline $MARCH gcc" CXX="$ROOT/deploy/cc-baseline $MARCH g++" \
  GOOS=linux GOARCH=amd64 GOAMD64=$LEVEL CGO_ENABLED=1 \
    go build -trimpath -ldflags "$LDFLAGS" -o "$bin" ./cmd/concierge
  echo "== $bin"
}

build_arm64() {
  local bin=$OUT/concierge-linux-arm64
  if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || [ ! -f "$SYSROOT/.concierge-sysroot" ]; then
    echo "build: no arm64 cross toolchain or sysroot ($SYSROOT): run deploy/setup.sh --release" >&2
    exit 1
  fi
  echo "== building $bin (-march=armv8-a, sysroot $SYSROOT)"
  # pkg-config reads only the sysroot's .pc files and prefixes their paths
  # with it; --sysroot does the same for the compiler's and linker's own
  # search paths (Debian's multiarch lib/ and usr/lib/aarch64-linux-gnu).
  PKG_CONFIG_SYSROOT_DIR=$SYSROOT \
  PKG_CONFIG_LIBDIR=$SYSROOT/usr/lib/aarch64-linux-gnu/pkgconfig:$SYSROOT/usr/share/pkgconfig \
  CC="$ROOT/deploy/cc-baseline armv8-a aarch64-linux-gnu-gcc --sysroot=$SYSROOT" \
  CXX="$ROOT/deploy/cc-baseline armv8-a aarch64-linux-gnu-g++ --sysroot=$SYSROOT" \
  GOOS=linux GOARCH=arm64 CGO_ENABLED=1 \
    go build -trimpath -ldflags "$LDFLAGS" -o "$bin" ./cmd/concierge
  if command -v qemu-aarch64 >/dev/null 2>&1; then
    echo "== smoke test: qemu-aarch64 -cpu cortex-a53 $bin version"
    qemu-aarch64 -cpu cortex-a53 -L "$SYSROOT" "$bin" version
  else
    echo "== no qemu-aarch64: $bin not run (deploy/setup.sh --release installs qemu-user)"
  fi
  echo "== $bin"
}

for a in $ARCHS; do "build_$a"; done
