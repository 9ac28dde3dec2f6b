//! A training run's checkpoint (`checkpoint.onnx` in its folder): the training-form
//! network as an ONNX file (so a checkpoint is itself a runnable model) with the Adam
//! moments as extra initialisers and the step in its metadata. Written atomically: a killed run never leaves a
//! half-written checkpoint, and the last complete one is what `--resume` reads.

use crate::ir::Tensor;
use crate::models::{self, ModelConfig};
use crate::onnx::{pb, tensor_from_proto, tensor_to_proto, Metadata, Model};
use anyhow::{bail, Context, Result};
use prost::Message;
use std::path::Path;

pub struct RunCheckpoint {
    pub step: u64,
    pub metadata: Metadata,
    /// Parameters, buffers and moments, by name.
    pub values: Vec<(String, Tensor)>,
}

/// Save the state of a run after `step` steps. `identity` is the metadata a
/// resumed run must match (architecture, training configuration, data seed).
pub fn save(
    path: &Path,
    c: &ModelConfig,
    identity: &[(String, String)],
    step: u64,
    values: &[(String, Tensor)],
) -> Result<()> {
    let mut graph = models::build(c)?;
    let (in_graph, extra): (Vec<_>, Vec<_>) = values
        .iter()
        .cloned()
        .partition(|(name, _)| graph.nodes.iter().any(|n| &n.name == name));
    graph.set_values(&in_graph)?;
    let mut meta = identity.to_vec();
    meta.push(("step".into(), step.to_string()));
    meta.push(("graph".into(), "checkpoint".into()));
    let mut proto = Model::new(graph, meta).to_proto("checkpoint")?;
    let g = proto.graph.as_mut().expect("a model has a graph");
    g.initializer
        .extend(extra.iter().map(|(name, t)| tensor_to_proto(name, t)));
    crate::util::write_atomic(path, &proto.encode_to_vec())
}

pub fn load(path: &Path) -> Result<RunCheckpoint> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the checkpoint {}", path.display()))?;
    from_bytes(&bytes, path)
}

/// A checkpoint from the bytes of its file; `path` names it in messages.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<RunCheckpoint> {
    let proto = pb::ModelProto::decode(bytes)
        .with_context(|| format!("{} is not a checkpoint srgraph can read", path.display()))?;
    let metadata = Metadata::from_proto(&proto.metadata_props);
    if metadata.get("graph") != Some("checkpoint") {
        bail!("{} is not an srgraph checkpoint", path.display());
    }
    let step = metadata
        .parse::<u64>("step")
        .ok()
        .flatten()
        .with_context(|| format!("{} records no step", path.display()))?;
    let graph = proto.graph.as_ref().context("the checkpoint has no graph")?;
    let values = graph
        .initializer
        .iter()
        .map(|t| Ok((t.name.clone(), tensor_from_proto(t)?)))
        .collect::<Result<_>>()?;
    Ok(RunCheckpoint { step, metadata, values })
}

/// Refuse to resume a run from a checkpoint of another configuration.
pub fn ensure_same(ckpt: &RunCheckpoint, identity: &[(String, String)], path: &Path) -> Result<()> {
    ensure_same_config(ckpt, identity, path, "this run")
        .map_err(|e| anyhow::anyhow!("{e}: it cannot be resumed by this run; start a new run with another --out"))
}

/// Every entry of `wanted` must be in the checkpoint's metadata with the same value
/// (`ours` names where `wanted` comes from, for the message).
pub fn ensure_same_config(ckpt: &RunCheckpoint, wanted: &[(String, String)], path: &Path, ours: &str) -> Result<()> {
    let differences: Vec<String> = wanted
        .iter()
        .filter_map(|(k, v)| {
            let theirs = ckpt.metadata.get(k).unwrap_or("(none)");
            (theirs != v).then(|| format!("{k}: checkpoint {theirs}, {ours} {v}"))
        })
        .collect();
    if !differences.is_empty() {
        bail!(
            "{} is from another configuration ({})",
            path.display(),
            differences.join("; ")
        );
    }
    Ok(())
}
