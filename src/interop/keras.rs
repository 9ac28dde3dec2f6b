//! Keras `.h5` weights of krasserm/super-resolution (the code srgraph's study was
//! adapted from), read with the HDF5 library.
//!
//! `model.save_weights('x.h5')` stores each layer under `/<layer>/`, its weights at
//! the paths its `weight_names` attribute lists (`conv2d/kernel:0`), and the layers'
//! topological order in the root's `layer_names`. The names say little (Keras
//! numbers its layers, and WDSR's `WeightNormalization` hides the wrapped conv's
//! name), so the convs are taken in that order and matched to the network by their
//! shapes. Kernels are HWIO (srgraph's are OIHW), weight norm is `g` [out] with the
//! kernel as v, and TensorFlow's `depth_to_space` is DCR.

use super::StateDict;
use crate::ir::Tensor;
use anyhow::{bail, ensure, Context, Result};
use hdf5_metno as hdf5;
use std::path::Path;

/// One conv layer's weights, in OIHW.
struct ConvLayer {
    name: String,
    kernel: Tensor,
    bias: Tensor,
    g: Option<Tensor>,
}

impl ConvLayer {
    fn k(&self) -> usize {
        self.kernel.shape()[2]
    }

    fn out(&self) -> usize {
        self.kernel.shape()[0]
    }
}

/// The strings of an attribute, whether h5py wrote them variable-length (h5py 3) or fixed (h5py 2).
fn strings(loc: &hdf5::Location, name: &str) -> Result<Vec<String>> {
    let attr = loc.attr(name)?;
    if let Ok(v) = attr.read_raw::<hdf5::types::VarLenUnicode>() {
        return Ok(v.iter().map(|s| s.as_str().to_string()).collect());
    }
    if let Ok(v) = attr.read_raw::<hdf5::types::VarLenAscii>() {
        return Ok(v.iter().map(|s| s.as_str().to_string()).collect());
    }
    let v = attr
        .read_raw::<hdf5::types::FixedAscii<1024>>()
        .with_context(|| format!("its {name} attribute is not a list of strings"))?;
    Ok(v.iter().map(|s| s.as_str().to_string()).collect())
}

fn dataset(group: &hdf5::Group, path: &str) -> Result<Tensor> {
    let d = group
        .dataset(path)
        .with_context(|| format!("it lists {path} but has no such dataset"))?;
    let shape = d.shape();
    let data = d
        .read_raw::<f32>()
        .with_context(|| format!("{path} does not read as float32"))?;
    ensure!(
        data.len() == shape.iter().product::<usize>(),
        "{path} holds {} values for shape {shape:?}",
        data.len()
    );
    Ok(Tensor::f32(&shape, data))
}

/// HWIO to OIHW.
fn oihw(hwio: &Tensor) -> Result<Tensor> {
    let a = hwio.as_f32().context("a float kernel")?;
    ensure!(a.ndim() == 4, "a conv kernel is not 4-D: {:?}", a.shape());
    Ok(Tensor::F32(
        a.view()
            .permuted_axes(ndarray::IxDyn(&[3, 2, 0, 1]))
            .as_standard_layout()
            .into_owned(),
    ))
}

fn read_layers(path: &Path) -> Result<Vec<ConvLayer>> {
    let file = hdf5::File::open(path).context("the HDF5 library cannot open it")?;
    // `model.save()` keeps the weights under model_weights; `save_weights` at the root.
    let root: hdf5::Group = if file.link_exists("model_weights") {
        file.group("model_weights")?
    } else {
        (*file).clone()
    };
    let layers = strings(&root, "layer_names").context(
        "it is an HDF5 file without Keras's layer_names attribute: not weights saved by Keras's save_weights",
    )?;
    let mut convs = vec![];
    for layer in layers {
        let Ok(group) = root.group(&layer) else { continue };
        let Ok(names) = strings(&group, "weight_names") else {
            continue;
        };
        let find = |suffix: &str| names.iter().find(|n| n.ends_with(suffix)).cloned();
        let Some(kernel) = find("kernel:0") else { continue };
        let bias = find("bias:0").with_context(|| format!("layer {layer} has a kernel but no bias"))?;
        let kernel = oihw(&dataset(&group, &kernel)?)?;
        let bias = dataset(&group, &bias)?;
        let g = match find("/g:0") {
            Some(g) => {
                let g = dataset(&group, &g)?;
                let n = g.len();
                Some(Tensor::f32(
                    &[n, 1, 1, 1],
                    g.as_f32().context("float g")?.iter().copied().collect(),
                ))
            }
            None => None,
        };
        convs.push(ConvLayer {
            name: layer,
            kernel,
            bias,
            g,
        });
    }
    ensure!(!convs.is_empty(), "it holds no conv layers");
    Ok(convs)
}

