#!/bin/sh
# Install the Debian 12 packages a target needs, only those missing (apt-get update only then).
# Usage: deploy/debian-packages.sh demo|test
set -eu

case "${1:-}" in
  # systemd-python is built from source: it needs a compiler, the Python headers and libsystemd.
  # The demo's centre is ffmpeg listening for RTMP, its broker mosquitto.
  demo) packages="python3 python3-venv python3-pip python3-dev gcc pkg-config libsystemd-dev
                  ffmpeg mosquitto mosquitto-clients" ;;
  test) packages="python3 python3-venv python3-pip python3-dev gcc pkg-config libsystemd-dev
                  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
                  gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad
                  gstreamer1.0-x
                  ffmpeg openssl util-linux iproute2 mosquitto mosquitto-clients prometheus
                  systemd e2fsprogs" ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac

missing=""
for p in $packages; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages:$missing" >&2
  echo "install them as root: apt-get install -y$missing" >&2
  exit 1
fi
echo "installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
