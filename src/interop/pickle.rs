//! A pickle reader that runs no code: Python's pickle machine, restricted to what a
//! PyTorch state dict is made of (containers, numbers, strings, and the handful of
//! `torch` functions that rebuild a tensor from a storage). Any other global (a
//! class, `os.system`, `builtins.eval`) is refused by name before anything is built,
//! so a malicious checkpoint gets an error, never a say in what happens.
//!
//! Objects live in an arena and containers hold indices into it, so that a
//! dictionary filled after it was memoised is the same dictionary wherever the
//! pickle refers to it again.

use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;

pub type Id = usize;

/// The one pickle global that means "code" and not "data" is everything not listed here.
const ALLOWED: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "Tensor"),
    ("torch.nn.parameter", "Parameter"),
    ("_codecs", "encode"),
];

#[derive(Clone, Debug, PartialEq)]
pub enum Obj {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    /// A global from the allowed list, or a storage type (`torch.FloatStorage`).
    Global(String, String),
    /// A persistent id: what a tensor's storage is, resolved by the file format.
    Persistent(Id),
    /// A tensor: its storage's persistent id, then offset, shape and strides in elements.
    Tensor {
        storage: Id,
        offset: usize,
        shape: Vec<usize>,
        stride: Vec<usize>,
    },
}

#[derive(Debug)]
pub struct Unpickled {
    pub objects: Vec<Obj>,
    pub root: Id,
    /// Bytes read: a legacy PyTorch file holds several pickles one after another.
    pub consumed: usize,
}

impl Unpickled {
    pub fn get(&self, id: Id) -> &Obj {
        &self.objects[id]
    }

