#!/usr/bin/env python3
"""srgraph's train step against PyTorch's, side by side in one process.

For each of the six seed configurations (WDSR-B F=32 e=6, WDSR-A F=32 e=4, EDSR F=64;
8 blocks; x2 and x4; batch 16, HR patch 96):

- srgraph: `srgraph build PRESET --train` writes train_step.onnx (forward, L1 loss,
  gradients, Adam), run in ONNX Runtime the way srgraph's own trainer runs it: the
  parameters and Adam moments bound as two sets of tensors that swap each step
  (IOBinding), so nothing is copied but the batch.
- PyTorch: the reference implementations' own model code (EDSR-PyTorch, the official
  WDSR, loaded from their repositories as tools/oracles/interop_fixtures.py loads them), with
  L1, backward and torch.optim.Adam; the better of NCHW and channels-last.

Rounds are interleaved (srgraph, then PyTorch, for each configuration, then again), so
that a noisy neighbour slows both alike; each number is the median of the per-step
times after a warm-up, and the ratio is srgraph / PyTorch (lower is better). Peak
memory is each framework's peak resident memory (VmHWM), measured in a child process of
its own that runs only it (both children import PyTorch and ONNX Runtime alike).

With --conv-kinds instead: WDSR-B's block with each efficient convolution (`srgraph build
wdsr-b --conv KIND`: low-rank, flattened, group:4, depthwise, inverted-residual), 2 blocks,
x2, batch 8, HR patch 48, against the same network written here in PyTorch (the reference
code has only the low-rank block), the same way; no reference checkout is needed.

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy onnxruntime==1.32.0 onnx
    /tmp/torchvenv/bin/python tools/bench/bench_vs_pytorch.py --srgraph target/release/srgraph \\
        --edsr-pytorch /path/to/EDSR-PyTorch --wdsr-git /path/to/wdsr_ntire2018.git
    /tmp/torchvenv/bin/python tools/bench/bench_vs_pytorch.py --srgraph target/release/srgraph --conv-kinds
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "oracles"))  # interop_fixtures lives with the oracles
import interop_fixtures as ref  # noqa: E402  (the reference code's loaders)

CONFIGS = [
    ("wdsr-b", "study-wdsr-b-8", 2), ("wdsr-b", "study-wdsr-b-8", 4),
    ("wdsr-a", "study-wdsr-a-8", 2), ("wdsr-a", "study-wdsr-a-8", 4),
    ("edsr", "study-edsr-8", 2), ("edsr", "study-edsr-8", 4),
]
# --conv-kinds: WDSR-B's block with each `--conv` kind, 2 blocks, x2, batch 8, HR patch 48.
CONV_KINDS = ["low-rank", "flattened", "group:4", "depthwise", "inverted-residual"]
KIND_BLOCKS = 2
SIZE = {"batch": 16, "patch": 96}
TUNE = ["--tune"]  # as `srgraph train` compiles it: gradient spellings measured in ONNX Runtime


def batch(scale, seed):
    g = np.random.default_rng(seed)
    b, p = SIZE["batch"], SIZE["patch"]
    lr = g.uniform(0, 255, (b, 3, p // scale, p // scale)).astype(np.float32)
    hr = g.uniform(0, 255, (b, 3, p, p)).astype(np.float32)
    return lr, hr


class SrgraphStep:
    """srgraph's compiled train step in ONNX Runtime, state bound in two swapping sets."""

    def __init__(self, binary, preset, scale, threads, tmp, extra=()):
        out = pathlib.Path(tmp) / f"{preset}-x{scale}{''.join(extra).replace(':', '')}"
        subprocess.run([binary, "build", preset, "--scale", str(scale), "--train", "--batch", str(SIZE["batch"]),
                        "--patch", str(SIZE["patch"]), "-o", str(out), "--force"] + list(extra) + TUNE,
                       check=True, capture_output=True)
        model = onnx.load(str(out / "train_step.onnx"))
        self.state = [i.name for i in model.graph.input if i.name not in ("lr", "hr", "learning_rate", "step")]
        inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        # As srgraph's trainer does (Graph::lift_values): the state is an input without a
        # default, so that ONNX Runtime folds the graph's real constants.
        state = set(self.state)
        kept = [t for t in model.graph.initializer if t.name not in state]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        o.enable_mem_pattern = False  # as OrtTrainer: no up-front block for all intermediates
        o.log_severity_level = 3
        self.session = ort.InferenceSession(model.SerializeToString(), o, providers=["CPUExecutionProvider"])
        self.sets = [[ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(inits[n], np.float32))
                      for n in self.state] for _ in range(2)]
        self.current, self.steps = 0, 0

    def step(self, lr, hr):
        self.steps += 1
        b = self.session.io_binding()
        b.bind_cpu_input("lr", lr)
        b.bind_cpu_input("hr", hr)
        b.bind_cpu_input("learning_rate", np.array(1e-4, np.float32))
        b.bind_cpu_input("step", np.array(float(self.steps), np.float32))
        b.bind_output("loss")
        src, dst = self.sets[self.current], self.sets[1 - self.current]
        for name, a, z in zip(self.state, src, dst):
            b.bind_ortvalue_input(name, a)
            b.bind_ortvalue_output(f"{name}.new", z)
        self.session.run_with_iobinding(b)
        self.current = 1 - self.current
        return float(b.get_outputs()[0].numpy())


