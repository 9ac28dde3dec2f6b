#!/usr/bin/env bash
# The precision table of docs/shipping.md: each model in float32, float16, int8 post-training
# (calibrated on T91 by the default percentile) and after quantisation-aware fine-tuning
# (`train --init MODEL --qat int8`, QAT_STEPS steps; 0 leaves it out) its float32 weights and its
# int8 file, scored on Set5 and Set14 by
# `srgraph eval` in ONNX Runtime (PSNR-Y), with its file size, then timed upscaling a 512x512 picture (Set5's baby) whole,
# all files side by side in one process (`cargo bench --bench precision`): ONNX Runtime and tract on
# every core (tract has no float16 kernels on x86, so its fp16 runs are left out), and with
# BENCH_WEB=1 onnxruntime-web's WASM backend in headless Chromium (2 threads, median of 3 after a
# warm-up, timed inside the page).
#
#   tools/bench/precision_table.sh                      # the three built-in models
#   tools/bench/precision_table.sh runs/b8-x2 runs/b8-x4  # run folders or srgraph models
#   QAT_STEPS=0 tools/bench/precision_table.sh          # no fine-tunes (minutes instead of hours)
#   TIMES=0 tools/bench/precision_table.sh              # scores and sizes only, no timing
#
# The fine-tune: QAT_STEPS (300) steps of batch 16, HR patch QAT_PATCH (96), lr QAT_LR (1e-5) on
# QAT_DATA (T91), on THREADS threads (0: every core); QAT=int8-learned trains the activations' ranges
# too (`train --qat int8-learned`). The int8 QAT file is the same
# graph as the post-training one (only its weights and grids differ), so it is not timed again.
#
# Needs a release srgraph ($SRGRAPH, default target/release/srgraph), ONNX Runtime's library
# (tools/setup/fetch-onnxruntime.sh or ORT_DYLIB_PATH), and for BENCH_WEB tools/setup/setup-web.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
srgraph="${SRGRAPH:-$root/target/release/srgraph}"
data="${SRGRAPH_DATA:-$root/../shared/data}"
calibrate="${CALIBRATE:-$data/T91}"
qat_steps="${QAT_STEPS:-300}"
qat="${QAT:-int8}"
threads="${THREADS:-0}"
dir="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$dir"' EXIT
if [ $# -eq 0 ]; then set -- "$root"/assets/wdsr-b-x{2,3,4}.onnx; fi
# The timing program, built before anything else runs.
[ "${TIMES:-1}" = 0 ] || bench="$(cd "$root" && cargo bench -q --bench precision --no-run --message-format=json |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("executable") and m.get("target", {}).get("name") == "precision": print(m["executable"])')"

psnr() { # model set -> PSNR-Y in ONNX Runtime
    "$srgraph" eval "$1" --data "$data/$2" --engine ort --json |
        python3 -c 'import json, sys; print("%.3f" % json.load(sys.stdin)["sets"][0]["model"]["psnr_y"])'
}

qat_int8() { # model name -> its quantisation-aware fine-tune's int8 file, $dir/name-int8-qat.onnx, and
    # its float32 weights, $dir/name-fp32-qat.onnx: the fine-tune trains too, so the int8 file's cost is
    # against those
    local model="$1" arch
    [ -d "$model" ] && model="$model/model.onnx"
    arch="$("$srgraph" inspect "$model" | awk '$1 == "meta" && $2 == "architecture" { print $4 }')"
    "$srgraph" train "$arch" --init "$model" --qat "$qat" --data "${QAT_DATA:-$data/T91}" --steps "$qat_steps" \
        --batch 16 --patch "${QAT_PATCH:-96}" --lr "${QAT_LR:-1e-5}" --threads "$threads" --quiet \
        -o "$dir/$2-qat" >"$dir/$2-qat.log" 2>&1 || { cat "$dir/$2-qat.log" >&2; return 1; }
    "$srgraph" export "$dir/$2-qat" --precision int8 -o "$dir/$2-int8-qat.onnx" >/dev/null
    "$srgraph" export "$dir/$2-qat" --precision fp32 -o "$dir/$2-fp32-qat.onnx" >/dev/null
}

files=()
echo "| model | precision | Set5 PSNR-Y | vs fp32 | Set14 PSNR-Y | vs fp32 | bytes |"
echo "|---|---|---:|---:|---:|---:|---:|"
for source in "$@"; do
    name="$(basename "${source%.onnx}")"
    "$srgraph" export "$source" --precision fp32 -o "$dir/$name-fp32.onnx" >/dev/null
    "$srgraph" export "$source" --precision fp16 -o "$dir/$name-fp16.onnx" >/dev/null
    "$srgraph" export "$source" --precision int8 --calibrate "$calibrate" -o "$dir/$name-int8.onnx" >/dev/null
    precisions=(fp32 fp16 int8)
    if [ "$qat_steps" -gt 0 ]; then qat_int8 "$source" "$name"; precisions+=(fp32-qat int8-qat); fi
    for p in "${precisions[@]}"; do
        f="$dir/$name-$p.onnx"
        [[ $p = *-qat ]] || files+=("$f")
        s5="$(psnr "$f" Set5)"; s14="$(psnr "$f" Set14)"
        [ $p = fp32 ] && { r5="$s5"; r14="$s14"; }
        printf '| %s | %s | %s | %+.3f | %s | %+.3f | %s |\n' "$name" $p "$s5" "$(python3 -c "print($s5 - $r5)")" \
            "$s14" "$(python3 -c "print($s14 - $r14)")" "$(stat -c %s "$f")"
    done
done
[ "${TIMES:-1}" = 0 ] && exit 0
echo
joined="$(IFS=,; echo "${files[*]}")"
without_fp16="$(IFS=,; echo "${files[*]}" | tr ',' '\n' | grep -v fp16 | paste -sd,)"
SRGRAPH_BENCH_MODELS="$joined" SRGRAPH_BENCH_ENGINES=ort "$bench" 2>/dev/null
echo
SRGRAPH_BENCH_MODELS="$without_fp16" SRGRAPH_BENCH_ENGINES=tract "$bench" 2>/dev/null
if [ "${BENCH_WEB:-0}" = 1 ]; then
    cp "$data/Set5/HR/baby.png" "$dir/"
    "$srgraph" serve --port 0 --files "$dir" >"$dir/serve.out" &
    server=$!
    for _ in $(seq 50); do grep -q http "$dir/serve.out" 2>/dev/null && break; sleep 0.1; done
    base="$(grep -o 'http://[0-9.:]*' "$dir/serve.out")"
    echo
    echo "| browser (WASM, 2 threads) | seconds, 512x512 whole |"
    echo "|---|---:|"
    for f in "${files[@]}"; do
        b="$(basename "$f")"
        node "$root/web/test/drive.mjs" "$base/?model=/files/$b&image=/files/baby.png&tile=0&backend=wasm&threads=2&repeat=3" \
            --out "$dir/r.json" --timeout 900 >/dev/null
        echo "| $b | $(node -e "const r=require('$dir/r.json'); console.log((r.ms/1000).toFixed(3))") |"
    done
fi
