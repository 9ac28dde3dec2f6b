//! The page (web/) in a real browser: `srgraph serve` on 127.0.0.1, Debian's headless
//! Chromium driven by playwright-core (web/test/drive.mjs), onnxruntime-web's WASM backend,
//! offline (drive.mjs aborts and fails on any request that leaves 127.0.0.1).
//!
//! Needs what tools/setup/setup-web.sh installs: Chromium (/usr/bin/chromium or $SRGRAPH_CHROMIUM)
//! and the page's npm packages (web/node_modules).

use crate::common::{self, data, data_dir, srgraph, text};
use ndarray::ArrayD;
use prost::Message;
use srgraph::compiler::{compile, TrainConfig};
use srgraph::data::dataset::{ImageSet, PatchSampler};
use srgraph::models::{Arch, ModelConfig};
use srgraph::onnx::pb;
use srgraph::runtime::ort::{Device, OrtTrainer};
use srgraph::runtime::Trainer;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

mod model_kinds;

/// `srgraph serve --port 0`, stopped when dropped.
struct Server {
    child: Child,
    base: String,
    /// Its stdout, kept open while it runs.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    fn start(model: Option<&Path>, files: &Path) -> Server {
        let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        assert!(
            web.join("node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm")
                .is_file(),
            "web/node_modules is missing: run tools/setup/setup-web.sh (or tools/test.sh, which does)"
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_srgraph"));
        cmd.args(["serve", "--port", "0", "--files"]).arg(files);
        if let Some(m) = model {
            cmd.arg(m);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("srgraph serve printed {first:?}, not its address"));
        let base = url.split('/').take(3).collect::<Vec<_>>().join("/");
        Server {
            child,
            base,
            _stdout: stdout,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens `url` in headless Chromium and returns the page's automation result.
fn drive(url: &str, out: &Path, screenshot: Option<&Path>) -> serde_json::Value {
    let chromium = std::env::var("SRGRAPH_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run tools/setup/setup-web.sh (Debian's chromium), or set SRGRAPH_CHROMIUM"
    );
    let mut cmd = Command::new("node");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("web/test/drive.mjs"))
        .arg(url)
        .arg("--out")
        .arg(out);
    if let Some(s) = screenshot {
        cmd.arg("--screenshot").arg(s);
    }
    let o = cmd.output().expect("node runs (Node.js 20)");
    assert!(o.status.success(), "the page failed on {url}: {}", text(&o));
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
    assert_eq!(result["outside_requests"], 0, "{result}");
    result
}

fn data_url_bytes(v: &serde_json::Value) -> Vec<u8> {
    let s = v.as_str().expect("a data: URL");
    let (_, b64) = s.split_once(";base64,").expect("a base64 data: URL");
    decode_base64(b64)
}

fn decode_base64(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(value).collect();
    bytes
        .chunks(4)
        .flat_map(|c| {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &v)| n | (v as u32) << (18 - 6 * i));
            let all = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            all.into_iter().take(c.len() - 1)
        })
        .collect()
}

fn rgb(bytes: &[u8]) -> image::RgbImage {
    image::load_from_memory(bytes).unwrap().to_rgb8()
}

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_page_upscales_as_srgraph_does_tiled_for_x2_and_x4_and_its_bicubic_is_matlab_exact() {
    let d = tmp("upscale");
    let server = Server::start(None, &data_dir());
    // The page's MATLAB bicubic against the benchmark's own low-resolution files.
    for s in [2, 3, 4] {
        let url = format!(
            "{}/?check=bicubic&scale={s}&image=/files/Set5/HR/butterfly.png&lr=/files/Set5/LR_bicubic/X{s}/butterflyx{s}.png",
            server.base
        );
        let r = drive(&url, &d.join(format!("bicubic{s}.json")), None);
        assert_eq!(r["mismatches"], 0, "x{s}: {r}");
    }
    // WDSR-B's own block, and the depthwise and flattened (3x1, 1x3) convs of the other kinds.
    for (s, picture, conv) in [
        (2, "baboon", "low-rank"),
        (4, "comic", "inverted-residual"),
        (2, "comic", "flattened"),
    ] {
        let model = d.join(format!("wdsr-b-x{s}-{conv}.onnx"));
        let o = srgraph(
            &[
                "build",
                "wdsr-b",
                "--blocks",
                "3",
                "--scale",
                &s.to_string(),
                "--conv",
                conv,
                "-o",
                model.to_str().unwrap(),
            ],
            &d,
        );
        assert!(o.status.success(), "{}", text(&o));
        let lr = format!("Set14/LR_bicubic_SelfExSR/X{s}/{picture}x{s}.png");
        let native = d.join(format!("native-x{s}-{conv}.png"));
        let o = srgraph(
            &[
                "upscale",
                model.to_str().unwrap(),
                &data(&lr),
                "-o",
                native.to_str().unwrap(),
            ],
            &d,
        );
        assert!(o.status.success(), "{}", text(&o));
        // Tiles of 48 LR pixels in the page (several per picture), the whole picture natively.
        let own = Server::start(Some(&model), &data_dir());
        let url = format!("{}/?model=/model.onnx&image=/files/{lr}&tile=48&backend=wasm", own.base);
        let shot = (s == 2 && conv == "low-rank").then(|| d.join("page.png"));
        let r = drive(&url, &d.join(format!("upscale{s}-{conv}.json")), shot.as_deref());
        assert!(r["tiles"].as_u64().unwrap() > 1, "the page should tile: {r}");
        let page = rgb(&data_url_bytes(&r["png"]));
        let want = image::open(&native).unwrap().to_rgb8();
        assert_eq!(page.dimensions(), want.dimensions());
        assert_eq!(
            (
                r["width"].as_u64().unwrap() as u32,
                r["height"].as_u64().unwrap() as u32
            ),
            want.dimensions()
        );
        let diffs: Vec<u32> = page
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(&a, &b)| a.abs_diff(b) as u32)
            .collect();
        let mean = diffs.iter().sum::<u32>() as f64 / diffs.len() as f64;
        let max = diffs.iter().max().unwrap();
        eprintln!(
            "x{s} {picture} {conv}: page (tiled, WASM) vs srgraph upscale: mean {mean:.4}, max {max} grey levels; {r:.0}",
            r = r["ms"]
        );
        assert!(
            mean <= 1.0,
            "x{s} {conv}: the page differs from srgraph upscale by {mean:.3} grey levels on average"
        );
    }
}

