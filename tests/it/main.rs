//! srgraph's integration tests, one crate so that they link once (`cargo test --test it`);
//! one module per topic, run alone with its name: `cargo test --test it bad_input::`.
//!
//! The tests run side by side in threads of one process: each works in a folder of its
//! own (tempfile, or a per-test folder under the build's temporary folder), and what they
//! share (the data cache, ONNX Runtime's library, loaded once) is safe to share.

mod common;

mod activations;
mod bad_input;
mod browser;
mod cli;
mod conformance;
mod data_cache;
mod deep_pictures;
mod degradation;
mod distributed;
mod gradients;
mod grey;
mod infer;
mod interop;
mod ort_checkpoint;
mod ort_training;
mod ort_training_engine;
mod params;
mod precision;
mod roundtrip;
mod slurm;
mod study;
mod tract_models;
mod train_cli;
mod training;
mod tune;
mod upscaled;
