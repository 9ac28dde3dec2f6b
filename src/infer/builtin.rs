//! The models `srgraph upscale` uses when it is given none: small WDSR-Bs (16 blocks,
//! 32 filters) that srgraph trained itself on T91 + BSD200, x2, x3 and x4. Their
//! metadata holds the command, the steps and the Set5/Set14 scores. They are built
//! into the binary, so the command works with nothing but a picture. `assets/README.md`
//! says how they were made.

use super::SrModel;
use crate::runtime::Runtime;
use anyhow::{bail, Result};

/// The built-in models by scale.
const MODELS: [(usize, &[u8]); 3] = [
    (2, include_bytes!("../../assets/wdsr-b-x2.onnx")),
    (3, include_bytes!("../../assets/wdsr-b-x3.onnx")),
    (4, include_bytes!("../../assets/wdsr-b-x4.onnx")),
];

/// The built-in model for `scale` (2 when not given).
pub fn load(scale: Option<usize>, runtime: Runtime, threads: usize) -> Result<SrModel> {
    let s = scale.unwrap_or(2);
    match MODELS.iter().find(|(k, _)| *k == s) {
        Some((_, bytes)) => {
            let name = format!("the built-in WDSR-B x{s} (assets/wdsr-b-x{s}.onnx)");
            SrModel::from_bytes(bytes.to_vec(), &name, runtime, threads)
        }
        None => bail!(
            "srgraph has built-in models for x2, x3 and x4 only; for x{s} pass a model: `srgraph train wdsr-b \
             --scale {s} --data PICTURES` trains one (runs/wdsr-b-x{s}/model.onnx), and `srgraph import` reads \
             PyTorch and Keras checkpoints"
        ),
    }
}
