#!/usr/bin/env python3
"""Write Keras .h5 weight fixtures with the REAL krasserm/super-resolution code.

For each case this script builds a tiny EDSR / WDSR-A / WDSR-B with the
reference implementation itself (model/common.py, model/edsr.py and
model/wdsr.py of https://github.com/krasserm/super-resolution, the code
srgraph's study was adapted from), moves every trainable weight away from its
initialisation with a fixed numpy seed, runs it on a real 12x12 crop of Set5
"baby" (LR x2) and writes into tests/fixtures/interop/keras/

  * <case>.h5: `model.save_weights("<case>.h5")`, i.e. the HDF5 weight file
    Keras writes (what users of that repository have on disk), and
  * <case>.out.npy: TensorFlow's own output of `model(x)` (not `resolve`, so
    neither clipped nor rounded), float32, transposed to NCHW
    [1, 3, 12*s, 12*s], in 0..255 units,

together with manifest.json, which the Rust tests read.  manifest.json also
lists, per file, every HDF5 dataset path with its shape (in the order h5py's
visititems walks the file, i.e. HDF5's name order), the root attribute
`layer_names` and each layer group's `weight_names` attribute (the order Keras
itself loads by).

Finally it reloads every .h5 with `load_weights` into a freshly built (and
differently initialised) reference model and checks that the output equals
the saved .npy exactly, and it shows that two plausible loader mistakes give
clearly different outputs: reading the weights for a CRD pixel shuffle
(PyTorch's PixelShuffle) instead of TensorFlow's DCR `tf.nn.depth_to_space`,
and ignoring WeightNormalization's g (using v as the kernel).

Nothing here is needed by CI: the fixtures are committed, and TensorFlow is
only needed to regenerate them.

Reference code
--------------
model/__init__.py, model/common.py, model/edsr.py and model/wdsr.py are read
with `git show HEAD:...` from the (bare) clone given with --repo-git, written
to a temporary folder and imported from there as the package `model` (they are
never copied into this repository).  The commit (git rev-parse HEAD) and the
sha256 of each file are recorded in manifest.json; HEAD was
179320c5cb005f57cd7e126cd8b3b669c793585a.

Aliasing (the model code itself is unchanged)
---------------------------------------------
The reference code imports `tensorflow.python.keras.layers` and
`tensorflow.python.keras.models`.  In TensorFlow 2.15 that package still
exists, but it is a frozen legacy copy of Keras, no longer the `tf.keras`
(Keras 2.15) that tensorflow-addons builds on: tfa's WeightNormalization
rejects its Conv2D ("not a supported layer type").  Back when the repository
was written (TF 2.3) the two were the same module, so before importing the
reference code this script sets

    sys.modules["tensorflow.python.keras.layers"] = tf.keras.layers
    sys.modules["tensorflow.python.keras.models"] = tf.keras.models

for every architecture (EDSR too, so that all files come from the same Keras).
The manifest's "aliases" says so.

Weights
-------
After building, each model is called once on the input: as in training, this
makes every WeightNormalization (data_init=False) set g = ||v|| and its
`initialized` flag to True.  Then every trainable weight (kernels, biases,
WeightNormalization's g; v is the wrapped Conv2D's kernel) becomes

    w + randn * (0.2*|w| + 0.05*(std(w) + 0.01))

with numpy's RandomState(seed); biases, which Keras initialises to zeros (so
the formula would leave them at ~5e-4), get randn * 0.05 instead.  g then
clearly differs from ||v|| (checked).  The non-trainable `initialized` flag is
saved as True, as in any trained model (a file with False would make Keras
overwrite g with ||v|| on the first call).

Environment (throw-away, never the project's own .venv)
-------------------------------------------------------

    python3 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install 'tensorflow-cpu==2.15.*' \\
        'tensorflow-addons==0.23.0' h5py 'numpy<2' pillow
    # the fixtures in the repository were made with Python 3.11,
    # tensorflow-cpu 2.15.1, tensorflow-addons 0.23.0, h5py 3.16.0,
    # numpy 1.26.4 (tensorflow-addons is end-of-life; 0.23.0 is its last
    # release and supports TF 2.13-2.15)

Run (from the repository root):

    /tmp/tfvenv/bin/python tools/oracles/keras_fixtures.py --data /work/shared/data \\
        --out tests/fixtures/interop/keras \\
        --repo-git /work/.mirror/krasserm+super-resolution/repo

Output is deterministic (fixed seeds, oneDNN off, 2 CPU threads): running it
twice gives byte-identical files.
"""

