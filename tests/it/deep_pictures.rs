//! 16-bit and TIFF pictures end to end: real 16-bit CT and MR slices (pydicom's bundled
//! test files, converted by tools/oracles/dicom_pictures.py into a temporary folder) read
//! from PNG and TIFF, the MATLAB bicubic at 16 bits against NumPy, `upscale`, `eval` and
//! `train` keeping the depth, and a folder mixing 8- and 16-bit pictures.

use crate::common::{self, data_dir, srgraph, text, QuickTrain};
use ndarray::Array3;
use srgraph::data::bicubic::{self, Border};
use srgraph::data::cache::PixelCache;
use srgraph::data::dataset::{ImageSet, PatchSampler};
use srgraph::data::picture::{AnyPicture, Picture};
use srgraph::data::{load_hwc, load_levels};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pictures the fixture writes: (name, width, height).
const PICTURES: [(&str, usize, usize); 3] = [("ct_small", 128, 128), ("mr_small", 64, 64), ("overlay", 484, 300)];

/// Runs tools/oracles/dicom_pictures.py into `dir`: `dir/png`, `dir/tif` (16-bit grey) and
/// `dir/raw` (the values, little-endian).
pub(crate) fn real_pictures(dir: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/oracles/dicom_pictures.py");
    let out = Command::new(common::python()).arg(&script).arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{} (pydicom comes with tools/setup/requirements.txt)",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.to_path_buf()
}

fn raw_values(path: &Path, h: usize, w: usize) -> Array3<u16> {
    let bytes = std::fs::read(path).unwrap();
    let values = bytes.chunks(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
    Array3::from_shape_vec((h, w, 1), values).unwrap()
}

fn sixteen(path: &Path) -> Picture<u16> {
    match AnyPicture::open(path).unwrap() {
        AnyPicture::Sixteen(p) => p,
        AnyPicture::Eight(_) => panic!("{} read as 8-bit", path.display()),
    }
}

/// The fixture's PNG and TIFF files read back to their values exactly, grey; and srgraph's
/// own 16-bit PNG and TIFF of them read back to the same values.
#[test]
fn sixteen_bit_png_and_tiff_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = real_pictures(dir.path());
    for (name, w, h) in PICTURES {
        let want = raw_values(&d.join(format!("raw/{name}.u16")), h, w);
        for file in [format!("png/{name}.png"), format!("tif/{name}.tif")] {
            let pic = sixteen(&d.join(&file));
            assert!(pic.grey && pic.alpha.is_none(), "{file}");
            for c in 0..3 {
                assert_eq!(pic.rgb.slice(ndarray::s![.., .., c..c + 1]), want, "{file} channel {c}");
            }
            for again in [pic.to_png().unwrap(), pic.to_tiff().unwrap()] {
                let back = sixteen_bytes(&again);
                assert_eq!(back.rgb, pic.rgb, "{file} written again");
                assert!(back.grey);
            }
        }
    }
}

fn sixteen_bytes(bytes: &[u8]) -> Picture<u16> {
    match AnyPicture::from_bytes(bytes, "srgraph's output").unwrap() {
        AnyPicture::Sixteen(p) => p,
        AnyPicture::Eight(_) => panic!("16-bit output read as 8-bit"),
    }
}

