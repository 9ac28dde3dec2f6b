#!/usr/bin/env python3
"""Write checkpoint-interop fixtures with the REAL reference PyTorch models.

For each case this script builds a tiny network with the reference
implementation itself (not a re-implementation), perturbs every trainable
parameter away from its initialisation with a fixed seed, runs it on a real
12x12 crop of Set5 "baby" (LR x2) and writes

  * the checkpoint, packaged the way that framework saves it (zip pickle,
    legacy pickle, safetensors, wrapped under params / params_ema /
    state_dict / model / net, or DataParallel "module." keys), and
  * the reference framework's own output as float32 .npy, shape
    [1, 3, 12*s, 12*s], in 0..255 units,

into tests/fixtures/interop/, together with manifest.json, which the Rust
tests read.  It also writes checkpoints that a loader must refuse (a pickle
asking for os.system, a truncated file, a text file).  Finally it reloads
every good checkpoint with torch.load(weights_only=True) (or safetensors)
into a fresh reference model and checks the output against the saved .npy.

Nothing here is needed by CI: the fixtures are committed, and torch is only
needed to regenerate them.

Throw-away environment (never the project's own .venv):

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch safetensors numpy pillow
    # the fixtures in the repository were made with torch 2.15 (CPU)

Reference code (loaded by file path at run time, never copied here):

  * EDSR-PyTorch, https://github.com/sanghyun-son/EDSR-PyTorch (formerly
    thstkdgus35/EDSR-PyTorch): src/model/edsr.py at commit
    3dd71ae5561c42e9ce6c03273ee5d93be88db06e and src/model/common.py from
    upstream master.  Pass the checkout root with --edsr-pytorch (the script
    reads <root>/src/model/{common,edsr}.py and records their sha256).
  * Official WDSR, https://github.com/JiahuiYu/wdsr_ntire2018: wdsr_a.py and
    wdsr_b.py read with `git show HEAD:...` from the (bare) clone given with
    --wdsr-git; HEAD was 188102dca86757a4bd02df83f9ae4e5014cbcd8e.
  * BasicSR, https://github.com/XPixelGroup/BasicSR:
    basicsr/archs/{arch_util,edsr_arch}.py read with `git show HEAD:...` from
    the (bare) clone given with --basicsr-git; HEAD was
    8d56e3a045f9fb3e1d8872f92ee4a4f07f886b0a.  Its imports of torchvision,
    basicsr.ops.dcn, basicsr.utils and the registry are stubbed.

The commits actually used (git rev-parse HEAD), the sha256 of every reference
file and the torch version are recorded in manifest.json.

Two shims keep the reference models unchanged but runnable on a current CPU
torch: torch.Tensor.cuda is made the identity (official WDSR's forward calls
.cuda()), and EDSR-PyTorch gets common.default_conv with its dilation cast to
int (its Upsampler passes `bias` positionally into `dilation_factor`, and
torch 2.15 rejects dilation=(True, True)).  Legacy-format files are made
byte-reproducible by renaming their address-named storages (see
canonicalise_legacy).

Run (from the repository root):

    /tmp/torchvenv/bin/python tools/oracles/interop_fixtures.py \\
        --data /work/shared/data --out tests/fixtures/interop \\
        --edsr-pytorch /path/to/EDSR-PyTorch \\
        --wdsr-git /path/to/wdsr_ntire2018/.git \\
        --basicsr-git /path/to/BasicSR/.git

Output is deterministic (fixed seeds, 2 CPU threads).
"""

import argparse
import collections
import contextlib
import hashlib
import importlib.util
import json
import os
import pickle
import pickletools
import platform
import subprocess
import sys
import tempfile
import types
import warnings
import zipfile
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

try:  # optional only for --help on a bare interpreter
    import safetensors
    import safetensors.torch
except ImportError:  # pragma: no cover
    safetensors = None

PICTURE = "Set5/LR_bicubic/X2/babyx2.png"
TOP, LEFT, SIZE = 100, 100, 12
RGB_MEAN = (0.4488, 0.4371, 0.4040)

