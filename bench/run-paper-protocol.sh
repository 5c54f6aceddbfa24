#!/usr/bin/env bash
# Remakes tests/fixtures/paper-protocol.json with bench/paper_protocol_reference.py
# in a private virtual environment, installing torch, torchvision, Pillow,
# scipy and clean-fid with pip on first use. Needs the FSVAE FAD originals
# (shared/fsvae-fad, or $FSVAE_FAD_DIR) and the FID network's TorchScript
# (scripts/fetch-data.sh inception). Not needed by the tests.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
venv="${TORCH_VENV:-$here/.venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, torchvision, PIL, scipy, cleanfid" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch torchvision pillow scipy clean-fid
fi
[ -f data/inception/default_1.pt ] || bash scripts/fetch-data.sh inception
exec "$venv/bin/python" -W ignore "$here/paper_protocol_reference.py" \
  "${FSVAE_FAD_DIR:-../shared/fsvae-fad}" data/inception/default_1.pt
