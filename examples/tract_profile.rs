//! Where tract spends a train step's time, per op type: WDSR-B (F = 32, e = 6) with 2
//! blocks of one `--conv` kind, x2, batch 8, HR patch 48, as `cargo bench --bench
//! train_step -- "conv kind"` runs it. Each node is timed as tract's plan runs it (after
//! tract's own optimisation, so the names are tract's: OptMatMulPack packs a MatMul's
//! operands, MoveAxis is a Transpose), over 4 steps after a warm-up.
//!
//! With `upscale`, the same for inference: the built-in WDSR-B x2 on a 256 x 256 LR
//! picture, whole (`cargo bench --bench tract_threads`'s first row).
//!
//!   cargo run --release --example tract_profile -- depthwise
//!   cargo run --release --example tract_profile -- upscale

use anyhow::{Context, Result};
use srgraph::compiler::{compile, TrainConfig};
use srgraph::models::{Arch, ConvKind, ModelConfig};
use std::collections::BTreeMap;
use std::time::Instant;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{eval, SimpleState};

const RUNS: usize = 4;

fn main() -> Result<()> {
    let kind = std::env::args()
        .nth(1)
        .context("name a conv kind (low-rank, flattened, group:G, depthwise or inverted-residual) or upscale")?;
    let (plan, inputs) = match kind.as_str() {
        "upscale" => upscale_plan()?,
        _ => train_step_plan(&kind)?,
    };
    profile(&kind, &plan, inputs)
}

type Plan = std::sync::Arc<TypedRunnableModel>;

/// The built-in x2's inference on a 256 x 256 LR picture of mid-grey.
fn upscale_plan() -> Result<(Plan, TVec<TValue>)> {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/wdsr-b-x2.onnx"))?;
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])?
        .with_input_fact(0, f32::fact([1, 3, 256, 256]).into())?;
    let plan = model.into_optimized()?.into_runnable()?;
    let picture = tract_ndarray::ArrayD::<f32>::from_elem(vec![1, 3, 256, 256], 128.0);
    Ok((plan, tvec![Tensor::from(picture).into()]))
}

/// One train step of WDSR-B with 2 blocks of `kind`, its state as inputs.
fn train_step_plan(kind: &str) -> Result<(Plan, TVec<TValue>)> {
    let mut cfg = ModelConfig::new(Arch::WdsrB);
    cfg.blocks = 2;
    cfg.conv = ConvKind::parse(kind)?;
    let t = TrainConfig {
        batch: 8,
        patch: 48,
        ..TrainConfig::default()
    };
    let step = compile(&cfg, &t)?.train_step;
    // The state as inputs, as srgraph's tract trainer feeds it.
    let srgraph::runtime::tract::LiftedStep {
        graph: lifted, shapes, ..
    } = srgraph::runtime::tract::lifted_step(&step)?;
    let bytes = srgraph::onnx::Model::new(lifted, vec![]).to_bytes("train_step")?;
    let mut model = tract_onnx::onnx().model_for_read(&mut &bytes[..])?;
    for (i, s) in shapes.iter().enumerate() {
        model = model.with_input_fact(i, f32::fact(s.clone()).into())?;
    }
    let plan = model.into_optimized()?.into_runnable()?;
    let inputs: TVec<TValue> = shapes
        .iter()
        .map(|s| Tensor::from(tract_ndarray::ArrayD::<f32>::from_elem(s.clone(), 0.05)).into())
        .collect();
    Ok((plan, inputs))
}

/// Times each node of `plan` as it runs, over RUNS runs after a warm-up; prints the
/// median run and the op types by time.
fn profile(kind: &str, plan: &Plan, inputs: TVec<TValue>) -> Result<()> {
    let mut by_op: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut steps = Vec::new();
    for run in 0..=RUNS {
        let mut state = SimpleState::new(plan)?;
        let start = Instant::now();
        state.run_plan_with_eval(inputs.clone(), |ctx, op_state, node, input| {
            let t0 = Instant::now();
            let out = eval(ctx, op_state, node, input);
            if run > 0 {
                let entry = by_op.entry(node.op().name().to_string()).or_default();
                entry.0 += t0.elapsed().as_secs_f64();
                entry.1 += 1;
            }
            out
        })?;
        if run > 0 {
            steps.push(start.elapsed().as_secs_f64());
        }
    }
    steps.sort_by(f64::total_cmp);
    println!("{kind}: median step {:.1} ms", steps[RUNS / 2] * 1e3);
    let mut rows: Vec<_> = by_op.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    let total: f64 = rows.iter().map(|(_, (s, _))| s).sum();
    for (op, (seconds, nodes)) in rows.iter().take(12) {
        println!(
            "{op:20} {:7.1} ms/step {:4} nodes {:5.1}%",
            seconds / RUNS as f64 * 1e3,
            nodes / RUNS,
            100.0 * seconds / total
        );
    }
    Ok(())
}
