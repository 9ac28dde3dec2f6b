//! The typed graph IR. Models are built on it, passes rewrite it, and ONNX is
//! only its serialisation.

mod dim;
pub mod eval;
mod graph;
mod ops;
mod tensor;

pub use dim::{broadcast, known, show, Dim, Shape};
pub use graph::{Graph, Node, Outlet};
pub use ops::{Fact, Op, ShuffleMode};
pub use tensor::{DType, Tensor};
