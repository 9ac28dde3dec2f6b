//! How a low-resolution picture is made from its original: MATLAB bicubic (the default,
//! and what every benchmark's LR files are), or one of the degradations RDN and SRMD
//! train and test on, or a blur kernel of the user's.
//!
//! The definitions follow RDN's preparation code (yulunzhang/RDN,
//! `RDN_TrainCode/Prepare_TrainData/Prepare_TrainData_HR_LR_BD.m` and `..._DN.m`), which
//! SRMD's BD setting shares (`fspecial('gaussian',7,1.6)`, direct downsampler):
//!
//! ```text
//! BD: kernel  = fspecial('gaussian', 7, 1.6);
//!     blur_HR = imfilter(ImHR, kernel, 'replicate');     % uint8 in, uint8 out (rounded)
//!     ImLR    = imresize(blur_HR, 1/scale, 'nearest');
//! DN: ImDown  = imresize(ImHR, 1/scale, 'bicubic');     % uint8
//!     ImLR    = uint8(single(ImDown) + single(30 * randn(size(ImDown))));
//! ```
//!
//! - The blur is a correlation (`imfilter`'s default) with the edge pixel repeated
//!   ('replicate'), over the whole (modcropped) picture, rounded to 8 bits.
//! - `imresize(.., 1/s, 'nearest')` has no antialiasing (MATLAB's default for 'nearest'):
//!   output pixel u (1-based) sits at x = s u + (1 - s)/2 and takes the input pixel j with
//!   -0.5 <= x - j < 0.5 (imresize's box kernel), j = floor(x + 0.5). 0-based, that is the
//!   pixel at offset floor(s / 2) of each s x s block: the second of two at x2, the centre at
//!   x3, the third of four at x4.
//! - The noise is added to the 8-bit bicubic picture, then rounded (half away from zero, as
//!   MATLAB's `uint8`) and clipped to 0..255.
//! - A 16-bit picture is blurred, rounded and noised alike on 0..65535 (`uint16`); sigma 30
//!   is on the 0..255 scale, so its noise has sigma 30 * 257.
//!
//! RDN draws the noise once per picture. Here it is a pure function of a key: for training
//! of (data seed, step, item), so that every step sees fresh noise and `--resume` stays
//! bit-exact; for validation and `eval` of the picture's name, so that scores repeat.

use super::bicubic::{self, Border};
use super::sample::Sample;
use anyhow::{bail, ensure, Context, Result};
use ndarray::{Array3, ArrayView3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// The names `--degradation` takes.
pub const NAMES: &str = "bicubic, bd, dn, kernel:FILE";

/// The largest blur kernel side a kernel file may hold.
pub const MAX_KERNEL: usize = 31;

/// BD's Gaussian: side and standard deviation, in HR pixels.
const BD_SIDE: usize = 7;
const BD_SIGMA: f64 = 1.6;
/// DN's noise standard deviation, in grey levels of 0..255.
pub const DN_SIGMA: f64 = 30.0;

/// How low-resolution pictures are made from high-resolution ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Degradation {
    /// MATLAB's `imresize(HR, 1/s, 'bicubic')`.
    #[default]
    Bicubic,
    /// Gaussian blur 7x7, sigma 1.6, then nearest downsampling.
    Bd,
    /// Bicubic downscaling, then Gaussian noise of sigma 30.
    Dn,
    /// A user's blur kernel, then nearest downsampling as BD.
    Kernel(Blur),
}

/// A blur kernel: `side` x `side` taps summing to 1, applied as a correlation.
#[derive(Clone, Debug, PartialEq)]
pub struct Blur {
    /// The kernel file's name (without its folder), for the metadata.
    file: String,
    side: usize,
    /// Row-major, correlation taps: tap (a, b) weighs the pixel (y + a - r, x + b - r).
    taps: Vec<f64>,
}

impl Blur {
    /// A short hash of the normalised taps: two files with the same kernel share it.
    pub fn hash(&self) -> String {
        let bytes = self.taps.iter().flat_map(|t| t.to_bits().to_le_bytes());
        let h = fnv1a(bytes);
        format!("{:08x}", (h >> 32) ^ (h & 0xffff_ffff))
    }

