#!/usr/bin/env python3
"""srgraph's GPU check, run on a GPU machine from the unpacked kit (docs/speed.md, "On a GPU").

In one run of under 8 minutes it:
  1. trains a small WDSR-B for a few steps on CUDA and on the CPU from the same start and
     batches, and compares the parameters (export to safetensors, max relative difference);
  2. times the train step on CUDA for the six study configurations (WDSR-B F=32 e=6, WDSR-A
     F=32 e=4, EDSR F=64; 8 blocks; x2 and x4; batch 16, HR patch 96): srgraph's (the median
     of the per-step times its own log records, after a warm-up), with the gradient spellings
     measured on CUDA (`train`'s default) and with the rule's (`--no-tune`), beside PyTorch's
     own CUDA train step on the reference model code (forward, L1, backward, Adam; the better
     of NCHW and channels-last), ratio srgraph / PyTorch;
  3. trains the default WDSR-B x2 on T91 with --device cuda for --minutes, validating on
     Set5, and reports the validation PSNR it reached;
  4. scores that model with `srgraph eval --engine ort --device cuda` on Set5 and Set14;
  5. exports that model as float16 and int8 files (`srgraph export --precision`, int8 calibrated
     on T91, on 7-bit weights and on 8) and scores each on Set5 on CUDA beside the float32 file:
     PSNR-Y, bytes, seconds.
It writes everything to one JSON file (--out). `--device cpu --quick` runs the same code on
the CPU with tiny step counts: the dry run that checks the script where no GPU is.
"""
import argparse
import glob
import json
import os
import pathlib
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

CONFIGS = [
    ("wdsr-b", "study-wdsr-b-8", 2), ("wdsr-b", "study-wdsr-b-8", 4),
    ("wdsr-a", "study-wdsr-a-8", 2), ("wdsr-a", "study-wdsr-a-8", 4),
    ("edsr", "study-edsr-8", 2), ("edsr", "study-edsr-8", 4),
]
BATCH, PATCH = 16, 96


def cuda_library_dirs():
    """Where PyTorch's CUDA 13, cuDNN 9 and cuBLAS wheels keep their libraries."""
    dirs = []
    try:
        import nvidia  # the nvidia-* wheels PyTorch depends on
        for root in nvidia.__path__:
            dirs += sorted(glob.glob(os.path.join(root, "*", "lib")))
    except ImportError:
        pass
    try:
        import torch
        dirs.append(os.path.join(os.path.dirname(torch.__file__), "lib"))
    except ImportError:
        pass
    return dirs


class Kit:
    def __init__(self, root, device):
        self.root = pathlib.Path(root).resolve()
        self.device = device
        self.bin = self.root / "bin" / "srgraph"
        self.data = self.root / "data"
        libs = sorted((self.root / "lib").glob("libonnxruntime.so.*"))
        self.env = dict(os.environ)
        # The data cache and the measured gradient spellings, kept in the kit (reported by (2)).
        self.env.setdefault("SRGRAPH_CACHE", str(self.root / "cache"))
        if device == "cuda":
            if not libs:
                sys.exit(f"no ONNX Runtime GPU library in {self.root / 'lib'}: unpack the whole kit")
            self.env["ORT_DYLIB_PATH"] = str(libs[0])
            extra = [str(self.root / "lib")] + cuda_library_dirs()
            self.env["LD_LIBRARY_PATH"] = ":".join(extra + [self.env.get("LD_LIBRARY_PATH", "")])
        elif "ORT_DYLIB_PATH" not in self.env and libs:
            self.env["ORT_DYLIB_PATH"] = str(libs[0])

    def srgraph(self, *args, timeout=None, check=True):
        cmd = [str(self.bin), *map(str, args)]
        p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        return p


def read_safetensors(path):
    """name -> (shape, list of floats), float32 only: the format is a JSON header and raw bytes."""
    raw = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", f"{name}: {t['dtype']}"
        a, b = t["data_offsets"]
        out[name] = struct.unpack(f"<{(b - a) // 4}f", body[a:b])
    return out


def per_step_from_log(log, warmup):
    """Per-step seconds from the cumulative `seconds` of log.jsonl, after `warmup` steps."""
    seconds = [json.loads(l)["seconds"] for l in open(log) if '"loss"' in l]
    steps = [b - a for a, b in zip(seconds, seconds[1:])]
    return steps[warmup:]


