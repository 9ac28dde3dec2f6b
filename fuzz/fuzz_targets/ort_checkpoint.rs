//! ONNX Runtime's training checkpoint (the "ODTC" flatbuffer), read by srgraph's own codec.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: srgraph_fuzz::strict_panics(), |data: &[u8]| {
    let _ = srgraph::ortapi::checkpoint::read(data);
});
