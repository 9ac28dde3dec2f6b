//! Weights in and out: the reference implementations' checkpoints (PyTorch's zip
//! and legacy files, safetensors) and srgraph's own (run checkpoints, ONNX Runtime
//! training checkpoints, inference models) read into one state dict; the
//! architecture and its hyperparameters detected from key names and shapes
//! (`layouts`); and the way back, a safetensors file under a reference layout's
//! names (`export`).

mod export;
#[cfg(feature = "keras")]
mod keras;
mod layouts;
mod pickle;
mod torch;
mod unfold;

pub use export::{export_state, to_safetensors, ExportLayout, Exported};
pub use layouts::{detect, Detected, Hints, Layout};
pub use unfold::training_values_of_model;

use crate::ir::Tensor;
use crate::models::ModelConfig;
use crate::onnx::{Metadata, Model, Provenance};
use anyhow::{bail, Context, Result};

/// A checkpoint's tree as far as srgraph cares: tensors (as f32), dictionaries, and
/// anything else by a short description.
#[derive(Clone, Debug)]
pub enum Value {
    Tensor(Tensor),
    Dict(Vec<(String, Value)>),
    Other(String),
}

/// A checkpoint read from its bytes: the tensors by name, where they were found, and
/// what srgraph's own files say about the network.
pub struct StateDict {
    /// "PyTorch zip", "PyTorch legacy", "safetensors", "srgraph checkpoint", ...
    pub format: &'static str,
    /// Where the tensors were in the file (`params_ema`, `state_dict`, `module.`), if not at its top.
    pub wrapper: Option<String>,
    pub tensors: Vec<(String, Tensor)>,
    /// The configuration recorded by srgraph, for its own files.
    pub config: Option<ModelConfig>,
    /// Training steps the file records, if any.
    pub steps: Option<u64>,
    /// The metadata a safetensors file carries (srgraph's export writes its configuration there).
    pub recorded: Metadata,
    /// The layout, when the format alone says it (Keras).
    pub layout: Option<Layout>,
}

/// Wrappers that hold a state dict, in order of preference: BasicSR keeps the EMA
/// weights in `params_ema` beside `params`, and they are the better ones.
const WRAPPERS: [&str; 5] = ["params_ema", "params", "state_dict", "model", "net"];

/// Reads any checkpoint srgraph knows, by its first bytes rather than its name.
pub fn read_state(bytes: &[u8], source: &str) -> Result<StateDict> {
    let fail = |e: anyhow::Error| e.context(format!("{source} is not a checkpoint srgraph can read"));
    if bytes.starts_with(b"PK\x03\x04") {
        let tree = crate::util::guarded("zip", "read", || torch::read_zip(bytes)).map_err(fail)?;
        return from_tree(tree, "PyTorch zip", source);
    }
    if bytes.starts_with(&torch::LEGACY_MAGIC) {
        let tree = torch::read_legacy(bytes).map_err(fail)?;
        return from_tree(tree, "PyTorch legacy", source);
    }
    if looks_like_safetensors(bytes) {
        return read_safetensors(bytes).map_err(fail);
    }
    if bytes.starts_with(HDF5_MAGIC) {
        bail!("{source} is an HDF5 file: Keras weights are read from their file, by `srgraph import`");
    }
    if bytes.get(4..8) == Some(b"ODTC") {
        return read_ort_checkpoint(bytes, source);
    }
    if let Ok(proto) = <crate::onnx::pb::ModelProto as prost::Message>::decode(bytes) {
        if proto.graph.is_some() {
            return read_srgraph_model(bytes, &proto, source);
        }
    }
    bail!(
        "{source} is not a checkpoint srgraph can read: it is none of a PyTorch .pth/.pt (zip or legacy), a \
         .safetensors file, an ONNX Runtime training checkpoint or an srgraph .onnx"
    )
}

/// The signature an HDF5 file (Keras's .h5) starts with.
const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

#[cfg(feature = "keras")]
fn read_keras(path: &std::path::Path) -> Result<StateDict> {
    keras::read(path)
}

#[cfg(not(feature = "keras"))]
fn read_keras(_: &std::path::Path) -> Result<StateDict> {
    bail!(
        "it is an HDF5 file (Keras .h5 weights), and this srgraph was built without the keras feature: build it with \
         `cargo install --path . --features keras`, which links the HDF5 library (tools/setup/setup-hdf5.sh installs it)"
    )
}

