#!/usr/bin/env bash
# Installs Concierge on a Debian 12 branch box: the `concierge` system user,
# its state and cache directories (0700), /etc/concierge with the example
# configuration, the binary and the systemd unit. Idempotent: run it again to
# upgrade the binary and unit; an existing configuration is never touched.
#
#   sudo deploy/install.sh                    install into /
#   deploy/install.sh --root DIR              install into the tree DIR (tests, image builds)
#   deploy/install.sh --binary PATH           the binary to install (default: bin/concierge)
#
# The previous binary is kept as /usr/local/bin/concierge.previous for a
# rollback (docs/operations.md). The service is not started: set the
# configuration first, then `systemctl enable --now concierge`.
set -euo pipefail

cd "$(dirname "$0")/.."
SRC=$(pwd)
ROOT=/
BINARY=$SRC/bin/concierge
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    --root=*) ROOT=${1#--root=}; shift ;;
    --binary) BINARY=${2:?--binary needs a path}; shift 2 ;;
    --binary=*) BINARY=${1#--binary=}; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf '== %s\n' "$*"; }
[ -f "$BINARY" ] || { echo "install: no binary at $BINARY (run deploy/setup.sh first, or pass --binary)" >&2; exit 1; }
[ -d "$ROOT" ] || { echo "install: --root $ROOT is not a directory" >&2; exit 1; }
ROOT=$(cd "$ROOT" && pwd)
# P prefixes every installed path; it is empty for a real install.
P=${ROOT%/}

REAL=0
[ "$ROOT" = / ] && REAL=1
if [ "$REAL" = 1 ] && [ "$(id -u)" != 0 ]; then
  echo "install: installing into / needs root (sudo deploy/install.sh), or use --root DIR" >&2
  exit 1
fi

# 1. The service user. Only for a real install: a tree under --root has no
# user database of its own, and adding the user to this machine's would
# change the machine that runs the test, not the tree.
if [ "$REAL" = 1 ]; then
  if id -u concierge >/dev/null 2>&1; then
    say "user concierge exists"
  else
    say "creating system user concierge"
    useradd --system --home-dir /var/lib/concierge --no-create-home --shell /usr/sbin/nologin \
      --user-group concierge
  fi
  # USB cameras are /dev/video* nodes owned by group video (the unit adds
  # it too, as a supplementary group).
  getent group video >/dev/null 2>&1 && usermod -a -G video concierge
else
  say "not creating user concierge: --root $ROOT installs a tree, not this machine (ownership left to the image's root)"
fi

# own PATH USER GROUP: chown only on a real install (see above).
own() {
  if [ "$REAL" = 1 ]; then chown "$2:$3" "$1"; fi
}

# 2. Directories. State (database, keys, JetStream store) and cache (models)
# are the service user's only: templates and keys must not be readable by
# other local users. /etc/concierge is readable by the service's group
# because the configuration can hold camera passwords.
# The system's own directories are created if missing, never re-moded.
mkdir -p "$P/usr/local/bin" "$P/etc/systemd/system"
# install -d sets the mode of an existing directory too: a loosened one is
# put back.
for d in "$P/var/lib/concierge" "$P/var/cache/concierge"; do
  install -d -m 0700 "$d"
  own "$d" concierge concierge
done
install -d -m 0750 "$P/etc/concierge"
own "$P/etc/concierge" root concierge

# 3. The configuration: the example the first time, never over an existing one.
CONF=$P/etc/concierge/concierge.yaml
if [ -e "$CONF" ]; then
  say "keeping existing $CONF"
  if ! cmp -s "$SRC/deploy/concierge.yaml" "$CONF"; then
    # The new example sits beside it, so new keys can be compared by hand.
    install -m 0640 "$SRC/deploy/concierge.yaml" "$CONF.example"
    own "$CONF.example" root concierge
  fi
else
  say "installing example configuration $CONF"
  install -m 0640 "$SRC/deploy/concierge.yaml" "$CONF"
  own "$CONF" root concierge
fi

# 4. The binary; the one it replaces is kept for a rollback.
BIN=$P/usr/local/bin/concierge
if [ -e "$BIN" ] && ! cmp -s "$BINARY" "$BIN"; then
  say "keeping the previous binary as $BIN.previous"
  cp -p "$BIN" "$BIN.previous"
fi
if cmp -s "$BINARY" "$BIN" 2>/dev/null; then
  say "binary $BIN up to date"
else
  say "installing binary $BIN"
  # Copied beside and renamed, so a running daemon's binary is never
  # overwritten in place.
  install -m 0755 "$BINARY" "$BIN.new"
  mv -f "$BIN.new" "$BIN"
fi

# 5. The unit.
UNIT=$P/etc/systemd/system/concierge.service
install -m 0644 "$SRC/deploy/concierge.service" "$UNIT"
say "installed unit $UNIT"
if [ "$REAL" = 1 ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi

say "done. Next: edit $CONF (secrets in /etc/concierge/env, mode 0600), then: systemctl enable --now concierge"
