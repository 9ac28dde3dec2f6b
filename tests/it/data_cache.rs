//! The data cache: training pixels decoded once into a raw file that the sampler
//! memory-maps. It must give the batches the in-memory sampler gives, notice a
//! changed folder or a damaged file and make itself again, and leave nothing half
//! written behind.

use crate::common::{data_dir, srgraph, text};
use srgraph::data::cache::{folder_for, PixelCache};
use srgraph::data::dataset::{ImageSet, PatchSampler};
use std::path::Path;

/// A small DIV2K-layout folder made of Set5's pictures (copied: the test changes them).
fn div2k_like(dir: &Path) -> std::path::PathBuf {
    let hr = dir.join("DIV2K_train_HR");
    std::fs::create_dir_all(&hr).unwrap();
    for (i, name) in ["baby", "bird", "butterfly", "head", "woman"].iter().enumerate() {
        let from = data_dir().join("Set5/HR").join(format!("{name}.png"));
        std::fs::copy(from, hr.join(format!("{:04}.png", i + 1))).unwrap();
    }
    dir.to_path_buf()
}

#[test]
fn the_cache_gives_the_in_memory_samplers_batches_bit_for_bit() {
    let root = tempfile::tempdir().unwrap();
    for (folder, scale) in [("Set5", 2), ("Set5", 3), ("T91", 4)] {
        let set = ImageSet::open(&data_dir().join(folder), scale).unwrap();
        let (pairs, _) = set.load().unwrap();
        let memory = PatchSampler::new(pairs, 12 * scale, scale, 7).unwrap();
        let cache = PixelCache::open_or_build(&set, root.path(), false).unwrap();
        let mapped = PatchSampler::from_cache(cache, 12 * scale, scale, 7).unwrap();
        assert_eq!(memory.len(), mapped.len());
        for step in 0..6 {
            let (a, b) = (memory.batch(step, 8).unwrap(), mapped.batch(step, 8).unwrap());
            assert!(a.0 == b.0 && a.1 == b.1, "{folder} x{scale}: step {step} differs");
        }
    }
}

#[test]
fn a_changed_folder_or_a_damaged_cache_is_made_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = div2k_like(&dir.path().join("data"));
    let root = dir.path().join("cache");
    let set = ImageSet::open(&data, 2).unwrap();
    let first = PixelCache::open_or_build(&set, &root, false).unwrap();
    let (hr0, _, _) = first.pair(0);
    let baby = hr0.to_owned();
    drop(first);
    let cache_dir = folder_for(&set, &root);
    let index = std::fs::read(cache_dir.join("index.json")).unwrap();

    // Reopened as it is: the same file, not made again.
    let again = PixelCache::open_or_build(&set, &root, false).unwrap();
    assert_eq!(again.pair(0).0, baby.view());
    assert_eq!(std::fs::read(cache_dir.join("index.json")).unwrap(), index);
    drop(again);

    // A picture replaced (another size and time): the cache follows the folder.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::copy(
        data_dir().join("Set5/HR/bird.png"),
        data.join("DIV2K_train_HR/0001.png"),
    )
    .unwrap();
    let set = ImageSet::open(&data, 2).unwrap();
    let changed = PixelCache::open_or_build(&set, &root, false).unwrap();
    assert_ne!(changed.pair(0).0.dim(), baby.dim(), "the cache kept the old picture");
    drop(changed);

    // A truncated pixels file, or one whose bytes changed, is noticed and made again.
    let pixels = cache_dir.join("pixels.bin");
    let bytes = std::fs::read(&pixels).unwrap();
    std::fs::write(&pixels, &bytes[..bytes.len() / 2]).unwrap();
    let rebuilt = PixelCache::open_or_build(&set, &root, false).unwrap();
    assert_eq!(std::fs::read(&pixels).unwrap(), bytes);
    drop(rebuilt);
    std::fs::write(&pixels, vec![7u8; bytes.len()]).unwrap();
    PixelCache::open_or_build(&set, &root, false).unwrap();
    assert_eq!(std::fs::read(&pixels).unwrap(), bytes);

    // An interrupted build's temporary file (of a process that is gone) is removed.
    let stale = cache_dir.join(".pixels.bin.tmp-999999999");
    std::fs::write(&stale, b"half").unwrap();
    std::fs::remove_file(cache_dir.join("index.json")).unwrap();
    PixelCache::open_or_build(&set, &root, false).unwrap();
    assert!(!stale.exists(), "the stale temporary file is still there");
}

#[test]
fn prepare_makes_the_cache_train_uses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = div2k_like(&d.join("data"));
    let cache = d.join("cache");
    let (data_s, cache_s) = (data.display().to_string(), cache.display().to_string());
    let o = srgraph(&["prepare", &data_s, "--scale", "2", "--cache", &cache_s, "--quiet"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("5 pictures"), "{}", text(&o));
    // The data caches; `train` also keeps its measured gradient spellings in the root.
    let caches = || {
        std::fs::read_dir(&cache)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != "spellings")
            .count()
    };
    let made = caches();
    let o = srgraph(
        &[
            "train", "wdsr-b", "--blocks", "1", "--data", &data_s, "--cache", &cache_s, "--steps", "2", "--batch", "2",
            "--patch", "24", "--out", "run", "--quiet", "--engine", "tract",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(caches(), made, "train made another cache");
}
