#!/usr/bin/env python3
"""Micro-benchmark of ways to spell ReLU's gradient in ONNX Runtime, on a WDSR-B wide
activation (16x192x24x24): Greater+Where, Sign*dy, Cast(Greater)*dy. All exact; medians of 15.

Usage: .venv/bin/python tools/bench/bench_relu_grad.py
"""
import numpy as np, onnx, onnxruntime as ort, time
from onnx import helper as h, TensorProto as T
shape = [16, 192, 24, 24]
def model(nodes, extra_inits=()):
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("y", T.FLOAT, shape), h.make_tensor_value_info("dy", T.FLOAT, shape)],
                     [h.make_tensor_value_info("dx", T.FLOAT, shape)], list(extra_inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)]).SerializeToString()
zero = h.make_tensor("zero", T.FLOAT, [], [0.0])
cands = {
  "Greater+Where": model([h.make_node("Greater", ["y", "zero"], ["m"]), h.make_node("Where", ["m", "dy", "zero"], ["dx"])], [zero]),
  "Sign*dy": model([h.make_node("Sign", ["y"], ["m"]), h.make_node("Mul", ["dy", "m"], ["dx"])]),
  "Cast(Greater)*dy": model([h.make_node("Greater", ["y", "zero"], ["b"]), h.make_node("Cast", ["b"], ["m"], to=T.FLOAT), h.make_node("Mul", ["dy", "m"], ["dx"])], [zero]),
}
y = np.maximum(np.random.randn(*shape).astype(np.float32), 0); dy = np.random.randn(*shape).astype(np.float32)
ref = np.where(y > 0, dy, 0)
for name, m in cands.items():
    o = ort.SessionOptions(); o.intra_op_num_threads = 2
    s = ort.InferenceSession(m, o, providers=["CPUExecutionProvider"])
    out = s.run(None, {"y": y, "dy": dy})[0]; assert np.array_equal(out, ref), name
    ts = []
    for _ in range(15):
        t = time.perf_counter(); s.run(None, {"y": y, "dy": dy}); ts.append(time.perf_counter() - t)
    print(f"{name:18s} median {1000*np.median(ts):.2f} ms (includes the run's input/output copies)")