EDSR_PYTORCH_EDSR_COMMIT = "3dd71ae5561c42e9ce6c03273ee5d93be88db06e"


# --------------------------------------------------------------------------
# Loading the reference code
# --------------------------------------------------------------------------

def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    parent, _, child = name.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, mod)
    return mod


def package(name, path=None):
    mod = types.ModuleType(name)
    mod.__path__ = [path] if path else []
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, mod)
    return mod


def git(git_dir, *args):
    return subprocess.run(["git", "--git-dir", git_dir, *args], check=True,
                          capture_output=True).stdout


def git_export(git_dir, paths, dest):
    """Write HEAD:path for each path under dest; return {path: sha256}."""
    hashes = {}
    for path in paths:
        blob = git(git_dir, "show", f"HEAD:{path}")
        out = os.path.join(dest, path)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(blob)
        hashes[path] = hashlib.sha256(blob).hexdigest()
    return hashes


def load_edsr_pytorch(root):
    model_dir = os.path.join(root, "src", "model")
    package("model", model_dir)  # edsr.py does `from model import common`
    common = load_module("model.common", os.path.join(model_dir, "common.py"))
    edsr = load_module("model.edsr", os.path.join(model_dir, "edsr.py"))
    info = {
        "repository": "https://github.com/sanghyun-son/EDSR-PyTorch",
        "edsr.py_commit": EDSR_PYTORCH_EDSR_COMMIT,
        "common.py_commit": "upstream master (see sha256)",
        "sha256": {
            "src/model/edsr.py": sha256_file(os.path.join(model_dir, "edsr.py")),
            "src/model/common.py": sha256_file(os.path.join(model_dir, "common.py")),
        },
    }
    return SimpleNamespace(common=common, edsr=edsr), info


def load_wdsr(git_dir, tmp):
    dest = os.path.join(tmp, "wdsr")
    hashes = git_export(git_dir, ["wdsr_a.py", "wdsr_b.py"], dest)
    a = load_module("ref_wdsr_a", os.path.join(dest, "wdsr_a.py"))
    b = load_module("ref_wdsr_b", os.path.join(dest, "wdsr_b.py"))
    info = {
        "repository": "https://github.com/JiahuiYu/wdsr_ntire2018",
        "commit": git(git_dir, "rev-parse", "HEAD").decode().strip(),
        "sha256": hashes,
    }
    return SimpleNamespace(a=a, b=b), info


def load_basicsr(git_dir, tmp):
    dest = os.path.join(tmp, "basicsr")
    files = ["basicsr/archs/arch_util.py", "basicsr/archs/edsr_arch.py"]
    hashes = git_export(git_dir, files, dest)

    # Stubs for what arch_util / edsr_arch import but EDSR never uses.
    try:
        import torchvision  # noqa: F401
    except ImportError:
        tv = types.ModuleType("torchvision")
        tv.__version__ = "0.20.0"
        sys.modules["torchvision"] = tv
    try:
        from distutils.version import LooseVersion  # noqa: F401
    except ImportError:  # Python >= 3.12
        du = package("distutils")
        duv = types.ModuleType("distutils.version")
        duv.LooseVersion = lambda v: tuple(int(p) for p in str(v).split(".")[:3])
        sys.modules["distutils.version"] = duv
        du.version = duv

    package("basicsr")
    package("basicsr.archs", os.path.join(dest, "basicsr", "archs"))
    package("basicsr.ops")
    dcn = types.ModuleType("basicsr.ops.dcn")

    class ModulatedDeformConvPack(torch.nn.Module):  # never instantiated
        pass

    def modulated_deform_conv(*a, **k):
        raise NotImplementedError("stub")

    dcn.ModulatedDeformConvPack = ModulatedDeformConvPack
    dcn.modulated_deform_conv = modulated_deform_conv
    sys.modules["basicsr.ops.dcn"] = dcn
    sys.modules["basicsr.ops"].dcn = dcn
    utils = package("basicsr.utils")
    utils.get_root_logger = lambda *a, **k: __import__("logging").getLogger("basicsr")
    registry = types.ModuleType("basicsr.utils.registry")

    class _Registry:
        def register(self, obj=None):
            if obj is not None:
                return obj
            return lambda o: o

    registry.ARCH_REGISTRY = _Registry()
    sys.modules["basicsr.utils.registry"] = registry
    utils.registry = registry

    arch_util = load_module("basicsr.archs.arch_util",
                            os.path.join(dest, "basicsr/archs/arch_util.py"))
    edsr_arch = load_module("basicsr.archs.edsr_arch",
                            os.path.join(dest, "basicsr/archs/edsr_arch.py"))
    info = {
        "repository": "https://github.com/XPixelGroup/BasicSR",
        "commit": git(git_dir, "rev-parse", "HEAD").decode().strip(),
        "sha256": hashes,
    }
    return SimpleNamespace(arch_util=arch_util, edsr_arch=edsr_arch), info


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

