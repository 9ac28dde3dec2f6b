//! Every gradient rule against central finite differences, op by op and for
//! whole small networks (weight norm included), with an MSE loss against a
//! random target.
//!
//! How: the analytic gradient g of the loss L at parameters p, projected on a
//! random direction d (unit norm over all parameters), must equal the central
//! difference D(h) = (L(p + h d) - L(p - h d)) / (2 h), extrapolated as
//! (4 D(eps/2) - D(eps)) / 3 so that its O(eps^2) error cancels. Both run in
//! tract on a float64 copy of the graph (`Model::to_bytes_f64`): in float32 the
//! loss's rounding (1e-7 |L|, and L is in the thousands on pixel values) would
//! drown the difference quotient. With eps = 1e-5 the two agree to about 1e-9
//! (measured), so the tolerance is 1e-6 of |g . d|; a wrong rule misses by O(1)
//! (breaking Mul's rule gives a 20x miss).

use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use srgraph::autodiff::{gradients, ConvSpelling, InputGrad, Spellings, WeightGrad};
use srgraph::compiler::qat::{fake_quantize, scale_name, FakeQuant};
use srgraph::ir::{Graph, Op, Outlet, ShuffleMode, Tensor};
use srgraph::onnx::quantize::{Grid, Range};
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

/// Check d(loss)/d(params) of the graph `g` (whose parameters are its Params) along random directions.
fn check(what: &str, mut g: Graph, loss: Outlet, spellings: &Spellings, seed: u64) {
    let wrt: Vec<Outlet> = (0..g.nodes.len())
        .filter(|&i| matches!(g.nodes[i].op, Op::Param(_)))
        .map(|node| Outlet { node, slot: 0 })
        .collect();
    let grads = gradients(&mut g, loss, &wrt, spellings).unwrap();
    g.output("loss", loss);
    for (i, gr) in grads.iter().enumerate() {
        g.output(format!("grad{i}"), *gr);
    }
    g.prune();
    check_graph(what, &g, vec![], seed);
}

/// `g` outputs the loss, then one gradient per parameter (in node order); its
/// inputs are `data`. Compare the gradients with finite differences of the loss.
fn check_graph(what: &str, g: &Graph, data: Vec<ArrayD<f32>>, seed: u64) {
    check_graph_with(what, g, data, seed, 1e-5, 1e-6)
}

/// As `check_graph`, with the step `eps` and the relative tolerance `rel`.
fn check_graph_with(what: &str, g: &Graph, data: Vec<ArrayD<f32>>, seed: u64, eps: f64, rel: f64) {
    let (lifted, values) = g.lift_values();
    let is_param: Vec<bool> = values
        .iter()
        .map(|(n, _)| {
            g.nodes
                .iter()
                .any(|node| &node.name == n && matches!(node.op, Op::Param(_)))
        })
        .collect();
    let bytes = Model::new(lifted, vec![]).to_bytes_f64(what).unwrap();
    let mut shapes: Vec<Vec<usize>> = data.iter().map(|a| a.shape().to_vec()).collect();
    shapes.extend(values.iter().map(|(_, t)| t.shape().to_vec()));
    let shape_refs: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
    let model = TractModel::new_f64(&bytes, &shape_refs).unwrap();
    let data: Vec<ArrayD<f64>> = data.iter().map(|a| a.mapv(f64::from)).collect();
    let run = |vals: &[Vec<f64>]| -> Vec<ArrayD<f64>> {
        let mut inputs = data.clone();
        inputs.extend(
            vals.iter()
                .zip(&shapes[data.len()..])
                .map(|(v, s)| ArrayD::from_shape_vec(s.clone(), v.clone()).unwrap()),
        );
        model.run_f64(inputs).unwrap()
    };
    let p0: Vec<Vec<f64>> = values
        .iter()
        .map(|(_, t)| t.as_f32().unwrap().iter().map(|&v| v as f64).collect())
        .collect();
    let out = run(&p0);
    let loss0 = out[0].iter().next().copied().unwrap();
    let grad: Vec<Vec<f64>> = out[1..=is_param.iter().filter(|&&p| p).count()]
        .iter()
        .map(|a| a.iter().copied().collect())
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for k in 0..3 {
        // A random direction over the parameters (buffers stay put), of unit norm.
        let mut d: Vec<Vec<f64>> = p0
            .iter()
            .zip(&is_param)
            .map(|(p, &is)| {
                p.iter()
                    .map(|_| if is { rng.random_range(-1.0f64..1.0) } else { 0.0 })
                    .collect()
            })
            .collect();
        let norm = d.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
        d.iter_mut().flatten().for_each(|v| *v /= norm);
        let central = |h: f64| -> f64 {
            let at = |sign: f64| -> Vec<Vec<f64>> {
                p0.iter()
                    .zip(&d)
                    .map(|(p, dd)| p.iter().zip(dd).map(|(a, b)| a + sign * h * b).collect())
                    .collect()
            };
            let lp = run(&at(1.0))[0].iter().next().copied().unwrap();
            let lm = run(&at(-1.0))[0].iter().next().copied().unwrap();
            (lp - lm) / (2.0 * h)
        };
        // Richardson extrapolation cancels the eps^2 term of the central difference.
        let fd = (4.0 * central(eps / 2.0) - central(eps)) / 3.0;
        let param_dirs = d.iter().zip(&is_param).filter(|(_, &is)| is).map(|(dd, _)| dd);
        let an: f64 = grad
            .iter()
            .zip(param_dirs)
            .flat_map(|(g, dd)| g.iter().zip(dd))
            .map(|(a, b)| a * b)
            .sum();
        let tol = rel * an.abs().max(fd.abs()) + 1e-12 * loss0.abs();
        assert!(
            (fd - an).abs() <= tol,
            "{what}, direction {k}: finite difference {fd:.6e}, analytic {an:.6e} (tolerance {tol:.2e})"
        );
    }
}

