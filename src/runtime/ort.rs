//! ONNX Runtime through `ort`, loaded at run time from its shared library (the
//! one in PyPI's onnxruntime wheel; `tools/setup/fetch-onnxruntime.sh` fetches it).
//!
//! Training keeps the parameters and Adam moments inside the runtime: two sets
//! of tensors made by the runtime's allocator (device memory under CUDA) are
//! used in turn, one bound as the step's inputs and the other as its outputs.

use super::Trainer;
use crate::compiler::state;
use crate::ir::{Graph, Tensor};
use anyhow::{ensure, Result};
use ndarray::ArrayD;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use ort::value::Tensor as OrtTensor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The ONNX Runtime release srgraph is built and tested against.
pub const ORT_VERSION: &str = "1.32.0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// CUDA or an error: never a silent fall-back.
    Cuda,
    /// CUDA when it works, else the CPU, saying so.
    Auto,
}

/// Where the library is looked for, in order.
pub fn library_candidates() -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        c.push(PathBuf::from(p));
    }
    let lib = format!("libonnxruntime.so.{ORT_VERSION}");
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(cache) = cache {
        c.push(cache.join(format!("srgraph/onnxruntime-{ORT_VERSION}")).join(&lib));
    }
    c.push(PathBuf::from(format!(
        ".venv/lib/python3.11/site-packages/onnxruntime/capi/{lib}"
    )));
    c
}

type Loaded = (ort::environment::Environment, PathBuf);
static ENVIRONMENT: OnceLock<std::result::Result<Loaded, String>> = OnceLock::new();

/// Load the library once per process.
pub fn environment() -> Result<&'static ort::environment::Environment> {
    loaded().map(|(env, _)| env)
}

/// The file the library was loaded from.
pub fn library_path() -> Result<&'static std::path::Path> {
    loaded().map(|(_, path)| path.as_path())
}

fn loaded() -> Result<&'static Loaded> {
    let env = ENVIRONMENT.get_or_init(|| {
        // A library asked for by name is that library or an error, never another one found instead.
        if let Some(asked) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !Path::new(p).exists()) {
            return Err(format!(
                "ORT_DYLIB_PATH is {}, which does not exist: point it at a libonnxruntime.so, or unset it to use \
                 the one tools/setup/fetch-onnxruntime.sh installs",
                Path::new(&asked).display()
            ));
        }
        let candidates = library_candidates();
        let Some(path) = candidates.iter().find(|p| p.exists()) else {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            return Err(format!(
                "the ONNX Runtime library was not found (looked at: {}). Run tools/setup/fetch-onnxruntime.sh, which \
                 installs onnxruntime {ORT_VERSION} from PyPI, or set ORT_DYLIB_PATH to a libonnxruntime.so; or train \
                 with --engine tract, which needs no library",
                tried.join(", ")
            ));
        };
        let builder =
            ort::init_from(path).map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?;
        let env = builder
            .with_name("srgraph")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime: {e}"))?;
        Ok((env, path.clone()))
    });
    env.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// A session for `onnx` on `device`; returns it and the device it really runs on.
pub fn session(onnx: &[u8], device: Device, threads: usize) -> Result<(Session, Device)> {
    on_device(device, |cuda| Ok(builder(cuda, threads)?.commit_from_memory(onnx)?))
}

/// A session for a graph run step after step in training. Without the memory pattern
/// ONNX Runtime plans no block for all of a step's intermediates up front: the WDSR-B x2
/// step (batch 16 of 96 px) peaks at 531 MB instead of 957 MB, its time within 1.5%
/// (tools/bench/ort_step_ab.py pattern).
pub fn training_session(onnx: &[u8], device: Device, threads: usize) -> Result<(Session, Device)> {
    on_device(device, |cuda| {
        let msg = |e: ort::Error<SessionBuilder>| anyhow::anyhow!("{e}");
        Ok(builder(cuda, threads)?
            .with_memory_pattern(false)
            .map_err(msg)?
            .commit_from_memory(onnx)?)
    })
}

/// The GPU CUDA sessions run on: 0, or a data-parallel rank's local rank (one rank per GPU).
static CUDA_DEVICE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

pub fn set_cuda_device(id: i32) {
    CUDA_DEVICE.store(id, std::sync::atomic::Ordering::Relaxed);
}

