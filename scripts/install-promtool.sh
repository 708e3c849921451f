#!/usr/bin/env bash
# Installs promtool alone, from Debian's or Ubuntu's prometheus package, into /usr/local/bin.
# Installing the package itself would also start a Prometheus server. Run as root.
set -euo pipefail

usage() {
  echo "usage: $0   (as root; does nothing when promtool is already on PATH)" >&2
}

if (($#)); then
  usage
  exit 2
fi
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
deb_dir="$(mktemp -d)"
trap 'rm -rf "$deb_dir"' EXIT
(cd "$deb_dir" && apt-get download -qq -o APT::Sandbox::User=root prometheus)
dpkg-deb --fsys-tarfile "$deb_dir"/prometheus_*.deb | tar -x -C "$deb_dir" ./usr/bin/promtool
install -m 0755 "$deb_dir/usr/bin/promtool" /usr/local/bin/promtool
promtool --version | head -n 1
