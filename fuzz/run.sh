#!/usr/bin/env bash
# Coverage-guided fuzzing of one parser (fuzz/README.md):
#   fuzz/run.sh TARGET [RUNS]      TARGET: config idx safetensors npz cifar image
# Runs libFuzzer (cargo fuzz, nightly, no sanitizer: the code is safe Rust,
# what is looked for is a panic, a hang or an allocation past 2 GiB) from
# the committed corpus and the real-file seeds, adds what grows coverage
# to fuzz/corpus/TARGET, writes a crashing input to fuzz/crashes/TARGET,
# and prints libFuzzer's final statistics (executions, coverage).
set -euo pipefail
cd "$(dirname "$0")"
target="${1:?usage: fuzz/run.sh TARGET [RUNS]}"
runs="${2:-1000000}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
mkdir -p "corpus/$target" "crashes/$target"
RUSTC="$PWD/rustc-quiet-nightly.sh" cargo +nightly fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
  -runs="$runs" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
  -artifact_prefix="crashes/$target/" -print_final_stats=1
