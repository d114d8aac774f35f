#!/usr/bin/env bash
# Release build: a binary for a stated CPU baseline rather than for the
# build machine's CPU (docs/operations.md, "Release build").
#
#   deploy/build.sh                      bin/release/concierge-linux-amd64-v2
#   deploy/build.sh --level v3           x86-64-v3 (AVX2, FMA, BMI2) for newer boxes
#   deploy/build.sh --out DIR            write into DIR
#
# Go code is built with GOAMD64=LEVEL; the C and C++ of cgo (gocv's glue,
# go-face's dlib glue) through deploy/cc-baseline, which turns go-face's
# -march=native into -march=x86-64-LEVEL. OpenCV and dlib's shared
# libraries are Debian's, built for the distribution's baseline with their
# own run-time dispatch. TestReleaseBaseline (go test ./deploy/) builds it and
# disassembles the result.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
LEVEL=v2
OUT=$ROOT/bin/release
while [ $# -gt 0 ]; do
  case "$1" in
    --level) LEVEL=${2:?--level needs v1, v2, v3 or v4}; shift 2 ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$LEVEL" in
  v1) MARCH=x86-64 ;;
  v2|v3|v4) MARCH=x86-64-$LEVEL ;;
  *) echo "build: --level $LEVEL is not one of v1, v2, v3, v4" >&2; exit 2 ;;
esac
command -v go >/dev/null 2>&1 || export PATH=$PATH:/usr/local/go/bin
mkdir -p "$OUT"
BIN=$OUT/concierge-linux-amd64-$LEVEL

VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT=$(git rev-parse HEAD 2>/dev/null || true)
echo "== building $BIN (-march=$MARCH, GOAMD64=$LEVEL)"
CC="$ROOT/deploy/cc-baseline $MARCH gcc" CXX="$ROOT/deploy/cc-baseline $MARCH g++" \
GOOS=linux GOARCH=amd64 GOAMD64=$LEVEL CGO_ENABLED=1 \
  go build -trimpath -ldflags "-X main.version=$VERSION -X main.commit=$COMMIT" -o "$BIN" ./cmd/concierge
echo "== $BIN"
