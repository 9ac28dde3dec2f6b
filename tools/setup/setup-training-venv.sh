#!/usr/bin/env bash
# Create (or refresh) the Python venv that tools/oracles/ort_training_check.py runs in: the ONNX Runtime
# on-device training API (onnxruntime-training-cpu 1.19.2), WITHOUT torch.
#
# Usage: tools/setup/setup-training-venv.sh [VENV]      (default: <repo>/.venv-training)
#        PYTHON=python3.11 tools/setup/setup-training-venv.sh
# Then:  <VENV>/bin/python tools/oracles/ort_training_check.py DIR
#
# A stamp file (<VENV>/.srgraph-requirements) holds a hash of the pinned requirements; when it matches,
# a second run does nothing. Change REQUIREMENTS and the next run reinstalls.
#
# Pins: onnx must stay < 1.18 (newer onnx writes IR version 14 models that ORT 1.19.2 refuses);
# numpy 1.26.4 has wheels for CPython 3.9-3.12, as does onnxruntime-training-cpu 1.19.2 (Linux x86_64).
# torch is deliberately not installed: the check script imports the training API without it.
set -euo pipefail

REQUIREMENTS="onnxruntime-training-cpu==1.19.2 onnx==1.16.2 numpy==1.26.4"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/../../.venv-training}"
stamp="$venv/.srgraph-requirements"
want="$(printf '%s\n' "$REQUIREMENTS" | sha256sum | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
    echo "setup-training-venv: $venv is up to date"
    exit 0
fi

if [[ -z "${PYTHON:-}" ]]; then
    for candidate in python3.11 python3.12 python3.10 python3.9 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
    done
fi
: "${PYTHON:?no python3 found; set PYTHON=...}"
"$PYTHON" - <<'EOF' || { echo "setup-training-venv: $PYTHON is not CPython 3.9-3.12 (no onnxruntime-training-cpu 1.19.2 wheel)" >&2; exit 1; }
import sys
sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 12) else 1)
EOF

if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup-training-venv: creating $venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$venv"
fi
rm -f "$stamp"
# shellcheck disable=SC2086 # the requirement list is meant to split into words
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet $REQUIREMENTS
"$venv/bin/python" -c 'import onnx, onnxruntime, numpy; print("setup-training-venv: onnxruntime", onnxruntime.__version__, "onnx", onnx.__version__, "numpy", numpy.__version__)'
printf '%s\n' "$want" >"$stamp"
