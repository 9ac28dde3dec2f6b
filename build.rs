//! Embeds the presets of `graphs/` into the binary: adding a file adds a preset.

use std::{env, fs, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=graphs");
    let mut names: Vec<String> = fs::read_dir("graphs")
        .expect("graphs/ holds the presets")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    let root = env::var("CARGO_MANIFEST_DIR").unwrap();
    let entries: String = names
        .iter()
        .map(|n| {
            let path = Path::new(&root).join("graphs").join(n);
            format!(
                "    ({:?}, include_str!({:?})),\n",
                n.trim_end_matches(".toml"),
                path.display().to_string()
            )
        })
        .collect();
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("presets.rs");
    // A new file renamed into place, never the old one rewritten: a build folder copied
    // with hard links (`cp -al`) shares the old file's bytes with its original.
    let tmp = out.with_extension("rs.tmp");
    fs::write(
        &tmp,
        format!("pub static PRESET_FILES: &[(&str, &str)] = &[\n{entries}];\n"),
    )
    .unwrap();
    fs::rename(tmp, out).unwrap();
}