def parity(kit, tmp, steps):
    """(1) The same steps on CUDA and on the CPU: the parameters they reach."""
    runs = {}
    for role, device in [("reference", "cpu"), ("checked", kit.device)]:
        out = pathlib.Path(tmp) / f"parity-{role}"
        kit.srgraph("train", "wdsr-b", "--blocks", 2, "--filters", 16, "--batch", 4, "--patch", 48,
                    "--steps", steps, "--validate-every", 1000, "--data", kit.data / "Set5" / "HR",
                    "--device", device, "--out", out, "--force", "--quiet")
        kit.srgraph("export", out, "-o", out / "weights.safetensors")
        runs[role] = read_safetensors(out / "weights.safetensors")
    cpu, other = runs["reference"], runs["checked"]
    worst = 0.0
    for name, a in cpu.items():
        b = other[name]
        scale = max(1e-3, max(abs(x) for x in a))
        worst = max(worst, max(abs(x - y) for x, y in zip(a, b)) / scale)
    return {"steps": steps, "tensors": len(cpu), "max_relative_difference": worst, "ok": worst < 1e-3}


def load_refs(kit):
    sys.path.insert(0, str(kit.root / "tools"))
    try:
        import PIL.Image  # noqa: F401  (interop_fixtures imports it; the model code does not need it)
    except ImportError:
        import types
        pil = types.ModuleType("PIL")
        pil.Image = types.ModuleType("PIL.Image")
        sys.modules.update({"PIL": pil, "PIL.Image": pil.Image})
    import interop_fixtures as ref
    edsr, _ = ref.load_edsr_pytorch(str(kit.root / "ref" / "EDSR-PyTorch"))
    wdsr = SimpleNamespace(a=ref.load_module("ref_wdsr_a", str(kit.root / "ref" / "wdsr" / "wdsr_a.py")),
                           b=ref.load_module("ref_wdsr_b", str(kit.root / "ref" / "wdsr" / "wdsr_b.py")))
    return ref, SimpleNamespace(edsr_pytorch=edsr, wdsr=wdsr)


