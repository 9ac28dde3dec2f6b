//! The names of the state a training run keeps beside each parameter `p` (and buffer
//! `b`), in the graphs `compiler` makes and the checkpoints `train` writes: Adam's
//! moments `p.adam_m` and `p.adam_v`, the gradient `p.grad`, the moving average
//! `p.ema`, and the value a step gives any state tensor `x` for the next, `x.new`.

const ADAM_M: &str = ".adam_m";
const ADAM_V: &str = ".adam_v";
const GRAD: &str = ".grad";
const EMA: &str = ".ema";
const NEXT: &str = ".new";

/// Adam's first moment of `param`.
pub fn adam_m(param: &str) -> String {
    format!("{param}{ADAM_M}")
}

/// Adam's second moment of `param`.
pub fn adam_v(param: &str) -> String {
    format!("{param}{ADAM_V}")
}

/// The gradient of the loss with respect to `param`.
pub fn grad(param: &str) -> String {
    format!("{param}{GRAD}")
}

/// The moving average of `param` (`--ema`).
pub fn ema(param: &str) -> String {
    format!("{param}{EMA}")
}

/// The output holding the value of `state` after a step, which the next step takes as `state`.
pub fn next(state: &str) -> String {
    format!("{state}{NEXT}")
}

/// The state a step's output `name` updates, when it is a `<x>.new`.
pub fn updated_by(name: &str) -> Option<&str> {
    name.strip_suffix(NEXT)
}

/// Whether `name` is one of Adam's moments.
pub fn is_adam_moment(name: &str) -> bool {
    name.ends_with(ADAM_M) || name.ends_with(ADAM_V)
}

/// The parameter a parameter or one of its Adam moments belongs to: `p` for `p`, `p.adam_m`
/// and `p.adam_v`.
pub fn param_of(name: &str) -> &str {
    name.strip_suffix(ADAM_M)
        .or_else(|| name.strip_suffix(ADAM_V))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_their_owners() {
        assert_eq!(adam_m("body.0.conv"), "body.0.conv.adam_m");
        assert_eq!(next(&adam_v("w")), "w.adam_v.new");
        assert_eq!(updated_by("w.adam_v.new"), Some("w.adam_v"));
        assert_eq!(updated_by("w.grad"), None);
        assert!(is_adam_moment("w.adam_v") && !is_adam_moment("w") && !is_adam_moment("w.ema"));
        assert_eq!(param_of("w.adam_m"), "w");
        assert_eq!(param_of("w"), "w");
        assert_eq!(grad("w"), "w.grad");
        assert_eq!(ema("w"), "w.ema");
    }
}
