//! A user's picture (PNG, TIFF, JPEG, BMP; grey, alpha, 8 and 16 bit), as `upscale` and `eval`
//! load it, and, when it loads, written back as PNG and TIFF at its own depth and colour type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srgraph::data::picture::AnyPicture;

fuzz_target!(init: srgraph_fuzz::strict_panics(), |data: &[u8]| {
    match AnyPicture::from_bytes(data, "fuzz.png") {
        Ok(AnyPicture::Eight(p)) => {
            let _ = (p.to_png(), p.to_tiff());
        }
        Ok(AnyPicture::Sixteen(p)) => {
            let _ = (p.to_png(), p.to_tiff());
        }
        Err(_) => {}
    }
});
