#!/usr/bin/env bash
# Concierge set-up for Debian 12: installs the build's system packages,
# builds the binary, fetches and verifies the models, and fetches the real
# face photos the demo and the tests use. Idempotent: what is present is
# skipped. Run as root, or as a user with sudo.
#
#   deploy/setup.sh            packages, binary (bin/concierge), models, photos
#   deploy/setup.sh --no-apt   skip the package step (packages already present)
#   deploy/setup.sh --test     also the test-only packages (Chromium and a CJK font for the
#                              browser tests, an RTSP server for the camera tests)
#   deploy/setup.sh --release  also the arm64 release build's tools: Debian's aarch64 cross
#                              compiler, qemu-user for its smoke test, and an arm64 sysroot
#                              of Debian's -dev packages (deploy/build.sh; docs/operations.md)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CACHE=${CONCIERGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/concierge}
MODELS_DIR=${CONCIERGE_MODELS_DIR:-$CACHE/models}
PHOTOS_DIR=${CONCIERGE_TEST_PHOTOS:-$CACHE/testdata/photos}
SHARED=${CONCIERGE_SHARED:-$ROOT/../shared}
APT=1
TEST=0
RELEASE=0
for a in "$@"; do
  case "$a" in
    --no-apt) APT=0 ;;
    --test) TEST=1 ;;
    --release) RELEASE=1 ;;
    *) echo "setup: unknown option $a" >&2; exit 2 ;;
  esac
done

say() { printf '== %s\n' "$*"; }

# 1. System packages. dlib needs a CBLAS (libatlas-base-dev provides
# libcblas.so, which go-face links by name); OpenCV 4.6 is what gocv v0.31.0
# builds against; npm fetches the model and photo tarballs.
PKGS=(gcc g++ pkg-config libdlib-dev libopencv-dev libblas-dev liblapack-dev libatlas-base-dev
      libjpeg62-turbo-dev npm)
# The lobby and kiosk pages are tested in a real headless Chromium; the
# font renders their Chinese text in screenshots. The camera tests run a
# real RTSP camera with basic auth (../shared/tools/rtsp-serve.py): GStreamer's
# RTSP server through Debian's Python bindings.
[ "$TEST" = 1 ] && PKGS+=(chromium fonts-wqy-microhei
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
# The arm64 build cross-compiles against a sysroot rather than through
# multiarch: libopencv-dev:arm64 cannot be installed beside the amd64 one
# (libopencv-imgcodecs406:arm64 needs libgdal32:arm64, which conflicts with
# libgdal32:amd64, and libopencv-dev itself is not Multi-Arch), and apt
# would remove the amd64 OpenCV this build needs. mmdebstrap only unpacks
# Debian's arm64 packages into a directory: no arm64 code runs.
[ "$RELEASE" = 1 ] && PKGS+=(binutils gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user mmdebstrap)
if [ "$APT" = 1 ]; then
  missing=()
  for p in "${PKGS[@]}"; do
    if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "system packages present"
  fi
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then export PATH=$PATH:/usr/local/go/bin; else
    echo "setup: Go 1.26 is required (go.mod says so); install it to /usr/local/go" >&2; exit 1
  fi
fi

# 1b. The arm64 sysroot: what the arm64 binary links against at build time
# and loads under qemu-aarch64 -L. A stamp file names the packages, so a
# complete sysroot is kept and a changed list makes a new one.
ARM64_PKGS=(libc6-dev libstdc++-12-dev libopencv-dev libdlib-dev libblas-dev liblapack-dev
            libatlas-base-dev libjpeg62-turbo-dev)
SYSROOT=${CONCIERGE_ARM64_SYSROOT:-$CACHE/sysroot-arm64}
if [ "$RELEASE" = 1 ]; then
  want=$(printf '%s\n' "${ARM64_PKGS[@]}")
  if [ -f "$SYSROOT/.concierge-sysroot" ] && [ "$(cat "$SYSROOT/.concierge-sysroot")" = "$want" ]; then
    say "arm64 sysroot present in $SYSROOT"
  else
    say "making the arm64 sysroot in $SYSROOT (about 1.3 GB)"
    # Debian's packages from this machine's own apt sources, for its release.
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:?}")
    srcs=()
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
      [ -s "$f" ] && grep -qE '^[[:space:]]*(deb|Types:)' "$f" && srcs+=("$f")
    done
    rm -rf "$SYSROOT.new"
    mkdir -p "$(dirname "$SYSROOT")"
    mmdebstrap --quiet --variant=extract --architectures=arm64 \
      --include="$(IFS=,; echo "${ARM64_PKGS[*]}")" "$suite" "$SYSROOT.new" "${srcs[@]}"
    # Unpacking runs no maintainer scripts, so the links update-alternatives
    # would make for BLAS and LAPACK are made here (ATLAS, as on amd64).
    for l in libblas.so libblas.so.3 liblapack.so liblapack.so.3; do
      ln -sfn "atlas/$l" "$SYSROOT.new/usr/lib/aarch64-linux-gnu/$l"
    done
    echo "$want" >"$SYSROOT.new/.concierge-sysroot"
    rm -rf "$SYSROOT"
    mv "$SYSROOT.new" "$SYSROOT"
  fi
