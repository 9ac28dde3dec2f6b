//! A graph written to ONNX and read back by srgraph's own reader is the same
//! graph: same nodes, ops, attributes, weights, facts and wiring.

use srgraph::export::inference_graph;
use srgraph::ir::ShuffleMode;
use srgraph::models::{self, Arch, ModelConfig, Norm};
use srgraph::onnx::Model;

#[test]
fn write_then_read_gives_the_same_graph() {
    for arch in Arch::ALL {
        for (norm, shuffle) in [(Norm::Weight, ShuffleMode::Crd), (Norm::None, ShuffleMode::Dcr)] {
            let c = ModelConfig {
                scale: 3,
                blocks: 2,
                filters: 8,
                norm,
                shuffle,
                ..ModelConfig::new(arch)
            };
            let train_form = models::build(&c).unwrap();
            for g in [inference_graph(&train_form).unwrap(), train_form] {
                let m = Model::new(g, c.metadata());
                let back = Model::from_bytes(&m.to_bytes("g").unwrap()).unwrap();
                assert_eq!(back.metadata, m.metadata);
                assert_eq!(back.producer, m.producer);
                assert_eq!(back.graph.inputs.len(), m.graph.inputs.len());
                for (a, b) in m.graph.outputs.iter().zip(&back.graph.outputs) {
                    assert_eq!(a.0, b.0);
                    assert_eq!(m.graph.fact(a.1), back.graph.fact(b.1));
                }
                // Same nodes by name (the reader may order initialisers differently).
                assert_eq!(m.graph.nodes.len(), back.graph.nodes.len(), "{}", arch.name());
                for n in &m.graph.nodes {
                    let other = back
                        .graph
                        .nodes
                        .iter()
                        .find(|o| o.name == n.name)
                        .unwrap_or_else(|| panic!("{} lost", n.name));
                    assert_eq!(n.op, other.op, "{}", n.name);
                    assert_eq!(n.outputs, other.outputs, "{}", n.name);
                    let names = |g: &srgraph::ir::Graph, node: &srgraph::ir::Node| -> Vec<String> {
                        node.inputs.iter().map(|o| g.node(o.node).name.clone()).collect()
                    };
                    assert_eq!(names(&m.graph, n), names(&back.graph, other), "{}", n.name);
                }
                back.graph.check().unwrap();
            }
        }
    }
}

#[test]
fn garbage_and_truncated_files_are_errors_not_panics() {
    let c = ModelConfig {
        blocks: 1,
        filters: 8,
        ..ModelConfig::new(Arch::WdsrB)
    };
    let bytes = Model::new(models::build(&c).unwrap(), vec![]).to_bytes("g").unwrap();
    for cut in [1, 10, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            Model::from_bytes(&bytes[..cut]).is_err(),
            "truncated at {cut} should not read"
        );
    }
    let err = Model::from_bytes(b"\x89PNG\r\n\x1a\n not a model").unwrap_err();
    assert!(format!("{err:#}").contains("not an ONNX model"), "{err:#}");
}
