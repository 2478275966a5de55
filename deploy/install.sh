#!/bin/sh
# Install, upgrade or remove camera-gateway as a systemd service on a Debian 12 box, from a clone
# of the repository.
#
#   deploy/install.sh                   as root: install, or upgrade (safe to run again)
#   deploy/install.sh --dry-run         print what would be done, change nothing (any user)
#   deploy/install.sh --uninstall       remove the code; keep recordings, journal, keys, config
#   deploy/install.sh --root DIR        the same into a staging root DIR (any user)
#
# Options (they combine, e.g. --uninstall --root DIR --dry-run):
#   -n, --dry-run       print every command that would change something instead of running it
#   --root DIR          prefix every path below with DIR (a staging root). What cannot be done
#                       there is skipped, and said: apt-get, systemd-sysusers, systemd-tmpfiles,
#                       chown to camera-gateway (no such user in DIR), systemctl. A venv cannot
#                       be moved: the staged command runs in place, as
#                       DIR/opt/camera-gateway/venv/bin/camera-gateway.
#   --uninstall         remove what install put there (see "Uninstall" below)
#   --time-sync KIND    chrony, timesyncd or none (default: chrony when it is installed, in DIR
#                       when DIR/etc/chrony exists; else timesyncd)
#   --deps-from VENV    (or CAMERA_GATEWAY_DEPS_FROM=VENV) take the dependencies from the existing
#                       virtual environment VENV instead of PyPI: the venv is made with VENV's
#                       Python, reads VENV's site-packages through a .pth file, and gets only
#                       this clone's package (pip --no-deps; pip still fetches its build tools,
#                       setuptools and wheel, from the index). For tests and for images that
#                       carry the dependencies; a box leaves it out.
#   pip honours PIP_INDEX_URL, and PIP_FIND_LINKS with PIP_NO_INDEX=1: a local mirror or wheelhouse.
#
# Install, or upgrade (this script run again from a newer clone):
#   1. the Debian packages needed at run time and to build systemd-python (only the missing ones);
#   2. the camera-gateway system user and group (/usr/lib/sysusers.d, applied by systemd-sysusers);
#   3. its directories (/usr/lib/tmpfiles.d, applied by systemd-tmpfiles): /var/lib/camera-gateway
#      with audit/ and keys/, and /run/camera-gateway;
#   4. a virtual environment in /opt/camera-gateway/venv with the package from this clone, and
#      /usr/local/bin/camera-gateway pointing into it (the operators' command line);
#   5. /etc/camera-gateway (root:camera-gateway 0750), config.yaml from deploy/config.example.yaml
#      only if there is none yet (0640), and credentials/ (root:camera-gateway 0750);
#   6. the unit in /etc/systemd/system, then `systemctl daemon-reload` if systemd is running;
#   7. the clock: deploy/chrony/camera-gateway.conf in /etc/chrony/conf.d/ when chrony is the NTP
#      client, else deploy/timesyncd/camera-gateway.conf in /etc/systemd/timesyncd.conf.d/; a
#      drop-in edited on the box is never overwritten.
# An upgrade replaces the code only: the package in the venv, the unit, the sysusers and tmpfiles
# entries. config.yaml, credentials/, the recordings, the audit journal and the signing keys are
# never touched. It never enables, starts or restarts camera-gateway: after an upgrade, run
# `systemctl restart camera-gateway`.
#
# Uninstall (--uninstall): stops and disables the service, then removes the venv and the rest of
# /opt/camera-gateway, the command link, the unit, the sysusers and tmpfiles entries and the
# time-sync drop-in (one edited on the box stays). It keeps, and lists with their paths, the
# recordings (storage.path), the audit journal (audit.path), the signing keys (audit.key_dir),
# /etc/camera-gateway (config.yaml, credentials/), the unit's drop-ins and the camera-gateway user.
set -eu
umask 022

PREFIX=/opt/camera-gateway
VENV=$PREFIX/venv
CONF_DIR=/etc/camera-gateway
UNIT_DIR=/etc/systemd/system
SYSUSERS_DIR=/usr/lib/sysusers.d
TMPFILES_DIR=/usr/lib/tmpfiles.d
BIN_LINK=/usr/local/bin/camera-gateway
CHRONY_DIR=/etc/chrony/conf.d
TIMESYNCD_DIR=/etc/systemd/timesyncd.conf.d
STATE_DIR=/var/lib/camera-gateway
NAME=camera-gateway
PACKAGES="python3 python3-venv python3-dev gcc pkg-config libsystemd-dev"

