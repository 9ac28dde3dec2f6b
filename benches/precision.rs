//! Upscale time of the same network in each precision, side by side in one process: a
//! 512 x 512 picture (Set5's baby) upscaled whole by ONNX Runtime and by tract, on every
//! core, the runs of all the files alternating round after round so that a machine that
//! slows down slows them all alike. Prints medians, and each file's ratio to its float32
//! file (`NAME-fp32.onnx` beside `NAME-fp16.onnx` and `NAME-int8.onnx`; else the first file).
//! `tools/bench/precision_table.sh` makes the files and runs it for the docs' table.
//!
//!   SRGRAPH_BENCH_MODELS=m32.onnx,m16.onnx,m8.onnx cargo bench --bench precision
//!   SRGRAPH_BENCH_ROUNDS=5 SRGRAPH_BENCH_ENGINES=ort ...   (ort, tract or both; default both)
//!
//! Needs the ONNX Runtime library (`tools/setup/fetch-onnxruntime.sh`, or ORT_DYLIB_PATH)
//! and Set5 (SRGRAPH_DATA, else ../shared/data).

use ndarray::Array3;
use srgraph::infer::SrModel;
use srgraph::runtime::ort::Device;
use srgraph::runtime::Runtime;
use std::path::PathBuf;
use std::time::Instant;

struct Contender {
    model: String,
    engine: &'static str,
    m: SrModel,
    times: Vec<f64>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn median(times: &[f64]) -> f64 {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let models: Vec<PathBuf> = env("SRGRAPH_BENCH_MODELS")
        .map(|v| v.split(',').map(PathBuf::from).collect())
        .unwrap_or_else(|| {
            vec![PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/assets/wdsr-b-x2.onnx"
            ))]
        });
    let rounds: usize = env("SRGRAPH_BENCH_ROUNDS").and_then(|v| v.parse().ok()).unwrap_or(5);
    let engines = env("SRGRAPH_BENCH_ENGINES").unwrap_or_else(|| "ort,tract".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let data = env("SRGRAPH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let picture: Array3<u8> = srgraph::data::load_hwc(&data.join("Set5/HR/baby.png")).unwrap();
    let mut contenders = vec![];
    for engine in engines.split(',') {
        let runtime = match engine {
            "ort" => Runtime::Ort(Device::Cpu),
            "tract" => Runtime::Tract,
            other => panic!("SRGRAPH_BENCH_ENGINES: {other:?} is neither ort nor tract"),
        };
        for path in &models {
            let mut m = SrModel::load(path, runtime, cores).unwrap();
            // The first run plans tract for the picture's size: not what is measured.
            m.upscale(&picture, None, &|| {}).unwrap();
            contenders.push(Contender {
                model: path.file_name().unwrap().to_string_lossy().into_owned(),
                engine: if engine == "ort" { "onnxruntime" } else { "tract" },
                m,
                times: vec![],
            });
        }
    }
    for round in 0..rounds {
        eprint!("\rround {}/{rounds}", round + 1);
        for c in contenders.iter_mut() {
            let start = Instant::now();
            std::hint::black_box(c.m.upscale(&picture, None, &|| {}).unwrap());
            c.times.push(start.elapsed().as_secs_f64());
        }
    }
    eprintln!();
    println!("upscale of a 512x512 picture, whole; medians of {rounds} interleaved runs on {cores} threads\n");
    println!("| engine | model | seconds | time / float32's |");
    println!("|---|---|---:|---:|");
    let stem = |m: &str| {
        m.trim_end_matches(".onnx")
            .rsplit_once('-')
            .map_or(m.to_string(), |(s, _)| s.to_string())
    };
    for c in &contenders {
        let same_engine = || contenders.iter().filter(|f| f.engine == c.engine);
        let first = same_engine()
            .find(|f| stem(&f.model) == stem(&c.model) && f.model.ends_with("-fp32.onnx"))
            .or_else(|| same_engine().next())
            .unwrap();
        println!(
            "| {} | {} | {:.3} | {:.2} |",
            c.engine,
            c.model,
            median(&c.times),
            median(&c.times) / median(&first.times)
        );
    }
}
