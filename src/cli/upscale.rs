//! `srgraph upscale`: super-resolve pictures with a model, in tiles, with a progress bar.

use super::{RuntimeArg, RuntimeArgs};
use crate::data::bicubic;
use crate::data::dataset::images_in;
use crate::data::picture::{rgb_png, AnyPicture, OutputFormat, Picture};
use crate::data::sample::Sample;
use crate::infer::{builtin, compare, SrModel, DEFAULT_TILE};
use crate::util::{check_output, write_output};
use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::s;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    srgraph upscale photo.jpg                      (the built-in WDSR-B x2; writes photo_x2.png)\n  \
    srgraph upscale photo.jpg --scale 4            (the built-in WDSR-B x4)\n  \
    srgraph upscale scan.tif --channels 1          (the built-in grey WDSR-B x2; 16 bits stay 16)\n  \
    srgraph upscale runs/wdsr-b-x2/model.onnx photo.jpg photo_x2.png\n  \
    srgraph upscale model.onnx ../shared/data/Set5/HR -o sr/ --compare\n  \
    srgraph upscale model.onnx small.png --compare --hr original.png\n\n\
    Greyscale stays greyscale, 16 bits stay 16 bits (PNG, TIFF) and alpha is kept (upscaled by bicubic).\n\
    Large pictures run in tiles of --tile LR pixels, each with a margin of the network's receptive field, so the\n\
    result equals the whole-image one.")]
pub struct UpscaleArgs {
    /// [MODEL.onnx] then pictures (PNG, TIFF, JPEG, BMP; 8 or 16 bits) or folders of them. Without a model (no
    /// first path ending in .onnx), the built-in WDSR-B of --scale runs: x2 (the default), x3 or x4 (`srgraph
    /// inspect` of assets/wdsr-b-x<s>.onnx shows its training and scores). With one picture, a second path that
    /// does not exist yet names the output.
    #[arg(required = true, num_args = 1.., value_name = "[MODEL.onnx] PICTURES")]
    pub paths: Vec<PathBuf>,
    /// Where to write: a picture file (one input; .png, .tif, .jpg or .bmp, by its extension) or a folder
    /// (default: the current folder), where files are named <name>_x<s>.png. PNG and TIFF keep a 16-bit
    /// picture's 16 bits; JPEG and BMP hold 8.
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// Replace output files that already exist (inputs are never replaced).
    #[arg(long)]
    pub force: bool,
    /// The scale expected; an error if the model's is different.
    #[arg(long)]
    pub scale: Option<usize>,
    /// Tile side in LR pixels (0: each picture whole).
    #[arg(long, default_value_t = DEFAULT_TILE)]
    pub tile: usize,
    /// Also write <name>_x<s>_compare.png: bicubic | model (| HR with --hr) side by side.
    #[arg(long)]
    pub compare: bool,
    /// The original high-resolution picture, or a folder of pictures named as the inputs, for --compare.
    #[arg(long, requires = "compare")]
    pub hr: Option<PathBuf>,
    /// With a single-channel (grey) model: upscale an RGB picture's luma (BT.601 Y) and write it grey.
    /// Without it, an RGB picture given to such a model is an error.
    #[arg(long)]
    pub grey: bool,
    /// The picture channels of the model: 1 picks the built-in grey model (x2; RGB pictures go as their luma,
    /// written grey), 3 the RGB ones (the default). With a MODEL, an error if it has the other.
    #[arg(long, value_name = "1|3")]
    pub channels: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub engine: RuntimeArgs,
}

