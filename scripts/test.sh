#!/usr/bin/env bash
# The tests: `cargo test --workspace` (arguments are passed on), then one
# line naming every check that skipped because a fetched file is missing
# (snn_core::checks: the FID network's weights, the full test sets; fetch
# them with scripts/fetch-data.sh). CI sets SNN_REQUIRE_INCEPTION and
# SNN_REQUIRE_DATA, which turn those skips into failures.
#
# Usage: scripts/test.sh [cargo test arguments]
set -uo pipefail
cd "$(dirname "$0")/.."
list="$PWD/target/skipped-checks.txt"
mkdir -p target
rm -f "$list"
SNN_SKIPPED_FILE="$list" cargo test --workspace "$@"
status=$?
if [ -s "$list" ]; then
  echo "skipped checks ($(sort -u "$list" | wc -l)): $(sort -u "$list" | paste -sd ';' | sed 's/;/; /g')"
else
  echo "skipped checks: none"
fi
exit $status
