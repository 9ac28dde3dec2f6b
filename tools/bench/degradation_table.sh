#!/usr/bin/env bash
# The degradation table of docs/training.md: each model scored on low-resolution pictures made
# each way (bicubic, bd, dn), Set5 and Set14 PSNR-Y by `srgraph eval` in ONNX Runtime, with bicubic
# upscaling of the same inputs as the first row. A model trained on one degradation and scored on
# another is the paper's point: what a network learns of its inputs does not carry over.
#
#   tools/bench/degradation_table.sh assets/wdsr-b-x3.onnx runs/bd-x3/model.onnx runs/dn-x3/model.onnx
#
# Needs a release srgraph ($SRGRAPH, default target/release/srgraph) and ONNX Runtime's library
# (tools/setup/fetch-onnxruntime.sh or ORT_DYLIB_PATH).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
srgraph="${SRGRAPH:-$root/target/release/srgraph}"
data="${SRGRAPH_DATA:-$root/../shared/data}"
degradations=(bicubic bd dn)
if [ $# -eq 0 ]; then
    echo "usage: $0 MODEL.onnx..." >&2
    exit 2
fi

scores() { # model degradation -> "model-set5 model-set14 bicubic-set5 bicubic-set14"
    "$srgraph" eval "$1" --data "$data/Set5" "$data/Set14" --degradation "$2" --any-degradation --engine ort \
        --json | python3 -c 'import json, sys
sets = json.load(sys.stdin)["sets"]
print(" ".join("%.2f" % s[k]["psnr_y"] for k in ("model", "bicubic") for s in sets))'
}

trained_on() { # model -> its degradation, from its metadata
    "$srgraph" inspect "$1" | awk '$1 == "meta" && $2 == "degradation" { print $4; found = 1 } END { if (!found) print "bicubic" }'
}

header="| model (trained on) |"
rule="|---|"
for d in "${degradations[@]}"; do
    header+=" scored on $d: Set5 / Set14 |"
    rule+="---|"
done
echo "$header"
echo "$rule"
bicubic_row="| bicubic upscaling |"
rows=()
for m in "$@"; do
    row="| $(basename "$(dirname "$m")")/$(basename "$m") ($(trained_on "$m")) |"
    for d in "${degradations[@]}"; do
        read -r m5 m14 b5 b14 < <(scores "$m" "$d")
        row+=" $m5 / $m14 |"
        [ "$m" = "$1" ] && bicubic_row+=" $b5 / $b14 |"
    done
    rows+=("$row")
done
echo "$bicubic_row"
printf '%s\n' "${rows[@]}"