/// Session options: all optimisations, `threads` (0: all cores), CUDA or not.
pub fn builder(cuda: bool, threads: usize) -> Result<SessionBuilder> {
    // The builder's errors carry the builder, which is not Send: keep their message.
    let msg = |e: ort::Error<SessionBuilder>| anyhow::anyhow!("{e}");
    let mut b = Session::builder(environment()?)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(msg)?;
    if threads > 0 {
        b = b.with_intra_threads(threads).map_err(msg)?;
    }
    if cuda {
        let device = CUDA_DEVICE.load(std::sync::atomic::Ordering::Relaxed);
        b = b
            .with_execution_providers([ort::ep::CUDA::default()
                .with_device_id(device)
                .build()
                .error_on_failure()])
            .map_err(msg)?;
    }
    Ok(b)
}

/// `build(cuda)` for `device`, and the device it really runs on: CUDA or an error for
/// `Cuda`, CUDA or (saying so) the CPU for `Auto`.
pub fn on_device<T>(device: Device, build: impl Fn(bool) -> Result<T>) -> Result<(T, Device)> {
    match device {
        Device::Cpu => Ok((build(false)?, Device::Cpu)),
        Device::Cuda => build(true).map(|s| (s, Device::Cuda)).map_err(|e| {
            e.context(
                "the CUDA execution provider could not start. It needs the onnxruntime-gpu 1.31.1 library \
                 (ORT_DYLIB_PATH) with libonnxruntime_providers_cuda.so beside it, CUDA 13 (cuBLAS, cuRAND, cudart) \
                 and cuDNN 9 on LD_LIBRARY_PATH, and an NVIDIA GPU: tools/setup/fetch-onnxruntime.sh --gpu installs \
                 the libraries and prints the two variables",
            )
        }),
        Device::Auto => match build(true) {
            Ok(s) => Ok((s, Device::Cuda)),
            Err(e) => {
                eprintln!("note: CUDA is not available ({e:#}); running on the CPU");
                Ok((build(false)?, Device::Cpu))
            }
        },
    }
}

/// Runs a train-step graph in ONNX Runtime, state kept in runtime memory.
pub struct OrtTrainer {
    session: Session,
    device: Device,
    names: Vec<String>,
    /// Two sets of state tensors: inputs of this step, outputs of this step.
    sets: [Vec<OrtTensor<f32>>; 2],
    current: usize,
}

impl OrtTrainer {
    pub fn new(step: &Graph, device: Device, threads: usize) -> Result<OrtTrainer> {
        let (lifted, values) = step.lift_values();
        ensure!(
            step.inputs.len() == 4,
            "a train step takes lr, hr, learning_rate and step before its state"
        );
        for (name, _) in &values {
            ensure!(
                lifted.outputs.iter().any(|(o, _)| *o == state::next(name)),
                "the step does not update {name}"
            );
        }
        let bytes = crate::onnx::Model::new(lifted, vec![]).to_bytes("train_step")?;
        let (session, device) = training_session(&bytes, device, threads)?;
        let allocator = match device {
            Device::Cuda => Allocator::new(
                &session,
                MemoryInfo::new(AllocationDevice::CUDA, 0, AllocatorType::Device, MemoryType::Default)?,
            )?,
            _ => Allocator::default(),
        };
        let mut sets: [Vec<OrtTensor<f32>>; 2] = [vec![], vec![]];
        for (_, t) in &values {
            for set in &mut sets {
                set.push(OrtTensor::<f32>::new(&allocator, t.shape().to_vec())?);
            }
        }
        let mut trainer = OrtTrainer {
            session,
            device,
            names: values.iter().map(|(n, _)| n.clone()).collect(),
            sets,
            current: 0,
        };
        trainer.set_values(&values)?;
        Ok(trainer)
    }

    pub fn device(&self) -> Device {
        self.device
    }
}

