#!/usr/bin/env bash
# The HDF5 C library that srgraph's `keras` feature links (Keras .h5 weights in
# `srgraph import`): Debian's libhdf5-dev, installed when missing. Run as root, or
# with sudo available; does nothing when the library is already there.
set -euo pipefail
if pkg-config --exists hdf5 2>/dev/null || [ -e /usr/include/hdf5/serial/hdf5.h ] || [ -e /usr/include/hdf5.h ]; then
    exit 0
fi
echo "== installing the HDF5 C library (Debian's libhdf5-dev) for the keras feature"
"$(dirname "$0")/apt-install.sh" libhdf5-dev pkg-config