def torch_step_times(ref, refs, arch, scale, device, channels_last, steps, warmup):
    import torch
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = ref.build(refs, ref.study_case(arch, scale)).train().to(device).to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(warmup + steps):
        lr = (torch.rand(BATCH, 3, PATCH // scale, PATCH // scale, generator=g) * 255).to(device)
        hr = (torch.rand(BATCH, 3, PATCH, PATCH, generator=g) * 255).to(device)
        lr, hr = lr.contiguous(memory_format=fmt), hr.contiguous(memory_format=fmt)
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.l1_loss(model(lr), hr)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def speed(kit, tmp, steps, warmup):
    """(2) Per-step time of the six configurations, srgraph beside PyTorch."""
    try:
        import torch
        if kit.device == "cpu":
            # The official WDSR calls .cuda() in its forward.
            torch.Tensor.cuda = lambda self, *a, **k: self
        ref, refs = load_refs(kit)
    except Exception as e:  # no PyTorch there: srgraph's figures alone
        torch, ref, refs = None, None, None
        print(f"  PyTorch not usable ({e}): srgraph alone", flush=True)
    rows = []
    for arch, preset, scale in CONFIGS:
        row = {"network": arch, "preset": preset, "scale": scale}
        for key, flags in (("srgraph_s", []), ("srgraph_untuned_s", ["--no-tune"])):
            out = pathlib.Path(tmp) / f"speed-{preset}-x{scale}{'-'.join([''] + flags)}"
            kit.srgraph("train", preset, "--scale", scale, "--batch", BATCH, "--patch", PATCH,
                        "--steps", warmup + steps + 1, "--validate-every", 100000, "--data", kit.data / "T91",
                        "--device", kit.device, "--out", out, "--force", "--quiet", *flags)
            row[key] = statistics.median(per_step_from_log(out / "log.jsonl", warmup))
        ours = row["srgraph_s"]
        if ref is not None:
            best = min(statistics.median(torch_step_times(ref, refs, arch, scale, kit.device, cl, steps, warmup))
                       for cl in (False, True))
            row.update(pytorch_s=best, ratio=ours / best)
        print(f"  {preset} x{scale}: {row}", flush=True)
        rows.append(row)
    spellings = sorted(glob.glob(os.path.join(kit.env.get("SRGRAPH_CACHE", ""), "spellings", "*.json")))
    return {"rows": rows, "spellings": {os.path.basename(p): json.load(open(p)) for p in spellings}}


def train_default(kit, tmp, minutes):
    """(3) The default WDSR-B x2 on T91 for `minutes`, validating on Set5; stopped by SIGTERM."""
    out = pathlib.Path(tmp) / "default"
    cmd = [str(kit.bin), "train", "wdsr-b", "--data", str(kit.data / "T91"), "--val", str(kit.data / "Set5"),
           "--device", kit.device, "--steps", "1000000", "--validate-every", "200", "--out", str(out), "--quiet"]
    p = subprocess.Popen(cmd, env=kit.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        p.wait(timeout=minutes * 60)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)  # srgraph validates, checkpoints and writes the model, exit 143
    said = p.communicate(timeout=120)[0]
    if p.returncode not in (0, 143):
        raise RuntimeError(f"training failed ({p.returncode}):\n{said}")
    log = [json.loads(l) for l in open(out / "log.jsonl")]
    vals = [l for l in log if "val_psnr" in l]
    steps = [l for l in log if "loss" in l]
    return {
        "steps": steps[-1]["step"] if steps else 0,
        "seconds": steps[-1]["seconds"] if steps else 0,
        "validation": [{"step": v["step"], "psnr_y": v["val_psnr"], "bicubic": v["bicubic_psnr"]} for v in vals],
        "model": str(out / "model.onnx"),
    }


def evaluate(kit, model):
    """(4) `srgraph eval --engine ort` on the check's device."""
    p = kit.srgraph("eval", model, "--data", kit.data / "Set5", kit.data / "Set14", "--engine", "ort",
                    "--device", kit.device, "--json")
    return json.loads(p.stdout)


def precisions(kit, tmp, model):
    """(5) The (3) model in each precision, scored on Set5 by `srgraph eval --engine ort` on the device."""
    out = {}
    # int8 on 7-bit weights (the default, for x86 without VNNI) and on 8: a GPU saturates neither.
    for name, p, extra in [("fp32", "fp32", []), ("fp16", "fp16", []), ("int8", "int8", []),
                           ("int8-w8", "int8", ["--weight-bits", "8"])]:
        f = pathlib.Path(tmp) / f"model-{name}.onnx"
        calibrate = ["--calibrate", kit.data / "T91"] if p == "int8" else []
        kit.srgraph("export", model, "--precision", p, *calibrate, *extra, "-o", f)
        began = time.time()
        e = json.loads(kit.srgraph("eval", f, "--data", kit.data / "Set5", "--engine", "ort", "--device", kit.device,
                                   "--json").stdout)
        out[name] = {"set5_psnr_y": e["sets"][0]["model"]["psnr_y"], "eval_seconds": time.time() - began,
                  "bytes": f.stat().st_size}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kit", default=str(pathlib.Path(__file__).resolve().parent.parent),
                    help="the unpacked kit (bin/, lib/, data/, ref/, tools/)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--quick", action="store_true", help="tiny step counts (the CPU dry run)")
    ap.add_argument("--minutes", type=float, default=2.5, help="how long (3) trains")
    ap.add_argument("--out", default="gpu-check.json")
    a = ap.parse_args()
    kit = Kit(a.kit, a.device)
    began = time.time()
    result = {"device": a.device, "quick": a.quick, "kit": str(kit.root)}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True)
        result["gpu"] = smi.stdout.strip() or smi.stderr.strip()
    except FileNotFoundError:
        result["gpu"] = "no nvidia-smi"
    result["srgraph"] = kit.srgraph("--version").stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        for key, what, fn in [
            ("parity", "(1) CUDA against the CPU", lambda: parity(kit, tmp, 3 if a.quick else 5)),
            ("speed", "(2) train-step time, srgraph beside PyTorch",
             lambda: speed(kit, tmp, 2 if a.quick else 10, 1 if a.quick else 5)),
            ("training", "(3) the default WDSR-B x2",
             lambda: train_default(kit, tmp, 0.3 if a.quick else a.minutes)),
        ]:
            print(f"{what} ...", flush=True)
            t = time.time()
            try:
                result[key] = fn()
            except Exception as e:
                result[key] = {"error": str(e)}
            print(f"  {json.dumps(result[key])[:400]} ({time.time() - t:.0f} s)", flush=True)
            pathlib.Path(a.out).write_text(json.dumps(result, indent=1))
        for key, what, fn in [
            ("eval", "(4) eval --engine ort", evaluate),
            ("precisions", "(5) fp32, fp16 and int8 files", lambda kit, model: precisions(kit, tmp, model)),
        ]:
            print(f"{what} ...", flush=True)
            try:
                result[key] = fn(kit, result["training"]["model"])
            except Exception as e:
                result[key] = {"error": str(e)}
            print(f"  {json.dumps(result[key])[:400]}", flush=True)
    result["seconds"] = time.time() - began
    pathlib.Path(a.out).write_text(json.dumps(result, indent=1))
    failed = [k for k in ("parity", "speed", "training", "eval", "precisions") if isinstance(result.get(k), dict) and "error" in result[k]]
    print(f"wrote {a.out} in {result['seconds']:.0f} s; {'failed: ' + ', '.join(failed) if failed else 'every part ran'}")
    sys.exit(1 if failed or not result.get("parity", {}).get("ok", False) else 0)


if __name__ == "__main__":
    main()
