//! Single-channel networks (`--channels 1`): built for every architecture, checked by
//! ONNX's checker and run alike in tract and ONNX Runtime; trained on 16-bit grey
//! pictures and on the luma of RGB ones; `upscale` keeps a grey 16-bit picture grey and
//! 16-bit, refuses an RGB picture without --grey; `eval` scores on the luma.

use crate::common::{self, data, data_dir, fails_with, srgraph, text, QuickTrain};
use crate::deep_pictures::real_pictures;
use srgraph::data::picture::AnyPicture;
use srgraph::infer::SrModel;
use srgraph::runtime::{ort::Device, Runtime};
use std::process::Command;

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}", text(o));
}

/// A one-channel WDSR-B (and EDSR, WDSR-A) is [N, 1, H, W] in and [N, 1, sH, sW] out,
/// passes `onnx.checker` (full check), and tract and ONNX Runtime agree on it.
#[test]
fn single_channel_networks_pass_the_checker_and_run_alike_in_tract_and_ort() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for arch in ["edsr", "wdsr-a", "wdsr-b"] {
        let file = format!("{arch}.onnx");
        #[rustfmt::skip]
        ok(&srgraph(&["build", arch, "--blocks", "2", "--filters", "8", "--channels", "1", "-o", &file], d));
        let check = Command::new(common::python())
            .args([
                "-c",
                "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)",
            ])
            .arg(d.join(&file))
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{arch}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let mut tract = SrModel::load(&d.join(&file), Runtime::Tract, 0).unwrap();
        assert_eq!((tract.channels, tract.scale), (1, 2), "{arch}");
        assert_eq!(tract.meta("channels"), Some("1"));
        let mut ort = SrModel::load(&d.join(&file), Runtime::Ort(Device::Cpu), 1).unwrap();
        let lr = srgraph::data::load_hwc(&data_dir().join("Set5/HR/bird.png")).unwrap();
        let (a, b) = (
            tract.upscale(&lr, None, &|| {}).unwrap(),
            ort.upscale(&lr, Some(64), &|| {}).unwrap(),
        );
        assert_eq!(a.dim(), (1, 3, 2 * lr.dim().0, 2 * lr.dim().1));
        let err = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(err <= 1e-3, "{arch}: tract and onnxruntime differ by {err}");
        // The one channel is repeated: a grey picture.
        assert!(a.index_axis(ndarray::Axis(1), 0) == a.index_axis(ndarray::Axis(1), 2));
    }
    ok(&srgraph(&["build", "wdsr-b", "--blocks", "1", "-o", "rgb.onnx"], d));
    assert_eq!(
        SrModel::load(&d.join("rgb.onnx"), Runtime::Tract, 0).unwrap().channels,
        3
    );
    let o = srgraph(&["build", "wdsr-b", "--channels", "2", "-o", "two.onnx"], d);
    fails_with(&o, "--channels 1 (grey) or 3 (RGB)");
}

/// Training on 16-bit grey pictures: the model says `channels = 1` and `bit_depth = 16`;
/// upscaling a 16-bit grey picture with it writes a 16-bit grey picture; an RGB picture
/// is refused without --grey and written grey with it; `eval` scores it on the luma.
#[test]
fn a_grey_network_trains_on_16_bit_pictures_and_upscales_them_at_16_bits() {
    let dir = tempfile::tempdir().unwrap();
    let d = real_pictures(dir.path());
    let grey = QuickTrain::new("wdsr-b", "png").set("--channels", "1");
    ok(&grey.set("--val", "tif").set("--validate-every", "3").run(&d));
    let model = SrModel::load(&d.join("run/model.onnx"), Runtime::Tract, 0).unwrap();
    assert_eq!(model.channels, 1);
    assert_eq!(
        (model.meta("channels"), model.meta("bit_depth")),
        (Some("1"), Some("16"))
    );

    ok(&srgraph(
        &[
            "upscale",
            "run/model.onnx",
            "png/ct_small.png",
            "-o",
            "ct_x2.png",
            "--quiet",
        ],
        &d,
    ));
    match AnyPicture::open(&d.join("ct_x2.png")).unwrap() {
        AnyPicture::Sixteen(p) => assert!(p.grey && p.size() == (256, 256)),
        AnyPicture::Eight(_) => panic!("a 16-bit grey picture came out 8-bit"),
    }

    let bird = data("Set5/HR/bird.png");
    let o = srgraph(&["upscale", "run/model.onnx", &bird, "-o", "bird.png", "--quiet"], &d);
    fails_with(&o, "add --grey");
    let o = srgraph(
        &[
            "upscale",
            "run/model.onnx",
            &bird,
            "-o",
            "bird.png",
            "--grey",
            "--quiet",
        ],
        &d,
    );
    ok(&o);
    assert!(text(&o).contains("its luma (BT.601 Y) is upscaled"), "{}", text(&o));
    assert!(AnyPicture::open(&d.join("bird.png")).unwrap().eight().grey);

    let o = srgraph(&["eval", "run/model.onnx", "--data", "tif"], &d);
    ok(&o);
    assert!(text(&o).contains("on the luma of each picture"), "{}", text(&o));
}

