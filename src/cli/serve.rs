//! `srgraph serve`: the browser page, a model and the graphs the page trains with, on 127.0.0.1.

use super::build::{resolve, train_config, LossArg, ModelArgs};
use crate::compiler::compile;
use crate::models;
use crate::onnx::{Model, Provenance};
use crate::web::{default_ort_web, serve, Site};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  srgraph serve runs/wdsr-b-x2/model.onnx\n  \
    srgraph serve --port 8080 --files ~/pictures\n\n\
    Open the printed address in a browser: the page upscales with MODEL (or any .onnx dropped on it) and trains \
    small networks in the tab, in onnxruntime-web (WebGPU when the browser has it, WASM otherwise), offline. \
    The page's own files are built into srgraph; onnxruntime-web's come from its npm package, installed by \
    `npm ci --prefix web` in srgraph's sources (tools/setup/setup-web.sh), or from --ort-web.\n\n\
    Automation: /?model=URL&image=URL upscales and then sets document.title to \
    {\"ok\": true, \"width\": W, \"height\": H, \"png\": \"data:image/png;base64,...\"}.")]
pub struct ServeArgs {
    /// A model to serve as /model.onnx, opened by the page at start.
    pub model: Option<PathBuf>,
    /// Port on 127.0.0.1 (0: any free one; the address is printed).
    #[arg(long, short, default_value_t = 8080)]
    pub port: u16,
    /// A folder served under /files/ (pictures for ?image=/files/NAME).
    #[arg(long, value_name = "DIR")]
    pub files: Option<PathBuf>,
    /// onnxruntime-web's dist folder (default: $SRGRAPH_ORT_WEB, else web/node_modules/onnxruntime-web/dist in
    /// srgraph's sources).
    #[arg(long, value_name = "DIR")]
    pub ort_web: Option<PathBuf>,
    /// Serve the page from this folder (srgraph's web/) instead of the copy built into the binary.
    #[arg(long, value_name = "DIR")]
    pub web: Option<PathBuf>,
}

/// The query of a `/graphs/` request, read as `srgraph build --train` flags.
#[derive(Parser, Debug)]
#[command(name = "graphs", no_binary_name = true)]
struct GraphQuery {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    patch: Option<usize>,
    #[arg(long, value_enum)]
    loss: Option<LossArg>,
}

/// `train_step.onnx` or `model.onnx` (the training form, parameters as initialisers
/// named as the step's) of the network the query describes: `arch=wdsr-b&blocks=2&scale=2&batch=8&patch=48`.
fn graph(file: &str, query: &[(String, String)]) -> Result<Vec<u8>> {
    let mut args = Vec::new();
    for (k, v) in query {
        if k == "arch" {
            args.insert(0, v.clone());
        } else {
            args.push(format!("--{k}"));
            args.push(v.clone());
        }
    }
    let q = GraphQuery::try_parse_from(&args).map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    let (c, _) = resolve(&q.model)?;
    let t = train_config(q.batch, q.patch, q.loss);
    t.validate(c.scale)?;
    // Training graphs record their training configuration with the network's.
    let mut network = c.metadata();
    let (kind, graph) = match file {
        "train_step.onnx" => {
            anyhow::ensure!(
                c.channels == 3,
                "the page trains RGB networks: train a single-channel one (channels=1) with `srgraph train`"
            );
            network.extend(t.metadata());
            ("train-step", compile(&c, &t)?.train_step)
        }
        "model.onnx" => ("training-form", models::build(&c)?),
        _ => bail!("no graph named {file}: /graphs/ serves train_step.onnx and model.onnx"),
    };
    let provenance = Provenance {
        graph: kind,
        parameters: models::param_count(&c)?,
        training_steps: Some(0),
        command: false,
    };
    Model::with_provenance(graph, network, &provenance).to_bytes(kind)
}

pub fn run(a: ServeArgs) -> Result<()> {
    let site = Site {
        web: a.web,
        ort_web: a.ort_web.unwrap_or_else(default_ort_web),
        model: a.model,
        files: a.files,
        graphs: Box::new(graph),
    };
    if let Some(m) = &site.model {
        let bytes = std::fs::read(m).with_context(|| format!("cannot read the model {}", m.display()))?;
        crate::infer::Signature::read(&bytes, &m.display().to_string())?;
    }
    let stop = super::stop_on_signals("stopping the server")?;
    let model = site.model.is_some();
    serve(site, &format!("127.0.0.1:{}", a.port), &stop, |addr| {
        let page = if model {
            format!("http://{addr}/?model=/model.onnx")
        } else {
            format!("http://{addr}/")
        };
        // A reader that has gone away (a closed pipe) does not stop the server.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "serving     {page}\nstop with   Ctrl-C");
        let _ = out.flush();
    })
}
