//! Gradient spellings chosen by measurement.
//!
//! A conv's input and weight gradients each have two spellings in standard ONNX ops
//! (`autodiff::conv`), and which is faster depends on the shape and on the runtime:
//! ONNX Runtime's CPU ConvTranspose is 1.5-3x slower than the flipped-kernel Conv when
//! dx has at least as many channels as dy and faster when it has far fewer, and CUDA's
//! kernels rank them differently again. So before compiling a train step, each distinct
//! conv of the network has both spellings of each gradient timed in the runtime that
//! will train it, on the step's real shapes, and the faster kept.
//!
//! Measurements are cached per runtime, thread count and CPU in
//! `<cache>/spellings/<target>.json`, one entry per conv shape, written once and never
//! re-measured: a second build is instant, and a resumed run compiles the same graph
//! bit for bit. Delete the file to measure again.

use crate::autodiff::{input_grad, weight_grad, ConvShape, ConvSpelling, Emitter, InputGrad, Spellings, WeightGrad};
use crate::compiler::TrainConfig;
use crate::ir::{known, Dim, Fact, Graph, Op};
use crate::models::{build_network, ModelConfig};
use crate::onnx::Model;
use crate::runtime::ort::Device;
use crate::runtime::{median_run_time, Runtime};
use anyhow::{Context, Result};
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Runs of each candidate; the median is compared.
const RUNS: usize = 5;

/// Where and how the train step will run.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub runtime: Runtime,
    /// 0: all cores.
    pub threads: usize,
}

impl Target {
    /// The cache file's name: the runtime, the threads it gets and the CPU it runs on.
    fn key(&self) -> String {
        let threads = match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let cpu: String = cpu_model()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("{}-{threads}threads-{}", self.runtime.name(), cpu.trim_matches('-'))
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// One conv shape's measurement, as cached.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    x: [usize; 4],
    w: [usize; 4],
    pads: [usize; 4],
    /// Absent in caches written before grouped convs: group 1.
    #[serde(default = "one")]
    group: usize,
    input: InputGrad,
    weight: WeightGrad,
    /// Median seconds of each candidate measured, by spelling name.
    seconds: Vec<(String, f64)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    target: String,
    convs: Vec<Entry>,
}

/// The cache file of `target` under the cache root.
pub fn cache_path(cache: &Path, target: &Target) -> PathBuf {
    cache.join("spellings").join(format!("{}.json", target.key()))
}

/// The measured spellings of every conv of `c` trained as `t` says on `target`:
/// read from the cache, measuring (and caching) the shapes it lacks. `measure: false`
/// only reads, leaving the rule for the shapes not cached.
pub fn spellings(c: &ModelConfig, t: &TrainConfig, target: &Target, cache: &Path, measure: bool) -> Result<Spellings> {
    // `--device auto` trains where CUDA starts: measure there, once decided.
    let resolved;
    let target = match target.runtime {
        Runtime::Ort(Device::Auto) => {
            let device = if crate::runtime::ort::builder(true, 0).is_ok() {
                Device::Cuda
            } else {
                Device::Cpu
            };
            resolved = Target {
                runtime: Runtime::Ort(device),
                threads: target.threads,
            };
            &resolved
        }
        _ => target,
    };
    let path = cache_path(cache, target);
    let mut file = read_cache(&path);
    let shapes = conv_shapes(c, t)?;
    let missing: Vec<ConvShape> = shapes
        .iter()
        .filter(|s| !file.convs.iter().any(|e| shape_of(e) == **s))
        .copied()
        .collect();
    if measure && !missing.is_empty() {
        let start = Instant::now();
        let measured = missing
            .iter()
            .map(|s| measure_conv(s, target).with_context(|| format!("timing the gradients of a conv {s:?}")))
            .collect::<Result<Vec<Entry>>>()?;
        // Another process may have measured the same shapes meanwhile: its entries stay
        // (first written wins) and this one compiles with them too, so that every run reading
        // the file later compiles the graph this one does.
        file = read_cache(&path);
        for e in measured {
            if !file.convs.iter().any(|f| shape_of(f) == shape_of(&e)) {
                file.convs.push(e);
            }
        }
        file.target = target.key();
        // A cache that cannot be written costs a second measurement next time, nothing more.
        if let Err(e) = write_cache(&path, &file) {
            eprintln!("warning: {e:#}");
        }
        eprintln!(
            "tuned       {} conv shape(s) in {:.1} s for {} (cached in {})",
            missing.len(),
            start.elapsed().as_secs_f64(),
            target.runtime.name(),
            path.display()
        );
    }
    let measured = file
        .convs
        .iter()
        .filter(|e| shapes.contains(&shape_of(e)))
        .map(|e| {
            let spelling = ConvSpelling {
                input: e.input,
                weight: e.weight,
            };
            (shape_of(e), spelling)
        })
        .collect();
    Ok(Spellings { forced: None, measured })
}

fn shape_of(e: &Entry) -> ConvShape {
    ConvShape {
        x: e.x,
        w: e.w,
        pads: e.pads,
        group: e.group,
    }
}

fn one() -> usize {
    1
}

fn read_cache(path: &Path) -> CacheFile {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            eprintln!(
                "warning: {} is not a spellings cache ({e}): measuring again",
                path.display()
            );
            CacheFile::default()
        }),
        Err(_) => CacheFile::default(),
    }
}