/// The train step srgraph serves for `arch=wdsr-b&blocks=2&filters=16&scale=2&batch=2&patch=24`.
fn small_wdsr_b() -> (ModelConfig, TrainConfig) {
    let c = ModelConfig {
        blocks: 2,
        filters: 16,
        ..ModelConfig::new(Arch::WdsrB)
    };
    let t = TrainConfig {
        batch: 2,
        patch: 24,
        ..TrainConfig::default()
    };
    (c, t)
}

fn initializers(model: &[u8]) -> Vec<(String, Vec<f32>)> {
    let m = pb::ModelProto::decode(model).unwrap();
    m.graph
        .unwrap()
        .initializer
        .into_iter()
        .map(|t| {
            let v = t
                .raw_data
                .chunks(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (t.name, v)
        })
        .collect()
}

#[test]
fn training_in_the_page_matches_onnx_runtime_and_its_model_passes_srgraph_eval() {
    let d = tmp("train");
    let (c, t) = small_wdsr_b();
    const STEPS: u64 = 4;
    const LR: f32 = 0.001;
    // Fixed batches from srgraph's own sampler, written as the page reads them: for each step,
    // lr then hr, float32 little-endian, NCHW.
    let (pairs, _) = ImageSet::open(&data_dir().join("Set5/HR"), 2).unwrap().load().unwrap();
    let sampler = PatchSampler::new(pairs, t.patch, 2, 3).unwrap();
    let mut bytes = Vec::new();
    let mut batches = Vec::new();
    for k in 0..STEPS {
        let (lr, hr) = sampler.batch(k, t.batch).unwrap();
        for v in lr.iter().chain(hr.iter()) {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        batches.push((lr, hr));
    }
    std::fs::write(d.join("batches.bin"), bytes).unwrap();
    std::fs::copy(data_dir().join("Set5/HR/butterfly.png"), d.join("butterfly.png")).unwrap();

    let server = Server::start(None, &d);
    let url = format!(
        "{}/?train=1&arch=wdsr-b&blocks=2&filters=16&scale=2&batch=2&patch=24&steps={STEPS}&lr={LR}\
         &batches=/files/batches.bin&images=/files/butterfly.png",
        server.base
    );
    let r = drive(&url, &d.join("train.json"), None);
    let model = data_url_bytes(&r["model"]);

    // The same steps natively: srgraph's ONNX Runtime trainer on the same graph and batches.
    let graphs = compile(&c, &t).unwrap();
    let mut trainer = OrtTrainer::new(&graphs.train_step, Device::Cpu, 2).unwrap();
    let mut losses = Vec::new();
    for (k, (lr, hr)) in batches.iter().enumerate() {
        losses.push(
            trainer
                .step(lr.clone().into_dyn(), hr.clone().into_dyn(), LR, k as u64 + 1)
                .unwrap(),
        );
    }
    let page_losses: Vec<f32> = r["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    eprintln!("losses: page {page_losses:?}, native {losses:?}");
    for (a, b) in page_losses.iter().zip(&losses) {
        assert!((a - b).abs() <= 1e-3 * b.abs().max(1.0), "loss: page {a}, native {b}");
    }
    let native: std::collections::HashMap<String, ArrayD<f32>> = trainer
        .values()
        .unwrap()
        .into_iter()
        .map(|(n, v)| (n, v.as_f32().unwrap().clone()))
        .collect();
    let mut compared = 0;
    let mut worst = 0f32;
    // The training form's initialisers: the parameters, and constants (the RGB mean) left as they were.
    for (name, page) in initializers(&model) {
        let Some(want) = native.get(&name) else { continue };
        let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        let err = page
            .iter()
            .zip(want.iter())
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        worst = worst.max(err);
        assert!(
            err < 1e-3,
            "{name}: the page's parameters differ from ONNX Runtime's by {err} (relative)"
        );
        compared += 1;
    }
    eprintln!("{compared} parameters compared, worst relative difference {worst:e}");
    assert!(compared > 10, "the page's model should hold the trained parameters");

    // The downloaded model is an inference model srgraph scores.
    let file = d.join("trained.onnx");
    std::fs::write(&file, &model).unwrap();
    let o = srgraph(&["eval", file.to_str().unwrap(), "--data", &data("Set5/HR")], &d);
    assert!(o.status.success(), "srgraph eval of the page's model: {}", text(&o));
    let o = srgraph(&["inspect", file.to_str().unwrap()], &d);
    assert!(text(&o).contains("onnxruntime-web"), "{}", text(&o));

    // A short run on the page's own patches: the loss falls.
    let url = format!(
        "{}/?train=1&arch=wdsr-b&blocks=2&filters=16&scale=2&batch=4&patch=32&steps=60&lr=0.003\
         &images=/files/butterfly.png&validate_every=30",
        server.base
    );
    let r = drive(&url, &d.join("falls.json"), None);
    let l: Vec<f64> = r["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let (first, last) = (
        l[..10].iter().sum::<f64>() / 10.0,
        l[l.len() - 10..].iter().sum::<f64>() / 10.0,
    );
    eprintln!(
        "the page's loss: first ten steps {first:.2}, last ten {last:.2}; {}",
        r["validations"]
    );
    assert!(last < 0.7 * first, "the loss should fall: {first:.2} -> {last:.2}");
}

/// A GET over a plain TCP connection: (status, head, body).
fn get(base: &str, path: &str) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP head");
    let head = String::from_utf8_lossy(&all[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, all[split + 4..].to_vec())
}

#[test]
fn serve_is_isolated_keeps_to_its_folders_builds_graphs_on_request_and_refuses_bad_input() {
    let d = tmp("serve");
    std::fs::write(d.join("notes.txt"), "not a model").unwrap();
    let server = Server::start(None, &d);
    let (status, head, body) = get(&server.base, "/");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("srgraph"));
    for h in [
        "Cross-Origin-Opener-Policy: same-origin",
        "Cross-Origin-Embedder-Policy: require-corp",
    ] {
        assert!(head.contains(h), "{h} missing from:\n{head}");
    }
    let (status, head, _) = get(&server.base, "/ort/ort-wasm-simd-threaded.wasm");
    assert_eq!(status, 200);
    assert!(head.contains("application/wasm"), "{head}");
    assert_eq!(get(&server.base, "/files/notes.txt").0, 200);
    for outside in [
        "/files/../Cargo.toml",
        "/files/%2e%2e/Cargo.toml",
        "/ort/../../package.json",
        "/../Cargo.toml",
    ] {
        let (status, _, body) = get(&server.base, outside);
        assert_eq!(status, 404, "{outside}: {}", String::from_utf8_lossy(&body));
    }
    let (status, _, body) = get(&server.base, "/model.onnx");
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("no MODEL"));
    let (status, _, body) = get(&server.base, "/graphs/train_step.onnx?arch=nope");
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("'nope'"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, body) = get(
        &server.base,
        "/graphs/train_step.onnx?arch=wdsr-b&blocks=1&batch=2&patch=25",
    );
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("patch 25"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, body) = get(
        &server.base,
        "/graphs/model.onnx?arch=wdsr-b&blocks=1&filters=8&scale=3",
    );
    assert_eq!(status, 200);
    let m = pb::ModelProto::decode(body.as_slice()).unwrap();
    let meta: std::collections::HashMap<_, _> = m
        .metadata_props
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(
        (meta["graph"], meta["scale"], meta["blocks"]),
        ("training-form", "3", "1")
    );
    drop(server);

    // Bad input: a clear error naming what is wrong, exit code 1.
    let o = srgraph(&["serve", "--port", "0", d.join("notes.txt").to_str().unwrap()], &d);
    common::fails_with(&o, "notes.txt");
    let o = srgraph(&["serve", "--port", "0", "--ort-web", d.to_str().unwrap()], &d);
    common::fails_with(&o, "npm ci");
    let o = srgraph(
        &["serve", "--port", "0", "--files", d.join("missing").to_str().unwrap()],
        &d,
    );
    common::fails_with(&o, "missing");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = srgraph(&["serve", "--port", &port], &d);
    common::fails_with(&o, "cannot listen");

    // SIGTERM stops it, with 143 as for any command stopped by a signal.
    let server = Server::start(None, &d);
    let pid = server.child.id().to_string();
    let mut server = server;
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed().as_secs() < 10,
            "srgraph serve did not stop on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(143));
}
