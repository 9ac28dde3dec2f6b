//! A checkpoint as `srgraph import`, `export` and `train --init` read it: PyTorch's zip and
//! legacy pickles, safetensors, srgraph's and ONNX Runtime's files; then layout detection.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: srgraph_fuzz::strict_panics(), |data: &[u8]| {
    if let Ok(state) = srgraph::interop::read_state(data, "fuzz-checkpoint") {
        let _ = srgraph::interop::detect(&state, &srgraph::interop::Hints::default());
    }
});
