#!/usr/bin/env python3
"""Check srgraph's ONNX Runtime training-API artefacts with the real onnxruntime-training 1.19.2.

Usage:
    python tools/oracles/ort_training_check.py DIR [--case NAME ...] [--keep-ort-artifacts]

DIR holds one folder per case (e.g. wdsr-a, wdsr-b, edsr) written by srgraph, each with:

    training_model.onnx   inputs lr, hr, <p>..., <p>_grad.accumulation.buffer..., lazy_reset_grad (bool [1]);
                          outputs loss, <p>_grad.accumulation.out... (srgraph's gradients + InPlaceAccumulatorV2)
    eval_model.onnx       inputs lr, hr, <p>...; output loss
    optimizer_model.onnx  com.microsoft AdamWOptimizer (adam_mode 0, epsilon 1e-8, weight_decay 0)
    checkpoint            ORT "ODTC" checkpoint, parameters only
    case.json             {"learning_rate", "compare_steps", "train_steps", "params": [...]}; compare_steps 0
                          skips the parameter comparison (used for the deep presets: Adam divides by sqrt(v), so an
                          entry whose gradient is near zero can move by up to lr per step either way on float
                          summation noise alone; the gradient check below is their exact comparison)
    batches/{i}.lr.npy, batches/{i}.hr.npy   float32 NCHW in [0, 255], i = 0 .. train_steps-1
    expected/<p>.npy      parameters after compare_steps steps of srgraph's own train step (PyTorch Adam)
    forward_loss.onnx     srgraph's forward + loss (params as initializers, single output loss)
    gradients/<p>.npy     srgraph's gradient of that loss at the initial weights on batch 0

Per case it
  1. trains with ORT's Module/Optimizer on srgraph's training model and compares the parameters after
     compare_steps steps with expected/ (max|a-b| <= 1e-4 * max(1, max|b|)), checks that the eval loss on
     batch 0 went down after train_steps steps, and saves the checkpoint with optimizer state to
     <case>/saved_checkpoint plus <case>/after.json ({"eval_loss_batch0", "steps"}) for the Rust side;
  2. lets ORT's own gradient builder (artifacts.generate_artifacts, loss=None so the graph's `loss` output
     is the loss) differentiate forward_loss.onnx and compares its gradients at the initial weights on
     batch 0 with gradients/ (max|a-b| <= 1e-4 * max|b| per tensor).

Prints one 'ok'/'FAIL' line per check. Exit code 0 when every check passes, 1 otherwise (2: usage).
Needs only: onnxruntime-training-cpu==1.19.2 onnx==1.16.2 numpy (tools/setup/setup-training-venv.sh). No torch.
"""

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import types

import numpy as np
import onnx
import onnxruntime

# Torch-free import of the training API. onnxruntime/training/__init__.py runs
# `from . import amp, artifacts, optim`, and optim/fused_adam.py imports torch, so a plain
# `import onnxruntime.training` fails without torch. The PyPI torch wheel is the CUDA build (a 539 MB
# wheel plus GBs of nvidia-* wheels), which is far too much for a check that needs none of it. The
# submodules used here (api, artifacts, onnxblock) do not need torch, so register an empty package
# object for onnxruntime.training (with the real __path__) and import just those submodules, without
# running the package's __init__.
_PKG = "onnxruntime.training"
if _PKG not in sys.modules:
    _stub = types.ModuleType(_PKG)
    _stub.__path__ = [os.path.join(os.path.dirname(onnxruntime.__file__), "training")]
    _stub.__package__ = _PKG
    sys.modules[_PKG] = _stub
    onnxruntime.training = _stub
from onnxruntime.training import artifacts  # noqa: E402
from onnxruntime.training.api import CheckpointState, Module, Optimizer  # noqa: E402

PARAM_RTOL = 1e-4  # parameters after compare_steps: max|a-b| <= PARAM_RTOL * max(1, max|b|)
GRAD_RTOL = 1e-4  # gradients: max|a-b| <= GRAD_RTOL * max|b| (per tensor)
LOSS_RTOL = 1e-5  # the same loss computed by two graphs
MOVE_RTOL = 1e-2  # parameter updates: max|du_a-du_b| <= MOVE_RTOL * max|du_b| (per tensor)


class Checks:
    """Collects results and prints one 'ok'/'FAIL' line per check."""

    def __init__(self):
        self.failed = 0
        self.passed = 0

    def report(self, case, name, ok, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} {case}: {name}" + (f": {detail}" if detail else ""), flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