    pub fn str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self, id: Id) -> Option<i64> {
        match self.get(id) {
            Obj::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn items(&self, id: Id) -> Option<&[Id]> {
        match self.get(id) {
            Obj::Tuple(v) | Obj::List(v) => Some(v),
            _ => None,
        }
    }
}

/// A pickle's objects are refused past this many: a state dict of a few hundred
/// tensors makes a few thousand; a hostile file would make memory run out.
const MAX_OBJECTS: usize = 50_000_000;

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    objects: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

/// Runs one pickle from the start of `data`.
pub fn unpickle(data: &[u8]) -> Result<Unpickled> {
    let mut m = Machine {
        data,
        pos: 0,
        objects: vec![],
        stack: vec![],
        marks: vec![],
        memo: HashMap::new(),
    };
    let root = m.run()?;
    Ok(Unpickled {
        objects: m.objects,
        root,
        consumed: m.pos,
    })
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.context("the pickle ends in the middle of an instruction (a truncated file)")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .context("the pickle ends in the middle of a line (a truncated file)")?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn alloc(&mut self, o: Obj) -> Result<Id> {
        ensure!(self.objects.len() < MAX_OBJECTS, "the pickle makes too many objects");
        self.objects.push(o);
        Ok(self.objects.len() - 1)
    }

    fn push(&mut self, o: Obj) -> Result<()> {
        let id = self.alloc(o)?;
        self.stack.push(id);
        Ok(())
    }

    fn pop(&mut self) -> Result<Id> {
        self.stack
            .pop()
            .context("the pickle pops an empty stack (a damaged file)")
    }

    fn top(&self) -> Result<Id> {
        self.stack
            .last()
            .copied()
            .context("the pickle reads an empty stack (a damaged file)")
    }

    /// The objects pushed since the last mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Id>> {
        let mark = self
            .marks
            .pop()
            .context("the pickle closes a mark it never opened (a damaged file)")?;
        ensure!(
            mark <= self.stack.len(),
            "the pickle's marks and stack disagree (a damaged file)"
        );
        Ok(self.stack.split_off(mark))
    }

    fn memo_get(&self, key: u32) -> Result<Id> {
        self.memo
            .get(&key)
            .copied()
            .with_context(|| format!("the pickle refers to memo entry {key}, which it never stored (a damaged file)"))
    }

    fn string(&mut self, n: usize) -> Result<()> {
        let s = String::from_utf8(self.take(n)?.to_vec()).context("the pickle holds a string that is not UTF-8")?;
        self.push(Obj::Str(s))
    }

    fn bytes(&mut self, n: usize) -> Result<()> {
        let b = self.take(n)?.to_vec();
        self.push(Obj::Bytes(b))
    }

    fn global(&mut self, module: String, name: String) -> Result<()> {
        let storage = module == "torch" && name.ends_with("Storage");
        if !storage && !ALLOWED.contains(&(module.as_str(), name.as_str())) {
            bail!(
                "the checkpoint's pickle asks for `{module}.{name}`, which is not a tensor or a plain container; \
                 srgraph never runs code from a pickle (it could do anything). Save the weights alone: \
                 torch.save(model.state_dict(), path), or safetensors"
            );
        }
        self.push(Obj::Global(module, name))
    }

    fn length(&mut self, n: u64) -> Result<usize> {
        let n = usize::try_from(n).ok().filter(|&n| n <= self.data.len() - self.pos);
        n.context("the pickle holds a string longer than the file (a truncated file)")
    }

    fn run(&mut self) -> Result<Id> {
        loop {
            let op = self.u8().context("the file ends before its pickle does")?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    ensure!(proto <= 5, "pickle protocol {proto} is newer than any Python writes");
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint.
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => self.stack.push(self.top()?),
                b'N' => self.push(Obj::None)?,
                0x88 => self.push(Obj::Bool(true))?,
                0x89 => self.push(Obj::Bool(false))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.push(Obj::Int(v as i64))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Obj::Int(v as i64))?
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.push(Obj::Int(v as i64))?
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(long(b))?
                }
                0x8b => {
                    let n = u32::from_le_bytes(self.le()?) as u64;
                    let n = self.length(n)?;
                    let b = self.take(n)?.to_vec();
                    self.push(long(b))?
                }
                b'I' => {
                    let l = self.line()?;
                    let o = match l.as_str() {
                        "00" => Obj::Bool(false),
                        "01" => Obj::Bool(true),
                        s => Obj::Int(
                            s.parse()
                                .with_context(|| format!("the pickle holds a bad integer '{s}'"))?,
                        ),
                    };
                    self.push(o)?
                }
                b'L' => {
                    let l = self.line()?;
                    let v = l
                        .trim_end_matches('L')
                        .parse()
                        .context("the pickle holds an integer wider than 64 bits")?;
                    self.push(Obj::Int(v))?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.push(Obj::Float(v))?
                }
                b'F' => {
                    let l = self.line()?;
                    self.push(Obj::Float(l.parse().context("the pickle holds a bad float")?))?
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.le()?) as u64;
                    let n = self.length(n)?;
                    self.string(n)?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    self.string(n)?
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.le()?);
                    let n = self.length(n)?;
                    self.string(n)?
                }
                b'T' => {
                    let n = u32::from_le_bytes(self.le()?) as u64;
                    let n = self.length(n)?;
                    self.bytes(n)?
                }
                b'U' | b'C' => {
                    let n = self.u8()? as usize;
                    self.bytes(n)?
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.le()?) as u64;
                    let n = self.length(n)?;
                    self.bytes(n)?
                }
                0x8e => {
                    let n = u64::from_le_bytes(self.le()?);
                    let n = self.length(n)?;
                    self.bytes(n)?
                }
                b'V' => {
                    let l = self.line()?;
                    self.push(Obj::Str(l))?
                }
                b')' => self.push(Obj::Tuple(vec![]))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    ensure!(self.stack.len() >= n, "the pickle builds a tuple from an empty stack");
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Obj::Tuple(items))?
                }
                b']' => self.push(Obj::List(vec![]))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items))?
                }
                b'}' => self.push(Obj::Dict(vec![]))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(&items)?;
                    self.push(Obj::Dict(pairs))?
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![(k, v)])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(&items)?;
                    self.set_items(pairs)?
                }
                b'p' => {
                    let key = self.line()?.parse().context("the pickle holds a bad memo key")?;
                    self.memo.insert(key, self.top()?);
                }
                b'q' => {
                    let key = self.u8()? as u32;
                    self.memo.insert(key, self.top()?);
                }
                b'r' => {
                    let key = u32::from_le_bytes(self.le()?);
                    self.memo.insert(key, self.top()?);
                }
                0x94 => {
                    let key = self.memo.len() as u32;
                    self.memo.insert(key, self.top()?);
                }
                b'g' => {
                    let key = self.line()?.parse().context("the pickle holds a bad memo key")?;
                    self.stack.push(self.memo_get(key)?)
                }
                b'h' => {
                    let key = self.u8()? as u32;
                    self.stack.push(self.memo_get(key)?)
                }
                b'j' => {
                    let key = u32::from_le_bytes(self.le()?);
                    self.stack.push(self.memo_get(key)?)
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Obj::Str(module), Obj::Str(name)) = (&self.objects[module], &self.objects[name]) else {
                        bail!("the pickle names a global with something that is not a string");
                    };
                    let (module, name) = (module.clone(), name.clone());
                    self.global(module, name)?
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(Obj::Persistent(pid))?
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let o = self.reduce(f, args)?;
                    self.push(o)?
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let o = self.reduce(cls, args)?;
                    self.push(o)?
                }
                b'b' => {
                    // BUILD sets an object's attributes (an OrderedDict's `_metadata`, a
                    // parameter's hooks): a state dict needs none of them.
                    self.pop()?;
                }
                other => bail!(
                    "the pickle uses instruction 0x{other:02x} at byte {}, which a PyTorch state dict does not need \
                     (a damaged file, or not a checkpoint)",
                    self.pos - 1
                ),
            }
        }
    }

    fn append(&mut self, items: Vec<Id>) -> Result<()> {
        let target = self.top()?;
        match &mut self.objects[target] {
            Obj::List(v) => v.extend(items),
            _ => bail!("the pickle appends to something that is not a list"),
        }
        Ok(())
    }

    fn set_items(&mut self, items: Vec<(Id, Id)>) -> Result<()> {
        let target = self.top()?;
        match &mut self.objects[target] {
            Obj::Dict(v) => v.extend(items),
            _ => bail!("the pickle sets items on something that is not a dictionary"),
        }
        Ok(())
    }

    /// A call of an allowed global: the only calls a pickle may make here.
    fn reduce(&mut self, f: Id, args: Id) -> Result<Obj> {
        self.call(f, args, 0)
    }

    fn call(&mut self, f: Id, args: Id, depth: usize) -> Result<Obj> {
        ensure!(depth < 8, "the pickle nests tensor rebuilds more than 8 deep");
        let Obj::Global(module, name) = &self.objects[f] else {
            bail!("the pickle calls something that is not a known function");
        };
        let Obj::Tuple(args) = self.objects[args].clone() else {
            bail!("the pickle calls {module}.{name} without an argument tuple");
        };
        let arg = |i: usize| {
            args.get(i)
                .copied()
                .with_context(|| format!("{module}.{name} lacks argument {i}"))
        };
        Ok(match (module.as_str(), name.as_str()) {
            ("collections", "OrderedDict") => Obj::Dict(vec![]),
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                let storage = match &self.objects[arg(0)?] {
                    Obj::Persistent(pid) => *pid,
                    _ => bail!("a tensor's storage is not a persistent reference"),
                };
                let offset = self.count(arg(1)?)?;
                let shape = self.counts(arg(2)?)?;
                let stride = self.counts(arg(3)?)?;
                ensure!(
                    shape.len() == stride.len(),
                    "a tensor's shape and strides differ in length"
                );
                Obj::Tensor {
                    storage,
                    offset,
                    shape,
                    stride,
                }
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => self.objects[arg(0)?].clone(),
            // (function, type, args, state): the tensor the function makes from args.
            ("torch._tensor", "_rebuild_from_type_v2") => {
                let inner = arg(0)?;
                let inner_args = arg(2)?;
                self.call(inner, inner_args, depth + 1)?
            }
            ("torch.nn.parameter", "Parameter") => self.objects[arg(0)?].clone(),
            // Protocol 2's spelling of bytes: encode(text, 'latin1').
            ("_codecs", "encode") => match &self.objects[arg(0)?] {
                Obj::Str(s) => Obj::Bytes(s.chars().map(|c| c as u32 as u8).collect()),
                _ => bail!("_codecs.encode of something that is not a string"),
            },
            _ => bail!("the pickle calls {module}.{name}, which does not make a tensor or a container"),
        })
    }

    fn count(&self, id: Id) -> Result<usize> {
        match self.objects[id] {
            Obj::Int(i) if i >= 0 => Ok(i as usize),
            _ => bail!("a tensor's offset, size or stride is not a non-negative integer"),
        }
    }

    fn counts(&self, id: Id) -> Result<Vec<usize>> {
        match &self.objects[id] {
            Obj::Tuple(v) | Obj::List(v) => v.iter().map(|&i| self.count(i)).collect(),
            _ => bail!("a tensor's shape or strides are not a tuple"),
        }
    }
}

