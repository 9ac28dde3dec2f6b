//! srgraph: a model compiler and runtime for single-image super-resolution.
//!
//! The pipeline, one module per stage: `models` builds EDSR / WDSR-A / WDSR-B on
//! the graph IR (`ir`); `export` folds the training form into the inference
//! graph; `onnx` writes and reads `.onnx` files; `runtime` runs them (tract or
//! ONNX Runtime); `compiler` and `autodiff` make the training graphs and `train`
//! runs them, saving a `checkpoint`; `data` loads pictures; `infer` super-resolves
//! them (tiled) and `eval` scores them with `metrics`; `cli` is the `srgraph` command.
//!
//! The modules form layers, from `util` and `ir` at the bottom to `cli` at the top,
//! each importing only those below it: `LAYERS` in the test module `layers` below holds
//! the order, and its test fails on an import that points up.

pub mod autodiff;
pub mod checkpoint;
pub mod cli;
pub mod compiler;
pub mod data;
pub mod distributed;
pub mod eval;
pub mod export;
pub mod infer;
pub mod interop;
pub mod ir;
pub mod metrics;
pub mod models;
pub mod onnx;
pub mod ortapi;
pub mod runtime;
pub mod study;
pub mod train;
pub mod tune;
pub mod util;
pub mod web;

#[cfg(test)]
mod layers {
    /// The layers, lowest first: a module may import (`crate::<module>`) only those
    /// before it, so that no import goes up and none goes round in a circle.
    const LAYERS: [&str; 21] = [
        "util",
        "ir",
        "onnx",
        "autodiff",
        "models",
        "export",
        "compiler",
        "checkpoint",
        "ortapi",
        "runtime",
        "data",
        "metrics",
        "infer",
        "eval",
        "tune",
        "distributed",
        "train",
        "study",
        "interop",
        "web",
        "cli",
    ];

    use std::path::{Path, PathBuf};

    /// Every `.rs` file under `path` (or `path` itself).
    fn rust_files(path: &Path) -> Vec<PathBuf> {
        if path.is_file() {
            return vec![path.to_path_buf()];
        }
        let mut files = vec![];
        for entry in std::fs::read_dir(path).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                files.extend(rust_files(&p));
            } else if p.extension().is_some_and(|e| e == "rs") {
                files.push(p);
            }
        }
        files
    }

    /// The top-level modules `code` names as `crate::<module>`, also inside `crate::{a, b::c}`;
    /// comments are left out.
    fn crate_imports(code: &str) -> Vec<String> {
        let code: String = code
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
        let mut found = vec![];
        for (at, _) in code.match_indices("crate::") {
            let rest = code[at + "crate::".len()..].trim_start();
            if let Some(group) = rest.strip_prefix('{') {
                // The first segment of each item of the group, at its top level.
                let mut depth = 0;
                let mut item_start = true;
                for (i, ch) in group.char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if item_start && !c.is_whitespace() => {
                            found.push(ident(&group[i..]));
                            item_start = false;
                        }
                        _ => {}
                    }
                }
            } else {
                found.push(ident(rest));
            }
        }
        found
    }

    #[test]
    fn every_import_points_down() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offences = vec![];
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            if matches!(name.as_str(), "lib" | "main") {
                continue;
            }
            let own = LAYERS
                .iter()
                .position(|l| *l == name)
                .unwrap_or_else(|| panic!("src/{name} is in no layer: add it to LAYERS in src/lib.rs"));
            for file in rust_files(&path) {
                let code = std::fs::read_to_string(&file).unwrap();
                assert!(
                    !code.contains("super::super"),
                    "{}: name the module (crate::...) instead of super::super",
                    file.display()
                );
                for module in crate_imports(&code) {
                    match LAYERS.iter().position(|l| *l == module) {
                        Some(layer) if layer > own => offences.push(format!(
                            "{} imports crate::{module}, a layer above {name}",
                            file.strip_prefix(&src).unwrap_or(&file).display()
                        )),
                        _ => {}
                    }
                }
            }
        }
        offences.sort();
        offences.dedup();
        assert!(offences.is_empty(), "imports that point up:\n{}", offences.join("\n"));
    }

    #[test]
    fn imports_are_found_in_groups_and_paths() {
        let code =
            "use crate::ir::Tensor;\nuse crate::{models::{self, A}, onnx};\n// crate::cli\nlet x = crate::data::f();";
        assert_eq!(crate_imports(code), ["ir", "models", "onnx", "data"]);
    }
}