pub fn run(mut a: UpscaleArgs) -> Result<()> {
    let model_path = match a.paths.first() {
        Some(p) if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) => Some(a.paths.remove(0)),
        _ => None,
    };
    if a.paths.is_empty() {
        clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            "no pictures to upscale: give them after the model (srgraph upscale MODEL.onnx PICTURE...)\n",
        )
        .exit();
    }
    // `upscale MODEL IN OUT`: only when OUT does not exist, so no input is ever overwritten.
    if a.paths.len() == 2 && a.out.is_none() && a.paths[0].is_file() && !a.paths[1].exists() {
        a.out = a.paths.pop();
    }
    let mut inputs = vec![];
    for p in &a.paths {
        if p.is_dir() {
            let found = images_in(p)?;
            ensure!(
                !found.is_empty(),
                "no pictures (png, tif, tiff, jpg, jpeg, bmp) in {}",
                p.display()
            );
            inputs.extend(found);
        } else if p.is_file() {
            inputs.push(p.clone());
        } else if p.exists() {
            bail!("{} is neither a picture file nor a folder", p.display());
        } else {
            bail!("{} does not exist", p.display());
        }
    }
    let engine = a.engine.runtime(RuntimeArg::Tract)?;
    let mut model = match &model_path {
        Some(path) => SrModel::load(path, engine, a.engine.ort.threads)?,
        None => builtin::load(a.scale, a.channels, engine, a.engine.ort.threads)?,
    };
    if let Some(ch) = a.channels.filter(|&ch| ch != model.channels) {
        bail!(
            "{} has {} picture channel(s), not --channels {ch}: leave --channels out, or pass a {ch}-channel model",
            model.name,
            model.channels
        );
    }
    // Asking for one channel is asking for an RGB picture's luma.
    a.grey |= a.channels == Some(1);
    let s = model.ensure_scale(a.scale)?;
    let outputs = output_paths(&inputs, a.out.as_deref(), s)?;
    let input_refs: Vec<&Path> = inputs
        .iter()
        .map(PathBuf::as_path)
        .chain(model_path.as_deref())
        .collect();
    for o in &outputs {
        check_output(o, a.force, &input_refs)?;
        if a.compare {
            check_output(&compare_path(o), a.force, &input_refs)?;
        }
    }
    let tile = (a.tile > 0).then_some(a.tile);

    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} tiles {msg} ({elapsed}, {eta} left)")?
            .progress_chars("=> "),
    );
    let mut failed = vec![];
    for (input, output) in inputs.iter().zip(&outputs) {
        let started = Instant::now();
        let result = (|| -> Result<String> {
            let pic = AnyPicture::open(input)?;
            let bits = pic.bits();
            let job = Job {
                model: &mut model,
                tile,
                bar: &bar,
                s,
            };
            let (w, h, n) = match &pic {
                AnyPicture::Eight(p) => job.picture(p, output, &a, input, &inputs)?,
                AnyPicture::Sixteen(p) => job.picture(p, output, &a, input, &inputs)?,
            };
            let note = match (bits, OutputFormat::of(output)?) {
                (16, OutputFormat::Png | OutputFormat::Tiff) => ", 16-bit",
                (16, _) => ", 16-bit input written at 8 bits",
                _ => "",
            };
            Ok(format!(
                "{} -> {} ({w}x{h} -> {}x{}, {n} tile{}, {:.1} s{note})",
                input.display(),
                output.display(),
                w * s,
                h * s,
                if n == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64()
            ))
        })();
        match result {
            Ok(line) => bar.suspend(|| println!("{line}")),
            Err(e) => {
                bar.suspend(|| eprintln!("error: {e:#}"));
                failed.push(input.display().to_string());
            }
        }
    }
    bar.finish_and_clear();
    ensure!(
        failed.is_empty(),
        "{} of {} pictures failed: {}",
        failed.len(),
        inputs.len(),
        failed.join(", ")
    );
    Ok(())
}

/// One picture's run: the model, its tiles and the progress bar they advance.
struct Job<'a> {
    model: &'a mut SrModel,
    tile: Option<usize>,
    bar: &'a ProgressBar,
    s: usize,
}

impl Job<'_> {
    /// Upscales `pic` into `output` at its own depth (and its comparison, with --compare,
    /// at 8 bits); returns its width, height and number of tiles.
    fn picture<P: Sample>(
        self,
        pic: &Picture<P>,
        output: &Path,
        a: &UpscaleArgs,
        input: &Path,
        inputs: &[PathBuf],
    ) -> Result<(usize, usize, usize)> {
        self.check_channels(pic, a.grey, input)?;
        let (w, h) = pic.size();
        let n = self.model.tiles(h, w, self.tile).len();
        self.bar.inc_length(n as u64);
        self.bar.set_message(input.display().to_string());
        let sr = self.model.upscale(&pic.rgb, self.tile, &|| self.bar.inc(1))?;
        let mut big = pic.upscaled(&sr, self.s)?;
        // A single-channel model's output is grey, whatever the picture was.
        big.grey |= self.model.channels == 1;
        write_output(output, &big.encode_for(output)?, a.force)?;
        if a.compare {
            write_compare(&pic.eight(), &big.eight(), a, input, inputs, output, self.s)?;
        }
        Ok((w, h, n))
    }
}

