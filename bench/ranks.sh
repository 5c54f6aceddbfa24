#!/usr/bin/env bash
# One process on both cores against N ranks of one thread each, in
# alternating rounds, for `snn bench --mode train` of a config at a batch.
# Prints one JSON line per run (the bench's report plus "launch").
#
# Usage: bench/ranks.sh CONFIG BATCH [ROUNDS] [RANKS] [STEPS]
# Needs target/release/snn built with --features mpi (scripts/install-mpi.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1; batch=$2; rounds=${3:-3}; ranks=${4:-2}; steps=${5:-5}
snn=target/release/snn
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for r in $(seq 1 "$rounds"); do
  line=$($snn bench --config "$config" --batch "$batch" --mode train --steps "$steps" --json)
  echo "{\"launch\":\"1 process, $(nproc) threads\",\"round\":$r,${line#\{}"
  line=$(mpirun --oversubscribe -np "$ranks" -x RAYON_NUM_THREADS=1 \
    $snn bench --config "$config" --batch "$batch" --mode train --steps "$steps" --json)
  echo "{\"launch\":\"$ranks ranks x 1 thread\",\"round\":$r,${line#\{}"
done