SRC=$(cd "$(dirname "$0")/.." && pwd)
DRY_RUN=0
UNINSTALL=0
ROOT=
TIME_SYNC=auto
DEPS_FROM=${CAMERA_GATEWAY_DEPS_FROM:-}

usage() {
  echo "usage: $0 [--dry-run] [--root DIR] [--uninstall] [--time-sync chrony|timesyncd|none]" >&2
  echo "       [--deps-from VENV]       ($0 --help explains each)" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run|-n) DRY_RUN=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --root) [ $# -ge 2 ] || usage; ROOT=$2; shift ;;
    --root=*) ROOT=${1#--root=} ;;
    --time-sync) [ $# -ge 2 ] || usage; TIME_SYNC=$2; shift ;;
    --time-sync=*) TIME_SYNC=${1#--time-sync=} ;;
    --deps-from) [ $# -ge 2 ] || usage; DEPS_FROM=$2; shift ;;
    --deps-from=*) DEPS_FROM=${1#--deps-from=} ;;
    -h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; exit 0 ;;
    *) usage ;;
  esac
  shift
done
case "$TIME_SYNC" in auto|chrony|timesyncd|none) ;; *) usage ;; esac

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
die() { say "$0: $*" >&2; exit 1; }

# Run a command, or only show it with --dry-run.
run() {
  if [ "$DRY_RUN" -eq 1 ]; then
    printf '+ %s\n' "$*"
  else
    "$@"
  fi
}

