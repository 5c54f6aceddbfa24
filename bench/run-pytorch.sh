#!/usr/bin/env bash
# Runs a PyTorch twin in a private virtual environment, installing torch
# (CPU) with pip on first use. Not needed by the tests.
# Usage: bench/run-pytorch.sh [SCRIPT.py] ARGS...
#   SCRIPT defaults to pytorch_mnist.py (the classifier twin);
#   pytorch_fsvae.py is the FSVAE twin; nir_snntorch.py runs an exported
#   classifier in snnTorch (installing snnTorch and nir too).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${TORCH_VENV:-$here/.venv}"
script=pytorch_mnist.py
if [ $# -gt 0 ] && [[ "$1" == *.py ]]; then
  script="$1"
  shift
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch
fi
# The NIR benches also need snnTorch, the NIR packages and NeuroBench.
case "$script" in
  nir_snntorch.py | nir_ops_neurobench.py)
    if ! "$venv/bin/python" -c "import snntorch, nir, nirtorch, h5py, neurobench" 2>/dev/null; then
      "$venv/bin/pip" install -q snntorch "nir==1.0.8" nirtorch h5py neurobench
    fi ;;
esac
exec "$venv/bin/python" -W ignore "$here/$script" "$@"
