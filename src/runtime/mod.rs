//! Runtimes that execute srgraph's ONNX files. tract (pure Rust) is the default
//! for checks: it needs no native library.

pub mod tract;
