// The page: upscale with a model, train a small one, and the automation contract
// (README, "In the browser"): with ?model=URL&image=URL the page upscales and then sets
// document.title to {"ok": true, "width": W, "height": H, "png": "data:image/png;base64,..."}
// or {"ok": false, "error": "..."}; ?train=1&... trains and reports the same way.
import { decodePicture, encodePng, toImageData, bicubicUp, bicubicDown, modcrop, crop } from './pictures.js';
import { describeModel, upscaleInWorker } from './upscale.js';
import { trainInWorker } from './train.js';

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const state = { model: null, modelName: '', picture: null, training: [], job: null, trained: null };

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}: ${(await r.text()).slice(0, 500)}`);
  return r.arrayBuffer();
}

const dataUrl = (blob) =>
  new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });

const report = (result) => {
  document.title = JSON.stringify(result);
};

async function showBackend() {
  let gpu = false;
  try {
    gpu = !!(navigator.gpu && (await navigator.gpu.requestAdapter()));
  } catch {
    gpu = false;
  }
  const threads = crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  $('backend').textContent = gpu
    ? 'WebGPU (upscaling); WASM for training'
    : `WASM, ${threads} thread${threads > 1 ? 's' : ''}${crossOriginIsolated ? '' : ' (the page is not cross-origin isolated: serve it with `srgraph serve`)'}`;
}

// ---- upscale ----

function setModel(buffer, name) {
  const info = describeModel(buffer);
  state.model = buffer;
  state.modelName = name;
  $('model-name').textContent = `${name} (${(buffer.byteLength / 1e6).toFixed(2)} MB)`;
  const m = info.metadata;
  const rows = [
    ['architecture', m.architecture ? `${m.architecture}${m.blocks ? `, ${m.blocks} blocks` : ''}${m.filters ? `, ${m.filters} filters` : ''}` : 'not recorded'],
    ['scale', info.scale ? `x${info.scale}` : 'not recorded (found from the output)'],
    ['channels', info.channels === 1 ? '1 (grey: fed each pixel\'s luma, shown grey)' : '3 (RGB)'],
    // srgraph records fp16 and int8 (and how int8 was calibrated); its other files are float32.
    ['precision', m.precision ? `${m.precision}${m.calibration ? ` (calibration: ${m.calibration})` : ''}` : m.architecture ? 'fp32' : 'not recorded'],
    ['training steps', m.training_steps ?? 'not recorded'],
    ['validation PSNR-Y', m.validation_psnr_y ? `${Number(m.validation_psnr_y).toFixed(2)} dB on ${m.validation || '?'} (bicubic ${m.bicubic_psnr_y ? Number(m.bicubic_psnr_y).toFixed(2) : '?'} dB)` : 'not recorded'],
    ['receptive radius', `${info.radius} px (the tiles' margin)`],
    ['pixel values', info.range ? `0-${info.range}` : 'not recorded: choose below (0-255 assumed)'],
  ];
  if (info.range) $('range').value = String(info.range);
  $('model-info').replaceChildren(
    ...rows.map(([k, v]) => {
      const tr = document.createElement('tr');
      for (const t of [k, v]) tr.appendChild(Object.assign(document.createElement('td'), { textContent: t }));
      return tr;
    }),
  );
  $('upscale-button').disabled = !state.picture;
  return info;
}

async function setPicture(blob, name) {
  state.picture = await decodePicture(blob);
  $('picture-name').textContent = `${name} (${state.picture.width}x${state.picture.height})`;
  $('upscale-button').disabled = !state.model;
}

function draw(canvas, picture) {
  canvas.width = picture.width;
  canvas.height = picture.height;
  canvas.getContext('2d').putImageData(toImageData(picture), 0, 0);
}

async function upscale({ tile = Number($('tile').value) || 0, range = Number($('range').value), backend = 'auto', threads, repeat = 1 } = {}) {
  $('upscale-status').textContent = 'running…';
  $('upscale-progress').value = 0;
  const result = await upscaleInWorker(state.model, state.picture, {
    tile,
    range,
    backend,
    threads,
    repeat,
    onProgress: (done, total) => {
      $('upscale-progress').value = done / total;
    },
  });
  const s = result.scale;
  $('upscale-status').textContent = `x${s} in ${(result.ms / 1000).toFixed(2)} s, ${result.tiles} tile${result.tiles > 1 ? 's' : ''}, ${result.backend}${result.backend === 'wasm' ? ` (${result.threads} threads)` : ''}`;
  draw($('sr-canvas'), result.picture);
  draw($('bicubic-canvas'), bicubicUp(state.picture, s));
  $('compare').hidden = false;
  clip();
  const png = await encodePng(result.picture);
  $('download-png').href = URL.createObjectURL(png);
  $('download-png').download = `${(state.modelName || 'model').replace(/\.onnx$/, '')}-x${s}.png`;
  return { result, png };
}

