//! srgraph: a model compiler and runtime for single-image super-resolution.
//!
//! The pipeline, one module per stage: `models` builds EDSR / WDSR-A / WDSR-B on
//! the graph IR (`ir`); `export` folds the training form into the inference
//! graph; `onnx` writes and reads `.onnx` files; `runtime` runs them (tract or
//! ONNX Runtime); `compiler` and `autodiff` make the training graphs and `train`
//! runs them; `data` loads pictures; `infer` super-resolves them (tiled) and
//! `eval` scores them with `metrics`; `cli` is the `srgraph` command.

pub mod autodiff;
pub mod cli;
pub mod compiler;
pub mod data;
pub mod distributed;
pub mod eval;
pub mod export;
pub mod infer;
pub mod interop;
pub mod ir;
pub mod metrics;
pub mod models;
pub mod onnx;
pub mod ortapi;
pub mod runtime;
pub mod study;
pub mod train;
pub mod tune;
pub mod util;
pub mod web;
