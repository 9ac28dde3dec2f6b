#!/usr/bin/env bash
# What srgraph's `mpi` feature builds on and its tests run with: Debian's OpenMPI
# (openmpi-bin for mpirun, libopenmpi-dev for the library and mpicc) and libclang, with
# which the rsmpi crate generates its bindings. Run as root, or with sudo available; does
# nothing when they are already there.
set -euo pipefail
if command -v mpirun >/dev/null && command -v mpicc >/dev/null && ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1; then
    exit 0
fi
echo "== installing OpenMPI and libclang (Debian's openmpi-bin, libopenmpi-dev, libclang-dev) for the mpi feature"
"$(dirname "$0")/apt-install.sh" openmpi-bin libopenmpi-dev libclang-dev
