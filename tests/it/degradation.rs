//! Degradations other than bicubic (`--degradation bd|dn|kernel:FILE`): BD against an
//! independent NumPy computation, DN's noise, kernel files, the cache's key, and a model
//! trained on BD that `eval` scores only on BD.

use crate::common::{self, data, data_dir, fails_with, srgraph, text, QuickTrain};
use ndarray::Array3;
use srgraph::data::bicubic::modcrop;
use srgraph::data::cache::PixelCache;
use srgraph::data::dataset::{ImageSet, PatchSampler};
use srgraph::data::degrade::{add_noise, crop_key, Degradation, DN_SIGMA};
use srgraph::data::load_hwc;
use std::path::Path;
use std::process::Command;

/// BD of real pictures equals tools/oracles/degradation_bd.py (NumPy, written from RDN's
/// MATLAB code) pixel for pixel: both sum the 49 products in float64 in the same order and
/// round half away from zero, so not even a tie at .5 can come out differently.
#[test]
fn bd_equals_the_numpy_oracle() {
    let dir = tempfile::tempdir().unwrap();
    for (name, s) in [("baby", 2), ("bird", 3), ("butterfly", 4)] {
        let hr = modcrop(&load_hwc(&data_dir().join(format!("Set5/HR/{name}.png"))).unwrap(), s);
        let (h, w, _) = hr.dim();
        let (src, dst) = (dir.path().join("hr.bin"), dir.path().join("lr.bin"));
        std::fs::write(&src, hr.as_standard_layout().as_slice().unwrap()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/oracles/degradation_bd.py");
        let out = Command::new(common::python())
            .arg(&script)
            .arg(&src)
            .args([h.to_string(), w.to_string(), s.to_string()])
            .arg(&dst)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let want = Array3::from_shape_vec((h / s, w / s, 3), std::fs::read(&dst).unwrap()).unwrap();
        let got = Degradation::Bd.downscale(&hr, s).unwrap();
        let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "{name} x{s}: {differ} of {} bytes differ", want.len());
        // Not bicubic's picture.
        assert_ne!(got, Degradation::Bicubic.downscale(&hr, s).unwrap());
    }
}

#[test]
fn dn_noise_has_sigma_30_and_follows_its_key() {
    // Mid-grey, so that clipping at 0 and 255 (over 4 sigma away) does not bend the figures.
    let flat = Array3::from_elem((256, 256, 3), 128u8);
    let noisy = |key| {
        let mut a = flat.clone();
        add_noise(&mut a, DN_SIGMA, key);
        a
    };
    let a = noisy(crop_key(0, 0, 0));
    let n = a.len() as f64;
    let mean = a.iter().map(|&v| v as f64 - 128.0).sum::<f64>() / n;
    let std = (a.iter().map(|&v| (v as f64 - 128.0 - mean).powi(2)).sum::<f64>() / n).sqrt();
    // Standard errors: 30 / sqrt(n) = 0.07 for the mean, 30 / sqrt(2n) = 0.05 for sigma.
    assert!(mean.abs() < 0.3, "mean {mean}");
    assert!((std - 30.0).abs() < 0.3, "sigma {std}");
    assert_eq!(a, noisy(crop_key(0, 0, 0)), "same key, same bytes");
    assert_ne!(a, noisy(crop_key(1, 0, 0)), "another seed, other bytes");
}