if [ -n "$ROOT" ]; then
  case "$ROOT" in /*) ;; *) ROOT=$(pwd)/$ROOT ;; esac
  while [ "${ROOT%/}" != "$ROOT" ]; do ROOT=${ROOT%/}; done  # "/" is the box itself: ""
fi
staging() { [ -n "$ROOT" ]; }
skipped() { say "skipped in the staging root $ROOT: $*"; }
systemd_running() { ! staging && [ -d /run/systemd/system ]; }
# shellcheck disable=SC2016
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

if [ -n "$DEPS_FROM" ]; then
  case "$DEPS_FROM" in /*) ;; *) DEPS_FROM=$(pwd)/$DEPS_FROM ;; esac
  [ -x "$DEPS_FROM/bin/python" ] || die "--deps-from $DEPS_FROM: no virtual environment there (no bin/python)"
fi

# The paths as written here, on the box (or under --root).
R_PREFIX=$ROOT$PREFIX
R_VENV=$ROOT$VENV
R_CONF=$ROOT$CONF_DIR
R_UNIT=$ROOT$UNIT_DIR/$NAME.service
R_SYSUSERS=$ROOT$SYSUSERS_DIR/$NAME.conf
R_TMPFILES=$ROOT$TMPFILES_DIR/$NAME.conf
R_LINK=$ROOT$BIN_LINK
# Copies of the time-sync drop-ins as shipped, to tell a drop-in edited on the box from ours.
SHIPPED=$R_PREFIX/shipped

for f in "$SRC/setup.cfg" "$SRC/systemd/$NAME.service" "$SRC/deploy/sysusers.d/$NAME.conf" \
         "$SRC/deploy/tmpfiles.d/$NAME.conf" "$SRC/deploy/chrony/$NAME.conf" \
         "$SRC/deploy/timesyncd/$NAME.conf" "$SRC/deploy/config.example.yaml"; do
  if [ ! -f "$f" ]; then
    say "missing $f: run this script from a clone of camera-gateway" >&2
    exit 1
  fi
done

if [ "$DRY_RUN" -eq 0 ] && ! staging && [ "$(id -u)" -ne 0 ]; then
  say "$0: must run as root (or use --dry-run to see what it would do, or --root DIR)" >&2
  exit 1
fi
if [ "$DRY_RUN" -eq 1 ]; then
  say "dry run: nothing is changed; the commands are only shown"
fi

# put MODE SOURCE TARGET: install SOURCE as TARGET, unless TARGET is already the same.
put() {
  if [ -f "$3" ] && cmp -s "$2" "$3" && [ "$(stat -c %a "$3")" = "${1#0}" ]; then
    say "unchanged: $3"
    return 0
  fi
  if [ "$DRY_RUN" -eq 0 ]; then
    if [ -e "$3" ]; then say "replaced: $3"; else say "installed: $3"; fi
  fi
  run install -d -m 0755 "$(dirname "$3")"
  run install -m "$1" "$2" "$3"
}

# remove PATH...: rm -rf each one that is there, and say so.
remove() {
  for path in "$@"; do
    if [ -e "$path" ] || [ -L "$path" ]; then
      if [ "$DRY_RUN" -eq 0 ]; then
        say "removed: $path"
      fi
      run rm -rf "$path"
    fi
  done
}

# A directory or file of root:camera-gateway; owned by whoever runs this in a staging root.
install_owned() {
  if staging; then
    run install "$@"
  else
    run install -o root -g "$NAME" "$@"
  fi
}

drop_in_path() {
  case "$1" in
    chrony) say "$ROOT$CHRONY_DIR/$NAME.conf" ;;
    timesyncd) say "$ROOT$TIMESYNCD_DIR/$NAME.conf" ;;
  esac
}
drop_in_service() {
  case "$1" in
    chrony) say chrony.service ;;
    timesyncd) say systemd-timesyncd.service ;;
  esac
}

# restart_time_sync KIND: have the NTP client read its changed drop-in.
restart_time_sync() {
  service=$(drop_in_service "$1")
  if staging; then
    skipped "systemctl try-restart $service"
  elif systemd_running; then
    run systemctl try-restart "$service"
  else
    say "systemd is not running here: $service reads it when it next starts"
  fi
}

# install_drop_in KIND: deploy/KIND/camera-gateway.conf, unless the one in place was edited.
install_drop_in() {
  new=$SRC/deploy/$1/$NAME.conf
  target=$(drop_in_path "$1")
  shipped=$SHIPPED/$1.conf
  changed=0
  if [ ! -e "$target" ]; then
    if [ "$DRY_RUN" -eq 0 ]; then
      say "installed: $target"
    fi
    run install -d -m 0755 "$(dirname "$target")"
    run install -m 0644 "$new" "$target"
    changed=1
  elif cmp -s "$new" "$target"; then
    say "unchanged: $target"
  elif [ -f "$shipped" ] && cmp -s "$shipped" "$target"; then
    say "$target: as an older version shipped it, never edited: replaced"
    run install -m 0644 "$new" "$target"
    changed=1
  else
    say "$target: edited on this box: kept as it is"
    say "  (this version's is $shipped; compare with: diff -u $shipped $target)"
  fi
  put 0644 "$new" "$shipped"
  if [ "$changed" -eq 1 ]; then
    restart_time_sync "$1"
  fi
}

# The storage, audit and keys paths of config.yaml, one a line, each under --root.
config_paths() {
  cfg=$R_CONF/config.yaml
  paths=""
  if [ -f "$cfg" ] && [ -x "$R_VENV/bin/python" ]; then
    paths=$("$R_VENV/bin/python" -I -c '
import sys, yaml
data = yaml.safe_load(open(sys.argv[1])) or {}
storage = str((data.get("storage") or {}).get("path") or sys.argv[2])
audit = data.get("audit") or {}
print(storage)
print(audit.get("path") or storage.rstrip("/") + "/audit")
print(audit.get("key_dir") or storage.rstrip("/") + "/keys")
' "$cfg" "$STATE_DIR" 2>/dev/null) || paths=""
  fi
  if [ -z "$paths" ] && [ -f "$cfg" ]; then
    # No venv to read YAML with: the block layout of deploy/config.example.yaml.
    paths=$(awk -v default="$STATE_DIR" -v q="'" '
      function value(line) {
        sub(/^[ \t]+[a-z_]+:[ \t]*/, "", line); sub(/[ \t]+#.*$/, "", line)
        gsub(/"/, "", line); gsub(q, "", line); return line
      }
      /^[A-Za-z_]+:/ { section = $0; sub(/:.*/, "", section); next }
      section == "storage" && /^[ \t]+path:/ { storage = value($0) }
      section == "audit" && /^[ \t]+path:/ { audit = value($0) }
      section == "audit" && /^[ \t]+key_dir:/ { keys = value($0) }
      END {
        if (storage == "") storage = default
        sub(/\/+$/, "", storage)
        print storage
        print (audit == "" ? storage "/audit" : audit)
        print (keys == "" ? storage "/keys" : keys)
      }' "$cfg")
  fi
  if [ -z "$paths" ]; then
    paths=$(printf '%s\n%s\n%s' "$STATE_DIR" "$STATE_DIR/audit" "$STATE_DIR/keys")
  fi
  # A path of the box is shown under --root; one already under it (a configuration written to
  # run the staged tree in place) is taken as it is.
  printf '%s\n' "$paths" | while IFS= read -r path; do
    case "$path" in
      "$ROOT"/*) say "$path" ;;
      /*) say "$ROOT$path" ;;
      *) say "$path" ;;
    esac
  done
}

# kept WHAT PATH [NOTE]: one line of what --uninstall left in place.
kept() {
  if [ -e "$2" ]; then
    printf '  %-18s %s%s\n' "$1" "$2" "${3:+ ($3)}"
  else
    printf '  %-18s %s (not there)\n' "$1" "$2"
  fi
}

uninstall() {
  say "removing camera-gateway${ROOT:+ from the staging root $ROOT} (recordings, journal, keys and configuration stay)"
  paths=$(config_paths)
  storage=$(say "$paths" | sed -n 1p)
  audit=$(say "$paths" | sed -n 2p)
  keys=$(say "$paths" | sed -n 3p)

  step "service"
  if staging; then
    skipped "systemctl disable --now $NAME.service"
  elif systemd_running && [ -e "$R_UNIT" ]; then
    # SIGTERM: the daemon finalises every open segment before it exits.
    run systemctl disable --now "$NAME.service"
  else
    say "no running systemd or no unit: nothing to stop"
  fi

  step "code"
  if [ -L "$R_LINK" ]; then
    if [ "$(readlink "$R_LINK")" = "$VENV/bin/camera-gateway" ]; then
      remove "$R_LINK"
    else
      say "$R_LINK points to $(readlink "$R_LINK"), not into $VENV: kept"
    fi
  fi
  remove "$R_VENV" "$R_PREFIX/README.md" "$R_PREFIX/config.example.yaml"
  remove "$R_UNIT" "$R_SYSUSERS" "$R_TMPFILES"
  if systemd_running; then
    run systemctl daemon-reload
  fi

  step "time-sync drop-ins"
  edited_chrony=0
  edited_timesyncd=0
  for kind in chrony timesyncd; do
    target=$(drop_in_path "$kind")
    [ -e "$target" ] || continue
    if cmp -s "$target" "$SRC/deploy/$kind/$NAME.conf" || cmp -s "$target" "$SHIPPED/$kind.conf"; then
      remove "$target"
      restart_time_sync "$kind"
    else
      say "$target: edited on this box (the centre's NTP server?): kept"
      if [ "$kind" = chrony ]; then edited_chrony=1; else edited_timesyncd=1; fi
    fi
  done
  remove "$SHIPPED"
  if [ -d "$R_PREFIX" ]; then
    if [ "$DRY_RUN" -eq 1 ]; then
      say "+ rmdir $R_PREFIX   (if nothing else is left in it)"
    elif rmdir "$R_PREFIX" 2>/dev/null; then
      say "removed: $R_PREFIX"
    else
      say "$R_PREFIX: kept, it holds files this script did not put there: $(find "$R_PREFIX" -mindepth 1 -maxdepth 1 | tr '\n' ' ')"
    fi
  fi

  step "kept (evidence and this box's configuration)"
  segments=0
  if [ -d "$storage" ]; then
    segments=$(find "$storage" -type f -name '*.mp4' 2>/dev/null | wc -l | tr -d ' ')
  fi
  kept recordings "$storage" "$segments segment files"
  kept "audit journal" "$audit"
  kept "signing keys" "$keys"
  kept configuration "$R_CONF/config.yaml"
  kept credentials "$R_CONF/credentials"
  if [ -d "$ROOT$UNIT_DIR/$NAME.service.d" ]; then
    kept "unit drop-ins" "$ROOT$UNIT_DIR/$NAME.service.d"
  fi
  if [ "$edited_chrony" -eq 1 ]; then
    kept "time-sync drop-in" "$(drop_in_path chrony)" "edited on this box"
  fi
  if [ "$edited_timesyncd" -eq 1 ]; then
    kept "time-sync drop-in" "$(drop_in_path timesyncd)" "edited on this box"
  fi
  if staging; then
    say "  (the camera-gateway user was never created in a staging root)"
  elif getent passwd "$NAME" >/dev/null 2>&1; then
    say "  user and group     $NAME (the owner of the files above; userdel $NAME once they are gone)"
  fi
  say "Delete these by hand only when nothing needs them any more: recordings may be wanted for a"
  say "judicial procedure (legal holds), and the journal is kept for audit.retention."
}

install_all() {
  say "installing camera-gateway from $SRC${ROOT:+ into the staging root $ROOT}"

  step "Debian packages"
  if staging; then
    skipped "apt-get (the Debian packages go on the box itself: $PACKAGES)"
  else
    missing=""
    for p in $PACKAGES; do
      if ! installed "$p"; then
        missing="$missing $p"
      fi
    done
    if [ -z "$missing" ]; then
      say "all present: $PACKAGES"
    else
      say "missing:$missing"
      export DEBIAN_FRONTEND=noninteractive
      run apt-get update -q
      # shellcheck disable=SC2086
      run apt-get install -y -q --no-install-recommends $missing
    fi
  fi

  step "system user and group ($R_SYSUSERS)"
  put 0644 "$SRC/deploy/sysusers.d/$NAME.conf" "$R_SYSUSERS"
  if staging; then
    skipped "systemd-sysusers (systemd-sysusers.service creates the user at the box's boot)"
  elif command -v systemd-sysusers >/dev/null 2>&1; then
    run systemd-sysusers "$R_SYSUSERS"
  elif [ "$DRY_RUN" -eq 1 ]; then
    say "+ systemd-sysusers $R_SYSUSERS   (not found on this machine)"
  else
    say "systemd-sysusers not found: is this a systemd-based Debian 12?" >&2
    exit 1
  fi

  step "state and runtime directories ($R_TMPFILES)"
  put 0644 "$SRC/deploy/tmpfiles.d/$NAME.conf" "$R_TMPFILES"
  if staging; then
    skipped "systemd-tmpfiles --create (systemd-tmpfiles-setup.service applies it at the box's boot)"
  elif command -v systemd-tmpfiles >/dev/null 2>&1; then
    run systemd-tmpfiles --create "$R_TMPFILES"
  else
    say "systemd-tmpfiles not found: the unit's StateDirectory= makes $STATE_DIR at its first start"
  fi

  step "virtual environment ($R_VENV)"
  if [ -n "$DEPS_FROM" ]; then
    python=$DEPS_FROM/bin/python
    say "dependencies from $DEPS_FROM (--deps-from): only this clone's package is installed"
  else
    python=python3
  fi
  if [ "$DRY_RUN" -eq 0 ] && ! "$python" -I -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "camera-gateway needs Python >= 3.11 (found: $("$python" --version 2>&1))" >&2
    exit 1
  fi
  run install -d -m 0755 "$R_PREFIX"
  before=""
  if [ -x "$R_VENV/bin/python" ]; then
    before=$("$R_VENV/bin/python" -I -c 'from importlib.metadata import version; print(version("camera-gateway"))' 2>/dev/null) || before=""
    say "$R_VENV exists${before:+ with camera-gateway $before}: upgrading the package in it"
  else
    run "$python" -I -m venv "$R_VENV"
  fi
  pip="--disable-pip-version-check --quiet"
  if [ -n "$DEPS_FROM" ]; then
    deps_site=$("$DEPS_FROM/bin/python" -I -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    if [ "$DRY_RUN" -eq 1 ]; then
      say "+ echo $deps_site > $R_VENV/lib/python3.X/site-packages/$NAME-deps.pth"
    else
      site=$("$R_VENV/bin/python" -I -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
      printf '%s\n' "$deps_site" >"$site/$NAME-deps.pth"
    fi
    # shellcheck disable=SC2086
    run "$R_VENV/bin/python" -I -m pip install $pip --upgrade --no-deps "$SRC"
  else
    for f in "$R_VENV"/lib/python3*/site-packages/"$NAME"-deps.pth; do
      if [ -e "$f" ]; then
        run rm -f "$f"  # made by an earlier --deps-from: the dependencies now come from PyPI
      fi
    done
    # shellcheck disable=SC2086
    run "$R_VENV/bin/python" -I -m pip install $pip --upgrade pip
    # shellcheck disable=SC2086
    run "$R_VENV/bin/python" -I -m pip install $pip --upgrade "$SRC"
  fi
  if [ "$DRY_RUN" -eq 0 ]; then
    after=$("$R_VENV/bin/python" -I -c 'from importlib.metadata import version; print(version("camera-gateway"))')
    say "camera-gateway ${before:+$before -> }$after in $R_VENV"
  fi
  # The unit's Documentation=, and the reference for whoever edits the configuration.
  put 0644 "$SRC/README.md" "$R_PREFIX/README.md"
  put 0644 "$SRC/deploy/config.example.yaml" "$R_PREFIX/config.example.yaml"
  run install -d -m 0755 "$(dirname "$R_LINK")"
  if [ -L "$R_LINK" ] && [ "$(readlink "$R_LINK")" = "$VENV/bin/camera-gateway" ]; then
    say "unchanged: $R_LINK -> $VENV/bin/camera-gateway"
  else
    if [ "$DRY_RUN" -eq 0 ]; then
      say "installed: $R_LINK -> $VENV/bin/camera-gateway"
    fi
    run ln -sfn "$VENV/bin/camera-gateway" "$R_LINK"
  fi

  step "configuration ($R_CONF)"
  if staging; then
    skipped "chown root:$NAME (no $NAME user in a staging root: the files are yours)"
  fi
  install_owned -d -m 0750 "$R_CONF"
  install_owned -d -m 0750 "$R_CONF/credentials"
  if [ -e "$R_CONF/config.yaml" ]; then
    say "$R_CONF/config.yaml exists: kept as it is (the example is in $R_PREFIX/config.example.yaml)"
  else
    install_owned -m 0640 "$SRC/deploy/config.example.yaml" "$R_CONF/config.yaml"
  fi

  step "systemd unit ($R_UNIT)"
  put 0644 "$SRC/systemd/$NAME.service" "$R_UNIT"
  if staging; then
    skipped "systemctl daemon-reload"
  elif systemd_running; then
    run systemctl daemon-reload
  else
    say "systemd is not running here (no /run/systemd/system): skipping systemctl daemon-reload;"
    say "the unit is picked up at the next boot"
  fi

  kind=$TIME_SYNC
  if [ "$kind" = auto ]; then
    if staging; then
      if [ -d "$ROOT/etc/chrony" ]; then kind=chrony; else kind=timesyncd; fi
    elif installed chrony; then
      kind=chrony
    else
      kind=timesyncd
    fi
  fi
  if [ "$kind" = none ]; then
    step "clock"
    say "--time-sync none: the NTP client's configuration is left as it is"
  else
    step "clock ($kind: $(drop_in_path "$kind"))"
    install_drop_in "$kind"
    if ! staging && [ "$kind" = timesyncd ] && ! installed systemd-timesyncd && ! installed chrony; then
      say "WARNING: no NTP client is installed: the clock is never synchronised, and every seal" >&2
      say "and journal entry says so (camera_gateway_clock_synchronized 0)." >&2
      say "Install one, then run this script again: apt-get install chrony" >&2
    fi
  fi

  step "next steps"
  if [ "$kind" = none ]; then
    clock="have the box's NTP client follow the centre's NTP server"
  else
    drop_in=$(drop_in_path "$kind")
    clock="put the centre's NTP server in ${drop_in#"$ROOT"} (see its comments)"
  fi
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
4. The clock: $clock
   and restart the NTP client; camera_gateway_clock_synchronized turns 1 once it is synchronised.
5. Start the service now and at every boot:
     systemctl enable --now $NAME
   then follow it with \`journalctl -u $NAME -f\` and \`curl -s http://127.0.0.1:9108/metrics\`.
6. Operators who may use \`camera-gateway forward ...\` join the $NAME group:
     usermod -aG $NAME NAME_OF_OPERATOR
After an upgrade (this script run again): systemctl restart $NAME
EOF
}

if [ "$UNINSTALL" -eq 1 ]; then
  uninstall
else
  install_all
fi