/// A conv of `cin` -> `cout` channels with a kh x kw kernel in `group` groups.
struct ConvCase {
    kernel: [usize; 2],
    cin: usize,
    cout: usize,
    pads: [usize; 4],
    group: usize,
}

fn conv_case(c: ConvCase, spelling: ConvSpelling) {
    let ConvCase {
        kernel: [kh, kw],
        cin,
        cout,
        pads,
        group,
    } = c;
    let mut rng = ChaCha8Rng::seed_from_u64((kh * 10 + kw) as u64 * 100 + cin as u64);
    let mut g = Graph::new();
    let x = param(&mut g, &mut rng, "x", &[2, cin, 5, 6]);
    let w = param(&mut g, &mut rng, "w", &[cout, cin / group, kh, kw]);
    let b = param(&mut g, &mut rng, "b", &[cout]);
    let y = g.wire("conv", Op::Conv { pads, group }, &[x, w, b]).unwrap();
    let loss = mse(&mut g, &mut rng, y);
    check(
        &format!("conv {kh}x{kw} {cin}->{cout} group {group} pads {pads:?} {spelling:?}"),
        g,
        loss,
        &Spellings::forced(spelling),
        1,
    );
}

fn every_spelling() -> impl Iterator<Item = ConvSpelling> {
    [InputGrad::ConvTranspose, InputGrad::FlippedConv]
        .into_iter()
        .flat_map(|input| {
            [WeightGrad::ShiftInput, WeightGrad::ShiftOutputGrad]
                .into_iter()
                .map(move |weight| ConvSpelling { input, weight })
        })
}

#[test]
fn conv_1x1_3x3_5x5_with_bias_every_spelling() {
    let square = |k: usize, cin, cout, pads| ConvCase {
        kernel: [k, k],
        cin,
        cout,
        pads,
        group: 1,
    };
    for spelling in every_spelling() {
        conv_case(square(1, 4, 6, [0; 4]), spelling);
        conv_case(square(3, 3, 5, [1; 4]), spelling);
        conv_case(square(3, 6, 2, [1; 4]), spelling);
        conv_case(square(5, 3, 4, [2; 4]), spelling);
        // Unequal and missing padding: the flipped kernel's padding is k - 1 - p per side.
        conv_case(square(3, 3, 4, [0, 1, 2, 0]), spelling);
        conv_case(square(3, 2, 3, [0; 4]), spelling);
    }
}

/// The efficient convolutions: flattened (3x1, 1x3), group, depthwise (group = channels,
/// with and without a channel multiplier) and grouped 1x1, each spelling.
#[test]
fn grouped_and_non_square_convs_every_spelling() {
    let case = |kernel, cin, cout, pads, group| ConvCase {
        kernel,
        cin,
        cout,
        pads,
        group,
    };
    for spelling in every_spelling() {
        conv_case(case([3, 1], 3, 4, [1, 0, 1, 0], 1), spelling);
        conv_case(case([1, 3], 4, 2, [0, 1, 0, 1], 1), spelling);
        conv_case(case([3, 3], 4, 6, [1; 4], 2), spelling);
        conv_case(case([3, 3], 4, 4, [1; 4], 4), spelling);
        conv_case(case([3, 3], 3, 6, [1, 1, 0, 2], 3), spelling);
        conv_case(case([1, 1], 6, 4, [0; 4], 2), spelling);
        conv_case(case([3, 1], 4, 4, [1, 0, 1, 0], 4), spelling);
        // One input channel per group is contracted by Mul and ReduceSum, not MatMul:
        // unpadded, and a grouped 1x1 with a channel multiplier.
        conv_case(case([3, 3], 2, 2, [0; 4], 2), spelling);
        conv_case(case([1, 1], 4, 8, [0; 4], 4), spelling);
    }
}

