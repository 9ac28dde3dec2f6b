//! `srgraph study` end to end on a tiny study: two architectures at 1 and 2 blocks,
//! a few dozen steps of small patches. The table, plots and models exist and agree:
//! each PSNR in the table is what `srgraph eval` says of the saved model, and a
//! resumed study redoes nothing that was finished.

use crate::common::{self, data, srgraph, text};
use std::process::{Command, Stdio};

const TINY: [&str; 14] = [
    "--archs",
    "edsr,wdsr-b",
    "--blocks",
    "1,2",
    "--steps",
    "24",
    "--batch",
    "4",
    "--patch",
    "32",
    "--validate-every",
    "12",
    "--quiet",
    "--jobs",
];

#[test]
fn a_tiny_block_study_writes_a_table_that_srgraph_eval_confirms() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (train, val) = (data("T91"), data("Set5"));
    let mut args = vec!["study", "blocks"];
    args.extend_from_slice(&TINY);
    args.extend_from_slice(&["2", "--data", &train, "--val", &val, "--out", "s"]);
    let o = srgraph(&args, d);
    let log = text(&o);
    println!("{log}");
    assert!(o.status.success(), "{log}");
    assert!(log.contains("[4/4]"), "one line per run with its place: {log}");
    for f in [
        "table.md",
        "table.csv",
        "curves.png",
        "psnr_vs_params.png",
        "psnr_vs_blocks.png",
    ] {
        assert!(d.join("s").join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(d.join("s/table.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for r in &rows {
        let run = r[col("run")];
        let model = d.join("s/runs").join(run).join("model.onnx");
        assert!(model.is_file(), "{run}: no model.onnx");
        let o = srgraph(&["eval", model.to_str().unwrap(), "--data", &val, "--json"], d);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let eval_psnr = v["sets"][0]["model"]["psnr_y"].as_f64().unwrap();
        let table_psnr: f64 = r[col("psnr_y")].parse().unwrap();
        assert!(
            (eval_psnr - table_psnr).abs() < 1e-4,
            "{run}: table {table_psnr}, srgraph eval {eval_psnr}"
        );
        let bic: f64 = r[col("bicubic_psnr_y")].parse().unwrap();
        assert!((bic - 33.673).abs() < 0.01, "{run}: bicubic {bic}");
        // EDSR is each depth's reference.
        if r[col("network")] == "edsr" {
            assert_eq!(r[col("param_increase_pct")], "0.0");
        }
    }
    let md = std::fs::read_to_string(d.join("s/table.md")).unwrap();
    assert!(md.contains("| 1 | EDSR |") && md.contains("| 2 | WDSR-B |"), "{md}");
    assert!(
        md.contains("33.434"),
        "the paper's WDSR-B 1-block number sits beside: {md}"
    );

    // Again with --resume: every run is found done; nothing is retrained.
    let stamp = std::fs::metadata(d.join("s/runs/wdsr-b-b2/model.onnx"))
        .unwrap()
        .modified()
        .unwrap();
    let mut again = args.clone();
    again.push("--resume");
    let o = srgraph(&again, d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).matches("done earlier").count(), 4, "{}", text(&o));
    let after = std::fs::metadata(d.join("s/runs/wdsr-b-b2/model.onnx"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(stamp, after);
    // Without --resume, an existing study is not overwritten.
    let o = srgraph(&args, d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--resume"), "{}", text(&o));
}

#[test]
fn a_study_stopped_by_ctrl_c_resumes_its_unfinished_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (train, val) = (data("T91"), data("Set5"));
    let args = [
        "study",
        "norm",
        "--arch",
        "wdsr-b",
        "--blocks",
        "1",
        "--norms",
        "weight,none",
        "--steps",
        "200",
        "--batch",
        "4",
        "--patch",
        "32",
        "--validate-every",
        "100",
        "--quiet",
        "--data",
        &train,
        "--val",
        &val,
        "--out",
        "n",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_srgraph"))
        .args(args)
        .current_dir(d)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Stop it inside its second run.
    let second = d.join("n/runs/wdsr-b-b1-none");
    common::wait_for_log_lines(&second.join("log.jsonl"), 5, 300);
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    // The finished run is in the table already; the stopped one kept its checkpoint.
    let partial = std::fs::read_to_string(d.join("n/table.csv")).unwrap();
    assert_eq!(partial.lines().count(), 2, "{partial}");
    assert!(second.join("checkpoint.onnx").is_file() && !second.join("result.json").exists());

    let mut resumed = args.to_vec();
    resumed.push("--resume");
    let o = srgraph(&resumed, d);
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("[1/2]") && log.contains("done earlier") && log.contains("(resuming)"),
        "{log}"
    );
    let table = std::fs::read_to_string(d.join("n/table.csv")).unwrap();
    assert!(table.starts_with(&partial) && table.lines().count() == 3, "{table}");
    assert!(!table.contains("NaN"), "{table}");
    // Every step of the stopped run was done once.
    let steps: Vec<u64> = std::fs::read_to_string(second.join("log.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["loss"].is_number())
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=200).collect::<Vec<_>>());
    assert!(d.join("n/curves.png").is_file());
}

/// `srgraph study conv` on a tiny study: the low-rank block and two others at one
/// block, widths fitted to the low-rank count; each row's parameters, multiply-adds
/// and ReLU statistics are those of its saved model (`srgraph inspect`).
#[test]
fn a_tiny_conv_study_fits_widths_and_reports_cost_and_activations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (train, val) = (data("T91"), data("Set5"));
    #[rustfmt::skip]
    let args = [
        "study", "conv", "--kinds", "low-rank,depthwise,group:2", "--blocks", "1", "--steps", "12", "--batch", "4",
        "--patch", "32", "--validate-every", "6", "--quiet", "--data", &train, "--val", &val, "--out", "c",
    ];
    let o = srgraph(&args, d);
    let log = text(&o);
    println!("{log}");
    assert!(o.status.success(), "{log}");
    for f in [
        "table.md",
        "table.csv",
        "curves.png",
        "psnr_vs_params.png",
        "psnr_vs_multiply_adds.png",
    ] {
        assert!(d.join("c").join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(d.join("c/table.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows.iter().map(|r| r[col("conv")]).collect::<Vec<_>>(),
        ["low-rank", "depthwise", "group:2"],
        "{csv}"
    );
    // WDSR-B x2, 1 block of 32 filters, wide 192, low-rank 25, per LR pixel: skip 5x5 3->12 (900), head 3x3
    // 3->32 (864), 1x1 32->192 (6144), 1x1 192->25 (4800), 3x3 25->32 (7200), tail 3x3 32->12 (3456).
    assert_eq!(rows[0][col("multiply_adds_per_pixel")], "23364", "{csv}");
    let budget: f64 = rows[0][col("parameters")].parse().unwrap();
    for r in &rows {
        let params: f64 = r[col("parameters")].parse().unwrap();
        assert!(
            (params - budget).abs() <= 0.1 * budget,
            "{}: {params} against {budget}",
            r[col("conv")]
        );
        let model = d.join("c/runs").join(r[col("run")]).join("model.onnx");
        let o = srgraph(&["inspect", model.to_str().unwrap()], d);
        assert!(o.status.success(), "{}", text(&o));
        let conv = r[col("conv")];
        let meta = text(&o);
        assert_eq!(
            meta.contains(&format!("meta        conv = {conv}")),
            conv != "low-rank",
            "the model's metadata names its block kind: {meta}"
        );
        let zeros: f64 = r[col("relu_zero_share")].parse().unwrap();
        assert!((0.0..=1.0).contains(&zeros), "{conv}: ReLU zero share {zeros}");
        let madds: f64 = r[col("multiply_adds_per_pixel")].parse().unwrap();
        assert!(
            madds > 0.5 * params && madds < 2.0 * params,
            "{conv}: {madds} multiply-adds for {params} parameters"
        );
    }
    let md = std::fs::read_to_string(d.join("c/table.md")).unwrap();
    assert!(md.contains("| low-rank |") && md.contains("| +0.000 |"), "{md}");
}

/// `--channels 1`: every run trains and scores a single-channel network (its model.onnx
/// takes [N, 1, H, W]), the table and result.json say so, and the study resumed with
/// other channels is refused, whether a run has finished or only checkpointed.
#[test]
fn a_single_channel_study_trains_one_channel_networks_and_keeps_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (train, val) = (data("T91"), data("Set5"));
    #[rustfmt::skip]
    let args = [
        "study", "blocks", "--archs", "wdsr-b", "--blocks", "1", "--channels", "1", "--steps", "4", "--batch", "2",
        "--patch", "32", "--validate-every", "4", "--quiet", "--data", &train, "--val", &val, "--out", "g",
    ];
    let o = srgraph(&args, d);
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("1 channel (luma)"), "{log}");
    let run = d.join("g/runs/wdsr-b-b1");
    let model = srgraph::infer::SrModel::load(&run.join("model.onnx"), srgraph::runtime::Runtime::Tract, 0).unwrap();
    assert_eq!((model.channels, model.meta("channels")), (1, Some("1")));
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["channels"], 1);
    let csv = std::fs::read_to_string(d.join("g/table.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "channels").unwrap();
    assert_eq!(csv.lines().nth(1).unwrap().split(',').nth(col), Some("1"), "{csv}");
    let md = std::fs::read_to_string(d.join("g/table.md")).unwrap();
    assert!(md.contains("Single-channel networks (`--channels 1`)"), "{md}");
    // The paper's (RGB) number is not set beside a grey network's.
    assert!(
        !md.contains("The last column is the paper's") && md.contains("| - |"),
        "{md}"
    );

    // Resumed as an RGB study: refused, naming the flag that continues it.
    let mut rgb = args.to_vec();
    rgb[7] = "3";
    rgb.push("--resume");
    let o = srgraph(&rgb, d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("result.json") && text(&o).contains("give --channels 1"),
        "{}",
        text(&o)
    );
    // So it is when the run has only its checkpoint.
    std::fs::remove_file(run.join("result.json")).unwrap();
    let o = srgraph(&rgb, d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("checkpoint.onnx") && text(&o).contains("give --channels 1"),
        "{}",
        text(&o)
    );
}
