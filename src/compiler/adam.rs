//! Adam as PyTorch computes it (decoupled weight decay, as AdamW, when asked),
//! in graph ops. The optimiser state is explicit tensors, so one static step
//! graph serves every iteration: the step number t comes in as an input and the
//! bias corrections are computed from it.
//!
//!   m' = b1 m + (1 - b1) g          v' = b2 v + (1 - b2) g^2
//!   p' = p - (lr / (1 - b1^t)) m' / (sqrt(v') / sqrt(1 - b2^t) + eps)

use crate::ir::{Graph, Op, Outlet, Tensor};
use anyhow::Result;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// AdamW's decoupled weight decay: p <- p (1 - lr wd) before the update.
    pub weight_decay: f32,
}

impl Default for Adam {
    /// PyTorch's defaults.
    fn default() -> Adam {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// The step-wide scalars: lr / (1 - b1^t) and sqrt(1 - b2^t).
pub struct StepScalars {
    step_size: Outlet,
    bc2_sqrt: Outlet,
    lr: Outlet,
}

impl Adam {
    pub fn scalars(&self, g: &mut Graph, lr: Outlet, step: Outlet) -> Result<StepScalars> {
        let c = |g: &mut Graph, name: &str, v: f32| g.constant(format!("adam.{name}"), Tensor::scalar(v));
        let (one, b1, b2) = (c(g, "one", 1.0), c(g, "beta1", self.beta1), c(g, "beta2", self.beta2));
        let b1t = g.wire("adam.beta1_t", Op::Pow, &[b1, step])?;
        let b2t = g.wire("adam.beta2_t", Op::Pow, &[b2, step])?;
        let bc1 = g.wire("adam.bias_correction1", Op::Sub, &[one, b1t])?;
        let bc2 = g.wire("adam.bias_correction2", Op::Sub, &[one, b2t])?;
        let step_size = g.wire("adam.step_size", Op::Div, &[lr, bc1])?;
        let bc2_sqrt = g.wire("adam.bias_correction2_sqrt", Op::Sqrt, &[bc2])?;
        Ok(StepScalars {
            step_size,
            bc2_sqrt,
            lr,
        })
    }

    /// The updated (parameter, m, v) of one parameter.
    pub fn update(
        &self,
        g: &mut Graph,
        s: &StepScalars,
        name: &str,
        p: Outlet,
        grad: Outlet,
        (m, v): (Outlet, Outlet),
    ) -> Result<[Outlet; 3]> {
        let n = |what: &str| format!("{name}.adam.{what}");
        let c = |g: &mut Graph, what: &str, x: f32| g.constant(n(what), Tensor::scalar(x));
        let (b1, one_b1) = (c(g, "b1", self.beta1), c(g, "one_minus_b1", 1.0 - self.beta1));
        let (b2, one_b2) = (c(g, "b2", self.beta2), c(g, "one_minus_b2", 1.0 - self.beta2));
        let eps = c(g, "eps", self.eps);
        let m_old = g.wire(n("m_decay"), Op::Mul, &[m, b1])?;
        let m_new = g.wire(n("m_grad"), Op::Mul, &[grad, one_b1])?;
        let m2 = g.wire(n("m"), Op::Add, &[m_old, m_new])?;
        let g2 = g.wire(n("grad_sq"), Op::Mul, &[grad, grad])?;
        let v_old = g.wire(n("v_decay"), Op::Mul, &[v, b2])?;
        let v_new = g.wire(n("v_grad"), Op::Mul, &[g2, one_b2])?;
        let v2 = g.wire(n("v"), Op::Add, &[v_old, v_new])?;
        let root = g.wire(n("v_sqrt"), Op::Sqrt, &[v2])?;
        let corrected = g.wire(n("v_corrected"), Op::Div, &[root, s.bc2_sqrt])?;
        let denom = g.wire(n("denom"), Op::Add, &[corrected, eps])?;
        let ratio = g.wire(n("ratio"), Op::Div, &[m2, denom])?;
        let delta = g.wire(n("delta"), Op::Mul, &[ratio, s.step_size])?;
        let p = if self.weight_decay != 0.0 {
            let wd = c(g, "weight_decay", self.weight_decay);
            let lr_wd = g.wire(n("lr_wd"), Op::Mul, &[s.lr, wd])?;
            let decay = g.wire(n("decay"), Op::Mul, &[p, lr_wd])?;
            g.wire(n("decayed"), Op::Sub, &[p, decay])?
        } else {
            p
        };
        let p2 = g.wire(n("param"), Op::Sub, &[p, delta])?;
        Ok([p2, m2, v2])
    }
}