fn unary(name: &str, op: Op) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut g = Graph::new();
    let x = param(&mut g, &mut rng, "x", &[2, 3, 4]);
    let y = g.wire(name, op, &[x]).unwrap();
    let loss = mse(&mut g, &mut rng, y);
    check(name, g, loss, &Spellings::default(), 2);
}

#[test]
fn elementwise_unary() {
    unary("relu", Op::Relu);
    unary("flip", Op::Flip { axes: vec![0, 2] });
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
    unary("clip", Op::Clip { min: -0.3, max: 0.4 });
    unary("reduce_max", Op::ReduceMax { axes: vec![1] });
    unary("reduce_max_two_axes", Op::ReduceMax { axes: vec![0, 2] });
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
    check("sqrt", g, loss, &Spellings::default(), 3);
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
            check(&format!("{name} by {b_shape:?}"), g, loss, &Spellings::default(), 4);
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
    check("matmul, concat, where", g, loss, &Spellings::default(), 5);
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
                &Spellings::default(),
                6,
            );
        }
    }
}

/// Whole networks through the compiler's gradients graph: every architecture,
/// with weight norm, batch norm (batch statistics) and none, MSE loss against a
/// random HR batch. Pixel values are in [0, 255], so the loss is in the
/// hundreds to thousands; the tolerance scales with it as above.
#[test]
fn whole_networks_with_weight_norm_and_batch_norm() {
    use srgraph::compiler::{compile, Loss, TrainConfig};
    use srgraph::models::{Arch, ModelConfig, Norm};
    for arch in Arch::ALL {
        for norm in [Norm::Weight, Norm::Batch, Norm::None] {
            // Batch norm needs statistics worth the name: with 4 channels of 2 x 6 x 6
            // values some channels are nearly constant and 1/std makes the loss so
            // curved that no finite difference is accurate.
            let c = ModelConfig {
                blocks: 2,
                filters: 8,
                expansion: 2,
                norm,
                seed: 3,
                ..ModelConfig::new(arch)
            };
            let t = TrainConfig {
                batch: 4,
                patch: 16,
                loss: Loss::Mse,
                ..TrainConfig::default()
            };
            let g = compile(&c, &t).unwrap().gradients;
            let mut rng = ChaCha8Rng::seed_from_u64(12);
            let mut pixels = |shape: &[usize]| {
                let n = shape.iter().product();
                ArrayD::from_shape_vec(
                    shape.to_vec(),
                    (0..n).map(|_| rng.random_range(0.0f32..255.0)).collect(),
                )
                .unwrap()
            };
            let (lr, hr) = (pixels(&[4, 3, 8, 8]), pixels(&[4, 3, 16, 16]));
            let what = format!("{} {}", arch.name(), norm.name());
            if norm == Norm::Batch {
                // Batch norm makes the loss itself noisy even in float64: the
                // measured error grows as the step shrinks (1e-3 to 1e-2 at
                // eps = 1e-3, up to 0.15 at 1e-5, O(1) at 1e-7), which is rounding,
                // not a wrong rule (that misses by a fixed amount at every eps). So
                // a larger step and a 5% tolerance; every op batch norm is made of
                // is checked tightly above and in the networks without it.
                check_graph_with(&what, &g, vec![lr, hr], 13, 1e-3, 5e-2);
            } else {
                check_graph(&what, &g, vec![lr, hr], 13);
            }
        }
    }
}

/// The sum of a 2-d value: the loss of the single-rule checks below.
fn sum_of_2d(g: &mut Graph, x: Outlet) -> Outlet {
    let sum = Op::ReduceSum {
        axes: vec![0, 1],
        keepdims: false,
    };
    g.wire("loss", sum, &[x]).unwrap()
}

/// d loss / d wrt, as tract computes the graph autodiff writes.
fn gradient_in_tract(g: &mut Graph, loss: Outlet, wrt: Outlet) -> ArrayD<f32> {
    let grads = gradients(g, loss, &[wrt], &Spellings::default()).unwrap();
    g.outputs.clear();
    g.output("grad", grads[0]);
    g.prune();
    let bytes = Model::new(g.clone(), vec![]).to_bytes("gradient").unwrap();
    srgraph::runtime::tract::run_once(&bytes, vec![]).unwrap().remove(0)
}

