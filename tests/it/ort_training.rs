//! srgraph's artefacts for ONNX Runtime's training API, checked by the real API
//! (onnxruntime-training-cpu 1.19.2, in its own venv: tools/setup/setup-training-venv.sh)
//! with tools/oracles/ort_training_check.py: ORT trains on them and lands on the parameters
//! srgraph's own train step reaches; ORT's own gradient builder, given srgraph's
//! forward pass and loss, computes the gradients srgraph's compiler does; and the
//! checkpoint ORT saves comes back through `srgraph import-checkpoint`. For a small
//! network of each architecture and for every preset.

use crate::common::{self, data, data_dir, srgraph, srgraph_owned, text, training_python};
use ndarray::{Array4, ArrayD};
use ort::value::Tensor as OrtTensor;
use srgraph::compiler::{compile, TrainConfig};
use srgraph::data::dataset::{ImageSet, PatchSampler};
use srgraph::models::{Arch, ModelConfig};
use srgraph::onnx::Model;
use srgraph::ortapi::{artefacts, write_artefacts};
use srgraph::runtime::ort::{session, Device, OrtTrainer};
use srgraph::runtime::tract::run_once;
use srgraph::runtime::Trainer;
use srgraph::util::npy_bytes;
use std::path::Path;
use std::process::Command;

const COMPARE_STEPS: u64 = 5;
const TRAIN_STEPS: u64 = 20;
const LEARNING_RATE: f32 = 1e-3;

/// The flags that rebuild `c` on the command line.
fn flags(c: &ModelConfig) -> Vec<String> {
    let mut f = vec![
        c.arch.name().to_string(),
        "--blocks".into(),
        c.blocks.to_string(),
        "--filters".into(),
        c.filters.to_string(),
    ];
    if c.arch.is_wdsr() {
        f.extend(["--expansion".into(), c.expansion.to_string()]);
    }
    f
}

/// `compare`: also run srgraph's own train step for the parameter comparison. `from`: the
/// case continues that srgraph run (its parameters, moments and step), on batches after its own.
fn write_case(
    dir: &Path,
    c: &ModelConfig,
    t: &TrainConfig,
    sampler: &PatchSampler,
    compare: bool,
    from: Option<&srgraph::checkpoint::RunCheckpoint>,
) {
    let a = artefacts(c, t, from).unwrap();
    write_artefacts(dir, &a).unwrap();
    std::fs::write(dir.join("forward_loss.onnx"), &a.forward_loss).unwrap();
    let mut graphs = compile(c, t).unwrap();
    let params: Vec<String> = graphs.gradients.params().map(|(n, _)| n.to_string()).collect();
    let done = from.map_or(0, |run| run.step);
    if let Some(run) = from {
        let trained: Vec<_> = run.values.iter().filter(|(n, _)| params.contains(n)).cloned().collect();
        graphs.gradients.set_values(&trained).unwrap();
    }
    std::fs::write(
        dir.join("case.json"),
        serde_json::json!({
            "learning_rate": LEARNING_RATE,
            "compare_steps": if compare { COMPARE_STEPS } else { 0 },
            "train_steps": TRAIN_STEPS,
            "params": params,
        })
        .to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("batches")).unwrap();
    let batches: Vec<(Array4<f32>, Array4<f32>)> = (0..TRAIN_STEPS)
        .map(|i| sampler.batch(done + i + 1, t.batch).unwrap())
        .collect();
    for (i, (lr, hr)) in batches.iter().enumerate() {
        std::fs::write(
            dir.join(format!("batches/{i}.lr.npy")),
            npy_bytes(&lr.clone().into_dyn()),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("batches/{i}.hr.npy")),
            npy_bytes(&hr.clone().into_dyn()),
        )
        .unwrap();
    }

    // srgraph's own gradients at the initial weights on batch 0, in ONNX Runtime 1.32.
    std::fs::create_dir_all(dir.join("gradients")).unwrap();
    let bytes = Model::new(graphs.gradients.clone(), vec![])
        .to_bytes("gradients")
        .unwrap();
    let (mut s, _) = session(&bytes, Device::Cpu, 2).unwrap();
    let (lr0, hr0) = &batches[0];
    let out = s
        .run(ort::inputs![
            "lr" => OrtTensor::from_array(lr0.clone()).unwrap(),
            "hr" => OrtTensor::from_array(hr0.clone()).unwrap()
        ])
        .unwrap();
    for (name, value) in out.iter() {
        if let Some(p) = name.strip_suffix(".grad") {
            let g: ArrayD<f32> = value.try_extract_array::<f32>().unwrap().to_owned();
            std::fs::write(dir.join(format!("gradients/{p}.npy")), npy_bytes(&g)).unwrap();
        }
    }
    drop(out);

    if !compare {
        return;
    }
    // srgraph's own train step (PyTorch's Adam) for COMPARE_STEPS steps on the same batches.
    let mut trainer = OrtTrainer::new(&graphs.train_step, Device::Cpu, 2).unwrap();
    if let Some(run) = from {
        // As `srgraph train --resume`: the step's state, out of everything the checkpoint holds.
        let state: Vec<String> = trainer.values().unwrap().into_iter().map(|(n, _)| n).collect();
        let values: Vec<_> = run.values.iter().filter(|(n, _)| state.contains(n)).cloned().collect();
        assert_eq!(values.len(), state.len());
        trainer.set_values(&values).unwrap();
    }
    for (i, (lr, hr)) in batches.iter().take(COMPARE_STEPS as usize).enumerate() {
        trainer
            .step(
                lr.clone().into_dyn(),
                hr.clone().into_dyn(),
                LEARNING_RATE,
                done + i as u64 + 1,
            )
            .unwrap();
    }
    std::fs::create_dir_all(dir.join("expected")).unwrap();
    for (name, value) in trainer.values().unwrap() {
        if params.contains(&name) {
            std::fs::write(
                dir.join(format!("expected/{name}.npy")),
                npy_bytes(value.as_f32().unwrap()),
            )
            .unwrap();
        }
    }
}