/// The layers in srgraph's names: EDSR's head, blocks, after-body conv, upsampler and
/// last conv; WDSR's head, blocks, then the main tail and the 5x5 skip (in either order).
fn srgraph_names(convs: &[ConvLayer]) -> Result<Vec<String>> {
    let n = convs.len();
    let wdsr = convs.iter().any(|c| c.g.is_some());
    if !wdsr {
        let upsampler = convs.iter().filter(|c| c.name.contains("_scale_")).count();
        ensure!(
            (1..=2).contains(&upsampler) && n >= 4 + upsampler && (n - 3 - upsampler).is_multiple_of(2),
            "its {n} conv layers ({upsampler} named *_scale_*) are not krasserm's EDSR (head, 2 per block, the conv \
             after the blocks, 1 or 2 upsampling convs, the last conv)"
        );
        let blocks = (n - 3 - upsampler) / 2;
        let mut names = vec!["head.0".to_string()];
        for i in 0..blocks {
            names.push(format!("body.{i}.body.0"));
            names.push(format!("body.{i}.body.2"));
        }
        names.push(format!("body.{blocks}"));
        names.extend((0..upsampler).map(|j| format!("tail.0.{}", 2 * j)));
        names.push("tail.1".into());
        return Ok(names);
    }
    ensure!(
        convs.iter().all(|c| c.g.is_some()),
        "some of its conv layers have weight norm and some do not: not krasserm's WDSR"
    );
    ensure!(n >= 5, "its {n} conv layers are too few for WDSR");
    let per_block = if convs[1].k() == 1 { 3 } else { 2 };
    ensure!(
        (n - 3).is_multiple_of(per_block),
        "its {n} conv layers do not make WDSR's head, blocks of {per_block}, main and skip"
    );
    let mut names = vec!["head.0".to_string()];
    for i in 0..(n - 3) / per_block {
        let convs: &[usize] = if per_block == 3 { &[0, 2, 3] } else { &[0, 2] };
        names.extend(convs.iter().map(|k| format!("body.{i}.body.{k}")));
    }
    // The skip branch is the 5x5 conv; Keras lists it before or after the main tail.
    let (a, b) = (&convs[n - 2], &convs[n - 1]);
    ensure!(
        a.out() == b.out() && (a.k() == 5) != (b.k() == 5),
        "its last two conv layers are not WDSR's main tail (3x3) and skip (5x5)"
    );
    if a.k() == 5 {
        names.extend(["skip.0".to_string(), "tail.0".to_string()]);
    } else {
        names.extend(["tail.0".to_string(), "skip.0".to_string()]);
    }
    Ok(names)
}

/// A Keras weights file as a state dict under srgraph's names.
pub fn read(path: &Path) -> Result<StateDict> {
    let convs = crate::util::guarded("HDF5", "read", || read_layers(path))?;
    let names = srgraph_names(&convs)?;
    let mut tensors = vec![];
    for (c, name) in convs.into_iter().zip(names) {
        let out = c.out();
        if c.bias.len() != out {
            bail!("{}: its bias has {} values for {out} channels", c.name, c.bias.len());
        }
        match c.g {
            Some(g) => {
                ensure!(
                    g.len() == out,
                    "{}: g has {} values for {out} channels",
                    c.name,
                    g.len()
                );
                tensors.push((format!("{name}.weight_v"), c.kernel));
                tensors.push((format!("{name}.weight_g"), g));
            }
            None => tensors.push((format!("{name}.weight"), c.kernel)),
        }
        tensors.push((format!("{name}.bias"), c.bias));
    }
    Ok(StateDict {
        format: "Keras HDF5",
        wrapper: None,
        tensors,
        config: None,
        steps: None,
        recorded: crate::onnx::Metadata::new(),
        layout: Some(super::Layout::Keras),
    })
}
