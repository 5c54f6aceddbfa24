#!/usr/bin/env bash
# Runs `snn bench` and the PyTorch twin alternately on this machine, each
# setting `rounds` times (snn-rs, PyTorch, snn-rs, ...), so both sides see
# the same background load; every run warms up 3 steps first. Prints one
# JSON line per run, then per setting the median over rounds of each side's
# median step time and peak memory, snn-rs's speed-up and the step's
# dense-GEMM floor.
# Usage: bench/side-by-side.sh [steps] [rounds] [settings...]
#   a setting is "net mode batch", e.g. "mnist train 16" (default: the five
#   classifier settings of docs/performance.md); net "fsvae" benchmarks
#   configs/fsvae-mnist-taid.toml against bench/pytorch_fsvae.py, modes
#   train and sample, e.g. "fsvae train 64" "fsvae sample 250"; net "esvae"
#   configs/esvae-mnist.toml against bench/pytorch_esvae.py the same way
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-5}"
rounds="${2:-1}"
shift $(( $# > 2 ? 2 : $# ))
settings=("$@")
if [ ${#settings[@]} -eq 0 ]; then
  settings=("mnist train 16" "mnist train 64" "mnist infer 64" "cifar10 train 16" "cifar10 infer 64")
fi
cargo build --release -q -p snn-cli
snn=target/release/snn
log="$(mktemp)"
for spec in "${settings[@]}"; do
  set -- $spec
  net=$1 mode=$2 batch=$3
  s=$steps warm=3 config="configs/$net-alif.toml" twin=(pytorch_mnist.py --net "$net")
  [ "$net" = cifar10 ] && s=2
  if [ "$net" = fsvae ]; then
    # An FSVAE step takes seconds: fewer steps, one warm-up.
    s=$(( steps < 3 ? steps : 3 )) warm=1 config=configs/fsvae-mnist-taid.toml twin=(pytorch_fsvae.py)
  fi
  if [ "$net" = esvae ]; then
    s=$(( steps < 3 ? steps : 3 )) warm=1 config=configs/esvae-mnist.toml twin=(pytorch_esvae.py)
  fi
  for _ in $(seq "$rounds"); do
    line=$($snn bench --config "$config" --mode "$mode" --batch "$batch" \
      --warmup "$warm" --steps "$s" --json)
    echo "$line"; echo "$spec|snn|$line" >>"$log"
    line=$(bench/run-pytorch.sh "${twin[@]}" --mode "$mode" --batch "$batch" --warmup "$warm" --steps "$s")
    echo "$line"; echo "$spec|pytorch|$line" >>"$log"
  done
done
python3 - "$log" <<'EOF'
import json, statistics, sys
runs = {}
for row in open(sys.argv[1]):
    spec, side, line = row.rstrip("\n").split("|", 2)
    runs.setdefault(spec, {}).setdefault(side, []).append(json.loads(line))
# floor: the step's layer products done densely at this machine's measured
# GEMM peak (snn bench's dense_floor_s), the time a dense engine cannot beat.
print(f"{'setting':<18} {'snn-rs s':>9} {'PyTorch s':>10} {'speed-up':>9} {'floor s':>8} "
      f"{'snn MiB':>8} {'torch MiB':>10}")
for spec, sides in runs.items():
    med = {k: statistics.median(r["median_s"] for r in v) for k, v in sides.items()}
    mem = {k: statistics.median(r["peak_rss_mib"] for r in v) for k, v in sides.items()}
    floor = statistics.median(r["dense_floor_s"] for r in sides["snn"])
    print(f"{spec:<18} {med['snn']:>9.3f} {med['pytorch']:>10.3f} "
          f"{med['pytorch'] / med['snn']:>8.2f}x {floor:>8.3f} {mem['snn']:>8.0f} {mem['pytorch']:>10.0f}")
EOF
rm -f "$log"