@contextlib.contextmanager
def quiet_stderr():
    """Silence native stderr: ORT's gradient builder logs every graph transformer at INFO, whatever
    onnxruntime.set_default_logger_severity says. Errors still arrive as Python exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def load_batch(case_dir, i):
    lr = np.ascontiguousarray(np.load(os.path.join(case_dir, "batches", f"{i}.lr.npy")), dtype=np.float32)
    hr = np.ascontiguousarray(np.load(os.path.join(case_dir, "batches", f"{i}.hr.npy")), dtype=np.float32)
    return lr, hr


def run_loss(module, batch):
    """One train or eval step; returns the `loss` output as a float (picked by name if there are several)."""
    out = module(*batch)
    if isinstance(out, tuple):
        out = out[module.output_names().index("loss")]
    out = np.asarray(out)
    if out.size != 1:
        raise ValueError(f"loss must be a scalar (shape [] or [1]), got shape {list(out.shape)}")
    return float(out.reshape(()))


def worst_diff(actual, expected, scale_of):
    """Return (name, ratio, max|a-b|) of the tensor with the largest ratio = max|a-b| / scale_of(b)."""
    worst = ("", 0.0, 0.0)
    for name, b in expected.items():
        a = actual[name]
        if a.shape != b.shape:
            return name, float("inf"), float("inf")
        err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if b.size else 0.0
        ratio = err / scale_of(b)
        if ratio > worst[1] or not worst[0]:
            worst = (name, ratio, err)
    return worst


def params_of(state, names):
    return {p: np.array(state.parameters[p].data, copy=True) for p in names}


def check_training(checks, case, case_dir, cfg, batch0):
    """Part 1: srgraph's training artefacts under ORT's Module/Optimizer."""
    names = cfg["params"]
    state = CheckpointState.load_checkpoint(os.path.join(case_dir, "checkpoint"))
    module = Module(os.path.join(case_dir, "training_model.onnx"), state, os.path.join(case_dir, "eval_model.onnx"))
    optimizer = Optimizer(os.path.join(case_dir, "optimizer_model.onnx"), module)
    # The Optimizer starts at lr 0.001 whatever the checkpoint says: always set it.
    optimizer.set_learning_rate(float(cfg["learning_rate"]))
    initial = params_of(state, names)

    module.eval()
    loss_before = run_loss(module, batch0)

    losses = []
    module.train()
    steps = int(cfg["train_steps"])
    compare = int(cfg["compare_steps"])
    for i in range(steps):
        losses.append(run_loss(module, load_batch(case_dir, i)))
        optimizer.step()
        module.lazy_reset_grad()
        if i + 1 == compare:
            expected = {p: np.load(os.path.join(case_dir, "expected", f"{p}.npy")) for p in names}
            name, ratio, err = worst_diff(params_of(state, names), expected, lambda b: max(1.0, float(np.max(np.abs(b)))))
            checks.report(case, f"params after {compare} steps vs srgraph's train step", ratio <= PARAM_RTOL,
                          f"worst {name}: max|a-b| {err:.3g} = {ratio:.3g} x max(1,max|b|) (limit {PARAM_RTOL:g})")
            # The limit above is loose next to small learning rates (5 Adam steps of lr 1e-4 move a parameter
            # by at most 5e-4), so also compare with how far each tensor moved: a wrong learning rate, step
            # count or bias correction shows up here at the percent level; f32 rounding is ~1e-5 of it.
            moved = {p: expected[p] - initial[p] for p in names}
            got_moved = {p: params_of(state, [p])[p] - initial[p] for p in names}
            name, ratio, err = worst_diff(got_moved, moved, lambda b: max(float(np.max(np.abs(b))), 1e-30))
            checks.report(case, f"parameter updates over {compare} steps vs srgraph's", ratio <= MOVE_RTOL,
                          f"worst {name}: max|a-b| {err:.3g} = {ratio:.3g} x max|update| (limit {MOVE_RTOL:g})")

    rel = abs(losses[0] - loss_before) / max(abs(loss_before), 1e-12)
    checks.report(case, "first train-step loss == eval loss (batch 0, initial weights)", rel <= LOSS_RTOL,
                  f"train {losses[0]:.6f}, eval {loss_before:.6f}")

    module.eval()
    loss_after = run_loss(module, batch0)
    checks.report(case, f"eval loss on batch 0 decreased over {steps} steps", loss_after < loss_before,
                  f"{loss_before:.6f} -> {loss_after:.6f}")

    saved = os.path.join(case_dir, "saved_checkpoint")
    CheckpointState.save_checkpoint(state, saved, include_optimizer_state=True)
    with open(os.path.join(case_dir, "after.json"), "w") as f:
        json.dump({"eval_loss_batch0": loss_after, "steps": steps}, f, indent=1)
        f.write("\n")
    reloaded = CheckpointState.load_checkpoint(saved)
    final = params_of(state, names)
    same = all(np.array_equal(reloaded.parameters[p].data, final[p]) for p in names)
    checks.report(case, "saved_checkpoint reloads with the trained parameters", same,
                  f"{os.path.getsize(saved)} bytes, after.json written")
    return initial, loss_before


def check_gradients(checks, case, case_dir, cfg, batch0, initial, eval_loss, keep):
    """Part 2: ORT's own gradient builder on forward_loss.onnx vs srgraph's gradients."""
    names = cfg["params"]
    model = onnx.load(os.path.join(case_dir, "forward_loss.onnx"))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    missing = [p for p in names if p not in inits]
    same = not missing and all(np.array_equal(inits[p], initial[p]) for p in names)
    checks.report(case, "forward_loss.onnx initializers == checkpoint parameters", same,
                  f"missing {missing}" if missing else "")

    out = os.path.join(case_dir, "ort_artifacts") if keep else tempfile.mkdtemp(prefix=f"ortgrad-{case}-")
    os.makedirs(out, exist_ok=True)
    try:
        try:
            with quiet_stderr():
                # loss=None: PassThrough, the graph's first (only) output `loss` is differentiated as is.
                artifacts.generate_artifacts(model, requires_grad=list(names), frozen_params=[], loss=None,
                                             optimizer=None, artifact_directory=out)
        except Exception as e:  # noqa: BLE001 - report whatever the gradient builder says
            msg = str(e)
            cut = msg.find("gradient_builder != nullptr was false.")
            checks.report(case, "ORT gradient builder accepts forward_loss.onnx", False,
                          (msg[cut + 38:] if cut >= 0 else msg).strip()[:300])
            return
        checks.report(case, "ORT gradient builder accepts forward_loss.onnx", True)

        state = CheckpointState.load_checkpoint(os.path.join(out, "checkpoint"))
        module = Module(os.path.join(out, "training_model.onnx"), state)
        module.train()
        module.lazy_reset_grad()
        loss = run_loss(module, batch0)
        rel = abs(loss - eval_loss) / max(abs(eval_loss), 1e-12)
        checks.report(case, "forward_loss loss == eval_model loss (batch 0, initial weights)", rel <= LOSS_RTOL,
                      f"{loss:.6f} vs {eval_loss:.6f}")

        got = {p: state.parameters[p].grad for p in names}
        absent = [p for p, g in got.items() if g is None]
        if absent:
            checks.report(case, "gradients vs ORT's gradient builder", False, f"no gradient for {absent}")
            return
        expected = {p: np.load(os.path.join(case_dir, "gradients", f"{p}.npy")) for p in names}
        # Relative to the tensor's largest entry: per-element relative error is meaningless where entries
        # cancel to ~0, and an absolute limit would depend on the loss scale and the parameter group
        # (weight_g vs bias vs weight_v gradients differ by orders of magnitude). f32 sums over
        # B*H*W terms in a different order differ by ~1e-6 of the tensor's scale. An all-zero tensor
        # (dead ReLU) must then match exactly (up to 1e-30).
        name, ratio, err = worst_diff(got, expected, lambda b: max(float(np.max(np.abs(b))), 1e-30))
        checks.report(case, "gradients vs ORT's gradient builder", ratio <= GRAD_RTOL,
                      f"worst {name}: max|a-b| {err:.3g} = {ratio:.3g} x max|b| (limit {GRAD_RTOL:g})")
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)


def run_case(checks, case, case_dir, keep):
    t0 = time.perf_counter()
    with open(os.path.join(case_dir, "case.json")) as f:
        cfg = json.load(f)
    batch0 = load_batch(case_dir, 0)
    try:
        initial, eval_loss = check_training(checks, case, case_dir, cfg, batch0)
    except Exception as e:  # noqa: BLE001
        checks.report(case, "training with Module/Optimizer", False, f"{type(e).__name__}: {e}"[:500])
        return
    t1 = time.perf_counter()
    try:
        check_gradients(checks, case, case_dir, cfg, batch0, initial, eval_loss, keep)
    except Exception as e:  # noqa: BLE001
        checks.report(case, "gradient check", False, f"{type(e).__name__}: {e}"[:500])
    t2 = time.perf_counter()
    print(f"     {case}: {t1 - t0:.2f} s training, {t2 - t1:.2f} s gradient check", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="folder with one sub-folder per case")
    ap.add_argument("--case", action="append", help="only this case (repeatable)")
    ap.add_argument("--keep-ort-artifacts", action="store_true",
                    help="keep ORT's generated gradient artefacts in <case>/ort_artifacts")
    args = ap.parse_args(argv)

    onnxruntime.set_default_logger_severity(3)
    if not os.path.isdir(args.dir):
        print(f"FAIL {args.dir}: not a folder")
        return 1
    cases = args.case or sorted(d for d in os.listdir(args.dir) if os.path.isfile(os.path.join(args.dir, d, "case.json")))
    if not cases:
        print(f"FAIL {args.dir}: no case folders (with case.json)")
        return 1
    print(f"onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}, numpy {np.__version__}; cases: {', '.join(cases)}")
    checks = Checks()
    for case in cases:
        case_dir = os.path.join(args.dir, case)
        if not os.path.isfile(os.path.join(case_dir, "case.json")):
            checks.report(case, "case.json", False, "missing")
            continue
        run_case(checks, case, case_dir, args.keep_ort_artifacts)
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
