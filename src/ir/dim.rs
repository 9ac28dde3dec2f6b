//! Dimensions: known sizes, or a symbol (N, H, W) times a known factor, which is
//! all a super-resolution graph needs: same-padded convolutions keep H and W,
//! pixel shuffle multiplies them by the scale.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Known(usize),
    /// `factor * symbol`
    Sym(String, usize),
}

pub type Shape = Vec<Dim>;

impl Dim {
    pub fn sym(name: &str) -> Dim {
        Dim::Sym(name.to_string(), 1)
    }

    pub fn known(&self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(*n),
            Dim::Sym(..) => None,
        }
    }

    pub fn mul(&self, k: usize) -> Dim {
        match self {
            Dim::Known(n) => Dim::Known(n * k),
            Dim::Sym(s, f) => Dim::Sym(s.clone(), f * k),
        }
    }

    pub fn div(&self, k: usize) -> Option<Dim> {
        match self {
            Dim::Known(n) if n % k == 0 => Some(Dim::Known(n / k)),
            Dim::Sym(s, f) if f % k == 0 => Some(Dim::Sym(s.clone(), f / k)),
            _ => None,
        }
    }

    /// `self + delta`, where a symbolic dimension only accepts delta 0.
    pub fn add(&self, delta: i64) -> Option<Dim> {
        match self {
            Dim::Known(n) => usize::try_from(*n as i64 + delta).ok().map(Dim::Known),
            Dim::Sym(..) if delta == 0 => Some(self.clone()),
            Dim::Sym(..) => None,
        }
    }

    /// The name ONNX files use for this dimension's `dim_param`.
    pub fn onnx_param(&self) -> Option<String> {
        match self {
            Dim::Known(_) => None,
            Dim::Sym(s, 1) => Some(s.clone()),
            Dim::Sym(s, f) => Some(format!("{f}*{s}")),
        }
    }

    pub fn parse_onnx_param(p: &str) -> Dim {
        match p.split_once('*') {
            Some((f, s)) if f.parse::<usize>().is_ok() => Dim::Sym(s.to_string(), f.parse().unwrap()),
            _ => Dim::sym(p),
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s, 1) => write!(f, "{s}"),
            Dim::Sym(s, k) => write!(f, "{k}{s}"),
        }
    }
}

pub fn known(dims: &[usize]) -> Shape {
    dims.iter().map(|&d| Dim::Known(d)).collect()
}

pub fn show(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Numpy broadcasting of two shapes.
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Option<Shape> {
    let rank = a.len().max(b.len());
    let pad = |s: &[Dim]| -> Shape {
        let mut v = vec![Dim::Known(1); rank - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (a, b) = (pad(a), pad(b));
    a.iter()
        .zip(&b)
        .map(|(x, y)| match (x, y) {
            (Dim::Known(1), d) | (d, Dim::Known(1)) => Some(d.clone()),
            (x, y) if x == y => Some(x.clone()),
            _ => None,
        })
        .collect()
}
