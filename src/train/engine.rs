//! What trains a network (`--engine` of `train` and `study`): a runtime running srgraph's
//! own train-step graphs, or ONNX Runtime's own training API on srgraph's training-API
//! artefacts.

use crate::runtime::ort::Device;
use crate::runtime::Runtime;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// srgraph's train step (or, under mpirun, its gradients and Adam) in a runtime.
    Runtime(Runtime),
    /// ONNX Runtime's (deprecated) training API, for libraries built with it.
    TrainingApi(Device),
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Runtime(runtime) => runtime.name(),
            Engine::TrainingApi(_) => "onnxruntime-training-api",
        }
    }

    /// The runtime that runs the run's models (validation): a library with the
    /// training API runs them as any ONNX Runtime does.
    pub fn runtime(self) -> Runtime {
        match self {
            Engine::Runtime(runtime) => runtime,
            Engine::TrainingApi(device) => Runtime::Ort(device),
        }
    }
}
