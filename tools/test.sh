#!/usr/bin/env bash
# The test command: sets up what the tests need on a fresh machine (the Python
# venv for the cross-runtime checks), then runs every test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools/setup-python.sh
export SRGRAPH_PYTHON="$root/.venv/bin/python"
cargo test --locked "$@"
