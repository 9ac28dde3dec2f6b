//! Every architecture x scale x normalisation x pixel-shuffle layout, built,
//! exported, loaded in tract and run on a real picture at its own size: Set5's
//! "woman", 228 wide and 344 high (not square; 228 is not a multiple of 8). The output must be
//! exactly s times the input, and the folded inference graph must agree with
//! the training form (weight norm as ops, mean shift explicit) to 1e-4.

use crate::common::{rel_err, set5};
use srgraph::export::inference_graph;
use srgraph::ir::{Op, ShuffleMode};
use srgraph::models::{self, Arch, ModelConfig, Norm};
use srgraph::onnx::Model;
use srgraph::runtime::tract::run_once;

fn onnx(g: &srgraph::ir::Graph) -> Vec<u8> {
    Model::new(g.clone(), vec![]).to_bytes("test").unwrap()
}

fn check_arch(arch: Arch) {
    let x = set5("woman").into_dyn();
    let (h, w) = (x.shape()[2], x.shape()[3]);
    assert!(
        h != w && (h % 8 != 0 || w % 8 != 0),
        "the picture should be neither square nor a multiple of 8"
    );
    for scale in [2, 3, 4] {
        for norm in [Norm::Weight, Norm::None] {
            for shuffle in [ShuffleMode::Crd, ShuffleMode::Dcr] {
                // Narrow networks: the matrix checks wiring, not capacity.
                let c = ModelConfig {
                    scale,
                    blocks: 2,
                    filters: 8,
                    expansion: 2,
                    norm,
                    shuffle,
                    seed: 7,
                    ..ModelConfig::new(arch)
                };
                let what = format!("{} x{scale} {} {}", arch.name(), norm.name(), shuffle.onnx_name());
                let train_form = models::build(&c).unwrap();
                let folded = inference_graph(&train_form).unwrap();
                assert!(
                    folded
                        .nodes
                        .iter()
                        .all(|n| !matches!(n.op, Op::Param(_) | Op::Sqrt | Op::ReduceSum { .. })),
                    "{what}: weight norm left in the inference graph"
                );
                let y_folded = run_once(&onnx(&folded), vec![x.clone()]).unwrap().remove(0);
                let y_unfolded = run_once(&onnx(&train_form), vec![x.clone()]).unwrap().remove(0);
                assert_eq!(y_folded.shape(), [1, 3, scale * h, scale * w], "{what}");
                let err = rel_err(&y_folded, &y_unfolded);
                assert!(err <= 1e-4, "{what}: folded and unfolded differ by {err:e} (relative)");
            }
        }
    }
}

#[test]
fn edsr_in_tract() {
    check_arch(Arch::Edsr);
}

#[test]
fn wdsr_a_in_tract() {
    check_arch(Arch::WdsrA);
}

#[test]
fn wdsr_b_in_tract() {
    check_arch(Arch::WdsrB);
}

/// The mean shift folds into the convs: the inference graph keeps only the
/// input's mean subtraction (which cannot move past zero padding).
#[test]
fn inference_graph_is_plain() {
    for arch in Arch::ALL {
        let c = ModelConfig {
            blocks: 1,
            filters: 8,
            ..ModelConfig::new(arch)
        };
        let g = inference_graph(&models::build(&c).unwrap()).unwrap();
        let hist = g.op_histogram();
        let count = |op: &str| hist.iter().find(|(o, _)| *o == op).map_or(0, |(_, n)| *n);
        assert_eq!(
            (count("Sub"), count("Div"), count("Mul")),
            (1, 0, 0),
            "{}: {hist:?}",
            arch.name()
        );
        // One add per block, plus EDSR's global skip or WDSR's skip branch.
        assert_eq!(count("Add"), c.blocks + 1, "{}: {hist:?}", arch.name());
    }
}
