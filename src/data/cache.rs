//! Training sets of any length in bounded memory: every picture is decoded once
//! (HR modcropped to the scale; LR from its file, or MATLAB-exact bicubic) into one
//! file of raw 8- or 16-bit pixels, which the sampler memory-maps. The pages are the
//! file's, not the process's: the kernel reads them in as crops touch them and
//! drops them under pressure, so DIV2K+Flickr2K trains in the memory of a few
//! pictures. BasicSR reaches the same end with LMDB or sub-images; a raw file is
//! simpler, and a crop is a strided view into it.
//!
//! A cache is a folder `<name>-<hash of the data folder, its files and, unless bicubic, the
//! degradation>-x<scale>` holding
//! `pixels.bin` and `index.json` (what each picture's bytes are, and the sizes and
//! modification times of the files they came from, so a changed folder is
//! noticed). Both are written to temporary files and renamed, the index last, so an
//! interrupted build leaves no cache rather than a broken one; a damaged one (wrong
//! length, or sampled bytes that no longer match) is rebuilt.
//!
//! A blurring degradation (BD, a kernel) blurs each whole picture, then decimates it, as
//! RDN's preparation does, and the cache holds that LR: patches are cut from it as from a
//! bicubic one, so a patch's blur sees its true surroundings, and its index records the
//! degradation, so it is never read as another's. DN's cache is bicubic's: its noise is
//! drawn as pictures are read (see `degrade`).
//!
//! A set with a 16-bit picture is cached at 16 bits (`ImageSet::bit_depth`): 2 bytes a
//! value, in the machine's byte order, and its index says `bit_depth: 16`; an 8-bit set's
//! cache is 1 byte a value and its index says nothing of depth, as before.

use super::dataset::{load_pair, ImageFile, ImageSet, Pair};
use super::degrade::Degradation;
use super::sample::Sample;
use anyhow::{bail, ensure, Context, Result};
use ndarray::ArrayView3;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

const VERSION: u32 = 1;

/// Where one picture's HWC RGB bytes are in `pixels.bin`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Extent {
    offset: u64,
    h: usize,
    w: usize,
}

impl Extent {
    /// Its length in bytes, of `bytes_per_value` bytes a value.
    fn len(&self, bytes_per_value: u64) -> u64 {
        (self.h * self.w * 3) as u64 * bytes_per_value
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Entry {
    name: String,
    hr: Extent,
    lr: Extent,
    /// FNV-1a of a few bytes of each picture, to notice a damaged file without reading it all.
    sample: u64,
}

/// A source file as it was when the cache was made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Source {
    path: String,
    size: u64,
    modified_ns: u128,
}

#[derive(Debug, Serialize, Deserialize)]
struct Index {
    version: u32,
    scale: usize,
    sources: Vec<Source>,
    entries: Vec<Entry>,
    /// Files skipped when the cache was made (unreadable, smaller than the scale).
    warnings: Vec<String>,
    total_bytes: u64,
    /// The degradation's `cache_key()`; absent for bicubic's LR (and in caches made before
    /// there were others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    degradation: Option<String>,
    /// Bits per value, 16 for a set with a 16-bit picture; absent for 8.
    #[serde(default = "eight_bits", skip_serializing_if = "is_eight_bits")]
    bit_depth: u32,
}

fn eight_bits() -> u32 {
    8
}

fn is_eight_bits(bits: &u32) -> bool {
    *bits == 8
}

/// A training set's pixels, memory-mapped.
pub struct PixelCache {
    pixels: memmap2::Mmap,
    entries: Vec<Entry>,
    pub warnings: Vec<String>,
    pub dir: PathBuf,
    /// How the set's LR pictures are made: the cache holds them without noise.
    pub degradation: Degradation,
    /// Bits per value of its pixels: 8 or 16.
    pub bit_depth: u32,
}

/// The cache root: `$SRGRAPH_CACHE`, else `$XDG_CACHE_HOME/srgraph/data`, else `~/.cache/srgraph/data`.
pub fn default_root() -> PathBuf {
    if let Some(p) = std::env::var_os("SRGRAPH_CACHE") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("srgraph").join("data")
}

/// The cache folder of a set: named after the data folder, keyed by its real path, the
/// files taken from it and the scale. The files are part of the key because one folder
/// gives several sets: Set5 with its LR files and Set5/HR without, or the first N
/// pictures of a validation folder (`--val-limit`); sharing a folder, they would rebuild
/// each other's cache at every start. A blurring degradation is part of the key too
/// (bicubic's and DN's, the same pixels, share a folder).
pub fn folder_for(set: &ImageSet, root: &Path) -> PathBuf {
    let real = std::fs::canonicalize(&set.root).unwrap_or_else(|_| set.root.clone());
    let name: String = real
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .unwrap_or_default();
    let files = set
        .files
        .iter()
        .flat_map(|f| std::iter::once(&f.hr).chain(f.lr.as_ref()))
        .map(|p| p.to_string_lossy().into_owned());
    let hash = std::iter::once(real.to_string_lossy().into_owned())
        .chain(files)
        .chain(set.degradation.cache_key())
        .flat_map(|s| s.into_bytes().into_iter().chain([0]))
        .fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    root.join(format!("{name}-{hash:016x}-x{}", set.scale))
}

fn sources_of(files: &[ImageFile]) -> Result<Vec<Source>> {
    let mut out = vec![];
    for f in files {
        for p in std::iter::once(&f.hr).chain(f.lr.as_ref()) {
            let m = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
            let modified_ns = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.push(Source {
                path: p.display().to_string(),
                size: m.len(),
                modified_ns,
            });
        }
    }
    Ok(out)
}

/// FNV-1a of 64 bytes spread over a picture.
fn sample(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    (0..64usize)
        .filter_map(|i| bytes.get(i * n / 64))
        .fold(0xcbf29ce484222325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        })
}

