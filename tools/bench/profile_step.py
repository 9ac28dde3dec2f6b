#!/usr/bin/env python3
"""Per-op-type profile of a train-step graph in ONNX Runtime (CPU): where a step's time goes.

Usage: .venv/bin/python tools/bench/profile_step.py DIR/train_step.onnx   (DIR from `srgraph build ARCH --train -o DIR`)
Prints the step times and, per op type, ms per step, node count and share of kernel time.
"""
import onnxruntime as ort, onnx, numpy as np, json, os, sys, collections, tempfile
from onnx import numpy_helper
path = sys.argv[1]
m = onnx.load(path)
state = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
o = ort.SessionOptions(); o.enable_profiling = True; o.log_severity_level = 3
# ONNX Runtime writes its profile into the working folder unless given a prefix: keep it out of the repository.
profile_dir = tempfile.mkdtemp(prefix="srgraph-profile-")
o.profile_file_prefix = os.path.join(profile_dir, "onnxruntime_profile")
s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
names = [i.name for i in s.get_inputs() + s.get_overridable_initializers()]
lrs = [i for i in m.graph.input if i.name == "lr"][0].type.tensor_type.shape.dim
lr = np.full([d.dim_value for d in lrs], 100, np.float32)
hrs = [i for i in m.graph.input if i.name == "hr"][0].type.tensor_type.shape.dim
hr = np.full([d.dim_value for d in hrs], 110, np.float32)
import time
for k in range(6):
    feeds = {"lr": lr, "hr": hr, "learning_rate": np.array(1e-4, np.float32), "step": np.array(k + 1, np.float32)}
    feeds.update({n: state[n] for n in names if n in state})
    t = time.time(); s.run(None, feeds); print("step", round(time.time() - t, 3))
prof = s.end_profiling()
ev = json.load(open(prof))
print("profile", prof)
by = collections.Counter(); cnt = collections.Counter()
for e in ev:
    if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
        op = e["args"]["op_name"]; by[op] += e["dur"]; cnt[op] += 1
tot = sum(by.values())
for op, d in by.most_common(15):
    print(f"{op:20s} {d/6/1000:8.1f} ms/step  {cnt[op]//6:5d} nodes  {100*d/tot:5.1f}%")
print("total kernel", tot / 6 / 1000, "ms/step")