/// DN's training batches: the same for the same (seed, step), noisy, other for another
/// seed; validation's pictures are the same at every read.
#[test]
fn dn_batches_and_validation_pictures_are_reproducible() {
    let root = tempfile::tempdir().unwrap();
    let set = || ImageSet::open(&data_dir().join("Set5"), 2).unwrap();
    let cache = |d: Degradation| PixelCache::open_or_build(&set().degraded(d), root.path(), false).unwrap();
    let sampler = |d, seed| PatchSampler::from_cache(cache(d), 48, 2, seed).unwrap();
    let (clean, _) = sampler(Degradation::Bicubic, 7).batch(3, 4).unwrap();
    let (lr, hr) = sampler(Degradation::Dn, 7).batch(3, 4).unwrap();
    let (again, hr_again) = sampler(Degradation::Dn, 7).batch(3, 4).unwrap();
    assert!(lr == again && hr == hr_again, "same seed, same batch");
    assert_eq!(
        cache(Degradation::Dn).dir,
        cache(Degradation::Bicubic).dir,
        "DN shares bicubic's pixels"
    );
    let noise = (&lr - &clean).mapv(|v| v as f64);
    let std = (noise.mapv(|v| v * v).sum() / noise.len() as f64).sqrt();
    assert!(
        (25.0..32.0).contains(&std),
        "noise of sigma {std} (clipped at 0 and 255)"
    );
    let (other, _) = sampler(Degradation::Dn, 8).batch(3, 4).unwrap();
    assert_ne!(lr, other);
    let (pairs, _) = set().degraded(Degradation::Dn).load().unwrap();
    let (pairs_again, _) = set().degraded(Degradation::Dn).load().unwrap();
    assert!(pairs.iter().zip(&pairs_again).all(|(a, b)| a.lr == b.lr));
    let (bicubic, _) = set().load().unwrap();
    assert_ne!(pairs[0].lr, bicubic[0].lr);
}

/// A blurring degradation has a cache of its own: never read as bicubic.
#[test]
fn bd_has_its_own_cache() {
    let root = tempfile::tempdir().unwrap();
    let set5 = data("Set5");
    let cache_root = root.path().display().to_string();
    let prepare = |d: &str| {
        let o = srgraph(
            &["prepare", &set5, "--quiet", "--cache", &cache_root, "--degradation", d],
            root.path(),
        );
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let (bd, bicubic, dn) = (prepare("bd"), prepare("bicubic"), prepare("dn"));
    assert_ne!(bd, bicubic);
    assert_eq!(dn, bicubic);
    let set = ImageSet::open(&data_dir().join("Set5"), 2)
        .unwrap()
        .degraded(Degradation::Bd);
    assert!(
        set.files.iter().all(|f| f.lr.is_none()),
        "LR_bicubic files are not BD's"
    );
    let cache = PixelCache::open_or_build(&set, root.path(), false).unwrap();
    let (hr, lr, _) = cache.pair(0);
    assert_eq!(lr, Degradation::Bd.downscale(&hr.to_owned(), 2).unwrap());
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    format!("kernel:{}", path.display())
}

#[test]
fn kernel_files_read_back_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The same 3x3 kernel as text (commas and spaces) and as 8- and 16-bit grey PNGs.
    let text_kernel = write(&d.join("k.txt"), "# a binomial blur\n1, 2, 1\n2 4 2\n\n1,2,1\n");
    let taps = [1u16, 2, 1, 2, 4, 2, 1, 2, 1];
    image::ImageBuffer::<image::Luma<u16>, _>::from_raw(3, 3, taps.map(|t| t * 1000).to_vec())
        .unwrap()
        .save(d.join("k16.png"))
        .unwrap();
    image::GrayImage::from_raw(3, 3, taps.map(|t| t as u8 * 20).to_vec())
        .unwrap()
        .save(d.join("k8.png"))
        .unwrap();
    let k = Degradation::parse(&text_kernel).unwrap();
    let hash = |d: &Degradation| d.name().rsplit_once('#').unwrap().1.to_string();
    assert!(k.name().starts_with("kernel:k.txt#"), "{}", k.name());
    for png in ["k16.png", "k8.png"] {
        let p = Degradation::parse(&format!("kernel:{}", d.join(png).display())).unwrap();
        assert_eq!(hash(&p), hash(&k), "{png}");
        assert!(p.matches(&k.name()), "kernels compare by their taps");
    }
    let Degradation::Kernel(blur) = &k else {
        panic!("a kernel")
    };
    assert_eq!(blur.side(), 3);
    assert!((blur.taps().iter().sum::<f64>() - 1.0).abs() < 1e-12 && blur.taps()[4] == 0.25);
    // The 7x7 Gaussian as a kernel file is BD.
    let g = srgraph::data::degrade::gaussian(7, 1.6);
    let rows: Vec<String> = g
        .chunks(7)
        .map(|r| r.iter().map(|t| format!("{t:.17e}")).collect::<Vec<_>>().join(" "))
        .collect();
    let gk = Degradation::parse(&write(&d.join("g.txt"), &rows.join("\n"))).unwrap();
    let hr = modcrop(&load_hwc(&data_dir().join("Set5/HR/bird.png")).unwrap(), 3);
    let (a, b) = (
        gk.downscale(&hr, 3).unwrap(),
        Degradation::Bd.downscale(&hr, 3).unwrap(),
    );
    assert!(a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= 1));

    let refused = |content: &str, needle: &str| {
        let spec = write(&d.join("bad.txt"), content);
        let e = format!("{:#}", Degradation::parse(&spec).unwrap_err());
        assert!(e.contains("bad.txt") && e.contains(needle), "{content:?}: {e}");
    };
    refused("1 2 1\n2 4 2\n", "square");
    refused("1 2\n3 4\n", "odd");
    refused("0 0 0\n0 0 0\n0 0 0\n", "sum");
    refused("-1 -1 -1\n-1 1 -1\n-1 -1 -1\n", "sum");
    refused("1 NaN 1\n1 1 1\n1 1 1\n", "NaN");
    refused("1 x 1\n1 1 1\n1 1 1\n", "'x' is not a number");
    refused(&vec![vec!["1"; 33].join(" "); 33].join("\n"), "at most 31x31");
    image::RgbImage::new(3, 3).save(d.join("colour.png")).unwrap();
    let e = format!(
        "{:#}",
        Degradation::parse(&format!("kernel:{}", d.join("colour.png").display())).unwrap_err()
    );
    assert!(e.contains("colour.png") && e.contains("grey"), "{e}");
    let e = format!("{:#}", Degradation::parse("kernel:nowhere.txt").unwrap_err());
    assert!(e.contains("cannot read") && e.contains("nowhere.txt"), "{e}");
    // On the command line: a usage error (exit 2) naming the choices.
    let o = srgraph(&["prepare", &data("Set5"), "--degradation", "gaussian"], d);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("bicubic, bd, dn, kernel:FILE"), "{}", text(&o));
}

