#!/usr/bin/env python3
"""Make assets/wdsr-b-x<S>.onnx (wdsr-b-x<S>-grey.onnx for a single-channel network), a model `srgraph upscale` uses when given none, from a
training run: its model.onnx (the EMA weights when the run kept them), scored on Set5 and
Set14 by `srgraph eval`, with the training command and the scores written into its metadata.

Usage (the Python of tools/setup/setup-python.sh, which has onnx):
    .venv/bin/python tools/util/builtin_model.py RUN_DIR --command "srgraph train ..." \\
        [--data ../shared/data] [--srgraph target/release/srgraph] [-o assets/wdsr-b-x<S>.onnx]
"""
import argparse, json, os, pathlib, subprocess, sys, tempfile

import onnx

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("run", help="the run's folder (model.onnx, log.jsonl)")
ap.add_argument("--command", required=True, help="the command that trained it, as a user would type it")
ap.add_argument("--trained-on", default="T91 + BSD200 (291 pictures)")
ap.add_argument("--data", default=str(pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"))
ap.add_argument("--srgraph", default="target/release/srgraph")
ap.add_argument("-o", "--out", help="default: assets/wdsr-b-x<scale>.onnx")
a = ap.parse_args()

model = onnx.load(os.path.join(a.run, "model.onnx"))
meta = {p.key: p.value for p in model.metadata_props}
scale = meta["scale"]
grey = "-grey" if meta.get("channels") == "1" else ""
a.out = a.out or f"assets/wdsr-b-x{scale}{grey}.onnx"
# Paths of the machine it was trained on say nothing to a user: the set's name and the command do.
for key in ("data", "validation", "validation_psnr_y", "bicubic_psnr_y", "imported_from"):
    meta.pop(key, None)
if "initialised_from" in meta:  # a fine-tune: the file it started from, by name
    meta["initialised_from"] = os.path.basename(meta["initialised_from"])
meta["trained_on"] = a.trained_on
meta["training_command"] = a.command
meta["made_by"] = "tools/util/builtin_model.py"

with tempfile.TemporaryDirectory() as tmp:
    plain = os.path.join(tmp, "model.onnx")
    onnx.save(model, plain)
    for name in ("Set5", "Set14"):
        out = subprocess.run([a.srgraph, "eval", plain, "--data", os.path.join(a.data, name), "--json"],
                             check=True, capture_output=True, text=True).stdout
        s = json.loads(out)["sets"][0]
        for who in ("model", "bicubic"):
            key = f"{name.lower()}_x{scale}_psnr_y" if who == "model" else f"{name.lower()}_x{scale}_bicubic_psnr_y"
            meta[key] = f"{s[who]['psnr_y']:.2f}"
        meta[f"{name.lower()}_x{scale}_ssim_y"] = f"{s['model']['ssim_y']:.4f}"
        print(f"{name}: PSNR-Y {s['model']['psnr_y']:.2f} dB (bicubic {s['bicubic']['psnr_y']:.2f}), "
              f"SSIM-Y {s['model']['ssim_y']:.4f}")

del model.metadata_props[:]
for k, v in meta.items():
    model.metadata_props.add(key=k, value=v)
onnx.save(model, a.out)
print("wrote", a.out, os.path.getsize(a.out), "bytes")