# Base cases: each is one set of weights with one reference output.
# packagings: (file name, wrapper, format); the first one is the canonical
# checkpoint, the others reuse the weights (and the reference output).
CASES = [
    # ---- EDSR-PyTorch (sanghyun-son): torch.save(model.state_dict()) ----
    dict(id="edsr-pytorch_x2_b2f10", layout="edsr-pytorch", arch="edsr", scale=2,
         blocks=2, filters=10, res_scale=1.0, seed=1201,
         packagings=[("edsr-pytorch_x2_b2f10.pt", None, "zip"),
                     ("edsr-pytorch_x2_b2f10_legacy.pt", None, "legacy"),
                     ("edsr-pytorch_x2_b2f10_wrap-state_dict.pth", "state_dict", "zip")]),
    dict(id="edsr-pytorch_x3_b3f8_rs0.1", layout="edsr-pytorch", arch="edsr", scale=3,
         blocks=3, filters=8, res_scale=0.1, seed=1301,
         packagings=[("edsr-pytorch_x3_b3f8_rs0.1.pt", None, "zip"),
                     ("edsr-pytorch_x3_b3f8_rs0.1.safetensors", None, "safetensors")]),
    dict(id="edsr-pytorch_x4_b2f8", layout="edsr-pytorch", arch="edsr", scale=4,
         blocks=2, filters=8, res_scale=1.0, seed=1401,
         packagings=[("edsr-pytorch_x4_b2f8.pt", None, "zip")]),
    # ---- BasicSR EDSR: {'params': sd} / {'params': other, 'params_ema': sd} ----
    dict(id="basicsr_x2_b3f8", layout="basicsr", arch="edsr", scale=2,
         blocks=3, filters=8, res_scale=1.0, seed=2201,
         packagings=[("basicsr_x2_b3f8_params.pth", "params", "zip")]),
    dict(id="basicsr_x3_b2f8", layout="basicsr", arch="edsr", scale=3,
         blocks=2, filters=8, res_scale=1.0, seed=2301,
         packagings=[("basicsr_x3_b2f8_params_ema.pth", "params_ema", "zip")]),
    dict(id="basicsr_x4_b2f8", layout="basicsr", arch="edsr", scale=4,
         blocks=2, filters=8, res_scale=1.0, seed=2401,
         packagings=[("basicsr_x4_b2f8_params.pth", "params", "zip"),
                     ("basicsr_x4_b2f8_params_legacy.pth", "params", "legacy")]),
    # ---- Official WDSR-A (old hook weight norm: weight_g / weight_v) ----
    dict(id="wdsr-a_x2_b2f8w20", layout="official-wdsr", arch="wdsr-a", scale=2,
         blocks=2, filters=8, wide=20, res_scale=1.0, weight_norm="hook", seed=3201,
         packagings=[("wdsr-a_x2_b2f8w20_hook.pt", None, "zip"),
                     ("wdsr-a_x2_b2f8w20_hook_wrap-model.pth", "model", "zip")]),
    dict(id="wdsr-a_x3_b2f8w24", layout="official-wdsr", arch="wdsr-a", scale=3,
         blocks=2, filters=8, wide=24, res_scale=1.0, weight_norm="hook", seed=3301,
         packagings=[("wdsr-a_x3_b2f8w24_hook_module.pt", "module.", "zip")]),
    dict(id="wdsr-a_x4_b2f6w18", layout="official-wdsr", arch="wdsr-a", scale=4,
         blocks=2, filters=6, wide=18, res_scale=1.0, weight_norm="hook", seed=3401,
         packagings=[("wdsr-a_x4_b2f6w18_hook.pt", None, "zip"),
                     ("wdsr-a_x4_b2f6w18_hook.safetensors", None, "safetensors")]),
    # ---- Official WDSR-B (expand 6, linear 0.8 hard-coded) ----
    dict(id="wdsr-b_x2_b2f10", layout="official-wdsr", arch="wdsr-b", scale=2,
         blocks=2, filters=10, res_scale=1.0, weight_norm="parametrization", seed=4201,
         packagings=[("wdsr-b_x2_b2f10_param.pt", None, "zip"),
                     ("wdsr-b_x2_b2f10_param.safetensors", None, "safetensors")]),
    dict(id="wdsr-b_x3_b3f8", layout="official-wdsr", arch="wdsr-b", scale=3,
         blocks=3, filters=8, res_scale=1.0, weight_norm="hook", seed=4301,
         packagings=[("wdsr-b_x3_b3f8_hook.pt", None, "zip"),
                     ("wdsr-b_x3_b3f8_hook_wrap-net.pth", "net", "zip")]),
    dict(id="wdsr-b_x4_b2f10", layout="official-wdsr", arch="wdsr-b", scale=4,
         blocks=2, filters=10, res_scale=1.0, weight_norm="parametrization", seed=4401,
         packagings=[("wdsr-b_x4_b2f10_param_module.pt", "module.", "zip")]),
]


