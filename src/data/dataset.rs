//! Training and validation data: image folders in the usual layouts and their whole-image
//! pairs (the patches cut from them are `sampler`'s).
//!
//! Low-resolution images come from the set's own LR files when it has them, else from the
//! MATLAB-exact bicubic downscaler over the whole (modcropped) image, which is exactly how
//! those LR files were made (or by another degradation, `--degradation`: see `degrade`).
//! Training patches are then cut from the whole-image LR at an
//! aligned position rather than made by downscaling each HR crop: the result is what the LR
//! files would give, without the mirrored-border artefacts a crop's own downscale has in its
//! outer two LR pixels, and without a resize per patch.

use super::bicubic;
use super::degrade::Degradation;
use super::sample::Sample;
pub use super::sampler::{PatchSampler, Prefetcher};
use anyhow::{bail, ensure, Context, Result};
use ndarray::{Array3, Array4, ArrayView4};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// A low-resolution image and its high-resolution original, HWC RGB, 8-bit or (`Pair<u16>`)
/// 16-bit.
pub struct Pair<P = u8> {
    pub lr: Array3<P>,
    pub hr: Array3<P>,
    /// The HR file, for messages that name it.
    pub name: String,
}

/// Where the images are, found from a folder's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Image files directly in the folder (T91, BSD200).
    Flat,
    /// `DIV2K_{train,valid}_HR/0001.png` with optional `DIV2K_*_LR_bicubic/X{s}/0001x{s}.png`.
    Div2k,
    /// `HR/name.png` with optional `LR_bicubic/X{s}/namex{s}.png` (Set5, Set14, ...).
    Benchmark,
}

/// One image of a set: its HR file and, if the set has one, its LR file for the set's scale.
#[derive(Clone, Debug)]
pub struct ImageFile {
    pub hr: PathBuf,
    pub lr: Option<PathBuf>,
}

/// The image files of a data folder, sorted by name, and how their LR pictures are made.
pub struct ImageSet {
    pub root: PathBuf,
    pub layout: Layout,
    pub scale: usize,
    pub files: Vec<ImageFile>,
    /// Bicubic unless [`degraded`](Self::degraded) says otherwise.
    pub degradation: Degradation,
}

const EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