    pub fn side(&self) -> usize {
        self.side
    }

    pub fn taps(&self) -> &[f64] {
        &self.taps
    }
}

fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes
        .into_iter()
        .fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// MATLAB's `fspecial('gaussian', side, sigma)`: exp(-(x² + y²) / 2σ²) over x, y in
/// -(side-1)/2 ..= (side-1)/2, taps below eps times the largest set to 0, normalised to
/// sum 1. Row-major.
pub fn gaussian(side: usize, sigma: f64) -> Vec<f64> {
    let r = (side as f64 - 1.0) / 2.0;
    let mut taps: Vec<f64> = (0..side * side)
        .map(|i| {
            let (y, x) = ((i / side) as f64 - r, (i % side) as f64 - r);
            (-(x * x + y * y) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let max = taps.iter().copied().fold(0.0, f64::max);
    for t in taps.iter_mut().filter(|t| **t < f64::EPSILON * max) {
        *t = 0.0;
    }
    let sum: f64 = taps.iter().sum();
    taps.iter_mut().for_each(|t| *t /= sum);
    taps
}

impl std::str::FromStr for Degradation {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Degradation> {
        Degradation::parse(s)
    }
}

impl Degradation {
    /// `bicubic`, `bd`, `dn` or `kernel:FILE` (a kernel file is read now).
    pub fn parse(s: &str) -> Result<Degradation> {
        match s.trim() {
            "bicubic" => Ok(Degradation::Bicubic),
            "bd" => Ok(Degradation::Bd),
            "dn" => Ok(Degradation::Dn),
            other => match other.strip_prefix("kernel:") {
                Some(file) if !file.is_empty() => Ok(Degradation::Kernel(read_kernel(Path::new(file))?)),
                Some(_) => bail!("kernel: needs a file, as kernel:psf.txt"),
                None => bail!("unknown degradation '{other}': use one of {NAMES}"),
            },
        }
    }

    /// A stable name for metadata and reports: `bicubic`, `bd`, `dn`, `kernel:<file>#<hash>`.
    pub fn name(&self) -> String {
        match self {
            Degradation::Bicubic => "bicubic".into(),
            Degradation::Bd => "bd".into(),
            Degradation::Dn => "dn".into(),
            Degradation::Kernel(k) => format!("kernel:{}#{}", k.file, k.hash()),
        }
    }

    /// Whether a model recorded as trained on `recorded` (a `name()`) saw this degradation.
    /// Kernels are compared by their taps' hash, not their file's name.
    pub fn matches(&self, recorded: &str) -> bool {
        match self {
            Degradation::Kernel(k) => recorded
                .strip_prefix("kernel:")
                .and_then(|r| r.rsplit_once('#'))
                .is_some_and(|(_, hash)| hash == k.hash()),
            _ => recorded == self.name(),
        }
    }

    /// The blur before nearest downsampling, if the degradation has one.
    fn blur(&self) -> Option<Blur> {
        match self {
            Degradation::Bd => Some(Blur {
                file: String::new(),
                side: BD_SIDE,
                taps: gaussian(BD_SIDE, BD_SIGMA),
            }),
            Degradation::Kernel(k) => Some(k.clone()),
            Degradation::Bicubic | Degradation::Dn => None,
        }
    }

    /// The standard deviation of the noise added after downscaling, if any.
    pub fn noise(&self) -> Option<f64> {
        matches!(self, Degradation::Dn).then_some(DN_SIGMA)
    }

    /// Whether the noiseless LR picture is bicubic's, so a set's bicubic LR files serve.
    pub fn uses_bicubic_files(&self) -> bool {
        self.blur().is_none()
    }

    /// What tells the noiseless LR pictures apart in the data cache: None when they are
    /// bicubic's (DN's noise is added as pictures are read, so DN shares bicubic's cache).
    pub fn cache_key(&self) -> Option<String> {
        (!self.uses_bicubic_files()).then(|| self.name())
    }

    /// The noiseless LR picture of a (modcropped) HR picture.
    pub fn downscale<P: Sample>(&self, hr: &Array3<P>, s: usize) -> Result<Array3<P>> {
        match self.blur() {
            None => bicubic::downscale(hr, s, Border::Mirror),
            Some(blur) => Ok(blur_and_decimate(hr.view(), &blur, s)),
        }
    }

    /// The whole LR picture (with the noise, if any, for the picture named `name`): what
    /// validation and `eval` score.
    pub fn picture_noise<P: Sample>(&self, lr: &mut Array3<P>, name: &str) {
        if let Some(sigma) = self.noise() {
            add_noise(lr, sigma, picture_key(name));
        }
    }

    /// How `eval` names the source of its LR pictures; `files`: the set's LR files are used.
    pub fn describe(&self, files: bool) -> String {
        match (self, files) {
            (Degradation::Bicubic, true) => "LR files".into(),
            (Degradation::Bicubic, false) => "MATLAB-exact bicubic".into(),
            (Degradation::Dn, true) => format!("LR files with noise of sigma {DN_SIGMA}"),
            (Degradation::Dn, false) => format!("MATLAB-exact bicubic with noise of sigma {DN_SIGMA}"),
            (Degradation::Bd, _) => format!("bd: Gaussian blur {BD_SIDE}x{BD_SIDE}, sigma {BD_SIGMA}, then nearest"),
            (Degradation::Kernel(_), _) => format!("{}: blur then nearest", self.name()),
        }
    }
}

/// `imfilter(hr, taps, 'replicate')` rounded to the value type, read at the pixel of each s x s
/// block that `imresize(.., 1/s, 'nearest')` takes (offset floor(s/2)); only those pixels are blurred.
fn blur_and_decimate<P: Sample>(hr: ArrayView3<P>, blur: &Blur, s: usize) -> Array3<P> {
    let (h, w, c) = hr.dim();
    let (k, r) = (blur.side, (blur.side / 2) as i64);
    let clamp = |v: i64, n: usize| v.clamp(0, n as i64 - 1) as usize;
    Array3::from_shape_fn((h / s, w / s, c), |(i, j, ch)| {
        let (y, x) = ((i * s + s / 2) as i64, (j * s + s / 2) as i64);
        let mut sum = 0.0;
        for a in 0..k {
            let row = clamp(y + a as i64 - r, h);
            for b in 0..k {
                sum += blur.taps[a * k + b] * hr[[row, clamp(x + b as i64 - r, w), ch]].level();
            }
        }
        P::from_level(sum)
    })
}

/// The noise key of a training item: (data seed, step, item), apart from the crop's own key.
pub fn crop_key(seed: u64, step: u64, item: usize) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&step.to_le_bytes());
    key[16..24].copy_from_slice(&(item as u64).to_le_bytes());
    key[24..].copy_from_slice(b"dn-noise");
    key
}

/// The noise key of a whole picture, from its file's stem: the same wherever the picture is.
pub fn picture_key(name: &str) -> [u8; 32] {
    let stem = Path::new(name).file_stem().map_or(name.into(), |s| s.to_string_lossy());
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&fnv1a(stem.bytes()).to_le_bytes());
    key[24..].copy_from_slice(b"dn-fixed");
    key
}

