#!/usr/bin/env bash
# Installs Debian packages for the project's set-up scripts (setup-hdf5.sh, setup-mpi.sh,
# setup-web.sh, setup-slurm.sh): as root, or through sudo; refreshes the package lists
# first, since a fresh machine's can be stale and then the dependencies do not resolve.
#
#   tools/setup/apt-install.sh PACKAGE...
set -euo pipefail
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "apt-install: not root and no sudo: install $* by hand (Debian packages)" >&2; exit 1; }
    sudo="sudo"
fi
$sudo apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$@" >/dev/null