import os

# Before TensorFlow is imported: quiet logs, no oneDNN (plain Eigen kernels,
# which keeps the numbers reproducible across CPUs).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"

import argparse  # noqa: E402
import collections  # noqa: E402
import hashlib  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

warnings.filterwarnings("ignore", module="tensorflow_addons")
import tensorflow as tf  # noqa: E402

PICTURE = "Set5/LR_bicubic/X2/babyx2.png"
TOP, LEFT, SIZE = 100, 100, 12
REF_FILES = ["model/__init__.py", "model/common.py", "model/edsr.py", "model/wdsr.py"]
ALIASES = {
    "tensorflow.python.keras.layers": "tf.keras.layers",
    "tensorflow.python.keras.models": "tf.keras.models",
}

# expansion: res_block_expansion (WDSR only); res_scale: res_block_scaling
# (None in the reference code means no scaling, i.e. 1).
CASES = [
    dict(id="edsr_x2_b2f8", arch="edsr", scale=2, blocks=2, filters=8,
         expansion=None, res_scale=None, seed=5201),
    dict(id="edsr_x3_b2f10_rs0.1", arch="edsr", scale=3, blocks=2, filters=10,
         expansion=None, res_scale=0.1, seed=5301),
    dict(id="edsr_x4_b2f8", arch="edsr", scale=4, blocks=2, filters=8,
         expansion=None, res_scale=None, seed=5401),
    dict(id="wdsr-a_x2_b2f8e4", arch="wdsr-a", scale=2, blocks=2, filters=8,
         expansion=4, res_scale=None, seed=6201),  # expansion 4: the code's default
    dict(id="wdsr-a_x4_b2f8e2", arch="wdsr-a", scale=4, blocks=2, filters=8,
         expansion=2, res_scale=None, seed=6401),
    # 3 blocks: 12 WeightNormalization layers, so weight_normalization_10 and _11
    # (the main and skip convs, told apart only by order and kernel size) sort
    # before weight_normalization_2 in HDF5's name order.
    dict(id="wdsr-b_x3_b3f10e6", arch="wdsr-b", scale=3, blocks=3, filters=10,
         expansion=6, res_scale=None, seed=7301),  # expansion 6: the code's default
    dict(id="wdsr-b_x2_b2f8e6_rs0.1", arch="wdsr-b", scale=2, blocks=2, filters=8,
         expansion=6, res_scale=0.1, seed=7201),
]


# --------------------------------------------------------------------------
# Loading the reference code
# --------------------------------------------------------------------------

def git(git_dir, *args):
    return subprocess.run(["git", "--git-dir", git_dir, *args], check=True,
                          capture_output=True).stdout


def load_reference(git_dir, tmp):
    """Import the repository's `model` package from HEAD, unchanged."""
    hashes = collections.OrderedDict()
    for path in REF_FILES:
        blob = git(git_dir, "show", f"HEAD:{path}")
        out = os.path.join(tmp, path)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(blob)
        hashes[path] = hashlib.sha256(blob).hexdigest()

    # tensorflow.python.keras is a separate legacy Keras in TF 2.15: point the
    # reference code's imports at tf.keras (see the module docstring).
    legacy_is_tf_keras = None
    try:
        legacy = importlib.import_module("tensorflow.python.keras.layers")
        legacy_is_tf_keras = legacy.Conv2D is tf.keras.layers.Conv2D
    except ImportError:
        legacy = None
    sys.modules["tensorflow.python.keras.layers"] = tf.keras.layers
    sys.modules["tensorflow.python.keras.models"] = tf.keras.models

    for name in [m for m in sys.modules if m == "model" or m.startswith("model.")]:
        del sys.modules[name]
    sys.path.insert(0, tmp)
    try:
        edsr = importlib.import_module("model.edsr")
        wdsr = importlib.import_module("model.wdsr")
        common = importlib.import_module("model.common")
    finally:
        sys.path.remove(tmp)
    info = collections.OrderedDict([
        ("repository", "https://github.com/krasserm/super-resolution"),
        ("commit", git(git_dir, "rev-parse", "HEAD").decode().strip()),
        ("sha256", hashes),
    ])
    alias_note = collections.OrderedDict([
        ("aliases", ALIASES),
        ("why", "the reference code imports tensorflow.python.keras.{layers,models}; in "
                f"TensorFlow {tf.__version__} that package "
                + ("is missing" if legacy is None else
                   "still exists but is a separate frozen legacy Keras "
                   f"(its Conv2D is tf.keras.layers.Conv2D: {legacy_is_tf_keras}), and "
                   "tensorflow-addons' WeightNormalization rejects its layers")
                + "; in TF 2.3, when the code was written, it was tf.keras itself. The "
                  "two modules are aliased in sys.modules to tf.keras before the reference "
                  "code is imported, for every architecture; the model code is unchanged."),
    ])
    return edsr, wdsr, common, info, alias_note


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

