#!/usr/bin/env bash
# Installs what `cargo build --features mpi` (snn-cli's data-parallel
# training) builds against and runs with: Open MPI (Debian's openmpi-bin,
# libopenmpi-dev; `mpicc` tells the `mpi` crate where MPI lives) and
# libclang (bindgen, which the `mpi` crate uses to read mpi.h).
#
# Debian / Ubuntu, as root (or with sudo). Safe to re-run: it does nothing
# when everything is there.
#
# Usage: scripts/install-mpi.sh
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
need=()
have mpirun || need+=(openmpi-bin)
have mpicc || need+=(libopenmpi-dev)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/*/libclang*.so* >/dev/null 2>&1 \
  || need+=(libclang-dev)
if [ ${#need[@]} -eq 0 ]; then
  echo "install-mpi: Open MPI and libclang are present ($(mpirun --version 2>&1 | head -n1))"
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" install-mpi "${need[@]}"
echo "install-mpi: $(mpirun --version 2>&1 | head -n1)"
