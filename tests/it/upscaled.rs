//! `srgraph eval --upscaled`: pictures upscaled elsewhere, scored by eval's own scorer,
//! from the LR pictures `--save-inputs` writes.

use crate::common::{data, fails_with, srgraph, text};
use srgraph::data::bicubic;
use srgraph::data::picture::rgb_png;
use std::path::Path;

/// The LR pictures of Set5 (its LR files) and Set14 (srgraph's bicubic) at x3, then their
/// bicubic upscales, made by srgraph's resizer in `sr/SET/`; half of them named as
/// `srgraph upscale` names its outputs (NAME_x3.png).
fn bicubic_upscales(dir: &Path) {
    let o = srgraph(
        &[
            "eval",
            "--data",
            &data("Set5"),
            &data("Set14"),
            "--scale",
            "3",
            "--save-inputs",
            "lr",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", text(&o));
    for set in ["Set5", "Set14"] {
        std::fs::create_dir_all(dir.join("sr").join(set)).unwrap();
        let lrs = srgraph::data::dataset::images_in(&dir.join("lr").join(set)).unwrap();
        assert!(!lrs.is_empty(), "no LR pictures written for {set}");
        for (i, lr) in lrs.iter().enumerate() {
            let stem = lr.file_stem().unwrap().to_string_lossy();
            let name = if i % 2 == 0 {
                format!("{stem}.png")
            } else {
                format!("{stem}_x3.png")
            };
            let sr = bicubic::upscale(&srgraph::data::load_hwc(lr).unwrap(), 3).unwrap();
            std::fs::write(dir.join("sr").join(set).join(name), rgb_png(&sr).unwrap()).unwrap();
        }
    }
}

/// Bicubic upscales scored as pictures made elsewhere score what eval's bicubic column
/// says, picture for picture: the saved inputs are eval's, and the scorer is one.
#[test]
fn bicubic_upscales_score_as_evals_bicubic() {
    let dir = tempfile::tempdir().unwrap();
    bicubic_upscales(dir.path());
    let (set5, set14) = (data("Set5"), data("Set14"));
    let eval = ["eval", "--data", &set5, &set14, "--scale", "3", "--upscaled", "sr"];
    let o = srgraph(&[&eval[..], &["--json"]].concat(), dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["upscaled"], "sr");
    let sets = report["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 2);
    for (set, count) in sets.iter().zip([5, 14]) {
        let images = set["images"].as_array().unwrap();
        assert_eq!(images.len(), count, "{}", set["set"]);
        for image in images {
            assert_eq!(image["model"], image["bicubic"], "{} of {}", image["image"], set["set"]);
        }
        assert_eq!(set["model"], set["bicubic"]);
    }
    // The table reads the same, a gain of zero on each set.
    let o = srgraph(&eval, dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("upscaled elsewhere"), "{table}");
    assert_eq!(table.matches("+0.000").count(), 2, "{table}");
}

/// A missing upscale, one of the wrong size, and one named twice are errors that name the
/// file and what was expected; --upscaled without --scale is a usage error.
#[test]
fn missing_or_mis_sized_upscales_are_named() {
    let dir = tempfile::tempdir().unwrap();
    bicubic_upscales(dir.path());
    let set5 = dir.path().join("sr/Set5");
    let score = |dir: &Path| {
        srgraph(
            &["eval", "--data", &data("Set5"), "--scale", "3", "--upscaled", "sr/Set5"],
            dir,
        )
    };

    std::fs::rename(set5.join("bird_x3.png"), dir.path().join("bird_x3.png")).unwrap();
    fails_with(&score(dir.path()), "no upscale of bird in sr/Set5: expected bird.png");

    let bird = srgraph::data::load_hwc(&dir.path().join("bird_x3.png")).unwrap();
    let cropped = bird.slice(ndarray::s![..bird.dim().0 - 1, .., ..]).to_owned();
    std::fs::write(set5.join("bird.png"), rgb_png(&cropped).unwrap()).unwrap();
    let (h, w, _) = bird.dim();
    fails_with(
        &score(dir.path()),
        &format!("bird.png is {w}x{}, but the x3 upscale of", h - 1),
    );
    fails_with(&score(dir.path()), &format!("must be {w}x{h}"));

    std::fs::rename(dir.path().join("bird_x3.png"), set5.join("bird_x3.png")).unwrap();
    fails_with(&score(dir.path()), "2 pictures in sr/Set5 could be the upscale of bird");

    let o = srgraph(&["eval", "--data", &data("Set5"), "--upscaled", "sr/Set5"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// --save-inputs leaves an existing file alone unless --force, and never writes over a
/// set's own picture.
#[test]
fn saved_inputs_replace_files_only_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let save = |to: &str, force: bool| {
        let mut args = vec!["eval", "--data", "Set5", "--scale", "4", "--save-inputs", to];
        if force {
            args.push("--force");
        }
        srgraph(&args, dir.path())
    };
    let set5 = dir.path().join("Set5");
    std::fs::create_dir_all(set5.join("HR")).unwrap();
    let hr = Path::new(&data("Set5")).join("HR");
    for name in ["baby.png", "bird.png"] {
        std::fs::copy(hr.join(name), set5.join("HR").join(name)).unwrap();
    }
    let o = save("lr", false);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("wrote the 2 x4 LR pictures"), "{}", text(&o));
    fails_with(&save("lr", false), "already exists");
    assert!(save("lr", true).status.success());
    fails_with(&save("Set5/HR", true), "is an input");
}
