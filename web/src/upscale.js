// The page's side of the upscale worker.
import { readModel, receptiveRadius } from './onnx.js';

/// What the page shows about a model, and what tiling needs: its metadata, scale, receptive radius.
export function describeModel(buffer) {
  const m = readModel(buffer);
  if (m.dataInputs.length !== 1) {
    throw new Error(`the model takes ${m.dataInputs.length} inputs (${m.dataInputs.map((i) => i.name).join(', ')}): a super-resolution model takes one [N, 3, H, W] (or grey [N, 1, H, W]) picture`);
  }
  const [input] = m.dataInputs;
  if (input.dims.length !== 4 || (typeof input.dims[1] === 'number' && input.dims[1] !== 3 && input.dims[1] !== 1)) {
    throw new Error(`the model's input ${input.name} is [${input.dims}], not [N, 3, H, W] (RGB) or [N, 1, H, W] (grey)`);
  }
  // A grey model is fed each pixel's luma and its output is shown grey.
  const channels = input.dims[1] === 1 ? 1 : 3;
  // srgraph's models take and give pixels in [0, 255]; another model's range is not recorded.
  const range = m.metadata.architecture ? 255 : null;
  return { metadata: m.metadata, input: input.name, scale: Number(m.metadata.scale) || null, radius: receptiveRadius(m), range, channels };
}

/// Super-resolve `picture` with the model in a worker; onProgress(done, total) per tile.
export function upscaleInWorker(model, picture, { tile = 128, range = 255, backend = 'auto', threads, repeat = 1, onProgress } = {}) {
  const { radius, channels } = describeModel(model);
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./upscale-worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = (e) => {
      const m = e.data;
      if (m.type === 'progress') onProgress && onProgress(m.done, m.total);
      else {
        worker.terminate();
        if (m.type === 'done') resolve(m);
        else reject(new Error(m.message));
      }
    };
    worker.onerror = (e) => {
      worker.terminate();
      reject(new Error(e.message || 'the upscale worker failed to start'));
    };
    worker.postMessage({ model: model.slice(0), picture, tile, margin: radius, range, channels, backend, threads, repeat });
  });
}