/// MATLAB's bicubic of uint16 pictures: srgraph's resizer equals tools/oracles/bicubic_u16.py
/// (NumPy) value for value, down by 2, 3, 4 and up by 2, on a real CT slice and on an RGB
/// picture whose values use all 16 bits.
#[test]
fn u16_bicubic_equals_the_numpy_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let d = real_pictures(dir.path());
    let ct = load_levels::<u16>(&d.join("tif/ct_small.tif")).unwrap();
    let bird = load_hwc(&data_dir().join("Set5/HR/bird.png")).unwrap();
    let rgb = Array3::from_shape_fn(bird.dim(), |(y, x, c)| {
        bird[[y, x, c]] as u16 * 256 + ((x * 31 + y * 17 + c * 5) % 256) as u16
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/oracles/bicubic_u16.py");
    let (src, dst) = (d.join("in.u16"), d.join("out.u16"));
    for (what, img) in [("CT", &ct), ("RGB", &rgb)] {
        let (h, w, c) = img.dim();
        let bytes: Vec<u8> = img.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&src, bytes).unwrap();
        for (mode, s) in [("down", 2), ("down", 3), ("down", 4), ("up", 2)] {
            let out = Command::new(common::python())
                .arg(&script)
                .arg(&src)
                .args([h.to_string(), w.to_string(), c.to_string(), mode.into(), s.to_string()])
                .arg(&dst)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let got = match mode {
                "down" => bicubic::downscale(img, s, Border::Mirror).unwrap(),
                _ => bicubic::upscale(img, s).unwrap(),
            };
            let (gh, gw, _) = got.dim();
            let want = std::fs::read(&dst).unwrap();
            let want: Vec<u16> = want.chunks(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
            assert_eq!(want.len(), got.len(), "{what} {mode} x{s}: {gw}x{gh}");
            let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(
                differ,
                0,
                "{what} {mode} x{s}: {differ} of {} values differ",
                want.len()
            );
        }
    }
}

/// `upscale` of a real 16-bit grey TIFF writes a 16-bit grey TIFF twice its size, whose
/// values are not an 8-bit picture times 257.
#[test]
fn upscale_of_a_16_bit_grey_tiff_writes_a_16_bit_grey_tiff() {
    let dir = tempfile::tempdir().unwrap();
    let d = real_pictures(dir.path());
    let o = srgraph(&["upscale", "tif/ct_small.tif", "-o", "ct_x2.tif", "--quiet"], &d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("16-bit"), "{}", text(&o));
    let img = image::open(d.join("ct_x2.tif")).unwrap();
    assert_eq!(
        (img.color(), img.width(), img.height()),
        (image::ColorType::L16, 256, 256)
    );
    let values = img.to_luma16().into_raw();
    let between = values.iter().filter(|v| **v % 257 != 0).count();
    assert!(between > values.len() / 2, "only {between} values between 8-bit levels");
    // And a 16-bit PNG to a folder: <name>_x2.png, 16-bit grey.
    let o = srgraph(&["upscale", "png/mr_small.png", "-o", "out", "--quiet"], &d);
    assert!(o.status.success(), "{}", text(&o));
    let img = image::open(d.join("out/mr_small_x2.png")).unwrap();
    assert_eq!((img.color(), img.width()), (image::ColorType::L16, 128));
}

/// `eval` of the real 16-bit pictures with the built-in x2 model: scored at 16 bits, peak
/// 65535, said in the JSON and the text; the model's margin over bicubic is printed.
#[test]
fn eval_of_16_bit_pictures_uses_peak_65535() {
    let dir = tempfile::tempdir().unwrap();
    let d = real_pictures(dir.path());
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/wdsr-b-x2.onnx");
    let model = model.display().to_string();
    let o = srgraph(&["eval", &model, "--data", "png", "--json"], &d);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let set = &report["sets"][0];
    assert_eq!(
        (set["bit_depth"].as_u64(), set["peak"].as_f64()),
        (Some(16), Some(65535.0))
    );
    let (model_y, bicubic_y) = (
        set["model"]["psnr_y"].as_f64().unwrap(),
        set["bicubic"]["psnr_y"].as_f64().unwrap(),
    );
    let (model_rgb, bicubic_rgb) = (
        set["model"]["psnr_rgb"].as_f64().unwrap(),
        set["bicubic"]["psnr_rgb"].as_f64().unwrap(),
    );
    eprintln!(
        "16-bit CT/MR x2: PSNR-Y {model_y:.3} dB vs bicubic {bicubic_y:.3} ({:+.3}); \
         PSNR-RGB {model_rgb:.3} vs {bicubic_rgb:.3}",
        model_y - bicubic_y
    );
    assert!(model_y > bicubic_y, "model {model_y:.3} dB, bicubic {bicubic_y:.3} dB");
    let o = srgraph(&["eval", &model, "--data", "tif"], &d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("16-bit, scored with peak 65535"), "{}", text(&o));
}

/// A folder mixing an 8-bit picture and its 16-bit copy (values times 257) is read as
/// 16-bit, the 8-bit one times 257, exactly; its cache is 16-bit (said in its index). Its
/// HR patches are the same numbers as those of two 8-bit copies; its LR patches, made by
/// the 16-bit bicubic, keep the fractions of a level that the 8-bit one rounds away.
#[test]
fn a_folder_mixing_8_and_16_bits_is_read_as_16_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (mixed, eight) = (dir.path().join("mixed"), dir.path().join("eight"));
    std::fs::create_dir_all(&mixed).unwrap();
    std::fs::create_dir_all(&eight).unwrap();
    let bird = data_dir().join("Set5/HR/bird.png");
    let hr = load_hwc(&bird).unwrap();
    let deep = Picture {
        rgb: hr.mapv(|v| v as u16 * 257),
        alpha: None,
        grey: false,
    };
    std::fs::copy(&bird, mixed.join("a.png")).unwrap();
    std::fs::write(mixed.join("b.tif"), deep.to_tiff().unwrap()).unwrap();
    std::fs::copy(&bird, eight.join("a.png")).unwrap();
    std::fs::copy(&bird, eight.join("b.png")).unwrap();

    let set = ImageSet::open(&mixed, 2).unwrap();
    assert_eq!(set.bit_depth(), 16);
    assert_eq!(ImageSet::open(&eight, 2).unwrap().bit_depth(), 8);
    let (pairs, _) = set.load_as::<u16>().unwrap();
    assert_eq!(
        pairs[0].hr, pairs[1].hr,
        "the 8-bit picture times 257 is its 16-bit copy"
    );
    assert_eq!(pairs[0].lr, pairs[1].lr);

    let root = dir.path().join("cache");
    let cache = PixelCache::open_or_build(&set, &root, false).unwrap();
    assert_eq!(cache.bit_depth, 16);
    let index = std::fs::read_to_string(cache.dir.join("index.json")).unwrap();
    assert!(index.contains("\"bit_depth\":16"), "{index}");
    let (hr16, lr16, _) = cache.pair_as::<u16>(0);
    assert!(hr16 == pairs[0].hr.view() && lr16 == pairs[0].lr.view());
    let cache8 = PixelCache::open_or_build(&ImageSet::open(&eight, 2).unwrap(), &root, false).unwrap();
    let index8 = std::fs::read_to_string(cache8.dir.join("index.json")).unwrap();
    assert!(cache8.bit_depth == 8 && !index8.contains("bit_depth"), "{index8}");

    let a = PatchSampler::from_cache(cache, 32, 2, 5).unwrap();
    let b = PatchSampler::from_cache(cache8, 32, 2, 5).unwrap();
    assert_eq!(a.bit_depth(), 16);
    let mut largest = 0f32;
    for step in 0..3 {
        let ((lr16, hr16), (lr8, hr8)) = (a.batch(step, 4).unwrap(), b.batch(step, 4).unwrap());
        assert!(hr16 == hr8, "step {step}: HR patches differ");
        let fractions = lr16.iter().filter(|v| v.fract() != 0.0).count();
        assert!(
            fractions > lr16.len() / 2,
            "step {step}: only {fractions} LR values between levels"
        );
        largest = lr16
            .iter()
            .zip(&lr8)
            .map(|(x, y)| (x - y).abs())
            .fold(largest, f32::max);
    }
    eprintln!("16-bit LR patches against 8-bit ones: at most {largest} of a level apart");
    assert!(largest <= 1.5, "{largest}");
}

/// A few steps of training on the 16-bit pictures: the model records `bit_depth = 16`.
#[test]
fn training_on_16_bit_pictures_records_bit_depth_16() {
    let dir = tempfile::tempdir().unwrap();
    let d = real_pictures(dir.path());
    let o = QuickTrain::new("wdsr-b", "png")
        .set("--val", "tif")
        .set("--validate-every", "3")
        .run(&d);
    assert!(o.status.success(), "{}", text(&o));
    let model = srgraph::infer::SrModel::load(&d.join("run/model.onnx"), srgraph::runtime::Runtime::Tract, 0).unwrap();
    assert_eq!(model.metadata.get("bit_depth"), Some("16"));
}