function clip() {
  const v = Number($('slider').value);
  $('sr-canvas').style.clipPath = `inset(0 0 0 ${v}%)`;
  $('divider').style.left = `${v}%`;
}

// ---- train ----

async function setTraining(files) {
  state.training = [];
  for (const f of files) state.training.push({ name: f.name, picture: Object.assign(await decodePicture(f), { name: f.name }) });
  $('train-names').textContent = state.training.map((t) => `${t.name} (${t.picture.width}x${t.picture.height})`).join(', ');
  $('train-button').disabled = !state.training.length;
}

function graphQuery({ arch, blocks, filters, scale, batch, patch }) {
  return `arch=${encodeURIComponent(arch)}&blocks=${blocks}&filters=${filters}&scale=${scale}&batch=${batch}&patch=${patch}`;
}

/// Trains on `pictures` (decoded) or on fixed `batches`; returns the worker's final message.
async function train(config, pictures, batches = null) {
  const { scale, patch } = config;
  const pairs = pictures.map((p) => {
    const hr = modcrop(p, scale);
    return { hr, lr: bicubicDown(hr, scale), name: p.name };
  });
  const small = pairs.filter((p) => p.hr.width < patch || p.hr.height < patch);
  if (!batches && small.length === pairs.length) throw new Error(`every picture is smaller than the ${patch} px patch: lower the patch or add larger pictures`);
  const q = graphQuery(config);
  const [trainStep, template] = await Promise.all([fetchBytes(`/graphs/train_step.onnx?${q}`), fetchBytes(`/graphs/model.onnx?${q}`)]);
  const losses = [];
  const job = {
    trainStep,
    template,
    pairs: pairs.filter((p) => p.hr.width >= patch && p.hr.height >= patch),
    batches,
    validation: pairs[0] || null,
    config,
  };
  state.job = job;
  $('stop-button').disabled = false;
  try {
    return await trainInWorker(job, (m) => {
      if (m.type === 'step') {
        losses.push(m.loss);
        $('train-status').textContent = `step ${m.step} of ${config.steps}: loss ${m.loss.toFixed(3)}, ${(m.step / m.seconds).toFixed(2)} steps/s`;
        plotLoss(losses);
      } else if (m.type === 'validation') {
        $('train-status').textContent += ` — PSNR-Y ${m.psnr.toFixed(2)} dB (bicubic ${m.bicubic.toFixed(2)} dB)`;
      }
    });
  } finally {
    $('stop-button').disabled = true;
    state.job = null;
  }
}

function plotLoss(losses) {
  const canvas = $('loss-canvas');
  const ctx = canvas.getContext('2d');
  const [w, h, pad] = [canvas.width, canvas.height, 36];
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(...losses);
  const min = Math.min(...losses, 0);
  ctx.strokeStyle = '#aab3c0';
  ctx.strokeRect(pad, 8, w - pad - 8, h - pad);
  ctx.fillStyle = '#5b6575';
  ctx.font = '12px system-ui';
  ctx.fillText(max.toFixed(2), 2, 16);
  ctx.fillText(min.toFixed(2), 2, h - pad + 4);
  ctx.fillText(`L1 loss by step (${losses.length})`, pad + 6, h - 10);
  ctx.strokeStyle = '#2f6fdb';
  ctx.beginPath();
  losses.forEach((l, i) => {
    const x = pad + ((w - pad - 8) * i) / Math.max(1, losses.length - 1);
    const y = 8 + (h - pad) * (1 - (l - min) / (max - min || 1));
    if (i) ctx.lineTo(x, y);
    else ctx.moveTo(x, y);
  });
  ctx.stroke();
}

async function trainFromPage() {
  const [arch, blocks, filters] = $('train-arch').value.split(':');
  const config = {
    arch,
    blocks: Number(blocks),
    filters: Number(filters),
    scale: Number($('train-scale').value),
    batch: Number($('train-batch').value),
    patch: Number($('train-patch').value),
    steps: Number($('train-steps').value),
    learningRate: Number($('train-lr').value),
    seed: 0,
    validateEvery: 50,
  };
  const done = await train(config, state.training.map((t) => t.picture));
  offerModel(done, config);
}

function offerModel(done, config) {
  const blob = new Blob([done.model], { type: 'application/octet-stream' });
  const link = $('download-model');
  link.href = URL.createObjectURL(blob);
  link.download = `${config.arch}-b${config.blocks}-x${config.scale}-${done.steps}steps.onnx`;
  link.hidden = false;
  return blob;
}

// ---- wiring ----

function dropTarget(label, onFiles) {
  const el = $(label);
  el.addEventListener('dragover', (e) => {
    e.preventDefault();
    el.classList.add('over');
  });
  el.addEventListener('dragleave', () => el.classList.remove('over'));
  el.addEventListener('drop', (e) => {
    e.preventDefault();
    el.classList.remove('over');
    onFiles([...e.dataTransfer.files]).catch(showError);
  });
}

