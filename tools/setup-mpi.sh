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
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup-mpi: not root and no sudo: install openmpi-bin, libopenmpi-dev and libclang-dev by hand" >&2; exit 1; }
    sudo="sudo"
fi
$sudo apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends openmpi-bin libopenmpi-dev libclang-dev >/dev/null
