#!/usr/bin/env bash
# Prints the path of a Python that has the NIR package (nir 1.0.8, the
# version the tests check against) with h5py and numpy, making the venv
# target/nir-venv on first use (from PyPI). snn-nir's tests call it.
#
# Usage: scripts/nir-python.sh
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${NIR_VENV:-$here/target/nir-venv}"
# Tests run in parallel and each asks for the venv: one makes it, the
# others wait on the lock and then find it made.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ! "$venv/bin/python" -c "import nir, h5py, numpy" >/dev/null 2>&1; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q "nir==1.0.8" h5py numpy >&2
fi
echo "$venv/bin/python"
