#!/usr/bin/env bash
# srgraph's built-in WDSR-B models against UpscalerJS's, side by side: every model
# upscales the same LR pictures of Set5 and Set14 (those `srgraph eval` gives a model:
# the set's LR files, else MATLAB-exact bicubic), `srgraph eval --upscaled` scores all
# of them (PSNR-Y / SSIM-Y, shave = scale), and a markdown table is printed with each
# model's parameters and median seconds per picture.
#
#   tools/peer/upscalerjs_table.sh [WORK_DIR]          (default: out/upscalerjs)
#
# Settings, from the environment:
#   SRGRAPH   the srgraph binary (default: target/release/srgraph, built if absent)
#   ENGINES   the runtimes srgraph upscale runs on, a row each: "tract" (default), "ort" or
#             "tract ort" (ort needs ONNX Runtime: tools/setup/fetch-onnxruntime.sh)
#   THREADS   threads srgraph upscale runs on (default 1: TensorFlow.js's WebAssembly
#             backend runs on one under Node; 0 for all cores)
#   DATA      the folder holding the sets (default: $SRGRAPH_DATA, else ../shared/data)
#   SETS      default "Set5 Set14";  SCALES: default "2 3 4"
#   MODELS    UpscalerJS packages, default "esrgan-slim esrgan-medium esrgan-thick"
#             (@upscalerjs/default-model is esrgan-slim's x2 file: the script checks it is)
#   BACKEND   TensorFlow.js backend: wasm (default) or cpu
#   LIMIT     seconds one model may take on one set at one scale (default 0: no limit);
#             a run past it is left out of the table, which says so
#
# UpscalerJS runs offline under Node (tools/peer/upscale.js); `npm ci` installs the
# pinned packages on the first run. Pictures whose files exist are not made again:
# delete WORK_DIR to start over.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-$root/out/upscalerjs}
engines=${ENGINES:-tract}
threads=${THREADS:-1}
data=${DATA:-${SRGRAPH_DATA:-$root/../shared/data}}
sets=${SETS:-Set5 Set14}
scales=${SCALES:-2 3 4}
models=${MODELS:-esrgan-slim esrgan-medium esrgan-thick}
backend=${BACKEND:-wasm}
limit=${LIMIT:-0}
srgraph=${SRGRAPH:-$root/target/release/srgraph}

if [ ! -x "$srgraph" ]; then
    echo "building srgraph (cargo build --release)" >&2
    (cd "$root" && cargo build --release --bin srgraph)
fi
if [ ! -d "$here/node_modules/@upscalerjs" ]; then
    echo "installing UpscalerJS and TensorFlow.js (npm ci)" >&2
    # --ignore-scripts: the only install script in the tree is core-js's donation notice.
    (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund)
fi
if cmp -s "$here/node_modules/@upscalerjs/default-model/models/group1-shard1of1.bin" \
    "$here/node_modules/@upscalerjs/esrgan-slim/models/x2/group1-shard1of1.bin"; then
    echo "@upscalerjs/default-model holds the same weights as esrgan-slim x2: scored once, as esrgan-slim" >&2
fi

mkdir -p "$work/runs"
# Runs one upscaler (the command after the first two arguments) on $set at $scale,
# its log in runs/NAME.log, unless its scores exist; a failure or a run past LIMIT is told
# and left out.
run() {
    local name=$1 out=$2
    shift 2
    [ -s "$work/runs/$name.scores.json" ] && return 0
    echo "running $name" >&2
    local status=0
    if [ "$limit" -gt 0 ]; then
        nice timeout "$limit" "$@" >"$work/runs/$name.log" 2>&1 || status=$?
    else
        nice "$@" >"$work/runs/$name.log" 2>&1 || status=$?
    fi
    if [ "$status" -ne 0 ]; then
        [ "$status" -eq 124 ] && echo "timeout after ${limit} s" >>"$work/runs/$name.log"
        echo "  $name did not finish (exit $status): see $work/runs/$name.log" >&2
        return 0
    fi
    "$srgraph" eval --data "$data/$set" --scale "$scale" --upscaled "$out" --json \
        >"$work/runs/$name.scores.json"
}

for scale in $scales; do
    for set in $sets; do
        lr=$work/lr/x$scale/$set
        [ -d "$lr" ] || "$srgraph" eval --data "$data/$set" --scale "$scale" --save-inputs "$lr"
        for pkg in $models; do
            out=$work/sr/$pkg/x$scale/$set
            run "$pkg-x$scale-$set" "$out" \
                node "$here/upscale.js" --package "$pkg" --scale "$scale" --backend "$backend" \
                --in "$lr" --out "$out" --report "$work/runs/$pkg-x$scale-$set.report.json"
        done
        for engine in $engines; do
            out=$work/sr/srgraph-$engine/x$scale/$set
            run "srgraph-$engine-x$scale-$set" "$out" "$srgraph" upscale --scale "$scale" --engine "$engine" \
                --threads "$threads" --quiet --force "$lr" -o "$out"
        done
    done
    "$srgraph" inspect "$root/assets/wdsr-b-x$scale.onnx" >"$work/runs/srgraph-x$scale.inspect.txt"
done

node "$here/table.js" "$work/runs" "$scales" "$sets" "$models" "$engines" "$threads"
