//! The ONNX codec: srgraph's IR to and from `.onnx` files (opset 17, IR version 8).

pub mod attributes;
pub mod external;
mod graph;
mod metadata;
mod ops;
pub mod pb;
pub mod precision;
pub mod quantize;
mod tensor;

pub use attributes::Attributes;
pub use metadata::{Metadata, Provenance};
pub use precision::Precision;
pub use tensor::{tensor_from_proto, tensor_to_proto};

pub use graph::{graph_from_proto, graph_to_proto};

use crate::ir::Graph;
use anyhow::{bail, Context, Result};
use prost::Message;
use std::path::Path;

pub const OPSET: i64 = 17;
pub const IR_VERSION: i64 = 8;
pub const PRODUCER: &str = "srgraph";

/// A graph and the record of how it was made (`metadata_props`).
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub graph: Graph,
    pub metadata: Metadata,
    /// `producer_name` and `producer_version` of the file.
    pub producer: (String, String),
}

impl Model {
    pub fn new(graph: Graph, metadata: impl Into<Metadata>) -> Model {
        Model {
            graph,
            metadata: metadata.into(),
            producer: (PRODUCER.into(), env!("CARGO_PKG_VERSION").into()),
        }
    }

    /// A model srgraph made: its network's metadata, then how it was made.
    pub fn with_provenance(graph: Graph, network: Metadata, provenance: &Provenance) -> Model {
        Model::new(graph, provenance.record(network))
    }

    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key)
    }

    pub fn made_by_srgraph(&self) -> bool {
        self.producer.0 == PRODUCER
    }

    pub fn to_proto(&self, graph_name: &str) -> Result<pb::ModelProto> {
        Ok(pb::ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: self.producer.0.clone(),
            producer_version: self.producer.1.clone(),
            graph: Some(graph_to_proto(&self.graph, graph_name)?),
            metadata_props: self.metadata.to_proto(),
            ..Default::default()
        })
    }

    /// The same model in double precision (every float32 tensor and value
    /// widened to float64): for numerical checks, such as finite differences,
    /// that float32 rounding would drown.
    pub fn to_bytes_f64(&self, graph_name: &str) -> Result<Vec<u8>> {
        let mut proto = self.to_proto(graph_name)?;
        let graph = proto.graph.as_mut().expect("to_proto writes a graph");
        for t in &mut graph.initializer {
            if t.data_type == pb::data_type::FLOAT {
                t.raw_data = t
                    .raw_data
                    .chunks_exact(4)
                    .flat_map(|c| (f32::from_le_bytes(c.try_into().unwrap()) as f64).to_le_bytes())
                    .collect();
                t.data_type = pb::data_type::DOUBLE;
            }
        }
        for vi in graph.input.iter_mut().chain(graph.output.iter_mut()) {
            if let Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(t)),
                ..
            }) = &mut vi.r#type
            {
                if t.elem_type == pb::data_type::FLOAT {
                    t.elem_type = pb::data_type::DOUBLE;
                }
            }
        }
        Ok(proto.encode_to_vec())
    }

    pub fn to_bytes(&self, graph_name: &str) -> Result<Vec<u8>> {
        Ok(self.to_proto(graph_name)?.encode_to_vec())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let proto = pb::ModelProto::decode(bytes).context(
            "not an ONNX model: the file does not parse as an ONNX ModelProto (truncated, or another format)",
        )?;
        let Some(graph) = &proto.graph else {
            bail!("not an ONNX model: the ModelProto has no graph")
        };
        if proto.opset_import.is_empty() && graph.node.is_empty() {
            bail!("not an ONNX model: no opset and no nodes");
        }
        let graph = graph_from_proto(graph).context("Reading the ONNX graph")?;
        Ok(Model {
            graph,
            metadata: Metadata::from_proto(&proto.metadata_props),
            producer: (proto.producer_name, proto.producer_version),
        })
    }

    /// Write atomically: a temporary file beside the target, renamed into place,
    /// so a failed write never leaves a partial `.onnx` behind.
    pub fn save(&self, path: &Path, graph_name: &str) -> Result<()> {
        let bytes = self.to_bytes(graph_name)?;
        crate::util::write_atomic(path, &bytes)
    }

    pub fn load(path: &Path) -> Result<Model> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Model::from_bytes(&bytes).with_context(|| format!("{} is not a model srgraph can read", path.display()))
    }
}