@contextlib.contextmanager
def weight_norm_api(kind):
    """The official WDSR calls torch.nn.utils.weight_norm at construction."""
    orig = torch.nn.utils.weight_norm
    if kind == "parametrization":
        torch.nn.utils.weight_norm = torch.nn.utils.parametrizations.weight_norm
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*weight_norm.*deprecated.*",
                                    category=FutureWarning)
            yield
    finally:
        torch.nn.utils.weight_norm = orig


def edsr_pytorch_conv(refs):
    """common.default_conv, except that a bool dilation becomes an int.

    This common.py has default_conv(in, out, k, dilation_factor=1, bias=True)
    while its Upsampler calls conv(n_feats, 4 * n_feats, 3, bias): the bias
    flag lands in dilation_factor, giving dilation=(True, True), which torch
    2.15's conv2d rejects.  True == 1, so int() keeps the network unchanged
    (dilation 1, padding 1, bias on)."""
    default_conv = refs.edsr_pytorch.common.default_conv

    def conv(in_channels, out_channels, kernel_size, dilation_factor=1, bias=True):
        return default_conv(in_channels, out_channels, kernel_size,
                            int(dilation_factor), bias)

    return conv


def study_case(arch, scale):
    """The WDSR paper's study's 8-block network of `arch` as a reference case: EDSR-PyTorch's EDSR with
    64 filters, the official WDSR-A (32 filters, block_feats 128) or WDSR-B (32 filters), weight
    norm through the hook API. What tools/bench/bench_vs_pytorch.py and tools/gpu/check.py time."""
    case = {"scale": scale, "blocks": 8, "res_scale": 1.0}
    if arch == "edsr":
        case.update(layout="edsr-pytorch", arch="edsr", filters=64)
    else:
        case.update(layout="official-wdsr", arch=arch, filters=32, weight_norm="hook",
                    wide=32 * 4 if arch == "wdsr-a" else None)
    return case


