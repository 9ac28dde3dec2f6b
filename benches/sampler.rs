//! The data pipeline alone: one batch of 16 patches of 96 px (x2), with random crops,
//! flips and rotations, drawn from the memory-mapped data cache, as `srgraph train`
//! draws them, beside the in-memory sampler on the same pictures. On a GPU a WDSR
//! step takes a few milliseconds, so this must deliver 500 batches per second or more.
//! The cache is made from BSD200 (200 pictures of 481x321) in a temporary folder.
//!
//!   cargo bench --bench sampler
//!   SRGRAPH_BENCH_DATA=/path/to/DIV2K cargo bench --bench sampler    (another set)

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use srgraph::data::cache::PixelCache;
use srgraph::data::dataset::{ImageSet, PatchSampler};
use std::path::PathBuf;
use std::time::Duration;

fn sampler(c: &mut Criterion) {
    let data = std::env::var_os("SRGRAPH_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/BSD200"));
    let set = ImageSet::open(&data, 2).unwrap();
    let root = tempfile::tempdir().unwrap();
    let cache = PixelCache::open_or_build(&set, root.path(), false).unwrap();
    let mapped = PatchSampler::from_cache(cache, 96, 2, 0).unwrap();
    let mut group = c.benchmark_group("sampler, 16 patches of 96 px, x2");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let mut step = 0;
    group.bench_function("cache (memory-mapped)", |b| {
        b.iter(|| {
            step += 1;
            mapped.batch(step, 16).unwrap()
        })
    });
    if std::env::var_os("SRGRAPH_BENCH_DATA").is_none() {
        let (pairs, _) = set.load().unwrap();
        let memory = PatchSampler::new(pairs, 96, 2, 0).unwrap();
        group.bench_function("in memory", |b| {
            b.iter(|| {
                step += 1;
                memory.batch(step, 16).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sampler);
criterion_main!(benches);