/// The value of a parameter or constant, by name.
fn value_of(g: &Graph, name: &str) -> ArrayD<f32> {
    match &g.nodes.iter().find(|n| n.name == name).unwrap().op {
        Op::Param(t) | Op::Const(t) => t.as_f32().unwrap().clone(),
        _ => unreachable!("{name} is neither a parameter nor a constant"),
    }
}

/// Fake quantisation's rules: Round passes the gradient unchanged (the straight-through
/// estimator: a step function's true gradient is zero wherever it exists), and nothing
/// passes StopGradient. loss = sum(round(x) * c) + sum(stop(x) * x) has gradient c + stop(x)
/// = c + x, not c + 2x.
#[test]
fn round_is_straight_through_and_stop_gradient_stops() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let mut g = Graph::new();
    let x = param(&mut g, &mut rng, "x", &[2, 5]);
    let c = constant(&mut g, &mut rng, "c", &[2, 5]);
    let rounded = g.wire("round", Op::Round, &[x]).unwrap();
    let stopped = g.wire("stop", Op::StopGradient, &[x]).unwrap();
    let a = g.wire("a", Op::Mul, &[rounded, c]).unwrap();
    let b = g.wire("b", Op::Mul, &[stopped, x]).unwrap();
    let sum = g.wire("sum", Op::Add, &[a, b]).unwrap();
    let loss = sum_of_2d(&mut g, sum);
    let got = gradient_in_tract(&mut g, loss, x);
    let want = value_of(&g, "c") + value_of(&g, "x");
    let worst = (&got - &want).iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(worst < 1e-6, "gradient {got} against c + x {want}");
}

/// Learned step size: with an activation's scale a parameter (`--qat int8-learned`), the
/// rules above give LSQ's gradient (Esser et al. 2020, eq. 3): d/ds of
/// clip(round(x/s), lo, hi) * s is round(x/s) - x/s where the level is inside the grid
/// and the clipped level where it is not. loss = sum(fq(x) * c), x beyond the grid both ways.
#[test]
fn a_learned_activation_scale_gets_lsqs_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let mut g = Graph::new();
    let x = param(&mut g, &mut rng, "x", &[4, 8]);
    let zero = g.constant("zero", Tensor::scalar(0.0));
    let a = g.wire("a", Op::Add, &[x, zero]).unwrap();
    let c = constant(&mut g, &mut rng, "c", &[4, 8]);
    let y = g.wire("y", Op::Mul, &[a, c]).unwrap();
    let loss = sum_of_2d(&mut g, y);
    let range = Range { min: -0.5, max: 0.6 };
    let plan = FakeQuant {
        activations: [("a".to_string(), range)].into(),
        convs: vec![],
        learn_ranges: true,
        weight_bits: 7,
    };
    let (mut g, moved) = fake_quantize(&g, &plan).unwrap();
    let id = g.nodes.iter().position(|n| n.name == scale_name("a")).unwrap();
    let got = gradient_in_tract(&mut g, moved[&loss], Outlet { node: id, slot: 0 });
    let grid = Grid::covering(range);
    let (lo, hi) = (-(grid.zero_point as f32), 255.0 - grid.zero_point as f32);
    let (mut want, mut clipped) = (0.0f32, 0);
    for (x, c) in value_of(&g, "x").iter().zip(value_of(&g, "c").iter()) {
        let level = (x / grid.scale).round_ties_even();
        let inside = (lo..=hi).contains(&level);
        clipped += usize::from(!inside);
        want += c * if inside {
            level - x / grid.scale
        } else {
            level.clamp(lo, hi)
        };
    }
    assert!(
        clipped > 4 && clipped < 28,
        "{clipped} of 32 values clipped: both branches are checked"
    );
    let got = got.iter().next().copied().unwrap();
    assert!(
        (got - want).abs() < 1e-3 * want.abs().max(1.0),
        "gradient {got} against LSQ's {want}"
    );
}

/// An op without a gradient rule is refused by name, not with a panic.
#[test]
fn an_op_without_a_rule_is_named() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let mut g = Graph::new();
    let x = param(&mut g, &mut rng, "x", &[4]);
    let two = g.constant("two", Tensor::scalar(2.0));
    let y = g.wire("pow", Op::Pow, &[x, two]).unwrap();
    let loss = mse(&mut g, &mut rng, y);
    let err = gradients(&mut g, loss, &[x], &Spellings::default()).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("pow (Pow)") && msg.contains("no gradient rule for Pow"),
        "{msg}"
    );
}
