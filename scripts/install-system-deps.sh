#!/usr/bin/env bash
# Install the Debian packages the tests and the demo use, only when missing, and only as root.
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: missing Debian packages ${missing[*]} (run as root to install them); tests needing them skip" >&2
  exit 0
fi
echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# prometheus and alertmanager packages start daemons via systemd when present; we only need the binaries
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
