//! A user's picture (PNG, JPEG, BMP; grey, alpha, 16 bit), as `upscale` and `eval` load it,
//! and, when it loads, written back as PNG in its own colour type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srgraph::data::picture::Picture;

fuzz_target!(init: srgraph_fuzz::strict_panics(), |data: &[u8]| {
    if let Ok(p) = Picture::from_bytes(data, "fuzz.png") {
        let _ = p.to_png();
    }
});