fn write_cache(path: &Path, file: &CacheFile) -> Result<()> {
    let dir = crate::util::folder_of(path);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // One conv per line: a file a person can read and diff.
    let mut text = format!(
        "{{\"target\": {},\n\"convs\": [\n",
        serde_json::to_string(&file.target)?
    );
    for (i, e) in file.convs.iter().enumerate() {
        let comma = if i + 1 < file.convs.len() { "," } else { "" };
        text.push_str(&format!("  {}{comma}\n", serde_json::to_string(e)?));
    }
    text.push_str("]}\n");
    crate::util::write_atomic(path, text.as_bytes())
}

/// The distinct shapes of the convs whose gradients the train step computes.
pub fn conv_shapes(c: &ModelConfig, t: &TrainConfig) -> Result<Vec<ConvShape>> {
    let side = Dim::Known(t.patch / c.scale);
    // Dry: zero weights, the shapes alone, without drawing the initialisation.
    let net = build_network(c, [Dim::Known(t.batch), side.clone(), side], true, true)?;
    let g = &net.graph;
    let mut shapes = Vec::new();
    for node in &g.nodes {
        let Op::Conv { pads, group } = node.op else { continue };
        let known = |i: usize| -> Option<[usize; 4]> {
            let s: Vec<usize> = g
                .fact(node.inputs[i])
                .shape
                .iter()
                .map(Dim::known)
                .collect::<Option<_>>()?;
            s.try_into().ok()
        };
        let (Some(x), Some(w)) = (known(0), known(1)) else {
            continue;
        };
        let s = ConvShape { x, w, pads, group };
        if !shapes.contains(&s) {
            shapes.push(s);
        }
    }
    Ok(shapes)
}

/// Both spellings of each gradient of one conv, timed; the faster of each.
fn measure_conv(s: &ConvShape, target: &Target) -> Result<Entry> {
    let [n, _, h, w] = s.x;
    let [o, _, kh, kw] = s.w;
    let [pt, pl, pb, pr] = s.pads;
    let y = [n, o, h + pt + pb + 1 - kh, w + pl + pr + 1 - kw];
    let mut seconds = Vec::new();
    let mut time = |name: &str, graph: Graph, inputs: &[[usize; 4]]| -> Result<f64> {
        let bytes = Model::new(graph, vec![]).to_bytes("tune")?;
        let values: Vec<ArrayD<f32>> = inputs.iter().map(filled).collect();
        let t = median_run_time(target.runtime, &bytes, &values, target.threads, RUNS)?;
        seconds.push((name.to_string(), t));
        Ok(t)
    };
    let input = if s.flippable() {
        let transpose = time(
            "conv-transpose",
            candidate(s, y, Candidate::Input(InputGrad::ConvTranspose))?,
            &[y, s.w],
        )?;
        let flipped = time(
            "flipped-conv",
            candidate(s, y, Candidate::Input(InputGrad::FlippedConv))?,
            &[y, s.w],
        )?;
        if flipped < transpose {
            InputGrad::FlippedConv
        } else {
            InputGrad::ConvTranspose
        }
    } else {
        InputGrad::ConvTranspose
    };
    let weight = if s.is_pointwise() {
        // One MatMul either way: nothing is shifted.
        s.rule().weight
    } else {
        let x_shift = time(
            "shift-input",
            candidate(s, y, Candidate::Weight(WeightGrad::ShiftInput))?,
            &[s.x, y],
        )?;
        let dy_shift = time(
            "shift-output-grad",
            candidate(s, y, Candidate::Weight(WeightGrad::ShiftOutputGrad))?,
            &[s.x, y],
        )?;
        if dy_shift < x_shift {
            WeightGrad::ShiftOutputGrad
        } else {
            WeightGrad::ShiftInput
        }
    };
    Ok(Entry {
        x: s.x,
        w: s.w,
        pads: s.pads,
        group: s.group,
        input,
        weight,
        seconds,
    })
}

enum Candidate {
    Input(InputGrad),
    Weight(WeightGrad),
}

/// One gradient of one conv alone: inputs (dy, w) for the input gradient, (x, dy) for
/// the weight gradient, all fed at run time as in the train step.
fn candidate(s: &ConvShape, y: [usize; 4], c: Candidate) -> Result<Graph> {
    let mut g = Graph::new();
    let out = match c {
        Candidate::Input(spelling) => {
            let dy = g.input("dy", Fact::f32(known(&y)));
            let w = g.input("w", Fact::f32(known(&s.w)));
            input_grad(&mut Emitter::new(&mut g, "grad"), dy, w, s, spelling)?
        }
        Candidate::Weight(spelling) => {
            let x = g.input("x", Fact::f32(known(&s.x)));
            let dy = g.input("dy", Fact::f32(known(&y)));
            weight_grad(&mut Emitter::new(&mut g, "grad"), x, dy, s, spelling)?
        }
    };
    g.output("out", out);
    g.prune();
    g.check()?;
    Ok(g)
}

/// Values in [-1, 1) that are neither zero nor denormal, so no kernel takes a shortcut.
fn filled(shape: &[usize; 4]) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    let values = (0..n)
        .map(|i| ((i as u64 * 2654435761 % 1000) as f32 + 0.5) / 500.0 - 1.0)
        .collect();
    ArrayD::from_shape_vec(shape.to_vec(), values).expect("the product of the shape")
}
