#!/usr/bin/env python3
"""Forward convolutions: ONNX Runtime's Conv against PyTorch's F.conv2d (NCHW and channels-last) on the
seed networks' conv shapes, 2 threads, medians of 15 runs after 2 warm-ups.

    /tmp/torchvenv/bin/python tools/bench/conv_forward_vs_pytorch.py
"""
import torch, numpy as np, onnxruntime as ort, onnx, onnx.helper as h, time
from onnx import TensorProto as T
torch.set_num_threads(2)
so = ort.SessionOptions(); so.intra_op_num_threads = 2; so.log_severity_level = 3
def med(f, n=15):
    ts = []
    for i in range(n + 2):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    ts = sorted(ts[2:]); return ts[len(ts)//2] * 1000
for (n, c, o, hw, k) in [(16,25,32,24,3),(16,32,32,48,3),(16,32,128,48,3),(16,128,32,48,3),(16,64,64,48,3),(16,64,64,24,3),(16,32,192,24,1)]:
    x = np.random.randn(n, c, hw, hw).astype(np.float32); w = np.random.randn(o, c, k, k).astype(np.float32)
    g = h.make_graph([h.make_node("Conv", ["x", "w"], ["y"], pads=[k//2]*4)], "g", [h.make_tensor_value_info("x", T.FLOAT, list(x.shape))],
                     [h.make_tensor_value_info("y", T.FLOAT, None)], [onnx.numpy_helper.from_array(w, "w")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)]); m.ir_version = 8
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    t_ort = med(lambda: s.run(None, {"x": x}))
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    with torch.no_grad():
        t_t = med(lambda: torch.nn.functional.conv2d(xt, wt, padding=k//2))
        xc = xt.contiguous(memory_format=torch.channels_last); wc = wt.contiguous(memory_format=torch.channels_last)
        t_cl = med(lambda: torch.nn.functional.conv2d(xc, wc, padding=k//2))
    print(f"conv {k}x{k} {c}->{o} on {n}x{hw}x{hw}: ORT {t_ort:.2f} ms  torch NCHW {t_t:.2f}  channels-last {t_cl:.2f}  ORT/best {t_ort/min(t_t,t_cl):.2f}")