def build(refs, case, res_scale=None):
    """A fresh reference model for the case (initialisation weights)."""
    rs = case["res_scale"] if res_scale is None else res_scale
    s = case["scale"]
    if case["layout"] == "edsr-pytorch":
        args = SimpleNamespace(n_resblocks=case["blocks"], n_feats=case["filters"],
                               scale=[s], rgb_range=255, n_colors=3, res_scale=rs)
        model = refs.edsr_pytorch.edsr.EDSR(args, conv=edsr_pytorch_conv(refs))
    elif case["layout"] == "basicsr":
        model = refs.basicsr.edsr_arch.EDSR(
            num_in_ch=3, num_out_ch=3, num_feat=case["filters"], num_block=case["blocks"],
            upscale=s, res_scale=rs, img_range=255.)
    elif case["layout"] == "official-wdsr":
        args = SimpleNamespace(n_resblocks=case["blocks"], n_feats=case["filters"],
                               scale=[s], n_colors=3, res_scale=rs,
                               r_mean=RGB_MEAN[0], g_mean=RGB_MEAN[1], b_mean=RGB_MEAN[2])
        with weight_norm_api(case["weight_norm"]):
            if case["arch"] == "wdsr-a":
                args.block_feats = case["wide"]
                model = refs.wdsr.a.MODEL(args)
            else:
                model = refs.wdsr.b.MODEL(args)
    else:
        raise ValueError(case["layout"])
    return model.eval()


def run_model(case, model, x):
    """Reference output in 0..255 units for an input in 0..255 units."""
    with torch.no_grad():
        if case["layout"] == "basicsr":  # BasicSR works in [0, 1]
            return model(x / 255.0) * 255.0
        return model(x.clone())


def perturb(model, seed):
    """Move every trainable parameter (weight-norm g and v, biases included)
    away from its initialisation; EDSR-PyTorch's MeanShift stays as built."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("sub_mean.", "add_mean.")):
                continue
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            # 20 % relative noise per element, plus an absolute part, so that
            # e.g. a weight-norm g clearly differs from ||v||.
            p.add_(noise * (0.2 * p.abs() + 0.05 * (p.std() + 0.01)))


def state_dict_of(model):
    return collections.OrderedDict(
        (k, v.detach().clone().contiguous()) for k, v in model.state_dict().items())


def wrap(sd, wrapper, other_sd=None):
    if wrapper is None:
        return sd
    if wrapper == "module.":
        return collections.OrderedDict(("module." + k, v) for k, v in sd.items())
    if wrapper == "params":
        return {"params": sd}
    if wrapper == "params_ema":
        # As BasicSR's SRModel.save writes it: params first, then params_ema.
        # 'params' holds DIFFERENT weights; the reference output is params_ema's.
        return {"params": other_sd, "params_ema": sd}
    if wrapper == "state_dict":
        # A training checkpoint: extra plain entries beside the weights.
        return {"epoch": 300, "state_dict": sd}
    if wrapper in ("model", "net"):
        return {wrapper: sd}
    raise ValueError(wrapper)


def unwrap(obj, wrapper):
    if wrapper is None:
        return obj
    if wrapper == "module.":
        assert all(k.startswith("module.") for k in obj)
        return collections.OrderedDict((k[len("module."):], v) for k, v in obj.items())
    return obj[wrapper]


def save_checkpoint(obj, path, fmt):
    if fmt == "zip":
        torch.save(obj, path)
    elif fmt == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
        canonicalise_legacy(path)
    elif fmt == "safetensors":
        safetensors.torch.save_file(obj, path, metadata={"format": "pt"})
    else:
        raise ValueError(fmt)


def split_pickles(blob, count):
    """The first `count` pickles of blob (by their STOP opcodes) and the rest."""
    out, pos = [], 0
    for _ in range(count):
        last = None
        for last in pickletools.genops(blob[pos:]):
            pass
        end = pos + last[2] + 1
        out.append(blob[pos:end])
        pos = end
    return out, blob[pos:]


LEGACY_KEY_BASE = 140000000000000  # looks like the addresses torch uses


def canonicalise_legacy(path):
    """Make a legacy (pre-1.6) torch.save file byte-reproducible.

    The legacy writer names each storage str(storage._cdata), a memory
    address, and writes the storages sorted by that name, so two runs differ.
    Rename the keys to fixed address-like strings in order of first use
    (LEGACY_KEY_BASE + 4096 * i, all the same width) and write the storages
    in the (sorted) new order, exactly as torch.save would have with those
    addresses.  Disassembles only; nothing is unpickled."""
    with open(path, "rb") as f:
        blob = f.read()
    (magic, proto, sysinfo, obj, keys_pkl), rest = split_pickles(blob, 5)
    old_keys = [arg for op, arg, _ in pickletools.genops(keys_pkl)
                if op.name == "BINUNICODE"]
    assert old_keys == sorted(old_keys)
    assert pickle.dumps(old_keys, protocol=2) == keys_pkl  # so we may rewrite it
    records, p = {}, 0
    for key in old_keys:  # int64 element count, then the float32 data
        n = int.from_bytes(rest[p:p + 8], "little")
        records[key] = rest[p:p + 8 + 4 * n]
        p += 8 + 4 * n
    assert p == len(rest), "only float32 storages are handled"
    rename = {}
    for op, arg, _ in pickletools.genops(obj):
        if op.name == "BINUNICODE" and arg in records and arg not in rename:
            rename[arg] = str(LEGACY_KEY_BASE + 4096 * len(rename))
    assert sorted(rename) == old_keys
    new_obj, last = bytearray(), 0
    for op, arg, pos in pickletools.genops(obj):
        if op.name == "BINUNICODE" and arg in rename:
            new_obj += obj[last:pos]
            new = rename[arg].encode()
            new_obj += b"X" + len(new).to_bytes(4, "little") + new
            last = pos + 5 + len(arg.encode())
    new_obj += obj[last:]
    new_keys = sorted(rename.values())
    back = {v: k for k, v in rename.items()}
    with open(path, "wb") as f:
        f.write(magic + proto + sysinfo + bytes(new_obj))
        f.write(pickle.dumps(new_keys, protocol=2))
        for key in new_keys:
            f.write(records[back[key]])


def load_checkpoint(path, fmt):
    if fmt == "safetensors":
        return collections.OrderedDict(safetensors.torch.load_file(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def wide_of(case):
    if case["arch"] == "wdsr-a":
        return case["wide"]
    if case["arch"] == "wdsr-b":
        return case["filters"] * 6
    return None


def low_rank_of(case):
    return int(case["filters"] * 0.8) if case["arch"] == "wdsr-b" else None


def flags_of(case):
    return [] if case["res_scale"] == 1.0 else ["--res-scale", repr(case["res_scale"])]


# --------------------------------------------------------------------------
# Files that must be refused
# --------------------------------------------------------------------------

class _Pwn:
    """Unpickling this calls os.system: a loader must refuse the global."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def pickle_globals(data):
    """(module, name) pairs a pickle asks for; disassembles, never loads."""
    out, strings = [], []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        elif op.name == "GLOBAL":
            out.append(tuple(arg.split(" ", 1)))
        elif op.name == "STACK_GLOBAL":
            out.append((strings[-2], strings[-1]))
    return out


