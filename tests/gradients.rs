//! Every gradient rule against central finite differences, op by op and for
//! whole small networks (weight norm included), with an MSE loss against a
//! random target.
//!
//! How: the analytic gradient g of the loss L at parameters p, projected on a
//! random direction d (unit norm over all parameters), must equal
//! (L(p + eps d) - L(p - eps d)) / (2 eps). The graphs run in tract in float32,
//! whose loss carries a rounding error of about 1e-7 |L|; with eps = 1e-2 that
//! is 1e-5 |L| in the difference quotient, while the truncation error is
//! O(eps^2). A tolerance of 1% of |g . d| (plus 1e-4 |L| absolute) leaves room
//! for both and still catches any wrong rule, whose errors are O(1).

mod common;

use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use srgraph::autodiff::{gradients, WeightGradLowering};
use srgraph::ir::{Graph, Op, Outlet, ShuffleMode, Tensor};
use srgraph::onnx::Model;
use srgraph::runtime::tract::TractModel;

fn random(rng: &mut ChaCha8Rng, shape: &[usize], scale: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(shape, (0..n).map(|_| rng.random_range(-scale..scale)).collect())
}

fn param(g: &mut Graph, rng: &mut ChaCha8Rng, name: &str, shape: &[usize]) -> Outlet {
    let t = random(rng, shape, 1.0);
    g.wire(name, Op::Param(t), &[]).unwrap()
}

fn constant(g: &mut Graph, rng: &mut ChaCha8Rng, name: &str, shape: &[usize]) -> Outlet {
    let t = random(rng, shape, 1.0);
    g.constant(name, t)
}

/// mean((y - t)^2) for a random target t.
fn mse(g: &mut Graph, rng: &mut ChaCha8Rng, y: Outlet) -> Outlet {
    let shape: Vec<usize> = g.fact(y).shape.iter().map(|d| d.known().unwrap()).collect();
    let n: usize = shape.iter().product();
    let t = constant(g, rng, "target", &shape);
    let d = g.wire("loss.diff", Op::Sub, &[y, t]).unwrap();
    let sq = g.wire("loss.sq", Op::Mul, &[d, d]).unwrap();
    let axes = (0..shape.len()).collect();
    let s = g
        .wire("loss.sum", Op::ReduceSum { axes, keepdims: false }, &[sq])
        .unwrap();
    let count = g.constant("loss.count", Tensor::scalar(n as f32));
    g.wire("loss", Op::Div, &[s, count]).unwrap()
}

fn flat(t: &ArrayD<f32>) -> Vec<f32> {
    t.iter().copied().collect()
}

/// Check d(loss)/d(params) of the graph `g` (whose parameters are its Params) along random directions.
fn check(what: &str, mut g: Graph, loss: Outlet, lowering: WeightGradLowering, seed: u64) {
    let wrt: Vec<Outlet> = (0..g.nodes.len())
        .filter(|&i| matches!(g.nodes[i].op, Op::Param(_)))
        .map(|node| Outlet { node, slot: 0 })
        .collect();
    let grads = gradients(&mut g, loss, &wrt, lowering).unwrap();
    g.output("loss", loss);
    for (i, gr) in grads.iter().enumerate() {
        g.output(format!("grad{i}"), *gr);
    }
    g.prune();
    let (lifted, values) = g.lift_values();
    let bytes = Model::new(lifted, vec![]).to_bytes(what).unwrap();
    let shapes: Vec<Vec<usize>> = values.iter().map(|(_, t)| t.shape().to_vec()).collect();
    let shape_refs: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
    let model = TractModel::new(&bytes, &shape_refs).unwrap();
    let run = |vals: &[Vec<f32>]| -> Vec<ArrayD<f32>> {
        let inputs = vals
            .iter()
            .zip(&shapes)
            .map(|(v, s)| ArrayD::from_shape_vec(s.clone(), v.clone()).unwrap())
            .collect();
        model.run(inputs).unwrap()
    };
    let p0: Vec<Vec<f32>> = values.iter().map(|(_, t)| flat(t.as_f32().unwrap())).collect();
    let out = run(&p0);
    let loss0 = out[0].iter().next().copied().unwrap();
    let grad: Vec<Vec<f32>> = out[1..].iter().map(flat).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let eps = 1e-2f32;
    for k in 0..3 {
        let mut d: Vec<Vec<f32>> = p0
            .iter()
            .map(|p| p.iter().map(|_| rng.random_range(-1.0f32..1.0)).collect())
            .collect();
        let norm = d.iter().flatten().map(|v| v * v).sum::<f32>().sqrt();
        d.iter_mut().flatten().for_each(|v| *v /= norm);
        let shifted = |sign: f32| -> Vec<Vec<f32>> {
            p0.iter()
                .zip(&d)
                .map(|(p, dd)| p.iter().zip(dd).map(|(a, b)| a + sign * eps * b).collect())
                .collect()
        };
        let lp = run(&shifted(1.0))[0].iter().next().copied().unwrap() as f64;
        let lm = run(&shifted(-1.0))[0].iter().next().copied().unwrap() as f64;
        let fd = (lp - lm) / (2.0 * eps as f64);
        let an: f64 = grad
            .iter()
            .flatten()
            .zip(d.iter().flatten())
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum();
        let tol = 1e-2 * an.abs().max(fd.abs()) + 1e-4 * (loss0.abs() as f64);
        assert!(
            (fd - an).abs() <= tol,
            "{what}, direction {k}: finite difference {fd:.6e}, analytic {an:.6e} (tolerance {tol:.2e})"
        );
    }
}

