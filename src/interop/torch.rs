//! PyTorch's checkpoint files, read without PyTorch: the zip format of
//! `torch.save` since 1.6 (`<archive>/data.pkl` plus one raw file per storage under
//! `<archive>/data/`) and the legacy format before it (pickles one after another,
//! then the storages' bytes). The pickle names each tensor's storage by a
//! persistent id: ('storage', torch.FloatStorage, key, location, numel[, view]).

use super::pickle::{unpickle, Id, Obj, Unpickled};
use super::Value;
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
use std::io::Read;

/// What one element of a storage is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Element {
    F32,
    F64,
    F16,
    BF16,
    /// Integers and booleans (`num_batches_tracked`): kept as "not a float tensor".
    Other(usize),
}

impl Element {
    fn of_storage(name: &str) -> Result<Element> {
        Ok(match name {
            "FloatStorage" => Element::F32,
            "DoubleStorage" => Element::F64,
            "HalfStorage" => Element::F16,
            "BFloat16Storage" => Element::BF16,
            "LongStorage" => Element::Other(8),
            "IntStorage" => Element::Other(4),
            "ShortStorage" => Element::Other(2),
            "CharStorage" | "ByteStorage" | "BoolStorage" => Element::Other(1),
            other => bail!("a tensor is stored as torch.{other}, which srgraph does not read"),
        })
    }

    fn size(self) -> usize {
        match self {
            Element::F32 => 4,
            Element::F64 => 8,
            Element::F16 | Element::BF16 => 2,
            Element::Other(n) => n,
        }
    }

    fn decode(self, b: &[u8]) -> f32 {
        match self {
            Element::F32 => f32::from_le_bytes(b.try_into().expect("4 bytes")),
            Element::F64 => f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
            Element::F16 => half::f16::from_le_bytes(b.try_into().expect("2 bytes")).to_f32(),
            Element::BF16 => half::bf16::from_le_bytes(b.try_into().expect("2 bytes")).to_f32(),
            Element::Other(_) => f32::NAN,
        }
    }
}

/// A storage as the pickle names it.
struct StorageRef {
    key: String,
    element: Element,
}

fn storage_ref(u: &Unpickled, pid: Id) -> Result<StorageRef> {
    let items = u.items(pid).context("a persistent id is not a tuple")?;
    ensure!(
        items.len() >= 5 && u.str(items[0]) == Some("storage"),
        "a persistent id is not a ('storage', ...) tuple"
    );
    let Obj::Global(_, type_name) = u.get(items[1]) else {
        bail!("a storage's type is not a torch storage class");
    };
    let key = match u.get(items[2]) {
        Obj::Str(s) => s.clone(),
        Obj::Int(i) => i.to_string(),
        _ => bail!("a storage's key is not a string"),
    };
    if let Some(&view) = items.get(5) {
        ensure!(
            *u.get(view) == Obj::None,
            "the checkpoint stores a storage view (PyTorch before 1.0); load and save it again with a newer PyTorch"
        );
    }
    Ok(StorageRef {
        key,
        element: Element::of_storage(type_name)?,
    })
}

/// The pickle's tree with each tensor gathered from its storage's bytes. A storage two
/// tensors share is read twice rather than kept: memory holds one storage at a time.
fn resolve(u: &Unpickled, storages: &mut dyn FnMut(&str) -> Result<Vec<u8>>) -> Result<Value> {
    build(u, u.root, storages, 0)
}

fn build(u: &Unpickled, id: Id, fetch: &mut dyn FnMut(&str) -> Result<Vec<u8>>, depth: usize) -> Result<Value> {
    // Deeper than any checkpoint nests; a pickle may also refer to itself.
    ensure!(depth < 64, "the checkpoint nests its objects more than 64 deep");
    Ok(match u.get(id) {
        Obj::Dict(items) => {
            let mut out = vec![];
            for &(k, v) in items {
                let key = match u.get(k) {
                    Obj::Str(s) => s.clone(),
                    Obj::Int(i) => i.to_string(),
                    _ => continue,
                };
                out.push((key, build(u, v, fetch, depth + 1)?));
            }
            Value::Dict(out)
        }
        Obj::Tensor {
            storage,
            offset,
            shape,
            stride,
        } => {
            let r = storage_ref(u, *storage)?;
            if let Element::Other(_) = r.element {
                return Ok(Value::Other("an integer tensor".into()));
            }
            let bytes = fetch(&r.key)?;
            Value::Tensor(gather(&bytes, r.element, *offset, shape, stride)?)
        }
        Obj::List(_) | Obj::Tuple(_) => Value::Other("a list".into()),
        Obj::None => Value::Other("None".into()),
        Obj::Bool(_) => Value::Other("a boolean".into()),
        Obj::Int(_) | Obj::BigInt(_) | Obj::Float(_) => Value::Other("a number".into()),
        Obj::Str(_) | Obj::Bytes(_) => Value::Other("a string".into()),
        Obj::Global(m, n) => Value::Other(format!("{m}.{n}")),
        Obj::Persistent(_) => Value::Other("a bare storage".into()),
    })
}