impl Trainer for OrtTrainer {
    fn step(&mut self, lr: ArrayD<f32>, hr: ArrayD<f32>, learning_rate: f32, step: u64) -> Result<f32> {
        let (input, output) = (self.current, 1 - self.current);
        let mut binding = self.session.create_binding()?;
        binding.bind_input("lr", &OrtTensor::from_array(lr)?)?;
        binding.bind_input("hr", &OrtTensor::from_array(hr)?)?;
        binding.bind_input(
            "learning_rate",
            &OrtTensor::from_array(ArrayD::from_elem(ndarray::IxDyn(&[]), learning_rate))?,
        )?;
        binding.bind_input(
            "step",
            &OrtTensor::from_array(ArrayD::from_elem(ndarray::IxDyn(&[]), step as f32))?,
        )?;
        let [a, b] = &mut self.sets;
        let (ins, outs) = if input == 0 { (a, b) } else { (b, a) };
        for (name, t) in self.names.iter().zip(ins.iter()) {
            binding.bind_input(name, t)?;
        }
        for (name, t) in self.names.iter().zip(outs.iter_mut()) {
            binding.bind_output(state::next(name), t)?;
        }
        binding.bind_output_to_device(
            "loss",
            &MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::CPUOutput)?,
        )?;
        let outputs = self.session.run_binding(&binding)?;
        let loss = outputs["loss"].try_extract_scalar::<f32>()?;
        self.current = output;
        Ok(loss)
    }

    fn values(&self) -> Result<Vec<(String, Tensor)>> {
        self.names
            .iter()
            .zip(&self.sets[self.current])
            .map(|(name, t)| {
                let host = if self.device == Device::Cuda {
                    t.to(AllocationDevice::CPU, 0)?
                } else {
                    t.clone()
                };
                Ok((name.clone(), Tensor::F32(host.extract_array().to_owned())))
            })
            .collect()
    }

    fn set_values(&mut self, values: &[(String, Tensor)]) -> Result<()> {
        for (name, value) in values {
            let (i, a) = super::find_state(&self.names, name, value)?;
            let target = &mut self.sets[self.current][i];
            ensure!(
                target.shape().iter().map(|&d| d as usize).eq(a.shape().iter().copied()),
                "{name}: shape mismatch"
            );
            let host = OrtTensor::from_array(a.as_standard_layout().into_owned())?;
            host.copy_into(&mut *target)?;
        }
        Ok(())
    }
}

/// An inference session: one input, one output, any size.
pub struct OrtModel {
    session: Session,
}

impl OrtModel {
    pub fn new(onnx: &[u8], device: Device, threads: usize) -> Result<OrtModel> {
        super::guarded("ONNX Runtime", "load the model", || {
            Ok(OrtModel {
                session: session(onnx, device, threads)?.0,
            })
        })
    }

    pub fn run(&mut self, x: ArrayD<f32>) -> Result<ArrayD<f32>> {
        super::guarded("ONNX Runtime", "run the graph", || {
            let outputs = self.session.run(ort::inputs![OrtTensor::from_array(x)?])?;
            ensure!(
                outputs.len() == 1,
                "expected one output, the graph has {}",
                outputs.len()
            );
            Ok(outputs[0].try_extract_array::<f32>()?.to_owned())
        })
    }
}

/// Every output of `onnx` (in graph order) for `inputs`, from a session made for this one run.
pub fn run_once(onnx: &[u8], inputs: Vec<ArrayD<f32>>, device: Device, threads: usize) -> Result<Vec<ArrayD<f32>>> {
    super::guarded("ONNX Runtime", "run the graph", || {
        let (mut session, _) = session(onnx, device, threads)?;
        let values = inputs
            .into_iter()
            .map(|a| Ok(OrtTensor::from_array(a)?.into()))
            .collect::<Result<Vec<ort::session::SessionInputValue>>>()?;
        let outputs = session.run(&values[..])?;
        (0..outputs.len())
            .map(|i| Ok(outputs[i].try_extract_array::<f32>()?.to_owned()))
            .collect()
    })
}

/// Run `onnx` (inputs in graph order) once to warm up, then `runs` times; the median
/// seconds of a run. For comparing spellings of one computation (`tune`).
pub fn median_run_time(
    onnx: &[u8],
    inputs: &[ArrayD<f32>],
    device: Device,
    threads: usize,
    runs: usize,
) -> Result<f64> {
    super::guarded("ONNX Runtime", "time a graph", || {
        let (mut session, _) = session(onnx, device, threads)?;
        let values = inputs
            .iter()
            .map(|a| Ok(OrtTensor::from_array(a.clone())?.into()))
            .collect::<Result<Vec<ort::session::SessionInputValue>>>()?;
        super::median_seconds(runs, || {
            session.run(&values[..])?;
            Ok(())
        })
    })
}