/// Training a grey network on RGB pictures (their luma) records `channels = 1`; `export`
/// refuses it by name and `import` reads it back.
#[test]
fn a_grey_network_trains_on_the_luma_of_rgb_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let set5 = data("Set5/HR");
    ok(&QuickTrain::new("edsr", &set5)
        .set("--channels", "1")
        .set("--steps", "2")
        .run(d));
    let model = SrModel::load(&d.join("run/model.onnx"), Runtime::Tract, 0).unwrap();
    assert_eq!((model.channels, model.meta("channels")), (1, Some("1")));
    let o = srgraph(&["export", "run/checkpoint.onnx", "-o", "edsr.pt"], d);
    assert!(
        !o.status.success() && text(&o).contains("single-channel"),
        "{}",
        text(&o)
    );

    // `import` finds the one channel in the weights, and the mean shift folds back.
    for (from, to) in [
        ("run/model.onnx", "from-model.onnx"),
        ("run/checkpoint.onnx", "from-checkpoint.onnx"),
    ] {
        ok(&srgraph(&["import", from, "-o", to], d));
        let mut back = SrModel::load(&d.join(to), Runtime::Tract, 0).unwrap();
        assert_eq!(back.channels, 1, "{from}");
        let lr = srgraph::data::load_hwc(&data_dir().join("Set5/HR/baby.png")).unwrap();
        let lr = lr.slice(ndarray::s![..40, ..40, ..]).to_owned();
        let mut model = SrModel::load(&d.join("run/model.onnx"), Runtime::Tract, 0).unwrap();
        let (a, b) = (
            model.upscale(&lr, None, &|| {}).unwrap(),
            back.upscale(&lr, None, &|| {}).unwrap(),
        );
        let err = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(err <= 1e-3, "{from} imported differs by {err}");
    }
}

/// The luma of DIV2K's mean is what a grey network subtracts.
#[test]
fn the_grey_mean_is_the_luma_of_div2ks() {
    use srgraph::models::{Arch, ModelConfig};
    let c = ModelConfig {
        channels: 1,
        ..ModelConfig::new(Arch::WdsrB)
    };
    let m = c.channel_mean();
    assert_eq!(m.len(), 1);
    assert!(
        (m[0] - 255.0 * (0.299 * 0.4488 + 0.587 * 0.4371 + 0.114 * 0.4040)).abs() < 1e-3,
        "{m:?}"
    );
}

/// `train --init RGB --channels 1` starts a grey network from an RGB one: on a grey
/// picture it gives the luma of what the RGB network gives, away from the borders
/// (where the mean's offset meets zero padding), for EDSR (plain weights) and WDSR-B
/// (weight norm; a skip conv that both reads and writes the picture).
#[test]
fn an_rgb_network_starts_a_grey_one_that_gives_the_luma_of_its_output() {
    use ndarray::{s, Axis};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let set5 = data("Set5/HR");
    let bird = srgraph::data::load_hwc(&data_dir().join("Set5/HR/bird.png")).unwrap();
    let grey = srgraph::data::luma::grey_picture(bird.slice(s![100..140, 100..148, ..]));
    for (arch, scale) in [("edsr", "3"), ("wdsr-b", "2")] {
        let rgb = format!("{arch}-rgb.onnx");
        #[rustfmt::skip]
        ok(&srgraph(&["build", arch, "--blocks", "1", "--filters", "8", "--scale", scale, "--seed", "3", "-o", &rgb], d));
        // One step at a learning rate too small to move a weight: the starting point itself.
        #[rustfmt::skip]
        let o = srgraph(&[
            "train", arch, "--init", &rgb, "--channels", "1", "--steps", "1", "--lr", "1e-12", "--batch", "1",
            "--patch", "24", "--engine", "tract", "--data", &set5, "--out", arch, "--quiet",
        ], d);
        ok(&o);
        assert!(text(&o).contains("started as one channel"), "{}", text(&o));
        let mut one = SrModel::load(&d.join(arch).join("model.onnx"), Runtime::Tract, 0).unwrap();
        assert_eq!(one.channels, 1);
        let mut three = SrModel::load(&d.join(&rgb), Runtime::Tract, 0).unwrap();
        let (a, b) = (
            one.upscale(&grey, None, &|| {}).unwrap(),
            three.upscale(&grey, None, &|| {}).unwrap(),
        );
        let luma = b.index_axis(Axis(1), 0).mapv(|r| r * 0.299)
            + b.index_axis(Axis(1), 1).mapv(|g| g * 0.587)
            + b.index_axis(Axis(1), 2).mapv(|b| b * 0.114);
        // Beyond the receptive field's radius (EDSR's 1 block: 5 LR pixels and 1 HR) from each border.
        let m = 5 * scale.parse::<usize>().unwrap() + 2;
        let inner = |x: ndarray::ArrayView3<f32>| x.slice(s![.., m..x.dim().1 - m, m..x.dim().2 - m]).to_owned();
        let (a, luma) = (inner(a.index_axis(Axis(1), 0).view()), inner(luma.view()));
        let err = a.iter().zip(&luma).fold(0f32, |e, (x, y)| e.max((x - y).abs()));
        assert!(
            err < 1e-2,
            "{arch}: the grey network differs from the RGB one's luma by {err}"
        );
    }
    let o = srgraph(
        &[
            "train",
            "wdsr-b",
            "--init",
            "wdsr-b-rgb.onnx",
            "--channels",
            "2",
            "--data",
            &set5,
        ],
        d,
    );
    assert!(!o.status.success() && text(&o).contains("channels"), "{}", text(&o));
}
