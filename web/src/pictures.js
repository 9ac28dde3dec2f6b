// Pictures in the page: decoding to 8-bit RGB, PNG encoding, MATLAB-exact bicubic
// resizing (a port of srgraph's src/data/bicubic.rs), tiles and PSNR. Works in the page
// and in workers (OffscreenCanvas), so pixels never go through a colour-managed canvas.

/// {width, height, rgb: Uint8Array (h * w * 3, row-major)} from a Blob or ArrayBuffer.
export async function decodePicture(data) {
  const blob = data instanceof Blob ? data : new Blob([data]);
  // No colour conversion: the pixels the file holds, as srgraph's `image` crate reads them.
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', { colorSpace: 'srgb' });
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const rgb = new Uint8Array(bitmap.width * bitmap.height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return { width: bitmap.width, height: bitmap.height, rgb };
}

export function toImageData(p) {
  const rgba = new Uint8ClampedArray(p.width * p.height * 4);
  for (let i = 0, j = 0; j < p.rgb.length; i += 4, j += 3) {
    rgba[i] = p.rgb[j];
    rgba[i + 1] = p.rgb[j + 1];
    rgba[i + 2] = p.rgb[j + 2];
    rgba[i + 3] = 255;
  }
  return new ImageData(rgba, p.width, p.height);
}

/// A PNG Blob of the picture (lossless).
export async function encodePng(p) {
  const canvas = new OffscreenCanvas(p.width, p.height);
  canvas.getContext('2d').putImageData(toImageData(p), 0, 0);
  return canvas.convertToBlob({ type: 'image/png' });
}

// ---- MATLAB imresize, bicubic (src/data/bicubic.rs) ----

function cubic(x) {
  const ax = Math.abs(x);
  const ax2 = ax * ax;
  const ax3 = ax2 * ax;
  if (ax <= 1) return 1.5 * ax3 - 2.5 * ax2 + 1;
  if (ax <= 2) return -0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2;
  return 0;
}

// MATLAB's contributions(): for each output sample its input indices and weights, the
// same float operations in the same order (rounding to uint8 after each pass turns any
// last-bit difference near .5 into a whole grey level). Mirror borders, as imresize.
function contributions(inLen, outLen, scale) {
  const [kernelWidth, widen] = scale < 1 ? [4 / scale, scale] : [4, 1];
  const p = Math.ceil(kernelWidth) + 2;
  const indices = new Int32Array(outLen * p);
  const weights = new Float64Array(outLen * p);
  const n = inLen;
  for (let x = 1; x <= outLen; x++) {
    const u = x / scale + 0.5 * (1 - 1 / scale);
    const left = Math.floor(u - kernelWidth / 2);
    let sum = 0;
    for (let k = 0; k < p; k++) {
      const w = widen * cubic(widen * (u - (left + k)));
      weights[(x - 1) * p + k] = w;
      sum += w;
    }
    for (let k = 0; k < p; k++) {
      weights[(x - 1) * p + k] /= sum;
      const m = (((left + k - 1) % (2 * n)) + 2 * n) % (2 * n);
      indices[(x - 1) * p + k] = Math.min(m, 2 * n - 1 - m);
    }
  }
  const keep = [];
  for (let k = 0; k < p; k++) {
    for (let o = 0; o < outLen; o++) {
      if (weights[o * p + k] !== 0) {
        keep.push(k);
        break;
      }
    }
  }
  const taps = keep.length;
  const ki = new Int32Array(outLen * taps);
  const kw = new Float64Array(outLen * taps);
  for (let o = 0; o < outLen; o++) {
    keep.forEach((k, t) => {
      ki[o * taps + t] = indices[o * p + k];
      kw[o * taps + t] = weights[o * p + k];
    });
  }
  return { taps, indices: ki, weights: kw, outLen };
}

// Resize the middle axis of data viewed as [outer][inLen][inner], rounding to uint8.
function resizeAxis(data, outer, inLen, inner, c) {
  const out = new Uint8Array(outer * c.outLen * inner);
  const acc = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    const base = o * inLen * inner;
    for (let i = 0; i < c.outLen; i++) {
      acc.fill(0);
      for (let t = 0; t < c.taps; t++) {
        const w = c.weights[i * c.taps + t];
        const src = base + c.indices[i * c.taps + t] * inner;
        for (let k = 0; k < inner; k++) acc[k] += w * data[src + k];
      }
      const dst = (o * c.outLen + i) * inner;
      // Rust's round() goes half away from zero, Math.round half up: they differ only
      // below zero, where the clamp makes both 0.
      for (let k = 0; k < inner; k++) out[dst + k] = Math.min(255, Math.max(0, Math.round(acc[k])));
    }
  }
  return out;
}

