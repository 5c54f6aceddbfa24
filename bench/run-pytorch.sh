#!/usr/bin/env bash
# Runs bench/pytorch_mnist.py in a private virtual environment, installing
# torch (CPU) with pip on first use. Not needed by the tests.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${TORCH_VENV:-$here/.venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch
fi
exec "$venv/bin/python" -W ignore "$here/pytorch_mnist.py" "$@"
