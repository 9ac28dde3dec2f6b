//! Shared set-up of srgraph's fuzz targets.

use srgraph::infer::SrModel;
use srgraph::runtime::Runtime;

/// A real srgraph model (a seed of `onnx_model`), run once before fuzzing.
const WARM_UP_MODEL: &[u8] = include_bytes!("../seeds/onnx_model/edsr-x4-dcr.onnx");

/// Makes every panic abort, including those srgraph catches.
///
/// libfuzzer-sys installs a panic hook that aborts (so that a panic is a finding even when
/// something catches it), but srgraph's `runtime::guarded`, around each call into tract, installs
/// once a hook of its own over it that stays silent while a runtime runs, then turns the panic
/// into an error. A panic in tract would then never reach the fuzzer; yet srgraph is meant to
/// reject bad input before it reaches tract, so such a panic is a finding. Hence: run a model once
/// so that srgraph installs its hook now, then put a strict hook (print, then abort) above it.
pub fn strict_panics() {
    if let Err(e) = SrModel::from_bytes(WARM_UP_MODEL.to_vec(), "warm-up.onnx", Runtime::Tract, 1) {
        panic!("the warm-up model no longer loads: {e:#}");
    }
    let _srgraph_hook = std::panic::take_hook();
    let default_hook = std::panic::take_hook(); // the standard hook: message and backtrace
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
}