def build(ref, case, init_seed):
    """A fresh reference model (fresh Keras session, so layer names start at
    conv2d / weight_normalization as in a user's own script)."""
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(init_seed)
    edsr, wdsr = ref
    s, b, f = case["scale"], case["blocks"], case["filters"]
    if case["arch"] == "edsr":
        return edsr.edsr(s, num_filters=f, num_res_blocks=b,
                         res_block_scaling=case["res_scale"])
    fn = wdsr.wdsr_a if case["arch"] == "wdsr-a" else wdsr.wdsr_b
    return fn(s, num_filters=f, num_res_blocks=b,
              res_block_expansion=case["expansion"],
              res_block_scaling=case["res_scale"])


def run(model, x):
    """TensorFlow's output for an NHWC float32 0..255 input, as NCHW."""
    y = model(tf.constant(x), training=False).numpy()
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2)).astype(np.float32)


def wn_layers(model):
    return [la for la in model.layers if hasattr(la, "g") and hasattr(la, "v")]


def perturb(model, seed):
    """Every trainable weight moves away from its value (see the docstring)."""
    rng = np.random.RandomState(seed)
    for w in model.trainable_weights:
        val = w.numpy().astype(np.float64)
        noise = rng.standard_normal(val.shape)
        if w.name.endswith("bias:0"):
            new = val + noise * 0.05
        else:
            new = val + noise * (0.2 * np.abs(val) + 0.05 * (val.std() + 0.01))
        w.assign(new.astype(np.float32))


def v_norm(layer):
    v = layer.v.numpy()
    return np.sqrt((v.reshape(-1, v.shape[-1]).astype(np.float64) ** 2).sum(0))


# --------------------------------------------------------------------------
# The HDF5 file as written
# --------------------------------------------------------------------------

def _s(a):
    return a.decode("utf8") if isinstance(a, bytes) else str(a)


def describe_h5(path):
    """Dataset paths and shapes (visititems order), layer_names, weight_names."""
    datasets, kinds = [], collections.OrderedDict()
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                datasets.append([name, list(obj.shape)])
                htype = obj.id.get_type()
                kind = obj.dtype.str
                if isinstance(htype, h5py.h5t.TypeEnumID):
                    members = sorted((htype.enum_valueof(htype.get_member_name(i)),
                                      _s(htype.get_member_name(i)))
                                     for i in range(htype.get_nmembers()))
                    kind += " (HDF5 enum of int{} {})".format(
                        8 * htype.get_size(), ", ".join(f"{n}={v}" for v, n in members))
                kinds[name] = (kind, obj.chunks, obj.compression)
        f.visititems(visit)
        for name, _ in datasets:
            if name.endswith("/initialized:0"):
                assert f[name][()] == True, (path, name)  # noqa: E712
        layer_names = [_s(n) for n in f.attrs["layer_names"]]
        weight_names = collections.OrderedDict(
            (ln, [_s(n) for n in f[ln].attrs["weight_names"]]) for ln in layer_names)
        attr_kinds = collections.OrderedDict()
        attr_kinds["/ layer_names"] = attr_kind(f, "layer_names")
        for ln in layer_names:
            key = "<layer> weight_names ({})".format(
                "with weights" if weight_names[ln] else "without weights")
            attr_kinds.setdefault(key, attr_kind(f[ln], "weight_names"))
        for k in f.attrs:
            if k != "layer_names":
                attr_kinds["/ " + k] = attr_kind(f, k)
        extra = sorted(set(f.keys()) - set(layer_names))
        for name in extra:
            assert not f[name].attrs["weight_names"].size and not len(f[name]), name
        attr_kinds["groups not in layer_names (no datasets, empty weight_names)"] = extra
        root_attrs = collections.OrderedDict(
            (k, _s(v) if not hasattr(v, "__len__") or isinstance(v, (bytes, str))
             else [_s(i) for i in v]) for k, v in f.attrs.items())
    with open(path, "rb") as fh:
        head = fh.read(9)
    assert head[:8] == b"\x89HDF\r\n\x1a\n", head
    return datasets, layer_names, weight_names, root_attrs, kinds, head[8], attr_kinds


