//! `srgraph serve`: the browser page (`web/`) and the models it runs, on 127.0.0.1.
//!
//! What is served, and from where:
//! * `/`, `/index.html`, `/style.css`, `/src/*.js`: the page, built into the binary
//!   (or read from `--web DIR`, for working on it);
//! * `/ort/*`: onnxruntime-web's own files (`ort.*.mjs`, `ort-wasm-*.{mjs,wasm}`), from
//!   the npm package (`npm ci --prefix web`, in `web/node_modules/onnxruntime-web/dist`);
//! * `/model.onnx`: the model given on the command line;
//! * `/files/*`: a folder of the user's (`--files DIR`), pictures or batches;
//! * `/graphs/train_step.onnx?arch=wdsr-b&blocks=2&...` and `/graphs/model.onnx?...`: a
//!   network's train-step graph and its training-form inference graph (the one the page
//!   writes trained weights into), compiled on request by the caller's `graphs` function.
//!
//! Every response carries COOP `same-origin` and COEP `require-corp`: onnxruntime-web's
//! WASM threads need `SharedArrayBuffer`, which browsers give only to such isolated pages.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The page's files, as built into the binary.
const PAGE: &[(&str, &[u8])] = &[
    ("index.html", include_bytes!("../../web/index.html")),
    ("style.css", include_bytes!("../../web/style.css")),
    ("src/app.js", include_bytes!("../../web/src/app.js")),
    ("src/onnx.js", include_bytes!("../../web/src/onnx.js")),
    ("src/pictures.js", include_bytes!("../../web/src/pictures.js")),
    ("src/runtime.js", include_bytes!("../../web/src/runtime.js")),
    ("src/upscale.js", include_bytes!("../../web/src/upscale.js")),
    (
        "src/upscale-worker.js",
        include_bytes!("../../web/src/upscale-worker.js"),
    ),
    ("src/train.js", include_bytes!("../../web/src/train.js")),
    ("src/train-worker.js", include_bytes!("../../web/src/train-worker.js")),
];

/// Builds a graph from the query of a `/graphs/` request: (file name, query pairs) to ONNX bytes.
pub type GraphBuilder = dyn Fn(&str, &[(String, String)]) -> Result<Vec<u8>> + Send + Sync;

pub struct Site {
    /// Serve the page from this folder instead of the built-in copy.
    pub web: Option<PathBuf>,
    /// onnxruntime-web's `dist` folder.
    pub ort_web: PathBuf,
    pub model: Option<PathBuf>,
    pub files: Option<PathBuf>,
    pub graphs: Box<GraphBuilder>,
}

/// Where onnxruntime-web's files are looked for when `--ort-web` is not given: `$SRGRAPH_ORT_WEB`,
/// then the npm package beside the sources this binary was built from.
pub fn default_ort_web() -> PathBuf {
    std::env::var_os("SRGRAPH_ORT_WEB")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("web/node_modules/onnxruntime-web/dist"))
}

impl Site {
    pub fn check(&self) -> Result<()> {
        let wasm = self.ort_web.join("ort-wasm-simd-threaded.wasm");
        if !wasm.is_file() {
            bail!(
                "onnxruntime-web's files are not in {}: install the page's npm packages with `npm ci --prefix {}` \
                 (or tools/setup/setup-web.sh), or give --ort-web DIR (node_modules/onnxruntime-web/dist of an \
                 onnxruntime-web 1.30 install)",
                self.ort_web.display(),
                Path::new(env!("CARGO_MANIFEST_DIR")).join("web").display()
            );
        }
        if let Some(web) = &self.web {
            for (name, _) in PAGE {
                let f = web.join(name);
                if !f.is_file() {
                    bail!("--web {}: the page's file {name} is missing there", web.display());
                }
            }
        }
        for (flag, f) in [("MODEL", &self.model), ("--files", &self.files)] {
            if let Some(f) = f {
                std::fs::metadata(f).with_context(|| format!("{flag} {}: cannot read it", f.display()))?;
            }
        }
        Ok(())
    }
}