function resize(p, outH, outW, scale) {
  const rows = resizeAxis(p.rgb, 1, p.height, p.width * 3, contributions(p.height, outH, scale));
  const rgb = resizeAxis(rows, outH, p.width, 3, contributions(p.width, outW, scale));
  return { width: outW, height: outH, rgb };
}

/// The picture cropped to a multiple of s (MATLAB's modcrop), as training and scoring do.
export function modcrop(p, s) {
  const h = p.height - (p.height % s);
  const w = p.width - (p.width % s);
  return crop(p, 0, 0, h, w);
}

export function crop(p, y, x, h, w) {
  const rgb = new Uint8Array(h * w * 3);
  for (let r = 0; r < h; r++) rgb.set(p.rgb.subarray(((y + r) * p.width + x) * 3, ((y + r) * p.width + x + w) * 3), r * w * 3);
  return { width: w, height: h, rgb };
}

/// imresize(p, 1/s, 'bicubic') of a picture whose sides are multiples of s.
export const bicubicDown = (p, s) => resize(p, p.height / s, p.width / s, 1 / s);
/// imresize(p, s, 'bicubic').
export const bicubicUp = (p, s) => resize(p, p.height * s, p.width * s, s);

// ---- tiles (src/infer/mod.rs) ----

// Cores of `tile` pixels along an axis, each in a window of tile + 2 margin slid inside it.
function axisTiles(len, tile, margin) {
  const window = Math.min(tile + 2 * margin, len);
  if (tile === 0 || window === len) return [[0, len, 0, len]];
  const out = [];
  for (let a = 0; a < len; a += tile) {
    const b = Math.min(a + tile, len);
    const start = Math.min(Math.max(a - margin, 0), len - window);
    out.push([start, window, a, b]);
  }
  return out;
}

/// The tiles of an h x w picture: {y, x, h, w, core: [y0, y1, x0, x1]}; margin is the receptive radius.
export function tileGrid(h, w, tile, margin) {
  const tiles = [];
  for (const [y, th, y0, y1] of axisTiles(h, tile, margin)) {
    for (const [x, tw, x0, x1] of axisTiles(w, tile, margin)) tiles.push({ y, x, h: th, w: tw, core: [y0, y1, x0, x1] });
  }
  return tiles;
}

// ---- scores ----

/// PSNR on Y with `shave` pixels cut from each border, as `srgraph eval` (src/metrics): ITU-R
/// BT.601 with EDSR/WDSR's coefficients, Y = 16 + (65.738 R + 129.057 G + 25.064 B) / 256, unrounded.
export function psnrY(a, b, shave) {
  let sum = 0;
  let n = 0;
  for (let y = shave; y < a.height - shave; y++) {
    for (let x = shave; x < a.width - shave; x++) {
      const i = (y * a.width + x) * 3;
      const ya = 16 + (65.738 * a.rgb[i] + 129.057 * a.rgb[i + 1] + 25.064 * a.rgb[i + 2]) / 256;
      const yb = 16 + (65.738 * b.rgb[i] + 129.057 * b.rgb[i + 1] + 25.064 * b.rgb[i + 2]) / 256;
      sum += (ya - yb) ** 2;
      n++;
    }
  }
  return 10 * Math.log10((255 * 255) / (sum / n));
}
