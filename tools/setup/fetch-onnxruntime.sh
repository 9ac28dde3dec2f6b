#!/usr/bin/env bash
# Fetches ONNX Runtime's shared library for srgraph's `ort` engine from PyPI.
#
#   tools/setup/fetch-onnxruntime.sh          libonnxruntime.so.1.32.0 (CPU) from the onnxruntime 1.32.0
#                                       wheel, sha256-checked, kept in the cache folder srgraph
#                                       looks in: ${XDG_CACHE_HOME:-~/.cache}/srgraph/onnxruntime-1.32.0/
#   tools/setup/fetch-onnxruntime.sh --gpu    onnxruntime-gpu 1.31.1 and the CUDA 13 / cuDNN 9 wheels in a
#                                       venv of their own (about 3 GB), then prints the ORT_DYLIB_PATH and
#                                       LD_LIBRARY_PATH to export for `srgraph train --device cuda`.
#
# Safe to run again: a library already in place is kept.
set -euo pipefail
version=1.32.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/srgraph"
python="${PYTHON:-python3}"

if [ "${1:-}" = "--gpu" ]; then
    gpu="$cache/onnxruntime-gpu-1.31.1"
    if [ ! -x "$gpu/venv/bin/python" ]; then
        "$python" -m venv "$gpu/venv"
        "$gpu/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            onnxruntime-gpu==1.31.1 nvidia-cudnn-cu13 nvidia-cublas nvidia-cuda-runtime nvidia-curand nvidia-cufft
    fi
    site="$("$gpu/venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
    lib="$(ls "$site"/onnxruntime/capi/libonnxruntime.so.* | head -n 1)"
    libs="$(find "$site/nvidia" -name lib -type d | tr '\n' ':')$site/onnxruntime/capi"
    echo "export ORT_DYLIB_PATH=$lib"
    echo "export LD_LIBRARY_PATH=$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
    exit 0
fi

dest="$cache/onnxruntime-$version"
lib="$dest/libonnxruntime.so.$version"
if [ -f "$lib" ]; then
    echo "$lib"
    exit 0
fi
case "$(uname -m)" in
    x86_64) arch=x86_64 ;;
    aarch64) arch=aarch64 ;;
    *) echo "no onnxruntime $version wheel is pinned for $(uname -m); set ORT_DYLIB_PATH to your own library" >&2; exit 1 ;;
esac
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The wheels' sha256 (PyPI, onnxruntime 1.32.0, cp311): pip refuses anything else.
cat > "$tmp/req.txt" <<REQ
onnxruntime==$version \
    --hash=sha256:5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d \
    --hash=sha256:2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c
REQ
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --require-hashes \
    --python-version 3.11 --platform "manylinux_2_28_$arch" -d "$tmp" -r "$tmp/req.txt"
mkdir -p "$dest"
"$python" - "$tmp" "$dest" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("onnxruntime-*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("onnxruntime/capi/libonnxruntime"):
            target = pathlib.Path(sys.argv[2]) / pathlib.Path(name).name
            target.write_bytes(z.read(name))
PY
echo "$lib"