def zip_data_pkl(path):
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        return z.read(name)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder holding Set5/")
    ap.add_argument("--out", required=True, help="fixture folder to write")
    ap.add_argument("--edsr-pytorch", required=True, help="EDSR-PyTorch checkout root")
    ap.add_argument("--wdsr-git", required=True, help="git dir of wdsr_ntire2018")
    ap.add_argument("--basicsr-git", required=True, help="git dir of BasicSR")
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(0)
    # The official WDSR forward calls .cuda() on its mean: keep it on the CPU.
    torch.Tensor.cuda = lambda self, *a, **k: self

    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="interop_ref_")
    refs = SimpleNamespace()
    refs.edsr_pytorch, info_edsr = load_edsr_pytorch(args.edsr_pytorch)
    refs.wdsr, info_wdsr = load_wdsr(args.wdsr_git, tmp)
    refs.basicsr, info_basicsr = load_basicsr(args.basicsr_git, tmp)
    print(f"torch {torch.__version__}; WDSR HEAD {info_wdsr['commit']}; "
          f"BasicSR HEAD {info_basicsr['commit']}")
    print(f"torch.nn.utils.weight_norm present: {hasattr(torch.nn.utils, 'weight_norm')}")

    img = np.asarray(Image.open(os.path.join(args.data, PICTURE)).convert("RGB"))
    crop = img[TOP:TOP + SIZE, LEFT:LEFT + SIZE]  # HWC uint8
    x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)[None]).astype(np.float32))
    assert x.shape == (1, 3, SIZE, SIZE)

    entries, written = [], []
    for case in CASES:
        torch.manual_seed(case["seed"])  # the initialisation the noise is added to
        model = build(refs, case)
        perturb(model, case["seed"])
        sd = state_dict_of(model)
        y = run_model(case, model, x).numpy().astype(np.float32)
        s = case["scale"]
        assert y.shape == (1, 3, SIZE * s, SIZE * s), y.shape
        assert np.isfinite(y).all()
        ref_name = case["id"] + ".out.npy"
        np.save(os.path.join(args.out, ref_name), y)
        written.append(ref_name)

        other_sd = None
        if any(w == "params_ema" for _, w, _ in case["packagings"]):
            torch.manual_seed(case["seed"] + 50)
            other = build(refs, case)
            perturb(other, case["seed"] + 50)
            other_sd = state_dict_of(other)

        for fname, wrapper, fmt in case["packagings"]:
            save_checkpoint(wrap(sd, wrapper, other_sd), os.path.join(args.out, fname), fmt)
            written.append(fname)
            entries.append(collections.OrderedDict([
                ("file", fname),
                ("layout", case["layout"]),
                ("arch", case["arch"]),
                ("scale", s),
                ("blocks", case["blocks"]),
                ("filters", case["filters"]),
                ("wide", wide_of(case)),
                ("low_rank", low_rank_of(case)),
                ("res_scale", case["res_scale"]),
                ("weight_norm", case.get("weight_norm")),
                ("wrapper", wrapper),
                ("format", fmt),
                ("flags", flags_of(case)),
                ("reference", ref_name),
                ("input", {"picture": PICTURE, "top": TOP, "left": LEFT, "size": SIZE}),
                ("max_abs_output", float(np.abs(y).max())),
                ("case", case["id"]),
                ("seed", case["seed"]),
            ]))

    # ---- files that must be refused ----
    refuse = []
    base = CASES[2]  # edsr-pytorch x4: small, complete
    torch.manual_seed(base["seed"])
    model = build(refs, base)
    perturb(model, base["seed"])
    evil = collections.OrderedDict([("payload", _Pwn())])
    evil.update(state_dict_of(model))
    for fname, fmt in (("malicious_os_system.pth", "zip"),
                       ("malicious_os_system_legacy.pth", "legacy")):
        save_checkpoint(evil, os.path.join(args.out, fname), fmt)  # written, never loaded
        written.append(fname)
        refuse.append({"file": fname, "kind": "malicious", "format": fmt,
                       "why": "complete EDSR-PyTorch x4 state dict plus an entry whose "
                              "pickle calls os.system('echo pwned') (global posix.system)"})
    src = os.path.join(args.out, CASES[0]["packagings"][0][0])
    with open(src, "rb") as f:
        blob = f.read()
    fname = "truncated_half.pt"
    with open(os.path.join(args.out, fname), "wb") as f:
        f.write(blob[:len(blob) // 2])
    written.append(fname)
    refuse.append({"file": fname, "kind": "truncated", "format": "zip",
                   "why": f"first {len(blob) // 2} of {len(blob)} bytes of "
                          f"{CASES[0]['packagings'][0][0]}"})
    fname = "not_a_checkpoint.pth"
    with open(os.path.join(args.out, fname), "wb") as f:
        f.write(b"this is not a checkpoint\n")
    written.append(fname)
    refuse.append({"file": fname, "kind": "not-a-checkpoint", "format": None,
                   "why": "25 bytes of ASCII text"})

    manifest = collections.OrderedDict([
        ("generator", "tools/oracles/interop_fixtures.py"),
        ("torch", torch.__version__),
        ("numpy", np.__version__),
        ("safetensors", getattr(safetensors, "__version__", None)),
        ("python", platform.python_version()),
        ("references", collections.OrderedDict([
            ("edsr-pytorch", info_edsr),
            ("official-wdsr", info_wdsr),
            ("basicsr", info_basicsr),
        ])),
        ("input", {"picture": PICTURE, "top": TOP, "left": LEFT, "size": SIZE,
                   "layout": "float32 NCHW [1,3,12,12], RGB, 0..255"}),
        ("output", "float32 NCHW [1,3,12*scale,12*scale] .npy, 0..255 units "
                   "(BasicSR: model(x/255)*255)"),
        ("cases", entries),
        ("refuse", refuse),
    ])
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    written.append("manifest.json")

    verify(refs, args.out, entries, refuse, x)

    print()
    print(f"{'file':<48} {'bytes':>9}")
    total = 0
    for name in written:
        n = os.path.getsize(os.path.join(args.out, name))
        total += n
        print(f"{name:<48} {n:>9}")
    print(f"{'total (' + str(len(written)) + ' files)':<48} {total:>9}")


# --------------------------------------------------------------------------
# Verification: reload each checkpoint into a fresh reference model
# --------------------------------------------------------------------------

def g_from_v(sd):
    """The same state dict with every weight-norm g replaced by ||v||."""
    out = collections.OrderedDict(sd)
    for k in sd:
        for gk, vk in ((".weight_g", ".weight_v"),
                       (".parametrizations.weight.original0",
                        ".parametrizations.weight.original1")):
            if k.endswith(gk):
                v = sd[k[:-len(gk)] + vk]
                out[k] = v.flatten(1).norm(dim=1).view_as(sd[k])
    return out


def verify(refs, out_dir, entries, refuse, x):
    by_case = {c["id"]: c for c in CASES}
    print()
    print(f"{'checkpoint':<46} {'max|ref|':>9} {'max|diff|':>10}  discrimination")
    for e in entries:
        case = by_case[e["case"]]
        ref = np.load(os.path.join(out_dir, e["reference"]))
        obj = load_checkpoint(os.path.join(out_dir, e["file"]), e["format"])
        sd = unwrap(obj, e["wrapper"])
        model = build(refs, case)
        model.load_state_dict(sd, strict=True)
        y = run_model(case, model, x).numpy()
        diff = float(np.abs(y - ref).max())
        assert diff <= 1e-5 * max(1.0, e["max_abs_output"]), (e["file"], diff)

        notes = []
        if case.get("weight_norm"):
            m = build(refs, case)
            m.load_state_dict(g_from_v(sd))
            notes.append(f"g:=|v| {np.abs(run_model(case, m, x).numpy() - ref).max():.3g}")
        if case["res_scale"] != 1.0:
            m = build(refs, case, res_scale=1.0)
            m.load_state_dict(sd)
            notes.append(f"rs=1 {np.abs(run_model(case, m, x).numpy() - ref).max():.3g}")
        if e["wrapper"] == "params_ema":
            m = build(refs, case)
            m.load_state_dict(obj["params"])
            notes.append(f"params {np.abs(run_model(case, m, x).numpy() - ref).max():.3g}")
        init = build(refs, case)
        notes.append(f"init {np.abs(run_model(case, init, x).numpy() - ref).max():.3g}")
        print(f"{e['file']:<46} {e['max_abs_output']:>9.3f} {diff:>10.3g}  {', '.join(notes)}")

    print()
    for r in refuse:
        path = os.path.join(out_dir, r["file"])
        if r["kind"] == "malicious":
            if r["format"] == "zip":
                data = zip_data_pkl(path)
            else:  # legacy: magic, protocol, sys_info, then the object pickle
                with open(path, "rb") as f:
                    data = split_pickles(f.read(), 4)[0][3]
            globs = pickle_globals(data)
            assert ("posix", "system") in globs or ("os", "system") in globs, globs
            print(f"{r['file']}: pickle globals {sorted(set(globs))} (not loaded)")
        else:
            try:
                torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # our own benign bytes; expected to fail
                print(f"{r['file']}: torch.load refuses: {type(exc).__name__}: "
                      f"{str(exc).splitlines()[0][:90]}")
            else:
                raise AssertionError(f"{r['file']} loaded")


if __name__ == "__main__":
    main()