class TorchStep:
    """The reference model's forward, L1, backward and Adam."""

    def __init__(self, refs, arch, scale, channels_last):
        self.model = ref.build(refs, ref.study_case(arch, scale)).train()
        self.format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.format)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)

    def step(self, lr, hr):
        lr = torch.from_numpy(lr).contiguous(memory_format=self.format)
        hr = torch.from_numpy(hr).contiguous(memory_format=self.format)
        self.opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.l1_loss(self.model(lr), hr)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


class KindBlock(torch.nn.Module):
    """srgraph's WDSR-B block (src/models/wdsr.rs) with one `--conv` kind, weight norm on every conv."""

    def __init__(self, kind, f=32, e=6, linear=0.8):
        super().__init__()
        wide, low = f * e, int(f * linear)
        conv = lambda i, o, k, g=1: wn(torch.nn.Conv2d(i, o, k, padding=tuple(d // 2 for d in k), groups=g))
        body = [conv(f, wide, (1, 1)), torch.nn.ReLU()]
        if kind == "low-rank":
            body += [conv(wide, low, (1, 1)), conv(low, f, (3, 3))]
        elif kind == "flattened":
            body += [conv(wide, low, (1, 1)), conv(low, low, (3, 1)), conv(low, f, (1, 3))]
        elif kind.startswith("group:"):
            body += [conv(wide, f, (3, 3), int(kind.split(":")[1])), conv(f, f, (1, 1))]
        else:
            body += [conv(wide, wide, (3, 3), wide)]
            body += [torch.nn.ReLU()] if kind == "inverted-residual" else []
            body += [conv(wide, f, (1, 1))]
        self.body = torch.nn.Sequential(*body)

    def forward(self, x):
        return x + self.body(x)


def wn(conv):
    return torch.nn.utils.parametrizations.weight_norm(conv)


class KindWdsrB(torch.nn.Module):
    """WDSR-B as srgraph builds it: mean subtracted, 5x5 skip, 3x3 head, blocks, 3x3 tail, pixel shuffles."""

    def __init__(self, kind, scale, blocks=KIND_BLOCKS, f=32):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1) * 255)
        self.skip = torch.nn.Sequential(wn(torch.nn.Conv2d(3, 3 * scale * scale, 5, padding=2)),
                                        torch.nn.PixelShuffle(scale))
        self.head = wn(torch.nn.Conv2d(3, f, 3, padding=1))
        self.body = torch.nn.Sequential(*[KindBlock(kind, f) for _ in range(blocks)])
        self.tail = torch.nn.Sequential(wn(torch.nn.Conv2d(f, 3 * scale * scale, 3, padding=1)),
                                        torch.nn.PixelShuffle(scale))

    def forward(self, x):
        x = x - self.mean
        return self.tail(self.body(self.head(x))) + self.skip(x) + self.mean


class KindTorchStep(TorchStep):
    """KindWdsrB's forward, L1, backward and Adam."""

    def __init__(self, kind, scale, channels_last):
        self.model = KindWdsrB(kind, scale).train()
        self.format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.format)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)


def conv_kinds(a):
    """Each `--conv` kind's train step, srgraph against PyTorch, interleaved rounds."""
    SIZE.update(batch=8, patch=48)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in CONV_KINDS:
            extra = ["--conv", kind, "--blocks", str(KIND_BLOCKS)]
            ours = SrgraphStep(a.srgraph, "wdsr-b", 2, a.threads, tmp, extra)
            theirs = {cl: KindTorchStep(kind, 2, cl) for cl in (False, True)}
            t_ours, t_theirs = [], {False: [], True: []}
            for r in range(a.rounds):
                t_ours += per_step(ours.step, 2, a.steps, 1 if r == 0 else 0)
                for cl, s in theirs.items():
                    t_theirs[cl] += per_step(s.step, 2, a.steps, 1 if r == 0 else 0)
            best_cl = min(t_theirs, key=lambda cl: statistics.median(t_theirs[cl]))
            row = {"conv": kind, "scale": 2, "srgraph_s": statistics.median(t_ours),
                   "pytorch_s": statistics.median(t_theirs[best_cl]),
                   "pytorch_layout": "channels-last" if best_cl else "NCHW"}
            row["ratio"] = row["srgraph_s"] / row["pytorch_s"]
            rows.append(row)
            print(f"{kind:18} srgraph {row['srgraph_s'] * 1e3:6.1f} ms  PyTorch {row['pytorch_s'] * 1e3:6.1f} ms "
                  f"({row['pytorch_layout']})  ratio {row['ratio']:.2f}", flush=True)
    return rows


