//! `srgraph eval` and `srgraph upscale`, and the tiling under them: tiled equals
//! whole, the bicubic baseline equals the published Set5 numbers, pictures keep
//! their greyscale and alpha, and bad input is a clear error naming the file.

use crate::common::{data, data_dir, fails_with, srgraph, text};
use ndarray::Array3;
use prost::Message;
use srgraph::data::bicubic;
use srgraph::infer::SrModel;
use srgraph::onnx::pb;
use srgraph::runtime::{ort::Device, Runtime};
use std::path::Path;

fn build(dir: &Path, args: &[&str], file: &str) {
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", file]);
    let o = srgraph(&a, dir);
    assert!(o.status.success(), "{}", text(&o));
}

fn max_abs_diff(a: &ndarray::Array4<f32>, b: &ndarray::Array4<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn tiled_equals_whole_and_a_margin_short_of_the_receptive_field_does_not() {
    let dir = tempfile::tempdir().unwrap();
    // woman is 228 x 344: not square, not a multiple of the tile.
    let lr = srgraph::data::load_hwc(&data_dir().join("Set5/HR/woman.png")).unwrap();
    for preset in ["study-edsr-8", "study-wdsr-a-8", "study-wdsr-b-8"] {
        build(dir.path(), &[preset], &format!("{preset}.onnx"));
        let mut m = SrModel::load(&dir.path().join(format!("{preset}.onnx")), Runtime::Tract, 0).unwrap();
        let whole = m.upscale(&lr, None, &|| {}).unwrap();
        let tiles = m.tiles(228, 344, Some(48)).len();
        assert!(tiles >= 12, "{tiles} tiles");
        let tiled = m.upscale(&lr, Some(48), &|| {}).unwrap();
        let err = max_abs_diff(&tiled, &whole);
        println!(
            "{preset}: radius {} px, {tiles} tiles of 48, max |tiled - whole| = {err:.1e}",
            m.radius
        );
        assert!(err <= 1e-3, "{preset}: tiled differs from whole by {err}");
        // The check can fail: without the margin, tile seams show.
        let radius = m.radius;
        m.radius = 0;
        let seams = max_abs_diff(&m.upscale(&lr, Some(48), &|| {}).unwrap(), &whole);
        m.radius = radius;
        assert!(seams > 1.0, "{preset}: no margin, yet only {seams} apart");
    }
    // ONNX Runtime's tiles against tract's whole image: the two runtimes agree to ~1e-4.
    let mut ort = SrModel::load(&dir.path().join("study-wdsr-b-8.onnx"), Runtime::Ort(Device::Cpu), 2).unwrap();
    let mut tract = SrModel::load(&dir.path().join("study-wdsr-b-8.onnx"), Runtime::Tract, 0).unwrap();
    let err = max_abs_diff(
        &ort.upscale(&lr, Some(64), &|| {}).unwrap(),
        &tract.upscale(&lr, None, &|| {}).unwrap(),
    );
    assert!(err <= 1e-3, "onnxruntime tiled against tract whole: {err}");
}

fn eval_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["eval"];
    a.extend_from_slice(args);
    a.push("--json");
    let o = srgraph(&a, dir);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn bicubic_on_set5_matches_the_published_means_and_both_engines_agree() {
    let dir = tempfile::tempdir().unwrap();
    // Published bicubic PSNR-Y on Set5 (shave = scale): 33.66 / 30.39 / 28.42.
    for (scale, published) in [(2, 33.66), (3, 30.39), (4, 28.42)] {
        let file = format!("x{scale}.onnx");
        build(
            dir.path(),
            &["wdsr-b", "--blocks", "1", "--scale", &scale.to_string()],
            &file,
        );
        let r = eval_json(dir.path(), &[&file, "--data", &data("Set5")]);
        let set = &r["sets"][0];
        assert_eq!(set["images"].as_array().unwrap().len(), 5);
        assert_eq!(set["lr_source"], "LR files");
        let bic = set["bicubic"]["psnr_y"].as_f64().unwrap();
        println!("Set5 x{scale} bicubic PSNR-Y {bic:.3} (published {published})");
        assert!((bic - published).abs() <= 0.02, "x{scale}: {bic} against {published}");
        assert_eq!(r["rgb_shave"], scale + 6);
        let ort = eval_json(dir.path(), &[&file, "--data", &data("Set5"), "--engine", "ort"]);
        let (t, o) = (
            set["model"]["psnr_y"].as_f64().unwrap(),
            ort["sets"][0]["model"]["psnr_y"].as_f64().unwrap(),
        );
        assert!((t - o).abs() < 1e-3, "tract {t} against onnxruntime {o}");
    }
    // Several folders: one row per set, and the table names them.
    let o = srgraph(
        &["eval", "x2.onnx", "--data", &data("Set5"), &data("Set14")],
        dir.path(),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("Set5 (5)") && out.contains("Set14 (14)") && !out.contains("baby"),
        "{out}"
    );
}

fn write_png(path: &Path, img: image::DynamicImage) {
    img.save(path).unwrap();
}

#[test]
fn upscale_keeps_grey_and_alpha_writes_compare_and_never_overwrites_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    build(d, &["wdsr-b", "--blocks", "1", "--scale", "2"], "m.onnx");
    let rgb = image::open(data_dir().join("Set5/LR_bicubic/X2/butterflyx2.png")).unwrap();
    write_png(&d.join("grey.png"), image::DynamicImage::ImageLuma8(rgb.to_luma8()));
    let mut rgba = rgb.to_rgba8();
    for (x, _, p) in rgba.enumerate_pixels_mut() {
        p[3] = (x * 2) as u8;
    }
    write_png(&d.join("rgba.png"), image::DynamicImage::ImageRgba8(rgba.clone()));
    rgb.to_rgb8().save(d.join("photo.jpg")).unwrap();

    let o = srgraph(
        &[
            "upscale",
            "m.onnx",
            "grey.png",
            "rgba.png",
            "photo.jpg",
            "-o",
            "out",
            "--tile",
            "48",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let grey = image::open(d.join("out/grey_x2.png")).unwrap();
    assert_eq!(
        (grey.color(), grey.width(), grey.height()),
        (image::ColorType::L8, 256, 256)
    );
    let big = image::open(d.join("out/rgba_x2.png")).unwrap();
    assert_eq!((big.color(), big.width()), (image::ColorType::Rgba8, 256));
    // Alpha is MATLAB-bicubic upscaled, exactly.
    let alpha = Array3::from_shape_fn((128, 128, 1), |(y, x, _)| rgba.get_pixel(x as u32, y as u32)[3]);
    let want = bicubic::upscale(&alpha, 2).unwrap();
    let big = big.to_rgba8();
    assert!(big
        .enumerate_pixels()
        .all(|(x, y, p)| p[3] == want[[y as usize, x as usize, 0]]));
    // The RGB of an RGBA picture is what the model makes of its RGB (same tiles: same rounding).
    let mut m = SrModel::load(&d.join("m.onnx"), Runtime::Tract, 0).unwrap();
    let rgb3 = Array3::from_shape_fn((128, 128, 3), |(y, x, c)| rgba.get_pixel(x as u32, y as u32)[c]);
    let sr = srgraph::data::dataset::from_nchw(m.upscale(&rgb3, Some(48), &|| {}).unwrap().view());
    assert!(big
        .enumerate_pixels()
        .all(|(x, y, p)| (0..3).all(|c| p[c] == sr[[y as usize, x as usize, c]])));
    assert!(d.join("out/photo_x2.png").is_file());

    // IN OUT, and --compare with the HR original as the third panel.
    let hr = data("Set5/HR");
    let o = srgraph(
        &[
            "upscale",
            "m.onnx",
            &data("Set5/LR_bicubic/X2/butterflyx2.png"),
            "b.png",
            "--compare",
            "--hr",
            &hr,
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(image::image_dimensions(d.join("b.png")).unwrap(), (256, 256));
    assert_eq!(
        image::image_dimensions(d.join("b_compare.png")).unwrap(),
        (3 * 256 + 2 * 8, 256 + 30)
    );

    // Two existing pictures are two inputs: the second is never taken for an output.
    let before = std::fs::read(d.join("grey.png")).unwrap();
    let o = srgraph(&["upscale", "m.onnx", "rgba.png", "grey.png"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(d.join("grey.png")).unwrap(), before);
    assert!(d.join("rgba_x2.png").is_file() && d.join("grey_x2.png").is_file());
}

#[test]
fn bad_input_is_a_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    build(d, &["wdsr-b", "--blocks", "1", "--scale", "2"], "m.onnx");
    let set5 = data("Set5");

    // Not ONNX, or cut short.
    let bytes = std::fs::read(d.join("m.onnx")).unwrap();
    std::fs::write(d.join("cut.onnx"), &bytes[..bytes.len() / 3]).unwrap();
    fails_with(
        &srgraph(&["eval", "cut.onnx", "--data", &set5], d),
        "cut.onnx is not an ONNX file",
    );
    // A training graph: many inputs.
    let o = srgraph(&["build", "wdsr-b", "--blocks", "1", "--train", "-o", "train"], d);
    assert!(o.status.success(), "{}", text(&o));
    fails_with(
        &srgraph(&["upscale", "train/train_step.onnx", &data("Set5/HR/bird.png")], d),
        "use the run's model.onnx",
    );
    // One channel in, three out.
    let mut proto = pb::ModelProto::decode(&bytes[..]).unwrap();
    let input = &mut proto.graph.as_mut().unwrap().input[0];
    let Some(pb::type_proto::Value::TensorType(t)) = input.r#type.as_mut().unwrap().value.as_mut() else {
        panic!("input is a tensor")
    };
    t.shape.as_mut().unwrap().dim[1].value = Some(pb::tensor_shape_proto::dimension::Value::DimValue(1));
    std::fs::write(d.join("grey.onnx"), proto.encode_to_vec()).unwrap();
    fails_with(
        &srgraph(&["eval", "grey.onnx", "--data", &set5], d),
        "its input has 1 channel(s) and its output 3",
    );
    // A scale the model does not have.
    fails_with(
        &srgraph(&["eval", "m.onnx", "--data", &set5, "--scale", "3"], d),
        "--scale 3 was asked, but m.onnx upscales x2",
    );

    // A corrupt picture in a set.
    let set = d.join("set");
    std::fs::create_dir_all(set.join("HR")).unwrap();
    std::fs::copy(data_dir().join("Set5/HR/bird.png"), set.join("HR/bird.png")).unwrap();
    std::fs::write(set.join("HR/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    fails_with(&srgraph(&["eval", "m.onnx", "--data", "set"], d), "broken.png");
    std::fs::remove_file(set.join("HR/broken.png")).unwrap();
    // HR and LR folders that do not pair up.
    std::fs::copy(data_dir().join("Set5/HR/head.png"), set.join("HR/head.png")).unwrap();
    std::fs::create_dir_all(set.join("LR_bicubic/X2")).unwrap();
    std::fs::copy(
        data_dir().join("Set5/LR_bicubic/X2/birdx2.png"),
        set.join("LR_bicubic/X2/birdx2.png"),
    )
    .unwrap();
    fails_with(
        &srgraph(&["eval", "m.onnx", "--data", "set"], d),
        "head.png has no low-resolution partner",
    );
    std::fs::copy(
        data_dir().join("Set5/LR_bicubic/X2/babyx2.png"),
        set.join("LR_bicubic/X2/headx2.png"),
    )
    .unwrap();
    fails_with(&srgraph(&["eval", "m.onnx", "--data", "set"], d), "LR file");
    std::fs::copy(
        data_dir().join("Set5/LR_bicubic/X2/headx2.png"),
        set.join("LR_bicubic/X2/headx2.png"),
    )
    .unwrap();
    std::fs::copy(
        data_dir().join("Set5/LR_bicubic/X2/babyx2.png"),
        set.join("LR_bicubic/X2/babyx2.png"),
    )
    .unwrap();
    fails_with(
        &srgraph(&["eval", "m.onnx", "--data", "set"], d),
        "babyx2.png has no high-resolution partner",
    );
    std::fs::remove_file(set.join("LR_bicubic/X2/babyx2.png")).unwrap();
    let o = srgraph(&["eval", "m.onnx", "--data", "set"], d);
    assert!(o.status.success(), "{}", text(&o));

    // upscale: a corrupt picture fails, the others are still written.
    std::fs::write(d.join("broken.jpg"), b"\xff\xd8\xff not a jpeg").unwrap();
    let o = srgraph(&["upscale", "m.onnx", "broken.jpg", "set/HR/bird.png", "-o", "up"], d);
    fails_with(&o, "1 of 2 pictures failed: broken.jpg");
    assert!(text(&o).contains("cannot read image broken.jpg"), "{}", text(&o));
    assert!(d.join("up/bird_x2.png").is_file());
    fails_with(
        &srgraph(&["upscale", "m.onnx", "missing.png", "-o", "up"], d),
        "missing.png does not exist",
    );
}

/// `srgraph upscale PICTURE` without a model runs the built-in WDSR-B of `--scale` (x2
/// when not given): on Set5's bird each beats bicubic by over 1.5 dB PSNR-Y, their
/// metadata says how they were trained and what they score, and a scale without a
/// built-in model or a model with no pictures is a clear error.
#[test]
fn upscale_without_a_model_runs_the_built_in_wdsr_b() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for s in [2, 3, 4] {
        let lr = data(&format!("Set5/LR_bicubic/X{s}/birdx{s}.png"));
        let out = format!("bird_x{s}.png");
        let mut args = vec!["upscale", &lr, "-o", &out, "--quiet"];
        let scale = s.to_string();
        if s != 2 {
            args.extend(["--scale", &scale]);
        }
        let o = srgraph(&args, d);
        assert!(o.status.success(), "{}", text(&o));
        let sr = srgraph::data::load_hwc(&d.join(&out)).unwrap();
        let hr = bicubic::modcrop(
            &srgraph::data::load_hwc(&data_dir().join("Set5/HR/bird.png")).unwrap(),
            s,
        );
        let bicubic = bicubic::upscale(&srgraph::data::load_hwc(Path::new(&lr)).unwrap(), s).unwrap();
        let model = srgraph::metrics::psnr_y(&sr, &hr, s).unwrap();
        let baseline = srgraph::metrics::psnr_y(&bicubic, &hr, s).unwrap();
        assert!(
            model > baseline + 1.5,
            "built-in x{s}: {model:.2} dB against bicubic {baseline:.2}"
        );

        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("assets/wdsr-b-x{s}.onnx"));
        let meta = SrModel::from_bytes(std::fs::read(file).unwrap(), "built-in", Runtime::Tract, 0)
            .unwrap()
            .metadata;
        for key in [
            "training_command".to_string(),
            "training_steps".to_string(),
            "trained_on".to_string(),
            format!("set5_x{s}_psnr_y"),
            format!("set14_x{s}_psnr_y"),
        ] {
            assert!(
                meta.iter().any(|(k, _)| *k == key),
                "the built-in x{s} model's metadata lacks {key}"
            );
        }
    }

    let lr = data("Set5/LR_bicubic/X2/birdx2.png");
    fails_with(
        &srgraph(&["upscale", &lr, "--scale", "8", "-o", "x8.png"], d),
        "built-in models for x2, x3 and x4 only",
    );
    let o = srgraph(&["upscale", "m.onnx"], d);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no pictures to upscale"), "{}", text(&o));
}

/// `srgraph upscale PICTURE --channels 1` runs the built-in grey WDSR-B x2 on the
/// picture's luma and writes it grey: on Set5's bird it beats bicubic of the same luma
/// by over 1.5 dB; its metadata says how it was trained; other scales, and a model of
/// the other channels, are clear errors.
#[test]
fn upscale_channels_1_runs_the_built_in_grey_wdsr_b() {
    use srgraph::data::luma::grey_picture;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lr = data("Set5/LR_bicubic/X2/birdx2.png");
    let o = srgraph(&["upscale", &lr, "--channels", "1", "-o", "bird.png"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(image::open(d.join("bird.png")).unwrap().color() == image::ColorType::L8);
    let sr = srgraph::data::load_hwc(&d.join("bird.png")).unwrap();
    let hr = bicubic::modcrop(
        &srgraph::data::load_hwc(&data_dir().join("Set5/HR/bird.png")).unwrap(),
        2,
    );
    let hr = grey_picture(hr.view());
    let lr_grey = grey_picture(srgraph::data::load_hwc(Path::new(&lr)).unwrap().view());
    let bicubic = bicubic::upscale(&lr_grey, 2).unwrap();
    let model = srgraph::metrics::psnr_y(&sr, &hr, 2).unwrap();
    let baseline = srgraph::metrics::psnr_y(&bicubic, &hr, 2).unwrap();
    assert!(
        model > baseline + 1.5,
        "built-in grey x2: {model:.2} dB against bicubic {baseline:.2}"
    );

    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/wdsr-b-x2-grey.onnx");
    let m = SrModel::from_bytes(std::fs::read(file).unwrap(), "built-in", Runtime::Tract, 0).unwrap();
    assert_eq!(m.channels, 1);
    for key in [
        "training_command",
        "training_steps",
        "trained_on",
        "set5_x2_psnr_y",
        "set14_x2_psnr_y",
    ] {
        assert!(
            m.metadata.iter().any(|(k, _)| k == key),
            "the built-in grey model's metadata lacks {key}"
        );
    }

    #[rustfmt::skip]
    fails_with(&srgraph(&["upscale", &lr, "--channels", "1", "--scale", "3", "-o", "x3.png"], d), "built-in grey model is x2");
    let rgb = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/wdsr-b-x2.onnx");
    let rgb = rgb.to_str().unwrap();
    fails_with(
        &srgraph(&["upscale", rgb, &lr, "--channels", "1", "-o", "rgb.png"], d),
        "not --channels 1",
    );
}