/// Adds Gaussian noise of `sigma` on the 0..255 scale (Box-Muller over ChaCha8 seeded with
/// `key`, in HWC order; times 257 on 16-bit values), rounded half away from zero and clipped
/// to the value type's range.
pub fn add_noise<P: Sample>(lr: &mut Array3<P>, sigma: f64, key: [u8; 32]) {
    let sigma = sigma * P::PER_NETWORK_STEP;
    let mut rng = ChaCha8Rng::from_seed(key);
    let mut spare: Option<f64> = None;
    for v in lr.iter_mut() {
        let z = spare.take().unwrap_or_else(|| {
            let (z0, z1) = normal_pair(&mut rng);
            spare = Some(z1);
            z0
        });
        *v = P::from_level(v.level() + sigma * z);
    }
}

/// Two independent standard normal samples (Box-Muller).
pub fn normal_pair(rng: &mut impl Rng) -> (f64, f64) {
    // 1 - [0, 1) is (0, 1]: the logarithm stays finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    let radius = (-2.0 * u1.ln()).sqrt();
    let angle = std::f64::consts::TAU * u2;
    (radius * angle.cos(), radius * angle.sin())
}

/// A kernel file: a text file of numbers (rows of whitespace- or comma-separated floats), or
/// an 8- or 16-bit grey PNG. Square, odd, at most `MAX_KERNEL` a side, a positive sum;
/// normalised to sum 1. The file holds the PSF (how a point spreads), applied as a
/// convolution: the taps are stored flipped, for the correlation that applies them.
pub fn read_kernel(path: &Path) -> Result<Blur> {
    let what = || format!("kernel file {}", path.display());
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the {}", what()))?;
    let (rows, cols, values) = if bytes.starts_with(b"\x89PNG") {
        kernel_png(&bytes).with_context(what)?
    } else {
        kernel_text(&bytes).with_context(what)?
    };
    let side = rows;
    ensure!(
        rows == cols,
        "the {} is {rows} rows of {cols}: a kernel is square (odd side, at most {MAX_KERNEL})",
        what()
    );
    ensure!(
        side % 2 == 1,
        "the {} is {side}x{side}: a kernel's side is odd, so that it has a centre",
        what()
    );
    ensure!(
        side <= MAX_KERNEL,
        "the {} is {side}x{side}: at most {MAX_KERNEL}x{MAX_KERNEL} is read",
        what()
    );
    ensure!(
        values.iter().all(|v| v.is_finite()),
        "the {} holds a value that is not a finite number (NaN or infinity)",
        what()
    );
    let sum: f64 = values.iter().sum();
    ensure!(
        sum > 0.0,
        "the {}'s taps sum to {sum}: a blur kernel's sum is positive (it is normalised to 1)",
        what()
    );
    let taps = values.iter().rev().map(|v| v / sum).collect();
    let file = path
        .file_name()
        .map_or(path.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(Blur { file, side, taps })
}

/// Rows of whitespace- or comma-separated numbers; blank lines and `#` comments skipped.
fn kernel_text(bytes: &[u8]) -> Result<(usize, usize, Vec<f64>)> {
    let text = std::str::from_utf8(bytes).context("it is neither text nor a PNG")?;
    let mut rows: Vec<Vec<f64>> = vec![];
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let row = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<f64>()
                    .map_err(|_| anyhow::anyhow!("line {}: '{t}' is not a number", n + 1))
            })
            .collect::<Result<Vec<f64>>>()?;
        if let Some(first) = rows.first() {
            ensure!(
                row.len() == first.len(),
                "line {} holds {} numbers, the first row {}: a kernel is square",
                n + 1,
                row.len(),
                first.len()
            );
        }
        rows.push(row);
    }
    ensure!(!rows.is_empty(), "it holds no numbers");
    let cols = rows[0].len();
    Ok((rows.len(), cols, rows.concat()))
}

