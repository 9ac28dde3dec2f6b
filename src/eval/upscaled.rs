//! Pictures upscaled elsewhere (another program, another library) scored as a model's
//! are: each HR picture of a set against its upscale from a folder, bicubic beside it,
//! by the one `Scoring`. And the set's LR pictures written out as PNG, so that the other
//! program is given exactly the inputs eval gives a model.

use super::{load_pairs, open_set, set_scores, stem_of, EvalOptions, ImageScores, Scoring, SetScores};
use crate::data::dataset::{images_in, Pair};
use crate::data::picture::Picture;
use crate::data::sample::Sample;
use crate::util::{check_output, write_output};
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};

/// Scores the upscales in `upscaled` of the set in `dir`: one picture per HR picture,
/// named by its stem (`baby.png`, or `baby_x4.png` as `srgraph upscale` names it; any
/// extension srgraph reads), exactly the size of the HR picture cropped to a multiple
/// of the scale.
pub fn evaluate_upscaled(upscaled: &Path, dir: &Path, o: &EvalOptions) -> Result<SetScores> {
    ensure!(
        upscaled.is_dir(),
        "--upscaled {} is not a folder: give the folder of upscaled pictures",
        upscaled.display()
    );
    let set = open_set(dir, o)?;
    let bit_depth = set.bit_depth();
    let images = if bit_depth == 16 {
        score_upscales(upscaled, &load_pairs::<u16>(&set)?, o)?
    } else {
        score_upscales(upscaled, &load_pairs::<u8>(&set)?, o)?
    };
    Ok(set_scores(&set, bit_depth, o, images))
}

/// Each pair's HR against its upscale in `upscaled` (every file found before any is
/// scored, so that a missing one is told at once), and against bicubic.
fn score_upscales<P: Sample>(upscaled: &Path, pairs: &[Pair<P>], o: &EvalOptions) -> Result<Vec<ImageScores>> {
    let found = images_in(upscaled)?;
    let files = pairs
        .iter()
        .map(|p| upscale_of(&found, upscaled, &stem_of(&p.name), o.scale))
        .collect::<Result<Vec<_>>>()?;
    let scoring = Scoring {
        scale: o.scale,
        rgb_shave: o.rgb_shave,
        ssim: true,
        luma: false,
    };
    let bicubics = scoring.bicubic(pairs)?;
    pairs
        .iter()
        .zip(files)
        .zip(bicubics)
        .map(|((p, file), bicubic)| {
            let sr = crate::data::load_levels::<P>(&file)?;
            let (h, w, _) = p.hr.dim();
            let (sh, sw, _) = sr.dim();
            ensure!(
                (sh, sw) == (h, w),
                "{} is {sw}x{sh}, but the x{} upscale of {} must be {w}x{h} (its LR picture times the scale)",
                file.display(),
                o.scale,
                p.name
            );
            Ok(ImageScores {
                image: stem_of(&p.name),
                model: scoring
                    .score(&sr, &p.hr)
                    .with_context(|| format!("scoring {}", file.display()))?,
                bicubic,
            })
        })
        .collect()
}

/// The one picture among `found` named `stem` or `stem_x<scale>`.
fn upscale_of(found: &[PathBuf], upscaled: &Path, stem: &str, scale: usize) -> Result<PathBuf> {
    let upscale_name = format!("{stem}_x{scale}");
    let matching: Vec<&PathBuf> = found
        .iter()
        .filter(|f| {
            f.file_stem()
                .is_some_and(|s| s == stem || s.to_string_lossy() == upscale_name)
        })
        .collect();
    match matching[..] {
        [file] => Ok(file.clone()),
        [] => bail!(
            "no upscale of {stem} in {}: expected {stem}.png (or {upscale_name}.png as srgraph upscale names it; \
             .tif, .jpg or .bmp also read)",
            upscaled.display()
        ),
        _ => bail!(
            "{} pictures in {} could be the upscale of {stem} ({}): keep one",
            matching.len(),
            upscaled.display(),
            matching
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Writes the LR pictures eval gives a model for the set in `dir` (its LR files, or those
/// the degradation makes) into `out` as NAME.png, at the set's depth; returns how many.
/// A file there already is replaced only with `force`, and never one of the set's own.
pub fn save_inputs(dir: &Path, o: &EvalOptions, out: &Path, force: bool) -> Result<usize> {
    let set = open_set(dir, o)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot make folder {}", out.display()))?;
    let own: Vec<&Path> = set
        .files
        .iter()
        .flat_map(|f| std::iter::once(f.hr.as_path()).chain(f.lr.as_deref()))
        .collect();
    if set.bit_depth() == 16 {
        write_inputs(&load_pairs::<u16>(&set)?, out, force, &own)
    } else {
        write_inputs(&load_pairs::<u8>(&set)?, out, force, &own)
    }
}

fn write_inputs<P: Sample>(pairs: &[Pair<P>], out: &Path, force: bool, own: &[&Path]) -> Result<usize> {
    let paths: Vec<PathBuf> = pairs
        .iter()
        .map(|p| out.join(format!("{}.png", stem_of(&p.name))))
        .collect();
    for path in &paths {
        check_output(path, force, own)?;
    }
    for (p, path) in pairs.iter().zip(&paths) {
        let lr = Picture {
            rgb: p.lr.clone(),
            alpha: None,
            grey: false,
        };
        write_output(path, &lr.to_png()?, force)?;
    }
    Ok(pairs.len())
}