/// A tensor's elements in row-major order, read through its strides.
fn gather(bytes: &[u8], e: Element, offset: usize, shape: &[usize], stride: &[usize]) -> Result<crate::ir::Tensor> {
    let numel = bytes.len() / e.size();
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let count = count.context("a tensor's shape overflows")?;
    // A view never has more elements than its storage unless its strides repeat them
    // (an expanded tensor); a shape of 10^12 over a few bytes is a hostile file.
    ensure!(
        count <= numel.max(1 << 24),
        "a tensor of shape {shape:?} claims {count} elements from a storage of {numel}: a damaged file"
    );
    if count > 0 {
        let last = shape.iter().zip(stride).try_fold(offset, |a, (&d, &s)| {
            (d - 1).checked_mul(s).and_then(|x| a.checked_add(x))
        });
        ensure!(
            last.is_some_and(|l| l < numel),
            "a tensor reaches past the end of its storage ({numel} elements): a damaged file"
        );
    }
    let mut data = Vec::with_capacity(count);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..count {
        let at = offset + index.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>();
        data.push(e.decode(&bytes[at * e.size()..(at + 1) * e.size()]));
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    Ok(crate::ir::Tensor::f32(shape, data))
}

/// `torch.save`'s zip format (PyTorch >= 1.6).
pub fn read_zip(bytes: &[u8]) -> Result<Value> {
    // PyTorch's writer starts the archive at byte 0; detecting an offset misreads its zip64 records.
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let mut zip =
        zip::ZipArchive::with_config(config, std::io::Cursor::new(bytes)).context("its zip directory does not read")?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .context("its zip directory names a file with an unreadable name")?;
    let pkl = names
        .iter()
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .context("it is a zip file without a data.pkl: not a PyTorch checkpoint")?
        .clone();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut entry = |name: &str| -> Result<Vec<u8>> {
        let mut f = zip
            .by_name(name)
            .with_context(|| format!("it has no {name}, which its pickle refers to (a damaged file)"))?;
        // The zip's recorded size bounds the read, so a lying header cannot grow it, and a
        // size beyond the memory there is (a zip bomb) is refused before it is read.
        let size = f.size();
        if let Some(available) = crate::util::short_of_memory(size as f64) {
            bail!("{name} would decompress to {size} bytes, more than the {available:.0} bytes of memory available");
        }
        let mut b = Vec::with_capacity(size.min(bytes.len() as u64 * 8) as usize);
        (&mut f)
            .take(size)
            .read_to_end(&mut b)
            .with_context(|| format!("{name} does not decompress"))?;
        Ok(b)
    };
    if let Ok(order) = entry(&format!("{prefix}byteorder")) {
        ensure!(
            order == b"little",
            "its tensors are big-endian; save it again on a little-endian machine"
        );
    }
    let u = unpickle(&entry(&pkl)?)?;
    resolve(&u, &mut |key| entry(&format!("{prefix}data/{key}")))
}

/// The first bytes of a legacy checkpoint: protocol 2, then the magic number as LONG1.
pub const LEGACY_MAGIC: [u8; 14] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];

/// The legacy format (before PyTorch 1.6): magic number, protocol version and
/// system info pickles, the object's pickle, the sorted storage keys' pickle,
/// then each storage as an 8-byte element count and its bytes.
pub fn read_legacy(bytes: &[u8]) -> Result<Value> {
    let mut pos = 0;
    let mut next = |what: &str| -> Result<Unpickled> {
        let u = unpickle(&bytes[pos..]).with_context(|| format!("its {what} does not read"))?;
        pos += u.consumed;
        Ok(u)
    };
    next("magic number")?;
    let version = next("format version")?;
    ensure!(
        version.int(version.root) == Some(1001),
        "it is a PyTorch file of an unknown format version"
    );
    next("system information")?;
    let object = next("object")?;
    let keys = next("storage list")?;
    let keys: Vec<String> = keys
        .items(keys.root)
        .context("its storage list is not a list")?
        .iter()
        .map(|&k| keys.str(k).map(str::to_string).context("a storage key is not a string"))
        .collect::<Result<_>>()?;
    // The element size of each storage comes from the object's persistent ids.
    let mut element = HashMap::new();
    for o in &object.objects {
        if let Obj::Persistent(pid) = o {
            let r = storage_ref(&object, *pid)?;
            element.insert(r.key, r.element);
        }
    }
    let mut data = HashMap::new();
    for key in keys {
        let size = element.get(&key).map_or(1, |e| e.size());
        let count = bytes
            .get(pos..pos + 8)
            .context("it ends before its storages (a truncated file)")?;
        let count = u64::from_le_bytes(count.try_into().expect("8 bytes"));
        let n = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(size))
            .filter(|&n| n <= bytes.len() - pos - 8)
            .context("it ends in the middle of a storage (a truncated file)")?;
        data.insert(key, bytes[pos + 8..pos + 8 + n].to_vec());
        pos += 8 + n;
    }
    resolve(&object, &mut |key| {
        data.get(key)
            .cloned()
            .with_context(|| format!("its storage {key} is missing (a damaged file)"))
    })
}
