#!/usr/bin/env bash
# Runs `snn bench` and the PyTorch twin one after the other on this machine
# and prints one JSON line each. Usage: bench/side-by-side.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-5}"
cargo build --release -q -p snn-cli
snn=target/release/snn
for spec in "mnist train 16" "mnist train 64" "mnist infer 64" "cifar10 train 16" "cifar10 infer 64"; do
  set -- $spec
  net=$1 mode=$2 batch=$3
  s=$steps; [ "$net" = cifar10 ] && s=2
  $snn bench --config "configs/$net-alif.toml" --mode "$mode" --batch "$batch" --steps "$s" --json
  bench/run-pytorch.sh --net "$net" --mode "$mode" --batch "$batch" --steps "$s"
done
