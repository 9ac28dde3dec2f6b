//! ONNX's external data: initialisers whose bytes live in files beside the `.onnx`
//! (what exporters write for models over 2 GB, or on request). srgraph reads them
//! into the model itself, so every runtime gets one self-contained buffer, and
//! refuses locations that leave the model's folder (`../x`, `/etc/x`, links out).

use super::pb;
use anyhow::{bail, ensure, Context, Result};
use prost::Message;
use std::path::Path;

/// `TensorProto.data_location` value meaning "in `external_data`".
const EXTERNAL: i32 = 1;

/// Whether any initialiser of the model keeps its data outside the file.
pub fn has_external_data(model: &pb::ModelProto) -> bool {
    model
        .graph
        .iter()
        .flat_map(|g| &g.initializer)
        .any(|t| t.data_location == EXTERNAL || !t.external_data.is_empty())
}

/// The bytes of the model at `path` (already read: `bytes`), with every external
/// initialiser's data read in from its file (relative to the model's folder). A
/// model without external data comes back as it was.
pub fn inline_external_data(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    let Ok(mut model) = pb::ModelProto::decode(&bytes[..]) else {
        // Not ONNX: the caller's own checks say so in their words.
        return Ok(bytes);
    };
    if !has_external_data(&model) {
        return Ok(bytes);
    }
    let folder = crate::util::folder_of(path)
        .canonicalize()
        .with_context(|| format!("cannot find the folder of {}", path.display()))?;
    let graph = model.graph.as_mut().context("an ONNX model without a graph")?;
    for t in &mut graph.initializer {
        if t.data_location != EXTERNAL && t.external_data.is_empty() {
            continue;
        }
        t.raw_data = read_external(t, &folder)
            .with_context(|| format!("{}: the external data of initialiser {:?}", path.display(), t.name))?;
        t.external_data.clear();
        t.data_location = 0;
    }
    Ok(model.encode_to_vec())
}

/// The bytes an external initialiser names: `location` (a path relative to the
/// model's folder, inside it), from `offset`, `length` bytes (default: to the end).
fn read_external(t: &pb::TensorProto, folder: &Path) -> Result<Vec<u8>> {
    let get = |key: &str| t.external_data.iter().find(|e| e.key == key).map(|e| e.value.as_str());
    let number = |key: &str| -> Result<Option<u64>> {
        get(key)
            .map(|v| v.parse().with_context(|| format!("{key} {v:?} is not a number")))
            .transpose()
    };
    let location = get("location").context("it names no location")?;
    let relative = Path::new(location);
    ensure!(
        relative.is_relative()
            && relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir)),
        "location {location:?} is outside the model's folder: srgraph reads external data only from beside the model"
    );
    let file = folder.join(relative);
    let real = file
        .canonicalize()
        .with_context(|| format!("{} is missing", file.display()))?;
    ensure!(
        real.starts_with(folder),
        "{} links outside the model's folder: srgraph reads external data only from beside the model",
        file.display()
    );
    let size = std::fs::metadata(&real)?.len();
    let offset = number("offset")?.unwrap_or(0);
    let length = match number("length")? {
        Some(l) => l,
        None => size.saturating_sub(offset),
    };
    if offset.checked_add(length).is_none_or(|end| end > size) {
        bail!(
            "{} has {size} bytes, but the model asks for {length} from offset {offset}",
            file.display()
        );
    }
    let expected = expected_bytes(t);
    if let Some(expected) = expected {
        ensure!(
            expected == length,
            "{} bytes in {}, but a tensor of dims {:?} needs {expected}",
            length,
            file.display(),
            t.dims
        );
    }
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(&real).with_context(|| format!("cannot read {}", file.display()))?;
    f.seek(SeekFrom::Start(offset))?;
    let mut data = vec![0; length as usize];
    f.read_exact(&mut data)
        .with_context(|| format!("cannot read {}", file.display()))?;
    Ok(data)
}

/// Bytes of a tensor of this element type and dims, where the type has a fixed size.
fn expected_bytes(t: &pb::TensorProto) -> Option<u64> {
    use pb::data_type::*;
    let width: u64 = match t.data_type {
        FLOAT | INT32 | UINT32 => 4,
        INT64 | DOUBLE | UINT64 => 8,
        FLOAT16 | INT16 | UINT16 | BFLOAT16 => 2,
        UINT8 | INT8 | BOOL => 1,
        _ => return None,
    };
    t.dims
        .iter()
        .try_fold(width, |acc, &d| u64::try_from(d).ok().and_then(|d| acc.checked_mul(d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_with(location: &str, dims: Vec<i64>) -> pb::ModelProto {
        let t = pb::TensorProto {
            name: "w".into(),
            dims,
            data_type: pb::data_type::FLOAT,
            data_location: EXTERNAL,
            external_data: vec![pb::StringStringEntryProto {
                key: "location".into(),
                value: location.into(),
            }],
            ..Default::default()
        };
        pb::ModelProto {
            graph: Some(pb::GraphProto {
                initializer: vec![t],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn external_data_is_read_in_and_escapes_are_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.path().join("w.bin"), &data)?;
        let path = dir.path().join("m.onnx");
        let inlined = inline_external_data(model_with("w.bin", vec![2]).encode_to_vec(), &path)?;
        let m = pb::ModelProto::decode(&inlined[..])?;
        let t = &m.graph.unwrap().initializer[0];
        assert_eq!(t.raw_data, data);
        assert!(t.external_data.is_empty() && t.data_location == 0);

        for bad in ["../w.bin", "/etc/passwd", "missing.bin"] {
            let e = inline_external_data(model_with(bad, vec![2]).encode_to_vec(), &path).unwrap_err();
            assert!(format!("{e:#}").contains("m.onnx"), "{e:#}");
        }
        let e = inline_external_data(model_with("w.bin", vec![3]).encode_to_vec(), &path).unwrap_err();
        assert!(format!("{e:#}").contains("needs 12"), "{e:#}");
        Ok(())
    }
}