def attr_kind(obj, name):
    """How h5py wrote an attribute: string kind or numeric type, and shape."""
    a = obj.attrs.get_id(name)
    t = a.get_type()
    if isinstance(t, h5py.h5t.TypeStringID):
        kind = "variable-length string" if t.is_variable_str() else \
            f"fixed-length string ({t.get_size()} bytes)"
        kind += " cset {}".format({0: "ASCII", 1: "UTF-8"}.get(t.get_cset(), t.get_cset()))
    else:
        kind = f"{type(t).__name__} ({t.get_size()} bytes) dtype {obj.attrs[name].dtype}"
    return f"{kind}, shape {list(a.shape)}"


# --------------------------------------------------------------------------
# Loader mistakes, emulated on the reference model
# --------------------------------------------------------------------------

def crd_permutation(channels_out, r):
    """perm with DCR channel (i*r+j)*C + c  <-  CRD channel c*r*r + i*r + j."""
    c_img = channels_out // (r * r)
    perm = np.empty(channels_out, dtype=np.int64)
    for c in range(c_img):
        for i in range(r):
            for j in range(r):
                perm[(i * r + j) * c_img + c] = c * r * r + i * r + j
    return perm


def shuffle_convs(model, case):
    """(layer, factor) for every conv whose output goes into depth_to_space."""
    s = case["scale"]
    names = {la.name: la for la in model.layers}
    if case["arch"] == "edsr":
        if s == 4:
            return [(names["conv2d_1_scale_2"], 2), (names["conv2d_2_scale_2"], 2)]
        return [(names[f"conv2d_1_scale_{s}"], s)]
    out = []
    for la in wn_layers(model):
        if la.layer.name in (f"conv2d_main_scale_{s}", f"conv2d_skip_scale_{s}"):
            out.append((la, s))
    assert len(out) == 2
    return out


def as_crd_loader(model, case):
    """Make the TF model compute what a loader gets that keeps these weights
    but follows them with a CRD pixel shuffle (PyTorch's nn.PixelShuffle)."""
    for la, r in shuffle_convs(model, case):
        conv = la.layer if hasattr(la, "layer") else la
        perm = crd_permutation(conv.bias.shape[0], r)
        kernel = la.v if hasattr(la, "v") else conv.kernel
        kernel.assign(tf.gather(kernel, perm, axis=3))
        conv.bias.assign(tf.gather(conv.bias, perm))
        if hasattr(la, "g"):
            la.g.assign(tf.gather(la.g, perm))


def as_g_ignoring_loader(model):
    """w = v (g replaced by ||v||)."""
    for la in wn_layers(model):
        la.g.assign(v_norm(la).astype(np.float32))