fn conv_case(k: usize, cin: usize, cout: usize, lowering: WeightGradLowering) {
    let mut rng = ChaCha8Rng::seed_from_u64(k as u64 * 100 + cin as u64);
    let mut g = Graph::new();
    let x = param(&mut g, &mut rng, "x", &[2, cin, 5, 6]);
    let w = param(&mut g, &mut rng, "w", &[cout, cin, k, k]);
    let b = param(&mut g, &mut rng, "b", &[cout]);
    let p = k / 2;
    let y = g.wire("conv", Op::Conv { pads: [p; 4] }, &[x, w, b]).unwrap();
    let loss = mse(&mut g, &mut rng, y);
    check(
        &format!("conv {k}x{k} {cin}->{cout} {lowering:?}"),
        g,
        loss,
        lowering,
        1,
    );
}

#[test]
fn conv_1x1_3x3_5x5_with_bias_both_lowerings() {
    for lowering in [WeightGradLowering::ShiftInput, WeightGradLowering::ShiftOutputGrad] {
        conv_case(1, 4, 6, lowering);
        conv_case(3, 3, 5, lowering);
        conv_case(3, 6, 2, lowering);
        conv_case(5, 3, 4, lowering);
    }
}

fn unary(name: &str, op: Op) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut g = Graph::new();
    let x = param(&mut g, &mut rng, "x", &[2, 3, 4]);
    let y = g.wire(name, op, &[x]).unwrap();
    let loss = mse(&mut g, &mut rng, y);
    check(name, g, loss, WeightGradLowering::Auto, 2);
}

#[test]
fn elementwise_unary() {
    unary("relu", Op::Relu);
    unary("neg", Op::Neg);
    unary("abs", Op::Abs);
    unary(
        "reduce_sum",
        Op::ReduceSum {
            axes: vec![0, 2],
            keepdims: false,
        },
    );
    unary(
        "reduce_sum_keep",
        Op::ReduceSum {
            axes: vec![1],
            keepdims: true,
        },
    );
    unary("transpose", Op::Transpose { perm: vec![2, 0, 1] });
    unary("reshape", Op::Reshape { shape: vec![6, 4] });
    unary(
        "pad",
        Op::Pad {
            pads: vec![0, 1, 2, 0, 2, 1],
        },
    );
    unary(
        "slice",
        Op::Slice {
            axes: vec![1, 2],
            starts: vec![1, 0],
            ends: vec![3, 3],
        },
    );
    unary(
        "expand",
        Op::Expand {
            shape: vec![5, 2, 3, 4],
        },
    );
}

#[test]
fn sqrt_of_positive_values() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut g = Graph::new();
    let x = g
        .wire(
            "x",
            Op::Param(Tensor::f32(&[6], vec![0.5, 1.0, 2.0, 3.0, 0.7, 1.5])),
            &[],
        )
        .unwrap();
    let y = g.wire("sqrt", Op::Sqrt, &[x]).unwrap();
    let loss = mse(&mut g, &mut rng, y);
    check("sqrt", g, loss, WeightGradLowering::Auto, 3);
}

#[test]
fn binary_ops_with_broadcasting() {
    for (name, op) in [("add", Op::Add), ("sub", Op::Sub), ("mul", Op::Mul), ("div", Op::Div)] {
        for b_shape in [vec![2, 3, 4], vec![1, 3, 1], vec![4], vec![]] {
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let mut g = Graph::new();
            let a = param(&mut g, &mut rng, "a", &[2, 3, 4]);
            // Divisors kept away from zero.
            let n: usize = b_shape.iter().product();
            let bv = (0..n).map(|_| rng.random_range(1.0f32..2.0)).collect();
            let b = g.wire("b", Op::Param(Tensor::f32(&b_shape, bv)), &[]).unwrap();
            let y = g.wire(name, op.clone(), &[a, b]).unwrap();
            let loss = mse(&mut g, &mut rng, y);
            check(&format!("{name} by {b_shape:?}"), g, loss, WeightGradLowering::Auto, 4);
        }
    }
}

#[test]
fn matmul_concat_where() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let mut g = Graph::new();
    let a = param(&mut g, &mut rng, "a", &[2, 3, 4]);
    let b = param(&mut g, &mut rng, "b", &[2, 4, 5]);
    let c = param(&mut g, &mut rng, "c", &[2, 3, 2]);
    let m = g.wire("matmul", Op::MatMul, &[a, b]).unwrap();
    let cat = g.wire("concat", Op::Concat { axis: 2 }, &[m, c]).unwrap();
    let zero = g.constant("zero", Tensor::scalar(0.0));
    let pos = g.wire("pos", Op::Greater, &[cat, zero]).unwrap();
    let neg = g.wire("neg", Op::Neg, &[cat]).unwrap();
    let y = g.wire("where", Op::Where, &[pos, cat, neg]).unwrap();
    let loss = mse(&mut g, &mut rng, y);
    check("matmul, concat, where", g, loss, WeightGradLowering::Auto, 5);
}

#[test]
fn pixel_shuffle_both_layouts() {
    for mode in [ShuffleMode::Crd, ShuffleMode::Dcr] {
        for s in [2, 3] {
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let mut g = Graph::new();
            let x = param(&mut g, &mut rng, "x", &[2, 2 * s * s, 3, 4]);
            let y = g.wire("shuffle", Op::DepthToSpace { block: s, mode }, &[x]).unwrap();
            let loss = mse(&mut g, &mut rng, y);
            check(
                &format!("depth_to_space {mode:?} x{s}"),
                g,
                loss,
                WeightGradLowering::Auto,
                6,
            );
        }
    }
}
