// Training in the tab: seeded patches (srgraph's sampler rule), and the page's side of the
// training worker.

/// A small seeded generator (mulberry32) per (seed, step, item), so that a batch depends on
/// nothing drawn before it, as in srgraph's sampler. srgraph draws with ChaCha8 and rand's
/// uniform ranges, so the page's crops are the same kind, not the same ones.
function generator(seed, step, item) {
  let a = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(step + 1, 0xc2b2ae35) ^ Math.imul(item + 1, 0x27d4eb2f)) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/// Training pairs: each HR picture (cropped to a multiple of the scale) with its bicubic LR.
/// Returns the batch of step `step` (0-based): {lr, hr} Float32Arrays, NCHW in [0, 255].
/// Each item: a picture uniformly, an LR-aligned position, a horizontal flip, then 0-3
/// counter-clockwise quarter turns (srgraph's augment()).
export function sampleBatch(pairs, { scale, patch, batch, seed }, step) {
  const p = patch / scale;
  const lr = new Float32Array(batch * 3 * p * p);
  const hr = new Float32Array(batch * 3 * patch * patch);
  for (let i = 0; i < batch; i++) {
    const random = generator(seed, step, i);
    const pair = pairs[Math.floor(random() * pairs.length)];
    const y = Math.floor(random() * (pair.lr.height - p + 1));
    const x = Math.floor(random() * (pair.lr.width - p + 1));
    const flip = random() < 0.5;
    const rot = Math.floor(random() * 4);
    cut(pair.lr, y, x, p, flip, rot, lr, i);
    cut(pair.hr, y * scale, x * scale, patch, flip, rot, hr, i);
  }
  return { lr, hr };
}

function cut(picture, y0, x0, n, flip, rot, out, item) {
  const plane = n * n;
  const base = item * 3 * plane;
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      // Back from the output position to the source: undo each quarter turn, then the flip.
      let y = r;
      let x = c;
      for (let k = 0; k < rot; k++) [y, x] = [x, n - 1 - y];
      if (flip) x = n - 1 - x;
      const src = ((y0 + y) * picture.width + x0 + x) * 3;
      const dst = base + r * n + c;
      out[dst] = picture.rgb[src];
      out[dst + plane] = picture.rgb[src + 1];
      out[dst + 2 * plane] = picture.rgb[src + 2];
    }
  }
}

/// Runs the training worker; `on(message)` sees each step, validation and the end.
/// Resolves with the final message ({type: 'done', model, losses, ...}).
export function trainInWorker(job, on) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./train-worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = (e) => {
      const m = e.data;
      on && on(m);
      if (m.type === 'done' || m.type === 'error') {
        worker.terminate();
        if (m.type === 'done') resolve(m);
        else reject(new Error(m.message));
      }
    };
    worker.onerror = (e) => {
      worker.terminate();
      reject(new Error(e.message || 'the training worker failed to start'));
    };
    const { stop, ...message } = job;
    job.stop = () => worker.postMessage({ type: 'stop' });
    worker.postMessage({ type: 'start', ...message });
  });
}
