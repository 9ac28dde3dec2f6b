use flatbuffers::FlatBufferBuilder;
use srgraph::ortapi::checkpoint::{
    self as oc, field, CheckpointError, NamedTensor, OptimizerState, PropertyValue, TrainingApiCheckpoint,
};

const INITIAL: &[u8] = include_bytes!("../fixtures/ort1192_initial.ckpt");
const TRAINED: &[u8] = include_bytes!("../fixtures/ort1192_trained.ckpt");
const INITIAL_EXPECTED: &str = include_str!("../fixtures/ort1192_initial.expected.txt");
const TRAINED_EXPECTED: &str = include_str!("../fixtures/ort1192_trained.expected.txt");

fn t(name: &str, dims: Vec<i64>, seed: f32) -> NamedTensor {
    let n: i64 = dims.iter().product();
    NamedTensor::new(name, dims, (0..n).map(|i| (i as f32 * 0.7 + seed).sin()).collect())
}

fn sample() -> TrainingApiCheckpoint {
    let trainable = vec![
        t("body.0.weight", vec![8, 3, 3, 3], 0.1),
        t("body.0.bias", vec![8], 0.2),
        t("scalar", vec![], 0.3),
    ];
    let mut opt = OptimizerState::zeros_for(&trainable, 2e-4);
    opt.step = 42;
    opt.first_moments[0].data[3] = 0.5;
    opt.second_moments[1].data[0] = 0.25;
    TrainingApiCheckpoint {
        trainable,
        frozen: vec![t("frozen.w", vec![2, 2], 0.4), t("empty", vec![0, 4], 0.0)],
        optimizer: Some(opt),
        properties: vec![
            ("epoch".into(), PropertyValue::Int(-3)),
            ("psnr".into(), PropertyValue::Float(30.25)),
            ("name".into(), PropertyValue::String("srnet ü".into())),
        ],
    }
}

#[test]
fn round_trip_full() {
    let c = sample();
    let bytes = oc::write(&c);
    assert_eq!(&bytes[4..8], b"ODTC");
    assert_eq!(oc::read(&bytes).unwrap(), c);
}

#[test]
fn round_trip_params_only() {
    let c = TrainingApiCheckpoint {
        trainable: vec![t("w", vec![4, 3, 1, 1], 1.0)],
        ..Default::default()
    };
    assert_eq!(oc::read(&oc::write(&c)).unwrap(), c);
    let empty = TrainingApiCheckpoint::default();
    assert_eq!(oc::read(&oc::write(&empty)).unwrap(), empty);
}

/// Parse the fixture text written by py/make_fixtures.py (read with ORT's own python fbs bindings).
fn expected(text: &str) -> (TrainingApiCheckpoint, i32) {
    let mut c = TrainingApiCheckpoint::default();
    let mut version = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let tensor = |f: &[&str]| {
            let dims = if f[2].is_empty() {
                vec![]
            } else {
                f[2].split(',').map(|d| d.parse().unwrap()).collect()
            };
            NamedTensor::new(f[1], dims, f[3..].iter().map(|v| v.parse::<f32>().unwrap()).collect())
        };
        match f[0] {
            "V" => version = f[1].parse().unwrap(),
            "T" => c.trainable.push(tensor(&f)),
            "F" => c.frozen.push(tensor(&f)),
            "O" => {
                c.optimizer = Some(OptimizerState {
                    group_name: f[1].into(),
                    step: f[2].parse().unwrap(),
                    learning_rate: f[3].parse().unwrap(),
                    first_moments: vec![],
                    second_moments: vec![],
                })
            }
            "M1" => c.optimizer.as_mut().unwrap().first_moments.push(tensor(&f)),
            "M2" => c.optimizer.as_mut().unwrap().second_moments.push(tensor(&f)),
            "PI" => c
                .properties
                .push((f[1].into(), PropertyValue::Int(f[2].parse().unwrap()))),
            "PF" => c
                .properties
                .push((f[1].into(), PropertyValue::Float(f[2].parse().unwrap()))),
            "PS" => c
                .properties
                .push((f[1].into(), PropertyValue::String(f[2..].join(" ")))),
            other => panic!("bad fixture line {other}"),
        }
    }
    (c, version)
}

#[test]
fn reads_checkpoint_from_generate_artifacts() {
    let (exp, version) = expected(INITIAL_EXPECTED);
    assert_eq!(version, oc::CHECKPOINT_VERSION);
    let c = oc::read(INITIAL).unwrap();
    assert_eq!(c, exp);
    assert_eq!(
        c.trainable.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"]
    );
    assert!(c.optimizer.is_none() && c.frozen.is_empty() && c.properties.is_empty());
}

