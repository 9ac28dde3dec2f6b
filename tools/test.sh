#!/usr/bin/env bash
# The test command: sets up what the tests need on a fresh machine (the Python
# venv for the cross-runtime checks, whose onnxruntime wheel also provides the
# ONNX Runtime library, a second venv with ONNX Runtime's training API,
# onnxruntime-training-cpu 1.19.2, for the training-artefact checks, and Debian's Chromium
# with the page's npm packages for the browser tests, and a one-node Slurm cluster on
# localhost for the study's Slurm test), then runs
# every test (with the `keras` and `mpi` features, whose HDF5 and OpenMPI libraries
# tools/setup/setup-hdf5.sh and tools/setup/setup-mpi.sh install from Debian), and each fuzz
# target for 30 s ($SRGRAPH_FUZZ_SECONDS; tools/util/fuzz.sh).
# The integration tests are one crate, tests/it/ (one module per topic), linked once:
# `tools/test.sh --test it bad_input::` runs one module's tests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/setup/setup-python.sh
tools/setup/setup-training-venv.sh "$root/.venv-training"
# Chromium and the page's npm packages, for the browser tests (tests/it/browser.rs).
tools/setup/setup-web.sh
# A one-node Slurm cluster on localhost, for the study's Slurm test (tests/it/slurm.rs).
tools/setup/setup-slurm.sh
# The keras feature (Keras .h5 weights in `srgraph import`) links Debian's HDF5 library, the mpi
# feature (data-parallel training under mpirun) OpenMPI's. On a machine where they cannot be
# installed (no root, no sudo), the rest is tested without them, loudly.
features=()
if tools/setup/setup-hdf5.sh; then
    features+=(keras)
else
    echo "!! test.sh: the HDF5 library could not be installed: testing without the keras feature" >&2
fi
if tools/setup/setup-mpi.sh; then
    features+=(mpi)
else
    echo "!! test.sh: OpenMPI could not be installed: testing without the mpi feature" >&2
fi
feature_args=()
if [ ${#features[@]} -gt 0 ]; then
    feature_args=(--features "$(IFS=,; echo "${features[*]}")")
fi
export SRGRAPH_PYTHON="$root/.venv/bin/python"
export SRGRAPH_TRAINING_PYTHON="$root/.venv-training/bin/python"
# srgraph's `ort` engine loads the library of the pinned onnxruntime wheel the venv holds.
export ORT_DYLIB_PATH="$("$SRGRAPH_PYTHON" -c 'import onnxruntime, pathlib; print(next((pathlib.Path(onnxruntime.__file__).parent / "capi").glob("libonnxruntime.so.*")))')"
# Arguments that pick tests skip the whole run's extra checks.
picks=0
for arg in "$@"; do
    [ "$arg" = "--no-fail-fast" ] || picks=1
done
# The code as rustfmt.toml writes it (`cargo fmt` fixes it).
if [ "$picks" -eq 0 ]; then
    if cargo fmt --version >/dev/null 2>&1; then
        cargo fmt --check
    else
        echo "!! test.sh: rustfmt is not installed (rustup component add rustfmt): formatting not checked" >&2
    fi
fi
cargo test --locked "${feature_args[@]}" "$@"
if [ "$picks" -eq 0 ]; then
    # The `ort-training` feature (off by default) changes what `--engine ort-training` says:
    # its tests run again in that build.
    # With the same features as above plus this one, so that the dependencies built for the
    # first run serve this one too (another feature set rebuilds a good share of them).
    cargo test --locked --features "$(IFS=,; echo "${features[*]}${features[*]:+,}ort-training")" --test it ort_training_engine::
    # Each reader's fuzz target for a short while, after replaying the saved reproducers:
    # a regression shows as a crash (tools/util/fuzz.sh; the first build takes about 10 minutes).
    tools/util/fuzz.sh "${SRGRAPH_FUZZ_SECONDS:-30}"
fi
