#!/usr/bin/env bash
# The HDF5 C library that srgraph's `keras` feature links (Keras .h5 weights in
# `srgraph import`): Debian's libhdf5-dev, installed when missing. Run as root, or
# with sudo available; does nothing when the library is already there.
set -euo pipefail
if pkg-config --exists hdf5 2>/dev/null || [ -e /usr/include/hdf5/serial/hdf5.h ] || [ -e /usr/include/hdf5.h ]; then
    exit 0
fi
echo "== installing the HDF5 C library (Debian's libhdf5-dev) for the keras feature"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup-hdf5: not root and no sudo: install libhdf5-dev by hand" >&2; exit 1; }
    sudo="sudo"
fi
# A fresh machine's package lists can be stale: libhdf5-dev's dependencies then do not resolve.
$sudo apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends libhdf5-dev pkg-config >/dev/null
