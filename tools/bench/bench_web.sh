#!/usr/bin/env bash
# Upscale speed in the browser: the WDSR paper's study's 8-block x2 networks on a 256x256 LR picture
# (Set5's baby, cropped at 128,128, as `cargo bench --bench inference` does) in
# onnxruntime-web's WASM backend in headless Chromium, 1 and 2 threads, whole picture;
# median of 5 runs after a warm-up, timed inside the page's worker (session creation not
# counted). With BENCH_NATIVE=1 the native figures (ONNX Runtime and tract, criterion) are
# taken right after, for the same table.
#
#   tools/bench/bench_web.sh            # needs tools/setup/setup-web.sh, and a built srgraph ($SRGRAPH)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
srgraph="${SRGRAPH:-$root/target/debug/srgraph}"
data="${SRGRAPH_DATA:-$root/../shared/data}"
dir="$(mktemp -d)"
trap 'kill $server 2>/dev/null || true; rm -rf "$dir"' EXIT
cp "$data/Set5/HR/baby.png" "$dir/"
nets=(study-edsr-8 study-wdsr-a-8 study-wdsr-b-8)
for n in "${nets[@]}"; do "$srgraph" build "$n" --scale 2 -o "$dir/$n.onnx" >/dev/null; done
"$srgraph" serve --port 0 --files "$dir" >"$dir/serve.out" &
server=$!
for _ in $(seq 50); do grep -q http "$dir/serve.out" 2>/dev/null && break; sleep 0.1; done
base="$(grep -o 'http://[0-9.:]*' "$dir/serve.out")"
printf '%-16s %10s %10s\n' network "1 thread" "2 threads"
for n in "${nets[@]}"; do
    row="$(printf '%-16s' "$n")"
    for t in 1 2; do
        node "$root/web/test/drive.mjs" "$base/?model=/files/$n.onnx&image=/files/baby.png&crop=128,128,256,256&tile=0&backend=wasm&threads=$t&repeat=5" --out "$dir/r.json" --timeout 600 >/dev/null
        ms="$(node -e "const r=require('$dir/r.json'); if (r.width!==512) throw 'bad size'; console.log((r.ms/1000).toFixed(3))")"
        row+="$(printf ' %9ss' "$ms")"
    done
    echo "$row"
done
if [ "${BENCH_NATIVE:-0}" = 1 ]; then
    cd "$root" && cargo bench --bench inference -- 'upscale 256x256 -> 512x512/.*(onnxruntime-cpu whole|tract tiles 128)'
fi
