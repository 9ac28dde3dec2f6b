"""A conv's two gradients: srgraph's spellings, as `tune` timed them in ONNX Runtime (the
faster input gradient plus the faster weight gradient, from a spellings cache file) against
PyTorch's own convolution_backward (oneDNN; the better of NCHW and channels-last), on the
same shapes, 2 threads, median of 11 runs. The first conv of a network (3 input channels)
is left out: a train step needs no input gradient there.

    SRGRAPH_CACHE=/tmp/tc target/release/srgraph build study-wdsr-a-8 --train --tune -o /tmp/x --force
    /tmp/torchvenv/bin/python tools/oracles/conv_grads_vs_pytorch.py /tmp/tc/spellings/onnxruntime-cpu-2threads-*.json
"""
import json, sys, time, torch
torch.set_num_threads(2)
d = json.load(open(sys.argv[1]))
def med(f, n=11):
    ts = []
    for i in range(n + 2):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    ts = sorted(ts[2:]); return ts[len(ts)//2] * 1000
for e in d["convs"]:
    n, c, h, w = e["x"]; o, _, kh, kw = e["w"]; p = e["pads"][0]
    if c == 3: continue  # the first conv: no input gradient in a train step
    secs = dict((k, v) for k, v in e["seconds"])
    ours = secs[e["input"].replace("_", "-")] * 1000 + (secs.get(e["weight"], 0) * 1000)
    both = "shift-input" in secs
    mask = [True, both, False]
    best = None
    for cl in (False, True):
        fmt = torch.channels_last if cl else torch.contiguous_format
        x = torch.randn(n, c, h, w).contiguous(memory_format=fmt); wt = torch.randn(o, c, kh, kw).contiguous(memory_format=fmt)
        dy = torch.randn(n, o, h + 2*p - kh + 1, w + 2*p - kw + 1).contiguous(memory_format=fmt)
        t = med(lambda: torch.ops.aten.convolution_backward(dy, x, wt, None, [1, 1], [p, p], [1, 1], False, [0, 0], 1, mask))
        best = t if best is None else min(best, t)
    print(f"{c:4d}->{o:4d} {kh}x{kw} on {n}x{h}x{w}: srgraph {ours:7.2f} ms ({e['input']}, {e['weight']})  PyTorch {best:7.2f} ms  ratio {ours/best:.2f}{'' if both else '  (input gradient only)'}")