/// An 8- or 16-bit grey PNG, its grey levels as the taps.
fn kernel_png(bytes: &[u8]) -> Result<(usize, usize, Vec<f64>)> {
    let img = super::decode_bytes(bytes, "the PNG")?;
    use image::ColorType::{L16, L8};
    ensure!(
        matches!(img.color(), L8 | L16),
        "it is a {:?} PNG: a kernel PNG is grey, 8 or 16 bits, without alpha",
        img.color()
    );
    let grey = img.to_luma16();
    let (w, h) = grey.dimensions();
    ensure!(
        w as usize <= MAX_KERNEL && h as usize <= MAX_KERNEL,
        "it is {w}x{h}: at most {MAX_KERNEL}x{MAX_KERNEL} is read"
    );
    Ok((h as usize, w as usize, grey.pixels().map(|p| f64::from(p[0])).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bd_kernel_is_fspecial_gaussian_7_1_6() {
        // fspecial('gaussian', 7, 1.6): exp(-(x²+y²)/5.12) / Σ, x, y in -3..=3; no tap is
        // below eps * max (the corner is exp(-18/5.12) = 0.0297 of the centre).
        let g: Vec<f64> = (-3i32..=3).map(|x| (-(x * x) as f64 / 5.12).exp()).collect();
        let total: f64 = g.iter().sum::<f64>().powi(2);
        let taps = gaussian(7, 1.6);
        for (i, t) in taps.iter().enumerate() {
            let want = g[i / 7] * g[i % 7] / total;
            assert!((t - want).abs() < 1e-6, "tap {i}: {t} vs {want}");
        }
        // The centre: 1 / (1 + 2 (e^-1/5.12 + e^-4/5.12 + e^-9/5.12))² = 0.06556.
        assert!((taps[24] - 0.06556).abs() < 1e-5, "{}", taps[24]);
    }

    #[test]
    fn nearest_takes_offset_half_the_scale() {
        // A 1-tap kernel: BD reduces to imresize(.., 1/s, 'nearest').
        let one = Blur {
            file: String::new(),
            side: 1,
            taps: vec![1.0],
        };
        let hr = Array3::from_shape_fn((12, 12, 1), |(y, x, _)| (y * 12 + x) as u8);
        for s in 2..=4 {
            let lr = blur_and_decimate(hr.view(), &one, s);
            assert_eq!(lr[[0, 0, 0]] as usize, (s / 2) * 12 + s / 2, "x{s}");
            assert_eq!(lr[[1, 2, 0]] as usize, (s + s / 2) * 12 + 2 * s + s / 2, "x{s}");
        }
    }

    #[test]
    fn names_parse_and_unknown_is_refused() -> Result<()> {
        for n in ["bicubic", "bd", "dn"] {
            assert_eq!(Degradation::parse(n)?.name(), n);
        }
        let e = Degradation::parse("blur").unwrap_err().to_string();
        assert!(e.contains("'blur'") && e.contains(NAMES), "{e}");
        assert!(Degradation::parse("kernel:").is_err());
        Ok(())
    }

    /// On 16-bit values DN's sigma is 30 * 257, and BD of an 8-bit picture times 257 is
    /// within half an 8-bit level of its 8-bit BD (only the final rounding differs).
    #[test]
    fn sixteen_bit_noise_and_blur_keep_the_0_255_scale() {
        let mut flat = Array3::from_elem((128, 128, 3), 32768u16);
        add_noise(&mut flat, DN_SIGMA, crop_key(0, 0, 0));
        let n = flat.len() as f64;
        let mean = flat.iter().map(|&v| v as f64).sum::<f64>() / n;
        let sigma = (flat.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!((sigma / 257.0 - DN_SIGMA).abs() < 0.5, "sigma {sigma}");
        let hr = Array3::from_shape_fn((24, 24, 3), |(y, x, c)| ((y * 37 + x * 11 + c * 70) % 256) as u8);
        let deep = hr.mapv(|v| v as u16 * 257);
        let (lr8, lr16) = (
            Degradation::Bd.downscale(&hr, 3).unwrap(),
            Degradation::Bd.downscale(&deep, 3).unwrap(),
        );
        for (a, b) in lr8.iter().zip(&lr16) {
            assert!((*a as f64 - *b as f64 / 257.0).abs() <= 0.5 + 1.0 / 257.0, "{a} vs {b}");
        }
    }

    #[test]
    fn noise_is_a_function_of_its_key() {
        let flat = Array3::from_elem((64, 64, 3), 128u8);
        let noisy = |key| {
            let mut a = flat.clone();
            add_noise(&mut a, DN_SIGMA, key);
            a
        };
        assert_eq!(noisy(crop_key(1, 2, 3)), noisy(crop_key(1, 2, 3)));
        assert_ne!(noisy(crop_key(1, 2, 3)), noisy(crop_key(2, 2, 3)));
        assert_ne!(noisy(crop_key(1, 2, 3)), noisy(crop_key(1, 3, 3)));
        assert_eq!(picture_key("a/b/baby.png"), picture_key("c/baby.png"));
    }
}