/// Five steps of `srgraph train` (ONNX Runtime, the case's batch and patch), whose checkpoint
/// the training API is to continue.
fn continued_run(d: &Path, flags: &[String], t: &TrainConfig) -> srgraph::checkpoint::RunCheckpoint {
    let mut args = vec!["train".to_string()];
    args.extend(flags.iter().cloned());
    let (batch, patch, lr) = (t.batch.to_string(), t.patch.to_string(), LEARNING_RATE.to_string());
    args.extend(
        [
            "--data",
            &data("T91"),
            "--steps",
            "5",
            "--batch",
            &batch,
            "--patch",
            &patch,
            "--lr",
            &lr,
            "--data-seed",
            "3",
            "--out",
            "run",
            "--quiet",
        ]
        .map(String::from),
    );
    let o = srgraph_owned(&args, d);
    assert!(o.status.success(), "{}", text(&o));
    let run = srgraph::checkpoint::load(&d.join("run/checkpoint.onnx")).unwrap();
    assert_eq!(run.step, 5);
    run
}

/// A case: its folder's name, its network and the flags that rebuild it.
type Case = (String, ModelConfig, Vec<String>);

#[test]
fn onnxruntime_training_api_trains_on_srgraph_artefacts_and_agrees_with_srgraph() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = TrainConfig {
        batch: 4,
        patch: 32,
        ..TrainConfig::default()
    };
    let (pairs, _) = ImageSet::open(&data_dir().join("T91"), 2).unwrap().load().unwrap();
    let sampler = PatchSampler::new(pairs, t.patch, 2, 7).unwrap();
    let mut cases = small_networks_and_presets();
    // Parameters after 5 steps are compared for the small networks; at 8 and 16 blocks Adam's
    // normalisation turns float summation noise in near-zero gradients into lr-sized steps, so
    // the presets are compared through their gradients alone.
    for (i, (name, c, _)) in cases.iter().enumerate() {
        write_case(&d.join(name), c, &t, &sampler, i < Arch::ALL.len(), None);
    }
    cases.push(continued_case(d, &cases[1], &t, &sampler));
    training_api_check(d);
    imported_checkpoints_give_the_loss_ort_reported(d, &cases, &t, &sampler);
    other_checkpoints_are_clear_errors(d);
}

/// A small network of each architecture, then every preset (the 16-block baselines included).
fn small_networks_and_presets() -> Vec<Case> {
    let mut cases: Vec<Case> = Arch::ALL
        .iter()
        .map(|&arch| {
            let c = ModelConfig {
                blocks: 2,
                filters: 16,
                expansion: 4,
                ..ModelConfig::new(arch)
            };
            (arch.name().to_string(), c.clone(), flags(&c))
        })
        .collect();
    for p in srgraph::models::presets().unwrap() {
        let c = p.config().unwrap();
        cases.push((p.name.clone(), c, vec![p.name]));
    }
    cases
}

