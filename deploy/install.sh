#!/bin/sh
# Install camera-gateway as a systemd service on a Debian 12 box, from a clone of the repository.
#
#   deploy/install.sh             as root: install or upgrade (safe to run again)
#   deploy/install.sh --dry-run   print what would be done, change nothing (any user)
#
# What it does:
#   1. the Debian packages needed at run time and to build systemd-python (only the missing ones);
#   2. the camera-gateway system user and group (deploy/sysusers.d, applied by systemd-sysusers);
#   3. a virtual environment in /opt/camera-gateway/venv with the package from this clone, and
#      /usr/local/bin/camera-gateway pointing into it (the operators' command line);
#   4. /etc/camera-gateway (root:camera-gateway 0750), config.yaml from deploy/config.example.yaml
#      only if there is none yet (0640), and credentials/ (root:camera-gateway 0750);
#   5. the unit in /etc/systemd/system, then `systemctl daemon-reload` if systemd is running.
# It never enables, starts or restarts the service, and never overwrites config.yaml.
set -eu

PREFIX=/opt/camera-gateway
VENV=$PREFIX/venv
CONF_DIR=/etc/camera-gateway
UNIT_DIR=/etc/systemd/system
SYSUSERS_DIR=/usr/lib/sysusers.d
BIN_LINK=/usr/local/bin/camera-gateway
NAME=camera-gateway
PACKAGES="python3 python3-venv python3-dev gcc pkg-config libsystemd-dev"

SRC=$(cd "$(dirname "$0")/.." && pwd)
DRY_RUN=0

usage() {
  echo "usage: $0 [--dry-run]" >&2
  exit 2
}

for arg in "$@"; do
  case "$arg" in
    --dry-run|-n) DRY_RUN=1 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
done

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }

# Run a command, or only show it with --dry-run.
run() {
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '+ %s\n' "$*"
  else
    "$@"
  fi
}

for f in "$SRC/setup.cfg" "$SRC/systemd/$NAME.service" "$SRC/deploy/sysusers.d/$NAME.conf" \
         "$SRC/deploy/config.example.yaml"; do
  if [ ! -f "$f" ]; then
    say "missing $f: run this script from a clone of camera-gateway" >&2
    exit 1
  fi
done

if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  say "$0: must run as root (or use --dry-run to see what it would do)" >&2
  exit 1
fi
if [ "$DRY_RUN" -eq 1 ]; then
  say "dry run: nothing is changed; the commands are only shown"
fi
say "installing camera-gateway from $SRC"

step "Debian packages"
missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
if [ -z "$missing" ]; then
  say "all present:$(printf ' %s' $PACKAGES)"
else
  say "missing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  run apt-get update -q
  # shellcheck disable=SC2086
  run apt-get install -y -q --no-install-recommends $missing
fi

step "system user and group ($SYSUSERS_DIR/$NAME.conf)"
run install -d -m 0755 "$SYSUSERS_DIR"
run install -m 0644 "$SRC/deploy/sysusers.d/$NAME.conf" "$SYSUSERS_DIR/$NAME.conf"
if command -v systemd-sysusers >/dev/null 2>&1; then
  run systemd-sysusers "$SYSUSERS_DIR/$NAME.conf"
elif [ "$DRY_RUN" -eq 1 ]; then
  say "+ systemd-sysusers $SYSUSERS_DIR/$NAME.conf   (not found on this machine)"
else
  say "systemd-sysusers not found: is this a systemd-based Debian 12?" >&2
  exit 1
fi

step "virtual environment ($VENV)"
if [ "$DRY_RUN" -eq 0 ] && ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  say "camera-gateway needs Python >= 3.11 (found: $(python3 --version 2>&1))" >&2
  exit 1
fi
run install -d -m 0755 "$PREFIX"
if [ -x "$VENV/bin/python" ]; then
  say "$VENV exists: upgrading the package in it"
else
  run python3 -m venv "$VENV"
fi
run "$VENV/bin/python" -m pip install --quiet --upgrade pip
run "$VENV/bin/python" -m pip install --quiet --upgrade "$SRC"
# The unit's Documentation=, and the reference for whoever edits the configuration.
run install -m 0644 "$SRC/README.md" "$PREFIX/README.md"
run install -m 0644 "$SRC/deploy/config.example.yaml" "$PREFIX/config.example.yaml"
run ln -sfn "$VENV/bin/camera-gateway" "$BIN_LINK"

step "configuration ($CONF_DIR)"
run install -d -m 0750 -o root -g "$NAME" "$CONF_DIR"
run install -d -m 0750 -o root -g "$NAME" "$CONF_DIR/credentials"
if [ -e "$CONF_DIR/config.yaml" ]; then
  say "$CONF_DIR/config.yaml exists: kept as it is (the example is in $PREFIX/config.example.yaml)"
else
  run install -m 0640 -o root -g "$NAME" "$SRC/deploy/config.example.yaml" "$CONF_DIR/config.yaml"
fi

step "systemd unit ($UNIT_DIR/$NAME.service)"
run install -m 0644 "$SRC/systemd/$NAME.service" "$UNIT_DIR/$NAME.service"
if [ -d /run/systemd/system ]; then
  run systemctl daemon-reload
else
  say "systemd is not running here (no /run/systemd/system): skipping systemctl daemon-reload;"
  say "the unit is picked up at the next boot"
fi

step "next steps"
cat <<EOF
1. Edit $CONF_DIR/config.yaml (site_id, cameras, uplink); the reference is $PREFIX/README.md.
2. Put each password in its own file, readable by root only, for example:
     install -m 0600 /dev/null $CONF_DIR/credentials/hall-a && editor $CONF_DIR/credentials/hall-a
   and declare it to the service with \`systemctl edit $NAME\`:
     [Service]
     LoadCredential=hall-a:$CONF_DIR/credentials/hall-a
   (a relative \`password_file: hall-a\` in config.yaml is then read from \$CREDENTIALS_DIRECTORY).
3. Check the configuration (CREDENTIALS_DIRECTORY as systemd will set it from LoadCredential=):
     CREDENTIALS_DIRECTORY=$CONF_DIR/credentials \\
       camera-gateway check-config --config $CONF_DIR/config.yaml
4. Start the service now and at every boot:
     systemctl enable --now $NAME
   then follow it with \`journalctl -u $NAME -f\` and \`curl -s http://127.0.0.1:9108/metrics\`.
5. Operators who may use \`camera-gateway forward ...\` join the $NAME group:
     usermod -aG $NAME NAME_OF_OPERATOR
After an upgrade (this script run again): systemctl restart $NAME
EOF
