// Super-resolution of one picture in tiles, off the page's thread. Messages in:
// {model: ArrayBuffer, picture: {width, height, rgb}, tile, margin, range, backend, threads,
// repeat}; out: {type: 'progress', done, total}, then {type: 'done', picture, ms, backend,
// threads} or {type: 'error', message}. `range`: the pixel range the model works in, 255
// (srgraph, EDSR-PyTorch) or 1 (BasicSR, Real-ESRGAN). `channels`: the model's, 3, or 1 for a
// grey model, which is fed each pixel's BT.601 luma and whose output is shown grey. `repeat` > 1 times that many runs after
// a first one (benchmarks): `ms` is their median, `times` all of them.
import { loadRuntime } from './runtime.js';
import { tileGrid } from './pictures.js';

self.onmessage = async (e) => {
  try {
    self.postMessage(await upscale(e.data), []);
  } catch (err) {
    self.postMessage({ type: 'error', message: String((err && err.message) || err) });
  }
};

// BT.601 luma, as srgraph computes it (src/data/luma.rs): a grey pixel is its own value.
function luma(r, g, b) {
  return r === g && g === b ? r : 0.299 * r + 0.587 * g + 0.114 * b;
}

async function upscale({ model, picture, tile, margin, range = 255, channels = 3, backend, threads, repeat = 1 }) {
  const rt = await loadRuntime({ backend, threads });
  const session = await rt.ort.InferenceSession.create(model, {
    executionProviders: [rt.backend],
    graphOptimizationLevel: 'all',
  });
  const [input] = session.inputNames;
  const [output] = session.outputNames;
  const { width: w, height: h, rgb } = picture;
  const tiles = tileGrid(h, w, tile, margin);
  const run = async (report) => {
  let s = 0;
  let out = null;
  const toModel = range / 255;
  for (const [i, t] of tiles.entries()) {
    // [1, C, h, w] in [0, 255], as srgraph's networks take them.
    const x = new Float32Array(channels * t.h * t.w);
    const plane = t.h * t.w;
    for (let r = 0; r < t.h; r++) {
      for (let c = 0; c < t.w; c++) {
        const src = ((t.y + r) * w + t.x + c) * 3;
        const dst = r * t.w + c;
        if (channels === 1) {
          x[dst] = luma(rgb[src], rgb[src + 1], rgb[src + 2]) * toModel;
          continue;
        }
        x[dst] = rgb[src] * toModel;
        x[plane + dst] = rgb[src + 1] * toModel;
        x[2 * plane + dst] = rgb[src + 2] * toModel;
      }
    }
    const result = await session.run({ [input]: new rt.ort.Tensor('float32', x, [1, channels, t.h, t.w]) });
    const y = result[output];
    const [n, ch, oh, ow] = y.dims;
    if (n !== 1 || ch !== channels || oh % t.h !== 0 || oh / t.h !== ow / t.w) {
      throw new Error(`the model gave an output of [${y.dims}] for a [1, ${channels}, ${t.h}, ${t.w}] input: not an x-scale picture`);
    }
    if (!out) {
      s = oh / t.h;
      out = new Uint8Array(h * s * w * s * 3);
    } else if (oh / t.h !== s) throw new Error('the model changed its scale between tiles');
    const data = y.getData ? await y.getData() : y.data;
    const [y0, y1, x0, x1] = t.core;
    const oplane = oh * ow;
    for (let r = (y0 - t.y) * s; r < (y1 - t.y) * s; r++) {
      for (let c = (x0 - t.x) * s; c < (x1 - t.x) * s; c++) {
        const dst = ((t.y * s + r) * w * s + t.x * s + c) * 3;
        for (let k = 0; k < 3; k++) {
          // A grey model's one channel is shown in all three.
          const v = data[(channels === 1 ? 0 : k) * oplane + r * ow + c] / toModel;
          if (!Number.isFinite(v)) throw new Error('the model gave NaN or infinite values: its weights are damaged');
          // Rounded and clamped as srgraph does (half away from zero; only differs below 0).
          out[dst + k] = Math.min(255, Math.max(0, Math.round(v)));
        }
      }
    }
    y.dispose && y.dispose();
    if (report) self.postMessage({ type: 'progress', done: i + 1, total: tiles.length });
  }
  return { out, s };
  };
  const times = [];
  let result;
  for (let k = 0; k < (repeat > 1 ? repeat + 1 : 1); k++) {
    const start = performance.now();
    result = await run(k === 0);
    times.push(performance.now() - start);
  }
  if (repeat > 1) times.shift(); // the first run warms up (kernels, memory)
  const sorted = [...times].sort((a, b) => a - b);
  await session.release();
  return {
    type: 'done',
    picture: { width: w * result.s, height: h * result.s, rgb: result.out },
    scale: result.s,
    tiles: tiles.length,
    ms: sorted[Math.floor(sorted.length / 2)],
    times,
    backend: rt.backend,
    threads: rt.threads,
  };
}