#[test]
fn params_only_output_is_byte_identical_to_ort() {
    // onnxblock.save_checkpoint / generate_artifacts output is reproduced byte for byte.
    assert_eq!(oc::write(&oc::read(INITIAL).unwrap()), INITIAL);
}

#[test]
fn reads_checkpoint_saved_by_ort_with_optimizer_state() {
    let (exp, _) = expected(TRAINED_EXPECTED);
    let c = oc::read(TRAINED).unwrap();
    assert_eq!(c, exp);
    let o = c.optimizer.as_ref().unwrap();
    assert_eq!((o.group_name.as_str(), o.step, o.learning_rate), ("group0", 5, 1e-3));
    assert_eq!(o.first_moments.len(), 4);
    assert!(o.second_moments.iter().all(|v| v.data.iter().all(|&x| x >= 0.0)));
    // rewrite → re-read is lossless
    assert_eq!(oc::read(&oc::write(&c)).unwrap(), c);
}

#[test]
fn error_too_short_and_wrong_identifier() {
    assert!(matches!(oc::read(&[]), Err(CheckpointError::TooShort { len: 0 })));
    assert!(matches!(oc::read(&INITIAL[..7]), Err(CheckpointError::TooShort { .. })));
    let mut b = INITIAL.to_vec();
    b[4..8].copy_from_slice(b"ORTM");
    let e = oc::read(&b).unwrap_err();
    assert!(matches!(e, CheckpointError::WrongIdentifier { found } if &found == b"ORTM"));
    assert!(e.to_string().contains("\"ODTC\""), "{e}");
}

#[test]
fn error_truncated_buffers() {
    // Every cut that removes real data is caught; only the last <=3 bytes can be alignment
    // padding after the final string, which no flatbuffers verifier (nor ORT's) can miss.
    for bytes in [INITIAL, TRAINED] {
        for cut in (8..bytes.len() - 3).step_by(3) {
            match oc::read(&bytes[..cut]) {
                Err(CheckpointError::Corrupt(_)) => {}
                other => panic!("cut at {cut}: expected Corrupt, got {other:?}"),
            }
        }
    }
    let e = oc::read(&TRAINED[..TRAINED.len() / 2]).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
}

/// Build a checkpoint by hand with the raw flatbuffers API (for malformed cases).
fn custom(version: i32, module_state: bool, frozen_vec: bool, dtype: i32, raw_len: usize, nominal: bool) -> Vec<u8> {
    let mut b = FlatBufferBuilder::new();
    let name = b.create_string("w");
    let dims = b.create_vector(&[2i64]);
    let raw = b.create_vector(&vec![0u8; raw_len]);
    let s = b.start_table();
    b.push_slot_always(field::tensor::NAME, name);
    b.push_slot_always(field::tensor::DIMS, dims);
    b.push_slot(field::tensor::DATA_TYPE, dtype, 0);
    b.push_slot_always(field::tensor::RAW_DATA, raw);
    let tensor = b.end_table(s);
    let tv = b.create_vector(&[tensor]);
    let fv = b.create_vector::<flatbuffers::WIPOffset<flatbuffers::TableFinishedWIPOffset>>(&[]);
    let s = b.start_table();
    b.push_slot_always(field::module_state::REQUIRES_GRAD_PARAMS, tv);
    if frozen_vec {
        b.push_slot_always(field::module_state::FROZEN_PARAMS, fv);
    }
    b.push_slot(field::module_state::IS_NOMINAL_STATE, nominal, false);
    let ms = b.end_table(s);
    let s = b.start_table();
    b.push_slot(field::checkpoint::VERSION, version, 0);
    if module_state {
        b.push_slot_always(field::checkpoint::MODULE_STATE, ms);
    }
    let root = b.end_table(s);
    b.finish(root, Some(oc::FILE_IDENTIFIER));
    b.finished_data().to_vec()
}

#[test]
fn custom_builder_sanity() {
    let c = oc::read(&custom(2, true, true, 1, 8, false)).unwrap();
    assert_eq!(c.trainable, vec![NamedTensor::new("w", vec![2], vec![0.0, 0.0])]);
}

#[test]
fn error_unsupported_version() {
    for v in [0, 1, 3] {
        let e = oc::read(&custom(v, true, true, 1, 8, false)).unwrap_err();
        assert_eq!(
            e,
            CheckpointError::UnsupportedVersion {
                found: v,
                supported: oc::SUPPORTED_VERSIONS
            }
        );
        assert!(e.to_string().contains(&format!("version {v}")));
    }
}

#[test]
fn error_missing_fields() {
    let e = oc::read(&custom(2, true, false, 1, 8, false)).unwrap_err();
    assert_eq!(
        e,
        CheckpointError::MissingField {
            what: "ModuleState.frozen_params".into()
        }
    );
    // Like ORT 1.19.2, a checkpoint without module_state loads as "no parameters".
    assert_eq!(
        oc::read(&custom(2, false, true, 1, 8, false)).unwrap(),
        TrainingApiCheckpoint::default()
    );
}

