#!/usr/bin/env bash
# Installs what `cargo build --features nir` (snn export / snn import of
# NIR files) builds against: the HDF5 C library and headers (Debian's
# libhdf5-dev; hdf5-metno finds it through pkg-config) and h5dump
# (hdf5-tools) to look inside a file.
#
# Debian / Ubuntu, as root (or with sudo). Safe to re-run.
#
# Usage: scripts/install-hdf5.sh
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
need=()
pkg-config --exists hdf5 2>/dev/null || [ -e /usr/include/hdf5/serial/hdf5.h ] || need+=(libhdf5-dev)
have pkg-config || need+=(pkg-config)
have h5dump || need+=(hdf5-tools)
if [ ${#need[@]} -eq 0 ]; then
  echo "install-hdf5: HDF5 is present ($(h5dump --version 2>&1 | head -n1))"
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" install-hdf5 "${need[@]}"
echo "install-hdf5: done ($(h5dump --version 2>&1 | head -n1))"