/// Serves `site` on `addr` until `stop` is set. `on_ready` gets the address actually bound
/// (port 0 picks a free one).
pub fn serve(site: Site, addr: &str, stop: &AtomicBool, on_ready: impl FnOnce(std::net::SocketAddr)) -> Result<()> {
    site.check()?;
    let server = tiny_http::Server::http(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .context("the server is not on an IP address")?;
    on_ready(bound);
    let site = Arc::new(site);
    let cache: Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>> = Arc::default();
    // One thread per request: the page fetches the 14 MB WASM file and a model at once, and
    // a graph compiled on request must not hold up the others.
    while !stop.load(Ordering::Relaxed) {
        let Some(request) = server.recv_timeout(Duration::from_millis(200))? else {
            continue;
        };
        let (site, cache) = (site.clone(), cache.clone());
        std::thread::spawn(move || {
            let url = request.url().to_string();
            let response = match respond(&site, &cache, &url) {
                Ok(r) => r,
                Err(e) => Reply::error(404, &format!("{e:#}")),
            };
            let _ = request.respond(response.into_http());
        });
    }
    Ok(())
}

struct Reply {
    status: u16,
    mime: &'static str,
    body: Arc<Vec<u8>>,
}

impl Reply {
    fn ok(mime: &'static str, body: Arc<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            mime,
            body,
        }
    }

    fn error(status: u16, message: &str) -> Reply {
        Reply {
            status,
            mime: "text/plain; charset=utf-8",
            body: Arc::new(message.as_bytes().to_vec()),
        }
    }

    fn into_http(self) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
        let header =
            |k: &str, v: &str| tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("ASCII header");
        let body = Arc::try_unwrap(self.body).unwrap_or_else(|shared| (*shared).clone());
        tiny_http::Response::from_data(body)
            .with_status_code(self.status)
            .with_header(header("Content-Type", self.mime))
            .with_header(header("Cross-Origin-Opener-Policy", "same-origin"))
            .with_header(header("Cross-Origin-Embedder-Policy", "require-corp"))
            .with_header(header("Cross-Origin-Resource-Policy", "same-origin"))
            .with_header(header("Cache-Control", "no-cache"))
    }
}

fn respond(site: &Site, cache: &Mutex<HashMap<String, Arc<Vec<u8>>>>, url: &str) -> Result<Reply> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let path = percent_decode(path);
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    if let Some(rest) = path.strip_prefix("ort/") {
        return read_under(&site.ort_web, rest);
    }
    if let Some(rest) = path.strip_prefix("files/") {
        let dir = site.files.as_ref().context("no --files folder is served")?;
        return read_under(dir, rest);
    }
    if path == "model.onnx" {
        let model = site.model.as_ref().context("no MODEL was given to `srgraph serve`")?;
        return Ok(Reply::ok(mime(model), Arc::new(std::fs::read(model)?)));
    }
    if path == "served.json" {
        let served = serde_json::json!({
            "model": site.model.as_ref().map(|_| "/model.onnx"),
            "model_name": site.model.as_ref().and_then(|m| m.file_name()).map(|n| n.to_string_lossy()),
            "files": site.files.is_some(),
            "graphs": true,
            "srgraph_version": env!("CARGO_PKG_VERSION"),
        });
        return Ok(Reply::ok("application/json", Arc::new(served.to_string().into_bytes())));
    }
    if let Some(file) = path.strip_prefix("graphs/") {
        let key = format!("{file}?{query}");
        if let Some(bytes) = cache.lock().expect("graph cache").get(&key) {
            return Ok(Reply::ok("application/octet-stream", bytes.clone()));
        }
        let pairs: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        return match (site.graphs)(file, &pairs) {
            Ok(bytes) => {
                let bytes = Arc::new(bytes);
                cache.lock().expect("graph cache").insert(key, bytes.clone());
                Ok(Reply::ok("application/octet-stream", bytes))
            }
            Err(e) => Ok(Reply::error(400, &format!("{e:#}"))),
        };
    }
    match &site.web {
        Some(dir) => read_under(dir, path),
        None => PAGE
            .iter()
            .find(|(name, _)| *name == path)
            .map(|(name, bytes)| Reply::ok(mime(Path::new(name)), Arc::new(bytes.to_vec())))
            .with_context(|| format!("no such page file: /{path}")),
    }
}

/// A file under `dir`, refusing any path that climbs out of it.
fn read_under(dir: &Path, rel: &str) -> Result<Reply> {
    let rel = Path::new(rel);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!("refused: {} leaves the served folder", rel.display());
    }
    let path = dir.join(rel);
    let bytes = std::fs::read(&path).with_context(|| format!("no such file: {}", rel.display()))?;
    Ok(Reply::ok(mime(&path), Arc::new(bytes)))
}

fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "wasm" => "application/wasm",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "bmp" => "image/bmp",
        _ => "application/octet-stream",
    }
}

/// `%XX` escapes and `+` (a space, in queries) decoded; a malformed escape is kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_decode_and_bad_ones_stay() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[test]
    fn paths_out_of_the_folder_are_refused() {
        let dir = std::env::temp_dir();
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b"] {
            assert!(read_under(&dir, bad).is_err(), "{bad}");
        }
    }
}