impl Job<'_> {
    /// Never silently: an RGB picture goes to a single-channel model only with --grey (as its
    /// luma), and a grey one through an RGB model is said to go as three equal channels.
    fn check_channels<P: Sample>(&self, pic: &Picture<P>, grey: bool, input: &Path) -> Result<()> {
        let note = match (self.model.channels, pic.grey) {
            (1, false) if !grey => bail!(
                "{} is an RGB picture and {} is a single-channel (grey) model: add --grey to upscale the picture's \
                 luma (BT.601 Y) into a grey picture, or use an RGB model",
                input.display(),
                self.model.name
            ),
            (1, false) => "an RGB picture: its luma (BT.601 Y) is upscaled, and written grey (--grey)",
            (3, true) => {
                "a grey picture: the RGB model sees it as three equal channels and it is written as their mean"
            }
            _ => return Ok(()),
        };
        self.bar.suspend(|| eprintln!("note: {} is {note}", input.display()));
        Ok(())
    }
}

/// `<name>_x<s>.png` in the output folder, or the output file itself for one picture:
/// a path ending in a picture extension (`.png`, `.jpg`, ...) names a file, never a folder.
fn output_paths(inputs: &[PathBuf], out: Option<&Path>, s: usize) -> Result<Vec<PathBuf>> {
    if let Some(out) = out.filter(|o| OutputFormat::is_picture_path(o) && !o.is_dir()) {
        ensure!(
            inputs.len() == 1,
            "{} is one file, but there are {} pictures: give a folder with -o",
            out.display(),
            inputs.len()
        );
        OutputFormat::of(out)?;
        return Ok(vec![out.to_path_buf()]);
    }
    if let Some(out) = out.filter(|o| o.exists() && !o.is_dir()) {
        bail!(
            "{} is a file, not a folder: give a picture path (.png, .tif, .jpg, .bmp) or a folder",
            out.display()
        );
    }
    let dir = out.unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut outputs: Vec<PathBuf> = vec![];
    for input in inputs {
        let stem = input.file_stem().unwrap_or_default().to_string_lossy();
        let o = dir.join(format!("{stem}_x{s}.png"));
        ensure!(
            !outputs.contains(&o),
            "two pictures would both be written to {}: rename one",
            o.display()
        );
        outputs.push(o);
    }
    Ok(outputs)
}

/// Where `--compare` writes beside an output: `<stem>_compare.png`.
fn compare_path(output: &Path) -> PathBuf {
    let stem = output.file_stem().unwrap_or_default().to_string_lossy();
    output.with_file_name(format!("{stem}_compare.png"))
}

/// `--compare`'s picture: bicubic | model (| HR with --hr) side by side.
fn write_compare(
    pic: &Picture,
    big: &Picture,
    a: &UpscaleArgs,
    input: &Path,
    inputs: &[PathBuf],
    output: &Path,
    s: usize,
) -> Result<()> {
    let bicubic = bicubic::upscale(&pic.rgb, s)?;
    let mut panels = vec![("bicubic", &bicubic), ("model", &big.rgb)];
    let hr_img;
    if let Some(hr) = &a.hr {
        let file = hr_file(hr, input, inputs, s)?;
        let full = Picture::open(&file)?.rgb;
        let (h, w, _) = big.rgb.dim();
        ensure!(
            full.dim().0 >= h && full.dim().1 >= w,
            "{} is {}x{}, smaller than the {w}x{h} output",
            file.display(),
            full.dim().1,
            full.dim().0
        );
        // The LR was made from the HR cropped to a multiple of the scale (modcrop): crop alike.
        hr_img = full.slice(s![..h, ..w, ..]).to_owned();
        panels.push(("HR", &hr_img));
    }
    let image = compare::side_by_side(&panels)?;
    write_output(&compare_path(output), &rgb_png(&image)?, a.force)
}

/// The original of `input` that --hr names: the file itself, or in a folder the picture
/// of the same name or, by the benchmark convention, `baby.png` for LR `babyx2.png`.
fn hr_file(hr: &Path, input: &Path, inputs: &[PathBuf], s: usize) -> Result<PathBuf> {
    if !hr.is_dir() {
        ensure!(
            inputs.len() == 1,
            "--hr is one file but there are {} pictures: give a folder",
            inputs.len()
        );
        return Ok(hr.to_path_buf());
    }
    let same = hr.join(input.file_name().unwrap_or_default());
    let stem = input.file_stem().unwrap_or_default().to_string_lossy();
    Ok(match stem.strip_suffix(&format!("x{s}")) {
        Some(base) if !same.is_file() => hr.join(format!("{base}.png")),
        _ => same,
    })
}
