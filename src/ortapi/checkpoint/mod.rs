//! Reader/writer for ONNX Runtime's on-device-training checkpoint file ("ODTC" flatbuffer),
//! as written and read by ONNX Runtime 1.19.2 (`CheckpointState.save_checkpoint` /
//! `load_checkpoint`, `onnxblock.save_checkpoint`, `generate_artifacts`).
//!
//! Self-contained: only the `flatbuffers` crate (v25) and std. The table layouts below are
//! hand-written from ORT's `ort_training_checkpoint.fbs` / `ort.fbs` (the field ids are the
//! schema's declaration order; vtable offset = 4 + 2 * id).
//!
//! Format facts (ORT 1.19.2, verified against the real runtime):
//! * file identifier `"ODTC"`, root table `Checkpoint`, `version` = 2 (ORT rejects any other value).
//! * every tensor is an `onnxruntime.fbs.Tensor` with `name`, `dims` (int64), `data_type`
//!   (`TensorDataType`, FLOAT = 1) and `raw_data` (little-endian bytes). `doc_string`,
//!   `string_data` unused; `external_data_offset` defaults to -1 (= data is in `raw_data`).
//! * `ModuleState.requires_grad_params` and `ModuleState.frozen_params` must both be present
//!   (possibly empty) – ORT errors on a null vector.
//! * ORT switches to an external data file (`<checkpoint>.data`, `ModuleState.has_external_data`
//!   = true, tensors carry `external_data_offset` into that file instead of `raw_data`; the data
//!   is packed back to back) only when the tensors total more than 1799 MiB; this module writes
//!   and reads the in-buffer form only and reports external data as an error.
//! * optimizer state: a single `OptimizerGroup` named `"group0"` with `step`,
//!   `initial_learning_rate` and one `ParameterOptimizerState` per trainable parameter whose
//!   `momentums` are tensors named `"momentum0"` (Adam first moment m) and `"momentum1"`
//!   (second moment v).
//! * `PropertyBag` holds int64 / float / string user properties.

use flatbuffers::{ForwardsUOffset, InvalidFlatbuffer, Vector};
use std::fmt;

/// Flatbuffer file identifier of ORT training checkpoints ("ORT On-Device-Training Checkpoint").
pub const FILE_IDENTIFIER: &str = "ODTC";
/// Checkpoint format version written by ORT 1.19.2 (`kCheckpointVersion`).
pub const CHECKPOINT_VERSION: i32 = 2;
/// Versions ORT 1.19.2 accepts when loading (it requires exact equality).
pub const SUPPORTED_VERSIONS: &[i32] = &[CHECKPOINT_VERSION];
/// Name of the (only) optimizer group ORT's `Optimizer` creates and looks up.
pub const DEFAULT_GROUP_NAME: &str = "group0";
/// Momentum tensor names inside `ParameterOptimizerState.momentums` for AdamW.
pub const FIRST_MOMENT_NAME: &str = "momentum0";
pub const SECOND_MOMENT_NAME: &str = "momentum1";
/// `onnxruntime.fbs.TensorDataType.FLOAT` (same numbering as ONNX TensorProto.DataType).
pub const TENSOR_DATA_TYPE_FLOAT: i32 = 1;