/// safetensors: an 8-byte little-endian header length, then a JSON header.
fn looks_like_safetensors(bytes: &[u8]) -> bool {
    let Some(n) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    else {
        return false;
    };
    n >= 2 && n <= (bytes.len() - 8) as u64 && bytes[8] == b'{'
}

fn read_safetensors(bytes: &[u8]) -> Result<StateDict> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tensors = vec![];
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    for name in names {
        let view = st.tensor(&name).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let data: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4")))
                .collect(),
            safetensors::Dtype::F16 => view
                .data()
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes(b.try_into().expect("2")).to_f32())
                .collect(),
            safetensors::Dtype::BF16 => view
                .data()
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes(b.try_into().expect("2")).to_f32())
                .collect(),
            safetensors::Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8")) as f32)
                .collect(),
            _ => continue,
        };
        tensors.push((name, Tensor::f32(view.shape(), data)));
    }
    let (tensors, wrapper) = strip_module_prefix(tensors, None);
    let recorded = safetensors::SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().clone())
        .map(|m| {
            let mut v: Vec<(String, String)> = m.into_iter().collect();
            v.sort();
            Metadata::from(v)
        })
        .unwrap_or_default();
    Ok(StateDict {
        format: "safetensors",
        wrapper,
        tensors,
        config: None,
        steps: None,
        recorded,
        layout: None,
    })
}

fn read_ort_checkpoint(bytes: &[u8], source: &str) -> Result<StateDict> {
    let ckpt = crate::ortapi::checkpoint::read(bytes)
        .map_err(|e| anyhow::anyhow!("{source} is not a readable training checkpoint: {e}"))?;
    let tensors = ckpt
        .trainable
        .iter()
        .chain(&ckpt.frozen)
        .map(|t| {
            let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
            let n: usize = dims.iter().product();
            anyhow::ensure!(
                n == t.data.len(),
                "{source}: {} holds {} values for shape {dims:?}",
                t.name,
                t.data.len()
            );
            Ok((t.name.clone(), Tensor::f32(&dims, t.data.clone())))
        })
        .collect::<Result<_>>()?;
    Ok(StateDict {
        format: "ONNX Runtime training checkpoint",
        wrapper: None,
        tensors,
        config: None,
        steps: ckpt.optimizer.as_ref().map(|o| o.step.max(0) as u64),
        recorded: Metadata::new(),
        layout: None,
    })
}

/// srgraph's own .onnx: a run checkpoint (training-form values and Adam moments) or
/// an inference model (whose folded weights are unfolded back into the training form).
fn read_srgraph_model(bytes: &[u8], proto: &crate::onnx::pb::ModelProto, source: &str) -> Result<StateDict> {
    let metadata = Metadata::from_proto(&proto.metadata_props);
    let config = ModelConfig::from_metadata(&metadata)
        .with_context(|| format!("{source} is an ONNX model srgraph cannot take weights from"))?;
    let steps = metadata
        .get("step")
        .or(metadata.get("training_steps"))
        .and_then(|s| s.parse().ok());
    match metadata.get("graph") {
        Some("checkpoint") => {
            let ckpt = crate::checkpoint::from_bytes(bytes, std::path::Path::new(source))?;
            // The network's parameters and buffers; not its constants, nor Adam's moments.
            let g = crate::models::build_dry(&config)?;
            let state: std::collections::HashSet<&str> = g.params().chain(g.buffers()).map(|(n, _)| n).collect();
            let tensors = ckpt
                .values
                .into_iter()
                .filter(|(n, _)| state.contains(n.as_str()))
                .collect();
            Ok(StateDict {
                format: "srgraph checkpoint",
                wrapper: None,
                tensors,
                config: Some(config),
                steps,
                recorded: Metadata::new(),
                layout: None,
            })
        }
        Some("inference") => Ok(StateDict {
            format: "srgraph model",
            wrapper: None,
            tensors: training_values_of_model(&crate::onnx::Model::from_bytes(bytes)?.graph, &config)
                .with_context(|| source.to_string())?,
            config: Some(config),
            steps,
            recorded: Metadata::new(),
            layout: None,
        }),
        other => bail!(
            "{source} is an srgraph .onnx of kind {}, which holds no weights to import (use a run's checkpoint.onnx \
             or model.onnx)",
            other.unwrap_or("(none)")
        ),
    }
}

