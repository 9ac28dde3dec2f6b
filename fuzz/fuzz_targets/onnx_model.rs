//! The path `srgraph eval`, `upscale` and `inspect` take with a model file: srgraph's own
//! ONNX reader (inspect), then the signature checks, tract's load/analysis/optimisation
//! and a 16 x 16 probe run (eval, upscale). Any panic is a finding: srgraph is meant to
//! reject bad input with an error before it reaches tract.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srgraph::runtime::Runtime;

fuzz_target!(init: srgraph_fuzz::strict_panics(), |data: &[u8]| {
    let _ = srgraph::onnx::Model::from_bytes(data);
    let _ = srgraph::infer::SrModel::from_bytes(data.to_vec(), "fuzz.onnx", Runtime::Tract, 1);
});
