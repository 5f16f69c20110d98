#!/usr/bin/env bash
# Install the Debian packages the project needs, or say in one line how to.
# Usage: tools/ensure_apt.sh PKG...
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing Debian packages; run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg (e.g. unattended upgrades, a parallel install) instead of failing on its lock.
lock=(-o DPkg::Lock::Timeout=600)
apt-get "${lock[@]}" update -qq >/dev/null
apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
