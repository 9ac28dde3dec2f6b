//! The models `srgraph upscale` uses when it is given none: small WDSR-Bs (16 blocks,
//! 32 filters) that srgraph trained itself on T91 + BSD200, x2, x3 and x4, and a grey
//! (single-channel) x2 for `upscale --channels 1`. Their
//! metadata holds the command, the steps and the Set5/Set14 scores. They are built
//! into the binary, so the command works with nothing but a picture. `assets/README.md`
//! says how they were made.

use super::SrModel;
use crate::runtime::Runtime;
use anyhow::{bail, Result};

/// A built-in model: its scale, picture channels, file under assets/ and bytes.
macro_rules! builtin {
    ($scale:literal, $channels:literal, $file:literal) => {
        (
            $scale,
            $channels,
            $file,
            include_bytes!(concat!("../../assets/", $file)).as_slice(),
        )
    };
}

/// The built-in models.
const MODELS: [(usize, usize, &str, &[u8]); 4] = [
    builtin!(2, 3, "wdsr-b-x2.onnx"),
    builtin!(3, 3, "wdsr-b-x3.onnx"),
    builtin!(4, 3, "wdsr-b-x4.onnx"),
    builtin!(2, 1, "wdsr-b-x2-grey.onnx"),
];

/// The built-in model for `scale` (2 when not given) and `channels` (3, RGB, when not
/// given; 1 for the grey one).
pub fn load(scale: Option<usize>, channels: Option<usize>, runtime: Runtime, threads: usize) -> Result<SrModel> {
    let (s, ch) = (scale.unwrap_or(2), channels.unwrap_or(3));
    match MODELS.iter().find(|(k, c, _, _)| (*k, *c) == (s, ch)) {
        Some((_, _, file, bytes)) => {
            let grey = if ch == 1 { "grey " } else { "" };
            let name = format!("the built-in {grey}WDSR-B x{s} (assets/{file})");
            SrModel::from_bytes(bytes.to_vec(), &name, runtime, threads)
        }
        None if ch == 1 && (2..=4).contains(&s) => bail!(
            "srgraph's built-in grey model is x2; for a grey x{s} model, `srgraph train wdsr-b --init \
             assets/wdsr-b-x{s}.onnx --channels 1 --data PICTURES` starts one from the RGB built-in (docs/pictures.md)"
        ),
        None if ch != 1 && ch != 3 => bail!("--channels {ch}: pictures have 1 (grey) or 3 (RGB) channels"),
        None => bail!(
            "srgraph has built-in models for x2, x3 and x4 only; for x{s} pass a model: `srgraph train wdsr-b \
             --scale {s} --data PICTURES` trains one (runs/wdsr-b-x{s}/model.onnx), and `srgraph import` reads \
             PyTorch and Keras checkpoints"
        ),
    }
}