fi

# 2. The binary.
say "building bin/concierge"
# The version and commit go into the binary (`concierge version`), whatever
# GOFLAGS says about VCS stamping.
VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT=$(git rev-parse HEAD 2>/dev/null || true)
go build -ldflags "-X main.version=$VERSION -X main.commit=$COMMIT" -o bin/concierge ./cmd/concierge

# 3. Models. The default engine's files (YuNet and foamliu's MobileFaceNet)
# are inside the binary: installing them needs no network and no folder.
# dlib's three (npm tarball first, dlib.net second) serve the dlib engine,
# the naive benchmark and the tests. The PaddleX MobileFaceNet is opt-in
# (its export came without a licence file): it comes from a folder (the
# project's shared folder here, your own copy elsewhere) or from the bank's
# artifact mirror (CONCIERGE_MODELS_MIRROR, which `models fetch` reads as
# models.mirror), and once present `vision.engine: auto` prefers it.
say "models in $MODELS_DIR"
bin/concierge models fetch --dir "$MODELS_DIR" --set shipped
bin/concierge models fetch --dir "$MODELS_DIR" --set dlib
if [ -d "$SHARED/models" ]; then
  bin/concierge models fetch --dir "$MODELS_DIR" --set onnx --from "$SHARED/models"
elif [ -n "${CONCIERGE_ONNX_DIR:-}" ]; then
  bin/concierge models fetch --dir "$MODELS_DIR" --set paddlex --from "$CONCIERGE_ONNX_DIR"
elif [ -n "${CONCIERGE_MODELS_MIRROR:-}" ]; then
  bin/concierge models fetch --dir "$MODELS_DIR" --set paddlex
fi

# 4. Real photos for the demo and the tests (never committed).
declare -A PHOTO_SHA=(
  [sample1.jpg]=8ecae4b267b2d3169e06e00c7dee97097aa2a94635d45216f7732a5f4943cb51
  [sample2.jpg]=7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691
  [sample3.jpg]=8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936
  [sample4.jpg]=729efa5923061d40eb4ed5f267a18cc7b8ba6f852bb2757b16d8b7e4937476fc
  [sample5.jpg]=6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938
  [sample6.jpg]=9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87
)
photos_ok() {
  for f in "${!PHOTO_SHA[@]}"; do
    [ -f "$PHOTOS_DIR/$f" ] || return 1
    echo "${PHOTO_SHA[$f]}  $PHOTOS_DIR/$f" | sha256sum -c --status || return 1
  done
}
if photos_ok; then
  say "photos present in $PHOTOS_DIR"
else
  say "fetching photos into $PHOTOS_DIR"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent @vladmandic/face-api@1.7.15 >/dev/null)
  tar -xzf "$tmp"/vladmandic-face-api-1.7.15.tgz -C "$tmp" package/demo
  mkdir -p "$PHOTOS_DIR"
  for f in "${!PHOTO_SHA[@]}"; do cp "$tmp/package/demo/$f" "$PHOTOS_DIR/$f"; done
  photos_ok || { echo "setup: photo checksum mismatch in $PHOTOS_DIR" >&2; exit 1; }
fi
say "ready"