/// A srgraph run of the small WDSR-A, continued by the training API from artefacts built
/// `--from` its checkpoint: ORT must pick up its Adam moments and step count. `srgraph build
/// --from` writes the same artefacts.
fn continued_case(d: &Path, small_wdsr_a: &Case, t: &TrainConfig, sampler: &PatchSampler) -> Case {
    let (resumed, c, flags_a) = small_wdsr_a.clone();
    assert_eq!(resumed, "wdsr-a");
    let run = continued_run(d, &flags_a, t);
    let case = d.join("wdsr-a-continued");
    write_case(&case, &c, t, sampler, true, Some(&run));
    let mut args = vec!["build".to_string()];
    args.extend(flags_a.iter().cloned());
    args.extend(
        [
            "--format",
            "ort-training",
            "--batch",
            "4",
            "--patch",
            "32",
            "--from",
            "run/checkpoint.onnx",
            "-o",
            "built",
        ]
        .map(String::from),
    );
    let o = srgraph_owned(&args, d);
    assert!(o.status.success(), "{}", text(&o));
    for file in [
        "training_model.onnx",
        "eval_model.onnx",
        "optimizer_model.onnx",
        "checkpoint",
    ] {
        assert!(
            std::fs::read(d.join("built").join(file)).unwrap() == std::fs::read(case.join(file)).unwrap(),
            "srgraph build --from wrote another {file}"
        );
    }
    ("wdsr-a-continued".into(), c, flags_a)
}

/// tools/oracles/ort_training_check.py on every case in `d`, in the training API's venv.
fn training_api_check(d: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/oracles/ort_training_check.py");
    let out = Command::new(training_python()).arg(&script).arg(d).output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{log}");
    assert!(out.status.success(), "the training-API check failed:\n{log}");
}

/// The checkpoint ORT saved after training, imported by srgraph, gives the loss ORT reported.
fn imported_checkpoints_give_the_loss_ort_reported(d: &Path, cases: &[Case], t: &TrainConfig, sampler: &PatchSampler) {
    for (name, c, _) in cases {
        let case = d.join(name);
        // The continued case's batches and ORT's step count start after the run's 5 steps.
        let done = if name.ends_with("-continued") { 5 } else { 0 };
        let mut args = vec![
            "import-checkpoint".to_string(),
            case.join("saved_checkpoint").display().to_string(),
        ];
        args.extend(flags(c));
        args.extend(["-o".into(), case.join("imported.onnx").display().to_string()]);
        let o = srgraph_owned(&args, d);
        assert!(o.status.success(), "{}", text(&o));
        let after: serde_json::Value =
            serde_json::from_slice(&std::fs::read(case.join("after.json")).unwrap()).unwrap();
        let (lr, hr) = sampler.batch(done + 1, t.batch).unwrap();
        let model = std::fs::read(case.join("imported.onnx")).unwrap();
        let sr = run_once(&model, vec![lr.into_dyn()]).unwrap().remove(0);
        let l1 = (&sr - &hr.into_dyn()).mapv(f32::abs).mean().unwrap() as f64;
        let ort_loss = after["eval_loss_batch0"].as_f64().unwrap();
        println!("{name}: imported model's L1 on batch 0 {l1:.5}, ORT's eval loss {ort_loss:.5}");
        assert!(
            (l1 - ort_loss).abs() <= 1e-4 * ort_loss.abs().max(1.0),
            "{name}: {l1} against {ort_loss}"
        );
        let meta = srgraph(&["inspect", case.join("imported.onnx").to_str().unwrap()], d);
        assert!(
            text(&meta).contains(&format!("training_steps = {}", done + TRAIN_STEPS)),
            "{}",
            text(&meta)
        );
    }
}

/// A checkpoint of another architecture is a clear error, as is a file that is not one.
fn other_checkpoints_are_clear_errors(d: &Path) {
    let o = srgraph(
        &[
            "import-checkpoint",
            d.join("edsr/saved_checkpoint").to_str().unwrap(),
            "wdsr-b",
            "-o",
            "x.onnx",
        ],
        d,
    );
    common::fails_with(&o, "it is edsr, not wdsr-b");
    std::fs::write(d.join("junk"), b"not a checkpoint at all").unwrap();
    common::fails_with(
        &srgraph(&["import-checkpoint", "junk", "wdsr-b", "-o", "x.onnx"], d),
        "junk is not a checkpoint srgraph can read",
    );
}
