#!/usr/bin/env python3
"""Where an int8 file loses its PSNR: its rounding undone one part at a time.

    .venv/bin/python tools/bench/int8_sensitivity.py FLOAT32.onnx INT8.onnx [--data DIR] [--top N] [--together A,B]

INT8 is `srgraph export FLOAT32 --precision int8 ...` (QDQ form). Each variant is INT8 with
some of its rounding taken out, written beside the others in a temporary folder and scored by
`srgraph eval --engine ort` (PSNR-Y, the scorer of every table in the docs):
  - weights float: every conv's weights and bias back to FLOAT32's values, activations rounded;
  - activations float: every QuantizeLinear/DequantizeLinear pair on an activation skipped,
    weights rounded;
  - each activation alone float: one pair skipped, listed by the PSNR it gives back;
  - with --together, those activations float at once.
The variants change only which values are rounded, so the float32 and int8 scores bound them.
Needs a release srgraph ($SRGRAPH, default target/release/srgraph) and ONNX Runtime's library.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[2]


def score(srgraph, model, data):
    out = subprocess.run(
        [srgraph, "eval", str(model), "--data", data, "--engine", "ort", "--json"],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)["sets"][0]["model"]["psnr_y"]


def activation_pairs(g):
    """(QuantizeLinear, DequantizeLinear) pairs on activations: a Q whose only reader is a DQ."""
    readers = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    pairs = []
    for n in g.node:
        if n.op_type == "QuantizeLinear":
            (dq,) = readers[n.output[0]]
            pairs.append((n, dq))
    return pairs


def skip_pairs(model, names):
    """The model with the named activations' Q/DQ pairs skipped: their readers read the float value."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    rename, drop = {}, set()
    for q, dq in activation_pairs(g):
        if q.input[0] in names:
            rename[dq.output[0]] = q.input[0]
            drop.update([q.name, dq.name])
    nodes = [n for n in g.node if n.name not in drop]
    for n in nodes:
        for k, i in enumerate(n.input):
            n.input[k] = rename.get(i, i)
    del g.node[:]
    g.node.extend(nodes)
    return m


def float_weights(model, float32):
    """The model with each dequantised weight and bias replaced by float32's own value."""
    values = {t.name: t for t in float32.graph.initializer}
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    nodes = []
    for n in g.node:
        base = n.output[0].removesuffix(".dequantized")
        if n.op_type == "DequantizeLinear" and base in values:
            t = numpy_helper.from_array(numpy_helper.to_array(values[base]), n.output[0])
            g.initializer.append(t)
        else:
            nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    return m


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("float32")
    p.add_argument("int8")
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/Set5"))
    p.add_argument("--top", type=int, default=8, help="activations listed (default 8)")
    p.add_argument("--together", metavar="A,B", help="also these activations float together")
    a = p.parse_args()
    srgraph = os.environ.get("SRGRAPH", str(ROOT / "target/release/srgraph"))
    float32, int8 = onnx.load(a.float32), onnx.load(a.int8)
    activations = [q.input[0] for q, _ in activation_pairs(int8.graph)]
    if not activations:
        sys.exit(f"{a.int8} has no QuantizeLinear on an activation: give the int8 file second")
    with tempfile.TemporaryDirectory() as tmp:
        def scored(m, name):
            path = Path(tmp) / f"{name}.onnx"
            onnx.save(m, path)
            return score(srgraph, path, a.data)

        base, top = score(srgraph, a.int8, a.data), score(srgraph, a.float32, a.data)
        print(f"PSNR-Y on {a.data}: float32 {top:.3f} dB, int8 {base:.3f} ({base - top:+.3f})\n")
        print("| rounding taken out | PSNR-Y | given back | share of the loss |")
        print("|---|---:|---:|---:|")
        line = lambda what, v: print(f"| {what} | {v:.3f} | {v - base:+.3f} | {(v - base) / (top - base):.0%} |")
        line("weights (all convs)", scored(float_weights(int8, float32), "weights"))
        line(f"activations (all {len(activations)})", scored(skip_pairs(int8, set(activations)), "activations"))
        each = [(scored(skip_pairs(int8, {x}), f"a{i}"), x) for i, x in enumerate(activations)]
        for v, x in sorted(each, reverse=True)[: a.top]:
            line(f"`{x}` alone", v)
        if a.together:
            names = set(a.together.split(","))
            unknown = names - set(activations)
            if unknown:
                sys.exit(f"--together: {', '.join(sorted(unknown))} not among the rounded activations")
            line(" and ".join(f"`{x}`" for x in sorted(names)), scored(skip_pairs(int8, names), "together"))


if __name__ == "__main__":
    main()