/// A few steps on BD: the model says `degradation = bd`, and `eval` scores it on BD only.
#[test]
fn a_bd_model_is_scored_on_bd() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let set5 = data("Set5");
    let run = QuickTrain::new("wdsr-b", &set5);
    let o = (run.clone())
        .set("--val", &set5)
        .set("--val-limit", "1")
        .set("--validate-every", "3")
        .set("--degradation", "bd")
        .run(d);
    assert!(o.status.success(), "{}", text(&o));
    // Resumed as bicubic: refused, naming both.
    let resumed = run.set("--steps", "4").flag("--resume").run(d);
    fails_with(&resumed, "trained on bd inputs and this run asks for bicubic");
    let model = d.join("run/model.onnx");
    let loaded = srgraph::infer::SrModel::load(&model, srgraph::runtime::Runtime::Tract, 0).unwrap();
    assert_eq!(loaded.metadata.get("degradation"), Some("bd"));
    let model = model.display().to_string();
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", &model, "--data", &set5, "--json"];
        args.extend(extra);
        srgraph(&args, d)
    };
    let refused = eval(&[]);
    fails_with(&refused, "trained on bd inputs, but --degradation is bicubic");
    assert!(text(&refused).contains("--any-degradation"), "{}", text(&refused));
    fails_with(&eval(&["--degradation", "dn"]), "--degradation bd");
    for (extra, used) in [
        (&["--degradation", "bd"][..], "bd"),
        (&["--any-degradation"][..], "bicubic"),
    ] {
        let o = eval(extra);
        assert!(o.status.success(), "{extra:?}: {}", text(&o));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["degradation"], used);
        assert_eq!(report["sets"][0]["degradation"], used);
    }
}