function showError(e) {
  console.error(e);
  alert(e.message || String(e));
}

function wire() {
  const loadModel = async ([f]) => f && setModel(await f.arrayBuffer(), f.name);
  const loadPicture = async ([f]) => f && setPicture(f, f.name);
  $('model-file').addEventListener('change', (e) => loadModel([...e.target.files]).catch(showError));
  $('picture-file').addEventListener('change', (e) => loadPicture([...e.target.files]).catch(showError));
  $('train-files').addEventListener('change', (e) => setTraining([...e.target.files]).catch(showError));
  dropTarget('model-drop', loadModel);
  dropTarget('picture-drop', loadPicture);
  dropTarget('train-drop', setTraining);
  $('upscale-button').addEventListener('click', () => upscale().catch(showError));
  $('slider').addEventListener('input', clip);
  $('train-button').addEventListener('click', () => trainFromPage().catch(showError));
  $('stop-button').addEventListener('click', () => state.job && state.job.stop());
}

// ---- automation ----

const number = (name, fallback) => (query.has(name) ? Number(query.get(name)) : fallback);

async function automate() {
  if (query.get('train')) {
    const config = {
      arch: query.get('arch') || 'wdsr-b',
      blocks: number('blocks', 2),
      filters: number('filters', 16),
      scale: number('scale', 2),
      batch: number('batch', 4),
      patch: number('patch', 32),
      steps: number('steps', 10),
      learningRate: number('lr', 0.001),
      seed: number('seed', 0),
      validateEvery: number('validate_every', 0),
      threads: query.has('threads') ? number('threads') : undefined,
    };
    const images = (query.get('images') || '').split(',').filter(Boolean);
    const pictures = await Promise.all(images.map(async (u) => Object.assign(await decodePicture(await fetchBytes(u)), { name: u.split('/').pop() })));
    const batches = query.get('batches') ? new Float32Array(await fetchBytes(query.get('batches'))) : null;
    const done = await train(config, pictures, batches);
    const blob = offerModel(done, config);
    return { ok: true, steps: done.steps, seconds: done.seconds, threads: done.threads, losses: done.losses, validations: done.validations, model: await dataUrl(blob) };
  }
  if (query.get('check') === 'bicubic') {
    // The page's MATLAB-bicubic against a reference low-resolution file.
    const s = number('scale', 2);
    const hr = modcrop(await decodePicture(await fetchBytes(query.get('image'))), s);
    const want = await decodePicture(await fetchBytes(query.get('lr')));
    const got = bicubicDown(hr, s);
    let mismatches = 0;
    for (let i = 0; i < got.rgb.length; i++) mismatches += got.rgb[i] !== want.rgb[i];
    return { ok: got.width === want.width && got.height === want.height, width: got.width, height: got.height, mismatches };
  }
  if (query.get('model') && query.get('image')) {
    const modelUrl = query.get('model');
    setModel(await fetchBytes(modelUrl), modelUrl.split('/').pop());
    await setPicture(new Blob([await fetchBytes(query.get('image'))]), query.get('image').split('/').pop());
    if (query.get('crop')) {
      // A part of the picture (benchmarks): crop=Y,X,H,W.
      const [y, x, h, w] = query.get('crop').split(',').map(Number);
      state.picture = crop(state.picture, y, x, h, w);
    }
    const { result, png } = await upscale({
      tile: number('tile', 128),
      range: number('range', Number($('range').value)),
      backend: query.get('backend') || 'auto',
      threads: query.has('threads') ? number('threads') : undefined,
      repeat: number('repeat', 1),
    });
    return {
      ok: true,
      width: result.picture.width,
      height: result.picture.height,
      ms: result.ms,
      times: result.times,
      tiles: result.tiles,
      backend: result.backend,
      threads: result.threads,
      // What the page shows about the model, row by row.
      model: Object.fromEntries([...$('model-info').rows].map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent])),
      png: await dataUrl(png),
    };
  }
  return null;
}

async function start() {
  wire();
  showBackend();
  if (query.get('model') || query.get('image') || query.get('train') || query.get('check')) {
    try {
      const result = await automate();
      report(result || { ok: false, error: 'give both ?model=URL and ?image=URL, or ?train=1' });
    } catch (e) {
      report({ ok: false, error: e.message || String(e) });
    }
    return;
  }
  // Served with a model (`srgraph serve MODEL`): open it.
  try {
    const served = await (await fetch('/served.json')).json();
    if (served.model) setModel(await fetchBytes(served.model), served.model_name || 'model.onnx');
  } catch {
    // a static copy of the page: nothing served beside it
  }
}

start();
