#!/usr/bin/env python3
"""Cross-runtime conformance of srgraph's ONNX files.

For every MODEL.onnx in a folder (written by srgraph's tests, with
MODEL.input.npy and MODEL.tract.npy beside it: the input and tract's output,
and for inference graphs MODEL.ort-rust.npy: ONNX Runtime's output through
srgraph's Rust `ort` engine):
  1. onnx.checker.check_model(full_check=True) passes;
  2. ONNX Runtime (CPU, Python) runs the model on the same input and agrees with tract;
  3. where MODEL.ort-rust.npy exists (inference graphs), so does ONNX Runtime through
     Rust, and OpenCV's DNN module (cv2.dnn.readNetFromONNX).

Agreement: max |ort - tract| <= TOL * max(1, max |tract|). Outputs are pixel
values in [0, 255] (untrained networks stray a little outside), and float32
convolutions summed in different orders differ by a few ulps of the largest
value, so the tolerance is relative to the output's magnitude: 1e-4 of 255 is
0.0255, a fortieth of one 8-bit grey level.

Usage: conformance.py DIR   (exit 0 when every model passes)
"""
import pathlib
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort

TOL = 1e-4


def check(model_path: pathlib.Path) -> str | None:
    model = onnx.load(str(model_path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # the checker raises several types
        return f"onnx.checker: {e}"
    x = np.load(model_path.with_suffix(".input.npy"))
    expected = np.load(model_path.with_suffix(".tract.npy"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 3  # parameters listed as inputs (the training form) are intended
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x})
    outputs = {"onnxruntime": got}
    rust = model_path.with_suffix(".ort-rust.npy")
    if rust.exists():
        outputs["ort-rust"] = np.load(rust)
        net = cv2.dnn.readNetFromONNX(str(model_path))
        net.setInput(x)
        outputs["opencv-dnn"] = net.forward()
    bound = TOL * max(1.0, float(np.max(np.abs(expected))))
    errors = []
    for runtime, y in outputs.items():
        if y.shape != expected.shape:
            return f"{runtime} output shape {y.shape}, tract {expected.shape}"
        err = float(np.max(np.abs(y - expected)))
        if not err <= bound:
            return f"{runtime} and tract differ by {err:.3g} (allowed {bound:.3g})"
        errors.append(f"{runtime} {err:.1e}")
    print(f"ok    {model_path.name:<36} max |x - tract|: {', '.join(errors)} (allowed {bound:.1e})")
    return None


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    models = sorted(pathlib.Path(sys.argv[1]).glob("*.onnx"))
    if not models:
        print(f"no .onnx files in {sys.argv[1]}", file=sys.stderr)
        return 1
    failures = 0
    for m in models:
        problem = check(m)
        if problem:
            failures += 1
            print(f"FAIL  {m.name}: {problem}")
    print(
        f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, opencv {cv2.__version__}: "
        f"{len(models) - failures} passed, {failures} failed"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