fn long(b: Vec<u8>) -> Obj {
    if b.is_empty() {
        return Obj::Int(0);
    }
    if b.len() <= 8 {
        let negative = b[b.len() - 1] & 0x80 != 0;
        let mut full = [if negative { 0xff } else { 0 }; 8];
        full[..b.len()].copy_from_slice(&b);
        return Obj::Int(i64::from_le_bytes(full));
    }
    Obj::BigInt(b)
}

fn pairs(items: &[Id]) -> Result<Vec<(Id, Id)>> {
    ensure!(
        items.len().is_multiple_of(2),
        "the pickle gives a dictionary an odd number of keys and values"
    );
    Ok(items.chunks(2).map(|c| (c[0], c[1])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by Python 3.11: pickle.dumps({'a': [1, 2.5, 'x'], 'b': (None, True)}, protocol=2).
    const PLAIN: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x03eX\x01\x00\x00\x00bq\x04N\x88\x86q\x05u.";

    #[test]
    fn plain_containers_read() -> Result<()> {
        let u = unpickle(PLAIN)?;
        let Obj::Dict(items) = u.get(u.root) else {
            panic!("a dict")
        };
        assert_eq!(items.len(), 2);
        assert_eq!(u.str(items[0].0), Some("a"));
        let list = u.items(items[0].1).unwrap();
        assert_eq!(u.get(list[0]), &Obj::Int(1));
        assert_eq!(u.get(list[1]), &Obj::Float(2.5));
        assert_eq!(u.str(list[2]), Some("x"));
        assert_eq!(u.consumed, PLAIN.len());
        Ok(())
    }

    /// pickle.dumps(os.system-calling object): `cposix\nsystem\n` then REDUCE.
    #[test]
    fn code_is_refused_by_name() {
        let evil = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
        let e = unpickle(evil).unwrap_err().to_string();
        assert!(e.contains("posix.system") && e.contains("never runs code"), "{e}");
    }

    #[test]
    fn truncations_are_errors() {
        for cut in 0..PLAIN.len() {
            assert!(unpickle(&PLAIN[..cut]).is_err(), "cut at {cut}");
        }
    }
}
