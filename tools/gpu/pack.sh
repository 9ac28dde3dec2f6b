#!/usr/bin/env bash
# Packs what srgraph's GPU check needs on a GPU machine, which reaches nothing outside
# itself and takes at most 64 MiB per call: the release binary, ONNX Runtime's GPU
# libraries (from PyPI's onnxruntime-gpu 1.31.1 wheel: its CUDA provider alone is 284 MB),
# T91 / Set5 / Set14, the reference implementations' model code for PyTorch's side, and the
# check itself. One tar, xz-compressed, cut into pieces of 56 MiB (a call carries 64 MiB with the working tree), with SHA256SUMS and
# MANIFEST.json (sizes, sums, contents) beside them.
#
#   tools/gpu/pack.sh --edsr-pytorch DIR --wdsr-git GITDIR [--out gpu-pack]
#
# DIR is a checkout of sanghyun-son/EDSR-PyTorch (src/model/{edsr,common}.py), GITDIR a git
# directory of JiahuiYu/wdsr_ntire2018 (wdsr_a.py, wdsr_b.py at HEAD). The pieces go to
# --out (git-ignored); tools/gpu/README.md says how to carry them over and unpack them.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/gpu-pack"
edsr="" wdsr=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --edsr-pytorch) edsr="$2"; shift 2 ;;
        --wdsr-git) wdsr="$2"; shift 2 ;;
        *) echo "pack.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -f "$edsr/src/model/edsr.py" ] || { echo "pack.sh: --edsr-pytorch DIR must hold src/model/edsr.py" >&2; exit 2; }
git --git-dir "$wdsr" cat-file -e HEAD:wdsr_a.py 2>/dev/null || { echo "pack.sh: --wdsr-git must be a git directory of wdsr_ntire2018" >&2; exit 2; }
data="${SRGRAPH_DATA:-$root/../shared/data}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/srgraph/gpu"
mkdir -p "$cache"

echo "== the release binary"
(cd "$root" && cargo build --release --locked -q)
echo "== ONNX Runtime's GPU libraries (onnxruntime-gpu 1.31.1 from PyPI, cached in $cache)"
wheel="$(ls "$cache"/onnxruntime_gpu-1.31.1-*.whl 2>/dev/null | head -1 || true)"
if [ -z "$wheel" ]; then
    python3 -m pip download onnxruntime-gpu==1.31.1 --no-deps --only-binary :all: -d "$cache" -q
    wheel="$(ls "$cache"/onnxruntime_gpu-1.31.1-*.whl | head -1)"
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,lib,data,tools,ref/EDSR-PyTorch/src/model,ref/wdsr}
cp "$root/target/release/srgraph" "$stage/bin/"
unzip -q -j "$wheel" 'onnxruntime/capi/libonnxruntime.so*' 'onnxruntime/capi/libonnxruntime_providers_cuda.so' 'onnxruntime/capi/libonnxruntime_providers_shared.so' -d "$stage/lib"
cp -r "$data/T91" "$data/Set5" "$data/Set14" "$stage/data/"
cp "$edsr/src/model/edsr.py" "$edsr/src/model/common.py" "$stage/ref/EDSR-PyTorch/src/model/"
for f in wdsr_a.py wdsr_b.py; do git --git-dir "$wdsr" show "HEAD:$f" > "$stage/ref/wdsr/$f"; done
cp "$root/tools/gpu/check.py" "$root/tools/oracles/interop_fixtures.py" "$stage/tools/"

echo "== packing (xz -9; a few minutes)"
rm -rf "$out" && mkdir -p "$out"
tar -C "$stage" -cf - . | xz -9 -T0 | split -b 56M -d -a 3 - "$out/kit.tar.xz.part-"
(cd "$out" && sha256sum kit.tar.xz.part-* > SHA256SUMS)
python3 - "$stage" "$out" "$(git -C "$root" rev-parse HEAD)" <<'PY'
import hashlib, json, os, pathlib, sys
stage, out, commit = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
pieces = [{"file": p.name, "bytes": p.stat().st_size,
           "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in sorted(out.glob("kit.tar.xz.part-*"))]
contents = {str(p.relative_to(stage)): p.stat().st_size for p in sorted(stage.rglob("*")) if p.is_file()}
big = {k: v for k, v in contents.items() if v > 1_000_000}
json.dump({"srgraph_commit": commit, "pieces": pieces, "unpacked_bytes": sum(contents.values()),
           "files": len(contents), "largest": big}, open(out / "MANIFEST.json", "w"), indent=1)
print(f"{len(pieces)} pieces, {sum(p['bytes'] for p in pieces) / 2**20:.1f} MiB packed, "
      f"{sum(contents.values()) / 2**20:.1f} MiB unpacked, {len(contents)} files")
PY
ls -l "$out"