/// A PyTorch file's object as a state dict: the object itself, or the one under a
/// known wrapper key; a `module.` prefix (DataParallel) is removed.
fn from_tree(tree: Value, format: &'static str, source: &str) -> Result<StateDict> {
    let Value::Dict(items) = tree else {
        bail!("{source} holds {} rather than a dictionary of tensors", describe(&tree));
    };
    let has_tensors = |items: &[(String, Value)]| items.iter().any(|(_, v)| matches!(v, Value::Tensor(_)));
    let (items, wrapper) = if has_tensors(&items) {
        (items, None)
    } else {
        let found = WRAPPERS.iter().find_map(|w| {
            items.iter().find_map(|(k, v)| match v {
                Value::Dict(inner) if k == w && has_tensors(inner) => Some((inner.clone(), Some(w.to_string()))),
                _ => None,
            })
        });
        let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        found.with_context(|| {
            format!(
                "{source} holds no tensors at its top level nor under any of {} (its keys: {})",
                WRAPPERS.join(", "),
                keys.join(", ")
            )
        })?
    };
    let tensors = items
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::Tensor(t) => Some((k, t)),
            _ => None,
        })
        .collect();
    let (tensors, wrapper) = strip_module_prefix(tensors, wrapper);
    Ok(StateDict {
        format,
        wrapper,
        tensors,
        config: None,
        steps: None,
        recorded: Metadata::new(),
        layout: None,
    })
}

fn strip_module_prefix(
    tensors: Vec<(String, Tensor)>,
    wrapper: Option<String>,
) -> (Vec<(String, Tensor)>, Option<String>) {
    if tensors.is_empty() || !tensors.iter().all(|(k, _)| k.starts_with("module.")) {
        return (tensors, wrapper);
    }
    let stripped = tensors
        .into_iter()
        .map(|(k, t)| (k["module.".len()..].to_string(), t))
        .collect();
    let w = match wrapper {
        Some(w) => format!("{w}, module."),
        None => "module.".to_string(),
    };
    (stripped, Some(w))
}

fn describe(v: &Value) -> String {
    match v {
        Value::Tensor(t) => format!("a single tensor of shape {:?}", t.shape()),
        Value::Dict(_) => "a dictionary".into(),
        Value::Other(s) => s.clone(),
    }
}

/// Reads a checkpoint file and detects its network: the one call `import`, `export`
/// and `train --init` share.
pub fn load(path: &std::path::Path, hints: &Hints) -> Result<(StateDict, Detected)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let source = path.display().to_string();
    let state = if bytes.starts_with(HDF5_MAGIC) {
        read_keras(path).with_context(|| format!("{source} is not Keras weights srgraph can read"))?
    } else {
        read_state(&bytes, &source)?
    };
    let detected = detect(&state, hints).with_context(|| format!("{source} ({})", state.format))?;
    Ok((state, detected))
}

/// The inference `.onnx` of a detected checkpoint: srgraph's ordinary folded graph,
/// with metadata that records the source, its layout, and what was read or assumed.
pub fn inference_model(state: &StateDict, d: &Detected, source: &str) -> Result<Vec<u8>> {
    let mut g = crate::models::build(&d.config)?;
    g.set_values(&d.values)?;
    let params = g.param_count();
    let provenance = Provenance {
        graph: "inference",
        parameters: params,
        training_steps: None,
        command: false,
    };
    let mut meta = provenance
        .record(d.config.metadata())
        .with("imported_from", source)
        .with("import_format", state.format)
        .with("import_layout", d.layout.name());
    if let Some(w) = &state.wrapper {
        meta.push("import_wrapper", w);
    }
    meta.push("import_read", d.read.join("; "));
    if !d.assumed.is_empty() {
        meta.push("import_assumed", d.assumed.join("; "));
    }
    // Last, where it is known: the count comes from the imported file, not from srgraph.
    if let Some(s) = state.steps {
        meta.push("training_steps", s);
    }
    let graph = crate::export::inference_graph(&g)?;
    Model::new(graph, meta).to_bytes("inference")
}