/// Image files directly in `dir` (extension case-insensitive), sorted by name; none if `dir`
/// is not a folder.
pub fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(vec![]);
    }
    let mut found = vec![];
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list folder {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("cannot list folder {}", dir.display()))?
            .path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if path.is_file() && EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(ext)) {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl ImageSet {
    /// Detects the layout of `dir` for scale `scale`: DIV2K (`dir/DIV2K_train_HR`, else
    /// `dir/DIV2K_valid_HR`, else `dir` itself named `*_HR`), then benchmark (`dir/HR`), then
    /// flat. The first candidate holding images wins. An LR file is used where it exists.
    pub fn open(dir: &Path, scale: usize) -> Result<ImageSet> {
        ensure!(dir.exists(), "data folder {} does not exist", dir.display());
        ensure!(dir.is_dir(), "data path {} is not a folder", dir.display());
        ensure!(
            (1..=bicubic::MAX_SCALE).contains(&scale),
            "scale {scale} is not supported: use 1 to {}",
            bicubic::MAX_SCALE
        );
        let x = format!("X{scale}");
        let mut candidates = vec![];
        for split in ["train", "valid"] {
            let hr = dir.join(format!("DIV2K_{split}_HR"));
            candidates.push((
                Layout::Div2k,
                hr,
                dir.join(format!("DIV2K_{split}_LR_bicubic")).join(&x),
            ));
        }
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let (Some(prefix), Some(parent)) = (name.strip_suffix("_HR"), dir.parent()) {
            let lr = parent.join(format!("{prefix}_LR_bicubic")).join(&x);
            candidates.push((Layout::Div2k, dir.to_path_buf(), lr));
        }
        candidates.push((Layout::Benchmark, dir.join("HR"), dir.join("LR_bicubic").join(&x)));
        candidates.push((Layout::Flat, dir.to_path_buf(), PathBuf::new()));
        for (layout, hr_dir, lr_dir) in candidates {
            let hrs = images_in(&hr_dir)?;
            if hrs.is_empty() {
                continue;
            }
            // An LR folder, when there is one, must hold exactly the HR images' partners:
            // a missing or stray file means the pairs would not be what the user thinks.
            let lrs = if layout == Layout::Flat {
                vec![]
            } else {
                images_in(&lr_dir)?
            };
            if !lrs.is_empty() {
                let expected: Vec<PathBuf> = hrs
                    .iter()
                    .map(|hr| lr_dir.join(format!("{}x{scale}.png", stem(hr))))
                    .collect();
                if let Some(i) = expected.iter().position(|lr| !lr.is_file()) {
                    bail!(
                        "{} has no low-resolution partner: expected {} in {}",
                        hrs[i].display(),
                        expected[i].file_name().unwrap_or_default().to_string_lossy(),
                        lr_dir.display()
                    );
                }
                if let Some(stray) = lrs.iter().find(|lr| !expected.contains(lr)) {
                    bail!(
                        "{} has no high-resolution partner in {} (LR files are named <HR name>x{scale}.png)",
                        stray.display(),
                        hr_dir.display()
                    );
                }
            }
            let files = hrs
                .into_iter()
                .map(|hr| {
                    let lr = lr_dir.join(format!("{}x{scale}.png", stem(&hr)));
                    let lr = (layout != Layout::Flat && lr.is_file()).then_some(lr);
                    ImageFile { hr, lr }
                })
                .collect();
            return Ok(ImageSet {
                root: dir.to_path_buf(),
                layout,
                scale,
                files,
                degradation: Degradation::Bicubic,
            });
        }
        bail!(
            "no images ({}) found in {}: looked for the DIV2K layout (DIV2K_train_HR/, DIV2K_valid_HR/ \
             or a folder named *_HR), the benchmark layout (HR/) and image files in the folder itself",
            EXTENSIONS.join(", "),
            dir.display()
        )
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The same set with its LR pictures made by `d`. The LR files of a folder are bicubic's:
    /// with a degradation that blurs they are left aside and LR is made from HR; DN adds its
    /// noise to them (they are what its bicubic step would make).
    pub fn degraded(mut self, d: Degradation) -> ImageSet {
        if !d.uses_bicubic_files() {
            self.files.iter_mut().for_each(|f| f.lr = None);
        }
        self.degradation = d;
        self
    }

    /// File stems of the HR images, in order ("baby", "0001", ...).
    pub fn names(&self) -> Vec<String> {
        self.files.iter().map(|f| stem(&f.hr)).collect()
    }

    /// The set's bits per value: 16 if any of its files (HR or LR) is 16-bit, else 8. A set
    /// mixing depths is read as 16-bit, its 8-bit pictures' values times 257 (exact: 255
    /// becomes 65535). A file whose header does not read counts as 8-bit (`load` says why).
    pub fn bit_depth(&self) -> u32 {
        let deep = self
            .files
            .par_iter()
            .flat_map_iter(|f| std::iter::once(&f.hr).chain(f.lr.as_ref()))
            .any(|p| super::bit_depth(p).is_ok_and(|b| b > 8));
        if deep {
            16
        } else {
            8
        }
    }

    /// Loads every image once, in parallel: HR modcropped to the scale, LR from the LR file
    /// if present, else made by the set's degradation (`bicubic::downscale(hr, s, Mirror)`
    /// by default), with its noise, if any, fixed per picture. Unreadable files are skipped
    /// with a warning (returned, not printed); nothing left, or an LR file of the wrong
    /// size, is an error. 16-bit pictures are reduced to 8 bits: see [`load_as`](Self::load_as).
    pub fn load(&self) -> Result<(Vec<Pair>, Vec<String>)> {
        self.load_as::<u8>()
    }

    /// [`load`](Self::load) with values of type `P`: `u16` keeps 16-bit pictures whole (and
    /// reads 8-bit ones times 257).
    pub fn load_as<P: Sample>(&self) -> Result<(Vec<Pair<P>>, Vec<String>)> {
        let d = &self.degradation;
        let loaded: Vec<Result<std::result::Result<Pair<P>, String>>> =
            self.files.par_iter().map(|f| load_pair(f, self.scale, d)).collect();
        let (mut pairs, mut warnings) = (vec![], vec![]);
        for item in loaded {
            match item? {
                Ok(mut pair) => {
                    d.picture_noise(&mut pair.lr, &pair.name);
                    pairs.push(pair)
                }
                Err(warning) => warnings.push(warning),
            }
        }
        ensure!(
            !pairs.is_empty(),
            "no readable image in {}: {}",
            self.root.display(),
            warnings.join("; ")
        );
        Ok((pairs, warnings))
    }
}

/// One picture of a set: HR modcropped to the scale, LR from its file if there is one,
/// else the noiseless LR of `d` (`bicubic::downscale(hr, s, Mirror)` for bicubic). Outer
/// error: fatal (an LR file of the wrong size); inner: a warning for a file that is skipped
/// (unreadable, smaller than the scale).
pub(crate) fn load_pair<P: Sample>(
    f: &ImageFile,
    s: usize,
    d: &Degradation,
) -> Result<std::result::Result<Pair<P>, String>> {
    let hr = match read_rgb(&f.hr) {
        Ok(hr) if hr.dim().0 < s || hr.dim().1 < s => {
            let (h, w, _) = hr.dim();
            return Ok(Err(format!(
                "skipped {}: {w}x{h} pixels, smaller than the scale {s}",
                f.hr.display()
            )));
        }
        Ok(hr) => bicubic::modcrop(&hr, s),
        Err(e) => return Ok(Err(format!("skipped {}: {e:#}", f.hr.display()))),
    };
    let (h, w, _) = hr.dim();
    let lr = match &f.lr {
        Some(lr_path) => {
            let lr = match read_rgb(lr_path) {
                Ok(lr) => lr,
                Err(e) => return Ok(Err(format!("skipped {}: {e:#}", lr_path.display()))),
            };
            let (lh, lw, _) = lr.dim();
            ensure!(
                (lh, lw) == (h / s, w / s),
                "LR file {} is {lw}x{lh} but HR file {} is {w}x{h}: expected {}x{} at scale {s}",
                lr_path.display(),
                f.hr.display(),
                w / s,
                h / s
            );
            lr
        }
        None => d
            .downscale(&hr, s)
            .with_context(|| format!("cannot downscale {}", f.hr.display()))?,
    };
    Ok(Ok(Pair {
        lr,
        hr,
        name: f.hr.display().to_string(),
    }))
}

/// An image file as HWC RGB values: grey repeated to three channels, alpha dropped; as u8,
/// 16-bit reduced to 8. The format is guessed from the content, not the extension.
fn read_rgb<P: Sample>(path: &Path) -> Result<Array3<P>> {
    super::load_levels(path)
}

/// An HWC image as a [1, C, H, W] float32 tensor on the networks' 0..255 scale (16-bit
/// values divided by 257), standard layout.
pub fn to_nchw<P: Sample>(img: &Array3<P>) -> Array4<f32> {
    let (h, w, c) = img.dim();
    Array4::from_shape_fn((1, c, h, w), |(_, c, y, x)| img[[y, x, c]].to_network())
}

/// The first image of an [N, C, H, W] tensor as HWC bytes: rounded half away from zero and
/// clamped to [0, 255] (NaN becomes 0). An empty batch gives an empty image.
pub fn from_nchw(t: ArrayView4<f32>) -> Array3<u8> {
    from_nchw_as(t)
}

/// [`from_nchw`] to values of type `P`: 16-bit ones are round(y * 257), clamped to 0..65535.
pub fn from_nchw_as<P: Sample>(t: ArrayView4<f32>) -> Array3<P> {
    let (n, c, h, w) = t.dim();
    if n == 0 {
        return Array3::from_elem((0, 0, c), P::default());
    }
    Array3::from_shape_fn((h, w, c), |(y, x, c)| P::from_network(t[[0, c, y, x]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_data_dir as data_dir;
    use ndarray::Axis;
    use std::fs;

    #[test]
    fn detects_benchmark_and_flat_layouts() -> Result<()> {
        for s in 2..=4 {
            let set = ImageSet::open(&data_dir().join("Set5"), s)?;
            assert_eq!((set.layout, set.len()), (Layout::Benchmark, 5));
            assert!(set.files.iter().all(|f| f.lr.is_some()), "Set5 has LR files at x{s}");
        }
        assert_eq!(
            ImageSet::open(&data_dir().join("Set5"), 2)?.names(),
            ["baby", "bird", "butterfly", "head", "woman"]
        );
        let t91 = ImageSet::open(&data_dir().join("T91"), 4)?;
        assert_eq!((t91.layout, t91.len()), (Layout::Flat, 91));
        assert!(t91.files.iter().all(|f| f.lr.is_none()));
        Ok(())
    }

    #[test]
    fn detects_and_loads_div2k_layout() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        for (split, n) in [("train", 2), ("valid", 1)] {
            let root = tmp.path().join(split);
            let (hr_dir, lr_dir) = (
                root.join(format!("DIV2K_{split}_HR")),
                root.join(format!("DIV2K_{split}_LR_bicubic/X2")),
            );
            fs::create_dir_all(&hr_dir)?;
            fs::create_dir_all(&lr_dir)?;
            for (i, name) in ["bird", "butterfly"].iter().take(n).enumerate() {
                fs::copy(
                    data_dir().join(format!("Set5/HR/{name}.png")),
                    hr_dir.join(format!("000{}.png", i + 1)),
                )?;
                let lr = data_dir().join(format!("Set5/LR_bicubic/X2/{name}x2.png"));
                fs::copy(lr, lr_dir.join(format!("000{}x2.png", i + 1)))?;
            }
            // The root and the HR folder itself are both recognised.
            for dir in [&root, &hr_dir] {
                let set = ImageSet::open(dir, 2)?;
                assert_eq!((set.layout, set.len()), (Layout::Div2k, n));
                assert!(set.files.iter().all(|f| f.lr.is_some()));
                let (pairs, warnings) = set.load()?;
                assert!(warnings.is_empty());
                assert_eq!(pairs[0].lr, read_rgb::<u8>(&lr_dir.join("0001x2.png"))?);
                assert_eq!(pairs[0].hr.dim(), (288, 288, 3));
            }
            // No X3 folder: LR made by the bicubic downscaler.
            let set = ImageSet::open(&root, 3)?;
            assert!(set.files.iter().all(|f| f.lr.is_none()));
            let (pairs, _) = set.load()?;
            assert_eq!(
                pairs[0].lr,
                read_rgb::<u8>(&data_dir().join("Set5/LR_bicubic/X3/birdx3.png"))?
            );
        }
        Ok(())
    }

    #[test]
    fn corrupt_file_is_skipped_with_a_warning() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        fs::write(tmp.path().join("broken.png"), b"this is not a PNG file at all")?;
        fs::copy(data_dir().join("Set5/HR/bird.png"), tmp.path().join("good.PNG"))?; // extension case ignored
        fs::write(tmp.path().join("notes.txt"), b"not an image")?;
        let set = ImageSet::open(tmp.path(), 2)?;
        assert_eq!(
            (set.layout, set.names()),
            (Layout::Flat, vec!["broken".to_string(), "good".to_string()])
        );
        let (pairs, warnings) = set.load()?;
        assert_eq!((pairs.len(), warnings.len()), (1, 1));
        assert!(warnings[0].contains("broken.png"), "{}", warnings[0]);
        fs::remove_file(tmp.path().join("good.PNG"))?;
        let err = format!(
            "{:#}",
            ImageSet::open(tmp.path(), 2)?
                .load()
                .err()
                .context("all corrupt must fail")?
        );
        assert!(err.contains("no readable image") && err.contains("broken.png"), "{err}");
        Ok(())
    }

    #[test]
    fn bad_folders_are_errors_naming_them() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let err = ImageSet::open(tmp.path(), 2)
            .err()
            .context("empty folder must fail")?
            .to_string();
        assert!(
            err.contains(&tmp.path().display().to_string()) && err.contains("benchmark layout"),
            "{err}"
        );
        let missing = tmp.path().join("nowhere");
        let err = ImageSet::open(&missing, 2)
            .err()
            .context("missing folder must fail")?
            .to_string();
        assert!(err.contains("nowhere") && err.contains("does not exist"), "{err}");
        let file = data_dir().join("Set5/HR/bird.png");
        let err = ImageSet::open(&file, 2).err().context("a file must fail")?.to_string();
        assert!(err.contains("bird.png") && err.contains("not a folder"), "{err}");
        assert!(ImageSet::open(&data_dir().join("Set5"), 17).is_err());
        assert!(ImageSet::open(&data_dir().join("Set5"), 0).is_err());
        Ok(())
    }

    #[test]
    fn greyscale_loads_as_three_channels() -> Result<()> {
        let set = ImageSet::open(&data_dir().join("Set14"), 3)?;
        let i = set
            .names()
            .iter()
            .position(|n| n == "bridge")
            .context("Set14 has bridge.png")?;
        let (pairs, _) = set.load()?;
        let hr = &pairs[i].hr;
        assert_eq!(hr.dim().2, 3);
        assert!(
            hr.lanes(Axis(2)).into_iter().all(|p| p[0] == p[1] && p[1] == p[2]),
            "grey repeated"
        );
        assert_eq!(pairs[i].lr.dim(), (hr.dim().0 / 3, hr.dim().1 / 3, 3));
        Ok(())
    }

    #[test]
    fn mismatched_lr_file_is_an_error_naming_both() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        fs::create_dir_all(tmp.path().join("HR"))?;
        fs::create_dir_all(tmp.path().join("LR_bicubic/X2"))?;
        fs::copy(data_dir().join("Set5/HR/bird.png"), tmp.path().join("HR/bird.png"))?;
        fs::copy(
            data_dir().join("Set5/LR_bicubic/X2/babyx2.png"),
            tmp.path().join("LR_bicubic/X2/birdx2.png"),
        )?;
        let err = ImageSet::open(tmp.path(), 2)?
            .load()
            .err()
            .context("size mismatch must fail")?
            .to_string();
        assert!(
            err.contains("birdx2.png") && err.contains("bird.png") && err.contains("256x256"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn nchw_conversions() -> Result<()> {
        let img = Array3::from_shape_fn((2, 3, 3), |(y, x, c)| (y * 100 + x * 10 + c) as u8);
        let t = to_nchw(&img);
        assert_eq!(t.dim(), (1, 3, 2, 3));
        assert!(t.is_standard_layout() && t[[0, 2, 1, 0]] == 102.0);
        assert_eq!(from_nchw(t.view()), img);
        let t = Array4::from_shape_vec((1, 1, 1, 6), vec![0.5, 1.5, -3.0, 300.0, 254.49, f32::NAN])?;
        assert_eq!(
            from_nchw(t.view()).iter().copied().collect::<Vec<_>>(),
            [1, 2, 0, 255, 254, 0]
        );
        Ok(())
    }
}
