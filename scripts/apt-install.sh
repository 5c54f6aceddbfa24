#!/usr/bin/env bash
# Installs Debian packages as root (or with sudo): what the install-*.sh
# scripts share once they know which packages are missing.
#
# Usage: scripts/apt-install.sh WHO PACKAGE...   (WHO prefixes the messages)
set -euo pipefail
who="$1"
shift
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "$who: need root (or sudo) to install $*" >&2; exit 1; }
  sudo=sudo
fi
echo "$who: installing $*"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