def per_step(step_fn, scale, steps, warmup):
    times = []
    for i in range(warmup + steps):
        lr, hr = batch(scale, i)
        t = time.perf_counter()
        step_fn(lr, hr)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def load_refs(a, tmp):
    torch.Tensor.cuda = lambda self, *x, **k: self  # the official WDSR calls .cuda() in forward
    edsr, _ = ref.load_edsr_pytorch(a.edsr_pytorch)
    wdsr, _ = ref.load_wdsr(a.wdsr_git, tmp)
    return SimpleNamespace(edsr_pytorch=edsr, wdsr=wdsr)


def one(a):
    """A child process: only one framework on one configuration, for its peak memory."""
    torch.set_num_threads(a.threads)
    arch, preset, scale = CONFIGS[a.one_config]
    with tempfile.TemporaryDirectory() as tmp:
        if a.one == "srgraph":
            s = SrgraphStep(a.srgraph, preset, scale, a.threads, tmp)
        else:
            s = TorchStep(load_refs(a, tmp), arch, scale, a.one == "torch-cl")
        per_step(s.step, scale, 3, 1)
    # VmHWM belongs to this process image alone (ru_maxrss would carry the parent's peak
    # across fork and exec).
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_mb": hwm / 1024}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--srgraph", default="target/release/srgraph")
    ap.add_argument("--edsr-pytorch", help="a checkout of sanghyun-son/EDSR-PyTorch (src/model/)")
    ap.add_argument("--wdsr-git", help="JiahuiYu/wdsr_ntire2018 (a git directory)")
    ap.add_argument("--conv-kinds", action="store_true",
                    help="time WDSR-B with each --conv kind (2 blocks, x2, batch 8, patch 48) instead")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--no-tune", action="store_true",
                    help="compile the rule's gradient spellings instead of those measured (as `srgraph train --no-tune`)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--one-config", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.srgraph = os.path.abspath(a.srgraph)
    if a.no_tune:
        TUNE.clear()
    if a.one:
        return one(a)
    torch.set_num_threads(a.threads)
    if a.conv_kinds:
        return write(a, conv_kinds(a))
    if not (a.edsr_pytorch and a.wdsr_git):
        ap.error("--edsr-pytorch and --wdsr-git are needed (or --conv-kinds, which needs neither)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        refs = load_refs(a, tmp)
        for k, (arch, preset, scale) in enumerate(CONFIGS):
            ours = SrgraphStep(a.srgraph, preset, scale, a.threads, tmp)
            theirs = {cl: TorchStep(refs, arch, scale, cl) for cl in (False, True)}
            t_ours, t_theirs = [], {False: [], True: []}
            for r in range(a.rounds):
                t_ours += per_step(ours.step, scale, a.steps, 1 if r == 0 else 0)
                for cl, s in theirs.items():
                    t_theirs[cl] += per_step(s.step, scale, a.steps, 1 if r == 0 else 0)
            best_cl = min(t_theirs, key=lambda cl: statistics.median(t_theirs[cl]))
            mem = {}
            for who in ("srgraph", "torch-cl" if best_cl else "torch"):
                out = subprocess.run([sys.executable, __file__, "--one", who, "--one-config", str(k),
                                      "--srgraph", a.srgraph, "--edsr-pytorch", a.edsr_pytorch,
                                      "--wdsr-git", a.wdsr_git, "--threads", str(a.threads)]
                                     + (["--no-tune"] if a.no_tune else []),
                                     check=True, capture_output=True, text=True).stdout
                mem[who.split("-")[0]] = json.loads(out.strip().splitlines()[-1])["peak_rss_mb"]
            row = {
                "network": arch, "scale": scale,
                "srgraph_s": statistics.median(t_ours),
                "pytorch_s": statistics.median(t_theirs[best_cl]),
                "pytorch_layout": "channels-last" if best_cl else "NCHW",
                "srgraph_peak_mb": mem["srgraph"], "pytorch_peak_mb": mem["torch"],
            }
            row["ratio"] = row["srgraph_s"] / row["pytorch_s"]
            rows.append(row)
            print(f"{arch:7} x{scale}  srgraph {row['srgraph_s']:.3f} s  PyTorch {row['pytorch_s']:.3f} s "
                  f"({row['pytorch_layout']})  ratio {row['ratio']:.2f}  peak {mem['srgraph']:.0f} / "
                  f"{mem['torch']:.0f} MB", flush=True)
    write(a, rows)


def write(a, rows):
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"torch": torch.__version__, "onnxruntime": ort.__version__, "threads": a.threads,
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