/// Vtable offsets (`4 + 2 * field_id`) of every table used, per the .fbs declaration order.
pub mod field {
    use flatbuffers::VOffsetT;
    const fn id(i: VOffsetT) -> VOffsetT {
        4 + 2 * i
    }
    /// `table Tensor` (ort.fbs)
    pub mod tensor {
        use super::*;
        pub const NAME: VOffsetT = id(0);
        pub const DOC_STRING: VOffsetT = id(1);
        pub const DIMS: VOffsetT = id(2);
        pub const DATA_TYPE: VOffsetT = id(3);
        pub const RAW_DATA: VOffsetT = id(4);
        pub const STRING_DATA: VOffsetT = id(5);
        pub const EXTERNAL_DATA_OFFSET: VOffsetT = id(6);
    }
    /// `table ModuleState`
    pub mod module_state {
        use super::*;
        pub const REQUIRES_GRAD_PARAMS: VOffsetT = id(0);
        pub const FROZEN_PARAMS: VOffsetT = id(1);
        pub const IS_NOMINAL_STATE: VOffsetT = id(2);
        pub const HAS_EXTERNAL_DATA: VOffsetT = id(3);
    }
    /// `table ParameterOptimizerState`
    pub mod param_optimizer_state {
        use super::*;
        pub const PARAM_NAME: VOffsetT = id(0);
        pub const MOMENTUMS: VOffsetT = id(1);
    }
    /// `table OptimizerGroup`
    pub mod optimizer_group {
        use super::*;
        pub const GROUP_NAME: VOffsetT = id(0);
        pub const STEP: VOffsetT = id(1);
        pub const INITIAL_LEARNING_RATE: VOffsetT = id(2);
        pub const OPTIMIZER_STATES: VOffsetT = id(3);
    }
    /// `table IntProperty` / `FloatProperty` / `StringProperty`
    pub mod property {
        use super::*;
        pub const NAME: VOffsetT = id(0);
        pub const VALUE: VOffsetT = id(1);
    }
    /// `table PropertyBag`
    pub mod property_bag {
        use super::*;
        pub const INTS: VOffsetT = id(0);
        pub const FLOATS: VOffsetT = id(1);
        pub const STRINGS: VOffsetT = id(2);
    }
    /// `table Checkpoint` (root)
    pub mod checkpoint {
        use super::*;
        pub const VERSION: VOffsetT = id(0);
        pub const MODULE_STATE: VOffsetT = id(1);
        pub const OPTIMIZER_GROUPS: VOffsetT = id(2);
        pub const PROPERTY_BAG: VOffsetT = id(3);
    }
}

// ---------------------------------------------------------------------------------------------
// Public data model
// ---------------------------------------------------------------------------------------------

/// A named float32 tensor (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub dims: Vec<i64>,
    pub data: Vec<f32>,
}

impl NamedTensor {
    pub fn new(name: impl Into<String>, dims: Vec<i64>, data: Vec<f32>) -> Self {
        NamedTensor {
            name: name.into(),
            dims,
            data,
        }
    }
    /// Zero tensor of the same shape, with another name.
    pub fn zeros_like(&self, name: impl Into<String>) -> Self {
        NamedTensor {
            name: name.into(),
            dims: self.dims.clone(),
            data: vec![0.0; self.data.len()],
        }
    }
}

/// AdamW optimizer state (ORT's single optimizer group).
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState {
    /// Group name; ORT 1.19.2 always uses [`DEFAULT_GROUP_NAME`] (`"group0"`).
    pub group_name: String,
    /// Number of optimizer steps taken so far (ORT passes `step` to AdamWOptimizer, which
    /// increments it before use).
    pub step: i64,
    /// `OptimizerGroup.initial_learning_rate`.
    pub learning_rate: f32,
    /// First moments (`"momentum0"`), each named after its parameter.
    pub first_moments: Vec<NamedTensor>,
    /// Second moments (`"momentum1"`), each named after its parameter, same order as
    /// `first_moments`.
    pub second_moments: Vec<NamedTensor>,
}

impl OptimizerState {
    /// Fresh state (step 0, zero moments) for the given trainable parameters.
    pub fn zeros_for(params: &[NamedTensor], learning_rate: f32) -> Self {
        OptimizerState {
            group_name: DEFAULT_GROUP_NAME.to_string(),
            step: 0,
            learning_rate,
            first_moments: params.iter().map(|p| p.zeros_like(p.name.clone())).collect(),
            second_moments: params.iter().map(|p| p.zeros_like(p.name.clone())).collect(),
        }
    }
}

/// A user property stored in the checkpoint's `PropertyBag`.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    Int(i64),
    Float(f32),
    String(String),
}

/// A checkpoint of ONNX Runtime's training API (the "ODTC" flatbuffer), in memory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainingApiCheckpoint {
    /// `ModuleState.requires_grad_params` (order is preserved; ORT itself writes them sorted
    /// by name when saving from a training session and looks them up by name when loading).
    pub trainable: Vec<NamedTensor>,
    /// `ModuleState.frozen_params`.
    pub frozen: Vec<NamedTensor>,
    /// `Checkpoint.optimizer_groups[0]`, if present.
    pub optimizer: Option<OptimizerState>,
    /// `Checkpoint.property_bag` entries (ints, then floats, then strings when read back).
    pub properties: Vec<(String, PropertyValue)>,
}

