//! `srgraph prepare`: decode a training set once into the data cache that `train` maps.

use crate::data::cache::{default_root, PixelCache};
use crate::data::dataset::ImageSet;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    srgraph prepare DIV2K --scale 2\n  \
    srgraph prepare ../shared/data/T91 --scale 4 --cache /scratch/srgraph-cache\n  \
    srgraph prepare ../shared/data/T91 --scale 3 --degradation bd\n\n\
    `srgraph train` makes the cache itself on first use; prepare makes it ahead of time (on a login node, say). \
    The cache holds every picture's HR and LR pixels as raw bytes (about 3.75 bytes per HR pixel at x2), is keyed \
    by the files' sizes and modification times, and is made again when they change.")]
pub struct PrepareArgs {
    /// The training data: a folder of pictures, DIV2K's layout, or HR/ + LR_bicubic/X{s}/.
    pub data: PathBuf,
    /// The scale the low-resolution pictures are for (LR files when the folder has them, else MATLAB-exact bicubic).
    #[arg(long, short, default_value_t = 2)]
    pub scale: usize,
    /// The cache's root folder (default: $SRGRAPH_CACHE, else ~/.cache/srgraph/data).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    #[command(flatten)]
    pub degradation: super::train::DegradationArg,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: PrepareArgs) -> Result<()> {
    let set = ImageSet::open(&a.data, a.scale)?.degraded(a.degradation.degradation);
    let root = a.cache.unwrap_or_else(default_root);
    let started = std::time::Instant::now();
    let cache = PixelCache::open_or_build(&set, &root, !a.quiet)?;
    for w in &cache.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "cache       {} ({} pictures{}, {:.1} MB, ready in {:.1} s)",
        cache.dir.display(),
        cache.len(),
        if cache.bit_depth == 16 { " at 16 bits" } else { "" },
        cache.bytes() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