def check_dcr():
    """tf.nn.depth_to_space is DCR: out[c, i, j] = in[(i*r + j)*C + c]."""
    r, c_img = 2, 3
    x = np.arange(r * r * c_img, dtype=np.float32).reshape(1, 1, 1, -1)
    y = tf.nn.depth_to_space(x, r).numpy()[0]  # [r, r, C]
    for c in range(c_img):
        for i in range(r):
            for j in range(r):
                assert y[i, j, c] == (i * r + j) * c_img + c
    perm = crd_permutation(r * r * c_img, r)
    assert sorted(perm.tolist()) == list(range(r * r * c_img))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder holding Set5/")
    ap.add_argument("--out", required=True, help="fixture folder to write")
    ap.add_argument("--repo-git", required=True,
                    help="git dir of krasserm/super-resolution (a bare clone works)")
    args = ap.parse_args()

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    tf.keras.utils.set_random_seed(0)
    import keras
    import tensorflow_addons as tfa

    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="keras_ref_")
    try:
        edsr, wdsr, common, ref_info, alias_note = load_reference(args.repo_git, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ref = (edsr, wdsr)
    print(f"tensorflow {tf.__version__}, tensorflow-addons {tfa.__version__}, "
          f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}), "
          f"reference HEAD {ref_info['commit']}")
    check_dcr()

    img = np.asarray(Image.open(os.path.join(args.data, PICTURE)).convert("RGB"))
    crop = img[TOP:TOP + SIZE, LEFT:LEFT + SIZE]  # HWC uint8
    x = np.ascontiguousarray(crop[None]).astype(np.float32)  # NHWC 0..255
    assert x.shape == (1, SIZE, SIZE, 3)

    entries, written, checks = [], [], []
    hdf5_info, dataset_kinds, attribute_kinds = None, set(), collections.OrderedDict()
    for case in CASES:
        s = case["scale"]
        model = build(ref, case, case["seed"])
        run(model, x)  # first call: WeightNormalization sets g = ||v||, initialized = True
        perturb(model, case["seed"])
        for la in wn_layers(model):
            assert bool(la._initialized.numpy())
            g, n = la.g.numpy(), v_norm(la)
            assert np.abs(g - n).max() > 0.05 * n.max(), (la.name, g, n)
        for w in model.weights:  # kernels are HWIO
            if w.name.endswith("kernel:0"):
                assert w.shape.rank == 4 and w.shape[0] == w.shape[1], w
        y = run(model, x)
        assert y.shape == (1, 3, SIZE * s, SIZE * s), y.shape
        assert np.isfinite(y).all()

        h5_name, ref_name = case["id"] + ".h5", case["id"] + ".out.npy"
        h5_path = os.path.join(args.out, h5_name)
        if os.path.exists(h5_path):
            os.remove(h5_path)
        model.save_weights(h5_path)
        np.save(os.path.join(args.out, ref_name), y)
        written += [h5_name, ref_name]

        datasets, layer_names, weight_names, root_attrs, kinds, sb, attr_kinds = \
            describe_h5(h5_path)
        # Every model weight is in the file, exactly once.
        assert len(datasets) == len(model.weights), (len(datasets), len(model.weights))
        assert sorted(p for p, _ in datasets) == sorted(
            f"{ln}/{wn}" for ln in layer_names for wn in weight_names[ln])
        info = collections.OrderedDict([
            ("superblock_version", sb),
            ("root_attributes", {k: v for k, v in root_attrs.items() if k != "layer_names"}),
        ])
        if hdf5_info is None:
            hdf5_info = info
        assert info == hdf5_info, (info, hdf5_info)
        dataset_kinds.update(f"{k} chunks={c} compression={z}" for k, c, z in kinds.values())
        for k, v in attr_kinds.items():
            if k.startswith("/ layer_names") or k.endswith("(with weights)"):
                v = v.rsplit(", shape", 1)[0]
            assert attribute_kinds.setdefault(k, v) == v, (k, v, attribute_kinds[k])

        res_scale = 1.0 if case["res_scale"] is None else case["res_scale"]
        entries.append(collections.OrderedDict([
            ("file", h5_name),
            ("reference", ref_name),
            ("arch", case["arch"]),
            ("scale", s),
            ("blocks", case["blocks"]),
            ("filters", case["filters"]),
            ("expansion", case["expansion"]),
            ("low_rank", int(case["filters"] * 0.8) if case["arch"] == "wdsr-b" else None),
            ("res_scale", res_scale),
            ("flags", [] if res_scale == 1.0 else ["--res-scale", repr(res_scale)]),
            ("input", {"picture": PICTURE, "top": TOP, "left": LEFT, "size": SIZE}),
            ("weights", datasets),
            ("layer_names", layer_names),
            ("weight_names", {ln: wn for ln, wn in weight_names.items() if wn}),
            ("max_abs_output", float(np.abs(y).max())),
            ("seed", case["seed"]),
        ]))

        # ---- verification: reload into a fresh, differently initialised model ----
        fresh = build(ref, case, case["seed"] + 1000)
        fresh.load_weights(h5_path)
        y2 = run(fresh, x)
        assert y2.tobytes() == y.tobytes(), \
            f"{h5_name}: reload differs by {np.abs(y2 - y).max()}"
        bad = build(ref, case, case["seed"] + 1000)
        bad.load_weights(h5_path)
        as_crd_loader(bad, case)
        d_crd = float(np.abs(run(bad, x) - y).max())
        d_g = None
        if case["arch"] != "edsr":
            bad = build(ref, case, case["seed"] + 1000)
            bad.load_weights(h5_path)
            as_g_ignoring_loader(bad)
            d_g = float(np.abs(run(bad, x) - y).max())
        assert d_crd > 1.0 and (d_g is None or d_g > 1.0), (d_crd, d_g)
        checks.append((case["id"], float(np.abs(y).max()), d_crd, d_g))

    hdf5_info["dataset_kinds"] = sorted(dataset_kinds)
    hdf5_info["attributes"] = attribute_kinds
    hdf5_info["note"] = (
        "h5py >= 3 writes Keras' lists of bytes as variable-length strings; files "
        "written with h5py 2.x (TF 2.3 era) most likely hold fixed-length strings instead "
        "(numpy S arrays; not checked here). A "
        "layer without weights has weight_names = an empty float64 array")
    manifest = collections.OrderedDict([
        ("generator", "tools/oracles/keras_fixtures.py"),
        ("tensorflow", tf.__version__),
        ("tensorflow_addons", tfa.__version__),
        ("keras", keras.__version__),
        ("h5py", h5py.__version__),
        ("hdf5", h5py.version.hdf5_version),
        ("numpy", np.__version__),
        ("python", platform.python_version()),
        ("reference", ref_info),
        ("aliasing", alias_note),
        ("saved_with", "model.save_weights('<case>.h5') (Keras HDF5 weight format; "
                       "load order is layer_names, then each group's weight_names)"),
        ("hdf5_layout", hdf5_info),
        ("weight_notes", [
            "kernels are HWIO [kh, kw, in, out]; biases [out]",
            "WeightNormalization (tfa, data_init=False): w = g * v / ||v|| per output "
            "channel (norm over kh, kw, in). Its group holds g:0 [out], kernel:0 (= v, "
            "the wrapped Conv2D's kernel, HWIO), bias:0 [out] and initialized:0 (a scalar "
            "bool stored as an HDF5 enum, True in every file), all named after the "
            "wrapper (weight_normalization_N/...): the wrapped Conv2D's own name, e.g. "
            "conv2d_main_scale_3 / conv2d_skip_scale_3, appears nowhere in the file",
            "WDSR main vs skip conv: the last two WeightNormalization layers in "
            "layer_names, main (3x3, 3*s*s out) then skip (5x5 on the normalised input)",
            "pixel shuffle is tf.nn.depth_to_space (DCR): out[c, i, j] = in[(i*r + j)*C + c]",
            "'weights' lists datasets in h5py visititems order, which is HDF5's "
            "name order (conv2d_1_scale_2 between conv2d_1 and conv2d_2; "
            "weight_normalization_10 before weight_normalization_2), not model order; "
            "'layer_names' (root attribute, model order, layers without weights "
            "included) and each group's 'weight_names' attribute are what Keras loads by",
            "dataset path = <layer name>/<weight name>, the weight name itself "
            "containing a '/', e.g. conv2d/conv2d/kernel:0",
        ]),
        ("normalisation", "inside the model: x' = (x - DIV2K_RGB_MEAN) / 127.5 with "
                          "DIV2K_RGB_MEAN = [0.4488, 0.4371, 0.4040] * 255; "
                          "out = y * 127.5 + DIV2K_RGB_MEAN"),
        ("perturbation", "after a first call (g = ||v||, initialized = True) every "
                         "trainable weight w += randn * (0.2*|w| + 0.05*(std(w)+0.01)), "
                         "biases (zero-initialised) += randn * 0.05; numpy RandomState(seed)"),
        ("input", {"picture": PICTURE, "top": TOP, "left": LEFT, "size": SIZE,
                   "layout": "float32 NHWC [1,12,12,3] fed to Keras, RGB, 0..255"}),
        ("output", "model(x) (not resolve: no clip, no round), transposed to float32 "
                   "NCHW [1,3,12*scale,12*scale] .npy, 0..255 units"),
        ("cases", entries),
    ])
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    written.append("manifest.json")

    print()
    print(f"{'case':<26} {'max|y|':>8} {'CRD loader':>11} {'g ignored':>10}  (max abs diff)")
    for cid, m, d_crd, d_g in checks:
        dg = "-" if d_g is None else f"{d_g:.3f}"
        print(f"{cid:<26} {m:>8.2f} {d_crd:>11.3f} {dg:>10}")
    print("every .h5 reloaded into a fresh reference model reproduces its .npy exactly")
    print()
    print(f"{'file':<34} {'bytes':>8}")
    total = 0
    for name in written:
        n = os.path.getsize(os.path.join(args.out, name))
        total += n
        print(f"{name:<34} {n:>8}")
    print(f"{'total (' + str(len(written)) + ' files)':<34} {total:>8}")


if __name__ == "__main__":
    main()
