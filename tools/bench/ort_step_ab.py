#!/usr/bin/env python3
"""Side-by-side checks of srgraph's training graphs in ONNX Runtime (CPU, 2 threads), runs
interleaved in one process, medians after 2 warm-up runs:

  graphs A.onnx B.onnx ...   time each graph (a train step, or a gradients graph: Adam's
                             cost is the difference, `srgraph build --train` writes both)
  pattern STEP.onnx          time one train step with ONNX Runtime's memory pattern on and
                             off, and each one's peak resident memory in a process of its own

    .venv/bin/python tools/bench/ort_step_ab.py graphs DIR/train_step.onnx DIR/gradients.onnx
    .venv/bin/python tools/bench/ort_step_ab.py pattern DIR/train_step.onnx
"""
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

RUNS = 12


def session(path, pattern=True):
    """A session with the state fed as inputs (as srgraph's trainer binds it), and its feeds."""
    m = onnx.load(path)
    values = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    state = {i.name for i in m.graph.input} & set(values)
    kept = [t for t in m.graph.initializer if t.name not in state]
    del m.graph.initializer[:]
    m.graph.initializer.extend(kept)
    o = ort.SessionOptions()
    o.intra_op_num_threads = 2
    o.log_severity_level = 3
    o.enable_mem_pattern = pattern
    s = ort.InferenceSession(m.SerializeToString(), o, providers=["CPUExecutionProvider"])

    def shape(name):
        return [d.dim_value for d in next(i for i in m.graph.input if i.name == name).type.tensor_type.shape.dim]

    feeds = {"lr": np.full(shape("lr"), 100, np.float32), "hr": np.full(shape("hr"), 110, np.float32)}
    names = {i.name for i in m.graph.input}
    if "step" in names:
        feeds.update(learning_rate=np.array(1e-4, np.float32), step=np.array(1, np.float32))
    feeds.update({n: values[n] for n in state})
    return s, feeds


def interleaved(sessions):
    times = [[] for _ in sessions]
    for _ in range(RUNS):
        for (s, feeds), t in zip(sessions, times):
            start = time.perf_counter()
            s.run(None, feeds)
            t.append(time.perf_counter() - start)
    return [sorted(t[2:])[len(t[2:]) // 2] for t in times]


def main():
    mode, paths = sys.argv[1], sys.argv[2:]
    if mode == "graphs":
        for p, t in zip(paths, interleaved([session(p) for p in paths])):
            print(f"{p}: median {t * 1000:.1f} ms")
    elif mode == "pattern":
        on, off = interleaved([session(paths[0], True), session(paths[0], False)])
        print(f"memory pattern on {on * 1000:.1f} ms, off {off * 1000:.1f} ms, off/on {off / on:.3f}")
        for pattern in ("on", "off"):
            out = subprocess.run([sys.executable, __file__, "peak", paths[0], pattern],
                                 check=True, capture_output=True, text=True).stdout.strip()
            print(f"memory pattern {pattern}: peak resident {out} MB")
    elif mode == "peak":  # a child of `pattern`: four steps, then this process's VmHWM
        s, feeds = session(paths[0], paths[1] == "on")
        for _ in range(4):
            s.run(None, feeds)
        print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) // 1024)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
