//! A training run's checkpoint (`checkpoint.onnx`), as `train --resume` and `build --from` read it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(init: srgraph_fuzz::strict_panics(), |data: &[u8]| {
    let _ = srgraph::checkpoint::from_bytes(data, Path::new("fuzz-checkpoint.onnx"));
});