impl PixelCache {
    /// The set's cache under `root`, made first if it is missing, stale or damaged (saying
    /// why on stderr, with a progress bar while it is made).
    pub fn open_or_build(set: &ImageSet, root: &Path, progress: bool) -> Result<PixelCache> {
        let dir = folder_for(set, root);
        let sources = sources_of(&set.files)?;
        let open = || Self::open(&dir, set, &sources);
        match open() {
            Ok(cache) => return Ok(cache),
            Err(why) if dir.join("index.json").exists() => {
                eprintln!("note: rebuilding the data cache {}: {why:#}", dir.display())
            }
            Err(_) => {}
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the data cache folder {}", dir.display()))?;
        let _lock = crate::util::FolderLock::wait(&dir, "data cache")?;
        crate::util::remove_stale_temporaries(&dir);
        // Another process may have made it while this one waited for the lock.
        if let Ok(cache) = open() {
            return Ok(cache);
        }
        build(set, &dir, sources.clone(), progress)?;
        open().with_context(|| format!("the data cache {} does not read back", dir.display()))
    }

    fn open(dir: &Path, set: &ImageSet, sources: &[Source]) -> Result<PixelCache> {
        let scale = set.scale;
        let text = std::fs::read(dir.join("index.json")).context("it has no index")?;
        let index: Index = serde_json::from_slice(&text).context("its index does not parse")?;
        ensure!(index.version == VERSION, "it was made by another version of srgraph");
        ensure!(index.scale == scale, "it is for scale {}", index.scale);
        let key = set.degradation.cache_key();
        ensure!(
            index.degradation == key,
            "it holds the LR pictures of {}, not {}",
            index.degradation.as_deref().unwrap_or("bicubic"),
            key.as_deref().unwrap_or("bicubic")
        );
        ensure!(
            index.sources == sources,
            "the data folder's files changed since it was made"
        );
        let file = std::fs::File::open(dir.join("pixels.bin")).context("it has no pixels.bin")?;
        // SAFETY: the file is only ever replaced by a rename, never written in place, so the
        // mapping's bytes do not change under it.
        let pixels = unsafe { memmap2::Mmap::map(&file) }.context("pixels.bin cannot be mapped")?;
        ensure!(
            pixels.len() as u64 == index.total_bytes,
            "pixels.bin holds {} bytes, not the {} its index says",
            pixels.len(),
            index.total_bytes
        );
        ensure!(
            matches!(index.bit_depth, 8 | 16),
            "its index says {} bits a value",
            index.bit_depth
        );
        let bytes_per_value = u64::from(index.bit_depth / 8);
        for e in &index.entries {
            for x in [&e.hr, &e.lr] {
                ensure!(
                    x.offset % bytes_per_value == 0
                        && x.offset
                            .checked_add(x.len(bytes_per_value))
                            .is_some_and(|end| end <= index.total_bytes),
                    "its index places {} past the end of pixels.bin",
                    e.name
                );
            }
            let hr = &pixels[e.hr.offset as usize..(e.hr.offset + e.hr.len(bytes_per_value)) as usize];
            ensure!(
                sample(hr) == e.sample,
                "the pixels of {} are not what was written",
                e.name
            );
        }
        Ok(PixelCache {
            pixels,
            entries: index.entries,
            warnings: index.warnings,
            dir: dir.to_path_buf(),
            degradation: set.degradation.clone(),
            bit_depth: index.bit_depth,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The size of the pixels file.
    pub fn bytes(&self) -> usize {
        self.pixels.len()
    }

    /// Picture `i` of an 8-bit cache: HR and LR as HWC views into the mapping, and its name.
    pub fn pair(&self, i: usize) -> (ArrayView3<'_, u8>, ArrayView3<'_, u8>, &str) {
        self.pair_as(i)
    }

    /// Picture `i`: HR and LR as HWC views into the mapping, and its name. `P` is the
    /// cache's value type (u8 for an 8-bit cache, u16 for a 16-bit one): asking for the
    /// other is a bug, and panics.
    pub fn pair_as<P: Sample>(&self, i: usize) -> (ArrayView3<'_, P>, ArrayView3<'_, P>, &str) {
        assert_eq!(
            P::BITS,
            self.bit_depth,
            "a {}-bit cache read as {}-bit",
            self.bit_depth,
            P::BITS
        );
        let e = &self.entries[i];
        let bytes_per_value = u64::from(P::BITS / 8);
        let view = |x: &Extent| {
            let bytes = &self.pixels[x.offset as usize..(x.offset + x.len(bytes_per_value)) as usize];
            ArrayView3::from_shape((x.h, x.w, 3), P::from_bytes(bytes)).expect("the index was checked against the file")
        };
        (view(&e.hr), view(&e.lr), &e.name)
    }

    /// Picture `i`'s HR width, height and name.
    pub fn size(&self, i: usize) -> (usize, usize, &str) {
        let e = &self.entries[i];
        (e.hr.w, e.hr.h, &e.name)
    }
}

/// Decodes the set a few pictures at a time (in parallel) and appends them to
/// `pixels.bin`, so that memory holds a handful of pictures whatever the set's length.
fn build(set: &ImageSet, dir: &Path, sources: Vec<Source>, progress: bool) -> Result<()> {
    let s = set.scale;
    let bar = if progress {
        let b = indicatif::ProgressBar::new(set.files.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} pictures  ETA {eta}")
                .expect("a valid template"),
        );
        b.set_message(format!("caching {} at x{s}", set.root.display()));
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let bit_depth = set.bit_depth();
    let (entries, warnings, total_bytes) = if bit_depth == 16 {
        write_pixels::<u16>(set, dir, &bar)?
    } else {
        write_pixels::<u8>(set, dir, &bar)?
    };
    let index = Index {
        version: VERSION,
        scale: s,
        sources,
        entries,
        warnings,
        total_bytes,
        degradation: set.degradation.cache_key(),
        bit_depth,
    };
    crate::util::write_atomic(&dir.join("index.json"), &serde_json::to_vec(&index)?)
}

/// Writes `pixels.bin` with values of `P`; returns its entries, the files skipped and its length.
fn write_pixels<P: Sample>(
    set: &ImageSet,
    dir: &Path,
    bar: &indicatif::ProgressBar,
) -> Result<(Vec<Entry>, Vec<String>, u64)> {
    let s = set.scale;
    let tmp = dir.join(format!(".pixels.bin.tmp-{}", std::process::id()));
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?,
    );
    let (mut entries, mut warnings, mut offset) = (vec![], vec![], 0u64);
    let chunk = 2 * rayon::current_num_threads().max(1);
    for files in set.files.chunks(chunk) {
        let decoded: Vec<Result<std::result::Result<Pair<P>, String>>> =
            files.par_iter().map(|f| load_pair(f, s, &set.degradation)).collect();
        for d in decoded {
            match d? {
                Ok(pair) => {
                    let (h, w, _) = pair.hr.dim();
                    let bytes = |a: ndarray::Array3<P>| {
                        P::encoder_bytes(&a.as_standard_layout().into_owned().into_raw_vec_and_offset().0)
                    };
                    let (hr, lr) = (bytes(pair.hr), bytes(pair.lr));
                    let hr_extent = Extent { offset, h, w };
                    let lr_extent = Extent {
                        offset: offset + hr.len() as u64,
                        h: h / s,
                        w: w / s,
                    };
                    out.write_all(&hr)
                        .and_then(|_| out.write_all(&lr))
                        .with_context(|| format!("cannot write {} (is the disk full?)", tmp.display()))?;
                    offset += (hr.len() + lr.len()) as u64;
                    entries.push(Entry {
                        name: pair.name,
                        sample: sample(&hr),
                        hr: hr_extent,
                        lr: lr_extent,
                    });
                }
                Err(w) => warnings.push(w),
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let file = out
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", tmp.display(), e.error()))?;
    file.sync_all()?;
    drop(file);
    if entries.is_empty() {
        let _ = std::fs::remove_file(&tmp);
        bail!("no readable image in {}: {}", set.root.display(), warnings.join("; "));
    }
    std::fs::rename(&tmp, dir.join("pixels.bin"))?;
    Ok((entries, warnings, offset))
}
