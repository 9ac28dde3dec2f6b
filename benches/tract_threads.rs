//! tract on one thread and on every core beside ONNX Runtime on every core, side by
//! side in one process: the runs of all the contenders alternate, round after round,
//! so a machine that slows down slows them all alike. Prints a table of medians and
//! ratios to ONNX Runtime. Needs the ONNX Runtime library (`tools/setup/fetch-onnxruntime.sh`,
//! or ORT_DYLIB_PATH) and Set5 (SRGRAPH_DATA, else ../shared/data).
//!
//!   cargo bench --bench tract_threads
//!   SRGRAPH_BENCH_ROUNDS=11 cargo bench --bench tract_threads
//!
//! - upscale: the built-in WDSR-B x2 on a 256 x 256 LR picture (a crop of Set5's baby),
//!   whole and in tiles of 128 (`srgraph upscale`'s default);
//! - train step: the study's 8-block WDSR-B at x2 and x4, batch 16 of 96 px HR patches
//!   (forward, loss, gradients, Adam), as `cargo bench --bench train_step` runs it.

use ndarray::{Array3, ArrayD};
use srgraph::compiler::{compile, TrainConfig};
use srgraph::infer::{builtin, SrModel, DEFAULT_TILE};
use srgraph::models;
use srgraph::runtime::ort::{Device, OrtTrainer};
use srgraph::runtime::tract::TractTrainer;
use srgraph::runtime::{Runtime, Trainer};
use std::time::Instant;

/// One contender of a row: a runtime on some threads, and one timed call of it.
struct Contender<'a> {
    name: String,
    run: Box<dyn FnMut() + 'a>,
    times: Vec<f64>,
}

/// The engines of every row: tract on 1 thread, tract on all cores, ONNX Runtime on all cores.
fn engines(cores: usize) -> [(String, Runtime, usize); 3] {
    [
        ("tract 1 thread".into(), Runtime::Tract, 1),
        (format!("tract {cores} threads"), Runtime::Tract, cores),
        (format!("onnxruntime {cores} threads"), Runtime::Ort(Device::Cpu), cores),
    ]
}

fn upscale_row<'a>(lr: &'a Array3<u8>, tile: Option<usize>, cores: usize) -> Vec<Contender<'a>> {
    engines(cores)
        .into_iter()
        .map(|(name, runtime, threads)| {
            let mut m = builtin::load(Some(2), None, runtime, threads).unwrap();
            // The first run plans tract for the tile size: not what is measured.
            m.upscale(lr, tile, &|| {}).unwrap();
            Contender {
                name,
                run: Box::new(move || {
                    upscale(&mut m, lr, tile);
                }),
                times: vec![],
            }
        })
        .collect()
}

fn upscale(m: &mut SrModel, lr: &Array3<u8>, tile: Option<usize>) {
    std::hint::black_box(m.upscale(lr, tile, &|| {}).unwrap());
}

fn train_row<'a>(scale: usize, cores: usize) -> Vec<Contender<'a>> {
    let mut cfg = models::preset("study-wdsr-b-8").unwrap().unwrap().config().unwrap();
    cfg.scale = scale;
    let t = TrainConfig::default();
    let step = compile(&cfg, &t).unwrap().train_step;
    let lr = ArrayD::from_elem(vec![t.batch, 3, t.patch / scale, t.patch / scale], 100.0f32);
    let hr = ArrayD::from_elem(vec![t.batch, 3, t.patch, t.patch], 110.0f32);
    engines(cores)
        .into_iter()
        .map(|(name, runtime, threads)| {
            let mut trainer: Box<dyn Trainer> = match runtime {
                Runtime::Tract => Box::new(TractTrainer::with_threads(&step, threads).unwrap()),
                Runtime::Ort(device) => Box::new(OrtTrainer::new(&step, device, threads).unwrap()),
            };
            let (lr, hr) = (lr.clone(), hr.clone());
            let mut n = 0;
            let mut run = move || {
                n += 1;
                trainer.step(lr.clone(), hr.clone(), 1e-4, n).unwrap();
            };
            run(); // warm-up: the first step allocates what later ones reuse
            Contender {
                name,
                run: Box::new(run),
                times: vec![],
            }
        })
        .collect()
}

fn median(times: &[f64]) -> f64 {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("SRGRAPH_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let data = std::env::var_os("SRGRAPH_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let lr = srgraph::data::load_hwc(&data.join("Set5/HR/baby.png")).unwrap();
    let lr = lr.slice(ndarray::s![128..384, 128..384, ..]).to_owned();
    let mut rows: Vec<(String, Vec<Contender>)> = vec![
        ("upscale 256x256 x2, whole".into(), upscale_row(&lr, None, cores)),
        (
            format!("upscale 256x256 x2, tiles {DEFAULT_TILE}"),
            upscale_row(&lr, Some(DEFAULT_TILE), cores),
        ),
        ("train step WDSR-B 8 blocks x2".into(), train_row(2, cores)),
        ("train step WDSR-B 8 blocks x4".into(), train_row(4, cores)),
    ];
    for round in 0..rounds {
        eprint!("\rround {}/{rounds}", round + 1);
        for (_, contenders) in rows.iter_mut() {
            for c in contenders.iter_mut() {
                let start = Instant::now();
                (c.run)();
                c.times.push(start.elapsed().as_secs_f64());
            }
        }
    }
    eprintln!();
    print_table(&rows, rounds, cores);
}

fn print_table(rows: &[(String, Vec<Contender>)], rounds: usize, cores: usize) {
    let names: Vec<&str> = rows[0].1.iter().map(|c| c.name.as_str()).collect();
    println!("medians of {rounds} interleaved runs, seconds; ratio = time / ONNX Runtime's ({cores} cores)\n");
    println!(
        "| | {} | {} / {} | {} / onnxruntime | {} / onnxruntime |",
        names.join(" | "),
        names[0],
        names[1],
        names[0],
        names[1]
    );
    println!("|---|---|---|---|---|---|---|");
    for (what, contenders) in rows {
        let m: Vec<f64> = contenders.iter().map(|c| median(&c.times)).collect();
        println!(
            "| {what} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} | {:.2} |",
            m[0],
            m[1],
            m[2],
            m[0] / m[1],
            m[0] / m[2],
            m[1] / m[2]
        );
    }
}
