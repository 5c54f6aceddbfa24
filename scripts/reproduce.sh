#!/usr/bin/env bash
# Reproduce rows of the paper's tables (configs/paper/): estimate, train
# (resuming an interrupted row), score, append to results/paper.jsonl and
# regenerate docs/results.md. Usage and details: scripts/reproduce.py.
#
#   scripts/reproduce.sh table5-mnist-alif      # one row
#   scripts/reproduce.sh esvae-mnist --ranks 2  # one row on 2 MPI ranks
#   scripts/reproduce.sh table7                 # a table's rows
#   scripts/reproduce.sh all --estimate-only    # what every row would take
#   scripts/reproduce.sh --doc                  # docs/results.md from the results file
#   scripts/reproduce.sh --status               # each row's result and run folder
set -euo pipefail
cd "$(dirname "$0")/.."
# The doc and status modes run no `snn`: nothing to build.
# `--ranks N` trains under mpirun: snn needs the mpi feature.
if [[ ! "${1:-}" =~ ^--(doc|check-doc|status)$ && -z "${SNN:-}" ]]; then
    if [[ " $* " == *" --ranks "* ]]; then
        cargo build --release -q -p snn-cli --features mpi
    else
        cargo build --release -q -p snn-cli
    fi
fi
exec python3 scripts/reproduce.py "$@"
