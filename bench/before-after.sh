#!/usr/bin/env bash
# Compares `snn bench` of an earlier revision with the working tree's, on
# this machine, alternating the two binaries round by round so both see the
# same background load (what docs/performance.md's before / after tables
# are made with). Builds the revision in a temporary worktree with its own
# target folder (the two builds must not share one: cargo would mix their
# workspace crates). Prints one line per run.
# Usage: bench/before-after.sh REV [rounds] [settings...]
#   a setting is "config mode batch steps warmup", e.g.
#   "mnist-alif train 16 10 2" or "fsvae-mnist-taid sample 250 3 1"
set -euo pipefail
cd "$(dirname "$0")/.."
rev="${1:?usage: bench/before-after.sh REV [rounds] [settings...]}"
rounds="${2:-3}"
shift $(( $# > 2 ? 2 : $# ))
settings=("$@")
if [ ${#settings[@]} -eq 0 ]; then
  settings=("mnist-alif train 16 10 2" "mnist-alif train 64 5 1" "mnist-alif infer 64 10 2")
fi
work="$(mktemp -d)"
trap 'git worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add -q "$work/tree" "$rev"
(cd "$work/tree" && CARGO_TARGET_DIR="$work/target" cargo build --release -q -p snn-cli)
cp "$work/target/release/snn" "$work/snn-before"
cargo build --release -q -p snn-cli
cp target/release/snn "$work/snn-after"
for r in $(seq 1 "$rounds"); do
  for side in before after; do
    for spec in "${settings[@]}"; do
      read -r cfg mode batch steps warm <<<"$spec"
      line=$("$work/snn-$side" bench --config "configs/$cfg.toml" --mode "$mode" \
        --batch "$batch" --steps "$steps" --warmup "$warm" 2>&1 | grep -m1 median || true)
      echo "round $r $side $cfg $mode b$batch :: $line"
    done
  done
done