/// Errors returned by [`read`].
#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointError {
    /// Fewer bytes than a flatbuffer header (root offset + identifier).
    TooShort { len: usize },
    /// The 4-byte file identifier at offset 4 is not "ODTC".
    WrongIdentifier { found: [u8; 4] },
    /// The flatbuffers verifier rejected the buffer (truncated / corrupt).
    Corrupt(InvalidFlatbuffer),
    /// `Checkpoint.version` is not one ORT 1.19.2 accepts.
    UnsupportedVersion { found: i32, supported: &'static [i32] },
    /// A field that ORT requires is absent.
    MissingField { what: String },
    /// A tensor whose data type is not float32.
    UnsupportedDataType { tensor: String, data_type: i32 },
    /// A tensor stored in the external data file (`<checkpoint>.data`), not supported here.
    ExternalData { tensor: String },
    /// A nominal checkpoint (parameters have names/shapes but no data).
    NominalState,
    /// `raw_data` length does not match the product of `dims` times 4.
    BadTensorData {
        tensor: String,
        expected_bytes: usize,
        found_bytes: usize,
    },
    /// A dimension is negative or the element count overflows.
    BadDims { tensor: String, dims: Vec<i64> },
    /// Optimizer state that does not look like ORT's AdamW state.
    BadOptimizerState { detail: String },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CheckpointError::*;
        match self {
            TooShort { len } => write!(f, "not an ORT checkpoint: only {len} bytes (need at least 8)"),
            WrongIdentifier { found } => write!(
                f,
                "not an ORT training checkpoint: file identifier is {:?}, expected \"{FILE_IDENTIFIER}\"",
                String::from_utf8_lossy(found)
            ),
            Corrupt(e) => write!(
                f,
                "corrupt or truncated ORT checkpoint (flatbuffer verification failed): {e}"
            ),
            UnsupportedVersion { found, supported } => write!(
                f,
                "unsupported ORT checkpoint version {found} (supported: {supported:?}, as in ONNX Runtime 1.19.2)"
            ),
            MissingField { what } => write!(f, "invalid ORT checkpoint: missing {what}"),
            UnsupportedDataType { tensor, data_type } => write!(
                f,
                "tensor {tensor:?} has data type {data_type} ({}); only FLOAT (1) is supported",
                data_type_name(*data_type)
            ),
            ExternalData { tensor } => write!(
                f,
                "tensor {tensor:?} is stored in the checkpoint's external data file; external data is not supported"
            ),
            NominalState => write!(
                f,
                "nominal checkpoint (parameters carry no data); a complete checkpoint is required"
            ),
            BadTensorData {
                tensor,
                expected_bytes,
                found_bytes,
            } => write!(
                f,
                "tensor {tensor:?}: raw_data has {found_bytes} bytes, dims require {expected_bytes}"
            ),
            BadDims { tensor, dims } => write!(f, "tensor {tensor:?}: invalid dims {dims:?}"),
            BadOptimizerState { detail } => write!(f, "invalid optimizer state in ORT checkpoint: {detail}"),
        }
    }
}

impl std::error::Error for CheckpointError {}

impl From<InvalidFlatbuffer> for CheckpointError {
    fn from(e: InvalidFlatbuffer) -> Self {
        CheckpointError::Corrupt(e)
    }
}

fn data_type_name(t: i32) -> &'static str {
    match t {
        0 => "UNDEFINED",
        1 => "FLOAT",
        2 => "UINT8",
        3 => "INT8",
        4 => "UINT16",
        5 => "INT16",
        6 => "INT32",
        7 => "INT64",
        8 => "STRING",
        9 => "BOOL",
        10 => "FLOAT16",
        11 => "DOUBLE",
        12 => "UINT32",
        13 => "UINT64",
        14 => "COMPLEX64",
        15 => "COMPLEX128",
        16 => "BFLOAT16",
        17..=20 => "FLOAT8",
        _ => "unknown",
    }
}

mod read;
mod write;

pub use read::read;
pub use write::write;
