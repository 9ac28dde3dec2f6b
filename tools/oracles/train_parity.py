#!/usr/bin/env python3
"""Runs srgraph's train-step graph in ONNX Runtime and compares with tract.

DIR holds (written by tests/it/training.rs):
  train_step.onnx     the step graph; its parameter/moment inputs default to the initial values
  lr.npy, hr.npy      one batch, used for every step
  steps.txt           "<steps> <learning rate>"
  names.txt           the state tensors, one "<name> <size>" per line, in the order of
  tract.npy           tract's state after the steps, flattened and concatenated
Every output `X.new` is fed back as input `X` at the next step, starting from
the initialisers. Agreement, tensor by tensor (so a large running variance
does not excuse a small weight): max |ort - tract| <= 1e-4 * max(1, max |tract|).

Usage: train_parity.py DIR
"""
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

TOL = 1e-4


def main() -> int:
    d = pathlib.Path(sys.argv[1])
    model = onnx.load(str(d / "train_step.onnx"))
    state = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 3  # parameters are inputs with defaults, on purpose
    sess = ort.InferenceSession(str(d / "train_step.onnx"), opts, providers=["CPUExecutionProvider"])
    # Inputs with defaults are listed apart from the plain inputs.
    input_names = [i.name for i in sess.get_inputs() + sess.get_overridable_initializers()]
    output_names = [o.name for o in sess.get_outputs()]
    lr, hr = np.load(d / "lr.npy"), np.load(d / "hr.npy")
    steps, rate = (d / "steps.txt").read_text().split()
    losses = []
    for step in range(1, int(steps) + 1):
        feeds = {"lr": lr, "hr": hr, "learning_rate": np.array(rate, np.float32), "step": np.array(step, np.float32)}
        feeds.update({n: state[n] for n in input_names if n in state})
        outs = dict(zip(output_names, sess.run(None, feeds)))
        losses.append(float(outs["loss"]))
        for name, value in outs.items():
            if name.endswith(".new"):
                state[name[: -len(".new")]] = value
    entries = [line.split() for line in (d / "names.txt").read_text().splitlines()]
    expected = np.load(d / "tract.npy")
    offset, worst, failures = 0, (0.0, ""), []
    for name, size in entries:
        want = expected[offset : offset + int(size)]
        offset += int(size)
        err = float(np.max(np.abs(state[name].ravel() - want)))
        bound = TOL * max(1.0, float(np.max(np.abs(want))))
        worst = max(worst, (err / bound, f"{name}: {err:.3e} (allowed {bound:.3e})"))
        if not err <= bound:
            failures.append(f"{name}: max |ort - tract| = {err:.3e} (allowed {bound:.3e})")
    print(f"onnxruntime {ort.__version__}: {len(entries)} state tensors after {steps} steps, losses {['%.4f' % l for l in losses]}")
    print(f"closest to its bound: {worst[1]}")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