#[test]
fn error_dtype_size_nominal() {
    let e = oc::read(&custom(2, true, true, 7, 16, false)).unwrap_err();
    assert_eq!(
        e,
        CheckpointError::UnsupportedDataType {
            tensor: "w".into(),
            data_type: 7
        }
    );
    assert!(e.to_string().contains("INT64"), "{e}");
    let e = oc::read(&custom(2, true, true, 1, 12, false)).unwrap_err();
    assert_eq!(
        e,
        CheckpointError::BadTensorData {
            tensor: "w".into(),
            expected_bytes: 8,
            found_bytes: 12
        }
    );
    assert_eq!(
        oc::read(&custom(2, true, true, 1, 0, true)).unwrap_err(),
        CheckpointError::NominalState
    );
}

#[test]
fn optimizer_moments_are_named_momentum0_momentum1_in_file() {
    let bytes = oc::write(&sample());
    let hay = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(hay(b"momentum0\0") && hay(b"momentum1\0") && hay(b"group0\0"));
}

#[test]
fn optimizer_state_output_is_byte_identical_to_ort() {
    // CheckpointState.save_checkpoint(include_optimizer_state=True) after 2 AdamW steps, no properties.
    let ort = include_bytes!("../fixtures/ort1192_opt2steps.ckpt");
    let c = oc::read(ort).unwrap();
    assert_eq!(c.optimizer.as_ref().map(|o| o.step), Some(2));
    assert_eq!(oc::write(&c), ort.to_vec());
}

// srgraph's train-step state (`<p>`, `<p>.adam_m`, `<p>.adam_v`) in and out of the API's format.

use srgraph::ir::Tensor;
use srgraph::ortapi::{checkpoint_of_state, state_of_checkpoint};

fn state() -> Vec<(String, Tensor)> {
    let mut v = vec![];
    for (i, (name, shape)) in [("head.weight", vec![4usize, 3, 3, 3]), ("head.bias", vec![4])]
        .into_iter()
        .enumerate()
    {
        let n: usize = shape.iter().product();
        for (k, suffix) in ["", ".adam_m", ".adam_v"].iter().enumerate() {
            let data = (0..n)
                .map(|j| ((i * 7 + k * 3 + j) as f32 * 0.37).sin().abs())
                .collect();
            v.push((format!("{name}{suffix}"), Tensor::f32(&shape, data)));
        }
    }
    v
}

#[test]
fn train_state_goes_through_the_checkpoint_format_unchanged() {
    let values = state();
    let ckpt = checkpoint_of_state(&values, 1234, 5e-4).unwrap();
    let opt = ckpt.optimizer.as_ref().unwrap();
    assert_eq!(
        (opt.step, opt.learning_rate, opt.group_name.as_str()),
        (1234, 5e-4, "group0")
    );
    assert_eq!(ckpt.trainable.len(), 2);
    // Through the bytes ORT reads, and back.
    let (back, step) = state_of_checkpoint(&oc::read(&oc::write(&ckpt)).unwrap()).unwrap();
    assert_eq!(step, 1234);
    assert_eq!(back.len(), values.len());
    for (name, t) in &values {
        let b = &back.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(b.shape(), t.shape(), "{name}");
        assert_eq!(b.as_f32().unwrap(), t.as_f32().unwrap(), "{name}");
    }
}

#[test]
fn parameters_alone_start_adam_at_zero_and_half_a_moment_pair_is_refused() {
    let params: Vec<_> = state().into_iter().filter(|(n, _)| !n.contains(".adam_")).collect();
    let ckpt = checkpoint_of_state(&params, 0, 1e-3).unwrap();
    assert!(ckpt.optimizer.is_none());
    let (back, step) = state_of_checkpoint(&ckpt).unwrap();
    assert_eq!((back.len(), step), (6, 0));
    let m = &back.iter().find(|(n, _)| n == "head.bias.adam_m").unwrap().1;
    assert!(m.as_f32().unwrap().iter().all(|&x| x == 0.0));

    let mut half = state();
    half.retain(|(n, _)| n != "head.bias.adam_v");
    let e = checkpoint_of_state(&half, 3, 1e-3).unwrap_err().to_string();
    assert!(e.contains("head.bias has only one of its two Adam moments"), "{e}");
    let mut uneven = state();
    uneven.retain(|(n, _)| !n.starts_with("head.bias.adam_"));
    let e = checkpoint_of_state(&uneven, 3, 1e-3).unwrap_err().to_string();
    assert!(e.contains("some values have Adam moments and some do not"), "{e}");
}
